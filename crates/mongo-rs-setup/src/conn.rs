//! Connections to members: one direct client per (member, identity),
//! commands on `admin`, and driver errors translated into [`Error`]s that
//! say what to do.

use std::collections::HashMap;
use std::sync::Mutex;

use bson::{Bson, Document, doc};
use mongodb::Client;
use mongodb::error::ErrorKind;
use mongodb::options::ServerAddress;

use crate::error::{Error, advice_for, tls_advice};
use crate::spec::{SetSpec, UserKind};

/// Who a connection logs in as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Who {
    /// Nobody: `hello`, and commands the localhost exception allows.
    Anonymous,
    /// Nobody, over `localhost:<port>` when
    /// [`Reach::bootstrap_via_localhost`](crate::Reach) is set (else the
    /// same as `Anonymous`): replSetInitiate and the first user.
    Bootstrap,
    /// One of the three users.
    User(UserKind),
}

/// What `hello` says about a member.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Hello {
    /// `setName`: the set it belongs to, once it has a config.
    pub set_name: Option<String>,
    /// `isreplicaset`: started with `--replSet` but not initiated yet.
    pub awaiting_config: bool,
    /// `isWritablePrimary`.
    pub primary: bool,
    /// `secondary`.
    pub secondary: bool,
    /// `arbiterOnly`.
    pub arbiter: bool,
    /// `me`: the host name it has in the set's config.
    pub me: Option<String>,
    /// `primary`: who it thinks is primary.
    pub primary_host: Option<String>,
    /// `hosts`, `passives` and `arbiters`.
    pub hosts: Vec<String>,
    /// `setVersion`.
    pub set_version: Option<i64>,
    /// `maxWireVersion`.
    pub max_wire_version: i32,
}

impl Hello {
    fn parse(reply: &Document) -> Hello {
        let strings = |key: &str| -> Vec<String> {
            reply
                .get_array(key)
                .map(|a| {
                    a.iter()
                        .filter_map(|h| h.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut hosts = strings("hosts");
        hosts.extend(strings("passives"));
        hosts.extend(strings("arbiters"));
        Hello {
            set_name: reply.get_str("setName").ok().map(str::to_owned),
            awaiting_config: reply.get_bool("isreplicaset").unwrap_or(false),
            primary: reply
                .get_bool("isWritablePrimary")
                .or_else(|_| reply.get_bool("ismaster"))
                .unwrap_or(false),
            secondary: reply.get_bool("secondary").unwrap_or(false),
            arbiter: reply.get_bool("arbiterOnly").unwrap_or(false),
            me: reply.get_str("me").ok().map(str::to_owned),
            primary_host: reply.get_str("primary").ok().map(str::to_owned),
            hosts,
            set_version: number(reply.get("setVersion")),
            max_wire_version: number(reply.get("maxWireVersion")).unwrap_or(0) as i32,
        }
    }
}

/// A BSON number (int32, int64 or double) as `i64`: config fields such as
/// `version`, `votes` and `settings.*` come back in any of these types.
pub fn number(value: Option<&Bson>) -> Option<i64> {
    match value? {
        Bson::Int32(n) => Some(i64::from(*n)),
        Bson::Int64(n) => Some(*n),
        Bson::Double(n) => Some(*n as i64),
        _ => None,
    }
}

/// Direct connections to the members of one [`SetSpec`], cached per
/// (member, identity).
pub struct Session<'a> {
    spec: &'a SetSpec,
    clients: Mutex<HashMap<(String, Who), Client>>,
}

impl<'a> Session<'a> {
    /// A session for `spec`. Nothing is connected yet.
    pub fn new(spec: &'a SetSpec) -> Session<'a> {
        Session {
            spec,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The desired state this session works for.
    pub fn spec(&self) -> &'a SetSpec {
        self.spec
    }

    fn client(&self, host: &str, who: Who) -> Result<Client, Error> {
        let key = (host.to_ascii_lowercase(), who);
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let reach = &self.spec.reach;
        let mut address = ServerAddress::parse(host).map_err(|e| Error::Other {
            host: host.to_owned(),
            detail: format!("not a host:port address: {e}"),
        })?;
        if who == Who::Bootstrap
            && reach.bootstrap_via_localhost
            && let ServerAddress::Tcp { port, .. } = &address
        {
            address = ServerAddress::Tcp {
                host: "localhost".to_owned(),
                port: *port,
            };
        }
        let login = match who {
            Who::User(kind) => {
                let user = self.spec.user(kind);
                Some(crate::driver::Login {
                    user: &user.name,
                    password: &user.password,
                })
            }
            Who::Anonymous | Who::Bootstrap => None,
        };
        let options = crate::driver::Endpoint {
            hosts: vec![address],
            replica_set: None,
            direct: true,
            transport: reach.tls.as_ref().into(),
            login,
            app_name: "mongo-rs-setup",
            connect_timeout: Some(reach.connect_timeout),
            server_selection_timeout: reach.connect_timeout,
        }
        .options();
        let client = Client::with_options(options).map_err(|e| Error::Other {
            host: host.to_owned(),
            detail: e.to_string(),
        })?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// Runs `command` on `host`'s `admin` database as `who`.
    pub async fn command(
        &self,
        host: &str,
        who: Who,
        command: Document,
    ) -> Result<Document, Error> {
        self.command_on(host, who, "admin", command).await
    }

    /// Runs `command` on `host`'s database `db` as `who`.
    pub async fn command_on(
        &self,
        host: &str,
        who: Who,
        db: &str,
        command: Document,
    ) -> Result<Document, Error> {
        let name = command.keys().next().cloned().unwrap_or_default();
        let client = self.client(host, who)?;
        client
            .database(db)
            .run_command(command)
            .await
            .map_err(|e| self.translate(host, who, &name, e))
    }

    /// `hello` on `host`, without logging in.
    pub async fn hello(&self, host: &str) -> Result<Hello, Error> {
        let reply = self
            .command(host, Who::Anonymous, doc! {"hello": 1})
            .await?;
        Ok(Hello::parse(&reply))
    }

    /// Whether `kind` can log in on `host`: `Ok(false)` when the server
    /// rejects the credentials, `Err` when the member cannot be asked.
    pub async fn can_log_in(&self, host: &str, kind: UserKind) -> Result<bool, Error> {
        match self
            .command(host, Who::User(kind), doc! {"connectionStatus": 1})
            .await
        {
            Ok(_) => Ok(true),
            Err(Error::Authentication { .. }) => {
                // A failed login leaves the cached client useless.
                self.forget(host, Who::User(kind));
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Drops the cached client (after a failed login, or when a user's
    /// password just changed).
    pub fn forget(&self, host: &str, who: Who) {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.remove(&(host.to_ascii_lowercase(), who));
    }

    fn translate(&self, host: &str, who: Who, command: &str, e: mongodb::error::Error) -> Error {
        let host = host.to_owned();
        match *e.kind {
            ErrorKind::Command(ref c) => Error::Command {
                advice: advice_for(c.code, &host),
                host,
                command: command.to_owned(),
                code: c.code,
                code_name: c.code_name.clone(),
                message: c.message.clone(),
            },
            ErrorKind::Authentication { ref message, .. } => {
                let kind = match who {
                    Who::User(kind) => kind,
                    _ => UserKind::Admin,
                };
                Error::Authentication {
                    host,
                    user: self.spec.user(kind).name.clone(),
                    key: kind.key(),
                    detail: message.clone(),
                }
            }
            ErrorKind::InvalidTlsConfig { ref message, .. } => Error::Other {
                host,
                detail: format!("the TLS settings are unusable: {message}"),
            },
            _ => {
                let detail = concise(&e.to_string());
                let lower = detail.to_ascii_lowercase();
                let tls_words = [
                    "certificate",
                    "tls",
                    "handshake",
                    "alert",
                    "unknownissuer",
                    "notvalidforname",
                ];
                if tls_words.iter().any(|w| lower.contains(w)) {
                    Error::Tls {
                        advice: tls_advice(&detail, &host),
                        host,
                        detail,
                    }
                } else if self.spec.reach.tls.is_none()
                    && (lower.contains("connection closed")
                        || lower.contains("end of file")
                        || lower.contains("reset by peer"))
                {
                    Error::Other {
                        host: host.clone(),
                        detail: format!(
                            "{detail}. The member closed a plain connection: if it requires TLS \
                             (net.tls.mode: requireTLS), give the tools the members' CA (tls.ca_file)"
                        ),
                    }
                } else if matches!(
                    *e.kind,
                    ErrorKind::ServerSelection { .. }
                        | ErrorKind::Io(_)
                        | ErrorKind::DnsResolve { .. }
                ) {
                    Error::Unreachable { host, detail }
                } else if matches!(*e.kind, ErrorKind::IncompatibleServer { .. }) {
                    Error::Other {
                        host,
                        detail: format!(
                            "{detail}. mongo-rs-setup talks to MongoDB 4.4 and later only (the \
                             official Rust driver's limit); upgrade the member first"
                        ),
                    }
                } else {
                    Error::Other { host, detail }
                }
            }
        }
    }
}

/// The driver's server-selection errors wrap the real cause in a topology
/// dump (`… Servers: [ { Address: …, Error: Kind: I/O error: Connection
/// refused (os error 111), labels: … } ] …`): keep the cause.
fn concise(detail: &str) -> String {
    let Some(start) = detail.rfind("Error: Kind: ") else {
        return detail.to_owned();
    };
    let cause = &detail[start + "Error: Kind: ".len()..];
    let end = cause.find(", labels:").unwrap_or(cause.len());
    cause[..end].trim().to_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn server_selection_errors_are_cut_to_their_cause() {
        let driver = "Kind: Server selection timeout: No available servers. Topology: { Type: \
                      Single, Servers: [ { Address: localhost:28103, Type: Unknown, Error: Kind: \
                      I/O error: Connection refused (os error 111), labels: {\"RetryableError\"}, \
                      source: None } ] }, labels: {}";
        assert_eq!(
            super::concise(driver),
            "I/O error: Connection refused (os error 111)"
        );
        assert_eq!(super::concise("plain"), "plain");
    }
}
