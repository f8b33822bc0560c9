//! The console's connector pages: the loaded definitions, and per organization its accounts (those that
//! need re-authorization first) with install, authorize, test and a call console that shows how the call
//! ended and how many auth recoveries (refreshes, logins, retries) it ran. The runtime's rules apply
//! unchanged: the console calls as the admin API does.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Response;
use portcullis_connect::{AccountInput, AccountView, CallRequest, CallResult, Caller};
use portcullis_core::organization::Organization;
use portcullis_core::{Error, ErrorCode};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::ConsoleSession;
use super::render::{Frame, page, respond};
use crate::app::App;
use crate::http::RequestId;

struct DefinitionRow {
    name: String,
    description: String,
    methods: Vec<String>,
    properties: Vec<String>,
}

fn definitions(app: &App) -> Vec<DefinitionRow> {
    app.connectors()
        .connectors()
        .map(|c| DefinitionRow {
            name: c.name.clone(),
            description: c.description.clone(),
            methods: c.methods.keys().cloned().collect(),
            properties: c
                .properties
                .iter()
                .map(|p| format!("{}{}", p.name, if p.required { " (required)" } else { "" }))
                .collect(),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "console/connectors.html")]
struct ConnectorsPage<'a> {
    frame: Frame<'a>,
    organization: Organization,
    definitions: Vec<DefinitionRow>,
    accounts: Vec<AccountView>,
    /// What the last action produced.
    result: Option<ActionResult>,
}

/// The outcome of an action, shown above the accounts.
struct ActionResult {
    title: String,
    /// A call's result, pretty JSON.
    call: Option<String>,
    recoveries: u32,
    /// What the call did besides its request, in order.
    steps: Vec<String>,
    /// A link to follow (an OAuth authorization).
    link: Option<String>,
}

async fn connectors_page(
    app: &App,
    session: &ConsoleSession,
    organization_id: &str,
    result: Option<ActionResult>,
) -> Result<Response, Error> {
    let organization = app.organization(organization_id).await?;
    let mut accounts = app.connectors().accounts(&organization.id).await?;
    // Those that need an operator come first.
    accounts.sort_by_key(|a| (a.state != "needs_reauth", a.connector.clone(), a.id.clone()));
    let frame = Frame::new(session, "organizations");
    Ok(page(&ConnectorsPage { frame, organization, definitions: definitions(app), accounts, result }))
}

pub(super) async fn show(
    State(app): State<Arc<App>>,
    Extension(session): Extension<ConsoleSession>,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
) -> Response {
    respond(connectors_page(&app, &session, &id, None).await, &request_id)
}

#[derive(Debug, Deserialize)]
pub(super) struct InstallForm {
    form_token: Option<String>,
    connector: Option<String>,
    account: Option<String>,
    /// `name=value`, one per line.
    properties: Option<String>,
    auth_value: Option<String>,
}

fn properties_of(text: &str) -> Result<BTreeMap<String, String>, Error> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (name, value) = line.split_once('=').ok_or_else(|| {
                Error::new(ErrorCode::EntityInvalid).with_message("Each property line is name=value.")
            })?;
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect()
}

pub(super) async fn install(
    State(app): State<Arc<App>>,
    Extension(session): Extension<ConsoleSession>,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<InstallForm>,
) -> Response {
    let installed = async {
        session.admit(&app, form.form_token.as_deref())?;
        let organization = app.organization(&id).await?;
        let input = AccountInput {
            id: form.account.filter(|a| !a.trim().is_empty()).map(|a| a.trim().to_owned()),
            connector: form.connector,
            properties: properties_of(form.properties.as_deref().unwrap_or_default())?,
            auth_value: form.auth_value.filter(|v| !v.is_empty()),
        };
        let account = app.connectors().create_account(&organization.id, input).await?;
        app.console().record_action(&session.operator.email, "connector.account.install", &account.id).await;
        let title = format!("Account {} of {} installed.", account.id, account.connector);
        connectors_page(
            &app,
            &session,
            &organization.id,
            Some(ActionResult { title, call: None, recoveries: 0, steps: Vec::new(), link: None }),
        )
        .await
    };
    respond(installed.await, &request_id)
}

#[derive(Debug, Deserialize)]
pub(super) struct AccountActionForm {
    form_token: Option<String>,
    /// The account (the call console names it in the form).
    account: Option<String>,
    method: Option<String>,
    /// JSON object of merge fields.
    mergefields: Option<String>,
    /// JSON body, replacing the method's template.
    body: Option<String>,
}

fn json_field(name: &str, text: Option<&str>) -> Result<Option<Value>, Error> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| Error::new(ErrorCode::EntityInvalid).with_message(format!("{name} is not JSON: {e}")))
}

fn shown(result: &CallResult) -> String {
    serde_json::to_string_pretty(result).unwrap_or_default()
}

/// `POST …/connectors/{account}/{action}`: test or authorize.
pub(super) async fn act(
    State(app): State<Arc<App>>,
    Extension(session): Extension<ConsoleSession>,
    Extension(request_id): Extension<RequestId>,
    Path((id, account, action)): Path<(String, String, String)>,
    axum::Form(form): axum::Form<AccountActionForm>,
) -> Response {
    let result = if action == "call" {
        Err(Error::new(ErrorCode::EntityMissing).with_message("There is no such action."))
    } else {
        account_action(&app, &session, (&id, &account), &action, &form).await
    };
    respond(result, &request_id)
}

/// `POST …/connectors/call`: the call console, the account named in the form.
pub(super) async fn call(
    State(app): State<Arc<App>>,
    Extension(session): Extension<ConsoleSession>,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<AccountActionForm>,
) -> Response {
    let account = form.account.clone().unwrap_or_default();
    respond(account_action(&app, &session, (&id, &account), "call", &form).await, &request_id)
}

async fn account_action(
    app: &App,
    session: &ConsoleSession,
    (id, account): (&str, &str),
    action: &str,
    form: &AccountActionForm,
) -> Result<Response, Error> {
    session.admit(app, form.form_token.as_deref())?;
    let organization = app.organization(id).await?;
    let connectors = app.connectors();
    let view = connectors.account(&organization.id, account).await?;
    let result = match action {
        "test" => {
            let result = connectors.test_auth(&organization.id, &view.id).await?;
            let title = format!("Test of {}: {} (upstream status {}).", view.id, result.outcome, result.status);
            ActionResult {
                title,
                call: Some(shown(&result)),
                recoveries: result.recoveries,
                steps: result.steps.clone(),
                link: None,
            }
        }
        "authorize" => {
            let redirect = crate::faces::connect::redirect_uri(app);
            let url = connectors.authorize_url(&organization.id, &view.id, &redirect).await?;
            let title = format!("Authorize {} at the provider, then come back to this page.", view.id);
            ActionResult { title, call: None, recoveries: 0, steps: Vec::new(), link: Some(url) }
        }
        "call" => {
            let mergefields = match json_field("Merge fields", form.mergefields.as_deref())? {
                None => Map::new(),
                Some(Value::Object(map)) => map,
                Some(_) => {
                    return Err(Error::new(ErrorCode::EntityInvalid).with_message("Merge fields are a JSON object."));
                }
            };
            let request = CallRequest {
                method: form.method.clone().unwrap_or_default(),
                mergefields,
                body: json_field("Body", form.body.as_deref())?,
                ..CallRequest::default()
            };
            let caller = Caller::Admin;
            let result = connectors.call_as(&organization.id, &view.connector, &view.id, &request, caller).await?;
            let title =
                format!("{} on {}: {} (upstream status {}).", request.method, view.id, result.outcome, result.status);
            ActionResult {
                title,
                call: Some(shown(&result)),
                recoveries: result.recoveries,
                steps: result.steps.clone(),
                link: None,
            }
        }
        _ => return Err(Error::new(ErrorCode::EntityMissing).with_message("There is no such action.")),
    };
    app.console().record_action(&session.operator.email, &format!("connector.account.{action}"), &view.id).await;
    connectors_page(app, session, &organization.id, Some(result)).await
}
