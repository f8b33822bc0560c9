//! The console's audit log: one organization's events (the operator organization's are the console's
//! own actions), filtered by kind, subject and time, and exported as CSV with the same filter.

use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use portcullis_core::abuse::{AuditEvent, AuditFilter, AuditKind};
use portcullis_core::console::ORGANIZATION_ID;
use portcullis_core::organization::Organization;
use portcullis_core::{Error, ErrorCode};
use serde::Deserialize;

use super::ConsoleSession;
use super::render::{Frame, page, respond};
use crate::app::App;
use crate::faces::admin::time_parameter;
use crate::http::RequestId;

/// Most events the page shows.
const PAGE_EVENTS: usize = 200;
/// Most events one export holds.
const EXPORT_EVENTS: usize = 100_000;

#[derive(Debug, Default, Deserialize)]
pub(super) struct AuditQuery {
    organization: Option<String>,
    kind: Option<String>,
    subject: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

impl AuditQuery {
    fn organization_id(&self) -> &str {
        self.organization.as_deref().filter(|o| !o.is_empty()).unwrap_or(ORGANIZATION_ID)
    }

    fn filter(&self) -> Result<AuditFilter, Error> {
        let present =
            |value: &Option<String>| value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        Ok(AuditFilter {
            kind: present(&self.kind),
            subject: present(&self.subject),
            since: time_parameter("since", self.since.as_deref())?,
            until: time_parameter("until", self.until.as_deref())?,
        })
    }

    /// The same filter as a query string, for the export link.
    fn query_string(&self) -> String {
        let pairs = [
            ("organization", self.organization.as_deref()),
            ("kind", self.kind.as_deref()),
            ("subject", self.subject.as_deref()),
            ("since", self.since.as_deref()),
            ("until", self.until.as_deref()),
        ];
        let present: Vec<(&str, &str)> = pairs.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect();
        serde_urlencoded::to_string(present).unwrap_or_default()
    }
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage<'a> {
    frame: Frame<'a>,
    organizations: Vec<Organization>,
    selected: &'a str,
    kinds: Vec<&'static str>,
    /// The filter as typed, shown back in the form.
    kind: &'a str,
    subject: &'a str,
    since: &'a str,
    until: &'a str,
    events: Vec<AuditEvent>,
    export: String,
    limit: usize,
}

pub(super) async fn show(
    State(app): State<Arc<App>>,
    Extension(session): Extension<ConsoleSession>,
    Extension(request_id): Extension<RequestId>,
    Query(query): Query<AuditQuery>,
) -> Response {
    let rendered = async {
        let selected = query.organization_id();
        let events = app.audit_events(selected, &query.filter()?, PAGE_EVENTS).await?;
        Ok(page(&AuditPage {
            frame: Frame::new(&session, "audit"),
            organizations: app.organizations().await?,
            selected,
            kinds: AuditKind::ALL.iter().map(|k| k.as_str()).collect(),
            kind: query.kind.as_deref().unwrap_or_default(),
            subject: query.subject.as_deref().unwrap_or_default(),
            since: query.since.as_deref().unwrap_or_default(),
            until: query.until.as_deref().unwrap_or_default(),
            events,
            export: query.query_string(),
            limit: PAGE_EVENTS,
        }))
    };
    respond(rendered.await, &request_id)
}

/// A cell as a spreadsheet will not run it: a leading `=`, `+`, `-`, `@`, tab or carriage return is
/// escaped with a quote (CSV injection), since subjects are typed by the people who log in.
fn inert(cell: &str) -> String {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell.to_owned(),
    }
}

pub(super) async fn export(
    State(app): State<Arc<App>>,
    Extension(request_id): Extension<RequestId>,
    Query(query): Query<AuditQuery>,
) -> Response {
    let exported = async {
        let organization = query.organization_id();
        let events = app.audit_events(organization, &query.filter()?, EXPORT_EVENTS).await?;
        let failed = |e: &dyn std::fmt::Display| Error::new(ErrorCode::GenericError).with_internal(format!("csv: {e}"));
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(["id", "created", "organization", "kind", "subject", "detail"]).map_err(|e| failed(&e))?;
        for event in &events {
            let row = [
                event.id.clone(),
                event.created.to_rfc3339(),
                event.organization_id.clone(),
                event.kind.clone(),
                inert(event.subject.as_deref().unwrap_or_default()),
                inert(&event.detail.to_string()),
            ];
            writer.write_record(&row).map_err(|e| failed(&e))?;
        }
        let body = writer.into_inner().map_err(|e| failed(&e))?;
        let mut response = body.into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
        let disposition = format!("attachment; filename=\"audit-{}.csv\"", organization.replace('"', ""));
        if let Ok(value) = HeaderValue::from_str(&disposition) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
        Ok(response)
    };
    respond(exported.await, &request_id)
}

#[cfg(test)]
mod tests {
    use super::inert;

    #[test]
    fn formula_cells_are_escaped_and_others_kept() {
        assert_eq!(inert("=HYPERLINK(\"http://x\")"), "'=HYPERLINK(\"http://x\")");
        assert_eq!(inert("@sum"), "'@sum");
        assert_eq!(inert("ada@example.com"), "ada@example.com");
        assert_eq!(inert(""), "");
    }
}
