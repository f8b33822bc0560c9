//! The session transport: any set of request headers (cookies, bearer, `st-refresh-token`, `rid`) is read
//! without a panic.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use portcullis_session_wire::RequestTokens;

const NAMES: [&str; 6] = ["cookie", "authorization", "st-refresh-token", "rid", "st-auth-mode", "anti-csrf"];

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    // Lines `<name index><value>`: several cookie headers and odd values are what browsers send.
    for line in data.split(|b| *b == b'\n') {
        let Some((first, value)) = line.split_first() else { continue };
        let name = HeaderName::from_static(NAMES[usize::from(*first) % NAMES.len()]);
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(name, value);
        }
    }
    let tokens = RequestTokens::from_headers(&headers);
    let _ = tokens.access_token();
    let _ = tokens.refresh_candidates();
    let _ = tokens.has_duplicate_cookies();
});
