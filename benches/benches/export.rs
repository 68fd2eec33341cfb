//! circle-export vs what an operator would run by hand, on generated data
//! (default 1 GiB: half MongoDB, half PostgreSQL over four databases).
//!
//! - export: circle-export (parallel dumps, multithreaded zstd) against
//!   `pg_dump <db> | gzip` for each database one after another plus `tar
//!   czf` of the MongoDB dump directory (the mongodump layout, taken from
//!   circle-export's own archive, because no mongodump exists here — which
//!   spares the baseline the dumping of MongoDB altogether);
//! - restore, each load into a freshly initialised durable cluster (fsync
//!   on), as onto a new host: circle-export's PostgreSQL
//!   restore (verify + unpack + parallel `psql`) against `psql -f` of the
//!   same plain dumps, already decompressed, one after another (the
//!   strictest baseline), and against `gzip -dc <db>.sql.gz | psql` one
//!   after another (restoring the baseline's own archive); the full restore
//!   (MongoDB too) is reported alongside;
//! - the whole window: `circle-export transfer` (old servers straight into
//!   fresh targets, the archive written alongside) against the vendor-style
//!   PostgreSQL window — `pg_dump | gzip` per database, then `gzip -dc |
//!   psql`, one after another — and, with MongoDB loaded too, against the
//!   whole export baseline plus that restore (no mongorestore here: the
//!   baseline never loads MongoDB, which favours it).
//!
//! Peak RSS: circle-export's own (VmHWM, reset before each phase) and its
//! children's (pg_dump/psql, from getrusage); the baseline's largest child.
//!
//! Run: `cargo build --profile bench -p mongo-sim && cargo bench -p
//! ha-benches --bench export` (SIZE_MIB=n for another size, default 1024;
//! BENCH_TRACE=1 to see the tool's progress lines with their times). The
//! members run the optimised `target/release/mongo-sim`; built with the
//! bench profile it shares the benchmark's dependencies (the release
//! profile's LTO build would compile them all again).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use circle_export::{ExportSpec, MongoSource, PgClient, PgConn, RestoreSpec};
use ha_lab::{LabPki, MongoMember, MongoMemberOptions, Postgres, PostgresOptions, Toolbox};
use secrecy::ExposeSecret as _;

mod common;
use common::{direct, peak_rss_kib, reset_peak_rss, seed_mongo};

const PG_DATABASES: [&str; 4] = ["circle", "conductor_production", "vms", "domain"];

fn main() {
    let size_mib: u64 = std::env::var("SIZE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    // BENCH_TRACE=1: the tool's progress lines, timed from the bench's start.
    let trace_on = std::env::var_os("BENCH_TRACE").is_some();
    let bench_start = Instant::now();
    let trace = move |line: &str| {
        if trace_on {
            eprintln!("  [{:>7.2}s] {line}", bench_start.elapsed().as_secs_f64());
        }
    };
    let tools = Toolbox::discover(std::env::vars_os());
    let pki = LabPki::new().expect("lab CA");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let work = tempfile::Builder::new()
        .prefix("export-bench-")
        .tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/var/tmp".to_owned()))
        .expect("work dir");

    eprintln!("bench: generating {size_mib} MiB (half MongoDB, half PostgreSQL) …");
    let generated = Instant::now();
    let old_mongo =
        MongoMember::start(&tools, MongoMemberOptions::default()).expect("mongo member");
    let old_pg = Postgres::start(&tools, &pki, PostgresOptions::default()).expect("PostgreSQL");
    let mongo_client = runtime.block_on(seed_mongo(old_mongo.port(), size_mib / 2));
    seed_pg(&old_pg, size_mib / 2);
    eprintln!(
        "bench: generated in {:.0}s",
        generated.elapsed().as_secs_f64()
    );

    let source_pg = pg_client(
        &old_pg,
        old_pg.superuser(),
        old_pg.superuser_password().expose_secret(),
    );

    // --- export: circle-export. Timed with its peak RSS; also sealed (to
    // an X25519 recipient), between two unsealed runs of the same export
    // so that neither kind gets the warmer caches.
    let timed_export = |out: &Path, seal: Option<&circle_export::seal::Sealing>| {
        reset_peak_rss();
        let started = Instant::now();
        let report = runtime
            .block_on(circle_export::export(
                ExportSpec {
                    mongo: Some(MongoSource::Server {
                        reader: &mongo_client.clone().into(),
                        databases: Vec::new(),
                    }),
                    postgres: Some(circle_export::PgSource {
                        client: &source_pg,
                        databases: Vec::new(),
                    }),
                    encryption_keys: None,
                    vault_data: None,
                    danger_include_vault_init_output: false,
                    out: out.to_owned(),
                    seal,
                    parallel: 4,
                    meter: circle_export::Meter::default(),
                    tool: "circle-export bench".to_owned(),
                },
                &trace,
            ))
            .expect("export");
        (started.elapsed(), peak_rss_kib(), report)
    };
    let archive = work.path().join("export.tar.zst");
    let children_before = children_maxrss_kib();
    let (tool_export, tool_export_rss, report) = timed_export(&archive, None);
    let tool_export_children = children_maxrss_kib().max(children_before);
    let identity = circle_export::seal::Identity::generate().expect("identity");
    let sealing = circle_export::seal::Sealing::Recipients(vec![identity.recipient()]);
    let unsealing = circle_export::seal::Unsealing::Identities(vec![identity]);
    let sealed_archive = work.path().join("export.tar.zst.age");
    let (tool_sealed_export, tool_sealed_export_rss, _) =
        timed_export(&sealed_archive, Some(&sealing));
    let again = work.path().join("again.tar.zst");
    let (tool_export_again, _, _) = timed_export(&again, None);
    std::fs::remove_file(&again).expect("remove the second archive");
    std::fs::remove_file(&sealed_archive).expect("remove the sealed archive");

    // --- export: baseline
    let base_dir = work.path().join("baseline");
    std::fs::create_dir_all(&base_dir).expect("baseline dir");
    let dump_dir = work.path().join("mongodump");
    extract_mongo_layout(&archive, &dump_dir);
    let env = old_pg.libpq_env("postgres").expect("libpq env");
    let started = Instant::now();
    for_each_database(&env, |db| {
        format!(
            "{}/pg_dump --format=plain --no-owner --no-privileges {db} | gzip > {}/{db}.sql.gz",
            old_pg.bin_dir().display(),
            base_dir.display()
        )
    });
    let baseline_pg_export = started.elapsed();
    run_shell(
        &format!(
            "tar czf {}/mongo.tar.gz -C {} .",
            base_dir.display(),
            dump_dir.display()
        ),
        &env,
    );
    let baseline_export = started.elapsed();
    let baseline_export_rss = children_maxrss_kib();
    let baseline_bytes: u64 = std::fs::read_dir(&base_dir)
        .expect("baseline dir")
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();

    // --- restore: targets, durable (fsync on) as real servers are
    let durable = || PostgresOptions {
        durable: true,
        ..PostgresOptions::default()
    };
    // Every load, the tool's and the baselines', goes into a freshly
    // initialised cluster, as onto a new host: a cluster's first load also
    // creates its WAL segments (measured: ~0.5 s of a 4 s load), so a
    // cluster loaded before would favour whoever comes second.
    let fresh_pg = || {
        let pg = Postgres::start(&tools, &pki, durable()).expect("PostgreSQL");
        psql(&pg, "postgres", "CREATE ROLE circle LOGIN PASSWORD 'bench'");
        for db in PG_DATABASES {
            psql(
                &pg,
                "postgres",
                &format!("CREATE DATABASE {db} OWNER circle"),
            );
        }
        pg
    };
    let base_pg = fresh_pg();
    let new_mongo =
        MongoMember::start(&tools, MongoMemberOptions::default()).expect("mongo member");
    let new_mongo_client = runtime.block_on(direct(new_mongo.port()));

    // PostgreSQL only, for the like-for-like ratio: exported, then
    // restored into a fresh cluster, timed; plain, then sealed (the sealed
    // archive authenticated whole first, then read from the seek index's
    // offsets inside the payload).
    let pg_only = |name: &str,
                   seal: Option<&circle_export::seal::Sealing>,
                   unsealing: Option<&circle_export::seal::Unsealing>| {
        let archive = work.path().join(name);
        runtime
            .block_on(circle_export::export(
                ExportSpec {
                    mongo: None,
                    postgres: Some(circle_export::PgSource {
                        client: &source_pg,
                        databases: Vec::new(),
                    }),
                    encryption_keys: None,
                    vault_data: None,
                    danger_include_vault_init_output: false,
                    out: archive.clone(),
                    seal,
                    parallel: 4,
                    meter: circle_export::Meter::default(),
                    tool: "circle-export bench".to_owned(),
                },
                &trace,
            ))
            .expect("pg-only export");
        let pg = fresh_pg();
        let target = pg_client(&pg, "circle", "bench");
        reset_peak_rss();
        let started = Instant::now();
        let report = runtime
            .block_on(circle_export::restore(
                RestoreSpec {
                    archive,
                    unsealing,
                    mongo: None,
                    postgres: Some(&target),
                    drop: false,
                    dry_run: false,
                    parallel: 4,
                    meter: circle_export::Meter::default(),
                    failover_wait: std::time::Duration::from_secs(60),
                },
                &trace,
            ))
            .expect("restore");
        let elapsed = started.elapsed();
        let rss = peak_rss_kib();
        assert!(report.mismatches.is_empty(), "{:?}", report.mismatches);
        assert_eq!(report.sealed, seal.is_some());
        (elapsed, rss)
    };
    let (tool_pg_restore, tool_restore_rss) = pg_only("pg-only.tar.zst", None, None);
    let (tool_sealed_pg_restore, tool_sealed_restore_rss) =
        pg_only("pg-only.tar.zst.age", Some(&sealing), Some(&unsealing));

    // Baseline: psql of the same plain dumps, one after another.
    let plain = work.path().join("plain");
    std::fs::create_dir_all(&plain).expect("plain dir");
    for_each_database(&env, |db| {
        format!(
            "gzip -dc {0}/{db}.sql.gz > {1}/{db}.sql",
            base_dir.display(),
            plain.display()
        )
    });
    let base_env = base_pg.libpq_env("postgres").expect("libpq env");
    let started = Instant::now();
    for_each_database(&base_env, |db| {
        format!(
            "{}/psql -X -q -v ON_ERROR_STOP=1 -d {db} -f {}/{db}.sql > /dev/null",
            base_pg.bin_dir().display(),
            plain.display()
        )
    });
    let baseline_pg_restore = started.elapsed();

    drop(base_pg);

    // Baseline as an operator restores the baseline's own archive: each
    // `<db>.sql.gz` through gunzip into psql, one after another.
    let gunzip_pg = fresh_pg();
    let gunzip_env = gunzip_pg.libpq_env("postgres").expect("libpq env");
    let started = Instant::now();
    for_each_database(&gunzip_env, |db| {
        format!(
            "set -o pipefail; gzip -dc {}/{db}.sql.gz | {}/psql -X -q -v ON_ERROR_STOP=1 -d {db} > /dev/null",
            base_dir.display(),
            gunzip_pg.bin_dir().display(),
        )
    });
    let baseline_gunzip_restore = started.elapsed();
    drop(gunzip_pg);

    // The full restore (MongoDB and PostgreSQL).
    let full_pg = fresh_pg();
    let target_pg = pg_client(&full_pg, "circle", "bench");
    let started = Instant::now();
    let full = runtime
        .block_on(circle_export::restore(
            RestoreSpec {
                archive: archive.clone(),
                unsealing: None,
                mongo: Some(&circle_export::MongoConnection {
                    client: new_mongo_client.clone(),
                    replica_set: false,
                }),
                postgres: Some(&target_pg),
                drop: false,
                dry_run: false,
                parallel: 4,
                meter: circle_export::Meter::default(),
                failover_wait: std::time::Duration::from_secs(60),
            },
            &trace,
        ))
        .expect("full restore");
    let tool_full_restore = started.elapsed();
    assert!(full.mismatches.is_empty(), "{:?}", full.mismatches);

    // --- transfer: the old servers straight into fresh targets, the
    // archive written alongside. PostgreSQL only first (like for like with
    // the vendor's PostgreSQL window), then everything.
    drop(full_pg);
    // Its memory (every document, and the oplog) is not needed any more.
    drop(new_mongo_client);
    drop(new_mongo);
    let transfer = |mongo: Option<circle_export::TransferMongo<'_>>, out: &str| {
        let pg = fresh_pg();
        let target_pg = pg_client(&pg, "circle", "bench");
        reset_peak_rss();
        let started = Instant::now();
        let report = runtime
            .block_on(circle_export::transfer(
                circle_export::TransferSpec {
                    mongo,
                    postgres: Some(circle_export::TransferPostgres {
                        source: &source_pg,
                        databases: Vec::new(),
                        target: &target_pg,
                    }),
                    encryption_keys: None,
                    vault_data: None,
                    danger_include_vault_init_output: false,
                    out: work.path().join(out),
                    seal: None,
                    drop: false,
                    live: false,
                    dry_run: false,
                    parallel: 4,
                    meter: circle_export::Meter::default(),
                    failover_wait: Duration::from_secs(60),
                    tool: "circle-export bench".to_owned(),
                },
                &trace,
            ))
            .expect("transfer");
        assert!(
            report.restore.mismatches.is_empty(),
            "{:?}",
            report.restore.mismatches
        );
        (
            started.elapsed(),
            peak_rss_kib(),
            report.restore.documents,
            pg,
        )
    };
    let (tool_pg_transfer, tool_pg_transfer_rss, _, pg_only_target) =
        transfer(None, "pg-transfer.tar.zst");
    drop(pg_only_target);
    let transfer_mongo =
        MongoMember::start(&tools, MongoMemberOptions::default()).expect("mongo member");
    let transfer_mongo_client = runtime.block_on(direct(transfer_mongo.port()));
    let mongo_reader = circle_export::MongoReader::from(mongo_client.clone());
    let (tool_full_transfer, tool_full_transfer_rss, transferred_documents, full_target_pg) =
        transfer(
            Some(circle_export::TransferMongo {
                source: &mongo_reader,
                databases: Vec::new(),
                target: &circle_export::MongoConnection {
                    client: transfer_mongo_client.clone(),
                    replica_set: false,
                },
            }),
            "full-transfer.tar.zst",
        );

    // --- cutover: the full transfer above is the pre-copy. Then 1 % of
    // the documents and rows change on the old side (a third each
    // replaced, deleted, inserted, spread over every collection and
    // table) and the final pass moves them; then a pass with nothing
    // changed. Both against the same vendor window as the full transfer.
    let changed_documents = runtime.block_on(change_mongo(&mongo_client, 100));
    let changed_rows = change_pg(&old_pg, 100);
    let final_target_pg = pg_client(&full_target_pg, "circle", "bench");
    let final_target_mongo = circle_export::MongoConnection {
        client: transfer_mongo_client.clone(),
        replica_set: false,
    };
    let final_pass = || {
        // In life the pre-copy runs days before the window, and what it
        // wrote is on disk by then; here it ran a moment ago. Its dirty
        // pages are flushed first so that the window is not charged for
        // their writeback (a bench artefact), not for any of its own.
        let _ = Command::new("sync").status();
        reset_peak_rss();
        let started = Instant::now();
        let report = runtime
            .block_on(circle_export::final_pass(
                circle_export::FinalSpec {
                    mongo: Some(circle_export::TransferMongo {
                        source: &mongo_reader,
                        databases: Vec::new(),
                        target: &final_target_mongo,
                    }),
                    postgres: Some(circle_export::TransferPostgres {
                        source: &source_pg,
                        databases: Vec::new(),
                        target: &final_target_pg,
                    }),
                    state: circle_export::cutover::state_path(
                        &work.path().join("full-transfer.tar.zst"),
                    ),
                    dry_run: false,
                    parallel: 4,
                    failover_wait: Duration::from_secs(60),
                },
                &trace,
            ))
            .expect("final pass");
        assert!(report.mismatches.is_empty(), "{:?}", report.mismatches);
        (started.elapsed(), peak_rss_kib(), report)
    };
    let (final_changed, final_changed_rss, final_changed_report) = final_pass();
    let (final_same, final_same_rss, final_same_report) = final_pass();
    assert!(
        final_same_report.changes.is_empty(),
        "{:?}",
        final_same_report.changes
    );

    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let secs = |d: Duration| d.as_secs_f64();
    println!(
        "circle-export benchmark: {size_mib} MiB generated ({:.0} MiB of dumps), 2 databases of MongoDB + {} of PostgreSQL, {} cores",
        mib(report.data_bytes),
        PG_DATABASES.len(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "export   circle-export {:>7.1}s  archive {:>7.1} MiB  peak RSS {:>5} MiB (children {:>4} MiB)",
        secs(tool_export),
        mib(report.archive_bytes),
        tool_export_rss / 1024,
        tool_export_children / 1024
    );
    println!(
        "export   baseline      {:>7.1}s  archive {:>7.1} MiB  peak RSS {:>5} MiB (largest child)",
        secs(baseline_export),
        mib(baseline_bytes),
        baseline_export_rss / 1024
    );
    println!(
        "export   ratio         {:>7.2}x faster",
        secs(baseline_export) / secs(tool_export)
    );
    let unsealed_mean = (secs(tool_export) + secs(tool_export_again)) / 2.0;
    println!(
        "export   sealed        {:>7.1}s  (to one X25519 recipient; unsealed {:.1}s and {:.1}s around it: {:+.1} % against their mean; peak RSS {} MiB)",
        secs(tool_sealed_export),
        secs(tool_export),
        secs(tool_export_again),
        (secs(tool_sealed_export) / unsealed_mean - 1.0) * 100.0,
        tool_sealed_export_rss / 1024
    );
    println!(
        "restore  circle-export {:>7.1}s  (PostgreSQL part: each database read from its place in the archive and verified as it loads, in parallel; peak RSS {} MiB)",
        secs(tool_pg_restore),
        tool_restore_rss / 1024
    );
    println!(
        "restore  sealed        {:>7.1}s  (the same PostgreSQL part sealed: authenticated whole, then loaded; {:+.1} % against unsealed; peak RSS {} MiB)",
        secs(tool_sealed_pg_restore),
        (secs(tool_sealed_pg_restore) / secs(tool_pg_restore) - 1.0) * 100.0,
        tool_sealed_restore_rss / 1024
    );
    println!(
        "restore  baseline      {:>7.1}s  (psql -f of the same plain dumps, one after another)",
        secs(baseline_pg_restore)
    );
    println!(
        "restore  ratio         {:>7.2}x faster",
        secs(baseline_pg_restore) / secs(tool_pg_restore)
    );
    println!(
        "restore  baseline 2    {:>7.1}s  (gzip -dc <db>.sql.gz | psql, one after another: the baseline archive restored)",
        secs(baseline_gunzip_restore)
    );
    println!(
        "restore  ratio 2       {:>7.2}x faster",
        secs(baseline_gunzip_restore) / secs(tool_pg_restore)
    );
    let vendor_pg_window = baseline_pg_export + baseline_gunzip_restore;
    println!(
        "window   baseline      {:>7.1}s  (PostgreSQL: pg_dump | gzip, then gzip -dc | psql, one database after another)",
        secs(vendor_pg_window)
    );
    println!(
        "window   transfer      {:>7.1}s  (PostgreSQL, archive written alongside; peak RSS {} MiB)",
        secs(tool_pg_transfer),
        tool_pg_transfer_rss / 1024
    );
    println!(
        "window   ratio         {:>7.2}x shorter",
        secs(vendor_pg_window) / secs(tool_pg_transfer)
    );
    println!(
        "window   full baseline {:>7.1}s  (the export baseline with MongoDB's tar, then gzip -dc | psql; no mongorestore here, so MongoDB is never loaded)",
        secs(baseline_export + baseline_gunzip_restore)
    );
    println!(
        "window   full transfer {:>7.1}s  (MongoDB {} documents loaded too; peak RSS {} MiB)",
        secs(tool_full_transfer),
        transferred_documents,
        tool_full_transfer_rss / 1024
    );
    println!(
        "window   full ratio    {:>7.2}x shorter",
        secs(baseline_export + baseline_gunzip_restore) / secs(tool_full_transfer)
    );
    let vendor_window = secs(baseline_export + baseline_gunzip_restore);
    println!(
        "cutover  pre-copy      {:>7.1}s  (the full transfer above, while the old side may still run)",
        secs(tool_full_transfer)
    );
    println!(
        "cutover  final 1 %     {:>7.1}s  ({changed_documents} documents and {changed_rows} rows changed; moved {} documents, {} rows; peak RSS {} MiB)",
        secs(final_changed),
        final_changed_report.documents.total(),
        final_changed_report.rows.total(),
        final_changed_rss / 1024
    );
    println!(
        "cutover  ratio 1 %     {:>7.2}x shorter than the vendor window ({vendor_window:.1}s)",
        vendor_window / secs(final_changed)
    );
    println!(
        "cutover  final 0 %     {:>7.1}s  (nothing changed; peak RSS {} MiB)",
        secs(final_same),
        final_same_rss / 1024
    );
    println!(
        "cutover  ratio 0 %     {:>7.2}x shorter than the vendor window",
        vendor_window / secs(final_same)
    );
    println!(
        "restore  full archive  {:>7.1}s  (MongoDB {} documents + PostgreSQL; no baseline: no mongorestore here)",
        secs(tool_full_restore),
        full.documents
    );
    drop(old_mongo);
    drop(full_target_pg);
}

/// Changes one document in `per` of each bench collection: a third
/// replaced (deleted and inserted again with another payload: mongo-sim
/// has no `update`), a third deleted, a third new. Returns how many.
async fn change_mongo(client: &mongodb::Client, per: u64) -> u64 {
    let targets = [
        ("circle_ghe", "builds"),
        ("circle_ghe", "action_logs"),
        ("build_state_dev_ghe", "states"),
        ("containers_dev_ghe", "containers"),
    ];
    let mut changed = 0;
    for (db, coll) in targets {
        let collection = client.database(db).collection::<bson::Document>(coll);
        let count = collection.estimated_document_count().await.expect("count");
        let n = count / per / 3;
        let stride = (count / (n * 3).max(1)).max(1);
        let replaced: Vec<i64> = (0..n).map(|k| (k * 3 * stride) as i64).collect();
        let deleted: Vec<i64> = (0..n).map(|k| (k * 3 * stride + stride) as i64).collect();
        collection
            .delete_many(
                bson::doc! {"_id": {"$in": replaced.iter().chain(&deleted).collect::<Vec<_>>()}},
            )
            .await
            .expect("delete");
        let again = replaced.iter().map(|id| {
            bson::doc! {"_id": id, "vcs_url": "changed", "payload": common::hexish(*id as u64, 900), "n": id, "ok": true}
        });
        let new = (0..n).map(|k| {
            let id = (count + k) as i64;
            bson::doc! {"_id": id, "vcs_url": "new", "payload": common::hexish(id as u64, 900), "n": id, "ok": false}
        });
        collection
            .insert_many(again.chain(new).collect::<Vec<_>>())
            .await
            .expect("insert");
        changed += 3 * n;
    }
    changed
}

/// Changes one row in `per` of each bench table, a third each updated,
/// deleted and inserted. Returns how many.
fn change_pg(pg: &Postgres, per: u64) -> u64 {
    let mut changed = 0;
    for db in PG_DATABASES {
        let rows: u64 = psql_value(pg, db, "SELECT count(*) FROM events");
        let n = rows / per / 3;
        let stride = (rows / (n * 3).max(1)).max(1);
        psql(
            pg,
            db,
            &format!(
                "UPDATE events SET body = 'changed ' || id WHERE id % {stride} = 1 AND id / {stride} < {n}; \
                 DELETE FROM events WHERE id % {stride} = 2 AND id / {stride} < {n}; \
                 INSERT INTO events SELECT g, now(), 'new', md5(g::text), '{{}}' \
                   FROM generate_series({} + 1, {} + {n}) g",
                rows, rows
            ),
        );
        changed += 3 * n;
    }
    changed
}

fn psql_value(pg: &Postgres, db: &str, sql: &str) -> u64 {
    let output = Command::new(pg.bin_dir().join("psql"))
        .args(["-X", "-q", "-At", "-c", sql])
        .env_clear()
        .envs(pg.libpq_env(db).expect("libpq env"))
        .output()
        .expect("psql");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("a number")
}

fn seed_pg(pg: &Postgres, mib: u64) {
    let rows = mib * 1024 / PG_DATABASES.len() as u64;
    for db in PG_DATABASES {
        psql(pg, "postgres", &format!("CREATE DATABASE {db}"));
        psql(
            pg,
            db,
            &format!(
                "CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz, kind text, body text, data jsonb); \
                 INSERT INTO events SELECT g, timestamptz '2019-01-01' + g * interval '1 second', \
                 (ARRAY['build','deploy','test'])[1 + g % 3], \
                 md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) || repeat(md5((g * 17)::text), 20), \
                 jsonb_build_object('g', g, 'h', md5(g::text)) \
                 FROM generate_series(1, {rows}) g"
            ),
        );
    }
}

fn pg_client(pg: &Postgres, user: &str, password: &str) -> PgClient {
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let uri = format!(
        "postgresql://{}:{}@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}&hostaddr=127.0.0.1",
        enc(user),
        enc(password),
        pg.port(),
        enc(&pg.ca_file().display().to_string())
    );
    PgClient::new(
        PgConn::parse_uri(&uri).expect("uri"),
        Some(pg.bin_dir().to_owned()),
    )
    .expect("pg client")
}

fn psql(pg: &Postgres, db: &str, sql: &str) {
    let status = Command::new(pg.bin_dir().join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env_clear()
        .envs(pg.libpq_env(db).expect("libpq env"))
        .status()
        .expect("psql");
    assert!(status.success(), "psql failed: {sql}");
}

/// Runs the shell line `script(db)` for each bench database, one after
/// another, with `env`.
fn for_each_database(
    env: &[(std::ffi::OsString, std::ffi::OsString)],
    script: impl Fn(&str) -> String,
) {
    for db in PG_DATABASES {
        run_shell(&script(db), env);
    }
}

fn run_shell(script: &str, env: &[(std::ffi::OsString, std::ffi::OsString)]) {
    let status = Command::new("bash")
        .args(["-o", "pipefail", "-c", script])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().cloned())
        .status()
        .expect("bash");
    assert!(status.success(), "failed: {script}");
}

/// The MongoDB part of the archive as a mongodump directory.
fn extract_mongo_layout(archive: &Path, into: &Path) {
    let mut reader = circle_export::archive::Source::open(archive, None)
        .unwrap()
        .open_tar(&circle_export::Meter::default())
        .expect("archive");
    for entry in reader.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let path: PathBuf = entry.path().expect("path").into_owned();
        if let Ok(rest) = path.strip_prefix("mongo") {
            let target = into.join(rest);
            std::fs::create_dir_all(target.parent().expect("parent")).expect("dir");
            entry.unpack(&target).expect("unpack");
        }
    }
}

#[allow(unsafe_code)]
fn children_maxrss_kib() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a complete rusage into the pointer.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr());
        usage.assume_init()
    };
    usage.ru_maxrss as u64
}
