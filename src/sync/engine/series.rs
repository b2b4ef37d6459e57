//! Series in a run. A pull reads, after its last page, the master and the instances of every
//! series whose instances changed (both through `$batch`, so one round trip reads
//! [`SERIES_PER_BATCH`] series), and of every linked series when something unknown was removed
//! (a cancelled occurrence or a deleted series carries only an id Graph gave no master for). A
//! push that wrote a series brings its instances in line with the local exceptions: it
//! modifies and cancels occurrences, and writes the recurrence again when an occurrence
//! cancelled in Microsoft must come back. A series changed in Microsoft when its master or one
//! of its exceptions last did (for `most_recent_wins`).

use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    BATCH_SIZE, PullState, Run, Stop, calendar_window, etag_of, is_series_link, link_base,
    link_pending,
};
use crate::domain::links::Resource;
use crate::{
    domain::connections::tokens::TokenFailure,
    graph::client::BatchRequest,
    sync::{
        local::{self, LocalItem},
        recurrence::{self, Window},
        rules,
    },
};
use chrono::{DateTime, Utc};
use entity::sync_links;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

/// Series whose master and instances one `$batch` reads: two requests each.
pub const SERIES_PER_BATCH: usize = BATCH_SIZE / 2;

/// A series master as read: its status, body and instances over the window.
struct ReadSeries {
    id: String,
    status: u16,
    master: Value,
    instances: Vec<Value>,
}

fn prefer_headers() -> serde_json::Map<String, Value> {
    let mut headers = serde_json::Map::new();
    headers.insert("Prefer".into(), json!(Resource::Calendar.prefer()));
    headers
}

/// When a series last changed in Microsoft: the latest `lastModifiedDateTime` of its master and
/// of its modified occurrences. Modifying one occurrence changes only that exception's time,
/// not the master's, so the master alone would make a later Outlook edit of an occurrence
/// look older than a local edit of the series (`most_recent_wins`).
fn series_modified(master: &Value, instances: &[Value]) -> Option<DateTime<Utc>> {
    let modified = |item: &Value| {
        item.get("lastModifiedDateTime")
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    instances
        .iter()
        .filter(|i| i.get("type").and_then(Value::as_str) == Some("exception"))
        .filter_map(modified)
        .chain(modified(master))
        .max()
}

impl Run<'_> {
    /// One `GET`: its status and body (`Null` for a refusal that retrying does not cure).
    async fn get_one(&mut self, url: &str) -> Result<(u16, Value), Stop> {
        match self.get(url, self.resource.prefer_list()).await {
            Ok(body) => Ok((200, body)),
            Err(Stop::Token(TokenFailure::Graph(e))) if !e.is_transient() && e.status != 401 => {
                Ok((e.status, Value::Null))
            }
            Err(other) => Err(other),
        }
    }

    /// `GET`s through `$batch`, 20 per batch; an item refused for throttling or unavailability
    /// is read again alone (with retries). Answers in the order of `urls`.
    async fn get_many(&mut self, urls: &[String]) -> Result<Vec<(u16, Value)>, Stop> {
        let mut out = Vec::with_capacity(urls.len());
        for chunk in urls.chunks(BATCH_SIZE) {
            let requests: Vec<BatchRequest> = chunk
                .iter()
                .enumerate()
                .map(|(n, url)| BatchRequest {
                    id: n.to_string(),
                    method: "GET".into(),
                    url: url.clone(),
                    headers: prefer_headers(),
                    body: None,
                })
                .collect();
            let responses = self.batch(&requests).await?;
            for (n, url) in chunk.iter().enumerate() {
                match responses.iter().find(|r| r.id == n.to_string()) {
                    Some(r) if !matches!(r.status, 429 | 500 | 502 | 503 | 504) => {
                        out.push((r.status, r.body.clone().unwrap_or(Value::Null)));
                    }
                    _ => out.push(self.get_one(url).await?),
                }
            }
        }
        Ok(out)
    }

    fn instances_url(&self, remote_id: &str, window: Window) -> String {
        format!(
            "{}/instances?{}&$top=1000",
            self.item_path(remote_id),
            window.query()
        )
    }

    /// The rest of a paged collection, from the first page.
    async fn all_pages(&mut self, mut page: Value) -> Result<Option<Vec<Value>>, Stop> {
        let mut items = Vec::new();
        loop {
            items.extend(
                page.get("value")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
            let Some(next) = page
                .get("@odata.nextLink")
                .and_then(Value::as_str)
                .map(str::to_owned)
            else {
                return Ok(Some(items));
            };
            match self.get_one(&next).await? {
                (200, body) => page = body,
                _ => return Ok(None),
            }
        }
    }

    /// Masters and instances of series, read together.
    async fn read_series(
        &mut self,
        ids: &[String],
        window: Window,
    ) -> Result<Vec<ReadSeries>, Stop> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(SERIES_PER_BATCH) {
            let urls: Vec<String> = chunk
                .iter()
                .flat_map(|id| [self.item_path(id), self.instances_url(id, window)])
                .collect();
            let mut answers = self.get_many(&urls).await?.into_iter();
            for id in chunk {
                let (Some((status, master)), Some((instances_status, first))) =
                    (answers.next(), answers.next())
                else {
                    break;
                };
                let instances =
                    if status == 200 && master.get("recurrence").is_some_and(|r| !r.is_null()) {
                        if instances_status != 200 {
                            self.note_unread(id, instances_status);
                            continue;
                        }
                        match self.all_pages(first).await? {
                            Some(items) => items,
                            None => {
                                self.note_unread(id, 0);
                                continue;
                            }
                        }
                    } else {
                        Vec::new()
                    };
                out.push(ReadSeries {
                    id: id.clone(),
                    status,
                    master,
                    instances,
                });
            }
        }
        Ok(out)
    }

    fn note_unread(&mut self, id: &str, status: u16) {
        self.log.errors.push(crate::sync::runs::ItemError {
            item: None,
            code: format!("http_{status}"),
            message: format!(
                "the occurrences of series {id} could not be read; it is read again next run"
            ),
        });
    }

    /// Reads the series a pull found changed (or must verify) and applies them: one local item
    /// per series, created, merged or deleted like any item.
    pub(super) async fn pull_series(
        &mut self,
        st: &mut PullState,
        resynced: bool,
    ) -> Result<(), Stop> {
        if self.resource != Resource::Calendar {
            return Ok(());
        }
        for id in std::mem::take(&mut st.removed) {
            if st.series.contains(&id) {
                // Its id is now a series master's: it became a series.
                st.verify.insert(id);
            } else if let Some(link) = st.links.remove(&id) {
                st.deletions.push(link);
            }
        }
        if resynced || st.unknown_removals {
            let linked: Vec<String> = st
                .links
                .iter()
                .filter(|(_, link)| is_series_link(link, &st.locals))
                .map(|(id, _)| id.clone())
                .collect();
            st.verify.extend(linked);
        }
        let mut ids: Vec<String> = st.series.union(&st.verify).cloned().collect();
        st.series.clear();
        st.verify.clear();
        st.unknown_removals = false;
        if ids.is_empty() {
            return Ok(());
        }
        ids.sort();
        let window = calendar_window();
        for read in self.read_series(&ids, window).await? {
            self.apply_series(st, read, window).await?;
        }
        Ok(())
    }

    async fn apply_series(
        &mut self,
        st: &mut PullState,
        read: ReadSeries,
        window: Window,
    ) -> Result<(), Stop> {
        let ReadSeries {
            id,
            status,
            master,
            instances,
        } = read;
        match status {
            200 => {}
            404 | 410 => {
                if let Some(link) = st.links.remove(&id) {
                    self.log
                        .note(format!("{}: series deleted in Microsoft", link.local_id));
                    st.deletions.push(link);
                }
                return Ok(());
            }
            other => {
                self.log.errors.push(crate::sync::runs::ItemError {
                    item: st.links.get(&id).map(|l| l.local_id),
                    code: format!("http_{other}"),
                    message: format!("series {id} could not be read; it is read again next run"),
                });
                return Ok(());
            }
        }
        st.applied.insert(id.clone());
        let link = st.links.get(&id).cloned();
        let local_fields = link
            .as_ref()
            .and_then(|l| st.locals.get(&l.local_id))
            .map(|item| item.fields.clone());
        let remote = recurrence::remote_fields(&master, &instances, window, local_fields.as_ref());
        let etag = etag_of(&master);
        let link = match link {
            Some(link) => link,
            None => {
                let ours: std::collections::HashMap<String, Uuid> = master
                    .get("transactionId")
                    .and_then(Value::as_str)
                    .and_then(|t| Uuid::parse_str(t).ok())
                    .map(|local| (id.clone(), local))
                    .into_iter()
                    .collect();
                match self.match_unlinked(st, &ours, &id, &master) {
                    Some(found) => {
                        self.link_match(st, found, &id, &master, &remote, etag.clone())
                            .await?
                    }
                    None => {
                        let mut new = local::prepare(self.user_id, self.resource, &remote);
                        new.remember(None, &master);
                        let link = self.new_link(new.id(), &id, etag, 1, &remote);
                        st.links.insert(id.clone(), link.clone());
                        st.creations.push((new, link));
                        return Ok(());
                    }
                }
            }
        };
        let Some(item) = st.locals.get(&link.local_id).cloned() else {
            return Ok(());
        };
        if st.conflicts.contains(&item.id) {
            self.log
                .note(format!("{}: parked conflict, not synchronized", item.id));
            return Ok(());
        }
        local::remember(&self.state.db, &item, self.resource, None, &master)
            .await
            .map_err(Stop::from)?;
        let mut base = link_base(&link);
        let pending = link_pending(&link);
        if let Some(pending) = &pending {
            if remote == pending.fields {
                // The push that was cut had written everything: synchronized at its version.
                self.log.note(format!(
                    "{}: the interrupted push of this series had reached Microsoft in full",
                    item.id
                ));
                self.log.counts.skipped_echoes += 1;
                self.update_link(&link, etag, pending.version, &remote)
                    .await?;
                return Ok(());
            }
            self.log.note(format!(
                "{}: a push of this series was interrupted: what it had written is not taken \
                 for a change made in Microsoft, the rest is sent again",
                item.id
            ));
            base = rules::effective_base(&base, &pending.fields, &remote);
        }
        if remote == base {
            // Nothing the sync tracks changed in Microsoft (our own write coming back).
            self.log.counts.skipped_echoes += 1;
            if (etag.is_some() && etag != link.remote_etag) || pending.is_some() {
                let fresh = sync_links::Model {
                    remote_etag: etag.clone(),
                    base_snapshot: serde_json::Value::Object(base.clone()).to_string(),
                    pending_snapshot: None,
                    ..link.clone()
                };
                self.update_link(&link, etag, link.synced_version, &base)
                    .await?;
                st.links.insert(id, fresh);
            }
            return Ok(());
        }
        let link = sync_links::Model {
            base_snapshot: serde_json::Value::Object(base).to_string(),
            ..link
        };
        let modified = series_modified(&master, &instances);
        self.apply_change(st, &link, &item, &remote, etag, modified)
            .await
    }

    /// Brings the instances of the series this push wrote in line with their exceptions, then
    /// records what Microsoft now holds (etag and base) on their links.
    pub(super) async fn reconcile_series(&mut self) -> Result<(), Stop> {
        let pushed = std::mem::take(&mut self.series_pushed);
        let window = calendar_window();
        for (item, remote_id) in pushed {
            let done = self.reconcile_one(&item, &remote_id, window).await?;
            let link = sync_links::Entity::find()
                .filter(sync_links::Column::UserId.eq(self.user_id))
                .filter(sync_links::Column::Resource.eq(self.resource.as_str()))
                .filter(sync_links::Column::LocalId.eq(item.id))
                .one(&self.state.db)
                .await
                .map_err(crate::error::ApiError::from)?;
            let Some(link) = link else { continue };
            let (status, master) = self.get_one(&self.item_path(&remote_id)).await?;
            if done && status == 200 {
                self.update_link(&link, etag_of(&master), item.version, &item.fields)
                    .await?;
            } else {
                // Sent again, whole, next run; what was written stays pending.
                self.set_link(
                    &link,
                    link.remote_etag.clone(),
                    0,
                    &link_base(&link),
                    link.pending_snapshot.clone(),
                )
                .await?;
                self.log.errors.push(crate::sync::runs::ItemError {
                    item: Some(item.id),
                    code: "series_incomplete".to_owned(),
                    message: "Microsoft did not take every change to the occurrences of this \
                              series; it is sent again next run"
                        .to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Graph dropped every exception of a series whose recurrence was written again: its
    /// link's base says so, so that a run cut now does not take their absence for Microsoft's
    /// doing.
    async fn exceptions_dropped(&self, local_id: Uuid) -> Result<(), Stop> {
        let link = sync_links::Entity::find()
            .filter(sync_links::Column::UserId.eq(self.user_id))
            .filter(sync_links::Column::Resource.eq(self.resource.as_str()))
            .filter(sync_links::Column::LocalId.eq(local_id))
            .one(&self.state.db)
            .await
            .map_err(crate::error::ApiError::from)?;
        if let Some(link) = link {
            let mut base = link_base(&link);
            base.insert("exceptions".into(), json!([]));
            self.set_link(
                &link,
                link.remote_etag.clone(),
                link.synced_version,
                &base,
                link.pending_snapshot.clone(),
            )
            .await?;
        }
        Ok(())
    }

    /// The instances of a series over the window, or `None` when they cannot be read.
    async fn read_instances(
        &mut self,
        remote_id: &str,
        window: Window,
    ) -> Result<Option<Vec<Value>>, Stop> {
        match self.get_one(&self.instances_url(remote_id, window)).await? {
            (200, first) => self.all_pages(first).await,
            _ => Ok(None),
        }
    }

    /// Sends what the occurrences of one series need; returns whether Microsoft took it all.
    async fn reconcile_one(
        &mut self,
        item: &LocalItem,
        remote_id: &str,
        window: Window,
    ) -> Result<bool, Stop> {
        let Some(instances) = self.read_instances(remote_id, window).await? else {
            return Ok(false);
        };
        let mut plan = recurrence::plan(&item.fields, &instances, window);
        if plan.reset {
            let Some(body) = recurrence::reset_body(&item.fields) else {
                return Ok(false);
            };
            self.log.note(format!(
                "{}: an occurrence cancelled in Microsoft comes back: recurrence written again",
                item.id
            ));
            if !self
                .send(vec![("PATCH", self.item_path(remote_id), Some(body))])
                .await?
            {
                return Ok(false);
            }
            self.exceptions_dropped(item.id).await?;
            let Some(instances) = self.read_instances(remote_id, window).await? else {
                return Ok(false);
            };
            plan = recurrence::plan(&item.fields, &instances, window);
        }
        let mut requests: Vec<(&str, String, Option<Value>)> = Vec::new();
        for (id, body) in &plan.updates {
            requests.push(("PATCH", self.item_path(id), Some(body.clone())));
        }
        for id in &plan.cancellations {
            requests.push(("DELETE", self.item_path(id), None));
        }
        if !requests.is_empty() {
            self.log.note(format!(
                "{}: {} occurrence(s) modified and {} cancelled in Microsoft",
                item.id,
                plan.updates.len(),
                plan.cancellations.len()
            ));
        }
        let sent = self.send(requests).await?;
        Ok(sent && !plan.reset)
    }

    /// Sends writes through `$batch`, retrying throttled ones; returns whether all succeeded
    /// (a deletion of what is already gone counts as done).
    async fn send(&mut self, writes: Vec<(&str, String, Option<Value>)>) -> Result<bool, Stop> {
        let mut pending = writes;
        let mut all = true;
        for attempt in 1..=super::ATTEMPTS {
            if pending.is_empty() {
                break;
            }
            let mut retry = Vec::new();
            let mut longest = None;
            for chunk in pending.chunks(BATCH_SIZE) {
                let requests: Vec<BatchRequest> = chunk
                    .iter()
                    .enumerate()
                    .map(|(n, (method, url, body))| {
                        let mut headers = prefer_headers();
                        if body.is_some() {
                            headers.insert("Content-Type".into(), json!("application/json"));
                        }
                        BatchRequest {
                            id: n.to_string(),
                            method: (*method).to_owned(),
                            url: url.clone(),
                            headers,
                            body: body.clone(),
                        }
                    })
                    .collect();
                let responses = self.batch(&requests).await?;
                for (n, write) in chunk.iter().enumerate() {
                    match responses.iter().find(|r| r.id == n.to_string()) {
                        Some(r) if matches!(r.status, 200 | 201 | 204) => {}
                        Some(r) if write.0 == "DELETE" && r.status == 404 => {}
                        Some(r) if matches!(r.status, 429 | 500 | 502 | 503 | 504) => {
                            longest = longest.max(r.retry_after());
                            retry.push(write.clone());
                        }
                        None => retry.push(write.clone()),
                        Some(r) => {
                            all = false;
                            self.log.note(format!(
                                "{} {}: refused by Microsoft ({})",
                                write.0,
                                write.1,
                                r.error_code()
                                    .unwrap_or_else(|| format!("http_{}", r.status))
                            ));
                        }
                    }
                }
            }
            if !retry.is_empty() && attempt < super::ATTEMPTS {
                self.wait(attempt, longest).await;
            } else if !retry.is_empty() {
                all = false;
            }
            pending = retry;
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_changed_when_its_master_or_its_latest_exception_did() {
        let master =
            json!({"type": "seriesMaster", "lastModifiedDateTime": "2026-03-01T10:00:00.0000000Z"});
        let occurrence =
            json!({"type": "occurrence", "lastModifiedDateTime": "2026-03-09T10:00:00.0000000Z"});
        let exception = |at: &str| json!({"type": "exception", "lastModifiedDateTime": at});
        let at = |text: &str| Some(text.parse::<DateTime<Utc>>().unwrap());
        assert_eq!(
            series_modified(&master, std::slice::from_ref(&occurrence)),
            at("2026-03-01T10:00:00Z"),
            "a plain occurrence carries its master's state, not a change of its own"
        );
        assert_eq!(
            series_modified(
                &master,
                &[
                    exception("2026-03-05T08:30:00.5000000Z"),
                    occurrence,
                    exception("2026-03-04T00:00:00.0000000Z")
                ]
            ),
            at("2026-03-05T08:30:00.5Z")
        );
        assert_eq!(
            series_modified(&master, &[exception("2026-02-01T00:00:00Z")]),
            at("2026-03-01T10:00:00Z")
        );
    }
}
