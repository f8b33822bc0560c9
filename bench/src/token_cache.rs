//! `portcullis-bench token-cache-memory`: the SDK's verified-token cache fed distinct tokens, with the
//! process's RSS and the cache's weight along the way, so a flood of distinct tokens is seen to leave memory
//! flat once the byte budget is reached.

use std::time::Instant;

use portcullis_core::clock::Timestamp;
use portcullis_core::keys::{SigningAlgorithm, SigningKey};
use portcullis_core::session::Audience;
use portcullis_sdk::{DEFAULT_VERIFIED_TOKEN_CACHE_BYTES, JwksCache, VerifiedTokens};
use serde_json::json;

/// Arguments of `token-cache-memory`.
#[derive(Debug, clap::Args)]
pub(crate) struct TokenCacheArgs {
    /// Distinct tokens to verify.
    #[arg(long, default_value_t = 1_000_000)]
    tokens: usize,
    /// Print a row every this many tokens.
    #[arg(long, default_value_t = 100_000)]
    every: usize,
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

pub(crate) fn run(args: &TokenCacheArgs) -> Result<(), String> {
    let (key, _) = SigningKey::generate(SigningAlgorithm::EdDSA, "k1").map_err(|e| e.to_string())?;
    let keys = JwksCache::new();
    keys.load(&json!({ "keys": [key.public_jwk()] }));
    let cache = VerifiedTokens::new(DEFAULT_VERIFIED_TOKEN_CACHE_BYTES);
    let now = Timestamp::from_unix_millis(1_800_000_000_000);
    let started = Instant::now();
    println!("| tokens verified | RSS (MB) | cache entries | cache weight (MB, budget {}) |", cache.budget() >> 20);
    println!("| --- | --- | --- | --- |");
    let row = |n: usize| {
        #[allow(clippy::cast_precision_loss, reason = "a figure for people")]
        let (rss, weight) = (rss_kb() as f64 / 1024.0, cache.weight() as f64 / f64::from(1 << 20));
        println!("| {n} | {rss:.1} | {} | {weight:.1} |", cache.len());
    };
    row(0);
    for i in 1..=args.tokens {
        let claims = json!({
            "sub": format!("user-{i}"), "exp": 1_800_003_600, "iat": 1_800_000_000,
            "sessionHandle": format!("session-{i}"), "refreshTokenHash1": "0".repeat(64),
            "parentRefreshTokenHash1": null, "antiCsrfToken": null, "tId": "public", "rsub": format!("user-{i}"),
            "iss": "http://127.0.0.1:7420/auth", "aud": "bench",
        });
        let token = key.sign_jwt(&claims).map_err(|e| e.to_string())?;
        cache.verify(&token, &keys, now, None, Audience::Organization("bench")).map_err(|e| format!("{e:?}"))?;
        if i % args.every == 0 {
            row(i);
        }
    }
    println!("{} tokens in {:.0} s", args.tokens, started.elapsed().as_secs_f64());
    Ok(())
}
