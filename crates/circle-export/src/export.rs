//! `export`: every source into a spool directory in parallel, then one
//! archive with the manifest first.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::archive::{ArchiveWriter, Compression};
use crate::count::BsonCounter;
use crate::error::Error;
use crate::manifest::{
    CollectionEntry, DatabaseEntry, FORMAT, FileEntry, MANIFEST_PATH, Manifest, ViewEntry,
    bson_path, metadata_path, sql_path,
};
use crate::meter::{Meter, Stage};
use crate::mongo;
use crate::postgres::PgClient;
use crate::spool::{HashedFile, WorkDir};
use crate::target::MongoReader;
use crate::verify::Growing;

/// Where the MongoDB data comes from.
pub enum MongoSource<'a> {
    /// A server (MongoDB 3.6 and later, through the reader
    /// [`MongoReader::from_uri`] chose), every database but
    /// admin/local/config, or only these.
    Server {
        /// The server and what reads it.
        reader: &'a MongoReader,
        /// Only these databases (empty: all).
        databases: Vec<String>,
    },
    /// A directory `mongodump` wrote (`<db>/<collection>.bson` and
    /// `.metadata.json`).
    DumpDir(PathBuf),
}

/// A PostgreSQL server to dump.
#[derive(Clone, Debug)]
pub struct PgSource<'a> {
    /// The server.
    pub client: &'a PgClient,
    /// The databases to dump (empty: every database but `postgres` and
    /// the templates).
    pub databases: Vec<String>,
}

/// What to export.
pub struct ExportSpec<'a> {
    /// MongoDB, if any.
    pub mongo: Option<MongoSource<'a>>,
    /// PostgreSQL and the databases to dump.
    pub postgres: Option<PgSource<'a>>,
    /// `/data/circle/circleci-encryption-keys`, stored as
    /// `encryption-keys/…`.
    pub encryption_keys: Option<PathBuf>,
    /// The old contexts-Vault data directory, stored as `vault-data/…`.
    /// Files holding Vault init output (unseal keys, root token) or a
    /// token ([`crate::vault_init::TOKEN_FILES`]) are left out unless
    /// `danger_include_vault_init_output`.
    pub vault_data: Option<PathBuf>,
    /// Keep files of `vault_data` that hold Vault init output: whoever
    /// holds the archive can then unseal the old storage.
    pub danger_include_vault_init_output: bool,
    /// The archive to write (`.tar`, `.tar.gz`, `.tar.zst`; followed by
    /// `.age` when sealed).
    pub out: PathBuf,
    /// Seal the archive (an age file, see [`crate::seal`]): whoever
    /// restores it can then tell it was not changed since.
    pub seal: Option<&'a crate::seal::Sealing>,
    /// How many collections/databases to dump at once.
    pub parallel: usize,
    /// `circle-export <version>`, for the manifest.
    pub tool: String,
    /// Counts bytes dumped ([`Stage::Dumping`]) and archived
    /// ([`Stage::Archiving`]) for a progress display.
    pub meter: Meter,
}

/// What an export produced.
#[derive(Debug)]
pub struct ExportReport {
    /// The archive.
    pub archive: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// The archive's size in bytes.
    pub archive_bytes: u64,
    /// Bytes of data before compression.
    pub data_bytes: u64,
    /// Files left out (Vault init output in the Vault data directory),
    /// with why, for the operator.
    pub left_out: Vec<String>,
    /// How long the export took, in seconds.
    pub seconds: f64,
    /// Whether the archive is sealed.
    pub sealed: bool,
}

/// Exports everything `spec` names into one archive. On failure nothing
/// is left at `spec.out` (the spool and the partial archive are removed).
pub async fn export(
    spec: ExportSpec<'_>,
    progress: ha_plan::Progress<'_>,
) -> Result<ExportReport, Error> {
    let compression = validate(&spec)?;
    let started = Instant::now();
    let dumped = dump(&spec, progress, &Hooks::default()).await?;
    let archive = write_archive(&spec.out, compression, spec.seal, &dumped, &spec.meter).await?;
    spec.meter.end();
    let archive_bytes = std::fs::metadata(&archive)
        .map_err(Error::io(archive.display()))?
        .len();
    progress(&format!(
        "wrote {} ({} of data) in {:.1}s",
        human_bytes(archive_bytes),
        human_bytes(dumped.data_bytes),
        started.elapsed().as_secs_f64()
    ));
    Ok(ExportReport {
        archive,
        manifest: dumped.manifest,
        archive_bytes,
        data_bytes: dumped.data_bytes,
        left_out: dumped.left_out,
        seconds: started.elapsed().as_secs_f64(),
        sealed: spec.seal.is_some(),
    })
}

/// What the dump phase of an export wants told as it goes (a transfer
/// loads each part into its target while the rest is still dumped).
#[derive(Default)]
#[allow(clippy::type_complexity)]
pub(crate) struct Hooks<'h> {
    /// A PostgreSQL database starts being dumped into this spool file: a
    /// [`Growing`] returned is told of every byte written and, at the end,
    /// whether the dump finished whole (pg_dump exited 0, every COPY block
    /// closed).
    pub(crate) postgres_started: Option<&'h (dyn Fn(&str, &Path) -> Option<Arc<Growing>> + Sync)>,
    /// A MongoDB collection was dumped whole into the spool (this
    /// directory, under its archive paths).
    pub(crate) mongo_finished: Option<&'h (dyn Fn(&CollectionEntry, &Path) + Sync)>,
    /// The sources are in use (a pre-copy): a collection whose count
    /// moved while it was read is copied as read, not refused.
    pub(crate) live: bool,
}

/// The dump phase's result: every part in the spool, and the manifest.
pub(crate) struct Dumped {
    /// The spool holding every part under its archive path.
    pub(crate) spool: Arc<WorkDir>,
    /// The manifest of what was dumped.
    pub(crate) manifest: Manifest,
    /// Bytes dumped.
    pub(crate) data_bytes: u64,
    /// Files left out, with why.
    pub(crate) left_out: Vec<String>,
}

/// Dumps every source of `spec` into a spool next to `spec.out`, in
/// parallel, telling `hooks` as parts start and end.
pub(crate) async fn dump(
    spec: &ExportSpec<'_>,
    progress: ha_plan::Progress<'_>,
    hooks: &Hooks<'_>,
) -> Result<Dumped, Error> {
    let started = Instant::now();
    let spool = WorkDir::create(&spec.out, "spool")
        .map_err(Error::io("the spool directory"))?
        .with_meter(spec.meter.clone());
    let meter = &spec.meter;
    meter.begin(Stage::Dumping, 0);
    let files_cell = Mutex::new(Vec::<FileEntry>::new());
    let files = &files_cell;
    let mut manifest = Manifest {
        format: FORMAT,
        tool: spec.tool.clone(),
        ..Manifest::default()
    };

    let mongo_part = async {
        match &spec.mongo {
            None => Ok::<_, Error>((None, Vec::new(), Vec::new())),
            Some(MongoSource::Server { reader, databases }) => {
                let version = reader.server_version().await?;
                progress(&format!(
                    "mongo: MongoDB {version}, read by {}",
                    reader.describe()
                ));
                let (views, collections): (Vec<_>, Vec<_>) = reader
                    .list_collections(databases)
                    .await?
                    .into_iter()
                    .partition(|c| c.view);
                let mut dbs: Vec<String> = collections.iter().map(|c| c.db.clone()).collect();
                dbs.dedup();
                meter.add_total(reader.estimate_bytes(&dbs).await);
                for view in &views {
                    let entry = mongo::export_view(view, &spool).await?;
                    files.lock().unwrap_or_else(|e| e.into_inner()).push(entry);
                    progress(&format!(
                        "mongo {}.{}: a view on {}, its definition",
                        view.db,
                        view.name,
                        view.options.get_str("viewOn").unwrap_or("?")
                    ));
                }
                let views: Vec<ViewEntry> = views
                    .into_iter()
                    .map(|v| ViewEntry {
                        db: v.db,
                        view: v.name,
                    })
                    .collect();
                let total = collections.len();
                let done = std::sync::atomic::AtomicUsize::new(0);
                let results = mongo::for_each_parallel(collections, spec.parallel, |c| {
                    let spool = &spool;
                    let done = &done;
                    async move {
                        let (entries, counted) =
                            reader.export_collection(&c, spool, hooks.live).await?;
                        let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                        progress(&format!(
                            "mongo {}.{}: {} documents, {} ({n}/{total})",
                            c.db,
                            c.name,
                            counted.documents,
                            human_bytes(entries[0].size)
                        ));
                        files
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .extend(entries);
                        if let Some(finished) = hooks.mongo_finished {
                            finished(&counted, spool.path());
                        }
                        Ok(counted)
                    }
                })
                .await?;
                Ok((Some(version), results, views))
            }
            Some(MongoSource::DumpDir(dir)) => {
                let counted = copy_dump_dir(dir, &spool, files, progress, meter).await?;
                if let Some(finished) = hooks.mongo_finished {
                    for collection in &counted {
                        finished(collection, spool.path());
                    }
                }
                Ok((None, counted, Vec::new()))
            }
        }
    };
    let pg_part = async {
        match &spec.postgres {
            None => Ok::<_, Error>((None, None, Vec::new())),
            Some(PgSource {
                client: pg,
                databases: only,
            }) => {
                let version = pg.server_version().await?;
                let dump_version = pg.dump_version().await?;
                progress(&format!(
                    "postgres: server {version}, dumped by {dump_version}"
                ));
                let databases = pg.databases(only).await?;
                let sizes = futures_util::future::join_all(
                    databases.iter().map(|db| pg.estimate_bytes(db)),
                )
                .await;
                meter.add_total(sizes.iter().sum());
                let results = mongo::for_each_parallel(databases, spec.parallel, |db| {
                    let spool = &spool;
                    async move {
                        let growing = hooks
                            .postgres_started
                            .and_then(|started| started(&db, &spool.join(&sql_path(&db))));
                        let (entry, counted) =
                            pg.export_database_growing(&db, spool, growing).await?;
                        let rows: u64 = counted.tables.iter().map(|t| t.rows).sum();
                        progress(&format!(
                            "postgres {db}: {} tables, {rows} rows, {}",
                            counted.tables.len(),
                            human_bytes(entry.size)
                        ));
                        files.lock().unwrap_or_else(|e| e.into_inner()).push(entry);
                        Ok(counted)
                    }
                })
                .await?;
                Ok((Some(version), Some(dump_version), results))
            }
        }
    };
    let ((mongo_version, collections, views), (pg_version, dump_version, databases)) =
        futures_util::try_join!(mongo_part, pg_part)?;
    manifest.mongo_views = views;
    manifest.mongo_server_version = mongo_version;
    manifest.postgres_server_version = pg_version;
    manifest.postgres_dump_version = dump_version;
    manifest.mongo = sorted_collections(collections);
    manifest.postgres = sorted_databases(databases);
    let mut left_out = Vec::new();
    for (dir, prefix) in [
        (&spec.encryption_keys, "encryption-keys"),
        (&spec.vault_data, "vault-data"),
    ] {
        if let Some(dir) = dir {
            let leave_out_init = prefix == "vault-data" && !spec.danger_include_vault_init_output;
            let entries =
                copy_tree(dir, prefix, &spool, meter, leave_out_init, &mut left_out).await?;
            progress(&format!("{prefix}: {} files", entries.len()));
            files
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(entries);
        }
    }
    let mut files = files_cell.into_inner().unwrap_or_else(|e| e.into_inner());
    files.sort_by(|a, b| a.path.cmp(&b.path));
    manifest.files = files;
    manifest.created_at = bson::DateTime::now()
        .try_to_rfc3339_string()
        .unwrap_or_default();
    let data_bytes: u64 = manifest.files.iter().map(|f| f.size).sum();
    progress(&format!(
        "dumped {} in {:.1}s; writing {}",
        human_bytes(data_bytes),
        started.elapsed().as_secs_f64(),
        spec.out.display()
    ));
    Ok(Dumped {
        spool: Arc::new(spool),
        manifest,
        data_bytes,
        left_out,
    })
}

/// Writes the archive at `out` from the spool of `dumped`: the manifest
/// first, then every file it lists.
pub(crate) async fn write_archive(
    out: &Path,
    compression: Compression,
    seal: Option<&crate::seal::Sealing>,
    dumped: &Dumped,
    meter: &Meter,
) -> Result<PathBuf, Error> {
    let seal = seal.cloned();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u32;
    let out = out.to_owned();
    let manifest = dumped.manifest.clone();
    let spool = dumped.spool.clone();
    meter.begin(Stage::Archiving, dumped.data_bytes);
    let archive_meter = meter.clone();
    tokio::task::spawn_blocking(move || -> Result<PathBuf, Error> {
        let what = || format!("writing {}", out.display());
        let mut writer = ArchiveWriter::create(&out, compression, threads, seal.as_ref())
            .map_err(Error::io(what()))?;
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Internal {
            what: format!("writing the manifest: {e}"),
        })?;
        writer
            .append_bytes(MANIFEST_PATH, &json)
            .map_err(Error::io(what()))?;
        for file in &manifest.files {
            writer
                .append_file(&file.path, &spool.join(&file.path), &archive_meter)
                .map_err(Error::io(what()))?;
        }
        writer.finish().map_err(Error::io(what()))
    })
    .await
    .map_err(|e| Error::Internal {
        what: format!("the archive writer panicked: {e}"),
    })?
}

/// Checks `spec` before anything is read or written: the archive name
/// chooses a known compression, there is a source, the directories exist.
pub(crate) fn validate(spec: &ExportSpec<'_>) -> Result<Compression, Error> {
    let compression = Compression::from_path(&spec.out).map_err(Error::Invalid)?;
    crate::archive::check_sealed_name(&spec.out, spec.seal.is_some()).map_err(Error::Invalid)?;
    if spec.mongo.is_none() && spec.postgres.is_none() {
        return Err(Error::Invalid(
            "nothing to export: give a MongoDB source, a PostgreSQL source, or both".to_owned(),
        ));
    }
    for (dir, what) in [
        (&spec.encryption_keys, "the encryption keys"),
        (&spec.vault_data, "the Vault data"),
    ] {
        if let Some(dir) = dir
            && !dir.is_dir()
        {
            return Err(Error::Invalid(format!(
                "{what} {} is not a directory",
                dir.display()
            )));
        }
    }
    Ok(compression)
}

/// What an export would read, found without writing anything.
#[derive(Debug)]
pub struct ExportPlan {
    /// `(database, collection)` of every collection to dump.
    pub collections: Vec<(String, String)>,
    /// Every PostgreSQL database to dump.
    pub databases: Vec<String>,
    /// Files under the encryption-keys and Vault data directories.
    pub files: usize,
    /// Roughly how many bytes the dumps will take (the servers' data
    /// sizes; the files' sizes).
    pub estimated_bytes: u64,
}

/// Lists what [`export()`] would dump for `spec` (the `--dry-run`):
/// checks the spec and reaches every source, writes nothing.
pub async fn plan(spec: &ExportSpec<'_>) -> Result<ExportPlan, Error> {
    validate(spec)?;
    let mut plan = ExportPlan {
        collections: Vec::new(),
        databases: Vec::new(),
        files: 0,
        estimated_bytes: 0,
    };
    match &spec.mongo {
        None => {}
        Some(MongoSource::Server { reader, databases }) => {
            let collections = reader.list_collections(databases).await?;
            let mut dbs: Vec<String> = collections.iter().map(|c| c.db.clone()).collect();
            dbs.dedup();
            plan.estimated_bytes += reader.estimate_bytes(&dbs).await;
            plan.collections = collections.into_iter().map(|c| (c.db, c.name)).collect();
        }
        Some(MongoSource::DumpDir(dir)) => {
            for c in list_dump_dir(dir)? {
                plan.estimated_bytes += c.size;
                plan.collections.push((c.db, c.collection));
            }
        }
    }
    if let Some(PgSource {
        client: pg,
        databases: only,
    }) = &spec.postgres
    {
        plan.databases = pg.databases(only).await?;
        let sizes =
            futures_util::future::join_all(plan.databases.iter().map(|db| pg.estimate_bytes(db)))
                .await;
        plan.estimated_bytes += sizes.iter().sum::<u64>();
    }
    for dir in [&spec.encryption_keys, &spec.vault_data]
        .into_iter()
        .flatten()
    {
        let files = list_tree(dir)?;
        plan.files += files.len();
        plan.estimated_bytes += files.iter().map(|f| f.size).sum::<u64>();
    }
    Ok(plan)
}

/// One regular file under a directory being archived.
struct TreeFile {
    path: PathBuf,
    /// Its path relative to the directory.
    relative: String,
    size: u64,
}

/// Every regular file under `dir`. Anything else (a symbolic link, a
/// socket …) is refused: it is not followed into the archive.
fn list_tree(dir: &Path) -> Result<Vec<TreeFile>, Error> {
    let mut stack = vec![dir.to_owned()];
    let mut files = Vec::new();
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).map_err(Error::io(current.display()))? {
            let entry = entry.map_err(Error::io(current.display()))?;
            let kind = entry
                .file_type()
                .map_err(Error::io(entry.path().display()))?;
            let path = entry.path();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let relative = path
                    .strip_prefix(dir)
                    .map_err(|e| Error::Invalid(e.to_string()))?
                    .to_string_lossy()
                    .into_owned();
                let size = entry.metadata().map_or(0, |m| m.len());
                files.push(TreeFile {
                    path,
                    relative,
                    size,
                });
            } else {
                return Err(Error::Invalid(format!(
                    "{}: not a regular file or directory (symbolic links are not followed)",
                    path.display()
                )));
            }
        }
    }
    Ok(files)
}

fn sorted_collections(mut c: Vec<CollectionEntry>) -> Vec<CollectionEntry> {
    c.sort_by(|a, b| (&a.db, &a.collection).cmp(&(&b.db, &b.collection)));
    c
}

fn sorted_databases(mut d: Vec<DatabaseEntry>) -> Vec<DatabaseEntry> {
    d.sort_by(|a, b| a.db.cmp(&b.db));
    d
}

/// `12.3 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Copies a mongodump directory into the spool, counting documents.
/// One collection of a mongodump directory.
struct DumpedCollection {
    db: String,
    collection: String,
    data: PathBuf,
    metadata: Option<PathBuf>,
    size: u64,
}

/// The collections of a mongodump directory (`<db>/<collection>.bson`),
/// but the system databases and `system.*` collections, sorted. A
/// `--gzip` dump is refused: its `.bson.gz` files are not read.
fn list_dump_dir(dir: &Path) -> Result<Vec<DumpedCollection>, Error> {
    let mut found = Vec::new();
    let mut dbs: Vec<_> = std::fs::read_dir(dir)
        .map_err(Error::io(dir.display()))?
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .collect();
    dbs.sort_by_key(|e| e.file_name());
    for db_entry in dbs {
        let db = db_entry.file_name().to_string_lossy().into_owned();
        if mongo::SYSTEM_DATABASES.contains(&db.as_str()) {
            continue;
        }
        let mut names: Vec<_> = std::fs::read_dir(db_entry.path())
            .map_err(Error::io(db_entry.path().display()))?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in &names {
            if name.ends_with(".bson.gz") {
                return Err(Error::Invalid(format!(
                    "{}/{name}: gzip-compressed dumps (mongodump --gzip) are not read; dump \
                     without --gzip",
                    db_entry.path().display()
                )));
            }
            let Some(collection) = name.strip_suffix(".bson") else {
                continue;
            };
            if collection.starts_with("system.") {
                continue;
            }
            let data = db_entry.path().join(name);
            let metadata = db_entry.path().join(format!("{collection}.metadata.json"));
            found.push(DumpedCollection {
                db: db.clone(),
                collection: collection.to_owned(),
                size: std::fs::metadata(&data).map_or(0, |m| m.len()),
                data,
                metadata: metadata.exists().then_some(metadata),
            });
        }
    }
    Ok(found)
}

/// Copies a mongodump directory into the spool, counting documents.
async fn copy_dump_dir(
    dir: &Path,
    spool: &WorkDir,
    files: &Mutex<Vec<FileEntry>>,
    progress: ha_plan::Progress<'_>,
    meter: &Meter,
) -> Result<Vec<CollectionEntry>, Error> {
    let dumped = list_dump_dir(dir)?;
    meter.add_total(dumped.iter().map(|c| c.size).sum());
    let mut collections = Vec::new();
    for c in dumped {
        let (entry, documents) =
            copy_counting(&c.data, &bson_path(&c.db, &c.collection), spool).await?;
        progress(&format!(
            "mongo {}.{}: {documents} documents, {} (from the dump directory)",
            c.db,
            c.collection,
            human_bytes(entry.size)
        ));
        let mut new = vec![entry];
        if let Some(meta) = &c.metadata {
            new.push(copy_file(meta, &metadata_path(&c.db, &c.collection), spool).await?);
        }
        files.lock().unwrap_or_else(|e| e.into_inner()).extend(new);
        collections.push(CollectionEntry {
            db: c.db,
            collection: c.collection,
            documents,
        });
    }
    Ok(collections)
}

async fn copy_counting(
    source: &Path,
    name: &str,
    spool: &WorkDir,
) -> Result<(FileEntry, u64), Error> {
    let mut counter = BsonCounter::default();
    let entry = copy_stream(source, name, spool, |chunk| counter.feed(chunk)).await?;
    let documents = counter
        .finish()
        .map_err(|e| Error::Invalid(format!("{}: {e}", source.display())))?;
    Ok((entry, documents))
}

async fn copy_file(source: &Path, name: &str, spool: &WorkDir) -> Result<FileEntry, Error> {
    copy_stream(source, name, spool, |_| {}).await
}

/// Streams `source` into the spool as `name`, showing each chunk to
/// `inspect`.
async fn copy_stream(
    source: &Path,
    name: &str,
    spool: &WorkDir,
    mut inspect: impl FnMut(&[u8]),
) -> Result<FileEntry, Error> {
    use tokio::io::AsyncReadExt as _;
    let mut input = tokio::fs::File::open(source)
        .await
        .map_err(Error::io(source.display()))?;
    let mut file = HashedFile::create(spool, name)
        .await
        .map_err(Error::io(format!("spool file {name}")))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input
            .read(&mut buf)
            .await
            .map_err(Error::io(source.display()))?;
        if n == 0 {
            break;
        }
        inspect(&buf[..n]);
        file.write(&buf[..n])
            .await
            .map_err(Error::io(format!("spool file {name}")))?;
    }
    file.finish()
        .await
        .map_err(Error::io(format!("spool file {name}")))
}

/// Copies every regular file under `dir` to `<prefix>/<relative path>`.
async fn copy_tree(
    dir: &Path,
    prefix: &str,
    spool: &WorkDir,
    meter: &Meter,
    leave_out_init: bool,
    left_out: &mut Vec<String>,
) -> Result<Vec<FileEntry>, Error> {
    let files = list_tree(dir)?;
    meter.add_total(files.iter().map(|f| f.size).sum());
    let mut entries = Vec::new();
    for file in files {
        if leave_out_init && crate::vault_init::is_token_file(&file.relative) {
            left_out.push(format!(
                "{}: holds a Vault token; left out of the archive \
                 (--danger-include-vault-init-output keeps it)",
                file.path.display()
            ));
            continue;
        }
        if leave_out_init && holds_init_output_file(&file.path)? {
            left_out.push(format!(
                "{}: holds Vault init output (unseal keys, root token); left out of the archive \
                 (--danger-include-vault-init-output keeps it)",
                file.path.display()
            ));
            continue;
        }
        entries.push(copy_file(&file.path, &format!("{prefix}/{}", file.relative), spool).await?);
    }
    Ok(entries)
}

fn holds_init_output_file(path: &Path) -> Result<bool, Error> {
    use std::io::Read as _;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| {
            f.take(crate::vault_init::SCAN_LIMIT as u64)
                .read_to_end(&mut head)
        })
        .map_err(Error::io(path.display()))?;
    Ok(crate::vault_init::holds_init_output(&head))
}
