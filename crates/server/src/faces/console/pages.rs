//! The console's overview, operators and error catalog. Each page reads through the same `App` services as the admin API; an action checks
//! the form token and the admin role, then is recorded in the audit log under the operator's email.

use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use portcullis_core::console::Operator;
use portcullis_core::error::{CatalogEntry, catalog};

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
