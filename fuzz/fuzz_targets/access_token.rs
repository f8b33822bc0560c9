//! Access tokens: any string, and any JSON payload signed with a real key (so the claim checks behind
//! the signature are reached), must verify or be refused without a panic.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use portcullis_core::clock::Timestamp;
use portcullis_core::keys::{SigningAlgorithm, SigningKey};
use portcullis_core::session::{Audience, VerificationKey, VerificationKeys, verify_access_token};

struct OneKey(SigningKey);

impl VerificationKeys for OneKey {
    fn verification_key(&self, kid: &str) -> Option<VerificationKey> {
        (kid == self.0.kid()).then(|| self.0.verification_key().clone())
    }
}

static KEY: LazyLock<OneKey> =
    LazyLock::new(|| OneKey(SigningKey::generate(SigningAlgorithm::EdDSA, "d-1").expect("key").0));

fuzz_target!(|data: &[u8]| {
    let now = Timestamp::from_unix_millis(1_765_000_000_000);
    let check = |token: &str| {
        for audience in [Audience::Organization("org-a"), Audience::AnyOrganization] {
            let _ = verify_access_token(token, &*KEY, now, Some("https://issuer.example"), audience);
        }
    };
    if let Ok(text) = std::str::from_utf8(data) {
        check(text);
    }
    if let Ok(payload) = serde_json::from_slice::<serde_json::Value>(data)
        && let Ok(token) = KEY.0.sign_jwt(&payload)
    {
        check(&token);
    }
});
