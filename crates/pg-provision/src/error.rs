//! The one error type of `pg-provision`.

/// What went wrong. Messages name the server, database, role or statement
/// involved and never contain a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The desired state itself is unusable (bad names); found before any
    /// server is contacted.
    #[error("invalid PostgreSQL settings:\n  - {}", problems.join("\n  - "))]
    InvalidDesired {
        /// Every problem found.
        problems: Vec<String>,
    },
    /// A connection could not be opened.
    #[error("cannot connect as {user} to database {database} on {server}: {detail}")]
    Connect {
        /// The role.
        user: String,
        /// `host:port`.
        server: String,
        /// The database.
        database: String,
        /// The server's or the network's words, and what to do.
        detail: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The server accepted the connection but did not finish the TLS
    /// handshake and login in time (a hung server, or something else
    /// listening on the port).
    #[error(
        "cannot connect as {user} to database {database} on {server}: connected, then no answer \
         within {seconds}s (a hung server, or not PostgreSQL listening there)"
    )]
    ConnectTimeout {
        /// The role.
        user: String,
        /// `host:port`.
        server: String,
        /// The database.
        database: String,
        /// How long it waited.
        seconds: u64,
    },
    /// Building the TLS configuration failed (unreadable CA file …).
    #[error("TLS settings for PostgreSQL are unusable")]
    Tls(#[source] ha_tls::Error),
    /// A read-only query while observing the server failed.
    #[error("cannot read {what} on {server}: {detail}")]
    Observe {
        /// What was being read.
        what: String,
        /// `host:port`.
        server: String,
        /// The server's words.
        detail: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The plan cannot be applied with the admin's privileges or the
    /// server's packages; nothing was changed.
    #[error("cannot provision {server}, nothing was changed:\n  - {}", problems.join("\n  - "))]
    Blocked {
        /// `host:port`.
        server: String,
        /// Every reason.
        problems: Vec<String>,
    },
    /// A step of the plan failed. Steps before it were applied; running
    /// again continues from the current state.
    #[error("{step} failed on {server}: {detail}")]
    Step {
        /// The step, as the plan shows it (passwords redacted).
        step: String,
        /// `host:port`.
        server: String,
        /// The server's words, and what to do.
        detail: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
}

impl Error {
    /// Whether retrying later may succeed: the server was unreachable,
    /// starting up or shutting down.
    pub fn is_transient(&self) -> bool {
        let source = match self {
            Error::Connect { source, .. }
            | Error::Observe { source, .. }
            | Error::Step { source, .. } => source,
            _ => return false,
        };
        match source.code() {
            Some(code) => matches!(
                code.code(),
                "57P01" | "57P02" | "57P03" | "53300" | "08000" | "08001" | "08006"
            ),
            None => source.is_closed() || source.as_db_error().is_none(),
        }
    }
}

/// Turns a driver error into words: the server's message with SQLSTATE,
/// detail and hint, or the network/TLS cause chain.
pub fn describe_pg_error(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = format!("{} ({})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str(&format!("; {detail}"));
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!("; hint: {hint}"));
        }
        let advice = match db.code().code() {
            "28P01" => Some("check the password the secret reference points to"),
            "28000" => Some("pg_hba.conf on the server has no entry allowing this login"),
            "3D000" => Some("the database does not exist"),
            "42501" => Some("the role lacks the privilege"),
            _ => None,
        };
        if let Some(advice) = advice {
            text.push_str(&format!(" — {advice}"));
        }
        return text;
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
