//! The one credential rule: an account's credentials go only to the connector's API origin.
//!
//! An origin is scheme, host and port. A request to any other origin (an `http_request`, a paging link, a
//! redirect hop) gets neither the auth header nor any header whose value holds a credential. Step scripts,
//! which the caller supplies, see credentials only as `********` (see [`Sandbox`]); merge fields are encoded
//! as one path segment each, so they cannot move a request to another path or origin.

use serde_json::{Map, Value};

/// What scripts and logs see instead of a credential.
pub const MASK: &str = "********";

/// Which headers a request gets: credentials for the API origin only.
#[derive(Debug, Clone, Default)]
pub struct Attach {
    origins: Vec<url::Origin>,
    auth: Option<(String, String)>,
    secrets: Vec<String>,
}

impl Attach {
    /// Credentials for the given API origins: the auth header, and the secret values (auth value, tokens,
    /// sensitive and session properties) that no other origin may receive in any header.
    #[must_use]
    pub fn new(origins: Vec<url::Origin>, auth: Option<(String, String)>, secrets: Vec<String>) -> Self {
        Self { origins: origins.into_iter().filter(url::Origin::is_tuple).collect(), auth, secrets }
    }

    /// Nothing to attach; secret values are still kept from other origins.
    #[must_use]
    pub fn none(origins: Vec<url::Origin>, secrets: Vec<String>) -> Self {
        Self::new(origins, None, secrets)
    }

    /// The secret values.
    #[must_use]
    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }

    /// Whether `url` is on an API origin (same scheme, host and port).
    #[must_use]
    pub fn same_origin(&self, url: &url::Url) -> bool {
        let origin = url.origin();
        self.origins.contains(&origin)
    }

    /// The headers to send to `url`. For an API origin: `headers` plus the auth header unless a script set
    /// one of that name (a script header wins). For any other origin: `headers` without the auth header's
    /// name and without any header that holds a secret.
    #[must_use]
    pub fn headers(&self, url: &url::Url, headers: &[(String, String)]) -> Vec<(String, String)> {
        if self.same_origin(url) {
            let mut out = headers.to_vec();
            if let Some((name, value)) = &self.auth
                && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
            {
                out.push((name.clone(), value.clone()));
            }
            return out;
        }
        headers
            .iter()
            .filter(|(k, v)| {
                !self.auth.as_ref().is_some_and(|(name, _)| name.eq_ignore_ascii_case(k))
                    && !self.secrets.iter().any(|s| v.contains(s.as_str()))
            })
            .cloned()
            .collect()
    }
}

/// Replaces every secret in `text` by [`MASK`].
#[must_use]
pub fn redact(text: &str, secrets: &[String]) -> String {
    secrets.iter().fold(text.to_owned(), |text, secret| text.replace(secret.as_str(), MASK))
}

fn redact_value(value: &Value, secrets: &[String]) -> Value {
    match value {
        Value::String(s) => Value::String(redact(s, secrets)),
        Value::Array(items) => Value::Array(items.iter().map(|v| redact_value(v, secrets)).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (redact(k, secrets), redact_value(v, secrets))).collect())
        }
        other => other.clone(),
    }
}

/// What a step script may see, and how its changes are taken back.
///
/// The connector and method levels (written by whoever installed the definition) see the globals as they
/// are; the step level (sent with the call) runs after them on a copy where every secret is [`MASK`] and
/// `method_auth_value` is [`MASK`]. Afterwards, whatever the step left unchanged gets its real value back, and
/// a [`MASK`] the step put into the request's headers, query or body becomes the auth value, so Cyclr's
/// `method_request_headers.Authorization = 'Bearer ' + method_auth_value` still works: the request goes to the
/// API origin only, and the step never holds the value.
#[derive(Debug, Clone, Default)]
pub struct Sandbox {
    /// Values the step may not see.
    pub secrets: Vec<String>,
    /// The API key scripts know as `method_auth_value`.
    pub auth_value: Option<String>,
}

/// Globals whose changed strings may carry the auth value to the API.
const REQUEST_GLOBALS: &[&str] = &["method_request", "method_request_headers", "method_request_parameters"];

impl Sandbox {
    /// The step's view of the globals.
    #[must_use]
    pub fn view(&self, globals: &Map<String, Value>) -> Map<String, Value> {
        globals
            .iter()
            .map(|(k, v)| {
                let value = if k == "method_auth_value" && v.is_string() {
                    Value::String(MASK.to_owned())
                } else {
                    redact_value(v, &self.secrets)
                };
                (k.clone(), value)
            })
            .collect()
    }

    /// The globals after the step: unchanged values are the originals again.
    #[must_use]
    pub fn restore(
        &self,
        original: &Map<String, Value>,
        view: &Map<String, Value>,
        after: Map<String, Value>,
    ) -> Map<String, Value> {
        let mut out = original.clone();
        for (name, mut value) in after {
            if let (Some(seen), Some(real)) = (view.get(&name), original.get(&name)) {
                restore_value(&mut value, seen, real);
            }
            if REQUEST_GLOBALS.contains(&name.as_str())
                && let Some(key) = &self.auth_value
            {
                unmask(&mut value, key, view.get(&name));
            }
            out.insert(name, value);
        }
        out
    }
}

fn restore_value(after: &mut Value, seen: &Value, real: &Value) {
    if after == seen {
        after.clone_from(real);
        return;
    }
    if let (Value::Object(after), Value::Object(seen), Value::Object(real)) = (after, seen, real) {
        for (k, v) in after.iter_mut() {
            if let (Some(s), Some(r)) = (seen.get(k), real.get(k)) {
                restore_value(v, s, r);
            }
        }
    }
}

/// Puts the auth value where the step wrote [`MASK`] into a string it changed.
fn unmask(value: &mut Value, key: &str, seen: Option<&Value>) {
    if seen == Some(value) {
        return;
    }
    match value {
        Value::String(s) if s.contains(MASK) => *s = s.replace(MASK, key),
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                unmask(v, key, seen.and_then(|s| s.get(k)));
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                unmask(v, key, seen.and_then(|s| s.get(i)));
            }
        }
        _ => {}
    }
}

/// A merge field's value as one path segment: percent-encoded so that `/`, `?`, `#` and `%` stay inside it.
///
/// # Errors
/// The value is `.` or `..`, which would move the request up the path.
pub fn path_segment(name: &str, value: &str) -> Result<String, String> {
    if value == "." || value == ".." {
        return Err(format!("The merge field {name} may not be {value:?} in a path."));
    }
    Ok(value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b'!'
            | b'$'
            | b'&'
            | b'\''
            | b'('
            | b')'
            | b'*'
            | b'+'
            | b','
            | b';'
            | b'='
            | b':'
            | b'@' => char::from(b).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect())
}

/// A property's value inside a connector URL (`base_url`, `token_url`, `authorize_url`): letters, digits, `-`,
/// `.`, `_` and `~` only, so that it can fill a subdomain, a region or a path segment but never add a host, a
/// port, a user, a path, a query or a fragment.
///
/// # Errors
/// An empty value, `.` or `..`, or another character.
pub fn url_part(name: &str, value: &str) -> Result<String, String> {
    let plain = value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if value.is_empty() || value == "." || value == ".." || !plain {
        return Err(format!(
            "The property {name} fills the connector's URL, so it must be letters, digits, '-', '.', '_' or '~' \
             (not empty, '.' or '..')."
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use super::{Attach, MASK, Sandbox, path_segment, url_part};

    fn origin(u: &str) -> url::Origin {
        url::Url::parse(u).expect("url").origin()
    }

    #[test]
    fn url_parts_cannot_reshape_a_url() {
        assert_eq!(url_part("Region", "eu-west_1.x~").as_deref(), Ok("eu-west_1.x~"));
        for hostile in ["", ".", "..", "evil.com/", "a@evil.com", "a:80", "a?b", "a#b", "a%2F", "a b", "é"] {
            assert!(url_part("Region", hostile).is_err(), "{hostile:?} was accepted");
        }
    }

    #[test]
    fn credentials_go_to_the_api_origin_only() {
        let attach = Attach::new(
            vec![origin("https://api.example.com/v2")],
            Some(("Authorization".to_owned(), "Bearer tok-1234".to_owned())),
            vec!["tok-1234".to_owned(), "sess-5678".to_owned()],
        );
        let headers = vec![("X-Session".to_owned(), "sess-5678".to_owned()), ("Accept".to_owned(), "a/b".to_owned())];
        let to = |u: &str| attach.headers(&url::Url::parse(u).expect("url"), &headers);
        assert_eq!(to("https://api.example.com/x").len(), 3);
        for other in [
            "http://api.example.com/x",
            "https://api.example.com:8443/x",
            "https://evil.example.com/x",
            "https://api.example.com.evil.net/x",
        ] {
            assert_eq!(to(other), vec![("Accept".to_owned(), "a/b".to_owned())], "{other}");
        }
        let own = vec![("authorization".to_owned(), "Bearer mine".to_owned())];
        let sent = attach.headers(&url::Url::parse("https://api.example.com/").expect("url"), &own);
        assert_eq!(sent, own, "a script header wins");
    }

    #[test]
    fn a_step_sees_masks_and_gives_back_what_it_did_not_change() {
        let sandbox = Sandbox { secrets: vec!["sess-5678".to_owned()], auth_value: Some("key-1".to_owned()) };
        let mut original = Map::new();
        original.insert("method_auth_value".to_owned(), json!("key-1"));
        original.insert("method_request_headers".to_owned(), json!({"X-Session": "sess-5678", "A": "b"}));
        original.insert("method_response".to_owned(), json!({"token": "sess-5678"}));
        let view = sandbox.view(&original);
        assert_eq!(view["method_auth_value"], MASK);
        assert_eq!(view["method_request_headers"]["X-Session"], MASK);
        let mut after = view.clone();
        after["method_request_headers"]["Authorization"] = json!(format!("Bearer {MASK}"));
        after.insert("method_response".to_owned(), json!({"leak": MASK}));
        let restored = sandbox.restore(&original, &view, after);
        assert_eq!(restored["method_request_headers"]["X-Session"], "sess-5678");
        assert_eq!(restored["method_request_headers"]["Authorization"], "Bearer key-1");
        assert_eq!(restored["method_response"], json!({"leak": MASK}), "the mask is never unmasked in data");
        assert_eq!(restored["method_auth_value"], "key-1");
        let untouched = sandbox.restore(&original, &view, view.clone());
        assert_eq!(Value::Object(untouched), Value::Object(original));
    }

    #[test]
    fn merge_fields_are_one_path_segment() {
        assert_eq!(path_segment("Id", "a b/c?d#e%f").expect("ok"), "a%20b%2Fc%3Fd%23e%25f");
        assert_eq!(path_segment("Id", "../x").expect("ok"), "..%2Fx");
        assert!(path_segment("Id", "..").is_err());
        assert!(path_segment("Id", ".").is_err());
        assert_eq!(path_segment("Id", "eu-1").expect("ok"), "eu-1");
    }
}
