//! The configuration loader: any TOML file is loaded or refused with a message naming the key, never a
//! panic.
#![no_main]

use std::io::Write as _;

use figment::providers::Env;
use libfuzzer_sys::fuzz_target;
use portcullis_server::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(mut file) = tempfile::NamedTempFile::new() else { return };
    if file.write_all(data).is_err() {
        return;
    }
    // No environment layer: the input alone decides.
    let _ = Config::load_from(Some(file.path()), Env::prefixed("PORTCULLIS_FUZZ_NONE_"));
});
