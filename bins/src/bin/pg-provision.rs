//! `pg-provision`: the eight CircleCI databases, their extensions and the
//! app role.
// Doc comments here are clap's --help text: `[mongo]` is an ha.toml
// section, not a link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::path::PathBuf;
use std::process::ExitCode;

use circle_ha::cli;
use circle_ha::exit::Exit;
use circle_ha::output::print;
use clap::{Args, Parser, Subcommand};
use ha_config::{HaConfig, PostgresOverrides, Section};

/// The long `--help` text (a plain string: it holds TOML and URLs that
/// rustdoc would misread).
const LONG_ABOUT: &str = "Creates the PostgreSQL databases CircleCI Server 2.0 needs, their
extensions, and the app role that owns them — on a plain PostgreSQL
server (superuser admin) or a managed one such as Amazon RDS (an admin
with CREATEDB and CREATEROLE only).

Reads the [postgres] section of ha.toml:

  [postgres]
  host = \"pg.internal\"              # what TLS verifies
  port = 5432
  admin_user = \"postgres\"
  admin_password = \"env:PG_ADMIN_PASSWORD\"   # or file:PATH; never a literal
  app_user = \"circle\"
  app_password = \"env:PG_APP_PASSWORD\"
  sslmode = \"verify-full\"           # disable | require | verify-ca | verify-full
  ca_file = \"pki/ca.pem\"
  # [[postgres.databases]] name = \"…\" extensions = [\"…\"]  (default: the runbook's eight)

Every run first reads the server's state and changes only what is
missing: a second `apply` reports `changed: 0`. Exit codes: 0 success;
1 runtime failure (server unreachable, wrong password, missing
privilege — nothing changed unless steps were listed as done); 2 bad
usage or configuration (found before connecting); 3 `verify` found
problems.";

/// Creates the CircleCI PostgreSQL databases, their extensions and app role.
#[derive(Debug, Parser)]
#[command(version, long_about = LONG_ABOUT, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create whatever is missing: role, databases, owners, extensions.
    ///
    /// The admin logs in to admin_database (default postgres). If the app
    /// role's password does not work it is set again (sent as a SCRAM
    /// verifier, never in clear text). A non-superuser admin is granted
    /// membership in the app role first, as PostgreSQL requires to create
    /// databases it owns.
    Apply {
        #[command(flatten)]
        common: Common,
        /// Show what would change and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Log in as the app role, as the Services machine will, and check every
    /// database: reachable, encrypted, its extensions present, objects
    /// creatable. Exit 3 listing every problem.
    Verify {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, Args)]
struct Common {
    #[command(flatten)]
    args: cli::ConfigArgs,
    /// Override [postgres].host.
    #[arg(long)]
    host: Option<String>,
    /// Override [postgres].port.
    #[arg(long)]
    port: Option<u16>,
    /// Override [postgres].sslmode (disable, require, verify-ca, verify-full).
    #[arg(long)]
    sslmode: Option<String>,
    /// Override [postgres].ca_file.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
}

impl Common {
    fn overrides(&self) -> PostgresOverrides {
        PostgresOverrides {
            host: self.host.clone(),
            port: self.port,
            sslmode: self.sslmode.clone(),
            ca_file: self.ca_file.clone(),
        }
    }
}

fn main() -> ExitCode {
    let cli: Cli = circle_ha::cli::parse("pg-provision");
    let json = match &cli.command {
        Command::Apply { common, .. } | Command::Verify { common } => common.args.json,
    };
    cli::run_main("pg-provision", json, run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Apply { common, dry_run } => {
            let (config, settings) =
                HaConfig::load_with(&common.args.config_path(), Section::Postgres, |config| {
                    config.postgres(&common.overrides())
                })?;
            let report = config
                .postgres_setup(&settings, &cli::env_var, true)?
                .apply(dry_run)
                .await?;
            print(common.args.json, &report);
            Ok(Exit::Success)
        }
        Command::Verify { common } => {
            let (config, settings) =
                HaConfig::load_with(&common.args.config_path(), Section::Postgres, |config| {
                    config.postgres(&common.overrides())
                })?;
            let findings = config
                .postgres_setup(&settings, &cli::env_var, false)?
                .verify()
                .await;
            Ok(print(common.args.json, &findings))
        }
    }
}
