//! `circle-ha keys`: CircleCI's encryption keys backed up to, compared
//! with and restored from the bundle's bucket (services-userdata's keys
//! module).
// Doc comments here are clap's --help text: `[backup]` is an ha.toml
// section, not a link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::path::PathBuf;

use clap::{Args, Subcommand};
use ha_config::HaConfig;
use ha_plan::Report;
use services_userdata::keys::{self, KEYS_DIR};

use crate::cli::ConfigArgs;
use crate::exit::Exit;
use crate::output::print;

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Upload the key files of DIR that are new or changed (server-side
    /// encrypted, with their SHA-256) and read them back to check. Run on
    /// the Services machine; a second run uploads nothing.
    Backup {
        /// `--config`, `--json`, `--endpoint-url`.
        #[command(flatten)]
        common: Common,
        /// The keys directory.
        #[arg(long, value_name = "DIR", default_value = KEYS_DIR)]
        from: PathBuf,
        /// Show what would be uploaded; upload nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Compare DIR with the stored copy by content; exit 3 naming every file
    /// that differs, is missing, or is not backed up.
    Verify {
        /// `--config`, `--json`, `--endpoint-url`.
        #[command(flatten)]
        common: Common,
        /// The keys directory.
        #[arg(long, value_name = "DIR", default_value = KEYS_DIR)]
        dir: PathBuf,
    },
    /// Write the stored keys into DIR (0700; files 0600). Refuses (exit 3,
    /// nothing written) to replace a key that differs, unless --force.
    /// Restore before CircleCI starts.
    Restore {
        /// `--config`, `--json`, `--endpoint-url`.
        #[command(flatten)]
        common: Common,
        /// The keys directory.
        #[arg(long, value_name = "DIR", default_value = KEYS_DIR)]
        to: PathBuf,
        /// Replace keys that differ from the stored copy.
        #[arg(long)]
        force: bool,
        /// Show what would be written; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub struct Common {
    /// `--config`, `--json`.
    #[command(flatten)]
    pub args: ConfigArgs,
    /// Send AWS requests here instead of AWS (a VPC endpoint, an emulator).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
}

impl KeysCommand {
    fn common(&self) -> &Common {
        match self {
            KeysCommand::Backup { common, .. }
            | KeysCommand::Verify { common, .. }
            | KeysCommand::Restore { common, .. } => common,
        }
    }

    /// Whether `--json` was given.
    pub fn json(&self) -> bool {
        self.common().args.json
    }
}

/// Runs a subcommand.
pub async fn run(command: KeysCommand) -> anyhow::Result<Exit> {
    const TOOL: &str = "circle-ha keys";
    let common = command.common();
    let json = common.args.json;
    let config = HaConfig::load(&common.args.config_path())?;
    let (store, region) = config.key_store()?;
    let endpoint = common.endpoint_url.as_deref();
    let sdk = crate::aws::sdk_config(&region, endpoint).await;
    let s3 = crate::aws::s3_client(&sdk, endpoint.is_some());
    match &command {
        KeysCommand::Backup { from, dry_run, .. } => {
            let done = keys::backup(&s3, &store, from, *dry_run).await?;
            Ok(print(json, &done.to_report(TOOL, *dry_run, from)))
        }
        KeysCommand::Verify { dir, .. } => {
            let diff = keys::verify(&s3, &store, dir).await?;
            Ok(print(json, &diff.to_findings(TOOL, dir)))
        }
        KeysCommand::Restore {
            to, force, dry_run, ..
        } => match keys::restore(&s3, &store, to, *force, *dry_run).await {
            Ok(steps) => Ok(print(
                json,
                &Report::from_changes(TOOL, *dry_run, &steps, Vec::new()),
            )),
            Err(ref e @ services_userdata::Error::KeysDiffer { ref names, .. }) => Ok(print(
                json,
                &keys::RestoreRefused::new(TOOL, e.to_string(), names.clone()),
            )),
            Err(e) => Err(e.into()),
        },
    }
}
