//! The console's user pages: find a user of an organization by email or id, and see and act on their
//! login sessions (the hosted login's), their sessions on the session layer, their passkeys and their
//! recent audit events. Actions use the same core services as the admin API and the session API.

use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use portcullis_core::abuse::{AuditEvent, AuditFilter};
use portcullis_core::login::model::{LoginSession, User};
use portcullis_core::organization::Organization;
use portcullis_core::passkey::Passkey;
use portcullis_core::session::SessionRecord;
use portcullis_core::{Error, ErrorCode};
use serde::Deserialize;

use super::render::{Frame, page, respond};
use super::{ConsoleSession, see_other};
use crate::app::App;
use crate::http::RequestId;

/// How many audit events a user's page shows.
const RECENT_AUDIT_EVENTS: usize = 50;

#[derive(Debug, Deserialize)]
pub(super) struct SearchQuery {
    q: Option<String>,
}

#[derive(Template)]
#[template(path = "console/users.html")]
struct SearchPage<'a> {
    frame: Frame<'a>,
    organization: Organization,
    query: String,
    searched: bool,
}

/// The search form; a match goes straight to the user's page.
pub(super) async fn search(
    State(app): State<Arc<App>>,
    Extension(session): Extension<ConsoleSession>,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
    Query(query): Query<SearchQuery>,
) -> Response {
    let rendered = async {
        let organization = app.organization(&id).await?;
        let text = query.q.unwrap_or_default().trim().to_owned();
        let found = if text.is_empty() { None } else { app.login().find_user(&organization.id, &text).await? };
        if let Some(user) = found {
            return Ok(see_other(&format!("/console/organizations/{}/users/{}", organization.id, user.id)));
        }
        let frame = Frame::new(&session, "organizations");
        Ok(page(&SearchPage { frame, organization, searched: !text.is_empty(), query: text }))
    };
    respond(rendered.await, &request_id)
}

#[derive(Template)]
#[template(path = "console/user.html")]
struct UserPage<'a> {
    frame: Frame<'a>,
    organization: Organization,
    user: User,
    login_sessions: Vec<LoginSession>,
    sessions: Vec<SessionRecord>,
    passkeys: Vec<Passkey>,
    events: Vec<AuditEvent>,
    done: Option<&'static str>,
}

async fn user_page(
    app: &App,
    session: &ConsoleSession,
    organization_id: &str,
    user_id: &str,
    done: Option<&'static str>,
) -> Result<Response, Error> {
    let organization = app.organization(organization_id).await?;
    let login = app.login();
    let user = login.organization_user(&organization.id, user_id).await?;
    let login_sessions = login.user_login_sessions(&organization.id, &user.id).await?;
    let sessions = app.sessions().active_sessions(&organization.id, &user.id).await?;
    let passkeys = login.user_passkeys(&organization.id, &user.id).await?;
    // Events name a user by email (logins) or by id (sessions, passkeys).
    let mut events = Vec::new();
    for subject in [&user.email, &user.id] {
        let filter = AuditFilter { subject: Some(subject.clone()), ..AuditFilter::default() };
        events.extend(app.audit_events(&organization.id, &filter, RECENT_AUDIT_EVENTS).await?);
    }
    events.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.id.cmp(&a.id)));
    events.truncate(RECENT_AUDIT_EVENTS);
    let frame = Frame::new(session, "organizations");
    Ok(page(&UserPage { frame, organization, user, login_sessions, sessions, passkeys, events, done }))
}

pub(super) async fn show(
    State(app): State<Arc<App>>,
    Extension(session): Extension<ConsoleSession>,
    Extension(request_id): Extension<RequestId>,
    Path((id, user)): Path<(String, String)>,
) -> Response {
    respond(user_page(&app, &session, &id, &user, None).await, &request_id)
}

#[derive(Debug, Deserialize)]
pub(super) struct ActionForm {
    form_token: Option<String>,
    /// A passkey's new name.
    name: Option<String>,
}

/// What an action on a user's page does; the path names it.
#[derive(Debug, Clone, Copy)]
enum UserAction {
    EndLoginSession,
    EndLoginSessions,
    RevokeSession,
    RevokeSessions,
    RenamePasskey,
    RemovePasskey,
}

impl UserAction {
    fn parse(kind: &str, verb: &str) -> Option<Self> {
        Some(match (kind, verb) {
            ("login-sessions", "end") => Self::EndLoginSession,
            ("sessions", "revoke") => Self::RevokeSession,
            ("passkeys", "rename") => Self::RenamePasskey,
            ("passkeys", "remove") => Self::RemovePasskey,
            _ => return None,
        })
    }

    /// The audit name and the page's confirmation.
    const fn describe(self) -> (&'static str, &'static str) {
        match self {
            Self::EndLoginSession => ("user.loginSession.end", "The login session is ended."),
            Self::EndLoginSessions => ("user.loginSessions.end", "Every login session is ended."),
            Self::RevokeSession => ("user.session.revoke", "The session is revoked."),
            Self::RevokeSessions => ("user.sessions.revoke", "Every session is revoked."),
            Self::RenamePasskey => ("user.passkey.rename", "The passkey is renamed."),
            Self::RemovePasskey => ("user.passkey.remove", "The passkey is removed."),
        }
    }
}

async fn act(
    app: &App,
    session: &ConsoleSession,
    (organization_id, user_id): (&str, &str),
    action: UserAction,
    target: &str,
    form: &ActionForm,
) -> Result<Response, Error> {
    session.admit(app, form.form_token.as_deref())?;
    let user = app.login().organization_user(organization_id, user_id).await?;
    let missing = || Error::new(ErrorCode::EntityMissing).with_message("This user has no such session.");
    match action {
        UserAction::EndLoginSession => app.login().end_user_login_session(organization_id, &user.id, target).await?,
        UserAction::EndLoginSessions => {
            app.login().end_user_login_sessions(organization_id, &user.id).await?;
        }
        UserAction::RevokeSession => {
            let theirs = app.sessions().active_sessions(organization_id, &user.id).await?;
            if !theirs.iter().any(|s| s.handle == target) || !app.sessions().revoke(organization_id, target).await? {
                return Err(missing());
            }
        }
        UserAction::RevokeSessions => {
            app.sessions().revoke_user(organization_id, &user.id).await?;
        }
        UserAction::RenamePasskey => {
            let name = form.name.as_deref().unwrap_or_default();
            app.login().rename_user_passkey(organization_id, &user.id, target, name).await?;
        }
        UserAction::RemovePasskey => {
            let theirs = app.login().user_passkeys(organization_id, &user.id).await?;
            if !theirs.iter().any(|p| p.credential_id == target) {
                return Err(Error::new(ErrorCode::EntityMissing).with_message("This user has no such passkey."));
            }
            app.login().revoke_passkey(organization_id, target).await?;
        }
    }
    let (audit_name, done) = action.describe();
    let target = if target.is_empty() { user.id.clone() } else { format!("{}/{target}", user.id) };
    app.console().record_action(&session.operator.email, audit_name, &target).await;
    user_page(app, session, organization_id, &user.id, Some(done)).await
}

/// `POST …/users/{user}/{kind}/{target}/{verb}`: one session or passkey.
pub(super) async fn act_on_one(
    State(app): State<Arc<App>>,
    Extension(session): Extension<ConsoleSession>,
    Extension(request_id): Extension<RequestId>,
    Path((id, user, kind, target, verb)): Path<(String, String, String, String, String)>,
    axum::Form(form): axum::Form<ActionForm>,
) -> Response {
    let result = match UserAction::parse(&kind, &verb) {
        Some(action) => act(&app, &session, (&id, &user), action, &target, &form).await,
        None => Err(Error::new(ErrorCode::EntityMissing).with_message("There is no such action.")),
    };
    respond(result, &request_id)
}

/// `POST …/users/{user}/{kind}/end-all`: every session of one kind.
pub(super) async fn act_on_all(
    State(app): State<Arc<App>>,
    Extension(session): Extension<ConsoleSession>,
    Extension(request_id): Extension<RequestId>,
    Path((id, user, kind)): Path<(String, String, String)>,
    axum::Form(form): axum::Form<ActionForm>,
) -> Response {
    let action = match kind.as_str() {
        "login-sessions" => Some(UserAction::EndLoginSessions),
        "sessions" => Some(UserAction::RevokeSessions),
        _ => None,
    };
    let result = match action {
        Some(action) => act(&app, &session, (&id, &user), action, "", &form).await,
        None => Err(Error::new(ErrorCode::EntityMissing).with_message("There is no such action.")),
    };
    respond(result, &request_id)
}
