//! The JavaScript a context is given: the host's core (every context), and the parts a context gets only when
//! one of its scripts names what they define: the host's built-ins and the bundled libraries. Each is an ES
//! module, compiled to bytecode once per process (the safe bytecode API is for modules); the libraries' UMD
//! wrappers see `this` = `globalThis` and so define their usual globals.
//!
//! A part that no script of the invocation names costs nothing: a plain hook's context holds the core alone.
//! A script that reaches a built-in by a computed name (`globalThis['http_' + 'request']`) finds it undefined.

use std::sync::OnceLock;

use rquickjs::{Context, Module, Runtime, WriteOptions};

/// The exception classes, the read-back of globals and the level and handler runners.
pub(super) const CORE: &str = include_str!("prelude/core.js");
pub(super) const CORE_MODULE: &str = "portcullis:prelude";

/// What a context gets beyond the core, in the order it is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    /// `console.log`.
    Console,
    /// `btoa` and `atob` with a charset, `cyclr_sign`.
    Encoding,
    /// `cyclr_csv_parse`, `cyclr_xml_serialize`, `cyclr_xml_deserialize`.
    Formats,
    /// `cyclr_storage_*` and `cycle_storage_*`.
    Storage,
    /// `http_request`.
    Http,
    /// `moment`.
    Moment,
    /// Moment Timezone (`moment.tz`), after `moment`.
    MomentTimezone,
    /// `CryptoJS`.
    CryptoJs,
}

impl Part {
    const ALL: [Self; 8] = [
        Self::Console,
        Self::Encoding,
        Self::Formats,
        Self::Storage,
        Self::Http,
        Self::Moment,
        Self::MomentTimezone,
        Self::CryptoJs,
    ];

    pub(super) const fn module(self) -> &'static str {
        match self {
            Self::Console => "portcullis:console",
            Self::Encoding => "portcullis:encoding",
            Self::Formats => "portcullis:formats",
            Self::Storage => "portcullis:storage",
            Self::Http => "portcullis:http",
            Self::Moment => "portcullis:moment",
            Self::MomentTimezone => "portcullis:moment-timezone",
            Self::CryptoJs => "portcullis:crypto-js",
        }
    }

    fn source(self) -> String {
        match self {
            Self::Console => include_str!("prelude/console.js").to_owned(),
            Self::Encoding => include_str!("prelude/encoding.js").to_owned(),
            Self::Formats => include_str!("prelude/formats.js").to_owned(),
            Self::Storage => include_str!("prelude/storage.js").to_owned(),
            Self::Http => include_str!("prelude/http.js").to_owned(),
            Self::Moment => library(include_str!("../../vendor/moment/moment.min.js")),
            Self::MomentTimezone => {
                library(include_str!("../../vendor/moment-timezone/moment-timezone-with-data-1970-2030.min.js"))
            }
            Self::CryptoJs => library(include_str!("../../vendor/crypto-js/crypto-js.js")),
        }
    }

    /// Whether a script that contains `uses` needs this part: by the names it defines, and for the libraries
    /// by the names Cyclr documents (`moment`, `moment.tz`, `CryptoJS`).
    fn named(self, uses: &dyn Fn(&str) -> bool) -> bool {
        match self {
            Self::Console => uses("console"),
            Self::Encoding => uses("btoa") || uses("atob") || uses("cyclr_sign"),
            Self::Formats => uses("cyclr_csv_parse") || uses("cyclr_xml_"),
            Self::Storage => uses("_storage_"),
            Self::Http => uses("http_request"),
            Self::Moment => uses("moment"),
            Self::MomentTimezone => uses("moment") && uses(".tz"),
            Self::CryptoJs => uses("CryptoJS"),
        }
    }
}

/// Which of QuickJS's built-ins a context starts with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum Intrinsics {
    /// QuickJS's standard set (`Context::full`) without the typed arrays and QuickJS's own Latin-1 `btoa` and
    /// `atob` (the encoding part brings Cyclr's): a third cheaper to make and to collect.
    #[default]
    Plain,
    /// QuickJS's standard set.
    Full,
}

/// The names of the built-ins a [`Intrinsics::Plain`] context lacks (`SharedArrayBuffer` contains the first).
const TYPED_ARRAY_NAMES: [&str; 15] = [
    "ArrayBuffer",
    "DataView",
    "Atomics",
    "Int8Array",
    "Uint8Array",
    "Uint8ClampedArray",
    "Int16Array",
    "Uint16Array",
    "Int32Array",
    "Uint32Array",
    "Float16Array",
    "Float32Array",
    "Float64Array",
    "BigInt64Array",
    "BigUint64Array",
];

impl Intrinsics {
    /// The standard set for scripts that name a typed array, or that load `CryptoJS`, which reads byte arrays
    /// when they exist; the plain set for the others.
    pub(super) fn for_scripts(levels: &[&str], parts: &[Part]) -> Self {
        let named = TYPED_ARRAY_NAMES.iter().any(|name| levels.iter().any(|src| src.contains(name)));
        if named || parts.contains(&Part::CryptoJs) { Self::Full } else { Self::Plain }
    }

    pub(super) fn context(self, runtime: &Runtime) -> rquickjs::Result<Context> {
        use rquickjs::context::intrinsic::{
            Date, Eval, Json, MapSet, Performance, Promise, Proxy, RegExp, RegExpCompiler, WeakRef,
        };
        match self {
            Self::Plain => Context::custom::<(
                Date,
                Eval,
                RegExpCompiler,
                RegExp,
                Json,
                Proxy,
                MapSet,
                Promise,
                WeakRef,
                Performance,
            )>(runtime),
            Self::Full => Context::full(runtime),
        }
    }
}

/// The parts a set of level scripts names.
pub(super) fn parts(levels: &[&str]) -> Vec<Part> {
    let uses = |needle: &str| levels.iter().any(|src| src.contains(needle));
    Part::ALL.into_iter().filter(|part| part.named(&uses)).collect()
}

fn library(source: &str) -> String {
    format!("(function () {{\n{source}\n}}).call(globalThis);")
}

/// Every module's bytecode, compiled once per process: bytecode names its atoms as strings, so it loads into
/// any runtime of this build. Loading it costs far less than parsing the source in every fresh context.
pub(super) fn bundle() -> Result<&'static [(&'static str, &'static [u8])], String> {
    type Compiled = Vec<(&'static str, Vec<u8>)>;
    static COMPILED: OnceLock<Result<Compiled, String>> = OnceLock::new();
    static TABLE: OnceLock<Vec<(&'static str, &'static [u8])>> = OnceLock::new();
    let compiled = COMPILED.get_or_init(|| {
        let sources = std::iter::once((CORE_MODULE, CORE.to_owned()))
            .chain(Part::ALL.into_iter().map(|part| (part.module(), part.source())));
        let runtime = Runtime::new().map_err(|e| e.to_string())?;
        let context = Context::full(&runtime).map_err(|e| e.to_string())?;
        context.with(|ctx| {
            sources
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

/// Loads and runs one module of the bundle in `ctx`.
pub(super) fn import(ctx: &rquickjs::Ctx<'_>, module: &str) -> Result<(), String> {
    Module::import(ctx, module)
        .and_then(|p| p.finish::<rquickjs::Value<'_>>())
        .map(drop)
        .map_err(|e| format!("{module}: {}", describe(ctx, &e)))
}

/// An engine error with the pending exception's message, when there is one.
pub(super) fn describe(ctx: &rquickjs::Ctx<'_>, err: &rquickjs::Error) -> String {
    if !matches!(err, rquickjs::Error::Exception) {
        return err.to_string();
    }
    pending_message(ctx).unwrap_or_else(|| err.to_string())
}

/// The pending exception's message (or the thrown string), taking the exception.
pub(super) fn pending_message(ctx: &rquickjs::Ctx<'_>) -> Option<String> {
    let value = ctx.catch();
    value
        .as_exception()
        .and_then(rquickjs::Exception::message)
        .or_else(|| value.as_string().and_then(|s| s.to_string().ok()))
}

#[cfg(test)]
mod tests {
    use super::{CORE, Intrinsics, Part, bundle, parts};
    use crate::script::WRITABLE_GLOBALS;

    #[test]
    fn every_module_compiles_to_bytecode() {
        let modules = bundle().expect("bundle");
        let names: Vec<&str> = modules.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            [
                "portcullis:prelude",
                "portcullis:console",
                "portcullis:encoding",
                "portcullis:formats",
                "portcullis:storage",
                "portcullis:http",
                "portcullis:moment",
                "portcullis:moment-timezone",
                "portcullis:crypto-js"
            ]
        );
        assert!(modules.iter().all(|(_, bytes)| !bytes.is_empty()));
    }

    #[test]
    fn parts_load_only_for_scripts_that_name_them() {
        assert!(
            parts(&["function after_action() { if (x) throw new AuthRefreshException(); return true; }"]).is_empty()
        );
        assert_eq!(parts(&["", "moment().format()"]), [Part::Moment]);
        assert_eq!(parts(&["moment.tz('x', 'UTC')"]), [Part::Moment, Part::MomentTimezone]);
        assert_eq!(parts(&["CryptoJS.MD5('a')"]), [Part::CryptoJs]);
        assert_eq!(parts(&["console.log(1)", "", "http_request({})"]), [Part::Console, Part::Http]);
        assert_eq!(parts(&["btoa('a')"]), [Part::Encoding]);
        assert_eq!(parts(&["cyclr_sign('HMACSHA256', k, v)"]), [Part::Encoding]);
        assert_eq!(parts(&["cyclr_xml_serialize(o)"]), [Part::Formats]);
        assert_eq!(parts(&["cyclr_csv_parse(t)"]), [Part::Formats]);
        assert_eq!(parts(&["cycle_storage_increment('n')"]), [Part::Storage]);
        assert_eq!(parts(&["cyclr_storage_get('n')"]), [Part::Storage]);
    }

    #[test]
    fn typed_arrays_come_with_the_scripts_that_name_them_or_crypto_js() {
        let plain = ["function after_action() { return [1, 2].map(String); }"];
        assert_eq!(Intrinsics::for_scripts(&plain, &parts(&plain)), Intrinsics::Plain);
        for src in ["new Uint8Array(4)", "new BigUint64Array(1)", "new SharedArrayBuffer(8)", "new DataView(b)"] {
            assert_eq!(Intrinsics::for_scripts(&["", src], &parts(&[src])), Intrinsics::Full, "{src}");
        }
        let crypto = ["CryptoJS.SHA256('a').toString()"];
        assert_eq!(Intrinsics::for_scripts(&crypto, &parts(&crypto)), Intrinsics::Full);
    }

    #[test]
    fn the_core_reads_back_every_writable_global() {
        for name in WRITABLE_GLOBALS {
            assert!(CORE.contains(&format!("'{name}'")), "{name} is not read back");
        }
    }
}
