//! Roles and metadata of SuperTokens apps' users on PostgreSQL.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use portcullis_core::app_users::merge_metadata;
use portcullis_core::store::{AppUserStore, RoleChange, StoreError};
use serde_json::{Map, Value};
use tokio_postgres::types::ToSql;

use crate::{PostgresStore, decode, store_error};

async fn role_exists(c: &impl GenericClient, org: &str, role: &str) -> Result<bool, StoreError> {
    c.query_opt("SELECT 1 FROM app_roles WHERE organization_id = $1 AND role = $2", &[&org, &role])
        .await
        .map(|row| row.is_some())
        .map_err(|e| store_error(&e))
}

async fn strings(c: &impl GenericClient, sql: &str, args: &[&(dyn ToSql + Sync)]) -> Result<Vec<String>, StoreError> {
    let rows = c.query(sql, args).await.map_err(|e| store_error(&e))?;
    rows.iter().map(|row| row.try_get(0).map_err(|e| decode(&e))).collect()
}

async fn read_metadata(c: &impl GenericClient, org: &str, user: &str) -> Result<Map<String, Value>, StoreError> {
    let row = c
        .query_opt("SELECT metadata FROM app_user_metadata WHERE organization_id = $1 AND user_id = $2", &[&org, &user])
        .await
        .map_err(|e| store_error(&e))?;
    match row.map(|row| row.try_get::<_, Value>(0)).transpose().map_err(|e| decode(&e))? {
        None => Ok(Map::new()),
        Some(Value::Object(metadata)) => Ok(metadata),
        Some(_) => Err(StoreError::Decode("a user's metadata is not a JSON object".to_owned())),
    }
}

impl PostgresStore {
    /// Runs `sql` (parameters: organization, tenant, user, role) if the role exists, in one transaction;
    /// `flag` reads the changed row count.
    async fn change_user_role(
        &self,
        sql: &str,
        keys: [&str; 4],
        flag: fn(u64) -> bool,
    ) -> Result<RoleChange, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| store_error(&e))?;
        if !role_exists(&tx, keys[0], keys[3]).await? {
            return Ok(RoleChange::UnknownRole);
        }
        let params: Vec<&(dyn ToSql + Sync)> = keys.iter().map(|k| k as &(dyn ToSql + Sync)).collect();
        let changed = tx.execute(sql, &params).await.map_err(|e| store_error(&e))?;
        tx.commit().await.map_err(|e| store_error(&e))?;
        Ok(RoleChange::Done(flag(changed)))
    }
}

#[async_trait]
impl AppUserStore for PostgresStore {
    async fn put_role(&self, organization_id: &str, role: &str, permissions: &[String]) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| store_error(&e))?;
        let created = tx
            .execute(
                "INSERT INTO app_roles (organization_id, role) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&organization_id, &role],
            )
            .await
            .map_err(|e| store_error(&e))?
            == 1;
        tx.execute(
            "INSERT INTO app_role_permissions (organization_id, role, permission) \
             SELECT $1, $2, p FROM unnest($3::text[]) AS p ON CONFLICT DO NOTHING",
            &[&organization_id, &role, &permissions],
        )
        .await
        .map_err(|e| store_error(&e))?;
        tx.commit().await.map_err(|e| store_error(&e))?;
        Ok(created)
    }

    async fn delete_role(&self, organization_id: &str, role: &str) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| store_error(&e))?;
        for table in ["app_user_roles", "app_role_permissions"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE organization_id = $1 AND role = $2"),
                &[&organization_id, &role],
            )
            .await
            .map_err(|e| store_error(&e))?;
        }
        let existed = tx
            .execute("DELETE FROM app_roles WHERE organization_id = $1 AND role = $2", &[&organization_id, &role])
            .await
            .map_err(|e| store_error(&e))?
            == 1;
        tx.commit().await.map_err(|e| store_error(&e))?;
        Ok(existed)
    }

    async fn roles(&self, organization_id: &str) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        strings(&client, "SELECT role FROM app_roles WHERE organization_id = $1 ORDER BY role", &[&organization_id])
            .await
    }

    async fn role_permissions(&self, organization_id: &str, role: &str) -> Result<Option<Vec<String>>, StoreError> {
        let client = self.client().await?;
        if !role_exists(&client, organization_id, role).await? {
            return Ok(None);
        }
        strings(
            &client,
            "SELECT permission FROM app_role_permissions WHERE organization_id = $1 AND role = $2 ORDER BY permission",
            &[&organization_id, &role],
        )
        .await
        .map(Some)
    }

    async fn remove_role_permissions(
        &self,
        organization_id: &str,
        role: &str,
        permissions: Option<&[String]>,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| store_error(&e))?;
        if !role_exists(&tx, organization_id, role).await? {
            return Ok(false);
        }
        match permissions {
            None => {
                tx.execute(
                    "DELETE FROM app_role_permissions WHERE organization_id = $1 AND role = $2",
                    &[&organization_id, &role],
                )
                .await
            }
            Some(permissions) => {
                tx.execute(
                    "DELETE FROM app_role_permissions WHERE organization_id = $1 AND role = $2 \
                     AND permission = ANY($3::text[])",
                    &[&organization_id, &role, &permissions],
                )
                .await
            }
        }
        .map_err(|e| store_error(&e))?;
        tx.commit().await.map_err(|e| store_error(&e))?;
        Ok(true)
    }

    async fn roles_with_permission(&self, organization_id: &str, permission: &str) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        strings(
            &client,
            "SELECT role FROM app_role_permissions WHERE organization_id = $1 AND permission = $2 ORDER BY role",
            &[&organization_id, &permission],
        )
        .await
    }

    async fn add_user_role(
        &self,
        organization_id: &str,
        tenant_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<RoleChange, StoreError> {
        let sql = "INSERT INTO app_user_roles (organization_id, tenant_id, user_id, role) VALUES ($1, $2, $3, $4) \
                   ON CONFLICT DO NOTHING";
        // No row inserted: the user had the role already.
        self.change_user_role(sql, [organization_id, tenant_id, user_id, role], |inserted| inserted == 0).await
    }

    async fn remove_user_role(
        &self,
        organization_id: &str,
        tenant_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<RoleChange, StoreError> {
        let sql = "DELETE FROM app_user_roles WHERE organization_id = $1 AND tenant_id = $2 AND user_id = $3 \
                   AND role = $4";
        self.change_user_role(sql, [organization_id, tenant_id, user_id, role], |deleted| deleted == 1).await
    }

    async fn user_roles(
        &self,
        organization_id: &str,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        strings(
            &client,
            "SELECT role FROM app_user_roles WHERE organization_id = $1 AND tenant_id = $2 AND user_id = $3 ORDER BY role",
            &[&organization_id, &tenant_id, &user_id],
        )
        .await
    }

    async fn role_users(
        &self,
        organization_id: &str,
        tenant_id: &str,
        role: &str,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let client = self.client().await?;
        if !role_exists(&client, organization_id, role).await? {
            return Ok(None);
        }
        strings(
            &client,
            "SELECT user_id FROM app_user_roles WHERE organization_id = $1 AND tenant_id = $2 AND role = $3 \
             ORDER BY user_id",
            &[&organization_id, &tenant_id, &role],
        )
        .await
        .map(Some)
    }

    async fn user_metadata(&self, organization_id: &str, user_id: &str) -> Result<Map<String, Value>, StoreError> {
        let client = self.client().await?;
        read_metadata(&client, organization_id, user_id).await
    }

    async fn update_user_metadata(
        &self,
        organization_id: &str,
        user_id: &str,
        update: &Map<String, Value>,
    ) -> Result<Option<Map<String, Value>>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| store_error(&e))?;
        // Creates the row if missing and locks it, so concurrent updates merge one after the other.
        tx.execute(
            "INSERT INTO app_user_metadata (organization_id, user_id, metadata) VALUES ($1, $2, '{}') \
             ON CONFLICT DO NOTHING",
            &[&organization_id, &user_id],
        )
        .await
        .map_err(|e| store_error(&e))?;
        tx.execute(
            "SELECT 1 FROM app_user_metadata WHERE organization_id = $1 AND user_id = $2 FOR UPDATE",
            &[&organization_id, &user_id],
        )
        .await
        .map_err(|e| store_error(&e))?;
        let Some(merged) = merge_metadata(&read_metadata(&tx, organization_id, user_id).await?, update) else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE app_user_metadata SET metadata = $3 WHERE organization_id = $1 AND user_id = $2",
            &[&organization_id, &user_id, &Value::Object(merged.clone())],
        )
        .await
        .map_err(|e| store_error(&e))?;
        tx.commit().await.map_err(|e| store_error(&e))?;
        Ok(Some(merged))
    }

    async fn delete_user_metadata(&self, organization_id: &str, user_id: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM app_user_metadata WHERE organization_id = $1 AND user_id = $2",
                &[&organization_id, &user_id],
            )
            .await
            .map(|_| ())
            .map_err(|e| store_error(&e))
    }
}
