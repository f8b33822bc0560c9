use async_trait::async_trait;

use super::StoreError;
use crate::organization::Organization;

/// Organizations (each is an OAuth client).
#[async_trait]
pub trait OrganizationStore {
    /// Inserts a new organization; [`StoreError::Conflict`] if its id exists.
    async fn insert_organization(&self, organization: &Organization) -> Result<(), StoreError>;

    /// The organization with this id.
    async fn organization(&self, id: &str) -> Result<Option<Organization>, StoreError>;

    /// Every organization, oldest first.
    async fn organizations(&self) -> Result<Vec<Organization>, StoreError>;
}
