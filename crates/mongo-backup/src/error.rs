//! What can go wrong, said so the operator knows what state the member is
//! in and what to do next.

use std::path::PathBuf;
use std::time::Duration;

use crate::guard::Refusal;

/// Whether the member was started again after a failure that came after
/// it was stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Started again, and back as a caught-up SECONDARY.
    CaughtUp,
    /// Started again, but not (yet) a caught-up SECONDARY: why.
    Started(String),
    /// Could not be started: why. The member is DOWN.
    Failed(String),
}

impl std::fmt::Display for Restart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Restart::CaughtUp => f.write_str("the member was started again and has caught up"),
            Restart::Started(why) => write!(f, "the member was started again, but {why}"),
            Restart::Failed(why) => write!(
                f,
                "THE MEMBER COULD NOT BE STARTED AGAIN ({why}): start mongod on it by hand now"
            ),
        }
    }
}

/// An error of a backup operation. Every variant names what failed and
/// where; none carries a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A store needs a client the caller did not give (`what`).
    #[error("no {what} was given")]
    NoClient {
        /// The client, and what for.
        what: &'static str,
    },
    /// The guards refused: nothing was touched.
    #[error("refused, nothing touched: {}", list(.0))]
    Refused(Vec<Refusal>),
    /// Talking to the replica set failed.
    #[error(transparent)]
    Mongo(Box<mongo_rs_setup::Error>),
    /// This machine's mongod could not be asked who it is.
    #[error("this machine's mongod at {address}: {detail}")]
    Local {
        /// Where it was asked.
        address: String,
        /// What went wrong.
        detail: String,
    },
    /// A reply from the set could not be read.
    #[error("{host}: unexpected {command} reply: {detail}")]
    Reply {
        /// The member asked.
        host: String,
        /// The command.
        command: String,
        /// What was wrong with the reply.
        detail: String,
    },
    /// The stop or start command failed.
    #[error("the {what} command `{command}` failed: {detail}")]
    Command {
        /// `stop`, `start`.
        what: &'static str,
        /// The command line (no secrets: it comes from the configuration).
        command: String,
        /// Exit status and the end of its standard error.
        detail: String,
    },
    /// A wait ran out of time.
    #[error("timed out after {}s waiting for {what}; last seen: {last}", .waited.as_secs())]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        waited: Duration,
        /// The last state observed.
        last: String,
    },
    /// An AWS call failed.
    #[error("AWS {operation} on {target} failed: {detail}")]
    Aws {
        /// The API operation (`CreateSnapshot` …).
        operation: &'static str,
        /// What it was about (a volume, a snapshot).
        target: String,
        /// EC2's error code and message, or what failed on the way.
        detail: String,
    },
    /// A file operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// `restore-volume` asked of a store that is not EBS.
    #[error("restore-volume needs store = \"ebs\"; {how}")]
    RestoreNotEbs {
        /// How this store's snapshots are restored instead.
        how: &'static str,
    },
    /// A snapshot name given to a command is not one of this tool's.
    #[error("{id}: not a snapshot this tool made for replica set {set}")]
    UnknownSnapshot {
        /// The name given.
        id: String,
        /// The set.
        set: String,
    },
    /// Something failed after the member was stopped; it was started again
    /// (or not: see `restart`).
    #[error("{stage} failed after the member was stopped: {source}; {restart}")]
    AfterStop {
        /// What was being done (`snapshot`, `waiting for the stop` …).
        stage: &'static str,
        /// Why it failed.
        #[source]
        source: Box<Error>,
        /// Whether the member runs again.
        restart: Restart,
    },
    /// The snapshots were taken, but the member is not back as a caught-up
    /// SECONDARY.
    #[error("the snapshots were taken ({}), but {restart}", .snapshots.join(", "))]
    NotBack {
        /// The snapshots taken.
        snapshots: Vec<String>,
        /// What happened when it was started again.
        restart: Restart,
    },
    /// The run was cancelled (SIGINT, SIGTERM) before the member was
    /// stopped: nothing was touched (a lock taken was released).
    #[error("interrupted before the member was stopped: nothing was touched")]
    Cancelled,
    /// The run was interrupted (SIGINT, SIGTERM) after the member was
    /// stopped; it was started again (or not: see `restart`).
    #[error("interrupted after the member was stopped; {restart}")]
    Interrupted {
        /// Whether the member runs again.
        restart: Restart,
    },
}

impl Error {
    /// Whether the guards refused (nothing touched; the binaries exit 3).
    pub fn is_refusal(&self) -> bool {
        matches!(self, Error::Refused(_))
    }

    /// Whether the member may have been left stopped.
    pub fn member_left_down(&self) -> bool {
        matches!(
            self,
            Error::AfterStop {
                restart: Restart::Failed(_),
                ..
            } | Error::Interrupted {
                restart: Restart::Failed(_)
            } | Error::NotBack {
                restart: Restart::Failed(_),
                ..
            }
        )
    }
}

impl From<mongo_rs_setup::Error> for Error {
    fn from(error: mongo_rs_setup::Error) -> Error {
        Error::Mongo(Box::new(error))
    }
}

fn list(refusals: &[Refusal]) -> String {
    refusals
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// An EC2 call's failure, with EC2's code and message.
pub(crate) fn aws(operation: &'static str, target: &str, error: &ha_ec2::Error) -> Error {
    Error::Aws {
        operation,
        target: target.to_owned(),
        detail: error.reason(),
    }
}
