use async_trait::async_trait;
use serde_json::{Map, Value};

use super::StoreError;

/// What a role change found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    /// The role does not exist; nothing was written.
    UnknownRole,
    /// Done; `true` when the state was already as asked (the user had the role, …).
    Done(bool),
}

/// The users of SuperTokens apps as the core face keeps them: roles with permissions (app-wide), users'
/// roles (per tenant) and users' metadata (app-wide). Every call is scoped to one organization.
#[async_trait]
pub trait AppUserStore {
    /// Creates the role if missing and adds the permissions; `true` if the role was created.
    async fn put_role(&self, organization_id: &str, role: &str, permissions: &[String]) -> Result<bool, StoreError>;

    /// Deletes a role with its permissions and every user's assignment; `false` if it did not exist.
    async fn delete_role(&self, organization_id: &str, role: &str) -> Result<bool, StoreError>;

    /// Every role, sorted.
    async fn roles(&self, organization_id: &str) -> Result<Vec<String>, StoreError>;

    /// A role's permissions, sorted; `None` for an unknown role.
    async fn role_permissions(&self, organization_id: &str, role: &str) -> Result<Option<Vec<String>>, StoreError>;

    /// Removes some permissions of a role (`None`: all); `false` for an unknown role.
    async fn remove_role_permissions(
        &self,
        organization_id: &str,
        role: &str,
        permissions: Option<&[String]>,
    ) -> Result<bool, StoreError>;

    /// The roles that grant a permission, sorted.
    async fn roles_with_permission(&self, organization_id: &str, permission: &str) -> Result<Vec<String>, StoreError>;

    /// Gives a user a role in a tenant; `Done(true)` if they had it already.
    async fn add_user_role(
        &self,
        organization_id: &str,
        tenant_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<RoleChange, StoreError>;

    /// Takes a role from a user in a tenant; `Done(true)` if they had it.
    async fn remove_user_role(
        &self,
        organization_id: &str,
        tenant_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<RoleChange, StoreError>;

    /// A user's roles in a tenant, sorted.
    async fn user_roles(
        &self,
        organization_id: &str,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<Vec<String>, StoreError>;

    /// The users with a role in a tenant, sorted; `None` for an unknown role.
    async fn role_users(
        &self,
        organization_id: &str,
        tenant_id: &str,
        role: &str,
    ) -> Result<Option<Vec<String>>, StoreError>;

    /// A user's metadata (`{}` when there is none).
    async fn user_metadata(&self, organization_id: &str, user_id: &str) -> Result<Map<String, Value>, StoreError>;

    /// Applies [`crate::app_users::merge_metadata`] to the user's stored metadata and writes the result, in
    /// one transaction. `None` (and nothing written) when the result would exceed the size limit.
    async fn update_user_metadata(
        &self,
        organization_id: &str,
        user_id: &str,
        update: &Map<String, Value>,
    ) -> Result<Option<Map<String, Value>>, StoreError>;

    /// Deletes a user's metadata.
    async fn delete_user_metadata(&self, organization_id: &str, user_id: &str) -> Result<(), StoreError>;
}
