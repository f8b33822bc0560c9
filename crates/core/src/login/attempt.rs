//! Email login attempts (reference §10): a code of 6 digits or more (at least 20 bits, NIST SP 800-63B)
//! valid for 15 minutes, stored only as an HMAC, voided after 5 wrong entries; a cap on an account's
//! consecutive wrong codes across attempts; and a growing delay between attempts for the same email from
//! the same network.

use std::time::Duration;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};

use crate::clock::Timestamp;
use crate::session::sha256_hex;
use crate::{Error, ErrorCode};

/// How long an attempt is valid.
pub const ATTEMPT_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Wrong entries before an attempt is void.
pub const MAX_WRONG_ENTRIES: u32 = 5;
/// Delay before the next attempt for the same email, by how many attempts came in the last hour.
pub const EMAIL_DELAYS: [Duration; 6] = [
    Duration::ZERO,
    Duration::from_secs(30),
    Duration::from_secs(60),
    Duration::from_secs(120),
    Duration::from_secs(300),
    Duration::from_secs(600),
];

/// Digits of a login code by default: 6 digits are about 20 bits, NIST SP 800-63B's minimum.
pub const DEFAULT_CODE_DIGITS: u8 = 6;
/// The fewest digits a login code may have.
pub const MIN_CODE_DIGITS: u8 = 6;
/// The most digits a login code may have.
pub const MAX_CODE_DIGITS: u8 = 10;
/// Consecutive wrong codes an account may have (across attempts, flows and networks) before its email
/// step needs a solved captcha at the highest level and each attempt allows one wrong code.
pub const DEFAULT_MAX_CODE_FAILURES: u32 = 20;
/// The highest cap allowed (NIST SP 800-63B: at most 100 consecutive failed attempts).
pub const MAX_CODE_FAILURES_LIMIT: u32 = 100;

/// A fresh code of `digits` digits (clamped to 6–10), uniform over all of them.
///
/// # Errors
/// If the system random source fails.
pub fn new_code(digits: u8) -> Result<String, Error> {
    let digits = digits.clamp(MIN_CODE_DIGITS, MAX_CODE_DIGITS);
    let space = 10u64.pow(u32::from(digits));
    let random = SystemRandom::new();
    loop {
        let mut bytes = [0u8; 8];
        random
            .fill(&mut bytes)
            .map_err(|_| Error::new(ErrorCode::GenericError).with_internal("random source failed"))?;
        let value = u64::from_be_bytes(bytes);
        // Reject the top partial range so every code is equally likely.
        if value < u64::MAX - (u64::MAX % space) {
            return Ok(format!("{:0width$}", value % space, width = usize::from(digits)));
        }
    }
}

/// A challenge: the number the starting browser shows, and the three numbers the mail offers (the right
/// one among two others, in random order), all distinct two-digit numbers.
///
/// # Errors
/// If the system random source fails.
pub fn challenge_numbers() -> Result<(u8, [u8; 3]), Error> {
    let random = SystemRandom::new();
    let draw = |bound: u8| -> Result<u8, Error> {
        let mut byte = [0u8; 1];
        loop {
            random
                .fill(&mut byte)
                .map_err(|_| Error::new(ErrorCode::GenericError).with_internal("random source failed"))?;
            // Reject the top partial range so every value is equally likely.
            if byte[0] < u8::MAX - (u8::MAX % bound) {
                return Ok(byte[0] % bound);
            }
        }
    };
    let mut numbers = [0u8; 3];
    let mut filled = 0;
    while filled < 3 {
        let candidate = 10 + draw(90)?;
        if !numbers[..filled].contains(&candidate) {
            numbers[filled] = candidate;
            filled += 1;
        }
    }
    let right = numbers[usize::from(draw(3)?)];
    Ok((right, numbers))
}

/// The stored form of a code: HMAC keyed from the master key, bound to the attempt.
#[must_use]
pub fn code_digest(key: &[u8; 32], attempt_id: &str, code: &str) -> String {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), format!("{attempt_id}:{code}").as_bytes());
    sha256_hex(tag.as_ref())
}

/// The state of an attempt that decides a code entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptState {
    /// Creation time.
    pub created_at: Timestamp,
    /// Wrong entries so far.
    pub wrong_entries: u32,
    /// Used or undone.
    pub closed: bool,
}

/// What a code entry does to the attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeOutcome {
    /// Right code: the attempt closes and the login proceeds.
    Accepted,
    /// Wrong code: one more wrong entry is recorded.
    Rejected {
        /// Entries left before the attempt is void.
        remaining: u32,
    },
}

/// Decides a code entry.
///
/// # Errors
/// `loginAttemptExpired` after 15 minutes; `loginAttemptInvalid` for a closed or void attempt.
pub fn enter_code(
    state: &AttemptState,
    stored_digest: &str,
    presented_digest: &str,
    now: Timestamp,
) -> Result<CodeOutcome, Error> {
    if state.closed || state.wrong_entries >= MAX_WRONG_ENTRIES {
        return Err(Error::new(ErrorCode::LoginAttemptInvalid)
            .with_message("This login attempt can no longer be used. Please request a new code."));
    }
    if state.created_at.plus(ATTEMPT_LIFETIME) <= now {
        return Err(Error::new(ErrorCode::LoginAttemptExpired));
    }
    if verify_slices_are_equal(stored_digest.as_bytes(), presented_digest.as_bytes()).is_ok() {
        Ok(CodeOutcome::Accepted)
    } else {
        Ok(CodeOutcome::Rejected { remaining: MAX_WRONG_ENTRIES.saturating_sub(state.wrong_entries + 1) })
    }
}

/// When the next attempt for an email from one network may start, given the attempts it had from that
/// network in the last hour.
#[must_use]
pub fn next_allowed(recent_attempts: usize, last_attempt: Option<Timestamp>) -> Option<Timestamp> {
    let delay = EMAIL_DELAYS[recent_attempts.min(EMAIL_DELAYS.len() - 1)];
    last_attempt.map(|at| at.plus(delay))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_unix_millis(1_700_000_000_000).plus(Duration::from_secs(secs))
    }

    #[test]
    fn codes_have_their_digits_and_vary() {
        for digits in [6, 8, 10] {
            let codes: Vec<String> = (0..50).map(|_| new_code(digits).expect("code")).collect();
            assert!(codes.iter().all(|c| c.len() == usize::from(digits) && c.bytes().all(|b| b.is_ascii_digit())));
            assert!(codes.iter().collect::<std::collections::HashSet<_>>().len() > 40);
        }
        assert_eq!(new_code(5).expect("code").len(), 6, "never fewer than 6");
        assert_eq!(new_code(12).expect("code").len(), 10);
        assert!((0..200).any(|_| new_code(6).expect("code").starts_with('0')), "leading zeros are kept");
    }

    #[test]
    fn digests_bind_the_attempt() {
        let key = [3u8; 32];
        assert_eq!(code_digest(&key, "a1", "12345"), code_digest(&key, "a1", "12345"));
        assert_ne!(code_digest(&key, "a1", "12345"), code_digest(&key, "a2", "12345"));
        assert_ne!(code_digest(&key, "a1", "12345"), code_digest(&[4u8; 32], "a1", "12345"));
    }

    #[test]
    fn entries_expire_count_down_and_void() {
        let key = [1u8; 32];
        let stored = code_digest(&key, "a", "11111");
        let right = code_digest(&key, "a", "11111");
        let wrong = code_digest(&key, "a", "22222");
        let mut state = AttemptState { created_at: at(0), wrong_entries: 0, closed: false };
        assert_eq!(enter_code(&state, &stored, &right, at(10)), Ok(CodeOutcome::Accepted));
        assert_eq!(enter_code(&state, &stored, &wrong, at(10)), Ok(CodeOutcome::Rejected { remaining: 4 }));
        assert_eq!(
            enter_code(&state, &stored, &right, at(900)).map_err(|e| e.code()),
            Err(ErrorCode::LoginAttemptExpired)
        );
        state.wrong_entries = MAX_WRONG_ENTRIES;
        assert_eq!(
            enter_code(&state, &stored, &right, at(10)).map_err(|e| e.code()),
            Err(ErrorCode::LoginAttemptInvalid)
        );
        state.wrong_entries = 0;
        state.closed = true;
        assert_eq!(
            enter_code(&state, &stored, &right, at(10)).map_err(|e| e.code()),
            Err(ErrorCode::LoginAttemptInvalid)
        );
    }

    #[test]
    fn challenges_offer_the_right_number_among_distinct_others() {
        let mut positions = [0usize; 3];
        for _ in 0..300 {
            let (right, shown) = challenge_numbers().expect("numbers");
            assert!(shown.iter().all(|n| (10..=99).contains(n)));
            assert!(shown[0] != shown[1] && shown[1] != shown[2] && shown[0] != shown[2]);
            let at = shown.iter().position(|n| *n == right).expect("the right number is offered");
            positions[at] += 1;
        }
        assert!(positions.iter().all(|count| *count > 50), "the right number moves: {positions:?}");
    }

    #[test]
    fn per_email_delay_grows_and_caps() {
        assert_eq!(next_allowed(0, Some(at(0))), Some(at(0)));
        assert_eq!(next_allowed(1, Some(at(0))), Some(at(30)));
        assert_eq!(next_allowed(4, Some(at(0))), Some(at(300)));
        assert_eq!(next_allowed(40, Some(at(0))), Some(at(600)));
        assert_eq!(next_allowed(3, None), None);
    }
}
