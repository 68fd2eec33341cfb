//! The cutover in two steps, so that CircleCI is down only for what
//! changed. Days ahead, while the old services still run, `transfer` (a
//! *pre-copy*) moves everything and leaves its record beside the archive
//! ([`CutoverState`], `<archive>.state.json`) with, in [`keys_dir`], what
//! the target holds key by key: each collection's `_id`s and each keyed
//! table's keys in the server's order, each with a keyed digest of its
//! document or row ([`Digests`]). In the outage window, once the old
//! services are stopped, [`final_pass`] (`transfer --final`) reads the old
//! servers, compares them with that record, and moves only what differs;
//! the new servers are read only where something changed and to check:
//!
//! - MongoDB: each collection's MD5 (`dbHash`, computed by each server
//!   over its documents in `_id` order, so nothing crosses the wire for a
//!   collection that did not change); a changed collection is read on the
//!   source in `_id` order and merged with the record document by document
//!   (inserted, replaced as the source's exact bytes, deleted;
//!   `w: "majority"`, riding out a failover); indexes compared by name and
//!   created or dropped; a new collection created with the source's
//!   options; a collection the pre-copy copied that the source dropped is
//!   dropped.
//! - PostgreSQL: see [`postgres`](self) — rows read as binary `COPY` on
//!   the source, digested here as they pass and merged by primary key with
//!   the record, tables without a usable key compared by a digest sum and
//!   replaced whole, sequences set, one transaction per database.
//!
//! The source is only read (PostgreSQL in a read-only transaction). A
//! second pass finds nothing to move (`changed: 0`); a pass killed
//! half-way is finished by running it again (every MongoDB write can be
//! sent again; each PostgreSQL database commits whole or not at all; the
//! record is renewed only once a pass is checked). At the end the target
//! is checked, not assumed: each changed collection's MD5, every row
//! written and every table's row count are read back from the target and
//! compared with the source's. Where the target is not what its record
//! says (written to since), the pass says so in a warning and compares
//! with the target itself instead (a collection whose MD5 is wrong after
//! the merge; a table whose row count is not the record's, before it);
//! any difference left is reported as a mismatch.

mod keys;
mod mongo;
mod order;
mod postgres;
mod state;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use keys::{DigestKey, KeyReader, KeyWriter};
pub use order::compare_ids;
pub use state::{
    CutoverState, DatabaseDigests, Digests, FinalRecord, STATE_FORMAT, TableDigests, keys_dir,
    state_path,
};

use crate::error::Error;
use crate::failover::Failover;
use crate::transfer::{TransferMongo, TransferPostgres};

/// Documents or rows moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Moved {
    /// Added: only the source had them.
    pub inserted: u64,
    /// Replaced (documents) or updated (rows): both had them, differently.
    pub replaced: u64,
    /// Deleted: only the target had them.
    pub deleted: u64,
}

impl Moved {
    /// All three.
    pub fn total(&self) -> u64 {
        self.inserted + self.replaced + self.deleted
    }

    fn add(&mut self, other: Moved) {
        self.inserted += other.inserted;
        self.replaced += other.replaced;
        self.deleted += other.deleted;
    }
}

/// One thing the pass changed (or, in a dry run, would change).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// `update-collection`, `create-collection`, `drop-collection`,
    /// `create-index`, `drop-index`, `update-table`, `replace-table`,
    /// `set-sequence`.
    pub kind: String,
    /// What: `mongo db.collection`, `postgres db schema.table`, …
    pub target: String,
    /// How much: `3 inserted, 1 replaced, 2 deleted`, …
    pub detail: String,
}

impl Change {
    fn new(kind: &str, target: impl Into<String>, detail: impl Into<String>) -> Change {
        Change {
            kind: kind.to_owned(),
            target: target.into(),
            detail: detail.into(),
        }
    }
}

/// What to compare, and where the pre-copy's state is.
pub struct FinalSpec<'a> {
    /// MongoDB: the old server (stopped services, still answering) and
    /// the new set.
    pub mongo: Option<TransferMongo<'a>>,
    /// PostgreSQL: the old server and the new one.
    pub postgres: Option<TransferPostgres<'a>>,
    /// The pre-copy's state ([`state_path`] of its archive).
    pub state: std::path::PathBuf,
    /// Compare and report what would move; write nothing.
    pub dry_run: bool,
    /// Collections and databases compared at once.
    pub parallel: usize,
    /// How long a MongoDB write waits for a new primary after a failover.
    pub failover_wait: Duration,
}

/// What a final pass found and did.
#[derive(Clone, Debug, Default)]
pub struct FinalReport {
    /// Whether this was a dry run (nothing written).
    pub dry_run: bool,
    /// Every change, in the order made.
    pub changes: Vec<Change>,
    /// MongoDB documents moved.
    pub documents: Moved,
    /// PostgreSQL rows moved.
    pub rows: Moved,
    /// Collections and tables found identical on both sides.
    pub unchanged: usize,
    /// What still differs after the pass (empty: the targets equal the
    /// sources); never filled by a dry run.
    pub mismatches: Vec<String>,
    /// What the operator should know.
    pub warnings: Vec<String>,
    /// Wall time.
    pub seconds: f64,
    /// The state file read and updated.
    pub state: std::path::PathBuf,
}

/// Moves what changed since the pre-copy (see the module's description).
pub async fn final_pass(
    spec: FinalSpec<'_>,
    progress: ha_plan::Progress<'_>,
) -> Result<FinalReport, Error> {
    let started = Instant::now();
    let mut state = CutoverState::read(&spec.state)?;
    let mut digests = state.digests.clone().unwrap_or_default();
    let key = if digests.key.is_empty() {
        DigestKey::new()?
    } else {
        DigestKey::from_hex(&digests.key).ok_or_else(|| {
            Error::Invalid(format!(
                "{}: its digest key is not 64 hex digits: the state is damaged; run the \
                 pre-copy again",
                spec.state.display()
            ))
        })?
    };
    digests.key = key.to_hex();
    let files = if spec.dry_run {
        None
    } else {
        Some(KeyFiles::new(&spec.state)?)
    };
    let recorded = Recorded {
        dir: keys_dir(&spec.state),
        key: &key,
        digests: &digests,
        files: files.as_ref(),
    };
    let mut report = FinalReport {
        dry_run: spec.dry_run,
        state: spec.state.clone(),
        ..FinalReport::default()
    };
    let failover = Failover {
        wait: spec.failover_wait,
        progress,
    };
    let mongo_part = async {
        match &spec.mongo {
            Some(m) => mongo_pass(m, &state, &spec, &recorded, &failover, progress)
                .await
                .map(Some),
            None => Ok(None),
        }
    };
    let postgres_part = async {
        match &spec.postgres {
            Some(p) => postgres_pass(p, &state, &spec, &recorded, progress)
                .await
                .map(Some),
            None => Ok(None),
        }
    };
    let (mongo, postgres) = futures_util::try_join!(mongo_part, postgres_part)?;
    let mut renewed = digests.clone();
    for half in [mongo, postgres].into_iter().flatten() {
        report.documents.add(half.documents);
        report.rows.add(half.rows);
        report.changes.extend(half.changes);
        report.unchanged += half.unchanged;
        report.mismatches.extend(half.mismatches);
        report.warnings.extend(half.warnings);
        for (name, file) in half.collections {
            match file {
                Some(file) => renewed.collections.insert(name, file),
                None => renewed.collections.remove(&name),
            };
        }
        for (name, md5) in half.md5s {
            match md5 {
                Some(md5) => renewed.md5s.insert(name, md5),
                None => renewed.md5s.remove(&name),
            };
        }
        for (db, record) in half.databases {
            match record {
                Some(record) => renewed.databases.insert(db, record),
                None => renewed.databases.remove(&db),
            };
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    if !spec.dry_run {
        state.final_passes.push(FinalRecord {
            finished_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            changed: report.changes.len(),
            documents: report.documents.total(),
            rows: report.rows.total(),
        });
        state.digests = Some(renewed);
        state.write(&spec.state)?;
        state.prune(&spec.state)?;
    }
    progress(&format!(
        "final pass: {} change(s), {} documents and {} rows moved, {} unchanged, in {:.1}s",
        report.changes.len(),
        report.documents.total(),
        report.rows.total(),
        report.unchanged,
        report.seconds
    ));
    Ok(report)
}

/// A stream of items read one at a time (rows, documents).
pub(super) trait Pull: Send + 'static {
    /// What it yields.
    type Item: Send + 'static;
    /// The next item, `None` at the end.
    fn pull(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<Self::Item>, Error>> + Send;
}

/// Batches of a [`Pull`] read ahead, or why the reading stopped.
pub(super) type Ahead<T> = tokio::sync::mpsc::Receiver<Result<Vec<T>, Error>>;

/// Reads `source` on its own task, up to two batches of `batch` items
/// ahead: the reading and parsing run on whichever core is free while the
/// merge consumes. Dropping the receiver stops the reading.
pub(super) fn read_ahead<P: Pull>(mut source: P, batch: usize) -> Ahead<P::Item> {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::spawn(async move {
        loop {
            let mut items = Vec::with_capacity(batch);
            let mut end = false;
            while items.len() < batch {
                match source.pull().await {
                    Ok(Some(item)) => items.push(item),
                    Ok(None) => {
                        end = true;
                        break;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
            if (!items.is_empty() && tx.send(Ok(items)).await.is_err()) || end {
                return;
            }
        }
    });
    rx
}

/// Names and creates new key files in a state's [`keys_dir`] (made 0700
/// when missing). Names are fresh for each pre-copy or pass, so a file
/// the state names is never written over: a kill leaves the old state
/// whole.
pub(crate) struct KeyFiles {
    dir: PathBuf,
    prefix: String,
    next: AtomicUsize,
}

impl KeyFiles {
    /// The key files of the state at `state`.
    pub(crate) fn new(state: &Path) -> Result<KeyFiles, Error> {
        use std::os::unix::fs::DirBuilderExt as _;
        let dir = keys_dir(state);
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {}
            Err(e) => return Err(Error::io(dir.display())(e)),
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Ok(KeyFiles {
            dir,
            prefix: format!("{nanos:x}"),
            next: AtomicUsize::new(0),
        })
    }

    /// A new file's name and path.
    fn allocate(&self) -> (String, PathBuf) {
        let n = self.next.fetch_add(1, AtomicOrdering::Relaxed);
        let name = format!("{}-{n}.keys", self.prefix);
        let path = self.dir.join(&name);
        (name, path)
    }

    /// A new file, open for writing.
    fn create(&self) -> Result<(String, KeyWriter), Error> {
        let (name, path) = self.allocate();
        Ok((name, KeyWriter::create(&path)?))
    }
}

/// Opens the key file `name` of the state whose directory is `dir`;
/// `None` when it is not there (the collection or table is then read on
/// both sides).
fn open_recorded(dir: &Path, name: &str) -> Result<Option<KeyReader>, Error> {
    // Names come from the state file: only a plain file name is used.
    if name.contains('/') || name.starts_with('.') {
        return Ok(None);
    }
    let path = dir.join(name);
    if !path.is_file() {
        return Ok(None);
    }
    KeyReader::open(&path).map(Some)
}

/// Records, while a pre-copy runs, what the target holds key by key
/// ([`Digests`]): each collection from its dump, each PostgreSQL database
/// from the target once its load committed.
pub(crate) struct Recorder {
    files: KeyFiles,
    key: DigestKey,
    digests: std::sync::Mutex<Digests>,
}

impl Recorder {
    /// A recorder for the state at `state`, under a new random key.
    pub(crate) fn new(state: &Path) -> Result<Recorder, Error> {
        let key = DigestKey::new()?;
        Ok(Recorder {
            files: KeyFiles::new(state)?,
            digests: std::sync::Mutex::new(Digests {
                key: key.to_hex(),
                ..Digests::default()
            }),
            key,
        })
    }

    /// Records collection `db.coll` from its dump's documents (`data`).
    pub(crate) async fn mongo(&self, db: &str, coll: &str, data: &Path) -> Result<(), Error> {
        let (name, path) = self.files.allocate();
        if let Some(sorted) = mongo::record(data.to_owned(), path, self.key.clone()).await? {
            let mut digests = self.digests.lock().expect("not poisoned");
            let key = format!("{db}.{coll}");
            if let Some(md5) = sorted.md5 {
                digests.md5s.insert(key.clone(), md5);
            }
            digests.collections.insert(key, name);
        }
        Ok(())
    }

    /// Records PostgreSQL database `db` as the target holds it.
    pub(crate) async fn postgres(
        &self,
        source: &crate::PgClient,
        target: &crate::PgClient,
        db: &str,
    ) -> Result<(), Error> {
        let recorded = postgres::record(source, target, db, &self.key, &self.files).await?;
        self.digests
            .lock()
            .expect("not poisoned")
            .databases
            .insert(db.to_owned(), recorded);
        Ok(())
    }

    /// What was recorded.
    pub(crate) fn digests(&self) -> Digests {
        self.digests.lock().expect("not poisoned").clone()
    }
}

/// Refuses a source whose version is not the one the pre-copy read.
fn same_server(what: &str, version: &str, precopy: &Option<String>) -> Result<(), Error> {
    match precopy {
        Some(was) if was != version => Err(Error::Invalid(format!(
            "the {what} source runs {version}, the pre-copy read {was}: not the server the \
             pre-copy copied"
        ))),
        _ => Ok(()),
    }
}

/// One half's result.
#[derive(Default)]
struct Half {
    documents: Moved,
    rows: Moved,
    changes: Vec<Change>,
    unchanged: usize,
    mismatches: Vec<String>,
    warnings: Vec<String>,
    /// Key files renewed (`None`: no longer recorded), by `db.collection`.
    collections: Vec<(String, Option<String>)>,
    /// MD5s renewed (`None`: no longer recorded), by `db.collection`.
    md5s: Vec<(String, Option<String>)>,
    /// Databases' records renewed (`None`: no longer recorded).
    databases: Vec<(String, Option<DatabaseDigests>)>,
}

/// The state's record of the target, as a pass reads and renews it.
struct Recorded<'a> {
    /// Where its key files are.
    dir: PathBuf,
    /// The key of its digests.
    key: &'a DigestKey,
    digests: &'a Digests,
    /// Where new key files go (`None`: a dry run writes none).
    files: Option<&'a KeyFiles>,
}

async fn mongo_pass(
    m: &TransferMongo<'_>,
    state: &CutoverState,
    spec: &FinalSpec<'_>,
    recorded: &Recorded<'_>,
    failover: &Failover<'_>,
    progress: ha_plan::Progress<'_>,
) -> Result<Half, Error> {
    same_server(
        "MongoDB",
        &m.source.server_version().await?,
        &state.mongo_version,
    )?;
    let collections: Vec<_> = m
        .source
        .list_collections(&m.databases)
        .await?
        .into_iter()
        .filter(|c| !c.view)
        .collect();
    let mut half = Half::default();
    // Collections the pre-copy copied that the source no longer has.
    let mut held: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for key in state.collections.keys() {
        let Some((db, coll)) = key.split_once('.') else {
            continue;
        };
        if collections.iter().any(|c| c.db == db && c.name == coll) {
            continue;
        }
        if !held.contains_key(db) {
            let names = m
                .target
                .client
                .database(db)
                .list_collection_names()
                .await
                .map_err(Error::mongo(format!(
                    "listCollections on the target's {db}"
                )))?;
            held.insert(db.to_owned(), names);
        }
        if !held[db].iter().any(|n| n == coll) {
            continue;
        }
        if !spec.dry_run {
            let target = m
                .target
                .client
                .database(db)
                .collection::<bson::Document>(coll);
            failover
                .command(&format!("drop {db}.{coll}"), || target.drop())
                .await?;
        }
        progress(&format!(
            "mongo {db}.{coll}: dropped (the source no longer has it)"
        ));
        half.changes.push(Change::new(
            "drop-collection",
            format!("mongo {db}.{coll}"),
            "the source dropped it after the pre-copy",
        ));
        half.collections.push((key.clone(), None));
        half.md5s.push((key.clone(), None));
    }
    // Each collection on its own, several at once: its MD5 on both sides;
    // when they differ, the merge, then the check.
    let outcomes = crate::mongo::for_each_parallel(collections, spec.parallel, |c| async move {
        collection_pass(m, &c, spec, recorded, failover, progress).await
    })
    .await?;
    for outcome in outcomes {
        half.documents.add(outcome.documents);
        half.changes.extend(outcome.changes);
        half.unchanged += outcome.unchanged;
        half.mismatches.extend(outcome.mismatches);
        half.warnings.extend(outcome.warnings);
        half.collections.extend(outcome.collections);
        half.md5s.extend(outcome.md5s);
    }
    Ok(half)
}

/// One collection of the MongoDB half: compared by MD5 on both sides
/// (`dbHash`); when they differ, merged with the record of the target (or
/// the target's documents), then checked (see the module's description).
async fn collection_pass(
    m: &TransferMongo<'_>,
    c: &crate::mongo::SourceCollection,
    spec: &FinalSpec<'_>,
    recorded: &Recorded<'_>,
    failover: &Failover<'_>,
    progress: ha_plan::Progress<'_>,
) -> Result<Half, Error> {
    let (db, name) = (&c.db, &c.name);
    let names = [name.clone()];
    let key = format!("{db}.{name}");
    let what = format!("mongo {key}");
    let mut half = Half::default();
    // The source's MD5 first: when it differs from the one recorded for
    // the target, the collection changed and the target's is not needed
    // before the merge (the one after it checks). Otherwise both, and
    // the same MD5 on both sides is a collection left as it is.
    let ours = mongo::source_hashes(m.source, db, &names)
        .await?
        .get(name)
        .cloned();
    let was = recorded.digests.md5s.get(&key);
    let file = recorded.digests.collections.get(&key);
    let changed_since = ours.is_some() && was.is_some() && ours.as_ref() != was && file.is_some();
    let theirs = if changed_since {
        was.cloned()
    } else {
        mongo::target_hashes(&m.target.client, db, &names, failover)
            .await?
            .get(name)
            .cloned()
    };
    // The same as its record on the source, but not on the target: the
    // target was written to since; compare with its documents.
    let target_changed = !changed_since && was.is_some() && ours.as_ref() == was && theirs != ours;
    if target_changed {
        half.warnings.push(format!(
            "{what}: the target differs from the record of what it held (was it written to \
             after the pre-copy?); compared with the target's documents"
        ));
    }
    let mut check = None;
    if ours.is_none() || ours != theirs {
        // Against the record of the target when there is one: the target
        // is then not read (its MD5 after the pass checks it).
        let against = match file {
            Some(file) if theirs.is_some() && !target_changed => {
                open_recorded(&recorded.dir, file)?
            }
            _ => None,
        };
        let by_record = against.is_some();
        let (file, writer) = match recorded.files.map(KeyFiles::create).transpose()? {
            Some((file, writer)) => (Some(file), Some(writer)),
            None => (None, None),
        };
        let (moved, writer) = mongo::diff_collection(
            m.source,
            m.target,
            db,
            name,
            &c.options,
            theirs.is_some(),
            against.map_or(mongo::Against::Target, mongo::Against::Record),
            Some(recorded.key),
            writer,
            spec.dry_run,
            failover,
        )
        .await?;
        if theirs.is_none() {
            half.changes.push(Change::new(
                "create-collection",
                what.clone(),
                format!("new since the pre-copy: {} documents", moved.inserted),
            ));
        } else if moved.total() > 0 {
            half.changes.push(Change::new(
                "update-collection",
                what.clone(),
                format!(
                    "{} inserted, {} replaced, {} deleted",
                    moved.inserted, moved.replaced, moved.deleted
                ),
            ));
        }
        progress(&format!(
            "{what}: {} inserted, {} replaced, {} deleted{}",
            moved.inserted,
            moved.replaced,
            moved.deleted,
            if spec.dry_run { " (dry run)" } else { "" }
        ));
        half.documents = moved;
        check = Some((by_record, file.zip(writer)));
    }
    half.changes.extend(
        mongo::sync_indexes(m.source, &m.target.client, db, name, spec.dry_run, failover).await?,
    );
    if check.is_none() {
        if half.changes.is_empty() {
            half.unchanged = 1;
        }
        half.md5s.push((key, ours));
        return Ok(half);
    }
    let Some((by_record, renewed)) = check.filter(|_| !spec.dry_run) else {
        return Ok(half);
    };
    // Checked: the collection has the source's MD5 now. One compared with
    // the record of the target that does not was written to on the target
    // since that record: it is compared again, with the target's
    // documents, and checked again.
    let mut now = mongo::target_hashes(&m.target.client, db, &names, failover).await?;
    if now.get(name) != ours.as_ref() && by_record {
        half.warnings.push(format!(
            "{what}: the target differed from the record of what it held (was it written to \
             after the pre-copy?); compared with the target's documents instead"
        ));
        let (moved, _) = mongo::diff_collection(
            m.source,
            m.target,
            db,
            name,
            &c.options,
            true,
            mongo::Against::Target,
            None,
            None,
            false,
            failover,
        )
        .await?;
        half.documents.add(moved);
        now = mongo::target_hashes(&m.target.client, db, &names, failover).await?;
    }
    if now.get(name) != ours.as_ref() {
        half.mismatches.push(format!(
            "{what}: after the pass the target's MD5 is {}, the source's {} (something wrote \
             to one of them during the pass?)",
            now.get(name).map_or("absent", String::as_str),
            ours.as_deref().unwrap_or("absent")
        ));
        half.collections.push((key.clone(), None));
        half.md5s.push((key, None));
    } else {
        if let Some((file, writer)) = renewed {
            writer.finish()?;
            half.collections.push((key.clone(), Some(file)));
        }
        half.md5s.push((key, ours));
    }
    Ok(half)
}

async fn postgres_pass(
    p: &TransferPostgres<'_>,
    state: &CutoverState,
    spec: &FinalSpec<'_>,
    recorded: &Recorded<'_>,
    progress: ha_plan::Progress<'_>,
) -> Result<Half, Error> {
    same_server(
        "PostgreSQL",
        &p.source.server_version().await?,
        &state.postgres_version,
    )?;
    let databases = p.source.databases(&p.databases).await?;
    let existing = p.target.databases(&[]).await?;
    let missing: Vec<&String> = databases.iter().filter(|d| !existing.contains(d)).collect();
    if !missing.is_empty() {
        return Err(Error::Invalid(format!(
            "PostgreSQL database(s) {} are not on the target: the final pass moves rows into \
             databases the pre-copy made; run `circle-export transfer` for them first",
            missing
                .iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let outcomes = crate::mongo::for_each_parallel(databases, spec.parallel, |db| async move {
        let outcome = postgres::pass(postgres::Pair {
            db: &db,
            source: p.source,
            target: p.target,
            dry_run: spec.dry_run,
            progress,
            recorded: recorded.digests.databases.get(&db),
            dir: &recorded.dir,
            key: recorded.key,
            files: recorded.files,
        })
        .await?;
        Ok((db, outcome))
    })
    .await?;
    let mut half = Half::default();
    for (db, outcome) in outcomes {
        half.rows.add(outcome.moved);
        half.changes.extend(outcome.changes);
        half.unchanged += outcome.unchanged;
        half.mismatches.extend(outcome.mismatches);
        half.warnings.extend(outcome.warnings);
        if !spec.dry_run {
            half.databases.push((db, outcome.recorded));
        }
    }
    Ok(half)
}
