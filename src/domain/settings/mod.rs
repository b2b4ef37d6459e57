//! Settings at three scopes (global → organization → user): each field at a lower scope
//! either overrides the scope above or falls back to it, field by field.

pub mod application;
pub mod microsoft;

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// Where a settings row applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The whole system.
    Global,
    /// One organization.
    Organization(Uuid),
    /// One user, who may belong to an organization.
    User {
        /// The user.
        user_id: Uuid,
        /// Their organization, the scope they fall back to.
        organization_id: Option<Uuid>,
    },
}

impl Scope {
    /// The scope of `user`, which falls back to their organization's.
    pub fn of_user(user: &entity::users::Model) -> Self {
        Self::User {
            user_id: user.id,
            organization_id: user.organization_id,
        }
    }

    /// The primary key of this scope's settings row.
    pub fn key(&self) -> String {
        match self {
            Self::Global => "global".to_owned(),
            Self::Organization(id) => format!("organization:{id}"),
            Self::User { user_id, .. } => format!("user:{user_id}"),
        }
    }

    /// The source a value set at this scope reports.
    pub fn source(&self) -> Source {
        match self {
            Self::Global => Source::Global,
            Self::Organization(_) => Source::Organization,
            Self::User { .. } => Source::User,
        }
    }

    /// This scope and the scopes it falls back to, most specific first.
    pub fn chain(&self) -> Vec<Scope> {
        match *self {
            Self::Global => vec![Self::Global],
            Self::Organization(id) => vec![Self::Organization(id), Self::Global],
            Self::User {
                organization_id: Some(org),
                ..
            } => {
                vec![*self, Self::Organization(org), Self::Global]
            }
            Self::User {
                organization_id: None,
                ..
            } => vec![*self, Self::Global],
        }
    }

    fn organization_id(&self) -> Option<Uuid> {
        match self {
            Self::Organization(id) => Some(*id),
            Self::User {
                organization_id, ..
            } => *organization_id,
            Self::Global => None,
        }
    }

    fn user_id(&self) -> Option<Uuid> {
        match self {
            Self::User { user_id, .. } => Some(*user_id),
            _ => None,
        }
    }
}

/// Where an effective value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Nobody set it: the built-in default.
    Default,
    /// The global (system) scope.
    Global,
    /// The organization scope.
    Organization,
    /// The user scope.
    User,
}

/// The first value set along a chain of scopes, most specific first.
pub(crate) fn resolve<T: Clone>(
    viewed: Source,
    chain: &[(Source, Option<T>)],
    default: T,
) -> (T, Source, bool) {
    chain
        .iter()
        .find_map(|(source, value)| value.clone().map(|v| (v, *source)))
        .map_or((default, Source::Default, false), |(value, source)| {
            (value, source, source == viewed)
        })
}
