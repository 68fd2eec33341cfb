//! What the operator wants: the app role and the databases with their
//! extensions.

use std::fmt;

use secrecy::SecretString;

use crate::Error;

/// One database and the extensions it must have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseSpec {
    /// The database's name.
    pub name: String,
    /// Extensions to create in it (`CREATE EXTENSION IF NOT EXISTS`).
    pub extensions: Vec<String>,
}

impl DatabaseSpec {
    /// A database with the given extensions.
    pub fn new(name: &str, extensions: &[&str]) -> DatabaseSpec {
        DatabaseSpec {
            name: name.to_owned(),
            extensions: extensions.iter().map(|e| (*e).to_owned()).collect(),
        }
    }
}

/// The eight databases CircleCI Server 2.0 needs, as the runbook lists them:
/// `circle` with `pgcrypto` and `uuid-ossp`, the seven others with
/// `uuid-ossp`.
pub fn default_databases() -> Vec<DatabaseSpec> {
    vec![
        DatabaseSpec::new("circle", &["pgcrypto", "uuid-ossp"]),
        DatabaseSpec::new("conductor_production", &["uuid-ossp"]),
        DatabaseSpec::new("contexts_service_production", &["uuid-ossp"]),
        DatabaseSpec::new("cron_service_production", &["uuid-ossp"]),
        DatabaseSpec::new("domain", &["uuid-ossp"]),
        DatabaseSpec::new("federations", &["uuid-ossp"]),
        DatabaseSpec::new("permissions", &["uuid-ossp"]),
        DatabaseSpec::new("vms", &["uuid-ossp"]),
    ]
}

/// The desired state of the server.
pub struct Desired {
    /// The role the CircleCI services log in as (the runbook's `circle`).
    pub app_role: String,
    /// Its password.
    pub app_password: SecretString,
    /// The databases, each owned by the app role.
    pub databases: Vec<DatabaseSpec>,
}

impl Desired {
    /// Checks every name, all at once: each must be a usable PostgreSQL
    /// identifier (1 to 63 bytes, no NUL), and database names must be
    /// unique. Quoting makes any other character safe.
    pub fn validate(&self) -> Result<(), Error> {
        check_names(&self.app_role, &self.databases)
    }
}

/// Checks the app role's and the databases' names (identifiers, no
/// duplicates, no reserved or system role) without anything else of a
/// [`Desired`]: what a configuration reader checks before any password
/// exists.
pub fn check_names(app_role: &str, databases: &[DatabaseSpec]) -> Result<(), Error> {
    let mut problems = Vec::new();
    check_identifier("role", app_role, &mut problems);
    let mut seen = std::collections::BTreeSet::new();
    for database in databases {
        check_identifier("database", &database.name, &mut problems);
        if !seen.insert(&database.name) {
            problems.push(format!("database {:?} is listed twice", database.name));
        }
        for extension in &database.extensions {
            check_identifier("extension", extension, &mut problems);
        }
    }
    if matches!(app_role, "postgres" | "public" | "pg_database_owner")
        || app_role.starts_with("pg_")
    {
        problems.push(format!(
            "role name {:?} is reserved or a system role; choose the app role's own name",
            app_role
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidDesired { problems })
    }
}

impl fmt::Debug for Desired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Desired")
            .field("app_role", &self.app_role)
            .field("app_password", &"[redacted]")
            .field("databases", &self.databases)
            .finish()
    }
}

fn check_identifier(what: &str, name: &str, problems: &mut Vec<String>) {
    if name.is_empty() {
        problems.push(format!("{what} name is empty"));
    } else if name.len() > 63 {
        problems.push(format!(
            "{what} name {name:?} is {} bytes; PostgreSQL truncates names to 63",
            name.len()
        ));
    } else if name.contains('\0') {
        problems.push(format!("{what} name {name:?} contains a NUL character"));
    }
}
