//! API keys: credentials of back ends and SDK users, sent as `Authorization: Bearer <key>`.
//!
//! A key's secret is `m365s_` followed by 43 random base62 characters (256 bits), shown once
//! when the key is created and stored only as its SHA-256: a secret of that entropy needs no
//! slow hash, and a request is looked up by the hash of what it sends. The secret's first
//! characters (`prefix`) are kept in clear so that people can tell their keys apart.
//!
//! A key acts with the role it was created with: `admin` (an admin's key, everywhere) or
//! `org_admin` within one organization (an org admin's key for their organization, or an
//! admin's key for the organization they named). It acts only while its creator still holds
//! that power: a key of a creator who was demoted, or moved to another organization, is
//! refused until the creator has the role again, and a key goes with its creator when the
//! creator is deleted (and with its organization).

use chrono::{DateTime, Utc};
use entity::{api_keys, users};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
    sea_query::{Expr, ExprTrait},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    crypto::random_bytes,
    domain::{Role, access::not_found, email, pagination::PageRequest},
    error::{ApiError, ApiResult, FieldError},
};

/// What every secret starts with, so that secret scanners can find leaked keys.
pub const SECRET_PREFIX: &str = "m365s_";

/// Random characters after [`SECRET_PREFIX`]: 43 base62 characters carry 256 bits.
const SECRET_CHARS: usize = 43;

/// Random characters of the secret kept in clear in `prefix`.
const SHOWN_CHARS: usize = 8;

/// Longest name, in characters.
const NAME_MAX: usize = 100;

/// `last_used_at` is written at most this often per key, not on every request.
const LAST_USED_EVERY: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// An API key as the API shows it: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    /// Id (UUID v7).
    pub id: Uuid,
    /// Name given at creation.
    pub name: String,
    /// The secret's first characters, to recognize the key (not enough to use it).
    #[schema(example = "m365s_7GkQ2xNa")]
    pub prefix: String,
    /// The role the key acts with: `admin` (everywhere) or `org_admin` (within
    /// `organization_id`).
    pub role: Role,
    /// The organization an `org_admin` key acts within; `null` for `admin` keys.
    pub organization_id: Option<Uuid>,
    /// The user who created the key (the key goes with them).
    pub created_by: Uuid,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it stops working; `null`: never.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was last used (updated at most once a minute); `null`: never.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A key just created: its description and, this once, its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// Id (UUID v7).
    pub id: Uuid,
    /// Name given at creation.
    pub name: String,
    /// The secret's first characters, to recognize the key (not enough to use it).
    #[schema(example = "m365s_7GkQ2xNa")]
    pub prefix: String,
    /// The role the key acts with: `admin` (everywhere) or `org_admin` (within
    /// `organization_id`).
    pub role: Role,
    /// The organization an `org_admin` key acts within; `null` for `admin` keys.
    pub organization_id: Option<Uuid>,
    /// The user who created the key (the key goes with them).
    pub created_by: Uuid,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it stops working; `null`: never.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was last used; `null`: never.
    pub last_used_at: Option<DateTime<Utc>>,
    /// The key itself, to send as `Authorization: Bearer <secret>`. Shown only in this
    /// response: it is stored as a hash and cannot be read again.
    #[schema(example = "m365s_7GkQ2xNaV0cQb1yE9wLrT3uH8sJ4dK6mP5nZ2fG0hA1")]
    pub secret: String,
}

/// Body of `POST /api/v1/api-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// What the key is for, 1 to 100 characters, not blank, without bidirectional-control or
    /// zero-width characters.
    #[schema(
        example = "CRM back end",
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]*[^\t-\r \x85\xa0\u1680\u2000-\u200f\u2028-\u202f\u205f-\u2064\u2066-\u2069\u3000\u061c\u180e\ufeff][^\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]*$"
    )]
    pub name: String,
    /// When the key stops working (an RFC 3339 instant in the future); absent: never.
    #[serde(default)]
    #[schema(format = DateTime, example = "2027-01-01T00:00:00Z")]
    pub expires_at: Option<String>,
    /// Admins only: create an `org_admin` key acting within this organization instead of an
    /// `admin` key. An org admin's keys always act within their own organization (naming
    /// another one answers 404).
    #[serde(default)]
    pub organization_id: Option<Uuid>,
}

/// A validated [`CreateApiKey`].
#[derive(Debug)]
pub struct NewApiKey {
    /// Name.
    pub name: String,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// The organization asked for.
    pub organization_id: Option<Uuid>,
}

impl NewApiKey {
    /// Validates a creation request at `now`.
    ///
    /// # Errors
    /// 422 listing every invalid field: a blank, long or invisible-character name, an expiry
    /// that is not an RFC 3339 instant or not in the future.
    pub fn parse(input: CreateApiKey, now: DateTime<Utc>) -> ApiResult<Self> {
        let mut errors = Vec::new();
        let name = input.name.trim();
        if name.is_empty() || name.chars().count() > NAME_MAX {
            errors.push(FieldError::new("/name", "must be 1 to 100 characters"));
        } else if name.chars().any(email::is_invisible_control) {
            errors.push(FieldError::new(
                "/name",
                "must not contain bidirectional-control or zero-width characters",
            ));
        }
        let expires_at = match input.expires_at.as_deref() {
            None => None,
            Some(text) => match DateTime::parse_from_rfc3339(text) {
                Ok(at) if at.with_timezone(&Utc) > now => Some(at.with_timezone(&Utc)),
                Ok(_) => {
                    errors.push(FieldError::new("/expires_at", "must be in the future"));
                    None
                }
                Err(_) => {
                    errors.push(FieldError::new(
                        "/expires_at",
                        "must be an RFC 3339 instant such as `2027-01-01T00:00:00Z`",
                    ));
                    None
                }
            },
        };
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        Ok(Self {
            name: name.to_owned(),
            expires_at,
            organization_id: input.organization_id,
        })
    }
}

impl TryFrom<api_keys::Model> for ApiKeyView {
    type Error = ApiError;

    fn try_from(m: api_keys::Model) -> ApiResult<Self> {
        Ok(Self {
            id: m.id,
            role: stored_role(&m)?,
            name: m.name,
            prefix: m.prefix,
            organization_id: m.organization_id,
            created_by: m.created_by,
            created_at: m.created_at.with_timezone(&Utc),
            expires_at: m.expires_at.map(|t| t.with_timezone(&Utc)),
            last_used_at: m.last_used_at.map(|t| t.with_timezone(&Utc)),
        })
    }
}

impl CreatedApiKey {
    fn new(view: ApiKeyView, secret: String) -> Self {
        Self {
            id: view.id,
            name: view.name,
            prefix: view.prefix,
            role: view.role,
            organization_id: view.organization_id,
            created_by: view.created_by,
            created_at: view.created_at,
            expires_at: view.expires_at,
            last_used_at: view.last_used_at,
            secret,
        }
    }
}

/// The role of a stored key.
///
/// # Errors
/// 500 if the stored value is not a role (never written by this service).
pub fn stored_role(key: &api_keys::Model) -> ApiResult<Role> {
    Role::parse(&key.role).map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))
}

/// A fresh secret: [`SECRET_PREFIX`] and 43 characters drawn uniformly from base62.
fn new_secret() -> String {
    let mut secret = String::with_capacity(SECRET_PREFIX.len() + SECRET_CHARS);
    secret.push_str(SECRET_PREFIX);
    let mut drawn = 0;
    while drawn < SECRET_CHARS {
        for byte in random_bytes::<64>() {
            // 248 = 4 × 62: bytes at or above it would favour the first characters.
            if byte < 248 && drawn < SECRET_CHARS {
                secret.push(char::from(BASE62[usize::from(byte % 62)]));
                drawn += 1;
            }
        }
    }
    secret
}

/// Whether `value` has the shape of a secret this service issues.
pub fn looks_like_secret(value: &str) -> bool {
    value.strip_prefix(SECRET_PREFIX).is_some_and(|rest| {
        rest.len() == SECRET_CHARS && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// The stored form of a secret: its SHA-256, in hex.
pub fn hash_secret(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The role and organization a key created by `creator` (of `creator_role`) for `wanted`
/// (an organization, or none) gets.
///
/// # Errors
/// 403 for a plain user; 404 for an org admin who names another organization.
pub fn scope_for(
    creator_role: Role,
    creator_org: Option<Uuid>,
    wanted: Option<Uuid>,
) -> ApiResult<(Role, Option<Uuid>)> {
    match creator_role {
        Role::Admin => Ok(match wanted {
            Some(org) => (Role::OrgAdmin, Some(org)),
            None => (Role::Admin, None),
        }),
        Role::OrgAdmin => match (creator_org, wanted) {
            (Some(own), None) => Ok((Role::OrgAdmin, Some(own))),
            (Some(own), Some(org)) if org == own => Ok((Role::OrgAdmin, Some(own))),
            (Some(_), Some(_)) => Err(not_found("organization")),
            (None, _) => Err(ApiError::Forbidden(
                "An organization admin without an organization may not create API keys.".into(),
            )),
        },
        Role::User => Err(ApiError::Forbidden(
            "Only admins and organization admins may create API keys.".into(),
        )),
    }
}

/// Whether `creator` still holds the power a key of `role` within `organization_id` acts
/// with: an admin holds every key's; an org admin that of their own organization's keys.
pub fn creator_holds(role: Role, organization_id: Option<Uuid>, creator: &users::Model) -> bool {
    match (role, Role::parse(&creator.role)) {
        (_, Ok(Role::Admin)) => true,
        (Role::OrgAdmin, Ok(Role::OrgAdmin)) => {
            organization_id.is_some() && creator.organization_id == organization_id
        }
        _ => false,
    }
}

/// Creates a key for `created_by`, with the role and organization of [`scope_for`]; returns
/// it with its secret (the only time it is seen).
///
/// # Errors
/// On database failure (404 when the organization does not exist).
pub async fn create(
    db: &impl ConnectionTrait,
    new: NewApiKey,
    role: Role,
    organization_id: Option<Uuid>,
    created_by: Uuid,
) -> ApiResult<CreatedApiKey> {
    let secret = new_secret();
    let now = Utc::now().fixed_offset();
    let model = api_keys::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(new.name),
        prefix: Set(secret[..SECRET_PREFIX.len() + SHOWN_CHARS].to_owned()),
        secret_hash: Set(hash_secret(&secret)),
        role: Set(role.as_str().to_owned()),
        organization_id: Set(organization_id),
        created_by: Set(created_by),
        created_at: Set(now),
        expires_at: Set(new.expires_at.map(|t| t.fixed_offset())),
        last_used_at: Set(None),
    };
    let stored = model.insert(db).await.map_err(|e| {
        if crate::error::is_foreign_key_violation(&e) {
            not_found("organization")
        } else {
            ApiError::from(e)
        }
    })?;
    Ok(CreatedApiKey::new(ApiKeyView::try_from(stored)?, secret))
}

/// Lists keys in id order: every key, or those acting within `organization_id`.
///
/// # Errors
/// On database failure.
pub async fn list(
    db: &impl ConnectionTrait,
    organization_id: Option<Uuid>,
    page: PageRequest,
) -> ApiResult<Vec<api_keys::Model>> {
    let mut query = api_keys::Entity::find().order_by_asc(api_keys::Column::Id);
    if let Some(org) = organization_id {
        query = query.filter(api_keys::Column::OrganizationId.eq(org));
    }
    if let Some(after) = page.after {
        query = query.filter(api_keys::Column::Id.gt(after));
    }
    Ok(query.limit(page.limit + 1).all(db).await?)
}

/// A key by id.
///
/// # Errors
/// On database failure.
pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> ApiResult<Option<api_keys::Model>> {
    Ok(api_keys::Entity::find_by_id(id).one(db).await?)
}

/// A key by the secret a request sent.
///
/// # Errors
/// On database failure.
pub async fn find_by_secret(
    db: &impl ConnectionTrait,
    secret: &str,
) -> ApiResult<Option<api_keys::Model>> {
    Ok(api_keys::Entity::find()
        .filter(api_keys::Column::SecretHash.eq(hash_secret(secret)))
        .one(db)
        .await?)
}

/// Revokes a key: it is deleted, and the next request that sends it is refused.
///
/// # Errors
/// On database failure.
pub async fn delete(db: &impl ConnectionTrait, id: Uuid) -> ApiResult<()> {
    api_keys::Entity::delete_by_id(id).exec(db).await?;
    Ok(())
}

/// Records that `key` was used at `now`, unless that was recorded less than a minute ago
/// (by this process or another: the condition is checked by the database too).
///
/// # Errors
/// On database failure.
pub async fn touch(
    db: &impl ConnectionTrait,
    key: &api_keys::Model,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let threshold = (now - LAST_USED_EVERY).fixed_offset();
    if key.last_used_at.is_some_and(|at| at > threshold) {
        return Ok(());
    }
    api_keys::Entity::update_many()
        .col_expr(
            api_keys::Column::LastUsedAt,
            Expr::value(now.fixed_offset()),
        )
        .filter(api_keys::Column::Id.eq(key.id))
        .filter(
            api_keys::Column::LastUsedAt
                .is_null()
                .or(api_keys::Column::LastUsedAt.lte(threshold)),
        )
        .exec(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_the_prefix_and_256_bits_of_base62() {
        let a = new_secret();
        let b = new_secret();
        assert_ne!(a, b);
        assert!(a.starts_with("m365s_"));
        assert_eq!(a.len(), 6 + 43);
        assert!(looks_like_secret(&a));
        assert!(!looks_like_secret("m365s_short"));
        assert!(!looks_like_secret(&a.replace("m365s_", "m365x_")));
        assert!(!looks_like_secret(&format!("{}-", &a[..a.len() - 1])));
        assert_eq!(hash_secret(&a).len(), 64);
    }

    #[test]
    fn keys_take_the_scope_of_their_creator() {
        let org = Uuid::now_v7();
        let other = Uuid::now_v7();
        assert_eq!(
            scope_for(Role::Admin, None, None).unwrap(),
            (Role::Admin, None)
        );
        assert_eq!(
            scope_for(Role::Admin, None, Some(org)).unwrap(),
            (Role::OrgAdmin, Some(org))
        );
        assert_eq!(
            scope_for(Role::OrgAdmin, Some(org), None).unwrap(),
            (Role::OrgAdmin, Some(org))
        );
        assert_eq!(
            scope_for(Role::OrgAdmin, Some(org), Some(other))
                .unwrap_err()
                .code(),
            "not_found"
        );
        assert_eq!(
            scope_for(Role::User, Some(org), None).unwrap_err().code(),
            "forbidden"
        );
    }

    #[test]
    fn names_and_expiries_are_validated() {
        let now = Utc::now();
        let input = |name: &str, expires_at: Option<&str>| CreateApiKey {
            name: name.to_owned(),
            expires_at: expires_at.map(str::to_owned),
            organization_id: None,
        };
        assert_eq!(
            NewApiKey::parse(input("  CRM  ", None), now).unwrap().name,
            "CRM"
        );
        for (name, expires_at, pointer) in [
            ("   ", None, "/name"),
            (&"x".repeat(101), None, "/name"),
            ("a\u{202e}b", None, "/name"),
            ("ok", Some("2000-01-01T00:00:00Z"), "/expires_at"),
            ("ok", Some("tomorrow"), "/expires_at"),
        ] {
            let Err(ApiError::Validation(errors)) = NewApiKey::parse(input(name, expires_at), now)
            else {
                panic!("{name:?} {expires_at:?} should be refused");
            };
            assert_eq!(errors[0].pointer, pointer, "{name:?} {expires_at:?}");
        }
    }
}
