//! Roles and metadata of SuperTokens apps' users.

use std::sync::Arc;

use portcullis_core::clock::Timestamp;
use portcullis_core::organization::Organization;
use portcullis_core::store::{RoleChange, Store};
use serde_json::{Map, Value, json};

async fn organization(store: &Arc<dyn Store>, name: &str) -> String {
    let org = Organization::new(name, Timestamp::from_unix_millis(1)).expect("valid organization");
    store.insert_organization(&org).await.expect("insert organization");
    org.id
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Roles, their permissions and users' roles per tenant, one organization apart from another.
pub async fn app_roles_and_user_roles_round_trip(store: &Arc<dyn Store>) {
    let (org, other) = (organization(store, "a").await, organization(store, "b").await);
    assert!(store.put_role(&org, "admin", &strings(&["write", "read"])).await.expect("put"));
    assert!(
        !store.put_role(&org, "admin", &strings(&["read", "delete"])).await.expect("put again"),
        "not created twice"
    );
    assert!(store.put_role(&org, "viewer", &strings(&["read"])).await.expect("put"));
    assert_eq!(store.roles(&org).await.expect("roles"), ["admin", "viewer"]);
    assert!(store.roles(&other).await.expect("roles").is_empty(), "roles are per organization");
    assert_eq!(
        store.role_permissions(&org, "admin").await.expect("permissions"),
        Some(strings(&["delete", "read", "write"]))
    );
    assert_eq!(store.role_permissions(&other, "admin").await.expect("permissions"), None);
    assert_eq!(store.roles_with_permission(&org, "read").await.expect("roles"), ["admin", "viewer"]);

    assert_eq!(store.add_user_role(&org, "public", "u1", "admin").await.expect("add"), RoleChange::Done(false));
    assert_eq!(store.add_user_role(&org, "public", "u1", "admin").await.expect("add"), RoleChange::Done(true));
    assert_eq!(store.add_user_role(&org, "t1", "u2", "admin").await.expect("add"), RoleChange::Done(false));
    assert_eq!(store.add_user_role(&org, "public", "u1", "nobody").await.expect("add"), RoleChange::UnknownRole);
    assert_eq!(store.add_user_role(&other, "public", "u1", "admin").await.expect("add"), RoleChange::UnknownRole);
    assert_eq!(store.user_roles(&org, "public", "u1").await.expect("roles"), ["admin"]);
    assert!(store.user_roles(&org, "t1", "u1").await.expect("roles").is_empty(), "roles are per tenant");
    assert_eq!(store.role_users(&org, "public", "admin").await.expect("users"), Some(strings(&["u1"])));
    assert_eq!(store.role_users(&org, "public", "nobody").await.expect("users"), None);

    assert!(store.remove_role_permissions(&org, "admin", Some(&strings(&["delete"]))).await.expect("remove"));
    assert_eq!(store.role_permissions(&org, "admin").await.expect("permissions"), Some(strings(&["read", "write"])));
    assert!(store.remove_role_permissions(&org, "viewer", None).await.expect("remove all"));
    assert_eq!(store.role_permissions(&org, "viewer").await.expect("permissions"), Some(vec![]));
    assert!(!store.remove_role_permissions(&org, "nobody", None).await.expect("unknown role"));

    assert_eq!(store.remove_user_role(&org, "public", "u1", "admin").await.expect("remove"), RoleChange::Done(true));
    assert_eq!(store.remove_user_role(&org, "public", "u1", "admin").await.expect("remove"), RoleChange::Done(false));
    assert!(store.delete_role(&org, "admin").await.expect("delete"));
    assert!(!store.delete_role(&org, "admin").await.expect("delete again"));
    assert!(store.user_roles(&org, "t1", "u2").await.expect("roles").is_empty(), "deleting a role takes it from users");
    assert_eq!(store.roles_with_permission(&org, "write").await.expect("roles"), Vec::<String>::new());
    assert!(store.put_role(&org, "admin", &[]).await.expect("recreate"), "a deleted role can be made again");
    assert_eq!(
        store.role_permissions(&org, "admin").await.expect("permissions"),
        Some(vec![]),
        "without old permissions"
    );
}

/// Metadata merges shallowly, `null` deletes, each organization's users apart; concurrent updates all land.
pub async fn app_user_metadata_merges_and_concurrent_updates_all_land(store: &Arc<dyn Store>) {
    let (org, other) = (organization(store, "a").await, organization(store, "b").await);
    let update = |value: Value| match value {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    assert!(store.user_metadata(&org, "u1").await.expect("read").is_empty());
    let merged =
        store.update_user_metadata(&org, "u1", &update(json!({ "a": 1, "b": { "x": 1 } }))).await.expect("update");
    assert_eq!(merged.map(Value::Object), Some(json!({ "a": 1, "b": { "x": 1 } })));
    let merged =
        store.update_user_metadata(&org, "u1", &update(json!({ "a": null, "b": { "y": "ü" } }))).await.expect("update");
    assert_eq!(merged.map(Value::Object), Some(json!({ "b": { "y": "ü" } })));
    assert_eq!(Value::Object(store.user_metadata(&org, "u1").await.expect("read")), json!({ "b": { "y": "ü" } }));
    assert!(store.user_metadata(&other, "u1").await.expect("read").is_empty(), "metadata is per organization");

    let too_big = update(json!({ "big": "x".repeat(portcullis_core::app_users::MAX_METADATA_BYTES) }));
    assert_eq!(store.update_user_metadata(&org, "u1", &too_big).await.expect("update"), None);
    assert_eq!(
        Value::Object(store.user_metadata(&org, "u1").await.expect("read")),
        json!({ "b": { "y": "ü" } }),
        "nothing written"
    );

    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (store, org) = (Arc::clone(store), org.clone());
            tokio::spawn(async move {
                let mut field = Map::new();
                field.insert(format!("k{i}"), json!(i));
                store.update_user_metadata(&org, "u2", &field).await
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("update");
    }
    assert_eq!(store.user_metadata(&org, "u2").await.expect("read").len(), 16, "no update may be lost");

    store.delete_user_metadata(&org, "u1").await.expect("delete");
    assert!(store.user_metadata(&org, "u1").await.expect("read").is_empty());
}
