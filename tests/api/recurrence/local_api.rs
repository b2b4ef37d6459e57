//! The local API of series: occurrences listed, modified and cancelled, a series moved with its
//! exceptions, and invalid series and occurrences refused.

use super::*;

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
