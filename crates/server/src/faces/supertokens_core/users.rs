//! The next tier most apps use: SuperTokens' UserRoles (roles with permissions, users' roles per tenant,
//! behind the `st-role` / `st-perm` claims) and UserMetadata. Rules are in `portcullis_core::app_users`.

use axum::response::Response;
use portcullis_core::store::RoleChange;
use serde_json::{Value, json};

use super::request::Call;
use super::{Refusal, failure, ok};

fn unknown_role() -> Response {
    ok(json!({ "status": "UNKNOWN_ROLE_ERROR" }))
}

fn owned(items: Option<Vec<&str>>) -> Option<Vec<String>> {
    items.map(|items| items.into_iter().map(str::to_owned).collect())
}

fn role_change(change: RoleChange, field: &str) -> Response {
    match change {
        RoleChange::UnknownRole => unknown_role(),
        RoleChange::Done(flag) => {
            let mut reply = json!({ "status": "OK" });
            reply[field] = Value::Bool(flag);
            ok(reply)
        }
    }
}

/// `PUT /recipe/role`: creates a role or adds permissions to it.
pub(super) async fn put_role(call: Call) -> Result<Response, Refusal> {
    let role = call.string("role")?;
    let permissions = owned(call.optional_strings("permissions")?).unwrap_or_default();
    let created = call.users.put_role(call.org(), role, &permissions).await.map_err(failure)?;
    Ok(ok(json!({ "status": "OK", "createdNewRole": created })))
}

/// `POST /recipe/role/remove`.
pub(super) async fn remove_role(call: Call) -> Result<Response, Refusal> {
    let existed = call.users.delete_role(call.org(), call.string("role")?).await.map_err(failure)?;
    Ok(ok(json!({ "status": "OK", "didRoleExist": existed })))
}

/// `GET /recipe/roles`.
pub(super) async fn roles(call: Call) -> Result<Response, Refusal> {
    let roles = call.users.roles(call.org()).await.map_err(failure)?;
    Ok(ok(json!({ "status": "OK", "roles": roles })))
}

/// `GET /recipe/role/permissions?role=`.
pub(super) async fn role_permissions(call: Call) -> Result<Response, Refusal> {
    let role = call.required_query("role")?;
    Ok(match call.users.role_permissions(call.org(), role).await.map_err(failure)? {
        Some(permissions) => ok(json!({ "status": "OK", "permissions": permissions })),
        None => unknown_role(),
    })
}

/// `POST /recipe/role/permissions/remove`: some permissions, or all when none are named.
pub(super) async fn remove_role_permissions(call: Call) -> Result<Response, Refusal> {
    let role = call.string("role")?;
    let permissions = owned(call.optional_strings("permissions")?);
    let existed =
        call.users.remove_role_permissions(call.org(), role, permissions.as_deref()).await.map_err(failure)?;
    Ok(if existed { ok(json!({ "status": "OK" })) } else { unknown_role() })
}

/// `GET /recipe/permission/roles?permission=`.
pub(super) async fn permission_roles(call: Call) -> Result<Response, Refusal> {
    let permission = call.required_query("permission")?;
    let roles = call.users.roles_with_permission(call.org(), permission).await.map_err(failure)?;
    Ok(ok(json!({ "status": "OK", "roles": roles })))
}

/// `PUT [/<tenant>]/recipe/user/role`.
pub(super) async fn add_user_role(call: Call) -> Result<Response, Refusal> {
    let (user, role) = (call.string("userId")?, call.string("role")?);
    let change = call.users.add_user_role(call.org(), call.tenant(), user, role).await.map_err(failure)?;
    Ok(role_change(change, "didUserAlreadyHaveRole"))
}

/// `POST [/<tenant>]/recipe/user/role/remove`.
pub(super) async fn remove_user_role(call: Call) -> Result<Response, Refusal> {
    let (user, role) = (call.string("userId")?, call.string("role")?);
    let change = call.users.remove_user_role(call.org(), call.tenant(), user, role).await.map_err(failure)?;
    Ok(role_change(change, "didUserHaveRole"))
}

/// `GET [/<tenant>]/recipe/user/roles?userId=`.
pub(super) async fn user_roles(call: Call) -> Result<Response, Refusal> {
    let user = call.required_query("userId")?;
    let roles = call.users.user_roles(call.org(), call.tenant(), user).await.map_err(failure)?;
    Ok(ok(json!({ "status": "OK", "roles": roles })))
}

/// `GET [/<tenant>]/recipe/role/users?role=`.
pub(super) async fn role_users(call: Call) -> Result<Response, Refusal> {
    let role = call.required_query("role")?;
    Ok(match call.users.role_users(call.org(), call.tenant(), role).await.map_err(failure)? {
        Some(users) => ok(json!({ "status": "OK", "users": users })),
        None => unknown_role(),
    })
}

/// `GET /recipe/user/metadata?userId=`.
pub(super) async fn metadata(call: Call) -> Result<Response, Refusal> {
    let user = call.required_query("userId")?;
    let metadata = call.users.metadata(call.org(), user).await.map_err(failure)?;
    Ok(ok(json!({ "status": "OK", "metadata": metadata })))
}

/// `PUT /recipe/user/metadata`: a shallow merge where a top-level `null` deletes.
pub(super) async fn update_metadata(call: Call) -> Result<Response, Refusal> {
    let user = call.string("userId")?;
    let update = call.object("metadataUpdate")?;
    let metadata = call.users.update_metadata(call.org(), user, &update).await.map_err(failure)?;
    Ok(ok(json!({ "status": "OK", "metadata": metadata })))
}

/// `POST /recipe/user/metadata/remove`.
pub(super) async fn remove_metadata(call: Call) -> Result<Response, Refusal> {
    call.users.delete_metadata(call.org(), call.string("userId")?).await.map_err(failure)?;
    Ok(ok(json!({ "status": "OK" })))
}
