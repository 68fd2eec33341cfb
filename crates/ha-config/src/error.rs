//! What can go wrong running a concern from `ha.toml`: the configuration
//! itself (found before anything is touched), or the concern crate's own
//! error while it works.

use ha_plan::Problems;

use crate::install::Concern;

/// An error of one of this crate's one-call functions
/// ([`crate::install::apply`], [`HaConfig::postgres_apply`](crate::HaConfig::postgres_apply), …).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `ha.toml` (or a flag overriding it) is wrong; nothing was touched.
    #[error(transparent)]
    Config(#[from] Problems),
    /// The certificates (`[pki]`).
    #[error(transparent)]
    Pki(#[from] ha_tls::Error),
    /// The replica set (`[mongo]`).
    #[error(transparent)]
    Mongo(Box<mongo_rs_setup::Error>),
    /// The PostgreSQL server (`[postgres]`).
    #[error(transparent)]
    Postgres(#[from] pg_provision::Error),
    /// Vault (`[vault]`).
    #[error(transparent)]
    Vault(#[from] vault_transit::Error),
    /// The Services bundle (`[services]`).
    #[error(transparent)]
    Services(#[from] services_userdata::Error),
    /// The backups (`[backup]`).
    #[error(transparent)]
    Backup(#[from] mongo_backup::Error),
    /// A check needs a client the caller did not give (`what`).
    #[error("no {what} was given")]
    NoClient {
        /// The client, and what for.
        what: &'static str,
    },
    /// `circle-ha apply` stopped at a concern: which, what finished before
    /// it and what did not run.
    #[error(
        "apply stopped at {} ({}): finished {}; not run {}",
        at.name(),
        at.section().header(),
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
    /// Whether this is a configuration problem found before anything was
    /// touched (the binaries exit 2 for it), however deep it is wrapped.
    pub fn is_config(&self) -> bool {
        match self {
            Error::Config(_) => true,
            Error::Mongo(e) => matches!(**e, mongo_rs_setup::Error::Invalid(_)),
            Error::Stopped { source, .. } => source.is_config(),
            _ => false,
        }
    }

    /// The configuration problems, when [`Error::is_config`].
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
