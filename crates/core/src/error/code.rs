//! The error catalog: every failure Portcullis can report, with its wire name, HTTP status, the closest
//! standard OAuth/OIDC error, a default message and an explanation with the remedy.
//!
//! The table below is the single source of truth: `GET /errors` serves it and `docs/errors.md` is
//! generated from it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Which part of Portcullis reports a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ErrorFamily {
    /// The hosted login flow and its CentralAuth-compatible API (the seed's error table).
    Login,
    /// The SuperTokens-compatible session layer.
    Session,
    /// The connector runtime.
    Connector,
}

impl ErrorFamily {
    /// Human title of the family, used in the generated documentation.
    #[must_use]
    pub const fn title(self) -> &'static str {
        match self {
            Self::Login => "Login flow and API (CentralAuth-compatible)",
            Self::Session => "Sessions (SuperTokens-compatible)",
            Self::Connector => "Connectors",
        }
    }
}

/// Everything the catalog says about one code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorSpec {
    /// The exact wire spelling (`errorCode`).
    pub wire: &'static str,
    /// The status it is sent with by default.
    pub status: u16,
    /// Other statuses the same code is documented to use, and when.
    pub other_statuses: &'static [(u16, &'static str)],
    /// The closest RFC 6749 / 6750 / OIDC error, where one exists.
    pub oauth_error: Option<&'static str>,
    /// The part of Portcullis that reports it.
    pub family: ErrorFamily,
    /// Default message for the client; safe to show to an end user.
    pub message: &'static str,
    /// What happened and how to recover.
    pub explanation: &'static str,
}

macro_rules! error_catalog {
    ($(
        $(#[$doc:meta])*
        $variant:ident {
            wire: $wire:literal,
            status: $status:literal,
            $(other_statuses: [$(($ostatus:literal, $owhen:literal)),* $(,)?],)?
            oauth: $oauth:expr,
            family: $family:ident,
            message: $message:literal,
            explanation: $explanation:literal $(,)?
        }
    )*) => {
        /// A named, documented failure. Serialized as its wire name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code, in catalog order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The catalog entry for this code.
            #[must_use]
            pub const fn spec(self) -> &'static ErrorSpec {
                match self {
                    $(ErrorCode::$variant => &ErrorSpec {
                        wire: $wire,
                        status: $status,
                        other_statuses: &[$($(($ostatus, $owhen)),*)?],
                        oauth_error: $oauth,
                        family: ErrorFamily::$family,
                        message: $message,
                        explanation: $explanation,
                    },)*
                }
            }
        }
    };
}

error_catalog! {
    /// Unexpected failure with no more specific code.
    GenericError {
        wire: "genericError",
        status: 500,
        other_statuses: [(405, "the route exists but not for this HTTP method (an `Allow` header lists the methods)"), (503, "the store is unreachable or the server is shutting down (with `Retry-After`)")],
        oauth: Some("server_error"),
        family: Login,
        message: "Something went wrong on our side. Please try again.",
        explanation: "An unexpected failure, or a request method the route does not support (405). The server log holds the detail under the same `requestId`. Remedy: retry; if it persists, report the `requestId` to the operator.",
    }
    /// The caller is authenticated but not allowed to do this.
    NoPermission {
        wire: "noPermission",
        status: 403,
        other_statuses: [(401, "a client secret or admin token was presented but is wrong")],
        oauth: Some("access_denied"),
        family: Login,
        message: "You do not have permission to perform this action.",
        explanation: "The credential in the request is not allowed to perform the action: an API key without the right, a token of another organization, or a wrong client secret or admin token (401). Remedy: use a credential that belongs to the organization and carries the right.",
    }
    /// A rate limit was hit.
    TooManyRequests {
        wire: "tooManyRequests",
        status: 429,
        oauth: Some("temporarily_unavailable"),
        family: Login,
        message: "Too many requests. Please wait a moment and try again.",
        explanation: "A limit was reached: requests per client IP and minute on the login pages or APIs (`login.page_requests_per_ip_per_minute`, `login.api_requests_per_ip_per_minute`), or the growing delay between login emails for one email from one client network. Remedy: wait for the number of seconds in the `Retry-After` header, then retry.",
    }
    /// A required field or parameter is absent.
    MissingFields {
        wire: "missingFields",
        status: 400,
        oauth: Some("invalid_request"),
        family: Login,
        message: "The request is missing required fields.",
        explanation: "A required parameter or JSON field is absent; the message names it. Remedy: send the field.",
    }
    /// The token is valid but its session is unknown.
    SessionMissing {
        wire: "sessionMissing",
        status: 401,
        oauth: Some("invalid_token"),
        family: Login,
        message: "The session was not found.",
        explanation: "The token decodes but the session it names does not exist (deleted, or issued by another installation). Remedy: log the user in again.",
    }
    /// The session is not bound to this client or domain.
    SessionNotVerified {
        wire: "sessionNotVerified",
        status: 401,
        oauth: Some("invalid_token"),
        family: Login,
        message: "The session is not verified for this application.",
        explanation: "The session has not been bound to this client or `domain` by a code exchange. Remedy: complete the callback (`/api/v1/verify`) for this domain before calling userinfo.",
    }
    /// The session's absolute or idle lifetime passed.
    SessionExpired {
        wire: "sessionExpired",
        status: 401,
        oauth: Some("invalid_token"),
        family: Login,
        message: "The session has expired. Please log in again.",
        explanation: "`maxSessionTime` or `maxInactivityTime` of the organization has passed. Remedy: log the user in again.",
    }
    /// The session is pending or has ended.
    SessionInactive {
        wire: "sessionInactive",
        status: 401,
        oauth: Some("invalid_token"),
        family: Login,
        message: "The session is not active.",
        explanation: "The session is not activated yet (the login was not completed) or was ended by logout, undo or revocation. Remedy: finish the login, or log in again.",
    }
    /// The session's bindings no longer match; it has been ended.
    SessionInvalid {
        wire: "sessionInvalid",
        status: 401,
        oauth: Some("invalid_token"),
        family: Login,
        message: "The session is invalid. Please log in again.",
        explanation: "The IP, user agent or device binding changed under hijack protection, or the session does not match the activation data. The session has been ended. Remedy: log the user in again.",
    }
    /// The `domain` is missing, malformed or not whitelisted.
    DomainInvalid {
        wire: "domainInvalid",
        status: 400,
        oauth: Some("invalid_request"),
        family: Login,
        message: "The domain is missing, invalid or not whitelisted.",
        explanation: "The `domain` parameter (an origin such as `https://app.example.com`) is absent, malformed, or not one of the organization's whitelisted domains. An empty whitelist allows nothing. Remedy: add the origin to the organization's whitelist and send it exactly.",
    }
    /// A login-page call came without an attempt id.
    LoginAttemptMissing {
        wire: "loginAttemptMissing",
        status: 400,
        oauth: Some("access_denied"),
        family: Login,
        message: "The login attempt is missing.",
        explanation: "A step of the hosted login page was called without a login attempt id, or the id is unknown, or in another browser than the one that started it. When the login page belongs to this browser, the browser is sent back to the application's callback with `error=loginAttemptMissing`. Remedy: start the login again from the application.",
    }
    /// The login attempt is older than its lifetime.
    LoginAttemptExpired {
        wire: "loginAttemptExpired",
        status: 410,
        oauth: Some("access_denied"),
        family: Login,
        message: "The login attempt has expired. Please request a new code.",
        explanation: "Login attempts are valid for 15 minutes and a login page for 30. On the login page, the browser is sent back to the application's callback with `error=loginAttemptExpired`. Remedy: start the login again.",
    }
    /// Wrong code, undone attempt or too many tries.
    LoginAttemptInvalid {
        wire: "loginAttemptInvalid",
        status: 400,
        oauth: Some("access_denied"),
        family: Login,
        message: "The login attempt is invalid.",
        explanation: "The attempt cannot be used: a wrong code (the message says how many tries are left; after 5 the attempt is void, and at once once the account reached `login.max_code_failures` consecutive wrong codes), a challenge answered with a wrong number (the attempt is cancelled), a link already used or used on another device, an attempt undone from the mail, or a code entered for a link attempt. A wrong code with tries left stays on the login page; otherwise the browser is sent back to the application's callback with `error=loginAttemptInvalid`. Remedy: check the code; otherwise start the login again.",
    }
    /// A passkey answer names no ceremony the server holds.
    PasskeyDataMissing {
        wire: "passkeyDataMissing",
        status: 400,
        oauth: None,
        family: Login,
        message: "The passkey data is missing.",
        explanation: "A passkey answer names a challenge the server holds no ceremony for: never issued, already answered (ceremonies are single use, so a replayed answer lands here), or issued for another login page or step. Remedy: start the passkey step again.",
    }
    /// The passkey ceremony is past its lifetime.
    PasskeyDataExpired {
        wire: "passkeyDataExpired",
        status: 410,
        oauth: None,
        family: Login,
        message: "The passkey request has expired. Please try again.",
        explanation: "Passkey ceremonies are valid for 5 minutes. Remedy: start the passkey step again.",
    }
    /// A WebAuthn check failed.
    PasskeyDataInvalid {
        wire: "passkeyDataInvalid",
        status: 400,
        oauth: Some("access_denied"),
        family: Login,
        message: "The passkey could not be verified.",
        explanation: "A WebAuthn check failed: challenge, origin, relying party, signature, sign counter or user verification. Remedy: try again with the same passkey, or log in by email.",
    }
    /// The passkey belongs to another organization.
    PasskeyWrongOrganization {
        wire: "passkeyWrongOrganization",
        status: 403,
        oauth: Some("access_denied"),
        family: Login,
        message: "This passkey belongs to another organization.",
        explanation: "The credential or its user belongs to another organization, mostly because one login URL serves several organizations. Remedy: give each organization its own auth domain (custom domain), or log in by email.",
    }
    /// The login flow has no callback URL.
    CallbackUrlMissing {
        wire: "callbackUrlMissing",
        status: 400,
        oauth: Some("invalid_request"),
        family: Login,
        message: "The callback URL is missing.",
        explanation: "The login request has no `redirect_uri`. No redirect is made; the hosted error page is shown instead. Remedy: send `redirect_uri`.",
    }
    /// The callback URL is not allowed.
    CallbackUrlInvalid {
        wire: "callbackUrlInvalid",
        status: 400,
        oauth: Some("invalid_request"),
        family: Login,
        message: "The callback URL is invalid or not whitelisted.",
        explanation: "The `redirect_uri` is malformed, its origin is not whitelisted, or it differs from the one of the authorization request. Remedy: whitelist the origin and send the same URI at both steps.",
    }
    /// The connection is unknown or disabled.
    ConnectionMissing {
        wire: "connectionMissing",
        status: 400,
        oauth: Some("invalid_request"),
        family: Login,
        message: "The connection was not found.",
        explanation: "The login connection is unknown or disabled for the organization: the hosted email step or `POST /api/v1/authenticate_direct` while `emailConnectionEnabled` is off and another connection is on (with nothing else enabled, email stays on). Remedy: enable the connection in the organization's settings.",
    }
    /// The organization (client) id is missing or unknown.
    OrganizationIdMissing {
        wire: "organizationIdMissing",
        status: 400,
        other_statuses: [(401, "at the token endpoint, where it means client authentication failed")],
        oauth: Some("invalid_client"),
        family: Login,
        message: "The organization ID is missing or unknown.",
        explanation: "`client_id` is absent or names no organization, and none can be derived from the host. Remedy: send the organization id as `client_id`.",
    }
    /// The token is undecryptable, malformed, foreign, or the code is unknown or used.
    TokenInvalid {
        wire: "tokenInvalid",
        status: 401,
        other_statuses: [(400, "at the token endpoint, for an unknown, expired, reused or foreign authorization code")],
        oauth: Some("invalid_token"),
        family: Login,
        message: "The token is invalid.",
        explanation: "The access token cannot be decrypted or verified, is malformed, or belongs to another client; at the token endpoint the authorization code is unknown, expired, already used or issued to another client. A reused code also revokes what it issued. Remedy: start the login again.",
    }
    /// No token was sent.
    TokenMissing {
        wire: "tokenMissing",
        status: 401,
        oauth: None,
        family: Login,
        message: "A token is required.",
        explanation: "The request carries no access token or credential where one is required. Remedy: send it (`Authorization: Bearer …` or the raw token body the endpoint documents).",
    }
    /// The login request has no `state`.
    StateMissing {
        wire: "stateMissing",
        status: 302,
        other_statuses: [(400, "when the redirect URI cannot be trusted, shown on the hosted error page")],
        oauth: Some("invalid_request"),
        family: Login,
        message: "The OAuth state is missing.",
        explanation: "`/login` was called without `state`, which protects the callback against cross-site request forgery. Returned to the callback as `?error=stateMissing`. Remedy: send a fresh random `state` and check it on the callback.",
    }
    /// The `state` is malformed or rejected.
    StateInvalid {
        wire: "stateInvalid",
        status: 302,
        other_statuses: [(400, "at an API endpoint, or when no redirect can be made")],
        oauth: Some("invalid_request"),
        family: Login,
        message: "The OAuth state is invalid.",
        explanation: "The `state` is over the size limit or contains characters that cannot be echoed safely, or an autologin state was rejected. Remedy: send a random URL-safe `state` of at most 1024 characters.",
    }
    /// PKCE is required but no challenge was sent.
    CodeChallengeMissing {
        wire: "codeChallengeMissing",
        status: 302,
        oauth: Some("invalid_request"),
        family: Login,
        message: "A code challenge is required.",
        explanation: "PKCE is required and the login request has no `code_challenge`. Returned to the callback. Remedy: send `code_challenge` with `code_challenge_method=S256`.",
    }
    /// The PKCE challenge or verifier is wrong.
    CodeChallengeInvalid {
        wire: "codeChallengeInvalid",
        status: 302,
        other_statuses: [(400, "at the token endpoint: verifier missing, of the wrong length, not matching, or sent without a stored challenge")],
        oauth: Some("invalid_grant"),
        family: Login,
        message: "The code challenge is invalid.",
        explanation: "The challenge method is not `S256` or the challenge is malformed; at the token endpoint the verifier is missing, has the wrong length, does not match, or was sent for a flow that had no challenge. Remedy: generate a verifier of 43–128 characters and send its S256 hash as the challenge.",
    }
    /// The captcha solution is wrong, expired or replayed.
    CaptchaInvalid {
        wire: "captchaInvalid",
        status: 400,
        oauth: None,
        family: Login,
        message: "The captcha was not solved correctly. Please try again.",
        explanation: "The email step needed a proof of work (the email or the address made recent attempts, or the account reached `login.max_code_failures` consecutive wrong codes, which needs the highest level until a login) and the solution is missing, wrong, of another login flow or a lower level, expired (10 minutes), or was already used. Remedy: let the page solve the new challenge it shows; it sends the form by itself.",
    }
    /// The entity does not exist.
    EntityMissing {
        wire: "entityMissing",
        status: 404,
        oauth: None,
        family: Login,
        message: "The requested entity was not found.",
        explanation: "The organization, user, key, connector, account or route in the request does not exist; the message names which. Remedy: check the identifier or path.",
    }
    /// The entity or request body is invalid.
    EntityInvalid {
        wire: "entityInvalid",
        status: 400,
        other_statuses: [(409, "the entity conflicts with one that exists"), (413, "the request body is larger than `server.request_body_limit_bytes`"), (415, "the request body is not of a content type the endpoint accepts")],
        oauth: Some("invalid_request"),
        family: Login,
        message: "The request is invalid.",
        explanation: "The request body is malformed, of the wrong type or too large, or a value fails validation; the message says which. Remedy: fix the value and send again.",
    }
    /// No valid session: the frontend must log the user in.
    Unauthorised {
        wire: "unauthorised",
        status: 401,
        oauth: Some("invalid_token"),
        family: Session,
        message: "unauthorised",
        explanation: "The request has no session, or its session was revoked, expired or cannot be refreshed. Session tokens are cleared when the session is gone. Remedy: the frontend SDK sends the user to the login page.",
    }
    /// The access token is expired or unverifiable: refresh and retry.
    TryRefreshToken {
        wire: "tryRefreshToken",
        status: 401,
        oauth: Some("invalid_token"),
        family: Session,
        message: "try refresh token",
        explanation: "The access token expired, its signature or key id is unknown, or it is otherwise unusable, while the session may still be alive. Remedy: call `POST /auth/session/refresh` and retry; the frontend SDK does this by itself.",
    }
    /// A rotated-out refresh token was reused: the session is revoked.
    TokenTheftDetected {
        wire: "tokenTheftDetected",
        status: 401,
        oauth: Some("invalid_grant"),
        family: Session,
        message: "token theft detected",
        explanation: "A refresh token that had already been rotated was presented again outside the grace window, so two parties hold the session. The whole token family is revoked and tokens are cleared. Remedy: log the user in again; investigate the device.",
    }
    /// A claim validator failed.
    InvalidClaim {
        wire: "invalidClaim",
        status: 403,
        oauth: Some("insufficient_scope"),
        family: Session,
        message: "invalid claim",
        explanation: "The session exists but a claim the route requires (email verified, a role, a permission or a custom claim) has the wrong value; `claimValidationErrors` lists each failure. Remedy: let the user satisfy the claim (verify the email, get the role).",
    }
    /// Duplicate session cookies were cleared.
    ClearDuplicateSessionCookies {
        wire: "clearDuplicateSessionCookies",
        status: 200,
        oauth: None,
        family: Session,
        message: "The request contains multiple session cookies. We are clearing the cookie from olderCookieDomain. Session will be refreshed in the next refresh call.",
        explanation: "After a cookie-domain change the browser sent session cookies for two domains. The refresh answer expires the other domain's cookies. Remedy: none needed; the next refresh works.",
    }
    /// A script asked for an OAuth 2 token refresh and it could not be completed.
    AuthRefreshRequired {
        wire: "authRefreshRequired",
        status: 502,
        oauth: None,
        family: Connector,
        message: "The connector's access token could not be refreshed.",
        explanation: "A hook threw `AuthRefreshException` (or the token expired) and the OAuth 2 Access Token URL failed transiently (5xx, 429 or network). The account stays usable. Remedy: retry later; check the provider's status.",
    }
    /// A script asked for a new session and the lookup method failed.
    AuthSessionRequired {
        wire: "authSessionRequired",
        status: 502,
        oauth: None,
        family: Connector,
        message: "The connector's session could not be renewed.",
        explanation: "A hook threw `AuthSessionException` and re-running the Post Install Property Value Lookup Method failed. Remedy: retry later; check the account's stored properties.",
    }
    /// The account's credentials no longer work; a person must re-authorize it.
    NeedsReauthentication {
        wire: "needsReauthentication",
        status: 409,
        oauth: None,
        family: Connector,
        message: "The connector account must be re-authenticated.",
        explanation: "A refresh or session renewal was rejected by the provider (`invalid_grant`, 400/401), or the retried request failed authentication again. Calls fail fast during a cooldown. Remedy: re-run the account's install or authorization flow.",
    }
    /// A script ran past its wall-clock limit.
    ScriptTimeout {
        wire: "scriptTimeout",
        status: 504,
        oauth: None,
        family: Connector,
        message: "A connector script took too long and was stopped.",
        explanation: "A call's scripts spent `connectors.script_timeout_secs` (an endless loop, a catastrophic regular expression, or an `http_request` or storage call still waiting when the time ran out) and were interrupted. Other calls are unaffected. Remedy: fix the script, or raise the limit for a slow upstream.",
    }
    /// A script went over its memory limit.
    ScriptMemoryExceeded {
        wire: "scriptMemoryExceeded",
        status: 502,
        oauth: None,
        family: Connector,
        message: "A connector script used too much memory and was stopped.",
        explanation: "A hook allocated more than `connectors.script_memory_limit_bytes` and was stopped. Remedy: fix the script, or raise the limit.",
    }
    /// A script threw or failed to run.
    ScriptError {
        wire: "scriptError",
        status: 502,
        oauth: None,
        family: Connector,
        message: "A connector script failed.",
        explanation: "A hook threw an error other than the two auth exceptions, or has a syntax error; the message carries the script's error text. Remedy: fix the script; `portcullis connector validate` checks it.",
    }
    /// The third-party API is rate limiting the account.
    UpstreamRateLimited {
        wire: "upstreamRateLimited",
        status: 429,
        oauth: Some("temporarily_unavailable"),
        family: Connector,
        message: "The third-party API is rate limiting this account.",
        explanation: "The API answered 429; calls for the account wait for its `Retry-After`, then a growing back-off. Remedy: retry after the `Retry-After` seconds this answer carries.",
    }
    /// The third-party API failed.
    UpstreamError {
        wire: "upstreamError",
        status: 502,
        other_statuses: [(504, "the third-party API did not answer in time")],
        oauth: None,
        family: Connector,
        message: "The third-party API returned an error.",
        explanation: "The API answered with an error the hooks did not clear (`method_error.isError` stayed true), did not answer in time (504), or could not be reached. Remedy: look at the upstream status and body in the call's result.",
    }
    /// An outbound connector request was refused by the egress policy.
    EgressRefused {
        wire: "egressRefused",
        status: 403,
        oauth: None,
        family: Connector,
        message: "The connector request's destination is not allowed.",
        explanation: "A method call, `http_request`, token or lookup request, paging link or redirect hop would have reached a loopback, private, link-local, multicast, cloud-metadata or otherwise reserved address (checked after DNS resolution), or a scheme other than http(s). Remedy: call public APIs only; an operator may allow-list a network in `connectors.egress_allow`.",
    }
    /// Every script slot is taken.
    ScriptsBusy {
        wire: "scriptsBusy",
        status: 503,
        oauth: Some("temporarily_unavailable"),
        family: Connector,
        message: "Too many connector scripts are running; try again shortly.",
        explanation: "All `connectors.max_concurrent_scripts` slots stayed taken for `connectors.script_queue_wait_ms`. Nothing was sent upstream by the hook that could not run. Remedy: retry after the `Retry-After` seconds this answer carries.",
    }
    /// An organization API key sent a step script.
    CallerScriptForbidden {
        wire: "callerScriptForbidden",
        status: 403,
        oauth: None,
        family: Connector,
        message: "Step scripts may not be sent with an API key.",
        explanation: "The call body has a `script`, which only the admin API may send unless `connectors.api_key_step_scripts` is on. Remedy: put the logic in the connector definition, or call through the admin API.",
    }
    /// A connector definition is invalid.
    ConnectorInvalid {
        wire: "connectorInvalid",
        status: 422,
        oauth: None,
        family: Connector,
        message: "The connector definition is invalid.",
        explanation: "The connector's YAML does not match the schema, or a script does not compile; the message gives file, line and what is wrong. Remedy: fix the definition; `portcullis connector validate` checks it.",
    }
    /// An inbound connector webhook's signature did not verify.
    WebhookSignatureInvalid {
        wire: "webhookSignatureInvalid",
        status: 401,
        oauth: None,
        family: Connector,
        message: "The webhook's signature is missing or does not verify.",
        explanation: "A request to a connector account's webhook URL lacked the signature its method's `webhook.signature` scheme requires, was signed with another secret or for another body, or carried a signed timestamp outside `tolerance_secs`. Nothing ran and no event was sent. Remedy: give the provider the secret stored in the account's `secret_property`, or fix the property.",
    }
}

impl ErrorCode {
    /// The exact wire spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        self.spec().wire
    }

    /// The default HTTP status.
    #[must_use]
    pub const fn status(self) -> u16 {
        self.spec().status
    }

    /// The default client message.
    #[must_use]
    pub const fn message(self) -> &'static str {
        self.spec().message
    }

    /// Whether `status` is one the catalog documents for this code.
    #[must_use]
    pub fn allows_status(self, status: u16) -> bool {
        let spec = self.spec();
        spec.status == status || spec.other_statuses.iter().any(|(s, _)| *s == status)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no code in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an error code of the catalog")]
pub struct UnknownErrorCode(pub String);

impl FromStr for ErrorCode {
    type Err = UnknownErrorCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.iter().copied().find(|code| code.as_str() == s).ok_or_else(|| UnknownErrorCode(s.to_owned()))
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// In API descriptions a code is one of the catalog's wire names.
impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("A catalog code (`GET /errors`, docs/errors.md)."))
            .enum_values(Some(Self::ALL.iter().map(|code| code.as_str())))
            .into()
    }
}

impl utoipa::ToSchema for ErrorCode {}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// The seed's table, the SDK codes and the session outcomes, spelled as on the wire.
    const REQUIRED: &[&str] = &[
        "genericError",
        "noPermission",
        "missingFields",
        "sessionMissing",
        "sessionNotVerified",
        "sessionExpired",
        "sessionInactive",
        "sessionInvalid",
        "domainInvalid",
        "loginAttemptMissing",
        "loginAttemptExpired",
        "loginAttemptInvalid",
        "passkeyDataMissing",
        "passkeyDataExpired",
        "passkeyDataInvalid",
        "passkeyWrongOrganization",
        "callbackUrlMissing",
        "callbackUrlInvalid",
        "connectionMissing",
        "organizationIdMissing",
        "tokenInvalid",
        "stateMissing",
        "stateInvalid",
        "codeChallengeMissing",
        "codeChallengeInvalid",
        "captchaInvalid",
        "entityMissing",
        "entityInvalid",
        "tooManyRequests",
        "tokenMissing",
        "unauthorised",
        "tryRefreshToken",
        "tokenTheftDetected",
        "invalidClaim",
        "clearDuplicateSessionCookies",
        "authRefreshRequired",
        "authSessionRequired",
        "needsReauthentication",
        "scriptTimeout",
        "scriptMemoryExceeded",
        "scriptError",
        "upstreamRateLimited",
        "upstreamError",
    ];

    #[test]
    fn catalog_holds_every_required_code() {
        for wire in REQUIRED {
            let code: ErrorCode = wire.parse().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(code.as_str(), *wire);
        }
    }

    #[test]
    fn wire_names_are_unique_and_round_trip() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate wire name {code}");
            let json = serde_json::to_string(code).expect("serialize");
            assert_eq!(json, format!("\"{code}\""));
            let back: ErrorCode = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, *code);
        }
    }

    #[test]
    fn every_entry_is_documented_with_a_valid_status() {
        for code in ErrorCode::ALL {
            let spec = code.spec();
            assert!((200..600).contains(&spec.status), "{code}");
            assert!(!spec.message.is_empty() && !spec.explanation.is_empty(), "{code}");
            assert!(spec.explanation.contains("Remedy"), "{code} explanation names no remedy");
            for (status, when) in spec.other_statuses {
                assert!((400..600).contains(status) && !when.is_empty(), "{code}");
            }
        }
    }

    #[test]
    fn unknown_code_is_rejected() {
        assert_eq!("nope".parse::<ErrorCode>(), Err(UnknownErrorCode("nope".to_owned())));
        assert!(ErrorCode::EntityInvalid.allows_status(413));
        assert!(!ErrorCode::EntityInvalid.allows_status(500));
    }
}
