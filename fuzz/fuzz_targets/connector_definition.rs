//! Connector definitions: any YAML text is loaded or refused with located errors, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use portcullis_connect::Connector;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Connector::parse(Path::new("fuzz.yaml"), text);
    }
});
