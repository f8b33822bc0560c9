//! Refresh tokens: opaque to clients, authenticated by the server, stored only as hashes.
//!
//! Format: `v1.` + base64url(handle (16 B) ‖ nonce (32 B) ‖ parent H1 (32 B)) + `.` + base64url(HMAC-SHA256
//! tag). The tag is checked before anything else, so a forged token (session handles are visible to the
//! frontend) can never reach the rotation rules and revoke a session.
//!
//! `H1(t) = hex(sha256(t))` goes into the access token as `refreshTokenHash1`; `H2(t) = hex(sha256(H1(t)))`
//! is the only form stored.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::keys::KeyError;

const PREFIX: &str = "v1.";
const HANDLE_LEN: usize = 16;
const NONCE_LEN: usize = 32;
const HASH_LEN: usize = 32;
const BODY_LEN: usize = HANDLE_LEN + NONCE_LEN + HASH_LEN;
/// Longest refresh token accepted for parsing; anything longer is rejected before decoding.
pub const MAX_REFRESH_TOKEN_LEN: usize = 256;

/// Lowercase hex of SHA-256.
#[must_use]
pub fn sha256_hex(input: &[u8]) -> String {
    // The `hex` crate is table-driven: `format!` per byte was a visible part of a refresh's CPU time.
    hex::encode(digest(&SHA256, input))
}

/// `H1`: what the access token carries.
#[must_use]
pub fn hash1(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// `H2`: what the store keeps.
#[must_use]
pub fn hash2_of_hash1(h1: &str) -> String {
    sha256_hex(h1.as_bytes())
}

/// A freshly minted refresh token.
#[derive(Debug, Clone)]
pub struct MintedRefreshToken {
    /// The token for the client.
    pub token: String,
    /// Its H1.
    pub hash1: String,
    /// Its H2.
    pub hash2: String,
}

/// A presented token whose tag checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedRefreshToken {
    /// The session handle it names.
    pub handle: String,
    /// H1 of the token it was rotated from (`None` for a session's first token).
    pub parent_hash1: Option<String>,
    /// Its H1.
    pub hash1: String,
    /// Its H2.
    pub hash2: String,
}

/// Mints and authenticates refresh tokens with a key derived from the master key.
pub struct RefreshTokenCodec {
    key: hmac::Key,
}

impl std::fmt::Debug for RefreshTokenCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshTokenCodec(<redacted>)")
    }
}

impl RefreshTokenCodec {
    /// A codec keyed with 32 secret bytes.
    #[must_use]
    pub fn new(key: &[u8; 32]) -> Self {
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, key) }
    }

    /// Mints a token for `handle` (a UUID), remembering its parent's H1.
    ///
    /// # Errors
    /// If the system random source fails, or the handle is not a UUID.
    pub fn mint(&self, handle: &str, parent_hash1: Option<&str>) -> Result<MintedRefreshToken, KeyError> {
        let handle = uuid::Uuid::parse_str(handle).map_err(|_| KeyError::Generate)?;
        let mut body = [0u8; BODY_LEN];
        body[..HANDLE_LEN].copy_from_slice(handle.as_bytes());
        SystemRandom::new().fill(&mut body[HANDLE_LEN..HANDLE_LEN + NONCE_LEN]).map_err(|_| KeyError::Random)?;
        if let Some(parent) = parent_hash1 {
            let parent = decode_hex(parent).ok_or(KeyError::Generate)?;
            body[HANDLE_LEN + NONCE_LEN..].copy_from_slice(&parent);
        }
        let tag = hmac::sign(&self.key, &body);
        let mut token = String::with_capacity(PREFIX.len() + 160);
        token.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(body, &mut token);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut token);
        let hash1 = hash1(&token);
        let hash2 = hash2_of_hash1(&hash1);
        Ok(MintedRefreshToken { token, hash1, hash2 })
    }

    /// Checks the tag and reads the token. `None` for anything not minted by this codec.
    #[must_use]
    pub fn authenticate(&self, token: &str) -> Option<PresentedRefreshToken> {
        if token.len() > MAX_REFRESH_TOKEN_LEN {
            return None;
        }
        let (body, tag) = token.strip_prefix(PREFIX)?.split_once('.')?;
        let body = URL_SAFE_NO_PAD.decode(body).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        if body.len() != BODY_LEN {
            return None;
        }
        hmac::verify(&self.key, &body, &tag).ok()?;
        let handle = uuid::Uuid::from_slice(&body[..HANDLE_LEN]).ok()?.to_string();
        let parent = &body[HANDLE_LEN + NONCE_LEN..];
        let parent_hash1 = parent.iter().any(|b| *b != 0).then(|| hex::encode(parent));
        let hash1 = hash1(token);
        let hash2 = hash2_of_hash1(&hash1);
        Some(PresentedRefreshToken { handle, parent_hash1, hash1, hash2 })
    }
}

fn decode_hex(text: &str) -> Option<[u8; HASH_LEN]> {
    if text.len() != HASH_LEN * 2 {
        return None;
    }
    let mut out = [0u8; HASH_LEN];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HANDLE: &str = "0190f4c2-7a1e-7c3a-9d2b-5e6f7a8b9c0d";

    #[test]
    fn minted_tokens_authenticate_and_carry_their_parent() -> Result<(), KeyError> {
        let codec = RefreshTokenCodec::new(&[7; 32]);
        let first = codec.mint(HANDLE, None)?;
        let read = codec.authenticate(&first.token).expect("authentic");
        assert_eq!(read.handle, HANDLE);
        assert_eq!(read.parent_hash1, None);
        assert_eq!((read.hash1.as_str(), read.hash2.as_str()), (first.hash1.as_str(), first.hash2.as_str()));
        let child = codec.mint(HANDLE, Some(&first.hash1))?;
        assert_eq!(codec.authenticate(&child.token).and_then(|t| t.parent_hash1), Some(first.hash1));
        assert_ne!(child.token, first.token);
        assert!(first.token.len() < MAX_REFRESH_TOKEN_LEN);
        Ok(())
    }

    #[test]
    fn forged_altered_and_foreign_tokens_are_rejected() -> Result<(), KeyError> {
        let codec = RefreshTokenCodec::new(&[7; 32]);
        let token = codec.mint(HANDLE, None)?.token;
        let other = RefreshTokenCodec::new(&[8; 32]);
        assert!(other.authenticate(&token).is_none(), "another key's token");
        let mut altered = token.clone().into_bytes();
        altered[10] = if altered[10] == b'A' { b'B' } else { b'A' };
        assert!(codec.authenticate(&String::from_utf8(altered).unwrap_or_default()).is_none());
        for garbage in ["", "v1.", "v1.x.y", "v2.abc.def", &"v1.".repeat(200), "\u{0}\u{1}"] {
            assert!(codec.authenticate(garbage).is_none(), "{garbage:?}");
        }
        Ok(())
    }

    #[test]
    fn hashes_match_the_supertokens_definition() {
        // H1 = hex(sha256(t)), H2 = hex(sha256(H1 as lowercase hex text)).
        let h1 = hash1("abc");
        assert_eq!(h1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(hash2_of_hash1(&h1), sha256_hex(h1.as_bytes()));
    }
}
