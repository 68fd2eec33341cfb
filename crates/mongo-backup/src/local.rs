//! Which member this machine runs: `hello` on `127.0.0.1:<port>`.
//!
//! The stop command stops the mongod of *this* machine, whatever member
//! the guards checked. So before anything is touched, the local mongod is
//! asked who it is (`hello.me`), anonymously — no credential is sent — over
//! TLS when the set uses it. Its certificate names its host, not the
//! loopback, so the chain is verified against the set's CA
//! ([`ha_tls::ServerVerification::ChainOnly`]) and the host name is not.
//! The MongoDB driver cannot skip the host-name check with rustls, hence
//! this one message of its own: an `OP_MSG` with `{hello: 1, $db:
//! "admin"}`, and a reply whose length is bounded before it is read.

use std::time::Duration;

use bson::{Document, doc};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::Error;

/// `OP_MSG`'s opcode.
const OP_MSG: i32 = 2013;

/// The largest reply accepted (a `hello` reply is a few hundred bytes;
/// MongoDB's own limit for a document is 16 MiB).
const MAX_REPLY: usize = 16 << 20;

/// What `hello` on `127.0.0.1:<port>` says the member is (`me`), `None`
/// when it answers without one (not in a replica set). `tls`: the CA file
/// and, if mongod requires one, the client's combined certificate+key PEM.
pub async fn local_me(
    port: u16,
    tls: Option<&mongo_rs_setup::TlsFiles>,
    timeout: Duration,
) -> Result<Option<String>, Error> {
    let address = format!("127.0.0.1:{port}");
    let failed = |detail: String| Error::Local {
        address: address.clone(),
        detail,
    };
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| failed(e.to_string()))?;
        let reply = match tls {
            None => hello(tcp).await,
            Some(files) => {
                let connector = connector(files).map_err(&failed)?;
                let name =
                    rustls::pki_types::ServerName::try_from("localhost").expect("a valid DNS name");
                let stream = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| failed(format!("TLS: {e}")))?;
                hello(stream).await
            }
        }
        .map_err(&failed)?;
        Ok(reply.get_str("me").ok().map(str::to_owned))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| failed(format!("no answer within {} s", timeout.as_secs())))?
}

fn connector(files: &mongo_rs_setup::TlsFiles) -> Result<tokio_rustls::TlsConnector, String> {
    let read = |path: &std::path::Path| {
        use std::io::Read as _;
        let mut text = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(1 << 20).read_to_end(&mut text))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok::<_, String>(text)
    };
    let ca = read(&files.ca_file)?;
    let identity = match &files.certificate_key_file {
        Some(path) => {
            let pem = String::from_utf8_lossy(&read(path)?).into_owned();
            Some(ha_tls::ClientIdentity {
                cert_pem: pem.clone(),
                key_pem: pem.into(),
            })
        }
        None => None,
    };
    let ca_name = files.ca_file.display().to_string();
    let config = ha_tls::client_config(
        Some((&ca, &ca_name)),
        ha_tls::ServerVerification::ChainOnly,
        identity.as_ref(),
    )
    .map_err(|e| e.to_string())?;
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(
        config,
    )))
}

/// Sends `{hello: 1, $db: "admin"}` as an `OP_MSG` and reads the reply's
/// body.
async fn hello<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> Result<Document, String> {
    let body = bson::to_vec(&doc! {"hello": 1, "$db": "admin"}).map_err(|e| e.to_string())?;
    let length = 16 + 4 + 1 + body.len();
    let mut message = Vec::with_capacity(length);
    message.extend_from_slice(&(length as i32).to_le_bytes());
    message.extend_from_slice(&1_i32.to_le_bytes()); // requestID
    message.extend_from_slice(&0_i32.to_le_bytes()); // responseTo
    message.extend_from_slice(&OP_MSG.to_le_bytes());
    message.extend_from_slice(&0_u32.to_le_bytes()); // flagBits
    message.push(0); // section kind 0: the body
    message.extend_from_slice(&body);
    stream
        .write_all(&message)
        .await
        .map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())?;
    let mut header = [0_u8; 16];
    stream
        .read_exact(&mut header)
        .await
        .map_err(|e| e.to_string())?;
    let field = |at: usize| {
        i32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let (length, opcode) = (field(0), field(12));
    if opcode != OP_MSG {
        return Err(format!("a reply with opcode {opcode}, not OP_MSG"));
    }
    let length = usize::try_from(length)
        .ok()
        .filter(|n| (16 + 5..=MAX_REPLY).contains(n))
        .ok_or_else(|| format!("a reply of {length} bytes"))?;
    let mut rest = vec![0_u8; length - 16];
    stream
        .read_exact(&mut rest)
        .await
        .map_err(|e| e.to_string())?;
    // flagBits (the checksum bit adds 4 bytes at the end), then section 0.
    let flags = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let end = if flags & 1 == 1 {
        rest.len().saturating_sub(4)
    } else {
        rest.len()
    };
    if rest.get(4) != Some(&0) || end < 5 {
        return Err("a reply without a body section".to_owned());
    }
    let document = Document::from_reader(&mut &rest[5..end]).map_err(|e| e.to_string())?;
    match document.get("ok") {
        Some(bson::Bson::Double(ok)) if *ok == 1.0 => Ok(document),
        Some(bson::Bson::Int32(1)) | Some(bson::Bson::Int64(1)) => Ok(document),
        _ => Err(format!(
            "hello failed: {}",
            document.get_str("errmsg").unwrap_or("no message")
        )),
    }
}
