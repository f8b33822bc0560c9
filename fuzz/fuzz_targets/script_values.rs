//! Values scripts hand back: whatever a connector script leaves in its globals (any JavaScript value:
//! cycles, getters that throw, huge strings, symbols) is read back into JSON, or the run fails with a
//! script error, never a panic.
#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use portcullis_connect::egress::EgressPolicy;
use portcullis_connect::script::{self, Event, Host, Limits};
use serde_json::Map;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime")
});

static CLIENT: LazyLock<reqwest::Client> =
    LazyLock::new(|| Arc::new(EgressPolicy::default()).client(Duration::from_secs(1)).expect("client"));

fuzz_target!(|data: &[u8]| {
    let Ok(expression) = std::str::from_utf8(data) else { return };
    let source = format!(
        "function after_action() {{\n method_response = ({expression}\n);\n action_data = method_response;\n return true;\n}}"
    );
    let host = Host::new(CLIENT.clone(), RUNTIME.handle().clone());
    let limits = Limits { timeout: Duration::from_millis(200), memory_bytes: 8 * 1024 * 1024 };
    let mut globals = Map::new();
    globals.insert("method_response".to_owned(), serde_json::json!({"items": [1, 2]}));
    let _ = script::run(Event::AfterAction, &[&source], globals, limits, &host);
});
