//! `portcullis events …`: the admin API's event endpoints and delivery log, on the store directly.

use portcullis_core::events::{DeliveryState, NewEndpoint};
use portcullis_server::app::App;

use crate::EventsCommand;
use crate::commands::{Failure, print_json};

pub(crate) async fn run(app: &App, command: EventsCommand) -> Result<(), Failure> {
    let events = app.events();
    match command {
        EventsCommand::Add { organization, url, types, description, json } => {
            let new = NewEndpoint { url, description, event_types: types };
            let (endpoint, secret) = app.add_event_endpoint(&organization, new).await?;
            if json {
                print_json(&serde_json::json!({ "endpoint": endpoint, "secret": secret }));
            } else {
                println!("Endpoint {} of organization {organization} → {}", endpoint.id, endpoint.url);
                println!("Signing secret (shown only now):\n\n    {secret}\n");
            }
        }
        EventsCommand::List { organization, json } => {
            let endpoints = events.endpoints(&organization).await?;
            if json {
                print_json(&endpoints);
            } else if endpoints.is_empty() {
                println!("No endpoints. Add one with: portcullis events add {organization} --url https://…");
            } else {
                for e in &endpoints {
                    let types =
                        if e.event_types.is_empty() { "every type".to_owned() } else { e.event_types.join(",") };
                    let state = if e.enabled { "enabled" } else { "disabled" };
                    println!("{}  {state:<8}  {}  ({types})", e.id, e.url);
                }
            }
        }
        EventsCommand::RotateSecret { organization, endpoint, json } => {
            let secret = events.rotate_secret(&organization, &endpoint).await?;
            if json {
                print_json(&serde_json::json!({ "secret": secret }));
            } else {
                println!("New signing secret of {endpoint} (shown only now):\n\n    {secret}\n");
                println!("The previous secret keeps signing beside it for events.secret_overlap_secs.");
            }
        }
        EventsCommand::Remove { organization, endpoint } => {
            events.delete_endpoint(&organization, &endpoint).await?;
            println!("Removed endpoint {endpoint}.");
        }
        EventsCommand::Deliveries { organization, endpoint, state, limit, json } => {
            let state = state.as_deref().map(DeliveryState::parse).transpose().map_err(portcullis_core::Error::from)?;
            let log = events.deliveries(&organization, endpoint.as_deref(), state, limit.clamp(1, 1000)).await?;
            if json {
                print_json(&log);
            } else {
                for d in &log {
                    let status = d.last_status.map_or_else(|| "-".to_owned(), |s| s.to_string());
                    println!(
                        "{}  {:<9}  {:<28}  attempts {:<2}  last {status:<3}  {}",
                        d.id,
                        d.state.as_str(),
                        d.event_type,
                        d.attempts,
                        d.last_error.as_deref().unwrap_or("")
                    );
                }
            }
        }
        EventsCommand::Replay { organization, delivery, json } => {
            let replay = events.replay(&organization, &delivery).await?;
            if json {
                print_json(&replay);
            } else {
                println!("Replay {} of event {} queued; the running server sends it.", replay.id, replay.event_id);
            }
        }
    }
    Ok(())
}
