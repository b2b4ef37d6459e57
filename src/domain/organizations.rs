//! Organizations: the middle settings scope and the owners of users.

use chrono::Utc;
use entity::{organizations, users};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    domain::{access::not_found, pagination::PageRequest, patch::Patch},
    error::{ApiError, ApiResult, FieldError, is_unique_violation},
};

/// An organization as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationView {
    /// Id (UUID v7).
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// Version, also sent as the `ETag`.
    pub version: i64,
    /// When it was created.
    pub created_at: chrono::DateTime<Utc>,
    /// When it last changed.
    pub updated_at: chrono::DateTime<Utc>,
}

impl From<organizations::Model> for OrganizationView {
    fn from(m: organizations::Model) -> Self {
        Self {
            id: m.id,
            name: m.name,
            version: m.version,
            created_at: m.created_at.with_timezone(&Utc),
            updated_at: m.updated_at.with_timezone(&Utc),
        }
    }
}

/// Body of `POST /api/v1/organizations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrganization {
    /// Unique name, 1 to 200 characters, not blank.
    #[schema(
        example = "Acme Corp",
        min_length = 1,
        max_length = 200,
        pattern = r"[^\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
    )]
    pub name: String,
}

/// Body of `PATCH /api/v1/organizations/{id}` (JSON merge patch).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrganization {
    /// New unique name, 1 to 200 characters, not blank (`null` is invalid).
    #[serde(default)]
    #[schema(value_type = String, min_length = 1, max_length = 200, pattern = r"[^\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")]
    pub name: Patch<String>,
}

fn parse_name(name: &str) -> Result<String, FieldError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(FieldError::new("/name", "must be 1 to 200 characters"));
    }
    Ok(name.to_owned())
}

fn name_taken(err: &sea_orm::DbErr) -> Option<ApiError> {
    is_unique_violation(err).then(|| {
        ApiError::conflict(
            "organization_name_taken",
            "An organization with this name exists.",
        )
    })
}

/// Finds an organization by id.
///
/// # Errors
/// On database failure.
pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> ApiResult<Option<organizations::Model>> {
    Ok(organizations::Entity::find_by_id(id).one(db).await?)
}

/// Finds an organization by id, or 404.
///
/// # Errors
/// 404 when it does not exist.
pub async fn get(db: &impl ConnectionTrait, id: Uuid) -> ApiResult<organizations::Model> {
    find(db, id).await?.ok_or_else(|| not_found("organization"))
}

/// Finds an organization by its exact name.
///
/// # Errors
/// On database failure.
pub async fn find_by_name(
    db: &impl ConnectionTrait,
    name: &str,
) -> ApiResult<Option<organizations::Model>> {
    Ok(organizations::Entity::find()
        .filter(organizations::Column::Name.eq(name))
        .one(db)
        .await?)
}

/// Creates an organization.
///
/// # Errors
/// 422 for an invalid name, 409 when the name is taken.
pub async fn create(
    db: &impl ConnectionTrait,
    input: CreateOrganization,
) -> ApiResult<organizations::Model> {
    let name = parse_name(&input.name).map_err(|e| ApiError::Validation(vec![e]))?;
    let now = Utc::now().fixed_offset();
    let model = organizations::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(name),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
    };
    model
        .insert(db)
        .await
        .map_err(|e| name_taken(&e).unwrap_or_else(|| e.into()))
}

/// Lists organizations in id order; `only` restricts the list to one organization.
///
/// # Errors
/// On database failure.
pub async fn list(
    db: &impl ConnectionTrait,
    page: PageRequest,
    only: Option<Uuid>,
) -> ApiResult<Vec<organizations::Model>> {
    let mut query = organizations::Entity::find().order_by_asc(organizations::Column::Id);
    if let Some(after) = page.after {
        query = query.filter(organizations::Column::Id.gt(after));
    }
    if let Some(id) = only {
        query = query.filter(organizations::Column::Id.eq(id));
    }
    Ok(query.limit(page.limit + 1).all(db).await?)
}

/// Applies a merge patch to an organization, checking `If-Match` against its version.
///
/// # Errors
/// 404, 412, 422, 409 as the case may be.
pub async fn update(
    db: &impl ConnectionTrait,
    id: Uuid,
    patch: UpdateOrganization,
    if_match: Option<&str>,
) -> ApiResult<organizations::Model> {
    let current = get(db, id).await?;
    // RFC 9110 13.2.1: preconditions are evaluated after the request's own checks.
    let name = match patch.name {
        Patch::Absent => None,
        Patch::Null => return Err(ApiError::invalid("/name", "cannot be null")),
        Patch::Set(name) => Some(parse_name(&name).map_err(|e| ApiError::Validation(vec![e]))?),
    };
    crate::domain::etag::check(if_match, current.version)?;
    let Some(name) = name else {
        return Ok(current);
    };
    if name == current.name {
        return Ok(current);
    }
    let result = organizations::Entity::update_many()
        .col_expr(organizations::Column::Name, name.into())
        .col_expr(organizations::Column::Version, (current.version + 1).into())
        .col_expr(
            organizations::Column::UpdatedAt,
            Utc::now().fixed_offset().into(),
        )
        .filter(organizations::Column::Id.eq(id))
        .filter(organizations::Column::Version.eq(current.version))
        .exec(db)
        .await
        .map_err(|e| name_taken(&e).unwrap_or_else(|| e.into()))?;
    if result.rows_affected == 0 {
        return Err(ApiError::PreconditionFailed);
    }
    get(db, id).await
}

/// Deletes an organization that has no users left (its settings go with it).
///
/// # Errors
/// 404, 412, or 409 `organization_not_empty`.
pub async fn delete(db: &impl ConnectionTrait, id: Uuid, if_match: Option<&str>) -> ApiResult<()> {
    let current = get(db, id).await?;
    crate::domain::etag::check(if_match, current.version)?;
    let members = users::Entity::find()
        .filter(users::Column::OrganizationId.eq(id))
        .count(db)
        .await?;
    if members > 0 {
        return Err(ApiError::conflict(
            "organization_not_empty",
            format!("The organization still has {members} user(s); delete or move them first."),
        ));
    }
    organizations::Entity::delete_by_id(id)
        .exec(db)
        .await
        .map_err(|e| {
            if crate::error::is_foreign_key_violation(&e) {
                ApiError::conflict(
                    "organization_not_empty",
                    "The organization still has users.",
                )
            } else {
                e.into()
            }
        })?;
    Ok(())
}
