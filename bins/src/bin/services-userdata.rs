//! `services-userdata`: the Services machine's recovery bundle.
// Doc comments here are clap's --help text: `[mongo]` is an ha.toml
// section, not a link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::path::PathBuf;
use std::process::ExitCode;

use circle_ha::exit::Exit;
use circle_ha::output::print;
use circle_ha::{aws, cli, services};
use clap::{Parser, Subcommand};
use ha_config::HaConfig;

/// The long `--help` text.
const LONG_ABOUT: &str = "Renders and publishes what replaces the Services machine's manual set-up:
EC2 user data (IMDSv2, no secrets inline, AWS CLI that installs on current
images, CA certificates into /usr/local/share/ca-certificates, Replicated
last) and the bundle it fetches from S3: settings.conf, replicated.conf,
license.rli, circle-installation-customizations (the five
CIRCLE_SECRETS_MONGODB_*_URI with percent-encoded credentials, all members,
replicaSet, ssl=true, authSource=admin), circleconfig/shared/{postgresql,
vault}, the encryption keys.

Reads [services] of ha.toml, plus the connection details of [mongo],
[postgres] and [vault] (the Vault app token from app_token_file, which
`vault-transit configure` writes):

  [services]
  hostname = \"circleci.example.com\"
  aws_region = \"us-east-1\"
  s3_bucket = \"circleci-ha-config\"
  launch_template = \"circleci-services\"
  license_file = \"license.rli\"
  replicated_password = \"env:REPLICATED_PASSWORD\"
  secret_passphrase = \"env:CIRCLE_SECRET_PASSPHRASE\"
  github = { type = \"github_type_public\", client_id = \"abc123\", client_secret = \"env:GITHUB_CLIENT_SECRET\" }
  storage = { backend = \"storage_backend_s3\", bucket = \"circleci-artifacts\", sqs_queue_url = \"https://…\" }
  encryption_keys_dir = \"circle-data\"    # copy of /data/circle/circleci-encryption-keys

Exit codes: 0 success; 1 runtime failure; 2 bad usage or configuration.";

/// Renders and publishes the Services machine's recovery bundle.
#[derive(Debug, Parser)]
#[command(version, long_about = LONG_ABOUT)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the bundle and userdata.sh into a directory (secret files 0600).
    /// Byte-for-byte the same for the same input; only changed files are
    /// rewritten, and the session cookie key of an earlier render is kept.
    Render {
        #[command(flatten)]
        args: cli::ConfigArgs,
        /// The directory to write.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Show what would be written and write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Upload the rendered bundle to S3 (server-side encrypted) and make a
    /// new default launch-template version with the user data. Unchanged
    /// content: nothing happens (changed: 0). When Terraform manages the
    /// launch template's default version, --no-default-version (or
    /// [services].set_default_version = false) only creates the version.
    Publish {
        #[command(flatten)]
        args: cli::ConfigArgs,
        /// The directory `render` wrote.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Send AWS requests here instead of AWS (e.g. a VPC endpoint or an
        /// emulator); S3 then uses path-style addressing.
        #[arg(long, value_name = "URL")]
        endpoint_url: Option<String>,
        /// Show what would change and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Create the launch-template version but leave the default version
        /// as it is (Terraform's aws_launch_template sets it; see
        /// docs/automation.md).
        #[arg(long)]
        no_default_version: bool,
    },
    /// Turn an existing settings.conf (`replicated app <id> settings`) into
    /// a [services] section on stdout. Secret values are not copied: they
    /// become env: references, listed on stderr.
    ImportSettings {
        /// The settings.conf file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli: Cli = circle_ha::cli::parse("services-userdata");
    let json = match &cli.command {
        Command::Render { args, .. } | Command::Publish { args, .. } => args.json,
        Command::ImportSettings { .. } => false,
    };
    cli::run_main("services-userdata", json, run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Render { args, out, dry_run } => {
            let config = HaConfig::load(&args.config_path())?;
            let report = config
                .bundle_setup(&cli::env_var, &out, false)?
                .render(dry_run)?;
            print(args.json, &report);
        }
        Command::Publish {
            args,
            dir,
            endpoint_url,
            dry_run,
            no_default_version,
        } => {
            let config = HaConfig::load(&args.config_path())?;
            let mut publish = config.publish_target()?;
            if no_default_version {
                publish.target.set_default_version = false;
            }
            let bundle = services_userdata::Bundle::read_from(&dir)?;
            let sdk = aws::sdk_config(&publish.region, endpoint_url.as_deref()).await;
            let s3 = aws::s3_client(&sdk, endpoint_url.is_some());
            let ec2 = ha_ec2::Ec2::from_sdk_config(&sdk)?;
            let report = services::publish(&publish.target, &bundle, &s3, &ec2, dry_run).await?;
            print(args.json, &report);
        }
        Command::ImportSettings { file } => {
            let (toml, secrets) = services::import_settings(&file)?;
            print!("{toml}");
            circle_ha::log::warning(&format!(
                "secrets were not copied; set these (or change them to file: references): {}",
                secrets.join(", ")
            ));
        }
    }
    Ok(Exit::Success)
}
