//! SCRAM-SHA-1 and SCRAM-SHA-256, server side (RFC 5802 / RFC 7677 as
//! MongoDB uses them).
//!
//! SCRAM-SHA-1 hashes `md5_hex("<user>:mongo:<password>")`, not the password
//! itself; SCRAM-SHA-256 hashes the SASLprep'd password. Iteration counts are
//! mongod's defaults (10000 and 15000), salts 16 and 28 bytes.

use base64::Engine as _;
use bson::{Document, doc};
use md5::Digest as _;
use ring::{digest, hmac, pbkdf2};

use crate::storage::random_bytes;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A stored credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Credentials {
    /// `SCRAM-SHA-1` or `SCRAM-SHA-256`.
    pub(crate) mechanism: &'static str,
    /// PBKDF2 iterations.
    pub(crate) iterations: u32,
    /// The salt.
    pub(crate) salt: Vec<u8>,
    /// `H(ClientKey)`.
    pub(crate) stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub(crate) server_key: Vec<u8>,
}

struct Algorithms {
    digest: &'static digest::Algorithm,
    hmac: hmac::Algorithm,
    pbkdf2: pbkdf2::Algorithm,
}

fn algorithms(mechanism: &str) -> Option<(&'static str, Algorithms, u32, usize)> {
    match mechanism {
        "SCRAM-SHA-1" => Some((
            "SCRAM-SHA-1",
            Algorithms {
                digest: &digest::SHA1_FOR_LEGACY_USE_ONLY,
                hmac: hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
                pbkdf2: pbkdf2::PBKDF2_HMAC_SHA1,
            },
            10_000,
            16,
        )),
        "SCRAM-SHA-256" => Some((
            "SCRAM-SHA-256",
            Algorithms {
                digest: &digest::SHA256,
                hmac: hmac::HMAC_SHA256,
                pbkdf2: pbkdf2::PBKDF2_HMAC_SHA256,
            },
            15_000,
            28,
        )),
        _ => None,
    }
}

/// The "password" SCRAM hashes for `mechanism`.
fn prepared_password(mechanism: &str, user: &str, password: &str) -> Vec<u8> {
    if mechanism == "SCRAM-SHA-1" {
        let digest = md5::Md5::digest(format!("{user}:mongo:{password}").as_bytes());
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .into_bytes()
    } else {
        stringprep::saslprep(password)
            .map(|p| p.into_owned())
            .unwrap_or_else(|_| password.to_owned())
            .into_bytes()
    }
}

impl Credentials {
    /// Derives credentials for a new password with a fresh salt.
    pub(crate) fn derive(mechanism: &str, user: &str, password: &str) -> Option<Credentials> {
        let (name, algorithms, iterations, salt_len) = algorithms(mechanism)?;
        let salt = random_bytes::<28>()[..salt_len].to_vec();
        let salted = salted_password(
            &algorithms,
            &prepared_password(name, user, password),
            &salt,
            iterations,
        );
        let client_key = hmac::sign(&hmac::Key::new(algorithms.hmac, &salted), b"Client Key");
        let stored_key = digest::digest(algorithms.digest, client_key.as_ref());
        let server_key = hmac::sign(&hmac::Key::new(algorithms.hmac, &salted), b"Server Key");
        Some(Credentials {
            mechanism: name,
            iterations,
            salt,
            stored_key: stored_key.as_ref().to_vec(),
            server_key: server_key.as_ref().to_vec(),
        })
    }

    /// As stored in `credentials.<mechanism>`.
    pub(crate) fn to_doc(&self) -> Document {
        doc! {
            "iterationCount": self.iterations as i32,
            "salt": B64.encode(&self.salt),
            "storedKey": B64.encode(&self.stored_key),
            "serverKey": B64.encode(&self.server_key),
        }
    }

    /// Reads `credentials.<mechanism>`.
    pub(crate) fn from_doc(mechanism: &str, doc: &Document) -> Option<Credentials> {
        let (name, _, _, _) = algorithms(mechanism)?;
        Some(Credentials {
            mechanism: name,
            iterations: u32::try_from(doc.get_i32("iterationCount").ok()?).ok()?,
            salt: B64.decode(doc.get_str("salt").ok()?).ok()?,
            stored_key: B64.decode(doc.get_str("storedKey").ok()?).ok()?,
            server_key: B64.decode(doc.get_str("serverKey").ok()?).ok()?,
        })
    }
}

fn salted_password(
    algorithms: &Algorithms,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Vec<u8> {
    let mut out = vec![0u8; algorithms.digest.output_len()];
    let iterations =
        std::num::NonZeroU32::new(iterations.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
    pbkdf2::derive(algorithms.pbkdf2, iterations, salt, password, &mut out);
    out
}

/// Why a SCRAM exchange failed (the client always sees `AuthenticationFailed`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ScramError(pub String);

/// A conversation after `saslStart`.
#[derive(Debug, Clone)]
pub(crate) struct Conversation {
    /// The user name the client sent.
    pub(crate) user: String,
    mechanism: &'static str,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    credentials: Credentials,
    /// Whether the final empty round trip is skipped.
    pub(crate) skip_empty_exchange: bool,
    /// Whether the server signature was sent (the next step only ends it).
    pub(crate) finished: bool,
}

/// Reads the user name from a client-first message (to look credentials up).
pub(crate) fn client_first_user(payload: &[u8]) -> Result<String, ScramError> {
    let (_, bare) = split_client_first(payload)?;
    let user = attribute(bare, 'n').ok_or_else(|| ScramError("missing user name".to_owned()))?;
    Ok(user.replace("=2C", ",").replace("=3D", "="))
}

fn split_client_first(payload: &[u8]) -> Result<(&str, &str), ScramError> {
    let text =
        std::str::from_utf8(payload).map_err(|_| ScramError("payload is not UTF-8".to_owned()))?;
    // gs2-header: "n,," or "y,," or "n,a=authzid,"; channel binding ("p=") is
    // not supported.
    let mut parts = text.splitn(3, ',');
    let flag = parts.next().unwrap_or_default();
    let _authzid = parts
        .next()
        .ok_or_else(|| ScramError("malformed gs2 header".to_owned()))?;
    let bare = parts
        .next()
        .ok_or_else(|| ScramError("malformed client-first message".to_owned()))?;
    if flag != "n" && flag != "y" {
        return Err(ScramError("channel binding is not supported".to_owned()));
    }
    let header_len = text.len() - bare.len();
    Ok((&text[..header_len], bare))
}

fn attribute(message: &str, name: char) -> Option<&str> {
    message
        .split(',')
        .find_map(|part| part.strip_prefix(name)?.strip_prefix('='))
}

/// Handles `saslStart`: returns the conversation and the server-first
/// message.
pub(crate) fn start(
    mechanism: &str,
    payload: &[u8],
    credentials: Credentials,
    skip_empty_exchange: bool,
) -> Result<(Conversation, Vec<u8>), ScramError> {
    let (name, _, _, _) = algorithms(mechanism)
        .ok_or_else(|| ScramError(format!("unsupported mechanism {mechanism}")))?;
    let (_, bare) = split_client_first(payload)?;
    let user = client_first_user(payload)?;
    let client_nonce =
        attribute(bare, 'r').ok_or_else(|| ScramError("missing client nonce".to_owned()))?;
    let nonce = format!("{client_nonce}{}", B64.encode(random_bytes::<24>()));
    let server_first = format!(
        "r={nonce},s={},i={}",
        B64.encode(&credentials.salt),
        credentials.iterations
    );
    let conversation = Conversation {
        user,
        mechanism: name,
        client_first_bare: bare.to_owned(),
        server_first: server_first.clone(),
        nonce,
        credentials,
        skip_empty_exchange,
        finished: false,
    };
    Ok((conversation, server_first.into_bytes()))
}

/// Handles the `saslContinue` with the client-final message: checks the
/// proof and returns the server-final message.
pub(crate) fn finish(
    conversation: &mut Conversation,
    payload: &[u8],
) -> Result<Vec<u8>, ScramError> {
    let (_, algorithms, _, _) = algorithms(conversation.mechanism)
        .ok_or_else(|| ScramError("unsupported mechanism".to_owned()))?;
    let text =
        std::str::from_utf8(payload).map_err(|_| ScramError("payload is not UTF-8".to_owned()))?;
    let proof_at = text
        .rfind(",p=")
        .ok_or_else(|| ScramError("missing client proof".to_owned()))?;
    let without_proof = &text[..proof_at];
    let proof = B64
        .decode(&text[proof_at + 3..])
        .map_err(|_| ScramError("client proof is not base64".to_owned()))?;
    if attribute(without_proof, 'r') != Some(conversation.nonce.as_str()) {
        return Err(ScramError("nonce mismatch".to_owned()));
    }
    match attribute(without_proof, 'c') {
        Some("biws") | Some("eSws") => {}
        _ => return Err(ScramError("unexpected channel binding".to_owned())),
    }
    let auth_message = format!(
        "{},{},{}",
        conversation.client_first_bare, conversation.server_first, without_proof
    );
    let creds = &conversation.credentials;
    let client_signature = hmac::sign(
        &hmac::Key::new(algorithms.hmac, &creds.stored_key),
        auth_message.as_bytes(),
    );
    if proof.len() != client_signature.as_ref().len() {
        return Err(ScramError("client proof has the wrong length".to_owned()));
    }
    let client_key: Vec<u8> = proof
        .iter()
        .zip(client_signature.as_ref())
        .map(|(a, b)| a ^ b)
        .collect();
    let stored = digest::digest(algorithms.digest, &client_key);
    if stored.as_ref() != creds.stored_key.as_slice() {
        return Err(ScramError("wrong password".to_owned()));
    }
    let server_signature = hmac::sign(
        &hmac::Key::new(algorithms.hmac, &creds.server_key),
        auth_message.as_bytes(),
    );
    conversation.finished = true;
    Ok(format!("v={}", B64.encode(server_signature.as_ref())).into_bytes())
}
