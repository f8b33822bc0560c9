//! What a CDI call addresses (app, tenant, API, following core's path rules) and what it carries (JSON
//! body fields and query parameters, read the way core's input parser reads them).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{Method, Uri};
use portcullis_core::app_users::AppUsers;
use portcullis_core::session::SessionService;
use portcullis_core::{Error, ErrorCode};
use serde_json::{Map, Value};

use super::{Refusal, failure, protocol};
use crate::app::App;

/// Which prefixes an API takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// No key, no tenant: `/hello`, `/apiversion`, the JWKS.
    Public,
    /// App-wide: only the `public` tenant may appear in the path.
    App,
    /// Tenant-scoped: `/<tenant>` optional, `public` when absent.
    Tenant,
}

/// Every API: method (`*` for any), path, scope.
const APIS: &[(&str, &str, Scope)] = &[
    ("*", "/hello", Scope::Public),
    ("GET", "/apiversion", Scope::Public),
    ("GET", "/.well-known/jwks.json", Scope::Public),
    ("POST", "/recipe/session", Scope::Tenant),
    ("GET", "/recipe/session", Scope::App),
    ("POST", "/recipe/session/verify", Scope::App),
    ("POST", "/recipe/session/refresh", Scope::App),
    ("POST", "/recipe/session/remove", Scope::Tenant),
    ("POST", "/recipe/session/regenerate", Scope::App),
    ("PUT", "/recipe/session/data", Scope::App),
    ("PUT", "/recipe/jwt/data", Scope::App),
    ("GET", "/recipe/session/user", Scope::Tenant),
    ("GET", "/user/id", Scope::App),
    ("GET", "/recipe/multitenancy/tenant/v2", Scope::Tenant),
    ("PUT", "/recipe/role", Scope::App),
    ("POST", "/recipe/role/remove", Scope::App),
    ("GET", "/recipe/roles", Scope::App),
    ("GET", "/recipe/role/permissions", Scope::App),
    ("POST", "/recipe/role/permissions/remove", Scope::App),
    ("GET", "/recipe/permission/roles", Scope::App),
    ("PUT", "/recipe/user/role", Scope::Tenant),
    ("POST", "/recipe/user/role/remove", Scope::Tenant),
    ("GET", "/recipe/user/roles", Scope::Tenant),
    ("GET", "/recipe/role/users", Scope::Tenant),
    ("GET", "/recipe/user/metadata", Scope::App),
    ("PUT", "/recipe/user/metadata", Scope::App),
    ("POST", "/recipe/user/metadata/remove", Scope::App),
];

/// Path segments core never takes for a tenant id.
const RESERVED_TENANTS: &[&str] = &["recipe", "config", "users", "hello"];

/// Longest app or tenant id considered.
const MAX_ID_LEN: usize = 64;

/// The app, tenant and API a path names.
#[derive(Debug)]
pub(super) struct Target {
    /// The organization id after `/appid-`.
    pub(super) app_id: String,
    /// The tenant segment, when present.
    pub(super) tenant: Option<String>,
    /// The API path without prefixes.
    pub(super) api: &'static str,
    scope: Scope,
}

fn is_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The API at `path`: `Ok(None)` when there is none, `Err` when it exists but not for `method`.
fn api(method: &Method, path: &str) -> Result<Option<(&'static str, Scope)>, ()> {
    let mut at_path = APIS.iter().filter(|(_, p, _)| *p == path).peekable();
    if at_path.peek().is_none() {
        return Ok(None);
    }
    at_path.find(|(m, _, _)| *m == "*" || *m == method.as_str()).map(|(_, p, scope)| Some((*p, *scope))).ok_or(())
}

impl Target {
    /// Parses `/appid-<app>[/<tenant>]<api>[/]` (case-insensitive, as core does).
    pub(super) fn parse(method: &Method, path: &str) -> Result<Self, Refusal> {
        let not_found =
            || protocol(Error::new(ErrorCode::EntityMissing).with_internal("unknown CDI path"), "Not found");
        let not_allowed = |()| {
            protocol(
                Error::new(ErrorCode::GenericError)
                    .with_status(405)
                    .with_internal("method not supported on this CDI path"),
                "Method not supported",
            )
        };
        let lower = path.to_ascii_lowercase();
        let path = lower.strip_suffix('/').unwrap_or(&lower);
        let Some(rest) = path.strip_prefix("/appid-") else {
            return Err(protocol(
                Error::new(ErrorCode::EntityInvalid)
                    .with_message("connectionURI must end with /appid-<organization id>.")
                    .with_internal("CDI call without an app id"),
                "AppId or tenantId not found => connectionURI must end with /appid-<organization id>",
            ));
        };
        let (app_id, rest) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
        if !is_id(app_id) {
            return Err(not_found());
        }
        let (tenant, (api, scope)) = if let Some(found) = api(method, rest).map_err(not_allowed)? {
            (None, found)
        } else {
            let rest = rest.strip_prefix('/').ok_or_else(not_found)?;
            let (tenant, rest) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
            let found = api(method, rest)
                .map_err(not_allowed)?
                .filter(|(_, scope)| *scope != Scope::Public)
                .ok_or_else(not_found)?;
            if !is_id(tenant) || RESERVED_TENANTS.contains(&tenant) {
                return Err(not_found());
            }
            (Some(tenant.to_owned()), found)
        };
        Ok(Self { app_id: app_id.to_owned(), tenant, api, scope })
    }
}

/// An authenticated call: its target, the app's sessions and users, and its input.
pub(super) struct Call {
    pub(super) target: Target,
    pub(super) sessions: Arc<SessionService>,
    pub(super) users: AppUsers,
    body: Map<String, Value>,
    query: HashMap<String, String>,
}

fn invalid(message: String) -> Refusal {
    protocol(Error::new(ErrorCode::EntityInvalid).with_message(message.clone()), &message)
}

impl Call {
    pub(super) async fn new(
        app: &App,
        target: Target,
        method: &Method,
        uri: &Uri,
        body: &Bytes,
    ) -> Result<Self, Refusal> {
        if target.scope == Scope::App && target.tenant.as_deref().is_some_and(|t| t != "public") {
            return Err(protocol(
                Error::new(ErrorCode::NoPermission).with_internal("non-public tenant on an app-wide CDI API"),
                "Only public tenantId can call this app specific API",
            ));
        }
        let query: HashMap<String, String> = serde_urlencoded::from_str(uri.query().unwrap_or_default())
            .map_err(|_| invalid("Invalid query string".to_owned()))?;
        let body = if *method == Method::GET || *method == Method::DELETE {
            Map::new()
        } else {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(fields)) => fields,
                _ => return Err(invalid("Invalid Json Input".to_owned())),
            }
        };
        let sessions = app.supertokens_apps().sessions(&target.app_id).await.map_err(failure)?;
        Ok(Self { target, sessions, users: app.app_users().clone(), body, query })
    }

    /// The app's organization.
    pub(super) fn org(&self) -> &str {
        &self.target.app_id
    }

    /// The tenant: the path's, or `public`.
    pub(super) fn tenant(&self) -> &str {
        self.target.tenant.as_deref().unwrap_or("public")
    }

    /// Whether the body has this field (even `null`).
    pub(super) fn has(&self, name: &str) -> bool {
        self.body.contains_key(name)
    }

    fn field_error(name: &str) -> Refusal {
        invalid(format!("Field name '{name}' is invalid in JSON input"))
    }

    /// A required string field.
    pub(super) fn string(&self, name: &str) -> Result<&str, Refusal> {
        self.optional_string(name)?.ok_or_else(|| Self::field_error(name))
    }

    /// A string field that may be absent (or `null`).
    pub(super) fn optional_string(&self, name: &str) -> Result<Option<&str>, Refusal> {
        match self.body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Self::field_error(name)),
        }
    }

    /// An object field that may be absent (or `null`).
    pub(super) fn optional_object(&self, name: &str) -> Result<Option<Map<String, Value>>, Refusal> {
        match self.body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(fields)) => Ok(Some(fields.clone())),
            Some(_) => Err(Self::field_error(name)),
        }
    }

    /// A required object field.
    pub(super) fn object(&self, name: &str) -> Result<Map<String, Value>, Refusal> {
        self.optional_object(name)?.ok_or_else(|| Self::field_error(name))
    }

    /// A boolean field with its default.
    pub(super) fn bool_or(&self, name: &str, default: bool) -> Result<bool, Refusal> {
        match self.body.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(Self::field_error(name)),
        }
    }

    /// A list-of-strings field that may be absent.
    pub(super) fn optional_strings(&self, name: &str) -> Result<Option<Vec<&str>>, Refusal> {
        match self.body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| item.as_str().ok_or_else(|| Self::field_error(name)))
                .collect::<Result<_, _>>()
                .map(Some),
            Some(_) => Err(Self::field_error(name)),
        }
    }

    /// A query parameter; an empty value counts as absent (supertokens-python sends `None` as empty).
    pub(super) fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// A required query parameter.
    pub(super) fn required_query(&self, name: &str) -> Result<&str, Refusal> {
        self.query(name).ok_or_else(|| invalid(format!("Field name '{name}' is missing in GET request")))
    }

    /// A boolean query parameter (`true` / `false`) with its default.
    pub(super) fn query_bool(&self, name: &str, default: bool) -> Result<bool, Refusal> {
        match self.query(name) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(_) => Err(invalid(format!("Field name '{name}' must be true or false"))),
        }
    }
}
