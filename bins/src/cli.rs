//! What every binary's `main` shares: the runtime, error printing and exit
//! codes.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::exit::Exit;

/// Runs `work` on a Tokio runtime and turns its outcome into the process
/// exit code: its `Exit` on success; 2 for [`ha_plan::Problems`] (or an
/// [`ha_runbook::Error`] that is one) anywhere in the error chain (bad
/// usage or configuration, nothing touched), or a sealed archive given
/// without a key; 3 for a sealed archive that does not open with the key
/// given or is not authentic; 1 for any other error. Errors go to stderr as `tool: error: …` with their whole
/// cause chain, and with `json` also to stdout as `{"error": "…"}`.
#[allow(clippy::print_stdout, clippy::print_stderr)]
pub fn run_main(
    tool: &str,
    json: bool,
    work: impl Future<Output = anyhow::Result<Exit>>,
) -> ExitCode {
    match runtime(tool) {
        Some(runtime) => finish(tool, json, runtime.block_on(work)),
        None => Exit::Failure.into(),
    }
}

#[allow(clippy::print_stderr)]
fn runtime(tool: &str) -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new()
        .inspect_err(|e| eprintln!("{tool}: error: cannot start the async runtime: {e}"))
        .ok()
}

/// [`run_main`] for a command that holds files worth removing when it is
/// stopped (circle-export's spool and unpack directories, the password
/// file): on SIGINT or SIGTERM the work is dropped — its destructors remove
/// what it created, its child processes are killed — and the process exits
/// 130. (SIGKILL leaves no chance: the next run removes the leftovers.)
#[allow(clippy::print_stderr)]
pub fn run_main_interruptible(
    tool: &str,
    json: bool,
    work: impl Future<Output = anyhow::Result<Exit>>,
) -> ExitCode {
    let Some(runtime) = runtime(tool) else {
        return Exit::Failure.into();
    };
    let outcome = runtime.block_on(async {
        // Watched before the work is first polled.
        let stop = interrupted();
        tokio::select! {
            biased;
            () = stop => None,
            res = work => Some(res),
        }
    });
    match outcome {
        Some(res) => finish(tool, json, res),
        None => {
            runtime.shutdown_timeout(std::time::Duration::from_secs(10));
            eprintln!(
                "{tool}: interrupted: stopped, and removed its working files; nothing half-done \
                 stays committed — run the same command again to finish"
            );
            ExitCode::from(130)
        }
    }
}

/// Watches SIGINT and SIGTERM from this call on (call it inside the
/// runtime, before the work starts): the future resolves on the first of
/// them (never, if they cannot be watched). Watching from the call rather
/// than from the future's first poll matters: a signal that arrives before
/// the handlers are installed kills the process outright, leaving its
/// files behind — under load, a test that signalled as soon as the export
/// had created its password file saw exactly that.
pub fn interrupted() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let signals = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = signals else {
            std::future::pending::<()>().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    }
}

#[allow(clippy::print_stdout, clippy::print_stderr)]
fn finish(tool: &str, json: bool, res: anyhow::Result<Exit>) -> ExitCode {
    match res {
        Ok(exit) => exit.into(),
        Err(e) => {
            let export_error = || {
                e.chain()
                    .find_map(|c| c.downcast_ref::<circle_export::Error>())
            };
            let vault_error = || {
                e.chain()
                    .find_map(|c| c.downcast_ref::<vault_transit::Error>())
            };
            let exit = if e.chain().any(|cause| {
                cause.is::<ha_plan::Problems>()
                    || cause
                        .downcast_ref::<ha_runbook::Error>()
                        .is_some_and(ha_runbook::Error::is_config)
            }) || export_error().is_some_and(circle_export::Error::is_key_needed)
                || vault_error().is_some_and(vault_transit::Error::is_usage)
            {
                Exit::Usage
            } else if export_error().is_some_and(circle_export::Error::is_refusal)
                || vault_error().is_some_and(vault_transit::Error::is_damage)
            {
                // A sealed archive the key given does not open, or that
                // was changed after it was sealed.
                Exit::Unhealthy
            } else {
                Exit::Failure
            };
            // The cause chain, each cause once: an error that already
            // quotes its cause (`{what}: {source}`) does not repeat it.
            let mut message = e.to_string();
            for cause in e.chain().skip(1) {
                let text = cause.to_string();
                if !message.contains(&text) {
                    message.push_str(": ");
                    message.push_str(&text);
                }
            }
            eprintln!("{tool}: error: {message}");
            if json {
                crate::output::print_error(message, exit);
            }
            exit.into()
        }
    }
}

/// The environment variable through which `cargo xtask dist` asks a
/// binary for its shell completions and man pages.
pub const DIST_DOCS: &str = "CIRCLE_HA_DIST_DOCS";

/// Parses this process's command line into `C`, the arguments of the
/// binary `name`. When [`DIST_DOCS`] names a directory (as `cargo xtask
/// dist` sets it), writes the binary's shell completions
/// (`completions/NAME.bash`, `completions/_NAME` for zsh,
/// `completions/NAME.fish`) and man pages (`man/NAME.1` and one per
/// subcommand) there instead, and exits.
#[allow(clippy::print_stderr)]
pub fn parse<C: clap::Parser>(name: &'static str) -> C {
    crate::output::set_tool(name);
    if let Some(dir) = std::env::var_os(DIST_DOCS) {
        let dir = PathBuf::from(dir);
        let command = C::command().name(name).version(crate::output::VERSION);
        std::process::exit(match write_docs(command, name, &dir) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!(
                    "{name}: error: cannot write completions and man pages to {}: {e}",
                    dir.display()
                );
                1
            }
        });
    }
    // Named after the binary (clap would name every one after the
    // package), so that `--version` and usage lines say which it is.
    let parsed = C::command()
        .name(name)
        .bin_name(name)
        .version(crate::output::VERSION)
        .args(crate::log::args())
        .try_get_matches()
        .and_then(|matches| {
            crate::log::init(
                name,
                crate::log::Settings::from_matches(&matches),
                std::env::var("RUST_LOG").ok().as_deref(),
            );
            C::from_arg_matches(&matches)
        });
    parsed.unwrap_or_else(|e| usage_exit(name, &e))
}

/// Ends the process for a clap error: help and `--version` as clap prints
/// them; a usage error as clap prints it on stderr (exit 2) and, when the
/// command line asked for `--json`, also as `{"error", "exit_code": 2}` on
/// stdout, as every other failure is.
#[allow(clippy::print_stdout)]
fn usage_exit(name: &str, error: &clap::Error) -> ! {
    use clap::error::ErrorKind;
    let informational = matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    let json = std::env::args_os().skip(1).any(|a| a == "--json");
    if json && !informational {
        // clap's first line, without its "error: " prefix.
        let text = error.render().to_string();
        let first = text.lines().next().unwrap_or("bad usage");
        let message = first.strip_prefix("error: ").unwrap_or(first);
        crate::output::print_error(format!("{name}: {message}"), Exit::Usage);
    }
    error.exit()
}

/// Writes the completion script of `C`, the binary `name`'s command line,
/// for `shell` to stdout; a reader that stops early (`| head`) is not an
/// error.
pub fn print_completions<C: clap::CommandFactory>(
    name: &'static str,
    shell: clap_complete::Shell,
) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut command = C::command()
        .name(name)
        .bin_name(name)
        .args(crate::log::args());
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, name, &mut script);
    match std::io::stdout().lock().write_all(&script) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

fn write_docs(
    command: clap::Command,
    name: &'static str,
    dir: &std::path::Path,
) -> std::io::Result<()> {
    let mut command = command.bin_name(name);
    let completions = dir.join("completions");
    std::fs::create_dir_all(&completions)?;
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        clap_complete::generate_to(shell, &mut command, name, &completions)?;
    }
    let man = dir.join("man");
    std::fs::create_dir_all(&man)?;
    command.build();
    man_pages(&command, name, &man)
}

/// `NAME.1` for `command` and `NAME-SUB.1` for each of its subcommands
/// (clap's own `help` subcommand left out), recursively.
fn man_pages(command: &clap::Command, name: &str, dir: &std::path::Path) -> std::io::Result<()> {
    // Built, a subcommand's display name is already `NAME-SUB`.
    let mut out = std::fs::File::create(dir.join(format!("{name}.1")))?;
    clap_mangen::Man::new(command.clone()).render(&mut out)?;
    for sub in command.get_subcommands() {
        if sub.get_name() == "help" || sub.is_hide_set() {
            continue;
        }
        man_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}

/// Environment lookup for secret references (`env:NAME`).
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The options every command that reads `ha.toml` takes.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The configuration file (default: $CIRCLE_HA_CONFIG, else ./ha.toml,
    /// else /etc/circle-ha/ha.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

impl ConfigArgs {
    /// The configuration file to read: see [`discover_config`].
    pub fn config_path(&self) -> PathBuf {
        config_path(self.config.as_deref())
    }
}

/// The environment variable naming `ha.toml` when `--config` does not.
pub const CONFIG_ENV: &str = "CIRCLE_HA_CONFIG";

/// [`discover_config`] for this process: its environment, the root `/`.
pub fn config_path(flag: Option<&std::path::Path>) -> PathBuf {
    discover_config(
        flag,
        std::env::var_os(CONFIG_ENV),
        std::path::Path::new("/"),
    )
}

/// Where `ha.toml` is: `--config` (`flag`), else `$CIRCLE_HA_CONFIG`
/// (`env`), else `./ha.toml` when it exists, else
/// `<root>/etc/circle-ha/ha.toml` when it exists, else `./ha.toml` (whose
/// absence the error then names).
pub fn discover_config(
    flag: Option<&std::path::Path>,
    env: Option<std::ffi::OsString>,
    root: &std::path::Path,
) -> PathBuf {
    if let Some(flag) = flag {
        return flag.to_owned();
    }
    if let Some(env) = env.filter(|e| !e.is_empty()) {
        return PathBuf::from(env);
    }
    let here = PathBuf::from("ha.toml");
    let system = root.join("etc/circle-ha/ha.toml");
    if !here.exists() && system.exists() {
        return system;
    }
    here
}

#[cfg(test)]
mod discovery_tests {
    use std::path::{Path, PathBuf};

    use super::discover_config;

    #[test]
    fn config_is_the_flag_then_the_environment_then_here_then_etc() {
        let root = tempfile::tempdir().unwrap();
        let flag = Path::new("/srv/ha.toml");
        assert_eq!(
            discover_config(Some(flag), Some("/env/ha.toml".into()), root.path()),
            flag
        );
        assert_eq!(
            discover_config(None, Some("/env/ha.toml".into()), root.path()),
            PathBuf::from("/env/ha.toml")
        );
        // Tests run in bins/, which has no ha.toml; nothing in the root.
        assert!(!Path::new("ha.toml").exists());
        assert_eq!(
            discover_config(None, Some("".into()), root.path()),
            PathBuf::from("ha.toml")
        );
        let etc = root.path().join("etc/circle-ha");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("ha.toml"), "").unwrap();
        assert_eq!(
            discover_config(None, None, root.path()),
            etc.join("ha.toml")
        );
    }
}
