//! HTTP plumbing shared by every face: the error rendering, the JSON extractor, the request middleware
//! and the router.

mod admin_auth;
mod error;
mod json;
mod request_context;
mod router;

pub use admin_auth::AdminAuth;
pub use error::ApiError;
pub use json::ApiJson;
pub use request_context::{REQUEST_ID_HEADER, RequestId};
pub use router::router;
