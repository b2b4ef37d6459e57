//! The three roles of the API.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a user may do: `admin` everything; `org_admin` their organization and its users;
/// `user` only their own settings and connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, in every organization.
    Admin,
    /// Their organization and its users.
    OrgAdmin,
    /// Themselves.
    User,
}

impl Role {
    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::OrgAdmin => "org_admin",
            Self::User => "user",
        }
    }

    /// Parses the stored and wire form.
    ///
    /// # Errors
    /// For anything but `admin`, `org_admin` or `user`.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "admin" => Ok(Self::Admin),
            "org_admin" => Ok(Self::OrgAdmin),
            "user" => Ok(Self::User),
            other => Err(format!(
                "unknown role `{other}`; expected admin, org_admin or user"
            )),
        }
    }
}
