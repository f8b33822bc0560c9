//! The error catalog: one enum of named, documented failures shared by every face.

mod catalog;
mod code;

pub use catalog::{Catalog, CatalogEntry, OtherStatus, catalog, render_markdown};
pub use code::{ErrorCode, ErrorFamily, ErrorSpec, UnknownErrorCode};
