//! Verifying inbound webhooks with the signature schemes of common providers. Every comparison is constant
//! time (`aws_lc_rs::hmac::verify`); Standard Webhooks uses its own library.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::definition::{SignatureScheme, WebhookSignature};

/// Why a webhook's signature was refused (for the log; the sender only learns the catalog code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

fn refuse(why: impl Into<String>) -> Refusal {
    Refusal(why.into())
}

fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Result<&'a str, Refusal> {
    headers
        .get(name)
        .ok_or_else(|| refuse(format!("no {name} header")))?
        .to_str()
        .map_err(|_| refuse(format!("the {name} header is not text")))
}

/// Whether `tag` (hex or base64) is the HMAC-SHA256 of `message` under `secret`.
fn hmac_matches(secret: &str, message: &[u8], tag: &str) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = tag.trim();
    [hex::decode(tag).ok(), STANDARD.decode(tag).ok()]
        .into_iter()
        .flatten()
        .filter(|bytes| bytes.len() == 32)
        .any(|bytes| hmac::verify(&key, message, &bytes).is_ok())
}

fn fresh(timestamp: &str, now_secs: i64, tolerance: u64) -> Result<(), Refusal> {
    let at: i64 = timestamp.trim().parse().map_err(|_| refuse("the signed timestamp is not a number"))?;
    if now_secs.abs_diff(at) > tolerance {
        return Err(refuse(format!("the signed timestamp is more than {tolerance} s away from now")));
    }
    Ok(())
}

/// Checks a webhook request's signature under `secret`.
///
/// # Errors
/// A [`Refusal`] naming what is missing or wrong.
pub fn verify(
    spec: &WebhookSignature,
    secret: &str,
    headers: &http::HeaderMap,
    body: &[u8],
    now_secs: i64,
) -> Result<(), Refusal> {
    let matched = match spec.scheme {
        SignatureScheme::Github => {
            let value = header(headers, "x-hub-signature-256")?;
            value.strip_prefix("sha256=").is_some_and(|tag| hmac_matches(secret, body, tag))
        }
        SignatureScheme::Shopify => hmac_matches(secret, body, header(headers, "x-shopify-hmac-sha256")?),
        SignatureScheme::HmacSha256 => {
            let name = spec.header.as_deref().unwrap_or_default();
            let value = header(headers, name)?;
            value.strip_prefix(spec.prefix.as_str()).is_some_and(|tag| hmac_matches(secret, body, tag))
        }
        SignatureScheme::Slack => {
            let timestamp = header(headers, "x-slack-request-timestamp")?;
            fresh(timestamp, now_secs, spec.tolerance_secs)?;
            let mut message = format!("v0:{timestamp}:").into_bytes();
            message.extend_from_slice(body);
            let value = header(headers, "x-slack-signature")?;
            value.strip_prefix("v0=").is_some_and(|tag| hmac_matches(secret, &message, tag))
        }
        SignatureScheme::Stripe => {
            let value = header(headers, "stripe-signature")?;
            let parts: Vec<(&str, &str)> = value.split(',').filter_map(|p| p.trim().split_once('=')).collect();
            let timestamp = parts
                .iter()
                .find(|(k, _)| *k == "t")
                .map(|(_, v)| *v)
                .ok_or_else(|| refuse("no t= in Stripe-Signature"))?;
            fresh(timestamp, now_secs, spec.tolerance_secs)?;
            let mut message = format!("{timestamp}.").into_bytes();
            message.extend_from_slice(body);
            parts.iter().filter(|(k, _)| *k == "v1").any(|(_, tag)| hmac_matches(secret, &message, tag))
        }
        SignatureScheme::StandardWebhooks => {
            let hook = standardwebhooks::Webhook::new(secret).map_err(|e| refuse(format!("the secret: {e}")))?;
            return hook.verify(body, headers).map_err(|e| refuse(e.to_string()));
        }
    };
    if matched { Ok(()) } else { Err(refuse("the signature does not match")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(scheme: SignatureScheme) -> WebhookSignature {
        WebhookSignature {
            scheme,
            secret_property: "WebhookSecret".to_owned(),
            header: Some("x-signature".to_owned()),
            prefix: "sha256=".to_owned(),
            tolerance_secs: 300,
        }
    }

    fn sign(secret: &str, message: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()), message).as_ref().to_vec()
    }

    fn headers(pairs: &[(&'static str, String)]) -> http::HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_static(k), v.parse().expect("header value"))).collect()
    }

    #[test]
    fn each_scheme_accepts_its_signature_and_refuses_a_forgery_or_an_old_timestamp() {
        let (secret, body, now) = ("s3cret", br#"{"id":1}"#.as_slice(), 1_800_000_000_i64);
        let good = [
            (
                SignatureScheme::Github,
                headers(&[("x-hub-signature-256", format!("sha256={}", hex::encode(sign(secret, body))))]),
            ),
            (SignatureScheme::Shopify, headers(&[("x-shopify-hmac-sha256", STANDARD.encode(sign(secret, body)))])),
            (
                SignatureScheme::HmacSha256,
                headers(&[("x-signature", format!("sha256={}", hex::encode(sign(secret, body))))]),
            ),
            (
                SignatureScheme::Slack,
                headers(&[
                    ("x-slack-request-timestamp", now.to_string()),
                    (
                        "x-slack-signature",
                        format!("v0={}", hex::encode(sign(secret, format!("v0:{now}:{{\"id\":1}}").as_bytes()))),
                    ),
                ]),
            ),
            (
                SignatureScheme::Stripe,
                headers(&[(
                    "stripe-signature",
                    format!("t={now},v1=00,v1={}", hex::encode(sign(secret, format!("{now}.{{\"id\":1}}").as_bytes()))),
                )]),
            ),
        ];
        for (scheme, headers) in &good {
            verify(&spec(*scheme), secret, headers, body, now).unwrap_or_else(|e| panic!("{scheme:?}: {e}"));
            assert!(verify(&spec(*scheme), "other", headers, body, now).is_err(), "{scheme:?} with another secret");
            assert!(
                verify(&spec(*scheme), secret, headers, br#"{"id":2}"#, now).is_err(),
                "{scheme:?} with another body"
            );
            assert!(verify(&spec(*scheme), secret, &http::HeaderMap::new(), body, now).is_err(), "{scheme:?} unsigned");
        }
        for (scheme, headers) in &good[3..] {
            assert!(verify(&spec(*scheme), secret, headers, body, now + 301).is_err(), "{scheme:?} replayed later");
        }
    }
}
