//! The user's answer to a meeting someone else organizes: recorded here at once (a new
//! version), sent to Microsoft by the next run as Graph's `accept`, `tentativelyAccept` or
//! `decline`, and then shown as the user's response.

use chrono::Utc;
use entity::calendar_events;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionSession, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::store::get;
use crate::{
    domain::{
        changes::{self, ItemChange, ItemKind, Origin},
        etag,
    },
    error::{ApiError, ApiResult, FieldError},
};

/// An answer to a meeting invitation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// Accept (Graph's `accept`).
    Accepted,
    /// Accept tentatively (`tentativelyAccept`).
    TentativelyAccepted,
    /// Decline (`decline`): Outlook then removes the meeting from the user's calendar.
    Declined,
}

impl Answer {
    /// The Graph action that sends it.
    pub fn action(self) -> &'static str {
        match self {
            Self::Accepted => "accept",
            Self::TentativelyAccepted => "tentativelyAccept",
            Self::Declined => "decline",
        }
    }

    /// The user's response once Microsoft took it (as `EventView::response` shows it).
    pub fn as_response(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::TentativelyAccepted => "tentatively_accepted",
            Self::Declined => "declined",
        }
    }
}

/// Longest comment sent with an answer.
const MAX_COMMENT: usize = 2000;

/// Body of `POST /api/v1/users/{id}/calendar-events/{event_id}/response`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventResponse {
    /// The answer.
    pub response: Answer,
    /// A message to the organizer, at most 2,000 characters, without control characters
    /// (line breaks and tabs are fine).
    #[serde(default)]
    #[schema(
        max_length = 2000,
        pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
    )]
    pub comment: Option<String>,
    /// Whether the organizer is told (default `true`); `false` answers silently.
    #[serde(default)]
    pub send_response: Option<bool>,
}

/// Records an answer to a meeting the user does not organize, to be sent by the next run;
/// honours `If-Match`.
///
/// # Errors
/// 404 when there is no such event; 409 `own_meeting` for an event the user organizes (there
/// is nobody to answer); 422 for a comment too long or with control characters; 400 for a
/// malformed `If-Match`; 412 when it does not match.
pub async fn respond(
    db: &(impl ConnectionTrait + TransactionTrait),
    user_id: Uuid,
    id: Uuid,
    answer: &EventResponse,
    if_match: Option<&str>,
) -> ApiResult<calendar_events::Model> {
    if let Some(comment) = &answer.comment
        && (comment.chars().count() > MAX_COMMENT
            || comment
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t'))
    {
        return Err(ApiError::Validation(vec![FieldError::new(
            "/comment",
            "at most 2,000 characters, no control characters",
        )]));
    }
    let current = get(db, user_id, id).await?;
    if current.is_organizer {
        return Err(ApiError::conflict(
            "own_meeting",
            "the user organizes this event: there is no invitation to answer",
        ));
    }
    etag::check(if_match, current.version)?;
    let pending = serde_json::to_string(answer)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("an answer as JSON: {e}")))?;
    let tx = db.begin().await?;
    let result = calendar_events::Entity::update_many()
        .col_expr(
            calendar_events::Column::ResponsePending,
            Some(pending).into(),
        )
        .col_expr(
            calendar_events::Column::UpdatedAt,
            Utc::now().fixed_offset().into(),
        )
        .col_expr(
            calendar_events::Column::Version,
            (current.version + 1).into(),
        )
        .filter(calendar_events::Column::Id.eq(id))
        .filter(calendar_events::Column::Version.eq(current.version))
        .filter(calendar_events::Column::DeletedAt.is_null())
        .exec(&tx)
        .await?;
    if result.rows_affected == 0 {
        drop(tx);
        get(db, user_id, id).await?;
        return Err(ApiError::PreconditionFailed);
    }
    changes::item(
        &tx,
        ItemKind::CalendarEvent,
        ItemChange::Updated,
        user_id,
        id,
        current.version + 1,
        Origin::Api,
    )
    .await?;
    tx.commit().await?;
    get(db, user_id, id).await
}
