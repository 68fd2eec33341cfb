//! `transfer`: the old machine's databases straight into the new hosts,
//! with the archive written alongside as the verified record of what was
//! moved — the outage becomes about one restore long instead of export +
//! copy + restore.
//!
//! Every target is checked before anything is written, as a restore
//! checks it: a PostgreSQL database that is missing is created, an empty
//! one is loaded, one holding exactly the source's row counts is left as
//! it is (a second run changes nothing), anything else is refused unless
//! `drop`. Then each PostgreSQL database is loaded *while* pg_dump still
//! writes it, in one transaction committed only once the dump finished
//! whole (pg_dump exited 0, every COPY block closed); each MongoDB
//! collection is loaded once its dump is complete (resuming, skipping or
//! refusing what the target holds, as a restore does), riding through a
//! replica-set failover. The archive is written from the same dumps while
//! the loads run. A transfer killed at any point leaves no PostgreSQL
//! database half-committed; running it again finishes the job. Beside
//! the archive it leaves the record a later final pass reads
//! ([`crate::cutover`]): each collection's `_id`s, digests and MD5 from
//! its dump, each database's keys and row digests from the target once
//! its load committed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;

use crate::error::Error;
use crate::export::{self, ExportSpec, Hooks, MongoSource, PgSource, human_bytes};
use crate::manifest::{CollectionEntry, bson_path, metadata_path};
use crate::meter::Meter;
use crate::mongo::{self, RestoreItem};
use crate::postgres::PgClient;
use crate::restore::{CollectionPlan, RestoreReport, count_mismatches, plan_collection};
use crate::verify::{Growing, Layout};

/// MongoDB to move: from the old server (3.6 and later) to the new set.
pub struct TransferMongo<'a> {
    /// The old server, and what reads it.
    pub source: &'a crate::target::MongoReader,
    /// Only these databases (empty: all but admin, local, config).
    pub databases: Vec<String>,
    /// The new set (as circle-admin; writes wait for `w: "majority"` when
    /// it is a replica set).
    pub target: &'a crate::MongoConnection,
}

/// PostgreSQL to move.
pub struct TransferPostgres<'a> {
    /// The old server.
    pub source: &'a PgClient,
    /// Only these databases (empty: all but postgres and templates).
    pub databases: Vec<String>,
    /// The new server (as the app role that owns the databases).
    pub target: &'a PgClient,
}

/// What to transfer, and how.
pub struct TransferSpec<'a> {
    /// MongoDB, if any.
    pub mongo: Option<TransferMongo<'a>>,
    /// PostgreSQL, if any.
    pub postgres: Option<TransferPostgres<'a>>,
    /// The encryption-keys directory, archived (there is nothing to load
    /// it into).
    pub encryption_keys: Option<PathBuf>,
    /// The old contexts-Vault data directory, archived.
    pub vault_data: Option<PathBuf>,
    /// Keep Vault init output found in `vault_data` in the archive.
    pub danger_include_vault_init_output: bool,
    /// The archive written alongside (`.tar`, `.tar.gz`, `.tar.zst`;
    /// followed by `.age` when sealed).
    pub out: PathBuf,
    /// Seal the archive written alongside (see [`crate::seal`]).
    pub seal: Option<&'a crate::seal::Sealing>,
    /// Replace what the targets already hold.
    pub drop: bool,
    /// The sources are still in use: this is a pre-copy, and a final pass
    /// ([`crate::cutover`]) follows once they are stopped. A MongoDB
    /// collection written to while it is read is then copied as read
    /// (without it, a count that moved under the read fails the
    /// transfer: stop CircleCI's services first).
    pub live: bool,
    /// Check the sources and the targets; write nothing.
    pub dry_run: bool,
    /// Databases and collections dumped at once; loaded at once, up to
    /// this many databases and as many collections beside them.
    pub parallel: usize,
    /// Bytes dumped, archived and loaded, for a progress display.
    pub meter: Meter,
    /// How long a MongoDB write waits for a new primary after a failover.
    pub failover_wait: Duration,
    /// `circle-export <version>`, for the manifest.
    pub tool: String,
}

/// What a transfer did.
#[derive(Debug)]
pub struct TransferReport {
    /// What was loaded, skipped and counted, as a restore reports it (the
    /// manifest is the archive's).
    pub restore: RestoreReport,
    /// The archive written (`None` for a dry run).
    pub archive: Option<PathBuf>,
    /// Its size in bytes.
    pub archive_bytes: u64,
}

/// What a transfer does with one PostgreSQL database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DatabasePlan {
    /// Create it, then load it.
    Create,
    /// Load it (empty, or `drop`).
    Load,
    /// It holds the source's row counts already.
    Skip,
}

/// A load the dump phase hands to the loaders.
enum Job {
    /// A database being dumped into the growing file.
    Postgres(String, Arc<Growing>),
    /// A collection dumped whole into the spool directory.
    Mongo(CollectionEntry, PathBuf),
}

/// Moves every source of `spec` into its target and writes the archive.
pub async fn transfer(
    spec: TransferSpec<'_>,
    progress: ha_plan::Progress<'_>,
) -> Result<TransferReport, Error> {
    let started = Instant::now();
    let export_spec = ExportSpec {
        mongo: spec.mongo.as_ref().map(|m| MongoSource::Server {
            reader: m.source,
            databases: m.databases.clone(),
        }),
        postgres: spec.postgres.as_ref().map(|p| PgSource {
            client: p.source,
            databases: p.databases.clone(),
        }),
        encryption_keys: spec.encryption_keys.clone(),
        vault_data: spec.vault_data.clone(),
        danger_include_vault_init_output: spec.danger_include_vault_init_output,
        out: spec.out.clone(),
        seal: spec.seal,
        parallel: spec.parallel,
        tool: spec.tool.clone(),
        meter: spec.meter.clone(),
    };
    let compression = export::validate(&export_spec)?;

    // Every target checked before anything is written.
    let mut refused = Vec::new();
    let mut skipped = Vec::new();
    let mut databases: Vec<(String, DatabasePlan)> = Vec::new();
    if let Some(pg) = &spec.postgres {
        let existing = pg.target.databases(&[]).await?;
        for db in pg.source.databases(&pg.databases).await? {
            let plan = plan_database(pg, &db, &existing, spec.drop, &mut refused).await?;
            if plan == Some(DatabasePlan::Skip) {
                skipped.push(format!("postgres {db}"));
            }
            if let Some(plan) = plan {
                databases.push((db, plan));
            }
        }
        let missing: Vec<String> = databases
            .iter()
            .filter(|(_, plan)| *plan == DatabasePlan::Create)
            .map(|(db, _)| db.clone())
            .collect();
        pg.target.check_may_create(&missing).await?;
    }
    let mut collections = Vec::new();
    if let Some(m) = &spec.mongo {
        // Views are created once dumped (their definitions only).
        for c in m.source.list_collections(&m.databases).await? {
            if c.view {
                continue;
            }
            let held = mongo::count(&m.target.client, &c.db, &c.name).await?;
            if held > 0 && !spec.drop {
                // Decided once dumped (resume, skip or refuse, by content);
                // more documents than the source can only be other data.
                let source = m.source.count(&c.db, &c.name).await?;
                if held > source {
                    refused.push(format!(
                        "MongoDB {}.{} holds {held} documents, the source {source}",
                        c.db, c.name
                    ));
                }
            }
            collections.push(format!("mongo {}.{}", c.db, c.name));
        }
    }
    if !refused.is_empty() {
        return Err(Error::NotEmpty(refused));
    }
    let loading: Vec<String> = collections
        .iter()
        .cloned()
        .chain(
            databases
                .iter()
                .filter(|(_, plan)| *plan != DatabasePlan::Skip)
                .map(|(db, plan)| match plan {
                    DatabasePlan::Create => format!("postgres {db} (created)"),
                    _ => format!("postgres {db}"),
                }),
        )
        .collect();
    let mut report = RestoreReport {
        layout: Layout::Ours,
        manifest: crate::Manifest::default(),
        dry_run: spec.dry_run,
        collections: collections.len(),
        documents: 0,
        databases: databases
            .iter()
            .filter(|(_, plan)| *plan != DatabasePlan::Skip)
            .count(),
        mismatches: Vec::new(),
        skipped,
        restored: loading,
        sealed: spec.seal.is_some(),
        warnings: Vec::new(),
    };
    if spec.dry_run {
        return Ok(TransferReport {
            restore: report,
            archive: None,
            archive_bytes: 0,
        });
    }
    if let Some(pg) = &spec.postgres {
        for (db, plan) in &databases {
            if *plan == DatabasePlan::Create {
                pg.target.create_database(db).await?;
                progress(&format!(
                    "postgres {db}: created (it did not exist on the target)"
                ));
            }
        }
    }

    // Dumps, loads as each part comes, and the archive once every dump is
    // in. The loads count into a meter of their own: the one shown tells
    // of the dumps, then of the archive.
    let (jobs, mut queue) = tokio::sync::mpsc::unbounded_channel::<Job>();
    let to_load = |db: &str| {
        databases
            .iter()
            .any(|(name, plan)| name == db && *plan != DatabasePlan::Skip)
    };
    let export_spec = &export_spec;
    let spec = &spec;
    let dump_then_archive = async {
        let dumped = {
            // The senders live in these hooks only: when the dump phase
            // returns they are dropped, and the queue of loads ends.
            let postgres_jobs = jobs.clone();
            let postgres_started = move |db: &str, file: &Path| {
                if !to_load(db) {
                    return None;
                }
                let growing = Growing::new(file.to_owned());
                let _ = postgres_jobs.send(Job::Postgres(db.to_owned(), growing.clone()));
                Some(growing)
            };
            let mongo_jobs = jobs;
            let mongo_finished = move |c: &CollectionEntry, dir: &Path| {
                let _ = mongo_jobs.send(Job::Mongo(c.clone(), dir.to_owned()));
            };
            let hooks = Hooks {
                postgres_started: Some(&postgres_started),
                mongo_finished: Some(&mongo_finished),
                live: spec.live,
            };
            export::dump(export_spec, progress, &hooks).await?
        };
        let archive =
            export::write_archive(&spec.out, compression, spec.seal, &dumped, &spec.meter).await?;
        Ok::<_, Error>((dumped, archive))
    };
    let load_meter = Meter::new();
    let load_meter = &load_meter;
    // What the target holds, key by key, for a final pass: each
    // collection from its dump, each database once its load committed.
    let state = crate::cutover::state_path(&spec.out);
    let recorder = crate::cutover::Recorder::new(&state)?;
    let recorder = &recorder;
    // A database is recorded once its load committed, beside the loads
    // (not in a load's slot: the collections waiting for one go on).
    let (committed, mut to_record) = tokio::sync::mpsc::unbounded_channel::<String>();
    let loads = async move {
        // Databases and collections load in pools of their own (each up to
        // `parallel` at once): the collections dumped first do not wait
        // behind databases still being dumped, and the two kinds load into
        // different servers.
        let (databases, database_jobs) = tokio::sync::mpsc::unbounded_channel();
        let (collections, collection_jobs) = tokio::sync::mpsc::unbounded_channel();
        let route = async move {
            while let Some(job) = queue.recv().await {
                let _ = match job {
                    Job::Postgres(..) => databases.send(job),
                    Job::Mongo(..) => collections.send(job),
                };
            }
        };
        let committed = &committed;
        let pool = |mut jobs: tokio::sync::mpsc::UnboundedReceiver<Job>| {
            futures_util::stream::poll_fn(move |cx| jobs.poll_recv(cx))
                .map(|job| async move {
                    load(spec, job, load_meter, recorder, committed, progress).await
                })
                .buffer_unordered(spec.parallel.max(1))
                .collect::<Vec<Result<Option<Loaded>, Error>>>()
        };
        let ((), mut results, collections_loaded) =
            futures_util::join!(route, pool(database_jobs), pool(collection_jobs));
        results.extend(collections_loaded);
        let mut documents = 0;
        let mut skipped = Vec::new();
        let mut warnings = Vec::new();
        for result in results {
            if let Some(loaded) = result? {
                documents += loaded.documents;
                skipped.extend(loaded.skipped);
                warnings.extend(loaded.warnings);
            }
        }
        Ok::<_, Error>((documents, skipped, warnings))
    };
    let recordings = async {
        let stream = futures_util::stream::poll_fn(|cx| to_record.poll_recv(cx));
        let results: Vec<Result<(), Error>> = stream
            .map(|db| async move {
                match &spec.postgres {
                    Some(pg) => recorder.postgres(pg.source, pg.target, &db).await,
                    None => Ok(()),
                }
            })
            .buffer_unordered(2)
            .collect()
            .await;
        results.into_iter().collect::<Result<(), Error>>()
    };
    let ((dumped, archive), (documents, later_skipped, load_warnings), ()) =
        futures_util::try_join!(dump_then_archive, loads, recordings)?;
    spec.meter.end();
    report.documents = documents;
    report.warnings.extend(load_warnings);
    if let Some(m) = &spec.mongo {
        let failover = crate::failover::Failover {
            wait: spec.failover_wait,
            progress,
        };
        for v in &dumped.manifest.mongo_views {
            let item = mongo::ViewItem {
                db: v.db.clone(),
                view: v.view.clone(),
                metadata: dumped.spool.join(&metadata_path(&v.db, &v.view)),
            };
            match mongo::plan_view(&m.target.client, item, spec.drop).await? {
                mongo::ViewPlan::Create(item, definition, replace) => {
                    mongo::create_view(&m.target.client, &item, &definition, replace, &failover)
                        .await?;
                    progress(&format!("mongo {}.{}: view created", v.db, v.view));
                    report
                        .restored
                        .push(format!("mongo {}.{} (view)", v.db, v.view));
                }
                mongo::ViewPlan::Skip(what) => report.skipped.push(what),
                mongo::ViewPlan::Refuse(why) => return Err(Error::NotEmpty(vec![why])),
            }
        }
    }
    for skip in later_skipped {
        report.restored.retain(|r| *r != skip);
        report.collections -= 1;
        report.skipped.push(skip);
    }
    report.mismatches = count_mismatches(
        &dumped.manifest,
        spec.mongo.as_ref().map(|m| &m.target.client),
        spec.postgres.as_ref().map(|p| p.target),
        &Default::default(),
    )
    .await?;
    report.manifest = dumped.manifest;
    if let Some(pg) = &spec.postgres {
        for (db, plan) in &databases {
            if *plan == DatabasePlan::Skip {
                recorder.postgres(pg.source, pg.target, db).await?;
            }
        }
    }
    // The pre-copy's record, for a final pass (`transfer --final`); then
    // the key files of an earlier pre-copy go.
    let mut record = crate::cutover::CutoverState::from_manifest(&report.manifest, &archive);
    record.digests = Some(recorder.digests());
    record.write(&state)?;
    record.prune(&state)?;
    let archive_bytes = std::fs::metadata(&archive)
        .map_err(Error::io(archive.display()))?
        .len();
    progress(&format!(
        "moved {} collections ({} documents) and {} databases in {:.1}s; the archive of what \
         was moved: {} ({})",
        report.collections,
        report.documents,
        report.databases,
        started.elapsed().as_secs_f64(),
        archive.display(),
        human_bytes(archive_bytes)
    ));
    Ok(TransferReport {
        restore: report,
        archive: Some(archive),
        archive_bytes,
    })
}

/// Decides what a transfer does with PostgreSQL database `db` of the
/// source: create it, load it, leave it (the target holds the source's
/// rows: the same counts and row digests), or — pushed to `refused` —
/// refuse it (other data, without `drop`).
async fn plan_database(
    pg: &TransferPostgres<'_>,
    db: &str,
    existing: &[String],
    drop: bool,
    refused: &mut Vec<String>,
) -> Result<Option<DatabasePlan>, Error> {
    if !existing.iter().any(|e| e == db) {
        return Ok(Some(DatabasePlan::Create));
    }
    let held = pg.target.user_tables(db).await?;
    if held == 0 || drop {
        return Ok(Some(DatabasePlan::Load));
    }
    let tables = pg.source.table_names(db).await?;
    let (source, target) = futures_util::try_join!(
        pg.source.count_rows(db, &tables),
        pg.target.count_rows(db, &tables)
    )?;
    // Same counts first (cheap), then the same rows: each table's row
    // digest on both sides, not counts alone.
    if !tables.is_empty() && source == target && held == tables.len() as u64 {
        let (source, target) = futures_util::try_join!(
            pg.source.table_digests(db, &tables),
            pg.target.table_digests(db, &tables)
        )?;
        if source == target {
            return Ok(Some(DatabasePlan::Skip));
        }
    }
    refused.push(format!(
        "PostgreSQL {db} holds {held} table(s) whose rows differ from the source's"
    ));
    Ok(None)
}

/// What one load did.
#[derive(Default)]
struct Loaded {
    /// Documents loaded.
    documents: u64,
    /// A collection found already complete, named for the report.
    skipped: Option<String>,
    /// What the operator should know (tables a pg_dump 9.x made WITH OIDS).
    warnings: Vec<String>,
}

/// Runs one load.
async fn load(
    spec: &TransferSpec<'_>,
    job: Job,
    meter: &Meter,
    recorder: &crate::cutover::Recorder,
    committed: &tokio::sync::mpsc::UnboundedSender<String>,
    progress: ha_plan::Progress<'_>,
) -> Result<Option<Loaded>, Error> {
    match job {
        Job::Postgres(db, growing) => {
            let Some(pg) = &spec.postgres else {
                return Ok(None);
            };
            match pg
                .target
                .restore_database_growing(&db, growing.clone(), meter, spec.drop)
                .await
            {
                Ok(warnings) => {
                    progress(&format!("postgres {db}: moved"));
                    let _ = committed.send(db.clone());
                    Ok(Some(Loaded {
                        warnings,
                        ..Loaded::default()
                    }))
                }
                Err(e) if growing.damaged() => Err(Error::Invalid(format!(
                    "postgres {db}: not moved (rolled back): its dump did not finish ({e})"
                ))),
                Err(e) => Err(e),
            }
        }
        Job::Mongo(c, dir) => {
            let Some(m) = &spec.mongo else {
                return Ok(None);
            };
            let data = dir.join(bson_path(&c.db, &c.collection));
            // Recorded (from the dump, on a core of its own) while it loads.
            let recording = recorder.mongo(&c.db, &c.collection, &data);
            let loading = async {
                let item = RestoreItem {
                    db: c.db.clone(),
                    collection: c.collection.clone(),
                    data: data.clone(),
                    metadata: Some(dir.join(metadata_path(&c.db, &c.collection)))
                        .filter(|p| p.exists()),
                    only_indexes: false,
                };
                let item =
                    match plan_collection(&m.target.client, item, c.documents, spec.drop, progress)
                        .await?
                    {
                        CollectionPlan::Load(item) => item,
                        CollectionPlan::Skip(what) => {
                            return Ok(Some(Loaded {
                                skipped: Some(what),
                                ..Loaded::default()
                            }));
                        }
                        CollectionPlan::Refuse(why) => return Err(Error::NotEmpty(vec![why])),
                    };
                let failover = crate::failover::Failover {
                    wait: spec.failover_wait,
                    progress,
                };
                let n = mongo::restore_collection(
                    &m.target.client,
                    &item,
                    spec.drop,
                    m.target.replica_set,
                    meter,
                    &failover,
                )
                .await?;
                progress(&format!(
                    "mongo {}.{}: {n} documents moved",
                    c.db, c.collection
                ));
                Ok(Some(Loaded {
                    documents: n,
                    ..Loaded::default()
                }))
            };
            let ((), loaded) = futures_util::try_join!(recording, loading)?;
            Ok(loaded)
        }
    }
}
