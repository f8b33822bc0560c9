//! HTTP plumbing shared by every face: the error rendering, the JSON extractor, the request middleware
//! and the router.

mod admin_auth;
mod bearer;
mod error;
mod json;
mod org_auth;
mod request_context;
mod router;

pub use admin_auth::AdminAuth;
pub(crate) use bearer::bearer_token;
pub use error::ApiError;
pub(crate) use error::ErrorReport;
pub use json::ApiJson;
pub use org_auth::OrgAuth;
pub use request_context::{REQUEST_ID_HEADER, RequestId};
pub use router::router;
