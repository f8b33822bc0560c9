//! Form and query parsing shared by the OAuth endpoints.

use std::collections::HashSet;

/// The first parameter an urlencoded query or body carries more than once (RFC 6749 §3.1–3.2 forbid it),
/// if any; core refuses the request.
pub(crate) fn repeated_parameter(encoded: &[u8]) -> Option<String> {
    let mut seen = HashSet::new();
    url::form_urlencoded::parse(encoded).map(|(name, _)| name.into_owned()).find(|name| !seen.insert(name.clone()))
}
