//! HTTP plumbing shared by every face: the error rendering, the JSON extractor, the request middleware
//! and the router.

mod admin_auth;
mod bearer;
mod client_ip;
mod cookies;
mod error;
mod error_body;
mod form;
mod json;
mod org_auth;
mod rate_limit;
mod request_context;
mod router;

pub use admin_auth::AdminAuth;
pub(crate) use bearer::bearer_token;
pub(crate) use client_ip::ClientIp;
pub(crate) use cookies::cookie_value;
pub use error::ApiError;
pub(crate) use error::ErrorReport;
pub(crate) use error_body::{ErrorBody, OAuthErrorBody};
pub(crate) use form::repeated_parameter;
pub use json::ApiJson;
pub use org_auth::OrgAuth;
pub(crate) use rate_limit::{IpLimit, limit_per_ip};
pub use request_context::{REQUEST_ID_HEADER, RequestId};
pub use router::router;
