//! `circle-ha-demo`: the whole runbook over a local lab, each phase timed.
//! Run it with `cargo xtask demo` (which installs the prerequisites
//! first).

use std::process::ExitCode;

use clap::Parser;
use ha_demo::{DemoOptions, Outcome, Phase};

/// Starts a local lab and runs the whole runbook over it, each phase
/// timed.
///
/// The lab: a CA, three MongoDB members (TLS, x509; real mongod when
/// MONGOD_BIN or PATH has one, else mongo-sim), PostgreSQL, OpenBao and the
/// AWS emulator. The runbook: write ha.toml, Vault init + unseal, apply
/// (replica set and users, the eight databases, transit and app token,
/// Services bundle), apply again (must change nothing), seed an old
/// Services machine, export it and restore it onto the new hosts with every
/// count checked, publish the bundle to the emulated S3 and a launch
/// template, status. Exit 0 when every phase is green.
///
/// Needs the test prerequisites: run `cargo xtask install` once (or use
/// `cargo xtask demo`, which does it first). Everything runs on 127.0.0.1
/// in temporary directories and is removed at the end. This program is not
/// part of the shipped tools: it links the test lab.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// Keep the services running until Ctrl-C and write their connection
    /// settings to a 0600 file.
    #[arg(long)]
    keep: bool,
}

#[allow(clippy::print_stderr)]
fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("circle-ha-demo: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let tools = ha_lab::Toolbox::discover(std::env::vars_os());
    let started = std::time::Instant::now();
    let options = DemoOptions { keep: cli.keep };
    let phases = match runtime.block_on(ha_demo::run(&tools, &options, &mut print_phase)) {
        Ok(phases) => phases,
        Err(e) => {
            eprintln!("circle-ha-demo: error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let failed = phases.iter().filter(|p| p.result.is_failure()).count();
    let pending = phases
        .iter()
        .filter(|p| matches!(p.result, Outcome::Pending(_)))
        .count();
    eprintln!(
        "\n{} of {} phases green, {pending} pending, {failed} failed in {:.1} s; every service \
         stopped and removed",
        phases.len() - failed - pending,
        phases.len(),
        started.elapsed().as_secs_f64()
    );
    if !cli.keep {
        eprintln!(
            "to look around: `cargo xtask demo --keep` keeps the lab running and writes lab.env, \
             whose settings reach every service (psql, bao, curl for the S3 emulator, circle-ha \
             status)"
        );
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One line per ended phase; on a terminal, a started phase shows as
/// `...` until its line replaces it.
#[allow(clippy::print_stderr)]
fn print_phase(phase: &Phase) {
    use std::io::{IsTerminal as _, Write as _};
    let terminal = std::io::stderr().is_terminal();
    let (mark, text) = match &phase.result {
        Outcome::Done(text) => ("ok", text.as_str()),
        Outcome::Failed(text) => ("FAIL", text.as_str()),
        Outcome::Pending(text) => ("n/a", text.as_str()),
        Outcome::Running if terminal => {
            eprint!("...   {}", phase.name);
            let _ = std::io::stderr().flush();
            return;
        }
        Outcome::Running => return,
    };
    let clear = if terminal { "\r\x1b[K" } else { "" };
    eprintln!(
        "{clear}{mark:<5} {:<38} {:>6.1} s  {text}",
        phase.name, phase.seconds
    );
}
