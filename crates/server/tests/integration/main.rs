//! Server integration tests: one binary (fast linking), a real server on a port-0 listener per test,
//! real HTTP over loopback.

mod abuse;
mod admin;
mod api_description;
mod config;
mod connector_security;
mod connectors;
mod console;
mod errors;
mod events;
mod flow_failures;
mod harness;
mod isolation;
mod keys;
mod login;
mod oauth_clients;
mod ops;
mod passkeys;
mod sdk;
mod sessions;
mod shutdown;
mod supertokens_core;
