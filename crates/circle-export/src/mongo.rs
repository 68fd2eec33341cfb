//! MongoDB: export in mongodump's layout (raw BSON, no re-encoding) and a
//! native restore (batched unordered inserts, indexes after the data,
//! collections in parallel).

use std::path::{Path, PathBuf};

use bson::{Bson, Document, RawDocumentBuf, doc};
use futures_util::{StreamExt as _, TryStreamExt as _};
use mongodb::Client;
use mongodb::options::{Acknowledgment, WriteConcern};
use tokio::io::AsyncReadExt as _;

use crate::count::MAX_DOCUMENT;
use crate::error::Error;
use crate::failover::Failover;
use crate::manifest::{CollectionEntry, FileEntry, bson_path, metadata_path};
use crate::meter::Meter;
use crate::spool::{HashedFile, WorkDir, write_whole};
use crate::wire::WireSource;

/// Databases never exported (users come from mongo-rs-setup).
pub const SYSTEM_DATABASES: [&str; 3] = ["admin", "local", "config"];

/// One collection found on the source.
#[derive(Clone, Debug)]
pub struct SourceCollection {
    /// Database.
    pub db: String,
    /// Collection.
    pub name: String,
    /// `listCollections` options.
    pub options: Document,
    /// `info.uuid` as hex, when the server has one.
    pub uuid: Option<String>,
    /// A view (`type: "view"`): exported as its definition only.
    pub view: bool,
}

/// The server's version (`buildInfo`).
pub async fn server_version(client: &Client) -> Result<String, Error> {
    let info = client
        .database("admin")
        .run_command(doc! {"buildInfo": 1})
        .await
        .map_err(Error::mongo("buildInfo"))?;
    Ok(info.get_str("version").unwrap_or("unknown").to_owned())
}

/// Roughly how many bytes of BSON `databases` hold (`dbStats`
/// `dataSize`), for a progress estimate; 0 where the server will not say.
pub async fn estimate_bytes(client: &Client, databases: &[String]) -> u64 {
    let mut total = 0u64;
    for db in databases {
        if let Ok(stats) = client.database(db).run_command(doc! {"dbStats": 1}).await {
            let size = match stats.get("dataSize") {
                Some(bson::Bson::Double(d)) => *d as u64,
                Some(bson::Bson::Int32(i)) => u64::try_from(*i).unwrap_or(0),
                Some(bson::Bson::Int64(i)) => u64::try_from(*i).unwrap_or(0),
                _ => 0,
            };
            total += size;
        }
    }
    total
}

/// The collections to export: every database but admin/local/config (or
/// only `only`), every collection but `system.*` and views.
pub async fn list_collections(
    client: &Client,
    only: &[String],
) -> Result<Vec<SourceCollection>, Error> {
    let names = client
        .list_database_names()
        .await
        .map_err(Error::mongo("listDatabases"))?;
    let mut out = Vec::new();
    for db in databases_to_export(&names, only)? {
        let reply = client
            .database(&db)
            .run_command(doc! {"listCollections": 1})
            .await
            .map_err(Error::mongo(format!("listCollections on {db}")))?;
        let batch = reply
            .get_document("cursor")
            .and_then(|c| c.get_array("firstBatch"))
            .cloned()
            .unwrap_or_default();
        let entries: Vec<Document> = batch
            .iter()
            .filter_map(Bson::as_document)
            .cloned()
            .collect();
        out.extend(collections_to_export(&db, &entries));
    }
    out.sort_by(|a, b| (&a.db, &a.name).cmp(&(&b.db, &b.name)));
    Ok(out)
}

/// The same as [`list_collections`], from an old server read by
/// [`crate::wire`].
pub async fn list_collections_wire(
    source: &WireSource,
    only: &[String],
) -> Result<Vec<SourceCollection>, Error> {
    let names = source.database_names().await?;
    let mut out = Vec::new();
    for db in databases_to_export(&names, only)? {
        let entries = source.collections(&db).await?;
        out.extend(collections_to_export(&db, &entries));
    }
    out.sort_by(|a, b| (&a.db, &a.name).cmp(&(&b.db, &b.name)));
    Ok(out)
}

/// Of the source's databases `names`, those to export: `only` (each of
/// which must exist), or all but admin/local/config.
fn databases_to_export(names: &[String], only: &[String]) -> Result<Vec<String>, Error> {
    for wanted in only {
        if !names.contains(wanted) {
            return Err(Error::NoSuchDatabase {
                server: "MongoDB",
                database: wanted.clone(),
                on: "the source".to_owned(),
                has: names.to_vec(),
            });
        }
    }
    Ok(names
        .iter()
        .filter(|db| {
            !SYSTEM_DATABASES.contains(&db.as_str()) && (only.is_empty() || only.contains(db))
        })
        .cloned()
        .collect())
}

/// Of `listCollections` `entries` of `db`, the collections and views to
/// export: not `system.*` (users, roles, `system.views` itself, profiling
/// data), not other kinds (4.4+'s `timeseries` buckets).
fn collections_to_export(db: &str, entries: &[Document]) -> Vec<SourceCollection> {
    let mut out = Vec::new();
    for entry in entries {
        let Ok(name) = entry.get_str("name") else {
            continue;
        };
        let kind = entry.get_str("type").unwrap_or("collection");
        if name.starts_with("system.") || !matches!(kind, "collection" | "view") {
            continue;
        }
        let uuid = entry
            .get_document("info")
            .ok()
            .and_then(|i| i.get("uuid"))
            .and_then(|u| match u {
                Bson::Binary(b) => Some(crate::spool::hex(&b.bytes)),
                _ => None,
            });
        out.push(SourceCollection {
            db: db.to_owned(),
            name: name.to_owned(),
            options: entry.get_document("options").cloned().unwrap_or_default(),
            uuid,
            view: kind == "view",
        });
    }
    out
}

/// Writes a view's definition into `dir` as mongodump does:
/// `<db>/<view>.metadata.json` holding `{"options": {"viewOn", "pipeline",
/// …}, "indexes": []}` and no documents (reading the view would copy its
/// source's data a second time).
pub async fn export_view(view: &SourceCollection, dir: &WorkDir) -> Result<FileEntry, Error> {
    write_metadata(
        dir,
        view,
        doc! {"options": view.options.clone(), "indexes": []},
    )
    .await
}

/// Writes `metadata` (with the collection's `uuid`, when it has one) as
/// the `.metadata.json` of `collection`, in canonical extended JSON.
async fn write_metadata(
    dir: &WorkDir,
    collection: &SourceCollection,
    mut metadata: Document,
) -> Result<FileEntry, Error> {
    if let Some(uuid) = &collection.uuid {
        metadata.insert("uuid", uuid);
    }
    let json = Bson::Document(metadata)
        .into_canonical_extjson()
        .to_string();
    write_whole(
        dir,
        &metadata_path(&collection.db, &collection.name),
        json.as_bytes(),
    )
    .await
    .map_err(Error::io(format!(
        "spool file for {}.{}",
        collection.db, collection.name
    )))
}

/// Dumps one collection of an old server read by [`crate::wire`] into
/// `dir`, as [`export_collection`] does with the driver: the `.bson` holds
/// each document's bytes as the batch carried them, the
/// `.metadata.json` is mongodump 3.6's (`options`, the `listIndexes`
/// specs as the server gave them, `uuid` only when the collection has
/// one). The number of documents read is checked against an exact count
/// on the server; a dump stopped half-way kills its cursor.
pub async fn export_collection_wire(
    source: &WireSource,
    collection: &SourceCollection,
    dir: &WorkDir,
    live: bool,
) -> Result<(Vec<FileEntry>, CollectionEntry), Error> {
    let what = format!("{}.{}", collection.db, collection.name);
    let indexes = source.indexes(&collection.db, &collection.name).await?;
    let metadata = doc! {
        "options": collection.options.clone(),
        "indexes": indexes,
    };
    let meta_entry = write_metadata(dir, collection, metadata).await?;
    let mut file = HashedFile::create(dir, &bson_path(&collection.db, &collection.name))
        .await
        .map_err(Error::io(format!("spool file for {what}")))?;
    let find = doc! {"find": &collection.name, "batchSize": 1000};
    let mut cursor = source
        .cursor(&collection.db, find)
        .await
        .map_err(crate::wire::failed(
            source.address(),
            format!("find on {what}"),
        ))?;
    let mut documents = 0u64;
    loop {
        let batch = match cursor.next_batch().await {
            Ok(Some(batch)) => batch,
            Ok(None) => break,
            Err(e) => {
                cursor.kill().await;
                return Err(crate::wire::failed(
                    source.address(),
                    format!("reading {what}"),
                )(e));
            }
        };
        let written: Result<u64, Error> = async {
            let mut n = 0;
            for document in crate::wire::batch_documents(&batch).map_err(crate::wire::failed(
                source.address(),
                format!("reading {what}"),
            ))? {
                file.write(document.as_bytes())
                    .await
                    .map_err(Error::io(format!("spool file for {what}")))?;
                n += 1;
            }
            Ok(n)
        }
        .await;
        match written {
            Ok(n) => documents += n,
            Err(e) => {
                cursor.kill().await;
                return Err(e);
            }
        }
    }
    let data_entry = file
        .finish()
        .await
        .map_err(Error::io(format!("spool file for {what}")))?;
    let counted = source.count(&collection.db, &collection.name).await?;
    if counted != documents && !live {
        return Err(Error::SourceChanged {
            server: source.address().to_string(),
            what: what.to_string(),
            read: documents,
            counted,
        });
    }
    Ok((
        vec![data_entry, meta_entry],
        CollectionEntry {
            db: collection.db.clone(),
            collection: collection.name.clone(),
            documents,
        },
    ))
}

/// Dumps one collection into `dir`: its `.bson` (the documents' bytes as
/// the server sent them) and `.metadata.json` (options, indexes, uuid, in
/// canonical extended JSON, as mongodump writes them).
pub async fn export_collection(
    client: &Client,
    source: &SourceCollection,
    dir: &WorkDir,
) -> Result<(Vec<FileEntry>, CollectionEntry), Error> {
    let what = format!("{}.{}", source.db, source.name);
    let database = client.database(&source.db);
    let indexes: Vec<Document> = database
        .collection::<Document>(&source.name)
        .list_indexes()
        .await
        .map_err(Error::mongo(format!("listIndexes on {what}")))?
        .try_collect::<Vec<_>>()
        .await
        .map_err(Error::mongo(format!("listIndexes on {what}")))?
        .into_iter()
        .map(|model| {
            let mut spec = doc! {"v": 2, "key": model.keys};
            if let Some(options) = model.options
                && let Ok(Bson::Document(options)) = bson::to_bson(&options)
            {
                for (k, v) in options {
                    if k != "v" {
                        spec.insert(k, v);
                    }
                }
            }
            spec
        })
        .collect();
    let metadata = doc! {
        "indexes": indexes,
        "collectionName": &source.name,
        "type": "collection",
        "options": source.options.clone(),
    };
    let meta_entry = write_metadata(dir, source, metadata).await?;
    let mut file = HashedFile::create(dir, &bson_path(&source.db, &source.name))
        .await
        .map_err(Error::io(format!("spool file for {what}")))?;
    let mut cursor = database
        .collection::<RawDocumentBuf>(&source.name)
        .find(doc! {})
        .batch_size(1000)
        .await
        .map_err(Error::mongo(format!("find on {what}")))?;
    let mut documents = 0u64;
    while let Some(document) = cursor
        .try_next()
        .await
        .map_err(Error::mongo(format!("reading {what}")))?
    {
        file.write(document.as_bytes())
            .await
            .map_err(Error::io(format!("spool file for {what}")))?;
        documents += 1;
    }
    let data_entry = file
        .finish()
        .await
        .map_err(Error::io(format!("spool file for {what}")))?;
    Ok((
        vec![data_entry, meta_entry],
        CollectionEntry {
            db: source.db.clone(),
            collection: source.name.clone(),
            documents,
        },
    ))
}

/// One collection to restore: its data file and metadata, unpacked.
#[derive(Clone, Debug)]
pub struct RestoreItem {
    /// Target database.
    pub db: String,
    /// Target collection.
    pub collection: String,
    /// The `.bson` file.
    pub data: PathBuf,
    /// The `.metadata.json` file, if the dump has one.
    pub metadata: Option<PathBuf>,
    /// The documents are there already (an earlier restore was stopped
    /// before its indexes): only build the indexes.
    pub only_indexes: bool,
}

/// What a target collection holds before a restore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetState {
    /// Absent, or empty while the archive has documents: restore it.
    Empty,
    /// Holds exactly the archive's documents (compared by content, not
    /// count) and every index: an earlier restore finished it.
    Restored,
    /// Exactly the archive's number of documents, but without these
    /// indexes: an earlier restore was stopped before building them.
    IndexesMissing(usize),
    /// Holds fewer documents than the archive (this many), every one of
    /// them the archive's: an earlier restore stopped (killed, or a
    /// failover it could not wait out). The restore resumes.
    Partial(u64),
    /// Holds something else (this many documents).
    Occupied(u64),
    /// Holds as many documents as the archive, but other ones.
    Different(u64),
}

/// An order-independent digest of a set of raw BSON documents: the
/// wrapping sum of each document's SHA-256 (first 16 bytes). Equal sets of
/// documents, in any order, give equal digests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Digest(u128);

impl Digest {
    fn add(&mut self, document: &[u8]) {
        use sha2::Digest as _;
        let hash = sha2::Sha256::digest(document);
        let mut first = [0u8; 16];
        first.copy_from_slice(&hash[..16]);
        self.0 = self.0.wrapping_add(u128::from_le_bytes(first));
    }
}

/// Calls `each` with every document of a `.bson` file (verified before).
fn for_each_document(path: &Path, mut each: impl FnMut(&[u8])) -> Result<(), Error> {
    use std::io::Read as _;
    let mut input = std::io::BufReader::with_capacity(
        1 << 20,
        std::fs::File::open(path).map_err(Error::io(path.display()))?,
    );
    let mut document = Vec::new();
    loop {
        let mut len = [0u8; 4];
        match input.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(Error::io(path.display())(e)),
        }
        let n = i32::from_le_bytes(len);
        if !(5..=MAX_DOCUMENT as i32).contains(&n) {
            return Err(Error::Invalid(format!(
                "{}: a document of impossible length {n}",
                path.display()
            )));
        }
        document.clear();
        document.extend_from_slice(&len);
        document.resize(n as usize, 0);
        input
            .read_exact(&mut document[4..])
            .map_err(Error::io(path.display()))?;
        each(&document);
    }
    Ok(())
}

/// A 64-bit key of a document's bytes (the first 8 bytes of its SHA-256).
fn document_key(document: &[u8]) -> u64 {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(document);
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    u64::from_le_bytes(first)
}

/// Whether every document the target collection holds is, byte for byte,
/// one of the archive's: what a stopped restore leaves, as opposed to other
/// data. Memory: 8 bytes per target document.
async fn target_is_part_of_archive(client: &Client, item: &RestoreItem) -> Result<bool, Error> {
    let what = format!("{}.{}", item.db, item.collection);
    let mut keys = Vec::new();
    for_each_target_document(client, item, |document| {
        keys.push(document_key(document));
    })
    .await?;
    keys.sort_unstable();
    let path = item.data.clone();
    tokio::task::spawn_blocking(move || {
        let mut found = vec![false; keys.len()];
        for_each_document(&path, |document| {
            if let Ok(i) = keys.binary_search(&document_key(document)) {
                found[i] = true;
            }
        })?;
        Ok(found.iter().all(|f| *f))
    })
    .await
    .map_err(|e| Error::Internal {
        what: format!("comparing {what} with the archive: {e}"),
    })?
}

/// The digest of the documents of a `.bson` file (verified before).
async fn digest_of_file(path: &Path) -> Result<Digest, Error> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut digest = Digest::default();
        for_each_document(&path, |document| digest.add(document))?;
        Ok(digest)
    })
    .await
    .map_err(|e| Error::Internal {
        what: format!("hashing an archive collection: {e}"),
    })?
}

/// The digest of every document a target collection holds.
async fn digest_of_collection(client: &Client, item: &RestoreItem) -> Result<Digest, Error> {
    let mut digest = Digest::default();
    for_each_target_document(client, item, |document| digest.add(document)).await?;
    Ok(digest)
}

/// Calls `each` with the bytes of every document the target collection of
/// `item` holds.
async fn for_each_target_document(
    client: &Client,
    item: &RestoreItem,
    mut each: impl FnMut(&[u8]),
) -> Result<(), Error> {
    let what = format!("{}.{}", item.db, item.collection);
    let mut cursor = client
        .database(&item.db)
        .collection::<RawDocumentBuf>(&item.collection)
        .find(doc! {})
        .await
        .map_err(Error::mongo(format!("find on {what}")))?;
    while let Some(document) = cursor
        .try_next()
        .await
        .map_err(Error::mongo(format!("reading {what}")))?
    {
        each(document.as_bytes());
    }
    Ok(())
}

/// The state of the target collection for `item`, which should end up
/// with `documents` documents.
pub async fn target_state(
    client: &Client,
    item: &RestoreItem,
    documents: u64,
) -> Result<TargetState, Error> {
    let what = format!("{}.{}", item.db, item.collection);
    let exists = client
        .database(&item.db)
        .list_collection_names()
        .await
        .map_err(Error::mongo(format!("listCollections on {}", item.db)))?
        .contains(&item.collection);
    if !exists {
        return Ok(TargetState::Empty);
    }
    let n = client
        .database(&item.db)
        .collection::<Document>(&item.collection)
        .count_documents(doc! {})
        .await
        .map_err(Error::mongo(format!("count on {what}")))?;
    if n == documents && n > 0 {
        // Same count is not the same data: compare the documents
        // themselves (an order-independent digest of their bytes).
        let archived = digest_of_file(&item.data).await?;
        let present = digest_of_collection(client, item).await?;
        if archived != present {
            return Ok(TargetState::Different(n));
        }
    }
    Ok(if n == documents {
        let wanted = read_metadata(item).await?;
        let present: Vec<String> = client
            .database(&item.db)
            .collection::<Document>(&item.collection)
            .list_index_names()
            .await
            .map_err(Error::mongo(format!("listIndexes on {what}")))?;
        let missing = index_specs(&wanted)
            .iter()
            .filter(|i| {
                i.get_str("name")
                    .is_ok_and(|name| !present.iter().any(|p| p == name))
            })
            .count();
        if missing == 0 {
            TargetState::Restored
        } else {
            TargetState::IndexesMissing(missing)
        }
    } else if n == 0 {
        TargetState::Empty
    } else if n < documents && target_is_part_of_archive(client, item).await? {
        TargetState::Partial(n)
    } else {
        TargetState::Occupied(n)
    })
}

/// How long one insert waits for a majority of the set to confirm it: a
/// healthy set takes well under a second for a batch; a set whose
/// secondaries stopped replicating fails here with a message instead of
/// waiting for ever.
const MAJORITY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// How many documents go into one insert.
const BATCH_DOCUMENTS: usize = 1000;
/// How many bytes go into one insert (the driver splits further at
/// 48 MB messages).
const BATCH_BYTES: usize = 8 * 1024 * 1024;
/// How many batches of one collection are being inserted at once.
const IN_FLIGHT: usize = 3;

/// Restores one collection: drops it first with `drop`, creates it with
/// its options, inserts the documents in unordered batches (`w:
/// majority` when `majority`), then builds its indexes. Returns the
/// number of documents restored. Documents already there and identical to
/// the archive's (an earlier run that stopped, or a batch sent again after
/// a failover) count as restored; a different one stops it, naming its
/// `_id`. A lost primary is waited for as `failover` says.
pub async fn restore_collection(
    client: &Client,
    item: &RestoreItem,
    drop: bool,
    majority: bool,
    meter: &Meter,
    failover: &Failover<'_>,
) -> Result<u64, Error> {
    let what = format!("{}.{}", item.db, item.collection);
    let database = client.database(&item.db);
    let metadata = read_metadata(item).await?;
    if item.only_indexes {
        build_indexes(&database, &item.collection, &metadata, failover).await?;
        return Ok(0);
    }
    if drop {
        let target = database.collection::<Document>(&item.collection);
        failover
            .command(&format!("drop {what}"), || target.drop())
            .await?;
    }
    let options = metadata
        .get_document("options")
        .cloned()
        .unwrap_or_default();
    create_collection(&database, &item.collection, &options, failover).await?;
    let collection = database.collection::<RawDocumentBuf>(&item.collection);
    let concern = if majority {
        WriteConcern::builder()
            .w(Acknowledgment::Majority)
            .w_timeout(MAJORITY_TIMEOUT)
            .build()
    } else {
        WriteConcern::builder().w(Acknowledgment::Nodes(1)).build()
    };
    let mut reader = tokio::io::BufReader::with_capacity(
        1 << 20,
        tokio::fs::File::open(&item.data)
            .await
            .map_err(Error::io(item.data.display()))?,
    );
    // Up to IN_FLIGHT batches are inserted at once (unordered inserts of
    // distinct documents commute), so the set's replication latency for
    // `w: majority` overlaps instead of adding up; reading stays one pass.
    let insert = |batch: Vec<RawDocumentBuf>| {
        let (collection, concern, what) = (&collection, &concern, &what);
        async move {
            let bytes: u64 = batch.iter().map(|d| d.as_bytes().len() as u64).sum();
            let n = failover
                .insert_batch(collection, &batch, concern, what)
                .await?;
            Ok::<_, Error>((n, bytes))
        }
    };
    let mut inserted = 0u64;
    let mut in_flight = futures_util::stream::FuturesUnordered::new();
    let mut reading = true;
    loop {
        while reading && in_flight.len() < IN_FLIGHT {
            let batch = read_batch(&mut reader, &item.data).await?;
            if batch.is_empty() {
                reading = false;
            } else {
                in_flight.push(insert(batch));
            }
        }
        let Some(done) = in_flight.next().await else {
            break;
        };
        let (n, bytes) = done?;
        inserted += n;
        meter.add(bytes);
    }
    build_indexes(&database, &item.collection, &metadata, failover).await?;
    Ok(inserted)
}

/// Creates `collection` in `database` with `options` (as `listCollections`
/// gave them), riding out a failover; one an earlier run created is left
/// as it is.
pub(crate) async fn create_collection(
    database: &mongodb::Database,
    collection: &str,
    options: &Document,
    failover: &Failover<'_>,
) -> Result<(), Error> {
    let mut create = doc! {"create": collection};
    for (k, v) in options {
        create.insert(k.clone(), v.clone());
    }
    failover
        .command(
            &format!("create {}.{collection}", database.name()),
            || {
                let create = create.clone();
                let database = database.clone();
                async move {
                    match database.run_command(create).await {
                        Ok(_) => Ok(()),
                        // 48 NamespaceExists: created by an earlier run.
                        Err(e)
                            if matches!(*e.kind, mongodb::error::ErrorKind::Command(ref c) if c.code == 48) =>
                        {
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
            },
        )
        .await
}

/// The `.metadata.json` of `item` as a document (empty without one).
pub(crate) async fn read_metadata(item: &RestoreItem) -> Result<Document, Error> {
    let Some(path) = &item.metadata else {
        return Ok(Document::new());
    };
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(Error::io(path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::Invalid(format!("{}: not JSON: {e}", path.display())))?;
    match Bson::try_from(value) {
        Ok(Bson::Document(d)) => Ok(d),
        _ => Err(Error::Invalid(format!(
            "{}: not a metadata document",
            path.display()
        ))),
    }
}

/// The indexes `metadata` lists, but `_id_`, ready for `createIndexes`.
fn index_specs(metadata: &Document) -> Vec<Document> {
    metadata
        .get_array("indexes")
        .map(|a| a.iter().filter_map(|i| i.as_document().cloned()).collect())
        .unwrap_or_else(|_| Vec::new())
        .into_iter()
        .filter(|i: &Document| i.get_str("name") != Ok("_id_"))
        .map(|mut i| {
            i.remove("v");
            i.remove("ns");
            i
        })
        .collect()
}

/// Builds the indexes `metadata` lists on `collection` (existing ones
/// with the same definition are left as they are).
async fn build_indexes(
    database: &mongodb::Database,
    collection: &str,
    metadata: &Document,
    failover: &Failover<'_>,
) -> Result<(), Error> {
    let indexes = index_specs(metadata);
    if indexes.is_empty() {
        return Ok(());
    }
    let command = doc! {"createIndexes": collection, "indexes": indexes};
    failover
        .command(
            &format!("createIndexes on {}.{collection}", database.name()),
            || database.run_command(command.clone()),
        )
        .await?;
    Ok(())
}

async fn read_batch(
    reader: &mut (impl tokio::io::AsyncRead + Unpin),
    path: &Path,
) -> Result<Vec<RawDocumentBuf>, Error> {
    let mut batch = Vec::new();
    let mut bytes = 0usize;
    while batch.len() < BATCH_DOCUMENTS && bytes < BATCH_BYTES {
        let mut len = [0u8; 4];
        match reader.read_exact(&mut len).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(Error::io(path.display())(e)),
        }
        let n = i32::from_le_bytes(len);
        if n < 5 || n as usize > MAX_DOCUMENT {
            return Err(Error::Invalid(format!(
                "{}: a document has an impossible length {n}",
                path.display()
            )));
        }
        let mut buf = vec![0u8; n as usize];
        buf[..4].copy_from_slice(&len);
        reader
            .read_exact(&mut buf[4..])
            .await
            .map_err(Error::io(path.display()))?;
        let document = RawDocumentBuf::from_bytes(buf)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        bytes += n as usize;
        batch.push(document);
    }
    Ok(batch)
}

/// The number of documents in each target collection.
pub async fn count(client: &Client, db: &str, collection: &str) -> Result<u64, Error> {
    client
        .database(db)
        .collection::<Document>(collection)
        .count_documents(doc! {})
        .await
        .map_err(Error::mongo(format!("count on {db}.{collection}")))
}

/// Runs `f` over `items` with at most `parallel` at a time, in any order,
/// stopping at the first error.
pub(crate) async fn for_each_parallel<T, R, F, Fut>(
    items: Vec<T>,
    parallel: usize,
    f: F,
) -> Result<Vec<R>, Error>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Result<R, Error>>,
{
    futures_util::stream::iter(items.into_iter().map(f))
        .buffer_unordered(parallel.max(1))
        .try_collect()
        .await
}

/// The export's view of a source, whichever reader reads it.
impl crate::target::MongoReader {
    /// The server's version.
    pub(crate) async fn server_version(&self) -> Result<String, Error> {
        match self {
            Self::Driver(client) => server_version(client).await,
            Self::Wire(source) => source.server_version().await,
        }
    }

    /// The collections to export (see [`list_collections`]).
    pub(crate) async fn list_collections(
        &self,
        only: &[String],
    ) -> Result<Vec<SourceCollection>, Error> {
        match self {
            Self::Driver(client) => list_collections(client, only).await,
            Self::Wire(source) => list_collections_wire(source, only).await,
        }
    }

    /// Roughly how many bytes of BSON `databases` hold.
    pub(crate) async fn estimate_bytes(&self, databases: &[String]) -> u64 {
        match self {
            Self::Driver(client) => estimate_bytes(client, databases).await,
            Self::Wire(source) => source.estimate_bytes(databases).await,
        }
    }

    /// The number of documents in `db.collection`.
    pub(crate) async fn count(&self, db: &str, collection: &str) -> Result<u64, Error> {
        match self {
            Self::Driver(client) => count(client, db, collection).await,
            Self::Wire(source) => source.count(db, collection).await,
        }
    }

    /// Dumps one collection into `dir`.
    pub(crate) async fn export_collection(
        &self,
        collection: &SourceCollection,
        dir: &WorkDir,
        live: bool,
    ) -> Result<(Vec<FileEntry>, CollectionEntry), Error> {
        match self {
            Self::Driver(client) => export_collection(client, collection, dir).await,
            Self::Wire(source) => export_collection_wire(source, collection, dir, live).await,
        }
    }
}

/// Query and aggregation operators whose argument is JavaScript the server
/// runs. An archive is data: a validator, index filter or view holding one
/// would run the archive's code on the new set at every write or read, so
/// a restore refuses it (MongoDB 3.6 allows none of them there anyway:
/// `$where` is refused in validators and pipelines, `$function` and
/// `$accumulator` are 4.4+).
pub const SERVER_CODE: [&str; 3] = ["$where", "$function", "$accumulator"];

/// The first operator of [`SERVER_CODE`] anywhere in `value`, with its path.
pub fn server_code(value: &Bson, path: &str) -> Option<String> {
    match value {
        Bson::Document(d) => d.iter().find_map(|(k, v)| {
            if SERVER_CODE.contains(&k.as_str()) {
                Some(format!("{path}.{k}"))
            } else {
                server_code(v, &format!("{path}.{k}"))
            }
        }),
        Bson::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, v)| server_code(v, &format!("{path}.{i}"))),
        Bson::JavaScriptCode(_) | Bson::JavaScriptCodeWithScope(_) => Some(path.to_owned()),
        _ => None,
    }
}

/// Refuses `metadata` (a collection's or view's `.metadata.json`) when its
/// options or index specs hold server-side code.
pub(crate) fn refuse_server_code(what: &str, metadata: &Document) -> Result<(), Error> {
    for key in ["options", "indexes"] {
        if let Some(value) = metadata.get(key)
            && let Some(at) = server_code(value, key)
        {
            return Err(Error::Damaged(vec![format!(
                "mongo {what}: {at} is JavaScript the server would run; a restore loads data and \
                 definitions, never code, so nothing was restored"
            )]));
        }
    }
    Ok(())
}

/// A view to restore: its definition file.
#[derive(Clone, Debug)]
pub struct ViewItem {
    /// Target database.
    pub db: String,
    /// The view.
    pub view: String,
    /// Its `.metadata.json`.
    pub metadata: PathBuf,
}

/// A view's definition, read from its metadata and checked.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ViewDefinition {
    view_on: String,
    pipeline: Vec<Bson>,
    collation: Option<Document>,
}

/// What a restore does with a view.
pub(crate) enum ViewPlan {
    /// Create it (after dropping what holds its name, when `true`).
    Create(ViewItem, ViewDefinition, bool),
    /// The target has it already, the same: named for the report.
    Skip(String),
    /// The target holds something else under its name: why.
    Refuse(String),
}

/// The definition in `item`'s metadata: `options.viewOn` a collection of
/// the same database that is not `system.*`, `options.pipeline` stages
/// without server-side code.
async fn view_definition(item: &ViewItem) -> Result<ViewDefinition, Error> {
    let what = format!("{}.{}", item.db, item.view);
    let metadata = read_metadata(&RestoreItem {
        db: item.db.clone(),
        collection: item.view.clone(),
        data: PathBuf::new(),
        metadata: Some(item.metadata.clone()),
        only_indexes: false,
    })
    .await?;
    refuse_server_code(&what, &metadata)?;
    let options = metadata.get_document("options").ok();
    let damaged = |why: &str| Error::Damaged(vec![format!("mongo view {what}: {why}")]);
    let view_on = options
        .and_then(|o| o.get_str("viewOn").ok())
        .ok_or_else(|| damaged("its definition has no options.viewOn"))?;
    if view_on.is_empty() || view_on.starts_with("system.") || view_on.contains('\0') {
        return Err(damaged(
            "options.viewOn names no collection a view may read",
        ));
    }
    let pipeline = match options.and_then(|o| o.get("pipeline")) {
        None => Vec::new(),
        Some(Bson::Array(stages)) if stages.iter().all(|s| matches!(s, Bson::Document(_))) => {
            stages.clone()
        }
        Some(_) => return Err(damaged("options.pipeline is not a list of stages")),
    };
    Ok(ViewDefinition {
        view_on: view_on.to_owned(),
        pipeline,
        collation: options.and_then(|o| o.get_document("collation").ok().cloned()),
    })
}

/// Decides from the target whether `item` is created, left (the same view
/// is there), replaced (`drop`) or refused.
pub(crate) async fn plan_view(
    client: &Client,
    item: ViewItem,
    drop: bool,
) -> Result<ViewPlan, Error> {
    let definition = view_definition(&item).await?;
    let what = format!("{}.{}", item.db, item.view);
    let reply = client
        .database(&item.db)
        .run_command(doc! {"listCollections": 1, "filter": {"name": &item.view}})
        .await
        .map_err(Error::mongo(format!("listCollections on {}", item.db)))?;
    let existing = reply
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .ok()
        .and_then(|batch| batch.iter().find_map(Bson::as_document).cloned());
    let Some(existing) = existing else {
        return Ok(ViewPlan::Create(item, definition, false));
    };
    let options = existing.get_document("options").ok();
    let same = existing.get_str("type") == Ok("view")
        && options.and_then(|o| o.get_str("viewOn").ok()) == Some(definition.view_on.as_str())
        && options
            .and_then(|o| o.get_array("pipeline").ok())
            .map_or(definition.pipeline.is_empty(), |p| {
                *p == definition.pipeline
            });
    Ok(if same {
        ViewPlan::Skip(format!("mongo {what} (view)"))
    } else if drop {
        ViewPlan::Create(item, definition, true)
    } else {
        ViewPlan::Refuse(format!(
            "MongoDB {what} exists and is not the archive's view on {}",
            definition.view_on
        ))
    })
}

/// Creates a planned view (dropping what held its name first, when
/// planned so), riding through a failover.
pub(crate) async fn create_view(
    client: &Client,
    item: &ViewItem,
    definition: &ViewDefinition,
    replace: bool,
    failover: &Failover<'_>,
) -> Result<(), Error> {
    let what = format!("{}.{}", item.db, item.view);
    let database = client.database(&item.db);
    if replace {
        let target = database.collection::<Document>(&item.view);
        failover
            .command(&format!("drop {what}"), || target.drop())
            .await?;
    }
    let mut create = doc! {
        "create": &item.view,
        "viewOn": &definition.view_on,
        "pipeline": definition.pipeline.clone(),
    };
    if let Some(collation) = &definition.collation {
        create.insert("collation", collation.clone());
    }
    failover
        .command(&format!("create the view {what}"), || {
            database.run_command(create.clone())
        })
        .await?;
    Ok(())
}
