//! Per app and mailbox throttling, as Outlook resources do it: a request budget per window
//! (Microsoft: 10,000 per 10 minutes) and a cap on concurrent requests (Microsoft: 4). Over
//! either limit the answer is 429 with `Retry-After`.

use crate::errors::error_body;
use crate::graph::GraphResponse;
use crate::state::{Shared, State, ThrottleWindow};
use chrono::Utc;
use serde_json::json;
use std::sync::Arc;

/// Why a request was throttled.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Throttled {
    pub retry_after: u32,
    pub concurrency: bool,
}

impl Throttled {
    /// The 429 response (body as in Microsoft's throttling sample).
    pub(crate) fn response(&self, request_id: &str, client_request_id: &str) -> GraphResponse {
        let (code, message) = if self.concurrency {
            (
                "ApplicationThrottled",
                "Application is over its MailboxConcurrency limit.",
            )
        } else {
            ("TooManyRequests", "Please retry again later.")
        };
        let mut body = error_body(code, message, request_id, client_request_id);
        body["error"]["innerError"]["code"] = json!("429");
        body["error"]["innerError"]["status"] = json!("429");
        body["error"]["innerError"]["message"] = json!("Please retry after");
        GraphResponse::json(429, body).header("Retry-After", self.retry_after.to_string())
    }
}

/// Holds one of the mailbox's concurrent slots until dropped.
pub(crate) struct Slot {
    shared: Arc<Shared>,
    key: (String, String),
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(w) = self.shared.lock().throttle.get_mut(&self.key) {
            w.in_flight = w.in_flight.saturating_sub(1);
        }
    }
}

/// Counts a request against the budget without taking a concurrency slot (`$batch` items,
/// which Graph evaluates one by one).
pub(crate) fn charge(state: &mut State, client_id: &str, user_id: &str) -> Result<(), Throttled> {
    let window = state.config.throttle_window_secs.max(1);
    let limit = state.config.throttle_requests;
    let w = entry(state, client_id, user_id);
    let now = Utc::now();
    if (now - w.started).num_seconds() >= window {
        w.started = now;
        w.count = 0;
    }
    if w.count >= limit {
        let left = window - (now - w.started).num_seconds();
        return Err(Throttled {
            retry_after: u32::try_from(left.max(1)).unwrap_or(1),
            concurrency: false,
        });
    }
    w.count += 1;
    Ok(())
}

fn entry<'a>(state: &'a mut State, client_id: &str, user_id: &str) -> &'a mut ThrottleWindow {
    state
        .throttle
        .entry((client_id.to_owned(), user_id.to_owned()))
        .or_insert_with(|| ThrottleWindow {
            started: Utc::now(),
            count: 0,
            in_flight: 0,
        })
}

/// Admits a top-level request: a concurrency slot and one unit of budget.
pub(crate) fn acquire(
    shared: &Arc<Shared>,
    client_id: &str,
    user_id: &str,
) -> Result<Slot, Throttled> {
    let mut state = shared.lock();
    let max = state.config.throttle_concurrent;
    if entry(&mut state, client_id, user_id).in_flight >= max {
        return Err(Throttled {
            retry_after: 1,
            concurrency: true,
        });
    }
    charge(&mut state, client_id, user_id)?;
    entry(&mut state, client_id, user_id).in_flight += 1;
    Ok(Slot {
        shared: Arc::clone(shared),
        key: (client_id.to_owned(), user_id.to_owned()),
    })
}
