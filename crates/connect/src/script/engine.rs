//! The engine: a QuickJS runtime kept per script thread, a fresh context per invocation, and the chain of
//! level scripts and handlers run in it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rquickjs::function::Opt;
use rquickjs::loader::bundle::Bundle;
use rquickjs::{Context, Function, Runtime};
use serde_json::{Map, Value};

use super::modules::{self, CORE_MODULE, Intrinsics, Part};
use super::{Budget, Event, Host, Limits, Outcome, Run, wrapper};
use crate::builtins;
use crate::credentials::{Sandbox, redact};

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
    /// A context with the core loaded that no script has run in, made by [`tidy`].
    ready: Option<(Intrinsics, Context)>,
    /// What the last invocation's context started with: what [`tidy`] readies next.
    readies: Intrinsics,
    /// The last invocation's context, dropped by [`tidy`] rather than while its caller waits.
    spent: Option<Context>,
}

/// How long readying a context may take (the core only; far more than it needs).
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
        let modules = Bundle(modules::bundle()?);
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
        Ok(Self {
            runtime,
            arm,
            interrupted,
            memory_bytes: limits.memory_bytes,
            ready: None,
            readies: Intrinsics::default(),
            spent: None,
        })
    }

    fn keep(mut self, spent: Context) {
        self.arm.borrow_mut().budget = None;
        self.spent = Some(spent);
        SPARE.with(|s| *s.borrow_mut() = Some(self));
    }

    /// A new context with the core loaded; the parts come per invocation ([`Engine::install`]).
    fn fresh_context(runtime: &Runtime, intrinsics: Intrinsics) -> Result<Context, String> {
        let context = intrinsics.context(runtime).map_err(|e| e.to_string())?;
        context.with(|ctx| modules::import(&ctx, CORE_MODULE))?;
        Ok(context)
    }

    /// The ready context if it started with `intrinsics`, or a new one.
    fn context(&mut self, intrinsics: Intrinsics) -> Result<Context, String> {
        self.readies = intrinsics;
        match self.ready.take() {
            Some((readied, context)) if readied == intrinsics => Ok(context),
            _ => Self::fresh_context(&self.runtime, intrinsics),
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
            match Shell::fresh_context(&shell.runtime, shell.readies) {
                Ok(context) => shell.ready = Some((shell.readies, context)),
                // The next invocation makes its context itself, and reports what fails then.
                Err(e) => tracing::warn!(error = %e, "could not ready a script context"),
            }
        }
    });
}

/// A host function's failure as the JavaScript side's `check` reads it: the message after a NUL.
fn failure(message: String) -> String {
    format!("\u{0}{message}")
}

/// `btoa` / `atob` with Cyclr's charset argument (UTF-8 when it is left out).
fn charset_coder<'js>(
    ctx: &rquickjs::Ctx<'js>,
    code: fn(&str, &str) -> Result<String, String>,
) -> rquickjs::Result<Function<'js>> {
    Function::new(ctx.clone(), move |text: String, charset: Opt<String>| {
        code(&text, charset.0.as_deref().unwrap_or("UTF-8")).unwrap_or_else(failure)
    })
}

/// What a host call that waits (storage, HTTP) needs of its invocation.
struct HostCall {
    host: Host,
    arm: Rc<RefCell<Arm>>,
    sandboxed: Rc<Cell<bool>>,
}

impl HostCall {
    /// Runs `call` within the script time left, and masks its answer once the step level runs, as the step's
    /// globals are: an API that echoes the request would otherwise show the step its credentials.
    fn answer(&self, call: impl FnOnce(&Host, Duration) -> String) -> String {
        let left = self.arm.borrow().deadline.saturating_duration_since(Instant::now());
        let answer = call(&self.host, left);
        if self.sandboxed.get() { redact(&answer, &self.host.sandbox.secrets) } else { answer }
    }
}

/// An engine failure, classified once the context is released (the runtime's memory figures cannot be read
/// while a context is in use).
struct Caught {
    detail: String,
    allocation: bool,
}

pub(super) struct Engine {
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
    pub(super) fn new(
        limits: Limits,
        host: &Host,
        budget: &Arc<Budget>,
        intrinsics: Intrinsics,
        parts: &[Part],
    ) -> Result<Self, String> {
        let mut shell = Shell::take_or_new(limits, budget)?;
        let context = shell.context(intrinsics)?;
        let engine = Self {
            runtime: shell.runtime.clone(),
            context,
            arm: Rc::clone(&shell.arm),
            sandboxed: Rc::new(Cell::new(false)),
            interrupted: Rc::clone(&shell.interrupted),
            limits,
            shell,
        };
        engine.install(host, parts)?;
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

    fn host_call(&self, host: &Host) -> HostCall {
        HostCall { host: host.clone(), arm: Rc::clone(&self.arm), sandboxed: Rc::clone(&self.sandboxed) }
    }

    /// Loads the parts the invocation's scripts name, each after the host functions it calls.
    fn install(&self, host: &Host, parts: &[Part]) -> Result<(), String> {
        self.context.with(|ctx| -> Result<(), String> {
            for &part in parts {
                self.host_functions(&ctx, host, part).map_err(|e| e.to_string())?;
                modules::import(&ctx, part.module())?;
            }
            Ok(())
        })
    }

    /// The `__host_*` functions a part calls. Host errors come back as strings starting with NUL.
    fn host_functions(&self, ctx: &rquickjs::Ctx<'_>, host: &Host, part: Part) -> rquickjs::Result<()> {
        let g = ctx.globals();
        match part {
            Part::Console => {
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
                    })?,
                )
            }
            Part::Encoding => {
                g.set("__host_btoa", charset_coder(ctx, builtins::btoa)?)?;
                g.set("__host_atob", charset_coder(ctx, builtins::atob)?)?;
                g.set(
                    "__host_sign",
                    Function::new(ctx.clone(), |a: String, k: String, v: String| {
                        builtins::sign(&a, &k, &v).unwrap_or_else(failure)
                    })?,
                )
            }
            Part::Formats => {
                g.set(
                    "__host_csv",
                    Function::new(ctx.clone(), |csv: String, delimiter: String, header: bool| {
                        builtins::csv_parse(&csv, &delimiter, header).map_or_else(failure, |v| v.to_string())
                    })?,
                )?;
                g.set(
                    "__host_xml_deserialize",
                    Function::new(ctx.clone(), |xml: String| {
                        builtins::xml_deserialize(&xml).map_or_else(failure, |v| v.to_string())
                    })?,
                )
            }
            Part::Storage => {
                let call = self.host_call(host);
                g.set(
                    "__host_storage",
                    Function::new(ctx.clone(), move |scope: String, op: String, key: String, value: String| {
                        call.answer(|host, left| builtins::storage(host, left, &scope, &op, &key, &value))
                    })?,
                )
            }
            Part::Http => {
                let call = self.host_call(host);
                g.set(
                    "__host_http",
                    Function::new(ctx.clone(), move |request: String| {
                        call.answer(|host, left| builtins::http_request(host, left, &request))
                    })?,
                )
            }
            Part::Moment | Part::MomentTimezone | Part::CryptoJs => Ok(()),
        }
    }

    fn caught(ctx: &rquickjs::Ctx<'_>, err: &rquickjs::Error) -> Caught {
        let detail = if matches!(err, rquickjs::Error::Exception) {
            modules::pending_message(ctx).unwrap_or_default()
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

    fn eval_level(ctx: &rquickjs::Ctx<'_>, src: &str, event: Event) -> Result<(), Caught> {
        // Sloppy mode, as Cyclr's engine runs scripts: assigning an undeclared name creates a global.
        let mut options = rquickjs::context::EvalOptions::default();
        options.strict = false;
        let thrown: String = ctx.eval_with_options(wrapper(src, event), options).map_err(|e| Self::caught(ctx, &e))?;
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
            Self::eval_level(ctx, src, event)?;
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
            Self::eval_level(ctx, step, event)?;
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

    pub(super) fn run(self, event: Event, levels: &[&str], mut globals: Map<String, Value>, sandbox: &Sandbox) -> Run {
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
