//! The command line: `serve`, `worker`, `migrate`, `openapi` and `users create`.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::{
    config::Settings,
    db,
    domain::{Role, organizations, users},
    startup::{self, Application},
    telemetry,
};

/// Keeps each user's calendar and tasks in sync with Microsoft 365.
#[derive(Debug, Parser)]
#[command(name = "m365-sync", version, about)]
struct Cli {
    /// TOML configuration file (also `M365_SYNC_CONFIG`).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run pending migrations, then serve the HTTP API, with a sync worker and the scheduler
    /// in the same process unless `--no-worker` is given.
    Serve {
        /// Serve the API only: background synchronization runs in `worker` processes.
        #[arg(long)]
        no_worker: bool,
    },
    /// Run pending migrations, then run a sync worker and the scheduler without the API. Any
    /// number of worker processes can share one PostgreSQL database.
    Worker {
        /// Serve `/healthz`, `/readyz` and `/metrics` on this address (also `worker_listen`);
        /// by default the worker listens on nothing.
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
    },
    /// Run pending migrations and exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
    /// Manage users.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Create a user (for bootstrapping: the first admin, or any user).
    Create {
        /// E-mail address, used to sign in.
        #[arg(long)]
        email: String,
        /// Password (8 to 1024 characters).
        #[arg(long)]
        password: String,
        /// `admin`, `org_admin` or `user`.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Organization id or name; a name that does not exist yet is created.
        #[arg(long)]
        org: Option<String>,
        /// Name shown in front ends (default: the e-mail).
        #[arg(long)]
        display_name: Option<String>,
    },
}

fn parse_role(value: &str) -> Result<Role, String> {
    Role::parse(value)
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Openapi) {
        return match crate::openapi::to_pretty_json() {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    telemetry::init(settings.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: Failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "m365-sync failed");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve { no_worker } => {
            let mut settings = settings;
            settings.jobs.embedded_worker = !no_worker;
            let app = Application::build(settings.clone()).await?;
            tracing::info!(
                bind = %settings.bind,
                swagger_ui = %format!("{}/swagger-ui/", settings.public_url),
                "m365-sync is listening"
            );
            app.run_until_stopped()
                .await
                .context("The HTTP server failed")?;
            tracing::info!("m365-sync stopped");
            Ok(())
        }
        Command::Worker { listen } => {
            let mut settings = settings;
            settings.worker_listen = listen.or(settings.worker_listen);
            startup::run_worker(settings).await
        }
        Command::Migrate => {
            let db = db::connect(&settings).await?;
            db::migrate(&db).await?;
            tracing::info!("Migrations are up to date");
            Ok(())
        }
        Command::Openapi => Ok(()),
        Command::Users {
            command:
                UsersCommand::Create {
                    email,
                    password,
                    role,
                    org,
                    display_name,
                },
        } => {
            let db = db::connect(&settings).await?;
            db::migrate(&db).await?;
            let organization_id = match org {
                None => None,
                Some(org) => Some(resolve_org(&db, &org).await?),
            };
            let input = users::CreateUser {
                email,
                password,
                role: Some(role),
                display_name,
            };
            let new = users::NewUser::parse(input, organization_id)
                .map_err(|e| anyhow::anyhow!("invalid user: {:?}", e.problem().errors))?;
            let user = users::create(&db, new)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "{}",
                serde_json::json!({"id": user.id, "email": user.email, "role": user.role, "organization_id": user.organization_id})
            );
            Ok(())
        }
    }
}

async fn resolve_org(db: &sea_orm::DatabaseConnection, org: &str) -> anyhow::Result<uuid::Uuid> {
    let wrap = |e: crate::error::ApiError| anyhow::anyhow!("{e}");
    if let Ok(id) = uuid::Uuid::parse_str(org) {
        return Ok(organizations::get(db, id).await.map_err(wrap)?.id);
    }
    if let Some(found) = organizations::find_by_name(db, org).await.map_err(wrap)? {
        return Ok(found.id);
    }
    let created = organizations::create(
        db,
        organizations::CreateOrganization {
            name: org.to_owned(),
        },
    )
    .await
    .map_err(wrap)?;
    tracing::info!(organization.id = %created.id, organization.name = %created.name, "Created the organization");
    Ok(created.id)
}
