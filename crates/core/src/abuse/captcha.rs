//! Captcha without a third party: ALTCHA proof of work (PBKDF2/SHA-256, deterministic mode), solved by a
//! small script on the hosted page. Challenges are signed with a key derived from the master key, bound
//! to the login flow, expire after 10 minutes, and each solution is accepted once (the spent signature is
//! kept in the store until the challenge expires). The work grows with recent login attempts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use altcha::{Challenge, CreateChallengeOptions, Solution, VerifySolutionOptions};
use serde::Deserialize;
use serde_json::json;

use crate::clock::{Clock, Timestamp};
use crate::keys::MasterKey;
use crate::store::Store;
use crate::{Error, ErrorCode};

/// How long a challenge may be solved and used.
pub const CHALLENGE_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// PBKDF2 iterations per derivation; the work is this times the counter the solver must reach.
const ITERATIONS: u32 = 100;

/// The captcha level for a number of recent attempts (by email or by IP, whichever is higher):
/// none at first, then low, medium and high (reference §11).
#[must_use]
pub const fn level_for(recent_attempts: u32) -> u8 {
    match recent_attempts {
        0 => 0,
        1 => 1,
        2 | 3 => 2,
        _ => 3,
    }
}

/// The counter range a level draws from: the expected work is its midpoint times [`ITERATIONS`].
const fn counter_range(level: u8) -> (u32, u32) {
    match level {
        0 | 1 => (50, 100),
        2 => (500, 1_000),
        _ => (3_000, 6_000),
    }
}

/// What the page posts back: the challenge it was given and the solution it found.
#[derive(Debug, Deserialize)]
struct Presented {
    challenge: Challenge,
    solution: Solution,
}

/// Issues and checks captcha challenges.
#[derive(Debug, Clone)]
pub struct CaptchaService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    secret: String,
}

fn invalid(message: &str) -> Error {
    Error::new(ErrorCode::CaptchaInvalid).with_message(message.to_owned())
}

impl CaptchaService {
    /// A service signing with a key derived from `master`.
    #[must_use]
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, master: &MasterKey) -> Self {
        let key = master.derive("captcha challenges");
        let secret = hex::encode(key);
        Self { store, clock, secret }
    }

    /// A challenge of `level` for `flow_id`, as the JSON the page's script solves; `None` at level 0.
    ///
    /// # Errors
    /// `genericError` if the challenge cannot be made.
    pub fn challenge(&self, flow_id: &str, level: u8) -> Result<Option<String>, Error> {
        if level == 0 {
            return Ok(None);
        }
        let (low, high) = counter_range(level);
        let mut draw = [0u8; 4];
        aws_lc_rs::rand::fill(&mut draw)
            .map_err(|_| Error::new(ErrorCode::GenericError).with_internal("the system random source failed"))?;
        let counter = low + u32::from_be_bytes(draw) % (high - low);
        let expires_at = self.clock.now().plus(CHALLENGE_LIFETIME).unix_seconds();
        let data = BTreeMap::from([("flow".to_owned(), json!(flow_id)), ("level".to_owned(), json!(level))]);
        let challenge = altcha::create_challenge(CreateChallengeOptions {
            algorithm: "PBKDF2/SHA-256".to_owned(),
            cost: ITERATIONS,
            counter: Some(counter),
            expires_at: Some(expires_at),
            data: Some(data),
            hmac_signature_secret: Some(self.secret.clone()),
            ..CreateChallengeOptions::default()
        })
        .map_err(|e| Error::new(ErrorCode::GenericError).with_internal(format!("captcha challenge: {e}")))?;
        serde_json::to_string(&challenge).map(Some).map_err(|e| Error::new(ErrorCode::GenericError).with_internal(e))
    }

    /// Checks what the page posted against the `required` level for `flow_id`, and spends it.
    ///
    /// # Errors
    /// `captchaInvalid` when a captcha is required and the solution is missing, malformed, of another flow
    /// or a lower level, expired, wrong, or already used; store failures.
    pub async fn check(&self, flow_id: &str, required: u8, presented: Option<&str>) -> Result<(), Error> {
        if required == 0 {
            return Ok(());
        }
        let presented = presented
            .filter(|p| !p.trim().is_empty())
            .ok_or_else(|| invalid("Please wait until the page has checked your browser, then send the form again."))?;
        let presented: Presented = serde_json::from_str(presented)
            .map_err(|_| invalid("The browser check is not valid. Please try again."))?;
        let data = presented.challenge.parameters.data.as_ref();
        let field = |name: &str| data.and_then(|d| d.get(name)).cloned();
        if field("flow") != Some(json!(flow_id)) {
            return Err(invalid("The browser check belongs to another login. Please try again."));
        }
        let level = field("level").and_then(|l| l.as_u64()).unwrap_or(0);
        if level < u64::from(required) {
            return Err(invalid("A stronger browser check is needed. Please wait for it, then send again."));
        }
        let expires_at = presented.challenge.parameters.expires_at.unwrap_or(0);
        if expires_at <= self.clock.now().unix_seconds() {
            return Err(invalid("The browser check has expired. Please try again."));
        }
        let verdict = altcha::verify_solution(VerifySolutionOptions::new(
            &presented.challenge,
            &presented.solution,
            self.secret.clone(),
        ))
        .map_err(|_| invalid("The browser check is not valid. Please try again."))?;
        if !verdict.verified {
            return Err(invalid("The browser check is not valid. Please try again."));
        }
        let signature = presented.challenge.signature.unwrap_or_default();
        let until = Timestamp::from_unix_millis(expires_at.saturating_mul(1000));
        if !self.store.spend_captcha(&signature, until).await? {
            return Err(invalid("This browser check was already used. Please try again."));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_escalate_with_attempts() {
        assert_eq!([0, 1, 2, 3, 4, 40].map(level_for), [0, 1, 2, 2, 3, 3]);
        assert!(counter_range(3).0 > counter_range(2).1 && counter_range(2).0 > counter_range(1).1);
    }
}
