//! Data, oplog and persistence.
//!
//! Every change is an oplog entry (`{ts, t, v: 2, op, ns, o, o2?}`), applied
//! to in-memory data and appended to `journal.bson` in `dbPath` (fsynced)
//! before the write is acknowledged. On start the journal is replayed, so a
//! member stopped and started again — or started from a copy of its
//! `dbPath`, as from an EBS snapshot — comes back with its data and its
//! oplog, and catches up from the primary. A torn last entry (a crash in the
//! middle of a write) is cut off. Replica-set config, term and vote live in
//! `local.bson`, rewritten atomically.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bson::{Bson, Document, RawDocumentBuf, Timestamp, doc, spec::BinarySubtype};

use crate::error::{Code, CommandError};

/// A point in the oplog: term and timestamp. Ordered by term, then time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct OpTime {
    /// The election term that wrote it.
    pub(crate) term: i64,
    /// Seconds since the epoch.
    pub(crate) secs: u32,
    /// Ordinal within the second.
    pub(crate) inc: u32,
}

impl std::fmt::Display for OpTime {
    /// As mongod logs an optime: `{ ts: Timestamp(secs, inc), t: term }`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{{ ts: Timestamp({}, {}), t: {} }}",
            self.secs, self.inc, self.term
        )
    }
}

impl OpTime {
    /// The BSON timestamp.
    pub(crate) fn ts(self) -> Timestamp {
        Timestamp {
            time: self.secs,
            increment: self.inc,
        }
    }

    /// `{ts, t}` as replies show it.
    pub(crate) fn to_doc(self) -> Document {
        doc! {"ts": self.ts(), "t": self.term}
    }

    /// Reads `{ts, t}`.
    pub(crate) fn from_doc(doc: &Document) -> Option<OpTime> {
        let ts = doc.get_timestamp("ts").ok()?;
        let term = doc.get_i64("t").ok()?;
        Some(OpTime {
            term,
            secs: ts.time,
            inc: ts.increment,
        })
    }

    /// The timestamp part alone, for comparisons by time.
    pub(crate) fn time_key(self) -> (u32, u32) {
        (self.secs, self.inc)
    }

    /// Wall-clock milliseconds of this optime.
    pub(crate) fn millis(self) -> i64 {
        i64::from(self.secs) * 1000
    }
}

/// One oplog entry, kept as its BSON bytes: what the journal holds and what
/// an oplog read returns, so neither encodes it again.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    /// Its position.
    pub(crate) optime: OpTime,
    /// The entry document: `{ts, t, v, op, ns, wall, o, o2?, ui?, lsid?,
    /// txnNumber?, stmtId?}`, in mongod's field order.
    pub(crate) raw: RawDocumentBuf,
}

impl Entry {
    /// Builds an entry of `op` on `ns` with the change `o` (already BSON),
    /// `o2`, the collection's UUID and the retryable-write statement it
    /// belongs to.
    pub(crate) fn new(
        optime: OpTime,
        op: &str,
        ns: &str,
        o: &bson::RawDocument,
        o2: Option<&Document>,
        ui: Option<[u8; 16]>,
        statement: Option<&Statement>,
    ) -> Result<Entry, CommandError> {
        let encode = |doc: &Document| {
            RawDocumentBuf::from_document(doc)
                .map_err(|e| CommandError::new(Code::InvalidBson, e.to_string()))
        };
        let o2 = o2.map(encode).transpose()?;
        let lsid = statement.map(|s| encode(&s.lsid)).transpose()?;
        // Written field by field into one buffer sized up front: the
        // entry is mostly `o`, already encoded, copied once.
        let mut out = BsonWriter(Vec::with_capacity(
            128 + ns.len()
                + o.as_bytes().len()
                + o2.as_ref().map_or(0, |d| d.as_bytes().len())
                + lsid.as_ref().map_or(0, |d| d.as_bytes().len()),
        ));
        out.0.extend_from_slice(&[0; 4]);
        out.element(
            0x11,
            "ts",
            &(u64::from(optime.secs) << 32 | u64::from(optime.inc)).to_le_bytes(),
        );
        out.element(0x12, "t", &optime.term.to_le_bytes());
        out.element(0x12, "v", &2_i64.to_le_bytes());
        out.string("op", op);
        out.string("ns", ns);
        out.element(0x09, "wall", &optime.millis().to_le_bytes());
        out.element(0x03, "o", o.as_bytes());
        if let Some(o2) = &o2 {
            out.element(0x03, "o2", o2.as_bytes());
        }
        if let Some(uuid) = ui {
            let mut binary = Vec::with_capacity(21);
            binary.extend_from_slice(&16_i32.to_le_bytes());
            binary.push(0x04);
            binary.extend_from_slice(&uuid);
            out.element(0x05, "ui", &binary);
        }
        if let (Some(statement), Some(lsid)) = (statement, &lsid) {
            out.element(0x03, "lsid", lsid.as_bytes());
            out.element(0x12, "txnNumber", &statement.txn_number.to_le_bytes());
            out.element(0x10, "stmtId", &statement.stmt_id.to_le_bytes());
        }
        out.0.push(0);
        let len = i32::try_from(out.0.len())
            .map_err(|_| CommandError::new(Code::BadValue, "oplog entry too large"))?;
        out.0[..4].copy_from_slice(&len.to_le_bytes());
        let raw = RawDocumentBuf::from_bytes(out.0)
            .map_err(|e| CommandError::new(Code::InvalidBson, e.to_string()))?;
        Ok(Entry { optime, raw })
    }

    /// An entry from its bytes (`None` without a valid `ts` and `t`).
    pub(crate) fn from_raw(raw: RawDocumentBuf) -> Option<Entry> {
        let ts = raw.get_timestamp("ts").ok()?;
        let term = raw.get_i64("t").ok()?;
        let optime = OpTime {
            term,
            secs: ts.time,
            inc: ts.increment,
        };
        Some(Entry { optime, raw })
    }

    /// An entry from a parsed document (as a sync source's reply brings it).
    pub(crate) fn from_doc(doc: Document) -> Option<Entry> {
        Entry::from_raw(RawDocumentBuf::from_document(&doc).ok()?)
    }

    /// Its `op`.
    pub(crate) fn op(&self) -> &str {
        self.raw.get_str("op").unwrap_or_default()
    }

    /// Its `ns`.
    pub(crate) fn ns(&self) -> &str {
        self.raw.get_str("ns").unwrap_or_default()
    }
}

/// Appends BSON elements (type byte, key, value bytes) to a buffer.
struct BsonWriter(Vec<u8>);

impl BsonWriter {
    fn element(&mut self, kind: u8, key: &str, value: &[u8]) {
        self.0.push(kind);
        self.0.extend_from_slice(key.as_bytes());
        self.0.push(0);
        self.0.extend_from_slice(value);
    }

    fn string(&mut self, key: &str, value: &str) {
        self.0.push(0x02);
        self.0.extend_from_slice(key.as_bytes());
        self.0.push(0);
        let len = value.len() as i32 + 1;
        self.0.extend_from_slice(&len.to_le_bytes());
        self.0.extend_from_slice(value.as_bytes());
        self.0.push(0);
    }
}

/// An owned copy of a raw BSON value (`Null` for one that cannot be read).
fn owned(value: Option<bson::RawBsonRef<'_>>) -> Bson {
    value
        .and_then(|v| Bson::try_from(v.to_raw_bson()).ok())
        .unwrap_or(Bson::Null)
}

/// An `_id` in a form that compares as MongoDB does for equality (numbers
/// of different types but equal value are the same key).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct IdKey(Vec<u8>);

impl IdKey {
    /// The key of a BSON value.
    pub(crate) fn of(value: &Bson) -> IdKey {
        let mut out = Vec::new();
        let integral = |f: f64| f.fract() == 0.0 && f.abs() < 9.0e15;
        match value {
            Bson::Int32(i) => {
                out.push(b'N');
                out.extend(i64::from(*i).to_be_bytes());
            }
            Bson::Int64(i) => {
                out.push(b'N');
                out.extend(i.to_be_bytes());
            }
            Bson::Double(f) if integral(*f) => {
                out.push(b'N');
                out.extend((*f as i64).to_be_bytes());
            }
            other => {
                out.push(other.element_type() as u8);
                let wrapped = doc! {"": other.clone()};
                let _ = wrapped.to_writer(&mut out);
            }
        }
        IdKey(out)
    }
}

/// A collection's contents.
#[derive(Clone, Debug, Default)]
pub(crate) struct Collection {
    /// Its UUID.
    pub(crate) uuid: [u8; 16],
    /// Documents in insertion order, by sequence number.
    docs: BTreeMap<u64, Arc<RawDocumentBuf>>,
    by_id: HashMap<IdKey, u64>,
    next_seq: u64,
    /// Index specifications other than `_id_`.
    pub(crate) indexes: Vec<Document>,
    /// The options it was created with, as `listCollections` shows them
    /// (`capped`/`size`/`max`, `validator`, `collation`, … or, for a
    /// view, `viewOn`/`pipeline`).
    pub(crate) options: Document,
    /// Bytes of document data.
    pub(crate) data_size: u64,
}

impl Collection {
    /// Whether this is a view (created with `viewOn`).
    pub(crate) fn is_view(&self) -> bool {
        self.options.contains_key("viewOn")
    }

    /// Number of documents.
    pub(crate) fn len(&self) -> usize {
        self.docs.len()
    }

    /// Whether empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// Documents in insertion order.
    pub(crate) fn documents(&self) -> impl Iterator<Item = &Arc<RawDocumentBuf>> {
        self.docs.values()
    }

    /// The insertion sequence number of the document with this `_id`.
    pub(crate) fn seq_of(&self, id: &Bson) -> Option<u64> {
        self.by_id.get(&IdKey::of(id)).copied()
    }

    /// The document with this insertion sequence number.
    pub(crate) fn document_at(&self, seq: u64) -> Option<&Arc<RawDocumentBuf>> {
        self.docs.get(&seq)
    }

    /// The document with this `_id`.
    pub(crate) fn get(&self, id: &Bson) -> Option<&Arc<RawDocumentBuf>> {
        self.seq_of(id).and_then(|seq| self.document_at(seq))
    }

    fn insert(&mut self, doc: RawDocumentBuf, id: &Bson) -> Result<(), CommandError> {
        let key = IdKey::of(id);
        if self.by_id.contains_key(&key) {
            return Err(CommandError::new(
                Code::DuplicateKey,
                format!("E11000 duplicate key error dup key: {{ _id: {id} }}"),
            ));
        }
        self.data_size += doc.as_bytes().len() as u64;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.docs.insert(seq, Arc::new(doc));
        self.by_id.insert(key, seq);
        Ok(())
    }

    fn remove(&mut self, id: &Bson) -> bool {
        let Some(seq) = self.by_id.remove(&IdKey::of(id)) else {
            return false;
        };
        if let Some(doc) = self.docs.remove(&seq) {
            self.data_size -= doc.as_bytes().len() as u64;
        }
        true
    }
}

/// All databases.
#[derive(Clone, Debug, Default)]
pub(crate) struct Data {
    /// Database name → collection name → collection.
    pub(crate) dbs: BTreeMap<String, BTreeMap<String, Collection>>,
    /// Retryable writes: per logical session (its `lsid.id`), the newest
    /// transaction number and the statements of it already executed. Built
    /// from the `lsid`/`txnNumber`/`stmtId` fields of the oplog entries
    /// themselves, so it replicates, survives a restart and follows a
    /// rollback as the data does (mongod keeps it in `config.transactions`,
    /// written with the same oplog entries).
    pub(crate) sessions: BTreeMap<Vec<u8>, SessionRecord>,
}

/// What a session's retryable writes have executed (see [`Data::sessions`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct SessionRecord {
    /// The newest transaction number seen.
    pub(crate) txn_number: i64,
    /// Statement ids of `txn_number` already executed.
    pub(crate) statements: std::collections::BTreeSet<i32>,
}

/// The statement of a retryable write an oplog entry belongs to.
#[derive(Clone, Debug)]
pub(crate) struct Statement {
    /// The session's `lsid` document, as the client sent it.
    pub(crate) lsid: Document,
    /// The session's key in [`Data::sessions`].
    pub(crate) key: Vec<u8>,
    /// The transaction number.
    pub(crate) txn_number: i64,
    /// The statement id within it.
    pub(crate) stmt_id: i32,
}

impl Statement {
    /// The session key of an `lsid` document: its `id` (a UUID), or the
    /// whole document's bytes when it has none.
    pub(crate) fn key_of(lsid: &Document) -> Vec<u8> {
        match lsid.get("id") {
            Some(Bson::Binary(b)) => b.bytes.clone(),
            _ => {
                let mut bytes = Vec::new();
                let _ = lsid.to_writer(&mut bytes);
                bytes
            }
        }
    }

    /// Reads the statement an oplog entry carries, if any.
    fn of_entry(raw: &bson::RawDocument) -> Option<Statement> {
        let lsid = Document::try_from(raw.get_document("lsid").ok()?).ok()?;
        Some(Statement {
            key: Statement::key_of(&lsid),
            lsid,
            txn_number: raw.get_i64("txnNumber").ok()?,
            stmt_id: raw.get_i32("stmtId").ok()?,
        })
    }
}

/// Splits `db.coll` into its parts.
pub(crate) fn split_ns(ns: &str) -> (&str, &str) {
    ns.split_once('.').unwrap_or((ns, ""))
}

impl Data {
    /// The collection at `db.coll`.
    pub(crate) fn collection(&self, db: &str, coll: &str) -> Option<&Collection> {
        self.dbs.get(db).and_then(|d| d.get(coll))
    }

    fn ensure(&mut self, db: &str, coll: &str, uuid: Option<[u8; 16]>) -> &mut Collection {
        let collections = self.dbs.entry(db.to_owned()).or_default();
        collections
            .entry(coll.to_owned())
            .or_insert_with(|| Collection {
                uuid: uuid.unwrap_or_else(random_uuid),
                ..Collection::default()
            })
    }

    /// Applies one oplog entry. Entries are produced by this server (or its
    /// sync source), so failures here mean a bug or a corrupted journal.
    pub(crate) fn apply(&mut self, entry: &Entry) -> Result<(), CommandError> {
        self.apply_with(entry, None)
    }

    /// [`Data::apply`], for an insert whose document the caller has already
    /// encoded (`raw` is `o` as BSON), so it is not encoded twice.
    pub(crate) fn apply_with(
        &mut self,
        entry: &Entry,
        raw: Option<RawDocumentBuf>,
    ) -> Result<(), CommandError> {
        self.apply_op(entry, raw)?;
        if let Some(statement) = Statement::of_entry(&entry.raw) {
            self.record(&statement);
        }
        Ok(())
    }

    /// Records that `statement` was executed.
    fn record(&mut self, statement: &Statement) {
        let record = self.sessions.entry(statement.key.clone()).or_default();
        if statement.txn_number > record.txn_number {
            record.txn_number = statement.txn_number;
            record.statements.clear();
        }
        if statement.txn_number == record.txn_number {
            record.statements.insert(statement.stmt_id);
        }
    }

    /// Whether `stmt_id` of transaction `txn_number` of session `key` was
    /// already executed; `Err(newest)` when a newer transaction number has
    /// been seen on the session (the retry is too old to be answered).
    pub(crate) fn executed(&self, key: &[u8], txn_number: i64, stmt_id: i32) -> Result<bool, i64> {
        match self.sessions.get(key) {
            None => Ok(false),
            Some(record) if record.txn_number > txn_number => Err(record.txn_number),
            Some(record) => {
                Ok(record.txn_number == txn_number && record.statements.contains(&stmt_id))
            }
        }
    }

    fn apply_op(&mut self, entry: &Entry, raw: Option<RawDocumentBuf>) -> Result<(), CommandError> {
        let doc = &entry.raw;
        let op = entry.op();
        let ns = entry.ns();
        let empty = RawDocumentBuf::new();
        let o: &bson::RawDocument = doc.get_document("o").unwrap_or(&empty);
        let (db, coll) = split_ns(ns);
        let ui = match doc.get("ui") {
            Ok(Some(bson::RawBsonRef::Binary(b))) => <[u8; 16]>::try_from(b.bytes).ok(),
            _ => None,
        };
        match op {
            "n" => Ok(()),
            "i" => {
                let id = owned(o.get("_id").ok().flatten());
                let raw = raw.unwrap_or_else(|| o.to_raw_document_buf());
                self.ensure(db, coll, ui).insert(raw, &id)
            }
            "u" => {
                let id = owned(
                    doc.get_document("o2")
                        .ok()
                        .and_then(|o2| o2.get("_id").ok().flatten()),
                );
                let collection = self.ensure(db, coll, ui);
                collection.remove(&id);
                collection.insert(o.to_raw_document_buf(), &id)
            }
            "d" => {
                let id = owned(o.get("_id").ok().flatten());
                if let Some(collection) = self.dbs.get_mut(db).and_then(|d| d.get_mut(coll)) {
                    collection.remove(&id);
                }
                Ok(())
            }
            "c" => {
                let o = Document::try_from(o)
                    .map_err(|e| CommandError::new(Code::InvalidBson, e.to_string()))?;
                self.apply_command(db, &o, ui)
            }
            other => Err(CommandError::bad_value(format!(
                "unknown oplog op {other:?}"
            ))),
        }
    }

    fn apply_command(
        &mut self,
        db: &str,
        o: &Document,
        ui: Option<[u8; 16]>,
    ) -> Result<(), CommandError> {
        if let Ok(coll) = o.get_str("create") {
            let collection = self.ensure(db, coll, ui);
            collection.options = o
                .iter()
                .filter(|(k, _)| k.as_str() != "create")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
        } else if let Ok(coll) = o.get_str("drop") {
            if let Some(collections) = self.dbs.get_mut(db) {
                collections.remove(coll);
                if collections.is_empty() {
                    self.dbs.remove(db);
                }
            }
        } else if o.contains_key("dropDatabase") {
            self.dbs.remove(db);
        } else if let Ok(from) = o.get_str("renameCollection") {
            // The collection moves whole (UUID, documents, indexes); a
            // target it replaces (dropTarget) is gone.
            let (from_db, from_coll) = split_ns(from);
            let (to_db, to_coll) = split_ns(o.get_str("to").unwrap_or_default());
            let moved = self.dbs.get_mut(from_db).and_then(|d| d.remove(from_coll));
            if self.dbs.get(from_db).is_some_and(BTreeMap::is_empty) {
                self.dbs.remove(from_db);
            }
            if let Some(collection) = moved {
                self.dbs
                    .entry(to_db.to_owned())
                    .or_default()
                    .insert(to_coll.to_owned(), collection);
            }
        } else if let Ok(coll) = o.get_str("dropIndexes") {
            let name = o.get_str("index").unwrap_or_default();
            if let Some(collection) = self.dbs.get_mut(db).and_then(|d| d.get_mut(coll)) {
                collection
                    .indexes
                    .retain(|i| i.get_str("name").ok() != Some(name));
            }
        } else if let Ok(coll) = o.get_str("createIndexes") {
            let spec = o.get_document("spec").cloned().unwrap_or_default();
            let collection = self.ensure(db, coll, ui);
            let name = spec.get_str("name").unwrap_or_default().to_owned();
            if !collection
                .indexes
                .iter()
                .any(|i| i.get_str("name").ok() == Some(name.as_str()))
            {
                collection.indexes.push(spec);
            }
        }
        Ok(())
    }
}

/// A random version-4 UUID from the kernel.
pub(crate) fn random_uuid() -> [u8; 16] {
    let mut bytes = random_bytes::<16>();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    bytes
}

/// Random bytes from `/dev/urandom`.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    if let Ok(mut file) = File::open("/dev/urandom") {
        let _ = file.read_exact(&mut bytes);
    }
    bytes
}

/// A UUID as BSON binary subtype 4.
pub(crate) fn uuid_bson(uuid: [u8; 16]) -> Bson {
    Bson::Binary(bson::Binary {
        subtype: BinarySubtype::Uuid,
        bytes: uuid.to_vec(),
    })
}

/// The persistent, node-local state that is not in the oplog.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct LocalState {
    /// The installed replica-set config (`local.system.replset`).
    pub(crate) config: Option<Document>,
    /// The current term.
    pub(crate) term: i64,
    /// The member voted for in `voted_term`.
    pub(crate) voted_for: Option<i32>,
    /// The term of that vote.
    pub(crate) voted_term: i64,
}

impl LocalState {
    fn to_doc(&self) -> Document {
        let mut doc = doc! {"term": self.term, "votedTerm": self.voted_term};
        if let Some(config) = &self.config {
            doc.insert("config", config.clone());
        }
        if let Some(id) = self.voted_for {
            doc.insert("votedFor", id);
        }
        doc
    }

    fn from_doc(doc: &Document) -> LocalState {
        LocalState {
            config: doc.get_document("config").ok().cloned(),
            term: doc.get_i64("term").unwrap_or(0),
            voted_for: doc.get_i32("votedFor").ok(),
            voted_term: doc.get_i64("votedTerm").unwrap_or(0),
        }
    }
}

/// The files in `dbPath`.
#[derive(Debug)]
pub(crate) struct Store {
    dir: PathBuf,
    journal: File,
    sync: Arc<JournalSync>,
    _lock: File,
}

/// A journal write not yet synced: what a writer syncs, outside the
/// node's lock, before acknowledging.
#[derive(Debug)]
pub(crate) struct Pending {
    sync: Arc<JournalSync>,
    offset: u64,
}

impl Pending {
    /// Makes the write durable.
    pub(crate) fn sync(&self) -> std::io::Result<()> {
        self.sync.sync_to(self.offset)
    }
}

/// Making journal writes durable, apart from the node's lock: entries are
/// written to the journal under the lock, and the writer then syncs after
/// letting the lock go, so that heartbeats, votes and reads never wait
/// behind an fsync. One sync covers every write before it (group commit).
#[derive(Debug)]
pub(crate) struct JournalSync {
    file: File,
    written: std::sync::atomic::AtomicU64,
    synced: std::sync::Mutex<u64>,
}

impl JournalSync {
    fn new(file: File, len: u64) -> Arc<JournalSync> {
        Arc::new(JournalSync {
            file,
            written: std::sync::atomic::AtomicU64::new(len),
            synced: std::sync::Mutex::new(len),
        })
    }

    /// Makes the journal durable at least up to byte `offset`.
    fn sync_to(&self, offset: u64) -> std::io::Result<()> {
        let mut synced = self.synced.lock().unwrap_or_else(|e| e.into_inner());
        if *synced >= offset {
            return Ok(());
        }
        // Everything written before this load is covered by the sync.
        let target = self.written.load(std::sync::atomic::Ordering::Acquire);
        self.file.sync_data()?;
        *synced = target;
        Ok(())
    }
}

/// What `Store::open` found.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// The store.
    pub(crate) store: Store,
    /// The oplog, in order.
    pub(crate) oplog: Vec<Entry>,
    /// The data after replaying it.
    pub(crate) data: Data,
    /// Config, term, vote.
    pub(crate) local: LocalState,
    /// Bytes cut off a torn journal tail, if any.
    pub(crate) truncated_tail: u64,
}

/// Why `dbPath` cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum StoreError {
    /// The directory or a file could not be opened or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Another process uses the directory.
    #[error(
        "Unable to lock the lock file: {0}: another mongod (or mongo-sim) instance is already \
         running on the dbpath"
    )]
    Locked(PathBuf),
    /// The journal holds an entry that cannot be applied.
    #[error("cannot replay the journal in {path}: {detail}")]
    Corrupt {
        /// The journal.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

impl Store {
    /// Opens (creating if needed) the files in `dir`, takes the lock, and
    /// replays the journal.
    pub(crate) fn open(dir: &Path) -> Result<Loaded, StoreError> {
        let io = |action: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io {
                action,
                path,
                source,
            }
        };
        if !dir.is_dir() {
            return Err(StoreError::Io {
                action: "Data directory",
                path: dir.to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "not found. Create the missing directory or specify another path using \
                     (1) the --dbpath command line option, or (2) by adding the 'storage.dbPath' \
                     option in the configuration file.",
                ),
            });
        }
        let lock_path = dir.join("mongod.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("cannot open", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(StoreError::Locked(lock_path)),
            Err(fs::TryLockError::Error(e)) => return Err(io("cannot lock", &lock_path)(e)),
        }
        let mut lock_file = &lock;
        let _ = lock_file.write_all(format!("{}\n", std::process::id()).as_bytes());

        let journal_path = dir.join("journal.bson");
        let mut oplog = Vec::new();
        let mut data = Data::default();
        let mut good_len: u64 = 0;
        let mut total_len: u64 = 0;
        if journal_path.exists() {
            let file = File::open(&journal_path).map_err(io("cannot open", &journal_path))?;
            total_len = file.metadata().map(|m| m.len()).unwrap_or(0);
            let mut reader = BufReader::new(file);
            loop {
                let mut len_bytes = [0u8; 4];
                if reader.read_exact(&mut len_bytes).is_err() {
                    break;
                }
                let len = i32::from_le_bytes(len_bytes);
                if len < 5 || len as u64 > total_len - good_len {
                    break;
                }
                let mut buf = vec![0u8; len as usize];
                buf[..4].copy_from_slice(&len_bytes);
                if reader.read_exact(&mut buf[4..]).is_err() {
                    break;
                }
                // Read whole once, so a damaged entry ends the replay here.
                if Document::from_reader(&buf[..]).is_err() {
                    break;
                }
                let Some(entry) = RawDocumentBuf::from_bytes(buf)
                    .ok()
                    .and_then(Entry::from_raw)
                else {
                    break;
                };
                data.apply(&entry).map_err(|e| StoreError::Corrupt {
                    path: journal_path.clone(),
                    detail: e.message,
                })?;
                oplog.push(entry);
                good_len += len as u64;
            }
        }
        let journal = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&journal_path)
            .map_err(io("cannot open", &journal_path))?;
        if good_len < total_len {
            journal
                .set_len(good_len)
                .map_err(io("cannot truncate", &journal_path))?;
        }
        let local_path = dir.join("local.bson");
        let local = match fs::read(&local_path) {
            Ok(bytes) => Document::from_reader(&bytes[..])
                .map(|d| LocalState::from_doc(&d))
                .unwrap_or_default(),
            Err(_) => LocalState::default(),
        };
        let sync = JournalSync::new(
            journal
                .try_clone()
                .map_err(io("cannot open", &journal_path))?,
            good_len,
        );
        Ok(Loaded {
            store: Store {
                dir: dir.to_owned(),
                journal,
                sync,
                _lock: lock,
            },
            oplog,
            data,
            local,
            truncated_tail: total_len - good_len,
        })
    }

    /// Appends entries to the journal (written, not yet synced): returns
    /// the sync handle and the offset to sync to before acknowledging them.
    pub(crate) fn append(&mut self, entries: &[Entry]) -> std::io::Result<Pending> {
        let mut buf = Vec::new();
        for entry in entries {
            buf.extend_from_slice(entry.raw.as_bytes());
        }
        self.journal.write_all(&buf)?;
        let offset = self
            .sync
            .written
            .fetch_add(buf.len() as u64, std::sync::atomic::Ordering::AcqRel)
            + buf.len() as u64;
        Ok(Pending {
            sync: self.sync.clone(),
            offset,
        })
    }

    /// Rewrites the journal to hold exactly `entries` (after a rollback).
    pub(crate) fn rewrite(&mut self, entries: &[Entry]) -> std::io::Result<()> {
        let path = self.dir.join("journal.bson");
        let tmp = self.dir.join("journal.bson.tmp");
        {
            let mut file = File::create(&tmp)?;
            let mut buf = Vec::new();
            for entry in entries {
                buf.extend_from_slice(entry.raw.as_bytes());
            }
            file.write_all(&buf)?;
            file.sync_all()?;
        }
        fs::rename(&tmp, &path)?;
        self.journal = OpenOptions::new().append(true).read(true).open(&path)?;
        let len = self.journal.metadata()?.len();
        self.sync = JournalSync::new(self.journal.try_clone()?, len);
        Ok(())
    }

    /// Saves config, term and vote atomically.
    pub(crate) fn save_local(&self, local: &LocalState) -> std::io::Result<()> {
        let path = self.dir.join("local.bson");
        let tmp = self.dir.join("local.bson.tmp");
        let mut buf = Vec::new();
        local
            .to_doc()
            .to_writer(&mut buf)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        {
            let mut file = File::create(&tmp)?;
            file.write_all(&buf)?;
            file.sync_all()?;
        }
        fs::rename(&tmp, &path)
    }
}

/// Compares two BSON values the way MongoDB sorts them: by type bracket,
/// then value.
pub(crate) fn compare_bson(a: &Bson, b: &Bson) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    fn bracket(value: &Bson) -> u8 {
        match value {
            Bson::MinKey => 0,
            Bson::Null | Bson::Undefined => 1,
            Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => 2,
            Bson::String(_) | Bson::Symbol(_) => 3,
            Bson::Document(_) => 4,
            Bson::Array(_) => 5,
            Bson::Binary(_) => 6,
            Bson::ObjectId(_) => 7,
            Bson::Boolean(_) => 8,
            Bson::DateTime(_) => 9,
            Bson::Timestamp(_) => 10,
            Bson::RegularExpression(_) => 11,
            Bson::MaxKey => 13,
            _ => 12,
        }
    }
    fn number(value: &Bson) -> f64 {
        match value {
            Bson::Int32(i) => f64::from(*i),
            Bson::Int64(i) => *i as f64,
            Bson::Double(f) => *f,
            _ => 0.0,
        }
    }
    let (ba, bb) = (bracket(a), bracket(b));
    if ba != bb {
        return ba.cmp(&bb);
    }
    match (a, b) {
        (Bson::String(x), Bson::String(y)) => x.cmp(y),
        (Bson::ObjectId(x), Bson::ObjectId(y)) => x.bytes().cmp(&y.bytes()),
        (Bson::Boolean(x), Bson::Boolean(y)) => x.cmp(y),
        (Bson::DateTime(x), Bson::DateTime(y)) => x.cmp(y),
        (Bson::Timestamp(x), Bson::Timestamp(y)) => {
            (x.time, x.increment).cmp(&(y.time, y.increment))
        }
        (Bson::Binary(x), Bson::Binary(y)) => (x.bytes.len(), u8::from(x.subtype), &x.bytes)
            .cmp(&(y.bytes.len(), u8::from(y.subtype), &y.bytes)),
        (Bson::Document(x), Bson::Document(y)) => {
            // As mongod's BSONElement::woCompare: each element's canonical
            // type, then its field name, then its value.
            for ((ka, va), (kb, vb)) in x.iter().zip(y.iter()) {
                let by_type = bracket(va).cmp(&bracket(vb));
                if by_type != Ordering::Equal {
                    return by_type;
                }
                let by_key = ka.cmp(kb);
                if by_key != Ordering::Equal {
                    return by_key;
                }
                let by_value = compare_bson(va, vb);
                if by_value != Ordering::Equal {
                    return by_value;
                }
            }
            x.len().cmp(&y.len())
        }
        (Bson::Array(x), Bson::Array(y)) => {
            for (va, vb) in x.iter().zip(y.iter()) {
                let by_value = compare_bson(va, vb);
                if by_value != Ordering::Equal {
                    return by_value;
                }
            }
            x.len().cmp(&y.len())
        }
        _ if ba == 2 => number(a).partial_cmp(&number(b)).unwrap_or(Ordering::Equal),
        _ => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests;
