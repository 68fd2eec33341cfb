//! What every binary's `main` shares: the runtime, error printing and exit
//! codes.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::exit::Exit;

/// Runs `work` on a Tokio runtime and turns its outcome into the process
/// exit code: its `Exit` on success; 2 for [`ha_plan::Problems`] anywhere in the
/// error chain (bad usage or configuration, nothing touched); 1 for any
/// other error. Errors go to stderr as `tool: error: …` with their whole
/// cause chain, and with `json` also to stdout as `{"error": "…"}`.
#[allow(clippy::print_stdout, clippy::print_stderr)]
pub fn run_main(
    tool: &str,
    json: bool,
    work: impl Future<Output = anyhow::Result<Exit>>,
) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{tool}: error: cannot start the async runtime: {e}");
            return Exit::Failure.into();
        }
    };
    match runtime.block_on(work) {
        Ok(exit) => exit.into(),
        Err(e) => {
            let exit = if e.chain().any(|cause| cause.is::<ha_plan::Problems>()) {
                Exit::Usage
            } else {
                Exit::Failure
            };
            let message = format!("{e:#}");
            eprintln!("{tool}: error: {message}");
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "error": message, "exit_code": exit.code() })
                );
            }
            exit.into()
        }
    }
}

/// Environment lookup for secret references (`env:NAME`).
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The options every command that reads `ha.toml` takes.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The configuration file.
    #[arg(long, value_name = "FILE", default_value = "ha.toml")]
    pub config: PathBuf,
    /// Print one JSON object on stdout instead of text on stderr.
    #[arg(long)]
    pub json: bool,
}
