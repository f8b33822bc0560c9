//! The answer a login flow sends back to the application's callback (reference §8): the success with
//! `code`, `state` and `iss`, or an error with `error` and `error_description` — only ever to a callback
//! URI that was validated first. The callback's own query (`return_to`) is kept.

use url::Url;

use super::model::FlowFace;
use crate::Error;

/// Longest `error_description` sent.
pub const MAX_DESCRIPTION_CHARS: usize = 200;

/// Which error format the face uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFormat {
    /// CentralAuth: `error=<errorCode>` (the npm library copies it into `errorCode`).
    Compat,
    /// Standard OAuth: `error=<RFC error>` plus `error_code=<errorCode>`.
    Standard,
}

impl ErrorFormat {
    /// The format a face answers in: only the standard face uses RFC error names.
    #[must_use]
    pub const fn for_face(face: FlowFace) -> Self {
        match face {
            FlowFace::Standard => Self::Standard,
            FlowFace::Compat | FlowFace::Direct => Self::Compat,
        }
    }
}

/// `code`, `state` and `iss` appended to the validated callback.
#[must_use]
pub fn success(callback: &Url, code: &str, state: &str, issuer: &str, affirm: bool) -> Url {
    let mut url = callback.clone();
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("code", code).append_pair("state", state).append_pair("iss", issuer);
        if affirm {
            query.append_pair("affirm", "1");
        }
    }
    url
}

/// An error redirect to the validated callback. `state` is echoed exactly when one was sent.
#[must_use]
pub fn error(callback: &Url, error: &Error, state: Option<&str>, issuer: &str, format: ErrorFormat) -> Url {
    let mut url = callback.clone();
    {
        let mut query = url.query_pairs_mut();
        match format {
            ErrorFormat::Compat => {
                query.append_pair("error", error.code().as_str());
            }
            ErrorFormat::Standard => {
                query.append_pair("error", error.oauth_error());
                query.append_pair("error_code", error.code().as_str());
            }
        }
        query.append_pair("error_description", &safe_description(error.message()));
        if let Some(state) = state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", issuer);
    }
    url
}

/// Only the characters RFC 6749 §4.1.2.1 allows in `error_description` (%x20-21 / %x23-5B / %x5D-7E),
/// at most [`MAX_DESCRIPTION_CHARS`].
#[must_use]
pub fn safe_description(text: &str) -> String {
    text.chars()
        .filter(|c| matches!(*c as u32, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E))
        .take(MAX_DESCRIPTION_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn callback() -> Url {
        Url::parse("https://app.example.com/api/auth/callback?return_to=%2Fhome").expect("url")
    }

    fn pairs(url: &Url) -> Vec<(String, String)> {
        url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
    }

    #[test]
    fn success_keeps_return_to_and_adds_code_state_iss() {
        let url = success(&callback(), "c0de", "st4te", "https://auth.example.com", true);
        let expected: Vec<(String, String)> = [
            ("return_to", "/home"),
            ("code", "c0de"),
            ("state", "st4te"),
            ("iss", "https://auth.example.com"),
            ("affirm", "1"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(pairs(&url), expected);
    }

    #[test]
    fn compat_and_standard_error_formats() {
        let missing = Error::new(ErrorCode::StateMissing).with_message("The OAuth state is missing.");
        let compat = error(&callback(), &missing, None, "https://a", ErrorFormat::Compat);
        let p = pairs(&compat);
        assert!(p.contains(&("error".to_owned(), "stateMissing".to_owned())));
        assert!(!p.iter().any(|(k, _)| k == "state"), "no state was sent, none is echoed");
        let plain = Error::new(ErrorCode::CodeChallengeInvalid).with_oauth_error("invalid_request");
        let standard = error(&callback(), &plain, Some("s"), "https://a", ErrorFormat::Standard);
        let p = pairs(&standard);
        assert!(p.contains(&("error".to_owned(), "invalid_request".to_owned())));
        assert!(p.contains(&("error_code".to_owned(), "codeChallengeInvalid".to_owned())));
        assert!(p.contains(&("state".to_owned(), "s".to_owned())));
    }

    #[test]
    fn descriptions_are_restricted_and_bounded() {
        assert_eq!(safe_description("bad \"quote\" and \\ and é\n"), "bad quote and  and ");
        assert_eq!(safe_description(&"x".repeat(500)).len(), MAX_DESCRIPTION_CHARS);
    }
}
