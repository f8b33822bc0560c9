//! What each subcommand does.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;

use portcullis_core::keys::KeyStatus;
use portcullis_core::organization::Organization;
use portcullis_core::{Error, ErrorCode};
use portcullis_server::StartupError;
use portcullis_server::app::{App, OpenOptions};
use portcullis_server::config::Config;
use serde::Serialize;

use crate::{ApiKeyCommand, CatalogFormat, Command, ConnectorCommand, KeysCommand, OrgCommand, SecretCommand};

/// Why a command failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// It could not start (configuration, store, files).
    Startup(StartupError),
    /// The operation was refused with a catalog error.
    Refused(portcullis_core::Error),
}

impl From<StartupError> for Failure {
    fn from(e: StartupError) -> Self {
        Self::Startup(e)
    }
}

impl From<portcullis_core::Error> for Failure {
    fn from(e: portcullis_core::Error) -> Self {
        Self::Refused(e)
    }
}

pub(crate) fn print_catalog(format: CatalogFormat) {
    match format {
        CatalogFormat::Json => print_json(&portcullis_core::error::catalog()),
        CatalogFormat::Markdown => print!("{}", portcullis_core::error::render_markdown()),
    }
}

pub(crate) async fn run(command: Command, mut config: Config) -> Result<(), Failure> {
    let migrate = matches!(command, Command::Migrate) || config.store.migrate_on_start;
    if matches!(command, Command::Serve { .. }) {
        let listener = portcullis_server::bind(&mut config).await?;
        let app = App::open(config, OpenOptions { migrate }).await?;
        return Ok(serve(app, listener).await?);
    }
    let app = App::open(config, OpenOptions { migrate }).await?;
    match command {
        Command::Serve { .. } => {}
        Command::Migrate => println!("The {} store is up to date.", app.store_backend()),
        Command::Org(OrgCommand::Create { name, json }) => {
            print_organization(&app.create_organization(&name).await?, json)
        }
        Command::Org(OrgCommand::Show { id, json }) => print_organization(&app.organization(&id).await?, json),
        Command::Org(OrgCommand::List { json }) => {
            let organizations = app.organizations().await?;
            if json {
                print_json(&organizations);
            } else if organizations.is_empty() {
                println!("No organizations yet. Create one with: portcullis org create \"Acme\"");
            } else {
                println!("{:<36}  {:<24}  NAME", "ID", "CREATED");
                for org in &organizations {
                    println!("{:<36}  {:<24}  {}", org.id, org.created.to_rfc3339(), org.name);
                }
            }
        }
        Command::Org(OrgCommand::ApiKey(ApiKeyCommand::Create { organization, json })) => {
            let key = app.create_api_key(&organization).await?;
            if json {
                print_json(&serde_json::json!({
                    "id": key.record.id,
                    "key": key.secret,
                    "organizationId": key.record.organization_id,
                    "created": key.record.created,
                }));
            } else {
                println!("API key {} for organization {}:\n\n    {}\n", key.record.id, organization, key.secret);
                println!("It is shown only now; Portcullis keeps only its hash.");
            }
        }
        Command::Org(OrgCommand::Configure {
            id,
            whitelist,
            allow_localhost,
            login_attempt_type,
            login_method,
            passkeys,
            auth_domain,
            client_type,
            redirect_uris,
            json,
        }) => {
            let mut settings = app.organization(&id).await?.settings;
            if let Some(allow) = allow_localhost {
                settings.allow_localhost = allow;
            }
            if let Some(kind) = login_attempt_type {
                settings.default_login_attempt_type = setting(kind)?;
            }
            if let Some(method) = login_method {
                settings.default_login_method = setting(method)?;
            }
            if let Some(enabled) = passkeys {
                settings.passkey_connection_enabled = enabled;
            }
            if let Some(domain) = auth_domain {
                settings.auth_domain = (!domain.is_empty()).then_some(domain);
            }
            if let Some(kind) = client_type {
                settings.client_type = setting(kind)?;
            }
            if !redirect_uris.is_empty() {
                settings.redirect_uris = redirect_uris.into_iter().filter(|uri| !uri.is_empty()).collect();
            }
            let whitelist = (!whitelist.is_empty()).then_some(whitelist);
            let organization = app.login().configure(&id, whitelist, Some(settings)).await?;
            if json {
                print_json(&organization);
            } else {
                print_organization(&organization, false);
            }
        }
        Command::Org(OrgCommand::Secret(SecretCommand::Create { organization, json: true })) => {
            let (secret, staged) = app.login().new_secret(&organization).await?;
            print_json(&serde_json::json!({ "secret": secret, "staged": staged }));
        }
        Command::Org(OrgCommand::Secret(SecretCommand::Create { organization, json: false })) => {
            let (secret, staged) = app.login().new_secret(&organization).await?;
            println!("Client secret for {organization}:\n\n    {secret}\n");
            if staged {
                println!(
                    "It is staged: the current secret keeps working until `portcullis org secret activate {organization}`."
                );
            } else {
                println!("It is active now. It is shown only once.");
            }
        }
        Command::Org(OrgCommand::Secret(SecretCommand::Activate { organization })) => {
            app.login().activate_secret(&organization).await?;
            println!("The staged secret of {organization} is now active; the previous one no longer works.");
        }
        Command::Keys(KeysCommand::Rotate { json }) => {
            let key = app.rotate_keys().await?;
            if json {
                print_json(&key);
            } else {
                println!("New key {} ({}) is published now and signs from {}.", key.kid, key.algorithm, key.signs_from);
            }
        }
        Command::Keys(KeysCommand::List { json }) => print_keys(&app.key_statuses(), json),
        Command::Errors { format } => print_catalog(format),
        Command::Events(command) => crate::events::run(&app, command).await?,
        Command::Console(command) => crate::console::run(&app, command).await?,
        Command::Connector(ConnectorCommand::Validate { paths }) => {
            validate_connectors(&paths);
        }
        Command::Connector(ConnectorCommand::Call { organization, account, method, fields, body, script }) => {
            let request = connector_call(method, &fields, body.as_deref(), script.as_deref())?;
            let connector = app.connectors().account(&organization, &account).await?.connector;
            print_json(&app.connectors().call(&organization, &connector, &account, &request).await?);
        }
    }
    Ok(())
}

fn connector_call(
    method: String,
    fields: &[String],
    body: Option<&str>,
    script: Option<&std::path::Path>,
) -> Result<portcullis_connect::CallRequest, portcullis_core::Error> {
    let invalid = |m: String| portcullis_core::Error::new(portcullis_core::ErrorCode::EntityInvalid).with_message(m);
    let mut mergefields = serde_json::Map::new();
    for field in fields {
        let (name, value) =
            field.split_once('=').ok_or_else(|| invalid(format!("--field {field:?} is not NAME=VALUE")))?;
        mergefields.insert(name.to_owned(), serde_json::Value::String(value.to_owned()));
    }
    let body = body.map(serde_json::from_str).transpose().map_err(|e| invalid(format!("--body is not JSON: {e}")))?;
    let script = script
        .map(std::fs::read_to_string)
        .transpose()
        .map_err(|e| invalid(format!("--script cannot be read: {e}")))?;
    Ok(portcullis_connect::CallRequest { method, mergefields, body, script, ..Default::default() })
}

/// `portcullis connector validate`: exit 0 when every definition loads, 1 otherwise.
pub(crate) fn validate_connectors(paths: &[std::path::PathBuf]) -> std::process::ExitCode {
    let mut ok = true;
    for path in paths {
        let loaded = if path.is_dir() {
            portcullis_connect::Connector::load_dir(path).map(|c| c.into_values().collect::<Vec<_>>())
        } else {
            portcullis_connect::Connector::load(path).map(|c| vec![c])
        };
        match loaded {
            Ok(connectors) => {
                for c in connectors {
                    println!("{}: ok (connector {:?}, {} methods)", c.source.display(), c.name, c.methods.len());
                }
            }
            Err(errors) => {
                ok = false;
                for e in errors {
                    eprintln!("{e}");
                }
            }
        }
    }
    if ok { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE }
}

async fn serve(app: App, listener: tokio::net::TcpListener) -> Result<(), StartupError> {
    let url = app.config().public_url();
    let store = match app.store_backend() {
        "sqlite" => format!("SQLite at {}", app.config().sqlite_path().display()),
        other => other.to_owned(),
    };
    let mut banner = format!("Portcullis {} is serving on {url} (store: {store})\n", env!("CARGO_PKG_VERSION"));
    if let Some(path) = app.admin_token_file() {
        let _ = writeln!(banner, "Admin API token: {}", path.display());
    }
    if !app.can_deliver_mail() {
        let _ = writeln!(
            banner,
            "Login emails: not configured ([smtp] in portcullis.reference.toml); the hosted login cannot send codes."
        );
    }
    let _ = write!(banner, "Try:  curl {url}/health\n      portcullis org create \"Acme\"\nStop with Ctrl-C.\n");
    // A closed standard output (a supervisor that does not read it) must not stop the server.
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(banner.as_bytes()).and_then(|()| stdout.flush());
    portcullis_server::serve(Arc::new(app), listener, portcullis_server::shutdown_signal()).await
}

fn print_organization(org: &Organization, json: bool) {
    if json {
        print_json(org);
    } else {
        println!("id:        {}\nname:      {}\ncreated:   {}", org.id, org.name, org.created.to_rfc3339());
        println!("whitelist: {}", whitelist_summary(org));
        let client_type = serde_json::to_value(org.settings.client_type)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        println!("client:    {client_type}");
        if !org.settings.redirect_uris.is_empty() {
            println!("redirect:  {}", org.settings.redirect_uris.join(", "));
        }
    }
}

/// What the whitelist admits, counting localhost callbacks when `allowLocalhost` is on.
fn whitelist_summary(org: &Organization) -> String {
    match (org.whitelist.is_empty(), org.settings.allow_localhost) {
        (true, false) => "(empty: no callback allowed, so no login)".to_owned(),
        (true, true) => "(empty) + localhost callbacks".to_owned(),
        (false, false) => org.whitelist.join(", "),
        (false, true) => format!("{} + localhost callbacks", org.whitelist.join(", ")),
    }
}

fn print_keys(keys: &[KeyStatus], json: bool) {
    if json {
        print_json(&keys);
        return;
    }
    println!("{:<18}  {:<6}  {:<9}  {:<24}  PUBLISHED UNTIL", "KID", "ALG", "STATE", "SIGNS FROM");
    for key in keys {
        let state =
            serde_json::to_value(key.state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        let until = key.published_until.map_or_else(|| "-".to_owned(), |t| t.to_rfc3339());
        println!(
            "{:<18}  {:<6}  {:<9}  {:<24}  {until}",
            key.kid,
            key.algorithm.as_str(),
            state,
            key.signs_from.to_rfc3339()
        );
    }
}

pub(crate) fn print_json<T: Serialize + ?Sized>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("portcullis: cannot print JSON: {e}"),
    }
}

/// An organization setting from its JSON spelling (clap has already checked the name).
fn setting<T: serde::de::DeserializeOwned>(name: String) -> Result<T, Error> {
    serde_json::from_value(serde_json::Value::String(name))
        .map_err(|e| Error::new(ErrorCode::EntityInvalid).with_message(format!("Unknown setting value: {e}")))
}
