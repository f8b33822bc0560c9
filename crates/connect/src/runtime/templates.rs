//! Merge-field templates of a method: paths, query parameters, headers and bodies.

use std::collections::BTreeMap;

use portcullis_core::Error;
use portcullis_core::ErrorCode;
use serde_json::{Map, Value};

use crate::credentials;
use crate::definition::IGNORE_PARAMETER;

use super::err;

/// A method's query parameters or headers: the connector's, then the method's (which win), merge fields
/// filled; a value of [`IGNORE_PARAMETER`] leaves the parameter out.
pub(super) fn parameters(
    connector: &BTreeMap<String, String>,
    method: &BTreeMap<String, String>,
    fields: &Map<String, Value>,
) -> Map<String, Value> {
    let mut merged: BTreeMap<&String, &String> = connector.iter().collect();
    merged.extend(method);
    merged
        .into_iter()
        .filter(|(_, v)| v.trim() != IGNORE_PARAMETER)
        .map(|(k, v)| (k.clone(), Value::String(fill(v, fields))))
        .collect()
}

pub(super) fn fill(template: &str, fields: &Map<String, Value>) -> String {
    fill_with(template, fields, |_, v| Ok::<_, std::convert::Infallible>(v.to_owned())).unwrap_or_else(|e| match e {})
}

pub(super) fn fill_with<E>(
    template: &str,
    fields: &Map<String, Value>,
    encode: impl Fn(&str, &str) -> Result<String, E>,
) -> Result<String, E> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = after[..end].trim();
        match fields.get(name) {
            Some(Value::String(s)) => out.push_str(&encode(name, s)?),
            Some(Value::Null) | None => {}
            Some(other) => out.push_str(&encode(name, &other.to_string())?),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A method's path with its merge fields, each one encoded path segment; a path that would climb out of the
/// method's (`.` or `..` segments) is refused.
pub(super) fn fill_path(template: &str, fields: &Map<String, Value>) -> Result<String, Error> {
    let path = fill_with(template, fields, credentials::path_segment)
        .map_err(|message| err(ErrorCode::EntityInvalid, message))?;
    let bare = path.split(['?', '#']).next().unwrap_or_default();
    if bare.split('/').any(|segment| matches!(segment, "." | "..")) {
        return Err(err(ErrorCode::EntityInvalid, "The method path may not contain '.' or '..' segments."));
    }
    Ok(path)
}

pub(super) fn fill_value(value: &Value, fields: &Map<String, Value>) -> Value {
    match value {
        Value::String(s) => Value::String(fill(s, fields)),
        Value::Array(items) => Value::Array(items.iter().map(|v| fill_value(v, fields)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), fill_value(v, fields))).collect()),
        other => other.clone(),
    }
}

pub(super) fn as_text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}
