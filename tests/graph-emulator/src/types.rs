//! Public data types of the control API: what tests send to seed the emulator and what they
//! read back. Every type here is also the JSON body of the matching `/_emulator/` endpoint.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// An app registration to create (`POST /_emulator/apps`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AppSpec {
    /// Client ID; a random GUID when absent.
    pub client_id: Option<String>,
    /// Client secret; a random secret when absent.
    pub secret: Option<String>,
    /// Redirect URIs, matched exactly (as Microsoft does).
    pub redirect_uris: Vec<String>,
    /// Multi-tenant apps may use `/common` and `/organizations`; single-tenant apps may not.
    pub multi_tenant: bool,
    /// Home tenant; the emulator's default tenant when absent.
    pub tenant_id: Option<String>,
}

/// A created app registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    /// Client ID to use as `client_id`.
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
    /// Home tenant ID.
    pub tenant_id: String,
}

/// A mailbox user to create (`POST /_emulator/users`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UserSpec {
    /// Sign-in name, e.g. `adele@contoso.com`; also the `login_hint` that selects this user.
    pub user_principal_name: String,
    /// Display name.
    pub display_name: String,
    /// SMTP address; `null` in `/me` when absent (accounts without a mailbox).
    pub mail: Option<String>,
    /// Given name.
    pub given_name: Option<String>,
    /// Surname.
    pub surname: Option<String>,
    /// Job title.
    pub job_title: Option<String>,
    /// Preferred language, e.g. `en-US`.
    pub preferred_language: Option<String>,
    /// Object ID; a random GUID when absent.
    pub id: Option<String>,
    /// Tenant the user belongs to; the emulator's default tenant when absent.
    pub tenant_id: Option<String>,
}

/// A created mailbox user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxUser {
    /// Object ID (the `id` of `/me`).
    pub id: String,
    /// Sign-in name.
    pub user_principal_name: String,
    /// Display name.
    pub display_name: String,
    /// SMTP address.
    pub mail: Option<String>,
    /// Tenant ID.
    pub tenant_id: String,
    /// ID of the built-in To Do list "Tasks" (`wellknownListName` `defaultList`).
    pub default_task_list_id: String,
}

/// What an injected fault does to a matching request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "FaultWire", from = "FaultWire")]
pub enum Fault {
    /// Answer with this status (429, 500, 503, 504...) and a Graph error body, optionally
    /// with a `Retry-After` header in seconds.
    Status {
        /// HTTP status.
        status: u16,
        /// `Retry-After` value in seconds.
        #[serde(default)]
        retry_after: Option<u32>,
    },
    /// Wait this long, then serve the request normally.
    Latency(Duration),
    /// Serve the request (its changes are made and it is in the request log at once), then
    /// wait this long before answering: a client cut off meanwhile never learns the outcome.
    SlowAnswer(Duration),
    /// Close the connection without sending a response.
    DropConnection,
    /// Serve the real response with its body cut in half.
    TruncatedJson,
    /// Serve the real status with a body that is not JSON.
    MalformedJson,
}

/// A fault for the next `count` requests that match (`POST /_emulator/faults`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultSpec {
    /// HTTP method to match (case-insensitive); any when absent.
    #[serde(default)]
    pub method: Option<String>,
    /// Substring of the request path (for example `/me/events`); any when absent. Items of a
    /// `$batch` are matched on their own URL.
    #[serde(default)]
    pub path_contains: Option<String>,
    /// How many matching requests get the fault.
    #[serde(default = "one")]
    pub count: u32,
    /// How many matching requests pass untouched before the fault applies (0: the next one).
    #[serde(default)]
    pub skip: u32,
    /// What happens to them.
    pub kind: Fault,
}

fn one() -> u32 {
    1
}

/// One request the emulator served (`GET /_emulator/requests`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedRequest {
    /// HTTP method.
    pub method: String,
    /// Path without the query string, e.g. `/v1.0/me/events`.
    pub path: String,
    /// Query string (decoded form is not guaranteed), empty when absent.
    pub query: String,
    /// Status returned (0 when the connection was dropped).
    pub status: u16,
    /// ID of the mailbox user the request acted for, when known.
    pub mailbox: Option<String>,
    /// True for the items of a `$batch` (the `$batch` request itself is logged too).
    pub in_batch: bool,
    /// The request's `Prefer` headers joined with `, ` (a `$batch` item's own, not the batch's),
    /// empty when it sent none.
    pub prefer: String,
    /// When the emulator received the request (a `$batch` item: when its batch was received).
    pub received_at: DateTime<Utc>,
    /// When the emulator finished serving it.
    pub completed_at: DateTime<Utc>,
    /// The request's JSON body, `None` without one (or when it was not JSON). A `$batch` item's
    /// entry carries the item's own body; the entry of the `$batch` request itself carries the
    /// whole batch payload. The log holds Graph requests only: identity requests (which carry
    /// client secrets, codes, code verifiers and refresh tokens) are never logged, so no secret
    /// can appear here.
    #[serde(default)]
    pub body: Option<serde_json::Value>,
}

/// What kind of message Exchange sent (`meetingMessageType` of `microsoft.graph.eventMessage`,
/// grouped as the mail log reports it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MailKind {
    /// An invitation, or an update of a meeting the recipient was invited to (see
    /// [`MailLogEntry::update`]).
    MeetingRequest,
    /// The organizer cancelled the meeting (or one occurrence), or removed the recipient.
    MeetingCancellation,
    /// An attendee's answer to the organizer (see [`MailLogEntry::response`]).
    MeetingResponse,
}

/// One message Exchange would have sent for a meeting (`GET /_emulator/mail-log`). Messages to
/// addresses that are not mailboxes of the emulator are logged too: Exchange mails them as
/// well.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailLogEntry {
    /// What the message is.
    pub kind: MailKind,
    /// Sender address (the organizer's for requests and cancellations, the attendee's for
    /// responses), as the meeting names it.
    pub from: String,
    /// Recipient address: one entry per recipient.
    pub to: String,
    /// The meeting's subject (without the `Canceled:`/`Accepted:` prefixes Outlook adds, which
    /// depend on the mailbox's language).
    pub subject: String,
    /// The meeting's `iCalUId`, the same in every copy.
    pub event_ical_uid: String,
    /// When it was sent.
    pub at: DateTime<Utc>,
    /// For responses: `accepted`, `tentativelyAccepted` or `declined` (Graph's `responseType`).
    #[serde(default)]
    pub response: Option<String>,
    /// For requests: true when it updates a meeting the recipient already had.
    #[serde(default)]
    pub update: bool,
    /// The comment of a response or cancellation, when one was given.
    #[serde(default)]
    pub comment: Option<String>,
    /// For messages about one occurrence of a series: its original start date.
    #[serde(default)]
    pub occurrence: Option<chrono::NaiveDate>,
}

/// Tunable behaviour (`GET`/`PATCH /_emulator/config`). Fields absent from a PATCH keep their
/// value; `reset` restores the defaults, which are Microsoft's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// `expires_in` of access tokens, seconds (Microsoft: 3599).
    pub access_token_lifetime_secs: i64,
    /// Inactivity lifetime of refresh tokens, seconds (Microsoft: 90 days).
    pub refresh_token_lifetime_secs: i64,
    /// Lifetime of authorization codes, seconds (Microsoft: about 10 minutes).
    pub code_lifetime_secs: i64,
    /// Requests allowed per app and mailbox in each throttling window (Microsoft: 10,000).
    pub throttle_requests: u64,
    /// Length of the throttling window, seconds (Microsoft: 600).
    pub throttle_window_secs: i64,
    /// Concurrent requests allowed per app and mailbox (Microsoft: 4).
    pub throttle_concurrent: u32,
    /// Page size when the client sends neither `$top` nor `Prefer: odata.maxpagesize`.
    pub default_page_size: usize,
    /// Largest delta page served, whatever `Prefer: odata.maxpagesize` asks: the real service
    /// treats the preference as a maximum and may send smaller pages ("the server might
    /// choose a smaller page size"). `None`: the preference is honoured.
    pub delta_page_cap: Option<usize>,
    /// The next N delta rounds each replay one unchanged item, as the real service sometimes
    /// does.
    pub delta_replays: u32,
    /// When true, the first page of every initial delta round is empty but has a nextLink
    /// (observed on the real service).
    pub delta_empty_first_page: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            access_token_lifetime_secs: 3599,
            refresh_token_lifetime_secs: 90 * 24 * 3600,
            code_lifetime_secs: 600,
            throttle_requests: 10_000,
            throttle_window_secs: 600,
            throttle_concurrent: 4,
            default_page_size: 10,
            delta_page_cap: None,
            delta_replays: 0,
            delta_empty_first_page: false,
        }
    }
}

/// Body of the token-expiry control endpoints: one user, or everyone when absent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UserSelector {
    /// The mailbox user's ID.
    pub user_id: Option<String>,
}

/// JSON form of [`Fault`]: `{"type":"status","status":503,"retry_after":5}`,
/// `{"type":"latency","ms":250}`, `{"type":"slow_answer","ms":250}`,
/// `{"type":"drop_connection"}`, `{"type":"truncated_json"}`,
/// `{"type":"malformed_json"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum FaultWire {
    Status {
        status: u16,
        #[serde(default)]
        retry_after: Option<u32>,
    },
    Latency {
        ms: u64,
    },
    SlowAnswer {
        ms: u64,
    },
    DropConnection,
    TruncatedJson,
    MalformedJson,
}

impl From<Fault> for FaultWire {
    fn from(f: Fault) -> Self {
        match f {
            Fault::Status {
                status,
                retry_after,
            } => Self::Status {
                status,
                retry_after,
            },
            Fault::Latency(d) => Self::Latency {
                ms: u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            },
            Fault::SlowAnswer(d) => Self::SlowAnswer {
                ms: u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            },
            Fault::DropConnection => Self::DropConnection,
            Fault::TruncatedJson => Self::TruncatedJson,
            Fault::MalformedJson => Self::MalformedJson,
        }
    }
}

impl From<FaultWire> for Fault {
    fn from(f: FaultWire) -> Self {
        match f {
            FaultWire::Status {
                status,
                retry_after,
            } => Self::Status {
                status,
                retry_after,
            },
            FaultWire::Latency { ms } => Self::Latency(Duration::from_millis(ms)),
            FaultWire::SlowAnswer { ms } => Self::SlowAnswer(Duration::from_millis(ms)),
            FaultWire::DropConnection => Self::DropConnection,
            FaultWire::TruncatedJson => Self::TruncatedJson,
            FaultWire::MalformedJson => Self::MalformedJson,
        }
    }
}
