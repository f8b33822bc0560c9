//! The headers of an outbound request: each one must be something HTTP can carry, checked before anything is
//! sent so that a bad header is reported as the mistake it is (the caller's or the script's), never as an
//! unreachable API.

use portcullis_core::{Error, ErrorCode};
use serde_json::{Map, Value};

use super::{ConnectorRuntime, as_text, err};
use crate::account::Credentials;
use crate::definition::Connector;

/// The first header that HTTP cannot carry, described for the error message.
pub(super) fn invalid_header(headers: &Map<String, Value>) -> Option<String> {
    headers.iter().find_map(|(name, value)| {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            Some(format!("`{}` is not a valid HTTP header name", name.escape_debug()))
        } else if reqwest::header::HeaderValue::from_str(&as_text(value)).is_err() {
            Some(format!("the value of `{name}` is not a valid HTTP header value (control characters)"))
        } else {
            None
        }
    })
}

/// Refuses credentials whose auth header HTTP could not carry (an `authValue` with a line break), when they
/// are stored rather than at every call.
pub(super) fn check_auth_value(connector: &Connector, credentials: &Credentials) -> Result<(), Error> {
    match ConnectorRuntime::auth_header(connector, credentials) {
        Some((_, value)) if reqwest::header::HeaderValue::from_str(&value).is_err() => Err(err(
            ErrorCode::EntityInvalid,
            "authValue: the auth header it makes is not a valid HTTP header value (control characters).",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_and_values_http_cannot_carry_are_found() {
        let check = |v: Value| invalid_header(v.as_object().expect("object"));
        assert_eq!(check(json!({"X-Ok": "fine", "Accept": "application/json", "X-Count": 3})), None);
        for bad in [json!({"": "x"}), json!({"bad name": "x"}), json!({"X": "a\nb"}), json!({"X": "\u{7f}"})] {
            assert!(check(bad.clone()).is_some(), "{bad}");
        }
    }
}
