//! Who may see and change what.
//!
//! `admin` may do everything. `org_admin` may read and write their organization and its users.
//! `user` may read themselves and read and write their own user-scope settings. Whatever a
//! caller may not even see answers 404 (so ids of other organizations leak nothing); what they
//! can see but may not do answers 403.

use uuid::Uuid;

use crate::{auth::AuthUser, domain::Role, error::ApiError};

/// The 404 of an object the caller may not see.
pub fn not_found(what: &str) -> ApiError {
    ApiError::NotFound(format!("No such {what}."))
}

fn forbidden(detail: &str) -> ApiError {
    ApiError::Forbidden(detail.to_owned())
}

impl AuthUser {
    /// Whether the caller is an `admin`.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    fn in_org(&self, organization_id: Uuid) -> bool {
        self.organization_id == Some(organization_id)
    }

    /// Admins only (global settings, creating organizations...).
    ///
    /// # Errors
    /// 403 for everyone else.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(forbidden("Only an admin may do this."))
        }
    }

    /// Reading or writing an organization, its settings and its users.
    ///
    /// # Errors
    /// 404 for another organization; 403 for a plain user of this one.
    pub fn may_manage_org(&self, organization_id: Uuid) -> Result<(), ApiError> {
        match self.role {
            Role::Admin => Ok(()),
            _ if !self.in_org(organization_id) => Err(not_found("organization")),
            Role::OrgAdmin => Ok(()),
            Role::User => Err(forbidden("Only an admin of this organization may do this.")),
        }
    }

    /// Reading a user, and reading or writing their settings and connection.
    ///
    /// # Errors
    /// 404 for any user the caller may not see.
    pub fn may_access_user(
        &self,
        target_id: Uuid,
        target_org: Option<Uuid>,
    ) -> Result<(), ApiError> {
        let visible = self.is_admin()
            || self.id == target_id
            || (self.role == Role::OrgAdmin && target_org.is_some_and(|org| self.in_org(org)));
        if visible {
            Ok(())
        } else {
            Err(not_found("user"))
        }
    }

    /// Reading or writing a user's data: their events, tasks, settings, connection and sync.
    /// The same rule as managing the user, but for the user themselves: an org admin does not
    /// reach the data of an admin who belongs to their organization.
    ///
    /// # Errors
    /// 404 when the user is not visible; 403 when visible but their data is not the caller's
    /// to reach (an admin's, for an org admin).
    pub fn may_access_user_data(
        &self,
        target_id: Uuid,
        target_org: Option<Uuid>,
        target_role: Role,
    ) -> Result<(), ApiError> {
        self.may_access_user(target_id, target_org)?;
        if self.id != target_id && self.role == Role::OrgAdmin && target_role == Role::Admin {
            return Err(forbidden(
                "An organization admin may not reach an admin's data.",
            ));
        }
        Ok(())
    }

    /// Changing or deleting a user's account (role, e-mail...).
    ///
    /// # Errors
    /// 404 when the user is not visible; 403 when visible but not manageable (a plain user's
    /// own account, or an admin account for an org admin).
    pub fn may_manage_user(
        &self,
        target_id: Uuid,
        target_org: Option<Uuid>,
        target_role: Role,
    ) -> Result<(), ApiError> {
        self.may_access_user(target_id, target_org)?;
        match self.role {
            Role::Admin => Ok(()),
            Role::OrgAdmin if target_role == Role::Admin => Err(forbidden(
                "An organization admin may not change an admin account.",
            )),
            Role::OrgAdmin => Ok(()),
            Role::User => Err(forbidden("Only an admin may change this account.")),
        }
    }

    /// Giving a user `role`.
    ///
    /// # Errors
    /// 403 when an org admin tries to make an admin.
    pub fn may_grant(&self, role: Role) -> Result<(), ApiError> {
        if role == Role::Admin && !self.is_admin() {
            return Err(forbidden("Only an admin may grant the admin role."));
        }
        Ok(())
    }
}
