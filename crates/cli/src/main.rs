//! The `portcullis` command.
#![allow(clippy::print_stdout, reason = "printing is this binary's interface")]

mod commands;
mod console;
mod events;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use portcullis_server::config::{CommandLine, Config, LogConfig};

/// Portcullis: an authentication server in which every failure is a named, documented, recoverable event.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about, long_about = None, after_help = AFTER_HELP)]
struct Cli {
    /// Configuration file (default: ./portcullis.toml when it exists). `PORTCULLIS_*` variables override it.
    #[arg(long, short, global = true, env = "PORTCULLIS_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Data directory (default: ./portcullis-data, or `data_dir` / PORTCULLIS_DATA_DIR). Every command
    /// except `serve` opens the store directly: give it the same data directory and configuration as the
    /// server, or it works on a store of its own.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

const AFTER_HELP: &str = "Start with `portcullis serve`: it keeps everything in ./portcullis-data (SQLite) and \
listens on http://127.0.0.1:7420. Run the other commands from the same directory (or with the same \
--data-dir): they open that store directly. Every configuration key is listed in portcullis.reference.toml.";

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (migrates the store first unless `store.migrate_on_start = false`).
    Serve {
        /// Socket address to listen on, such as 0.0.0.0:8080 (`server.listen`); port 0 picks a free port,
        /// which the banner reports.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Port to listen on, keeping the configured address.
        #[arg(long, value_name = "PORT", conflicts_with = "listen")]
        port: Option<u16>,
    },
    /// Apply the store's schema migrations and exit.
    Migrate,
    /// Manage organizations (each one is an OAuth client).
    #[command(subcommand)]
    Org(OrgCommand),
    /// Manage the signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Connector authoring: check definitions, call a method of an installed account.
    #[command(subcommand)]
    Connector(ConnectorCommand),
    /// Outbound events: an organization's endpoints (Standard Webhooks), the delivery log, replays.
    #[command(subcommand)]
    Events(EventsCommand),
    /// The admin console's operators (people who sign in at `/console/`).
    #[command(subcommand)]
    Console(ConsoleCommand),
    /// Print the error catalog.
    Errors {
        /// Output format.
        #[arg(long, value_enum, default_value_t = CatalogFormat::Json)]
        format: CatalogFormat,
    },
}

#[derive(Debug, Subcommand)]
enum ConsoleCommand {
    /// Operators: the people who may sign in to the console.
    #[command(subcommand)]
    Operator(OperatorCommand),
}

#[derive(Debug, Subcommand)]
enum OperatorCommand {
    /// Add an operator (or change their role); they sign in at `/console/` by email code or passkey.
    Add {
        /// Their email.
        #[arg(long)]
        email: String,
        /// `admin` acts; `viewer` reads everything but secrets.
        #[arg(long, value_enum, default_value_t = RoleArg::Viewer)]
        role: RoleArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Take every console role from an operator (their open console sessions stop at their next request).
    Remove {
        /// Their email.
        #[arg(long)]
        email: String,
    },
    /// List the operators.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    Viewer,
    Admin,
}

#[derive(Debug, Subcommand)]
enum ConnectorCommand {
    /// Check connector definitions (YAML, scripts); prints file:line: problem for each error.
    Validate {
        /// Definition files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Call a method of an installed connector account (definitions from `connectors.dir`) and print the result.
    Call {
        /// Organization id.
        organization: String,
        /// Connector account id.
        account: String,
        /// Method id.
        method: String,
        /// A merge-field value, `Name=value` (repeatable).
        #[arg(long = "field", value_name = "NAME=VALUE")]
        fields: Vec<String>,
        /// JSON body, replacing the method's body template.
        #[arg(long)]
        body: Option<String>,
        /// A step-level script file, run after the connector and method levels.
        #[arg(long, value_name = "FILE")]
        script: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// Add an endpoint; its signing secret (`whsec_…`) is printed once.
    Add {
        /// Organization id.
        organization: String,
        /// Where events are POSTed (http or https).
        #[arg(long)]
        url: String,
        /// An event type it hears (repeat the flag); none: every type.
        #[arg(long = "type", value_name = "TYPE")]
        types: Vec<String>,
        /// A note for operators.
        #[arg(long, default_value = "")]
        description: String,
        /// Print JSON: `{"endpoint", "secret"}`.
        #[arg(long)]
        json: bool,
    },
    /// List the organization's endpoints.
    List {
        /// Organization id.
        organization: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Give an endpoint a new secret (printed once); the old one signs beside it for
    /// `events.secret_overlap_secs`.
    RotateSecret {
        /// Organization id.
        organization: String,
        /// Endpoint id.
        endpoint: String,
        /// Print JSON: `{"secret"}`.
        #[arg(long)]
        json: bool,
    },
    /// Remove an endpoint and its delivery log.
    Remove {
        /// Organization id.
        organization: String,
        /// Endpoint id.
        endpoint: String,
    },
    /// The delivery log, newest first.
    Deliveries {
        /// Organization id.
        organization: String,
        /// Only this endpoint's.
        #[arg(long)]
        endpoint: Option<String>,
        /// Only deliveries in this state.
        #[arg(long, value_parser = ["pending", "delivered", "dead"])]
        state: Option<String>,
        /// Most deliveries.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send a delivery's event to its endpoint again.
    Replay {
        /// Organization id.
        organization: String,
        /// Delivery id.
        delivery: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum OrgCommand {
    /// Create an organization and print it.
    Create {
        /// Display name, shown on the hosted login page.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List organizations, oldest first.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one organization.
    Show {
        /// Organization id (its OAuth client_id).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Manage the organization's API keys (for the server-to-server session API).
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
    /// Set the organization's login whitelist and settings.
    Configure {
        /// Organization id.
        id: String,
        /// Allowed callback origins (repeat the flag), such as https://app.example.com or
        /// https://*.example.com; a bare domain (example.com) means its https origin. Replaces the whole
        /// list.
        #[arg(long = "whitelist", value_name = "ORIGIN")]
        whitelist: Vec<String>,
        /// Admit localhost / 127.0.0.1 / [::1] callbacks (development).
        #[arg(long)]
        allow_localhost: Option<bool>,
        /// What the login mail carries: a code (6 digits by default), a challenge of three numbers, or a link.
        #[arg(long, value_parser = ["code", "challenge", "link"])]
        login_attempt_type: Option<String>,
        /// For links: which device is logged in (`local`: the one opening the mail; `remote`: the one that
        /// started; `userPick`: the mail offers both).
        #[arg(long, value_parser = ["local", "remote", "userPick"])]
        login_method: Option<String>,
        /// People may log in with passkeys (added on the login page after an email code).
        #[arg(long)]
        passkeys: Option<bool>,
        /// The host the organization's login pages are served on (e.g. login.acme.com), and so its
        /// passkeys' relying-party id; an empty value goes back to the server's host.
        #[arg(long, value_name = "HOST")]
        auth_domain: Option<String>,
        /// `confidential` (the default: code exchanges and refreshes need the client secret) or `public`
        /// (a native or single-page app without a secret: PKCE is required).
        #[arg(long, value_parser = ["confidential", "public"])]
        client_type: Option<String>,
        /// A redirect URI the standard OAuth face (`/oauth2/authorize`) accepts, matched exactly (repeat
        /// the flag). Replaces the whole list; an empty value clears it.
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Manage the organization's client secret.
    #[command(subcommand)]
    Secret(SecretCommand),
}

#[derive(Debug, Subcommand)]
enum SecretCommand {
    /// Create the client secret (printed once); when one exists, the new one is staged until activated.
    Create {
        /// Organization id.
        organization: String,
        /// Print JSON: `{"secret", "staged"}`.
        #[arg(long)]
        json: bool,
    },
    /// Activate the staged secret; the old one stops working at once.
    Activate {
        /// Organization id.
        organization: String,
    },
}

#[derive(Debug, Subcommand)]
enum ApiKeyCommand {
    /// Create an API key; its secret is printed once and only its hash is stored.
    Create {
        /// Organization id.
        organization: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Make a new signing key: published at once, signing after `keys.publish_lead_secs`.
    Rotate {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the signing keys and their states.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CatalogFormat {
    /// As `GET /errors` serves it.
    Json,
    /// As `docs/errors.md`.
    Markdown,
}

// mimalloc: a request allocates and frees many small buffers across threads, where glibc's allocator
// spent about 12 % of the server's CPU under refresh load (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Errors { format } = cli.command {
        commands::print_catalog(format);
        return ExitCode::SUCCESS;
    }
    if let Command::Connector(ConnectorCommand::Validate { paths }) = &cli.command {
        return commands::validate_connectors(paths);
    }
    let mut flags = CommandLine { data_dir: cli.data_dir, ..CommandLine::default() };
    if let Command::Serve { listen, port } = &cli.command {
        flags.listen.clone_from(listen);
        flags.port = *port;
    }
    let config = match Config::load_with(cli.config.as_deref(), &flags) {
        Ok(mut config) => {
            // One-shot commands print their result; routine progress logs would only be noise there.
            if !matches!(cli.command, Command::Serve { .. }) && config.log.level == LogConfig::default().level {
                "warn".clone_into(&mut config.log.level);
            }
            config
        }
        Err(e) => {
            eprintln!("portcullis: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = portcullis_server::init_tracing(&config.log) {
        eprintln!("portcullis: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("portcullis: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(commands::Failure::Startup(e)) => {
            eprintln!("portcullis: {e}");
            ExitCode::from(e.exit_code())
        }
        Err(commands::Failure::Refused(e)) => {
            eprintln!("portcullis: {} ({})", e.message(), e.code());
            ExitCode::FAILURE
        }
    }
}
