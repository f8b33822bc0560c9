//! The console's overview, operators and error catalog. Each page reads through the same `App` services as the admin API; an action checks
//! the form token and the admin role, then is recorded in the audit log under the operator's email.

use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use portcullis_core::console::{Operator, OperatorRole};
use portcullis_core::error::{CatalogEntry, catalog};
use portcullis_core::{Error, ErrorCode};
use serde::Deserialize;

use super::ConsoleSession;
use super::render::{Frame, page, respond};
use crate::app::App;
use crate::http::RequestId;

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
    charts: Vec<super::charts::Chart>,
    /// Errors of the last hour by catalog code, most frequent first.
    errors: Vec<(&'static str, u64)>,
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
        let minutes = crate::activity::last_hour();
        let mut errors: std::collections::BTreeMap<&'static str, u64> = std::collections::BTreeMap::new();
        for minute in &minutes {
            for (code, count) in &minute.errors {
                *errors.entry(code).or_default() += count;
            }
        }
        let mut errors: Vec<(&'static str, u64)> = errors.into_iter().collect();
        errors.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        Ok(page(&Overview {
            charts: super::charts::overview_charts(&minutes),
            errors,
            frame: Frame::new(&session, "overview"),
            healthy: app.health().await.is_ok(),
            store: app.store_backend(),
            version: env!("CARGO_PKG_VERSION"),
            organizations: super::organizations::tenants(app.organizations().await?).len(),
            operators: app.console().operators().await?.len(),
            keys,
        }))
    };
    respond(rendered.await, &request_id)
}

#[derive(Template)]
#[template(path = "console/operators.html")]
struct Operators<'a> {
    frame: Frame<'a>,
    operators: Vec<Operator>,
    done: Option<String>,
}

pub(super) async fn operators(
    State(app): State<Arc<App>>,
    Extension(session): Extension<ConsoleSession>,
    Extension(request_id): Extension<RequestId>,
) -> Response {
    respond(operators_page(&app, &session, None).await, &request_id)
}

async fn operators_page(app: &App, session: &ConsoleSession, done: Option<String>) -> Result<Response, Error> {
    let operators = app.console().operators().await?;
    Ok(page(&Operators { frame: Frame::new(session, "operators"), operators, done }))
}

#[derive(Debug, Deserialize)]
pub(super) struct OperatorForm {
    form_token: Option<String>,
    email: Option<String>,
    /// `viewer`, `admin`, or `none` to remove.
    role: Option<String>,
}

/// Adds an operator, changes their role, or (`none`) removes them (core's rules, `Console::change_operator`).
pub(super) async fn put_operator(
    State(app): State<Arc<App>>,
    Extension(session): Extension<ConsoleSession>,
    Extension(request_id): Extension<RequestId>,
    axum::Form(form): axum::Form<OperatorForm>,
) -> Response {
    let changed = async {
        app.console().form_tokens().check(&session.login_session_id, form.form_token.as_deref())?;
        let email = form.email.as_deref().unwrap_or_default().trim();
        let role = match form.role.as_deref().unwrap_or_default() {
            "none" => None,
            name => Some(OperatorRole::parse(name).ok_or_else(|| {
                Error::new(ErrorCode::EntityInvalid).with_message("The role is viewer, admin or none.")
            })?),
        };
        let done = match app.console().change_operator(&session.operator, email, role).await? {
            Some(operator) => {
                app.console().record_action(&session.operator.email, "operator.put", &operator.email).await;
                format!("{} is a console {}.", operator.email, operator.role.as_str())
            }
            None => {
                app.console().record_action(&session.operator.email, "operator.remove", email).await;
                format!("{email} is no longer an operator.")
            }
        };
        operators_page(&app, &session, Some(done)).await
    };
    respond(changed.await, &request_id)
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
