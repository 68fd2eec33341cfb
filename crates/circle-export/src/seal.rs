//! Sealed archives: the age format ([age-encryption.org/v1], c2sp.org/age),
//! written and read here on audited primitives (ring's ChaCha20-Poly1305,
//! HKDF-SHA-256 and HMAC-SHA-256, x25519-dalek, the scrypt crate).
//!
//! A sealed archive is an ordinary archive (`.tar.zst`, `.tar.gz`,
//! `.tar`) encrypted as one age file, conventionally named with a further
//! `.age`. `age -d -i key.txt circle-export.tar.zst.age | tar --zstd -t`
//! reads it; `age -r age1… archive.tar.zst > archive.tar.zst.age` makes
//! one restore reads. It is authenticated: a file whose header or any
//! payload byte was changed, truncated or extended by someone without the
//! file key is refused ([`SealError`]), so whoever restores it knows it
//! was written by someone who held a recipient's public key or the
//! passphrase — which the plain archive's checksums cannot say.
//!
//! The payload is age's STREAM: 64 KiB chunks, each authenticated on its
//! own, the last one marked. [`SealedReader`] therefore reads any offset
//! without decrypting what comes before (restore reads a `.tar.zst`'s
//! members in parallel from their seek-index offsets), after checking at
//! open that the last chunk is a valid final chunk.
//!
//! Two ways to seal ([`Sealing`]): to X25519 recipients (`age1…`; the
//! matching identities, `AGE-SECRET-KEY-1…`, open it) or with a passphrase
//! (scrypt at work factor 2^16: 64 MiB and about a tenth of a second per
//! try; age's own CLI uses 2^18, 256 MiB, beyond this tool's memory bound;
//! files sealed with more than 2^16 are refused with that reason). Other
//! age recipient types (post-quantum hybrids, SSH keys, plugins) are
//! neither written nor read: their stanzas are skipped as the format
//! requires.
//!
//! [age-encryption.org/v1]: https://age-encryption.org/v1

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::str::FromStr;

use base64::Engine as _;
use ring::aead;
use ring::rand::SecureRandom as _;
use secrecy::{ExposeSecret as _, SecretString};
use zeroize::{Zeroize as _, Zeroizing};

/// The first bytes of every age file (v1, binary).
pub const MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// Plaintext bytes per payload chunk.
pub const CHUNK: usize = 64 * 1024;
/// The authentication tag after each chunk.
const TAG: usize = 16;
/// A full chunk as stored.
const SEALED_CHUNK: u64 = (CHUNK + TAG) as u64;

/// The scrypt work factor (log2 N) of passphrase-sealed archives written
/// here, and the most accepted when reading: 2^16 × 1 KiB = 64 MiB.
pub const SCRYPT_LOG_N: u8 = 16;

/// The largest header read (a hostile file cannot make a reader buffer
/// more); ours take about 100 bytes per recipient.
const HEADER_MAX: usize = 256 * 1024;
/// The longest header line read.
const LINE_MAX: usize = 8 * 1024;
/// The most stanzas a header may hold.
const STANZAS_MAX: usize = 1024;

const X25519_LABEL: &[u8] = b"age-encryption.org/v1/X25519";
const SCRYPT_LABEL: &[u8] = b"age-encryption.org/v1/scrypt";

/// Why a sealed archive could not be written or opened. Messages never
/// hold a key, a passphrase or a file key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// Reading or writing the file failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The file is sealed and no identity or passphrase was given.
    #[error("the archive is sealed (age) and no identity or passphrase to open it was given")]
    KeyNeeded,
    /// No identity given opens the file (or the passphrase is wrong).
    #[error("{0}")]
    NoMatch(String),
    /// The header is malformed or its MAC does not match: the file was
    /// not written by an age implementation, or was changed after.
    #[error("the archive's age header is invalid: {0}")]
    Header(String),
    /// A payload chunk failed authentication, or the payload is cut short
    /// or extended: the file was changed after it was sealed.
    #[error("the sealed archive was changed or cut after it was sealed: {0}")]
    Payload(String),
    /// A recipient, identity or identity file could not be read.
    #[error("{0}")]
    Key(String),
    /// The operating system's random source failed.
    #[error("the operating system's random source failed")]
    Random,
}

impl SealError {
    fn header(what: impl Into<String>) -> SealError {
        SealError::Header(what.into())
    }

    /// Whether the file was refused as not opening or not authentic
    /// (wrong key, changed or cut file) rather than for an I/O failure.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            SealError::NoMatch(_) | SealError::Header(_) | SealError::Payload(_)
        )
    }
}

impl From<SealError> for io::Error {
    fn from(e: SealError) -> io::Error {
        match e {
            SealError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

fn random(buf: &mut [u8]) -> Result<(), SealError> {
    ring::rand::SystemRandom::new()
        .fill(buf)
        .map_err(|_| SealError::Random)
}

/// An X25519 recipient: `age1…` (Bech32, public; fine on a command line).
#[derive(Clone, PartialEq, Eq)]
pub struct Recipient(x25519_dalek::PublicKey);

impl FromStr for Recipient {
    type Err = SealError;

    fn from_str(text: &str) -> Result<Recipient, SealError> {
        let bad = |why: &str| SealError::Key(format!("{}: {why}", cut(text)));
        let (hrp, data) = bech32::decode(text).map_err(|e| bad(&e))?;
        if hrp != "age" {
            return Err(bad("not an age X25519 recipient (age1…)"));
        }
        let key: [u8; 32] = data
            .try_into()
            .map_err(|_| bad("an X25519 recipient holds 32 bytes"))?;
        Ok(Recipient(x25519_dalek::PublicKey::from(key)))
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bech32::encode("age", self.0.as_bytes()))
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The start of a value for a message, cut short: a recipient is public,
/// but a malformed one may be a secret pasted in the wrong place.
fn cut(text: &str) -> String {
    let head: String = text.chars().take(8).collect();
    if head.len() < text.len() {
        format!("{head}…")
    } else {
        head
    }
}

/// An X25519 identity (`AGE-SECRET-KEY-1…`): opens what was sealed to its
/// recipient. Its `Debug` shows the recipient only.
pub struct Identity(x25519_dalek::StaticSecret);

impl Identity {
    /// A new random identity (what `age-keygen` makes).
    pub fn generate() -> Result<Identity, SealError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        random(bytes.as_mut())?;
        Ok(Identity(x25519_dalek::StaticSecret::from(*bytes)))
    }

    /// The recipient that seals to this identity.
    pub fn recipient(&self) -> Recipient {
        Recipient(x25519_dalek::PublicKey::from(&self.0))
    }

    /// The identity as `AGE-SECRET-KEY-1…`, for writing to a 0600 file.
    pub fn to_secret_string(&self) -> SecretString {
        let mut lower = bech32::encode("age-secret-key-", self.0.as_bytes());
        let upper = lower.to_ascii_uppercase();
        lower.zeroize();
        SecretString::from(upper)
    }

    /// Parses one `AGE-SECRET-KEY-1…`. The error never repeats the text.
    pub fn parse(text: &str) -> Result<Identity, SealError> {
        let bad = |why: &str| SealError::Key(format!("not an age identity: {why}"));
        if !text.starts_with("AGE-SECRET-KEY-1") {
            return Err(bad("it must start with AGE-SECRET-KEY-1"));
        }
        let (hrp, data) = bech32::decode(text).map_err(|e| bad(&e))?;
        let data = Zeroizing::new(data);
        if hrp != "age-secret-key-" {
            return Err(bad("wrong prefix"));
        }
        let key: [u8; 32] = data
            .as_slice()
            .try_into()
            .map_err(|_| bad("an X25519 identity holds 32 bytes"))?;
        Ok(Identity(x25519_dalek::StaticSecret::from(key)))
    }

    /// The identities of an identity file as `age-keygen` writes it: one
    /// `AGE-SECRET-KEY-1…` per line, `#` comments and blank lines
    /// skipped. Errors name the line, never its text.
    pub fn parse_file(text: &str) -> Result<Vec<Identity>, SealError> {
        let mut identities = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            identities.push(
                Identity::parse(line)
                    .map_err(|e| SealError::Key(format!("line {}: {e}", n + 1)))?,
            );
        }
        if identities.is_empty() {
            return Err(SealError::Key(
                "no identity (AGE-SECRET-KEY-1…) in it".to_owned(),
            ));
        }
        Ok(identities)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({})", self.recipient())
    }
}

/// How an archive is sealed when written.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Sealing {
    /// To these X25519 recipients (at least one): any of their identities
    /// opens it.
    Recipients(Vec<Recipient>),
    /// With a passphrase (scrypt, work factor 2^[`SCRYPT_LOG_N`]).
    Passphrase(SecretString),
}

/// How a sealed archive is opened.
#[derive(Debug)]
#[non_exhaustive]
pub enum Unsealing {
    /// Any of these identities.
    Identities(Vec<Identity>),
    /// The passphrase it was sealed with.
    Passphrase(SecretString),
}

/// The 16-byte key of one sealed file, once unwrapped: enough to open it
/// again (another reader of the same file) without the identity or
/// another scrypt run.
#[derive(Clone)]
pub struct FileKey(Zeroizing<[u8; 16]>);

impl fmt::Debug for FileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileKey(…)")
    }
}

/// HKDF-SHA-256 with a 32-byte output.
fn hkdf(salt: &[u8], ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    struct Len32;
    impl ring::hkdf::KeyType for Len32 {
        fn len(&self) -> usize {
            32
        }
    }
    let mut out = Zeroizing::new([0u8; 32]);
    let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, salt).extract(ikm);
    // 32 bytes is far below HKDF-SHA-256's limit (255 × 32): neither step
    // can fail.
    if let Ok(okm) = prk.expand(&[info], Len32) {
        let _ = okm.fill(out.as_mut());
    }
    out
}

fn aead_key(key: &[u8; 32]) -> aead::LessSafeKey {
    // A 32-byte key is what CHACHA20_POLY1305 takes: this cannot fail.
    let unbound = aead::UnboundKey::new(&aead::CHACHA20_POLY1305, key)
        .unwrap_or_else(|_| unreachable!("ChaCha20-Poly1305 takes a 32-byte key"));
    aead::LessSafeKey::new(unbound)
}

/// Encrypts a file key under `wrap_key` (zero nonce): a stanza body.
fn wrap(wrap_key: &[u8; 32], file_key: &FileKey) -> Vec<u8> {
    let mut body = file_key.0.to_vec();
    let tag = aead_key(wrap_key)
        .seal_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key([0; 12]),
            aead::Aad::empty(),
            &mut body,
        )
        .unwrap_or_else(|_| unreachable!("16 bytes are within ChaCha20-Poly1305's limit"));
    body.extend_from_slice(tag.as_ref());
    body
}

/// Decrypts a stanza body (32 bytes, checked by the caller).
fn unwrap(wrap_key: &[u8; 32], body: &[u8]) -> Option<FileKey> {
    let mut buf = Zeroizing::new(body.to_vec());
    let plain = aead_key(wrap_key)
        .open_in_place(
            aead::Nonce::assume_unique_for_key([0; 12]),
            aead::Aad::empty(),
            &mut buf,
        )
        .ok()?;
    let key: [u8; 16] = (&*plain).try_into().ok()?;
    Some(FileKey(Zeroizing::new(key)))
}

fn scrypt_key(passphrase: &SecretString, salt: &[u8], log_n: u8) -> Result<[u8; 32], SealError> {
    let params = scrypt::Params::new(log_n, 8, 1)
        .map_err(|e| SealError::header(format!("scrypt work factor {log_n}: {e}")))?;
    let mut full_salt = SCRYPT_LABEL.to_vec();
    full_salt.extend_from_slice(salt);
    let mut key = [0u8; 32];
    scrypt::scrypt(
        passphrase.expose_secret().as_bytes(),
        &full_salt,
        &params,
        &mut key,
    )
    .map_err(|e| SealError::header(format!("scrypt: {e}")))?;
    Ok(key)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}

/// Canonical unpadded base64, as the format requires.
fn unb64(text: &str) -> Option<Vec<u8>> {
    if text.contains('=') {
        return None;
    }
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(text)
        .ok()
}

/// One recipient stanza.
struct Stanza {
    args: Vec<String>,
    body: Vec<u8>,
}

impl Stanza {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"->");
        for arg in &self.args {
            out.push(b' ');
            out.extend_from_slice(arg.as_bytes());
        }
        out.push(b'\n');
        let body = b64(&self.body);
        let mut rest = body.as_bytes();
        loop {
            let (line, tail) = rest.split_at(rest.len().min(64));
            out.extend_from_slice(line);
            out.push(b'\n');
            rest = tail;
            if line.len() < 64 {
                break;
            }
        }
    }
}

/// The header for `file_key` sealed as `sealing`, MAC included.
fn header(sealing: &Sealing, file_key: &FileKey) -> Result<Vec<u8>, SealError> {
    let mut stanzas = Vec::new();
    match sealing {
        Sealing::Recipients(recipients) => {
            if recipients.is_empty() {
                return Err(SealError::Key("no recipient to seal to".to_owned()));
            }
            for recipient in recipients {
                let mut secret = Zeroizing::new([0u8; 32]);
                random(secret.as_mut())?;
                let ephemeral = x25519_dalek::StaticSecret::from(*secret);
                let share = x25519_dalek::PublicKey::from(&ephemeral);
                let shared = ephemeral.diffie_hellman(&recipient.0);
                if shared.as_bytes().iter().all(|b| *b == 0) {
                    return Err(SealError::Key(format!(
                        "{recipient}: a low-order point, not a usable recipient"
                    )));
                }
                let mut salt = share.as_bytes().to_vec();
                salt.extend_from_slice(recipient.0.as_bytes());
                let wrap_key = hkdf(&salt, shared.as_bytes(), X25519_LABEL);
                stanzas.push(Stanza {
                    args: vec!["X25519".to_owned(), b64(share.as_bytes())],
                    body: wrap(&wrap_key, file_key),
                });
            }
        }
        Sealing::Passphrase(passphrase) => {
            let mut salt = [0u8; 16];
            random(&mut salt)?;
            let key = Zeroizing::new(scrypt_key(passphrase, &salt, SCRYPT_LOG_N)?);
            stanzas.push(Stanza {
                args: vec!["scrypt".to_owned(), b64(&salt), SCRYPT_LOG_N.to_string()],
                body: wrap(&key, file_key),
            });
        }
    }
    let mut out = MAGIC.to_vec();
    for stanza in &stanzas {
        stanza.write(&mut out);
    }
    out.extend_from_slice(b"---");
    let mac = header_mac(file_key, &out);
    out.push(b' ');
    out.extend_from_slice(b64(mac.as_ref()).as_bytes());
    out.push(b'\n');
    Ok(out)
}

fn header_mac_key(file_key: &FileKey) -> ring::hmac::Key {
    ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        hkdf(&[], file_key.0.as_ref(), b"header").as_ref(),
    )
}

fn header_mac(file_key: &FileKey, header: &[u8]) -> ring::hmac::Tag {
    ring::hmac::sign(&header_mac_key(file_key), header)
}

fn payload_key(file_key: &FileKey, nonce: &[u8; 16]) -> aead::LessSafeKey {
    aead_key(&hkdf(nonce, file_key.0.as_ref(), b"payload"))
}

fn chunk_nonce(index: u64, last: bool) -> aead::Nonce {
    let mut nonce = [0u8; 12];
    nonce[3..11].copy_from_slice(&index.to_be_bytes());
    nonce[11] = u8::from(last);
    aead::Nonce::assume_unique_for_key(nonce)
}

/// Writes an age file into `inner`: [`SealWriter::new`] writes the header,
/// every 64 KiB of plaintext goes out as one sealed chunk, and
/// [`SealWriter::finish`] seals the last (marked final) chunk. Dropped
/// unfinished, what was written does not open (no final chunk).
pub struct SealWriter<W: Write> {
    inner: W,
    key: aead::LessSafeKey,
    buf: Vec<u8>,
    index: u64,
}

impl<W: Write> SealWriter<W> {
    /// Starts a sealed file in `inner`: a new random file key, wrapped as
    /// `sealing` says, and the payload nonce.
    pub fn new(mut inner: W, sealing: &Sealing) -> Result<SealWriter<W>, SealError> {
        let mut key = Zeroizing::new([0u8; 16]);
        random(key.as_mut())?;
        let file_key = FileKey(key);
        inner.write_all(&header(sealing, &file_key)?)?;
        let mut nonce = [0u8; 16];
        random(&mut nonce)?;
        inner.write_all(&nonce)?;
        Ok(SealWriter {
            inner,
            key: payload_key(&file_key, &nonce),
            buf: Vec::with_capacity(CHUNK + TAG),
            index: 0,
        })
    }

    fn seal_chunk(&mut self, last: bool) -> io::Result<()> {
        let tag = self
            .key
            .seal_in_place_separate_tag(
                chunk_nonce(self.index, last),
                aead::Aad::empty(),
                &mut self.buf,
            )
            .map_err(|_| io::Error::other("sealing a chunk failed"))?;
        self.inner.write_all(&self.buf)?;
        self.inner.write_all(tag.as_ref())?;
        self.buf.clear();
        self.index += 1;
        Ok(())
    }

    /// Seals the final chunk and returns the inner writer (not flushed).
    pub fn finish(mut self) -> io::Result<W> {
        self.seal_chunk(true)?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for SealWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        // A full chunk is held until more comes: the final chunk must be
        // marked, and may be a full one.
        if self.buf.len() == CHUNK {
            self.seal_chunk(false)?;
        }
        let take = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..take]);
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads the header line by line, bounded, keeping every byte read.
struct HeaderReader<'r, R> {
    inner: &'r mut R,
    raw: Vec<u8>,
}

impl<R: Read> HeaderReader<'_, R> {
    /// The next line without its `\n`.
    fn line(&mut self) -> Result<String, SealError> {
        let start = self.raw.len();
        let mut byte = [0u8; 1];
        loop {
            if self.raw.len() >= HEADER_MAX {
                return Err(SealError::header(format!(
                    "longer than {} KiB",
                    HEADER_MAX / 1024
                )));
            }
            if self.raw.len() - start > LINE_MAX {
                return Err(SealError::header(format!(
                    "a line longer than {LINE_MAX} bytes"
                )));
            }
            if self.inner.read(&mut byte)? == 0 {
                return Err(SealError::header("it ends before its MAC line"));
            }
            self.raw.push(byte[0]);
            if byte[0] == b'\n' {
                break;
            }
        }
        String::from_utf8(self.raw[start..self.raw.len() - 1].to_vec())
            .map_err(|_| SealError::header("a line that is not text"))
    }
}

/// What a header holds once parsed.
struct Parsed {
    stanzas: Vec<Stanza>,
    /// The header up to and including `---`.
    maced: Vec<u8>,
    mac: Vec<u8>,
    /// Bytes of the whole header, MAC line included.
    len: u64,
}

fn parse_header<R: Read>(inner: &mut R) -> Result<Parsed, SealError> {
    let mut reader = HeaderReader {
        inner,
        raw: Vec::new(),
    };
    let version = reader.line()?;
    if version != "age-encryption.org/v1" {
        return Err(if version.starts_with("age-encryption.org/") {
            SealError::header("an age version other than v1")
        } else if version.starts_with("-----BEGIN AGE ENCRYPTED FILE-----") {
            SealError::header("ASCII-armored; de-armor it first (age -d reads it)")
        } else {
            SealError::header("not an age file")
        });
    }
    let mut stanzas = Vec::new();
    let mut next = reader.line()?;
    loop {
        if let Some(mac) = next.strip_prefix("--- ") {
            let maced = reader.raw[..reader.raw.len() - next.len() - 1 + 3].to_vec();
            if stanzas.is_empty() {
                return Err(SealError::header("no recipient stanza"));
            }
            let mac = unb64(mac)
                .filter(|m| m.len() == 32 && mac.len() == 43)
                .ok_or_else(|| SealError::header("a malformed MAC line"))?;
            return Ok(Parsed {
                stanzas,
                maced,
                mac,
                len: reader.raw.len() as u64,
            });
        }
        let Some(args) = next.strip_prefix("-> ") else {
            return Err(SealError::header(
                "a line that is neither a stanza nor the MAC",
            ));
        };
        let args: Vec<String> = args.split(' ').map(str::to_owned).collect();
        if args
            .iter()
            .any(|a| a.is_empty() || !a.bytes().all(|b| (0x21..=0x7e).contains(&b)))
        {
            return Err(SealError::header("a malformed stanza argument"));
        }
        if stanzas.len() == STANZAS_MAX {
            return Err(SealError::header(format!(
                "more than {STANZAS_MAX} stanzas"
            )));
        }
        let mut body = String::new();
        loop {
            let line = reader.line()?;
            if line.len() > 64 {
                return Err(SealError::header("a stanza body line over 64 columns"));
            }
            body.push_str(&line);
            if line.len() < 64 {
                break;
            }
        }
        let body = unb64(&body).ok_or_else(|| SealError::header("a stanza body not in base64"))?;
        stanzas.push(Stanza { args, body });
        next = reader.line()?;
    }
}

/// The file key from the header's stanzas, for `unsealing`.
fn unwrap_file_key(stanzas: &[Stanza], unsealing: &Unsealing) -> Result<FileKey, SealError> {
    let scrypt = stanzas.iter().any(|s| s.args[0] == "scrypt");
    if scrypt && stanzas.len() > 1 {
        return Err(SealError::header(
            "a passphrase stanza beside other stanzas",
        ));
    }
    match unsealing {
        Unsealing::Identities(identities) => {
            if scrypt {
                return Err(SealError::NoMatch(
                    "the archive is sealed with a passphrase, not to a recipient: give the \
                     passphrase"
                        .to_owned(),
                ));
            }
            let mut ours = Vec::new();
            for stanza in stanzas.iter().filter(|s| s.args[0] == "X25519") {
                let [_, share] = stanza.args.as_slice() else {
                    return Err(SealError::header("an X25519 stanza without two arguments"));
                };
                let share: [u8; 32] = unb64(share)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(|| SealError::header("an X25519 share that is not 32 bytes"))?;
                if stanza.body.len() != 32 {
                    return Err(SealError::header("an X25519 stanza body not of 32 bytes"));
                }
                ours.push((x25519_dalek::PublicKey::from(share), &stanza.body));
            }
            for identity in identities {
                let recipient = identity.recipient();
                for (share, body) in &ours {
                    let shared = identity.0.diffie_hellman(share);
                    if shared.as_bytes().iter().all(|b| *b == 0) {
                        return Err(SealError::header("an X25519 share of low order"));
                    }
                    let mut salt = share.as_bytes().to_vec();
                    salt.extend_from_slice(recipient.0.as_bytes());
                    let wrap_key = hkdf(&salt, shared.as_bytes(), X25519_LABEL);
                    if let Some(key) = unwrap(&wrap_key, body) {
                        return Ok(key);
                    }
                }
            }
            Err(SealError::NoMatch(format!(
                "none of the {} identit{} given opens the archive (it is sealed to {} other \
                 recipient{})",
                identities.len(),
                if identities.len() == 1 { "y" } else { "ies" },
                stanzas.len(),
                if stanzas.len() == 1 { "" } else { "s" }
            )))
        }
        Unsealing::Passphrase(passphrase) => {
            let Some(stanza) = stanzas.first().filter(|_| scrypt) else {
                return Err(SealError::NoMatch(
                    "the archive is sealed to recipients, not with a passphrase: give an \
                     identity"
                        .to_owned(),
                ));
            };
            let [_, salt, log_n] = stanza.args.as_slice() else {
                return Err(SealError::header("a scrypt stanza without three arguments"));
            };
            let salt = unb64(salt)
                .filter(|s| s.len() == 16)
                .ok_or_else(|| SealError::header("a scrypt salt that is not 16 bytes"))?;
            let canonical = log_n.len() <= 2
                && log_n.starts_with(|c: char| ('1'..='9').contains(&c))
                && log_n.bytes().all(|b| b.is_ascii_digit());
            let log_n: u8 = log_n
                .parse()
                .ok()
                .filter(|_| canonical)
                .ok_or_else(|| SealError::header("a malformed scrypt work factor"))?;
            if log_n > SCRYPT_LOG_N {
                return Err(SealError::header(format!(
                    "a scrypt work factor of 2^{log_n} needs {} MiB; this tool reads up to \
                     2^{SCRYPT_LOG_N} ({} MiB) — decrypt it with age -d first",
                    1u64 << (log_n - 10),
                    1u64 << (SCRYPT_LOG_N - 10)
                )));
            }
            if stanza.body.len() != 32 {
                return Err(SealError::header("a scrypt stanza body not of 32 bytes"));
            }
            let key = Zeroizing::new(scrypt_key(passphrase, &salt, log_n)?);
            unwrap(&key, &stanza.body).ok_or_else(|| {
                SealError::NoMatch("the passphrase does not open the archive".to_owned())
            })
        }
    }
}

/// Whether the file `reader` starts as an age file (it is rewound).
pub fn is_sealed<R: Read + Seek>(reader: &mut R) -> io::Result<bool> {
    let mut magic = [0u8; MAGIC.len()];
    let mut filled = 0;
    reader.seek(SeekFrom::Start(0))?;
    while filled < magic.len() {
        match reader.read(&mut magic[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    reader.seek(SeekFrom::Start(0))?;
    Ok(filled == magic.len() && magic == MAGIC)
}

/// The plaintext of an age file, readable at any offset: `Read + Seek`
/// over the decrypted payload, one 64 KiB chunk decrypted (and
/// authenticated) at a time. Opening checks the header's MAC and that
/// the last chunk is a valid final one; every chunk read is checked as it
/// is decrypted, so no byte of a changed chunk is ever returned.
pub struct SealedReader<R> {
    inner: R,
    key: aead::LessSafeKey,
    /// The file offset of chunk 0.
    start: u64,
    chunks: u64,
    /// The stored length of the last chunk.
    last_len: usize,
    len: u64,
    pos: u64,
    /// The chunk in `buf`, decrypted.
    loaded: Option<u64>,
    buf: Vec<u8>,
    /// Where `inner` is, to skip a seek when reading on.
    inner_pos: u64,
}

impl<R: Read + Seek> SealedReader<R> {
    /// Opens the age file `inner` (from its start) with `unsealing`;
    /// returns the reader and the file key (for opening the same file
    /// again with [`SealedReader::with_file_key`]).
    pub fn open(mut inner: R, unsealing: &Unsealing) -> Result<(Self, FileKey), SealError> {
        inner.seek(SeekFrom::Start(0))?;
        let parsed = parse_header(&mut inner)?;
        let file_key = unwrap_file_key(&parsed.stanzas, unsealing)?;
        let reader = SealedReader::finish_open(inner, &file_key, parsed)?;
        Ok((reader, file_key))
    }

    /// Opens the age file `inner` with its file key (from
    /// [`SealedReader::open`] on the same file): the header is read and
    /// its MAC checked again, no identity or scrypt needed.
    pub fn with_file_key(mut inner: R, file_key: &FileKey) -> Result<Self, SealError> {
        inner.seek(SeekFrom::Start(0))?;
        let parsed = parse_header(&mut inner)?;
        SealedReader::finish_open(inner, file_key, parsed)
    }

    fn finish_open(mut inner: R, file_key: &FileKey, parsed: Parsed) -> Result<Self, SealError> {
        ring::hmac::verify(&header_mac_key(file_key), &parsed.maced, &parsed.mac)
            .map_err(|_| SealError::header("its MAC does not match (the header was changed)"))?;
        let mut nonce = [0u8; 16];
        inner.seek(SeekFrom::Start(parsed.len))?;
        inner
            .read_exact(&mut nonce)
            .map_err(|_| SealError::header("the payload nonce after it is cut short"))?;
        let start = parsed.len + 16;
        let end = inner.seek(SeekFrom::End(0))?;
        let payload = end - start;
        if payload == 0 {
            return Err(SealError::Payload("no payload chunk".to_owned()));
        }
        let chunks = payload.div_ceil(SEALED_CHUNK);
        let last_len = usize::try_from(payload - (chunks - 1) * SEALED_CHUNK)
            .map_err(|_| SealError::Payload("a chunk of impossible length".to_owned()))?;
        if last_len < TAG {
            return Err(SealError::Payload(
                "the last chunk is shorter than its tag".to_owned(),
            ));
        }
        if last_len == TAG && chunks > 1 {
            return Err(SealError::Payload(
                "an empty final chunk after others".to_owned(),
            ));
        }
        let len = (chunks - 1) * CHUNK as u64 + (last_len - TAG) as u64;
        let mut reader = SealedReader {
            inner,
            key: payload_key(file_key, &nonce),
            start,
            chunks,
            last_len,
            len,
            pos: 0,
            loaded: None,
            buf: Vec::with_capacity(CHUNK + TAG),
            inner_pos: end,
        };
        // The format asks for the final chunk to be checked before any
        // seek from the end; checking it here also proves the length.
        reader.load(chunks - 1)?;
        Ok(reader)
    }

    /// The plaintext's length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the plaintext is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Decrypts chunk `index` into `buf`.
    fn load(&mut self, index: u64) -> Result<(), SealError> {
        if self.loaded == Some(index) {
            return Ok(());
        }
        self.loaded = None;
        let last = index + 1 == self.chunks;
        let stored = if last { self.last_len } else { CHUNK + TAG };
        let at = self.start + index * SEALED_CHUNK;
        if self.inner_pos != at {
            self.inner.seek(SeekFrom::Start(at))?;
        }
        self.buf.resize(stored, 0);
        let read = self.inner.read_exact(&mut self.buf);
        self.inner_pos = if read.is_ok() {
            at + stored as u64
        } else {
            u64::MAX
        };
        read?;
        let plain = self
            .key
            .open_in_place(chunk_nonce(index, last), aead::Aad::empty(), &mut self.buf)
            .map_err(|_| {
                SealError::Payload(format!(
                    "chunk {index} of {} fails authentication",
                    self.chunks
                ))
            })?
            .len();
        self.buf.truncate(plain);
        self.loaded = Some(index);
        Ok(())
    }

    /// Decrypts every chunk, start to end, returning nothing: proves the
    /// whole payload authentic before anything read from it is used.
    /// `read` is told the stored bytes of each chunk as it passes.
    pub fn authenticate(&mut self, read: &mut dyn FnMut(u64)) -> Result<(), SealError> {
        for index in 0..self.chunks {
            self.load(index)?;
            read(if index + 1 == self.chunks {
                self.last_len as u64
            } else {
                SEALED_CHUNK
            });
        }
        Ok(())
    }
}

impl<R: Read + Seek> Read for SealedReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || out.is_empty() {
            return Ok(0);
        }
        let index = self.pos / CHUNK as u64;
        self.load(index)?;
        let offset = (self.pos % CHUNK as u64) as usize;
        let available = &self.buf[offset..];
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for SealedReader<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let target = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        self.pos = target;
        Ok(target)
    }
}

/// Bech32 (BIP 173) without its length limit, as age uses it.
mod bech32 {
    const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

    fn polymod(values: impl Iterator<Item = u8>) -> u32 {
        const GEN: [u32; 5] = [
            0x3b6a_57b2,
            0x2650_8e6d,
            0x1ea1_19fa,
            0x3d42_33dd,
            0x2a14_62b3,
        ];
        let mut chk: u32 = 1;
        for v in values {
            let top = chk >> 25;
            chk = ((chk & 0x01ff_ffff) << 5) ^ u32::from(v);
            for (i, g) in GEN.iter().enumerate() {
                if (top >> i) & 1 == 1 {
                    chk ^= g;
                }
            }
        }
        chk
    }

    fn hrp_expand(hrp: &str) -> impl Iterator<Item = u8> + '_ {
        hrp.bytes()
            .map(|b| b >> 5)
            .chain(std::iter::once(0))
            .chain(hrp.bytes().map(|b| b & 31))
    }

    /// Regroups bits: 8 → 5 (`pad`) or 5 → 8 (no padding allowed).
    fn convert(data: &[u8], from: u32, to: u32, pad: bool) -> Option<Vec<u8>> {
        let (mut acc, mut bits) = (0u32, 0u32);
        let max = (1u32 << to) - 1;
        let mut out = Vec::with_capacity(data.len() * from as usize / to as usize + 1);
        for &value in data {
            acc = (acc << from) | u32::from(value);
            bits += from;
            while bits >= to {
                bits -= to;
                out.push(((acc >> bits) & max) as u8);
            }
        }
        if pad {
            if bits > 0 {
                out.push(((acc << (to - bits)) & max) as u8);
            }
        } else if bits >= from || (acc << (to - bits)) & max != 0 {
            return None;
        }
        Some(out)
    }

    /// `hrp` (lowercase) and `data` as a lowercase Bech32 string.
    pub(super) fn encode(hrp: &str, data: &[u8]) -> String {
        let values = convert(data, 8, 5, true).unwrap_or_default();
        let chk = polymod(hrp_expand(hrp).chain(values.iter().copied()).chain([0; 6])) ^ 1;
        let mut out = String::with_capacity(hrp.len() + 1 + values.len() + 6);
        out.push_str(hrp);
        out.push('1');
        out.extend(values.iter().map(|v| char::from(CHARSET[usize::from(*v)])));
        out.extend((0..6).map(|i| char::from(CHARSET[((chk >> (5 * (5 - i))) & 31) as usize])));
        out
    }

    /// The (lowercased) human-readable part and the data of a Bech32
    /// string, all upper- or all lowercase, checksum verified.
    pub(super) fn decode(text: &str) -> Result<(String, Vec<u8>), String> {
        let has_lower = text.bytes().any(|b| b.is_ascii_lowercase());
        let has_upper = text.bytes().any(|b| b.is_ascii_uppercase());
        if has_lower && has_upper {
            return Err("mixed case".to_owned());
        }
        if !text.bytes().all(|b| (33..=126).contains(&b)) {
            return Err("characters outside Bech32".to_owned());
        }
        let lower = text.to_ascii_lowercase();
        let sep = lower.rfind('1').ok_or("no separator")?;
        if sep == 0 || sep + 7 > lower.len() {
            return Err("too short".to_owned());
        }
        let (hrp, rest) = (&lower[..sep], &lower.as_bytes()[sep + 1..]);
        let values = rest
            .iter()
            .map(|c| CHARSET.iter().position(|x| x == c).map(|p| p as u8))
            .collect::<Option<Vec<u8>>>()
            .ok_or("characters outside Bech32")?;
        if polymod(hrp_expand(hrp).chain(values.iter().copied())) != 1 {
            return Err("bad checksum".to_owned());
        }
        let data = convert(&values[..values.len() - 6], 5, 8, false).ok_or("bad padding")?;
        Ok((hrp.to_owned(), data))
    }
}

#[cfg(test)]
mod tests;
