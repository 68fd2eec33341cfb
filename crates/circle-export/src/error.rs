//! What can go wrong, naming the database, collection or file.

/// An export, verify or restore error. Messages name what failed (server,
/// database, collection, table, archive entry) and never hold a password.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// The file or directory.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// MongoDB refused or failed.
    #[error("MongoDB, {what}: {source}")]
    Mongo {
        /// The database/collection and operation.
        what: String,
        /// The driver's error.
        source: Box<mongodb::error::Error>,
    },
    /// A PostgreSQL client program failed.
    #[error("PostgreSQL, {what}: {detail}")]
    Postgres {
        /// The database and program.
        what: String,
        /// Its stderr (last lines) or exit status.
        detail: String,
    },
    /// The archive is damaged or is not what it claims; nothing was
    /// written.
    #[error("the archive is damaged or incomplete; nothing was restored:\n  - {}", .0.join("\n  - "))]
    Damaged(Vec<String>),
    /// The target is not empty and `--drop` was not given; nothing was
    /// written.
    #[error(
        "the target already holds data (use --drop to replace it); nothing was restored:\n  - {}",
        .0.join("\n  - ")
    )]
    NotEmpty(Vec<String>),
    /// Bad input found before anything was touched.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.to_string();
        move |source| Error::Io { what, source }
    }

    pub(crate) fn mongo(
        what: impl std::fmt::Display,
    ) -> impl FnOnce(mongodb::error::Error) -> Error {
        let what = what.to_string();
        move |source| Error::Mongo {
            what,
            source: Box::new(source),
        }
    }
}
