//! The full report: reads the samples every measurement appended (one JSON object per line), takes the
//! median of each side, computes the ratio run by run (each run of a pair measures both sides back to
//! back), checks the goals, and writes the JSON results, the markdown table and the charts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::report::median;

/// Whether a larger figure is better (throughput) or a smaller one (time, memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Better {
    Higher,
    Lower,
}

/// What a pair must show.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Goal {
    None,
    /// The ratio (how many times better than the baseline) must be at least this.
    Ratio(f64),
    /// Portcullis's own figure must be at most this, in the pair's unit.
    AtMost(f64),
}

/// One pair of the report, in the order of the table.
#[derive(Debug)]
pub(crate) struct Spec {
    pub(crate) id: &'static str,
    pub(crate) title: &'static str,
    pub(crate) ours: &'static str,
    pub(crate) baseline: Option<&'static str>,
    /// The baseline's short name, for charts.
    pub(crate) peer: &'static str,
    pub(crate) unit: &'static str,
    pub(crate) better: Better,
    pub(crate) goal: Goal,
}

#[allow(clippy::too_many_arguments, reason = "one row of the table below")]
const fn spec(
    id: &'static str,
    title: &'static str,
    ours: &'static str,
    baseline: Option<&'static str>,
    peer: &'static str,
    unit: &'static str,
    better: Better,
    goal: Goal,
) -> Spec {
    Spec { id, title, ours, baseline, peer, unit, better, goal }
}

/// A scale pair: the refresh (or login) pair over HTTP on a prefilled store, against the same pair on the
/// store without the prefill.
const fn scale_spec(id: &'static str, title: &'static str, refresh: bool) -> Spec {
    let (ours, baseline, unit) = if refresh {
        (
            "`POST /auth/session/refresh` on a store `portcullis-bench prefill` filled first",
            "the same on the store without them (the refresh-over-HTTP figure of the same run)",
            "ops/s",
        )
    } else {
        (
            "complete email-code logins on a store `portcullis-bench prefill` filled first",
            "the same on the store without them (the logins-over-HTTP figure of the same run)",
            "logins/s",
        )
    };
    spec(id, title, ours, Some(baseline), "store without them", unit, Better::Higher, Goal::Ratio(0.8))
}

/// Every pair `scripts/bench.sh` measures.
pub(crate) const SPECS: &[Spec] = &[
    spec(
        "protected-http",
        "Protected request over HTTP",
        "demo app `GET /api/me`, the SDK verifying the Bearer access token",
        Some("better-auth `GET /api/auth/get-session`, cookie cache on"),
        "better-auth",
        "req/s",
        Better::Higher,
        Goal::Ratio(25.0),
    ),
    spec(
        "protected-http-ceiling",
        "Protected request vs the same app's unprotected page",
        "demo app `GET /api/me` (verification + JSON)",
        Some("demo app `GET /` (static page, no token), the HTTP ceiling of the same server"),
        "unprotected page",
        "req/s",
        Better::Higher,
        Goal::Ratio(0.6),
    ),
    spec(
        "verify",
        "Access-token verification in process, 1 thread",
        "`verify_access_token` (EdDSA, `kid`, `exp`, `iss`, `aud`, claims)",
        Some("aws-lc-rs Ed25519 verify of the same token"),
        "raw Ed25519 verify",
        "ops/s",
        Better::Higher,
        Goal::Ratio(0.8),
    ),
    spec(
        "refresh-sqlite-http",
        "Refresh over HTTP on SQLite",
        "`POST /auth/session/refresh` (rotate, theft check, sign), concurrent clients",
        Some("raw rusqlite rotation transaction, 1 connection, in process"),
        "raw rusqlite transaction",
        "ops/s",
        Better::Higher,
        Goal::Ratio(1.0),
    ),
    spec(
        "refresh-sqlite-full-http",
        "Refresh over HTTP on SQLite with a sync per commit",
        "`POST /auth/session/refresh`, concurrent clients, `sqlite_synchronous = \"full\"` (rotations commit together)",
        Some("raw rusqlite rotation transaction, 1 connection, in process, `synchronous = FULL`"),
        "raw rusqlite transaction",
        "ops/s",
        Better::Higher,
        Goal::Ratio(1.0),
    ),
    spec(
        "refresh-sqlite-inprocess",
        "Refresh in process on SQLite, 1 client",
        "`SessionService::refresh` (rotate, theft check, sign)",
        Some("raw rusqlite rotation transaction"),
        "raw rusqlite transaction",
        "ops/s",
        Better::Higher,
        Goal::Ratio(0.6),
    ),
    spec(
        "refresh-postgres-http",
        "Refresh over HTTP on PostgreSQL",
        "`POST /auth/session/refresh`, concurrent clients",
        Some("raw tokio-postgres rotation transaction, 1 connection"),
        "raw tokio-postgres transaction",
        "ops/s",
        Better::Higher,
        Goal::Ratio(2.5),
    ),
    spec(
        "refresh-postgres-inprocess",
        "Refresh in process on PostgreSQL, 1 client",
        "`SessionService::refresh` (row lock, rotate, sign)",
        Some("raw tokio-postgres rotation transaction"),
        "raw tokio-postgres transaction",
        "ops/s",
        Better::Higher,
        Goal::None,
    ),
    spec(
        "supertokens-node-refresh",
        "Refresh through the app: Rust SDK vs supertokens-node with Portcullis as its core",
        "demo app `POST /auth/session/refresh` (the Rust SDK, then the server-to-server API), header mode",
        Some("supertokens-node 24 + express `POST /auth/session/refresh` (then the core face), header mode"),
        "supertokens-node",
        "ops/s",
        Better::Higher,
        Goal::None,
    ),
    spec(
        "supertokens-core-verify",
        "supertokens-node protected request with `checkDatabase` vs without",
        "`verifySession({ checkDatabase: true })`: local verification plus `POST /recipe/session/verify` to Portcullis",
        Some("`verifySession()`: local verification only, the same app"),
        "local verification",
        "req/s",
        Better::Higher,
        Goal::None,
    ),
    spec(
        "login-http",
        "Complete email-code logins over HTTP on SQLite",
        "strict face: authorize, page, email, code, callback, `/oauth2/token`; new user each time",
        Some("better-auth email OTP: send code, sign in; new user each time"),
        "better-auth",
        "logins/s",
        Better::Higher,
        Goal::Ratio(4.0),
    ),
    scale_spec(
        "refresh-scale-100k",
        "Refresh over HTTP on SQLite, 100,000 sessions and 10,000 users in the store",
        true,
    ),
    scale_spec(
        "refresh-scale-1m",
        "Refresh over HTTP on SQLite, 1,000,000 sessions and 100,000 users in the store",
        true,
    ),
    scale_spec(
        "login-scale-100k",
        "Email-code logins over HTTP on SQLite, 100,000 sessions and 10,000 users in the store",
        false,
    ),
    scale_spec(
        "login-scale-1m",
        "Email-code logins over HTTP on SQLite, 1,000,000 sessions and 100,000 users in the store",
        false,
    ),
    spec(
        "token-http",
        "Token endpoint over HTTP",
        "`POST /oauth2/token` refresh grant: client auth, rotation on SQLite, EdDSA JWT",
        Some("oidc-provider `POST /token` client credentials, EdDSA JWT, nothing stored"),
        "oidc-provider",
        "req/s",
        Better::Higher,
        Goal::None,
    ),
    spec(
        "connector-call",
        "Connector call, no hook",
        "runtime call: account, credentials, auth, call",
        Some("direct HTTP call to the same loopback API"),
        "direct call",
        "calls/s",
        Better::Higher,
        Goal::None,
    ),
    spec(
        "connector-hook",
        "Connector call with the seed's `after_action` hook",
        "runtime call + hook in a fresh script context",
        Some("direct HTTP call to the same loopback API"),
        "direct call",
        "calls/s",
        Better::Higher,
        Goal::Ratio(0.5),
    ),
    spec(
        "hook-alone",
        "One hook alone",
        "seed `after_action` in a fresh script context",
        Some("direct HTTP call to the same loopback API"),
        "direct call",
        "ops/s",
        Better::Higher,
        Goal::None,
    ),
    spec(
        "login-inprocess",
        "Complete email-code logins in process on SQLite, 1 client",
        "the login service's steps without HTTP",
        None,
        "",
        "logins/s",
        Better::Higher,
        Goal::None,
    ),
    spec(
        "passkey-inprocess",
        "Complete passkey logins in process on SQLite, 1 client",
        "the server's side: authorize, discoverable options, the WebAuthn checks, the counter, the code exchange",
        None,
        "",
        "logins/s",
        Better::Higher,
        Goal::None,
    ),
    spec(
        "exchange-inprocess",
        "Authorization-code exchanges in process on SQLite, 1 client",
        "`/api/v1/verify` work: client auth, code redemption, PKCE, two JWEs",
        None,
        "",
        "exchanges/s",
        Better::Higher,
        Goal::None,
    ),
    spec(
        "startup",
        "Start-up of `portcullis serve`",
        "spawn to the first healthy `/health`, existing data directory",
        Some("better-auth server (Node) to its first answer, existing database"),
        "better-auth",
        "ms",
        Better::Lower,
        Goal::AtMost(200.0),
    ),
    spec(
        "first-start",
        "First start of `portcullis serve`, fresh data directory",
        "spawn to the first healthy `/health`: creates the master key, admin token, database and keys",
        Some("better-auth server (Node), fresh database (migrations)"),
        "better-auth",
        "ms",
        Better::Lower,
        Goal::AtMost(200.0),
    ),
    spec(
        "idle-rss",
        "Idle memory of `portcullis serve`",
        "RSS one second after start-up",
        Some("better-auth server (Node), same moment"),
        "better-auth",
        "MB",
        Better::Lower,
        Goal::AtMost(30.0),
    ),
];

/// The store sizes of the scale pairs, charted together in `scale.svg` instead of one chart each: the
/// sessions in the store, then the refresh pair and the login pair measured on it.
pub(crate) const SCALE: &[(u32, &str, &str)] =
    &[(100_000, "refresh-scale-100k", "login-scale-100k"), (1_000_000, "refresh-scale-1m", "login-scale-1m")];

/// Whether `id` is one of the scale pairs.
pub(crate) fn is_scale(id: &str) -> bool {
    SCALE.iter().any(|(_, refresh, login)| id == *refresh || id == *login)
}

#[derive(Debug, clap::Args)]
pub(crate) struct ReportArgs {
    /// The samples file (one JSON object per line).
    #[arg(long)]
    samples: PathBuf,
    /// Write the results as JSON here.
    #[arg(long)]
    json: PathBuf,
    /// Replace the results section of this markdown file (between its markers).
    #[arg(long)]
    doc: Option<PathBuf>,
    /// Replace the figures table of this README (between its markers) with the headline pairs.
    #[arg(long)]
    readme: Option<PathBuf>,
    /// Write the charts (SVG) into this directory.
    #[arg(long)]
    img: Option<PathBuf>,
    /// How the charts are referenced from the doc.
    #[arg(long, default_value = "img")]
    img_link: String,
    /// A one-line description of the machine and toolchain.
    #[arg(long, default_value = "")]
    machine: String,
    /// `full` or `quick`, recorded in the JSON.
    #[arg(long, default_value = "full")]
    mode: String,
    /// Seconds per run and clients, as a one-line description of the method.
    #[arg(long, default_value = "")]
    method: String,
}

/// One side of a pair: every run's value and the latency percentiles when measured.
#[derive(Debug, Default, Clone)]
pub(crate) struct Side {
    pub(crate) runs: BTreeMap<u64, f64>,
    pub(crate) p50: Vec<f64>,
    pub(crate) p99: Vec<f64>,
    pub(crate) clients: Option<u64>,
}

impl Side {
    pub(crate) fn median(&self) -> f64 {
        median(self.runs.values().copied().collect())
    }
}

/// A pair's computed result.
#[derive(Debug)]
pub(crate) struct Outcome<'a> {
    pub(crate) spec: &'a Spec,
    pub(crate) ours: Side,
    pub(crate) baseline: Option<Side>,
    pub(crate) ratios: Vec<f64>,
    pub(crate) ratio: Option<f64>,
    pub(crate) met: Option<bool>,
}

fn outcome<'a>(spec: &'a Spec, sides: &BTreeMap<(String, String), Side>) -> Result<Outcome<'a>, String> {
    let ours = sides
        .get(&(spec.id.to_owned(), "portcullis".to_owned()))
        .cloned()
        .ok_or_else(|| format!("no Portcullis samples for `{}`", spec.id))?;
    let baseline = match spec.baseline {
        Some(_) => Some(
            sides
                .get(&(spec.id.to_owned(), "baseline".to_owned()))
                .cloned()
                .ok_or_else(|| format!("no baseline samples for `{}`", spec.id))?,
        ),
        None => None,
    };
    for (side, values) in std::iter::once(("Portcullis", &ours)).chain(baseline.iter().map(|b| ("baseline", b))) {
        if let Some(bad) = values.runs.values().find(|v| !v.is_finite() || **v <= 0.0) {
            return Err(format!("`{}`: {side} measured {bad}", spec.id));
        }
    }
    let ratios: Vec<f64> = baseline
        .as_ref()
        .map(|b| {
            ours.runs
                .iter()
                .filter_map(|(run, o)| {
                    b.runs.get(run).map(|b| if spec.better == Better::Higher { o / b } else { b / o })
                })
                .collect()
        })
        .unwrap_or_default();
    let ratio = (!ratios.is_empty()).then(|| median(ratios.clone()));
    let met = match spec.goal {
        Goal::None => None,
        Goal::Ratio(goal) => ratio.map(|r| r >= goal),
        Goal::AtMost(limit) => Some(ours.median() <= limit),
    };
    Ok(Outcome { spec, ours, baseline, ratios, ratio, met })
}

fn read_samples(path: &std::path::Path) -> Result<BTreeMap<(String, String), Side>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut sides: BTreeMap<(String, String), Side> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let sample: Value = serde_json::from_str(line).map_err(|e| format!("bad sample `{line}`: {e}"))?;
        let (Some(pair), Some(side), Some(run), Some(value)) =
            (sample["pair"].as_str(), sample["side"].as_str(), sample["run"].as_u64(), sample["value"].as_f64())
        else {
            return Err(format!("incomplete sample `{line}`"));
        };
        let entry = sides.entry((pair.to_owned(), side.to_owned())).or_default();
        entry.runs.insert(run, value);
        if let Some(p50) = sample["p50Ms"].as_f64() {
            entry.p50.push(p50);
        }
        if let Some(p99) = sample["p99Ms"].as_f64() {
            entry.p99.push(p99);
        }
        entry.clients = sample["clients"].as_u64().or(entry.clients);
    }
    Ok(sides)
}

/// A figure as people read it: 21,436 or 0.84 or 12.3.
pub(crate) fn human(value: f64) -> String {
    if value >= 100.0 {
        let digits = format!("{value:.0}");
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn side_cell(side: &Side, unit: &str) -> String {
    let mut cell = format!("{} {unit}", human(side.median()));
    if !side.p50.is_empty() {
        let _ =
            write!(cell, " (p50 {} ms, p99 {} ms)", human(median(side.p50.clone())), human(median(side.p99.clone())));
    }
    cell
}

fn goal_cell(outcome: &Outcome<'_>) -> (String, &'static str) {
    let text = match outcome.spec.goal {
        Goal::None => return ("—".to_owned(), "—"),
        Goal::Ratio(g) => format!("≥ {}×", human(g)),
        Goal::AtMost(limit) => format!("≤ {} {}", human(limit), outcome.spec.unit),
    };
    (text, if outcome.met == Some(true) { "met" } else { "**missed**" })
}

fn markdown(outcomes: &[Outcome<'_>], img_link: Option<&str>, machine: &str, method: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Machine: {machine}. {method}\n");
    out.push_str("| pair | Portcullis | baseline | ratio (runs) | goal | |\n| --- | --- | --- | --- | --- | --- |\n");
    for o in outcomes {
        let clients = o.ours.clients.map(|c| format!(", {c} clients")).unwrap_or_default();
        let baseline = match &o.baseline {
            Some(side) => format!("{}: {}", o.spec.peer, side_cell(side, o.spec.unit)),
            None => "—".to_owned(),
        };
        let ratio = o.ratio.map_or_else(
            || "—".to_owned(),
            |r| {
                let runs: Vec<String> = o.ratios.iter().map(|r| human(*r)).collect();
                // A miss by less than the rounding shows one more digit, so the figure explains the verdict.
                let shown = match o.spec.goal {
                    Goal::Ratio(g) if o.met == Some(false) && human(r) == human(g) => format!("{r:.3}"),
                    _ => human(r),
                };
                format!("**{shown}×** ({})", runs.join(", "))
            },
        );
        let (goal, met) = goal_cell(o);
        let _ = writeln!(
            out,
            "| {}{clients} | {} | {baseline} | {ratio} | {goal} | {met} |",
            o.spec.title,
            side_cell(&o.ours, o.spec.unit)
        );
    }
    if let Some(link) = img_link {
        out.push_str("\n![Ratios against the goals](");
        out.push_str(link);
        out.push_str("/ratios.svg)\n");
        let _ = write!(out, "\n![Throughput against the store's size]({link}/scale.svg)\n");
        for o in outcomes.iter().filter(|o| o.baseline.is_some() && !is_scale(o.spec.id)) {
            let _ = write!(out, "\n![{}]({link}/{}.svg)\n", o.spec.title, o.spec.id);
        }
    }
    out
}

const START: &str = "<!-- results:start (written by scripts/bench.sh) -->";
const END: &str = "<!-- results:end -->";
const README_START: &str = "<!-- figures:start (written by scripts/bench.sh) -->";
const README_END: &str = "<!-- figures:end -->";

/// The pairs the README quotes.
const HEADLINES: &[&str] = &[
    "protected-http",
    "verify",
    "refresh-sqlite-http",
    "refresh-sqlite-full-http",
    "refresh-sqlite-inprocess",
    "login-http",
    "token-http",
    "connector-hook",
    "startup",
    "first-start",
    "idle-rss",
];

fn readme_table(outcomes: &[Outcome<'_>]) -> String {
    let mut out =
        String::from("| what | Portcullis | compared with | ratio | goal |\n| --- | --- | --- | --- | --- |\n");
    for o in outcomes.iter().filter(|o| HEADLINES.contains(&o.spec.id)) {
        let unit = o.spec.unit;
        let baseline = o
            .baseline
            .as_ref()
            .map_or_else(|| "—".to_owned(), |b| format!("{}: {} {unit}", o.spec.peer, human(b.median())));
        let ratio = o.ratio.map_or_else(|| "—".to_owned(), |r| format!("{}×", human(r)));
        let (goal, met) = goal_cell(o);
        let goal = if met == "—" { goal } else { format!("{goal} {}", met.replace("**", "")) };
        let _ =
            writeln!(out, "| {} | {} {unit} | {baseline} | {ratio} | {goal} |", o.spec.title, human(o.ours.median()));
    }
    out
}

/// Replaces the text between `start` and `end` in `path`.
fn splice(path: &std::path::Path, start: &str, end: &str, content: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (Some(from), Some(to)) = (text.find(start), text.find(end)) else {
        return Err(format!("{} has no `{start}` … `{end}` markers", path.display()));
    };
    let updated = format!("{}{start}\n\n{content}\n{}", &text[..from], &text[to..]);
    std::fs::write(path, updated).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub(crate) fn run(args: &ReportArgs) -> Result<(), String> {
    let sides = read_samples(&args.samples)?;
    let outcomes = SPECS.iter().map(|s| outcome(s, &sides)).collect::<Result<Vec<_>, _>>()?;
    let pairs: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            let side = |s: &Side, what: &str| {
                json!({
                    "what": what, "median": s.median(), "runs": s.runs.values().collect::<Vec<_>>(),
                    "p50Ms": (!s.p50.is_empty()).then(|| median(s.p50.clone())),
                    "p99Ms": (!s.p99.is_empty()).then(|| median(s.p99.clone())),
                    "clients": s.clients,
                })
            };
            let goal = match o.spec.goal {
                Goal::None => Value::Null,
                Goal::Ratio(g) => json!({ "ratioAtLeast": g }),
                Goal::AtMost(limit) => json!({ "atMost": limit }),
            };
            json!({
                "id": o.spec.id, "title": o.spec.title, "unit": o.spec.unit,
                "higherIsBetter": o.spec.better == Better::Higher,
                "portcullis": side(&o.ours, o.spec.ours),
                "baseline": o.baseline.as_ref().zip(o.spec.baseline).map(|(s, what)| side(s, what)),
                "ratio": o.ratio, "ratioRuns": o.ratios, "goal": goal, "met": o.met,
            })
        })
        .collect();
    let results = json!({ "mode": args.mode, "machine": args.machine, "method": args.method, "pairs": pairs });
    let text = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
    std::fs::write(&args.json, text + "\n").map_err(|e| format!("cannot write {}: {e}", args.json.display()))?;

    if let Some(dir) = &args.img {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        crate::charts::write(dir, &outcomes)?;
    }
    let table = markdown(&outcomes, args.img.as_ref().map(|_| args.img_link.as_str()), &args.machine, &args.method);
    if let Some(doc) = &args.doc {
        splice(doc, START, END, &table)?;
    }
    if let Some(readme) = &args.readme {
        splice(readme, README_START, README_END, &readme_table(&outcomes))?;
    }
    print!("{table}");
    Ok(())
}
