//! The one error type of `ha-lab`.

use std::path::PathBuf;

/// Why a lab service could not be started or used.
///
/// Every variant says which service and, where a tool is missing, how to get
/// it: tests that cannot get their service fail with this message instead of
/// skipping.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A program the service needs was not found.
    #[error("{tool} not found ({searched}); {hint}")]
    ToolMissing {
        /// The program (e.g. `bao`, `initdb`).
        tool: &'static str,
        /// Where it was looked for.
        searched: String,
        /// How to install it.
        hint: &'static str,
    },
    /// Starting a program failed.
    #[error("cannot start {what} ({program})")]
    Spawn {
        /// The service.
        what: &'static str,
        /// The program.
        program: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A set-up command (such as `initdb`) ran but failed.
    #[error("{what} failed with {status}; its output ends with:\n{output_tail}")]
    SetupFailed {
        /// The command.
        what: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The last lines it printed.
        output_tail: String,
    },
    /// The service exited while starting.
    #[error("{what} exited during start-up with {status}; log {log}:\n{log_tail}")]
    Exited {
        /// The service.
        what: &'static str,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its log file.
        log: PathBuf,
        /// The log's last lines.
        log_tail: String,
    },
    /// The service did not become ready in time.
    #[error("{what} was not ready after {seconds} s; log {log}:\n{log_tail}")]
    NotReady {
        /// The service.
        what: &'static str,
        /// How long we waited.
        seconds: u64,
        /// Its log file.
        log: PathBuf,
        /// The log's last lines.
        log_tail: String,
    },
    /// Preparing files for the service failed.
    #[error("cannot prepare {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Issuing the lab's certificates failed.
    #[error("cannot issue the lab's certificates")]
    Tls(#[from] ha_tls::Error),
    /// The lab runs as root but found no unprivileged user for PostgreSQL.
    #[error(
        "running as root, and PostgreSQL refuses to run as root: no 'postgres' user exists \
         (install the postgresql package, or run as an unprivileged user)"
    )]
    NoUnprivilegedUser,
    /// Configuring an AWS SDK client for the emulator failed.
    #[error("cannot configure the AWS SDK for {endpoint}: {detail}")]
    Aws {
        /// The emulator's endpoint.
        endpoint: String,
        /// What went wrong.
        detail: String,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
