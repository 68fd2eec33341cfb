//! `restore`: unpack and verify the whole archive first, refuse a target
//! that holds data (unless `--drop`), then restore MongoDB collections and
//! PostgreSQL databases in parallel and compare the counts.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use mongodb::Client;

use crate::error::Error;
use crate::manifest::{Manifest, bson_path, metadata_path, sql_path};
use crate::meter::{Meter, Stage};
use crate::mongo::{self, RestoreItem, for_each_parallel};
use crate::postgres::PgClient;
use crate::spool::WorkDir;
use crate::sqlsplit::connect_target;
use crate::verify::{
    Event, Growing, Layout, VENDOR_MONGO, VENDOR_PG, inspect_metered, inspect_streaming,
};

/// What to restore where.
pub struct RestoreSpec<'a> {
    /// The archive (ours or CircleCI's `circleci_export.tar.gz`).
    pub archive: PathBuf,
    /// The identities or passphrase that open a sealed archive (see
    /// [`crate::seal`]); `None` for a plain one. A sealed archive is
    /// authenticated whole before anything is written.
    pub unsealing: Option<&'a crate::seal::Unsealing>,
    /// The MongoDB target (inserts wait for `w: "majority"` when it is a
    /// replica set).
    pub mongo: Option<&'a crate::MongoConnection>,
    /// The PostgreSQL target. A database missing there is created, owned
    /// by the restoring role (which then needs `CREATEDB`); pg-provision
    /// makes them with their extensions beforehand.
    pub postgres: Option<&'a PgClient>,
    /// Replace what the target holds.
    pub drop: bool,
    /// Verify and check the targets, write nothing.
    pub dry_run: bool,
    /// Collections/databases restored at once.
    pub parallel: usize,
    /// Counts bytes of the archive read ([`Stage::Verifying`]) and of the
    /// files loaded into the targets ([`Stage::Loading`]).
    pub meter: Meter,
    /// How long a MongoDB write waits for a new primary when the set loses
    /// its own (a failover) before the restore gives up; the restore says
    /// when it starts waiting. Sixty seconds covers an election with
    /// mongod's defaults several times over.
    pub failover_wait: std::time::Duration,
}

/// What a restore did (or, with `dry_run`, would do).
#[derive(Debug)]
pub struct RestoreReport {
    /// Whose archive it was.
    pub layout: Layout,
    /// Its manifest (for a vendor archive, the one built while reading).
    pub manifest: Manifest,
    /// Whether nothing was written.
    pub dry_run: bool,
    /// Collections restored (or to restore).
    pub collections: usize,
    /// Documents inserted.
    pub documents: u64,
    /// PostgreSQL databases restored (or to restore).
    pub databases: usize,
    /// Counts on the target that differ from the archive's.
    pub mismatches: Vec<String>,
    /// Collections and databases an earlier restore finished (same counts
    /// as the archive): left as they are.
    pub skipped: Vec<String>,
    /// What was (or, with `dry_run`, would be) restored: `mongo db.coll`,
    /// `postgres db`.
    pub restored: Vec<String>,
    /// Whether the archive was sealed (and so proven unchanged since it
    /// was sealed).
    pub sealed: bool,
    /// Risks the operator should know of, such as restoring an archive
    /// that is not sealed.
    pub warnings: Vec<String>,
}

/// The warning a restore of an unsealed archive gives.
pub(crate) fn unsealed_warning(archive: &Path) -> String {
    format!(
        "{} is not sealed: its checksums prove only that it is whole, not who wrote it — \
         anyone who could write to it could have changed what it loads (seal archives: \
         export --encrypt-to)",
        archive.display()
    )
}

struct PgItem {
    db: String,
    sql: PathBuf,
    /// Whose dump it is (what may be left out of it).
    dialect: crate::sqlsplit::Dialect,
    /// Its member in the archive (ours), for loading while it is read.
    member: Option<String>,
}

/// Restores `spec.archive`.
///
/// The archive is read once. In an archive circle-export wrote, the
/// manifest comes first and every MongoDB member before the PostgreSQL
/// ones: the targets are checked once the MongoDB members are verified
/// (nothing is written to a target that holds other data without `drop`:
/// [`Error::NotEmpty`]), and each PostgreSQL database is loaded while its
/// member is still being read, in a transaction committed only once that
/// member matched the manifest. So nothing becomes visible before its own
/// part of the archive is verified; a damaged member is never committed,
/// and the parts verified before it stay restored ([`Error::Damaged`] names
/// both). A collection whose member is damaged is left out (the MongoDB
/// part is checked before any of it is loaded: nothing of it is written)
/// and the others are restored. An archive whose MongoDB part cannot be
/// read through (truncated), CircleCI's own archive and `dry_run` verify
/// the whole archive before anything is written.
pub async fn restore(
    spec: RestoreSpec<'_>,
    progress: ha_plan::Progress<'_>,
) -> Result<RestoreReport, Error> {
    let started = Instant::now();
    let source = crate::archive::Source::open(&spec.archive, spec.unsealing)?;
    if source.is_sealed() {
        // Every chunk authenticated before anything is written: a byte
        // changed anywhere in the file refuses the whole restore.
        progress(&format!(
            "authenticating the sealed archive {}",
            spec.archive.display()
        ));
        let (source, meter) = (source.clone(), spec.meter.clone());
        tokio::task::spawn_blocking(move || {
            meter.begin(Stage::Verifying, source.len().unwrap_or(0));
            let authentic = source.authenticate(&meter);
            meter.end();
            authentic
        })
        .await
        .map_err(|e| Error::Internal {
            what: format!("the archive reader panicked: {e}"),
        })??;
    }
    let work =
        WorkDir::create(&spec.archive, "restore").map_err(Error::io("the unpack directory"))?;
    let unpack = work.path().join("files");
    progress(&format!("reading and verifying {}", spec.archive.display()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (tell, mut events) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let streaming = !spec.dry_run;
    // An archive with a seek index has its PostgreSQL members read each by
    // a loader of its own, in parallel: the reader reads past them.
    let index = if streaming {
        source
            .seek_index()
            .map_err(Error::io(spec.archive.display()))?
    } else {
        None
    };
    let direct: BTreeSet<String> = index
        .iter()
        .flat_map(|i| i.members.iter())
        .filter(|m| m.name.starts_with("postgres/") && m.name.ends_with(".sql"))
        .map(|m| m.name.clone())
        .collect();
    let mut reader = Some({
        let (archive, unpack, stop) = (source.clone(), unpack.clone(), stop.clone());
        let direct = direct.clone();
        // Streaming, the bar follows the loads; the read has its own meter.
        let meter = if streaming {
            Meter::default()
        } else {
            spec.meter.clone()
        };
        tokio::task::spawn_blocking(move || {
            if streaming {
                let watch = move |event: Event| {
                    let _ = tell.send(event);
                };
                inspect_streaming(&archive, &unpack, &meter, &watch, &stop, &direct)
            } else {
                drop(tell);
                inspect_metered(&archive, Some(&unpack), &meter)
            }
        })
    });
    let result = restore_reading(
        &spec,
        progress,
        started,
        &work,
        &unpack,
        &mut events,
        &mut reader,
        index
            .as_ref()
            .filter(|_| !direct.is_empty())
            .map(|index| (&source, index)),
    )
    .await
    .map(|mut report| {
        report.sealed = source.is_sealed();
        if !report.sealed {
            let mut warning = unsealed_warning(&spec.archive);
            if spec.unsealing.is_some() {
                warning.push_str("; the key given to open it was not needed");
            }
            progress(&format!("warning: {warning}"));
            report.warnings.push(warning);
        }
        report
    });
    // Whatever happened, the reader is stopped and waited for before its
    // directory goes.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(events);
    if let Some(reader) = reader {
        let _ = reader.await;
    }
    drop(work);
    result
}

type Reader = tokio::task::JoinHandle<Result<crate::verify::Inspection, Error>>;

/// Waits for the archive reader's verdict on the whole archive.
async fn finish_reading(reader: &mut Option<Reader>) -> Result<crate::verify::Inspection, Error> {
    match reader.take() {
        Some(handle) => handle.await.map_err(|e| Error::Internal {
            what: format!("the archive reader panicked: {e}"),
        })?,
        None => Err(Error::Internal {
            what: "the archive was read already".to_owned(),
        }),
    }
}

/// The members being unpacked that loaders wait for, by name.
#[derive(Default)]
struct Members {
    growing: std::sync::Mutex<BTreeMap<String, std::sync::Arc<Growing>>>,
    /// Set once the reader is done: a member not seen by then never comes.
    done: std::sync::atomic::AtomicBool,
    changed: tokio::sync::Notify,
}

impl Members {
    fn add(&self, name: String, growing: std::sync::Arc<Growing>) {
        self.growing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, growing);
        self.changed.notify_waiters();
    }

    fn close(&self) {
        self.done.store(true, std::sync::atomic::Ordering::Release);
        self.changed.notify_waiters();
    }

    /// The member `name`, once it starts; `None` if the archive ended
    /// without it.
    async fn wait(&self, name: &str) -> Option<std::sync::Arc<Growing>> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(g) = self
                .growing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(name)
            {
                return Some(g.clone());
            }
            if self.done.load(std::sync::atomic::Ordering::Acquire) {
                return None;
            }
            changed.await;
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn restore_reading(
    spec: &RestoreSpec<'_>,
    progress: ha_plan::Progress<'_>,
    started: Instant,
    work: &WorkDir,
    unpack: &Path,
    events: &mut tokio::sync::mpsc::UnboundedReceiver<Event>,
    reader: &mut Option<Reader>,
    index: Option<(&crate::archive::Source, &crate::archive::SeekIndex)>,
) -> Result<RestoreReport, Error> {
    let members = Members::default();
    let (manifest, layout, streaming, damaged_mongo) =
        read_manifest(events, reader, &members, progress, started).await?;
    let plan = plan_restore(
        spec,
        &manifest,
        layout,
        unpack,
        work,
        &damaged_mongo,
        progress,
    )
    .await?;
    let mongo_not_restored = plan.mongo_not_restored.clone();
    let mut report = plan.report(spec.dry_run, layout, manifest);
    if spec.dry_run {
        return Ok(report);
    }
    plan.create_first(spec, progress).await?;
    plan.begin_meter(&spec.meter, &report.manifest);
    let RestorePlan { mongo, pg, .. } = plan;
    let shared_manifest = std::sync::Arc::new(report.manifest.clone());
    // Each database's row counts, taken as soon as it is loaded (while the
    // others still load) rather than all at the end.
    let counted_cell = std::sync::Mutex::new(PgCounts::new());
    // What the loads found that the operator should know (tables with
    // OIDs in a pg_dump 9.x file).
    let load_warnings_cell = std::sync::Mutex::new(Vec::<String>::new());
    let pg_load = spec.postgres.map(|pg| PgLoad {
        pg,
        archive: &spec.archive,
        drop: spec.drop,
        meter: &spec.meter,
        progress,
        streaming,
        index,
        manifest: &shared_manifest,
        members: &members,
        counted: &counted_cell,
        warnings: &load_warnings_cell,
    });
    let pg_part = async {
        let Some(load) = &pg_load else {
            return Ok::<Vec<String>, Error>(Vec::new());
        };
        let outcomes =
            for_each_parallel(
                pg,
                spec.parallel,
                |item| async move { load.restore(item).await },
            )
            .await?;
        Ok(outcomes.into_iter().flatten().collect())
    };
    // While loads run, members that start being read are handed to them.
    let pump = async {
        if streaming {
            while let Some(event) = events.recv().await {
                if let Event::Started(name, growing) = event {
                    members.add(name, growing);
                }
            }
        }
        members.close();
    };
    let (loaded, ()) = tokio::join!(
        async { futures_util::try_join!(load_mongo(spec, progress, mongo), pg_part) },
        pump
    );
    let (documents, mut not_restored) = loaded?;
    report.warnings.extend(
        load_warnings_cell
            .into_inner()
            .unwrap_or_else(|e| e.into_inner()),
    );
    not_restored.splice(0..0, mongo_not_restored);
    spec.meter.end();
    report.documents = documents;
    if streaming {
        // The reader's verdict on the whole archive: damage found after
        // some parts were committed is reported with what was restored.
        let inspection = finish_reading(reader).await?;
        if !inspection.problems.is_empty() || !not_restored.is_empty() {
            return Err(damaged_after_loading(
                inspection.problems,
                &not_restored,
                &report.restored,
            ));
        }
    }
    // Counts on the target against the archive.
    let counted = counted_cell.into_inner().unwrap_or_else(|e| e.into_inner());
    report.mismatches = count_mismatches(
        &report.manifest,
        spec.mongo.map(|m| &m.client),
        spec.postgres,
        &counted,
    )
    .await?;
    progress(&format!(
        "restored {} collections ({} documents) and {} databases in {:.1}s",
        report.collections,
        report.documents,
        report.databases,
        started.elapsed().as_secs_f64()
    ));
    Ok(report)
}

/// The archive's manifest and layout, once known: streaming, when the
/// manifest and every MongoDB member (they come before the PostgreSQL
/// ones) were read, each verified on its own (with the members found
/// damaged); otherwise once the whole archive was read and found intact.
async fn read_manifest(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<Event>,
    reader: &mut Option<Reader>,
    members: &Members,
    progress: ha_plan::Progress<'_>,
    started: Instant,
) -> Result<(Manifest, Layout, bool, BTreeSet<String>), Error> {
    let (streamed, damaged_mongo) = await_mongo_part(events, members).await;
    if let Some(manifest) = streamed {
        progress(&format!(
            "manifest and MongoDB part verified: {} files, {} collections, {} PostgreSQL \
             databases ({:.1}s); each database is loaded as its part is read, and committed \
             once that part is verified",
            manifest.files.len(),
            manifest.mongo.len(),
            manifest.postgres.len(),
            started.elapsed().as_secs_f64()
        ));
        return Ok((manifest, Layout::Ours, true, damaged_mongo));
    }
    let inspection = finish_reading(reader).await?;
    if !inspection.problems.is_empty() {
        return Err(Error::Damaged(inspection.problems));
    }
    progress(&format!(
        "archive intact: {} files, {} collections, {} PostgreSQL databases ({:.1}s)",
        inspection.manifest.files.len(),
        inspection.manifest.mongo.len(),
        inspection.manifest.postgres.len(),
        started.elapsed().as_secs_f64()
    ));
    Ok((inspection.manifest, inspection.layout, false, damaged_mongo))
}

/// What a restore loads, decided before anything is written.
struct RestorePlan {
    mongo: Vec<RestoreItem>,
    /// Views to create (after dropping what holds the name, when `true`).
    views: Vec<(mongo::ViewItem, mongo::ViewDefinition, bool)>,
    pg: Vec<PgItem>,
    /// Databases the target lacks.
    to_create: Vec<String>,
    /// Already restored (the archive's counts): left as they are.
    skipped: Vec<String>,
    /// MongoDB members found damaged while streaming.
    mongo_not_restored: Vec<String>,
}

/// Targets: given where needed, existing, and holding nothing (restore),
/// exactly the archive's counts (an earlier restore finished: skip, so a
/// second run changes nothing), or something else (refused unless
/// `drop`).
async fn plan_restore(
    spec: &RestoreSpec<'_>,
    manifest: &Manifest,
    layout: Layout,
    unpack: &Path,
    work: &WorkDir,
    damaged_mongo: &BTreeSet<String>,
    progress: ha_plan::Progress<'_>,
) -> Result<RestorePlan, Error> {
    let (mongo_items, mongo_not_restored) = mongo_items(manifest, layout, unpack, damaged_mongo);
    let pg_items = pg_items(manifest, layout, unpack, work)?;
    let view_items = view_items(manifest, layout, unpack, damaged_mongo);
    if (!mongo_items.is_empty() || !view_items.is_empty()) && spec.mongo.is_none() {
        return Err(Error::NoTarget {
            server: "MongoDB",
            count: mongo_items.len(),
            items: "MongoDB collections",
        });
    }
    if !pg_items.is_empty() && spec.postgres.is_none() {
        return Err(Error::NoTarget {
            server: "PostgreSQL",
            count: pg_items.len(),
            items: "PostgreSQL databases",
        });
    }
    let PgTargets {
        todo: pg,
        to_create,
        mut skipped,
        mut occupied,
    } = match spec.postgres {
        Some(pg) if !pg_items.is_empty() => pg_targets(pg, manifest, pg_items, spec.drop).await?,
        _ => PgTargets::default(),
    };
    let mut mongo = Vec::new();
    let mut views = Vec::new();
    if let Some(crate::MongoConnection { client, .. }) = spec.mongo {
        for item in mongo_items {
            let documents = manifest
                .mongo
                .iter()
                .find(|c| c.db == item.db && c.collection == item.collection)
                .map_or(0, |c| c.documents);
            match plan_collection(client, item, documents, spec.drop, progress).await? {
                CollectionPlan::Load(item) => mongo.push(item),
                CollectionPlan::Skip(what) => skipped.push(what),
                CollectionPlan::Refuse(why) => occupied.push(why),
            }
        }
        for item in view_items {
            match mongo::plan_view(client, item, spec.drop).await? {
                mongo::ViewPlan::Create(item, definition, replace) => {
                    views.push((item, definition, replace));
                }
                mongo::ViewPlan::Skip(what) => skipped.push(what),
                mongo::ViewPlan::Refuse(why) => occupied.push(why),
            }
        }
    }
    if !occupied.is_empty() {
        return Err(Error::NotEmpty(occupied));
    }
    if let Some(pg) = spec.postgres {
        pg.check_may_create(&to_create).await?;
    }
    if !skipped.is_empty() {
        progress(&format!(
            "already restored (same counts as the archive), left as they are: {}",
            skipped.join(", ")
        ));
    }
    Ok(RestorePlan {
        mongo,
        views,
        pg,
        to_create,
        skipped,
        mongo_not_restored,
    })
}

impl RestorePlan {
    /// The report of this plan, before anything is loaded.
    fn report(&self, dry_run: bool, layout: Layout, manifest: Manifest) -> RestoreReport {
        let mongo = self.mongo.iter().map(|i| {
            format!(
                "mongo {}.{}{}",
                i.db,
                i.collection,
                if i.only_indexes { " (indexes)" } else { "" }
            )
        });
        let views = self
            .views
            .iter()
            .map(|(v, _, _)| format!("mongo {}.{} (view)", v.db, v.view));
        let pg = self.pg.iter().map(|i| {
            if self.to_create.contains(&i.db) {
                format!("postgres {} (created)", i.db)
            } else {
                format!("postgres {}", i.db)
            }
        });
        RestoreReport {
            layout,
            dry_run,
            collections: self.mongo.len(),
            documents: 0,
            databases: self.pg.len(),
            mismatches: Vec::new(),
            skipped: self.skipped.clone(),
            sealed: false,
            warnings: Vec::new(),
            restored: mongo.chain(views).chain(pg).collect(),
            manifest,
        }
    }

    /// Views and missing databases, created before any data is loaded.
    async fn create_first(
        &self,
        spec: &RestoreSpec<'_>,
        progress: ha_plan::Progress<'_>,
    ) -> Result<(), Error> {
        if let Some(crate::MongoConnection { client, .. }) = spec.mongo {
            let failover = crate::failover::Failover {
                wait: spec.failover_wait,
                progress,
            };
            for (item, definition, replace) in &self.views {
                mongo::create_view(client, item, definition, *replace, &failover).await?;
                progress(&format!("mongo {}.{}: view created", item.db, item.view));
            }
        }
        if let Some(pg) = spec.postgres {
            for db in &self.to_create {
                pg.create_database(db).await?;
                progress(&format!(
                    "postgres {db}: created (it did not exist on the target)"
                ));
            }
        }
        Ok(())
    }

    /// Starts the loading stage: its total, and one part per database,
    /// known up front, so a display can show every database's bar from
    /// the start.
    fn begin_meter(&self, meter: &Meter, manifest: &Manifest) {
        let size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
        // A member still being read has the size the manifest gives it.
        let listed = |member: &Option<String>, path: &Path| {
            member
                .as_ref()
                .and_then(|m| manifest.files.iter().find(|f| f.path == *m))
                .map_or_else(|| size(path), |f| f.size)
        };
        meter.begin(
            Stage::Loading,
            self.mongo.iter().map(|i| size(&i.data)).sum::<u64>()
                + self
                    .pg
                    .iter()
                    .map(|i| listed(&i.member, &i.sql))
                    .sum::<u64>(),
        );
        for item in &self.mongo {
            meter.part(&format!("mongo {}", item.db), size(&item.data));
        }
        for item in &self.pg {
            meter.part(
                &format!("postgres {}", item.db),
                listed(&item.member, &item.sql),
            );
        }
    }
}

/// Loads the MongoDB collections, `spec.parallel` at a time: the
/// documents restored.
async fn load_mongo(
    spec: &RestoreSpec<'_>,
    progress: ha_plan::Progress<'_>,
    items: Vec<RestoreItem>,
) -> Result<u64, Error> {
    let Some(target) = spec.mongo else {
        return Ok(0);
    };
    let (client, majority) = (&target.client, target.replica_set);
    let total = items.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let counts = for_each_parallel(items, spec.parallel, |item| {
        let done = &done;
        async move {
            let part = spec.meter.part(&format!("mongo {}", item.db), 0);
            let failover = crate::failover::Failover {
                wait: spec.failover_wait,
                progress,
            };
            let n = mongo::restore_collection(client, &item, spec.drop, majority, &part, &failover)
                .await?;
            let k = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if item.only_indexes {
                progress(&format!(
                    "mongo {}.{}: indexes built ({k}/{total})",
                    item.db, item.collection
                ));
            } else {
                progress(&format!(
                    "mongo {}.{}: {n} documents restored ({k}/{total})",
                    item.db, item.collection
                ));
            }
            Ok(n)
        }
    })
    .await?;
    Ok(counts.into_iter().sum())
}

/// Damage the reader found after some parts were committed, reported
/// with what was restored, each from its own verified part.
fn damaged_after_loading(
    mut problems: Vec<String>,
    not_restored: &[String],
    restored: &[String],
) -> Error {
    problems.extend(not_restored.iter().cloned());
    let kept: Vec<String> = restored
        .iter()
        .filter(|r| {
            !not_restored
                .iter()
                .any(|n| n.starts_with(&format!("{}:", r.trim_end_matches(" (created)"))))
        })
        .cloned()
        .collect();
    if !kept.is_empty() {
        problems.push(format!(
            "restored, each from its own verified part: {}",
            kept.join(", ")
        ));
    }
    Error::Damaged(problems)
}

/// What every PostgreSQL database's load in a restore shares.
struct PgLoad<'a> {
    pg: &'a PgClient,
    /// The archive, for messages.
    archive: &'a Path,
    /// Replace what the target holds.
    drop: bool,
    meter: &'a Meter,
    progress: ha_plan::Progress<'a>,
    /// Whether databases are loaded as their parts are read.
    streaming: bool,
    /// The archive's members, to read one on its own (seekable archives).
    index: Option<(&'a crate::archive::Source, &'a crate::archive::SeekIndex)>,
    manifest: &'a std::sync::Arc<Manifest>,
    /// Members being read, handed over as they start.
    members: &'a Members,
    /// Each database's row counts, taken as soon as it is loaded.
    counted: &'a std::sync::Mutex<PgCounts>,
    /// What the loads found that the operator should know.
    warnings: &'a std::sync::Mutex<Vec<String>>,
}

impl PgLoad<'_> {
    /// `db` was loaded: its notes kept, said, and its rows counted.
    async fn restored(&self, db: &str, notes: Vec<String>) -> Result<Option<String>, Error> {
        self.warnings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(notes);
        (self.progress)(&format!("postgres {db}: restored"));
        count_loaded(self.pg, self.manifest, db, self.counted).await?;
        Ok(None)
    }

    /// Loads one database: from its own member of a seekable archive
    /// (checked as it passes, committed once it matched the manifest),
    /// from its unpacked file, or from its member as it is being read.
    /// `Some(why)` when its part of the archive is damaged (rolled back;
    /// the others go on).
    async fn restore(&self, item: PgItem) -> Result<Option<String>, Error> {
        let part = self.meter.part(&format!("postgres {}", item.db), 0);
        let meter = &part;
        let member = item.member.as_ref().filter(|_| self.streaming);
        let indexed = member.and_then(|m| {
            self.index.and_then(|(source, i)| {
                i.members.iter().find(|e| e.name == *m).map(|e| (source, e))
            })
        });
        if let (Some(member), Some((source, entry))) = (member, indexed) {
            // Read on its own from the archive, checked as it passes,
            // committed only once it matched the manifest.
            let verdict = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
            let open = {
                let (path, entry, manifest, verdict) = (
                    source.clone(),
                    entry.clone(),
                    self.manifest.clone(),
                    verdict.clone(),
                );
                move || {
                    let member = path.open_member(&entry).inspect_err(|e| {
                        *verdict.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(format!("{}: {e}", entry.name));
                    })?;
                    Ok(crate::verify::VerifyingReader::new(
                        member,
                        &entry.name,
                        manifest,
                        verdict,
                    ))
                }
            };
            let source = format!("{} ({member})", self.archive.display());
            return match self
                .pg
                .restore_database_reading(
                    &item.db,
                    &source,
                    open,
                    meter,
                    self.drop,
                    crate::sqlsplit::Dialect::Own,
                )
                .await
            {
                Ok(notes) => self.restored(&item.db, notes).await,
                Err(e) => {
                    let why = verdict.lock().unwrap_or_else(|e| e.into_inner()).take();
                    match why {
                        Some(why) => Ok(Some(format!(
                            "postgres {}: not restored (rolled back): {member} is damaged \
                             ({why})",
                            item.db
                        ))),
                        None => Err(e),
                    }
                }
            };
        }
        let Some(member) = member else {
            let notes = self
                .pg
                .restore_database(&item.db, &item.sql, meter, self.drop, item.dialect)
                .await?;
            return self.restored(&item.db, notes).await;
        };
        let Some(growing) = self.members.wait(member).await else {
            return Ok(Some(format!(
                "postgres {}: not restored: {member} is not in the archive",
                item.db
            )));
        };
        match self
            .pg
            .restore_database_growing(&item.db, growing.clone(), meter, self.drop)
            .await
        {
            Ok(notes) => self.restored(&item.db, notes).await,
            // Its part of the archive is damaged: rolled back, the
            // others go on.
            Err(_) if growing.damaged() => Ok(Some(format!(
                "postgres {}: not restored (rolled back): {member} is damaged",
                item.db
            ))),
            Err(e) => Err(e),
        }
    }
}

/// Waits for the manifest and every MongoDB member of a streamed archive
/// (they come before the PostgreSQL ones), each verified on its own, and
/// registers members as they start being read. Gives the manifest when
/// the stream got that far (`None`: the archive is read whole first), and
/// the MongoDB members that ended not matching the manifest (their
/// collections are left out: nothing of them is written).
async fn await_mongo_part(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<Event>,
    members: &Members,
) -> (Option<Manifest>, BTreeSet<String>) {
    let mut damaged_mongo: BTreeSet<String> = BTreeSet::new();
    let Some(Event::Manifest(manifest)) = events.recv().await else {
        return (None, damaged_mongo);
    };
    let mut pending: BTreeSet<String> = manifest
        .files
        .iter()
        .filter(|f| f.path.starts_with("mongo/"))
        .map(|f| f.path.clone())
        .collect();
    while !pending.is_empty() {
        match events.recv().await {
            Some(Event::Started(name, growing)) => members.add(name, growing),
            Some(Event::Finished(name, verified)) => {
                if !verified && name.starts_with("mongo/") {
                    damaged_mongo.insert(name.clone());
                }
                pending.remove(&name);
            }
            Some(Event::Manifest(_)) => {}
            None => return (None, damaged_mongo),
        }
    }
    (Some(manifest), damaged_mongo)
}

/// The archive's collections, as files under `unpack`, and a line for each
/// one left out because a member of it is damaged.
fn mongo_items(
    manifest: &Manifest,
    layout: Layout,
    unpack: &Path,
    damaged_mongo: &BTreeSet<String>,
) -> (Vec<RestoreItem>, Vec<String>) {
    let mut not_restored = Vec::new();
    let items = manifest
        .mongo
        .iter()
        .map(|c| {
            let (data, meta) = match layout {
                Layout::Ours => (
                    unpack.join(bson_path(&c.db, &c.collection)),
                    unpack.join(metadata_path(&c.db, &c.collection)),
                ),
                Layout::Vendor => (
                    unpack.join(format!("{VENDOR_MONGO}{}/{}.bson", c.db, c.collection)),
                    unpack.join(format!(
                        "{VENDOR_MONGO}{}/{}.metadata.json",
                        c.db, c.collection
                    )),
                ),
            };
            RestoreItem {
                db: c.db.clone(),
                collection: c.collection.clone(),
                data,
                metadata: meta.exists().then_some(meta),
                only_indexes: false,
            }
        })
        .filter(|item| {
            let bson = bson_path(&item.db, &item.collection);
            let metadata = metadata_path(&item.db, &item.collection);
            let damaged = [&bson, &metadata]
                .into_iter()
                .find(|member| damaged_mongo.contains(*member));
            if let Some(member) = damaged {
                not_restored.push(format!(
                    "mongo {}.{}: not restored (nothing of it was written): {member} is damaged",
                    item.db, item.collection
                ));
            }
            damaged.is_none()
        })
        .collect();
    (items, not_restored)
}

/// The archive's PostgreSQL databases: our layout's one file each, or the
/// vendor's pg_dumpall split into sections under `work`.
fn pg_items(
    manifest: &Manifest,
    layout: Layout,
    unpack: &Path,
    work: &WorkDir,
) -> Result<Vec<PgItem>, Error> {
    Ok(match layout {
        Layout::Ours => manifest
            .postgres
            .iter()
            .map(|d| PgItem {
                db: d.db.clone(),
                dialect: crate::sqlsplit::Dialect::Own,
                sql: unpack.join(sql_path(&d.db)),
                member: Some(sql_path(&d.db)),
            })
            .collect(),
        Layout::Vendor => {
            let wanted: Vec<String> = manifest.postgres.iter().map(|d| d.db.clone()).collect();
            split_dumpall(
                &unpack.join(VENDOR_PG),
                &work.path().join("sections"),
                &wanted,
            )?
            .into_iter()
            .map(|(db, sql)| PgItem {
                db,
                dialect: crate::sqlsplit::Dialect::Vendor,
                sql,
                member: None,
            })
            .collect()
        }
    })
}

/// The archive's MongoDB views (those of damaged members left out).
fn view_items(
    manifest: &Manifest,
    layout: Layout,
    unpack: &Path,
    damaged_mongo: &BTreeSet<String>,
) -> Vec<mongo::ViewItem> {
    match layout {
        Layout::Ours => manifest
            .mongo_views
            .iter()
            .filter(|v| !damaged_mongo.contains(&metadata_path(&v.db, &v.view)))
            .map(|v| mongo::ViewItem {
                db: v.db.clone(),
                view: v.view.clone(),
                metadata: unpack.join(metadata_path(&v.db, &v.view)),
            })
            .collect(),
        Layout::Vendor => manifest
            .mongo_views
            .iter()
            .map(|v| mongo::ViewItem {
                db: v.db.clone(),
                view: v.view.clone(),
                metadata: unpack.join(format!("{VENDOR_MONGO}{}/{}.metadata.json", v.db, v.view)),
            })
            .collect(),
    }
}

/// What the PostgreSQL target holds, database by database.
#[derive(Default)]
struct PgTargets {
    /// To load.
    todo: Vec<PgItem>,
    /// Missing on the target: created (owned by the restoring role) just
    /// before loading.
    to_create: Vec<String>,
    /// Already restored (every table holds the archive's rows).
    skipped: Vec<String>,
    /// Holding something else: why (refused unless dropped).
    occupied: Vec<String>,
}

/// Sorts `items` by what the target holds: nothing (restore), exactly the
/// archive's rows — same count and same row digest per table, not counts
/// alone — (an earlier restore finished: skip, so a second run changes
/// nothing), or something else (refuse unless `drop`).
async fn pg_targets(
    pg: &PgClient,
    manifest: &Manifest,
    items: Vec<PgItem>,
    drop: bool,
) -> Result<PgTargets, Error> {
    let mut targets = PgTargets::default();
    let existing = pg.databases(&[]).await?;
    for item in items {
        if !existing.contains(&item.db) {
            targets.to_create.push(item.db.clone());
            targets.todo.push(item);
            continue;
        }
        let tables = pg.user_tables(&item.db).await?;
        if tables == 0 || drop {
            targets.todo.push(item);
            continue;
        }
        let wanted = manifest.postgres.iter().find(|d| d.db == item.db);
        let names: Vec<String> = wanted
            .map(|d| d.tables.iter().map(|t| t.name.clone()).collect())
            .unwrap_or_default();
        let digested = wanted.is_some_and(|d| d.tables.iter().all(|t| t.digest.is_some()));
        let counts = pg.count_rows(&item.db, &names).await.unwrap_or_default();
        let same_counts = wanted.is_some_and(|d| {
            d.tables.len() == counts.len()
                && d.tables
                    .iter()
                    .all(|t| counts.iter().any(|(n, c)| *n == t.name && *c == t.rows))
        });
        let same = digested
            && same_counts
            && match pg.table_digests(&item.db, &names).await {
                Ok(held) => wanted.is_some_and(|d| {
                    d.tables.iter().all(|t| {
                        held.iter().any(|(n, rows, digest)| {
                            *n == t.name
                                && *rows == t.rows
                                && t.digest.as_deref() == Some(digest.hex().as_str())
                        })
                    })
                }),
                Err(_) => false,
            };
        if same {
            targets.skipped.push(format!("postgres {}", item.db));
        } else if same_counts && !digested {
            targets.occupied.push(format!(
                "PostgreSQL {} holds {tables} table(s) with the archive's row counts, but \
                 this archive (written before row digests) cannot show they hold its rows",
                item.db
            ));
        } else {
            targets.occupied.push(format!(
                "PostgreSQL {} holds {tables} table(s) whose rows differ from the archive's",
                item.db
            ));
        }
    }
    Ok(targets)
}

/// Counts the rows of `db`'s tables (as `manifest` lists them) on the
/// target into `counted`.
async fn count_loaded(
    pg: &PgClient,
    manifest: &Manifest,
    db: &str,
    counted: &std::sync::Mutex<PgCounts>,
) -> Result<(), Error> {
    let tables: Vec<String> = manifest
        .postgres
        .iter()
        .find(|d| d.db == db)
        .map(|d| d.tables.iter().map(|t| t.name.clone()).collect())
        .unwrap_or_default();
    let counts = pg.count_rows(db, &tables).await?;
    counted
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(db.to_owned(), counts);
    Ok(())
}

/// Row counts already taken, by database: (table, rows).
pub(crate) type PgCounts = std::collections::HashMap<String, Vec<(String, u64)>>;

/// Every collection's document count and every table's row count on the
/// targets that differ from `manifest`'s, one line each (the databases in
/// `counted` from those counts, the others counted now).
pub(crate) async fn count_mismatches(
    manifest: &Manifest,
    mongo: Option<&Client>,
    postgres: Option<&PgClient>,
    counted: &PgCounts,
) -> Result<Vec<String>, Error> {
    let mut mismatches = Vec::new();
    if let Some(client) = mongo {
        for c in &manifest.mongo {
            let n = mongo::count(client, &c.db, &c.collection).await?;
            if n != c.documents {
                mismatches.push(format!(
                    "MongoDB {}.{}: {n} documents, the archive has {}",
                    c.db, c.collection, c.documents
                ));
            }
        }
    }
    if let Some(pg) = postgres {
        let counted =
            futures_util::future::try_join_all(manifest.postgres.iter().map(|d| async move {
                if let Some(counts) = counted.get(&d.db) {
                    return Ok(counts.clone());
                }
                let tables: Vec<String> = d.tables.iter().map(|t| t.name.clone()).collect();
                pg.count_rows(&d.db, &tables).await
            }))
            .await?;
        for (d, counts) in manifest.postgres.iter().zip(counted) {
            for t in &d.tables {
                let n = counts
                    .iter()
                    .find(|(name, _)| *name == t.name)
                    .map(|(_, n)| *n);
                if n != Some(t.rows) {
                    mismatches.push(format!(
                        "PostgreSQL {}.{}: {} rows, the archive has {}",
                        d.db,
                        t.name,
                        n.map_or("no".to_owned(), |n| n.to_string()),
                        t.rows
                    ));
                }
            }
        }
    }
    Ok(mismatches)
}

/// What to do with one target collection.
pub(crate) enum CollectionPlan {
    /// Load it (documents, or only the indexes a stopped run did not
    /// build).
    Load(RestoreItem),
    /// It already holds the archive's documents and indexes; named for
    /// the report.
    Skip(String),
    /// It holds other data: why, for the refusal.
    Refuse(String),
}

/// Decides from what the target holds whether `item` (with `documents`
/// in the archive) is loaded, resumed, skipped or refused (without
/// `drop`; with it, always loaded).
pub(crate) async fn plan_collection(
    client: &Client,
    item: RestoreItem,
    documents: u64,
    drop: bool,
    progress: ha_plan::Progress<'_>,
) -> Result<CollectionPlan, Error> {
    mongo::refuse_server_code(
        &format!("{}.{}", item.db, item.collection),
        &mongo::read_metadata(&item).await?,
    )?;
    if drop {
        return Ok(CollectionPlan::Load(item));
    }
    Ok(match mongo::target_state(client, &item, documents).await? {
        mongo::TargetState::Empty => CollectionPlan::Load(item),
        mongo::TargetState::Restored => {
            CollectionPlan::Skip(format!("mongo {}.{}", item.db, item.collection))
        }
        mongo::TargetState::IndexesMissing(n) => {
            progress(&format!(
                "mongo {}.{}: every document is there but {n} index(es) are not (an earlier \
                 restore stopped before them): building them",
                item.db, item.collection
            ));
            CollectionPlan::Load(mongo::RestoreItem {
                only_indexes: true,
                ..item
            })
        }
        mongo::TargetState::Occupied(n) => CollectionPlan::Refuse(format!(
            "MongoDB {}.{} holds {n} documents, the archive {documents}, and not only the \
             archive's",
            item.db, item.collection
        )),
        mongo::TargetState::Different(n) => CollectionPlan::Refuse(format!(
            "MongoDB {}.{} holds {n} documents, as many as the archive, but not the same ones",
            item.db, item.collection
        )),
        // Fewer, every one of them the archive's: an earlier restore
        // stopped. Resume: documents already there count as restored.
        mongo::TargetState::Partial(n) => {
            progress(&format!(
                "mongo {}.{}: {n} of the archive's {documents} documents are already there (an \
                 earlier restore stopped): resuming",
                item.db, item.collection
            ));
            CollectionPlan::Load(item)
        }
    })
}

/// Splits a `pg_dumpall` script at its `\connect` lines into one file per
/// database in `wanted` (other sections — globals, `template1`,
/// `postgres` — are left out). Only a `\connect` line where a statement
/// may start splits (never one inside COPY data, a string or a body); what
/// a section may hold is judged when it is loaded
/// ([`crate::sqlsplit::Dialect::Vendor`]: its roles, databases, grants and
/// ownership are left out, anything else outside the allow-list refuses
/// it).
fn split_dumpall(
    script: &Path,
    dir: &Path,
    wanted: &[String],
) -> Result<Vec<(String, PathBuf)>, Error> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::create_dir_all(dir).map_err(Error::io(dir.display()))?;
    let input = std::fs::File::open(script).map_err(Error::io(script.display()))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, input);
    let mut out: Option<std::io::BufWriter<std::fs::File>> = None;
    let mut files = Vec::new();
    let mut line = Vec::new();
    // Reads the script as psql would: only a line that starts a statement
    // (not COPY data, a dollar-quoted body, a string or a comment) can be a
    // `\connect` or a statement to leave out.
    let mut scanner = crate::sqlscan::Scanner::new(crate::sqlsplit::Dialect::Vendor);
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(Error::io(script.display()))?;
        if n == 0 {
            break;
        }
        let starts_statement = scanner.at_statement_start();
        scanner.feed(&line);
        if !starts_statement {
            // Inside COPY data or a multi-line statement: passed on as is.
        } else if let Some(db) = connect_target(&line) {
            if let Some(mut done) = out.take() {
                done.flush().map_err(Error::io(dir.display()))?;
            }
            if wanted.contains(&db) {
                let path = dir.join(format!("{}.sql", files.len()));
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(Error::io(path.display()))?;
                out = Some(std::io::BufWriter::with_capacity(1 << 20, file));
                files.push((db, path));
            }
            continue;
        }
        if let Some(out) = &mut out {
            out.write_all(&line).map_err(Error::io(dir.display()))?;
        }
    }
    if let Some(mut done) = out.take() {
        done.flush().map_err(Error::io(dir.display()))?;
    }
    Ok(files)
}
