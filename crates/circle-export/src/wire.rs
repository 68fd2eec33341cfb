//! A MongoDB reader for the servers the driver refuses: MongoDB 3.6, 4.0
//! and 4.2 (wire versions 6 to 8), which is what the old Services machine
//! runs (3.6.x). [`crate::MongoReader::from_uri`] picks it from the
//! handshake's `maxWireVersion`; 4.4 and later stay with the driver.
//!
//! It speaks only what an export needs: the `isMaster` handshake over
//! OP_QUERY (3.6 has no `hello`), then OP_MSG; SCRAM-SHA-1 when the URI
//! has credentials and nothing when it has none; TLS through `ha-tls`
//! (verification on unless the URI asks otherwise by name);
//! `listDatabases`, `listCollections`, `listIndexes`, `find`/`getMore`
//! with every document copied out of the batch as the bytes the server
//! sent, `killCursors` when a dump stops half-way, and an exact count of
//! each collection checked against what was read. Every length read from
//! the wire is bounded before anything is allocated ([`frame`]); every
//! exchange has a deadline. Its framing shares nothing with mongo-sim.

pub mod frame;
pub mod scram;

mod conn;

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bson::{Document, RawBsonRef, RawDocument, RawDocumentBuf, doc};
use secrecy::SecretString;

pub use conn::{Connection, Hello};

/// The oldest wire version read (MongoDB 3.6: the first with OP_MSG).
pub const MIN_WIRE_VERSION: i32 = 6;
/// The first wire version the driver reads (MongoDB 4.4).
pub const DRIVER_WIRE_VERSION: i32 = 9;

/// How long one command's round trip may take by default: the first
/// batch of a `find` on a large unindexed 3.6 collection can take a while.
pub const SOCKET_TIMEOUT: Duration = Duration::from_secs(300);

/// Documents asked for per batch (the server also stops a batch at 16 MiB).
const BATCH_SIZE: i32 = 1000;

/// A server address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    /// Host name or IP address.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Address {
    /// Parses `host:port` (`host` alone means port 27017).
    pub fn parse(text: &str) -> Option<Address> {
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') || host.starts_with('[') => (
                host.trim_start_matches('[').trim_end_matches(']'),
                port.parse().ok()?,
            ),
            _ => (text, 27017),
        };
        (!host.is_empty()).then(|| Address {
            host: host.to_owned(),
            port,
        })
    }
}

/// A user to log in as, with SCRAM-SHA-1.
#[derive(Clone)]
pub struct WireCredential {
    /// The user.
    pub user: String,
    /// Its password.
    pub password: SecretString,
    /// The database it is defined in (`admin` unless the URI's
    /// `authSource` says otherwise).
    pub source: String,
}

impl fmt::Debug for WireCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WireCredential")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

/// TLS toward the server.
#[derive(Clone, Debug)]
pub struct WireTls {
    /// The CA certificates (PEM) the server's chain must lead to.
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key (one PEM file), if the server asks.
    pub certificate_key_file: Option<PathBuf>,
    /// How much of the server's certificate is checked.
    pub verification: ha_tls::ServerVerification,
}

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct WireOptions {
    /// The members (or the one server) to try, in order.
    pub hosts: Vec<Address>,
    /// The replica set's name: then the primary is found and read from.
    /// Without it, the first server that answers is read, even a secondary.
    pub replica_set: Option<String>,
    /// Log in as this user; `None` for a server without auth.
    pub credential: Option<WireCredential>,
    /// TLS; `None` for plain TCP.
    pub tls: Option<WireTls>,
    /// How long a connection (and its TLS handshake) may take.
    pub connect_timeout: Duration,
    /// How long one command's round trip may take.
    pub socket_timeout: Duration,
}

impl WireOptions {
    /// The options the driver parsed from a URI: its hosts, `replicaSet`,
    /// credentials (SCRAM-SHA-1 or none), TLS files and
    /// `tlsAllowInvalidCertificates` (`tlsInsecure`), `connectTimeoutMS`;
    /// a command's round trip may take [`SOCKET_TIMEOUT`]. A mechanism other than
    /// SCRAM-SHA-1, or TLS without a CA file, is refused (the server is
    /// old: it speaks neither SCRAM-SHA-256 nor X.509 users here).
    pub fn from_client_options(
        options: &mongodb::options::ClientOptions,
    ) -> Result<WireOptions, WireError> {
        use mongodb::options::{AuthMechanism, ServerAddress, Tls};
        let mut hosts = Vec::new();
        for host in &options.hosts {
            match host {
                ServerAddress::Tcp { host, port } => hosts.push(Address {
                    host: host.clone(),
                    port: port.unwrap_or(27017),
                }),
                _ => {
                    return Err(WireError::Options(
                        "a Unix socket address (use host:port)".to_owned(),
                    ));
                }
            }
        }
        let credential = match &options.credential {
            None => None,
            Some(c) => {
                match &c.mechanism {
                    None | Some(AuthMechanism::ScramSha1) => {}
                    Some(other) => {
                        return Err(WireError::Options(format!(
                            "authMechanism {} (MongoDB 3.6 to 4.2 are read with SCRAM-SHA-1)",
                            other.as_str()
                        )));
                    }
                }
                let Some(user) = c.username.clone() else {
                    return Err(WireError::Options(
                        "a password without a user name".to_owned(),
                    ));
                };
                Some(WireCredential {
                    user,
                    password: c.password.clone().unwrap_or_default().into(),
                    source: c.source.clone().unwrap_or_else(|| "admin".to_owned()),
                })
            }
        };
        let tls = match &options.tls {
            None | Some(Tls::Disabled) => None,
            Some(Tls::Enabled(t)) => {
                let verification = if t.allow_invalid_certificates == Some(true) {
                    ha_tls::ServerVerification::DangerAcceptAnyCertificate
                } else {
                    ha_tls::ServerVerification::Full
                };
                if t.ca_file_path.is_none()
                    && verification != ha_tls::ServerVerification::DangerAcceptAnyCertificate
                {
                    return Err(WireError::Options(
                        "TLS without tlsCAFile (name the CA that signed the server's certificate)"
                            .to_owned(),
                    ));
                }
                Some(WireTls {
                    ca_file: t.ca_file_path.clone(),
                    certificate_key_file: t.cert_key_file_path.clone(),
                    verification,
                })
            }
        };
        Ok(WireOptions {
            hosts,
            replica_set: options.repl_set_name.clone(),
            credential,
            tls,
            connect_timeout: options.connect_timeout.unwrap_or(Duration::from_secs(10)),
            socket_timeout: SOCKET_TIMEOUT,
        })
    }

    fn tls_config(&self) -> Result<Option<Arc<rustls::ClientConfig>>, WireError> {
        let Some(tls) = &self.tls else {
            return Ok(None);
        };
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|e| WireError::Options(format!("{}: {e}", path.display())))
        };
        let ca = tls.ca_file.as_ref().map(read).transpose()?;
        let ca_name = tls
            .ca_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let identity = match &tls.certificate_key_file {
            None => None,
            Some(path) => {
                let pem = String::from_utf8(read(path)?)
                    .map_err(|_| WireError::Options(format!("{}: not PEM text", path.display())))?;
                Some(ha_tls::ClientIdentity {
                    cert_pem: pem.clone(),
                    key_pem: pem.into(),
                })
            }
        };
        let config = ha_tls::client_config(
            ca.as_deref().map(|pem| (pem, ca_name.as_str())),
            tls.verification,
            identity.as_ref(),
        )
        .map_err(|e| WireError::Tls(e.to_string()))?;
        Ok(Some(Arc::new(config)))
    }
}

/// What went wrong talking to an old server.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// The connection failed or broke.
    Io(String),
    /// No answer within this long.
    Timeout(Duration),
    /// TLS could not be set up or the server's certificate was refused.
    Tls(String),
    /// The server sent something that is not a well-formed reply.
    Frame(frame::FrameError),
    /// A well-formed reply without what it should hold.
    Reply(String),
    /// The server answered `ok: 0`.
    Command {
        /// Its error code.
        code: i32,
        /// Its code name (empty where the server gives none).
        code_name: String,
        /// Its message.
        message: String,
    },
    /// Logging in failed.
    Auth(String),
    /// The connection options cannot be used with an old server.
    Options(String),
    /// The server is older than MongoDB 3.6.
    TooOld(i32),
    /// No server could be used; what each said.
    NoServer(String),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Io(e) => write!(f, "network error: {e}"),
            WireError::Timeout(t) => write!(f, "no answer within {} s", t.as_secs()),
            WireError::Tls(e) => write!(f, "TLS: {e}"),
            WireError::Frame(e) => write!(f, "{e}"),
            WireError::Reply(e) => write!(f, "an unexpected reply: {e}"),
            WireError::Command {
                code,
                code_name,
                message,
            } if code_name.is_empty() => {
                write!(f, "{message} (code {code})")
            }
            WireError::Command {
                code,
                code_name,
                message,
            } => write!(f, "{message} (code {code} {code_name})"),
            WireError::Auth(e) => write!(f, "authentication failed: {e}"),
            WireError::Options(e) => write!(f, "cannot be used with this server: {e}"),
            WireError::NoServer(tried) => write!(f, "no server could be used: {tried}"),
            WireError::TooOld(v) => write!(
                f,
                "wire version {v}: MongoDB older than 3.6 (wire 6) is not read; dump it with its own mongodump and export that dump"
            ),
        }
    }
}

impl std::error::Error for WireError {}

impl From<frame::FrameError> for WireError {
    fn from(e: frame::FrameError) -> WireError {
        WireError::Frame(e)
    }
}

/// An old server to export from: where it is, how to log in, and a few
/// connections kept open between collections.
pub struct WireSource {
    options: WireOptions,
    tls: Option<Arc<rustls::ClientConfig>>,
    address: Address,
    hello: Hello,
    idle: Mutex<Vec<Connection>>,
}

impl fmt::Debug for WireSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WireSource")
            .field("address", &self.address)
            .field("hello", &self.hello)
            .finish_non_exhaustive()
    }
}

/// An error from the server at `address` while doing `what`.
pub(crate) fn failed(
    address: &Address,
    what: impl fmt::Display,
) -> impl FnOnce(WireError) -> crate::Error {
    let (server, what) = (address.to_string(), what.to_string());
    move |source| crate::Error::Wire {
        server,
        what,
        source,
    }
}

impl WireSource {
    /// Shakes hands with the servers in `options` (no login yet): the
    /// primary of the named replica set, or the first server that
    /// answers. The handshake's `maxWireVersion` is in [`Self::hello`]:
    /// whoever called this decides whether the driver reads it instead.
    pub async fn probe(options: WireOptions) -> Result<WireSource, crate::Error> {
        let tls = options.tls_config().map_err(|e| crate::Error::Wire {
            server: list(&options.hosts),
            what: "TLS settings".to_owned(),
            source: e,
        })?;
        let mut tried = Vec::new();
        let mut queue = options.hosts.clone();
        let mut i = 0;
        while i < queue.len() && i < 16 {
            let address = queue[i].clone();
            i += 1;
            let (connection, hello) = match Connection::open(&address, &options, tls.as_ref()).await
            {
                Ok(ok) => ok,
                Err(e) => {
                    tried.push((address, e));
                    continue;
                }
            };
            let Some(set) = &options.replica_set else {
                return Ok(Self::chosen(options, tls, connection, hello));
            };
            if hello.set_name.as_deref() != Some(set) {
                let says = hello
                    .set_name
                    .as_deref()
                    .map_or("it is in none".to_owned(), |s| format!("it is in {s:?}"));
                tried.push((
                    address,
                    WireError::Reply(format!("not a member of replica set {set:?} ({says})")),
                ));
                continue;
            }
            if hello.writable {
                return Ok(Self::chosen(options, tls, connection, hello));
            }
            match hello.primary.as_deref().and_then(Address::parse) {
                Some(primary) if !queue.contains(&primary) => queue.push(primary),
                _ => tried.push((address, WireError::Reply("not the primary".to_owned()))),
            }
        }
        let what = match &options.replica_set {
            Some(set) => format!("finding the primary of replica set {set:?}"),
            None => "the handshake".to_owned(),
        };
        Err(match <[_; 1]>::try_from(tried) {
            Ok([(address, source)]) => crate::Error::Wire {
                server: address.to_string(),
                what,
                source,
            },
            Err(tried) => crate::Error::Wire {
                server: list(&options.hosts),
                what,
                source: WireError::NoServer(
                    tried
                        .iter()
                        .map(|(address, e)| format!("{address}: {e}"))
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
            },
        })
    }

    fn chosen(
        options: WireOptions,
        tls: Option<Arc<rustls::ClientConfig>>,
        connection: Connection,
        hello: Hello,
    ) -> WireSource {
        WireSource {
            address: connection.address().clone(),
            options,
            tls,
            hello,
            idle: Mutex::new(vec![connection]),
        }
    }

    /// What the server said in the handshake.
    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    /// The server read from.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// A logged-in connection: an idle one, or a new one.
    async fn take(&self) -> Result<Connection, WireError> {
        if self.hello.max_wire_version < MIN_WIRE_VERSION {
            return Err(WireError::TooOld(self.hello.max_wire_version));
        }
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut connection = match idle {
            Some(c) => c,
            None => {
                Connection::open(&self.address, &self.options, self.tls.as_ref())
                    .await?
                    .0
            }
        };
        if !self.hello.writable && self.hello.secondary {
            connection.allow_secondary();
        }
        if let Some(c) = &self.options.credential
            && !connection.is_logged_in()
        {
            connection
                .authenticate(&c.user, &c.password, &c.source)
                .await?;
        }
        Ok(connection)
    }

    /// Puts a connection that finished cleanly back with the idle ones (a
    /// failed one is dropped: it may hold half a reply).
    fn give_back(&self, connection: Connection) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(connection);
    }

    /// Runs `command` against `db` on a logged-in connection.
    pub async fn command(&self, db: &str, command: Document) -> Result<RawDocumentBuf, WireError> {
        let mut connection = self.take().await?;
        let reply = connection.command(db, command).await?;
        self.give_back(connection);
        Ok(reply)
    }

    /// Every document a command's cursor gives (`listCollections`,
    /// `listIndexes`), decoded: these are small catalog entries.
    async fn catalog(&self, db: &str, command: Document) -> Result<Vec<Document>, WireError> {
        let mut cursor = self.cursor(db, command).await?;
        let mut out = Vec::new();
        while let Some(batch) = cursor.next_batch().await? {
            for document in batch_documents(&batch)? {
                let document = Document::try_from(document)
                    .map_err(|e| WireError::Reply(format!("a catalog entry: {e}")))?;
                out.push(document);
            }
            if out.len() > 1_000_000 {
                return Err(WireError::Reply(
                    "more than a million catalog entries".to_owned(),
                ));
            }
        }
        Ok(out)
    }

    /// Opens a cursor with `command` (`find`, `listCollections`, …).
    pub async fn cursor(&self, db: &str, command: Document) -> Result<Cursor<'_>, WireError> {
        let mut connection = self.take().await?;
        let reply = connection.command(db, command).await?;
        let (id, ns) = cursor_of(&reply)?;
        Ok(Cursor {
            source: self,
            connection: Some(connection),
            db: db.to_owned(),
            collection: ns
                .split_once('.')
                .map(|(_, c)| c.to_owned())
                .unwrap_or_default(),
            id,
            first: Some(reply),
        })
    }

    /// The server's version (`buildInfo`).
    pub async fn server_version(&self) -> Result<String, crate::Error> {
        let reply = self
            .command("admin", doc! {"buildInfo": 1})
            .await
            .map_err(failed(&self.address, "buildInfo"))?;
        Ok(reply.get_str("version").unwrap_or("unknown").to_owned())
    }

    /// The databases' names (`listDatabases`).
    pub async fn database_names(&self) -> Result<Vec<String>, crate::Error> {
        let reply = self
            .command("admin", doc! {"listDatabases": 1})
            .await
            .map_err(failed(&self.address, "listDatabases"))?;
        let mut names = Vec::new();
        let databases = reply
            .get_array("databases")
            .map_err(|e| failed(&self.address, "listDatabases")(WireError::Reply(e.to_string())))?;
        for entry in databases {
            if let Ok(RawBsonRef::Document(d)) = entry
                && let Ok(name) = d.get_str("name")
            {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    /// `listCollections` of `db`, each entry as the server gave it.
    pub async fn collections(&self, db: &str) -> Result<Vec<Document>, crate::Error> {
        self.catalog(db, doc! {"listCollections": 1, "cursor": {}})
            .await
            .map_err(failed(&self.address, format!("listCollections on {db}")))
    }

    /// `listIndexes` of `db.collection`, each spec as the server gave it.
    pub async fn indexes(&self, db: &str, collection: &str) -> Result<Vec<Document>, crate::Error> {
        self.catalog(db, doc! {"listIndexes": collection, "cursor": {}})
            .await
            .map_err(failed(
                &self.address,
                format!("listIndexes on {db}.{collection}"),
            ))
    }

    /// The exact number of documents in `db.collection` (an aggregation
    /// that visits them, not the catalog's estimate, which an unclean
    /// shutdown leaves wrong on 3.6).
    pub async fn count(&self, db: &str, collection: &str) -> Result<u64, crate::Error> {
        let what = failed(&self.address, format!("counting {db}.{collection}"));
        let command = doc! {
            "aggregate": collection,
            "pipeline": [{"$group": {"_id": 1, "n": {"$sum": 1}}}],
            "cursor": {},
        };
        let counted: Result<u64, WireError> = async {
            let mut cursor = self.cursor(db, command).await?;
            let mut n = 0;
            while let Some(batch) = cursor.next_batch().await? {
                for document in batch_documents(&batch)? {
                    let Some(counted) = integer(document, "n") else {
                        return Err(WireError::Reply("a count without n".to_owned()));
                    };
                    n += u64::try_from(counted).unwrap_or(0);
                }
            }
            Ok(n)
        }
        .await;
        counted.map_err(what)
    }

    /// Roughly how many bytes of BSON `databases` hold (`dbStats`), 0
    /// where the server will not say.
    pub async fn estimate_bytes(&self, databases: &[String]) -> u64 {
        let mut total = 0u64;
        for db in databases {
            if let Ok(stats) = self.command(db, doc! {"dbStats": 1}).await {
                total += integer(&stats, "dataSize").map_or(0, |n| u64::try_from(n).unwrap_or(0));
            }
        }
        total
    }
}

/// A server-side cursor being read, batch by batch, on its own connection.
pub struct Cursor<'s> {
    source: &'s WireSource,
    connection: Option<Connection>,
    db: String,
    collection: String,
    id: i64,
    first: Option<RawDocumentBuf>,
}

impl Cursor<'_> {
    /// The next batch's reply (its documents through [`batch_documents`]),
    /// or `None` once the cursor is exhausted.
    pub async fn next_batch(&mut self) -> Result<Option<RawDocumentBuf>, WireError> {
        if let Some(first) = self.first.take() {
            return Ok(Some(first));
        }
        if self.id == 0 {
            if let Some(connection) = self.connection.take() {
                self.source.give_back(connection);
            }
            return Ok(None);
        }
        let Some(connection) = self.connection.as_mut() else {
            return Ok(None);
        };
        let reply = connection
            .command(
                &self.db,
                doc! {"getMore": self.id, "collection": &self.collection, "batchSize": BATCH_SIZE},
            )
            .await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) => {
                // The connection may hold half a reply: never reused.
                self.connection = None;
                return Err(e);
            }
        };
        self.id = cursor_of(&reply)?.0;
        Ok(Some(reply))
    }

    /// Tells the server to drop the cursor (a dump stopped half-way), on a
    /// connection of its own if this one broke; errors are not reported
    /// (the server drops an idle cursor after 10 minutes anyway).
    pub async fn kill(mut self) {
        if self.id == 0 {
            return;
        }
        let command = doc! {"killCursors": &self.collection, "cursors": [self.id]};
        let done = match self.connection.take() {
            Some(mut connection) => connection
                .command(&self.db, command)
                .await
                .map(|_| connection),
            None => match self.source.take().await {
                Ok(mut connection) => connection
                    .command(&self.db, command)
                    .await
                    .map(|_| connection),
                Err(e) => Err(e),
            },
        };
        if let Ok(connection) = done {
            self.source.give_back(connection);
        }
    }
}

/// The number `key` holds in `document`, whichever of BSON's number types
/// the server chose (3.6 answers counts and sizes as int32, int64 or double).
pub(crate) fn integer(document: &RawDocument, key: &str) -> Option<i64> {
    match document.get(key) {
        Ok(Some(RawBsonRef::Int32(i))) => Some(i64::from(i)),
        Ok(Some(RawBsonRef::Int64(i))) => Some(i),
        Ok(Some(RawBsonRef::Double(d))) => Some(d as i64),
        _ => None,
    }
}

/// The cursor id and namespace of a cursor reply.
fn cursor_of(reply: &RawDocument) -> Result<(i64, String), WireError> {
    let cursor = reply
        .get_document("cursor")
        .map_err(|_| WireError::Reply("a cursor reply without cursor".to_owned()))?;
    let id = match cursor.get("id") {
        Ok(Some(RawBsonRef::Int64(i))) => i,
        Ok(Some(RawBsonRef::Int32(i))) => i64::from(i),
        _ => return Err(WireError::Reply("a cursor without an id".to_owned())),
    };
    Ok((id, cursor.get_str("ns").unwrap_or_default().to_owned()))
}

/// The documents of a cursor reply's `firstBatch` or `nextBatch`, as the
/// bytes the server sent.
pub fn batch_documents(reply: &RawDocument) -> Result<Vec<&RawDocument>, WireError> {
    let cursor = reply
        .get_document("cursor")
        .map_err(|_| WireError::Reply("a cursor reply without cursor".to_owned()))?;
    let batch = match cursor.get_array("firstBatch") {
        Ok(batch) => batch,
        Err(_) => cursor
            .get_array("nextBatch")
            .map_err(|_| WireError::Reply("a cursor reply without a batch".to_owned()))?,
    };
    let mut out = Vec::new();
    for element in batch {
        match element {
            Ok(RawBsonRef::Document(d)) => out.push(d),
            Ok(_) => {
                return Err(WireError::Reply(
                    "a batch element that is not a document".to_owned(),
                ));
            }
            Err(e) => return Err(WireError::Reply(format!("a malformed batch: {e}"))),
        }
    }
    Ok(out)
}

fn list(hosts: &[Address]) -> String {
    hosts
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
