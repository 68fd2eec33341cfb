//! One connection to one server: TCP (optionally TLS through `ha-tls`),
//! the `isMaster` handshake over OP_QUERY, SCRAM-SHA-1, then commands over
//! OP_MSG. Every exchange has a deadline; every length is bounded before
//! anything is allocated ([`super::frame`]).

use std::sync::Arc;
use std::time::Duration;

use bson::{Document, RawDocument, RawDocumentBuf, doc, spec::BinarySubtype};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::frame::{self, FrameError, HEADER, Header};
use super::scram::Conversation;
use super::{Address, WireError, WireOptions};

/// A byte stream to a server: plain TCP or TLS.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}

/// What the handshake learnt about a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// `maxWireVersion`: 6 for 3.6, 7 for 4.0, 8 for 4.2, 9+ for 4.4+.
    pub max_wire_version: i32,
    /// `ismaster`: a standalone or a replica set's primary.
    pub writable: bool,
    /// `secondary`.
    pub secondary: bool,
    /// `setName`, in a replica set.
    pub set_name: Option<String>,
    /// `primary` (`host:port`), as the member knows it.
    pub primary: Option<String>,
}

/// An open, authenticated connection.
pub struct Connection {
    stream: Box<dyn Stream>,
    address: Address,
    next_id: i32,
    timeout: Duration,
    buffer: Vec<u8>,
    /// Reads may go to a secondary (`$readPreference` on every command).
    secondary_ok: bool,
    logged_in: bool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

fn io(e: std::io::Error) -> WireError {
    WireError::Io(e.to_string())
}

impl Connection {
    /// Connects to `address` and shakes hands (no authentication yet).
    pub async fn open(
        address: &Address,
        options: &WireOptions,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> Result<(Connection, Hello), WireError> {
        let tcp = tokio::time::timeout(
            options.connect_timeout,
            TcpStream::connect((address.host.as_str(), address.port)),
        )
        .await
        .map_err(|_| WireError::Timeout(options.connect_timeout))?
        .map_err(io)?;
        tcp.set_nodelay(true).map_err(io)?;
        let stream: Box<dyn Stream> = match tls {
            None => Box::new(tcp),
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from(address.host.clone()).map_err(
                    |_| WireError::Tls(format!("{:?} is not a host name", address.host)),
                )?;
                let connector = tokio_rustls::TlsConnector::from(config.clone());
                let stream =
                    tokio::time::timeout(options.connect_timeout, connector.connect(name, tcp))
                        .await
                        .map_err(|_| WireError::Timeout(options.connect_timeout))?
                        .map_err(|e| WireError::Tls(e.to_string()))?;
                Box::new(stream)
            }
        };
        let mut connection = Connection {
            stream,
            address: address.clone(),
            next_id: 1,
            timeout: options.socket_timeout,
            buffer: Vec::new(),
            secondary_ok: false,
            logged_in: false,
        };
        let hello = connection.handshake().await?;
        Ok((connection, hello))
    }

    /// The server this connection talks to.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Whether [`Self::authenticate`] succeeded on this connection.
    pub fn is_logged_in(&self) -> bool {
        self.logged_in
    }

    /// Sends `$readPreference: primaryPreferred` with every command, so
    /// that a secondary connected to directly answers reads.
    pub fn allow_secondary(&mut self) {
        self.secondary_ok = true;
    }

    async fn handshake(&mut self) -> Result<Hello, WireError> {
        let command = doc! {
            "isMaster": 1,
            "client": {
                "application": {"name": "circle-export"},
                "driver": {"name": "circle-export wire reader", "version": env!("CARGO_PKG_VERSION")},
                "os": {"type": std::env::consts::OS, "architecture": std::env::consts::ARCH},
            },
        };
        let id = self.id();
        let message = frame::op_query(id, "admin", &to_vec(&command)?);
        let reply = self.exchange(id, &message, frame::OP_REPLY).await?;
        let reply = checked(reply)?;
        let int = |key: &str| super::integer(&reply, key).and_then(|n| i32::try_from(n).ok());
        let flag = |key: &str| matches!(reply.get_bool(key), Ok(true));
        let text = |key: &str| reply.get_str(key).ok().map(str::to_owned);
        Ok(Hello {
            max_wire_version: int("maxWireVersion").unwrap_or(0),
            writable: flag("ismaster"),
            secondary: flag("secondary"),
            set_name: text("setName"),
            primary: text("primary"),
        })
    }

    /// Logs in with SCRAM-SHA-1 as `user` against database `source`.
    pub async fn authenticate(
        &mut self,
        user: &str,
        password: &secrecy::SecretString,
        source: &str,
    ) -> Result<(), WireError> {
        let mut nonce = [0u8; 24];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
            .map_err(|_| WireError::Auth("no random numbers for the nonce".to_owned()))?;
        let (mut conversation, first) = Conversation::start(user, &nonce);
        let binary = |bytes: Vec<u8>| bson::Binary {
            subtype: BinarySubtype::Generic,
            bytes,
        };
        let reply = self
            .command(
                source,
                doc! {
                    "saslStart": 1,
                    "mechanism": "SCRAM-SHA-1",
                    "payload": binary(first.into_bytes()),
                    "autoAuthorize": 1,
                },
            )
            .await
            .map_err(auth_failed)?;
        let (id, payload, _) = sasl_step(&reply)?;
        let last = conversation
            .answer(user, password, &payload)
            .map_err(|e| WireError::Auth(e.0))?;
        let reply = self
            .command(
                source,
                doc! {"saslContinue": 1, "conversationId": id.clone(), "payload": binary(last.into_bytes())},
            )
            .await
            .map_err(auth_failed)?;
        let (_, payload, mut done) = sasl_step(&reply)?;
        conversation
            .verify(&payload)
            .map_err(|e| WireError::Auth(e.0))?;
        // 3.6 wants one more, empty, step before it says done.
        let mut rounds = 0;
        while !done {
            rounds += 1;
            if rounds > 2 {
                return Err(WireError::Auth(
                    "the server never ended the conversation".to_owned(),
                ));
            }
            let reply = self
                .command(
                    source,
                    doc! {"saslContinue": 1, "conversationId": id.clone(), "payload": binary(Vec::new())},
                )
                .await
                .map_err(auth_failed)?;
            done = sasl_step(&reply)?.2;
        }
        self.logged_in = true;
        Ok(())
    }

    /// Runs `command` against `db` over OP_MSG; a reply with `ok: 0` is
    /// [`WireError::Command`].
    pub async fn command(
        &mut self,
        db: &str,
        mut command: Document,
    ) -> Result<RawDocumentBuf, WireError> {
        command.insert("$db", db);
        if self.secondary_ok {
            command.insert("$readPreference", doc! {"mode": "primaryPreferred"});
        }
        let id = self.id();
        let message = frame::op_msg(id, &to_vec(&command)?);
        let reply = self.exchange(id, &message, frame::OP_MSG).await?;
        checked(reply)
    }

    fn id(&mut self) -> i32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    /// Sends `message` and reads the reply to request `id`, both within
    /// the socket timeout; returns the reply's one document.
    async fn exchange(
        &mut self,
        id: i32,
        message: &[u8],
        op: i32,
    ) -> Result<RawDocumentBuf, WireError> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.exchange_now(id, message, op))
            .await
            .map_err(|_| WireError::Timeout(timeout))?
    }

    async fn exchange_now(
        &mut self,
        id: i32,
        message: &[u8],
        op: i32,
    ) -> Result<RawDocumentBuf, WireError> {
        self.stream.write_all(message).await.map_err(io)?;
        self.stream.flush().await.map_err(io)?;
        let mut head = [0u8; HEADER];
        self.stream.read_exact(&mut head).await.map_err(io)?;
        let header = Header::parse(&head)?;
        header.expect(id, op)?;
        // Bounded by Header::parse (MAX_MESSAGE); the buffer is reused.
        self.buffer.clear();
        self.buffer.resize(header.length - HEADER, 0);
        self.stream.read_exact(&mut self.buffer).await.map_err(io)?;
        let document = if op == frame::OP_REPLY {
            frame::parse_reply(&self.buffer)?
        } else {
            frame::parse_msg(&self.buffer)?
        };
        RawDocumentBuf::from_bytes(document.to_vec())
            .map_err(|e| WireError::Frame(FrameError::Malformed(e.to_string())))
    }
}

fn to_vec(command: &Document) -> Result<Vec<u8>, WireError> {
    bson::to_vec(command).map_err(|e| WireError::Reply(format!("encoding a command: {e}")))
}

/// `reply` if it says `ok: 1`, else the server's error.
fn checked(reply: RawDocumentBuf) -> Result<RawDocumentBuf, WireError> {
    let ok = match reply.get("ok") {
        Ok(Some(bson::RawBsonRef::Double(d))) => d == 1.0,
        Ok(Some(bson::RawBsonRef::Int32(i))) => i == 1,
        Ok(Some(bson::RawBsonRef::Int64(i))) => i == 1,
        Ok(Some(bson::RawBsonRef::Boolean(b))) => b,
        _ => false,
    };
    if ok {
        return Ok(reply);
    }
    let code = super::integer(&reply, "code")
        .and_then(|n| i32::try_from(n).ok())
        .unwrap_or(0);
    let text = |key: &str| {
        reply
            .get_str(key)
            .ok()
            .map(|s| s.chars().take(1000).collect::<String>())
    };
    Err(WireError::Command {
        code,
        code_name: text("codeName").unwrap_or_default(),
        message: text("errmsg")
            .or_else(|| text("$err"))
            .unwrap_or_else(|| "the reply says it failed and gives no reason".to_owned()),
    })
}

fn auth_failed(error: WireError) -> WireError {
    match error {
        WireError::Command {
            code,
            code_name,
            message,
        } => WireError::Auth(format!(
            "{message} (code {code}{})",
            if code_name.is_empty() {
                String::new()
            } else {
                format!(" {code_name}")
            }
        )),
        other => other,
    }
}

/// A SASL reply's conversation id, payload and `done`.
fn sasl_step(reply: &RawDocument) -> Result<(bson::Bson, Vec<u8>, bool), WireError> {
    let id = match reply.get("conversationId") {
        Ok(Some(value)) => value
            .to_raw_bson()
            .try_into()
            .map_err(|_| WireError::Reply("a SASL reply's conversationId".to_owned()))?,
        _ => {
            return Err(WireError::Reply(
                "a SASL reply without conversationId".to_owned(),
            ));
        }
    };
    let payload = match reply.get_binary("payload") {
        Ok(b) => b.bytes.to_vec(),
        Err(_) => return Err(WireError::Reply("a SASL reply without payload".to_owned())),
    };
    Ok((id, payload, matches!(reply.get_bool("done"), Ok(true))))
}
