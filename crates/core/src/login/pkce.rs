//! PKCE (RFC 7636) and `state`, as both faces check them. S256 only: `plain` and an absent method (which
//! RFC 7636 §4.3 defines as `plain`) are refused.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::{Error, ErrorCode};

/// Which face's verifier rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Face {
    /// CentralAuth-compatible: the npm library's verifier is a 36-character UUID.
    Compat,
    /// Standard OAuth 2.1: 43–128 characters (RFC 7636 §4.1).
    Strict,
}

/// Longest `state` accepted (printable ASCII).
pub const MAX_STATE_LEN: usize = 1024;

/// Checks `state` at the authorization step.
///
/// # Errors
/// `stateMissing` when absent, `stateInvalid` when too long or not printable ASCII.
pub fn check_state(state: Option<&str>) -> Result<&str, Error> {
    let state = state.filter(|s| !s.is_empty()).ok_or_else(|| Error::new(ErrorCode::StateMissing))?;
    if state.len() > MAX_STATE_LEN || !state.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(Error::new(ErrorCode::StateInvalid)
            .with_message(format!("The OAuth state must be at most {MAX_STATE_LEN} printable ASCII characters.")));
    }
    Ok(state)
}

/// Checks the challenge at the authorization step: 43 base64url characters with method `S256`.
///
/// # Errors
/// `codeChallengeMissing` when required and absent, `codeChallengeInvalid` for another method or shape.
pub fn check_challenge<'a>(
    challenge: Option<&'a str>,
    method: Option<&str>,
    required: bool,
) -> Result<Option<&'a str>, Error> {
    let Some(challenge) = challenge.filter(|c| !c.is_empty()) else {
        return if required { Err(Error::new(ErrorCode::CodeChallengeMissing)) } else { Ok(None) };
    };
    // At the authorization step a bad challenge is a malformed request (RFC 7636 §4.4.1), not a grant.
    if method != Some("S256") {
        return Err(Error::new(ErrorCode::CodeChallengeInvalid)
            .with_oauth_error("invalid_request")
            .with_message("Only code_challenge_method=S256 is supported."));
    }
    if challenge.len() != 43 || !challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(Error::new(ErrorCode::CodeChallengeInvalid)
            .with_oauth_error("invalid_request")
            .with_message("The code challenge must be the base64url SHA-256 of the verifier (43 characters)."));
    }
    Ok(Some(challenge))
}

/// The S256 code challenge of a verifier (RFC 7636 §4.2): base64url of its SHA-256, unpadded.
#[must_use]
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()))
}

/// Checks the verifier at the token step against the stored challenge.
///
/// A verifier sent for a flow that had no challenge is refused too (PKCE downgrade, RFC 9700 §4.8).
///
/// # Errors
/// `codeChallengeInvalid` (400 at the token endpoint).
pub fn check_verifier(stored_challenge: Option<&str>, verifier: Option<&str>, face: Face) -> Result<(), Error> {
    let invalid = |why: &str| Error::new(ErrorCode::CodeChallengeInvalid).with_status(400).with_message(why.to_owned());
    match (stored_challenge, verifier) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(invalid("A code verifier was sent for a login that had no code challenge.")),
        (Some(_), None) => Err(invalid("The code verifier is missing.")),
        (Some(challenge), Some(verifier)) => {
            let min = match face {
                Face::Compat => 36,
                Face::Strict => 43,
            };
            let unreserved = verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            if !(min..=128).contains(&verifier.len()) || !unreserved {
                return Err(invalid(&format!("The code verifier must be {min}–128 unreserved characters.")));
            }
            let computed = s256_challenge(verifier);
            verify_slices_are_equal(computed.as_bytes(), challenge.as_bytes())
                .map_err(|_| invalid("The code verifier does not match the code challenge."))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge_of(verifier: &str) -> String {
        URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()))
    }

    #[test]
    fn rfc_7636_appendix_b_example() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(challenge_of(verifier), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert!(
            check_verifier(Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"), Some(verifier), Face::Strict).is_ok()
        );
    }

    #[test]
    fn compat_accepts_the_npm_uuid_verifier_and_strict_does_not() {
        let uuid = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
        let challenge = challenge_of(uuid);
        assert!(check_verifier(Some(&challenge), Some(uuid), Face::Compat).is_ok());
        let err = check_verifier(Some(&challenge), Some(uuid), Face::Strict).expect_err("36 chars are too short");
        assert_eq!((err.code(), err.status()), (ErrorCode::CodeChallengeInvalid, 400));
    }

    #[test]
    fn mismatch_missing_and_downgrade_are_refused() {
        let challenge = challenge_of(&"a".repeat(43));
        let code = |c: Option<&str>, v: Option<&str>| check_verifier(c, v, Face::Strict).map_err(|e| e.code());
        assert_eq!(code(Some(&challenge), Some(&"b".repeat(43))), Err(ErrorCode::CodeChallengeInvalid));
        assert_eq!(code(Some(&challenge), None), Err(ErrorCode::CodeChallengeInvalid));
        assert_eq!(code(None, Some(&"a".repeat(43))), Err(ErrorCode::CodeChallengeInvalid), "PKCE downgrade");
        assert_eq!(code(Some(&challenge), Some(&format!("{}!", "a".repeat(42)))), Err(ErrorCode::CodeChallengeInvalid));
        assert_eq!(code(None, None), Ok(()));
    }

    #[test]
    fn challenge_method_must_be_s256() {
        let c = challenge_of("x");
        assert_eq!(check_challenge(Some(&c), Some("S256"), true).map(|c| c.is_some()), Ok(true));
        for method in [None, Some("plain"), Some("s256")] {
            assert_eq!(
                check_challenge(Some(&c), method, true).map_err(|e| e.code()),
                Err(ErrorCode::CodeChallengeInvalid)
            );
        }
        assert_eq!(check_challenge(None, None, true).map_err(|e| e.code()), Err(ErrorCode::CodeChallengeMissing));
        assert_eq!(check_challenge(None, None, false).map(|c| c.is_none()), Ok(true));
        assert_eq!(
            check_challenge(Some("short"), Some("S256"), true).map_err(|e| e.code()),
            Err(ErrorCode::CodeChallengeInvalid)
        );
    }

    #[test]
    fn state_rules() {
        assert_eq!(check_state(Some("abc-123")), Ok("abc-123"));
        assert_eq!(check_state(None).map_err(|e| e.code()), Err(ErrorCode::StateMissing));
        assert_eq!(check_state(Some("")).map_err(|e| e.code()), Err(ErrorCode::StateMissing));
        assert_eq!(check_state(Some(&"x".repeat(1025))).map_err(|e| e.code()), Err(ErrorCode::StateInvalid));
        assert_eq!(check_state(Some("a\u{7}b")).map_err(|e| e.code()), Err(ErrorCode::StateInvalid));
    }
}
