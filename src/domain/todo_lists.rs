//! The user's Microsoft To Do lists, read from Graph so that a front end can offer the choice
//! of the list tasks synchronize with.

use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    domain::connections::tokens::{self, TokenFailure},
    error::{ApiError, ApiResult},
    startup::AppState,
};

/// Pages followed at most (Graph pages lists by 100 or so; a mailbox rarely has more than a
/// few dozen lists).
const MAX_PAGES: usize = 50;

/// One To Do list of the connected mailbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct TodoListView {
    /// Microsoft's id of the list: the value of `todo_list_id` in the user's settings.
    pub id: String,
    /// The list's name.
    pub display_name: String,
    /// Whether it is the mailbox's default list ("Tasks"), used when no list is chosen.
    pub is_default: bool,
    /// Whether the user owns the list.
    pub is_owner: bool,
    /// Whether the list is shared with others.
    pub is_shared: bool,
    /// Whether tasks synchronize with this list now.
    pub selected: bool,
}

/// The connected mailbox's To Do lists, the default one first, then by name; `chosen` marks
/// the list chosen in the user's settings (or the default list when none is chosen).
///
/// # Errors
/// 409 `not_connected`, `reauth_required` or `app_misconfigured` when no call can be made;
/// 503 `microsoft_unavailable` and 502 `microsoft_error` when Microsoft fails or refuses.
pub async fn list(
    state: &AppState,
    user_id: Uuid,
    chosen: Option<&str>,
) -> ApiResult<Vec<TodoListView>> {
    let mut lists = Vec::new();
    let mut next = Some("/me/todo/lists".to_owned());
    let mut pages = 0;
    while let Some(url) = next.take() {
        pages += 1;
        let page = tokens::call_graph(state, user_id, |token| {
            let graph = state.graph.clone();
            let url = url.clone();
            async move { graph.get_json(token.expose_secret(), &url, &[]).await }
        })
        .await
        .map_err(api_error)?;
        lists.extend(
            page.get("value")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(view),
        );
        next = page
            .get("@odata.nextLink")
            .and_then(Value::as_str)
            .filter(|_| pages < MAX_PAGES)
            .map(str::to_owned);
    }
    for list in &mut lists {
        list.selected = match chosen {
            Some(chosen) => list.id == chosen,
            None => list.is_default,
        };
    }
    lists.sort_by(|a, b| {
        b.is_default.cmp(&a.is_default).then_with(|| {
            a.display_name
                .to_lowercase()
                .cmp(&b.display_name.to_lowercase())
        })
    });
    Ok(lists)
}

fn view(list: &Value) -> Option<TodoListView> {
    let flag = |name: &str| list.get(name).and_then(Value::as_bool).unwrap_or(false);
    Some(TodoListView {
        id: list.get("id")?.as_str()?.to_owned(),
        display_name: list
            .get("displayName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        is_default: list.get("wellknownListName").and_then(Value::as_str) == Some("defaultList"),
        is_owner: flag("isOwner"),
        is_shared: flag("isShared"),
        selected: false,
    })
}

fn api_error(failure: TokenFailure) -> ApiError {
    let error = failure.to_connection_error();
    match failure {
        TokenFailure::Internal(e) => e,
        TokenFailure::NotConnected => ApiError::conflict("not_connected", error.message),
        TokenFailure::ReauthRequired(_) => ApiError::conflict("reauth_required", error.message),
        TokenFailure::AppMisconfigured(_) => ApiError::conflict("app_misconfigured", error.message),
        TokenFailure::Transient(_) => ApiError::Upstream {
            unavailable: true,
            code: "microsoft_unavailable",
            detail: format!(
                "Microsoft could not answer; try again later ({}).",
                error.message
            ),
        },
        TokenFailure::Graph(e) => ApiError::Upstream {
            unavailable: false,
            code: "microsoft_error",
            detail: format!(
                "Microsoft refused to list the To Do lists: {} ({}).",
                e.message, e.code
            ),
        },
    }
}
