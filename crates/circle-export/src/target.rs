//! Where a restore writes to, as typed values: a MongoDB replica set (or a
//! URI) and a PostgreSQL server. The driver's client is built here, in one
//! place, for `ha.toml` targets and `--mongo-uri` alike.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use mongodb::Client;
use mongodb::options::{ClientOptions, Credential, ServerAddress, Tls, TlsOptions};
use secrecy::{ExposeSecret as _, SecretString};

use crate::error::Error;
use crate::postgres::PgConn;

/// A MongoDB target described by its parts (what `ha.toml`'s `[mongo]`
/// gives): the members, the set, a user authenticating against `admin`,
/// and TLS files.
#[derive(Clone)]
pub struct MongoTarget {
    /// Member addresses `host:port`.
    pub hosts: Vec<String>,
    /// The replica set's name; inserts then use `w: "majority"`.
    pub replica_set: Option<String>,
    /// The user (circle-admin for a restore).
    pub user: String,
    /// Its password.
    pub password: SecretString,
    /// The CA that signed the members' certificates; `None` for a plain
    /// connection.
    pub tls_ca_file: Option<PathBuf>,
    /// A client certificate and key (PEM), if the members ask for one.
    pub tls_certificate_key_file: Option<PathBuf>,
}

impl fmt::Debug for MongoTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoTarget")
            .field("hosts", &self.hosts)
            .field("replica_set", &self.replica_set)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("tls_ca_file", &self.tls_ca_file)
            .finish()
    }
}

/// A MongoDB client and whether it talks to a replica set.
#[derive(Clone, Debug)]
pub struct MongoConnection {
    /// The driver's client (connects lazily).
    pub client: Client,
    /// Whether inserts wait for `w: "majority"`.
    pub replica_set: bool,
}

impl MongoTarget {
    /// The driver client for this target (no connection is made yet). An
    /// operation waits at most `server_selection` for a member it can use
    /// (the primary, for writes) before failing.
    pub fn connect(&self, server_selection: Duration) -> Result<MongoConnection, Error> {
        let mut hosts = Vec::new();
        for host in &self.hosts {
            hosts.push(ServerAddress::parse(host).map_err(|_| {
                Error::Invalid(format!(
                    "MongoDB member {host:?} is not a host:port address"
                ))
            })?);
        }
        let mut options = ClientOptions::builder()
            .hosts(hosts)
            .repl_set_name(self.replica_set.clone())
            .app_name("circle-export".to_owned())
            .server_selection_timeout(server_selection)
            .build();
        if let Some(ca_file) = &self.tls_ca_file {
            options.tls = Some(Tls::Enabled(
                TlsOptions::builder()
                    .ca_file_path(Some(ca_file.clone()))
                    .cert_key_file_path(self.tls_certificate_key_file.clone())
                    .build(),
            ));
        }
        options.credential = Some(
            Credential::builder()
                .username(self.user.clone())
                .password(self.password.expose_secret().to_owned())
                .source("admin".to_owned())
                .build(),
        );
        let client = Client::with_options(options).map_err(|e| Error::Mongo {
            what: format!("client for {}", self.hosts.join(",")),
            source: Box::new(e),
        })?;
        Ok(MongoConnection {
            client,
            replica_set: self.replica_set.is_some(),
        })
    }
}

/// A MongoDB client from a connection string. An operation waits at most
/// `server_selection` for a member it can use, unless the URI sets its own
/// `serverSelectionTimeoutMS`. The error never quotes the URI (it may hold
/// a password).
pub async fn mongo_from_uri(
    uri: &SecretString,
    server_selection: Duration,
) -> Result<MongoConnection, Error> {
    let mut options = ClientOptions::parse(uri.expose_secret())
        .await
        .map_err(|e| {
            let kind = match *e.kind {
                mongodb::error::ErrorKind::InvalidArgument { .. } => {
                    "it is not a valid MongoDB URI"
                }
                _ => "it could not be resolved",
            };
            Error::Invalid(format!("the MongoDB URI: {kind}"))
        })?;
    options.app_name = Some("circle-export".to_owned());
    if options.server_selection_timeout.is_none() {
        options.server_selection_timeout = Some(server_selection);
    }
    let replica_set = options.repl_set_name.is_some();
    let client = Client::with_options(options).map_err(|e| Error::Mongo {
        what: "client from the URI".to_owned(),
        source: Box::new(e),
    })?;
    Ok(MongoConnection {
        client,
        replica_set,
    })
}

/// Everything a restore may write to.
#[derive(Debug, Default)]
pub struct RestoreTargets {
    /// The MongoDB target.
    pub mongo: Option<MongoTarget>,
    /// The PostgreSQL target (the app role, which owns the databases).
    pub postgres: Option<PgConn>,
}
