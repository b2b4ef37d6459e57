//! Builds the application on a listener: state, middleware, routes, Swagger UI, and the
//! fallback that answers unknown paths with 404 and known paths with a wrong method with 405.
//! Also runs a worker process, whose only HTTP endpoints are the operations ones.

use std::{net::TcpListener, sync::Arc, time::Instant};

use actix_web::{
    App, HttpRequest, HttpResponse, HttpServer,
    body::MessageBody,
    dev::{ResourceDef, Server, ServerHandle, ServiceRequest, ServiceResponse},
    middleware::{self, Next},
    web,
};
use anyhow::Context;
use sea_orm::DatabaseConnection;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::{
    auth::{jwt::JwtKeys, throttle::Guards},
    config::{Keys, Settings},
    crypto::Cipher,
    db,
    domain::{
        connections::tokens::RefreshLocks,
        settings::microsoft::SettingsCache,
        users::{self, UserCache},
    },
    error::ApiError,
    graph::{GraphClient, Identity},
    jobs::{
        metrics::Metrics,
        queue::{Queue, WebhookTask},
        runtime::Jobs,
    },
    routes::{self, cors, extract, hardening, idempotency},
};

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The database.
    pub db: DatabaseConnection,
    /// The configuration.
    pub settings: Arc<Settings>,
    /// Signs and verifies the API's access tokens.
    pub jwt: JwtKeys,
    /// Encrypts secrets at rest.
    pub cipher: Cipher,
    /// Short-lived caches of hot rows.
    pub caches: Arc<Caches>,
    /// Microsoft's identity platform.
    pub identity: Identity,
    /// Microsoft Graph.
    pub graph: GraphClient,
    /// In-process single flight of token refreshes.
    pub refresh_locks: Arc<RefreshLocks>,
    /// The job queue.
    pub queue: Queue,
    /// The queue of webhook deliveries.
    pub webhook_queue: Queue<WebhookTask>,
    /// Sends webhook deliveries.
    pub webhook_sender: crate::jobs::webhooks::Sender,
    /// The requests the HTTP server is serving (webhook deliveries yield to them).
    pub api_load: crate::jobs::webhooks::ApiLoad,
    /// This process's metrics.
    pub metrics: Arc<Metrics>,
    /// Brute-force guards of sign-in and the password hashing bound.
    pub guards: Arc<Guards>,
}

impl AppState {
    /// The state of a process on `db`.
    ///
    /// # Errors
    /// When the keys are invalid or the HTTP client cannot be built.
    pub fn new(settings: Settings, keys: &Keys, db: DatabaseConnection) -> anyhow::Result<Self> {
        let http = crate::graph::http::client()?;
        let metrics = Arc::new(Metrics::new());
        let heartbeat = std::time::Duration::from_secs(settings.jobs.heartbeat_seconds);
        let queue = Queue::new(&db, heartbeat);
        let webhook_queue = Queue::new(&db, heartbeat);
        let api_load = crate::jobs::webhooks::ApiLoad::default();
        let webhook_sender =
            crate::jobs::webhooks::Sender::new(&settings.webhooks, api_load.clone())?;
        Ok(Self {
            db,
            jwt: JwtKeys::new(&keys.jwt_secret, settings.token_ttl_seconds),
            cipher: Cipher::from_base64_key(&keys.encryption_key)?,
            caches: Arc::new(Caches::new(std::time::Duration::from_millis(
                settings.cache_ttl_ms,
            ))),
            identity: Identity::new(http.clone(), &settings.identity_url),
            graph: GraphClient::new(http, &settings.graph_url)
                .with_request_counter(metrics.graph_requests.clone()),
            refresh_locks: Arc::new(RefreshLocks::default()),
            guards: Arc::new(Guards::new(&settings)),
            queue,
            webhook_queue,
            webhook_sender,
            api_load,
            metrics,
            settings: Arc::new(settings),
        })
    }

    /// The same state on `db`, another pool of the same database: caches, metrics, clients and
    /// the API's load are shared; the queues wake the same workers.
    pub fn on_database(&self, db: DatabaseConnection) -> Self {
        let heartbeat = std::time::Duration::from_secs(self.settings.jobs.heartbeat_seconds);
        Self {
            queue: self.queue.on(&db, heartbeat),
            webhook_queue: self.webhook_queue.on(&db, heartbeat),
            db,
            ..self.clone()
        }
    }
}

/// Short-lived caches of hot rows (see [`crate::domain::cache`]).
#[derive(Debug)]
pub struct Caches {
    /// Users by id.
    pub users: UserCache,
    /// Microsoft settings rows by scope key.
    pub settings: SettingsCache,
}

impl Caches {
    /// Caches whose entries live `ttl`.
    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            users: UserCache::new(ttl),
            settings: SettingsCache::new(ttl),
        }
    }
}

/// Paths of the document with their methods, for the 404/405 fallback.
struct RouteTable(Vec<(ResourceDef, Vec<String>)>);

impl RouteTable {
    fn from_document(doc: &utoipa::openapi::OpenApi) -> Self {
        let routes = doc
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let mut methods = Vec::new();
                for (name, present) in [
                    ("GET", item.get.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("DELETE", item.delete.is_some()),
                ] {
                    if present {
                        methods.push(name.to_owned());
                    }
                }
                (ResourceDef::new(path.as_str()), methods)
            })
            .collect();
        Self(routes)
    }
}

async fn fallback(
    req: HttpRequest,
    routes: web::Data<RouteTable>,
) -> Result<HttpResponse, ApiError> {
    let path = req.path();
    match routes.0.iter().find(|(def, _)| def.is_match(path)) {
        Some((_, methods)) => Err(ApiError::MethodNotAllowed(methods.clone())),
        None => Err(ApiError::NotFound("No such endpoint.".to_owned())),
    }
}

/// Logs one line per request: method, path (never the query string, which may carry OAuth
/// codes and states), status and latency.
async fn log_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.path().to_owned();
    let _serving = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.api_load.serving());
    let response = next.call(req).await?;
    tracing::info!(
        http.method = %method,
        http.path = %path,
        http.status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    Ok(response)
}

/// A running (or ready to run) HTTP server, with its embedded worker and scheduler unless
/// `jobs.embedded_worker` is off.
pub struct Application {
    port: u16,
    server: Server,
    jobs: Option<Jobs>,
}

impl Application {
    /// Connects to the database, runs pending migrations, creates the bootstrap admin if
    /// configured, binds the configured address and builds the server.
    ///
    /// # Errors
    /// When keys, database, migrations or the listener fail.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let keys = settings.resolve_keys()?;
        let db = db::connect(&settings).await?;
        db::migrate(&db).await?;
        ensure_bootstrap_admin(&db, &settings).await?;
        let listener = TcpListener::bind(settings.bind)
            .with_context(|| format!("Failed to bind {}", settings.bind))?;
        Self::with_listener(settings, &keys, db, listener)
    }

    /// Builds the server on an existing listener and database (tests bind port 0).
    ///
    /// # Errors
    /// When the keys are invalid or the server cannot start listening.
    pub fn with_listener(
        settings: Settings,
        keys: &Keys,
        db: DatabaseConnection,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        let port = listener.local_addr()?.port();
        let workers = settings.http_workers;
        let state = AppState::new(settings, keys, db)?;
        let jobs = if state.settings.jobs.embedded_worker {
            Some(Jobs::start_embedded(state.clone())?)
        } else {
            None
        };
        let state = web::Data::new(state);
        let doc = crate::openapi::document();
        let routes = web::Data::new(RouteTable::from_document(&doc));
        let idempotent = web::Data::new(idempotency::IdempotentRoutes::from_document(&doc));
        let limit = extract::BodyLimit(state.settings.max_body_bytes);
        let body_timeout = extract::BodyTimeout(std::time::Duration::from_millis(
            state.settings.body_timeout_ms,
        ));
        let per_address = state.settings.max_connections_per_ip;
        let server = HttpServer::new(move || {
            let (app, _) = App::new()
                .app_data(state.clone())
                .app_data(routes.clone())
                .app_data(idempotent.clone())
                .app_data(limit)
                .app_data(body_timeout)
                .app_data(extract::query_config())
                .app_data(extract::path_config())
                .wrap(middleware::from_fn(idempotency::handle))
                .wrap(middleware::from_fn(cors::handle))
                .wrap(middleware::from_fn(hardening::guard))
                .wrap(middleware::from_fn(log_request))
                .into_utoipa_app()
                .configure(routes::configure)
                .split_for_parts();
            app.service(
                SwaggerUi::new("/swagger-ui/{_:.*}").url("/api-docs/openapi.json", doc.clone()),
            )
            .default_service(web::to(fallback))
        })
        .on_connect(hardening::count_connections(per_address))
        .listen(listener)?
        // Signals are handled once for the server and the jobs: see `run_until_stopped`.
        .disable_signals();
        let server = match workers {
            Some(n) => server.workers(n),
            None => server,
        }
        .run();
        Ok(Self { port, server, jobs })
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server gracefully.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM/SIGINT or [`ServerHandle::stop`]; in-flight requests finish
    /// first, then the embedded worker stops (see [`Jobs::shutdown`]).
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let signals = tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("Stopping: finishing requests and runs in progress");
            handle.stop(true).await;
        });
        let result = self.server.await;
        signals.abort();
        if let Some(jobs) = self.jobs {
            jobs.shutdown().await;
        }
        result
    }
}

/// The operations endpoints alone (`/healthz`, `/readyz`, `/metrics`, with the handlers of the
/// API server) on `listener`: a worker process's metrics are counted in that process, so it
/// serves them itself.
///
/// # Errors
/// When the server cannot listen.
pub fn operations_server(state: AppState, listener: TcpListener) -> anyhow::Result<Server> {
    let state = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(middleware::from_fn(hardening::guard))
            .wrap(middleware::from_fn(log_request))
            .service(routes::health::healthz)
            .service(routes::health::readyz)
            .service(routes::metrics::get_metrics)
            .default_service(web::to(no_such_endpoint))
    })
    .listen(listener)?
    // Signals are handled once for the server and the jobs: see `run_worker`.
    .disable_signals()
    .workers(1)
    .run();
    Ok(server)
}

async fn no_such_endpoint() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("No such endpoint.".to_owned()))
}

/// Runs a worker process (`m365-sync worker`): pending migrations, then background
/// synchronization, and the operations endpoints when `worker_listen` is set, until
/// SIGTERM/SIGINT; then the jobs stop (see [`Jobs::shutdown`]), and the endpoints last.
///
/// # Errors
/// When keys, database, migrations or the listener fail.
pub async fn run_worker(settings: Settings) -> anyhow::Result<()> {
    let keys = settings.resolve_keys()?;
    let db = db::connect(&settings).await?;
    db::migrate(&db).await?;
    let listener = settings
        .worker_listen
        .map(|addr| TcpListener::bind(addr).with_context(|| format!("Failed to bind {addr}")))
        .transpose()?;
    let state = AppState::new(settings, &keys, db)?;
    let operations = match listener {
        Some(listener) => {
            let address = listener.local_addr()?;
            let server = operations_server(state.clone(), listener)?;
            tracing::info!(listen = %address, "The worker serves /healthz, /readyz and /metrics");
            Some((server.handle(), tokio::spawn(server)))
        }
        None => None,
    };
    let jobs = Jobs::start(state);
    shutdown_signal().await;
    tracing::info!("Stopping: finishing runs in progress");
    jobs.shutdown().await;
    if let Some((handle, server)) = operations {
        handle.stop(true).await;
        server
            .await
            .context("The operations server panicked")?
            .context("The operations server failed")?;
    }
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM: the one place the process listens for them.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = interrupt => {}
            () = terminate => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// Creates the admin named by `M365_SYNC_ADMIN_EMAIL` / `M365_SYNC_ADMIN_PASSWORD` when both
/// are set and no admin exists yet.
///
/// # Errors
/// When the values are invalid or the database fails.
pub async fn ensure_bootstrap_admin(
    db: &DatabaseConnection,
    settings: &Settings,
) -> anyhow::Result<()> {
    use secrecy::ExposeSecret;
    let (Some(email), Some(password)) = (&settings.admin_email, &settings.admin_password) else {
        return Ok(());
    };
    if users::admin_exists(db)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
    {
        return Ok(());
    }
    let input = users::CreateUser {
        email: email.clone(),
        password: password.expose_secret().to_owned(),
        role: Some(crate::domain::Role::Admin),
        display_name: None,
    };
    let new = users::NewUser::parse(input, None).map_err(|e| {
        anyhow::anyhow!(
            "M365_SYNC_ADMIN_EMAIL/PASSWORD are invalid: {:?}",
            e.problem().errors
        )
    })?;
    let user = users::create(db, new)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    tracing::info!(user.id = %user.id, user.email = %user.email, "Created the bootstrap admin");
    Ok(())
}
