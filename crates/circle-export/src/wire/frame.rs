//! The MongoDB wire framing the old-server reader speaks, written from the
//! protocol's reference (`src/mongo/rpc/message.h`, `op_msg.cpp` and
//! `reply_builder_interface` in mongod 3.6): a 16-byte header (length,
//! request id, response-to, op code, all little-endian), then
//!
//! - `OP_QUERY` (2004, sent once, for the `isMaster` handshake a 3.6 server
//!   needs before it is known to speak OP_MSG): flags, a C-string
//!   namespace (`admin.$cmd`), skip, return count (-1), the command;
//! - `OP_REPLY` (1, its answer): flags, cursor id, starting-from, count,
//!   then that many documents (exactly one for a command);
//! - `OP_MSG` (2013, every later command and reply): flag bits, sections
//!   (kind 0: one body document; kind 1: a size, a C-string identifier and
//!   documents), and a CRC-32C when flag bit 0 is set. Toward the server
//!   this reader never sets a flag; from it, the checksum bit is accepted
//!   (the four bytes are skipped) and `moreToCome` is refused — it is only
//!   sent to clients that asked for exhaust, which this one never does.
//!
//! Nothing here trusts a length: each is checked against what is left of
//! the message and against [`MAX_MESSAGE`] before anything is allocated,
//! and every error says what was wrong. It shares no code with mongo-sim.

use std::fmt;

/// The largest message accepted from a server: mongod's
/// `maxMessageSizeBytes` (48,000,000 since 2.6), whatever a server claims.
pub const MAX_MESSAGE: usize = 48_000_000;

/// The largest BSON document: 16 MiB plus mongod's 16 KiB allowance for a
/// command reply's envelope around a maximal document.
pub const MAX_DOCUMENT: usize = 16 * 1024 * 1024 + 16 * 1024;

/// Length of the message header.
pub const HEADER: usize = 16;

/// `OP_REPLY`.
pub const OP_REPLY: i32 = 1;
/// `OP_QUERY`.
pub const OP_QUERY: i32 = 2004;
/// `OP_COMPRESSED`.
pub const OP_COMPRESSED: i32 = 2012;
/// `OP_MSG`.
pub const OP_MSG: i32 = 2013;

const CHECKSUM_PRESENT: u32 = 1;
const MORE_TO_COME: u32 = 1 << 1;
/// Flag bits 0–15 are required to be understood (`op_msg.cpp`:
/// `kAllSupportedFlags`); an unknown one among them makes a message
/// unreadable.
const REQUIRED_BITS: u32 = 0xffff;

/// What is wrong with a message a server sent.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The header's length is below the header's own size or above
    /// [`MAX_MESSAGE`].
    Length(i64),
    /// A reply answers another request than the one sent.
    ResponseTo {
        /// The request sent.
        expected: i32,
        /// What the reply says it answers.
        got: i32,
    },
    /// An op code other than the one expected.
    OpCode {
        /// What was expected.
        expected: i32,
        /// What came.
        got: i32,
    },
    /// The message's body is malformed: says where and how.
    Malformed(String),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Length(n) => write!(
                f,
                "a message of impossible length {n} (at most {MAX_MESSAGE} bytes, at least {HEADER})"
            ),
            FrameError::ResponseTo { expected, got } => write!(
                f,
                "a reply to request {got} arrived where the reply to request {expected} was expected"
            ),
            FrameError::OpCode { expected, got } if *got == OP_COMPRESSED => write!(
                f,
                "a compressed message (op code {got}) although no compression was offered; expected op code {expected}"
            ),
            FrameError::OpCode { expected, got } => {
                write!(f, "op code {got} where {expected} was expected")
            }
            FrameError::Malformed(what) => write!(f, "a malformed message: {what}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// A message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The whole message's length, header included (checked).
    pub length: usize,
    /// The sender's id for it.
    pub request_id: i32,
    /// The request it answers.
    pub response_to: i32,
    /// The op code.
    pub op_code: i32,
}

impl Header {
    /// Reads a header, bounding its length.
    pub fn parse(bytes: &[u8; HEADER]) -> Result<Header, FrameError> {
        let int = |at: usize| {
            i32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let length = int(0);
        if length < HEADER as i32 || length as i64 > MAX_MESSAGE as i64 {
            return Err(FrameError::Length(i64::from(length)));
        }
        Ok(Header {
            length: length as usize,
            request_id: int(4),
            response_to: int(8),
            op_code: int(12),
        })
    }

    /// Checks that this header answers request `id` with op code `op`.
    pub fn expect(&self, id: i32, op: i32) -> Result<(), FrameError> {
        if self.response_to != id {
            return Err(FrameError::ResponseTo {
                expected: id,
                got: self.response_to,
            });
        }
        if self.op_code != op {
            return Err(FrameError::OpCode {
                expected: op,
                got: self.op_code,
            });
        }
        Ok(())
    }
}

fn header(out: &mut Vec<u8>, request_id: i32, op_code: i32) {
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&request_id.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&op_code.to_le_bytes());
}

fn finish(mut out: Vec<u8>) -> Vec<u8> {
    let length = out.len() as i32;
    out[..4].copy_from_slice(&length.to_le_bytes());
    out
}

/// An `OP_QUERY` running `command` (raw BSON) against `<db>.$cmd`.
pub fn op_query(request_id: i32, db: &str, command: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + 24 + db.len() + command.len());
    header(&mut out, request_id, OP_QUERY);
    out.extend_from_slice(&0i32.to_le_bytes()); // flags
    out.extend_from_slice(db.as_bytes());
    out.extend_from_slice(b".$cmd\0");
    out.extend_from_slice(&0i32.to_le_bytes()); // numberToSkip
    out.extend_from_slice(&(-1i32).to_le_bytes()); // numberToReturn: one document
    out.extend_from_slice(command);
    finish(out)
}

/// An `OP_MSG` with `command` (raw BSON, holding its `$db`) as its body;
/// no flags, no checksum.
pub fn op_msg(request_id: i32, command: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + 5 + command.len());
    header(&mut out, request_id, OP_MSG);
    out.extend_from_slice(&0u32.to_le_bytes());
    out.push(0);
    out.extend_from_slice(command);
    finish(out)
}

/// A cursor over a message body.
struct Body<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Body<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], FrameError> {
        if self.bytes.len() - self.at < n {
            return Err(FrameError::Malformed(format!(
                "{what} needs {n} bytes at offset {}, {} left",
                self.at + HEADER,
                self.bytes.len() - self.at
            )));
        }
        let slice = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(slice)
    }

    fn int(&mut self, what: &str) -> Result<i32, FrameError> {
        let b = self.take(4, what)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// One BSON document's bytes: its length bounded by what is left and
    /// by [`MAX_DOCUMENT`], its last byte the terminating 0.
    fn document(&mut self, what: &str) -> Result<&'a [u8], FrameError> {
        let left = self.bytes.len() - self.at;
        if left < 4 {
            return Err(FrameError::Malformed(format!("{what}: no document length")));
        }
        let b = &self.bytes[self.at..self.at + 4];
        let n = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if n < 5 || n as usize > left || n as usize > MAX_DOCUMENT {
            return Err(FrameError::Malformed(format!(
                "{what}: a document of length {n} with {left} bytes left"
            )));
        }
        let document = self.take(n as usize, what)?;
        if document[document.len() - 1] != 0 {
            return Err(FrameError::Malformed(format!(
                "{what}: a document not ending in 0"
            )));
        }
        Ok(document)
    }

    fn cstring(&mut self, what: &str) -> Result<&'a [u8], FrameError> {
        let rest = &self.bytes[self.at..];
        let end = memchr::memchr(0, rest)
            .ok_or_else(|| FrameError::Malformed(format!("{what}: an unterminated string")))?;
        self.at += end + 1;
        Ok(&rest[..end])
    }

    fn done(&self) -> bool {
        self.at == self.bytes.len()
    }
}

/// The one document of an `OP_REPLY` body (the message after its header).
pub fn parse_reply(body: &[u8]) -> Result<&[u8], FrameError> {
    let mut body = Body { bytes: body, at: 0 };
    let flags = body.int("the reply's flags")?;
    let _cursor = body.take(8, "the reply's cursor id")?;
    let _from = body.int("the reply's starting point")?;
    let count = body.int("the reply's document count")?;
    // responseFlags bit 1: QueryFailure (the document is a $err).
    if count != 1 {
        return Err(FrameError::Malformed(format!(
            "a command reply with {count} documents (flags {flags:#x})"
        )));
    }
    let document = body.document("the reply's document")?;
    if !body.done() {
        return Err(FrameError::Malformed(
            "bytes after the reply's document".to_owned(),
        ));
    }
    Ok(document)
}

/// The body document of an `OP_MSG` (the message after its header).
/// Kind-1 sections (document sequences) are checked and skipped: a
/// command reply has none this reader needs.
pub fn parse_msg(body: &[u8]) -> Result<&[u8], FrameError> {
    let mut body = Body { bytes: body, at: 0 };
    let flags = body.int("the flag bits")? as u32;
    if flags & MORE_TO_COME != 0 {
        return Err(FrameError::Malformed(
            "moreToCome set on a reply to a request that did not ask for more".to_owned(),
        ));
    }
    let unknown = flags & REQUIRED_BITS & !(CHECKSUM_PRESENT | MORE_TO_COME);
    if unknown != 0 {
        return Err(FrameError::Malformed(format!(
            "required flag bits {unknown:#x} this reader does not know"
        )));
    }
    if flags & CHECKSUM_PRESENT != 0 {
        if body.bytes.len() < 4 + 4 {
            return Err(FrameError::Malformed(
                "the checksum flag on a message too short to hold one".to_owned(),
            ));
        }
        body.bytes = &body.bytes[..body.bytes.len() - 4];
    }
    let mut found = None;
    while !body.done() {
        let kind = body.take(1, "a section kind")?[0];
        match kind {
            0 => {
                let document = body.document("the body section")?;
                if found.replace(document).is_some() {
                    return Err(FrameError::Malformed("two body sections".to_owned()));
                }
            }
            1 => {
                let size = body.int("a document sequence's size")?;
                let left = body.bytes.len() - body.at;
                if size < 4 || size as usize - 4 > left {
                    return Err(FrameError::Malformed(format!(
                        "a document sequence of size {size} with {left} bytes left"
                    )));
                }
                let mut sequence = Body {
                    bytes: body.take(size as usize - 4, "a document sequence")?,
                    at: 0,
                };
                sequence.cstring("a document sequence's identifier")?;
                while !sequence.done() {
                    sequence.document("a document sequence")?;
                }
            }
            other => {
                return Err(FrameError::Malformed(format!(
                    "a section of unknown kind {other}"
                )));
            }
        }
    }
    found.ok_or_else(|| FrameError::Malformed("no body section".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> Vec<u8> {
        bson::to_vec(&bson::doc! {"ok": 1.0}).unwrap()
    }

    #[test]
    fn a_query_and_a_msg_are_framed_as_the_protocol_says() {
        let command = document();
        let q = op_query(7, "admin", &command);
        assert_eq!(
            i32::from_le_bytes(q[..4].try_into().unwrap()) as usize,
            q.len()
        );
        assert_eq!(&q[12..16], &OP_QUERY.to_le_bytes());
        assert_eq!(&q[20..31], b"admin.$cmd\0");
        assert_eq!(&q[35..39], &(-1i32).to_le_bytes());
        assert_eq!(&q[39..], &command[..]);
        let m = op_msg(8, &command);
        assert_eq!(&m[12..16], &OP_MSG.to_le_bytes());
        assert_eq!(&m[16..20], &[0, 0, 0, 0], "no flag toward the server");
        assert_eq!(m[20], 0);
        assert_eq!(&m[21..], &command[..]);
    }

    #[test]
    fn lengths_are_bounded_before_anything_is_allocated() {
        let mut h = [0u8; HEADER];
        h[..4].copy_from_slice(&i32::MAX.to_le_bytes());
        assert_eq!(
            Header::parse(&h),
            Err(FrameError::Length(i64::from(i32::MAX)))
        );
        h[..4].copy_from_slice(&(-1i32).to_le_bytes());
        assert!(Header::parse(&h).is_err());
        h[..4].copy_from_slice(&15i32.to_le_bytes());
        assert!(Header::parse(&h).is_err());
        h[..4].copy_from_slice(&16i32.to_le_bytes());
        assert!(Header::parse(&h).is_ok());
    }

    #[test]
    fn a_reply_with_a_checksum_is_read_and_garbage_is_named() {
        let d = document();
        let mut body = 1u32.to_le_bytes().to_vec();
        body.push(0);
        body.extend_from_slice(&d);
        body.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(parse_msg(&body).unwrap(), &d[..]);
        let mut more = 2u32.to_le_bytes().to_vec();
        more.push(0);
        more.extend_from_slice(&d);
        assert!(
            parse_msg(&more)
                .unwrap_err()
                .to_string()
                .contains("moreToCome")
        );
        let mut long = 0u32.to_le_bytes().to_vec();
        long.push(0);
        long.extend_from_slice(&1_000_000i32.to_le_bytes());
        assert!(
            parse_msg(&long)
                .unwrap_err()
                .to_string()
                .contains("length 1000000")
        );
        let mut seq = 0u32.to_le_bytes().to_vec();
        seq.push(1);
        seq.extend_from_slice(&(4 + 2 + d.len() as i32).to_le_bytes());
        seq.extend_from_slice(b"x\0");
        seq.extend_from_slice(&d);
        seq.push(0);
        seq.extend_from_slice(&d);
        assert_eq!(parse_msg(&seq).unwrap(), &d[..]);
        assert!(parse_msg(&[]).is_err());
        let mut reply = vec![0u8; 20];
        reply[16..20].copy_from_slice(&2i32.to_le_bytes());
        assert!(
            parse_reply(&reply)
                .unwrap_err()
                .to_string()
                .contains("2 documents")
        );
    }
}
