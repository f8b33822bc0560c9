//! The connector runtime: declarative connectors (YAML), auth strategies, the JavaScript hook host
//! (`rquickjs`) with Cyclr's events, globals and auth exceptions, and single-flight auth recovery.

mod account;
pub mod builtins;
pub mod credentials;
pub mod definition;
pub mod egress;
mod pool;
mod runtime;
pub mod script;
pub mod webhook_signature;

pub use account::{Credentials, OAuthValue};
pub use definition::{Connector, DefinitionError};
pub use runtime::{
    AccountInput, AccountView, CallRequest, CallResult, Caller, ConnectorRuntime, InboundWebhook, RuntimeConfig,
    WebhookReply, basic_auth_value,
};
