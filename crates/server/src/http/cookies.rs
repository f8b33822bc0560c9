//! Reading a browser's cookies (the hosted login's flow binding, the console's session).

use axum::http::{HeaderMap, header};

/// The value of the cookie named `name`, from every `Cookie` header of the request.
pub(crate) fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| cookie::Cookie::split_parse(v.to_owned()).flatten())
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}
