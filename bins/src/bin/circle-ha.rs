//! `circle-ha`: one configuration, the whole runbook.

use std::process::ExitCode;

use circle_ha::cli::{self, ConfigArgs};
use circle_ha::config::ConfigFile;
use circle_ha::demo::{self, DemoOptions, Outcome, Phase};
use circle_ha::exit::Exit;
use circle_ha::output::emit;
use circle_ha::pki;
use clap::{Parser, Subcommand};

/// Moves a CircleCI Server 2.0 installation onto highly available external
/// databases.
///
/// `circle-ha pki` makes the CA and every host's certificate that ha.toml
/// calls for; `circle-ha demo` starts the local lab (certificates,
/// PostgreSQL, OpenBao, the AWS API emulator, a TLS MongoDB replica set)
/// and proves each service answers over TLS. The concerns themselves run
/// through their own tools for now: mongo-rs-setup, pg-provision,
/// vault-transit, circle-export, services-userdata (`apply` and `status`
/// across all of them are next).
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the local lab and check every service answers.
    ///
    /// Needs the test prerequisites: run `cargo xtask install` once (or use
    /// `cargo xtask demo`, which does it first). Everything runs on
    /// 127.0.0.1 in temporary directories and is removed at the end.
    Demo {
        /// Keep the services running until Ctrl-C and write their connection
        /// settings to a 0600 file.
        #[arg(long)]
        keep: bool,
    },
    /// The CA and the certificates of every host ha.toml names.
    ///
    /// Reads [pki] (dir, organization, organizational_unit) and the hosts
    /// of [mongo].members, [postgres].host and [vault].address. Member
    /// certificates share O and OU (MongoDB x509 membership) and serve
    /// both as server and client; the tools' client certificate (when
    /// [mongo].tls.certificate_key_file lies in the PKI directory) gets
    /// OU "<ou> clients" so it can never pass as a member. Private keys
    /// and combined PEMs are 0600, the directory 0700.
    #[command(subcommand)]
    Pki(PkiCommand),
}

#[derive(Debug, Subcommand)]
enum PkiCommand {
    /// Create the CA in [pki].dir (ca.pem, ca.crt, ca.key); an existing CA
    /// is kept (never replaced).
    Init {
        #[command(flatten)]
        common: ConfigArgs,
        /// Show what would be created; create nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Issue each host's certificate (<host>.crt, .key and the combined
    /// <host>.pem mongod takes) that is missing, expires within 30 days,
    /// no longer covers its host or was not issued by the CA; keep the
    /// others byte for byte (a second run changes nothing).
    Issue {
        #[command(flatten)]
        common: ConfigArgs,
        /// Show what would be issued; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Check every certificate against the CA: MongoDB's member rules
    /// (identical O/OU/DC, both EKUs), host-name coverage, key match,
    /// expiry. Exit 3 listing every problem.
    Lint {
        #[command(flatten)]
        common: ConfigArgs,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = match &cli.command {
        Command::Demo { .. } => false,
        Command::Pki(
            PkiCommand::Init { common, .. }
            | PkiCommand::Issue { common, .. }
            | PkiCommand::Lint { common },
        ) => common.json,
    };
    cli::run_main("circle-ha", json, run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Demo { keep } => {
            let tools = ha_lab::Toolbox::discover(std::env::vars_os());
            let started = std::time::Instant::now();
            let phases = demo::run(&tools, &DemoOptions { keep }, &mut print_phase).await?;
            let failed = phases.iter().filter(|p| p.result.is_failure()).count();
            let pending = phases
                .iter()
                .filter(|p| matches!(p.result, Outcome::Pending(_)))
                .count();
            eprintln!(
                "\n{} of {} phases green, {pending} pending, {failed} failed in {:.1} s; every \
                 service stopped and removed",
                phases.len() - failed - pending,
                phases.len(),
                started.elapsed().as_secs_f64()
            );
            Ok(if failed == 0 {
                Exit::Success
            } else {
                Exit::Failure
            })
        }
        Command::Pki(command) => {
            let (common, dry_run) = match &command {
                PkiCommand::Init { common, dry_run } | PkiCommand::Issue { common, dry_run } => {
                    (common, *dry_run)
                }
                PkiCommand::Lint { common } => (common, false),
            };
            let file = ConfigFile::load(&common.config)?;
            let settings = pki::settings(&file)?;
            let report = match &command {
                PkiCommand::Init { .. } => pki::init(&settings, dry_run)?,
                PkiCommand::Issue { .. } => pki::issue(&settings, dry_run)?,
                PkiCommand::Lint { .. } => {
                    let (value, text, exit) = pki::lint(&settings)?;
                    emit(common.json, &text, &value);
                    return Ok(exit);
                }
            };
            emit(common.json, &report.to_text(), &report.to_json());
            Ok(Exit::Success)
        }
    }
}

fn print_phase(phase: &Phase) {
    let (mark, text) = match &phase.result {
        Outcome::Done(text) => ("ok", text),
        Outcome::Failed(text) => ("FAIL", text),
        Outcome::Pending(text) => ("n/a", text),
    };
    eprintln!(
        "{mark:<5} {:<38} {:>6.1} s  {text}",
        phase.name, phase.seconds
    );
}
