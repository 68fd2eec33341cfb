//! The network side: listeners, TLS (with mongod's allow/prefer/require
//! modes on one port), and the per-connection message loop.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bson::{Bson, RawDocumentBuf};
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};

use crate::commands::{self, Reply, Session};
use crate::log::Logger;
use crate::node::Node;
use crate::options::{LogDestination, ServerOptions, TlsMode};
use crate::peer::Io;
use crate::tls::{TlsContext, client_identity};
use crate::wire::{self, FLAG_MORE_TO_COME, Header, Request};

/// Why the server could not start; the process exits with `code`.
#[derive(Debug)]
pub struct StartError {
    /// mongod's exit code for this failure (48: address in use; 100:
    /// storage; 2: bad options).
    pub code: i32,
    /// What went wrong.
    pub message: String,
}

fn fail(code: i32, message: impl Into<String>) -> StartError {
    StartError {
        code,
        message: message.into(),
    }
}

/// Starts the server and serves until a signal or `shutdown` ends the
/// process.
pub async fn run(options: ServerOptions) -> Result<(), StartError> {
    let log = match &options.log {
        LogDestination::Stdout => Logger::stdout(),
        LogDestination::File { path, append } => Logger::file(path, *append).map_err(|e| {
            fail(
                2,
                format!("Failed to open log file {}: {e}", path.display()),
            )
        })?,
    };
    if options.auth && options.repl_set.is_some() && !options.cluster_auth_x509 {
        return Err(fail(
            2,
            "security.keyFile is required when authorization is enabled with replica sets (mongo-sim supports clusterAuthMode x509)",
        ));
    }
    let tls = TlsContext::from_options(&options)
        .map_err(|e| fail(2, format!("TLS configuration error: {e}")))?;
    let mut addresses = Vec::new();
    for name in &options.bind_ip {
        let ips: Vec<IpAddr> = match name.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) if name == "localhost" => vec![IpAddr::from([127, 0, 0, 1])],
            Err(_) => tokio::net::lookup_host((name.as_str(), options.port))
                .await
                .map_err(|e| fail(2, format!("cannot resolve bind_ip {name}: {e}")))?
                .map(|a| a.ip())
                .collect(),
        };
        for ip in ips {
            if !addresses.contains(&ip) {
                addresses.push(ip);
            }
        }
    }
    let mut listeners = Vec::new();
    for ip in &addresses {
        let listener = TcpListener::bind(SocketAddr::new(*ip, options.port))
            .await
            .map_err(|e| {
                fail(
                    48,
                    format!(
                        "Failed to set up listener: SocketException: {e} ({ip}:{})",
                        options.port
                    ),
                )
            })?;
        listeners.push(listener);
    }
    let node =
        Node::open(options.clone(), tls, log.clone()).map_err(|e| fail(100, e.to_string()))?;
    let node = Arc::new(node);
    log.info(
        "CONTROL",
        &format!(
            "mongo-sim {} (MongoDB {} profile) starting: pid={} port={} dbpath={} replSet={}",
            env!("CARGO_PKG_VERSION"),
            options.version.string(),
            std::process::id(),
            options.port,
            options.dbpath.display(),
            options.repl_set.as_deref().unwrap_or("(none)")
        ),
    );
    if options.repl_set.is_some() {
        crate::replication::spawn(node.clone());
    }
    let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let limit = connection_limit(node.opts.max_incoming_connections);
    for listener in listeners {
        let node = node.clone();
        let open = open.clone();
        tokio::spawn(async move {
            // Accept errors (EMFILE, ENFILE, ENOBUFS) back off, doubling up
            // to a second, and are logged once per burst.
            let mut backoff = std::time::Duration::ZERO;
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        use std::sync::atomic::Ordering;
                        backoff = std::time::Duration::ZERO;
                        if open.fetch_add(1, Ordering::AcqRel) >= limit {
                            open.fetch_sub(1, Ordering::AcqRel);
                            node.log.warn(
                                "NETWORK",
                                &format!(
                                    "connection refused because too many open connections: \
                                     {limit} (from {peer})"
                                ),
                            );
                            drop(stream);
                            continue;
                        }
                        let node = node.clone();
                        let open = open.clone();
                        tokio::spawn(async move {
                            serve_connection(node, stream, peer).await;
                            open.fetch_sub(1, Ordering::AcqRel);
                        });
                    }
                    Err(e) => {
                        if backoff.is_zero() {
                            node.log.warn(
                                "NETWORK",
                                &format!("accept failed: {e}; backing off until it works again"),
                            );
                        }
                        backoff = (backoff * 2)
                            .max(std::time::Duration::from_millis(10))
                            .min(std::time::Duration::from_secs(1));
                        tokio::time::sleep(backoff).await;
                    }
                }
            }
        });
    }
    log.info(
        "NETWORK",
        &format!("Waiting for connections on port {}", options.port),
    );
    wait_for_signal().await;
    log.info("CONTROL", "received a signal: shutting down");
    node.shutting_down
        .store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

/// What the message bodies of unauthenticated connections (on a server
/// with authorization on) may hold at once, in KiB: 128 MiB. A connection
/// waits for its share before it reads a body, so ten anonymous clients
/// sending 48 MB each cannot make the member hold 480 MB (stricter than
/// mongod, which reads them all at once).
static UNAUTHENTICATED_BODIES: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(128 << 10);

/// How long a connection that has not authenticated (on a server with
/// authorization on) may stay idle between messages.
const UNAUTHENTICATED_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// The open-file limit (`ulimit -n`), from `/proc/self/limits`.
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The connection limit: the configured one, at most 80 % of the
/// open-file limit, as mongod does ("maxConns … 80% of the open-file
/// limit" at start-up) — beyond it `accept` would fail with EMFILE.
fn connection_limit(configured: usize) -> usize {
    match open_file_limit() {
        Some(files) => configured.min((files * 4 / 5).max(1)),
        None => configured,
    }
}

async fn serve_connection(node: Arc<Node>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let mut first = [0u8; 1];
    // A client that connects and never speaks, or never finishes its TLS
    // handshake, is dropped after this long (stricter than mongod, which
    // leaves such connections to the operating system).
    const HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(30);
    let tls_hello = match tokio::time::timeout(HANDSHAKE, stream.peek(&mut first)).await {
        Ok(Ok(0) | Err(_)) | Err(_) => return,
        Ok(Ok(_)) => first[0] == 0x16,
    };
    let (io, client_cert): (Box<dyn Io>, Option<(String, crate::tls::MemberAttributes)>) = match (
        &node.tls,
        node.opts.tls_mode,
        tls_hello,
    ) {
        (Some(tls), mode, true) if mode != TlsMode::Disabled => {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.server.clone());
            let accepted = tokio::time::timeout(HANDSHAKE, acceptor.accept(stream))
                .await
                .unwrap_or_else(|_| {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the handshake did not finish in 30 s",
                    ))
                });
            match accepted {
                Ok(tls_stream) => {
                    let cert = tls_stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|certs| certs.first())
                        .and_then(|cert| client_identity(cert));
                    (Box::new(tls_stream), cert)
                }
                Err(e) => {
                    node.log
                        .warn("NETWORK", &format!("SSL handshake from {peer} failed: {e}"));
                    return;
                }
            }
        }
        (_, TlsMode::Require, false) => {
            node.log.warn(
                    "NETWORK",
                    &format!("{peer}: no SSL certificate provided by peer; connection rejected: this server requires TLS"),
                );
            return;
        }
        _ => (Box::new(stream), None),
    };
    let mut session = Session::new(node.next_connection_id(), peer, client_cert);
    if let Err(e) = message_loop(&node, io, &mut session).await {
        node.log.info(
            "NETWORK",
            &format!(
                "connection {} from {peer} ended: {e}",
                session.connection_id
            ),
        );
    }
}

async fn message_loop(
    node: &Arc<Node>,
    mut io: Box<dyn Io>,
    session: &mut Session,
) -> Result<(), String> {
    let mut next_id: i32 = 1;
    loop {
        let mut header_bytes = [0u8; 16];
        // A connection that has not authenticated on a server with
        // authorization on may wait this long between messages (stricter
        // than mongod, which waits for ever): idle unauthenticated
        // connections cannot pile up.
        let read = io.read_exact(&mut header_bytes);
        let read = if node.opts.auth && session.principals.is_empty() {
            match tokio::time::timeout(UNAUTHENTICATED_IDLE, read).await {
                Ok(read) => read,
                Err(_) => {
                    return Err(format!(
                        "closed after {} s without authenticating",
                        UNAUTHENTICATED_IDLE.as_secs()
                    ));
                }
            }
        } else {
            read.await
        };
        match read {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
        let header = Header::parse(&header_bytes).map_err(|e| e.to_string())?;
        // Grown as bytes arrive: a bare header claiming 48 MB costs nothing.
        let want = header.length as usize - 16;
        let unauthenticated = node.opts.auth && session.principals.is_empty();
        let _share = if unauthenticated {
            let kib = u32::try_from(want.div_ceil(1024)).unwrap_or(u32::MAX);
            Some(
                UNAUTHENTICATED_BODIES
                    .acquire_many(kib)
                    .await
                    .map_err(|e| e.to_string())?,
            )
        } else {
            None
        };
        let mut body = Vec::with_capacity(want.min(64 << 10));
        let mut limited = (&mut io).take(want as u64);
        let read = limited.read_to_end(&mut body);
        if unauthenticated {
            tokio::time::timeout(UNAUTHENTICATED_IDLE, read)
                .await
                .map_err(|_| "an unauthenticated message took too long to arrive".to_owned())?
        } else {
            read.await
        }
        .map_err(|e| e.to_string())?;
        if body.len() != want {
            return Err(format!(
                "the connection closed {} bytes into a {want}-byte message",
                body.len()
            ));
        }
        if header.op_code == wire::OP_MSG {
            wire::check_checksum(&header_bytes, &body).map_err(|e| e.to_string())?;
        }
        let request = if unauthenticated {
            wire::parse_body_unauthenticated(&header, &body)
        } else {
            wire::parse_body(&header, &body)
        }
        .map_err(|e| format!("bad message: {e}"))?;
        // The body is parsed: its bytes (and an unauthenticated share)
        // go before the command runs.
        drop(body);
        drop(_share);
        let (reply, legacy, more_to_come) = match request {
            Request::Msg { command, flags } => (
                commands::dispatch(node, session, command, false).await,
                false,
                flags & FLAG_MORE_TO_COME != 0,
            ),
            Request::Query { collection, query } => {
                let db = collection
                    .strip_suffix(".$cmd")
                    .unwrap_or(&collection)
                    .to_owned();
                let mut command = match query.get("$query").or_else(|| query.get("query")) {
                    Some(Bson::Document(inner)) => inner.clone(),
                    _ => query,
                };
                command.insert("$db", db);
                (
                    commands::dispatch(node, session, command, true).await,
                    true,
                    false,
                )
            }
        };
        let raw = match reply {
            Reply::Close => return Ok(()),
            Reply::Doc(doc) => RawDocumentBuf::from_document(&doc).map_err(|e| e.to_string())?,
            Reply::Raw(raw) => raw,
        };
        if more_to_come {
            continue;
        }
        next_id = next_id.wrapping_add(1);
        let bytes = if legacy {
            wire::encode_reply(next_id, header.request_id, &raw)
        } else {
            wire::encode_msg(next_id, header.request_id, 0, &raw)
        };
        crate::wire::send(&mut io, &bytes)
            .await
            .map_err(|e| e.to_string())?;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use secrecy::ExposeSecret as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A message much larger than the transport's buffer, sent over TLS
    /// to a reader that only starts reading once the sender is done,
    /// arrives whole. Without the flush in [`crate::wire::send`] its tail stays
    /// in tokio-rustls's buffer and this test times out.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_large_message_over_tls_is_sent_whole_before_send_returns() {
        let now = time::OffsetDateTime::now_utc();
        let ca = ha_tls::Ca::generate(&ha_tls::CaSpec::new("Lab", "Members"), now).unwrap();
        let leaf = ca
            .issue(
                &ha_tls::LeafSpec::host(&["localhost"], "Lab", "Members").unwrap(),
                now,
            )
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(leaf.key_pem.expose_secret().as_bytes()).unwrap(),
            )
            .unwrap();
        let client_config = ha_tls::client_config(
            Some((ca.cert_pem().as_bytes(), "the test CA")),
            ha_tls::ServerVerification::Full,
            None,
        )
        .unwrap();
        // A transport with a 4 KiB buffer: the sender's socket is "full"
        // almost at once.
        let (client_io, server_io) = tokio::io::duplex(4096);
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
        let name = ServerName::try_from("localhost").unwrap();
        let (server, client) = tokio::join!(
            acceptor.accept(server_io),
            connector.connect(name, client_io)
        );
        let (mut server, mut client) = (server.unwrap(), client.unwrap());

        let message: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let expected = message.clone();
        let (sent_tx, sent_rx) = tokio::sync::oneshot::channel();
        let sender = tokio::spawn(async move {
            crate::wire::send(&mut server, &message).await.unwrap();
            let _ = sent_tx.send(());
            // Keep the connection open, as a server waiting for the next
            // request does.
            let mut byte = [0u8; 1];
            let _ = server.read(&mut byte).await;
        });
        let received = tokio::time::timeout(Duration::from_secs(60), async {
            let mut received = vec![0u8; expected.len()];
            client.read_exact(&mut received).await.unwrap();
            received
        })
        .await
        .expect("the message's tail never came: send() returned before it was on the wire");
        assert!(received == expected, "the message arrived changed");
        sent_rx.await.unwrap();
        client.shutdown().await.unwrap();
        drop(client);
        sender.await.unwrap();
    }
}
