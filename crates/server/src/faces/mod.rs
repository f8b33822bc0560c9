//! The faces: each parses its wire format, calls the application, and renders the result or error its
//! own way. Rules live in core, not here.

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;

use crate::app::App;

pub(crate) mod admin;
pub(crate) mod admin_events;
pub(crate) mod centralauth;
pub(crate) mod connect;
pub(crate) mod connector_webhooks;
pub(crate) mod console;
pub(crate) mod login_pages;
pub(crate) mod oauth;
pub(crate) mod ops;
pub(crate) mod session;
pub(crate) mod session_api;
pub(crate) mod supertokens_core;

/// Every route the API description covers, without the server's layers.
pub(crate) fn documented_routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .merge(ops::api())
        .merge(admin::api())
        .merge(admin_events::api())
        .merge(session_api::api())
        .merge(connect::api())
        .merge(connector_webhooks::api())
        .merge(oauth::api())
        .merge(centralauth::api())
}
