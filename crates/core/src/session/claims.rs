//! Claims in the access-token payload and the validators routes require.
//!
//! Encoding (SuperTokens): `payload[key] = {"v": value, "t": fetched at, Unix ms}`. Built-ins: `st-ev`
//! (email verified, boolean), `st-role` (roles, strings), `st-perm` (permissions, strings).

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::clock::Timestamp;

/// Email-verified claim key.
pub const EMAIL_VERIFIED: &str = "st-ev";
/// Roles claim key.
pub const ROLES: &str = "st-role";
/// Permissions claim key.
pub const PERMISSIONS: &str = "st-perm";

/// A claim value as stored in the payload.
#[must_use]
pub fn claim_entry(value: Value, now: Timestamp) -> Value {
    json!({ "v": value, "t": now.unix_millis() })
}

/// The value of a claim, if present.
#[must_use]
pub fn claim_value<'a>(payload: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    payload.get(key)?.get("v")
}

/// One failed validator, as the 403 body lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClaimValidationError {
    /// Validator id (the claim key for built-ins).
    pub id: String,
    /// Why, in SuperTokens' shape (`message`, `expectedValue` / `expectedToInclude`, `actualValue`).
    pub reason: Value,
}

type CustomCheck = dyn Fn(&Map<String, Value>) -> Option<Value> + Send + Sync;

/// A rule a route requires of the session's claims.
#[derive(Clone)]
pub enum ClaimValidator {
    /// `st-ev` is `true`.
    EmailVerified,
    /// `st-role` includes the role.
    HasRole(String),
    /// `st-perm` includes the permission.
    HasPermission(String),
    /// A claim equals a value.
    Equals {
        /// Claim key.
        key: String,
        /// Expected value.
        value: Value,
    },
    /// Any rule: returns the failure reason, or `None` when satisfied.
    Custom {
        /// Validator id.
        id: String,
        /// The check.
        check: Arc<CustomCheck>,
    },
}

impl fmt::Debug for ClaimValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmailVerified => f.write_str("EmailVerified"),
            Self::HasRole(role) => write!(f, "HasRole({role})"),
            Self::HasPermission(p) => write!(f, "HasPermission({p})"),
            Self::Equals { key, value } => write!(f, "Equals({key} = {value})"),
            Self::Custom { id, .. } => write!(f, "Custom({id})"),
        }
    }
}

impl ClaimValidator {
    /// A custom validator.
    pub fn custom(
        id: impl Into<String>,
        check: impl Fn(&Map<String, Value>) -> Option<Value> + Send + Sync + 'static,
    ) -> Self {
        Self::Custom { id: id.into(), check: Arc::new(check) }
    }

    /// Checks the payload.
    #[must_use]
    pub fn validate(&self, payload: &Map<String, Value>) -> Option<ClaimValidationError> {
        let (id, reason) = match self {
            Self::EmailVerified => (EMAIL_VERIFIED.to_owned(), equals(payload, EMAIL_VERIFIED, &Value::Bool(true))?),
            Self::HasRole(role) => (ROLES.to_owned(), includes(payload, ROLES, role)?),
            Self::HasPermission(permission) => (PERMISSIONS.to_owned(), includes(payload, PERMISSIONS, permission)?),
            Self::Equals { key, value } => (key.clone(), equals(payload, key, value)?),
            Self::Custom { id, check } => (id.clone(), check(payload)?),
        };
        Some(ClaimValidationError { id, reason })
    }
}

fn equals(payload: &Map<String, Value>, key: &str, expected: &Value) -> Option<Value> {
    match claim_value(payload, key) {
        None => Some(json!({ "message": "value does not exist", "expectedValue": expected, "actualValue": null })),
        Some(actual) if actual == expected => None,
        Some(actual) => Some(json!({ "message": "wrong value", "expectedValue": expected, "actualValue": actual })),
    }
}

fn includes(payload: &Map<String, Value>, key: &str, wanted: &str) -> Option<Value> {
    match claim_value(payload, key) {
        None => Some(json!({ "message": "value does not exist", "expectedToInclude": wanted, "actualValue": null })),
        Some(Value::Array(items)) if items.iter().any(|i| i.as_str() == Some(wanted)) => None,
        Some(actual) => Some(json!({ "message": "wrong value", "expectedToInclude": wanted, "actualValue": actual })),
    }
}

/// Every failure, in validator order.
#[must_use]
pub fn validate_claims(validators: &[ClaimValidator], payload: &Map<String, Value>) -> Vec<ClaimValidationError> {
    validators.iter().filter_map(|v| v.validate(payload)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(entries: &[(&str, Value)]) -> Map<String, Value> {
        let now = Timestamp::from_unix_millis(5);
        entries.iter().map(|(k, v)| ((*k).to_owned(), claim_entry(v.clone(), now))).collect()
    }

    #[test]
    fn email_verified_reasons_match_supertokens() {
        let v = ClaimValidator::EmailVerified;
        assert_eq!(v.validate(&payload(&[("st-ev", json!(true))])), None);
        let wrong = v.validate(&payload(&[("st-ev", json!(false))])).expect("fails");
        assert_eq!(wrong.id, "st-ev");
        assert_eq!(wrong.reason, json!({"message":"wrong value","expectedValue":true,"actualValue":false}));
        let missing = v.validate(&Map::new()).expect("fails");
        assert_eq!(missing.reason["message"], "value does not exist");
    }

    #[test]
    fn role_and_permission_inclusion() {
        let p = payload(&[("st-role", json!(["user"])), ("st-perm", json!(["read"]))]);
        let errors = validate_claims(
            &[ClaimValidator::HasRole("admin".into()), ClaimValidator::HasPermission("read".into())],
            &p,
        );
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].reason,
            json!({"message":"wrong value","expectedToInclude":"admin","actualValue":["user"]})
        );
    }

    #[test]
    fn custom_validators_report_their_own_reason() {
        let v = ClaimValidator::custom("plan", |p| {
            (claim_value(p, "plan") != Some(&json!("pro"))).then(|| json!({"message": "upgrade needed"}))
        });
        assert_eq!(v.validate(&payload(&[("plan", json!("pro"))])), None);
        assert_eq!(v.validate(&Map::new()).map(|e| e.id), Some("plan".to_owned()));
    }
}
