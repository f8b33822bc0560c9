//! In-process access-token verification against the raw signature verification it is built on.

use std::collections::HashMap;
use std::time::Duration;

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_core::clock::{Clock, SystemClock};
use portcullis_core::keys::{SigningAlgorithm, SigningKey};
use portcullis_core::session::{Audience, VerificationKey, VerificationKeys, verify_access_token};
use serde_json::json;

use crate::report::{Report, Row, interleaved_rates};

struct Keys(HashMap<String, VerificationKey>);

impl VerificationKeys for Keys {
    fn verification_key(&self, kid: &str) -> Option<VerificationKey> {
        self.0.get(kid).cloned()
    }
}

pub(crate) fn run(report: &mut Report, window: Duration, runs: usize) {
    let (key, _) = SigningKey::generate(SigningAlgorithm::EdDSA, "d-1").expect("key");
    let now = SystemClock.now();
    // A realistic session token: the SuperTokens claims plus a role claim (about 450 bytes).
    let claims = json!({
        "sub": "7a1e2c3d-user", "exp": now.unix_seconds() + 3600, "iat": now.unix_seconds(),
        "sessionHandle": "0190f4c2-7a1e-4c3a-9d2b-5e6f7a8b9c0d",
        "refreshTokenHash1": "9b18a2a5b59e1bcbe27dbd9b88691ac73e0e8da25d620c565779a5d35aee2fb0",
        "parentRefreshTokenHash1": null, "antiCsrfToken": null, "tId": "public", "rsub": "7a1e2c3d-user",
        "iss": "https://auth.example.com/auth", "aud": "org-1", "st-role": { "v": ["admin", "user"], "t": 1_700_000_000_000_i64 },
    });
    let token = key.sign_jwt(&claims).expect("sign");
    let keys = Keys(HashMap::from([("d-1".to_owned(), key.verification_key().clone())]));
    let (signing_input, signature) = token.rsplit_once('.').expect("jws");
    let signature = URL_SAFE_NO_PAD.decode(signature).expect("signature");
    let public = URL_SAFE_NO_PAD.decode(key.public_jwk()["x"].as_str().expect("x")).expect("public key");
    let raw_key = UnparsedPublicKey::new(&ED25519, public);
    assert!(raw_key.verify(signing_input.as_bytes(), &signature).is_ok());
    assert!(
        verify_access_token(&token, &keys, now, Some("https://auth.example.com/auth"), Audience::Organization("org-1"))
            .is_ok()
    );

    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (o, r) = interleaved_rates(
            window,
            || {
                let verified = verify_access_token(
                    &token,
                    &keys,
                    now,
                    Some("https://auth.example.com/auth"),
                    Audience::Organization("org-1"),
                );
                std::hint::black_box(verified.is_ok());
            },
            || {
                std::hint::black_box(raw_key.verify(signing_input.as_bytes(), &signature).is_ok());
            },
        );
        ours.push(o);
        raw.push(r);
    }
    report.push(Row {
        id: "verify",
        name: "access-token verification, 1 thread",
        ours: "verify_access_token (EdDSA, claims, exp, iss, aud)",
        ours_runs: ours,
        baseline: "aws-lc-rs Ed25519 verify",
        baseline_runs: raw,
        goal: Some(0.8),
    });
}
