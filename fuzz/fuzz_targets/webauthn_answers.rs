//! WebAuthn answers: any registration or login answer (the JSON a browser posts) is refused with a catalog
//! error or accepted, never a panic, against real ceremony state.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use portcullis_core::passkey::RelyingParty;

static RP: LazyLock<RelyingParty> = LazyLock::new(|| RelyingParty {
    id: "login.example.com".to_owned(),
    origin: "https://login.example.com".to_owned(),
});
static REGISTRATION_STATE: LazyLock<Vec<u8>> = LazyLock::new(|| {
    RP.start_registration("6f1c1c5e-3b1a-4c55-9e43-3b9f4c1d2a10", "user@example.com", &[]).expect("registration").state
});

fuzz_target!(|data: &[u8]| {
    let Ok(answer) = std::str::from_utf8(data) else { return };
    let _ = RelyingParty::registration_challenge(answer);
    let _ = RP.finish_registration(&REGISTRATION_STATE, answer);
    let _ = RelyingParty::read_assertion(answer);
});
