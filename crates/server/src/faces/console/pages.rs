//! The console's pages. Each reads through the same `App` services as the admin API; an action checks
//! the form token and the admin role, then is recorded in the audit log under the operator's email.

use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Response;
use portcullis_core::Error;
use portcullis_core::abuse::AuditEvent;
use portcullis_core::console::{ORGANIZATION_ID, Operator};
use portcullis_core::error::{CatalogEntry, catalog};
use portcullis_core::organization::Organization;
use serde::Deserialize;

use super::render::page;
use super::{ConsoleSession, error_page, see_other};
use crate::app::App;
use crate::http::RequestId;

/// How many audit events an organization's page shows.
const RECENT_AUDIT_EVENTS: usize = 50;

/// What every signed-in page shows in its frame.
struct Frame<'a> {
    operator: &'a Operator,
    form_token: &'a str,
    /// The navigation entry of this page.
    current: &'static str,
}

impl<'a> Frame<'a> {
    fn new(session: &'a ConsoleSession, current: &'static str) -> Self {
        Self { operator: &session.operator, form_token: &session.form_token, current }
    }

    fn is_admin(&self) -> bool {
        self.operator.require_admin().is_ok()
    }
}

fn respond(result: Result<Response, Error>, request_id: &RequestId) -> Response {
    result.unwrap_or_else(|error| error_page(error, request_id))
}

struct KeyRow {
    kid: String,
    algorithm: &'static str,
    state: String,
    signs_from: String,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct Overview<'a> {
    frame: Frame<'a>,
    healthy: bool,
    store: &'static str,
    version: &'static str,
    organizations: usize,
    operators: usize,
    keys: Vec<KeyRow>,
}

pub(super) async fn overview(
    State(app): State<Arc<App>>,
    Extension(session): Extension<ConsoleSession>,
    Extension(request_id): Extension<RequestId>,
) -> Response {
    let rendered = async {
        let keys = app
            .key_statuses()
            .into_iter()
            .map(|k| KeyRow {
                kid: k.kid,
                algorithm: k.algorithm.as_str(),
                state: format!("{:?}", k.state).to_lowercase(),
                signs_from: k.signs_from.to_rfc3339(),
            })
            .collect();
        Ok(page(&Overview {
            frame: Frame::new(&session, "overview"),
            healthy: app.health().await.is_ok(),
            store: app.store_backend(),
            version: env!("CARGO_PKG_VERSION"),
            organizations: tenants(app.organizations().await?).len(),
            operators: app.console().operators().await?.len(),
            keys,
        }))
    };
    respond(rendered.await, &request_id)
}

/// The organizations that log in applications' users: every one but the console's own.
fn tenants(organizations: Vec<Organization>) -> Vec<Organization> {
    organizations.into_iter().filter(|o| o.id != ORGANIZATION_ID).collect()
}

#[derive(Template)]
#[template(path = "console/organizations.html")]
struct Organizations<'a> {
    frame: Frame<'a>,
    organizations: Vec<Organization>,
}

pub(super) async fn organizations(
    State(app): State<Arc<App>>,
    Extension(session): Extension<ConsoleSession>,
    Extension(request_id): Extension<RequestId>,
) -> Response {
    let rendered = async {
        let organizations = tenants(app.organizations().await?);
        Ok(page(&Organizations { frame: Frame::new(&session, "organizations"), organizations }))
    };
    respond(rendered.await, &request_id)
}

#[derive(Debug, Deserialize)]
pub(super) struct NewOrganization {
    form_token: Option<String>,
    name: Option<String>,
}

pub(super) async fn create_organization(
    State(app): State<Arc<App>>,
    Extension(session): Extension<ConsoleSession>,
    Extension(request_id): Extension<RequestId>,
    axum::Form(form): axum::Form<NewOrganization>,
) -> Response {
    let created = async {
        app.console().form_tokens().check(&session.login_session_id, form.form_token.as_deref())?;
        session.operator.require_admin()?;
        let organization = app.create_organization(form.name.as_deref().unwrap_or_default()).await?;
        app.console().record_action(&session.operator.email, "organization.create", &organization.id).await;
        Ok(see_other(&format!("/console/organizations/{}", organization.id)))
    };
    respond(created.await, &request_id)
}

struct SettingRow {
    name: String,
    value: String,
}

#[derive(Template)]
#[template(path = "console/organization.html")]
struct OrganizationPage<'a> {
    frame: Frame<'a>,
    organization: Organization,
    settings: Vec<SettingRow>,
    events: Vec<AuditEvent>,
}

pub(super) async fn organization(
    State(app): State<Arc<App>>,
    Extension(session): Extension<ConsoleSession>,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
) -> Response {
    let rendered = async {
        let organization = app.organization(&id).await?;
        let events = app.audit_events(&organization.id, None, RECENT_AUDIT_EVENTS).await?;
        let settings = match serde_json::to_value(&organization.settings) {
            Ok(serde_json::Value::Object(map)) => map
                .into_iter()
                .map(|(name, value)| SettingRow {
                    name,
                    value: match value {
                        serde_json::Value::String(text) => text,
                        other => other.to_string(),
                    },
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok(page(&OrganizationPage { frame: Frame::new(&session, "organizations"), organization, settings, events }))
    };
    respond(rendered.await, &request_id)
}

#[derive(Template)]
#[template(path = "console/operators.html")]
struct Operators<'a> {
    frame: Frame<'a>,
    operators: Vec<Operator>,
}

pub(super) async fn operators(
    State(app): State<Arc<App>>,
    Extension(session): Extension<ConsoleSession>,
    Extension(request_id): Extension<RequestId>,
) -> Response {
    let rendered = async {
        let operators = app.console().operators().await?;
        Ok(page(&Operators { frame: Frame::new(&session, "operators"), operators }))
    };
    respond(rendered.await, &request_id)
}

#[derive(Template)]
#[template(path = "console/errors.html")]
struct Errors {
    entries: Vec<CatalogEntry>,
}

/// The error catalog, public like `GET /errors`: every error page of the console links here.
pub(super) async fn errors() -> Response {
    page(&Errors { entries: catalog().errors })
}
