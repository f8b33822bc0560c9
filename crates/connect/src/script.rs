//! The script host: Cyclr's events, globals, built-ins and exceptions on `rquickjs`.
//!
//! Every invocation gets a fresh context (nothing is shared between accounts or calls) on a runtime kept per
//! thread, a memory limit, and an interrupt handler that stops the script at its deadline, also inside a
//! runaway regular expression. The prelude and the bundled libraries are read into the context as bytecode
//! compiled once per process. It is synchronous: callers run it off the async threads (`spawn_blocking`).
//!
//! A script thread does the bookkeeping between invocations once its caller has the answer ([`tidy`]): it
//! drops the spent context, collects garbage and readies the next context with the prelude loaded. That
//! context has run no script, so it is as fresh as one made on demand; only its cost leaves the call.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use rquickjs::function::Opt;
use rquickjs::loader::bundle::Bundle;
use rquickjs::{Context, Function, Module, Runtime, WriteOptions};
use serde_json::{Map, Value, json};

use crate::builtins;
use crate::credentials::{Attach, Sandbox, redact};
use crate::egress::EgressPolicy;

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

/// The host's JavaScript: exception classes, `console`, the built-ins over the `__host_*` functions, the
/// read-back of globals and the level and handler runners.
const PRELUDE: &str = include_str!("prelude.js");

/// The host's own modules, loaded into every context, and the bundled libraries, loaded into a context only
/// when one of its scripts names them. Each is an ES module (so it can be precompiled with the safe bytecode
/// API); the libraries' UMD wrappers see `this` = `globalThis` and so define their usual globals.
const PRELUDE_MODULE: &str = "portcullis:prelude";
const MOMENT_MODULE: &str = "portcullis:moment";
const MOMENT_TIMEZONE_MODULE: &str = "portcullis:moment-timezone";
const CRYPTO_JS_MODULE: &str = "portcullis:crypto-js";

fn library(source: &str) -> String {
    format!("(function () {{\n{source}\n}}).call(globalThis);")
}

/// The modules' bytecode, compiled once per process: bytecode names its atoms as strings, so it loads into
/// any runtime of this build. Loading it costs far less than parsing the source in every fresh context.
fn bundle() -> Result<&'static [(&'static str, &'static [u8])], String> {
    type Compiled = Vec<(&'static str, Vec<u8>)>;
    static COMPILED: OnceLock<Result<Compiled, String>> = OnceLock::new();
    static TABLE: OnceLock<Vec<(&'static str, &'static [u8])>> = OnceLock::new();
    let compiled = COMPILED.get_or_init(|| {
        let sources = [
            (PRELUDE_MODULE, PRELUDE.to_owned()),
            (MOMENT_MODULE, library(include_str!("../vendor/moment/moment.min.js"))),
            (
                MOMENT_TIMEZONE_MODULE,
                library(include_str!("../vendor/moment-timezone/moment-timezone-with-data-1970-2030.min.js")),
            ),
            (CRYPTO_JS_MODULE, library(include_str!("../vendor/crypto-js/crypto-js.js"))),
        ];
        let runtime = Runtime::new().map_err(|e| e.to_string())?;
        let context = Context::full(&runtime).map_err(|e| e.to_string())?;
        context.with(|ctx| {
            sources
                .into_iter()
                .map(|(name, source)| {
                    let bytes = Module::declare(ctx.clone(), name, source)
                        .and_then(|m| m.write(WriteOptions { strip_source: true, ..WriteOptions::default() }))
                        .map_err(|e| format!("{name}: {}", describe(&ctx, &e)))?;
                    Ok((name, bytes))
                })
                .collect()
        })
    });
    let compiled = compiled.as_ref().map_err(Clone::clone)?;
    Ok(TABLE.get_or_init(|| compiled.iter().map(|(name, bytes)| (*name, bytes.as_slice())).collect()))
}

/// An engine error with the pending exception's message, when there is one.
fn describe(ctx: &rquickjs::Ctx<'_>, err: &rquickjs::Error) -> String {
    if !matches!(err, rquickjs::Error::Exception) {
        return err.to_string();
    }
    let value = ctx.catch();
    value
        .as_exception()
        .and_then(rquickjs::Exception::message)
        .or_else(|| value.as_string().and_then(|s| s.to_string().ok()))
        .unwrap_or_else(|| err.to_string())
}

/// The bundled libraries a set of level scripts uses, by the names Cyclr documents (`moment`, `moment.tz`,
/// `CryptoJS`); the others are not loaded, which keeps a plain hook's context cheap.
fn libraries(levels: &[&str]) -> Vec<&'static str> {
    let uses = |needle: &str| levels.iter().any(|src| src.contains(needle));
    let mut modules = Vec::new();
    if uses("moment") {
        modules.push(MOMENT_MODULE);
        if uses(".tz") {
            modules.push(MOMENT_TIMEZONE_MODULE);
        }
    }
    if uses("CryptoJS") {
        modules.push(CRYPTO_JS_MODULE);
    }
    modules
}

fn wrapper(source: &str) -> String {
    if source.trim().is_empty() {
        return "__level(function () { return {}; });".to_owned();
    }
    let names = [
        Event::BeforeAction,
        Event::AfterAction,
        Event::AfterActionPaging,
        Event::AfterError,
        Event::ActionCondition,
        Event::BeforeOauth2Authorise,
        Event::BeforeOauth2Token,
        Event::AfterOauth2Token,
        Event::BeforeOauth2Refresh,
        Event::AfterOauth2Refresh,
        Event::BeforeWebhook,
        Event::AfterWebhook,
    ]
    .iter()
    .map(|e| format!("{0}: typeof {0} === 'function' ? {0} : undefined", e.name()))
    .collect::<Vec<_>>()
    .join(", ");
    format!("__level(function () {{\n{source}\n;return {{ {names} }}; }});")
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
    let run = match Engine::new(limits, host, &budget, &libraries(levels)) {
        Ok(engine) => engine.run(event, levels, globals, &host.sandbox),
        Err(message) => Run { outcome: Outcome::Failed { message }, globals },
    };
    budget.spend(started.elapsed());
    run
}

/// When the running script must stop: the call's deadline, or the call is gone.
struct Arm {
    deadline: Instant,
    budget: Option<Arc<Budget>>,
}

impl Arm {
    fn over(&self) -> bool {
        Instant::now() >= self.deadline || self.budget.as_ref().is_some_and(|b| b.is_cancelled())
    }
}

/// A QuickJS runtime with its interrupt handler; kept per thread between invocations (each invocation still
/// gets a fresh context), dropped after a timeout or an out-of-memory.
struct Shell {
    runtime: Runtime,
    arm: Rc<RefCell<Arm>>,
    interrupted: Rc<Cell<bool>>,
    memory_bytes: usize,
    /// A context with the prelude loaded that no script has run in, made by [`tidy`].
    ready: Option<Context>,
    /// The last invocation's context, dropped by [`tidy`] rather than while its caller waits.
    spent: Option<Context>,
}

/// How long readying a context may take (the prelude only; far more than it needs).
const READY_LIMIT: Duration = Duration::from_secs(1);

thread_local! {
    static SPARE: RefCell<Option<Shell>> = const { RefCell::new(None) };
}

impl Shell {
    fn take_or_new(limits: Limits, budget: &Arc<Budget>) -> Result<Self, String> {
        let arm = Arm { deadline: Instant::now() + budget.remaining(), budget: Some(Arc::clone(budget)) };
        if let Some(mut shell) = SPARE.with(|s| s.borrow_mut().take())
            && shell.memory_bytes == limits.memory_bytes
        {
            // Without a `tidy` since (a caller outside the pool), the spent context must not count against
            // this invocation's memory limit.
            drop(shell.spent.take());
            shell.interrupted.set(false);
            *shell.arm.borrow_mut() = arm;
            return Ok(shell);
        }
        let runtime = Runtime::new().map_err(|e| e.to_string())?;
        let modules = Bundle(bundle()?);
        runtime.set_loader(modules, modules);
        runtime.set_memory_limit(limits.memory_bytes);
        // Below the limit, so an out-of-memory never leaves the threshold above it (later allocations fail).
        runtime.set_gc_threshold(1024 * 1024);
        runtime.set_max_stack_size(512 * 1024);
        let arm = Rc::new(RefCell::new(arm));
        let interrupted = Rc::new(Cell::new(false));
        {
            let arm = Rc::clone(&arm);
            let interrupted = Rc::clone(&interrupted);
            runtime.set_interrupt_handler(Some(Box::new(move || {
                let over = arm.borrow().over();
                if over {
                    interrupted.set(true);
                }
                over
            })));
        }
        Ok(Self { runtime, arm, interrupted, memory_bytes: limits.memory_bytes, ready: None, spent: None })
    }

    fn keep(mut self, spent: Context) {
        self.arm.borrow_mut().budget = None;
        self.spent = Some(spent);
        SPARE.with(|s| *s.borrow_mut() = Some(self));
    }

    /// A new context with the prelude and the built-ins that need nothing of a call. The ones that do (the
    /// log, storage, HTTP) are added per invocation ([`Engine::install`]).
    fn fresh_context(runtime: &Runtime) -> Result<Context, String> {
        let context = Context::full(runtime).map_err(|e| e.to_string())?;
        context.with(|ctx| -> Result<(), String> {
            let g = ctx.globals();
            let err = |e: rquickjs::Error| e.to_string();
            g.set(
                "__host_btoa",
                Function::new(ctx.clone(), |s: String, charset: Opt<String>| {
                    builtins::btoa(&s, charset.0.as_deref().unwrap_or("UTF-8")).unwrap_or_else(|e| format!("\u{0}{e}"))
                })
                .map_err(err)?,
            )
            .map_err(err)?;
            g.set(
                "__host_atob",
                Function::new(ctx.clone(), |s: String, charset: Opt<String>| {
                    builtins::atob(&s, charset.0.as_deref().unwrap_or("UTF-8")).unwrap_or_else(|e| format!("\u{0}{e}"))
                })
                .map_err(err)?,
            )
            .map_err(err)?;
            g.set(
                "__host_sign",
                Function::new(ctx.clone(), |a: String, k: String, v: String| {
                    builtins::sign(&a, &k, &v).unwrap_or_else(|e| format!("\u{0}{e}"))
                })
                .map_err(err)?,
            )
            .map_err(err)?;
            g.set(
                "__host_csv",
                Function::new(ctx.clone(), |csv: String, delimiter: String, header: bool| {
                    builtins::csv_parse(&csv, &delimiter, header)
                        .map_or_else(|e| format!("\u{0}{e}"), |v| v.to_string())
                })
                .map_err(err)?,
            )
            .map_err(err)?;
            g.set(
                "__host_xml_deserialize",
                Function::new(ctx.clone(), |xml: String| {
                    builtins::xml_deserialize(&xml).map_or_else(|e| format!("\u{0}{e}"), |v| v.to_string())
                })
                .map_err(err)?,
            )
            .map_err(err)?;
            Module::import(&ctx, PRELUDE_MODULE)
                .and_then(|p| p.finish::<rquickjs::Value<'_>>())
                .map(drop)
                .map_err(|e| format!("{PRELUDE_MODULE}: {}", describe(&ctx, &e)))
        })?;
        Ok(context)
    }

    /// The ready context, or a new one.
    fn context(&mut self) -> Result<Context, String> {
        match self.ready.take() {
            Some(context) => Ok(context),
            None => Self::fresh_context(&self.runtime),
        }
    }
}

/// The work between invocations on this thread, for after the caller has its answer: drops the spent context,
/// collects garbage and readies the next context. Does nothing on a thread that has run no script.
pub fn tidy() {
    SPARE.with(|spare| {
        let mut spare = spare.borrow_mut();
        let Some(shell) = spare.as_mut() else { return };
        drop(shell.spent.take());
        shell.runtime.set_gc_threshold(1024 * 1024);
        shell.runtime.run_gc();
        if shell.ready.is_none() {
            *shell.arm.borrow_mut() = Arm { deadline: Instant::now() + READY_LIMIT, budget: None };
            shell.interrupted.set(false);
            match Shell::fresh_context(&shell.runtime) {
                Ok(context) => shell.ready = Some(context),
                // The next invocation makes its context itself, and reports what fails then.
                Err(e) => tracing::warn!(error = %e, "could not ready a script context"),
            }
        }
    });
}

/// An engine failure, classified once the context is released (the runtime's memory figures cannot be read
/// while a context is in use).
struct Caught {
    detail: String,
    allocation: bool,
}

struct Engine {
    runtime: Runtime,
    context: Context,
    arm: Rc<RefCell<Arm>>,
    /// Set once the step level runs: what the host answers from then on is masked like its globals.
    sandboxed: Rc<Cell<bool>>,
    interrupted: Rc<Cell<bool>>,
    limits: Limits,
    shell: Shell,
}

/// Caps what one invocation may write to the log.
const MAX_LOG_LINES: u32 = 100;

impl Engine {
    fn new(limits: Limits, host: &Host, budget: &Arc<Budget>, libraries: &[&str]) -> Result<Self, String> {
        let mut shell = Shell::take_or_new(limits, budget)?;
        let context = shell.context()?;
        let engine = Self {
            runtime: shell.runtime.clone(),
            context,
            arm: Rc::clone(&shell.arm),
            sandboxed: Rc::new(Cell::new(false)),
            interrupted: Rc::clone(&shell.interrupted),
            limits,
            shell,
        };
        engine.install(host, libraries)?;
        Ok(engine)
    }

    /// Hands the context to [`tidy`]; the runtime is reused on this thread unless the script broke a limit.
    fn finish(self, healthy: bool) {
        let Self { runtime, context, shell, .. } = self;
        drop(runtime);
        if healthy {
            shell.keep(context);
        } else {
            drop(context);
        }
    }

    fn remaining(arm: &Rc<RefCell<Arm>>) -> Duration {
        arm.borrow().deadline.saturating_duration_since(Instant::now())
    }

    fn install(&self, host: &Host, libraries: &[&str]) -> Result<(), String> {
        self.context.with(|ctx| -> Result<(), String> {
            let g = ctx.globals();
            let err = |e: rquickjs::Error| e.to_string();
            let secrets = host.attach.secrets().to_vec();
            let lines = Cell::new(0u32);
            g.set(
                "__host_log",
                Function::new(ctx.clone(), move |line: String| {
                    lines.set(lines.get() + 1);
                    match lines.get() {
                        n if n <= MAX_LOG_LINES => {
                            tracing::info!(target: "connector_script", "{}", builtins::log_line(&line, &secrets));
                        }
                        n if n == MAX_LOG_LINES + 1 => {
                            tracing::info!(target: "connector_script", "further console.log lines of this script are dropped");
                        }
                        _ => {}
                    }
                })
                .map_err(err)?,
            )
            .map_err(err)?;
            let storage_host = host.clone();
            let storage_arm = Rc::clone(&self.arm);
            let storage_sandboxed = Rc::clone(&self.sandboxed);
            g.set(
                "__host_storage",
                Function::new(ctx.clone(), move |scope: String, op: String, key: String, value: String| {
                    let remaining = Self::remaining(&storage_arm);
                    let answer = builtins::storage(&storage_host, remaining, &scope, &op, &key, &value);
                    if storage_sandboxed.get() { redact(&answer, &storage_host.sandbox.secrets) } else { answer }
                })
                .map_err(err)?,
            )
            .map_err(err)?;
            let host = host.clone();
            let arm = Rc::clone(&self.arm);
            let sandboxed = Rc::clone(&self.sandboxed);
            g.set(
                "__host_http",
                Function::new(ctx.clone(), move |request: String| {
                    let answer = builtins::http_request(&host, Self::remaining(&arm), &request);
                    // An API that echoes the request would otherwise show the step its credentials.
                    if sandboxed.get() { redact(&answer, &host.sandbox.secrets) } else { answer }
                })
                .map_err(err)?,
            )
            .map_err(err)?;
            for module in libraries {
                Module::import(&ctx, *module)
                    .and_then(|p| p.finish::<rquickjs::Value<'_>>())
                    .map_err(|e| format!("{module}: {}", describe(&ctx, &e)))?;
            }
            Ok(())
        })
    }

    fn caught(ctx: &rquickjs::Ctx<'_>, err: &rquickjs::Error) -> Caught {
        let detail = if matches!(err, rquickjs::Error::Exception) {
            let value = ctx.catch();
            value
                .as_exception()
                .and_then(rquickjs::Exception::message)
                .or_else(|| value.as_string().and_then(|s| s.to_string().ok()))
                .unwrap_or_default()
        } else {
            err.to_string()
        };
        Caught { detail, allocation: matches!(err, rquickjs::Error::Allocation) }
    }

    /// Whether the call's script time is spent (or the call is gone).
    fn out_of_time(&self) -> bool {
        self.interrupted.get() || self.arm.borrow().over()
    }

    /// Must run outside `context.with`: reading the runtime's memory usage there panics (the runtime is
    /// borrowed by the context).
    fn classify(&self, caught: Caught) -> Outcome {
        if self.out_of_time() {
            return Outcome::Timeout;
        }
        let Caught { detail, allocation } = caught;
        let near_limit = || {
            let usage = self.runtime.memory_usage();
            usize::try_from(usage.malloc_size.max(0)).unwrap_or(0) + 1024 * 1024 >= self.limits.memory_bytes
        };
        if allocation || detail.contains("out of memory") || (detail.is_empty() && near_limit()) {
            Outcome::OutOfMemory
        } else if detail.is_empty() {
            Outcome::Failed { message: "uncaught exception".to_owned() }
        } else {
            Outcome::Failed { message: detail }
        }
    }

    /// Sets every entry of `globals` as a global of the context.
    fn set_globals(ctx: &rquickjs::Ctx<'_>, globals: &Map<String, Value>) -> Result<(), Caught> {
        // One JSON text for all globals: a single parse instead of one per global.
        let text = serde_json::to_string(globals).map_err(|e| Caught { detail: e.to_string(), allocation: false })?;
        let all = ctx.json_parse(text).map_err(|e| Self::caught(ctx, &e))?;
        let all = all
            .into_object()
            .ok_or_else(|| Caught { detail: "the globals are not an object".to_owned(), allocation: false })?;
        let g = ctx.globals();
        for entry in all.props::<rquickjs::Atom<'_>, rquickjs::Value<'_>>() {
            entry.and_then(|(name, value)| g.set(name, value)).map_err(|e| Self::caught(ctx, &e))?;
        }
        Ok(())
    }

    /// Reads back every writable global.
    fn collect(ctx: &rquickjs::Ctx<'_>) -> Result<Map<String, Value>, Caught> {
        let collect: Function<'_> = ctx.globals().get("__collect").map_err(|e| Self::caught(ctx, &e))?;
        let text: String = collect.call(()).map_err(|e| Self::caught(ctx, &e))?;
        serde_json::from_str(&text).map_err(|e| Caught { detail: e.to_string(), allocation: false })
    }

    fn eval_level(ctx: &rquickjs::Ctx<'_>, src: &str) -> Result<(), Caught> {
        // Sloppy mode, as Cyclr's engine runs scripts: assigning an undeclared name creates a global.
        let mut options = rquickjs::context::EvalOptions::default();
        options.strict = false;
        let thrown: String = ctx.eval_with_options(wrapper(src), options).map_err(|e| Self::caught(ctx, &e))?;
        match thrown.as_str() {
            "" => Ok(()),
            "oom" => Err(Caught { detail: "out of memory".to_owned(), allocation: true }),
            other => {
                Err(Caught { detail: other.strip_prefix("error:").unwrap_or(other).to_owned(), allocation: false })
            }
        }
    }

    /// Invokes `event` on the given levels; `Ok(Some(outcome))` ends the chain.
    fn invoke(
        ctx: &rquickjs::Ctx<'_>,
        event: Event,
        order: &[usize],
        condition: &mut Option<bool>,
    ) -> Result<Option<Outcome>, Caught> {
        let invoke: Function<'_> = ctx.globals().get("__invoke").map_err(|e| Self::caught(ctx, &e))?;
        for &level in order {
            let answer: String = invoke.call((level, event.name())).map_err(|e| Self::caught(ctx, &e))?;
            match answer.as_str() {
                "absent" => {}
                "false" if event.aborts_on_false() => return Ok(Some(Outcome::Abort)),
                "true" | "truthy" => *condition = Some(true),
                "false" | "falsy" => {
                    *condition = Some(false);
                    if event != Event::ActionCondition {
                        tracing::warn!(event = event.name(), "a connector handler did not return true");
                    }
                }
                "refresh" | "session" if !event.allows_auth_exceptions() => {
                    let class = if answer == "refresh" { "AuthRefreshException" } else { "AuthSessionException" };
                    let message = format!("{class} not allowed in {}", event.name());
                    return Ok(Some(Outcome::Failed { message }));
                }
                "refresh" => return Ok(Some(Outcome::RefreshAuth)),
                "session" => return Ok(Some(Outcome::RefreshSession)),
                "oom" => return Ok(Some(Outcome::OutOfMemory)),
                other => {
                    let message = other.strip_prefix("error:").unwrap_or(other).to_owned();
                    return Ok(Some(Outcome::Failed { message }));
                }
            }
        }
        Ok(None)
    }

    /// The whole chain in one context: the connector and method levels, then the step level through the
    /// sandbox. Answers the outcome and the read-back globals (`None` when the chain ended early).
    fn chain(
        &self,
        ctx: &rquickjs::Ctx<'_>,
        event: Event,
        levels: &[&str],
        globals: &Map<String, Value>,
        sandbox: &Sandbox,
    ) -> Result<(Outcome, Option<Map<String, Value>>), Caught> {
        let (trusted, step) = match levels {
            [connector, method, step, ..] if !step.trim().is_empty() => (vec![*connector, *method], Some(*step)),
            [connector, method, ..] => (vec![*connector, *method], None),
            other => (other.to_vec(), None),
        };
        Self::set_globals(ctx, globals)?;
        for src in &trusted {
            Self::eval_level(ctx, src)?;
        }
        let mut order: Vec<usize> = (0..trusted.len()).collect();
        if event.is_before() && order.len() >= 2 {
            order.swap(0, 1);
        }
        let mut condition = None;
        // Globals are read back after a chain that ended early too: `action_data` survives an auth retry.
        if let Some(end) = Self::invoke(ctx, event, &order, &mut condition)? {
            return Ok((end, Self::collect(ctx).ok()));
        }
        let mut read_back = Self::collect(ctx)?;
        if let Some(step) = step {
            let mut seen = globals.clone();
            seen.extend(read_back);
            let view = sandbox.view(&seen);
            self.sandboxed.set(true);
            Self::set_globals(ctx, &view)?;
            Self::eval_level(ctx, step)?;
            let end = Self::invoke(ctx, event, &[trusted.len()], &mut condition)?;
            let mut after = view.clone();
            match Self::collect(ctx) {
                Ok(collected) => after.extend(collected),
                Err(caught) if end.is_none() => return Err(caught),
                Err(_) => {}
            }
            read_back = sandbox.restore(&seen, &view, after);
            if let Some(end) = end {
                return Ok((end, Some(read_back)));
            }
        }
        let outcome = if event == Event::ActionCondition {
            if condition.is_none() {
                tracing::warn!("action_condition returned nothing; taking the false exit");
            }
            Outcome::Condition(condition.unwrap_or(false))
        } else {
            Outcome::Continue
        };
        Ok((outcome, Some(read_back)))
    }

    fn run(self, event: Event, levels: &[&str], mut globals: Map<String, Value>, sandbox: &Sandbox) -> Run {
        let chained = self.context.with(|ctx| self.chain(&ctx, event, levels, &globals, sandbox));
        let (outcome, read_back) = match chained {
            // A handler that let out the error of a host call cut short by the budget (`http_request`, storage)
            // ran out of time as much as one interrupted in a loop: a timeout wherever the deadline fell.
            Ok((Outcome::Failed { .. }, read_back)) if self.out_of_time() => (Outcome::Timeout, read_back),
            Ok(done) => done,
            Err(caught) => (self.classify(caught), None),
        };
        self.finish(!matches!(outcome, Outcome::Timeout | Outcome::OutOfMemory));
        if let Some(read_back) = read_back {
            globals.extend(read_back);
        }
        Run { outcome, globals }
    }
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

#[cfg(test)]
mod tests {
    use super::{PRELUDE, WRITABLE_GLOBALS, bundle, libraries};

    #[test]
    fn every_bundled_module_compiles_to_bytecode() {
        let modules = bundle().expect("bundle");
        let names: Vec<&str> = modules.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            ["portcullis:prelude", "portcullis:moment", "portcullis:moment-timezone", "portcullis:crypto-js"]
        );
        assert!(modules.iter().all(|(_, bytes)| !bytes.is_empty()));
    }

    #[test]
    fn libraries_load_only_for_scripts_that_name_them() {
        assert!(libraries(&["function after_action() { return true; }"]).is_empty());
        assert_eq!(libraries(&["", "moment().format()"]), ["portcullis:moment"]);
        assert_eq!(libraries(&["moment.tz('x', 'UTC')"]), ["portcullis:moment", "portcullis:moment-timezone"]);
        assert_eq!(libraries(&["CryptoJS.MD5('a')"]), ["portcullis:crypto-js"]);
    }

    #[test]
    fn the_prelude_reads_back_every_writable_global() {
        for name in WRITABLE_GLOBALS {
            assert!(PRELUDE.contains(&format!("'{name}'")), "{name} is not read back");
        }
    }
}
