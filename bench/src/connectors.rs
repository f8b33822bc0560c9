//! Connector calls: through the runtime (account load, credentials opened, hooks, auth) against a direct HTTP
//! call to the same fake API, and the cost of one hook invocation in a fresh script context.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use portcullis_connect::script::{self, Event, Host, Limits};
use portcullis_connect::{AccountInput, CallRequest, Connector, ConnectorRuntime, RuntimeConfig};
use portcullis_core::clock::{Clock, SystemClock};
use portcullis_core::keys::MasterKey;
use portcullis_core::organization::Organization;
use portcullis_core::store::Store;
use portcullis_store_sqlite::{SqliteOptions, SqliteStore, Synchronous};
use serde_json::{Map, Value, json};

use crate::report::{Report, Row, median};

/// The seed's first example (Cyclr "Exceptions" page), verbatim.
const SEED_AFTER_ACTION: &str = r"function after_action() {
    if (method_response != null && method_response.error != null && typeof method_response.error !== 'undefined' && method_response.error === 'invalid_grant') {
        throw new AuthRefreshException();
    }
   
    return true;
}";

/// The same hook using the bundled libraries, which are loaded into a context only when a script names them.
const MOMENT_AFTER_ACTION: &str =
    "function after_action() { method_response.at = moment.utc().add(1, 'days').format('YYYY-MM-DD'); return true; }";
const MOMENT_TZ_AFTER_ACTION: &str = "function after_action() { method_response.at = moment.tz('2026-12-03T12:00:00Z', 'Europe/Berlin').format(); return true; }";
const CRYPTO_JS_AFTER_ACTION: &str =
    "function after_action() { method_response.sig = CryptoJS.HmacSHA256('payload', 'key').toString(); return true; }";

async fn fake_api() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let app = Router::new().route("/data", get(|| async { axum::Json(json!({"items": [1, 2, 3]})) }));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    url
}

fn definition(base: &str, script: &str) -> String {
    let script: String = script.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "name: bench\nbase_url: {base}\nauth:\n  type: api_key\n  header: X-Api-Key\nscript: |\n{script}methods:\n  list:\n    path: /data\n"
    )
}

async fn runtime(base: &str, script: &str, dir: &Path) -> (ConnectorRuntime, String) {
    let store =
        SqliteStore::open(&SqliteOptions { path: dir.join("b.db"), readers: 2, synchronous: Synchronous::Normal })
            .expect("sqlite");
    let store: Arc<dyn Store> = Arc::new(store);
    store.migrate().await.expect("migrate");
    let org = Organization::new("bench", SystemClock.now()).expect("org");
    store.insert_organization(&org).await.expect("org");
    let connector = Connector::parse(Path::new("bench.yaml"), &definition(base, script)).expect("definition");
    let runtime = ConnectorRuntime::new(
        [(connector.name.clone(), connector)].into_iter().collect(),
        store,
        Arc::new(MasterKey::generate().expect("key").0),
        Arc::new(SystemClock),
        // The fake API listens on loopback, which the egress policy refuses unless allow-listed.
        RuntimeConfig { egress_allow: vec![std::net::IpAddr::from([127, 0, 0, 1]).into()], ..RuntimeConfig::default() },
    )
    .expect("runtime");
    let input = AccountInput {
        id: Some("a1".to_owned()),
        connector: Some("bench".to_owned()),
        auth_value: Some("k".to_owned()),
        ..AccountInput::default()
    };
    runtime.create_account(&org.id, input).await.expect("account");
    (runtime, org.id)
}

async fn calls_per_sec(runtime: &ConnectorRuntime, org: &str, window: Duration) -> f64 {
    let request = CallRequest { method: "list".to_owned(), ..CallRequest::default() };
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < window {
        runtime.call(org, "bench", "a1", &request).await.expect("call");
        count += 1;
    }
    count as f64 / start.elapsed().as_secs_f64()
}

async fn direct_per_sec(client: &reqwest::Client, url: &str, window: Duration) -> f64 {
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < window {
        let body: Value =
            client.get(url).header("X-Api-Key", "k").send().await.expect("send").json().await.expect("json");
        assert!(body.get("items").is_some());
        count += 1;
    }
    count as f64 / start.elapsed().as_secs_f64()
}

/// Hooks per second, and the µs of each spent while its caller waits (`script::run`) and after, on the script
/// thread between jobs (`script::tidy`).
struct HookRate {
    per_sec: f64,
    waited_us: f64,
    tidied_us: f64,
}

fn hooks_per_sec(window: Duration, host: &Host, source: &str) -> HookRate {
    let mut globals = Map::new();
    globals.insert("method_response".to_owned(), json!({"items": [1, 2, 3]}));
    let (mut waited, mut tidied) = (Duration::ZERO, Duration::ZERO);
    let start = Instant::now();
    let mut count = 0u32;
    while start.elapsed() < window {
        let began = Instant::now();
        let run = script::run(Event::AfterAction, &[source], globals.clone(), Limits::default(), host);
        assert_eq!(run.outcome, script::Outcome::Continue);
        let ran = Instant::now();
        // The script pool's work between jobs is counted here: this figure is the CPU a hook costs.
        script::tidy();
        waited += ran - began;
        tidied += ran.elapsed();
        count += 1;
    }
    let per = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(count);
    HookRate {
        per_sec: f64::from(count) / start.elapsed().as_secs_f64(),
        waited_us: per(waited),
        tidied_us: per(tidied),
    }
}

type MakeContext = fn(&rquickjs::Runtime) -> rquickjs::Result<rquickjs::Context>;

/// What a fresh context costs before any script runs: µs to make one with the given intrinsics and to collect
/// it once dropped, averaged over `runs`.
fn bare_context_us(runs: u32, make: MakeContext) -> (f64, f64) {
    let runtime = rquickjs::Runtime::new().expect("runtime");
    let (mut made, mut collected) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..runs {
        let began = Instant::now();
        let context = make(&runtime).expect("context");
        let ready = Instant::now();
        drop(context);
        runtime.run_gc();
        made += ready - began;
        collected += ready.elapsed();
    }
    let per = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(runs);
    (per(made), per(collected))
}

pub(crate) async fn run(report: &mut Report, window: Duration, runs: usize) {
    let base = fake_api().await;
    let dir = tempfile::tempdir().expect("dir");
    let plain_dir = dir.path().join("plain");
    let hook_dir = dir.path().join("hook");
    std::fs::create_dir_all(&plain_dir).expect("dir");
    std::fs::create_dir_all(&hook_dir).expect("dir");
    let (plain, plain_org) = runtime(&base, "", &plain_dir).await;
    let (hooked, hooked_org) = runtime(&base, SEED_AFTER_ACTION, &hook_dir).await;
    let client = reqwest::Client::new();
    let url = format!("{base}/data");
    let host = Host::new(client.clone(), tokio::runtime::Handle::current());
    let (mut direct, mut ours, mut with_hook, mut hooks) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut waited, mut tidied) = (Vec::new(), Vec::new());
    let mut libraries: [Vec<f64>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    let library_hooks = [MOMENT_AFTER_ACTION, MOMENT_TZ_AFTER_ACTION, CRYPTO_JS_AFTER_ACTION];
    for _ in 0..runs {
        direct.push(direct_per_sec(&client, &url, window).await);
        ours.push(calls_per_sec(&plain, &plain_org, window).await);
        with_hook.push(calls_per_sec(&hooked, &hooked_org, window).await);
        let seed_host = host.clone();
        let seed = tokio::task::spawn_blocking(move || hooks_per_sec(window, &seed_host, SEED_AFTER_ACTION))
            .await
            .expect("hooks");
        hooks.push(seed.per_sec);
        waited.push(seed.waited_us);
        tidied.push(seed.tidied_us);
        for (rates, source) in libraries.iter_mut().zip(library_hooks) {
            let host = host.clone();
            let rate = tokio::task::spawn_blocking(move || hooks_per_sec(window, &host, source)).await.expect("hooks");
            rates.push(rate.per_sec);
        }
    }
    println!(
        "one after_action hook in a fresh context: {:.0} µs ({:.0} µs while the caller waits, {:.0} µs in tidy after)",
        1e6 / median(hooks.clone()),
        median(waited),
        median(tidied)
    );
    let contexts: [(&str, MakeContext); 3] = [
        ("Context::full", rquickjs::Context::full),
        ("Context::base", rquickjs::Context::base),
        ("Context::base + typed arrays", rquickjs::Context::custom::<(rquickjs::context::intrinsic::TypedArrays,)>),
    ];
    for (what, make) in contexts {
        let (made, collected) = bare_context_us(2_000, make);
        println!("a bare QuickJS context, {what}: {made:.0} µs to make, {collected:.0} µs to collect");
    }
    let [moment, moment_tz, crypto_js] = libraries;
    for (what, rates) in [("moment", &moment), ("moment.tz", &moment_tz), ("CryptoJS", &crypto_js)] {
        println!("one after_action hook using {what} in a fresh context: {:.0} µs", 1e6 / median(rates.clone()));
    }
    report.push(Row {
        id: "connector-call",
        name: "connector call",
        ours: "runtime call, no scripts",
        ours_runs: ours,
        baseline: "direct HTTP call",
        baseline_runs: direct.clone(),
        goal: None,
    });
    report.push(Row {
        id: "connector-hook",
        name: "connector call + hook",
        ours: "runtime call, seed after_action (fresh context)",
        ours_runs: with_hook,
        baseline: "direct HTTP call",
        baseline_runs: direct.clone(),
        goal: None,
    });
    report.push(Row {
        id: "hook-alone",
        name: "hook alone",
        ours: "seed after_action, fresh context",
        ours_runs: hooks,
        baseline: "direct HTTP call",
        baseline_runs: direct.clone(),
        goal: None,
    });
    for (id, name, ours, runs) in [
        ("hook-moment", "hook + moment", "after_action using moment, fresh context", moment),
        ("hook-moment-tz", "hook + moment.tz", "after_action using moment.tz, fresh context", moment_tz),
        ("hook-crypto-js", "hook + CryptoJS", "after_action using CryptoJS, fresh context", crypto_js),
    ] {
        report.push(Row {
            id,
            name,
            ours,
            ours_runs: runs,
            baseline: "direct HTTP call",
            baseline_runs: direct.clone(),
            goal: None,
        });
    }
}
