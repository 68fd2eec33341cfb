//! `mongo-backup`: snapshots of a stopped MongoDB secondary, as the
//! runbook's "Backups" section asks.
// Doc comments here are clap's --help text: `[backup]` is an ha.toml
// section, not a link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::process::ExitCode;

use circle_ha::backup::{self, BackupCommand, LONG_ABOUT};
use circle_ha::cli;
use clap::Parser;

/// Snapshots a stopped MongoDB secondary without leaving the set short.
#[derive(Debug, Parser)]
#[command(version, long_about = LONG_ABOUT, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    command: BackupCommand,
}

fn main() -> ExitCode {
    let cli: Cli = circle_ha::cli::parse("mongo-backup");
    cli::run_main(
        "mongo-backup",
        cli.command.json(),
        backup::run("mongo-backup", cli.command),
    )
}
