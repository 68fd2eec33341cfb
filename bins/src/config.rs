//! `ha.toml`: reading the file and checking each section before anything is
//! touched.
//!
//! Parsing happens in two steps, as ripgrep does with its flags: serde reads
//! the "raw" sections as written (unknown keys are errors, so typos do not
//! pass silently), then a section's `settings` function validates them —
//! every problem at once — into the typed values a library takes. Problems
//! are [`UsageError`]s: the binaries exit with code 2 for them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::secret::SecretRef;

/// Bad usage or configuration, found before anything was touched (exit 2).
#[derive(Debug)]
pub struct UsageError {
    /// Every problem found.
    pub problems: Vec<String>,
}

impl UsageError {
    /// A single problem.
    pub fn new(problem: impl Into<String>) -> UsageError {
        UsageError {
            problems: vec![problem.into()],
        }
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => f.write_str(one),
            many => {
                write!(f, "{} problems in the configuration:", many.len())?;
                for problem in many {
                    write!(f, "\n  - {problem}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for UsageError {}

/// The whole file as written. Sections other tools own are kept as plain
/// tables until their tool reads them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[pki]`.
    pub pki: Option<toml::Table>,
    /// `[mongo]`.
    pub mongo: Option<RawMongo>,
    /// `[postgres]`.
    pub postgres: Option<RawPostgres>,
    /// `[vault]`.
    pub vault: Option<toml::Table>,
    /// `[services]`.
    pub services: Option<toml::Table>,
}

/// `[postgres]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPostgres {
    /// Server host name (what TLS verifies) or IP address.
    pub host: Option<String>,
    /// Server port (default 5432).
    pub port: Option<u16>,
    /// Connect to this IP address instead of resolving `host`.
    pub hostaddr: Option<String>,
    /// The admin role (default `postgres`).
    pub admin_user: Option<String>,
    /// Secret reference to the admin's password.
    pub admin_password: Option<String>,
    /// The database the admin logs in to (default `postgres`).
    pub admin_database: Option<String>,
    /// The app role (default `circle`).
    pub app_user: Option<String>,
    /// Secret reference to the app role's password.
    pub app_password: Option<String>,
    /// `disable`, `require`, `verify-ca` or `verify-full` (default).
    pub sslmode: Option<String>,
    /// CA bundle for `verify-ca`/`verify-full`.
    pub ca_file: Option<PathBuf>,
    /// Seconds to wait for a connection (default 30).
    pub connect_timeout: Option<u64>,
    /// The databases (default: the eight the runbook lists).
    pub databases: Option<Vec<RawDatabase>>,
}

/// One `[[postgres.databases]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    /// The database's name.
    pub name: String,
    /// Its extensions.
    #[serde(default)]
    pub extensions: Vec<String>,
}

/// `[mongo]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMongo {
    /// The replica set's name.
    pub replica_set: Option<String>,
    /// The MongoDB version the members run (selects the mongod.conf dialect).
    pub server_version: Option<String>,
    /// The members.
    #[serde(default)]
    pub members: Vec<RawMember>,
    /// TLS for clients; absent means plain connections.
    pub tls: Option<RawMongoTls>,
    /// The runbook's three users.
    pub users: Option<RawMongoUsers>,
    /// Replica-set settings to pin.
    pub settings: Option<RawMongoSettings>,
    /// Where files live on the members, for `render-config`.
    pub server: Option<RawMongoServer>,
    /// Seconds to wait for a member to answer (default 10).
    pub connect_timeout: Option<u64>,
    /// Seconds to wait for an election or a member's initial sync (default
    /// 900).
    pub wait_timeout: Option<u64>,
}

/// `[mongo.settings]`: replica-set settings to pin.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMongoSettings {
    /// `settings.electionTimeoutMillis`.
    pub election_timeout_millis: Option<i64>,
    /// `settings.heartbeatIntervalMillis`.
    pub heartbeat_interval_millis: Option<i64>,
}

/// `[mongo.server]`: file locations on the members (each may contain
/// `{host}` and `{port}`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMongoServer {
    /// `storage.dbPath`.
    pub db_path: Option<String>,
    /// `systemLog.path`.
    pub log_path: Option<String>,
    /// The member's certificate and key (PEM).
    pub certificate_key_file: Option<String>,
    /// The certificate presented to other members.
    pub cluster_file: Option<String>,
    /// The CA certificate.
    pub ca_file: Option<String>,
    /// `net.bindIp` entries.
    pub bind_ip: Option<Vec<String>>,
}

/// One `[mongo].members` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMember {
    /// `host:port`.
    pub host: String,
    /// Election priority (default 1).
    pub priority: Option<f64>,
    /// Votes (default 1).
    pub votes: Option<u8>,
    /// Hidden member.
    pub hidden: Option<bool>,
    /// Arbiter.
    pub arbiter_only: Option<bool>,
}

/// `[mongo].tls`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMongoTls {
    /// The CA the members' certificates chain to.
    pub ca_file: Option<PathBuf>,
    /// A client certificate and key (PEM) for the tools.
    pub certificate_key_file: Option<PathBuf>,
}

/// `[mongo].users`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMongoUsers {
    /// `siteUserAdmin` (userAdminAnyDatabase).
    pub site_admin: Option<RawMongoUser>,
    /// `circle-admin` (root + dbAdmin on admin).
    pub admin: Option<RawMongoUser>,
    /// `circle` (readWrite on the app databases).
    pub app: Option<RawMongoUser>,
}

/// One MongoDB user.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMongoUser {
    /// The user name.
    pub name: Option<String>,
    /// Secret reference to the password.
    pub password: Option<String>,
    /// Databases (app user only).
    pub databases: Option<Vec<String>>,
}

/// The app user's databases when `[mongo].users.app.databases` is absent:
/// every database its connection URIs use (the runbook's createUser forgets
/// `remote_containers_dev_ghe`).
pub const DEFAULT_APP_DATABASES: [&str; 4] = [
    "circle_ghe",
    "build_state_dev_ghe",
    "containers_dev_ghe",
    "remote_containers_dev_ghe",
];

/// A loaded `ha.toml`.
#[derive(Debug)]
pub struct ConfigFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The sections.
    pub raw: RawConfig,
}

impl ConfigFile {
    /// Reads and parses `path`. Syntax errors and unknown keys are reported
    /// with the file name and position.
    pub fn load(path: &Path) -> Result<ConfigFile, UsageError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| UsageError::new(format!("cannot read {}: {e}", path.display())))?;
        let raw: RawConfig = toml::from_str(&text)
            .map_err(|e| UsageError::new(format!("{}: {e}", path.display())))?;
        Ok(ConfigFile {
            path: path.to_owned(),
            raw,
        })
    }

    /// The directory relative paths in the file are relative to.
    pub fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        }
    }

    /// Resolves a path from the file against its directory.
    pub fn path_of(&self, path: &Path) -> PathBuf {
        self.dir().join(path)
    }
}

/// Collects problems while validating a section, so all are reported at once.
#[derive(Debug, Default)]
pub struct Problems {
    problems: Vec<String>,
}

impl Problems {
    /// Records a problem.
    pub fn push(&mut self, problem: impl Into<String>) {
        self.problems.push(problem.into());
    }

    /// `Ok(value)` if no problem was recorded.
    pub fn finish<T>(self, value: T) -> Result<T, UsageError> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(UsageError {
                problems: self.problems,
            })
        }
    }

    /// Parses a secret reference at `key`, recording a problem if it is
    /// missing or malformed.
    pub fn secret_ref(&mut self, key: &str, value: Option<&str>) -> Option<SecretRef> {
        match value {
            None => {
                self.push(format!("{key} is missing (write env:NAME or file:PATH)"));
                None
            }
            Some(text) => match SecretRef::parse(text) {
                Ok(reference) => Some(reference),
                Err(why) => {
                    self.push(format!("{key} {why}"));
                    None
                }
            },
        }
    }
}

/// Seconds as a duration, for `connect_timeout` style keys.
pub fn seconds(value: Option<u64>, default: u64) -> Duration {
    Duration::from_secs(value.unwrap_or(default))
}
