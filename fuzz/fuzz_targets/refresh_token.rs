//! Refresh tokens: any string is authenticated or refused without a panic, and a minted token always
//! authenticates to what it was minted with.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_core::session::RefreshTokenCodec;

fuzz_target!(|data: &[u8]| {
    let codec = RefreshTokenCodec::new(&[7; 32]);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = codec.authenticate(text);
    }
    let handle = "6b1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6";
    let parent = std::str::from_utf8(data).ok().filter(|p| p.len() == 64 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if let Ok(minted) = codec.mint(handle, parent) {
        let presented = codec.authenticate(&minted.token).expect("a minted token authenticates");
        assert_eq!(presented.handle, handle);
        assert_eq!(presented.hash2, minted.hash2);
    }
});
