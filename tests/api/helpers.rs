//! `spawn_app()`: the real server on a random port over a fresh database, and request helpers.
//!
//! Tests call the API through the generated Rust SDK (`m365-sync-sdk`, [`TestApp::sdk`])
//! wherever it can express the call, so the OpenAPI contract is exercised on every run; the raw
//! HTTP helpers ([`TestApp::request`] and friends) remain for what the SDK cannot send or read
//! (malformed or invalid bodies it would refuse before sending, explicit `null` members of merge
//! patches, the HTML OAuth callback, arbitrary headers).

use std::net::TcpListener;

use graph_emulator::Emulator;
use m365_sync::{
    config::{Keys, Settings},
    db,
    domain::{Role, users},
    startup::{AppState, Application},
};
use m365_sync_sdk::{ResponseValue, types};
use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use secrecy::SecretString;
use serde_json::Value;
use uuid::Uuid;

/// A password every test user gets.
pub const PASSWORD: &str = "correct horse battery staple";

/// The encryption key of every test app (tests inspect raw rows with it).
pub const ENCRYPTION_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// Log lines of every test app in this process, to check that no secret is ever logged.
pub mod logs {
    use std::{
        io::Write,
        sync::{Mutex, OnceLock},
    };

    static LINES: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();

    struct Sink;

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            LINES
                .get_or_init(Default::default)
                .lock()
                .unwrap()
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Sends the service's logs (everything at debug and above) to the shared buffer.
    pub fn capture() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_ansi(false)
            .with_writer(|| Sink)
            .try_init();
    }

    /// The error lines logged so far (their causes included), to explain a failure.
    pub fn errors() -> String {
        text()
            .lines()
            .filter(|line| line.contains("ERROR"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Everything logged so far.
    pub fn text() -> String {
        String::from_utf8_lossy(&LINES.get_or_init(Default::default).lock().unwrap()).into_owned()
    }
}

/// A per-test database: a SQLite file in a temporary directory, or a PostgreSQL database
/// created for the test and dropped after it.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl TestDb {
    async fn create() -> Self {
        match std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            Some(admin_url) => {
                let name = format!("m365_test_{}", Uuid::new_v4().simple());
                let admin = db::connect_url(&admin_url)
                    .await
                    .expect("connect TEST_DATABASE_URL");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create the test database");
                admin.close().await.ok();
                let base = admin_url
                    .rsplit_once('/')
                    .map_or(admin_url.as_str(), |(b, _)| b);
                Self {
                    url: format!("{base}/{name}"),
                    _dir: None,
                    postgres: Some((admin_url.clone(), name)),
                }
            }
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
                Self {
                    url,
                    _dir: Some(dir),
                    postgres: None,
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs outside async context: use a private runtime on a plain thread.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let admin = db::connect_url(&admin_url).await.ok()?;
                admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()?;
                admin.close().await.ok()
            })
        })
        .join();
    }
}

/// A running application and a client for it, with its own Microsoft emulator.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: DatabaseConnection,
    pub emulator: Emulator,
    settings: Settings,
    keys: Keys,
    handle: actix_web::dev::ServerHandle,
    _test_db: TestDb,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        // Stop the server without waiting (a Drop cannot await).
        drop(tokio::spawn(async move { handle.stop(false).await }));
    }
}

/// A response read into status, headers and JSON body.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Response {
    /// The `code` of a problem body (panics on anything else).
    pub fn code(&self) -> &str {
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "error responses are problem+json: {self:?}"
        );
        self.body["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no code in {}", self.body))
    }

    /// The `ETag` header.
    pub fn etag(&self) -> String {
        self.headers
            .get("etag")
            .expect("an ETag")
            .to_str()
            .unwrap()
            .to_owned()
    }
}

/// Starts the application on a random port with a fresh database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// [`spawn_app`] with changed settings.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    logs::capture();
    // reqwest is built without a default crypto provider (one TLS stack: rustls with ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let test_db = TestDb::create().await;
    let env = |_: &str| None;
    let mut settings = Settings::from_sources(None, &env).unwrap();
    settings.bind = "127.0.0.1:0".parse().unwrap();
    settings.database_url = test_db.url.clone();
    settings.http_workers = Some(1);
    // The embedded worker performs "sync now" at once; the scheduler runs only in the tests
    // that enable it, so that the other tests' Graph requests stay deterministic.
    settings.jobs.scheduler_tick_ms = 0;
    settings.jobs.poll_ms = 200;
    settings.jobs.worker_concurrency = 4;
    // Every test client connects from 127.0.0.1, with a pool per SDK client: no bound per
    // address (the test of the bound sets one).
    settings.max_connections_per_ip = 0;
    let emulator = Emulator::start().await;
    settings.identity_url = emulator.url();
    settings.graph_url = emulator.url();
    let keys = Keys {
        jwt_secret: SecretString::from("test-jwt-secret-test-jwt-secret-123456".to_owned()),
        encryption_key: SecretString::from(ENCRYPTION_KEY.to_owned()),
    };
    let db = db::connect(&settings).await.expect("connect");
    db::migrate(&db).await.expect("migrate");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    settings.public_url = format!("http://127.0.0.1:{port}");
    configure(&mut settings);
    let app = Application::with_listener(settings.clone(), &keys, db.clone(), listener).unwrap();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // Under actix-web's 5 s keep-alive, so that a test that pauses between requests
            // never sends on a connection the server is closing.
            .pool_idle_timeout(std::time::Duration::from_secs(2))
            .build()
            .unwrap(),
        db,
        emulator,
        settings,
        keys,
        handle,
        _test_db: test_db,
    }
}

/// A user of an organization whose Azure application is registered with the emulator, and a
/// mailbox to connect to (not connected yet).
#[derive(Clone, Debug)]
pub struct MailboxUser {
    pub admin: Account,
    pub org: Uuid,
    pub user: Account,
    pub client_id: String,
    pub client_secret: String,
    pub mailbox_id: String,
    pub upn: String,
}

/// An account created for a test, with its token.
#[derive(Clone, Debug)]
pub struct Account {
    pub id: Uuid,
    pub email: String,
    pub token: String,
}

/// The result of an SDK call.
pub type SdkResult<T> = Result<ResponseValue<T>, m365_sync_sdk::Error<types::Problem>>;

/// The problem of an SDK call that must fail with `status`: panics unless the service answered
/// that status with an `application/problem+json` body the SDK could read.
#[track_caller]
pub fn problem<T: std::fmt::Debug>(
    result: SdkResult<T>,
    status: StatusCode,
) -> ResponseValue<types::Problem> {
    match result {
        Err(m365_sync_sdk::Error::ErrorResponse(response)) => {
            assert_eq!(response.status(), status, "{response:?}");
            assert_eq!(
                response
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok()),
                Some("application/problem+json"),
                "error responses are problem+json: {response:?}"
            );
            assert_eq!(
                (*response).status,
                i32::from(status.as_u16()),
                "the problem's status is the response's"
            );
            response
        }
        other => panic!("expected a {status} problem, got {other:?}"),
    }
}

/// The `ETag` header of an SDK response.
#[track_caller]
pub fn etag<T>(response: &ResponseValue<T>) -> String {
    response
        .headers()
        .get("etag")
        .expect("an ETag")
        .to_str()
        .unwrap()
        .to_owned()
}

/// An SDK value as JSON (to compare it with `json!` literals).
#[track_caller]
pub fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

/// An SDK request body from a JSON literal; panics when the SDK's type would not send exactly
/// that JSON (it leaves out `null` members and rewrites values it parses, such as an instant's
/// offset): such bodies go as raw HTTP.
#[track_caller]
pub fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(body: &Value) -> T {
    let typed: T = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(&to_json(&typed), body, "the SDK sends this body as it is");
    typed
}

/// A JSON value without its `null` members (as the SDK's types serialise an absent value).
pub fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(members) => Value::Object(
            members
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

impl TestApp {
    /// An SDK client that sends `token` as its bearer token.
    pub fn sdk(&self, token: &str) -> m365_sync_sdk::Client {
        m365_sync_sdk::Client::with_token(&self.address, token).unwrap()
    }

    /// An SDK client without a token.
    pub fn sdk_anonymous(&self) -> m365_sync_sdk::Client {
        m365_sync_sdk::Client::anonymous(&self.address).unwrap()
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        read(request.send().await.expect("request failed")).await
    }

    /// Sends a request with an optional bearer token, extra headers (raw bytes, so that invalid
    /// values can be sent) and a raw body (sent as JSON); returns the response and its body's
    /// exact bytes.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &[u8])],
        body: Option<&str>,
    ) -> (Response, Vec<u8>) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(
                *name,
                reqwest::header::HeaderValue::from_bytes(value).unwrap(),
            );
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let response = request.send().await.expect("request failed");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap().to_vec();
        let text = String::from_utf8_lossy(&bytes);
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text.into_owned()))
        };
        (
            Response {
                status,
                headers,
                body,
            },
            bytes,
        )
    }

    /// Creates an API key as `creator` (`body` as `POST /api/v1/api-keys` takes it); returns
    /// the create response's body (with `secret`).
    pub async fn api_key(&self, creator: &Account, body: Value) -> Value {
        let response = self.post("/api/v1/api-keys", &creator.token, body).await;
        assert_eq!(response.status, StatusCode::CREATED, "{response:?}");
        response.body
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.request(Method::POST, path, Some(token), Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Response {
        self.request(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    /// Whether `needle` appears in clear anywhere in the database: the SQLite files (database
    /// and write-ahead log) byte by byte, or every row of every table as text on PostgreSQL.
    pub async fn raw_database_contains(&self, needle: &str) -> bool {
        if let Some(dir) = &self._test_db._dir {
            return std::fs::read_dir(dir.path()).unwrap().any(|entry| {
                let bytes = std::fs::read(entry.unwrap().path()).unwrap_or_default();
                bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
            });
        }
        // Binary columns print as hex in a row's text: look for the needle's hex too.
        let hex: String = needle.bytes().map(|b| format!("{b:02x}")).collect();
        let tables = [
            "users",
            "organizations",
            "microsoft_settings",
            "azure_app_settings",
            "microsoft_connections",
            "oauth_states",
            "api_keys",
            "idempotency_keys",
            "webhook_endpoints",
            "webhook_deliveries",
            "change_events",
        ];
        for table in tables {
            let sql = format!(
                "SELECT count(*) AS n FROM {table} t WHERE position($1 in t::text) > 0 OR position($2 in t::text) > 0"
            );
            let row = self
                .db
                .query_one_raw(sea_orm::Statement::from_sql_and_values(
                    sea_orm::DatabaseBackend::Postgres,
                    sql,
                    [needle.into(), hex.clone().into()],
                ))
                .await
                .unwrap()
                .unwrap();
            if row.try_get::<i64>("", "n").unwrap() > 0 {
                return true;
            }
        }
        false
    }

    /// The state a process on the app's database and emulator builds (its own pool).
    pub async fn state_with(&self, configure: impl FnOnce(&mut Settings)) -> AppState {
        let mut settings = self.settings.clone();
        configure(&mut settings);
        let db = db::connect(&settings).await.unwrap();
        AppState::new(settings, &self.keys, db).unwrap()
    }

    /// The environment of an `m365-sync worker` process on the app's database and emulator.
    pub fn worker_env(&self, data_dir: &std::path::Path) -> Vec<(String, String)> {
        use secrecy::ExposeSecret;
        [
            ("M365_SYNC_DATABASE_URL", self.settings.database_url.clone()),
            ("M365_SYNC_DATA_DIR", data_dir.display().to_string()),
            ("M365_SYNC_IDENTITY_URL", self.settings.identity_url.clone()),
            ("M365_SYNC_GRAPH_URL", self.settings.graph_url.clone()),
            ("M365_SYNC_PUBLIC_URL", self.settings.public_url.clone()),
            (
                "M365_SYNC_JWT_SECRET",
                self.keys.jwt_secret.expose_secret().to_owned(),
            ),
            (
                "M365_SYNC_ENCRYPTION_KEY",
                self.keys.encryption_key.expose_secret().to_owned(),
            ),
            ("M365_SYNC_CACHE_TTL_MS", "0".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Another instance of the service on the same database, as a second process would be
    /// (its own pool, caches and in-process locks). Returns its address; it stops with the
    /// test's runtime.
    pub async fn second_instance(&self) -> String {
        let db = db::connect(&self.settings).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let app =
            Application::with_listener(self.settings.clone(), &self.keys, db, listener).unwrap();
        tokio::spawn(app.run_until_stopped());
        format!("http://127.0.0.1:{port}")
    }

    /// An organization with its Azure application registered (multi-tenant, `common`), a
    /// user in it, and a mailbox in the emulator.
    pub async fn mailbox_user(&self) -> MailboxUser {
        let admin = self.admin().await;
        let org = self.organization(&admin, "Contoso").await;
        let user = self.account(Role::User, Some(org)).await;
        let registration = self.emulator.create_app(graph_emulator::AppSpec {
            redirect_uris: vec![format!("{}/api/v1/microsoft/oauth/callback", self.address)],
            multi_tenant: true,
            ..Default::default()
        });
        let upn = format!("adele-{}@contoso.com", Uuid::new_v4().simple());
        let mailbox = self
            .emulator
            .create_user(graph_emulator::UserSpec {
                user_principal_name: upn.clone(),
                display_name: "Adele Vance".into(),
                ..Default::default()
            })
            .unwrap();
        let patch = types::ApplicationSettingsPatch {
            client_id: Some(registration.client_id.parse().unwrap()),
            client_secret: Some(registration.client_secret.parse().unwrap()),
            tenant: Some("common".parse().unwrap()),
        };
        self.sdk(&admin.token)
            .update_global_application_settings(None, &patch)
            .await
            .unwrap();
        MailboxUser {
            admin,
            org,
            user,
            client_id: registration.client_id,
            client_secret: registration.client_secret,
            mailbox_id: mailbox.id,
            upn,
        }
    }

    /// Runs the popup flow for `who` as a browser would, and completes it as their front end
    /// would: the completion's answer, or the callback's page when the sign-in failed.
    pub async fn sign_in(&self, who: &MailboxUser, login_hint: &str) -> Response {
        let body = types::StartConnect {
            login_hint: Some(login_hint.to_owned()),
        };
        let started = self
            .sdk(&who.user.token)
            .start_connection(&who.user.id, Some(&body))
            .await
            .unwrap();
        assert_eq!(started.status(), StatusCode::OK, "{started:?}");
        let url = &started.authorization_url;
        let redirect = self.client.get(url).send().await.unwrap();
        assert_eq!(
            redirect.status(),
            StatusCode::FOUND,
            "Microsoft redirects back"
        );
        let location = redirect.headers()["location"].to_str().unwrap().to_owned();
        let page = read(self.client.get(location).send().await.unwrap()).await;
        match page.body.as_str().and_then(completion_of) {
            Some(completion) => self.complete_connect(&who.user, &completion).await,
            None => page,
        }
    }

    /// Completes Connect for `user` with the `completion` a sign-in handed over, as the front
    /// end that started it does.
    pub async fn complete_connect(&self, user: &Account, completion: &str) -> Response {
        let path = format!("/api/v1/users/{}/microsoft/connection/complete", user.id);
        self.post(
            &path,
            &user.token,
            serde_json::json!({"completion": completion}),
        )
        .await
    }

    /// A [`mailbox_user`](Self::mailbox_user) whose mailbox is connected.
    pub async fn connected_user(&self) -> MailboxUser {
        let who = self.mailbox_user().await;
        let page = self.sign_in(&who, &who.upn.clone()).await;
        assert_eq!(
            page.status,
            StatusCode::OK,
            "{page:?}\nerrors logged: {}",
            logs::errors()
        );
        who
    }

    /// Sync now for `user` (every enabled resource), waiting until the runs are over; returns
    /// the runs, calendar first. Every test that synchronizes goes through here.
    pub async fn sync_now(&self, user: &Account) -> Vec<Value> {
        let path = format!("/api/v1/users/{}/microsoft/sync", user.id);
        let response = self.post(&path, &user.token, serde_json::json!({})).await;
        assert_eq!(response.status, StatusCode::ACCEPTED, "{response:?}");
        let job = self.wait_for_job(user, &response.body).await;
        job["runs"].as_array().unwrap().clone()
    }

    /// Every Graph read of calendar data (events, series masters, `/instances`, calendarView and
    /// its delta; alone or as an item of a `$batch`) since request number `from` of the
    /// emulator's log asks for its times in UTC (`Prefer: outlook.timezone="UTC"`, the zone the
    /// sync reads in). Returns how many reads there were.
    pub fn assert_calendar_reads_prefer_utc(&self, from: usize) -> usize {
        let reads: Vec<graph_emulator::LoggedRequest> = self.emulator.request_log()[from..]
            .iter()
            .filter(|r| r.method == "GET")
            .filter(|r| {
                [
                    "/v1.0/me/events",
                    "/v1.0/me/calendarView",
                    "/v1.0/me/calendar/",
                ]
                .iter()
                .any(|p| r.path.starts_with(p))
            })
            .cloned()
            .collect();
        let without: Vec<String> = reads
            .iter()
            .filter(|r| !r.prefer.contains("outlook.timezone=\"UTC\""))
            .map(|r| {
                format!(
                    "GET {}?{} (batch item: {}) Prefer: {:?}",
                    r.path, r.query, r.in_batch, r.prefer
                )
            })
            .collect();
        assert!(
            without.is_empty(),
            "reads without outlook.timezone=\"UTC\": {without:#?}"
        );
        reads.len()
    }

    /// Follows a sync job until every resource is done; returns the job.
    pub async fn wait_for_job(&self, user: &Account, job: &Value) -> Value {
        let path = format!(
            "/api/v1/users/{}/microsoft/sync/jobs/{}",
            user.id,
            job["id"].as_str().expect("a job id")
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let response = self.get(&path, &user.token).await;
            assert_eq!(response.status, StatusCode::OK, "{response:?}");
            if matches!(response.body["state"].as_str(), Some("done" | "skipped")) {
                return response.body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the job did not finish: {}",
                response.body
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Signs in and returns the access token.
    pub async fn token(&self, email: &str, password: &str) -> String {
        let body = types::TokenRequest {
            email: email.to_owned(),
            password: password.to_owned(),
        };
        let response = self.sdk_anonymous().create_token(&body).await;
        let token = response.unwrap_or_else(|e| panic!("sign-in failed: {e:?}"));
        token.into_inner().access_token
    }

    /// Creates a user directly in the database and signs them in.
    pub async fn account(&self, role: Role, organization_id: Option<Uuid>) -> Account {
        let email = format!("{}-{}@example.com", role.as_str(), Uuid::new_v4().simple());
        let input = users::CreateUser {
            email: email.clone(),
            password: PASSWORD.to_owned(),
            role: Some(role),
            display_name: None,
        };
        let user = users::create(
            &self.db,
            users::NewUser::parse(input, organization_id).unwrap(),
        )
        .await
        .unwrap();
        let token = self.token(&email, PASSWORD).await;
        Account {
            id: user.id,
            email,
            token,
        }
    }

    /// An admin without an organization.
    pub async fn admin(&self) -> Account {
        self.account(Role::Admin, None).await
    }

    /// Creates an organization through the API (as `admin`) and returns its id.
    pub async fn organization(&self, admin: &Account, name: &str) -> Uuid {
        let body = types::CreateOrganization {
            name: name.parse().unwrap(),
        };
        let response = self
            .sdk(&admin.token)
            .create_organization(None, &body)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "{response:?}");
        response.into_inner().id
    }
}

/// Reads a response; a non-JSON body becomes a JSON string.
/// The one-time completion a successful callback page hands its opener.
pub fn completion_of(page: &str) -> Option<String> {
    let at = page.find("\"completion\":\"")? + "\"completion\":\"".len();
    let end = page[at..].find('"')?;
    Some(page[at..at + end].to_owned())
}

pub async fn read(response: reqwest::Response) -> Response {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Response {
        status,
        headers,
        body,
    }
}
