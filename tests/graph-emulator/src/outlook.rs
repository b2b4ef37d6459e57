//! "As the user in Outlook": changes made to a mailbox outside the app under test. They go
//! through the same mailbox operations as Graph writes, so delta queries report them the same
//! way. Used by the library handle (`Emulator::outlook`) and by `/_emulator/users/{id}/...`.

use crate::answers;
use crate::errors::ApiError;
use crate::events;
use crate::mailbox::Mailbox;
use crate::meetings;
use crate::state::State;
use crate::tasks;
use crate::time::Zone;
use serde_json::Value;
use std::fmt;

/// A control API failure: the status the HTTP form answers with, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlError {
    /// HTTP status (404 unknown user or item, 400 invalid body, 409 conflict...).
    pub status: u16,
    /// Graph error code when the failure came from a Graph rule, else a short code.
    pub code: String,
    /// Human-readable reason.
    pub message: String,
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for ControlError {}

impl From<ApiError> for ControlError {
    fn from(e: ApiError) -> Self {
        Self {
            status: e.status,
            code: e.code,
            message: e.message,
        }
    }
}

impl ControlError {
    pub(crate) fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// Result of control operations.
pub type ControlResult<T> = Result<T, ControlError>;

/// The user ID of a user named by ID or user principal name.
fn user_key(state: &State, user_id: &str) -> ControlResult<String> {
    state
        .find_user_id(user_id)
        .ok_or_else(|| ControlError::new(404, "userNotFound", format!("no user '{user_id}'")))
}

fn mailbox<'a>(state: &'a mut State, user_id: &str) -> ControlResult<&'a mut Mailbox> {
    let id = user_key(state, user_id)?;
    state
        .mailboxes
        .get_mut(&id)
        .ok_or_else(|| ControlError::new(404, "userNotFound", "user vanished"))
}

fn render_event(mbox: &Mailbox, id: &str) -> ControlResult<Value> {
    let (i, date) = events::resolve(mbox, id)?;
    Ok(events::render(
        &mbox.events[i],
        date,
        &Zone::utc(),
        &mbox.user,
        true,
    ))
}

/// Creates an event; returns it as Graph would (UTC times). A meeting invites its attendees.
pub(crate) fn create_event(state: &mut State, user_id: &str, body: &Value) -> ControlResult<Value> {
    let user = user_key(state, user_id)?;
    let id = meetings::create(state, &user, body)?;
    render_event(mailbox(state, &user)?, &id)
}

/// Updates an event, occurrence or exception.
pub(crate) fn update_event(
    state: &mut State,
    user_id: &str,
    id: &str,
    patch: &Value,
) -> ControlResult<Value> {
    let user = user_key(state, user_id)?;
    meetings::update(state, &user, id, patch, None)?;
    render_event(mailbox(state, &user)?, id)
}

/// Deletes an event (or cancels an occurrence); the organizer's meeting sends cancellations.
pub(crate) fn delete_event(state: &mut State, user_id: &str, id: &str) -> ControlResult<()> {
    let user = user_key(state, user_id)?;
    Ok(meetings::delete(state, &user, id, None, None)?)
}

/// The organizer cancels a meeting with a comment (`POST .../cancel`).
pub(crate) fn cancel_event(
    state: &mut State,
    user_id: &str,
    id: &str,
    comment: Option<&str>,
) -> ControlResult<()> {
    let user = user_key(state, user_id)?;
    Ok(meetings::cancel(state, &user, id, comment)?)
}

/// An attendee answers (`accept`, `tentativelyAccept`, `decline`; body as Graph's:
/// `comment`, `sendResponse`).
pub(crate) fn respond_event(
    state: &mut State,
    user_id: &str,
    id: &str,
    action: &str,
    body: &Value,
) -> ControlResult<()> {
    let user = user_key(state, user_id)?;
    let answer = answers::Answer::from_action(action).ok_or_else(|| {
        ControlError::new(
            400,
            "invalidRequest",
            format!("'{action}' is not accept, tentativelyAccept or decline"),
        )
    })?;
    let reply = answers::Reply {
        comment: body
            .get("comment")
            .and_then(Value::as_str)
            .map(str::to_owned),
        send_response: body
            .get("sendResponse")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        proposes_new_time: false,
    };
    Ok(answers::respond(state, &user, id, answer, &reply)?)
}

/// Gets one event, occurrence or exception.
pub(crate) fn get_event(state: &mut State, user_id: &str, id: &str) -> ControlResult<Value> {
    render_event(mailbox(state, user_id)?, id)
}

/// Lists single events and series masters.
pub(crate) fn list_events(state: &mut State, user_id: &str) -> ControlResult<Vec<Value>> {
    let mbox = mailbox(state, user_id)?;
    Ok(mbox
        .events
        .iter()
        .map(|e| events::render(e, None, &Zone::utc(), &mbox.user, true))
        .collect())
}

/// What the calendar shows between two instants (the calendarView expansion).
pub(crate) fn calendar_view(
    state: &mut State,
    user_id: &str,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> ControlResult<Vec<Value>> {
    let mbox = mailbox(state, user_id)?;
    Ok(crate::graph::calendar::all_instances(mbox, from, to)
        .iter()
        .map(|i| {
            events::render(
                &mbox.events[i.master_index],
                i.date,
                &Zone::utc(),
                &mbox.user,
                true,
            )
        })
        .collect())
}

fn list_index(mbox: &Mailbox, list_id: Option<&str>) -> ControlResult<usize> {
    match list_id {
        Some(id) => Ok(tasks::find_list(mbox, id)?),
        None => Ok(0),
    }
}

/// Creates a task in a list (the default "Tasks" list when `list_id` is `None`).
pub(crate) fn create_task(
    state: &mut State,
    user_id: &str,
    list_id: Option<&str>,
    body: &Value,
) -> ControlResult<Value> {
    let mbox = mailbox(state, user_id)?;
    let l = list_index(mbox, list_id)?;
    let t = tasks::create_task(mbox, l, body)?;
    Ok(tasks::render_task(&mbox.lists[l].tasks[t], true, true))
}

/// Updates a task.
pub(crate) fn update_task(
    state: &mut State,
    user_id: &str,
    list_id: Option<&str>,
    id: &str,
    patch: &Value,
) -> ControlResult<Value> {
    let mbox = mailbox(state, user_id)?;
    let l = list_index(mbox, list_id)?;
    let t = tasks::find_task(mbox, l, id)?;
    tasks::update_task(mbox, l, t, patch, None)?;
    Ok(tasks::render_task(&mbox.lists[l].tasks[t], true, true))
}

/// Deletes a task.
pub(crate) fn delete_task(
    state: &mut State,
    user_id: &str,
    list_id: Option<&str>,
    id: &str,
) -> ControlResult<()> {
    let mbox = mailbox(state, user_id)?;
    let l = list_index(mbox, list_id)?;
    let t = tasks::find_task(mbox, l, id)?;
    Ok(tasks::delete_task(mbox, l, t, None)?)
}

/// Lists the tasks of a list.
pub(crate) fn list_tasks(
    state: &mut State,
    user_id: &str,
    list_id: Option<&str>,
) -> ControlResult<Vec<Value>> {
    let mbox = mailbox(state, user_id)?;
    let l = list_index(mbox, list_id)?;
    Ok(mbox.lists[l]
        .tasks
        .iter()
        .map(|t| tasks::render_task(t, true, true))
        .collect())
}

/// Creates a task list.
pub(crate) fn create_list(state: &mut State, user_id: &str, body: &Value) -> ControlResult<Value> {
    let mbox = mailbox(state, user_id)?;
    let l = tasks::create_list(mbox, body)?;
    Ok(mbox.lists[l].render())
}

/// Lists the task lists.
pub(crate) fn list_lists(state: &mut State, user_id: &str) -> ControlResult<Vec<Value>> {
    Ok(mailbox(state, user_id)?
        .lists
        .iter()
        .map(tasks::TaskList::render)
        .collect())
}
