//! Access tokens already verified, so a repeated token costs a lookup instead of a signature check.
//!
//! The key is the whole token, byte for byte: a token is served from the cache only if exactly that
//! string passed verification before, so nothing unverified is ever trusted. Expiry is checked on every
//! hit (the revocation deny-list and the route's claim validators run after, on every request, as for a
//! fresh verification). An entry remembers the JWKS generation it was verified under; when a key leaves
//! the JWKS (rotation out, or a key withdrawn), the generation moves and every entry is verified again.
//! The cache is bounded by bytes (see [`VerifiedTokens::weight_of`]), not by entries, so a flood of large
//! tokens cannot grow it past its budget.

use std::sync::Arc;

use portcullis_core::clock::Timestamp;
use portcullis_core::session::{
    AccessTokenClaims, AccessTokenError, Audience, TryRefreshReason, VerificationKeys, verify_access_token,
};
use quick_cache::Weighter;
use quick_cache::sync::Cache;

/// The default budget: 16 MiB by [`VerifiedTokens::weight_of`].
pub const DEFAULT_VERIFIED_TOKEN_CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// What a cached entry counts besides its token and claims: the key's and value's headers, the `Arc`
/// and the cache's own slot.
const ENTRY_OVERHEAD_BYTES: u64 = 256;

#[derive(Debug, Clone)]
struct Verified {
    claims: Arc<AccessTokenClaims>,
    key_generation: u64,
}

#[derive(Debug, Clone, Copy)]
struct ByBytes;

impl Weighter<Box<str>, Verified> for ByBytes {
    fn weight(&self, token: &Box<str>, _: &Verified) -> u64 {
        VerifiedTokens::weight_of(token)
    }
}

/// Where the keys come from, with a generation that moves whenever a key may have left.
pub trait KeyGeneration: VerificationKeys {
    /// Moves on every change that removes a key; unchanged while the set only stays or grows.
    fn key_generation(&self) -> u64;
}

/// The bounded cache of verified access tokens.
#[derive(Debug)]
pub struct VerifiedTokens {
    cache: Option<Cache<Box<str>, Verified, ByBytes>>,
    budget: u64,
}

impl VerifiedTokens {
    /// A cache of at most `budget_bytes` by [`Self::weight_of`]; 0 turns caching off.
    #[must_use]
    pub fn new(budget_bytes: u64) -> Self {
        let cache = (budget_bytes > 0).then(|| {
            // A typical token weighs about 1.5 KiB: size the table for that, the weigher enforces the budget.
            let estimated = usize::try_from(budget_bytes / 1536).unwrap_or(usize::MAX).max(16);
            Cache::with_weighter(estimated, budget_bytes, ByBytes)
        });
        Self { cache, budget: budget_bytes }
    }

    /// How much one token counts against the budget: the token, its decoded claims (never larger than the
    /// token's text) and a fixed overhead.
    #[must_use]
    pub fn weight_of(token: &str) -> u64 {
        u64::try_from(token.len()).unwrap_or(u64::MAX).saturating_mul(2).saturating_add(ENTRY_OVERHEAD_BYTES)
    }

    /// The budget in bytes.
    #[must_use]
    pub const fn budget(&self) -> u64 {
        self.budget
    }

    /// What the cached entries weigh now (never above [`Self::budget`]).
    #[must_use]
    pub fn weight(&self) -> u64 {
        self.cache.as_ref().map_or(0, Cache::weight)
    }

    /// How many tokens are cached.
    #[must_use]
    pub fn len(&self) -> usize {
        self.cache.as_ref().map_or(0, Cache::len)
    }

    /// Whether nothing is cached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`verify_access_token`], answered from the cache when exactly this token was verified under the
    /// current keys; expiry is checked either way.
    ///
    /// # Errors
    /// As [`verify_access_token`].
    pub fn verify(
        &self,
        token: &str,
        keys: &dyn KeyGeneration,
        now: Timestamp,
        issuer: Option<&str>,
        audience: Audience<'_>,
    ) -> Result<Arc<AccessTokenClaims>, AccessTokenError> {
        let generation = keys.key_generation();
        if let Some(cache) = &self.cache
            && let Some(hit) = cache.get(token)
            && hit.key_generation == generation
        {
            if hit.claims.exp <= now.unix_seconds() {
                cache.remove(token);
                return Err(AccessTokenError::TryRefresh(TryRefreshReason::Expired));
            }
            return Ok(hit.claims);
        }
        // The generation was read before verifying: a key change meanwhile leaves this entry stale, never
        // a stale key's token looking fresh.
        let claims = Arc::new(verify_access_token(token, keys, now, issuer, audience)?);
        if let Some(cache) = &self.cache {
            cache.insert(token.into(), Verified { claims: Arc::clone(&claims), key_generation: generation });
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use portcullis_core::keys::{SigningAlgorithm, SigningKey};
    use serde_json::json;

    use super::*;
    use crate::JwksCache;

    const NOW: i64 = 1_800_000_000;

    fn key(kid: &str) -> SigningKey {
        SigningKey::generate(SigningAlgorithm::EdDSA, kid).expect("key").0
    }

    fn token(key: &SigningKey, handle: &str, exp: i64, padding: usize) -> String {
        token_for(key, "org-a", handle, exp, padding)
    }

    fn token_for(key: &SigningKey, audience: &str, handle: &str, exp: i64, padding: usize) -> String {
        let claims = json!({
            "sub": "u1", "exp": exp, "iat": NOW - 10, "sessionHandle": handle, "refreshTokenHash1": "h",
            "parentRefreshTokenHash1": null, "antiCsrfToken": null, "tId": "public", "rsub": "u1",
            "aud": audience, "pad": "x".repeat(padding),
        });
        key.sign_jwt(&claims).expect("sign")
    }

    fn jwks(keys: &[&SigningKey]) -> JwksCache {
        let cache = JwksCache::new();
        cache.load(&json!({ "keys": keys.iter().map(|k| k.public_jwk().clone()).collect::<Vec<_>>() }));
        cache
    }

    fn verify(tokens: &VerifiedTokens, token: &str, keys: &JwksCache, now: i64) -> Result<String, AccessTokenError> {
        let at = Timestamp::from_unix_millis(now * 1000);
        tokens.verify(token, keys, at, None, Audience::Organization("org-a")).map(|c| c.session_handle.clone())
    }

    #[test]
    fn a_cached_token_is_still_checked_for_expiry_and_only_its_exact_bytes_hit() {
        let k1 = key("k1");
        let keys = jwks(&[&k1]);
        let tokens = VerifiedTokens::new(DEFAULT_VERIFIED_TOKEN_CACHE_BYTES);
        let good = token(&k1, "s1", NOW + 60, 0);
        assert_eq!(verify(&tokens, &good, &keys, NOW).expect("verified"), "s1");
        assert_eq!(tokens.len(), 1);
        assert_eq!(verify(&tokens, &good, &keys, NOW + 1).expect("from the cache"), "s1");
        // A token that differs in one signature byte is not the cached one: it is verified, and refused.
        let mut forged = good.clone().into_bytes();
        let last = forged.len() - 2;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).expect("ascii");
        assert!(matches!(
            verify(&tokens, &forged, &keys, NOW),
            Err(AccessTokenError::TryRefresh(TryRefreshReason::BadSignature))
        ));
        // Expiry is checked on a hit, and an expired entry leaves the cache.
        assert!(matches!(
            verify(&tokens, &good, &keys, NOW + 60),
            Err(AccessTokenError::TryRefresh(TryRefreshReason::Expired))
        ));
        assert_eq!(tokens.len(), 0);
        // Another organization's token, validly signed by the same key, is refused every time and never cached.
        let other = token_for(&k1, "org-b", "s9", NOW + 60, 0);
        for _ in 0..2 {
            assert!(matches!(verify(&tokens, &other, &keys, NOW), Err(AccessTokenError::OtherOrganization)));
        }
        assert!(tokens.is_empty());
    }

    #[test]
    fn a_key_leaving_the_jwks_revalidates_every_token_it_signed() {
        let (k1, k2) = (key("k1"), key("k2"));
        let keys = jwks(&[&k1]);
        let tokens = VerifiedTokens::new(DEFAULT_VERIFIED_TOKEN_CACHE_BYTES);
        let old = token(&k1, "s1", NOW + 600, 0);
        verify(&tokens, &old, &keys, NOW).expect("verified");
        // A key added (rotation in) keeps cached tokens.
        let before = keys.key_generation();
        keys.load(&json!({ "keys": [k1.public_jwk(), k2.public_jwk()] }));
        assert_eq!(keys.key_generation(), before);
        verify(&tokens, &old, &keys, NOW).expect("still valid");
        // The key withdrawn: the cached token is verified again, and refused.
        keys.load(&json!({ "keys": [k2.public_jwk()] }));
        assert!(matches!(
            verify(&tokens, &old, &keys, NOW),
            Err(AccessTokenError::TryRefresh(TryRefreshReason::UnknownKey))
        ));
        let new = token(&k2, "s2", NOW + 600, 0);
        assert_eq!(verify(&tokens, &new, &keys, NOW).expect("the new key's"), "s2");
    }

    #[test]
    fn memory_stays_within_the_budget_however_many_tokens_arrive() {
        let k1 = key("k1");
        let keys = jwks(&[&k1]);
        let budget = 256 * 1024;
        let tokens = VerifiedTokens::new(budget);
        let mut most = 0;
        for i in 0..2_000 {
            // Large tokens (about 2.5 KiB) so the budget, not the entry count, is what binds.
            let t = token(&k1, &format!("s{i}"), NOW + 600, 1_800);
            verify(&tokens, &t, &keys, NOW).expect("verified");
            assert!(tokens.weight() <= budget, "{} > {budget} after {i} tokens", tokens.weight());
            most = most.max(tokens.len());
        }
        let per_token = VerifiedTokens::weight_of(&token(&k1, "s0", NOW + 600, 1_800));
        assert!(most as u64 <= budget / per_token, "{most} entries of {per_token} bytes in {budget}");
        assert!(most > 10, "the cache holds tokens: {most}");
        let off = VerifiedTokens::new(0);
        verify(&off, &token(&k1, "s", NOW + 600, 0), &keys, NOW).expect("verified without a cache");
        assert!(off.is_empty());
    }
}
