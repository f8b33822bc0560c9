//! `portcullis console operator …`: the console's operators, on the store directly (the admin token's
//! holder bootstraps the first operator here).

use portcullis_core::console::OperatorRole;
use portcullis_server::app::App;

use crate::commands::{Failure, print_json};
use crate::{ConsoleCommand, OperatorCommand, RoleArg};

pub(crate) async fn run(app: &App, command: ConsoleCommand) -> Result<(), Failure> {
    let console = app.console();
    let ConsoleCommand::Operator(command) = command;
    match command {
        OperatorCommand::Add { email, role, json } => {
            let role = match role {
                RoleArg::Viewer => OperatorRole::Viewer,
                RoleArg::Admin => OperatorRole::Admin,
            };
            let operator = console.put_operator(&email, role).await?;
            console.record_action("admin token", "operator.put", &operator.email).await;
            if json {
                print_json(&operator);
            } else {
                println!(
                    "{} is a console {}. They sign in at /console/ on this server.",
                    operator.email,
                    role.as_str()
                );
            }
        }
        OperatorCommand::Remove { email } => {
            if console.remove_operator(&email).await? {
                console.record_action("admin token", "operator.remove", &email).await;
                println!("{email} is no longer a console operator.");
            } else {
                println!("{email} was not a console operator.");
            }
        }
        OperatorCommand::List { json } => {
            let operators = console.operators().await?;
            if json {
                print_json(&operators);
            } else if operators.is_empty() {
                println!(
                    "No operators yet. Add one with: portcullis console operator add --email you@example.com --role admin"
                );
            } else {
                for operator in &operators {
                    println!("{:<8}  {}", operator.role.as_str(), operator.email);
                }
            }
        }
    }
    Ok(())
}
