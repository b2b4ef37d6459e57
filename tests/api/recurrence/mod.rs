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

mod directions;
mod edits;
mod local_api;
mod patterns;

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

/// Graph's `originalStart` of an occurrence from its local key (`YYYY-MM-DD` for an all-day
/// series, whose occurrences start at midnight UTC in Graph).
fn outlook_key(local: &str) -> String {
    if local.len() == 10 {
        format!("{local}T00:00:00Z")
    } else {
        local.to_owned()
    }
}
