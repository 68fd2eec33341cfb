//! The MongoDB wire protocol: message framing for OP_MSG, OP_QUERY and
//! OP_REPLY. Pure functions over bytes, so they can be fuzzed.
//!
//! Every message starts with a 16-byte header (little-endian `int32`s):
//! `messageLength`, `requestID`, `responseTo`, `opCode`. OP_MSG (2013) carries
//! a flag word, one kind-0 section (the command document) and any number of
//! kind-1 sections (a named sequence of documents, e.g. `documents` of
//! `insert`), optionally followed by a CRC-32C checksum. OP_QUERY (2004) is
//! the legacy form old clients use for the first `isMaster`; the reply is an
//! OP_REPLY (1). OP_COMPRESSED (2012) is never negotiated (no compressors are
//! advertised), so receiving it is a protocol error.

use bson::{Bson, Document, RawDocumentBuf};

/// `OP_REPLY`.
pub const OP_REPLY: i32 = 1;
/// `OP_QUERY` (legacy).
pub const OP_QUERY: i32 = 2004;
/// `OP_COMPRESSED`.
pub const OP_COMPRESSED: i32 = 2012;
/// `OP_MSG`.
pub const OP_MSG: i32 = 2013;

/// The largest message accepted or sent (`maxMessageSizeBytes`).
pub const MAX_MESSAGE_SIZE: usize = 48_000_000;
/// The largest user document (`maxBsonObjectSize`).
pub const MAX_BSON_OBJECT_SIZE: usize = 16 * 1024 * 1024;
/// Commands may exceed the user limit by this much (for their own fields).
pub const COMMAND_OVERHEAD: usize = 16 * 1024;

/// OP_MSG flag: a CRC-32C checksum follows the sections.
pub const FLAG_CHECKSUM_PRESENT: u32 = 1;
/// OP_MSG flag: the sender will not wait for a reply.
pub const FLAG_MORE_TO_COME: u32 = 1 << 1;
/// OP_MSG flag: the client accepts exhaust replies.
pub const FLAG_EXHAUST_ALLOWED: u32 = 1 << 16;

/// Why a message could not be read. The connection is closed after any of
/// these, as mongod does for a malformed message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// `messageLength` is below 16 or above the maximum.
    #[error("invalid message length {0}")]
    Length(i64),
    /// The buffer ended before the message did.
    #[error("message truncated: {0}")]
    Truncated(&'static str),
    /// An opcode this server does not speak.
    #[error("unsupported opcode {0}")]
    Opcode(i32),
    /// OP_MSG flags with unknown required bits (bits 0-15).
    #[error("unknown required OP_MSG flag bits {0:#x}")]
    Flags(u32),
    /// A section of an unknown kind.
    #[error("unknown OP_MSG section kind {0}")]
    SectionKind(u8),
    /// An OP_MSG without exactly one kind-0 section.
    #[error("OP_MSG must have exactly one body section, found {0}")]
    BodyCount(usize),
    /// The checksum does not match.
    #[error("OP_MSG checksum mismatch")]
    Checksum,
    /// A document is not valid BSON.
    #[error("invalid BSON in {what}: {detail}")]
    Bson {
        /// Where.
        what: &'static str,
        /// The parser's words.
        detail: String,
    },
    /// A cstring has no terminator or is not UTF-8.
    #[error("invalid C string in {0}")]
    CString(&'static str),
    /// A kind-1 sequence names a field the body also has.
    #[error("duplicate field {0} in body and document sequence")]
    DuplicateField(String),
}

/// The 16-byte header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Total length including the header.
    pub length: i32,
    /// The sender's id for this message.
    pub request_id: i32,
    /// For replies, the request they answer.
    pub response_to: i32,
    /// The opcode.
    pub op_code: i32,
}

impl Header {
    /// Parses and checks a header.
    pub fn parse(bytes: &[u8; 16]) -> Result<Header, WireError> {
        let int =
            |i: usize| i32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let header = Header {
            length: int(0),
            request_id: int(4),
            response_to: int(8),
            op_code: int(12),
        };
        if header.length < 16 || header.length as usize > MAX_MESSAGE_SIZE {
            return Err(WireError::Length(i64::from(header.length)));
        }
        Ok(header)
    }
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// An OP_MSG command: the body with kind-1 sequences merged in as array
    /// fields, and the flags.
    Msg {
        /// The command document.
        command: Document,
        /// Flag bits.
        flags: u32,
    },
    /// A legacy OP_QUERY.
    Query {
        /// `fullCollectionName`, e.g. `admin.$cmd`.
        collection: String,
        /// The query document (a command when the collection is `$cmd`).
        query: Document,
    },
}

/// Parses a message body (everything after the header).
pub fn parse_body(header: &Header, body: &[u8]) -> Result<Request, WireError> {
    parse_body_with(header, body, true)
}

/// [`parse_body`] for a connection that has not authenticated on a server
/// with authorization on: kind-1 document sequences are bounds-checked but
/// not decoded, and left out of the command. No command a client may run
/// before authenticating takes one, so its reply is the same (an `insert`
/// still fails with Unauthorized); a 48 MB sequence of millions of tiny
/// documents costs no memory.
pub fn parse_body_unauthenticated(header: &Header, body: &[u8]) -> Result<Request, WireError> {
    parse_body_with(header, body, false)
}

fn parse_body_with(header: &Header, body: &[u8], sequences: bool) -> Result<Request, WireError> {
    if body.len() + 16 != header.length as usize {
        return Err(WireError::Truncated("body shorter than messageLength"));
    }
    match header.op_code {
        OP_MSG => parse_msg(body, sequences),
        OP_QUERY => parse_query(body),
        other => Err(WireError::Opcode(other)),
    }
}

fn read_i32(bytes: &[u8], at: usize, what: &'static str) -> Result<i32, WireError> {
    bytes
        .get(at..at + 4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(WireError::Truncated(what))
}

fn read_cstring(bytes: &[u8], at: usize, what: &'static str) -> Result<(String, usize), WireError> {
    let rest = bytes.get(at..).ok_or(WireError::Truncated(what))?;
    let end = rest
        .iter()
        .position(|b| *b == 0)
        .ok_or(WireError::CString(what))?;
    let text = std::str::from_utf8(&rest[..end]).map_err(|_| WireError::CString(what))?;
    Ok((text.to_owned(), at + end + 1))
}

/// Reads one BSON document at `at`, returning it and the offset after it.
fn read_document(
    bytes: &[u8],
    at: usize,
    what: &'static str,
) -> Result<(Document, usize), WireError> {
    let len = read_i32(bytes, at, what)?;
    if len < 5 {
        return Err(WireError::Bson {
            what,
            detail: format!("document length {len}"),
        });
    }
    let end = at
        .checked_add(len as usize)
        .filter(|end| *end <= bytes.len())
        .ok_or(WireError::Truncated(what))?;
    check_depth(&bytes[at..end]).map_err(|detail| WireError::Bson { what, detail })?;
    let doc = Document::from_reader(&bytes[at..end]).map_err(|e| WireError::Bson {
        what,
        detail: e.to_string(),
    })?;
    Ok((doc, end))
}

/// mongod's default `maxBSONDepth`.
pub const MAX_BSON_DEPTH: usize = 200;

/// Walks a BSON document without recursion and refuses one nested deeper
/// than [`MAX_BSON_DEPTH`], before a recursive decoder could overflow the
/// stack on it. Structural errors are left to the decoder, except where
/// they stop the walk.
pub fn check_depth(doc: &[u8]) -> Result<(), String> {
    let int = |at: usize| -> Result<usize, String> {
        doc.get(at..at + 4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .filter(|n| *n >= 0)
            .map(|n| n as usize)
            .ok_or_else(|| "truncated length".to_owned())
    };
    let cstring_end = |at: usize| -> Result<usize, String> {
        doc.get(at..)
            .and_then(|rest| rest.iter().position(|b| *b == 0))
            .map(|n| at + n + 1)
            .ok_or_else(|| "unterminated name".to_owned())
    };
    // The end offset of every document being walked.
    let mut ends = vec![int(0)?.min(doc.len())];
    let mut at = 4;
    while let Some(&end) = ends.last() {
        if at >= end {
            ends.pop();
            continue;
        }
        let kind = doc[at];
        if kind == 0 {
            at += 1;
            ends.pop();
            continue;
        }
        at = cstring_end(at + 1)?;
        let skip = |n: usize| at.checked_add(n).ok_or_else(|| "overflow".to_owned());
        at = match kind {
            0x03 | 0x04 => {
                let len = int(at)?;
                if ends.len() >= MAX_BSON_DEPTH {
                    return Err(format!(
                        "exceeds the maximum nested object depth of {MAX_BSON_DEPTH}"
                    ));
                }
                ends.push(skip(len)?.min(end));
                at + 4
            }
            0x0F => {
                // Code with scope: total length, string, scope document.
                let total = int(at)?;
                let string_len = int(at + 4)?;
                let scope = skip(8 + string_len)?;
                if ends.len() >= MAX_BSON_DEPTH {
                    return Err(format!(
                        "exceeds the maximum nested object depth of {MAX_BSON_DEPTH}"
                    ));
                }
                let scope_len = int(scope)?;
                let _ = total;
                ends.push(scope.checked_add(scope_len).ok_or("overflow")?.min(end));
                scope + 4
            }
            0x01 | 0x09 | 0x11 | 0x12 => skip(8)?,
            0x02 | 0x0D | 0x0E => skip(4 + int(at)?)?,
            0x05 => skip(5 + int(at)?)?,
            0x06 | 0x0A | 0x7F | 0xFF => at,
            0x07 => skip(12)?,
            0x08 => skip(1)?,
            0x0B => cstring_end(cstring_end(at)?)?,
            0x0C => skip(4 + int(at)? + 12)?,
            0x10 => skip(4)?,
            0x13 => skip(16)?,
            other => return Err(format!("unknown element type {other:#04x}")),
        };
    }
    Ok(())
}

fn parse_msg(body: &[u8], decode_sequences: bool) -> Result<Request, WireError> {
    let flags = read_i32(body, 0, "OP_MSG flags")? as u32;
    let unknown_required = flags & 0xffff & !(FLAG_CHECKSUM_PRESENT | FLAG_MORE_TO_COME);
    if unknown_required != 0 {
        return Err(WireError::Flags(unknown_required));
    }
    let mut end = body.len();
    if flags & FLAG_CHECKSUM_PRESENT != 0 {
        if body.len() < 8 {
            return Err(WireError::Truncated("OP_MSG checksum"));
        }
        end -= 4;
        // The checksum covers the header too; the caller passes only the
        // body, so it is checked in `check_checksum`.
    }
    let mut at = 4;
    let mut bodies = Vec::new();
    let mut sequences: Vec<(String, Vec<Document>)> = Vec::new();
    while at < end {
        let kind = body[at];
        at += 1;
        match kind {
            0 => {
                let (doc, next) = read_document(&body[..end], at, "OP_MSG body")?;
                bodies.push(doc);
                at = next;
            }
            1 => {
                let size = read_i32(&body[..end], at, "OP_MSG document sequence")?;
                let section_end = at
                    .checked_add(size.max(0) as usize)
                    .filter(|e| *e <= end && size >= 4)
                    .ok_or(WireError::Truncated("OP_MSG document sequence"))?;
                let (name, mut pos) =
                    read_cstring(&body[..section_end], at + 4, "sequence identifier")?;
                if !decode_sequences {
                    at = section_end;
                    continue;
                }
                let mut docs = Vec::new();
                while pos < section_end {
                    let (doc, next) =
                        read_document(&body[..section_end], pos, "document sequence")?;
                    docs.push(doc);
                    pos = next;
                }
                sequences.push((name, docs));
                at = section_end;
            }
            other => return Err(WireError::SectionKind(other)),
        }
    }
    if bodies.len() != 1 {
        return Err(WireError::BodyCount(bodies.len()));
    }
    let mut command = bodies.pop().unwrap_or_default();
    for (name, docs) in sequences {
        if command.contains_key(&name) {
            return Err(WireError::DuplicateField(name));
        }
        command.insert(
            name,
            Bson::Array(docs.into_iter().map(Bson::Document).collect()),
        );
    }
    Ok(Request::Msg { command, flags })
}

/// Checks an OP_MSG checksum over the whole message (header + body).
pub fn check_checksum(header_bytes: &[u8; 16], body: &[u8]) -> Result<(), WireError> {
    let flags = read_i32(body, 0, "OP_MSG flags")? as u32;
    if flags & FLAG_CHECKSUM_PRESENT == 0 {
        return Ok(());
    }
    let split = body
        .len()
        .checked_sub(4)
        .ok_or(WireError::Truncated("checksum"))?;
    let expected = u32::from_le_bytes([
        body[split],
        body[split + 1],
        body[split + 2],
        body[split + 3],
    ]);
    let mut crc = Crc32c::new();
    crc.update(header_bytes);
    crc.update(&body[..split]);
    if crc.finish() == expected {
        Ok(())
    } else {
        Err(WireError::Checksum)
    }
}

fn parse_query(body: &[u8]) -> Result<Request, WireError> {
    let _flags = read_i32(body, 0, "OP_QUERY flags")?;
    let (collection, at) = read_cstring(body, 4, "OP_QUERY collection")?;
    let _skip = read_i32(body, at, "OP_QUERY numberToSkip")?;
    let _return = read_i32(body, at + 4, "OP_QUERY numberToReturn")?;
    let (query, _next) = read_document(body, at + 8, "OP_QUERY query")?;
    Ok(Request::Query { collection, query })
}

fn header_bytes(length: usize, request_id: i32, response_to: i32, op_code: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(length);
    out.extend_from_slice(&(length as i32).to_le_bytes());
    out.extend_from_slice(&request_id.to_le_bytes());
    out.extend_from_slice(&response_to.to_le_bytes());
    out.extend_from_slice(&op_code.to_le_bytes());
    out
}

/// Encodes an OP_MSG carrying `doc` as its body (no sequences, no
/// checksum).
pub fn encode_msg(request_id: i32, response_to: i32, flags: u32, doc: &RawDocumentBuf) -> Vec<u8> {
    let length = 16 + 4 + 1 + doc.as_bytes().len();
    let mut out = header_bytes(length, request_id, response_to, OP_MSG);
    out.extend_from_slice(&flags.to_le_bytes());
    out.push(0);
    out.extend_from_slice(doc.as_bytes());
    out
}

/// Encodes an OP_REPLY with one document (the answer to an OP_QUERY).
pub fn encode_reply(request_id: i32, response_to: i32, doc: &RawDocumentBuf) -> Vec<u8> {
    let length = 16 + 20 + doc.as_bytes().len();
    let mut out = header_bytes(length, request_id, response_to, OP_REPLY);
    out.extend_from_slice(&0i32.to_le_bytes()); // responseFlags
    out.extend_from_slice(&0i64.to_le_bytes()); // cursorID
    out.extend_from_slice(&0i32.to_le_bytes()); // startingFrom
    out.extend_from_slice(&1i32.to_le_bytes()); // numberReturned
    out.extend_from_slice(doc.as_bytes());
    out
}

/// Parses the single document of an OP_REPLY body (for the internal client).
pub fn parse_reply(body: &[u8]) -> Result<Document, WireError> {
    let (doc, _) = read_document(body, 20, "OP_REPLY document")?;
    Ok(doc)
}

/// CRC-32C (Castagnoli), as OP_MSG checksums use.
#[derive(Debug, Clone)]
pub struct Crc32c {
    value: u32,
}

impl Crc32c {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut crc = i as u32;
            let mut bit = 0;
            while bit < 8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0x82F6_3B78
                } else {
                    crc >> 1
                };
                bit += 1;
            }
            table[i] = crc;
            i += 1;
        }
        table
    };

    /// A fresh checksum.
    pub fn new() -> Crc32c {
        Crc32c { value: !0 }
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.value =
                Self::TABLE[((self.value ^ u32::from(*byte)) & 0xff) as usize] ^ (self.value >> 8);
        }
    }

    /// The checksum.
    pub fn finish(&self) -> u32 {
        !self.value
    }
}

impl Default for Crc32c {
    fn default() -> Self {
        Crc32c::new()
    }
}

#[cfg(test)]
mod tests;

/// Writes one whole message and flushes it. The flush matters with TLS:
/// tokio-rustls may return from a write with the tail of the message still
/// encrypted in its buffer when the socket is full, and only a flush (or a
/// later write) sends it — without one, a client waiting for the end of a
/// large reply waits for ever (mongod always sends the whole reply).
pub(crate) async fn send<W>(io: &mut W, message: &[u8]) -> std::io::Result<()>
where
    W: tokio::io::AsyncWrite + Unpin + ?Sized,
{
    use tokio::io::AsyncWriteExt as _;
    io.write_all(message).await?;
    io.flush().await
}
