//! The hosted page's texts, and the `translations` parameter that replaces them: base64 of a JSON object
//! of known keys with plain-text values. Text only (the page escapes it), at most 8 KB; unknown keys and
//! non-text values are ignored, and a parameter that does not decode leaves the defaults.
//!
//! Known keys are Portcullis's own ([`PageTexts`]) and CentralAuth's, which its client libraries send:
//! each CentralAuth key that names a text this page shows is mapped onto it ([`CENTRALAUTH_KEYS`]); when
//! both name the same text, Portcullis's own key wins.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Largest `translations` parameter accepted.
pub const MAX_TRANSLATIONS_BYTES: usize = 8 * 1024;
/// Longest single text.
pub const MAX_TEXT_CHARS: usize = 300;

/// The texts of the hosted login page. `{organization}` and `{email}` are replaced where they appear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PageTexts {
    /// Heading and title.
    pub login_title: String,
    /// Email field label.
    pub email_label: String,
    /// Button that sends the code.
    pub send_code_button: String,
    /// Confirmation after sending.
    pub code_sent_message: String,
    /// Code field label.
    pub code_label: String,
    /// Button that checks the code.
    pub login_button: String,
    /// Link back to the email step.
    pub another_email_link: String,
    /// While waiting for a click on a mailed link.
    pub link_sent_message: String,
    /// While waiting for a click on the matching number of a challenge.
    pub challenge_sent_message: String,
    /// Button that logs in with a passkey (organizations with passkeys on).
    pub passkey_button: String,
}

impl Default for PageTexts {
    fn default() -> Self {
        Self {
            login_title: "Log in to {organization}".to_owned(),
            email_label: "Email address".to_owned(),
            send_code_button: "Send me a login code".to_owned(),
            code_sent_message: "We sent a login code to {email}. It is valid for 15 minutes.".to_owned(),
            code_label: "Login code".to_owned(),
            login_button: "Log in".to_owned(),
            another_email_link: "Use another email or send a new code".to_owned(),
            link_sent_message: "We sent a login link to {email}. Open it to continue; it is valid for 15 minutes."
                .to_owned(),
            challenge_sent_message: "We sent an email to {email}. In it, click the number you see here:".to_owned(),
            passkey_button: "Log in with a passkey".to_owned(),
        }
    }
}

/// CentralAuth's translation keys that name a text of this page, and the [`PageTexts`] fields they set.
/// CentralAuth's other keys (its app, QR code, captcha puzzles, email bodies, undo page) name texts this
/// page does not show; they are ignored like any unknown key.
pub const CENTRALAUTH_KEYS: &[(&str, &[&str])] = &[
    ("emailAddress", &["emailLabel"]),
    ("loginPageIntro", &["loginTitle"]),
    ("login", &["loginButton"]),
    ("loginWithPasskey", &["passkeyButton"]),
    ("loginAttemptCodeBody", &["codeSentMessage"]),
    ("loginAttemptBody", &["linkSentMessage", "challengeSentMessage"]),
    ("loginPageAnotherWay", &["anotherEmailLink"]),
];

/// The overrides a `translations` parameter carries (known keys with text values only), as
/// [`PageTexts`] keys.
#[must_use]
pub fn parse_translations(encoded: &str) -> Map<String, Value> {
    if encoded.len() > MAX_TRANSLATIONS_BYTES * 4 / 3 + 4 {
        return Map::new();
    }
    let trimmed = encoded.trim().trim_end_matches('=');
    let Some(bytes) = URL_SAFE_NO_PAD.decode(trimmed).ok().or_else(|| STANDARD.decode(encoded.trim()).ok()) else {
        return Map::new();
    };
    if bytes.len() > MAX_TRANSLATIONS_BYTES {
        return Map::new();
    }
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(&bytes) else { return Map::new() };
    let usable = |value: &Value| {
        value.as_str().is_some_and(|t| t.chars().count() <= MAX_TEXT_CHARS && !t.chars().any(char::is_control))
    };
    let mut overrides = Map::new();
    for (key, fields) in CENTRALAUTH_KEYS {
        if let Some(value) = object.get(*key).filter(|v| usable(v)) {
            for field in *fields {
                overrides.insert((*field).to_owned(), value.clone());
            }
        }
    }
    let known = serde_json::to_value(PageTexts::default()).ok();
    for (key, value) in object {
        if known.as_ref().is_some_and(|k| k.get(&key).is_some()) && usable(&value) {
            overrides.insert(key, value);
        }
    }
    overrides
}

impl PageTexts {
    /// The defaults with `overrides` applied, and the placeholders filled.
    #[must_use]
    pub fn resolve(overrides: &Map<String, Value>, organization: &str, email: &str) -> Self {
        let mut texts = serde_json::to_value(Self::default()).unwrap_or(Value::Null);
        if let Value::Object(fields) = &mut texts {
            for (key, value) in overrides {
                if fields.contains_key(key) {
                    fields.insert(key.clone(), value.clone());
                }
            }
            for value in fields.values_mut() {
                if let Some(text) = value.as_str() {
                    *value = Value::String(text.replace("{organization}", organization).replace("{email}", email));
                }
            }
        }
        serde_json::from_value(texts).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(json: &str) -> String {
        STANDARD.encode(json)
    }

    #[test]
    fn known_text_keys_override_the_defaults() {
        let overrides = parse_translations(&encode(
            r#"{"loginTitle":"Inloggen bij {organization}","codeLabel":"Code","unknown":"x","loginButton":5}"#,
        ));
        assert_eq!(overrides.len(), 2, "unknown keys and non-text values are dropped");
        let texts = PageTexts::resolve(&overrides, "Acme", "a@example.com");
        assert_eq!(texts.login_title, "Inloggen bij Acme");
        assert_eq!(texts.code_label, "Code");
        assert_eq!(texts.login_button, "Log in");
        assert_eq!(
            PageTexts::resolve(&Map::new(), "Acme", "a@b.c").code_sent_message,
            "We sent a login code to a@b.c. It is valid for 15 minutes."
        );
    }

    #[test]
    fn centralauth_keys_set_the_texts_they_name() {
        let overrides = parse_translations(&encode(
            r#"{"emailAddress":"E-mailadres","loginPageIntro":"Welkom","loginAttemptBody":"Kijk in je mail",
                "login":"Inloggen","loginButton":"Log in now","loginPageCaptchaPuzzleText":"ignored"}"#,
        ));
        let texts = PageTexts::resolve(&overrides, "Acme", "a@example.com");
        assert_eq!(texts.email_label, "E-mailadres");
        assert_eq!(texts.login_title, "Welkom");
        assert_eq!(
            (texts.link_sent_message.as_str(), texts.challenge_sent_message.as_str()),
            ("Kijk in je mail", "Kijk in je mail")
        );
        assert_eq!(texts.login_button, "Log in now", "Portcullis's own key wins over CentralAuth's");
        assert_eq!(overrides.len(), 5, "keys of texts the page does not show are ignored: {overrides:?}");
        let known = serde_json::to_value(PageTexts::default()).expect("texts");
        for (key, fields) in CENTRALAUTH_KEYS {
            assert!(fields.iter().all(|f| known.get(f).is_some()), "{key} maps onto an unknown text");
        }
    }

    #[test]
    fn bad_parameters_leave_the_defaults() {
        for bad in [
            "!!!",
            &encode("[1,2]"),
            &encode(&format!(r#"{{"codeLabel":"{}"}}"#, "x".repeat(9000))),
            &"A".repeat(20_000),
        ] {
            assert!(parse_translations(bad).is_empty(), "{}", &bad[..bad.len().min(20)]);
        }
        assert!(
            parse_translations(&encode(r#"{"codeLabel":"a\u0007b"}"#)).is_empty(),
            "control characters are refused"
        );
    }
}
