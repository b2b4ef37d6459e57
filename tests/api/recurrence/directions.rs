//! One-way directions carry series one way only, and series changed in Outlook are read a
//! batch at a time.

use super::*;

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
