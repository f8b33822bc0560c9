//! Host side of the script built-ins: `btoa`/`atob` with charsets, `cyclr_sign`, `http_request`, storage.

use std::time::Duration;

use aws_lc_rs::{hmac, rand::SystemRandom, signature};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use unicode_normalization::UnicodeNormalization;

use crate::egress::{self, Body, Outbound, SendError};
use crate::script::Host;

/// Longest an `http_request` may take, whatever the remaining budget.
const HTTP_REQUEST_CAP: Duration = Duration::from_secs(30);

fn encode(text: &str, charset: &str) -> Result<Vec<u8>, String> {
    let units16 = || text.encode_utf16();
    Ok(match charset.to_ascii_uppercase().as_str() {
        "UTF-8" | "UTF8" => text.as_bytes().to_vec(),
        "ASCII" | "US-ASCII" => text.chars().map(|c| if c.is_ascii() { c as u8 } else { b'?' }).collect(),
        "ISO-8859-1" | "LATIN1" => text
            .chars()
            .map(|c| {
                u8::try_from(u32::from(c)).unwrap_or_else(|_| {
                    // Best fit: drop combining marks from the decomposition, else '?'.
                    c.to_string()
                        .nfd()
                        .find(|d| u32::from(*d) < 0x300)
                        .and_then(|d| u8::try_from(u32::from(d)).ok())
                        .unwrap_or(b'?')
                })
            })
            .collect(),
        "UTF-16" | "UTF-16LE" => units16().flat_map(u16::to_le_bytes).collect(),
        "UTF-16BE" => units16().flat_map(u16::to_be_bytes).collect(),
        "UTF-32" | "UTF-32LE" => text.chars().flat_map(|c| u32::from(c).to_le_bytes()).collect(),
        "UTF-32BE" => text.chars().flat_map(|c| u32::from(c).to_be_bytes()).collect(),
        "UTF-7" | "UTF7" => utf7_encode(text).into_bytes(),
        other => return Err(format!("unsupported charset {other:?}")),
    })
}

/// RFC 2152 direct characters (without the optional set, as .NET's default `UTF7Encoding`).
fn utf7_direct(c: char) -> bool {
    c.is_ascii_alphanumeric() || "'(),-./:? \t\r\n".contains(c)
}

fn utf7_encode(text: &str) -> String {
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    let mut out = String::new();
    let mut shifted: Vec<u16> = Vec::new();
    let flush = |shifted: &mut Vec<u16>, out: &mut String| {
        if !shifted.is_empty() {
            let bytes: Vec<u8> = shifted.drain(..).flat_map(u16::to_be_bytes).collect();
            out.push('+');
            out.push_str(&STANDARD_NO_PAD.encode(bytes));
            out.push('-');
        }
    };
    for c in text.chars() {
        if utf7_direct(c) {
            flush(&mut shifted, &mut out);
            out.push(c);
        } else if c == '+' && shifted.is_empty() {
            out.push_str("+-");
        } else {
            let mut units = [0u16; 2];
            shifted.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut shifted, &mut out);
    out
}

fn utf7_decode(bytes: &[u8]) -> String {
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    let mut rest = text.as_ref();
    while let Some(start) = rest.find('+') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '/')).unwrap_or(after.len());
        let run = &after[..end];
        if run.is_empty() {
            out.push('+');
        } else {
            // A run of one extra symbol carries no whole byte.
            let usable = if run.len() % 4 == 1 { run.len() - 1 } else { run.len() };
            let raw = STANDARD_NO_PAD.decode(&run[..usable]).unwrap_or_default();
            let units: Vec<u16> = raw.chunks_exact(2).map(|p| u16::from_be_bytes([p[0], p[1]])).collect();
            out.push_str(&String::from_utf16_lossy(&units));
        }
        rest = after[end..].strip_prefix('-').unwrap_or(&after[end..]);
    }
    out.push_str(rest);
    out
}

fn decode(bytes: &[u8], charset: &str) -> Result<String, String> {
    let words16 = |be: bool| -> Vec<u16> {
        bytes
            .chunks_exact(2)
            .map(|c| if be { u16::from_be_bytes([c[0], c[1]]) } else { u16::from_le_bytes([c[0], c[1]]) })
            .collect()
    };
    let chars32 = |be: bool| -> String {
        bytes
            .chunks_exact(4)
            .map(|c| {
                let n = if be {
                    u32::from_be_bytes([c[0], c[1], c[2], c[3]])
                } else {
                    u32::from_le_bytes([c[0], c[1], c[2], c[3]])
                };
                char::from_u32(n).unwrap_or('\u{FFFD}')
            })
            .collect()
    };
    Ok(match charset.to_ascii_uppercase().as_str() {
        "UTF-8" | "UTF8" => String::from_utf8_lossy(bytes).into_owned(),
        "ASCII" | "US-ASCII" => bytes.iter().map(|&b| if b.is_ascii() { char::from(b) } else { '?' }).collect(),
        "ISO-8859-1" | "LATIN1" => bytes.iter().map(|&b| char::from(b)).collect(),
        "UTF-16" | "UTF-16LE" => String::from_utf16_lossy(&words16(false)),
        "UTF-16BE" => String::from_utf16_lossy(&words16(true)),
        "UTF-32" | "UTF-32LE" => chars32(false),
        "UTF-32BE" => chars32(true),
        "UTF-7" | "UTF7" => utf7_decode(bytes),
        other => return Err(format!("unsupported charset {other:?}")),
    })
}

/// `btoa(text, charset)`: Base64 of the text's bytes in the charset.
///
/// # Errors
/// An unsupported charset.
pub fn btoa(text: &str, charset: &str) -> Result<String, String> {
    Ok(STANDARD.encode(encode(text, charset)?))
}

/// `atob(base64, charset)`: the Base64's bytes read in the charset.
///
/// # Errors
/// Invalid Base64 or an unsupported charset.
pub fn atob(text: &str, charset: &str) -> Result<String, String> {
    let bytes = STANDARD.decode(text.trim()).map_err(|e| format!("invalid Base64: {e}"))?;
    decode(&bytes, charset)
}

/// `cyclr_sign(algorithm, key, value)`, Base64 output. RSA keys are PKCS#8 PEM.
///
/// # Errors
/// An unknown algorithm or an unreadable key.
pub fn sign(algorithm: &str, key: &str, value: &str) -> Result<String, String> {
    let hmac_alg = match algorithm.to_ascii_uppercase().as_str() {
        "HMAC-SHA1" => Some(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY),
        "HMAC-SHA256" => Some(hmac::HMAC_SHA256),
        "HMAC-SHA512" => Some(hmac::HMAC_SHA512),
        _ => None,
    };
    if let Some(alg) = hmac_alg {
        let tag = hmac::sign(&hmac::Key::new(alg, key.as_bytes()), value.as_bytes());
        return Ok(STANDARD.encode(tag.as_ref()));
    }
    let rsa_alg: &'static dyn signature::RsaEncoding = match algorithm.to_ascii_uppercase().as_str() {
        "RSA-SHA256" => &signature::RSA_PKCS1_SHA256,
        "RSA-SHA384" => &signature::RSA_PKCS1_SHA384,
        "RSA-SHA512" => &signature::RSA_PKCS1_SHA512,
        legacy @ ("RSA-SHA1" | "RSA-SHA224") => return sign_legacy_rsa(legacy, &pkcs8_der(key)?, value),
        other => return Err(format!("unsupported signing algorithm {other:?}")),
    };
    let der = pkcs8_der(key)?;
    let pair = signature::RsaKeyPair::from_pkcs8(&der).map_err(|e| format!("the key is not a PKCS#8 RSA key: {e}"))?;
    let mut out = vec![0; pair.public_modulus_len()];
    pair.sign(rsa_alg, &SystemRandom::new(), value.as_bytes(), &mut out).map_err(|e| format!("signing failed: {e}"))?;
    Ok(STANDARD.encode(out))
}

/// The DER of a PKCS#8 PEM key.
fn pkcs8_der(pem: &str) -> Result<Vec<u8>, String> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body.trim()).map_err(|e| format!("the key is not PEM: {e}"))
}

/// PKCS#1 v1.5 with SHA-1 or SHA-224, which some older APIs still ask for (RustCrypto's `rsa`, since
/// aws-lc-rs signs only with SHA-256 and up).
fn sign_legacy_rsa(algorithm: &str, der: &[u8], value: &str) -> Result<String, String> {
    use rsa::pkcs8::DecodePrivateKey as _;
    use rsa::sha2::{Digest as _, Sha224};
    let key = rsa::RsaPrivateKey::from_pkcs8_der(der).map_err(|e| format!("the key is not a PKCS#8 RSA key: {e}"))?;
    let signed = if algorithm == "RSA-SHA1" {
        key.sign(rsa::Pkcs1v15Sign::new::<sha1::Sha1>(), &sha1::Sha1::digest(value.as_bytes()))
    } else {
        key.sign(rsa::Pkcs1v15Sign::new::<Sha224>(), &Sha224::digest(value.as_bytes()))
    };
    signed.map(|signature| STANDARD.encode(signature)).map_err(|e| format!("signing failed: {e}"))
}

/// A response body as scripts see it: parsed JSON, else the string; `null` when empty.
#[must_use]
pub fn body_value(text: &str) -> Value {
    if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
    }
}

/// What `http_request` throws when the egress policy refused the destination; the runtime turns the whole
/// call into `egressRefused`, whatever the script does with the exception.
const EGRESS_REFUSED_PREFIX: &str = "egress refused: ";

/// `http_request({method, url, parameters, headers, data})`, run synchronously on the async runtime. Answers
/// `{status_code, headers, content, request}`, or `{__error}`. Non-2xx does not throw. Credentials are attached
/// by the one rule ([`crate::credentials::Attach`]) and the destination passes the egress policy on every hop.
/// The call's cancellation stops a request in flight.
#[must_use]
pub fn http_request(host: &Host, remaining: Duration, request: &str) -> String {
    let result = (|| -> Result<Value, String> {
        let request: Value = serde_json::from_str(request).map_err(|e| e.to_string())?;
        let url = request.get("url").and_then(Value::as_str).ok_or("http_request needs a url")?;
        let mut url = url::Url::parse(url).map_err(|e| format!("http_request: bad url: {e}"))?;
        if let Some(Value::Object(params)) = request.get("parameters") {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in params {
                pairs.append_pair(k, &v.as_str().map_or_else(|| v.to_string(), str::to_owned));
            }
        }
        let method = request.get("method").and_then(Value::as_str).unwrap_or("GET").to_ascii_uppercase();
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let headers: Vec<(String, String)> = match request.get("headers") {
            Some(Value::Object(headers)) => headers
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                .collect(),
            _ => Vec::new(),
        };
        let body = match request.get("data") {
            Some(Value::String(s)) => Body::Bytes(s.clone().into_bytes(), None),
            Some(Value::Null) | None => Body::Empty,
            Some(other) => Body::Bytes(other.to_string().into_bytes(), None),
        };
        let outbound = Outbound { method, url, headers, body, timeout: Some(remaining.min(HTTP_REQUEST_CAP)) };
        let budget = host.budget.clone();
        let response = host.handle.block_on(async move {
            let work = async {
                let response =
                    egress::send(&host.client, &host.egress, &host.attach, outbound).await.map_err(|e| match e {
                        SendError::Refused(refused) => {
                            if let Some(budget) = &host.budget {
                                budget.refuse(refused.to_string());
                            }
                            format!("{EGRESS_REFUSED_PREFIX}{refused}")
                        }
                        SendError::Http(e) => format!("http_request failed: {e}"),
                    })?;
                let status = response.status().as_u16();
                let mut headers = Map::new();
                for (k, v) in response.headers() {
                    headers.insert(k.as_str().to_owned(), Value::String(v.to_str().unwrap_or_default().to_owned()));
                }
                let text = response.text().await.map_err(|e| format!("http_request failed: {e}"))?;
                Ok::<_, String>((status, headers, text))
            };
            tokio::select! {
                done = work => done,
                () = cancelled(budget) => Err("http_request stopped: the call is gone".to_owned()),
            }
        })?;
        Ok(
            json!({ "status_code": response.0, "headers": response.1, "content": body_value(&response.2), "request": request }),
        )
    })();
    match result {
        Ok(v) => v.to_string(),
        Err(e) => json!({ "__error": e }).to_string(),
    }
}

/// Resolves once the call is cancelled (never without a call budget).
async fn cancelled(budget: Option<std::sync::Arc<crate::script::Budget>>) {
    let Some(budget) = budget else { return std::future::pending().await };
    while !budget.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Longest `console.log` line, in characters, after escaping.
const MAX_LOG_LINE_CHARS: usize = 2000;

/// A `console.log` line as it goes to the server log: credentials masked, control characters escaped (a
/// script cannot start a line of its own), at most [`MAX_LOG_LINE_CHARS`] characters.
#[must_use]
pub fn log_line(text: &str, secrets: &[String]) -> String {
    let redacted = crate::credentials::redact(text, secrets);
    let mut out = String::with_capacity(redacted.len().min(MAX_LOG_LINE_CHARS + 16));
    let mut chars = 0;
    for c in redacted.chars() {
        let escaped: String = if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            c.escape_default().collect()
        } else {
            c.to_string()
        };
        chars += escaped.chars().count();
        if chars > MAX_LOG_LINE_CHARS {
            out.push_str("… (truncated)");
            break;
        }
        out.push_str(&escaped);
    }
    out
}

/// `cyclr_csv_parse(csv, delimiter, hasHeader)`: arrays of fields, or objects keyed by the header row.
/// Quoted fields may hold the delimiter, newlines and doubled quotes.
///
/// # Errors
/// A delimiter that is not one character, or an unterminated quote.
pub fn csv_parse(csv: &str, delimiter: &str, has_header: bool) -> Result<Value, String> {
    let mut chars = delimiter.chars();
    let (Some(delim), None) = (chars.next(), chars.next()) else {
        return Err(format!("the delimiter must be one character, not {delimiter:?}"));
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    let (mut row, mut field) = (Vec::new(), String::new());
    let (mut quoted, mut any) = (false, false);
    let mut it = csv.chars().peekable();
    while let Some(c) = it.next() {
        any = true;
        if quoted {
            match c {
                '"' if it.peek() == Some(&'"') => {
                    it.next();
                    field.push('"');
                }
                '"' => quoted = false,
                other => field.push(other),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => quoted = true,
            c if c == delim => row.push(std::mem::take(&mut field)),
            '\r' if it.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                any = false;
            }
            other => field.push(other),
        }
    }
    if quoted {
        return Err("unterminated quoted field".to_owned());
    }
    if any {
        row.push(field);
        rows.push(row);
    }
    if !has_header {
        return Ok(json!(rows));
    }
    let mut rows = rows.into_iter();
    let header = rows.next().unwrap_or_default();
    Ok(Value::Array(
        rows.map(|r| Value::Object(header.iter().cloned().zip(r.into_iter().map(Value::String)).collect())).collect(),
    ))
}

fn node_value(node: roxmltree::Node<'_, '_>) -> Value {
    let mut map = Map::new();
    for attr in node.attributes() {
        map.insert(format!("@{}", attr.name()), Value::String(attr.value().to_owned()));
    }
    let children: Vec<_> = node.children().filter(roxmltree::Node::is_element).collect();
    let text: String = node.children().filter(roxmltree::Node::is_text).filter_map(|t| t.text()).collect();
    if children.is_empty() && map.is_empty() {
        return if text.is_empty() { Value::Null } else { Value::String(text) };
    }
    for child in children {
        let name = child.tag_name().name().to_owned();
        let value = node_value(child);
        match map.get_mut(&name) {
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => *existing = Value::Array(vec![existing.take(), value]),
            None => {
                map.insert(name, value);
            }
        }
    }
    if !text.trim().is_empty() {
        map.insert("#text".to_owned(), Value::String(text));
    }
    Value::Object(map)
}

/// `cyclr_xml_deserialize(xml)`: XML to JSON (Json.NET's convention: `@name` attributes, `#text` for mixed
/// content, repeated siblings as arrays, empty elements as `null`).
///
/// # Errors
/// Malformed XML.
pub fn xml_deserialize(xml: &str) -> Result<Value, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("invalid XML: {e}"))?;
    let root = doc.root_element();
    let mut map = Map::new();
    map.insert(root.tag_name().name().to_owned(), node_value(root));
    Ok(Value::Object(map))
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{self, KeyPair as _, RsaKeyPair, UnparsedPublicKey};
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    use super::{atob, btoa, log_line, sign};

    #[test]
    fn rsa_sha1_and_sha224_signatures_verify() {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("key");
        let der: Pkcs8V1Der<'static> = pair.as_der().expect("pkcs8");
        let pem =
            format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", STANDARD.encode(der.as_ref()));
        let public = pair.public_key().as_ref().to_vec();

        let sha1 = STANDARD.decode(sign("RSA-SHA1", &pem, "GET&url&params").expect("RSA-SHA1")).expect("base64");
        UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, &public)
            .verify(b"GET&url&params", &sha1)
            .expect("an RSA-SHA1 signature aws-lc-rs verifies");

        let sha224 = STANDARD.decode(sign("rsa-sha224", &pem, "payload").expect("RSA-SHA224")).expect("base64");
        let key = <rsa::RsaPublicKey as rsa::pkcs1::DecodeRsaPublicKey>::from_pkcs1_der(&public).expect("public key");
        let digest = <rsa::sha2::Sha224 as rsa::sha2::Digest>::digest(b"payload");
        key.verify(rsa::Pkcs1v15Sign::new::<rsa::sha2::Sha224>(), &digest, &sha224).expect("RSA-SHA224 verifies");
        assert_ne!(
            sign("RSA-SHA224", &pem, "payload").expect("sign"),
            sign("RSA-SHA256", &pem, "payload").expect("sign"),
            "different digests, different signatures"
        );
    }

    #[test]
    fn log_lines_are_escaped_redacted_and_capped() {
        let secrets = vec!["key-12345".to_owned()];
        assert_eq!(
            log_line("a\nERROR forged key-12345\r\u{1b}[31m", &secrets),
            "a\\nERROR forged ********\\r\\u{1b}[31m"
        );
        let long = log_line(&"y".repeat(10_000), &secrets);
        assert!(long.chars().count() < 2100 && long.ends_with("(truncated)"));
    }

    #[test]
    fn utf7_follows_rfc_2152() {
        // RFC 2152 examples: "Hi Mom -☺-!" and "日本語".
        assert_eq!(super::utf7_encode("Hi Mom -\u{263A}-!"), "Hi Mom -+Jjo--+ACE-");
        assert_eq!(super::utf7_encode("\u{65E5}\u{672C}\u{8A9E}"), "+ZeVnLIqe-");
        assert_eq!(super::utf7_encode("1 + 1"), "1 +- 1");
        for text in ["Hi Mom -\u{263A}-!", "\u{65E5}\u{672C}\u{8A9E}", "a+b", "Hĕllō Wōrld", "emoji \u{1F600}."] {
            assert_eq!(atob(&btoa(text, "UTF-7").expect("encode"), "UTF-7").expect("decode"), text);
        }
    }
}

/// Where a script's `cyclr_storage_*` and `cycle_storage_*` calls go.
#[derive(Debug, Clone)]
pub struct Storage {
    /// The store.
    pub store: std::sync::Arc<dyn portcullis_core::store::Store>,
    /// The runtime's clock.
    pub clock: std::sync::Arc<dyn portcullis_core::clock::Clock>,
    /// The organization (Cyclr's account).
    pub organization: String,
    /// `cyclr_storage_*`: shared by every account of this connector in the organization.
    pub connector_scope: String,
    /// `cycle_storage_*`: this connector account only (Portcullis has no cycles).
    pub cycle_scope: String,
}

/// One `cyclr_storage_*` / `cycle_storage_*` call from a script: `scope` is `cyclr` or `cycle`, `value` is
/// JSON text. Answers JSON text, or NUL + message.
///
/// Scripts run synchronously on a blocking thread (never an async worker), where `Handle::block_on` is
/// allowed: the call waits for the async store there, bounded by the script's remaining budget because the
/// interrupt handler cannot stop host code.
#[must_use]
pub fn storage(host: &Host, remaining: Duration, scope: &str, op: &str, key: &str, value: &str) -> String {
    use portcullis_core::store::{STORAGE_MAX_KEY_BYTES, StorageOp};
    let result = (|| -> Result<Value, String> {
        let storage = host.storage.as_ref().ok_or("storage is not available to this script")?;
        let scope = if scope == "cycle" { &storage.cycle_scope } else { &storage.connector_scope };
        let org = storage.organization.as_str();
        let keyed = matches!(op, "get" | "set" | "append" | "delete" | "increment");
        if keyed && (key.is_empty() || key.len() > STORAGE_MAX_KEY_BYTES) {
            return Err(format!("storage keys are 1 to {STORAGE_MAX_KEY_BYTES} bytes"));
        }
        let parse = |text: &str| serde_json::from_str::<Value>(text).map_err(|e| e.to_string());
        let work = async {
            let store = &storage.store;
            let now = storage.clock.now();
            let applied = |op: StorageOp| async move {
                store.connector_storage_apply(org, scope, key, &op, now).await.map_err(|e| e.to_string())
            };
            match op {
                "get" => match store.connector_storage_get(org, scope, key).await.map_err(|e| e.to_string())? {
                    Some(text) => parse(&text),
                    None => Ok(Value::Null),
                },
                "set" => parse(&applied(StorageOp::Set(value.to_owned())).await?),
                "append" => parse(&applied(StorageOp::Append(value.to_owned())).await?),
                "increment" => {
                    let amount =
                        parse(value)?.as_f64().filter(|a| a.is_finite()).ok_or("the amount must be a number")?;
                    parse(&applied(StorageOp::Increment(amount)).await?)
                }
                "delete" => Ok(Value::Bool(
                    store.connector_storage_delete(org, scope, Some(key)).await.map_err(|e| e.to_string())? > 0,
                )),
                "delete_all" => {
                    Ok(Value::from(store.connector_storage_delete(org, scope, None).await.map_err(|e| e.to_string())?))
                }
                "list_keys" | "list_values" => {
                    let entries = store.connector_storage_entries(org, scope).await.map_err(|e| e.to_string())?;
                    entries
                        .into_iter()
                        .map(|(k, v)| if op == "list_keys" { Ok(Value::String(k)) } else { parse(&v) })
                        .collect::<Result<Vec<_>, _>>()
                        .map(Value::Array)
                }
                other => Err(format!("unknown storage operation {other}")),
            }
        };
        host.handle
            .block_on(async { tokio::time::timeout(remaining, work).await })
            .map_err(|_| "the storage call ran out of the script's time".to_owned())?
    })();
    result.map_or_else(|e| format!("\u{0}{e}"), |v| v.to_string())
}
