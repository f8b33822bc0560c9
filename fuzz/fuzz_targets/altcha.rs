//! ALTCHA answers: whatever the login page posts as its captcha answer — raw text, or a real solved answer
//! with any part replaced (a JSON merge patch over it, so the signature, cost, expiry and solution checks
//! behind the parser are reached) — is accepted once or refused with `captchaInvalid`, never a panic or
//! a hang (an answer naming a huge cost must not make the server do the work).
#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use altcha::{Challenge, SolveChallengeOptions};
use libfuzzer_sys::fuzz_target;
use portcullis_core::ErrorCode;
use portcullis_core::abuse::captcha::CaptchaService;
use portcullis_core::clock::{Clock, ManualClock, SystemClock};
use portcullis_core::keys::MasterKey;
use portcullis_core::store::Store;
use portcullis_store_sqlite::{SqliteOptions, SqliteStore};
use serde_json::Value;

const FLOW: &str = "flow-1";
const LEVEL: u8 = 1;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    service: CaptchaService,
    answer: Value,
    _dir: tempfile::TempDir,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let dir = tempfile::tempdir().expect("dir");
    let options = SqliteOptions { path: dir.path().join("captcha.db"), readers: 1, synchronous: Default::default() };
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&options).expect("store"));
    runtime.block_on(store.migrate()).expect("migrate");
    // A clock a year ahead and standing still: the challenge never expires during a long run, for this
    // service nor for the ALTCHA library's own expiry check (which reads the system time).
    let clock = ManualClock::new(SystemClock.now().plus(Duration::from_secs(365 * 24 * 3600)));
    let (master, _) = MasterKey::generate().expect("master key");
    let service = CaptchaService::new(store, Arc::new(clock), &master);
    let challenge = service.challenge(FLOW, LEVEL).expect("challenge").expect("level 1 has a challenge");
    let challenge: Challenge = serde_json::from_str(&challenge).expect("challenge json");
    let solution = altcha::solve_challenge(SolveChallengeOptions::new(&challenge)).expect("solve").expect("solved");
    let answer = serde_json::json!({ "challenge": challenge, "solution": solution });
    Fixture { runtime, service, answer, _dir: dir }
});

/// RFC 7386 JSON merge patch: `null` removes, objects merge, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

fn check(fixture: &Fixture, presented: &str) {
    let outcome = fixture.runtime.block_on(fixture.service.check(FLOW, LEVEL, Some(presented)));
    if let Err(error) = outcome {
        assert_eq!(error.code(), ErrorCode::CaptchaInvalid, "{presented}: {error:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let fixture = &*FIXTURE;
    let Ok(text) = std::str::from_utf8(data) else { return };
    check(fixture, text);
    if let Ok(patch @ Value::Object(_)) = serde_json::from_str::<Value>(text) {
        let mut answer = fixture.answer.clone();
        merge(&mut answer, &patch);
        check(fixture, &answer.to_string());
    }
});
