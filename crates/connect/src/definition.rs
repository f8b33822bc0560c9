//! Connector definitions: the YAML format (schema in `schema/connector.schema.json`), loading, and checks
//! that report file, line and what is wrong.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::script;

/// A loaded, checked connector definition.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connector {
    /// Identifier used in URLs; defaults to the file name without extension.
    #[serde(default)]
    pub name: String,
    /// Human-readable description.
    #[serde(default)]
    pub description: String,
    /// Every method path is relative to this URL.
    pub base_url: String,
    /// How requests are authenticated.
    pub auth: Auth,
    /// Asked per account at install.
    #[serde(default)]
    pub properties: Vec<Property>,
    /// Set once for every account.
    #[serde(default)]
    pub partner_properties: Vec<PartnerProperty>,
    /// Connector-level script (handlers run for every method).
    #[serde(default)]
    pub script: Option<String>,
    /// The connector-level script in its own file, relative to the definition's directory, read byte for
    /// byte into `script` (no YAML quoting to get wrong).
    #[serde(default)]
    pub script_file: Option<PathBuf>,
    /// Query parameters of every method (values may hold merge fields; a method's own value wins, and
    /// [`IGNORE_PARAMETER`] leaves the parameter out of that method).
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Headers of every method, as `query`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The methods, by id.
    pub methods: BTreeMap<String, Method>,
    /// The Post Install Property Value Lookup Method.
    #[serde(default)]
    pub lookup: Option<Lookup>,
    /// The Post Install Test Auth Method.
    #[serde(default)]
    pub test_auth_method: Option<String>,
    /// Declarative recovery rules, checked before the hooks (method rules after these).
    #[serde(default)]
    pub recovery: Vec<RecoveryRule>,
    /// Requests per account connector; excess requests wait.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Where the definition came from.
    #[serde(skip)]
    pub source: PathBuf,
}

/// The auth type and its settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    /// No authentication.
    None,
    /// A key sent in a header (`method_auth_value` in scripts).
    ApiKey {
        /// Header name.
        #[serde(default = "default_auth_header")]
        header: String,
        /// Put before the key, e.g. `"Bearer "`.
        #[serde(default)]
        prefix: String,
    },
    /// `Authorization: Basic <base64(username:password)>`.
    Basic,
    /// Credentials in account properties; the lookup method stores the session value in a property that
    /// methods use as a merge field.
    Session,
    /// OAuth 2.
    Oauth2(OAuth2),
}

fn default_auth_header() -> String {
    "Authorization".to_owned()
}

/// OAuth 2 settings. `client_id` / `client_secret` may be merge fields (`{{ClientId}}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2 {
    /// Which grant.
    pub grant: Grant,
    /// Authorization endpoint (authorization code only).
    #[serde(default)]
    pub authorize_url: Option<String>,
    /// Access Token URL.
    pub token_url: String,
    /// Client id.
    #[serde(default)]
    pub client_id: String,
    /// Client secret.
    #[serde(default)]
    pub client_secret: String,
    /// Requested scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Send a PKCE S256 challenge (authorization code).
    #[serde(default)]
    pub pkce: bool,
    /// Refresh this many seconds before expiry at most; default `min(900, lifetime / 2)`.
    #[serde(default)]
    pub token_expiration_buffer_secs: Option<u64>,
}

/// OAuth 2 grant types (Cyclr's `OAuth2Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    /// `AuthorisationCode`.
    AuthorizationCode,
    /// `ClientCredentials`.
    ClientCredentials,
    /// `PasswordCredentials`: reads the `Username` and `Password` properties.
    Password,
}

/// An account property.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Property {
    /// Name, usable as `{{Name}}`.
    pub name: String,
    /// Masked in listings.
    #[serde(default)]
    pub sensitive: bool,
    /// Must be given at install.
    #[serde(default)]
    pub required: bool,
    /// Shown to whoever installs.
    #[serde(default)]
    pub description: String,
}

/// A partner property: one value for all accounts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerProperty {
    /// Name, usable as `{{Name}}`.
    pub name: String,
    /// The value.
    pub value: String,
    /// Masked in listings.
    #[serde(default)]
    pub sensitive: bool,
}

/// One HTTP request template.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Method {
    /// `GET`, `POST`, …
    #[serde(default = "default_http_method")]
    pub http_method: String,
    /// Path after `base_url`, with `{{Name}}` merge fields (not used by a webhook method).
    #[serde(default)]
    pub path: String,
    /// Query parameters (values may hold merge fields).
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Headers (values may hold merge fields).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON body template; string leaves may hold merge fields.
    #[serde(default)]
    pub body: Option<Value>,
    /// Send the body as `multipart/form-data`, one text part per top-level field. Such a request is never
    /// sent twice: a recovery renews the credentials but the call answers the original error.
    #[serde(default)]
    pub multipart: bool,
    /// Method-level script.
    #[serde(default)]
    pub script: Option<String>,
    /// The method-level script in its own file, as the connector's `script_file`.
    #[serde(default)]
    pub script_file: Option<PathBuf>,
    /// Inbound paging.
    #[serde(default)]
    pub paging: Option<Paging>,
    /// Outbound paging: the caller's records sent in several requests.
    #[serde(default)]
    pub outbound_paging: Option<OutboundPaging>,
    /// Declarative recovery rules for this method.
    #[serde(default)]
    pub recovery: Vec<RecoveryRule>,
    /// Requests of this method per account, on top of the connector's limit.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Makes the method an inbound webhook: the provider POSTs to the account's URL for it, and
    /// `before_webhook` / `after_webhook` run instead of a request.
    #[serde(default)]
    pub webhook: Option<Webhook>,
}

/// An inbound webhook method.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// How the provider signs its requests; without it the secret in the URL is the only proof.
    #[serde(default)]
    pub signature: Option<WebhookSignature>,
}

/// A provider's webhook signature scheme and where the account keeps the secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSignature {
    /// The scheme.
    pub scheme: SignatureScheme,
    /// The account property holding the signing secret.
    pub secret_property: String,
    /// With `hmac_sha256`: the header holding the signature (hex or base64 of the body's HMAC-SHA256).
    #[serde(default)]
    pub header: Option<String>,
    /// With `hmac_sha256`: text before the signature in the header (`sha256=`).
    #[serde(default)]
    pub prefix: String,
    /// Schemes with a signed timestamp (Stripe, Slack) refuse requests older or newer than this.
    #[serde(default = "default_signature_tolerance")]
    pub tolerance_secs: u64,
}

fn default_signature_tolerance() -> u64 {
    300
}

/// Webhook signature schemes of common providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureScheme {
    /// `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>` (GitHub).
    Github,
    /// `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256 of the body>` (Shopify).
    Shopify,
    /// `X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:{timestamp}:{body}">` with `X-Slack-Request-Timestamp`.
    Slack,
    /// `Stripe-Signature: t=<timestamp>,v1=<hex HMAC-SHA256 of "{t}.{body}">` (several `v1` allowed).
    Stripe,
    /// Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`; `whsec_` secrets).
    StandardWebhooks,
    /// A configured `header` holding the body's HMAC-SHA256 in hex or base64, after an optional `prefix`.
    HmacSha256,
}

/// Cyclr's configured limit: "Maximum Requests per Second" or "Number of Seconds between Requests" (one of them).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// At most this many requests per second.
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    /// At least this many seconds between requests.
    #[serde(default)]
    pub seconds_between_requests: Option<f64>,
}

impl RateLimit {
    /// The spacing between two requests.
    #[must_use]
    pub fn interval(&self) -> std::time::Duration {
        let secs = self.requests_per_second.map_or_else(|| self.seconds_between_requests.unwrap_or(0.0), |n| 1.0 / n);
        std::time::Duration::try_from_secs_f64(secs).unwrap_or_default()
    }

    fn is_valid(&self) -> bool {
        match (self.requests_per_second, self.seconds_between_requests) {
            (Some(n), None) => n.is_finite() && n > 0.0,
            (None, Some(s)) => s.is_finite() && s >= 0.0,
            _ => false,
        }
    }
}

/// A declarative recovery rule (reference §10; Airbyte's `HttpResponseFilter` shape): the first rule whose
/// status and body match decides, before any hook runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryRule {
    /// Statuses this rule applies to; empty: any.
    #[serde(default)]
    pub http_codes: Vec<u16>,
    /// Dotted path into the JSON body that must equal `equals`.
    #[serde(default)]
    pub body_path: Option<String>,
    /// The value at `body_path` (compared as text).
    #[serde(default)]
    pub equals: Option<String>,
    /// Text the raw body must contain.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// What to do.
    pub action: RecoveryAction,
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryAction {
    /// As `AuthRefreshException`.
    RefreshThenRetry,
    /// As `AuthSessionException`.
    ReloginThenRetry,
    /// Send the same request again once, without re-authenticating; matching again answers `upstreamError`.
    Retry,
    /// As a 429: honour `Retry-After`, then the ladder.
    RateLimited,
    /// Treat the response as this page's data; no hooks.
    Ignore,
    /// `upstreamError`; no hooks.
    Fail,
}

impl RecoveryRule {
    /// Whether the response matches.
    #[must_use]
    pub fn matches(&self, status: u16, body: &str) -> bool {
        if !self.http_codes.is_empty() && !self.http_codes.contains(&status) {
            return false;
        }
        if let Some(needle) = &self.body_contains
            && !body.contains(needle.as_str())
        {
            return false;
        }
        if let Some(path) = &self.body_path {
            let json: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            let found = path.split('.').try_fold(&json, |v, part| v.get(part));
            let text = found.map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned));
            return match (&self.equals, text) {
                (Some(expected), Some(actual)) => *expected == actual,
                (None, found) => found.is_some(),
                (Some(_), None) => false,
            };
        }
        true
    }
}

/// Inbound paging: each page runs `before_action` / `after_action`; the `CYCLR_PAGE_*` merge fields carry the
/// position; `after_action_paging` sees every page's items.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paging {
    /// How the next page is addressed.
    #[serde(rename = "type")]
    pub kind: PagingKind,
    /// `CYCLR_PAGE_SIZE`; a shorter page is the last (page number and offset).
    #[serde(default = "default_page_size")]
    pub page_size: u64,
    /// Stop after this many pages.
    #[serde(default = "default_max_pages")]
    pub max_pages: usize,
    /// Dotted path of the page's items in the response.
    #[serde(default)]
    pub items_path: Option<String>,
    /// Dotted path of the next URL or token in the response (next URL and token paging).
    #[serde(default)]
    pub next_path: Option<String>,
    /// Further continuation tokens (token paging): `CYCLR_PAGE_TOKEN_{NAME}` takes the value at each
    /// dotted path, for APIs that need several cursors.
    #[serde(default)]
    pub tokens: BTreeMap<String, String>,
}

/// Cyclr's outbound paging (`PagedOutbound`, `PageSizeOutbound`, `PagedOutboundLocation`): when the array at
/// `location` in the caller's body holds more than `page_size` records, each run of `page_size` records goes
/// in its own request, with the rest of the body unchanged.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundPaging {
    /// Where the array is, in Cyclr's notation (`data.[records]`; brackets optional); empty: the body itself.
    #[serde(default)]
    pub location: String,
    /// Records per request (`PageSizeOutbound`).
    #[serde(default = "default_page_size")]
    pub page_size: u64,
}

impl OutboundPaging {
    /// The location's path segments, brackets removed.
    #[must_use]
    pub fn path(&self) -> Vec<&str> {
        self.location
            .split('.')
            .map(|part| part.trim().trim_start_matches('[').trim_end_matches(']'))
            .filter(|part| !part.is_empty())
            .collect()
    }
}

/// A parameter value that leaves a connector-level parameter out of one method (Cyclr's variable).
pub const IGNORE_PARAMETER: &str = "CYCLR_IGNORE_PARAMETER";

/// Paging styles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PagingKind {
    /// `CYCLR_PAGE_NUMBER`, from 1.
    PageNumber,
    /// `CYCLR_PAGE_OFFSET`, from 0.
    Offset,
    /// The response names the next page's URL (`CYCLR_PAGE_NEXT_URL`).
    NextUrl,
    /// The response carries a continuation token (`CYCLR_PAGE_TOKEN`).
    Token,
}

const fn default_page_size() -> u64 {
    100
}

const fn default_max_pages() -> usize {
    10
}

fn default_http_method() -> String {
    "GET".to_owned()
}

/// The Post Install Property Value Lookup Method and where its answer goes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    /// Method id.
    pub method: String,
    /// Account property that receives the value.
    pub output_property: String,
    /// Dotted path into the JSON response, e.g. `session.id`.
    pub response_path: String,
    /// Re-run the lookup before a call once the stored session is this old (seconds since the account's
    /// credentials were last written); without it the lookup re-runs only when asked to.
    #[serde(default)]
    pub session_ttl_secs: Option<u64>,
}

/// A definition that failed to load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DefinitionError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl From<DefinitionError> for portcullis_core::Error {
    fn from(err: DefinitionError) -> Self {
        Self::new(portcullis_core::ErrorCode::ConnectorInvalid).with_message(err.to_string())
    }
}

const HTTP_METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

impl Connector {
    /// Reads and checks one definition file.
    ///
    /// # Errors
    /// Every problem found, each with file and line.
    pub fn load(path: &Path) -> Result<Self, Vec<DefinitionError>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![DefinitionError { file: path.to_owned(), line: None, message: format!("cannot read: {e}") }]
        })?;
        Self::parse(path, &text)
    }

    /// Parses and checks a definition; `path` names it in errors and gives the default name.
    ///
    /// # Errors
    /// Every problem found, each with file and line.
    pub fn parse(path: &Path, text: &str) -> Result<Self, Vec<DefinitionError>> {
        let error = |line: Option<usize>, message: String| DefinitionError { file: path.to_owned(), line, message };
        let mut connector: Self =
            serde_yaml_ng::from_str(text).map_err(|e| vec![error(e.location().map(|l| l.line()), e.to_string())])?;
        if connector.name.is_empty() {
            connector.name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        }
        connector.source = path.to_owned();
        let mut errors = Vec::new();
        let dir = path.parent().unwrap_or_else(|| Path::new(""));
        let mut read_script = |script: &mut Option<String>, file: Option<&PathBuf>, owner: &str| {
            let Some(file) = file else { return };
            match read_script_file(dir, file, script.is_some()) {
                Ok(text) => *script = Some(text),
                Err(message) => errors.push(error(line_of(text, "script_file"), format!("{owner}: {message}"))),
            }
        };
        read_script(&mut connector.script, connector.script_file.as_ref(), "connector");
        for (id, method) in &mut connector.methods {
            read_script(&mut method.script, method.script_file.as_ref(), &format!("method {id}"));
        }
        let mut check = |ok: bool, key: &str, message: String| {
            if !ok {
                errors.push(error(line_of(text, key), message));
            }
        };
        check(
            !connector.name.is_empty()
                && connector.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "name",
            format!("name {:?} must be letters, digits, '-' or '_'", connector.name),
        );
        if let Some(problem) = connector.url_problem(&connector.base_url) {
            check(false, "base_url", format!("base_url {:?} {problem}", connector.base_url));
        }
        if let Auth::Oauth2(oauth) = &connector.auth {
            if let Some(problem) = connector.url_problem(&oauth.token_url) {
                check(false, "token_url", format!("token_url {:?} {problem}", oauth.token_url));
            }
            if oauth.grant == Grant::AuthorizationCode {
                match oauth.authorize_url.as_deref() {
                    None => check(false, "grant", "the authorization_code grant needs an authorize_url".to_owned()),
                    Some(authorize) => {
                        if let Some(problem) = connector.url_problem(authorize) {
                            check(false, "authorize_url", format!("authorize_url {authorize:?} {problem}"));
                        }
                    }
                }
            }
        }
        for (id, method) in &connector.methods {
            check(method.webhook.is_some() || !method.path.is_empty(), id, format!("method {id}: a path is needed"));
            if let Some(signature) = method.webhook.as_ref().and_then(|w| w.signature.as_ref()) {
                check(
                    connector.properties.iter().any(|p| p.name == signature.secret_property),
                    "secret_property",
                    format!("method {id}: secret_property {:?} is not a property", signature.secret_property),
                );
                check(
                    signature.scheme != SignatureScheme::HmacSha256 || signature.header.is_some(),
                    "scheme",
                    format!("method {id}: the hmac_sha256 scheme needs a header"),
                );
            }
            check(
                HTTP_METHODS.contains(&method.http_method.as_str()),
                "http_method",
                format!("method {id}: http_method {:?} is not one of {HTTP_METHODS:?}", method.http_method),
            );
            if let Some(paging) = &method.paging {
                let needs = match paging.kind {
                    PagingKind::PageNumber | PagingKind::Offset => ("items_path", paging.items_path.is_some()),
                    PagingKind::NextUrl | PagingKind::Token => ("next_path", paging.next_path.is_some()),
                };
                check(needs.1, "paging", format!("method {id}: this paging type needs {}", needs.0));
                check(
                    paging.page_size > 0 && paging.max_pages > 0,
                    "paging",
                    format!("method {id}: page_size and max_pages must be positive"),
                );
                check(
                    paging.tokens.is_empty() || paging.kind == PagingKind::Token,
                    "tokens",
                    format!("method {id}: tokens are for token paging"),
                );
                for name in paging.tokens.keys() {
                    check(
                        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                        "tokens",
                        format!("method {id}: token name {name:?} must be letters, digits or '_'"),
                    );
                }
            }
            if let Some(outbound) = &method.outbound_paging {
                check(
                    outbound.page_size > 0,
                    "outbound_paging",
                    format!("method {id}: outbound_paging.page_size must be positive"),
                );
                check(
                    method.http_method != "GET" && method.http_method != "HEAD" && !method.multipart,
                    "outbound_paging",
                    format!("method {id}: outbound paging needs a JSON body (not GET, HEAD or multipart)"),
                );
            }
            if let Some(limit) = &method.rate_limit {
                check(
                    limit.is_valid(),
                    "rate_limit",
                    format!(
                        "method {id}: rate_limit needs one positive requests_per_second or seconds_between_requests"
                    ),
                );
            }
            if let Some(src) = &method.script
                && let Err(e) = script::check_syntax(src)
            {
                check(false, id, format!("method {id}: script does not compile: {e}"));
            }
        }
        if let Some(src) = &connector.script
            && let Err(e) = script::check_syntax(src)
        {
            check(false, "script", format!("connector script does not compile: {e}"));
        }
        if let Some(limit) = &connector.rate_limit {
            check(
                limit.is_valid(),
                "rate_limit",
                "rate_limit needs one positive requests_per_second or seconds_between_requests".to_owned(),
            );
        }
        if let Some(lookup) = &connector.lookup {
            check(
                connector.methods.contains_key(&lookup.method),
                "lookup",
                format!("lookup method {:?} is not a method of this connector", lookup.method),
            );
        }
        if matches!(connector.auth, Auth::Session) {
            check(connector.lookup.is_some(), "auth", "session auth needs a lookup method".to_owned());
        }
        if let Some(test) = &connector.test_auth_method {
            check(
                connector.methods.contains_key(test),
                "test_auth_method",
                format!("test_auth_method {test:?} is not a method of this connector"),
            );
        }
        if errors.is_empty() { Ok(connector) } else { Err(errors) }
    }

    /// Loads every `*.yaml` / `*.yml` file of a directory.
    ///
    /// # Errors
    /// Every problem in every file.
    pub fn load_dir(dir: &Path) -> Result<BTreeMap<String, Self>, Vec<DefinitionError>> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            vec![DefinitionError { file: dir.to_owned(), line: None, message: format!("cannot read directory: {e}") }]
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        paths.sort();
        let mut connectors = BTreeMap::new();
        let mut errors = Vec::new();
        for path in paths {
            match Self::load(&path) {
                Ok(c) => {
                    if connectors.contains_key(&c.name) {
                        errors.push(DefinitionError {
                            file: path.clone(),
                            line: line_of(&std::fs::read_to_string(&path).unwrap_or_default(), "name"),
                            message: format!("a connector named {:?} is already defined", c.name),
                        });
                    } else {
                        connectors.insert(c.name.clone(), c);
                    }
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        if errors.is_empty() { Ok(connectors) } else { Err(errors) }
    }

    /// The names of sensitive properties (account and partner).
    #[must_use]
    pub fn is_sensitive(&self, name: &str) -> bool {
        self.properties.iter().any(|p| p.sensitive && p.name == name)
            || self.partner_properties.iter().any(|p| p.sensitive && p.name == name)
    }

    /// Why a connector URL template (`base_url`, `token_url`, `authorize_url`) is unusable: each `{{Name}}`
    /// must be a property or a partner property (never a caller's merge field: these URLs decide where
    /// credentials go), and with its fields filled it must be an http(s) URL with a host.
    fn url_problem(&self, template: &str) -> Option<String> {
        let declared = |name: &str| {
            self.properties.iter().any(|p| p.name == name) || self.partner_properties.iter().any(|p| p.name == name)
        };
        if let Some((_, name)) = merge_fields(template).find(|(_, name)| !declared(name)) {
            return Some(format!("uses {{{{{name}}}}}, which is not a property or a partner property"));
        }
        let filled = merge_fields(template).fold(template.to_owned(), |url, (whole, _)| url.replacen(whole, "x", 1));
        match url::Url::parse(&filled) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => None,
            _ => Some("is not an http(s) URL".to_owned()),
        }
    }
}

/// The first line whose key is `key` (good enough to point an author at the right place).
/// Longest script file read.
const MAX_SCRIPT_FILE_BYTES: u64 = 1024 * 1024;

/// Reads a `script_file`: relative to the definition's directory and inside it, UTF-8, at most
/// [`MAX_SCRIPT_FILE_BYTES`], and not beside an inline `script`.
fn read_script_file(dir: &Path, file: &Path, has_inline: bool) -> Result<String, String> {
    let shown = file.display();
    if has_inline {
        return Err(format!("give either script or script_file ({shown}), not both"));
    }
    if !file.components().all(|c| matches!(c, std::path::Component::Normal(_))) {
        return Err(format!("script_file {shown} must be a path inside the definition's directory"));
    }
    let path = dir.join(file);
    let size = std::fs::metadata(&path).map_err(|e| format!("cannot read script_file {shown}: {e}"))?.len();
    if size > MAX_SCRIPT_FILE_BYTES {
        return Err(format!("script_file {shown} is larger than {MAX_SCRIPT_FILE_BYTES} bytes"));
    }
    std::fs::read_to_string(&path).map_err(|e| format!("cannot read script_file {shown} as UTF-8 text: {e}"))
}

/// A template's `{{Name}}` merge fields, in order: each as written and its trimmed name.
pub fn merge_fields(template: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = template;
    std::iter::from_fn(move || {
        let start = rest.find("{{")?;
        let end = rest[start..].find("}}")? + start + 2;
        let whole = &rest[start..end];
        rest = &rest[end..];
        Some((whole, whole[2..whole.len() - 2].trim()))
    })
}

fn line_of(text: &str, key: &str) -> Option<usize> {
    let prefix = format!("{key}:");
    text.lines().position(|l| l.trim_start().trim_start_matches("- ").starts_with(&prefix)).map(|i| i + 1)
}
