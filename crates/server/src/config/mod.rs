//! Configuration: defaults → `portcullis.toml` → `PORTCULLIS_*` environment variables, layered by figment.
//!
//! Nested keys use a double underscore in the environment: `server.listen` is `PORTCULLIS_SERVER__LISTEN`.
//! Every key, its default and its variable are listed in `portcullis.reference.toml` at the repository
//! root; a test fails when that file and [`Config`] drift apart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use portcullis_core::keys::{KeyPolicy, SigningAlgorithm};
use serde::{Deserialize, Serialize};

mod secret;

pub use secret::Secret;

/// Prefix of every configuration environment variable.
pub const ENV_PREFIX: &str = "PORTCULLIS_";

/// The port `portcullis serve` listens on by default.
pub const DEFAULT_PORT: u16 = 7420;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Directory of the embedded database, the generated master key and the admin token.
    pub data_dir: PathBuf,
    /// Base64 of 32 bytes sealing secrets at rest; empty: generated once into `data_dir/master.key`.
    pub master_key: Secret,
    /// HTTP server.
    pub server: ServerConfig,
    /// Storage backend.
    pub store: StoreConfig,
    /// Signing keys.
    pub keys: KeysConfig,
    /// Sessions.
    pub session: SessionSettings,
    /// The hosted login flow.
    pub login: LoginSettings,
    /// Outgoing mail (login codes).
    pub smtp: SmtpSettings,
    /// Admin API.
    pub admin: AdminConfig,
    /// The connector runtime.
    pub connectors: ConnectorsSettings,
    /// `[events]`
    pub events: EventsSettings,
    /// Logging.
    pub log: LogConfig,
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Socket address to listen on.
    pub listen: String,
    /// Public base URL (issuer); empty: `http://<listen>` (loopback when listening on a wildcard address).
    pub public_url: String,
    /// Largest accepted request body.
    pub request_body_limit_bytes: usize,
    /// A request still running after this long is answered 503.
    pub request_timeout_secs: u64,
    /// On SIGTERM/SIGINT, in-flight requests get this long to finish.
    pub shutdown_grace_secs: u64,
    /// Peers whose `X-Forwarded-For` is believed (exact IP addresses); others are the client themselves.
    pub trusted_proxies: Vec<String>,
}

/// `[store]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite` (embedded) or `postgres` (shared by many instances).
    pub backend: StoreBackend,
    /// Apply schema migrations when `serve` starts.
    pub migrate_on_start: bool,
    /// SQLite file; empty: `data_dir/portcullis.db`.
    pub sqlite_path: String,
    /// SQLite reader connections (reads run on them inline).
    pub sqlite_readers: usize,
    /// SQLite commit durability: `normal` or `full`.
    pub sqlite_synchronous: SqliteSynchronous,
    /// PostgreSQL connection URL.
    pub postgres_url: Secret,
    /// Largest number of PostgreSQL connections.
    pub postgres_pool_size: usize,
    /// How long to wait for a PostgreSQL connection.
    pub postgres_connect_timeout_secs: u64,
}

/// Storage backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// SQLite durability modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    /// Sync at checkpoints.
    Normal,
    /// Sync every commit.
    Full,
}

/// `[keys]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeysConfig {
    /// Algorithm of new signing keys: `EdDSA` or `RS256`.
    pub algorithm: SigningAlgorithm,
    /// Algorithm of the strict OAuth face's ID tokens; OIDC requires RS256 to be available.
    pub id_token_algorithm: SigningAlgorithm,
    /// A new key is made when the newest has signed this long.
    pub rotation_interval_secs: u64,
    /// New keys are published this long before they sign.
    pub publish_lead_secs: u64,
    /// Replaced keys stay published this long.
    pub retain_after_retirement_secs: u64,
}

/// `[session]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    /// Access-token lifetime.
    pub access_token_validity_secs: u64,
    /// Refresh-token lifetime, reset at every rotation.
    pub refresh_token_validity_secs: u64,
    /// How long the refresh token rotated last may be used again without counting as theft (0–300).
    pub refresh_grace_secs: u64,
    /// Largest custom-claims payload in bytes.
    pub max_claims_bytes: usize,
    /// Base path of the frontend endpoints (`<base>/session/refresh`, `<base>/signout`).
    pub api_base_path: String,
    /// `Domain` of session cookies; empty: host-only.
    pub cookie_domain: String,
    /// Domains of earlier deployments whose duplicate cookies are expired; `""` stands for host-only.
    pub older_cookie_domains: Vec<String>,
    /// `SameSite` of session cookies: `lax`, `strict` or `none`.
    pub cookie_same_site: CookieSameSite,
    /// `Secure` on session cookies: `auto` (when the public URL is https), `always` or `never`.
    pub cookie_secure: CookieSecure,
    /// CSRF protection of cookie-mode requests: `via-custom-header` (the SDK's `rid`) or `none`.
    pub anti_csrf: AntiCsrf,
    /// Origins of web pages allowed to call the session endpoints with credentials (exact, no `*`).
    pub cors_allowed_origins: Vec<String>,
}

/// `SameSite` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CookieSameSite {
    /// Lax.
    Lax,
    /// Strict.
    Strict,
    /// None (needs Secure).
    None,
}

/// `Secure` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CookieSecure {
    /// When the public URL is https.
    Auto,
    /// Always.
    Always,
    /// Never (plain-http development only).
    Never,
}

/// Anti-CSRF modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AntiCsrf {
    /// Cookie-mode requests that change state must carry the `rid` header, which forces a CORS preflight.
    ViaCustomHeader,
    /// No check (only with `SameSite=strict` or a single-origin deployment).
    None,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            access_token_validity_secs: 3600,
            refresh_token_validity_secs: 100 * 24 * 3600,
            refresh_grace_secs: 30,
            max_claims_bytes: 3072,
            api_base_path: "/auth".to_owned(),
            cookie_domain: String::new(),
            older_cookie_domains: Vec::new(),
            cookie_same_site: CookieSameSite::Lax,
            cookie_secure: CookieSecure::Auto,
            anti_csrf: AntiCsrf::ViaCustomHeader,
            cors_allowed_origins: Vec::new(),
        }
    }
}

/// `[login]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginSettings {
    /// Serve the outbox of login emails at `GET /dev/outbox` (development and tests only: it shows codes).
    pub dev_outbox: bool,
    /// Requests per client IP and minute on the hosted pages, mail links and direct authentication; 0: off.
    pub page_requests_per_ip_per_minute: u32,
    /// Requests per client IP and minute on the token, userinfo and logout endpoints; 0: off.
    pub api_requests_per_ip_per_minute: u32,
    /// Email steps per client IP and hour before the captcha level rises; 0: per-IP escalation off.
    pub captcha_ip_allowance: u32,
    /// Digits of the mailed login codes, 6–10 (6 digits are about 20 bits).
    pub code_digits: u8,
    /// Consecutive wrong codes per account (organization and email) before its email step needs the
    /// highest captcha and each attempt allows one wrong code, until a login; 1–100.
    pub max_code_failures: u32,
}

impl Default for LoginSettings {
    fn default() -> Self {
        Self {
            dev_outbox: false,
            page_requests_per_ip_per_minute: 60,
            api_requests_per_ip_per_minute: 600,
            captcha_ip_allowance: portcullis_core::login::DEFAULT_CAPTCHA_IP_ALLOWANCE,
            code_digits: portcullis_core::login::attempt::DEFAULT_CODE_DIGITS,
            max_code_failures: portcullis_core::login::attempt::DEFAULT_MAX_CODE_FAILURES,
        }
    }
}

/// `[connectors]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectorsSettings {
    /// Directory of connector definitions (`*.yaml`); empty: no connectors.
    pub dir: PathBuf,
    /// Wall-clock budget of all the script work of one call (every hook at every level, host calls included).
    pub script_timeout_secs: u64,
    /// Heap limit of one script context.
    pub script_memory_limit_bytes: usize,
    /// Timeout of one upstream request.
    pub http_timeout_secs: u64,
    /// A 429 asking to wait at most this long is waited out inside the call, once.
    pub max_inline_rate_limit_wait_secs: u64,
    /// Networks (`10.0.0.0/8`) or addresses (`127.0.0.1`) outbound connector requests may reach although they
    /// are loopback, private, link-local, multicast or otherwise reserved.
    pub egress_allow: Vec<String>,
    /// Scripts that may run at once in this process; 0: half the CPUs, at least 1.
    pub max_concurrent_scripts: usize,
    /// How long a script waits for a free slot before the call answers `scriptsBusy`.
    pub script_queue_wait_ms: u64,
    /// Organization API keys may send a step `script` with a call (the admin API always may).
    pub api_key_step_scripts: bool,
    /// After a call's retry failed authentication again (the account needs re-authorization), calls of that
    /// account fail fast for this long before one probes the API again (0–86400).
    pub reauth_cooldown_secs: u64,
}

impl Default for ConnectorsSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::new(),
            script_timeout_secs: 60,
            script_memory_limit_bytes: 32 * 1024 * 1024,
            http_timeout_secs: 30,
            max_inline_rate_limit_wait_secs: 5,
            egress_allow: Vec::new(),
            max_concurrent_scripts: 0,
            script_queue_wait_ms: 1000,
            api_key_step_scripts: false,
            reauth_cooldown_secs: 30,
        }
    }
}

/// `[events]`: delivery of outbound events to organizations' endpoints (docs/events.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsSettings {
    /// Whether this instance runs the delivery worker (one instance at a time delivers, under a lease).
    pub deliver: bool,
    /// How often the worker looks for new events and due retries.
    pub poll_interval_ms: u64,
    /// Timeout of one delivery request.
    pub http_timeout_secs: u64,
    /// Wait after a delivery's first failure; doubled after each further one.
    pub retry_initial_secs: u64,
    /// Longest wait between two attempts.
    pub retry_max_secs: u64,
    /// Attempts before a delivery is dead (kept in the log, sent again by a replay).
    pub max_attempts: u32,
    /// After a secret rotation the older secret keeps signing beside the new one for this long.
    pub secret_overlap_secs: u64,
}

impl Default for EventsSettings {
    fn default() -> Self {
        Self {
            deliver: true,
            poll_interval_ms: 1000,
            http_timeout_secs: 15,
            retry_initial_secs: 5,
            retry_max_secs: 3600,
            max_attempts: 16,
            secret_overlap_secs: 86_400,
        }
    }
}

/// `[smtp]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpSettings {
    /// SMTP server; empty: no mail is sent (then only the dev outbox can deliver codes).
    pub host: String,
    /// SMTP port.
    pub port: u16,
    /// `starttls`, `tls` (implicit, usually port 465) or `none` (loopback testing only).
    pub security: SmtpSecurity,
    /// User name; empty: no authentication.
    pub username: String,
    /// Password.
    pub password: Secret,
    /// The `From` address.
    pub from: String,
    /// Seconds to wait for the SMTP server.
    pub timeout_secs: u64,
}

/// SMTP transport security.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Upgrade a plain connection with STARTTLS (required).
    Starttls,
    /// TLS from the first byte.
    Tls,
    /// No encryption.
    None,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 587,
            security: SmtpSecurity::Starttls,
            username: String::new(),
            password: Secret::default(),
            from: "Portcullis <no-reply@localhost>".to_owned(),
            timeout_secs: 10,
        }
    }
}

/// `[admin]`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Bearer token of the admin API; empty: generated once into `data_dir/admin.token`.
    pub token: Secret,
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `portcullis_server=debug,info`; `RUST_LOG` wins when set.
    pub level: String,
    /// `pretty` for people, `json` for log collectors.
    pub format: LogFormat,
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./portcullis-data"),
            master_key: Secret::default(),
            server: ServerConfig::default(),
            store: StoreConfig::default(),
            keys: KeysConfig::default(),
            session: SessionSettings::default(),
            login: LoginSettings::default(),
            smtp: SmtpSettings::default(),
            admin: AdminConfig::default(),
            connectors: ConnectorsSettings::default(),
            events: EventsSettings::default(),
            log: LogConfig::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: format!("127.0.0.1:{DEFAULT_PORT}"),
            public_url: String::new(),
            request_body_limit_bytes: 64 * 1024,
            request_timeout_secs: 90,
            shutdown_grace_secs: 30,
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: StoreBackend::Sqlite,
            migrate_on_start: true,
            sqlite_path: String::new(),
            sqlite_readers: 4,
            sqlite_synchronous: SqliteSynchronous::Normal,
            postgres_url: Secret::default(),
            postgres_pool_size: 16,
            postgres_connect_timeout_secs: 5,
        }
    }
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            algorithm: SigningAlgorithm::EdDSA,
            id_token_algorithm: SigningAlgorithm::RS256,
            rotation_interval_secs: 7 * 24 * 3600,
            publish_lead_secs: 60,
            retain_after_retirement_secs: 2 * 3600,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".to_owned(), format: LogFormat::Pretty }
    }
}

/// Settings given as command-line flags: the last layer, over the file and the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandLine {
    /// `--data-dir`: `data_dir`.
    pub data_dir: Option<PathBuf>,
    /// `--listen`: `server.listen`.
    pub listen: Option<String>,
    /// `--port`: the port of `server.listen`, its address kept.
    pub port: Option<u16>,
}

/// A configuration that cannot be used. The message names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Loads defaults, then `file` if it exists (an explicitly named file must exist), then the
    /// environment, and validates the result.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key and where the bad value came from.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, Env::prefixed(ENV_PREFIX))
    }

    /// Like [`load`](Self::load), with command-line flags layered over the environment.
    ///
    /// # Errors
    /// See [`load`](Self::load).
    pub fn load_with(file: Option<&Path>, flags: &CommandLine) -> Result<Self, ConfigError> {
        Self::load_layers(file, Env::prefixed(ENV_PREFIX), flags)
    }

    /// Like [`load`](Self::load), with the environment given (for tests).
    ///
    /// # Errors
    /// See [`load`](Self::load).
    pub fn load_from(file: Option<&Path>, env: Env) -> Result<Self, ConfigError> {
        Self::load_layers(file, env, &CommandLine::default())
    }

    fn load_layers(file: Option<&Path>, env: Env, flags: &CommandLine) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Self::default()));
        match file {
            Some(path) if !path.exists() => {
                return Err(ConfigError(format!("the configuration file {} does not exist", path.display())));
            }
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if Path::new("portcullis.toml").exists() => {
                figment = figment.merge(Toml::file_exact("portcullis.toml"))
            }
            None => {}
        }
        // `PORTCULLIS_CONFIG` names the file; `PORTCULLIS_TEST_*` belong to the test suite.
        let env = env.split("__").filter(|key| {
            let key = key.as_str().to_ascii_lowercase();
            key != "config" && !key.starts_with("test_")
        });
        figment = figment.merge(env);
        if let Some(dir) = &flags.data_dir {
            figment = figment.merge(Serialized::default("data_dir", dir));
        }
        if let Some(listen) = &flags.listen {
            figment = figment.merge(Serialized::default("server.listen", listen));
        }
        let mut config: Self = figment.extract().map_err(|e| ConfigError(e.to_string()))?;
        if let Some(port) = flags.port
            && let Ok(mut address) = config.server.listen.parse::<SocketAddr>()
        {
            address.set_port(port);
            config.server.listen = address.to_string();
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("`{key}` {why}")));
        if self.server.listen.parse::<SocketAddr>().is_err() {
            return bad("server.listen", "must be an IP socket address such as 127.0.0.1:7420");
        }
        let url = &self.server.public_url;
        if !url.is_empty() && !url.starts_with("http://") && !url.starts_with("https://") {
            return bad("server.public_url", "must start with http:// or https://");
        }
        if self.server.request_body_limit_bytes < 1024 {
            return bad("server.request_body_limit_bytes", "must be at least 1024");
        }
        if self.server.request_timeout_secs == 0 {
            return bad("server.request_timeout_secs", "must be at least 1");
        }
        if self.store.backend == StoreBackend::Postgres && self.store.postgres_url.is_empty() {
            return bad("store.postgres_url", "is required when `store.backend` is `postgres`");
        }
        if self.store.sqlite_readers == 0 || self.store.postgres_pool_size == 0 {
            return bad("store.sqlite_readers / store.postgres_pool_size", "must be at least 1");
        }
        if self.keys.publish_lead_secs == 0 || self.keys.rotation_interval_secs <= self.keys.publish_lead_secs {
            return bad(
                "keys.rotation_interval_secs",
                "must be longer than `keys.publish_lead_secs`, which must be at least 1",
            );
        }
        let session = &self.session;
        if session.access_token_validity_secs == 0
            || session.refresh_token_validity_secs <= session.access_token_validity_secs
        {
            return bad(
                "session.refresh_token_validity_secs",
                "must be longer than `session.access_token_validity_secs`, which must be at least 1",
            );
        }
        let events = &self.events;
        if !(10..=60_000).contains(&events.poll_interval_ms) {
            return bad("events.poll_interval_ms", "must be between 10 and 60000");
        }
        if !(1..=300).contains(&events.http_timeout_secs) {
            return bad("events.http_timeout_secs", "must be between 1 and 300");
        }
        if events.retry_initial_secs == 0 || events.retry_initial_secs > events.retry_max_secs {
            return bad("events.retry_initial_secs", "must be at least 1 and at most events.retry_max_secs");
        }
        if events.retry_max_secs > 86_400 {
            return bad("events.retry_max_secs", "must be at most 86400");
        }
        if !(1..=100).contains(&events.max_attempts) {
            return bad("events.max_attempts", "must be between 1 and 100");
        }
        if events.secret_overlap_secs > 7 * 86_400 {
            return bad("events.secret_overlap_secs", "must be at most 604800 (a week)");
        }
        if self.connectors.reauth_cooldown_secs > 86_400 {
            return bad("connectors.reauth_cooldown_secs", "must be between 0 and 86400");
        }
        if session.refresh_grace_secs > 300 {
            return bad("session.refresh_grace_secs", "must be between 0 and 300");
        }
        if !session.api_base_path.starts_with('/') || session.api_base_path.ends_with('/') {
            return bad("session.api_base_path", "must start with `/` and not end with one, such as /auth");
        }
        if let Some(origin) = session.cors_allowed_origins.iter().find(|o| {
            o.as_str() == "*"
                || !(o.starts_with("http://") || o.starts_with("https://"))
                || o.trim_end_matches('/') != o.as_str()
        }) {
            return bad(
                "session.cors_allowed_origins",
                &format!(
                    "lists `{origin}`: each entry must be an exact origin such as https://app.example.com (credentials forbid `*`)"
                ),
            );
        }
        if session.cookie_same_site == CookieSameSite::None && !self.cookies_secure() {
            return bad(
                "session.cookie_same_site",
                "`none` needs secure cookies: an https `server.public_url` or `session.cookie_secure = \"always\"`",
            );
        }
        let digits =
            portcullis_core::login::attempt::MIN_CODE_DIGITS..=portcullis_core::login::attempt::MAX_CODE_DIGITS;
        if !digits.contains(&self.login.code_digits) {
            return bad(
                "login.code_digits",
                &format!(
                    "must be between {} and {} (is {}): shorter codes can be guessed, NIST SP 800-63B asks for at least 20 bits",
                    digits.start(),
                    digits.end(),
                    self.login.code_digits
                ),
            );
        }
        let cap = portcullis_core::login::attempt::MAX_CODE_FAILURES_LIMIT;
        if !(1..=cap).contains(&self.login.max_code_failures) {
            return bad(
                "login.max_code_failures",
                &format!(
                    "must be between 1 and {cap} (is {}): NIST SP 800-63B allows at most {cap} consecutive failures",
                    self.login.max_code_failures
                ),
            );
        }
        if !self.admin.token.is_empty() && self.admin.token.expose().len() < 32 {
            return bad("admin.token", "must be at least 32 characters");
        }
        Ok(())
    }

    /// The public base URL, without a trailing slash. Unset, it is derived from the listen address; a
    /// wildcard address (`0.0.0.0`, `[::]`) cannot be browsed to, so the derived URL names loopback.
    #[must_use]
    pub fn public_url(&self) -> String {
        if self.server.public_url.is_empty() {
            match self.server.listen.parse::<SocketAddr>() {
                Ok(mut address) if address.ip().is_unspecified() => {
                    let loopback = match address {
                        SocketAddr::V4(_) => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                        SocketAddr::V6(_) => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
                    };
                    address.set_ip(loopback);
                    format!("http://{address}")
                }
                _ => format!("http://{}", self.server.listen),
            }
        } else {
            self.server.public_url.trim_end_matches('/').to_owned()
        }
    }

    /// The SQLite file.
    #[must_use]
    pub fn sqlite_path(&self) -> PathBuf {
        if self.store.sqlite_path.is_empty() {
            self.data_dir.join("portcullis.db")
        } else {
            PathBuf::from(&self.store.sqlite_path)
        }
    }

    /// Whether session cookies get `Secure`.
    #[must_use]
    pub fn cookies_secure(&self) -> bool {
        match self.session.cookie_secure {
            CookieSecure::Always => true,
            CookieSecure::Never => false,
            CookieSecure::Auto => self.server.public_url.starts_with("https://"),
        }
    }

    /// The rotation policy of the ID-token keys: the same schedule, their own algorithm.
    #[must_use]
    pub const fn id_token_key_policy(&self) -> KeyPolicy {
        KeyPolicy { algorithm: self.keys.id_token_algorithm, ..self.key_policy() }
    }

    /// The key rotation policy.
    #[must_use]
    pub const fn key_policy(&self) -> KeyPolicy {
        KeyPolicy {
            algorithm: self.keys.algorithm,
            rotation_interval: Duration::from_secs(self.keys.rotation_interval_secs),
            publish_lead: Duration::from_secs(self.keys.publish_lead_secs),
            retain_after_retirement: Duration::from_secs(self.keys.retain_after_retirement_secs),
        }
    }
}
