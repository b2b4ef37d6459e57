//! Typed configuration: defaults, then an optional TOML file, then environment variables.
//!
//! Every key of the TOML file has an environment variable of the same name in upper case with
//! the `M365_SYNC_` prefix (`bind` → `M365_SYNC_BIND`); `DATABASE_URL` is also read for the
//! database. Secrets are [`SecretString`]s, so `Debug` and logs never show them.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Default bind address of the HTTP server.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// Microsoft identity platform base URL.
pub const DEFAULT_IDENTITY_URL: &str = "https://login.microsoftonline.com";
/// Microsoft Graph base URL.
pub const DEFAULT_GRAPH_URL: &str = "https://graph.microsoft.com";

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The whole configuration of one process.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Address the HTTP server listens on. Default `127.0.0.1:8080`.
    pub bind: SocketAddr,
    /// Address `m365-sync worker` serves `/healthz`, `/readyz` and `/metrics` on (it has no
    /// API). Default: none, the worker listens on nothing; `worker --listen` sets it too.
    pub worker_listen: Option<SocketAddr>,
    /// Directory for the SQLite database and generated secrets. Default `./data`.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`. Default: `m365-sync.db` in `data_dir`.
    pub database_url: String,
    /// HMAC key for the API's JWTs. Generated into `data_dir` when not configured.
    pub jwt_secret: Option<SecretString>,
    /// Base64 of 32 bytes: the AES-256-GCM key for secrets at rest. Generated into `data_dir`
    /// when not configured.
    pub encryption_key: Option<SecretString>,
    /// Lifetime of the API's access tokens, in seconds. Default 3600.
    pub token_ttl_seconds: u64,
    /// Text or JSON log lines. Default text.
    pub log_format: LogFormat,
    /// Microsoft identity platform base URL (tests point it at the emulator).
    pub identity_url: String,
    /// Microsoft Graph base URL (tests point it at the emulator).
    pub graph_url: String,
    /// The URL this service is reached at from browsers; the OAuth redirect URI derives from
    /// it. Default `http://{bind}`.
    pub public_url: String,
    /// Origin of the front end that opens the Connect popup: the callback page posts its
    /// result to `window.opener` for this origin only. Default: the origin of `public_url`.
    pub frontend_origin: Option<String>,
    /// When set, the OAuth callback redirects here with the result in the query string
    /// instead of answering with the popup page.
    pub frontend_return_url: Option<String>,
    /// Origins (`scheme://host[:port]`) whose pages may call the API from a browser (CORS).
    /// None by default.
    pub cors_allowed_origins: Vec<String>,
    /// Largest request body accepted, in bytes. Default 524288.
    pub max_body_bytes: usize,
    /// How long a client has to send a request body once its handler reads it, in
    /// milliseconds; slower bodies answer 408. Default 15000.
    pub body_timeout_ms: u64,
    /// Open connections one client address may hold at once; further requests on further
    /// connections answer 429 and are closed. 0: no limit (behind a reverse proxy, where every
    /// connection comes from the proxy's address, limit there). Default 64.
    pub max_connections_per_ip: usize,
    /// HTTP worker threads. Default: one per CPU core.
    pub http_workers: Option<usize>,
    /// How long users and settings stay cached, in milliseconds; 0 disables the cache.
    /// Writes by this process are seen at once; writes by other processes sharing the
    /// database within this time. Default 1000.
    pub cache_ttl_ms: u64,
    /// E-mail of the admin created on first start when no admin exists.
    pub admin_email: Option<String>,
    /// Password of that admin.
    pub admin_password: Option<SecretString>,
    /// Background synchronization: workers and scheduler.
    pub jobs: JobSettings,
    /// Brute-force protection of sign-in and of e-mail lookups.
    pub login: LoginSettings,
    /// Outbound webhooks.
    pub webhooks: WebhookSettings,
}

/// Outbound webhooks: where they may go, how fast they are dispatched, how long an attempt
/// may take, how retries are spaced and when a failing endpoint is disabled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Whether endpoints may be on loopback, private, link-local or reserved addresses.
    /// Default false (tests and the demo, whose receivers run on this machine, set it).
    pub allow_private_targets: bool,
    /// How often a worker looks for new events to deliver, in milliseconds. Default 250.
    pub dispatch_ms: u64,
    /// How long an endpoint has to answer an attempt with a 2xx, in milliseconds.
    /// Default 10000.
    pub timeout_ms: u64,
    /// The unit of the retry schedule, in milliseconds (see
    /// [`crate::jobs::webhooks::RETRY_STEPS`]). Default 5000: retries after 5 s, 5 min, 30 min,
    /// 2 h, 5 h, 10 h and 10 h.
    pub retry_base_ms: u64,
    /// An endpoint whose every attempt has failed for this many hours is disabled. Default 120
    /// (5 days).
    pub disable_after_hours: u64,
    /// Deliveries one process sends at a time per delivery job (two jobs run at once).
    /// Default 4: on a small machine, more delivers little faster and slows the API more.
    pub concurrency: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_private_targets: false,
            dispatch_ms: 250,
            timeout_ms: 10_000,
            retry_base_ms: 5_000,
            disable_after_hours: 120,
            concurrency: 4,
        }
    }
}

/// Brute-force protection: how many failures are allowed, over which window, and how many
/// passwords are hashed at once. Counters are per process. A limit of 0 turns it off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginSettings {
    /// Failed sign-ins allowed per account (e-mail, known or not) within the window; the next
    /// attempt answers 429 until the oldest failure leaves the window. Default 10.
    pub max_failures_per_account: usize,
    /// Failed sign-ins allowed per client address (IPv6: per /64) within the window. Default 50.
    pub max_failures_per_address: usize,
    /// The sliding window of both, in seconds. Default 900.
    pub failure_window_seconds: u64,
    /// Passwords hashed or verified at once through the API (sign-in, current passwords, new
    /// passwords); further ones wait.
    /// Default: half the CPU cores, at least 1.
    pub password_hashing_concurrency: usize,
    /// E-mail conflicts with addresses outside their organization an org admin may meet
    /// within `email_probe_window_seconds`; past it, creating users and changing e-mails
    /// answers 429 for the rest of the window. Default 5.
    pub email_probe_limit: usize,
    /// The window of `email_probe_limit`, in seconds. Default 3600.
    pub email_probe_window_seconds: u64,
    /// Reverse proxies whose `X-Forwarded-For` is believed: when a request comes from one,
    /// its client address is the rightmost address of that header that is not a trusted
    /// proxy. Default: none (the TCP peer is the client).
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for LoginSettings {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self {
            max_failures_per_account: 10,
            max_failures_per_address: 50,
            failure_window_seconds: 900,
            password_hashing_concurrency: (cores / 2).max(1),
            email_probe_limit: 5,
            email_probe_window_seconds: 3600,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Workers and scheduler of background synchronization. Durations are in milliseconds unless
/// the name says otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSettings {
    /// Whether `serve` runs a worker and the scheduler beside the API. Default true;
    /// `serve --no-worker` turns it off.
    pub embedded_worker: bool,
    /// Sync runs one process performs at a time. Default 4.
    pub worker_concurrency: usize,
    /// How often the scheduler looks for due work; 0 turns the scheduler off. Default 15000.
    pub scheduler_tick_ms: u64,
    /// How long one minute of the `sync_interval_minutes` setting lasts. Default 60000; demos
    /// and tests shorten it.
    pub interval_unit_ms: u64,
    /// How long a worker's claim on a user's resource lasts without renewal: after a crash,
    /// another worker takes over once it expires. Renewed every third of it. Default 60000.
    pub lease_ms: u64,
    /// How often an idle worker looks for queued jobs (jobs enqueued by the same process wake
    /// it at once). Default 1000.
    pub poll_ms: u64,
    /// Heartbeat of a worker in the job queue, in seconds; a job held by a worker that missed
    /// two heartbeats ([`crate::jobs::queue::MISSED_HEARTBEATS`]) is queued again: with the
    /// lease, what a crashed worker's runs wait before another worker takes them over.
    /// Default 30.
    pub heartbeat_seconds: u64,
    /// Delay before the first retry of a failed run, doubled at each failure in a row (with
    /// jitter, at most the sync interval, at least Microsoft's `Retry-After`). Default 30000.
    pub retry_base_ms: u64,
    /// On shutdown, how long runs in progress may take to finish; those still running then
    /// are interrupted, and their jobs and leases handed to other workers. Default 30000.
    pub shutdown_grace_ms: u64,
    /// How many days finished jobs, their queue entries and run records are kept (the last run
    /// of each user's resource always is); 0 keeps them forever. Default 30.
    pub history_days: u64,
    /// How many days deleted calendar events and tasks stay in the recycle bin (listed with
    /// `deleted=true`, restorable); older ones are treated as gone and purged, except those
    /// whose deletion has not reached Microsoft yet. 0 keeps them forever. Default 30.
    pub deleted_retention_days: u64,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            embedded_worker: true,
            worker_concurrency: 4,
            scheduler_tick_ms: 15_000,
            interval_unit_ms: 60_000,
            lease_ms: 60_000,
            poll_ms: 1000,
            heartbeat_seconds: 30,
            retry_base_ms: 30_000,
            shutdown_grace_ms: 30_000,
            history_days: 30,
            deleted_retention_days: 30,
        }
    }
}

/// The TOML file and the environment, before defaults are applied.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Layer {
    bind: Option<String>,
    worker_listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    jwt_secret: Option<SecretString>,
    encryption_key: Option<SecretString>,
    token_ttl_seconds: Option<u64>,
    log_format: Option<LogFormat>,
    identity_url: Option<String>,
    graph_url: Option<String>,
    public_url: Option<String>,
    max_body_bytes: Option<usize>,
    body_timeout_ms: Option<u64>,
    max_connections_per_ip: Option<usize>,
    frontend_origin: Option<String>,
    frontend_return_url: Option<String>,
    cors_allowed_origins: Option<String>,
    http_workers: Option<usize>,
    cache_ttl_ms: Option<u64>,
    admin_email: Option<String>,
    admin_password: Option<SecretString>,
    worker_concurrency: Option<u64>,
    scheduler_tick_ms: Option<u64>,
    interval_unit_ms: Option<u64>,
    lease_ms: Option<u64>,
    poll_ms: Option<u64>,
    heartbeat_seconds: Option<u64>,
    retry_base_ms: Option<u64>,
    shutdown_grace_ms: Option<u64>,
    history_days: Option<u64>,
    deleted_retention_days: Option<u64>,
    login_max_failures_per_account: Option<u64>,
    login_max_failures_per_address: Option<u64>,
    login_failure_window_seconds: Option<u64>,
    password_hashing_concurrency: Option<u64>,
    email_probe_limit: Option<u64>,
    email_probe_window_seconds: Option<u64>,
    trusted_proxies: Option<String>,
    webhook_allow_private_targets: Option<bool>,
    webhook_dispatch_ms: Option<u64>,
    webhook_timeout_ms: Option<u64>,
    webhook_retry_base_ms: Option<u64>,
    webhook_disable_after_hours: Option<u64>,
    webhook_concurrency: Option<u64>,
}

impl Layer {
    fn from_env(env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let var = |key: &str| env(&format!("M365_SYNC_{key}")).filter(|v| !v.is_empty());
        let parsed = |key: &str| -> anyhow::Result<Option<u64>> {
            var(key)
                .map(|v| {
                    v.parse()
                        .with_context(|| format!("M365_SYNC_{key} must be a number"))
                })
                .transpose()
        };
        let log_format = match var("LOG_FORMAT").as_deref() {
            None => None,
            Some("text") => Some(LogFormat::Text),
            Some("json") => Some(LogFormat::Json),
            Some(other) => bail!("M365_SYNC_LOG_FORMAT must be `text` or `json`, not `{other}`"),
        };
        Ok(Self {
            bind: var("BIND"),
            worker_listen: var("WORKER_LISTEN"),
            data_dir: var("DATA_DIR").map(PathBuf::from),
            database_url: var("DATABASE_URL")
                .or_else(|| env("DATABASE_URL").filter(|v| !v.is_empty())),
            jwt_secret: var("JWT_SECRET").map(SecretString::from),
            encryption_key: var("ENCRYPTION_KEY").map(SecretString::from),
            token_ttl_seconds: parsed("TOKEN_TTL_SECONDS")?,
            log_format,
            identity_url: var("IDENTITY_URL"),
            graph_url: var("GRAPH_URL"),
            public_url: var("PUBLIC_URL"),
            max_body_bytes: parsed("MAX_BODY_BYTES")?.map(|v| v as usize),
            http_workers: parsed("HTTP_WORKERS")?.map(|v| v as usize),
            body_timeout_ms: parsed("BODY_TIMEOUT_MS")?,
            max_connections_per_ip: parsed("MAX_CONNECTIONS_PER_IP")?.map(|v| v as usize),
            frontend_origin: var("FRONTEND_ORIGIN"),
            frontend_return_url: var("FRONTEND_RETURN_URL"),
            cors_allowed_origins: var("CORS_ALLOWED_ORIGINS"),
            cache_ttl_ms: parsed("CACHE_TTL_MS")?,
            admin_email: var("ADMIN_EMAIL"),
            admin_password: var("ADMIN_PASSWORD").map(SecretString::from),
            worker_concurrency: parsed("WORKER_CONCURRENCY")?,
            scheduler_tick_ms: parsed("SCHEDULER_TICK_MS")?,
            interval_unit_ms: parsed("INTERVAL_UNIT_MS")?,
            lease_ms: parsed("LEASE_MS")?,
            poll_ms: parsed("POLL_MS")?,
            heartbeat_seconds: parsed("HEARTBEAT_SECONDS")?,
            retry_base_ms: parsed("RETRY_BASE_MS")?,
            shutdown_grace_ms: parsed("SHUTDOWN_GRACE_MS")?,
            history_days: parsed("HISTORY_DAYS")?,
            deleted_retention_days: parsed("DELETED_RETENTION_DAYS")?,
            login_max_failures_per_account: parsed("LOGIN_MAX_FAILURES_PER_ACCOUNT")?,
            login_max_failures_per_address: parsed("LOGIN_MAX_FAILURES_PER_ADDRESS")?,
            login_failure_window_seconds: parsed("LOGIN_FAILURE_WINDOW_SECONDS")?,
            password_hashing_concurrency: parsed("PASSWORD_HASHING_CONCURRENCY")?,
            email_probe_limit: parsed("EMAIL_PROBE_LIMIT")?,
            email_probe_window_seconds: parsed("EMAIL_PROBE_WINDOW_SECONDS")?,
            trusted_proxies: var("TRUSTED_PROXIES"),
            webhook_allow_private_targets: match var("WEBHOOK_ALLOW_PRIVATE_TARGETS").as_deref() {
                None => None,
                Some("true" | "1") => Some(true),
                Some("false" | "0") => Some(false),
                Some(other) => bail!(
                    "M365_SYNC_WEBHOOK_ALLOW_PRIVATE_TARGETS must be `true` or `false`, not `{other}`"
                ),
            },
            webhook_dispatch_ms: parsed("WEBHOOK_DISPATCH_MS")?,
            webhook_timeout_ms: parsed("WEBHOOK_TIMEOUT_MS")?,
            webhook_retry_base_ms: parsed("WEBHOOK_RETRY_BASE_MS")?,
            webhook_disable_after_hours: parsed("WEBHOOK_DISABLE_AFTER_HOURS")?,
            webhook_concurrency: parsed("WEBHOOK_CONCURRENCY")?,
        })
    }

    /// Fields set in `over` replace those of `self`.
    fn overlay(self, over: Layer) -> Layer {
        Layer {
            bind: over.bind.or(self.bind),
            worker_listen: over.worker_listen.or(self.worker_listen),
            data_dir: over.data_dir.or(self.data_dir),
            database_url: over.database_url.or(self.database_url),
            jwt_secret: over.jwt_secret.or(self.jwt_secret),
            encryption_key: over.encryption_key.or(self.encryption_key),
            token_ttl_seconds: over.token_ttl_seconds.or(self.token_ttl_seconds),
            log_format: over.log_format.or(self.log_format),
            identity_url: over.identity_url.or(self.identity_url),
            graph_url: over.graph_url.or(self.graph_url),
            public_url: over.public_url.or(self.public_url),
            max_body_bytes: over.max_body_bytes.or(self.max_body_bytes),
            http_workers: over.http_workers.or(self.http_workers),
            body_timeout_ms: over.body_timeout_ms.or(self.body_timeout_ms),
            max_connections_per_ip: over.max_connections_per_ip.or(self.max_connections_per_ip),
            frontend_origin: over.frontend_origin.or(self.frontend_origin),
            frontend_return_url: over.frontend_return_url.or(self.frontend_return_url),
            cors_allowed_origins: over.cors_allowed_origins.or(self.cors_allowed_origins),
            cache_ttl_ms: over.cache_ttl_ms.or(self.cache_ttl_ms),
            admin_email: over.admin_email.or(self.admin_email),
            admin_password: over.admin_password.or(self.admin_password),
            worker_concurrency: over.worker_concurrency.or(self.worker_concurrency),
            scheduler_tick_ms: over.scheduler_tick_ms.or(self.scheduler_tick_ms),
            interval_unit_ms: over.interval_unit_ms.or(self.interval_unit_ms),
            lease_ms: over.lease_ms.or(self.lease_ms),
            poll_ms: over.poll_ms.or(self.poll_ms),
            heartbeat_seconds: over.heartbeat_seconds.or(self.heartbeat_seconds),
            retry_base_ms: over.retry_base_ms.or(self.retry_base_ms),
            shutdown_grace_ms: over.shutdown_grace_ms.or(self.shutdown_grace_ms),
            history_days: over.history_days.or(self.history_days),
            deleted_retention_days: over.deleted_retention_days.or(self.deleted_retention_days),
            login_max_failures_per_account: over
                .login_max_failures_per_account
                .or(self.login_max_failures_per_account),
            login_max_failures_per_address: over
                .login_max_failures_per_address
                .or(self.login_max_failures_per_address),
            login_failure_window_seconds: over
                .login_failure_window_seconds
                .or(self.login_failure_window_seconds),
            password_hashing_concurrency: over
                .password_hashing_concurrency
                .or(self.password_hashing_concurrency),
            email_probe_limit: over.email_probe_limit.or(self.email_probe_limit),
            email_probe_window_seconds: over
                .email_probe_window_seconds
                .or(self.email_probe_window_seconds),
            trusted_proxies: over.trusted_proxies.or(self.trusted_proxies),
            webhook_allow_private_targets: over
                .webhook_allow_private_targets
                .or(self.webhook_allow_private_targets),
            webhook_dispatch_ms: over.webhook_dispatch_ms.or(self.webhook_dispatch_ms),
            webhook_timeout_ms: over.webhook_timeout_ms.or(self.webhook_timeout_ms),
            webhook_retry_base_ms: over.webhook_retry_base_ms.or(self.webhook_retry_base_ms),
            webhook_disable_after_hours: over
                .webhook_disable_after_hours
                .or(self.webhook_disable_after_hours),
            webhook_concurrency: over.webhook_concurrency.or(self.webhook_concurrency),
        }
    }
}

impl Settings {
    /// Loads the configuration of this process: the TOML file named by `config_file` or
    /// `M365_SYNC_CONFIG`, if any, then the environment.
    ///
    /// # Errors
    /// When the file cannot be read or parsed, or a value is invalid.
    pub fn load(config_file: Option<&Path>) -> anyhow::Result<Self> {
        let env = |key: &str| std::env::var(key).ok();
        let file = config_file
            .map(Path::to_path_buf)
            .or_else(|| env("M365_SYNC_CONFIG").map(PathBuf::from));
        let toml = match &file {
            Some(path) => Some(std::fs::read_to_string(path).with_context(|| {
                format!("Failed to read the configuration file {}", path.display())
            })?),
            None => None,
        };
        Self::from_sources(toml.as_deref(), &env)
    }

    /// Builds the configuration from a TOML document and an environment lookup.
    ///
    /// # Errors
    /// When the TOML is invalid or a value does not parse.
    pub fn from_sources(
        toml: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let file: Layer = match toml {
            Some(text) => toml::from_str(text).context("Failed to parse the configuration file")?,
            None => Layer::default(),
        };
        let layer = file.overlay(Layer::from_env(env)?);
        let bind: SocketAddr = layer
            .bind
            .as_deref()
            .unwrap_or(DEFAULT_BIND)
            .parse()
            .context("`bind` must be an address such as 127.0.0.1:8080")?;
        let worker_listen: Option<SocketAddr> = layer
            .worker_listen
            .as_deref()
            .map(str::parse)
            .transpose()
            .context("`worker_listen` must be an address such as 127.0.0.1:9091")?;
        let data_dir = layer.data_dir.unwrap_or_else(|| PathBuf::from("./data"));
        let database_url = layer.database_url.unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("m365-sync.db").display()
            )
        });
        if !(database_url.starts_with("sqlite:") || database_url.starts_with("postgres")) {
            bail!("`database_url` must be a sqlite:// or postgres:// URL");
        }
        let public_url = layer.public_url.unwrap_or_else(|| format!("http://{bind}"));
        let defaults = JobSettings::default();
        let positive = |value: Option<u64>, default: u64, key: &str| -> anyhow::Result<u64> {
            match value {
                Some(0) => bail!("`{key}` must be greater than 0"),
                Some(v) => Ok(v),
                None => Ok(default),
            }
        };
        let jobs = JobSettings {
            embedded_worker: true,
            worker_concurrency: positive(
                layer.worker_concurrency,
                defaults.worker_concurrency as u64,
                "worker_concurrency",
            )? as usize,
            scheduler_tick_ms: layer
                .scheduler_tick_ms
                .unwrap_or(defaults.scheduler_tick_ms),
            interval_unit_ms: positive(
                layer.interval_unit_ms,
                defaults.interval_unit_ms,
                "interval_unit_ms",
            )?,
            lease_ms: positive(layer.lease_ms, defaults.lease_ms, "lease_ms")?,
            poll_ms: positive(layer.poll_ms, defaults.poll_ms, "poll_ms")?,
            heartbeat_seconds: positive(
                layer.heartbeat_seconds,
                defaults.heartbeat_seconds,
                "heartbeat_seconds",
            )?,
            retry_base_ms: positive(layer.retry_base_ms, defaults.retry_base_ms, "retry_base_ms")?,
            shutdown_grace_ms: layer
                .shutdown_grace_ms
                .unwrap_or(defaults.shutdown_grace_ms),
            history_days: layer.history_days.unwrap_or(defaults.history_days),
            deleted_retention_days: layer
                .deleted_retention_days
                .unwrap_or(defaults.deleted_retention_days),
        };
        let login_defaults = LoginSettings::default();
        let count = |value: Option<u64>, default: usize| {
            value.map_or(default, |v| usize::try_from(v).unwrap_or(usize::MAX))
        };
        let login = LoginSettings {
            max_failures_per_account: count(
                layer.login_max_failures_per_account,
                login_defaults.max_failures_per_account,
            ),
            max_failures_per_address: count(
                layer.login_max_failures_per_address,
                login_defaults.max_failures_per_address,
            ),
            failure_window_seconds: positive(
                layer.login_failure_window_seconds,
                login_defaults.failure_window_seconds,
                "login_failure_window_seconds",
            )?,
            password_hashing_concurrency: count(
                Some(positive(
                    layer.password_hashing_concurrency,
                    login_defaults.password_hashing_concurrency as u64,
                    "password_hashing_concurrency",
                )?),
                login_defaults.password_hashing_concurrency,
            ),
            email_probe_limit: count(layer.email_probe_limit, login_defaults.email_probe_limit),
            email_probe_window_seconds: positive(
                layer.email_probe_window_seconds,
                login_defaults.email_probe_window_seconds,
                "email_probe_window_seconds",
            )?,
            trusted_proxies: layer
                .trusted_proxies
                .as_deref()
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(|a| a.parse::<std::net::IpAddr>().map(|ip| ip.to_canonical()))
                .collect::<Result<_, _>>()
                .context("`trusted_proxies` must be IP addresses separated by commas")?,
        };
        let hook_defaults = WebhookSettings::default();
        let webhooks = WebhookSettings {
            allow_private_targets: layer
                .webhook_allow_private_targets
                .unwrap_or(hook_defaults.allow_private_targets),
            dispatch_ms: positive(
                layer.webhook_dispatch_ms,
                hook_defaults.dispatch_ms,
                "webhook_dispatch_ms",
            )?,
            timeout_ms: positive(
                layer.webhook_timeout_ms,
                hook_defaults.timeout_ms,
                "webhook_timeout_ms",
            )?,
            retry_base_ms: positive(
                layer.webhook_retry_base_ms,
                hook_defaults.retry_base_ms,
                "webhook_retry_base_ms",
            )?,
            disable_after_hours: positive(
                layer.webhook_disable_after_hours,
                hook_defaults.disable_after_hours,
                "webhook_disable_after_hours",
            )?,
            concurrency: positive(
                layer.webhook_concurrency,
                hook_defaults.concurrency as u64,
                "webhook_concurrency",
            )? as usize,
        };
        Ok(Self {
            login,
            webhooks,
            bind,
            worker_listen,
            data_dir,
            database_url,
            jwt_secret: layer.jwt_secret,
            encryption_key: layer.encryption_key,
            token_ttl_seconds: layer.token_ttl_seconds.unwrap_or(3600),
            log_format: layer.log_format.unwrap_or_default(),
            identity_url: trim_slash(
                layer
                    .identity_url
                    .as_deref()
                    .unwrap_or(DEFAULT_IDENTITY_URL),
            ),
            graph_url: trim_slash(layer.graph_url.as_deref().unwrap_or(DEFAULT_GRAPH_URL)),
            public_url: trim_slash(&public_url),
            max_body_bytes: layer.max_body_bytes.unwrap_or(512 * 1024),
            http_workers: layer.http_workers.filter(|n| *n > 0),
            body_timeout_ms: positive(layer.body_timeout_ms, 15_000, "body_timeout_ms")?,
            max_connections_per_ip: layer.max_connections_per_ip.unwrap_or(64),
            frontend_origin: layer.frontend_origin.map(|o| trim_slash(&o)),
            frontend_return_url: layer.frontend_return_url,
            cors_allowed_origins: origins(layer.cors_allowed_origins.as_deref())?,
            cache_ttl_ms: layer.cache_ttl_ms.unwrap_or(1000),
            admin_email: layer.admin_email,
            admin_password: layer.admin_password,
            jobs,
        })
    }

    /// Whether the database is SQLite.
    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }

    /// The JWT secret and the encryption key: the configured ones, or ones generated on first
    /// start and kept in the data directory (mode 0600), so restarts keep tokens and secrets
    /// readable.
    ///
    /// # Errors
    /// When a generated key cannot be written or read, or the encryption key is not base64 of
    /// 32 bytes.
    pub fn resolve_keys(&self) -> anyhow::Result<Keys> {
        let jwt_secret = match &self.jwt_secret {
            Some(secret) => secret.clone(),
            None => self.generated_secret("jwt_secret")?,
        };
        let encryption_key = match &self.encryption_key {
            Some(key) => key.clone(),
            None => self.generated_secret("encryption_key")?,
        };
        if jwt_secret.expose_secret().len() < 32 {
            bail!("the JWT secret must be at least 32 characters long");
        }
        Ok(Keys {
            jwt_secret,
            encryption_key,
        })
    }

    fn generated_secret(&self, name: &str) -> anyhow::Result<SecretString> {
        let path = self.data_dir.join(name);
        if path.exists() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("Failed to read {}", path.display()))?;
            return Ok(SecretString::from(text.trim().to_owned()));
        }
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("Failed to create {}", self.data_dir.display()))?;
        let value = crate::crypto::random_key_base64();
        write_private(&path, &value)?;
        tracing::warn!(
            file = %path.display(),
            "No {name} is configured: generated one and stored it in the data directory. \
             Configure it explicitly when several processes share a database."
        );
        Ok(SecretString::from(value))
    }
}

/// The keys this process signs and encrypts with.
#[derive(Clone, Debug)]
pub struct Keys {
    /// HMAC key of the API's JWTs.
    pub jwt_secret: SecretString,
    /// Base64 of the 32-byte AES-256-GCM key.
    pub encryption_key: SecretString,
}

fn trim_slash(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

/// Origins separated by commas, each `http(s)://host[:port]` (no path, no wildcard), as a
/// browser sends them in `Origin`.
fn origins(list: Option<&str>) -> anyhow::Result<Vec<String>> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|origin| {
            let origin = trim_slash(origin);
            let rest = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            match rest {
                Some(host) if !host.is_empty() && !host.contains(['/', '*', '?', '#', ' ']) => {
                    Ok(origin.to_ascii_lowercase())
                }
                _ => anyhow::bail!(
                    "`cors_allowed_origins`: `{origin}` is not an origin such as \
                     https://crm.example.com"
                ),
            }
        })
        .collect()
}

#[cfg(unix)]
fn write_private(path: &Path, value: &str) -> anyhow::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("Failed to create {}", path.display()))?;
    file.write_all(value.as_bytes())
        .with_context(|| format!("Failed to write {}", path.display()))
}

#[cfg(not(unix))]
fn write_private(path: &Path, value: &str) -> anyhow::Result<()> {
    std::fs::write(path, value).with_context(|| format!("Failed to write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn cors_origins_are_exact_origins() {
        assert_eq!(
            origins(Some(" https://CRM.example.com/, http://localhost:3000 ")).unwrap(),
            ["https://crm.example.com", "http://localhost:3000"]
        );
        assert!(origins(None).unwrap().is_empty());
        for bad in [
            "*",
            "crm.example.com",
            "https://*.example.com",
            "https://a.example/app",
        ] {
            assert!(origins(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_apply_without_any_configuration() {
        let settings = Settings::from_sources(None, &env_of(&[])).unwrap();
        assert_eq!(settings.bind.to_string(), DEFAULT_BIND);
        assert_eq!(settings.public_url, "http://127.0.0.1:8080");
        assert!(
            settings
                .database_url
                .starts_with("sqlite://./data/m365-sync.db")
        );
        assert_eq!(settings.identity_url, DEFAULT_IDENTITY_URL);
        assert_eq!(settings.log_format, LogFormat::Text);
        assert_eq!(
            settings.worker_listen, None,
            "a worker listens on nothing by default"
        );
    }

    #[test]
    fn environment_overrides_the_file_which_overrides_defaults() {
        let toml = "bind = \"0.0.0.0:9000\"\ngraph_url = \"http://file/\"\nlog_format = \"json\"";
        let env = env_of(&[
            ("M365_SYNC_GRAPH_URL", "http://env"),
            ("DATABASE_URL", "postgres://localhost/x"),
        ]);
        let settings = Settings::from_sources(Some(toml), &env).unwrap();
        assert_eq!(settings.bind.to_string(), "0.0.0.0:9000");
        assert_eq!(settings.graph_url, "http://env");
        assert_eq!(settings.database_url, "postgres://localhost/x");
        assert_eq!(settings.log_format, LogFormat::Json);
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let env = env_of(&[(
            "M365_SYNC_JWT_SECRET",
            "super-secret-value-that-is-long-enough",
        )]);
        let settings = Settings::from_sources(None, &env).unwrap();
        assert!(!format!("{settings:?}").contains("super-secret-value"));
    }

    #[test]
    fn unknown_file_keys_and_bad_values_are_rejected() {
        assert!(Settings::from_sources(Some("bnd = \"x\""), &env_of(&[])).is_err());
        assert!(Settings::from_sources(None, &env_of(&[("M365_SYNC_BIND", "nope")])).is_err());
        assert!(Settings::from_sources(None, &env_of(&[("M365_SYNC_LOG_FORMAT", "xml")])).is_err());
        assert!(Settings::from_sources(None, &env_of(&[("M365_SYNC_LEASE_MS", "0")])).is_err());
        let listen = env_of(&[("M365_SYNC_WORKER_LISTEN", "localhost")]);
        assert!(Settings::from_sources(None, &listen).is_err());
    }

    #[test]
    fn job_settings_come_from_the_file_and_the_environment() {
        let toml = "scheduler_tick_ms = 0\nlease_ms = 5000\nworker_listen = \"127.0.0.1:9091\"";
        let env = env_of(&[("M365_SYNC_WORKER_CONCURRENCY", "8")]);
        let settings = Settings::from_sources(Some(toml), &env).unwrap();
        assert_eq!(
            settings.worker_listen,
            Some("127.0.0.1:9091".parse().unwrap())
        );
        let jobs = settings.jobs;
        assert_eq!(jobs.scheduler_tick_ms, 0);
        assert_eq!(jobs.lease_ms, 5000);
        assert_eq!(jobs.worker_concurrency, 8);
        assert_eq!(jobs.interval_unit_ms, 60_000);
        assert!(jobs.embedded_worker);
    }

    #[test]
    fn body_timeout_and_connection_bound_have_defaults_and_can_be_set() {
        let defaults = Settings::from_sources(None, &env_of(&[])).unwrap();
        assert_eq!(defaults.body_timeout_ms, 15_000);
        assert_eq!(defaults.max_connections_per_ip, 64);
        let env = env_of(&[
            ("M365_SYNC_BODY_TIMEOUT_MS", "500"),
            ("M365_SYNC_MAX_CONNECTIONS_PER_IP", "0"),
        ]);
        let set = Settings::from_sources(None, &env).unwrap();
        assert_eq!(set.body_timeout_ms, 500);
        assert_eq!(set.max_connections_per_ip, 0);
        let zero = env_of(&[("M365_SYNC_BODY_TIMEOUT_MS", "0")]);
        assert!(Settings::from_sources(None, &zero).is_err());
    }

    #[test]
    fn deleted_retention_days_come_from_the_file_and_the_environment() {
        let defaults = Settings::from_sources(None, &env_of(&[])).unwrap();
        assert_eq!(defaults.jobs.deleted_retention_days, 30);
        let file = Settings::from_sources(Some("deleted_retention_days = 0"), &env_of(&[]));
        assert_eq!(file.unwrap().jobs.deleted_retention_days, 0);
        let env = env_of(&[("M365_SYNC_DELETED_RETENTION_DAYS", "7")]);
        let both = Settings::from_sources(Some("deleted_retention_days = 0"), &env).unwrap();
        assert_eq!(both.jobs.deleted_retention_days, 7);
        let bad = env_of(&[("M365_SYNC_DELETED_RETENTION_DAYS", "a week")]);
        assert!(Settings::from_sources(None, &bad).is_err());
    }

    #[test]
    fn login_settings_come_from_the_file_and_the_environment() {
        let defaults = Settings::from_sources(None, &env_of(&[])).unwrap().login;
        assert_eq!(defaults.max_failures_per_account, 10);
        assert_eq!(defaults.failure_window_seconds, 900);
        assert!(defaults.password_hashing_concurrency >= 1);
        let toml = "login_max_failures_per_account = 3\npassword_hashing_concurrency = 2";
        let env = env_of(&[("M365_SYNC_LOGIN_FAILURE_WINDOW_SECONDS", "60")]);
        let login = Settings::from_sources(Some(toml), &env).unwrap().login;
        assert_eq!(login.max_failures_per_account, 3);
        assert_eq!(login.password_hashing_concurrency, 2);
        assert_eq!(login.failure_window_seconds, 60);
        let zero = env_of(&[("M365_SYNC_PASSWORD_HASHING_CONCURRENCY", "0")]);
        assert!(Settings::from_sources(None, &zero).is_err());
        let proxies = "trusted_proxies = \"10.0.0.1, ::1\"";
        let login = Settings::from_sources(Some(proxies), &env_of(&[]))
            .unwrap()
            .login;
        assert_eq!(login.trusted_proxies.len(), 2);
        let bad = env_of(&[("M365_SYNC_TRUSTED_PROXIES", "proxy.local")]);
        assert!(Settings::from_sources(None, &bad).is_err());
    }
}
