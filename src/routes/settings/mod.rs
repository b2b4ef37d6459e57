//! Settings endpoints: Microsoft settings at three scopes and Azure application settings at
//! two, each `GET` (effective values with their source) and `PATCH` (JSON merge patch).

pub mod application;
pub mod microsoft;

use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    domain::{organizations, settings::Scope},
    error::ApiResult,
    startup::AppState,
};

/// The organization scope, after checking the caller may manage it and it exists.
///
/// # Errors
/// 404 / 403 as [`AuthUser::may_manage_org`] says, 404 for an unknown organization.
pub async fn organization_scope(
    db: &impl ConnectionTrait,
    caller: &AuthUser,
    id: Uuid,
) -> ApiResult<Scope> {
    caller.may_manage_org(id)?;
    organizations::get(db, id).await?;
    Ok(Scope::Organization(id))
}

/// The user scope, after checking the caller may access that user.
///
/// # Errors
/// 404 for an unknown user or one the caller may not see.
pub async fn user_scope(state: &AppState, caller: &AuthUser, id: Uuid) -> ApiResult<Scope> {
    let user = crate::routes::accessible_user(state, caller, id).await?;
    Ok(Scope::of_user(&user))
}
