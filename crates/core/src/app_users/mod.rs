//! The users of SuperTokens apps, as SuperTokens' UserRoles and UserMetadata recipes keep them through
//! the core face: roles with permissions, users' roles per tenant, users' metadata. Portcullis stores
//! them per organization; the names and ids are the app's own.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::store::{RoleChange, Store};
use crate::{Error, ErrorCode};

/// Longest role, permission or user id accepted.
pub const MAX_NAME_LEN: usize = 256;

/// Most permissions one call may name.
pub const MAX_PERMISSIONS_PER_CALL: usize = 1000;

/// Largest stored metadata of one user, in bytes of JSON.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

/// Shallow merge, as SuperTokens' UserMetadata does it: each top-level key of `update` replaces the
/// stored one, and a top-level `null` deletes it. `None` when the result would exceed
/// [`MAX_METADATA_BYTES`].
#[must_use]
pub fn merge_metadata(stored: &Map<String, Value>, update: &Map<String, Value>) -> Option<Map<String, Value>> {
    let mut merged = stored.clone();
    for (key, value) in update {
        if value.is_null() {
            merged.remove(key);
        } else {
            merged.insert(key.clone(), value.clone());
        }
    }
    let size = serde_json::to_vec(&merged).map_or(usize::MAX, |v| v.len());
    (size <= MAX_METADATA_BYTES).then_some(merged)
}

/// Roles and metadata of one store's apps, with their input rules.
#[derive(Debug, Clone)]
pub struct AppUsers {
    store: Arc<dyn Store>,
}

fn check_name(what: &str, name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(Error::new(ErrorCode::EntityInvalid)
            .with_message(format!("A {what} must be 1 to {MAX_NAME_LEN} bytes without control characters.")));
    }
    Ok(())
}

fn check_permissions(permissions: &[String]) -> Result<(), Error> {
    if permissions.len() > MAX_PERMISSIONS_PER_CALL {
        return Err(Error::new(ErrorCode::EntityInvalid)
            .with_message(format!("At most {MAX_PERMISSIONS_PER_CALL} permissions per call.")));
    }
    permissions.iter().try_for_each(|p| check_name("permission", p))
}

impl AppUsers {
    /// Over a store.
    #[must_use]
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Creates a role or adds permissions to it; `true` if it was created.
    ///
    /// # Errors
    /// `entityInvalid` for a bad name; store failures.
    pub async fn put_role(&self, org: &str, role: &str, permissions: &[String]) -> Result<bool, Error> {
        check_name("role", role)?;
        check_permissions(permissions)?;
        Ok(self.store.put_role(org, role, permissions).await?)
    }

    /// Deletes a role; `false` if there was none.
    ///
    /// # Errors
    /// Store failures.
    pub async fn delete_role(&self, org: &str, role: &str) -> Result<bool, Error> {
        Ok(self.store.delete_role(org, role).await?)
    }

    /// Every role.
    ///
    /// # Errors
    /// Store failures.
    pub async fn roles(&self, org: &str) -> Result<Vec<String>, Error> {
        Ok(self.store.roles(org).await?)
    }

    /// A role's permissions; `None` for an unknown role.
    ///
    /// # Errors
    /// Store failures.
    pub async fn role_permissions(&self, org: &str, role: &str) -> Result<Option<Vec<String>>, Error> {
        Ok(self.store.role_permissions(org, role).await?)
    }

    /// Removes permissions from a role (`None`: all); `false` for an unknown role.
    ///
    /// # Errors
    /// `entityInvalid` for a bad list; store failures.
    pub async fn remove_role_permissions(
        &self,
        org: &str,
        role: &str,
        permissions: Option<&[String]>,
    ) -> Result<bool, Error> {
        if let Some(permissions) = permissions {
            check_permissions(permissions)?;
        }
        Ok(self.store.remove_role_permissions(org, role, permissions).await?)
    }

    /// The roles granting a permission.
    ///
    /// # Errors
    /// Store failures.
    pub async fn roles_with_permission(&self, org: &str, permission: &str) -> Result<Vec<String>, Error> {
        Ok(self.store.roles_with_permission(org, permission).await?)
    }

    /// Gives a user a role in a tenant.
    ///
    /// # Errors
    /// `entityInvalid` for a bad user id; store failures.
    pub async fn add_user_role(&self, org: &str, tenant: &str, user: &str, role: &str) -> Result<RoleChange, Error> {
        check_name("user id", user)?;
        Ok(self.store.add_user_role(org, tenant, user, role).await?)
    }

    /// Takes a role from a user in a tenant.
    ///
    /// # Errors
    /// Store failures.
    pub async fn remove_user_role(&self, org: &str, tenant: &str, user: &str, role: &str) -> Result<RoleChange, Error> {
        Ok(self.store.remove_user_role(org, tenant, user, role).await?)
    }

    /// A user's roles in a tenant.
    ///
    /// # Errors
    /// Store failures.
    pub async fn user_roles(&self, org: &str, tenant: &str, user: &str) -> Result<Vec<String>, Error> {
        Ok(self.store.user_roles(org, tenant, user).await?)
    }

    /// The users with a role in a tenant; `None` for an unknown role.
    ///
    /// # Errors
    /// Store failures.
    pub async fn role_users(&self, org: &str, tenant: &str, role: &str) -> Result<Option<Vec<String>>, Error> {
        Ok(self.store.role_users(org, tenant, role).await?)
    }

    /// A user's metadata.
    ///
    /// # Errors
    /// Store failures.
    pub async fn metadata(&self, org: &str, user: &str) -> Result<Map<String, Value>, Error> {
        Ok(self.store.user_metadata(org, user).await?)
    }

    /// Merges an update into a user's metadata (see [`merge_metadata`]) and returns the result.
    ///
    /// # Errors
    /// `entityInvalid` for a bad user id or metadata past [`MAX_METADATA_BYTES`]; store failures.
    pub async fn update_metadata(
        &self,
        org: &str,
        user: &str,
        update: &Map<String, Value>,
    ) -> Result<Map<String, Value>, Error> {
        check_name("user id", user)?;
        self.store.update_user_metadata(org, user, update).await?.ok_or_else(|| {
            Error::new(ErrorCode::EntityInvalid)
                .with_message(format!("A user's metadata may take at most {MAX_METADATA_BYTES} bytes of JSON."))
        })
    }

    /// Deletes a user's metadata.
    ///
    /// # Errors
    /// Store failures.
    pub async fn delete_metadata(&self, org: &str, user: &str) -> Result<(), Error> {
        Ok(self.store.delete_user_metadata(org, user).await?)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn metadata_merges_shallowly_and_null_deletes() {
        let stored = map(json!({ "a": 1, "b": { "x": 1 }, "c": 3 }));
        let merged = merge_metadata(&stored, &map(json!({ "b": { "y": 2 }, "c": null, "d": [1] }))).expect("fits");
        assert_eq!(Value::Object(merged), json!({ "a": 1, "b": { "y": 2 }, "d": [1] }));
    }

    #[test]
    fn metadata_past_the_limit_is_refused() {
        let big = "x".repeat(MAX_METADATA_BYTES);
        assert!(merge_metadata(&Map::new(), &map(json!({ "big": big }))).is_none());
    }
}
