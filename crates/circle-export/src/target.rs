//! Where a restore writes to, as typed values: a MongoDB replica set (or a
//! URI) and a PostgreSQL server. The driver's client is built here, in one
//! place, for `ha.toml` targets and `--mongo-uri` alike.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use mongodb::Client;
use mongodb::options::{ClientOptions, ServerAddress};
use secrecy::{ExposeSecret as _, SecretString};

use crate::error::Error;
use crate::postgres::PgConn;
use crate::wire::{WireOptions, WireSource};

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
        let options = mongo_rs_setup::driver::Endpoint {
            hosts,
            replica_set: self.replica_set.clone(),
            direct: false,
            transport: match &self.tls_ca_file {
                Some(ca_file) => mongo_rs_setup::driver::Transport::Tls {
                    ca_file: Some(ca_file),
                    certificate_key_file: self.tls_certificate_key_file.as_deref(),
                },
                None => mongo_rs_setup::driver::Transport::Plain,
            },
            login: Some(mongo_rs_setup::driver::Login {
                user: &self.user,
                password: &self.password,
            }),
            app_name: "circle-export",
            connect_timeout: None,
            server_selection_timeout: server_selection,
        }
        .options();
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
    let options = parse_uri(uri, server_selection).await?;
    let replica_set = options.repl_set_name.is_some();
    let client = driver_client(options)?;
    Ok(MongoConnection {
        client,
        replica_set,
    })
}

/// The driver's options from a connection string, never quoting it.
async fn parse_uri(uri: &SecretString, server_selection: Duration) -> Result<ClientOptions, Error> {
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
    Ok(options)
}

/// A MongoDB server to export from, with what reads it: the driver for
/// MongoDB 4.4 and later, [`crate::wire`] for 3.6 to 4.2 (wire versions 6
/// to 8), which the driver refuses — the old Services machine runs 3.6.
pub enum MongoReader {
    /// Read through the driver.
    Driver(Client),
    /// Read through the old-server reader.
    Wire(Box<WireSource>),
}

impl fmt::Debug for MongoReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MongoReader::Driver(_) => f.write_str("MongoReader::Driver"),
            MongoReader::Wire(source) => f.debug_tuple("MongoReader::Wire").field(source).finish(),
        }
    }
}

impl From<Client> for MongoReader {
    fn from(client: Client) -> MongoReader {
        MongoReader::Driver(client)
    }
}

impl MongoReader {
    /// The reader for the server a connection string names, chosen from
    /// the `maxWireVersion` of an `isMaster` handshake (over OP_QUERY,
    /// which every version answers): below 9 the old-server reader, else
    /// the driver. A URI only the driver can use (a Unix socket,
    /// SCRAM-SHA-256 or X.509 credentials, TLS without `tlsCAFile`) goes
    /// to the driver without a probe. The error never quotes the URI.
    pub async fn from_uri(
        uri: &SecretString,
        server_selection: Duration,
    ) -> Result<MongoReader, Error> {
        let options = parse_uri(uri, server_selection).await?;
        let Ok(wire) = WireOptions::from_client_options(&options) else {
            return driver_client(options).map(MongoReader::Driver);
        };
        let source = WireSource::probe(wire).await?;
        if source.hello().max_wire_version >= crate::wire::DRIVER_WIRE_VERSION {
            return driver_client(options).map(MongoReader::Driver);
        }
        if source.hello().max_wire_version < crate::wire::MIN_WIRE_VERSION {
            return Err(Error::Wire {
                server: source.address().to_string(),
                what: "the handshake".to_owned(),
                source: crate::wire::WireError::TooOld(source.hello().max_wire_version),
            });
        }
        Ok(MongoReader::Wire(Box::new(source)))
    }

    /// Which reader reads the server, in words.
    pub fn describe(&self) -> &'static str {
        match self {
            MongoReader::Driver(_) => "the MongoDB driver (4.4 and later)",
            MongoReader::Wire(_) => "the old-server reader (MongoDB 3.6 to 4.2)",
        }
    }
}

fn driver_client(options: ClientOptions) -> Result<Client, Error> {
    Client::with_options(options).map_err(|e| Error::Mongo {
        what: "client from the URI".to_owned(),
        source: Box::new(e),
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
