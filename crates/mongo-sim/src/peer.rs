//! A member's connection to another member: TCP, TLS with the cluster
//! certificate when the node speaks TLS to peers, MONGODB-X509
//! authentication with `clusterAuthMode: x509`, then OP_MSG commands.

use std::sync::Arc;
use std::time::Duration;

use bson::{Document, RawDocumentBuf, doc};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite};
use tokio::net::TcpStream;

use crate::node::Node;
use crate::options::TlsMode;
use crate::replset::{MemberState, ReplConfig};
use crate::wire::{self, Header, OP_MSG};

/// Anything a connection can run over.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open, authenticated connection to a peer.
pub(crate) struct PeerConn {
    stream: Box<dyn Io>,
    next_id: i32,
    /// `host:port`.
    pub(crate) host: String,
}

impl std::fmt::Debug for PeerConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerConn")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// Resolves `host:port`, preferring IPv4 (the lab binds 127.0.0.1).
async fn resolve(host: &str) -> Result<Vec<std::net::SocketAddr>, String> {
    let mut addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host(host)
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    addrs.sort_by_key(|a| !a.is_ipv4());
    if addrs.is_empty() {
        return Err(format!("cannot resolve {host}"));
    }
    Ok(addrs)
}

impl PeerConn {
    /// Connects to `host` within `timeout`.
    pub(crate) async fn connect(
        node: &Node,
        host: &str,
        timeout: Duration,
    ) -> Result<PeerConn, String> {
        tokio::time::timeout(timeout, PeerConn::connect_inner(node, host))
            .await
            .map_err(|_| {
                format!(
                    "connection to {host} timed out after {} ms",
                    timeout.as_millis()
                )
            })?
    }

    async fn connect_inner(node: &Node, host: &str) -> Result<PeerConn, String> {
        let mut last_error = String::new();
        let mut tcp = None;
        for addr in resolve(host).await? {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    tcp = Some(stream);
                    break;
                }
                Err(e) => last_error = format!("{addr}: {e}"),
            }
        }
        let tcp = tcp.ok_or_else(|| format!("cannot connect to {host}: {last_error}"))?;
        let _ = tcp.set_nodelay(true);
        let use_tls = matches!(node.opts.tls_mode, TlsMode::Prefer | TlsMode::Require);
        let stream: Box<dyn Io> = match (&node.tls, use_tls) {
            (Some(tls), true) => {
                let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
                let name = ServerName::try_from(
                    name.trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_owned(),
                )
                .map_err(|e| format!("invalid host name {host}: {e}"))?;
                let connector = tokio_rustls::TlsConnector::from(tls.client.clone());
                let stream = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS handshake with {host} failed: {e}"))?;
                Box::new(stream)
            }
            _ => Box::new(tcp),
        };
        let mut conn = PeerConn {
            stream,
            next_id: 0,
            host: host.to_owned(),
        };
        if node.opts.cluster_auth_x509 {
            let reply = conn
                .command(
                    "$external",
                    doc! {"authenticate": 1, "mechanism": "MONGODB-X509"},
                )
                .await?;
            if reply.get_f64("ok").unwrap_or(0.0) != 1.0 {
                return Err(format!(
                    "x509 cluster authentication to {host} failed: {}",
                    reply.get_str("errmsg").unwrap_or("unknown error")
                ));
            }
        }
        Ok(conn)
    }

    /// Sends a command to `db` and returns the reply document (which may
    /// say `ok: 0`).
    pub(crate) async fn command(
        &mut self,
        db: &str,
        mut command: Document,
    ) -> Result<Document, String> {
        command.insert("$db", db);
        let raw = RawDocumentBuf::from_document(&command).map_err(|e| e.to_string())?;
        self.next_id += 1;
        let message = wire::encode_msg(self.next_id, 0, 0, &raw);
        crate::wire::send(&mut self.stream, &message)
            .await
            .map_err(|e| format!("{}: {e}", self.host))?;
        let mut header_bytes = [0u8; 16];
        self.stream
            .read_exact(&mut header_bytes)
            .await
            .map_err(|e| format!("{}: {e}", self.host))?;
        let header = Header::parse(&header_bytes).map_err(|e| format!("{}: {e}", self.host))?;
        let mut body = vec![0u8; header.length as usize - 16];
        self.stream
            .read_exact(&mut body)
            .await
            .map_err(|e| format!("{}: {e}", self.host))?;
        if header.op_code != OP_MSG {
            return Err(format!(
                "{}: unexpected reply opcode {}",
                self.host, header.op_code
            ));
        }
        match wire::parse_body(&header, &body).map_err(|e| format!("{}: {e}", self.host))? {
            wire::Request::Msg { command, .. } => Ok(command),
            wire::Request::Query { .. } => Err(format!("{}: unexpected reply", self.host)),
        }
    }

    /// Like [`PeerConn::command`] but an `ok: 0` reply becomes an error.
    pub(crate) async fn run(&mut self, db: &str, command: Document) -> Result<Document, String> {
        let reply = self.command(db, command).await?;
        if reply.get_f64("ok").unwrap_or(0.0) == 1.0 || reply.get_i32("ok") == Ok(1) {
            Ok(reply)
        } else {
            Err(format!(
                "{}: {} ({})",
                self.host,
                reply.get_str("errmsg").unwrap_or("command failed"),
                reply.get_str("codeName").unwrap_or("")
            ))
        }
    }
}

/// Fetches a newer config from `host` and installs it if it is newer and
/// valid (how a new member learns the config, and how changes spread).
pub(crate) async fn fetch_config(node: &Arc<Node>, host: &str) {
    let result = async {
        let mut conn = PeerConn::connect(node, host, Duration::from_secs(10)).await?;
        let reply = conn.run("admin", doc! {"replSetGetConfig": 1}).await?;
        let doc = reply
            .get_document("config")
            .map_err(|e| e.to_string())?
            .clone();
        ReplConfig::parse(&doc)
    }
    .await;
    match result {
        Ok(config) => {
            let mut inner = node.lock();
            let newer = inner
                .config
                .as_ref()
                .is_none_or(|c| config.version > c.version);
            if newer && Some(&config.name) == node.opts.repl_set.as_ref() {
                let version = config.version;
                if inner.oplog.is_empty() {
                    inner.state = MemberState::Startup2;
                }
                if node.install_config(&mut inner, config).is_ok() {
                    node.log.info(
                        "REPL",
                        &format!("installed config version {version} from {host}"),
                    );
                }
            }
        }
        Err(e) => node
            .log
            .warn("REPL", &format!("cannot fetch the config from {host}: {e}")),
    }
}
