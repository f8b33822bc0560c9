//! The admin API's event endpoints and delivery log (`/admin/v1/organizations/{id}/event-…`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use portcullis_core::events::{Delivery, DeliveryState, EndpointChange, EventEndpoint, NewEndpoint};
use portcullis_core::{Error, ErrorCode};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api_description::ADMIN;
use crate::app::App;
use crate::http::{AdminAuth, ApiError, ApiJson};

pub(crate) fn api() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(create_endpoint, list_endpoints))
        .routes(routes!(show_endpoint, change_endpoint, delete_endpoint))
        .routes(routes!(rotate_secret))
        .routes(routes!(list_deliveries))
        .routes(routes!(replay_delivery))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewEndpointBody {
    /// An http(s) URL without credentials; the egress policy (`connectors.egress_allow`) applies.
    #[schema(max_length = 2048)]
    url: String,
    #[serde(default)]
    #[schema(max_length = 500)]
    description: String,
    /// Event types (`connector.account.needsReauth`, …); empty or absent: every type.
    #[serde(default)]
    event_types: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct NewEndpointAnswer {
    endpoint: EventEndpoint,
    /// The signing secret (`whsec_…`), shown once: give it to the receiver's Standard Webhooks library.
    secret: String,
}

/// Adds an event endpoint; the answer holds its signing secret, shown once.
#[utoipa::path(post, path = "/admin/v1/organizations/{id}/event-endpoints", tag = ADMIN,
    security(("adminToken" = [])), params(("id" = String, Path, description = "Organization id")),
    request_body = NewEndpointBody, responses((status = 201, body = NewEndpointAnswer)))]
async fn create_endpoint(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewEndpointBody>,
) -> Result<(StatusCode, Json<NewEndpointAnswer>), ApiError> {
    let new = NewEndpoint { url: body.url, description: body.description, event_types: body.event_types };
    let (endpoint, secret) = app.add_event_endpoint(&id, new).await?;
    Ok((StatusCode::CREATED, Json(NewEndpointAnswer { endpoint, secret })))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Endpoints {
    endpoints: Vec<EventEndpoint>,
}

/// Lists an organization's event endpoints.
#[utoipa::path(get, path = "/admin/v1/organizations/{id}/event-endpoints", tag = ADMIN,
    security(("adminToken" = [])), params(("id" = String, Path, description = "Organization id")),
    responses((status = 200, body = Endpoints)))]
async fn list_endpoints(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Endpoints>, ApiError> {
    let endpoints = app.events().endpoints(&id).await?;
    Ok(Json(Endpoints { endpoints }))
}

/// Shows an event endpoint.
#[utoipa::path(get, path = "/admin/v1/organizations/{id}/event-endpoints/{endpoint}", tag = ADMIN,
    security(("adminToken" = [])),
    params(("id" = String, Path, description = "Organization id"), ("endpoint" = String, Path, description = "Endpoint id")),
    responses((status = 200, body = EventEndpoint)))]
async fn show_endpoint(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path((id, endpoint)): Path<(String, String)>,
) -> Result<Json<EventEndpoint>, ApiError> {
    Ok(Json(app.events().endpoint(&id, &endpoint).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EndpointChangeBody {
    #[schema(max_length = 2048)]
    url: Option<String>,
    #[schema(max_length = 500)]
    description: Option<String>,
    /// Empty: every type.
    event_types: Option<Vec<String>>,
    enabled: Option<bool>,
}

/// Changes an event endpoint; absent fields keep their value.
#[utoipa::path(patch, path = "/admin/v1/organizations/{id}/event-endpoints/{endpoint}", tag = ADMIN,
    security(("adminToken" = [])),
    params(("id" = String, Path, description = "Organization id"), ("endpoint" = String, Path, description = "Endpoint id")),
    request_body = EndpointChangeBody, responses((status = 200, body = EventEndpoint)))]
async fn change_endpoint(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path((id, endpoint)): Path<(String, String)>,
    ApiJson(body): ApiJson<EndpointChangeBody>,
) -> Result<Json<EventEndpoint>, ApiError> {
    let change = EndpointChange {
        url: body.url,
        description: body.description,
        event_types: body.event_types,
        enabled: body.enabled,
    };
    Ok(Json(app.change_event_endpoint(&id, &endpoint, change).await?))
}

/// Deletes an event endpoint and its delivery log.
#[utoipa::path(delete, path = "/admin/v1/organizations/{id}/event-endpoints/{endpoint}", tag = ADMIN,
    security(("adminToken" = [])),
    params(("id" = String, Path, description = "Organization id"), ("endpoint" = String, Path, description = "Endpoint id")),
    responses((status = 204, description = "Deleted")))]
async fn delete_endpoint(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path((id, endpoint)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    app.events().delete_endpoint(&id, &endpoint).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct SecretAnswer {
    /// The new signing secret (`whsec_…`), shown once. The previous one keeps signing beside it for
    /// `events.secret_overlap_secs`.
    secret: String,
}

/// Gives an event endpoint a new signing secret, with an overlap during which both sign.
#[utoipa::path(post, path = "/admin/v1/organizations/{id}/event-endpoints/{endpoint}/rotate-secret", tag = ADMIN,
    security(("adminToken" = [])),
    params(("id" = String, Path, description = "Organization id"), ("endpoint" = String, Path, description = "Endpoint id")),
    responses((status = 200, body = SecretAnswer)))]
async fn rotate_secret(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path((id, endpoint)): Path<(String, String)>,
) -> Result<Json<SecretAnswer>, ApiError> {
    Ok(Json(SecretAnswer { secret: app.events().rotate_secret(&id, &endpoint).await? }))
}

/// Most deliveries one request returns.
const MAX_DELIVERIES: usize = 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DeliveryQuery {
    /// Only this endpoint's.
    endpoint: Option<String>,
    /// Only `pending`, `delivered` or `dead` ones.
    state: Option<String>,
    /// Most deliveries (1–1000, default 100).
    limit: Option<usize>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Deliveries {
    /// Newest first.
    deliveries: Vec<Delivery>,
}

/// The delivery log of an organization's events, newest first.
#[utoipa::path(get, path = "/admin/v1/organizations/{id}/event-deliveries", tag = ADMIN,
    security(("adminToken" = [])), params(("id" = String, Path, description = "Organization id"), DeliveryQuery),
    responses((status = 200, body = Deliveries)))]
async fn list_deliveries(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(query): Query<DeliveryQuery>,
) -> Result<Json<Deliveries>, ApiError> {
    let state = query
        .state
        .as_deref()
        .map(|s| {
            DeliveryState::parse(s).map_err(|_| {
                Error::new(ErrorCode::EntityInvalid)
                    .with_message(format!("Unknown delivery state {s:?}; known: pending, delivered, dead."))
            })
        })
        .transpose()?;
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_DELIVERIES);
    let deliveries = app.events().deliveries(&id, query.endpoint.as_deref(), state, limit).await?;
    Ok(Json(Deliveries { deliveries }))
}

/// Sends a delivery's event to its endpoint again (a dead one after the endpoint is fixed, or any other).
#[utoipa::path(post, path = "/admin/v1/organizations/{id}/event-deliveries/{delivery}/replay", tag = ADMIN,
    security(("adminToken" = [])),
    params(("id" = String, Path, description = "Organization id"), ("delivery" = String, Path, description = "Delivery id")),
    responses((status = 201, body = Delivery)))]
async fn replay_delivery(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Delivery>), ApiError> {
    Ok((StatusCode::CREATED, Json(app.events().replay(&id, &delivery).await?)))
}
