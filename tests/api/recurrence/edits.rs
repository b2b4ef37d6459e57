//! Series edited on both sides or on one: each conflict strategy, merged occurrence changes,
//! pattern changes, shifts and cancellations, deletions, a single event becoming a series, and
//! throttled occurrence reads and writes.

use super::*;

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
