//! The console's organization pages: the list, creation, one organization's settings (every setting the
//! admin API's `PATCH …/login` takes), its client secret and API keys (shown once), and its recent audit
//! events. Actions go through the same `App` services as the admin API.

use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Response;
use portcullis_core::abuse::{AuditEvent, AuditFilter};
use portcullis_core::console::ORGANIZATION_ID;
use portcullis_core::organization::{ApiKeyRecord, Organization};
use portcullis_core::{Error, ErrorCode};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::render::{Frame, page, respond};
use super::{ConsoleSession, see_other};
use crate::app::App;
use crate::http::RequestId;

/// How many audit events an organization's page shows.
const RECENT_AUDIT_EVENTS: usize = 50;

/// The organizations that log in applications' users: every one but the console's own.
pub(super) fn tenants(organizations: Vec<Organization>) -> Vec<Organization> {
    organizations.into_iter().filter(|o| o.id != ORGANIZATION_ID).collect()
}

#[derive(Template)]
#[template(path = "console/organizations.html")]
struct Organizations<'a> {
    frame: Frame<'a>,
    organizations: Vec<Organization>,
}

pub(super) async fn list(
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

pub(super) async fn create(
    State(app): State<Arc<App>>,
    Extension(session): Extension<ConsoleSession>,
    Extension(request_id): Extension<RequestId>,
    axum::Form(form): axum::Form<NewOrganization>,
) -> Response {
    let created = async {
        session.admit(&app, form.form_token.as_deref())?;
        let organization = app.create_organization(form.name.as_deref().unwrap_or_default()).await?;
        app.console().record_action(&session.operator.email, "organization.create", &organization.id).await;
        Ok(see_other(&format!("/console/organizations/{}", organization.id)))
    };
    respond(created.await, &request_id)
}

/// One setting as the page shows and edits it.
struct SettingRow {
    /// The wire name (`enableUserCreation`), also the form field's name.
    name: String,
    /// The value as text (lines for a list).
    value: String,
    /// `choice`, `number`, `text` or `lines`.
    control: &'static str,
    /// The choices of a `choice`.
    choices: &'static [&'static str],
}

/// The closed choices of a setting, by wire name; `None` for a free value.
fn choices_of(name: &str, value: &Value) -> Option<&'static [&'static str]> {
    match (name, value) {
        (_, Value::Bool(_)) => Some(&["true", "false"]),
        ("defaultLoginAttemptType", _) => Some(&["code", "challenge", "link"]),
        ("defaultLoginMethod", _) => Some(&["local", "remote", "userPick"]),
        ("clientType", _) => Some(&["confidential", "public"]),
        _ => None,
    }
}

fn setting_rows(organization: &Organization) -> Vec<SettingRow> {
    let Ok(Value::Object(settings)) = serde_json::to_value(&organization.settings) else {
        return Vec::new();
    };
    settings
        .into_iter()
        .map(|(name, value)| {
            let choices = choices_of(&name, &value);
            let (control, text) = match &value {
                _ if choices.is_some() => ("choice", value.as_str().map_or_else(|| value.to_string(), str::to_owned)),
                Value::Number(n) => ("number", n.to_string()),
                Value::Array(items) => ("lines", items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("\n")),
                Value::String(text) => ("text", text.clone()),
                _ => ("text", String::new()),
            };
            SettingRow { name, value: text, control, choices: choices.unwrap_or_default() }
        })
        .collect()
}

/// A form's fields as the admin API's merge patch: each value typed like the setting it changes (a
/// list from lines, an empty auth domain as none). The core checks names and values.
fn settings_patch(organization: &Organization, fields: &[(String, String)]) -> Result<Map<String, Value>, Error> {
    let current = match serde_json::to_value(&organization.settings) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let mut patch = Map::new();
    for (name, text) in fields.iter().filter(|(name, _)| name != "form_token" && name != "whitelist") {
        let value = match current.get(name) {
            Some(Value::Bool(_)) => Value::Bool(text == "true"),
            Some(Value::Number(_)) => Value::from(text.trim().parse::<u64>().map_err(|_| {
                Error::new(ErrorCode::EntityInvalid).with_message(format!("{name} must be a whole number of seconds."))
            })?),
            Some(Value::Array(_)) => Value::Array(lines(text).into_iter().map(Value::String).collect()),
            Some(Value::Null | Value::String(_)) if text.trim().is_empty() && name == "authDomain" => Value::Null,
            _ => Value::String(text.trim().to_owned()),
        };
        patch.insert(name.clone(), value);
    }
    Ok(patch)
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

/// A secret shown once after an action.
struct Shown {
    what: &'static str,
    value: String,
    note: &'static str,
}

#[derive(Template)]
#[template(path = "console/organization.html")]
struct OrganizationPage<'a> {
    frame: Frame<'a>,
    organization: Organization,
    settings: Vec<SettingRow>,
    events: Vec<AuditEvent>,
    api_keys: Vec<ApiKeyRecord>,
    shown: Option<Shown>,
    saved: bool,
}

async fn organization_page(
    app: &App,
    session: &ConsoleSession,
    id: &str,
    shown: Option<Shown>,
    saved: bool,
) -> Result<Response, Error> {
    let organization = app.organization(id).await?;
    let events = app.audit_events(&organization.id, &AuditFilter::default(), RECENT_AUDIT_EVENTS).await?;
    let settings = setting_rows(&organization);
    let api_keys = app.api_keys(&organization.id).await?;
    let frame = Frame::new(session, "organizations");
    Ok(page(&OrganizationPage { frame, organization, settings, events, api_keys, shown, saved }))
}

pub(super) async fn show(
    State(app): State<Arc<App>>,
    Extension(session): Extension<ConsoleSession>,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
) -> Response {
    respond(organization_page(&app, &session, &id, None, false).await, &request_id)
}

pub(super) async fn configure(
    State(app): State<Arc<App>>,
    Extension(session): Extension<ConsoleSession>,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
    axum::Form(fields): axum::Form<Vec<(String, String)>>,
) -> Response {
    let saved = async {
        let token = fields.iter().find(|(name, _)| name == "form_token").map(|(_, v)| v.as_str());
        session.admit(&app, token)?;
        let organization = app.organization(&id).await?;
        let whitelist = fields.iter().find(|(name, _)| name == "whitelist").map(|(_, text)| lines(text));
        let patch = settings_patch(&organization, &fields)?;
        app.login().merge_configuration(&organization.id, whitelist, &patch).await?;
        app.console().record_action(&session.operator.email, "organization.configure", &organization.id).await;
        organization_page(&app, &session, &organization.id, None, true).await
    };
    respond(saved.await, &request_id)
}

#[derive(Debug, Deserialize)]
pub(super) struct ActionForm {
    form_token: Option<String>,
}

pub(super) async fn new_secret(
    State(app): State<Arc<App>>,
    Extension(session): Extension<ConsoleSession>,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<ActionForm>,
) -> Response {
    let made = async {
        session.admit(&app, form.form_token.as_deref())?;
        let (secret, staged) = app.login().new_secret(&id).await?;
        app.console().record_action(&session.operator.email, "organization.secret.create", &id).await;
        let note = if staged {
            "Staged: the current secret keeps working until you activate this one."
        } else {
            "Active now."
        };
        organization_page(&app, &session, &id, Some(Shown { what: "Client secret", value: secret, note }), false).await
    };
    respond(made.await, &request_id)
}

pub(super) async fn activate_secret(
    State(app): State<Arc<App>>,
    Extension(session): Extension<ConsoleSession>,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<ActionForm>,
) -> Response {
    let activated = async {
        session.admit(&app, form.form_token.as_deref())?;
        app.login().activate_secret(&id).await?;
        app.console().record_action(&session.operator.email, "organization.secret.activate", &id).await;
        organization_page(&app, &session, &id, None, true).await
    };
    respond(activated.await, &request_id)
}

pub(super) async fn new_api_key(
    State(app): State<Arc<App>>,
    Extension(session): Extension<ConsoleSession>,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<ActionForm>,
) -> Response {
    let made = async {
        session.admit(&app, form.form_token.as_deref())?;
        let key = app.create_api_key(&id).await?;
        app.console().record_action(&session.operator.email, "organization.apiKey.create", &key.record.id).await;
        let shown = Shown { what: "API key", value: key.secret, note: "It acts for this organization only." };
        organization_page(&app, &session, &id, Some(shown), false).await
    };
    respond(made.await, &request_id)
}

pub(super) async fn revoke_api_key(
    State(app): State<Arc<App>>,
    Extension(session): Extension<ConsoleSession>,
    Extension(request_id): Extension<RequestId>,
    Path((id, key)): Path<(String, String)>,
    axum::Form(form): axum::Form<ActionForm>,
) -> Response {
    let revoked = async {
        session.admit(&app, form.form_token.as_deref())?;
        app.revoke_api_key(&id, &key).await?;
        app.console().record_action(&session.operator.email, "organization.apiKey.revoke", &key).await;
        organization_page(&app, &session, &id, None, true).await
    };
    respond(revoked.await, &request_id)
}
