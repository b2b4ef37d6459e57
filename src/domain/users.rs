//! Users: accounts of the API, each with a role and (except admins) an organization.

use chrono::Utc;
use entity::users;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    auth::password,
    domain::{
        Role,
        access::not_found,
        email::{self, Email},
        pagination::PageRequest,
        passwords,
        patch::Patch,
    },
    error::{ApiError, ApiResult, FieldError, is_unique_violation},
};

/// A user as the API shows it (never the password hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// Id (UUID v7).
    pub id: Uuid,
    /// Unique e-mail, used to sign in.
    pub email: String,
    /// Name shown in front ends.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// Organization; `null` only for admins without one.
    pub organization_id: Option<Uuid>,
    /// Version, also sent as the `ETag`.
    pub version: i64,
    /// When it was created.
    pub created_at: chrono::DateTime<Utc>,
    /// When it last changed.
    pub updated_at: chrono::DateTime<Utc>,
}

impl TryFrom<users::Model> for UserView {
    type Error = ApiError;

    fn try_from(m: users::Model) -> ApiResult<Self> {
        Ok(Self {
            id: m.id,
            role: stored_role(&m)?,
            email: m.email,
            display_name: m.display_name,
            organization_id: m.organization_id,
            version: m.version,
            created_at: m.created_at.with_timezone(&Utc),
            updated_at: m.updated_at.with_timezone(&Utc),
        })
    }
}

/// The role of a stored user.
///
/// # Errors
/// 500 if the stored value is not a role (never written by this service).
pub fn stored_role(user: &users::Model) -> ApiResult<Role> {
    Role::parse(&user.role).map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))
}

/// Body of `POST /api/v1/organizations/{id}/users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Unique e-mail address.
    #[schema(
        example = "ada@example.com",
        pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s\x00-\x1f\x7f-\x9f.][^@\s\x00-\x1f\x7f-\x9f]*\.[^@\s\x00-\x1f\x7f-\x9f]*[^@\s\x00-\x1f\x7f-\x9f.]$",
        max_length = 254
    )]
    pub email: String,
    /// Password, 12 to 1024 characters, not one character repeated, not a common password.
    #[schema(
        example = "correct horse battery staple",
        min_length = 12,
        max_length = 1024
    )]
    pub password: String,
    /// Role (default `user`).
    #[serde(default)]
    pub role: Option<Role>,
    /// Name shown in front ends, 1 to 200 characters, not blank, without bidirectional-control
    /// or zero-width characters (default: the e-mail).
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]*[^\t-\r \x85\xa0\u1680\u2000-\u200f\u2028-\u202f\u205f-\u2064\u2066-\u2069\u3000\u061c\u180e\ufeff][^\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]*$"
    )]
    pub display_name: Option<String>,
}

/// Body of `PATCH /api/v1/users/{id}` (JSON merge patch).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// New e-mail address (`null` is invalid for every member).
    #[serde(default)]
    #[schema(value_type = String, pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s\x00-\x1f\x7f-\x9f.][^@\s\x00-\x1f\x7f-\x9f]*\.[^@\s\x00-\x1f\x7f-\x9f]*[^@\s\x00-\x1f\x7f-\x9f.]$", max_length = 254)]
    pub email: Patch<String>,
    /// New password, under the same rules as at creation. Changing one's own password needs
    /// `current_password`; any password change signs the user out everywhere (every token
    /// issued before is refused).
    #[serde(default)]
    #[schema(value_type = String, min_length = 12, max_length = 1024)]
    pub password: Patch<String>,
    /// The caller's current password: required when they change their own password (422
    /// `validation_failed` without it, 403 `wrong_current_password` when it is wrong); ignored
    /// otherwise.
    #[serde(default)]
    #[schema(value_type = String, max_length = 1024)]
    pub current_password: Option<String>,
    /// New role.
    #[serde(default)]
    #[schema(value_type = Role)]
    pub role: Patch<Role>,
    /// New display name, 1 to 200 characters, not blank, without bidirectional-control or
    /// zero-width characters.
    #[serde(default)]
    #[schema(value_type = String, min_length = 1, max_length = 200, pattern = r"^[^\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]*[^\t-\r \x85\xa0\u1680\u2000-\u200f\u2028-\u202f\u205f-\u2064\u2066-\u2069\u3000\u061c\u180e\ufeff][^\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]*$")]
    pub display_name: Patch<String>,
}

/// A validated new user.
#[derive(Debug)]
pub struct NewUser {
    /// E-mail.
    pub email: Email,
    /// Clear password (hashed on insert).
    pub password: String,
    /// Role.
    pub role: Role,
    /// Display name.
    pub display_name: String,
    /// Organization.
    pub organization_id: Option<Uuid>,
}

fn check_password(pointer: &str, password: &str) -> Result<(), FieldError> {
    passwords::check(password).map_err(|reason| FieldError::new(pointer, reason))
}

fn check_display_name(pointer: &str, name: &str) -> Result<String, FieldError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(FieldError::new(pointer, "must be 1 to 200 characters"));
    }
    if name.chars().any(email::is_invisible_control) {
        return Err(FieldError::new(
            pointer,
            "must not contain bidirectional-control or zero-width characters",
        ));
    }
    Ok(name.to_owned())
}

fn check_role_fits(role: Role, organization_id: Option<Uuid>) -> Result<(), FieldError> {
    if role != Role::Admin && organization_id.is_none() {
        return Err(FieldError::new(
            "/role",
            "only an admin may exist without an organization",
        ));
    }
    Ok(())
}

impl NewUser {
    /// Validates a creation request for `organization_id`.
    ///
    /// # Errors
    /// 422 listing every invalid field.
    pub fn parse(input: CreateUser, organization_id: Option<Uuid>) -> ApiResult<Self> {
        let mut errors = Vec::new();
        let email = Email::parse(&input.email)
            .map_err(|e| errors.push(FieldError::new("/email", e)))
            .ok();
        if let Err(e) = check_password("/password", &input.password) {
            errors.push(e);
        }
        let role = input.role.unwrap_or(Role::User);
        if let Err(e) = check_role_fits(role, organization_id) {
            errors.push(e);
        }
        let display_name = match &input.display_name {
            Some(name) => check_display_name("/display_name", name)
                .map_err(|e| errors.push(e))
                .ok(),
            None => email.as_ref().map(|e| e.as_str().to_owned()),
        };
        match (email, display_name) {
            (Some(email), Some(display_name)) if errors.is_empty() => Ok(Self {
                email,
                password: input.password,
                role,
                display_name,
                organization_id,
            }),
            _ => Err(ApiError::Validation(errors)),
        }
    }
}

/// The 409 of an address in use: the same answer whether the address is the one of an
/// existing user or only looks like it, and whichever organization that user is in.
pub fn email_taken() -> ApiError {
    ApiError::conflict(
        "email_taken",
        "This e-mail address, or one that looks like it, is already in use.",
    )
}

fn email_taken_on(err: &sea_orm::DbErr) -> Option<ApiError> {
    is_unique_violation(err).then(email_taken)
}

/// The user, other than `except`, whose address is `email` or looks like it (same skeleton).
///
/// # Errors
/// On database failure.
pub async fn find_email_conflict(
    db: &impl ConnectionTrait,
    email: &Email,
    except: Option<Uuid>,
) -> ApiResult<Option<users::Model>> {
    let mut query = users::Entity::find().filter(
        sea_orm::Condition::any()
            .add(users::Column::Email.eq(email.as_str()))
            .add(users::Column::EmailSkeleton.eq(email.skeleton())),
    );
    if let Some(id) = except {
        query = query.filter(users::Column::Id.ne(id));
    }
    Ok(query.one(db).await?)
}

/// Revokes every access token of a user: raises their token generation, so that the tokens
/// issued before are refused (the caller invalidates the user cache).
///
/// # Errors
/// On database failure.
pub async fn revoke_tokens(db: &impl ConnectionTrait, id: Uuid) -> ApiResult<()> {
    users::Entity::update_many()
        .col_expr(
            users::Column::TokenGeneration,
            sea_orm::sea_query::ExprTrait::add(
                sea_orm::sea_query::Expr::col(users::Column::TokenGeneration),
                1,
            ),
        )
        .filter(users::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Fills the skeleton of users stored before skeletons existed (run after migrations). A row
/// whose skeleton another row already holds keeps none, and is logged.
///
/// # Errors
/// On database failure.
pub async fn backfill_email_skeletons(db: &impl ConnectionTrait) -> ApiResult<()> {
    let rows = users::Entity::find()
        .filter(users::Column::EmailSkeleton.is_null())
        .all(db)
        .await?;
    for row in rows {
        let skeleton = email::skeleton(&email::normalise(&row.email));
        let result = users::Entity::update_many()
            .col_expr(users::Column::EmailSkeleton, skeleton.into())
            .filter(users::Column::Id.eq(row.id))
            .exec(db)
            .await;
        match result {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => tracing::warn!(
                user.id = %row.id,
                "This user's e-mail looks like another user's; it keeps no skeleton"
            ),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Finds a user by id.
///
/// # Errors
/// On database failure.
pub async fn find_by_id(db: &impl ConnectionTrait, id: Uuid) -> ApiResult<Option<users::Model>> {
    Ok(users::Entity::find_by_id(id).one(db).await?)
}

/// Cache of users by id (`None`: no such user).
pub type UserCache = crate::domain::cache::TtlCache<Uuid, Option<users::Model>>;

/// [`find_by_id`] through the cache.
///
/// # Errors
/// On database failure.
pub async fn find_by_id_cached(
    db: &impl ConnectionTrait,
    cache: &UserCache,
    id: Uuid,
) -> ApiResult<Option<users::Model>> {
    if let Some(user) = cache.get(&id) {
        return Ok(user);
    }
    let ticket = cache.ticket();
    let user = find_by_id(db, id).await?;
    cache.insert(ticket, [(id, user.clone())]);
    Ok(user)
}

/// Finds a user by id, or 404.
///
/// # Errors
/// 404 when there is no such user.
pub async fn get(db: &impl ConnectionTrait, id: Uuid) -> ApiResult<users::Model> {
    find_by_id(db, id).await?.ok_or_else(|| not_found("user"))
}

/// Finds a user by e-mail (normalised: trimmed, NFKC, lower case).
///
/// # Errors
/// On database failure.
pub async fn find_by_email(
    db: &impl ConnectionTrait,
    email: &str,
) -> ApiResult<Option<users::Model>> {
    let email = email::normalise(email);
    Ok(users::Entity::find()
        .filter(users::Column::Email.eq(email))
        .one(db)
        .await?)
}

/// Whether any admin exists.
///
/// # Errors
/// On database failure.
pub async fn admin_exists(db: &impl ConnectionTrait) -> ApiResult<bool> {
    Ok(users::Entity::find()
        .filter(users::Column::Role.eq(Role::Admin.as_str()))
        .one(db)
        .await?
        .is_some())
}

/// Inserts a validated user, hashing the password.
///
/// # Errors
/// 409 `email_taken`; 500 on database failure.
pub async fn create(db: &impl ConnectionTrait, new: NewUser) -> ApiResult<users::Model> {
    create_bounded(db, new, None).await
}

/// [`create`], hashing the password once one of the `hashing` permits is free (the API's
/// bound on concurrent hashing).
///
/// # Errors
/// 409 `email_taken`; 500 on database failure.
pub async fn create_bounded(
    db: &impl ConnectionTrait,
    new: NewUser,
    hashing: Option<&tokio::sync::Semaphore>,
) -> ApiResult<users::Model> {
    let password_hash = hash_off_thread(new.password, hashing).await?;
    let now = Utc::now().fixed_offset();
    let model = users::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(new.email.as_str().to_owned()),
        email_skeleton: Set(Some(new.email.skeleton())),
        token_generation: Set(0),
        display_name: Set(new.display_name),
        password_hash: Set(password_hash),
        role: Set(new.role.as_str().to_owned()),
        organization_id: Set(new.organization_id),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
    };
    model
        .insert(db)
        .await
        .map_err(|e| email_taken_on(&e).unwrap_or_else(|| e.into()))
}

/// Argon2 takes tens of milliseconds of CPU: keep it off the async workers, and within the
/// `hashing` bound when there is one.
async fn hash_off_thread(
    password: String,
    hashing: Option<&tokio::sync::Semaphore>,
) -> ApiResult<String> {
    let _permit = match hashing {
        Some(semaphore) => Some(
            semaphore
                .acquire()
                .await
                .map_err(|e| ApiError::Internal(e.into()))?,
        ),
        None => None,
    };
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(ApiError::Internal)
}

/// Checks a password against a user's hash (or a dummy hash when there is no user, so that
/// timing does not reveal which e-mails exist), waiting for one of the `hashing` permits.
pub async fn verify_password(
    hashing: &tokio::sync::Semaphore,
    user: Option<&users::Model>,
    password: String,
) -> bool {
    let hash = user.map(|u| u.password_hash.clone());
    let found = user.is_some();
    let Ok(_permit) = hashing.acquire().await else {
        return false;
    };
    // The dummy hash is made on first use: on the blocking thread too.
    tokio::task::spawn_blocking(move || match &hash {
        Some(hash) => password::verify(&password, hash),
        None => password::verify(&password, password::dummy_hash()),
    })
    .await
    .unwrap_or(false)
        && found
}

/// Lists the users of an organization in id order.
///
/// # Errors
/// On database failure.
pub async fn list_in_org(
    db: &impl ConnectionTrait,
    organization_id: Uuid,
    page: PageRequest,
) -> ApiResult<Vec<users::Model>> {
    let mut query = users::Entity::find()
        .filter(users::Column::OrganizationId.eq(organization_id))
        .order_by_asc(users::Column::Id);
    if let Some(after) = page.after {
        query = query.filter(users::Column::Id.gt(after));
    }
    Ok(query.limit(page.limit + 1).all(db).await?)
}

/// The validated changes of an [`UpdateUser`] patch.
#[derive(Debug, Default)]
pub struct UserChanges {
    email: Option<Email>,
    password: Option<String>,
    role: Option<Role>,
    display_name: Option<String>,
    current_password: Option<String>,
}

impl UserChanges {
    /// Validates a patch against the user it applies to.
    ///
    /// # Errors
    /// 422 listing every invalid field (`null` is invalid for every member).
    pub fn parse(patch: UpdateUser, current: &users::Model) -> ApiResult<Self> {
        fn required<T>(pointer: &str, patch: Patch<T>, errors: &mut Vec<FieldError>) -> Option<T> {
            match patch {
                Patch::Absent => None,
                Patch::Null => {
                    errors.push(FieldError::new(pointer, "cannot be null"));
                    None
                }
                Patch::Set(value) => Some(value),
            }
        }
        let mut errors = Vec::new();
        let email = required("/email", patch.email, &mut errors).and_then(|e| {
            Email::parse(&e)
                .map_err(|m| errors.push(FieldError::new("/email", m)))
                .ok()
        });
        let password = required("/password", patch.password, &mut errors);
        if let Some(Err(e)) = password.as_deref().map(|p| check_password("/password", p)) {
            errors.push(e);
        }
        let role = required("/role", patch.role, &mut errors);
        if let Some(Err(e)) = role.map(|r| check_role_fits(r, current.organization_id)) {
            errors.push(e);
        }
        let display_name =
            required("/display_name", patch.display_name, &mut errors).and_then(|n| {
                check_display_name("/display_name", &n)
                    .map_err(|e| errors.push(e))
                    .ok()
            });
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        Ok(Self {
            email,
            password,
            role,
            display_name,
            current_password: patch.current_password,
        })
    }

    /// Whether only the caller's own password or display name changes (what a plain user may
    /// do to their own account).
    pub fn is_self_service(&self) -> bool {
        self.email.is_none() && self.role.is_none()
    }

    /// The new e-mail, if it changes.
    pub fn email(&self) -> Option<&Email> {
        self.email.as_ref()
    }

    /// Whether the password changes.
    pub fn changes_password(&self) -> bool {
        self.password.is_some()
    }

    /// The current password given with the patch, if any.
    pub fn current_password(&self) -> Option<&str> {
        self.current_password.as_deref()
    }

    /// The role this patch grants, if any.
    pub fn role(&self) -> Option<Role> {
        self.role
    }
}

/// Applies validated changes with optimistic locking on the version read. A new password is
/// hashed within the `hashing` bound and revokes every token of the user.
///
/// # Errors
/// 412 when the user changed meanwhile; 409 `email_taken`.
pub async fn update(
    db: &impl ConnectionTrait,
    current: users::Model,
    changes: UserChanges,
    hashing: &tokio::sync::Semaphore,
) -> ApiResult<users::Model> {
    if changes.email.is_none()
        && changes.password.is_none()
        && changes.role.is_none()
        && changes.display_name.is_none()
    {
        return Ok(current);
    }
    let mut query = users::Entity::update_many()
        .col_expr(users::Column::Version, (current.version + 1).into())
        .col_expr(users::Column::UpdatedAt, Utc::now().fixed_offset().into())
        .filter(users::Column::Id.eq(current.id))
        .filter(users::Column::Version.eq(current.version));
    if let Some(email) = changes.email {
        query = query
            .col_expr(users::Column::Email, email.as_str().to_owned().into())
            .col_expr(users::Column::EmailSkeleton, email.skeleton().into());
    }
    if let Some(password) = changes.password {
        query = query
            .col_expr(
                users::Column::PasswordHash,
                hash_off_thread(password, Some(hashing)).await?.into(),
            )
            .col_expr(
                users::Column::TokenGeneration,
                (current.token_generation + 1).into(),
            );
    }
    if let Some(role) = changes.role {
        query = query.col_expr(users::Column::Role, role.as_str().to_owned().into());
    }
    if let Some(name) = changes.display_name {
        query = query.col_expr(users::Column::DisplayName, name.into());
    }
    let result = query
        .exec(db)
        .await
        .map_err(|e| email_taken_on(&e).unwrap_or_else(|| e.into()))?;
    if result.rows_affected == 0 {
        return Err(ApiError::PreconditionFailed);
    }
    get(db, current.id).await
}

/// Deletes a user (their settings go with them).
///
/// # Errors
/// On database failure.
pub async fn delete(db: &impl ConnectionTrait, id: Uuid) -> ApiResult<()> {
    users::Entity::delete_by_id(id).exec(db).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[tokio::test]
    async fn password_checks_wait_for_a_hashing_permit() {
        let hashing = tokio::sync::Semaphore::new(1);
        let held = hashing.acquire().await.unwrap();
        let check = super::verify_password(&hashing, None, "a password".to_owned());
        tokio::pin!(check);
        assert!(
            tokio::time::timeout(Duration::from_millis(300), &mut check)
                .await
                .is_err(),
            "no check runs while every permit is taken"
        );
        drop(held);
        assert!(!check.await, "an unknown user never matches");
    }
}
