//! Every pattern and range both ways (local series to Outlook and back, Outlook series to one
//! local series each), and the local expansion checked against Outlook's calendarView.

use super::*;

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
