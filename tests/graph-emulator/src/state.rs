//! The emulator's whole in-memory state behind one mutex: tenants' app registrations, users and
//! their mailboxes, issued codes and tokens, delta sync states, faults, throttling counters and
//! the request log. Handlers never await while holding the lock.

use crate::delta::SyncStore;
use crate::mailbox::Mailbox;
use crate::types::{Config, FaultSpec, LoggedRequest, MailLogEntry};
use chrono::{DateTime, Utc};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

/// Tenant ID of users and apps created without one.
pub const DEFAULT_TENANT_ID: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// Most entries the request log keeps.
const LOG_CAPACITY: usize = 1_000_000;

/// State shared by the HTTP handlers and the library handle.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
}

impl Shared {
    pub(crate) fn new(base_url: String) -> Self {
        Self {
            state: Mutex::new(State::new(base_url)),
        }
    }

    /// Locks the state. A panic in another handler must not wedge every later test request,
    /// so a poisoned lock is taken over as is.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// An app registration.
#[derive(Debug, Clone)]
pub(crate) struct AppRecord {
    pub client_id: String,
    pub secret: String,
    pub secret_expired: bool,
    pub redirect_uris: Vec<String>,
    pub multi_tenant: bool,
    pub tenant_id: String,
}

/// An authorization code waiting to be redeemed.
#[derive(Debug, Clone)]
pub(crate) struct AuthCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub user_id: String,
    pub scopes: Vec<String>,
    pub challenge: Option<(String, String)>,
    pub expires_at: DateTime<Utc>,
    pub redeemed: bool,
    pub tenant: String,
    pub nonce: Option<String>,
}

/// An issued access token.
#[derive(Debug, Clone)]
pub(crate) struct AccessToken {
    pub user_id: String,
    pub client_id: String,
    /// Normalised scope names (lower case, without the Graph resource prefix).
    pub scopes: Vec<String>,
    pub expires_at: DateTime<Utc>,
}

/// An issued refresh token.
#[derive(Debug, Clone)]
pub(crate) struct RefreshToken {
    pub user_id: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub last_used: DateTime<Utc>,
    pub revoked: bool,
    pub expired: bool,
}

/// A fault waiting for its next matching requests.
#[derive(Debug, Clone)]
pub(crate) struct PendingFault {
    pub spec: FaultSpec,
    pub remaining: u32,
}

/// Throttling counters of one app and mailbox.
#[derive(Debug, Clone)]
pub(crate) struct ThrottleWindow {
    pub started: DateTime<Utc>,
    pub count: u64,
    pub in_flight: u32,
}

/// Everything the emulator knows.
#[derive(Debug)]
pub(crate) struct State {
    pub base_url: String,
    pub config: Config,
    pub apps: HashMap<String, AppRecord>,
    pub mailboxes: HashMap<String, Mailbox>,
    pub codes: HashMap<String, AuthCode>,
    pub access_tokens: HashMap<String, AccessToken>,
    pub refresh_tokens: HashMap<String, RefreshToken>,
    /// Scopes each user granted each app: (client ID, user ID).
    pub consents: HashMap<(String, String), BTreeSet<String>>,
    pub decline_next_consent: bool,
    pub faults: Vec<PendingFault>,
    pub log: Vec<LoggedRequest>,
    /// The meeting messages Exchange would have sent, oldest first.
    pub mail_log: Vec<MailLogEntry>,
    pub throttle: HashMap<(String, String), ThrottleWindow>,
    pub sync: SyncStore,
}

impl State {
    fn new(base_url: String) -> Self {
        Self {
            base_url,
            config: Config::default(),
            apps: HashMap::new(),
            mailboxes: HashMap::new(),
            codes: HashMap::new(),
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            consents: HashMap::new(),
            decline_next_consent: false,
            faults: Vec::new(),
            log: Vec::new(),
            mail_log: Vec::new(),
            throttle: HashMap::new(),
            sync: SyncStore::default(),
        }
    }

    /// Forgets everything but the base URL.
    pub(crate) fn reset(&mut self) {
        *self = Self::new(std::mem::take(&mut self.base_url));
    }

    /// Appends to the request log. The oldest half is dropped past `LOG_CAPACITY`, so that a
    /// long benchmark run cannot exhaust memory.
    pub(crate) fn log_request(&mut self, mut entry: LoggedRequest) {
        entry.completed_at = chrono::Utc::now();
        if self.log.len() >= LOG_CAPACITY {
            self.log.drain(..LOG_CAPACITY / 2);
        }
        self.log.push(entry);
    }

    /// Finds a user by object ID or user principal name (case-insensitive, as Entra ID does).
    pub(crate) fn find_user_id(&self, key: &str) -> Option<String> {
        if self.mailboxes.contains_key(key) {
            return Some(key.to_owned());
        }
        self.mailboxes
            .values()
            .find(|m| m.user.user_principal_name.eq_ignore_ascii_case(key))
            .map(|m| m.user.id.clone())
    }

    /// Finds the mailbox an SMTP address delivers to: a user whose `mail` or user principal
    /// name is the address, ignoring case (SMTP addresses are matched that way by Exchange).
    pub(crate) fn find_mailbox_by_address(&self, address: &str) -> Option<String> {
        let address = address.trim();
        self.mailboxes
            .values()
            .find(|m| {
                m.user.user_principal_name.eq_ignore_ascii_case(address)
                    || m.user
                        .mail
                        .as_deref()
                        .is_some_and(|mail| mail.eq_ignore_ascii_case(address))
            })
            .map(|m| m.user.id.clone())
    }
}
