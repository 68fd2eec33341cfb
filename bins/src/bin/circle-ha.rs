//! `circle-ha`: one configuration, the whole runbook.

use std::process::ExitCode;

use circle_ha::demo::{self, DemoOptions, Outcome, Phase};
use circle_ha::exit::Exit;
use clap::{Parser, Subcommand};

/// Moves a CircleCI Server 2.0 installation onto highly available external
/// databases.
///
/// Today `circle-ha demo` starts the local lab (certificates, PostgreSQL,
/// OpenBao, the AWS API emulator, the MongoDB launcher) and proves each
/// service answers over TLS. `apply`, `status` and `pki` arrive as the
/// concern crates land.
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("circle-ha: cannot start the async runtime: {e}");
            return Exit::Failure.into();
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("circle-ha: {e:#}");
            Exit::Failure.into()
        }
    }
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
