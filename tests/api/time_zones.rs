//! Time zones and all-day dates through the sync, both ways: timed events keep their wall time
//! and zone across daylight-saving transitions, all-day events keep their dates and length, task
//! dates and reminders do not move, and a zone Microsoft 365 cannot keep is refused here.

use chrono::{DateTime, Datelike, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{MailboxUser, TestApp, spawn_app};

struct Fixture {
    app: TestApp,
    who: MailboxUser,
    /// Next year: every date below falls inside the sync window whenever the tests run.
    year: i32,
}

impl Fixture {
    async fn new() -> Self {
        let app = spawn_app().await;
        let who = app.connected_user().await;
        let settings = json!({
            "calendar": {"enabled": true, "direction": "bidirectional"},
            "tasks": {"enabled": true, "direction": "bidirectional"},
        });
        let path = format!("/api/v1/users/{}/settings/microsoft", who.user.id);
        let response = app.patch(&path, &who.user.token, settings).await;
        assert_eq!(response.status, StatusCode::OK, "{response:?}");
        Self {
            app,
            who,
            year: Utc::now().year() + 1,
        }
    }

    /// `MM-DD...` of next year.
    fn day(&self, rest: &str) -> String {
        format!("{}-{rest}", self.year)
    }

    fn path(&self, resource: &str) -> String {
        format!("/api/v1/users/{}/{resource}", self.who.user.id)
    }

    /// Synchronizes; every run must succeed, and each calendar read asks for times in UTC.
    async fn sync(&self) {
        let from = self.app.emulator.request_log().len();
        let runs = self.app.sync_now(&self.who.user).await;
        for run in &runs {
            assert_eq!(run["outcome"], "succeeded", "{run}");
        }
        assert!(
            self.app.assert_calendar_reads_prefer_utc(from) > 0,
            "a run reads the calendar's delta at least"
        );
    }

    async fn create_local(&self, resource: &str, body: Value) -> Value {
        let response = self
            .app
            .post(&self.path(resource), &self.who.user.token, body)
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{response:?}");
        response.body
    }

    async fn patch_local(&self, resource: &str, id: &Value, body: Value) {
        let path = format!("{}/{}", self.path(resource), id.as_str().unwrap());
        let response = self.app.patch(&path, &self.who.user.token, body).await;
        assert_eq!(response.status, StatusCode::OK, "{response:?}");
    }

    /// The local item titled `title`.
    async fn local(&self, resource: &str, title: &str) -> Value {
        let path = format!("{}?limit=500", self.path(resource));
        let response = self.app.get(&path, &self.who.user.token).await;
        assert_eq!(response.status, StatusCode::OK, "{response:?}");
        let items = response.body["items"].as_array().unwrap();
        let found: Vec<&Value> = items.iter().filter(|i| i["title"] == title).collect();
        assert_eq!(found.len(), 1, "one local item titled {title}: {items:?}");
        found[0].clone()
    }

    /// The Outlook event with subject `subject`, as Microsoft holds it (times in UTC).
    fn outlook_event(&self, subject: &str) -> Value {
        let events = self
            .app
            .emulator
            .outlook()
            .list_events(&self.who.mailbox_id)
            .unwrap();
        let found: Vec<&Value> = events.iter().filter(|e| e["subject"] == subject).collect();
        assert_eq!(found.len(), 1, "one Outlook event {subject}: {events:?}");
        found[0].clone()
    }

    fn outlook_task(&self, title: &str) -> Value {
        let tasks = self
            .app
            .emulator
            .outlook()
            .list_tasks(&self.who.mailbox_id, None)
            .unwrap();
        let found: Vec<&Value> = tasks.iter().filter(|t| t["title"] == title).collect();
        assert_eq!(found.len(), 1, "one To Do task {title}: {tasks:?}");
        found[0].clone()
    }

    fn edit_in_outlook(&self, subject: &str, patch: Value) {
        let id = self.outlook_event(subject)["id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.app
            .emulator
            .outlook()
            .update_event(&self.who.mailbox_id, &id, patch)
            .unwrap();
    }
}

/// A wall time with its offset, as the UTC value Graph shows with `outlook.timezone="UTC"`.
fn utc(wall: &str, offset: &str) -> String {
    DateTime::parse_from_rfc3339(&format!("{wall}{offset}"))
        .unwrap()
        .with_timezone(&Utc)
        .format("%Y-%m-%dT%H:%M:%S.0000000")
        .to_string()
}

/// (IANA zone, its Windows name, `MM-DDTHH:MM:SS` of next year, the zone's UTC offset then):
/// each zone on both sides of both of its daylight-saving transitions.
const TIMED: &[(&str, &str, &str, &str)] = &[
    (
        "Europe/Berlin",
        "W. Europe Standard Time",
        "03-15T09:00:00",
        "+01:00",
    ),
    (
        "Europe/Berlin",
        "W. Europe Standard Time",
        "04-15T09:00:00",
        "+02:00",
    ),
    (
        "Europe/Berlin",
        "W. Europe Standard Time",
        "10-15T09:00:00",
        "+02:00",
    ),
    (
        "Europe/Berlin",
        "W. Europe Standard Time",
        "11-15T09:00:00",
        "+01:00",
    ),
    (
        "America/New_York",
        "Eastern Standard Time",
        "03-01T09:00:00",
        "-05:00",
    ),
    (
        "America/New_York",
        "Eastern Standard Time",
        "03-20T09:00:00",
        "-04:00",
    ),
    (
        "America/New_York",
        "Eastern Standard Time",
        "10-20T09:00:00",
        "-04:00",
    ),
    (
        "America/New_York",
        "Eastern Standard Time",
        "11-15T09:00:00",
        "-05:00",
    ),
    (
        "Australia/Sydney",
        "AUS Eastern Standard Time",
        "03-15T09:00:00",
        "+11:00",
    ),
    (
        "Australia/Sydney",
        "AUS Eastern Standard Time",
        "04-15T09:00:00",
        "+10:00",
    ),
    (
        "Australia/Sydney",
        "AUS Eastern Standard Time",
        "09-15T09:00:00",
        "+10:00",
    ),
    (
        "Australia/Sydney",
        "AUS Eastern Standard Time",
        "10-15T09:00:00",
        "+11:00",
    ),
];

/// The end of an event starting at `start` (`MM-DDTHH:MM:SS`): 90 minutes later, same day.
fn ninety_minutes_later(start: &str) -> String {
    start.replace("T09:00:00", "T10:30:00")
}

#[tokio::test]
async fn local_timed_events_reach_outlook_in_their_zone_and_come_back_unchanged() {
    let f = Fixture::new().await;
    for (n, (zone, _, start, _)) in TIMED.iter().enumerate() {
        f.create_local(
            "calendar-events",
            json!({
                "title": format!("timed {n}"),
                "start": {"date_time": f.day(start), "time_zone": zone},
                "end": {"date_time": f.day(&ninety_minutes_later(start)), "time_zone": zone},
            }),
        )
        .await;
    }
    f.sync().await;

    for (n, (zone, windows, start, offset)) in TIMED.iter().enumerate() {
        let case = format!("{zone} {start}");
        let held = f.outlook_event(&format!("timed {n}"));
        assert_eq!(held["originalStartTimeZone"], *windows, "{case}");
        assert_eq!(held["originalEndTimeZone"], *windows, "{case}");
        assert_eq!(
            held["start"]["dateTime"],
            utc(&f.day(start), offset),
            "{case}"
        );
        assert_eq!(
            held["end"]["dateTime"],
            utc(&f.day(&ninety_minutes_later(start)), offset),
            "{case}"
        );
        f.edit_in_outlook(
            &format!("timed {n}"),
            json!({"subject": format!("timed {n} renamed")}),
        );
    }
    f.sync().await;

    for (n, (zone, _, start, _)) in TIMED.iter().enumerate() {
        let case = format!("{zone} {start}");
        let local = f
            .local("calendar-events", &format!("timed {n} renamed"))
            .await;
        assert_eq!(
            local["start"],
            json!({"date_time": f.day(start), "time_zone": zone}),
            "{case}"
        );
        assert_eq!(
            local["end"],
            json!({"date_time": f.day(&ninety_minutes_later(start)), "time_zone": zone}),
            "{case}"
        );
    }
}

#[tokio::test]
async fn outlook_timed_events_arrive_in_their_own_zone_and_go_back_unchanged() {
    let f = Fixture::new().await;
    for (n, (_, windows, start, _)) in TIMED.iter().enumerate() {
        f.app
            .emulator
            .outlook()
            .create_event(
                &f.who.mailbox_id,
                json!({
                    "subject": format!("outlook {n}"),
                    "start": {"dateTime": f.day(start), "timeZone": windows},
                    "end": {"dateTime": f.day(&ninety_minutes_later(start)), "timeZone": windows},
                }),
            )
            .unwrap();
    }
    // In Pacific time, named the Windows way as Outlook does and the IANA way as another Graph
    // client may have written it.
    for (subject, zone) in [
        ("outlook pacific", "Pacific Standard Time"),
        ("outlook iana", "America/Los_Angeles"),
    ] {
        f.app
            .emulator
            .outlook()
            .create_event(
                &f.who.mailbox_id,
                json!({
                    "subject": subject,
                    "start": {"dateTime": f.day("07-01T09:00:00"), "timeZone": zone},
                    "end": {"dateTime": f.day("07-01T10:00:00"), "timeZone": zone},
                }),
            )
            .unwrap();
    }
    f.sync().await;

    for (n, (zone, windows, start, _)) in TIMED.iter().enumerate() {
        let case = format!("{windows} {start}");
        let local = f.local("calendar-events", &format!("outlook {n}")).await;
        assert_eq!(
            local["start"],
            json!({"date_time": f.day(start), "time_zone": zone}),
            "{case}"
        );
        assert_eq!(
            local["end"],
            json!({"date_time": f.day(&ninety_minutes_later(start)), "time_zone": zone}),
            "{case}"
        );
        f.patch_local(
            "calendar-events",
            &local["id"],
            json!({"title": format!("outlook {n} renamed")}),
        )
        .await;
    }
    for subject in ["outlook pacific", "outlook iana"] {
        let local = f.local("calendar-events", subject).await;
        assert_eq!(
            local["start"],
            json!({"date_time": f.day("07-01T09:00:00"), "time_zone": "America/Los_Angeles"}),
            "{subject}"
        );
    }
    f.sync().await;

    for (n, (_, windows, start, offset)) in TIMED.iter().enumerate() {
        let case = format!("{windows} {start}");
        let held = f.outlook_event(&format!("outlook {n} renamed"));
        assert_eq!(held["originalStartTimeZone"], *windows, "{case}");
        assert_eq!(
            held["start"]["dateTime"],
            utc(&f.day(start), offset),
            "{case}"
        );
        assert_eq!(
            held["end"]["dateTime"],
            utc(&f.day(&ninety_minutes_later(start)), offset),
            "{case}"
        );
    }
}

#[tokio::test]
async fn an_event_moved_across_a_transition_in_outlook_keeps_its_wall_time_here() {
    let f = Fixture::new().await;
    f.create_local(
        "calendar-events",
        json!({
            "title": "weekly",
            "start": {"date_time": f.day("03-15T09:00:00"), "time_zone": "Europe/Berlin"},
            "end": {"date_time": f.day("03-15T10:00:00"), "time_zone": "Europe/Berlin"},
        }),
    )
    .await;
    f.sync().await;
    // Moved in Outlook to the same wall time a month later, in summer time.
    f.edit_in_outlook(
        "weekly",
        json!({
            "start": {"dateTime": f.day("04-15T09:00:00"), "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": f.day("04-15T10:00:00"), "timeZone": "W. Europe Standard Time"},
        }),
    );
    f.sync().await;
    let local = f.local("calendar-events", "weekly").await;
    assert_eq!(
        local["start"],
        json!({"date_time": f.day("04-15T09:00:00"), "time_zone": "Europe/Berlin"})
    );

    // Moved here back to winter time: Outlook shows 09:00 Berlin, 08:00 UTC.
    f.patch_local(
        "calendar-events",
        &local["id"],
        json!({
            "start": {"date_time": f.day("11-15T09:00:00"), "time_zone": "Europe/Berlin"},
            "end": {"date_time": f.day("11-15T10:00:00"), "time_zone": "Europe/Berlin"},
        }),
    )
    .await;
    f.sync().await;
    let held = f.outlook_event("weekly");
    assert_eq!(
        held["start"]["dateTime"],
        utc(&f.day("11-15T09:00:00"), "+01:00")
    );
    assert_eq!(held["originalStartTimeZone"], "W. Europe Standard Time");
}

#[tokio::test]
async fn all_day_events_keep_their_dates_and_length_both_ways() {
    let f = Fixture::new().await;
    // (first day, last day) of next year, inclusive as the local API has them.
    let spans = [("07-01", "07-01"), ("12-29", "12-31"), ("03-28", "03-30")];
    for (first, last) in spans {
        f.create_local(
            "calendar-events",
            json!({
                "title": format!("local {first}"),
                "is_all_day": true,
                "start_date": f.day(first),
                "end_date": f.day(last),
            }),
        )
        .await;
    }
    // Created in Outlook by users in zones far from UTC, named either way.
    let zones = [
        "Pacific/Auckland",
        "New Zealand Standard Time",
        "America/Los_Angeles",
        "Pacific Standard Time",
    ];
    // (first day, Graph's exclusive end)
    let outlook_spans = [("07-01", "07-02"), ("12-29", "01-01")];
    for zone in zones {
        for (first, end) in outlook_spans {
            let end_year = if end == "01-01" { f.year + 1 } else { f.year };
            f.app
                .emulator
                .outlook()
                .create_event(
                    &f.who.mailbox_id,
                    json!({
                        "subject": format!("outlook {zone} {first}"),
                        "isAllDay": true,
                        "start": {"dateTime": format!("{}T00:00:00", f.day(first)), "timeZone": zone},
                        "end": {"dateTime": format!("{end_year}-{end}T00:00:00"), "timeZone": zone},
                    }),
                )
                .unwrap();
        }
    }
    f.sync().await;

    for (first, last) in spans {
        let held = f.outlook_event(&format!("local {first}"));
        let after = chrono::NaiveDate::parse_from_str(&f.day(last), "%Y-%m-%d")
            .unwrap()
            .succ_opt()
            .unwrap();
        assert_eq!(held["isAllDay"], true, "{first}");
        assert_eq!(
            held["start"]["dateTime"],
            format!("{}T00:00:00.0000000", f.day(first)),
            "{first}"
        );
        assert_eq!(
            held["end"]["dateTime"],
            format!("{after}T00:00:00.0000000"),
            "{first}: Graph's end is the exclusive midnight"
        );
        f.edit_in_outlook(
            &format!("local {first}"),
            json!({"subject": format!("local {first} renamed")}),
        );
    }
    for zone in zones {
        for (first, _) in outlook_spans {
            let title = format!("outlook {zone} {first}");
            let local = f.local("calendar-events", &title).await;
            let last = if first == "07-01" { "07-01" } else { "12-31" };
            assert_eq!(local["is_all_day"], true, "{title}");
            assert_eq!(local["start_date"], f.day(first), "{title}");
            assert_eq!(local["end_date"], f.day(last), "{title}");
            f.patch_local(
                "calendar-events",
                &local["id"],
                json!({"title": format!("{title} renamed")}),
            )
            .await;
        }
    }
    f.sync().await;

    for (first, last) in spans {
        let local = f
            .local("calendar-events", &format!("local {first} renamed"))
            .await;
        assert_eq!(local["start_date"], f.day(first), "{first}");
        assert_eq!(local["end_date"], f.day(last), "{first}");
    }
    for zone in zones {
        for (first, end) in outlook_spans {
            let title = format!("outlook {zone} {first} renamed");
            let held = f.outlook_event(&title);
            let end_year = if end == "01-01" { f.year + 1 } else { f.year };
            assert_eq!(held["isAllDay"], true, "{title}");
            assert_eq!(
                held["start"]["dateTime"],
                format!("{}T00:00:00.0000000", f.day(first)),
                "{title}"
            );
            assert_eq!(
                held["end"]["dateTime"],
                format!("{end_year}-{end}T00:00:00.0000000"),
                "{title}"
            );
        }
    }
}

#[tokio::test]
async fn task_due_start_and_reminder_times_do_not_move_either_way() {
    let f = Fixture::new().await;
    f.create_local(
        "tasks",
        json!({
            "title": "local task",
            "due_date": f.day("07-01"),
            "start_date": f.day("06-28"),
            "reminder_at": format!("{}T06:30:00Z", f.day("06-30")),
        }),
    )
    .await;
    // Set in To Do: a due date at midnight UTC, a start date at midnight in New York and in
    // Berlin, a reminder at a Berlin wall time in summer.
    let outlook = [
        ("todo utc", "UTC", "+00:00"),
        ("todo new york", "Eastern Standard Time", "-04:00"),
        ("todo berlin", "W. Europe Standard Time", "+02:00"),
    ];
    for (title, zone, _) in outlook {
        f.app
            .emulator
            .outlook()
            .create_task(
                &f.who.mailbox_id,
                None,
                json!({
                    "title": title,
                    "dueDateTime": {"dateTime": format!("{}T00:00:00", f.day("08-20")), "timeZone": zone},
                    "startDateTime": {"dateTime": format!("{}T00:00:00", f.day("08-18")), "timeZone": zone},
                    "isReminderOn": true,
                    "reminderDateTime": {"dateTime": format!("{}T09:15:00", f.day("08-19")), "timeZone": zone},
                }),
            )
            .unwrap();
    }
    f.sync().await;

    let held = f.outlook_task("local task");
    assert_eq!(
        held["dueDateTime"]["dateTime"],
        format!("{}T00:00:00.0000000", f.day("07-01"))
    );
    assert_eq!(
        held["startDateTime"]["dateTime"],
        format!("{}T00:00:00.0000000", f.day("06-28"))
    );
    assert_eq!(
        held["reminderDateTime"]["dateTime"],
        format!("{}T06:30:00.0000000", f.day("06-30"))
    );
    for (title, zone, offset) in outlook {
        let local = f.local("tasks", title).await;
        assert_eq!(local["due_date"], f.day("08-20"), "{zone}");
        assert_eq!(local["start_date"], f.day("08-18"), "{zone}");
        let reminder: DateTime<Utc> = local["reminder_at"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            reminder.format("%Y-%m-%dT%H:%M:%S.0000000").to_string(),
            utc(&format!("{}T09:15:00", f.day("08-19")), offset),
            "{zone}"
        );
        f.patch_local(
            "tasks",
            &local["id"],
            json!({"title": format!("{title} renamed")}),
        )
        .await;
    }
    // What To Do holds of each task before the renames reach it.
    let before: Vec<Value> = outlook
        .iter()
        .map(|(title, _, _)| f.outlook_task(title))
        .collect();
    let id = held["id"].as_str().unwrap().to_owned();
    f.app
        .emulator
        .outlook()
        .update_task(
            &f.who.mailbox_id,
            None,
            &id,
            json!({"title": "local task renamed"}),
        )
        .unwrap();
    f.sync().await;

    let local = f.local("tasks", "local task renamed").await;
    assert_eq!(local["due_date"], f.day("07-01"));
    assert_eq!(local["start_date"], f.day("06-28"));
    let reminder: DateTime<Utc> = local["reminder_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        reminder,
        format!("{}T06:30:00Z", f.day("06-30"))
            .parse::<DateTime<Utc>>()
            .unwrap()
    );
    for ((title, zone, _), before) in outlook.iter().zip(&before) {
        // Only the title went back: To Do keeps its dates and reminder as its client set them.
        let held = f.outlook_task(&format!("{title} renamed"));
        for key in ["dueDateTime", "startDateTime", "reminderDateTime"] {
            assert_eq!(held[key], before[key], "{zone}: {key}");
        }
    }
}

#[tokio::test]
async fn a_zone_microsoft_365_cannot_keep_is_refused_with_a_pointer_to_it() {
    let f = Fixture::new().await;
    let cases = [
        ("Mars/Olympus_Mons", "not a zone"),
        ("Pacific Standard Time", "a Windows name, not an IANA one"),
        ("Antarctica/Troll", "an IANA zone with no Windows zone"),
    ];
    for (zone, why) in cases {
        let response = f
            .app
            .post(
                &f.path("calendar-events"),
                &f.who.user.token,
                json!({
                    "title": "T",
                    "start": {"date_time": f.day("07-01T09:00:00"), "time_zone": zone},
                    "end": {"date_time": f.day("07-01T10:00:00"), "time_zone": zone},
                }),
            )
            .await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{why}: {response:?}"
        );
        assert_eq!(response.code(), "validation_failed", "{why}");
        assert_eq!(
            response.headers["content-type"], "application/problem+json",
            "{why}"
        );
        let pointers: Vec<&str> = response.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["pointer"].as_str().unwrap())
            .collect();
        assert!(
            pointers.contains(&"/start/time_zone"),
            "{why}: {pointers:?}"
        );
    }
    let listed = f
        .app
        .get(&f.path("calendar-events"), &f.who.user.token)
        .await;
    assert_eq!(listed.body["items"], json!([]), "nothing was written");
}

/// Which Sunday of a month the clocks change on.
#[derive(Clone, Copy)]
enum Sunday {
    First,
    Second,
    Last,
}

/// The `MM-DD` of that Sunday of `month` in `year`.
fn sunday(year: i32, month: u32, which: Sunday) -> String {
    let sundays: Vec<chrono::NaiveDate> = (1..=31)
        .filter_map(|d| chrono::NaiveDate::from_ymd_opt(year, month, d))
        .filter(|d| d.weekday() == chrono::Weekday::Sun)
        .collect();
    let day = match which {
        Sunday::First => sundays[0],
        Sunday::Second => sundays[1],
        Sunday::Last => sundays[sundays.len() - 1],
    };
    day.format("%m-%d").to_string()
}

/// (IANA zone, Windows name, month, Sunday of the change, offset before, offset after): every
/// daylight-saving transition of the three zones.
const TRANSITIONS: &[(&str, &str, u32, Sunday, &str, &str)] = &[
    (
        "Europe/Berlin",
        "W. Europe Standard Time",
        3,
        Sunday::Last,
        "+01:00",
        "+02:00",
    ),
    (
        "Europe/Berlin",
        "W. Europe Standard Time",
        10,
        Sunday::Last,
        "+02:00",
        "+01:00",
    ),
    (
        "America/New_York",
        "Eastern Standard Time",
        3,
        Sunday::Second,
        "-05:00",
        "-04:00",
    ),
    (
        "America/New_York",
        "Eastern Standard Time",
        11,
        Sunday::First,
        "-04:00",
        "-05:00",
    ),
    (
        "Australia/Sydney",
        "AUS Eastern Standard Time",
        4,
        Sunday::First,
        "+11:00",
        "+10:00",
    ),
    (
        "Australia/Sydney",
        "AUS Eastern Standard Time",
        10,
        Sunday::First,
        "+10:00",
        "+11:00",
    ),
];

#[tokio::test]
async fn overnight_events_across_each_transition_keep_both_wall_times_both_ways() {
    let f = Fixture::new().await;
    // Saturday 22:00 to Sunday 08:00 local time, the clocks changing in between.
    let span = |month: u32, which: Sunday| {
        let sun =
            chrono::NaiveDate::parse_from_str(&f.day(&sunday(f.year, month, which)), "%Y-%m-%d")
                .unwrap();
        let sat = sun.pred_opt().unwrap();
        (format!("{sat}T22:00:00"), format!("{sun}T08:00:00"))
    };
    for (n, (zone, windows, month, which, _, _)) in TRANSITIONS.iter().enumerate() {
        let (start, end) = span(*month, *which);
        f.create_local(
            "calendar-events",
            json!({
                "title": format!("night {n}"),
                "start": {"date_time": start, "time_zone": zone},
                "end": {"date_time": end, "time_zone": zone},
            }),
        )
        .await;
        f.app
            .emulator
            .outlook()
            .create_event(
                &f.who.mailbox_id,
                json!({
                    "subject": format!("outlook night {n}"),
                    "start": {"dateTime": start, "timeZone": windows},
                    "end": {"dateTime": end, "timeZone": windows},
                }),
            )
            .unwrap();
    }
    f.sync().await;

    for (n, (zone, windows, month, which, before, after)) in TRANSITIONS.iter().enumerate() {
        let (start, end) = span(*month, *which);
        let case = format!("{zone} {start}");
        let held = f.outlook_event(&format!("night {n}"));
        assert_eq!(held["originalStartTimeZone"], *windows, "{case}");
        assert_eq!(held["start"]["dateTime"], utc(&start, before), "{case}");
        assert_eq!(held["end"]["dateTime"], utc(&end, after), "{case}");
        let local = f
            .local("calendar-events", &format!("outlook night {n}"))
            .await;
        assert_eq!(
            local["start"],
            json!({"date_time": start, "time_zone": zone}),
            "{case}"
        );
        assert_eq!(
            local["end"],
            json!({"date_time": end, "time_zone": zone}),
            "{case}"
        );
    }
}
