//! What the target holds, key by key: one file per MongoDB collection and
//! per keyed PostgreSQL table, kept in a directory beside the state
//! (`<archive>.state.d/`, 0700, files 0600). Each file lists the keys in
//! the order the server sorts them, each with a digest of its document or
//! row as the target holds it — SHA-256 under the state's random
//! [`DigestKey`], so no one who writes documents or rows can make two of
//! them digest alike. The pre-copy writes them; the final pass reads only
//! the source and merges it with them, so the target is read only where
//! something changed; each final pass writes them anew for what it moved.
//!
//! The format (all integers big-endian): `CHAKEYS1`, then per key its
//! length (`u32`, at most [`MAX_KEY_BYTES`]), its bytes and its digest
//! (16 bytes); then `u32::MAX` and the number of keys (`u64`). A file cut
//! short, longer, or with a key of impossible length is refused by name.

use std::cmp::Ordering;
use std::io::{BufReader, BufWriter, Read as _, Write as _};
use std::path::{Path, PathBuf};

use bson::{Bson, RawBsonRef, RawDocument, RawDocumentBuf};
use sha2::{Digest as _, Sha256};

use super::order::compare_ids;
use crate::count::MAX_DOCUMENT;
use crate::error::Error;

const MAGIC: &[u8; 8] = b"CHAKEYS1";
const END: u32 = u32::MAX;
/// The longest key a file may hold (an `_id` is at most a document).
pub(super) const MAX_KEY_BYTES: usize = MAX_DOCUMENT;

/// The random key of a state's digests (32 bytes, kept in the state as
/// hex): digests are keyed so that no one who writes documents or rows
/// can make two different ones (or two sets of rows) digest alike.
#[derive(Clone)]
pub(super) struct DigestKey(pub(super) [u8; 32]);

impl DigestKey {
    /// A new random key.
    pub(super) fn new() -> Result<DigestKey, Error> {
        use ring::rand::SecureRandom as _;
        let mut key = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| Error::Invalid("no randomness from the system".to_owned()))?;
        Ok(DigestKey(key))
    }

    /// The key as 64 hex digits.
    pub(super) fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The key from 64 hex digits.
    pub(super) fn from_hex(hex: &str) -> Option<DigestKey> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(DigestKey(key))
    }

    /// The keyed digest of `bytes` (a document as stored).
    pub(super) fn digest(&self, bytes: &[u8]) -> u128 {
        let mut d = Sha256::new();
        d.update(self.0);
        d.update(bytes);
        first_half(&d.finalize())
    }
}

/// The first 16 bytes of a SHA-256, as a number.
pub(super) fn first_half(sum: &[u8]) -> u128 {
    let mut first = [0u8; 16];
    first.copy_from_slice(&sum[..16]);
    u128::from_be_bytes(first)
}

/// Writes a key file: to `<path>.partial`, renamed over `path` by
/// [`KeyWriter::finish`] (a kill leaves no half file under the name).
pub(super) struct KeyWriter {
    out: BufWriter<std::fs::File>,
    partial: PathBuf,
    path: PathBuf,
    count: u64,
    finished: bool,
}

impl Drop for KeyWriter {
    /// A file not finished is removed.
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

impl KeyWriter {
    /// Starts the file at `path` (0600).
    pub(super) fn create(path: &Path) -> Result<KeyWriter, Error> {
        let (file, partial) = super::state::create_partial(path)?;
        let mut out = BufWriter::with_capacity(1 << 16, file);
        out.write_all(MAGIC).map_err(Error::io(partial.display()))?;
        Ok(KeyWriter {
            out,
            partial,
            path: path.to_owned(),
            count: 0,
            finished: false,
        })
    }

    /// Adds a key (the caller keeps them in order) and its digest.
    pub(super) fn push(&mut self, key: &[u8], digest: u128) -> Result<(), Error> {
        let len = u32::try_from(key.len())
            .ok()
            .filter(|&n| (n as usize) <= MAX_KEY_BYTES)
            .ok_or_else(|| Error::Invalid(format!("a key of {} bytes", key.len())))?;
        self.out
            .write_all(&len.to_be_bytes())
            .and_then(|()| self.out.write_all(key))
            .and_then(|()| self.out.write_all(&digest.to_be_bytes()))
            .map_err(|e| Error::io(self.partial.display())(e))?;
        self.count += 1;
        Ok(())
    }

    /// Ends the file and puts it in place; returns how many keys it holds.
    pub(super) fn finish(mut self) -> Result<u64, Error> {
        self.out
            .write_all(&END.to_be_bytes())
            .and_then(|()| self.out.write_all(&self.count.to_be_bytes()))
            .and_then(|()| self.out.flush())
            .and_then(|()| self.out.get_ref().sync_all())
            .map_err(Error::io(self.partial.display()))?;
        std::fs::rename(&self.partial, &self.path).map_err(Error::io(self.path.display()))?;
        self.finished = true;
        Ok(self.count)
    }
}

/// Reads a key file, a key at a time.
pub(super) struct KeyReader {
    input: BufReader<std::fs::File>,
    path: PathBuf,
    count: u64,
    done: bool,
}

impl KeyReader {
    /// Opens the file at `path`, checking that it is one.
    pub(super) fn open(path: &Path) -> Result<KeyReader, Error> {
        let file = std::fs::File::open(path).map_err(Error::io(path.display()))?;
        let mut reader = KeyReader {
            input: BufReader::with_capacity(1 << 16, file),
            path: path.to_owned(),
            count: 0,
            done: false,
        };
        let mut magic = [0u8; 8];
        reader.exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(reader.bad("not a key file"));
        }
        Ok(reader)
    }

    pub(super) fn bad(&self, what: &str) -> Error {
        Error::Invalid(format!(
            "{}: {what}: this record of what the target holds is damaged; remove the file and \
             run again (the final pass then reads the target itself for that collection or \
             table)",
            self.path.display()
        ))
    }

    fn exact(&mut self, out: &mut [u8]) -> Result<(), Error> {
        self.input.read_exact(out).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                self.bad("cut short")
            } else {
                Error::io(self.path.display())(e)
            }
        })
    }

    /// The next key (into `key`) and its digest; `None` at the end.
    pub(super) fn next(&mut self, key: &mut Vec<u8>) -> Result<Option<u128>, Error> {
        if self.done {
            return Ok(None);
        }
        let mut len = [0u8; 4];
        self.exact(&mut len)?;
        let len = u32::from_be_bytes(len);
        if len == END {
            let mut count = [0u8; 8];
            self.exact(&mut count)?;
            if u64::from_be_bytes(count) != self.count {
                return Err(self.bad("its key count is wrong"));
            }
            let mut more = [0u8; 1];
            if self
                .input
                .read(&mut more)
                .map_err(Error::io(self.path.display()))?
                != 0
            {
                return Err(self.bad("bytes after its end"));
            }
            self.done = true;
            return Ok(None);
        }
        if len as usize > MAX_KEY_BYTES {
            return Err(self.bad("a key of impossible length"));
        }
        key.resize(len as usize, 0);
        self.exact(key)?;
        let mut digest = [0u8; 16];
        self.exact(&mut digest)?;
        self.count += 1;
        Ok(Some(u128::from_be_bytes(digest)))
    }
}

/// An `_id` as a key file holds it: the document `{"": <_id>}`.
pub(super) fn id_key(id: RawBsonRef<'_>) -> Vec<u8> {
    let mut document = RawDocumentBuf::new();
    document.append("", id.to_raw_bson());
    document.into_bytes()
}

/// The `_id` a key file holds.
pub(super) fn id_of(key: &[u8]) -> Option<Bson> {
    let document = RawDocument::from_bytes(key).ok()?;
    Bson::try_from(document.get("").ok()??).ok()
}

/// Documents sorted per run before a run is written out and merged.
const RUN_KEYS: usize = 32_768;

/// One document of a dump: its `_id`, digest, and where it is in the dump
/// (offset, length).
type Entry = (Bson, u128, u64, u32);

/// The digest recorded for an `_id` seen twice: no document digests to it
/// but by a 2^-128 chance, so the final pass writes the source's.
const UNKNOWN: u128 = 0;

fn by_id(a: &Entry, b: &Entry) -> Ordering {
    compare_ids(&a.0, &b.0).unwrap_or(Ordering::Equal)
}

/// What recording a dumped collection found.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Sorted {
    /// Keys in the key file.
    pub(super) keys: u64,
    /// The MD5 of the documents in `_id` order — what `dbHash` reports for
    /// a collection holding exactly them (lowercase hex); `None` when an
    /// `_id` was seen twice.
    pub(super) md5: Option<String>,
}

/// Writes the key file of a collection whose documents come in any order
/// (a dump's), sorting by `_id` as the server does — in runs of
/// [`RUN_KEYS`] written beside `path` and merged, so memory stays bounded —
/// and computes the collection's MD5 as `dbHash` does, reading each
/// document from the dump in that order. An `_id` seen twice is recorded
/// once with a digest no document has (the final pass then rewrites it).
/// `Ok(None)` when an `_id` is of a type this reader does not order: the
/// collection is then compared on both sides.
pub(super) struct SortedIds {
    path: PathBuf,
    dump: PathBuf,
    pending: Vec<Entry>,
    runs: Vec<PathBuf>,
    orderable: bool,
}

impl SortedIds {
    /// Starts the key file at `path` for the documents of `dump`.
    pub(super) fn new(path: &Path, dump: &Path) -> SortedIds {
        SortedIds {
            path: path.to_owned(),
            dump: dump.to_owned(),
            pending: Vec::new(),
            runs: Vec::new(),
            orderable: true,
        }
    }

    /// Adds one document: its `_id`, digest, offset and length in the dump.
    pub(super) fn push(&mut self, id: Bson, digest: u128, at: u64, len: u32) -> Result<(), Error> {
        if !self.orderable {
            return Ok(());
        }
        if compare_ids(&id, &id).is_none() {
            self.orderable = false;
            self.pending = Vec::new();
            return Ok(());
        }
        self.pending.push((id, digest, at, len));
        if self.pending.len() >= RUN_KEYS {
            let run = self.run_path(self.runs.len());
            write_run(&run, std::mem::take(&mut self.pending))?;
            self.runs.push(run);
        }
        Ok(())
    }

    fn run_path(&self, n: usize) -> PathBuf {
        let mut name = self.path.as_os_str().to_os_string();
        name.push(format!(".run{n}"));
        PathBuf::from(name)
    }

    /// Writes the file; what it holds, or `None` (not orderable).
    pub(super) fn finish(mut self) -> Result<Option<Sorted>, Error> {
        let mut runs = std::mem::take(&mut self.runs);
        let result = (|| {
            if !self.orderable {
                return Ok(None);
            }
            let mut out = Output::new(KeyWriter::create(&self.path)?, &self.dump)?;
            if runs.is_empty() {
                let mut entries = std::mem::take(&mut self.pending);
                entries.sort_by(by_id);
                for entry in entries {
                    out.push(entry)?;
                }
                return out.finish().map(Some);
            }
            if !self.pending.is_empty() {
                let last = self.run_path(runs.len());
                runs.push(last.clone());
                write_run(&last, std::mem::take(&mut self.pending))?;
            }
            let mut readers = runs
                .iter()
                .map(|p| KeyReader::open(p))
                .collect::<Result<Vec<_>, _>>()?;
            let mut key = Vec::new();
            let mut heads = Vec::with_capacity(readers.len());
            for reader in &mut readers {
                heads.push(next_entry(reader, &mut key)?);
            }
            loop {
                let mut least: Option<usize> = None;
                for (i, head) in heads.iter().enumerate() {
                    if let Some(h) = head
                        && least.is_none_or(|l| {
                            by_id(h, heads[l].as_ref().expect("a head")) == Ordering::Less
                        })
                    {
                        least = Some(i);
                    }
                }
                let Some(i) = least else { break };
                out.push(heads[i].take().expect("the least head"))?;
                heads[i] = next_entry(&mut readers[i], &mut key)?;
            }
            out.finish().map(Some)
        })();
        for run in &runs {
            let _ = std::fs::remove_file(run);
        }
        result
    }
}

/// A run: each entry's key is its `_id` ([`id_key`]) followed by its
/// offset (8 bytes) and length (4 bytes) in the dump.
fn write_run(path: &Path, mut entries: Vec<Entry>) -> Result<(), Error> {
    entries.sort_by(by_id);
    let mut out = KeyWriter::create(path)?;
    for (id, digest, at, len) in entries {
        let mut key = id_key_of(&id)?;
        key.extend_from_slice(&at.to_be_bytes());
        key.extend_from_slice(&len.to_be_bytes());
        out.push(&key, digest)?;
    }
    out.finish().map(|_| ())
}

fn next_entry(reader: &mut KeyReader, key: &mut Vec<u8>) -> Result<Option<Entry>, Error> {
    let Some(digest) = reader.next(key)? else {
        return Ok(None);
    };
    let split = key
        .len()
        .checked_sub(12)
        .ok_or_else(|| reader.bad("a short run entry"))?;
    let (id, place) = key.split_at(split);
    let at = u64::from_be_bytes(place[..8].try_into().expect("8 bytes"));
    let len = u32::from_be_bytes(place[8..].try_into().expect("4 bytes"));
    let id = id_of(id).ok_or_else(|| reader.bad("a key that is not an _id"))?;
    Ok(Some((id, digest, at, len)))
}

/// The sorted entries' way out: the key file (an `_id` seen twice once, as
/// [`UNKNOWN`]) and the MD5 of the documents in that order, read from the
/// dump.
struct Output {
    out: KeyWriter,
    held: Option<(Bson, u128)>,
    dump: std::fs::File,
    shown: String,
    md5: Option<md5::Md5>,
    document: Vec<u8>,
}

impl Output {
    fn new(out: KeyWriter, dump: &Path) -> Result<Output, Error> {
        use md5::Digest as _;
        Ok(Output {
            out,
            held: None,
            dump: std::fs::File::open(dump).map_err(Error::io(dump.display()))?,
            shown: dump.display().to_string(),
            md5: Some(md5::Md5::new()),
            document: Vec::new(),
        })
    }

    fn push(&mut self, (id, digest, at, len): Entry) -> Result<(), Error> {
        use md5::Digest as _;
        use std::os::unix::fs::FileExt as _;
        match &mut self.held {
            Some(held) if compare_ids(&held.0, &id) == Some(Ordering::Equal) => {
                held.1 = UNKNOWN;
                self.md5 = None;
                return Ok(());
            }
            _ => {}
        }
        if let Some((id, digest)) = self.held.replace((id, digest)) {
            self.out.push(&id_key_of(&id)?, digest)?;
        }
        if let Some(md5) = &mut self.md5 {
            self.document.resize(len as usize, 0);
            self.dump
                .read_exact_at(&mut self.document, at)
                .map_err(|e| Error::io(&self.shown)(e))?;
            md5.update(&self.document);
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Sorted, Error> {
        use md5::Digest as _;
        if let Some((id, digest)) = self.held.take() {
            self.out.push(&id_key_of(&id)?, digest)?;
        }
        let keys = self.out.finish()?;
        Ok(Sorted {
            keys,
            md5: self.md5.map(|m| {
                m.finalize()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            }),
        })
    }
}

/// [`id_key`] of an `_id` already parsed.
fn id_key_of(id: &Bson) -> Result<Vec<u8>, Error> {
    let raw = bson::RawBson::try_from(id.clone())
        .map_err(|e| Error::Invalid(format!("an _id this reader cannot write: {e}")))?;
    Ok(id_key(raw.as_raw_bson_ref()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn a_key_file_round_trips_and_refuses_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.keys");
        let mut w = KeyWriter::create(&path).unwrap();
        w.push(b"\x00\x00\x00\x00\x00\x00\x00\x01", 7).unwrap();
        w.push(b"", u128::MAX).unwrap();
        assert_eq!(w.finish().unwrap(), 2);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mut r = KeyReader::open(&path).unwrap();
        let mut key = Vec::new();
        assert_eq!(r.next(&mut key).unwrap(), Some(7));
        assert_eq!(key, b"\x00\x00\x00\x00\x00\x00\x00\x01");
        assert_eq!(r.next(&mut key).unwrap(), Some(u128::MAX));
        assert_eq!(r.next(&mut key).unwrap(), None);
        let bytes = std::fs::read(&path).unwrap();
        // Cut short anywhere, or with a key of impossible length: refused.
        for cut in [bytes.len() - 1, bytes.len() - 12, 10] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let mut r = KeyReader::open(&path).unwrap();
            let err = loop {
                match r.next(&mut key) {
                    Ok(Some(_)) => {}
                    Ok(None) => panic!("a file cut at {cut} read whole"),
                    Err(e) => break e,
                }
            };
            assert!(err.to_string().contains("damaged"), "{err}");
        }
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&0x7fff_ffffu32.to_be_bytes());
        std::fs::write(&path, &huge).unwrap();
        let err = KeyReader::open(&path).unwrap().next(&mut key).unwrap_err();
        assert!(err.to_string().contains("impossible length"), "{err}");
    }

    #[test]
    fn ids_are_sorted_as_the_server_sorts_them_in_bounded_runs() {
        use md5::Digest as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.keys");
        // A dump: more than one run of documents, in descending order,
        // then a string _id; its MD5 in _id order is what dbHash says.
        let n = RUN_KEYS as i64 + 10;
        let mut dump = Vec::new();
        let mut places = Vec::new();
        let mut docs = BTreeMap::new();
        for i in (0..n).rev() {
            let doc = bson::to_vec(&bson::doc! {"_id": i, "v": i * 2}).unwrap();
            places.push((Bson::Int64(i), dump.len() as u64, doc.len() as u32));
            docs.insert(i, doc.clone());
            dump.extend_from_slice(&doc);
        }
        let a = bson::to_vec(&bson::doc! {"_id": "a"}).unwrap();
        places.push((
            Bson::String("a".to_owned()),
            dump.len() as u64,
            a.len() as u32,
        ));
        dump.extend_from_slice(&a);
        let dump_path = dir.path().join("c.bson");
        std::fs::write(&dump_path, &dump).unwrap();
        let mut ids = SortedIds::new(&path, &dump_path);
        for (id, at, len) in places.clone() {
            let digest = match &id {
                Bson::Int64(i) => *i as u128 + 1,
                _ => 5,
            };
            ids.push(id, digest, at, len).unwrap();
        }
        let mut md5 = md5::Md5::new();
        for doc in docs.values() {
            md5.update(doc);
        }
        md5.update(&a);
        let want: String = md5.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let sorted = ids.finish().unwrap().unwrap();
        assert_eq!(sorted.keys, n as u64 + 1);
        assert_eq!(sorted.md5, Some(want));
        let mut r = KeyReader::open(&path).unwrap();
        let mut key = Vec::new();
        let mut seen = Vec::new();
        while let Some(digest) = r.next(&mut key).unwrap() {
            seen.push((id_of(&key).unwrap(), digest));
        }
        assert_eq!(seen.len(), n as usize + 1);
        assert_eq!(seen[0], (Bson::Int64(0), 1));
        assert_eq!(seen.last().unwrap().0, Bson::String("a".to_owned()));
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 2, "the runs are removed");
        // An _id seen twice (3 and 3.0: a live dump can meet a document
        // twice): recorded once, as unknown, and no MD5.
        let mut twice = SortedIds::new(&dir.path().join("t.keys"), &dump_path);
        let (_, at, len) = places[0].clone();
        twice.push(Bson::Int64(3), 4, at, len).unwrap();
        twice.push(Bson::Double(3.0), 9, at, len).unwrap();
        let sorted = twice.finish().unwrap().unwrap();
        assert_eq!((sorted.keys, sorted.md5), (1, None));
        let mut r = KeyReader::open(&dir.path().join("t.keys")).unwrap();
        assert_eq!(r.next(&mut key).unwrap(), Some(UNKNOWN));
        let mut odd = SortedIds::new(&dir.path().join("d.keys"), &dump_path);
        odd.push(Bson::Int32(1), 1, 0, 1).unwrap();
        odd.push(Bson::Array(vec![Bson::Int32(1)]), 2, 0, 1)
            .unwrap();
        assert_eq!(odd.finish().unwrap(), None);
    }

    #[test]
    fn a_digest_key_round_trips_as_hex() {
        let key = DigestKey::new().unwrap();
        let again = DigestKey::from_hex(&key.to_hex()).unwrap();
        assert_eq!(key.0, again.0);
        assert!(DigestKey::from_hex("zz").is_none());
        assert_ne!(key.digest(b"a"), DigestKey::new().unwrap().digest(b"a"));
    }
}
