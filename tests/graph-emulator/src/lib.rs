//! An in-memory emulator of the Microsoft identity platform v2.0 (authorization code flow with
//! PKCE, refresh tokens) and of the Graph v1.0 paths m365-sync uses (`/me`, events and
//! meetings across mailboxes, calendarView and its delta, To Do lists and tasks, `$batch`),
//! with throttling, fault injection, a log of the meeting mail Exchange would send and a
//! control API under `/_emulator/`.
//!
//! ```no_run
//! # async fn demo() {
//! let emu = graph_emulator::Emulator::start().await;
//! let app = emu.create_app(graph_emulator::AppSpec {
//!     redirect_uris: vec!["http://localhost/callback".into()],
//!     ..Default::default()
//! });
//! let user = emu
//!     .create_user(graph_emulator::UserSpec {
//!         user_principal_name: "adele@contoso.com".into(),
//!         display_name: "Adele Vance".into(),
//!         ..Default::default()
//!     })
//!     .ok();
//! println!("identity at {}/{}/oauth2/v2.0/authorize", emu.url(), app.tenant_id);
//! # let _ = user;
//! # }
//! ```

mod answers;
mod attendant;
mod authorize;
mod body;
mod control;
mod delta;
mod errors;
mod event_input;
mod event_view;
mod events;
mod faults;
mod graph;
mod http;
mod identity;
mod ids;
mod mailbox;
mod meetings;
mod outlook;
mod recurrence;
pub mod schema;
mod state;
mod tasks;
mod throttle;
mod time;
mod tokens;
mod types;

pub use outlook::{ControlError, ControlResult};
pub use state::DEFAULT_TENANT_ID;
pub use types::{
    App, AppSpec, Config, Fault, FaultSpec, LoggedRequest, MailKind, MailLogEntry, MailboxUser,
    UserSelector, UserSpec,
};

/// The immutable form of a regular event (or occurrence) ID, as Graph shows it to a request
/// with `Prefer: IdType="ImmutableId"`; `None` when `id` is not a regular event ID of the
/// emulator. The control API returns regular IDs and accepts both forms.
pub fn immutable_event_id(id: &str) -> Option<String> {
    ids::to_immutable(id)
}

/// The regular form of an immutable event (or occurrence) ID; `None` when `id` is not an
/// immutable event ID of the emulator.
pub fn regular_event_id(id: &str) -> Option<String> {
    ids::to_regular(id)
}

use actix_web::{App as ActixApp, HttpServer, web};
use serde_json::Value;
use state::Shared;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

/// Options for starting an emulator.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to bind; `127.0.0.1:0` (a free port) by default.
    pub addr: SocketAddr,
    /// actix worker threads; 1 by default (enough for tests, cheap to start many).
    pub workers: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            workers: 1,
        }
    }
}

/// A running emulator. It serves on its own thread and actix system, so it works under any
/// tokio runtime flavour, and stops when dropped.
pub struct Emulator {
    url: String,
    shared: Arc<Shared>,
    handle: actix_web::dev::ServerHandle,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Starts an emulator on `127.0.0.1` and a free port.
    ///
    /// # Panics
    /// When no port can be bound or the server thread cannot start; tests cannot go on then.
    pub async fn start() -> Self {
        match Self::start_with(Options::default()).await {
            Ok(emu) => emu,
            Err(e) => panic!("graph emulator failed to start: {e:#}"),
        }
    }

    /// Starts an emulator with explicit options.
    ///
    /// # Errors
    /// When the address cannot be bound or the server thread fails to start.
    pub async fn start_with(options: Options) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(options.addr)?;
        let addr = listener.local_addr()?;
        let url = format!("http://{addr}");
        let shared = Arc::new(Shared::new(url.clone()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let server_state = Arc::clone(&shared);
        let workers = options.workers.max(1);
        std::thread::Builder::new()
            .name("graph-emulator".into())
            .spawn(move || {
                let system = actix_web::rt::System::new();
                system.block_on(async move {
                    let data = web::Data::new(server_state);
                    let server = HttpServer::new(move || {
                        ActixApp::new()
                            .app_data(data.clone())
                            .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
                            .configure(http::configure)
                    })
                    .workers(workers)
                    // A test machine under load may take seconds to deliver a request: the
                    // default 5 s would answer 408, which Graph does not.
                    .client_request_timeout(std::time::Duration::from_secs(60))
                    .disable_signals()
                    .shutdown_timeout(0)
                    .listen(listener);
                    match server {
                        Ok(server) => {
                            let server = server.run();
                            let _ = tx.send(Ok(server.handle()));
                            let _ = server.await;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })?;
        let handle = rx.await??;
        Ok(Self {
            url,
            shared,
            handle,
        })
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`. Identity is at
    /// `{url}/{tenant}/oauth2/v2.0/{authorize,token}`, Graph at `{url}/v1.0/...`, the control
    /// API at `{url}/_emulator/...`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Graph's base URL, `{url}/v1.0`.
    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.url)
    }

    /// Registers an app.
    pub fn create_app(&self, spec: AppSpec) -> App {
        control::create_app(&mut self.shared.lock(), spec)
    }

    /// Creates a mailbox user (with the built-in "Tasks" list).
    ///
    /// # Errors
    /// 409 when the user principal name or ID is taken, 400 when the name is empty.
    pub fn create_user(&self, spec: UserSpec) -> ControlResult<MailboxUser> {
        control::create_user(&mut self.shared.lock(), spec)
    }

    /// The next sign-in declines consent (redirect with `access_denied`, AADSTS65004).
    pub fn decline_next_consent(&self) {
        self.shared.lock().decline_next_consent = true;
    }

    /// Expires the access tokens of one user (or everyone): Graph answers 401.
    pub fn expire_access_tokens(&self, user_id: Option<&str>) {
        control::expire_access_tokens(&mut self.shared.lock(), user_id);
    }

    /// Revokes a user's refresh tokens (AADSTS50173 on next use).
    pub fn revoke_refresh_tokens(&self, user_id: &str) {
        control::revoke_refresh_tokens(&mut self.shared.lock(), Some(user_id));
    }

    /// Expires refresh tokens for inactivity (AADSTS700082 on next use).
    pub fn expire_refresh_tokens(&self, user_id: Option<&str>) {
        control::expire_refresh_tokens(&mut self.shared.lock(), user_id);
    }

    /// Expires an app's client secret (AADSTS7000222).
    ///
    /// # Errors
    /// 404 for an unknown client ID.
    pub fn expire_client_secret(&self, client_id: &str) -> ControlResult<()> {
        control::expire_client_secret(&mut self.shared.lock(), client_id)
    }

    /// Expires delta and skip tokens of one user (or everyone): 410 `SyncStateNotFound`.
    pub fn expire_delta_tokens(&self, user_id: Option<&str>) {
        self.shared.lock().sync.expire(user_id, false);
    }

    /// Like `expire_delta_tokens`, but the tokens answer 410 `resyncRequired`.
    pub fn require_delta_resync(&self, user_id: Option<&str>) {
        self.shared.lock().sync.expire(user_id, true);
    }

    /// Injects a fault for the next `count` matching requests.
    pub fn inject_fault(&self, spec: FaultSpec) {
        control::inject_fault(&mut self.shared.lock(), spec);
    }

    /// Removes pending faults.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// The current configuration.
    pub fn config(&self) -> Config {
        self.shared.lock().config.clone()
    }

    /// Replaces the configuration (token lifetimes, throttling, paging, delta replays).
    pub fn set_config(&self, config: Config) {
        self.shared.lock().config = config;
    }

    /// Changes the configuration in place.
    pub fn update_config(&self, f: impl FnOnce(&mut Config)) {
        f(&mut self.shared.lock().config);
    }

    /// Every request served so far (Graph requests, `$batch` items, not identity or control).
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.shared.lock().log.clone()
    }

    /// Empties the request log.
    pub fn clear_request_log(&self) {
        self.shared.lock().log.clear();
    }

    /// Every meeting message Exchange would have sent so far (invitations, updates,
    /// cancellations, responses), oldest first, one entry per recipient.
    pub fn mail_log(&self) -> Vec<MailLogEntry> {
        self.shared.lock().mail_log.clone()
    }

    /// Empties the mail log.
    pub fn clear_mail_log(&self) {
        self.shared.lock().mail_log.clear();
    }

    /// Forgets everything: apps, users, tokens, faults, logs, configuration.
    pub fn reset(&self) {
        self.shared.lock().reset();
    }

    /// Changes made "as the user in Outlook".
    pub fn outlook(&self) -> Outlook<'_> {
        Outlook { emu: self }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // `stop` sends the command at once; the returned future only waits for completion.
        drop(self.handle.stop(false));
    }
}

/// Edits a mailbox as its user would in Outlook: the changes show up in delta queries like
/// any other change, and meetings reach their attendees as Graph writes do. Event and task
/// values are Graph JSON (`microsoft.graph.event`, `microsoft.graph.todoTask`), bodies as
/// stored; `list_id` `None` means the default "Tasks" list. Event IDs returned are regular IDs;
/// both regular and immutable IDs are accepted.
#[derive(Debug, Clone, Copy)]
pub struct Outlook<'a> {
    emu: &'a Emulator,
}

impl Outlook<'_> {
    fn with<T>(&self, f: impl FnOnce(&mut state::State) -> ControlResult<T>) -> ControlResult<T> {
        f(&mut self.emu.shared.lock())
    }

    /// Creates an event; returns it as Graph renders it (UTC).
    ///
    /// # Errors
    /// 404 for an unknown user, 400 for a body Graph would refuse.
    pub fn create_event(&self, user_id: &str, event: Value) -> ControlResult<Value> {
        self.with(|s| outlook::create_event(s, user_id, &event))
    }

    /// Updates an event, occurrence or exception.
    ///
    /// # Errors
    /// 404 for an unknown user or event, 400 for a body Graph would refuse.
    pub fn update_event(
        &self,
        user_id: &str,
        event_id: &str,
        patch: Value,
    ) -> ControlResult<Value> {
        self.with(|s| outlook::update_event(s, user_id, event_id, &patch))
    }

    /// Deletes an event or cancels an occurrence. Deleting the organizer's meeting sends
    /// cancellations to its attendees.
    ///
    /// # Errors
    /// 404 for an unknown user or event.
    pub fn delete_event(&self, user_id: &str, event_id: &str) -> ControlResult<()> {
        self.with(|s| outlook::delete_event(s, user_id, event_id))
    }

    /// The organizer cancels a meeting (or one occurrence) with an optional comment, as
    /// `POST /me/events/{id}/cancel` does.
    ///
    /// # Errors
    /// 404 for an unknown user or event, 400 on an attendee's copy.
    pub fn cancel_event(
        &self,
        user_id: &str,
        event_id: &str,
        comment: Option<&str>,
    ) -> ControlResult<()> {
        self.with(|s| outlook::cancel_event(s, user_id, event_id, comment))
    }

    /// An attendee answers a meeting in their calendar: `action` is `accept`,
    /// `tentativelyAccept` or `decline`, `body` the Graph action's body (`comment`,
    /// `sendResponse`, which defaults to true).
    ///
    /// # Errors
    /// 404 for an unknown user or event, 400 for another action or on the organizer's own
    /// event.
    pub fn respond_event(
        &self,
        user_id: &str,
        event_id: &str,
        action: &str,
        body: Value,
    ) -> ControlResult<()> {
        self.with(|s| outlook::respond_event(s, user_id, event_id, action, &body))
    }

    /// Gets an event, occurrence or exception.
    ///
    /// # Errors
    /// 404 for an unknown user or event.
    pub fn get_event(&self, user_id: &str, event_id: &str) -> ControlResult<Value> {
        self.with(|s| outlook::get_event(s, user_id, event_id))
    }

    /// Lists single events and series masters.
    ///
    /// # Errors
    /// 404 for an unknown user.
    pub fn list_events(&self, user_id: &str) -> ControlResult<Vec<Value>> {
        self.with(|s| outlook::list_events(s, user_id))
    }

    /// What the calendar shows between two instants, as `GET /me/calendarView` lists it (single
    /// events, occurrences and exceptions by start time; times in UTC).
    ///
    /// # Errors
    /// 404 for an unknown user.
    pub fn calendar_view(
        &self,
        user_id: &str,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> ControlResult<Vec<Value>> {
        self.with(|s| outlook::calendar_view(s, user_id, from, to))
    }

    /// Creates a task.
    ///
    /// # Errors
    /// 404 for an unknown user or list, 400 for a body Graph would refuse.
    pub fn create_task(
        &self,
        user_id: &str,
        list_id: Option<&str>,
        task: Value,
    ) -> ControlResult<Value> {
        self.with(|s| outlook::create_task(s, user_id, list_id, &task))
    }

    /// Updates a task.
    ///
    /// # Errors
    /// 404 for an unknown user, list or task; 400 for a body Graph would refuse.
    pub fn update_task(
        &self,
        user_id: &str,
        list_id: Option<&str>,
        task_id: &str,
        patch: Value,
    ) -> ControlResult<Value> {
        self.with(|s| outlook::update_task(s, user_id, list_id, task_id, &patch))
    }

    /// Deletes a task.
    ///
    /// # Errors
    /// 404 for an unknown user, list or task.
    pub fn delete_task(
        &self,
        user_id: &str,
        list_id: Option<&str>,
        task_id: &str,
    ) -> ControlResult<()> {
        self.with(|s| outlook::delete_task(s, user_id, list_id, task_id))
    }

    /// Lists the tasks of a list.
    ///
    /// # Errors
    /// 404 for an unknown user or list.
    pub fn list_tasks(&self, user_id: &str, list_id: Option<&str>) -> ControlResult<Vec<Value>> {
        self.with(|s| outlook::list_tasks(s, user_id, list_id))
    }

    /// Creates a task list (`{"displayName": ...}`).
    ///
    /// # Errors
    /// 404 for an unknown user, 400 without a display name.
    pub fn create_list(&self, user_id: &str, list: Value) -> ControlResult<Value> {
        self.with(|s| outlook::create_list(s, user_id, &list))
    }

    /// Lists the task lists.
    ///
    /// # Errors
    /// 404 for an unknown user.
    pub fn list_lists(&self, user_id: &str) -> ControlResult<Vec<Value>> {
        self.with(|s| outlook::list_lists(s, user_id))
    }
}
