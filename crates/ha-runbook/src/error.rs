//! What can go wrong running the runbook: a setup that lacks what a step
//! needs (found before anything is touched), or a concern crate's own
//! error while it works.

use std::path::PathBuf;

use ha_plan::Problems;

use crate::Concern;

/// An error of [`crate::apply`] or one of the setups' calls.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is wrong (a member change the spec contradicts); nothing
    /// was touched.
    #[error(transparent)]
    Config(#[from] Problems),
    /// A setup lacks something the step needs (`what`): a login, a token,
    /// a client. Nothing was touched.
    #[error("{concern}: no {what} was given")]
    Missing {
        /// The concern's name.
        concern: &'static str,
        /// What is missing, and what for.
        what: &'static str,
    },
    /// The Services bundle needs the Vault app token, and its file does
    /// not hold one yet (Vault's configure step writes it).
    #[error("no Vault app token at {}: configure Vault's transit mount and app token first", path.display())]
    NoAppToken {
        /// Where the token was looked for.
        path: PathBuf,
    },
    /// A member change would remove a member the spec still lists (the
    /// next apply would add it back); nothing was touched.
    #[error(
        "{host} is one of the spec's members: take it out of the spec first, or the next apply \
         adds it back"
    )]
    MemberStillWanted {
        /// The member (`host:port`).
        host: String,
    },
    /// The certificates.
    #[error(transparent)]
    Pki(#[from] ha_tls::Error),
    /// The replica set.
    #[error(transparent)]
    Mongo(Box<mongo_rs_setup::Error>),
    /// The PostgreSQL server.
    #[error(transparent)]
    Postgres(#[from] pg_provision::Error),
    /// Vault.
    #[error(transparent)]
    Vault(#[from] vault_transit::Error),
    /// The Services bundle.
    #[error(transparent)]
    Services(#[from] services_userdata::Error),
    /// The backups.
    #[error(transparent)]
    Backup(#[from] mongo_backup::Error),
    /// [`crate::apply`] stopped at a concern: which, what finished before
    /// it and what did not run.
    #[error(
        "apply stopped at {} ({}): finished {}; not run {}",
        at.name(),
        at.header(),
        names(finished),
        names(not_run)
    )]
    Stopped {
        /// The concern that failed.
        at: Concern,
        /// The concerns that finished before it.
        finished: Vec<Concern>,
        /// The selected concerns after it, which did not run.
        not_run: Vec<Concern>,
        /// Why it failed.
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// Whether the input was wrong or not ready (no app token yet) and
    /// nothing was touched (the binaries exit 2 for it), however deep it is
    /// wrapped.
    pub fn is_config(&self) -> bool {
        match self {
            Error::Config(_)
            | Error::Missing { .. }
            | Error::NoAppToken { .. }
            | Error::MemberStillWanted { .. } => true,
            Error::Mongo(e) => matches!(**e, mongo_rs_setup::Error::Invalid(_)),
            Error::Services(e) => matches!(e, services_userdata::Error::Invalid { .. }),
            Error::Stopped { source, .. } => source.is_config(),
            _ => false,
        }
    }

    /// The input's problems, when there are some.
    pub fn problems(&self) -> Option<&Problems> {
        match self {
            Error::Config(problems) => Some(problems),
            Error::Stopped { source, .. } => source.problems(),
            _ => None,
        }
    }
}

impl From<mongo_rs_setup::Error> for Error {
    fn from(error: mongo_rs_setup::Error) -> Error {
        Error::Mongo(Box::new(error))
    }
}

fn names(concerns: &[Concern]) -> String {
    if concerns.is_empty() {
        return "none".to_owned();
    }
    concerns
        .iter()
        .map(|c| c.name())
        .collect::<Vec<_>>()
        .join(", ")
}
