//! The script host: Cyclr's events, globals, built-ins and exceptions on `rquickjs`.
//!
//! Every invocation gets a fresh context (nothing is shared between accounts or calls) on a runtime kept per
//! thread, a memory limit, and an interrupt handler that stops the script at its deadline, also inside a
//! runaway regular expression. The host's JavaScript and the bundled libraries are read into the context as
//! bytecode compiled once per process, each part only when a script of the invocation names it
//! ([`modules`]). It is synchronous: callers run it off the async threads (`spawn_blocking`).
//!
//! A script thread does the bookkeeping between invocations once its caller has the answer ([`tidy`]): it
//! drops the spent context, collects garbage and readies the next context with the core loaded. That
//! context has run no script, so it is as fresh as one made on demand; only its cost leaves the call.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rquickjs::{Context, Function, Runtime};
use serde_json::{Map, Value, json};

use crate::builtins;
use crate::credentials::{Attach, Sandbox};
use crate::egress::EgressPolicy;

mod engine;
mod modules;

use engine::Engine;
pub use engine::tidy;
use modules::Intrinsics;

/// The script events (Cyclr's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Before each request.
    BeforeAction,
    /// After a 2xx response.
    AfterAction,
    /// Once after all pages.
    AfterActionPaging,
    /// After an error response or transport failure.
    AfterError,
    /// Picks the true/false exit.
    ActionCondition,
    /// Before the user is sent to the authorize URL (`method_endpoint` may be changed).
    BeforeOauth2Authorise,
    /// Before the access-token request.
    BeforeOauth2Token,
    /// After the access-token request.
    AfterOauth2Token,
    /// Before the refresh request.
    BeforeOauth2Refresh,
    /// After the refresh request.
    AfterOauth2Refresh,
    /// An inbound webhook arrived, before anything else: `false` answers the sender with `method_response`.
    BeforeWebhook,
    /// Right after an inbound webhook arrived: `false` ignores it.
    AfterWebhook,
}

impl Event {
    /// The handler's function name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::BeforeAction => "before_action",
            Self::AfterAction => "after_action",
            Self::AfterActionPaging => "after_action_paging",
            Self::AfterError => "after_error",
            Self::ActionCondition => "action_condition",
            Self::BeforeOauth2Authorise => "before_oauth2_authorise",
            Self::BeforeOauth2Token => "before_oauth2_token",
            Self::AfterOauth2Token => "after_oauth2_token",
            Self::BeforeOauth2Refresh => "before_oauth2_refresh",
            Self::AfterOauth2Refresh => "after_oauth2_refresh",
            Self::BeforeWebhook => "before_webhook",
            Self::AfterWebhook => "after_webhook",
        }
    }

    const fn is_before(self) -> bool {
        matches!(
            self,
            Self::BeforeAction
                | Self::BeforeOauth2Authorise
                | Self::BeforeOauth2Token
                | Self::BeforeOauth2Refresh
                | Self::BeforeWebhook
        )
    }

    /// Whether a handler's `false` stops the chain: the `before` events', and `after_webhook`'s (it ignores
    /// the webhook).
    const fn aborts_on_false(self) -> bool {
        self.is_before() || matches!(self, Self::AfterWebhook)
    }

    const fn allows_auth_exceptions(self) -> bool {
        matches!(self, Self::BeforeAction | Self::AfterAction | Self::AfterError | Self::ActionCondition)
    }
}

/// Globals the host reads back after every handler (scripts may reassign them).
pub const WRITABLE_GLOBALS: &[&str] = &[
    "method_endpoint",
    "method_request",
    "method_request_headers",
    "method_request_parameters",
    "method_request_mergefields",
    "method_response",
    "method_response_headers",
    "method_error",
    "action_data",
    "cycle_variables",
    "next_last_successful_run_date",
];

/// What a chain of handlers decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Go on.
    Continue,
    /// A `before` handler (or `after_webhook`) returned `false`.
    Abort,
    /// `action_condition`'s exit.
    Condition(bool),
    /// `AuthRefreshException` was thrown.
    RefreshAuth,
    /// `AuthSessionException` was thrown.
    RefreshSession,
    /// Another throw or a syntax error; the message is the script's.
    Failed {
        /// `Error.message` or `String(value)`.
        message: String,
    },
    /// The wall-clock limit stopped the script.
    Timeout,
    /// The memory limit stopped the script.
    OutOfMemory,
}

/// Limits for one invocation.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock budget of all the script work of one call, host calls included.
    pub timeout: Duration,
    /// Heap limit.
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(60), memory_bytes: 32 * 1024 * 1024 }
    }
}

/// The script time one call has left, shared by every invocation of the call (top-level code, every handler
/// at every level, the read-back of globals), whether the call is gone (its HTTP request ended), and a
/// destination the egress policy refused to one of its scripts.
#[derive(Debug)]
pub struct Budget {
    remaining: Mutex<Duration>,
    cancelled: AtomicBool,
    refused: Mutex<Option<String>>,
}

impl Budget {
    /// A budget of `total` script time.
    #[must_use]
    pub const fn new(total: Duration) -> Self {
        Self { remaining: Mutex::new(total), cancelled: AtomicBool::new(false), refused: Mutex::new(None) }
    }

    /// Notes a refused destination: the call fails with it even if the script catches the exception.
    pub fn refuse(&self, why: String) {
        self.refused.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(why);
    }

    /// The first destination refused to a script of the call.
    #[must_use]
    pub fn refused(&self) -> Option<String> {
        self.refused.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Stops every script of the call at its next interrupt check.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// Whether the call is gone.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Script time left.
    #[must_use]
    pub fn remaining(&self) -> Duration {
        *self.remaining.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn spend(&self, spent: Duration) {
        let mut remaining = self.remaining.lock().unwrap_or_else(PoisonError::into_inner);
        *remaining = remaining.saturating_sub(spent);
    }
}

/// What the built-ins need: a client, the async runtime to run requests on, the credential rule and egress
/// policy every request follows, storage, the call's budget, and what a step script may not see.
#[derive(Debug, Clone)]
pub struct Host {
    /// Shared HTTP client (built by [`EgressPolicy::client`]).
    pub client: reqwest::Client,
    /// The runtime the blocking thread hands requests to.
    pub handle: tokio::runtime::Handle,
    /// The connector's credentials and the origins they may go to.
    pub attach: Arc<Attach>,
    /// Where requests may go.
    pub egress: Arc<EgressPolicy>,
    /// Backs `cyclr_storage_*` / `cycle_storage_*`; without it they throw.
    pub storage: Option<builtins::Storage>,
    /// The call's budget; `None`: `Limits::timeout` for this invocation alone.
    pub budget: Option<Arc<Budget>>,
    /// What the step level (the third) may not see.
    pub sandbox: Sandbox,
}

impl Host {
    /// A host without credentials, storage or a call budget.
    #[must_use]
    pub fn new(client: reqwest::Client, handle: tokio::runtime::Handle) -> Self {
        Self {
            client,
            handle,
            attach: Arc::new(Attach::default()),
            egress: Arc::new(EgressPolicy::default()),
            storage: None,
            budget: None,
            sandbox: Sandbox::default(),
        }
    }
}

/// The result of one chain.
#[derive(Debug, Clone)]
pub struct Run {
    /// The decision.
    pub outcome: Outcome,
    /// Every global after the last handler that ran.
    pub globals: Map<String, Value>,
}

/// A level's source inside a function that answers its handler for `event`, which is all one invocation runs.
fn wrapper(source: &str, event: Event) -> String {
    if source.trim().is_empty() {
        return "__level(function () { return {}; });".to_owned();
    }
    format!(
        "__level(function () {{\n{source}\n;return {{ {0}: typeof {0} === 'function' ? {0} : undefined }}; }});",
        event.name()
    )
}

/// Compiles a script without running it.
///
/// # Errors
/// The engine's syntax error.
pub fn check_syntax(source: &str) -> Result<(), String> {
    let runtime = Runtime::new().map_err(|e| e.to_string())?;
    runtime.set_memory_limit(Limits::default().memory_bytes);
    let context = Context::full(&runtime).map_err(|e| e.to_string())?;
    context.with(|ctx| {
        let check: Function<'_> = ctx
            .eval("(function (src) { try { new Function(src); return ''; } catch (e) { return String(e); } })")
            .map_err(|e| e.to_string())?;
        let message: String = check.call((source,)).map_err(|e| e.to_string())?;
        if message.is_empty() { Ok(()) } else { Err(message) }
    })
}

/// Runs `event` on every level that defines it, in Cyclr's order. `levels` is given connector → method →
/// step; `before*` events run method → connector → step. The step level, which the caller supplies, runs last
/// and sees the globals through `host.sandbox`.
#[must_use]
pub fn run(event: Event, levels: &[&str], globals: Map<String, Value>, limits: Limits, host: &Host) -> Run {
    if !levels.iter().any(|src| src.contains(event.name())) {
        let outcome = if event == Event::ActionCondition { Outcome::Condition(true) } else { Outcome::Continue };
        return Run { outcome, globals };
    }
    let budget = host.budget.clone().unwrap_or_else(|| Arc::new(Budget::new(limits.timeout)));
    if budget.is_cancelled() || budget.remaining().is_zero() {
        return Run { outcome: Outcome::Timeout, globals };
    }
    let started = Instant::now();
    let parts = modules::parts(levels);
    let intrinsics = Intrinsics::for_scripts(levels, &parts);
    let run = match Engine::new(limits, host, &budget, intrinsics, &parts) {
        Ok(engine) => engine.run(event, levels, globals, &host.sandbox),
        Err(message) => Run { outcome: Outcome::Failed { message }, globals },
    };
    budget.spend(started.elapsed());
    run
}

/// The `method_error` object for a failed request.
#[must_use]
pub fn method_error(status: u16, reason: &str, content: &str) -> Value {
    json!({
        "statusCode": status,
        "reasonPhrase": reason,
        "content": content,
        "error": format!("{status} {reason}"),
        "isError": true,
        "isWarning": false,
        "isSuccess": false,
    })
}
