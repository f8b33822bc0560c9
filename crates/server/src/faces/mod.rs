//! The faces: each parses its wire format, calls the application, and renders the result or error its
//! own way. Rules live in core, not here.

pub(crate) mod admin;
pub(crate) mod centralauth;
pub(crate) mod connect;
pub(crate) mod login_pages;
pub(crate) mod oauth;
pub(crate) mod ops;
pub(crate) mod session;
pub(crate) mod session_api;
