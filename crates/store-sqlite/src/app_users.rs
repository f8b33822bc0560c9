//! Roles and metadata of SuperTokens apps' users on SQLite.

use async_trait::async_trait;
use portcullis_core::app_users::merge_metadata;
use portcullis_core::store::{AppUserStore, RoleChange, StoreError};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value};

use crate::{SqliteStore, store_error};

fn role_exists(c: &Connection, org: &str, role: &str) -> Result<bool, StoreError> {
    c.prepare_cached("SELECT 1 FROM app_roles WHERE organization_id = ?1 AND role = ?2")
        .and_then(|mut st| st.query_row(params![org, role], |_| Ok(())).optional())
        .map(|found| found.is_some())
        .map_err(store_error)
}

fn strings(c: &Connection, sql: &str, args: &[&str]) -> Result<Vec<String>, StoreError> {
    let mut statement = c.prepare_cached(sql).map_err(store_error)?;
    let rows = statement.query_map(rusqlite::params_from_iter(args), |row| row.get(0)).map_err(store_error)?;
    rows.collect::<Result<Vec<String>, _>>().map_err(store_error)
}

impl SqliteStore {
    /// Runs `sql` (parameters: organization, tenant, user, role) if the role exists, in one transaction;
    /// `flag` reads the changed row count.
    async fn change_user_role(
        &self,
        sql: &'static str,
        keys: [&str; 4],
        flag: fn(usize) -> bool,
    ) -> Result<RoleChange, StoreError> {
        let keys = keys.map(str::to_owned);
        self.writer
            .run(move |c| {
                let tx = c.transaction().map_err(store_error)?;
                if !role_exists(&tx, &keys[0], &keys[3])? {
                    return Ok(RoleChange::UnknownRole);
                }
                let changed = tx.execute(sql, rusqlite::params_from_iter(&keys)).map_err(store_error)?;
                tx.commit().map_err(store_error)?;
                Ok(RoleChange::Done(flag(changed)))
            })
            .await
    }
}

#[async_trait]
impl AppUserStore for SqliteStore {
    async fn put_role(&self, organization_id: &str, role: &str, permissions: &[String]) -> Result<bool, StoreError> {
        let (org, role, permissions) = (organization_id.to_owned(), role.to_owned(), permissions.to_vec());
        self.writer
            .run(move |c| {
                let tx = c.transaction().map_err(store_error)?;
                let created = tx
                    .execute(
                        "INSERT INTO app_roles (organization_id, role) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                        params![org, role],
                    )
                    .map_err(store_error)?
                    == 1;
                for permission in &permissions {
                    tx.execute(
                        "INSERT INTO app_role_permissions (organization_id, role, permission) VALUES (?1, ?2, ?3) \
                         ON CONFLICT DO NOTHING",
                        params![org, role, permission],
                    )
                    .map_err(store_error)?;
                }
                tx.commit().map_err(store_error)?;
                Ok(created)
            })
            .await
    }

    async fn delete_role(&self, organization_id: &str, role: &str) -> Result<bool, StoreError> {
        let (org, role) = (organization_id.to_owned(), role.to_owned());
        self.writer
            .run(move |c| {
                let tx = c.transaction().map_err(store_error)?;
                for table in ["app_user_roles", "app_role_permissions"] {
                    tx.execute(
                        &format!("DELETE FROM {table} WHERE organization_id = ?1 AND role = ?2"),
                        params![org, role],
                    )
                    .map_err(store_error)?;
                }
                let existed = tx
                    .execute("DELETE FROM app_roles WHERE organization_id = ?1 AND role = ?2", params![org, role])
                    .map_err(store_error)?
                    == 1;
                tx.commit().map_err(store_error)?;
                Ok(existed)
            })
            .await
    }

    async fn roles(&self, organization_id: &str) -> Result<Vec<String>, StoreError> {
        let org = organization_id.to_owned();
        self.readers
            .run(move |c| strings(c, "SELECT role FROM app_roles WHERE organization_id = ?1 ORDER BY role", &[&org]))
            .await
    }

    async fn role_permissions(&self, organization_id: &str, role: &str) -> Result<Option<Vec<String>>, StoreError> {
        let (org, role) = (organization_id.to_owned(), role.to_owned());
        self.readers
            .run(move |c| {
                if !role_exists(c, &org, &role)? {
                    return Ok(None);
                }
                strings(
                    c,
                    "SELECT permission FROM app_role_permissions WHERE organization_id = ?1 AND role = ?2 \
                     ORDER BY permission",
                    &[&org, &role],
                )
                .map(Some)
            })
            .await
    }

    async fn remove_role_permissions(
        &self,
        organization_id: &str,
        role: &str,
        permissions: Option<&[String]>,
    ) -> Result<bool, StoreError> {
        let (org, role, permissions) =
            (organization_id.to_owned(), role.to_owned(), permissions.map(<[String]>::to_vec));
        self.writer
            .run(move |c| {
                let tx = c.transaction().map_err(store_error)?;
                if !role_exists(&tx, &org, &role)? {
                    return Ok(false);
                }
                match &permissions {
                    None => tx.execute(
                        "DELETE FROM app_role_permissions WHERE organization_id = ?1 AND role = ?2",
                        params![org, role],
                    ),
                    Some(permissions) => permissions.iter().try_fold(0, |n, permission| {
                        tx.execute(
                            "DELETE FROM app_role_permissions WHERE organization_id = ?1 AND role = ?2 AND permission = ?3",
                            params![org, role, permission],
                        )
                        .map(|m| n + m)
                    }),
                }
                .map_err(store_error)?;
                tx.commit().map_err(store_error)?;
                Ok(true)
            })
            .await
    }

    async fn roles_with_permission(&self, organization_id: &str, permission: &str) -> Result<Vec<String>, StoreError> {
        let (org, permission) = (organization_id.to_owned(), permission.to_owned());
        self.readers
            .run(move |c| {
                strings(
                    c,
                    "SELECT role FROM app_role_permissions WHERE organization_id = ?1 AND permission = ?2 ORDER BY role",
                    &[&org, &permission],
                )
            })
            .await
    }

    async fn add_user_role(
        &self,
        organization_id: &str,
        tenant_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<RoleChange, StoreError> {
        let sql = "INSERT INTO app_user_roles (organization_id, tenant_id, user_id, role) VALUES (?1, ?2, ?3, ?4) \
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
        let sql = "DELETE FROM app_user_roles WHERE organization_id = ?1 AND tenant_id = ?2 AND user_id = ?3 \
                   AND role = ?4";
        self.change_user_role(sql, [organization_id, tenant_id, user_id, role], |deleted| deleted == 1).await
    }

    async fn user_roles(
        &self,
        organization_id: &str,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let (org, tenant, user) = (organization_id.to_owned(), tenant_id.to_owned(), user_id.to_owned());
        self.readers
            .run(move |c| {
                strings(
                    c,
                    "SELECT role FROM app_user_roles WHERE organization_id = ?1 AND tenant_id = ?2 AND user_id = ?3 \
                     ORDER BY role",
                    &[&org, &tenant, &user],
                )
            })
            .await
    }

    async fn role_users(
        &self,
        organization_id: &str,
        tenant_id: &str,
        role: &str,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let (org, tenant, role) = (organization_id.to_owned(), tenant_id.to_owned(), role.to_owned());
        self.readers
            .scan(move |c| {
                if !role_exists(c, &org, &role)? {
                    return Ok(None);
                }
                strings(
                    c,
                    "SELECT user_id FROM app_user_roles WHERE organization_id = ?1 AND tenant_id = ?2 AND role = ?3 \
                     ORDER BY user_id",
                    &[&org, &tenant, &role],
                )
                .map(Some)
            })
            .await
    }

    async fn user_metadata(&self, organization_id: &str, user_id: &str) -> Result<Map<String, Value>, StoreError> {
        let (org, user) = (organization_id.to_owned(), user_id.to_owned());
        self.readers.run(move |c| read_metadata(c, &org, &user)).await
    }

    async fn update_user_metadata(
        &self,
        organization_id: &str,
        user_id: &str,
        update: &Map<String, Value>,
    ) -> Result<Option<Map<String, Value>>, StoreError> {
        let (org, user, update) = (organization_id.to_owned(), user_id.to_owned(), update.clone());
        self.writer
            .run(move |c| {
                let tx = c.transaction().map_err(store_error)?;
                let Some(merged) = merge_metadata(&read_metadata(&tx, &org, &user)?, &update) else {
                    return Ok(None);
                };
                let text = serde_json::to_string(&merged).map_err(|e| StoreError::Backend(e.to_string()))?;
                tx.execute(
                    "INSERT INTO app_user_metadata (organization_id, user_id, metadata) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (organization_id, user_id) DO UPDATE SET metadata = excluded.metadata",
                    params![org, user, text],
                )
                .map_err(store_error)?;
                tx.commit().map_err(store_error)?;
                Ok(Some(merged))
            })
            .await
    }

    async fn delete_user_metadata(&self, organization_id: &str, user_id: &str) -> Result<(), StoreError> {
        let (org, user) = (organization_id.to_owned(), user_id.to_owned());
        self.writer
            .run(move |c| {
                c.execute(
                    "DELETE FROM app_user_metadata WHERE organization_id = ?1 AND user_id = ?2",
                    params![org, user],
                )
                .map(|_| ())
                .map_err(store_error)
            })
            .await
    }
}

fn read_metadata(c: &Connection, org: &str, user: &str) -> Result<Map<String, Value>, StoreError> {
    let text: Option<String> = c
        .prepare_cached("SELECT metadata FROM app_user_metadata WHERE organization_id = ?1 AND user_id = ?2")
        .and_then(|mut st| st.query_row(params![org, user], |row| row.get(0)).optional())
        .map_err(store_error)?;
    text.map_or_else(|| Ok(Map::new()), |t| serde_json::from_str(&t).map_err(|e| StoreError::Decode(e.to_string())))
}
