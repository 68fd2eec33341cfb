//! What can go wrong in the one check this crate still runs itself (the
//! contexts cutover gate): the configuration (found before anything is
//! touched), or the concern crate's own error while it works. Everything
//! else runs in `ha-runbook` and the concern crates.

use ha_plan::Problems;

/// An error of one of this crate's one-call functions
/// ([`HaConfig::contexts_verify`](crate::HaConfig::contexts_verify)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `ha.toml` (or a flag overriding it) is wrong; nothing was touched.
    #[error(transparent)]
    Config(#[from] Problems),
    /// The replica set (`[mongo]`).
    #[error(transparent)]
    Mongo(Box<mongo_rs_setup::Error>),
    /// The PostgreSQL server (`[postgres]`).
    #[error(transparent)]
    Postgres(#[from] pg_provision::Error),
    /// Vault (`[vault]`).
    #[error(transparent)]
    Vault(#[from] vault_transit::Error),
}

impl Error {
    /// Whether this is a configuration problem found before anything was
    /// touched (the binaries exit 2 for it), however deep it is wrapped.
    pub fn is_config(&self) -> bool {
        match self {
            Error::Config(_) => true,
            Error::Mongo(e) => matches!(**e, mongo_rs_setup::Error::Invalid(_)),
            _ => false,
        }
    }

    /// The configuration problems, when [`Error::is_config`].
    pub fn problems(&self) -> Option<&Problems> {
        match self {
            Error::Config(problems) => Some(problems),
            _ => None,
        }
    }
}

impl From<mongo_rs_setup::Error> for Error {
    fn from(error: mongo_rs_setup::Error) -> Error {
        Error::Mongo(Box::new(error))
    }
}
