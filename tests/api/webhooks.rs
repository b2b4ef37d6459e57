//! Outbound webhooks and the change feed: every event type fired by what causes it, delivered
//! signed per Standard Webhooks to a receiver started here, retried after failures and
//! timeouts, in order per item, redelivered, signed by both secrets during a rotation, refused
//! for private targets, disabled after failing too long; the feed holds the same events.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use chrono::Utc;
use entity::webhook_endpoints;
use graph_emulator::{Fault, FaultSpec};
use m365_sync::{
    domain::links::Resource,
    domain::{Role, webhooks::signature},
    sync::local,
};
use reqwest::StatusCode;
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, EntityTrait, IntoActiveModel, Set, TransactionTrait,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Account, TestApp, spawn_app_with};

/// What the receiver answers one request with.
#[derive(Clone, Copy, Debug)]
struct Reply {
    status: u16,
    delay: Duration,
}

/// A request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
    json: Value,
    /// The status it was answered with.
    answered: u16,
    /// Whether the answer was held back (the sender may have given up waiting).
    late: bool,
}

/// A webhook receiver on a random port: answers requests with the scripted replies, then 200.
#[derive(Clone)]
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
}

impl Receiver {
    async fn start() -> Self {
        let got = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (g, s) = (got.clone(), script.clone());
        let server = HttpServer::new(move || {
            let (got, script) = (g.clone(), s.clone());
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let (got, script) = (got.clone(), script.clone());
                async move {
                    let reply = script.lock().unwrap().pop_front().unwrap_or(Reply {
                        status: 200,
                        delay: Duration::ZERO,
                    });
                    let header = |name: &str| {
                        req.headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let text = String::from_utf8(body.to_vec()).unwrap();
                    let received = Received {
                        id: header("webhook-id"),
                        timestamp: header("webhook-timestamp"),
                        signature: header("webhook-signature"),
                        json: serde_json::from_str(&text).unwrap_or(Value::Null),
                        body: text,
                        answered: reply.status,
                        late: !reply.delay.is_zero(),
                    };
                    got.lock().unwrap().push(received);
                    tokio::time::sleep(reply.delay).await;
                    HttpResponse::build(
                        actix_web::http::StatusCode::from_u16(reply.status).unwrap(),
                    )
                    .finish()
                }
            }))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}/hooks"),
            got,
            script,
        }
    }

    fn reply_with(&self, replies: &[Reply]) {
        self.script.lock().unwrap().extend(replies.iter().copied());
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// The delivered (2xx-answered) requests, once at least `n` arrived.
    async fn delivered(&self, n: usize) -> Vec<Received> {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let ok: Vec<Received> = self
                .received()
                .into_iter()
                .filter(|r| (200..300).contains(&r.answered) && !r.late)
                .collect();
            if ok.len() >= n {
                return ok;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} of {n} deliveries arrived: {:?}",
                ok.len(),
                self.received()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The delivered events of `types`, once `n` of them arrived.
    async fn events(&self, n: usize, types: &[&str]) -> Vec<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let found: Vec<Value> = self
                .received()
                .into_iter()
                .filter(|r| (200..300).contains(&r.answered) && !r.late)
                .map(|r| r.json)
                .filter(|j| types.contains(&j["type"].as_str().unwrap_or_default()))
                .collect();
            if found.len() >= n {
                return found;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} of {n} {types:?} events arrived: {:?}",
                found.len(),
                self.received()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// An app whose webhooks may reach this machine, quickly retried.
async fn app() -> TestApp {
    spawn_app_with(|s| {
        s.webhooks.allow_private_targets = true;
        s.webhooks.dispatch_ms = 20;
        s.webhooks.retry_base_ms = 20;
        s.webhooks.timeout_ms = 1000;
    })
    .await
}

async fn create_endpoint(app: &TestApp, caller: &Account, body: Value) -> (String, String) {
    let created = app.post("/api/v1/webhooks", &caller.token, body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (created.body["id"].as_str().unwrap().to_owned(), secret)
}

fn verify(received: &Received, secret: &str) -> bool {
    let timestamp: i64 = received.timestamp.parse().unwrap();
    let expected = signature::sign(secret, &received.id, timestamp, &received.body).unwrap();
    received.signature.split(' ').any(|s| s == expected)
}

async fn create_event(app: &TestApp, user: &Account, title: &str) -> Value {
    let created = app
        .post(
            &format!("/api/v1/users/{}/calendar-events", user.id),
            &user.token,
            json!({
                "title": title,
                "start": {"date_time": "2026-12-10T09:00:00", "time_zone": "UTC"},
                "end": {"date_time": "2026-12-10T10:00:00", "time_zone": "UTC"},
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    created.body
}

#[tokio::test]
async fn api_changes_are_delivered_signed_in_order_and_equal_the_change_feed() {
    let app = app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let user = app.account(Role::User, Some(org)).await;
    let receiver = Receiver::start().await;
    let (_, secret) = create_endpoint(
        &app,
        &admin,
        json!({"url": receiver.url, "description": "CRM"}),
    )
    .await;

    let event = create_event(&app, &user, "Kickoff").await;
    let id = event["id"].as_str().unwrap();
    let path = format!("/api/v1/users/{}/calendar-events/{id}", user.id);
    assert_eq!(
        app.patch(&path, &user.token, json!({"title": "Kickoff (moved)"}))
            .await
            .status,
        StatusCode::OK
    );
    let deleted = app
        .request(reqwest::Method::DELETE, &path, Some(&user.token), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let restored = app
        .post(&format!("{path}/restore"), &user.token, json!({}))
        .await;
    assert_eq!(restored.status, StatusCode::OK, "{restored:?}");
    let task = app
        .post(
            &format!("/api/v1/users/{}/tasks", user.id),
            &user.token,
            json!({"title": "Send the minutes"}),
        )
        .await;
    assert_eq!(task.status, StatusCode::CREATED);

    let delivered = receiver.delivered(5).await;
    // Deliveries of different items may overtake each other; those of one item arrive in
    // the order of its versions.
    let of_event: Vec<(&str, i64)> = delivered
        .iter()
        .filter(|r| r.json["data"]["id"] == json!(id))
        .map(|r| {
            let data = &r.json["data"];
            (
                r.json["type"].as_str().unwrap(),
                data["version"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        of_event,
        [
            ("calendar_event.created", 1),
            ("calendar_event.updated", 2),
            ("calendar_event.deleted", 3),
            ("calendar_event.restored", 4)
        ]
    );
    let of_task: Vec<&Received> = delivered
        .iter()
        .filter(|r| r.json["data"]["id"] == task.body["id"])
        .collect();
    assert_eq!(of_task.len(), 1);
    assert_eq!(of_task[0].json["type"], "task.created");
    for r in &delivered {
        assert!(verify(r, &secret), "signature of {r:?}");
        let age = Utc::now().timestamp() - r.timestamp.parse::<i64>().unwrap();
        assert!((0..60).contains(&age), "timestamp {age} s old");
        let data = &r.json["data"];
        assert_eq!(data["origin"], "api");
        assert_eq!(data["user_id"], json!(user.id));
        assert_eq!(data["organization_id"], json!(org));
        assert!(r.json["timestamp"].is_string());
        assert_eq!(
            r.json.as_object().unwrap().len(),
            3,
            "type, timestamp, data"
        );
    }
    // A wrong secret does not verify.
    assert!(!verify(&delivered[0], &signature::new_secret()));

    // The feed holds the same events, with the same ids, in the same order.
    let feed = app.get("/api/v1/changes?limit=2", &admin.token).await;
    assert_eq!(feed.status, StatusCode::OK, "{feed:?}");
    assert_eq!(feed.body["has_more"], true);
    let mut items: Vec<Value> = feed.body["items"].as_array().unwrap().clone();
    let mut cursor = feed.body["next_cursor"].as_str().unwrap().to_owned();
    loop {
        let page = app
            .get(&format!("/api/v1/changes?after={cursor}"), &admin.token)
            .await;
        let got = page.body["items"].as_array().unwrap().clone();
        cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
        if got.is_empty() {
            break;
        }
        items.extend(got);
    }
    let item_events: Vec<&Value> = items
        .iter()
        .filter(|e| !e["type"].as_str().unwrap().starts_with("connection."))
        .collect();
    assert_eq!(item_events.len(), 5, "{items:?}");
    let feed_types: Vec<&str> = item_events
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        feed_types,
        [
            "calendar_event.created",
            "calendar_event.updated",
            "calendar_event.deleted",
            "calendar_event.restored",
            "task.created"
        ],
        "the feed holds the events in the order they happened"
    );
    for event in &item_events {
        let r = delivered
            .iter()
            .find(|r| r.id == event["id"].as_str().unwrap())
            .expect("the webhook received every event of the feed");
        assert_eq!(event["type"], r.json["type"]);
        assert_eq!(event["data"], r.json["data"]);
        assert_eq!(event["timestamp"], r.json["timestamp"]);
    }
    // An empty page keeps the cursor.
    let end = app
        .get(&format!("/api/v1/changes?after={cursor}"), &admin.token)
        .await;
    assert_eq!(end.body["next_cursor"], json!(cursor));
    assert_eq!(end.body["has_more"], false);

    // Bad cursors and limits are 400s.
    for query in ["after=abc", "after=-1", "limit=0", "limit=5000"] {
        let bad = app
            .get(&format!("/api/v1/changes?{query}"), &admin.token)
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{query}");
    }
}

#[tokio::test]
async fn the_feed_and_endpoints_see_only_what_their_owner_may() {
    let app = app().await;
    let admin = app.admin().await;
    let (acme, globex) = (
        app.organization(&admin, "Acme").await,
        app.organization(&admin, "Globex").await,
    );
    let acme_admin = app.account(Role::OrgAdmin, Some(acme)).await;
    let alice = app.account(Role::User, Some(acme)).await;
    let bob = app.account(Role::User, Some(acme)).await;
    let carol = app.account(Role::User, Some(globex)).await;

    // A plain user manages no webhooks; an org admin only their organization's.
    let refused = app
        .post(
            "/api/v1/webhooks",
            &alice.token,
            json!({"url": "https://example.com/x"}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let other_org = app
        .post(
            "/api/v1/webhooks",
            &acme_admin.token,
            json!({"url": "https://example.com/x", "organization_id": globex}),
        )
        .await;
    assert_eq!(other_org.status, StatusCode::NOT_FOUND);
    let global_receiver = Receiver::start().await;
    let (global, _) = create_endpoint(&app, &admin, json!({"url": global_receiver.url})).await;
    let acme_receiver = Receiver::start().await;
    let (acme_hook, _) =
        create_endpoint(&app, &acme_admin, json!({"url": acme_receiver.url})).await;
    let listed = app.get("/api/v1/webhooks", &acme_admin.token).await;
    let ids: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [acme_hook.as_str()]);
    assert!(
        listed.body["items"][0].get("secret").is_none(),
        "secrets are shown once"
    );
    assert_eq!(
        app.get(&format!("/api/v1/webhooks/{global}"), &acme_admin.token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/api/v1/webhooks", &alice.token).await.status,
        StatusCode::FORBIDDEN
    );

    for who in [&alice, &bob, &carol] {
        create_event(&app, who, "Meeting").await;
    }
    let global_events = global_receiver.events(3, &["calendar_event.created"]).await;
    let acme_events = acme_receiver.events(2, &["calendar_event.created"]).await;
    let owners = |events: &[Value]| {
        let mut users: Vec<String> = events
            .iter()
            .map(|e| e["data"]["user_id"].as_str().unwrap().to_owned())
            .collect();
        users.sort();
        users
    };
    let mut acme_users = vec![alice.id.to_string(), bob.id.to_string()];
    acme_users.sort();
    assert_eq!(owners(&acme_events), acme_users);
    assert_eq!(global_events.len(), 3);

    let feed_of = |token: String| {
        let app = &app;
        async move {
            let page = app.get("/api/v1/changes", &token).await;
            assert_eq!(page.status, StatusCode::OK);
            page.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["type"] == "calendar_event.created")
                .cloned()
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(feed_of(admin.token.clone()).await.len(), 3);
    assert_eq!(owners(&feed_of(acme_admin.token.clone()).await), acme_users);
    assert_eq!(
        owners(&feed_of(alice.token.clone()).await),
        [alice.id.to_string()]
    );
    // The acme receiver got nothing of globex.
    assert!(
        acme_receiver
            .received()
            .iter()
            .all(|r| r.json["data"]["organization_id"] == json!(acme))
    );
}

#[tokio::test]
async fn failures_and_timeouts_are_retried_listed_and_redelivered_with_the_same_id() {
    let app = app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let user = app.account(Role::User, Some(org)).await;
    let receiver = Receiver::start().await;
    receiver.reply_with(&[
        Reply {
            status: 500,
            delay: Duration::ZERO,
        },
        Reply {
            status: 200,
            delay: Duration::from_millis(2500),
        },
    ]);
    let (hook, _) = create_endpoint(
        &app,
        &admin,
        json!({"url": receiver.url, "events": ["calendar_event.*"]}),
    )
    .await;
    create_event(&app, &user, "Retried").await;
    let delivered = receiver.delivered(1).await;
    let received = receiver.received();
    assert_eq!(received.len(), 3, "a 500, a timeout, then a success");
    assert!(
        received
            .iter()
            .all(|r| r.id == delivered[0].id && r.body == delivered[0].body),
        "every attempt carries the same id and body"
    );

    let path = format!("/api/v1/webhooks/{hook}/deliveries");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let delivery = loop {
        let listed = app.get(&path, &admin.token).await;
        assert_eq!(listed.status, StatusCode::OK, "{listed:?}");
        let first = listed.body["items"][0].clone();
        if first["status"] == "delivered" {
            break first;
        }
        assert!(std::time::Instant::now() < deadline, "{first}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let attempts = delivery["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{delivery}");
    assert_eq!(attempts[0]["status_code"], 500);
    assert_eq!(attempts[0]["error"], "answered 500");
    assert_eq!(attempts[1]["status_code"], Value::Null);
    assert_eq!(attempts[1]["error"], "timed out");
    assert!(attempts[1]["latency_ms"].as_i64().unwrap() >= 1000);
    assert_eq!(attempts[2]["status_code"], 200);
    assert_eq!(delivery["event_id"].as_str().unwrap(), delivered[0].id);

    let again = app
        .post(
            &format!("{path}/{}/redeliver", delivery["id"].as_str().unwrap()),
            &admin.token,
            json!({}),
        )
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{again:?}");
    let delivered = receiver.delivered(2).await;
    assert_eq!(delivered[1].id, delivered[0].id);
    assert_eq!(delivered[1].body, delivered[0].body);
    let unknown = app
        .post(
            &format!("{path}/{}/redeliver", Uuid::now_v7()),
            &admin.token,
            json!({}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn deliveries_of_one_item_arrive_in_version_order_even_after_a_failure() {
    let app = app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let user = app.account(Role::User, Some(org)).await;
    let receiver = Receiver::start().await;
    receiver.reply_with(&[Reply {
        status: 503,
        delay: Duration::ZERO,
    }]);
    create_endpoint(
        &app,
        &admin,
        json!({"url": receiver.url, "events": ["calendar_event.*"]}),
    )
    .await;
    let event = create_event(&app, &user, "v1").await;
    let path = format!(
        "/api/v1/users/{}/calendar-events/{}",
        user.id,
        event["id"].as_str().unwrap()
    );
    for n in 2..=8 {
        let patched = app
            .patch(&path, &user.token, json!({"title": format!("v{n}")}))
            .await;
        assert_eq!(patched.status, StatusCode::OK);
    }
    let delivered = receiver.delivered(8).await;
    let versions: Vec<i64> = delivered
        .iter()
        .map(|r| r.json["data"]["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, (1..=8).collect::<Vec<_>>());
    assert_eq!(receiver.received()[0].answered, 503);
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_new_one_and_the_test_ping_uses_both() {
    let app = app().await;
    let admin = app.admin().await;
    let receiver = Receiver::start().await;
    let (hook, old) = create_endpoint(&app, &admin, json!({"url": receiver.url})).await;
    let rotated = app
        .post(
            &format!("/api/v1/webhooks/{hook}/rotate-secret"),
            &admin.token,
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{rotated:?}");
    let new = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(rotated.body["previous_secret_expires_at"].is_string());
    assert!(
        !app.raw_database_contains(&new).await,
        "secrets are encrypted at rest"
    );
    assert!(!app.raw_database_contains(&old).await);

    let ping = app
        .post(
            &format!("/api/v1/webhooks/{hook}/test"),
            &admin.token,
            json!({}),
        )
        .await;
    assert_eq!(ping.status, StatusCode::ACCEPTED, "{ping:?}");
    assert_eq!(ping.body["event_type"], "webhook.ping");
    let got = receiver.delivered(1).await;
    assert_eq!(got[0].json["type"], "webhook.ping");
    assert_eq!(got[0].json["data"]["endpoint_id"], json!(hook));
    assert_eq!(
        got[0].signature.split(' ').count(),
        2,
        "{}",
        got[0].signature
    );
    assert!(verify(&got[0], &old) && verify(&got[0], &new));

    // Past the overlap, only the new secret signs.
    let row = webhook_endpoints::Entity::find_by_id(hook.parse::<Uuid>().unwrap())
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    let mut model = row.into_active_model();
    model.previous_secret_expires_at = Set(Some(
        (Utc::now() - chrono::Duration::hours(1)).fixed_offset(),
    ));
    model.update(&app.db).await.unwrap();
    app.post(
        &format!("/api/v1/webhooks/{hook}/test"),
        &admin.token,
        json!({}),
    )
    .await;
    let got = receiver.delivered(2).await;
    assert_eq!(got[1].signature.split(' ').count(), 1);
    assert!(verify(&got[1], &new) && !verify(&got[1], &old));
}

#[tokio::test]
async fn private_targets_are_refused_unless_allowed() {
    let app = spawn_app_with(|s| {
        s.webhooks.dispatch_ms = 20;
        s.webhooks.retry_base_ms = 60_000;
    })
    .await;
    let admin = app.admin().await;
    for url in [
        "http://127.0.0.1:9/x",
        "http://localhost:9/x",
        "http://10.0.0.8/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "ftp://example.com/x",
        "not a url",
    ] {
        let refused = app
            .post("/api/v1/webhooks", &admin.token, json!({"url": url}))
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        assert_eq!(refused.body["errors"][0]["pointer"], "/url", "{url}");
    }
    let bad_filter = app
        .post(
            "/api/v1/webhooks",
            &admin.token,
            json!({"url": "https://example.com/x", "events": ["calendar.nothing"]}),
        )
        .await;
    assert_eq!(bad_filter.status, StatusCode::UNPROCESSABLE_ENTITY);

    // A host name is checked on the addresses it resolves to when a delivery is sent: this
    // machine's name resolves to a private address here.
    let receiver = Receiver::start().await;
    let port = receiver.url.rsplit(':').next().unwrap().to_owned();
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost.localdomain".to_owned());
    let resolved: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 80))
        .await
        .map(Iterator::collect)
        .unwrap_or_default();
    if resolved.is_empty()
        || resolved
            .iter()
            .any(|a| m365_sync::domain::webhooks::target::is_public(a.ip()))
    {
        eprintln!("skipping the resolution check: {host} resolves to {resolved:?}");
        return;
    }
    let (hook, _) = create_endpoint(
        &app,
        &admin,
        json!({"url": format!("http://{host}:{port}")}),
    )
    .await;
    app.post(
        &format!("/api/v1/webhooks/{hook}/test"),
        &admin.token,
        json!({}),
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listed = app
            .get(&format!("/api/v1/webhooks/{hook}/deliveries"), &admin.token)
            .await;
        let attempts = listed.body["items"][0]["attempts"]
            .as_array()
            .unwrap()
            .clone();
        if let Some(first) = attempts.first() {
            let error = first["error"].as_str().unwrap();
            assert!(error.contains("no public address"), "{error}");
            break;
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        receiver.received().is_empty(),
        "nothing reached the private address"
    );
}

#[tokio::test]
async fn an_endpoint_failing_for_days_is_disabled_reported_and_enabled_again() {
    let app = app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let user = app.account(Role::User, Some(org)).await;
    let receiver = Receiver::start().await;
    let (hook, _) = create_endpoint(&app, &admin, json!({"url": receiver.url})).await;
    let id: Uuid = hook.parse().unwrap();
    let row = webhook_endpoints::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    let mut model = row.into_active_model();
    model.failing_since = Set(Some(
        (Utc::now() - chrono::Duration::days(6)).fixed_offset(),
    ));
    model.update(&app.db).await.unwrap();
    receiver.reply_with(&[Reply {
        status: 500,
        delay: Duration::ZERO,
    }]);
    create_event(&app, &user, "Lost").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let view = loop {
        let view = app
            .get(&format!("/api/v1/webhooks/{hook}"), &admin.token)
            .await;
        if view.body["enabled"] == false {
            break view;
        }
        assert!(std::time::Instant::now() < deadline, "{view:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(view.body["disabled_reason"].is_string());
    let overview = app.get("/api/v1/sync/overview", &admin.token).await;
    assert_eq!(overview.body["disabled_webhooks"][0]["id"], json!(hook));

    // Disabled: the retry is not sent, nor are new events.
    tokio::time::sleep(Duration::from_millis(500)).await;
    create_event(&app, &user, "Not sent").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 1);

    let enabled = app
        .patch(
            &format!("/api/v1/webhooks/{hook}"),
            &admin.token,
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(enabled.status, StatusCode::OK);
    assert_eq!(enabled.body["failing_since"], Value::Null);
    create_event(&app, &user, "Sent").await;
    let got = receiver.events(1, &["calendar_event.created"]).await;
    assert_eq!(got.len(), 1);
    let overview = app.get("/api/v1/sync/overview", &admin.token).await;
    assert_eq!(overview.body["disabled_webhooks"], json!([]));
}

#[tokio::test]
async fn microsoft_changes_connections_conflicts_and_guards_fire_their_events() {
    let app = app().await;
    let receiver = Receiver::start().await;
    let admin = app.admin().await;
    let (_, secret) = create_endpoint(&app, &admin, json!({"url": receiver.url})).await;
    let who = app.connected_user().await;
    let settings = json!({
        "calendar": {"enabled": true, "direction": "bidirectional", "conflict_resolution": "manual"},
        "tasks": {"enabled": true, "direction": "bidirectional", "conflict_resolution": "manual"},
    });
    let settings_path = format!("/api/v1/users/{}/settings/microsoft", who.user.id);
    app.patch(&settings_path, &who.user.token, settings).await;
    let connected = receiver.events(1, &["connection.connected"]).await;
    assert_eq!(connected[0]["data"]["user_id"], json!(who.user.id));
    assert!(connected[0]["data"]["account_name"].is_string());

    // Created and changed in Outlook, pulled by a run: origin microsoft.
    let outlook = app.emulator.outlook();
    let remote = outlook
        .create_event(
            &who.mailbox_id,
            json!({
                "subject": "From Outlook",
                "start": {"dateTime": "2026-12-11T09:00:00", "timeZone": "UTC"},
                "end": {"dateTime": "2026-12-11T10:00:00", "timeZone": "UTC"},
            }),
        )
        .unwrap();
    let remote_id = remote["id"].as_str().unwrap().to_owned();
    app.sync_now(&who.user).await;
    let created = receiver.events(1, &["calendar_event.created"]).await;
    assert_eq!(created[0]["data"]["origin"], "microsoft");
    let local_id: Uuid = created[0]["data"]["id"].as_str().unwrap().parse().unwrap();
    outlook
        .update_event(
            &who.mailbox_id,
            &remote_id,
            json!({"subject": "Renamed in Outlook"}),
        )
        .unwrap();
    app.sync_now(&who.user).await;
    let updated = receiver.events(1, &["calendar_event.updated"]).await;
    assert_eq!(updated[0]["data"]["origin"], "microsoft");
    assert_eq!(updated[0]["data"]["id"], json!(local_id));
    assert_eq!(updated[0]["data"]["version"], 2);

    // Both sides change it under `manual`: a conflict, then its resolution.
    outlook
        .update_event(
            &who.mailbox_id,
            &remote_id,
            json!({"subject": "Outlook title"}),
        )
        .unwrap();
    let event_path = format!("/api/v1/users/{}/calendar-events/{local_id}", who.user.id);
    app.patch(
        &event_path,
        &who.user.token,
        json!({"title": "Local title"}),
    )
    .await;
    app.sync_now(&who.user).await;
    let conflict = receiver.events(1, &["conflict.created"]).await;
    assert_eq!(conflict[0]["data"]["item_id"], json!(local_id));
    assert_eq!(conflict[0]["data"]["resource"], "calendar");
    let conflict_id = conflict[0]["data"]["id"].as_str().unwrap();
    let resolved = app
        .post(
            &format!(
                "/api/v1/users/{}/microsoft/conflicts/{conflict_id}/resolve",
                who.user.id
            ),
            &who.user.token,
            json!({"resolution": "local"}),
        )
        .await;
    assert_eq!(resolved.status, StatusCode::OK, "{resolved:?}");
    let resolution = receiver.events(1, &["conflict.resolved"]).await;
    assert_eq!(resolution[0]["data"]["resolution"], "local");
    app.sync_now(&who.user).await;

    // Deleted in Outlook, pulled: origin microsoft.
    outlook.delete_event(&who.mailbox_id, &remote_id).unwrap();
    app.sync_now(&who.user).await;
    let deleted = receiver.events(1, &["calendar_event.deleted"]).await;
    assert_eq!(deleted[0]["data"]["origin"], "microsoft");

    // A mass deletion held by the guard.
    let mut ids = Vec::new();
    for n in 0..12 {
        let task = json!({
            "title": format!("Task {n}"), "description": null, "status": "not_started",
            "importance": "normal", "due_date": null, "start_date": null, "reminder_at": null,
            "completed_at": null, "categories": [],
        });
        let fields = task.as_object().unwrap().clone();
        ids.push(
            local::create(&app.db, who.user.id, Resource::Tasks, &fields)
                .await
                .unwrap()
                .0,
        );
    }
    app.sync_now(&who.user).await;
    for id in &ids[..11] {
        local::tombstone(&app.db, Resource::Tasks, *id)
            .await
            .unwrap();
    }
    app.sync_now(&who.user).await;
    let blocked = receiver.events(1, &["sync.mass_delete_blocked"]).await;
    assert_eq!(blocked[0]["data"]["resource"], "tasks");
    assert!(blocked[0]["data"]["run_id"].is_string());

    // A run that fails.
    app.emulator.inject_fault(FaultSpec {
        method: None,
        path_contains: Some("/delta".to_owned()),
        count: 1000,
        skip: 0,
        kind: Fault::Status {
            status: 503,
            retry_after: None,
        },
    });
    app.sync_now(&who.user).await;
    let failed = receiver.events(1, &["sync.run.failed"]).await;
    assert!(failed[0]["data"]["errors"].is_array());
    app.emulator.clear_faults();

    // The application's secret goes wrong: its connections are misconfigured.
    let secret_path = "/api/v1/settings/microsoft/application";
    let wrong = app
        .patch(
            secret_path,
            &who.admin.token,
            json!({"client_secret": "wrong-secret-value"}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::OK, "{wrong:?}");
    app.emulator.expire_access_tokens(Some(&who.mailbox_id));
    app.sync_now(&who.user).await;
    let misconfigured = receiver.events(1, &["connection.app_misconfigured"]).await;
    assert_eq!(misconfigured[0]["data"]["user_id"], json!(who.user.id));
    let fixed = app
        .patch(
            secret_path,
            &who.admin.token,
            json!({"client_secret": who.client_secret}),
        )
        .await;
    assert_eq!(fixed.status, StatusCode::OK);

    // The connection lost, then disconnected.
    app.emulator.revoke_refresh_tokens(&who.mailbox_id);
    app.emulator.expire_access_tokens(Some(&who.mailbox_id));
    app.sync_now(&who.user).await;
    receiver.events(1, &["connection.reauth_required"]).await;
    let gone = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/users/{}/microsoft/connection", who.user.id),
            Some(&who.user.token),
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{gone:?}");
    receiver.events(1, &["connection.disconnected"]).await;
    for r in receiver.received() {
        assert!(verify(&r, &secret));
    }
}

#[tokio::test]
async fn a_cursor_older_than_the_feed_keeps_is_gone() {
    let app = app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let user = app.account(Role::User, Some(org)).await;
    create_event(&app, &user, "Old").await;
    // On PostgreSQL an event shows once every older transaction of the server ended.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let cursor = loop {
        let first = app.get("/api/v1/changes", &admin.token).await;
        if let Some(cursor) = first.body["items"][0]["cursor"].as_str() {
            break cursor.to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "{first:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    create_event(&app, &user, "Newer").await;
    // The dispatcher has fanned both out; then retention removes them.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let state = m365_sync::domain::changes::log_state(&app.db)
            .await
            .unwrap();
        if state.dispatched_through >= 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    m365_sync::jobs::retention::prune(&app.db, Utc::now() + chrono::Duration::days(1), 100)
        .await
        .unwrap();
    let gone = app
        .get(&format!("/api/v1/changes?after={cursor}"), &admin.token)
        .await;
    assert_eq!(gone.status, StatusCode::GONE, "{gone:?}");
    assert_eq!(gone.code(), "cursor_expired");
    // Without a cursor the feed starts where it now begins.
    let fresh = app.get("/api/v1/changes", &admin.token).await;
    assert_eq!(fresh.status, StatusCode::OK);
    assert_eq!(fresh.body["items"], json!([]));
    let resumed = app
        .get(
            &format!(
                "/api/v1/changes?after={}",
                fresh.body["next_cursor"].as_str().unwrap()
            ),
            &admin.token,
        )
        .await;
    assert_eq!(resumed.status, StatusCode::OK);
}

/// The feed's events, read until `n` have shown or `within` has passed.
async fn feed_until(app: &TestApp, account: &Account, n: usize, within: Duration) -> Vec<Value> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let page = app.get("/api/v1/changes", &account.token).await;
        let items = page.body["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= n || std::time::Instant::now() >= deadline {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_transaction_left_open_in_another_database_does_not_hold_the_feed_back() {
    let app = app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let user = app.account(Role::User, Some(org)).await;
    // On PostgreSQL transaction ids are shared by every database of the server: a transaction
    // of another database that holds one (here the server's maintenance database, as another
    // application's would) may not delay this log's events until the settle limit.
    let elsewhere = match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            let other = m365_sync::db::connect_url(&url).await.unwrap();
            let tx = other.begin().await.unwrap();
            tx.execute_unprepared("SELECT pg_current_xact_id()")
                .await
                .unwrap();
            Some((other, tx))
        }
        _ => None,
    };
    create_event(&app, &user, "Planning").await;
    let items = feed_until(&app, &admin, 1, Duration::from_secs(10)).await;
    assert_eq!(items.len(), 1, "the event is held back: {items:?}");
    assert_eq!(items[0]["type"], "calendar_event.created");
    if let Some((other, tx)) = elsewhere {
        tx.rollback().await.unwrap();
        other.close().await.unwrap();
    }
}

/// The item ids of the feed's page after `cursor`, and the page's `next_cursor`.
async fn ids_after(app: &TestApp, account: &Account, cursor: &str) -> (Vec<Value>, String) {
    let page = app
        .get(&format!("/api/v1/changes?after={cursor}"), &account.token)
        .await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    let ids = page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["id"].clone())
        .collect();
    (ids, page.body["next_cursor"].as_str().unwrap().to_owned())
}

/// Two transactions record an event each, and the one that numbered its event first commits
/// last. Whichever of the two began first (holds the older transaction id), the event committed
/// first is read at once, and the other is read behind the cursor the first read handed out.
#[tokio::test]
async fn an_event_numbered_earlier_but_committed_later_is_not_skipped() {
    use m365_sync::domain::changes::{self, ItemChange, ItemKind, Origin};
    let app = app().await;
    if app.db.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
        // SQLite commits one writer at a time, in the order it numbers events.
        return;
    }
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let user = app.account(Role::User, Some(org)).await;
    let mut cursor = app.get("/api/v1/changes", &admin.token).await.body["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    for open_began_first in [true, false] {
        let first = app.db.begin().await.unwrap();
        first
            .execute_unprepared("SELECT pg_current_xact_id()")
            .await
            .unwrap();
        let second = app.db.begin().await.unwrap();
        second
            .execute_unprepared("SELECT pg_current_xact_id()")
            .await
            .unwrap();
        let (open, committing) = if open_began_first {
            (first, second)
        } else {
            (second, first)
        };
        let (early, late) = (Uuid::now_v7(), Uuid::now_v7());
        for (tx, id) in [(&open, early), (&committing, late)] {
            changes::item(
                tx,
                ItemKind::CalendarEvent,
                ItemChange::Updated,
                user.id,
                id,
                2,
                Origin::Microsoft,
            )
            .await
            .unwrap();
        }
        committing.commit().await.unwrap();
        let (ids, next) = ids_after(&app, &admin, &cursor).await;
        assert_eq!(ids, [json!(late)], "open began first: {open_began_first}");
        cursor = next;
        open.commit().await.unwrap();
        let (ids, next) = ids_after(&app, &admin, &cursor).await;
        assert_eq!(ids, [json!(early)], "open began first: {open_began_first}");
        cursor = next;
    }
}

/// Writers record events in overlapping transactions (each takes its transaction id, waits,
/// records, waits and commits) while a reader follows the feed page by page: the reader sees
/// every event exactly once, and each item's versions in the order they were committed.
#[tokio::test]
async fn a_reader_following_the_feed_during_overlapping_writes_sees_every_event_once_in_order() {
    use m365_sync::domain::changes::{self, ItemChange, ItemKind, Origin};
    const WRITERS: u64 = 6;
    const VERSIONS: u64 = 12;
    let app = app().await;
    let postgres = app.db.get_database_backend() == sea_orm::DatabaseBackend::Postgres;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let user = app.account(Role::User, Some(org)).await;
    let items: Vec<Uuid> = (0..WRITERS).map(|_| Uuid::now_v7()).collect();
    let writers: Vec<_> = items
        .iter()
        .enumerate()
        .map(|(w, item)| {
            let (db, item, user_id) = (app.db.clone(), *item, user.id);
            tokio::spawn(async move {
                for version in 1..=VERSIONS {
                    let pause = Duration::from_millis((w as u64 * 7 + version * 3) % 17);
                    let tx = m365_sync::db::begin_write(&db).await.unwrap();
                    if postgres {
                        tx.execute_unprepared("SELECT pg_current_xact_id()")
                            .await
                            .unwrap();
                    }
                    tokio::time::sleep(pause).await;
                    changes::item(
                        &tx,
                        ItemKind::Task,
                        ItemChange::Updated,
                        user_id,
                        item,
                        version as i64,
                        Origin::Api,
                    )
                    .await
                    .unwrap();
                    tokio::time::sleep(pause / 2).await;
                    tx.commit().await.unwrap();
                }
            })
        })
        .collect();
    let mut seen: Vec<(String, i64)> = Vec::new();
    let mut cursor = String::from("0");
    let expected = (WRITERS * VERSIONS) as usize;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < expected && std::time::Instant::now() < deadline {
        let page = app
            .get(
                &format!("/api/v1/changes?after={cursor}&limit=5"),
                &admin.token,
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{page:?}");
        for event in page.body["items"].as_array().unwrap() {
            seen.push((
                event["data"]["id"].as_str().unwrap().to_owned(),
                event["data"]["version"].as_i64().unwrap(),
            ));
        }
        cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
        if page.body["has_more"] != json!(true) {
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let page = app
        .get(&format!("/api/v1/changes?after={cursor}"), &admin.token)
        .await;
    assert_eq!(
        page.body["items"],
        json!([]),
        "events after the end: {page:?}"
    );
    assert_eq!(seen.len(), expected, "{seen:?}");
    for item in &items {
        let versions: Vec<i64> = seen
            .iter()
            .filter(|(id, _)| *id == item.to_string())
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(
            versions,
            (1..=VERSIONS as i64).collect::<Vec<_>>(),
            "item {item}: {seen:?}"
        );
    }
}
