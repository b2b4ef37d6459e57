//! Recurring series: the local API (rules, modified and cancelled occurrences, expanded
//! listings) and their synchronization with Outlook's series masters, exceptions and cancelled
//! occurrences, checked against the emulator's own expansion (calendarView).

use std::collections::HashMap;

use chrono::{DateTime, Days, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use entity::calendar_events;
use m365_sync::domain::calendar_events::Rule;
use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::{MailboxUser, Response, TestApp, spawn_app};

/// A connected user whose calendar synchronizes with the given settings.
struct Fixture {
    app: TestApp,
    who: MailboxUser,
    /// Whether runs read Microsoft's changes (every direction but `to_microsoft`).
    pulls: bool,
}

/// The first day of the range the tests compare (well inside the sync window, which spans a
/// year back and two years ahead).
fn compare_from() -> DateTime<Utc> {
    today() - chrono::Duration::days(360)
}

fn compare_to() -> DateTime<Utc> {
    today() + chrono::Duration::days(725)
}

fn today() -> DateTime<Utc> {
    Utc::now()
        .date_naive()
        .and_time(chrono::NaiveTime::MIN)
        .and_utc()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// One occurrence, comparable across both sides: title, start and end (UTC to the minute, or
/// `D:` dates for all-day occurrences, the end date inclusive).
type Shown = (String, String, String);

fn minute(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%MZ").to_string()
}

fn local_shown(item: &Value) -> Shown {
    let title = item["title"].as_str().unwrap().to_owned();
    if item["is_all_day"] == true {
        return (
            title,
            format!("D:{}", item["start_date"].as_str().unwrap()),
            format!("D:{}", item["end_date"].as_str().unwrap()),
        );
    }
    let at = |wall: &Value| {
        let zone: Tz = wall["time_zone"].as_str().unwrap().parse().unwrap();
        let local = NaiveDateTime::parse_from_str(
            wall["date_time"].as_str().unwrap(),
            "%Y-%m-%dT%H:%M:%S%.f",
        )
        .unwrap();
        minute(
            zone.from_local_datetime(&local)
                .earliest()
                .unwrap()
                .with_timezone(&Utc),
        )
    };
    (title, at(&item["start"]), at(&item["end"]))
}

fn outlook_shown(item: &Value) -> Shown {
    let title = item["subject"].as_str().unwrap().to_owned();
    let time = |t: &Value| {
        assert_eq!(t["timeZone"], "UTC", "{item}");
        NaiveDateTime::parse_from_str(&t["dateTime"].as_str().unwrap()[..19], "%Y-%m-%dT%H:%M:%S")
            .unwrap()
    };
    let (start, end) = (time(&item["start"]), time(&item["end"]));
    if item["isAllDay"] == true {
        let last = end.date().pred_opt().unwrap();
        return (title, format!("D:{}", start.date()), format!("D:{last}"));
    }
    (title, minute(start.and_utc()), minute(end.and_utc()))
}

impl Fixture {
    async fn new(direction: &str, conflict: &str) -> Self {
        let app = spawn_app().await;
        let who = app.connected_user().await;
        let settings = json!({
            "calendar": {"enabled": true, "direction": direction, "conflict_resolution": conflict},
            "tasks": {"enabled": false},
        });
        let path = format!("/api/v1/users/{}/settings/microsoft", who.user.id);
        assert_eq!(
            app.patch(&path, &who.user.token, settings).await.status,
            StatusCode::OK
        );
        Self {
            app,
            who,
            pulls: direction != "to_microsoft",
        }
    }

    fn events(&self) -> String {
        format!("/api/v1/users/{}/calendar-events", self.who.user.id)
    }

    fn occurrence(&self, id: &str, original_start: &str) -> String {
        format!("{}/{id}/occurrences/{original_start}", self.events())
    }

    async fn create(&self, body: Value) -> Response {
        self.app
            .post(&self.events(), &self.who.user.token, body)
            .await
    }

    /// Creates a series and returns its id.
    async fn created(&self, body: Value) -> String {
        let response = self.create(body).await;
        assert_eq!(response.status, StatusCode::CREATED, "{response:?}");
        response.body["id"].as_str().unwrap().to_owned()
    }

    async fn get(&self, id: &str) -> Response {
        self.app
            .get(&format!("{}/{id}", self.events()), &self.who.user.token)
            .await
    }

    async fn patch(&self, id: &str, body: Value) -> Response {
        self.app
            .patch(
                &format!("{}/{id}", self.events()),
                &self.who.user.token,
                body,
            )
            .await
    }

    async fn patch_occurrence(&self, id: &str, original_start: &str, body: Value) -> Response {
        self.app
            .patch(
                &self.occurrence(id, original_start),
                &self.who.user.token,
                body,
            )
            .await
    }

    async fn cancel_occurrence(&self, id: &str, original_start: &str) -> Response {
        self.app
            .request(
                Method::DELETE,
                &self.occurrence(id, original_start),
                Some(&self.who.user.token),
                None,
            )
            .await
    }

    /// Every item of the expanded listing over `[from, to)`, all pages (small ones, so that
    /// paging is exercised too).
    async fn expanded(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Value> {
        self.expanded_in_pages_of(7, from, to).await
    }

    /// Every item of the expanded listing over `[from, to)`, in pages of `limit`.
    async fn expanded_in_pages_of(
        &self,
        limit: usize,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!(
                "{}?expand=true&from={}&to={}&limit={limit}",
                self.events(),
                rfc3339(from),
                rfc3339(to)
            );
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = self.app.get(&path, &self.who.user.token).await;
            assert_eq!(page.status, StatusCode::OK, "{page:?}");
            items.extend(page.body["items"].as_array().unwrap().iter().cloned());
            match page.body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return items,
            }
        }
    }

    /// The occurrences of one series in the expanded listing (start order).
    async fn occurrences_of(&self, id: &str) -> Vec<Value> {
        let mut items: Vec<Value> = self
            .expanded(compare_from(), compare_to())
            .await
            .into_iter()
            .filter(|i| i["id"] == id)
            .collect();
        items.sort_by_key(|i| local_shown(i).1);
        items
    }

    /// The occurrences of every series in the compared range, by series id (start order).
    async fn occurrences_by_series(&self) -> HashMap<String, Vec<Value>> {
        let mut by_series: HashMap<String, Vec<Value>> = HashMap::new();
        for item in self
            .expanded_in_pages_of(500, compare_from(), compare_to())
            .await
        {
            let id = item["id"].as_str().unwrap().to_owned();
            by_series.entry(id).or_default().push(item);
        }
        for items in by_series.values_mut() {
            items.sort_by_key(|i| local_shown(i).1);
        }
        by_series
    }

    fn outlook(&self) -> graph_emulator::Outlook<'_> {
        self.app.emulator.outlook()
    }

    /// Outlook's calendar view over `[from, to)`.
    fn outlook_view(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Value> {
        self.outlook()
            .calendar_view(&self.who.mailbox_id, from, to)
            .unwrap()
    }

    /// The instances of one Outlook series in the compared range, in start order.
    fn instances_of(&self, master_id: &str) -> Vec<Value> {
        self.outlook_view(compare_from(), compare_to())
            .into_iter()
            .filter(|i| i["seriesMasterId"] == master_id)
            .collect()
    }

    async fn local_rows(&self) -> Vec<calendar_events::Model> {
        calendar_events::Entity::find()
            .filter(calendar_events::Column::UserId.eq(self.who.user.id))
            .filter(calendar_events::Column::DeletedAt.is_null())
            .all(&self.app.db)
            .await
            .unwrap()
    }

    /// Synchronizes; the calendar run must succeed, and each of its calendar reads asks for
    /// times in UTC.
    async fn sync(&self) -> Value {
        let from = self.app.emulator.request_log().len();
        let runs = self.app.sync_now(&self.who.user).await;
        let calendar = runs[0].clone();
        assert_eq!(calendar["outcome"], "succeeded", "{calendar:#}");
        let reads = self.app.assert_calendar_reads_prefer_utc(from);
        assert!(
            reads > 0 || !self.pulls,
            "a pull reads the calendar's delta at least"
        );
        calendar
    }

    /// Both sides hold the same items: one local event per Outlook single event or series
    /// master, and the same occurrences over the compared range.
    async fn assert_in_sync(&self) {
        let masters = self.outlook().list_events(&self.who.mailbox_id).unwrap();
        let rows = self.local_rows().await;
        assert_eq!(
            rows.len(),
            masters.len(),
            "one local event per Outlook event or series: {:?} / {:?}",
            rows.iter().map(|r| &r.title).collect::<Vec<_>>(),
            masters.iter().map(|m| &m["subject"]).collect::<Vec<_>>()
        );
        let mut local: Vec<Shown> = self
            .expanded(compare_from(), compare_to())
            .await
            .iter()
            .map(local_shown)
            .collect();
        let mut outlook: Vec<Shown> = self
            .outlook_view(compare_from(), compare_to())
            .iter()
            .map(outlook_shown)
            .collect();
        local.sort();
        outlook.sort();
        let only_local: Vec<&Shown> = local.iter().filter(|s| !outlook.contains(s)).collect();
        let only_outlook: Vec<&Shown> = outlook.iter().filter(|s| !local.contains(s)).collect();
        assert!(
            only_local.is_empty() && only_outlook.is_empty() && local.len() == outlook.len(),
            "occurrences differ: only here {only_local:#?}, only in Outlook {only_outlook:#?}"
        );
    }

    /// Graph writes since request number `from` of the emulator's log.
    fn writes_since(&self, from: usize) -> Vec<String> {
        self.app.emulator.request_log()[from..]
            .iter()
            .filter(|r| r.method != "GET" && !(r.method == "POST" && r.path.ends_with("$batch")))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// A second run changes nothing on either side.
    async fn assert_quiet_second_run(&self) {
        let versions: Vec<(uuid::Uuid, i64)> = self
            .local_rows()
            .await
            .iter()
            .map(|r| (r.id, r.version))
            .collect();
        let from = self.app.emulator.request_log().len();
        let run = self.sync().await;
        assert_eq!(self.writes_since(from), Vec::<String>::new(), "{run:#}");
        let after: Vec<(uuid::Uuid, i64)> = self
            .local_rows()
            .await
            .iter()
            .map(|r| (r.id, r.version))
            .collect();
        assert_eq!(versions, after, "no local change: {run:#}");
    }

    /// The id of the only Outlook series master.
    fn only_master(&self) -> String {
        let masters = self.outlook().list_events(&self.who.mailbox_id).unwrap();
        assert_eq!(masters.len(), 1, "{masters:#?}");
        masters[0]["id"].as_str().unwrap().to_owned()
    }
}

/// A pattern in both spellings: the local API's (normalized as stored) and Graph's.
struct Pattern {
    name: &'static str,
    local: Value,
    graph: Value,
    all_day: bool,
}

fn patterns() -> Vec<Pattern> {
    vec![
        Pattern {
            name: "daily",
            local: json!({"type": "daily", "interval": 3, "first_day_of_week": "sunday"}),
            graph: json!({"type": "daily", "interval": 3}),
            all_day: false,
        },
        Pattern {
            name: "weekly",
            local: json!({"type": "weekly", "interval": 2, "days_of_week": ["monday", "thursday"], "first_day_of_week": "monday"}),
            graph: json!({"type": "weekly", "interval": 2, "daysOfWeek": ["thursday", "monday"], "firstDayOfWeek": "monday"}),
            all_day: false,
        },
        Pattern {
            name: "absolute_monthly",
            local: json!({"type": "absolute_monthly", "interval": 1, "day_of_month": 31, "first_day_of_week": "sunday"}),
            graph: json!({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31}),
            all_day: false,
        },
        Pattern {
            name: "relative_monthly",
            local: json!({"type": "relative_monthly", "interval": 1, "days_of_week": ["tuesday"], "index": "second", "first_day_of_week": "sunday"}),
            graph: json!({"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["tuesday"], "index": "second"}),
            all_day: false,
        },
        Pattern {
            name: "absolute_yearly",
            local: json!({"type": "absolute_yearly", "interval": 1, "day_of_month": 10, "month": 3, "first_day_of_week": "sunday"}),
            graph: json!({"type": "absoluteYearly", "interval": 1, "dayOfMonth": 10, "month": 3}),
            all_day: false,
        },
        Pattern {
            name: "relative_yearly",
            local: json!({"type": "relative_yearly", "interval": 1, "days_of_week": ["friday"], "index": "last", "month": 10, "first_day_of_week": "sunday"}),
            graph: json!({"type": "relativeYearly", "interval": 1, "daysOfWeek": ["friday"], "index": "last", "month": 10}),
            all_day: false,
        },
        Pattern {
            name: "weekly_all_day",
            local: json!({"type": "weekly", "interval": 1, "days_of_week": ["saturday"], "first_day_of_week": "sunday"}),
            graph: json!({"type": "weekly", "interval": 1, "daysOfWeek": ["saturday"]}),
            all_day: true,
        },
        Pattern {
            name: "absolute_monthly_all_day",
            local: json!({"type": "absolute_monthly", "interval": 2, "day_of_month": 1, "first_day_of_week": "sunday"}),
            graph: json!({"type": "absoluteMonthly", "interval": 2, "dayOfMonth": 1}),
            all_day: true,
        },
    ]
}

/// How a series ends, in both spellings, given its first day.
fn ranges(first: NaiveDate) -> Vec<(&'static str, Value, Value)> {
    let end = first + Days::new(800);
    vec![
        (
            "no_end",
            json!({"type": "no_end"}),
            json!({"type": "noEnd", "startDate": first.to_string()}),
        ),
        (
            "numbered",
            json!({"type": "numbered", "number_of_occurrences": 7}),
            json!({"type": "numbered", "startDate": first.to_string(), "numberOfOccurrences": 7}),
        ),
        (
            "end_date",
            json!({"type": "end_date", "end_date": end.to_string()}),
            json!({"type": "endDate", "startDate": first.to_string(), "endDate": end.to_string()}),
        ),
    ]
}

/// The first date of a pattern from about ten months ago (so that three occurrences of a
/// yearly series fall inside the synchronized window).
fn first_day(pattern: &Value) -> NaiveDate {
    let base = (today() - chrono::Duration::days(300)).date_naive();
    let rule = Rule::parse(
        "/recurrence",
        serde_json::from_value(json!({"pattern": pattern, "range": {"type": "no_end"}})).unwrap(),
    )
    .unwrap();
    rule.dates(base, base, base + Days::new(800))[0]
}

/// The local body of a series on its first day: 09:30 to 10:30 in Berlin, or whole days.
fn local_series(title: &str, pattern: &Pattern, first: NaiveDate, range: &Value) -> Value {
    let recurrence = json!({"pattern": pattern.local, "range": range});
    if pattern.all_day {
        json!({"title": title, "is_all_day": true, "start_date": first.to_string(),
               "end_date": first.to_string(), "recurrence": recurrence})
    } else {
        json!({"title": title,
               "start": {"date_time": format!("{first}T09:30:00"), "time_zone": "Europe/Berlin"},
               "end": {"date_time": format!("{first}T10:30:00"), "time_zone": "Europe/Berlin"},
               "recurrence": recurrence})
    }
}

/// The Graph body of the same series, in Windows zone names as Outlook writes them.
fn outlook_series(title: &str, pattern: &Pattern, first: NaiveDate, range: &Value) -> Value {
    let mut range = range.clone();
    let (start, end, zone) = if pattern.all_day {
        (
            format!("{first}T00:00:00"),
            format!("{}T00:00:00", first + Days::new(1)),
            "UTC",
        )
    } else {
        (
            format!("{first}T09:30:00"),
            format!("{first}T10:30:00"),
            "W. Europe Standard Time",
        )
    };
    range["recurrenceTimeZone"] = json!(zone);
    json!({
        "subject": title,
        "isAllDay": pattern.all_day,
        "start": {"dateTime": start, "timeZone": zone},
        "end": {"dateTime": end, "timeZone": zone},
        "recurrence": {"pattern": pattern.graph, "range": range},
    })
}

// ---- the local API --------------------------------------------------------------------------

#[tokio::test]
async fn a_series_is_one_event_whose_occurrences_are_listed_modified_and_cancelled() {
    let f = Fixture::new("bidirectional", "local_wins").await;
    let created = f
        .create(json!({
            "title": "Stand-up",
            "start": {"date_time": "2027-03-22T09:00:00", "time_zone": "Europe/Berlin"},
            "end": {"date_time": "2027-03-22T09:15:00", "time_zone": "Europe/Berlin"},
            "recurrence": {
                "pattern": {"type": "weekly", "days_of_week": ["wednesday", "monday", "monday"]},
                "range": {"type": "numbered", "number_of_occurrences": 4}
            }
        }))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.body["recurrence"],
        json!({
            "pattern": {"type": "weekly", "interval": 1, "days_of_week": ["monday", "wednesday"], "first_day_of_week": "sunday"},
            "range": {"type": "numbered", "number_of_occurrences": 4}
        }),
        "the rule is stored normalized"
    );
    assert_eq!(created.body["exceptions"], json!([]));
    let from = "2027-03-01T00:00:00Z".parse().unwrap();
    let to = "2027-05-01T00:00:00Z".parse().unwrap();
    let starts =
        |items: &[Value]| -> Vec<String> { items.iter().map(|i| local_shown(i).1).collect() };
    let items = f.expanded(from, to).await;
    // Berlin moves to summer time on 28 March 2027: the same 09:00 is an hour earlier in UTC.
    assert_eq!(
        starts(&items),
        [
            "2027-03-22T08:00Z",
            "2027-03-24T08:00Z",
            "2027-03-29T07:00Z",
            "2027-03-31T07:00Z"
        ]
    );
    assert!(items.iter().all(|i| i["id"] == id.as_str()
        && i["recurrence"].is_null()
        && i["occurrence"]["modified"] == false));
    let second = items[1]["occurrence"]["original_start"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(second, "2027-03-24T08:00:00Z");

    let etag = f.get(&id).await.etag();
    let modified = f
        .app
        .client
        .patch(format!("{}{}", f.app.address, f.occurrence(&id, &second)))
        .bearer_auth(&f.who.user.token)
        .header("If-Match", &etag)
        .json(&json!({"title": "Stand-up (moved)",
                      "start": {"date_time": "2027-03-24T11:00:00", "time_zone": "Europe/Berlin"},
                      "end": {"date_time": "2027-03-24T11:15:00", "time_zone": "Europe/Berlin"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(modified.status(), StatusCode::OK);
    assert_ne!(
        modified.headers()["etag"].to_str().unwrap(),
        etag,
        "the series' version moves"
    );
    let stale = f
        .app
        .client
        .delete(format!(
            "{}{}",
            f.app.address,
            f.occurrence(&id, "2027-03-29T07:00:00Z")
        ))
        .bearer_auth(&f.who.user.token)
        .header("If-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    let cancelled = f.cancel_occurrence(&id, "2027-03-29T07:00:00Z").await;
    assert_eq!(cancelled.status, StatusCode::OK, "{cancelled:?}");
    assert_eq!(
        cancelled.body["exceptions"],
        json!([
            {"original_start": "2027-03-24T08:00:00Z", "cancelled": false, "changes": {
                "title": "Stand-up (moved)",
                "start": {"date_time": "2027-03-24T11:00:00", "time_zone": "Europe/Berlin"},
                "end": {"date_time": "2027-03-24T11:15:00", "time_zone": "Europe/Berlin"}}},
            {"original_start": "2027-03-29T07:00:00Z", "cancelled": true, "changes": {}}
        ])
    );
    let items = f.expanded(from, to).await;
    assert_eq!(
        items.iter().map(local_shown).collect::<Vec<_>>(),
        [
            (
                "Stand-up".into(),
                "2027-03-22T08:00Z".into(),
                "2027-03-22T08:15Z".into()
            ),
            (
                "Stand-up (moved)".into(),
                "2027-03-24T10:00Z".into(),
                "2027-03-24T10:15Z".into()
            ),
            (
                "Stand-up".into(),
                "2027-03-31T07:00Z".into(),
                "2027-03-31T07:15Z".into()
            ),
        ]
    );
    assert_eq!(items[1]["occurrence"]["modified"], true);

    // A patch back to the series' values makes the occurrence plain again.
    let back = f
        .patch_occurrence(
            &id,
            &second,
            json!({"title": "Stand-up",
            "start": {"date_time": "2027-03-24T09:00:00", "time_zone": "Europe/Berlin"},
            "end": {"date_time": "2027-03-24T09:15:00", "time_zone": "Europe/Berlin"}}),
        )
        .await;
    assert_eq!(back.status, StatusCode::OK, "{back:?}");
    assert_eq!(back.body["exceptions"].as_array().unwrap().len(), 1);

    // Not listed without expansion outside its span; listed over its span.
    let listed = f
        .app
        .get(
            &format!(
                "{}?from=2027-06-01T00:00:00Z&to=2027-07-01T00:00:00Z",
                f.events()
            ),
            &f.who.user.token,
        )
        .await;
    assert_eq!(listed.body["items"], json!([]));
    let listed = f
        .app
        .get(
            &format!(
                "{}?from=2027-03-30T00:00:00Z&to=2027-03-31T00:00:00Z",
                f.events()
            ),
            &f.who.user.token,
        )
        .await;
    assert_eq!(
        listed.body["items"][0]["id"],
        id.as_str(),
        "the series spans the range"
    );
}

#[tokio::test]
async fn moving_a_series_carries_its_exceptions_to_the_occurrences_of_the_same_day() {
    let f = Fixture::new("bidirectional", "local_wins").await;
    let id = f
        .created(json!({
            "title": "Review",
            "start": {"date_time": "2027-01-04T14:00:00", "time_zone": "America/New_York"},
            "end": {"date_time": "2027-01-04T15:00:00", "time_zone": "America/New_York"},
            "recurrence": {"pattern": {"type": "weekly", "days_of_week": ["monday", "tuesday"]},
                           "range": {"type": "no_end"}}
        }))
        .await;
    assert_eq!(
        f.cancel_occurrence(&id, "2027-01-05T19:00:00Z")
            .await
            .status,
        StatusCode::OK
    );
    let modified = f
        .patch_occurrence(&id, "2027-01-11T19:00:00Z", json!({"location": "Room 2"}))
        .await;
    assert_eq!(modified.status, StatusCode::OK, "{modified:?}");
    let moved = f
        .patch(&id, json!({
            "start": {"date_time": "2027-01-04T16:00:00", "time_zone": "America/New_York"},
            "end": {"date_time": "2027-01-04T17:00:00", "time_zone": "America/New_York"},
            "recurrence": {"pattern": {"type": "weekly", "days_of_week": ["monday"]}, "range": {"type": "no_end"}}
        }))
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{moved:?}");
    assert_eq!(
        moved.body["exceptions"],
        json!([{"original_start": "2027-01-11T21:00:00Z", "cancelled": false, "changes": {"location": "Room 2"}}]),
        "the Monday exception follows the series to 16:00; the Tuesday one has no occurrence left"
    );
}

#[tokio::test]
async fn invalid_series_and_occurrences_are_refused_with_problems() {
    let f = Fixture::new("bidirectional", "local_wins").await;
    let weekly = |recurrence: Value| {
        json!({"title": "x",
               "start": {"date_time": "2027-03-22T09:00:00", "time_zone": "UTC"},
               "end": {"date_time": "2027-03-22T10:00:00", "time_zone": "UTC"},
               "recurrence": recurrence})
    };
    let cases = [
        (
            json!({"pattern": {"type": "weekly"}, "range": {"type": "no_end"}}),
            "/recurrence/pattern/days_of_week",
        ),
        (
            json!({"pattern": {"type": "daily", "interval": 1000}, "range": {"type": "no_end"}}),
            "/recurrence/pattern/interval",
        ),
        (
            json!({"pattern": {"type": "absolute_monthly"}, "range": {"type": "no_end"}}),
            "/recurrence/pattern/day_of_month",
        ),
        (
            json!({"pattern": {"type": "relative_yearly", "days_of_week": ["monday"]}, "range": {"type": "no_end"}}),
            "/recurrence/pattern/month",
        ),
        (
            json!({"pattern": {"type": "daily"}, "range": {"type": "end_date", "end_date": "2027-13-01"}}),
            "/recurrence/range/end_date",
        ),
        (
            json!({"pattern": {"type": "daily"}, "range": {"type": "numbered"}}),
            "/recurrence/range/number_of_occurrences",
        ),
        (
            json!({"pattern": {"type": "weekly", "days_of_week": ["tuesday"]}, "range": {"type": "no_end"}}),
            "/recurrence",
        ),
    ];
    for (recurrence, pointer) in cases {
        let response = f.create(weekly(recurrence.clone())).await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{recurrence}"
        );
        assert_eq!(response.code(), "validation_failed");
        assert!(
            response.body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["pointer"] == pointer),
            "{recurrence}: {}",
            response.body
        );
    }
    let unknown = f
        .create(weekly(
            json!({"pattern": {"type": "hourly"}, "range": {"type": "no_end"}}),
        ))
        .await;
    assert_eq!(unknown.status.as_u16() / 100, 4, "{unknown:?}");
    unknown.code();

    let id = f
        .created(weekly(
            json!({"pattern": {"type": "weekly", "days_of_week": ["monday"]},
                               "range": {"type": "numbered", "number_of_occurrences": 2}}),
        ))
        .await;
    for key in [
        "2027-03-23T09:00:00Z",
        "2027-04-05T09:00:00Z",
        "not-a-date",
        "2027-03-22",
    ] {
        let response = f.patch_occurrence(&id, key, json!({"title": "y"})).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{key}");
        assert_eq!(response.code(), "not_found");
    }
    let series_member = f
        .patch_occurrence(
            &id,
            "2027-03-22T09:00:00Z",
            json!({"is_all_day": true, "recurrence": null}),
        )
        .await;
    assert_eq!(series_member.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(series_member.body["errors"].as_array().unwrap().len(), 2);
    assert_eq!(
        f.cancel_occurrence(&id, "2027-03-22T09:00:00Z")
            .await
            .status,
        StatusCode::OK
    );
    let again = f.cancel_occurrence(&id, "2027-03-22T09:00:00Z").await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "already cancelled");
    let single = f
        .created(json!({"title": "single",
                        "start": {"date_time": "2027-03-22T09:00:00", "time_zone": "UTC"},
                        "end": {"date_time": "2027-03-22T10:00:00", "time_zone": "UTC"}}))
        .await;
    assert_eq!(
        f.cancel_occurrence(&single, "2027-03-22T09:00:00Z")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    for query in [
        "expand=true",
        "expand=true&from=2027-01-01T00:00:00Z",
        "expand=true&from=2020-01-01T00:00:00Z&to=2035-01-01T00:00:00Z",
    ] {
        let response = f
            .app
            .get(&format!("{}?{query}", f.events()), &f.who.user.token)
            .await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(response.code(), "invalid_query");
    }
}

// ---- synchronization ------------------------------------------------------------------------

#[tokio::test]
async fn local_series_of_every_pattern_and_range_reach_outlook_and_come_back_unchanged() {
    let f = Fixture::new("bidirectional", "local_wins").await;
    let mut created = Vec::new();
    for pattern in patterns() {
        let first = first_day(&pattern.local);
        for (range_name, range, _) in ranges(first) {
            let title = format!("{}-{range_name}", pattern.name);
            let id = f
                .created(local_series(&title, &pattern, first, &range))
                .await;
            let occurrences = f.occurrences_of(&id).await;
            assert!(occurrences.len() >= 3, "{title}: {occurrences:#?}");
            let second = occurrences[1]["occurrence"]["original_start"]
                .as_str()
                .unwrap()
                .to_owned();
            let third = occurrences[2]["occurrence"]["original_start"]
                .as_str()
                .unwrap()
                .to_owned();
            let change = if pattern.all_day {
                json!({"title": format!("{title} (changed)")})
            } else {
                let moved = |wall: &Value| {
                    let t = NaiveDateTime::parse_from_str(
                        wall["date_time"].as_str().unwrap(),
                        "%Y-%m-%dT%H:%M:%S%.f",
                    )
                    .unwrap()
                        + chrono::Duration::hours(2);
                    json!({"date_time": t.format("%Y-%m-%dT%H:%M:%S").to_string(), "time_zone": wall["time_zone"]})
                };
                json!({"title": format!("{title} (moved)"),
                       "start": moved(&occurrences[1]["start"]), "end": moved(&occurrences[1]["end"])})
            };
            let response = f.patch_occurrence(&id, &second, change).await;
            assert_eq!(response.status, StatusCode::OK, "{title}: {response:?}");
            let cancelled = f.cancel_occurrence(&id, &third).await;
            assert_eq!(cancelled.status, StatusCode::OK, "{title}");
            let exceptions = cancelled.body["exceptions"].clone();
            assert_eq!(exceptions.as_array().unwrap().len(), 2, "{title}");
            created.push((title, pattern.graph.clone(), range_name, id, exceptions));
        }
    }
    f.sync().await;
    f.assert_in_sync().await;
    for (title, _, _, id, exceptions) in &created {
        assert_eq!(
            f.get(id).await.body["exceptions"],
            *exceptions,
            "{title}: the exceptions made here are kept"
        );
    }
    let masters = f.outlook().list_events(&f.who.mailbox_id).unwrap();
    for (title, graph_pattern, range_name, _, _) in &created {
        let master = masters
            .iter()
            .find(|m| m["subject"] == title.as_str())
            .unwrap_or_else(|| panic!("{title}: no series master"));
        assert_eq!(master["type"], "seriesMaster", "{title}");
        assert_eq!(
            master["recurrence"]["pattern"]["type"], graph_pattern["type"],
            "{title}"
        );
        let expected_range = match *range_name {
            "no_end" => "noEnd",
            "numbered" => "numbered",
            _ => "endDate",
        };
        assert_eq!(
            master["recurrence"]["range"]["type"], expected_range,
            "{title}"
        );
        let instances = f.instances_of(master["id"].as_str().unwrap());
        assert_eq!(
            instances
                .iter()
                .filter(|i| i["type"] == "exception")
                .count(),
            1,
            "{title}: one modified occurrence"
        );
    }
    f.assert_quiet_second_run().await;
}

#[tokio::test]
async fn outlook_series_of_every_pattern_and_range_arrive_as_one_local_series_each() {
    let f = Fixture::new("bidirectional", "local_wins").await;
    let mut expected = Vec::new();
    for pattern in patterns() {
        let first = first_day(&pattern.local);
        for (range_name, local_range, graph_range) in ranges(first) {
            let title = format!("{}-{range_name}", pattern.name);
            let master = f
                .outlook()
                .create_event(
                    &f.who.mailbox_id,
                    outlook_series(&title, &pattern, first, &graph_range),
                )
                .unwrap();
            let instances = f.instances_of(master["id"].as_str().unwrap());
            assert!(instances.len() >= 3, "{title}");
            f.outlook()
                .update_event(
                    &f.who.mailbox_id,
                    instances[1]["id"].as_str().unwrap(),
                    json!({"subject": format!("{title} (changed)"), "location": {"displayName": "Room 7"}}),
                )
                .unwrap();
            f.outlook()
                .delete_event(&f.who.mailbox_id, instances[2]["id"].as_str().unwrap())
                .unwrap();
            expected.push((
                title,
                json!({"pattern": pattern.local, "range": local_range}),
            ));
        }
    }
    let run = f.sync().await;
    f.assert_in_sync().await;
    let rows = f.local_rows().await;
    for (title, rule) in &expected {
        let row = rows
            .iter()
            .find(|r| r.title == *title)
            .unwrap_or_else(|| panic!("{title}: not created here: {run:#}"));
        let view = f.get(&row.id.to_string()).await.body;
        assert_eq!(view["recurrence"], *rule, "{title}");
        let exceptions = view["exceptions"].as_array().unwrap();
        assert_eq!(exceptions.len(), 2, "{title}: {exceptions:#?}");
        assert_eq!(
            exceptions.iter().filter(|e| e["cancelled"] == true).count(),
            1,
            "{title}"
        );
        let modified = exceptions.iter().find(|e| e["cancelled"] == false).unwrap();
        assert_eq!(
            modified["changes"],
            json!({"title": format!("{title} (changed)"), "location": "Room 7"}),
            "{title}"
        );
        if !row.is_all_day {
            assert_eq!(row.time_zone.as_deref(), Some("Europe/Berlin"), "{title}");
        }
    }
    f.assert_quiet_second_run().await;

    // And back: each series edited here (its title, one more modified occurrence, one more
    // cancelled occurrence) changes the same master in Outlook, whose rule stays as it is.
    let masters = f.outlook().list_events(&f.who.mailbox_id).unwrap();
    let mut occurrences = f.occurrences_by_series().await;
    let mut edited = Vec::new();
    for (title, _) in &expected {
        let row = rows.iter().find(|r| r.title == *title).unwrap();
        let id = row.id.to_string();
        let master = masters
            .iter()
            .find(|m| m["subject"] == title.as_str())
            .unwrap();
        let listed = occurrences.remove(&id).unwrap();
        // The first is plain (Outlook changed the second and cancelled the third); the last
        // is another (for a yearly series, the one Outlook changed).
        assert!(listed.len() >= 2, "{title}: {listed:#?}");
        assert_eq!(listed[0]["occurrence"]["modified"], false, "{title}");
        let key = |o: &Value| {
            o["occurrence"]["original_start"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let last = listed.last().unwrap();
        let (modified, cancelled) = (key(&listed[0]), key(last));
        // Outlook's own modified occurrence stays, unless it is the one cancelled here.
        let exceptions = if last["occurrence"]["modified"] == true {
            1
        } else {
            2
        };
        let renamed = format!("{title} renamed");
        assert_eq!(
            f.patch(&id, json!({"title": renamed})).await.status,
            StatusCode::OK,
            "{title}"
        );
        let changed = f
            .patch_occurrence(
                &id,
                &modified,
                json!({"title": format!("{title} (here)"), "location": "Room 9"}),
            )
            .await;
        assert_eq!(changed.status, StatusCode::OK, "{title}: {changed:?}");
        let gone = f.cancel_occurrence(&id, &cancelled).await;
        assert_eq!(gone.status, StatusCode::OK, "{title}: {gone:?}");
        edited.push((
            title.clone(),
            master["id"].as_str().unwrap().to_owned(),
            master["recurrence"].clone(),
            outlook_key(&modified),
            outlook_key(&cancelled),
            exceptions,
        ));
    }
    let run = f.sync().await;
    f.assert_in_sync().await;
    assert_eq!(
        f.outlook().list_events(&f.who.mailbox_id).unwrap().len(),
        expected.len(),
        "no series added or lost in Outlook: {run:#}"
    );
    assert_eq!(
        f.local_rows().await.len(),
        expected.len(),
        "none here either"
    );
    for (title, master_id, recurrence, modified, cancelled, exceptions) in &edited {
        let master = f.outlook().get_event(&f.who.mailbox_id, master_id).unwrap();
        assert_eq!(master["subject"], format!("{title} renamed"), "{title}");
        assert_eq!(
            master["recurrence"], *recurrence,
            "{title}: the rule is not rewritten"
        );
        let instances = f.instances_of(master_id);
        let exception = instances
            .iter()
            .find(|i| i["originalStart"] == modified.as_str())
            .unwrap_or_else(|| panic!("{title}: no instance at {modified}"));
        assert_eq!(exception["type"], "exception", "{title}");
        assert_eq!(exception["subject"], format!("{title} (here)"), "{title}");
        assert_eq!(exception["location"]["displayName"], "Room 9", "{title}");
        assert!(
            instances
                .iter()
                .all(|i| i["originalStart"] != cancelled.as_str()),
            "{title}: {cancelled} cancelled in Outlook"
        );
        assert_eq!(
            instances
                .iter()
                .filter(|i| i["type"] == "exception")
                .count(),
            *exceptions,
            "{title}: Outlook's modified occurrence and the one modified here"
        );
    }
    f.assert_quiet_second_run().await;
}

/// Graph's `originalStart` of an occurrence from its local key (`YYYY-MM-DD` for an all-day
/// series, whose occurrences start at midnight UTC in Graph).
fn outlook_key(local: &str) -> String {
    if local.len() == 10 {
        format!("{local}T00:00:00Z")
    } else {
        local.to_owned()
    }
}

/// The ranges of the agreement test in both spellings (Graph's, then the local API's), given a
/// series' first day: long enough that frequent patterns repeat hundreds of times.
fn long_ranges(first: NaiveDate) -> [(&'static str, Value, Value); 3] {
    let end = first + Days::new(700);
    [
        (
            "no_end",
            json!({"type": "noEnd", "startDate": first.to_string()}),
            json!({"type": "no_end"}),
        ),
        (
            "numbered",
            json!({"type": "numbered", "startDate": first.to_string(), "numberOfOccurrences": 150}),
            json!({"type": "numbered", "number_of_occurrences": 150}),
        ),
        (
            "end_date",
            json!({"type": "endDate", "startDate": first.to_string(), "endDate": end.to_string()}),
            json!({"type": "end_date", "end_date": end.to_string()}),
        ),
    ]
}

/// A Graph recurrence pattern in the local API's spelling.
fn local_pattern(graph: &Value) -> Value {
    let snake = |camel: &str| {
        camel.chars().fold(String::new(), |mut s, c| {
            if c.is_uppercase() {
                s.push('_');
                s.extend(c.to_lowercase());
            } else {
                s.push(c);
            }
            s
        })
    };
    let mut local =
        json!({"type": snake(graph["type"].as_str().unwrap()), "interval": graph["interval"]});
    for (from, to) in [
        ("daysOfWeek", "days_of_week"),
        ("dayOfMonth", "day_of_month"),
        ("index", "index"),
        ("month", "month"),
        ("firstDayOfWeek", "first_day_of_week"),
    ] {
        if !graph[from].is_null() {
            local[to] = graph[from].clone();
        }
    }
    local
}

#[tokio::test]
async fn the_local_expansion_agrees_with_outlooks_calendar_view_over_two_years() {
    // Series made in Outlook and series made here, in three zones, of every pattern type (with
    // days of the month that some months lack), with each range type, each with a modified and
    // a cancelled occurrence: after a sync, both sides show the same occurrences over the
    // synchronized window (a year back, two years ahead).
    let f = Fixture::new("bidirectional", "local_wins").await;
    let base = (today() - chrono::Duration::days(300)).date_naive();
    let zones = [
        ("W. Europe Standard Time", "Europe/Berlin", "08:30"),
        ("Eastern Standard Time", "America/New_York", "23:30"),
        ("AUS Eastern Standard Time", "Australia/Sydney", "02:30"),
    ];
    let patterns = [
        json!({"type": "daily", "interval": 2}),
        json!({"type": "weekly", "interval": 3, "daysOfWeek": ["sunday", "wednesday", "saturday"], "firstDayOfWeek": "wednesday"}),
        json!({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31}),
        json!({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 29}),
        json!({"type": "relativeMonthly", "interval": 2, "daysOfWeek": ["saturday", "sunday"], "index": "last"}),
        json!({"type": "absoluteYearly", "interval": 1, "dayOfMonth": 29, "month": 2}),
        json!({"type": "relativeYearly", "interval": 1, "daysOfWeek": ["sunday"], "index": "first", "month": 4}),
    ];
    let mut local_ids = Vec::new();
    for origin in ["outlook", "here"] {
        for (z, (windows, iana, time)) in zones.iter().enumerate() {
            for (n, pattern) in patterns.iter().enumerate() {
                let local = local_pattern(pattern);
                let rule = Rule::parse(
                    "/recurrence",
                    serde_json::from_value(json!({"pattern": local, "range": {"type": "no_end"}}))
                        .unwrap(),
                )
                .unwrap();
                // Graph's range starts on the first occurrence.
                let first = rule.dates(base, base, base + Days::new(800))[0];
                // Every pattern meets each range type in one of the zones.
                let (range_name, graph_range, local_range) =
                    long_ranges(first)[(z + n) % 3].clone();
                let title = format!("{origin} {iana} {n} {range_name}");
                if origin == "outlook" {
                    let mut range = graph_range;
                    range["recurrenceTimeZone"] = json!(windows);
                    f.outlook()
                        .create_event(
                            &f.who.mailbox_id,
                            json!({
                                "subject": title,
                                "start": {"dateTime": format!("{first}T{time}:00"), "timeZone": windows},
                                "end": {"dateTime": format!("{first}T{time}:00"), "timeZone": windows},
                                "recurrence": {"pattern": pattern, "range": range},
                            }),
                        )
                        .unwrap();
                } else {
                    let start = NaiveDateTime::parse_from_str(
                        &format!("{first}T{time}:00"),
                        "%Y-%m-%dT%H:%M:%S",
                    )
                    .unwrap();
                    let wall = |t: NaiveDateTime| json!({"date_time": t.format("%Y-%m-%dT%H:%M:%S").to_string(), "time_zone": iana});
                    local_ids.push(
                        f.created(json!({
                            "title": title,
                            "start": wall(start),
                            "end": wall(start + chrono::Duration::minutes(60)),
                            "recurrence": {"pattern": local, "range": local_range},
                        }))
                        .await,
                    );
                }
            }
        }
    }
    // One occurrence moved by two hours and retitled, another cancelled, a third of the way
    // and two thirds of the way through each series' occurrences in the compared range.
    let picks = |count: usize| (count / 3, (2 * count / 3).max(count / 3 + 1));
    let view = f.outlook_view(compare_from(), compare_to());
    let masters = f.outlook().list_events(&f.who.mailbox_id).unwrap();
    for master in &masters {
        let instances: Vec<&Value> = view
            .iter()
            .filter(|i| i["seriesMasterId"] == master["id"])
            .collect();
        let title = master["subject"].as_str().unwrap();
        assert!(instances.len() >= 2, "{title}: {instances:#?}");
        let (moved, cancelled) = picks(instances.len());
        let later = |t: &Value| {
            let at = NaiveDateTime::parse_from_str(
                &t["dateTime"].as_str().unwrap()[..19],
                "%Y-%m-%dT%H:%M:%S",
            )
            .unwrap()
                + chrono::Duration::hours(2);
            json!({"dateTime": at.format("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": "UTC"})
        };
        let instance = instances[moved];
        f.outlook()
            .update_event(
                &f.who.mailbox_id,
                instance["id"].as_str().unwrap(),
                json!({"subject": format!("{title} (moved)"),
                       "start": later(&instance["start"]), "end": later(&instance["end"])}),
            )
            .unwrap();
        f.outlook()
            .delete_event(
                &f.who.mailbox_id,
                instances[cancelled]["id"].as_str().unwrap(),
            )
            .unwrap();
    }
    let mut occurrences = f.occurrences_by_series().await;
    for id in &local_ids {
        let listed = occurrences.remove(id).unwrap();
        let title = listed[0]["title"].as_str().unwrap().to_owned();
        assert!(listed.len() >= 2, "{title}: {listed:#?}");
        let (moved, cancelled) = picks(listed.len());
        let later = |wall: &Value| {
            let t = NaiveDateTime::parse_from_str(
                wall["date_time"].as_str().unwrap(),
                "%Y-%m-%dT%H:%M:%S%.f",
            )
            .unwrap()
                + chrono::Duration::hours(2);
            json!({"date_time": t.format("%Y-%m-%dT%H:%M:%S").to_string(), "time_zone": wall["time_zone"]})
        };
        let key = |o: &Value| {
            o["occurrence"]["original_start"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let occurrence = &listed[moved];
        let response = f
            .patch_occurrence(
                id,
                &key(occurrence),
                json!({"title": format!("{title} (moved)"),
                       "start": later(&occurrence["start"]), "end": later(&occurrence["end"])}),
            )
            .await;
        assert_eq!(response.status, StatusCode::OK, "{title}: {response:?}");
        let response = f.cancel_occurrence(id, &key(&listed[cancelled])).await;
        assert_eq!(response.status, StatusCode::OK, "{title}: {response:?}");
    }
    f.sync().await;

    let (from, to) = (compare_from(), compare_to());
    let mut local: Vec<Shown> = f
        .expanded_in_pages_of(500, from, to)
        .await
        .iter()
        .map(local_shown)
        .collect();
    let mut outlook: Vec<Shown> = f.outlook_view(from, to).iter().map(outlook_shown).collect();
    local.sort();
    outlook.sort();
    for origin in ["outlook", "here"] {
        let count = outlook.iter().filter(|o| o.0.starts_with(origin)).count();
        assert!(count > 1000, "{origin}: {count} occurrences");
    }
    for (n, pattern) in patterns.iter().enumerate() {
        let count = outlook
            .iter()
            .filter(|o| o.0.contains(&format!(" {n} ")))
            .count();
        assert!(
            count >= 2 * zones.len(),
            "{pattern}: {count} occurrences, at least one per series"
        );
    }
    assert_eq!(
        outlook.iter().filter(|o| o.0.ends_with("(moved)")).count(),
        2 * zones.len() * patterns.len(),
        "one moved occurrence per series"
    );
    assert_eq!(local.len(), outlook.len());
    for (l, o) in local.iter().zip(&outlook) {
        assert_eq!(l, o);
    }
}

/// A synchronized weekly series (twelve Mondays from next month, 10:00 in Berlin), its local id
/// and Outlook id, and the original starts of its occurrences.
async fn synced_series(f: &Fixture) -> (String, String, Vec<String>) {
    let mut first = today().date_naive() + Days::new(30);
    while first.format("%a").to_string() != "Mon" {
        first = first + Days::new(1);
    }
    let id = f
        .created(json!({
            "title": "Series",
            "start": {"date_time": format!("{first}T10:00:00"), "time_zone": "Europe/Berlin"},
            "end": {"date_time": format!("{first}T11:00:00"), "time_zone": "Europe/Berlin"},
            "recurrence": {"pattern": {"type": "weekly", "days_of_week": ["monday"]},
                           "range": {"type": "numbered", "number_of_occurrences": 12}}
        }))
        .await;
    f.sync().await;
    let keys = f
        .occurrences_of(&id)
        .await
        .iter()
        .map(|o| {
            o["occurrence"]["original_start"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    (id, f.only_master(), keys)
}

/// What Outlook changes in a series that is edited on both sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OutlookEdit {
    /// The series' title, and the location of its fourth occurrence.
    TitleAndOccurrence,
    /// The location of the fourth occurrence only: the master itself is not changed.
    OccurrenceOnly,
    /// The sixth occurrence cancelled, nothing else.
    Cancellation,
}

impl OutlookEdit {
    /// Makes the change in Outlook.
    fn apply(self, f: &Fixture, master: &str) {
        let instances = f.instances_of(master);
        let outlook = f.outlook();
        if self == Self::TitleAndOccurrence {
            outlook
                .update_event(
                    &f.who.mailbox_id,
                    master,
                    json!({"subject": "Microsoft title"}),
                )
                .unwrap();
        }
        match self {
            Self::TitleAndOccurrence | Self::OccurrenceOnly => {
                outlook
                    .update_event(
                        &f.who.mailbox_id,
                        instances[3]["id"].as_str().unwrap(),
                        json!({"location": {"displayName": "Outlook room"}}),
                    )
                    .unwrap();
            }
            Self::Cancellation => outlook
                .delete_event(&f.who.mailbox_id, instances[5]["id"].as_str().unwrap())
                .unwrap(),
        }
    }

    /// The series' exceptions when Microsoft's version wins.
    fn exceptions(self, keys: &[String]) -> Vec<Value> {
        match self {
            Self::TitleAndOccurrence | Self::OccurrenceOnly => vec![
                json!({"original_start": keys[3], "cancelled": false, "changes": {"location": "Outlook room"}}),
            ],
            Self::Cancellation => {
                vec![json!({"original_start": keys[5], "cancelled": true, "changes": {}})]
            }
        }
    }
}

/// The local edit of a series edited on both sides: retitled, its second occurrence cancelled.
async fn edit_series_here(f: &Fixture, id: &str, keys: &[String]) {
    assert_eq!(
        f.patch(id, json!({"title": "Local title"})).await.status,
        StatusCode::OK
    );
    assert_eq!(
        f.cancel_occurrence(id, &keys[1]).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn series_edited_on_both_sides_follow_each_conflict_strategy() {
    use OutlookEdit::{Cancellation, OccurrenceOnly, TitleAndOccurrence};
    // Here: retitled and one occurrence cancelled. In Outlook, before or after: retitled and
    // another occurrence modified, or only one occurrence modified or cancelled (the master's
    // own `lastModifiedDateTime` does not move for a modified occurrence). Both changed the
    // exceptions; a title changed on one side only merges. A parked conflict is resolved
    // through the API, then the next run makes both sides equal.
    let cases = [
        // (strategy, Outlook's edit, Outlook edits last, resolution, title, exceptions from)
        (
            "local_wins",
            TitleAndOccurrence,
            true,
            None,
            "Local title",
            "local",
        ),
        (
            "microsoft_wins",
            TitleAndOccurrence,
            true,
            None,
            "Microsoft title",
            "microsoft",
        ),
        (
            "most_recent_wins",
            TitleAndOccurrence,
            true,
            None,
            "Microsoft title",
            "microsoft",
        ),
        (
            "most_recent_wins",
            TitleAndOccurrence,
            false,
            None,
            "Local title",
            "local",
        ),
        (
            "most_recent_wins",
            OccurrenceOnly,
            true,
            None,
            "Local title",
            "microsoft",
        ),
        (
            "most_recent_wins",
            OccurrenceOnly,
            false,
            None,
            "Local title",
            "local",
        ),
        (
            "most_recent_wins",
            Cancellation,
            true,
            None,
            "Local title",
            "microsoft",
        ),
        (
            "manual",
            TitleAndOccurrence,
            true,
            Some("local"),
            "Local title",
            "local",
        ),
        (
            "manual",
            TitleAndOccurrence,
            true,
            Some("microsoft"),
            "Microsoft title",
            "microsoft",
        ),
    ];
    for (strategy, edit, outlook_last, resolution, title, exceptions_from) in cases {
        let case = format!("{strategy}, {edit:?} in Outlook, Outlook last: {outlook_last}");
        let f = Fixture::new("bidirectional", strategy).await;
        let (id, master, keys) = synced_series(&f).await;
        let recurrence = f.get(&id).await.body["recurrence"].clone();
        let outlook_recurrence =
            f.outlook().get_event(&f.who.mailbox_id, &master).unwrap()["recurrence"].clone();
        let pause = std::time::Duration::from_millis(1100);
        if outlook_last {
            edit_series_here(&f, &id, &keys).await;
            tokio::time::sleep(pause).await;
            edit.apply(&f, &master);
        } else {
            edit.apply(&f, &master);
            tokio::time::sleep(pause).await;
            edit_series_here(&f, &id, &keys).await;
        }
        let local_exceptions =
            vec![json!({"original_start": keys[1], "cancelled": true, "changes": {}})];
        let run = f.sync().await;
        assert!(
            run["counts"]["conflicts"].as_u64().unwrap() >= 1,
            "{case}: {run:#}"
        );
        if let Some(resolution) = resolution {
            let view = f.get(&id).await.body;
            assert_eq!(view["title"], "Local title", "{case}: left alone here");
            assert_eq!(view["exceptions"], json!(local_exceptions), "{case}");
            let masters = f.outlook().list_events(&f.who.mailbox_id).unwrap();
            assert_eq!(
                masters[0]["subject"], "Microsoft title",
                "{case}: left alone there"
            );
            let path = format!("/api/v1/users/{}/microsoft/conflicts", f.who.user.id);
            let listed = f.app.get(&path, &f.who.user.token).await;
            let parked = listed.body["items"].as_array().unwrap();
            assert_eq!(parked.len(), 1, "{case}: {listed:?}");
            assert_eq!(parked[0]["local_id"], id.as_str());
            assert_eq!(
                parked[0]["remote_id"].as_str(),
                graph_emulator::immutable_event_id(&master).as_deref(),
                "the service keeps Graph's immutable id"
            );
            // The conflict shows the sync's fields, which leave out members at their default.
            let shown = |exceptions: &Value| {
                let mut exceptions = exceptions.clone();
                for e in exceptions.as_array_mut().unwrap() {
                    let e = e.as_object_mut().unwrap();
                    e.entry("changes").or_insert(json!({}));
                    e.entry("cancelled").or_insert(json!(false));
                }
                exceptions
            };
            assert_eq!(parked[0]["local"]["title"], "Local title", "{case}");
            assert_eq!(
                shown(&parked[0]["local"]["exceptions"]),
                json!(local_exceptions),
                "{case}"
            );
            assert_eq!(parked[0]["microsoft"]["title"], "Microsoft title", "{case}");
            assert_eq!(
                shown(&parked[0]["microsoft"]["exceptions"]),
                json!(edit.exceptions(&keys)),
                "{case}"
            );
            assert_eq!(parked[0]["base"]["exceptions"], json!([]), "{case}");
            let resolve = format!("{path}/{}/resolve", parked[0]["id"].as_str().unwrap());
            let resolved = f
                .app
                .post(
                    &resolve,
                    &f.who.user.token,
                    json!({"resolution": resolution}),
                )
                .await;
            assert_eq!(resolved.status, StatusCode::OK, "{case}: {resolved:?}");
            f.sync().await;
            let listed = f.app.get(&path, &f.who.user.token).await;
            assert_eq!(listed.body["items"], json!([]), "{case}");
        }
        let view = f.get(&id).await.body;
        assert_eq!(view["title"], title, "{case}");
        assert_eq!(view["recurrence"], recurrence, "{case}: the rule stays");
        let expected = match exceptions_from {
            "local" => local_exceptions.clone(),
            _ => edit.exceptions(&keys),
        };
        assert_eq!(view["exceptions"], json!(expected), "{case}");
        // Outlook holds the same: one series, its title and rule, the same exceptions.
        let now = f.outlook().get_event(&f.who.mailbox_id, &master).unwrap();
        assert_eq!(f.only_master(), master, "{case}");
        assert_eq!(now["subject"], title, "{case}");
        assert_eq!(now["recurrence"], outlook_recurrence, "{case}");
        let instances = f.instances_of(&master);
        let starts: Vec<&str> = instances
            .iter()
            .map(|i| i["originalStart"].as_str().unwrap())
            .collect();
        for exception in &expected {
            let key = exception["original_start"].as_str().unwrap();
            if exception["cancelled"] == true {
                assert!(!starts.contains(&key), "{case}: {key} cancelled there");
            }
        }
        let fourth = instances
            .iter()
            .find(|i| i["originalStart"] == keys[3].as_str())
            .unwrap();
        let room = if expected[0]["changes"]["location"] == "Outlook room" {
            "Outlook room"
        } else {
            ""
        };
        assert_eq!(fourth["location"]["displayName"], room, "{case}");
        f.assert_in_sync().await;
        f.assert_quiet_second_run().await;
    }
}

#[tokio::test]
async fn series_edited_on_one_side_merge_with_the_other_sides_occurrence_changes() {
    let f = Fixture::new("bidirectional", "local_wins").await;
    let (id, master, keys) = synced_series(&f).await;
    // Here the title, there one occurrence: different fields, both kept.
    assert_eq!(
        f.patch(&id, json!({"title": "Renamed here"})).await.status,
        StatusCode::OK
    );
    let instances = f.instances_of(&master);
    f.outlook()
        .delete_event(&f.who.mailbox_id, instances[5]["id"].as_str().unwrap())
        .unwrap();
    let run = f.sync().await;
    assert_eq!(run["counts"]["conflicts"], 0, "{run:#}");
    let view = f.get(&id).await.body;
    assert_eq!(view["title"], "Renamed here");
    assert_eq!(
        view["exceptions"],
        json!([{"original_start": keys[5], "cancelled": true, "changes": {}}])
    );
    f.assert_in_sync().await;
    f.assert_quiet_second_run().await;
}

#[tokio::test]
async fn pattern_changes_shifts_and_cancellations_on_either_side_leave_no_duplicate_or_orphan() {
    let f = Fixture::new("bidirectional", "most_recent_wins").await;
    let (id, master, keys) = synced_series(&f).await;

    // Here: one occurrence modified, another cancelled.
    assert_eq!(
        f.cancel_occurrence(&id, &keys[2]).await.status,
        StatusCode::OK
    );
    let modified = f
        .patch_occurrence(&id, &keys[4], json!({"title": "Special"}))
        .await;
    assert_eq!(modified.status, StatusCode::OK, "{modified:?}");
    f.sync().await;
    f.assert_in_sync().await;
    assert_eq!(
        f.get(&id).await.body["exceptions"],
        modified.body["exceptions"]
    );
    assert_eq!(
        f.instances_of(&master).len(),
        11,
        "one occurrence cancelled in Outlook"
    );
    assert_eq!(f.only_master(), master);

    // Here: shifted by two hours (exceptions follow their days).
    let series = f.get(&id).await.body;
    let shift = |wall: &Value| {
        let t = NaiveDateTime::parse_from_str(
            wall["date_time"].as_str().unwrap(),
            "%Y-%m-%dT%H:%M:%S%.f",
        )
        .unwrap()
            + chrono::Duration::hours(2);
        json!({"date_time": t.format("%Y-%m-%dT%H:%M:%S").to_string(), "time_zone": "Europe/Berlin"})
    };
    let shifted = f
        .patch(
            &id,
            json!({"start": shift(&series["start"]), "end": shift(&series["end"])}),
        )
        .await;
    assert_eq!(shifted.status, StatusCode::OK, "{shifted:?}");
    assert_eq!(shifted.body["exceptions"].as_array().unwrap().len(), 2);
    f.sync().await;
    f.assert_in_sync().await;
    assert_eq!(f.only_master(), master);

    // Here: a new pattern (Mondays and Thursdays).
    let repatterned = f
        .patch(&id, json!({"recurrence": {"pattern": {"type": "weekly", "days_of_week": ["monday", "thursday"]},
                                          "range": {"type": "numbered", "number_of_occurrences": 20}}}))
        .await;
    assert_eq!(repatterned.status, StatusCode::OK, "{repatterned:?}");
    f.sync().await;
    f.assert_in_sync().await;
    assert_eq!(f.only_master(), master);
    f.assert_quiet_second_run().await;

    // There: an occurrence cancelled, then the series shifted by an hour.
    let instances = f.instances_of(&master);
    f.outlook()
        .delete_event(&f.who.mailbox_id, instances[7]["id"].as_str().unwrap())
        .unwrap();
    f.sync().await;
    f.assert_in_sync().await;
    let current = f.outlook().get_event(&f.who.mailbox_id, &master).unwrap();
    let later = |t: &Value| {
        let at = NaiveDateTime::parse_from_str(
            &t["dateTime"].as_str().unwrap()[..19],
            "%Y-%m-%dT%H:%M:%S",
        )
        .unwrap()
            + chrono::Duration::hours(1);
        json!({"dateTime": at.format("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": "UTC"})
    };
    f.outlook()
        .update_event(
            &f.who.mailbox_id,
            &master,
            json!({"start": later(&current["start"]), "end": later(&current["end"])}),
        )
        .unwrap();
    f.sync().await;
    f.assert_in_sync().await;

    // There: a new pattern (Exchange drops the exceptions).
    let current = f.outlook().get_event(&f.who.mailbox_id, &master).unwrap();
    let mut recurrence = current["recurrence"].clone();
    recurrence["pattern"]["daysOfWeek"] = json!(["monday", "wednesday", "friday"]);
    f.outlook()
        .update_event(
            &f.who.mailbox_id,
            &master,
            json!({"recurrence": recurrence}),
        )
        .unwrap();
    f.sync().await;
    f.assert_in_sync().await;
    let view = f.get(&id).await.body;
    assert_eq!(
        view["recurrence"]["pattern"]["days_of_week"],
        json!(["monday", "wednesday", "friday"])
    );
    assert_eq!(view["exceptions"], json!([]));
    assert_eq!(f.local_rows().await.len(), 1, "still one local series");
    f.assert_quiet_second_run().await;

    // There: the whole series deleted.
    f.outlook()
        .delete_event(&f.who.mailbox_id, &master)
        .unwrap();
    f.sync().await;
    assert!(f.local_rows().await.is_empty(), "deleted here too");
    assert_eq!(f.get(&id).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_series_deleted_here_is_deleted_in_outlook_and_a_single_event_can_become_a_series() {
    let f = Fixture::new("bidirectional", "local_wins").await;
    let (id, _, _) = synced_series(&f).await;
    let deleted = f
        .app
        .request(
            Method::DELETE,
            &format!("{}/{id}", f.events()),
            Some(&f.who.user.token),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    f.sync().await;
    assert!(
        f.outlook()
            .list_events(&f.who.mailbox_id)
            .unwrap()
            .is_empty()
    );

    let single = f
        .created(json!({"title": "Once",
                        "start": {"date_time": "2027-02-01T10:00:00", "time_zone": "Europe/Berlin"},
                        "end": {"date_time": "2027-02-01T11:00:00", "time_zone": "Europe/Berlin"}}))
        .await;
    f.sync().await;
    let became = f
        .patch(&single, json!({"recurrence": {"pattern": {"type": "daily", "interval": 7},
                                              "range": {"type": "numbered", "number_of_occurrences": 5}}}))
        .await;
    assert_eq!(became.status, StatusCode::OK, "{became:?}");
    f.sync().await;
    f.assert_in_sync().await;
    assert_eq!(
        f.get(&single).await.status,
        StatusCode::OK,
        "the same event, now a series"
    );
    f.assert_quiet_second_run().await;
}

#[tokio::test]
async fn a_single_event_made_a_series_in_outlook_stays_the_same_local_event() {
    let f = Fixture::new("bidirectional", "local_wins").await;
    let id = f
        .created(json!({"title": "Once",
                        "start": {"date_time": "2027-02-01T10:00:00", "time_zone": "Europe/Berlin"},
                        "end": {"date_time": "2027-02-01T11:00:00", "time_zone": "Europe/Berlin"}}))
        .await;
    f.sync().await;
    let remote = f.outlook().list_events(&f.who.mailbox_id).unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    f.outlook()
        .update_event(
            &f.who.mailbox_id,
            &remote,
            json!({"recurrence": {
                "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
                "range": {"type": "numbered", "startDate": "2027-02-01", "numberOfOccurrences": 4, "recurrenceTimeZone": "W. Europe Standard Time"}
            }}),
        )
        .unwrap();
    f.sync().await;
    f.assert_in_sync().await;
    let rows = f.local_rows().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id.to_string(), id, "the same local event");
    assert_eq!(
        f.get(&id).await.body["recurrence"]["pattern"]["days_of_week"],
        json!(["monday"])
    );
    f.assert_quiet_second_run().await;
}

#[tokio::test]
async fn throttled_reads_and_writes_of_occurrences_are_retried() {
    let f = Fixture::new("bidirectional", "local_wins").await;
    let (id, master, keys) = synced_series(&f).await;
    // A cancellation here: its DELETE of the occurrence is throttled once.
    assert_eq!(
        f.cancel_occurrence(&id, &keys[3]).await.status,
        StatusCode::OK
    );
    f.app.emulator.inject_fault(graph_emulator::FaultSpec {
        method: Some("DELETE".into()),
        path_contains: Some("/me/events/".into()),
        count: 1,
        skip: 0,
        kind: graph_emulator::Fault::Status {
            status: 429,
            retry_after: Some(1),
        },
    });
    f.sync().await;
    f.assert_in_sync().await;
    assert_eq!(f.instances_of(&master).len(), 11);
    // A change there: the read of its instances is throttled twice.
    let instances = f.instances_of(&master);
    f.outlook()
        .update_event(
            &f.who.mailbox_id,
            instances[0]["id"].as_str().unwrap(),
            json!({"subject": "First, changed"}),
        )
        .unwrap();
    f.app.emulator.inject_fault(graph_emulator::FaultSpec {
        method: Some("GET".into()),
        path_contains: Some("/instances".into()),
        count: 2,
        skip: 0,
        kind: graph_emulator::Fault::Status {
            status: 503,
            retry_after: Some(1),
        },
    });
    f.sync().await;
    f.assert_in_sync().await;
    let exceptions = f.get(&id).await.body["exceptions"].clone();
    assert_eq!(exceptions.as_array().unwrap().len(), 2, "{exceptions:#}");
    f.assert_quiet_second_run().await;
}

#[tokio::test]
async fn one_way_directions_carry_series_one_way_only() {
    let f = Fixture::new("from_microsoft", "local_wins").await;
    let first = today().date_naive() + Days::new(40);
    let pattern = &patterns()[0];
    let local = f
        .created(local_series(
            "Here only",
            pattern,
            first,
            &json!({"type": "no_end"}),
        ))
        .await;
    f.outlook()
        .create_event(
            &f.who.mailbox_id,
            outlook_series("There", pattern, first, &json!({"type": "numbered", "startDate": first.to_string(), "numberOfOccurrences": 5})),
        )
        .unwrap();
    let run = f.sync().await;
    assert_eq!(run["counts"]["ignored"], 1, "{run:#}");
    let masters = f.outlook().list_events(&f.who.mailbox_id).unwrap();
    assert_eq!(masters.len(), 1, "nothing sent to Microsoft");
    let rows = f.local_rows().await;
    assert_eq!(rows.len(), 2);
    let there = rows.iter().find(|r| r.title == "There").unwrap();
    assert!(
        there.recurrence.is_some(),
        "the Outlook series arrived as a series"
    );
    assert_eq!(f.get(&local).await.status, StatusCode::OK);
}

#[tokio::test]
async fn to_microsoft_carries_series_to_outlook_and_takes_none_back() {
    let f = Fixture::new("to_microsoft", "local_wins").await;
    let first = today().date_naive() + Days::new(40);
    let pattern = &patterns()[0];
    let local = f
        .created(local_series(
            "Here",
            pattern,
            first,
            &json!({"type": "numbered", "number_of_occurrences": 10}),
        ))
        .await;
    let keys: Vec<String> = f
        .occurrences_of(&local)
        .await
        .iter()
        .map(|o| {
            o["occurrence"]["original_start"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        f.patch_occurrence(&local, &keys[2], json!({"title": "Here, changed"}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        f.cancel_occurrence(&local, &keys[4]).await.status,
        StatusCode::OK
    );
    f.outlook()
        .create_event(
            &f.who.mailbox_id,
            outlook_series("There", pattern, first, &json!({"type": "numbered", "startDate": first.to_string(), "numberOfOccurrences": 5})),
        )
        .unwrap();
    let run = f.sync().await;
    assert_eq!(run["counts"]["created_remotely"], 1, "{run:#}");
    assert_eq!(run["counts"]["created_locally"], 0, "{run:#}");
    let rows = f.local_rows().await;
    assert_eq!(rows.len(), 1, "the Outlook series is not pulled");
    let masters = f.outlook().list_events(&f.who.mailbox_id).unwrap();
    assert_eq!(masters.len(), 2);
    let here = masters.iter().find(|m| m["subject"] == "Here").unwrap();
    let here_id = here["id"].as_str().unwrap().to_owned();
    assert_eq!(here["type"], "seriesMaster");
    let instances = f.instances_of(&here_id);
    assert_eq!(instances.len(), 9, "one occurrence cancelled in Outlook");
    assert!(
        instances
            .iter()
            .all(|i| i["originalStart"] != keys[4].as_str())
    );
    let exception = instances
        .iter()
        .find(|i| i["originalStart"] == keys[2].as_str())
        .unwrap();
    assert_eq!(exception["type"], "exception");
    assert_eq!(exception["subject"], "Here, changed");

    // Outlook changes an occurrence of the series and the other series; here, the series is
    // renamed. Nothing comes back; what is sent overwrites Outlook's occurrence change.
    let exceptions = f.get(&local).await.body["exceptions"].clone();
    f.outlook()
        .update_event(
            &f.who.mailbox_id,
            instances[6]["id"].as_str().unwrap(),
            json!({"subject": "Changed in Outlook"}),
        )
        .unwrap();
    let there = masters.iter().find(|m| m["subject"] == "There").unwrap();
    f.outlook()
        .update_event(
            &f.who.mailbox_id,
            there["id"].as_str().unwrap(),
            json!({"subject": "There, renamed"}),
        )
        .unwrap();
    assert_eq!(
        f.patch(&local, json!({"title": "Here, renamed"}))
            .await
            .status,
        StatusCode::OK
    );
    let run = f.sync().await;
    assert_eq!(run["counts"]["updated_remotely"], 1, "{run:#}");
    assert_eq!(run["counts"]["updated_locally"], 0, "{run:#}");
    let view = f.get(&local).await.body;
    assert_eq!(view["title"], "Here, renamed");
    assert_eq!(
        view["exceptions"], exceptions,
        "Outlook's change is not taken"
    );
    assert_eq!(f.local_rows().await.len(), 1);
    let master = f.outlook().get_event(&f.who.mailbox_id, &here_id).unwrap();
    assert_eq!(master["subject"], "Here, renamed");
    let instances = f.instances_of(&here_id);
    assert_eq!(instances.len(), 9);
    assert!(
        instances
            .iter()
            .all(|i| i["subject"] != "Changed in Outlook"),
        "the local series overwrites Outlook's occurrences: {instances:#?}"
    );
    assert_eq!(
        f.outlook().list_events(&f.who.mailbox_id).unwrap().len(),
        2,
        "no duplicate in Outlook"
    );
    f.assert_quiet_second_run().await;
}

#[tokio::test]
async fn series_changed_in_outlook_are_read_a_batch_of_series_at_a_time() {
    use m365_sync::sync::engine::SERIES_PER_BATCH;
    const SERIES: usize = 24;
    let f = Fixture::new("bidirectional", "local_wins").await;
    let mut first = today().date_naive() + Days::new(30);
    while first.format("%a").to_string() != "Mon" {
        first = first + Days::new(1);
    }
    let mut masters = Vec::new();
    for n in 0..SERIES {
        let master = f
            .outlook()
            .create_event(
                &f.who.mailbox_id,
                json!({
                    "subject": format!("Series {n}"),
                    "start": {"dateTime": format!("{first}T10:00:00"), "timeZone": "W. Europe Standard Time"},
                    "end": {"dateTime": format!("{first}T11:00:00"), "timeZone": "W. Europe Standard Time"},
                    "recurrence": {
                        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
                        "range": {"type": "numbered", "startDate": first.to_string(), "numberOfOccurrences": 10,
                                  "recurrenceTimeZone": "W. Europe Standard Time"}
                    },
                }),
            )
            .unwrap();
        masters.push(master["id"].as_str().unwrap().to_owned());
    }
    // Masters and instances are read only through `$batch`, each batch with the masters and
    // instances of as many series as one holds; every read asks for UTC (see `sync`).
    let assert_read_in_batches = |from: usize, context: &str| {
        let log = f.app.emulator.request_log()[from..].to_vec();
        let alone: Vec<String> = log
            .iter()
            .filter(|r| r.method == "GET" && !r.in_batch && r.path.starts_with("/v1.0/me/events"))
            .map(|r| r.path.clone())
            .collect();
        assert_eq!(alone, Vec::<String>::new(), "{context}: read alone");
        let batches: Vec<&graph_emulator::LoggedRequest> = log
            .iter()
            .filter(|r| r.method == "POST" && r.path == "/v1.0/$batch")
            .collect();
        let mut used = std::collections::BTreeSet::new();
        for kind in ["master", "instances"] {
            let reads: Vec<&graph_emulator::LoggedRequest> = log
                .iter()
                .filter(|r| r.in_batch && r.method == "GET")
                .filter(|r| r.path.ends_with("/instances") == (kind == "instances"))
                .collect();
            assert_eq!(reads.len(), SERIES, "{context}: one {kind} read per series");
            for read in reads {
                let batch = batches
                    .iter()
                    .position(|b| {
                        b.received_at <= read.received_at && read.received_at <= b.completed_at
                    })
                    .unwrap_or_else(|| panic!("{context}: {} outside any $batch", read.path));
                used.insert(batch);
            }
        }
        assert!(
            used.len() <= SERIES.div_ceil(SERIES_PER_BATCH),
            "{context}: {} batches for {SERIES} series",
            used.len()
        );
    };
    let from = f.app.emulator.request_log().len();
    f.sync().await;
    assert_read_in_batches(from, "new series");
    assert_eq!(f.local_rows().await.len(), SERIES);

    for master in &masters {
        let instances = f.instances_of(master);
        f.outlook()
            .update_event(
                &f.who.mailbox_id,
                instances[2]["id"].as_str().unwrap(),
                json!({"subject": "Moved to another room", "location": {"displayName": "Room 3"}}),
            )
            .unwrap();
    }
    let from = f.app.emulator.request_log().len();
    let run = f.sync().await;
    assert_eq!(run["counts"]["updated_locally"], SERIES as u64, "{run:#}");
    assert_read_in_batches(from, "changed series");
    f.assert_in_sync().await;
}
