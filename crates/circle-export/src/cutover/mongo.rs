//! The final pass's MongoDB half. Each collection's MD5 (`dbHash`, which
//! both the old server and the new set compute over the documents in
//! `_id` order, server-side) says whether it changed at all; a changed
//! one is read on the source in `_id` order and merged, document by
//! document, with the record of what the target holds (its key file,
//! [`Against::Record`]) or, without one, with the target's documents read
//! in the same order ([`Against::Target`]): a document only the source has
//! is inserted, one only the other side has is deleted, one that differs
//! is replaced (deleted, then inserted as the source's bytes, so the
//! target holds it byte-identical). Indexes are compared by name.
//! Afterwards each changed collection's MD5 on the target must equal the
//! source's.

use std::cmp::Ordering;
use std::collections::{BTreeMap, VecDeque};

use bson::{Bson, Document, RawDocumentBuf, doc};
use futures_util::TryStreamExt as _;
use mongodb::options::{Acknowledgment, WriteConcern};

use std::path::PathBuf;

use super::keys::{self, DigestKey, KeyReader, KeyWriter};
use super::order;
use super::{Change, Moved};
use crate::count::MAX_DOCUMENT;
use crate::error::Error;
use crate::failover::Failover;
use crate::target::MongoReader;

/// Documents sent per insert (and `_id`s per delete).
const BATCH_DOCUMENTS: usize = 1000;
/// Bytes of documents sent per insert.
const BATCH_BYTES: usize = 8 * 1024 * 1024;

/// The `dbHash` MD5 of each of `names` in `db` (absent: no such collection).
pub(super) async fn source_hashes(
    source: &MongoReader,
    db: &str,
    names: &[String],
) -> Result<BTreeMap<String, String>, Error> {
    let command = doc! {"dbHash": 1, "collections": names};
    let reply: Document = match source {
        MongoReader::Driver(client) => client
            .database(db)
            .run_command(command)
            .await
            .map_err(Error::mongo(format!("dbHash on the source's {db}")))?,
        MongoReader::Wire(wire) => {
            let raw = wire
                .command(db, command)
                .await
                .map_err(crate::wire::failed(
                    wire.address(),
                    format!("dbHash on {db}"),
                ))?;
            Document::try_from(raw.as_ref())
                .map_err(|e| Error::Invalid(format!("dbHash on the source's {db}: {e}")))?
        }
    };
    Ok(hashes_of(&reply))
}

/// The `dbHash` MD5 of each of `names` in the target's `db`.
pub(super) async fn target_hashes(
    client: &mongodb::Client,
    db: &str,
    names: &[String],
    failover: &Failover<'_>,
) -> Result<BTreeMap<String, String>, Error> {
    let database = client.database(db);
    let command = doc! {"dbHash": 1, "collections": names};
    let reply = failover
        .command(&format!("dbHash on the target's {db}"), || {
            database.run_command(command.clone())
        })
        .await?;
    Ok(hashes_of(&reply))
}

fn hashes_of(reply: &Document) -> BTreeMap<String, String> {
    reply
        .get_document("collections")
        .map(|c| {
            c.iter()
                .filter_map(|(k, v)| v.as_str().map(|h| (k.clone(), h.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Index specs by name, without what differs between versions for the
/// same index (`v`, `ns`).
fn specs_by_name(specs: Vec<Document>) -> BTreeMap<String, Document> {
    specs
        .into_iter()
        .filter_map(|mut spec| {
            spec.remove("v");
            spec.remove("ns");
            let name = spec.get_str("name").ok()?.to_owned();
            Some((name, spec))
        })
        .collect()
}

/// Whether two specs describe the same index (top-level fields in any
/// order; the key pattern's order matters).
fn same_index(a: &Document, b: &Document) -> bool {
    // A document's `==` ignores field order; a key pattern's order is
    // what the index is, so values compare as their bytes.
    let bytes = |v: &Bson| bson::to_vec(&doc! {"v": v}).unwrap_or_default();
    a.len() == b.len()
        && a.iter()
            .all(|(k, v)| b.get(k).is_some_and(|w| bytes(v) == bytes(w)))
}

/// The source collection's index specs.
async fn source_indexes(
    source: &MongoReader,
    db: &str,
    coll: &str,
) -> Result<Vec<Document>, Error> {
    match source {
        MongoReader::Driver(client) => client
            .database(db)
            .run_cursor_command(doc! {"listIndexes": coll})
            .await
            .map_err(Error::mongo(format!(
                "listIndexes on the source's {db}.{coll}"
            )))?
            .try_collect()
            .await
            .map_err(Error::mongo(format!(
                "listIndexes on the source's {db}.{coll}"
            ))),
        MongoReader::Wire(wire) => wire.indexes(db, coll).await,
    }
}

/// The target collection's index specs (none if it does not exist).
async fn target_indexes(
    client: &mongodb::Client,
    db: &str,
    coll: &str,
) -> Result<Vec<Document>, Error> {
    let listed = client
        .database(db)
        .run_cursor_command(doc! {"listIndexes": coll})
        .await;
    match listed {
        Ok(cursor) => cursor.try_collect().await.map_err(Error::mongo(format!(
            "listIndexes on the target's {db}.{coll}"
        ))),
        // 26 NamespaceNotFound: not there (yet).
        Err(e) if matches!(*e.kind, mongodb::error::ErrorKind::Command(ref c) if c.code == 26) => {
            Ok(Vec::new())
        }
        Err(e) => Err(Error::mongo(format!(
            "listIndexes on the target's {db}.{coll}"
        ))(e)),
    }
}

/// Makes the target's indexes on `db.coll` those of the source: creates
/// what is missing, drops what the source no longer has, replaces what
/// differs (never `_id_`). Returns the changes (to make, for a dry run).
pub(super) async fn sync_indexes(
    source: &MongoReader,
    target: &mongodb::Client,
    db: &str,
    coll: &str,
    dry_run: bool,
    failover: &Failover<'_>,
) -> Result<Vec<Change>, Error> {
    let wanted = specs_by_name(source_indexes(source, db, coll).await?);
    let held = specs_by_name(target_indexes(target, db, coll).await?);
    let mut drop = Vec::new();
    let mut create = Vec::new();
    for (name, spec) in &held {
        match wanted.get(name) {
            _ if name == "_id_" => {}
            None => drop.push(name.clone()),
            Some(want) if !same_index(want, spec) => {
                drop.push(name.clone());
                create.push(want.clone());
            }
            Some(_) => {}
        }
    }
    for (name, spec) in &wanted {
        if name != "_id_" && !held.contains_key(name) {
            create.push(spec.clone());
        }
    }
    let mut changes = Vec::new();
    let database = target.database(db);
    for name in drop {
        if !dry_run {
            let command = doc! {"dropIndexes": coll, "index": &name};
            failover
                .command(&format!("dropIndexes {name} on {db}.{coll}"), || {
                    let database = database.clone();
                    let command = command.clone();
                    async move {
                        match database.run_command(command).await {
                            // 27 IndexNotFound: dropped by an earlier run.
                            Err(e) if matches!(*e.kind, mongodb::error::ErrorKind::Command(ref c) if c.code == 27) => Ok(()),
                            other => other.map(|_| ()),
                        }
                    }
                })
                .await?;
        }
        changes.push(Change::new(
            "drop-index",
            format!("mongo {db}.{coll} index {name}"),
            "the source no longer has it",
        ));
    }
    for spec in create {
        let name = spec.get_str("name").unwrap_or_default().to_owned();
        if !dry_run {
            let command = doc! {"createIndexes": coll, "indexes": [spec.clone()]};
            failover
                .command(&format!("createIndexes {name} on {db}.{coll}"), || {
                    database.run_command(command.clone())
                })
                .await?;
        }
        changes.push(Change::new(
            "create-index",
            format!("mongo {db}.{coll} index {name}"),
            format!("{}", spec.get_document("key").cloned().unwrap_or_default()),
        ));
    }
    Ok(changes)
}

/// A document as the merge sees it: its `_id`, its bytes, and (when the
/// merge digests) its digest.
pub(super) struct Read {
    id: Bson,
    document: RawDocumentBuf,
    digest: Option<u128>,
}

impl Read {
    /// Reads `document`'s `_id` and digests it under `key`.
    fn of(document: RawDocumentBuf, key: Option<&DigestKey>, what: &str) -> Result<Read, Error> {
        let id = document
            .get("_id")
            .ok()
            .flatten()
            .and_then(|v| Bson::try_from(v).ok())
            .ok_or_else(|| Error::Invalid(format!("{what}: a document without an _id")))?;
        let digest = key.map(|k| k.digest(document.as_bytes()));
        Ok(Read {
            id,
            document,
            digest,
        })
    }
}

/// A driver's cursor, pulled a document at a time, each read and digested
/// on the reading task.
struct DriverCursor {
    cursor: mongodb::Cursor<RawDocumentBuf>,
    key: Option<DigestKey>,
    what: String,
}

impl super::Pull for DriverCursor {
    type Item = Read;

    async fn pull(&mut self) -> Result<Option<Read>, Error> {
        let document = self
            .cursor
            .try_next()
            .await
            .map_err(Error::mongo(format!("reading {}", self.what)))?;
        document
            .map(|d| Read::of(d, self.key.as_ref(), &self.what))
            .transpose()
    }
}

/// A stream of one side's documents in `_id` order, a batch at a time.
enum Sorted<'a> {
    /// A driver's cursor, read ahead on its own task.
    Driver(super::Ahead<Read>),
    Wire(Option<crate::wire::Cursor<'a>>, &'a crate::wire::WireSource),
}

impl Sorted<'_> {
    fn ahead(
        cursor: mongodb::Cursor<RawDocumentBuf>,
        key: Option<&DigestKey>,
        what: String,
    ) -> Sorted<'static> {
        Sorted::Driver(super::read_ahead(
            DriverCursor {
                cursor,
                key: key.cloned(),
                what,
            },
            BATCH_DOCUMENTS,
        ))
    }

    async fn next_batch(
        &mut self,
        key: Option<&DigestKey>,
        what: &str,
    ) -> Result<Option<Vec<Read>>, Error> {
        match self {
            Sorted::Driver(batches) => batches.recv().await.transpose(),
            Sorted::Wire(cursor, source) => {
                let Some(open) = cursor.as_mut() else {
                    return Ok(None);
                };
                let failed = crate::wire::failed(source.address(), format!("reading {what}"));
                match open.next_batch().await {
                    Ok(Some(reply)) => {
                        let documents = crate::wire::batch_documents(&reply).map_err(failed)?;
                        documents
                            .into_iter()
                            .map(|d| Read::of(d.to_raw_document_buf(), key, what))
                            .collect::<Result<Vec<_>, _>>()
                            .map(Some)
                    }
                    Ok(None) => Ok(None),
                    Err(e) => {
                        if let Some(open) = cursor.take() {
                            open.kill().await;
                        }
                        Err(failed(e))
                    }
                }
            }
        }
    }
}

async fn sorted_source<'a>(
    source: &'a MongoReader,
    db: &str,
    coll: &str,
    key: Option<&DigestKey>,
) -> Result<Sorted<'a>, Error> {
    match source {
        MongoReader::Driver(client) => client
            .database(db)
            .collection::<RawDocumentBuf>(coll)
            .find(doc! {})
            .sort(doc! {"_id": 1})
            .batch_size(BATCH_DOCUMENTS as u32)
            .await
            .map(|cursor| Sorted::ahead(cursor, key, format!("the source's {db}.{coll}")))
            .map_err(Error::mongo(format!("find on the source's {db}.{coll}"))),
        MongoReader::Wire(wire) => {
            let find = doc! {"find": coll, "sort": {"_id": 1}, "batchSize": BATCH_DOCUMENTS as i32};
            let cursor = wire.cursor(db, find).await.map_err(crate::wire::failed(
                wire.address(),
                format!("find on {db}.{coll}"),
            ))?;
            Ok(Sorted::Wire(Some(cursor), wire))
        }
    }
}

/// One side of the merge: its stream, what is read but not yet merged,
/// and the last `_id` seen (each must sort after the one before).
struct Side<'a> {
    docs: Sorted<'a>,
    key: Option<DigestKey>,
    buffered: VecDeque<Read>,
    last: Option<Bson>,
    done: bool,
    what: String,
}

impl<'a> Side<'a> {
    fn new(docs: Sorted<'a>, key: Option<&DigestKey>, what: String) -> Side<'a> {
        Side {
            docs,
            key: key.cloned(),
            buffered: VecDeque::new(),
            last: None,
            done: false,
            what,
        }
    }

    /// The next document's `_id`, reading a batch when needed.
    async fn peek(&mut self) -> Result<Option<&Bson>, Error> {
        while self.buffered.is_empty() && !self.done {
            match self.docs.next_batch(self.key.as_ref(), &self.what).await? {
                None => self.done = true,
                Some(batch) => {
                    for read in batch {
                        if let Some(last) = &self.last
                            && order::compare_ids(last, &read.id) != Some(Ordering::Less)
                        {
                            return Err(Error::Invalid(format!(
                                "{}: the _id {} does not sort after {last} as this reader \
                                 orders _ids (a Decimal128, array or other rare _id type): \
                                 the collection cannot be compared document by document — \
                                 replace it whole with a transfer that drops what the \
                                 target holds",
                                self.what, read.id
                            )));
                        }
                        self.last = Some(read.id.clone());
                        self.buffered.push_back(read);
                    }
                }
            }
        }
        Ok(self.buffered.front().map(|read| &read.id))
    }

    fn take(&mut self) -> Option<Read> {
        self.buffered.pop_front()
    }
}

/// Writes waiting to be sent: `_id`s to delete, then documents to insert.
struct Pending<'a> {
    collection: mongodb::Collection<RawDocumentBuf>,
    concern: WriteConcern,
    what: String,
    deletes: Vec<Bson>,
    inserts: Vec<RawDocumentBuf>,
    insert_bytes: usize,
    dry_run: bool,
    failover: &'a Failover<'a>,
}

impl Pending<'_> {
    fn full(&self) -> bool {
        self.deletes.len() >= BATCH_DOCUMENTS
            || self.inserts.len() >= BATCH_DOCUMENTS
            || self.insert_bytes >= BATCH_BYTES
    }

    /// Sends what is waiting: the deletes first (a replaced document is
    /// deleted, then inserted), then the inserts. Both are safe to send
    /// again: a rerun after a kill deletes what is gone already and finds
    /// what is there already.
    async fn flush(&mut self) -> Result<(), Error> {
        if self.dry_run {
            self.deletes.clear();
            self.inserts.clear();
            self.insert_bytes = 0;
            return Ok(());
        }
        if !self.deletes.is_empty() {
            let ids = std::mem::take(&mut self.deletes);
            let filter = doc! {"_id": {"$in": ids}};
            let (collection, concern) = (&self.collection, &self.concern);
            self.failover
                .command(&format!("delete from {}", self.what), || {
                    collection
                        .delete_many(filter.clone())
                        .write_concern(concern.clone())
                })
                .await?;
        }
        if !self.inserts.is_empty() {
            let batch = std::mem::take(&mut self.inserts);
            self.insert_bytes = 0;
            self.failover
                .insert_batch(&self.collection, &batch, &self.concern, &self.what)
                .await?;
        }
        Ok(())
    }
}

/// What the source's documents are merged with.
pub(super) enum Against {
    /// The target's documents, read in `_id` order.
    Target,
    /// The record of what the target holds (its key file): the target is
    /// not read at all.
    Record(KeyReader),
}

/// The other side of the merge: the target's documents or their record.
enum Held<'a> {
    Target(Side<'a>),
    Record {
        reader: KeyReader,
        head: Option<(Bson, u128)>,
        started: bool,
        key: Vec<u8>,
    },
}

/// A document on the other side: its bytes, or its recorded digest.
enum HeldDocument {
    Bytes(RawDocumentBuf),
    Digest(u128),
}

impl Held<'_> {
    async fn peek(&mut self) -> Result<Option<&Bson>, Error> {
        match self {
            Held::Target(side) => side.peek().await,
            Held::Record {
                reader,
                head,
                started,
                key,
            } => {
                if !*started {
                    *head = next_recorded(reader, key, None)?;
                    *started = true;
                }
                Ok(head.as_ref().map(|(id, _)| id))
            }
        }
    }

    fn take(&mut self) -> Result<Option<(Bson, HeldDocument)>, Error> {
        match self {
            Held::Target(side) => Ok(side
                .take()
                .map(|read| (read.id, HeldDocument::Bytes(read.document)))),
            Held::Record {
                reader, head, key, ..
            } => {
                let Some((id, digest)) = head.take() else {
                    return Ok(None);
                };
                *head = next_recorded(reader, key, Some(&id))?;
                Ok(Some((id, HeldDocument::Digest(digest))))
            }
        }
    }
}

/// The next `_id` of a key file, which must sort after `last`.
fn next_recorded(
    reader: &mut KeyReader,
    key: &mut Vec<u8>,
    last: Option<&Bson>,
) -> Result<Option<(Bson, u128)>, Error> {
    let Some(digest) = reader.next(key)? else {
        return Ok(None);
    };
    let id = keys::id_of(key).ok_or_else(|| reader.bad("a key that is not an _id"))?;
    if let Some(last) = last
        && order::compare_ids(last, &id) != Some(Ordering::Less)
    {
        return Err(reader.bad("its _ids out of order"));
    }
    Ok(Some((id, digest)))
}

/// Records a dumped collection (`data`, its documents in the dump's
/// order) into the key file `out`: each `_id` with its document's digest
/// under `key`, sorted as the server sorts `_id`s. `None` when an `_id` is
/// of a type this reader does not order (or a document has none): the
/// final pass then reads that collection on both sides.
pub(super) async fn record(
    data: PathBuf,
    out: PathBuf,
    key: DigestKey,
) -> Result<Option<keys::Sorted>, Error> {
    let shown = data.display().to_string();
    tokio::task::spawn_blocking(move || {
        use std::io::Read as _;
        let failed = |e| Error::io(data.display())(e);
        let mut input =
            std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&data).map_err(failed)?);
        let mut ids = keys::SortedIds::new(&out, &data);
        let mut buf = Vec::new();
        let mut at = 0u64;
        loop {
            let mut len = [0u8; 4];
            match input.read_exact(&mut len) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(failed(e)),
            }
            let n = i32::from_le_bytes(len);
            if !(5..=MAX_DOCUMENT as i32).contains(&n) {
                return Err(Error::Invalid(format!(
                    "{}: a document has an impossible length {n}",
                    data.display()
                )));
            }
            buf.resize(n as usize, 0);
            buf[..4].copy_from_slice(&len);
            input.read_exact(&mut buf[4..]).map_err(failed)?;
            let document = bson::RawDocument::from_bytes(&buf)
                .map_err(|e| Error::Invalid(format!("{}: {e}", data.display())))?;
            let id = document
                .get("_id")
                .ok()
                .flatten()
                .and_then(|v| Bson::try_from(v).ok());
            let Some(id) = id else {
                return Ok(None);
            };
            ids.push(id, key.digest(&buf), at, n as u32)?;
            at += n as u64;
        }
        ids.finish()
    })
    .await
    .map_err(|e| Error::Invalid(format!("recording {shown}: {e}")))?
}

/// Makes the target's `db.coll` hold the source's documents, merging them
/// in `_id` order with the target's (or with the record of them:
/// `against`); creates the collection (with the source's options) when the
/// target lacks it. A document the merge inserts or replaces is deleted
/// first, so a rerun after a kill finds nothing in its way. Source
/// documents are digested under `key` (needed against a record); with
/// `record` (a new key file), every source document's `_id` and digest is
/// written to it as it passes, and the file is returned unfinished for the
/// caller to keep once the pass is checked.
#[allow(clippy::too_many_arguments)]
pub(super) async fn diff_collection(
    source: &MongoReader,
    target: &crate::MongoConnection,
    db: &str,
    coll: &str,
    options: &Document,
    exists_on_target: bool,
    against: Against,
    key: Option<&DigestKey>,
    mut record: Option<KeyWriter>,
    dry_run: bool,
    failover: &Failover<'_>,
) -> Result<(Moved, Option<KeyWriter>), Error> {
    let what = format!("{db}.{coll}");
    if !exists_on_target && !dry_run {
        crate::mongo::create_collection(&target.client.database(db), coll, options, failover)
            .await?;
    }
    let concern = if target.replica_set {
        WriteConcern::builder()
            .w(Acknowledgment::Majority)
            .w_timeout(std::time::Duration::from_secs(120))
            .build()
    } else {
        WriteConcern::builder().w(Acknowledgment::Nodes(1)).build()
    };
    let collection = target
        .client
        .database(db)
        .collection::<RawDocumentBuf>(coll);
    let mut theirs = match against {
        Against::Target => {
            let target_docs = collection
                .find(doc! {})
                .sort(doc! {"_id": 1})
                .batch_size(BATCH_DOCUMENTS as u32)
                .await
                .map_err(Error::mongo(format!("find on the target's {what}")))?;
            Held::Target(Side::new(
                Sorted::ahead(target_docs, None, format!("the target's {what}")),
                None,
                format!("the target's {what}"),
            ))
        }
        Against::Record(reader) => Held::Record {
            reader,
            head: None,
            started: false,
            key: Vec::new(),
        },
    };
    let mut ours = Side::new(
        sorted_source(source, db, coll, key).await?,
        key,
        format!("the source's {what}"),
    );
    let mut pending = Pending {
        collection,
        concern,
        what: what.clone(),
        deletes: Vec::new(),
        inserts: Vec::new(),
        insert_bytes: 0,
        dry_run,
        failover,
    };
    let mut moved = Moved::default();
    loop {
        let source_id = ours.peek().await?.cloned();
        let target_id = theirs.peek().await?.cloned();
        let step = match (&source_id, &target_id) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(s), Some(t)) => order::compare_ids(s, t).ok_or_else(|| {
                Error::Invalid(format!(
                    "{what}: the _ids {s} and {t} cannot be ordered by this reader: replace the \
                     collection whole with a transfer that drops what the target holds"
                ))
            })?,
        };
        if step == Ordering::Greater {
            let (id, _) = theirs.take()?.expect("peeked");
            pending.deletes.push(id);
            moved.deleted += 1;
        } else {
            let Read {
                id,
                document,
                digest,
            } = ours.take().expect("peeked");
            if let (Some(out), Some(digest)) = (record.as_mut(), digest) {
                let raw_id = document
                    .get("_id")
                    .ok()
                    .flatten()
                    .expect("an _id: read by Side");
                out.push(&keys::id_key(raw_id), digest)?;
            }
            let differs = if step == Ordering::Equal {
                match theirs.take()?.expect("peeked").1 {
                    HeldDocument::Bytes(held) => held.as_bytes() != document.as_bytes(),
                    HeldDocument::Digest(held) => Some(held) != digest,
                }
            } else {
                true
            };
            if differs {
                if step == Ordering::Equal {
                    moved.replaced += 1;
                } else {
                    moved.inserted += 1;
                }
                pending.deletes.push(id);
                pending.insert_bytes += document.as_bytes().len();
                pending.inserts.push(document);
            }
        }
        if pending.full() {
            pending.flush().await?;
        }
    }
    pending.flush().await?;
    Ok((moved, record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_specs_compare_without_version_or_namespace_and_in_any_field_order() {
        let old = specs_by_name(vec![
            doc! {"v": 1, "unique": true, "key": {"a": 1, "b": -1}, "name": "a_1_b_-1", "ns": "d.c"},
        ]);
        let new = specs_by_name(vec![
            doc! {"v": 2, "key": {"a": 1, "b": -1}, "name": "a_1_b_-1", "unique": true},
        ]);
        assert!(same_index(&old["a_1_b_-1"], &new["a_1_b_-1"]));
        let reversed = specs_by_name(vec![
            doc! {"v": 2, "key": {"b": -1, "a": 1}, "name": "a_1_b_-1", "unique": true},
        ]);
        assert!(!same_index(&old["a_1_b_-1"], &reversed["a_1_b_-1"]));
    }
}
