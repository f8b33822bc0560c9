//! The OpenAPI 3.1 description of every JSON API, generated from the handlers' `#[utoipa::path]`
//! annotations and the types they exchange. Served at `GET /openapi.json` and checked in as
//! `docs/openapi.json` (a test fails when the two drift).
//!
//! Not described: the hosted login pages and the connector install callback (HTML for browsers), the
//! SuperTokens frontend endpoints (their wire format is SuperTokens', see `docs/sessions.md`) and the
//! development outbox.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};

use crate::http::{ErrorBody, OAuthErrorBody};

/// Tag of the admin API.
pub(crate) const ADMIN: &str = "admin";
/// Tag of the organization API (sessions).
pub(crate) const SESSIONS: &str = "sessions";
/// Tag of the connector APIs.
pub(crate) const CONNECTORS: &str = "connectors";
/// Tag of the CentralAuth-compatible API.
pub(crate) const CENTRALAUTH: &str = "centralauth";
/// Tag of the standard OAuth 2.1 / OpenID Connect endpoints.
pub(crate) const OAUTH: &str = "oauth";
/// Tag of the operations endpoints.
pub(crate) const OPERATIONS: &str = "operations";

/// Security scheme: the admin token (`Authorization: Bearer`).
pub(crate) const ADMIN_TOKEN: &str = "adminToken";
/// Security scheme: an organization API key (`Authorization: Bearer`).
pub(crate) const API_KEY: &str = "organizationApiKey";
/// Security scheme: the organization's client id and secret (`Authorization: Basic`).
pub(crate) const CLIENT: &str = "clientCredentials";
/// Security scheme: an OAuth access token (`Authorization: Bearer`).
pub(crate) const ACCESS_TOKEN: &str = "accessToken";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Portcullis",
        description = "Every JSON API of a Portcullis server. Every failure answers with a catalog code \
                       (`errorCode`, listed by `GET /errors`) and the request id that finds it in the log.",
        license(name = "Apache-2.0")
    ),
    tags(
        (name = "admin", description = "Operator API: organizations, keys, passkeys, audit. Admin token."),
        (name = "sessions", description = "Server-to-server session API. Organization API key."),
        (name = "connectors", description = "Connector calls (API key) and connector accounts (admin token)."),
        (name = "centralauth", description = "CentralAuth-compatible API for CentralAuth's client libraries."),
        (name = "oauth", description = "Standard OAuth 2.1 / OpenID Connect JSON endpoints."),
        (name = "operations", description = "Health, error catalog, keys, metrics, this description."),
    )
)]
struct Base;

/// The description: the documented routes of every face over the base document, with the security
/// schemes and, on every operation, the catalog error answers it may give.
#[must_use]
pub fn api_description() -> OpenApi {
    let mut description = crate::faces::documented_routes().into_openapi();
    let mut base = <Base as utoipa::OpenApi>::openapi();
    base.info.version = env!("CARGO_PKG_VERSION").to_owned();
    base.paths = std::mem::take(&mut description.paths);
    base.components = description.components.take();
    add_security_schemes(&mut base);
    add_error_answers(&mut base);
    base
}

fn add_security_schemes(description: &mut OpenApi) {
    let components = description.components.get_or_insert_with(Default::default);
    let bearer = |what: &str| {
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.description = Some(what.to_owned());
        SecurityScheme::Http(http)
    };
    components.add_security_scheme(
        ADMIN_TOKEN,
        bearer("The admin token (`admin.token`, or the file in the data directory)."),
    );
    components.add_security_scheme(API_KEY, bearer("An organization API key (`pcak_…`), made by the admin API."));
    components.add_security_scheme(ACCESS_TOKEN, bearer("An access token from `/oauth2/token` or `/api/v1/verify`."));
    let mut basic = Http::new(HttpAuthScheme::Basic);
    basic.description = Some("The organization's id and client secret (RFC 6749 §2.3.1).".to_owned());
    components.add_security_scheme(CLIENT, SecurityScheme::Http(basic));
}

/// Every operation may refuse with a catalog error (4XX) or fail (5XX); operations that document a
/// specific status keep theirs. The OAuth endpoints answer errors in RFC 6749's shape as well.
fn add_error_answers(description: &mut OpenApi) {
    for (path, item) in &mut description.paths.paths {
        let oauth = path == "/oauth2/token" || path == "/api/v1/verify";
        let schema = if oauth { "OAuthErrorBody" } else { "ErrorBody" };
        let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for operation in operations.into_iter().flatten() {
            for (range, what) in [
                ("4XX", "Refused: the catalog code says why."),
                ("5XX", "Failed: the catalog code says why; retry later."),
            ] {
                let answer = ResponseBuilder::new()
                    .description(what)
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(Ref::from_schema_name(schema))).build(),
                    )
                    .build();
                operation.responses.responses.entry(range.to_owned()).or_insert_with(|| answer.into());
            }
        }
    }
    let components = description.components.get_or_insert_with(Default::default);
    for (name, schema) in [
        ("ErrorBody", <ErrorBody as utoipa::PartialSchema>::schema()),
        ("OAuthErrorBody", <OAuthErrorBody as utoipa::PartialSchema>::schema()),
        ("ErrorCode", <portcullis_core::ErrorCode as utoipa::PartialSchema>::schema()),
    ] {
        components.schemas.entry(name.to_owned()).or_insert(schema);
    }
}

/// The description as the pretty JSON that `GET /openapi.json` serves and `docs/openapi.json` holds.
#[must_use]
pub fn api_description_json() -> String {
    let mut text = api_description().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}
