//! The old-server reader against the driver: the same generated MongoDB
//! data (default 1 GiB, MONGO_MIB=n for another size) exported once from a
//! member of the 7.0 profile (read by the driver) and once from the same
//! data files served by the 3.6 profile (mongod 3.6.6, read by
//! `circle_export::wire`), each export timed with its peak RSS. The two
//! archives' `.bson` files must be byte-identical (the same SHA-256 in both
//! manifests): the readers copy the same bytes.
//!
//! Run: `cargo build --profile bench -p mongo-sim && cargo bench -p
//! ha-benches --bench old_mongo`.

use std::path::Path;
use std::time::{Duration, Instant};

use circle_export::{ExportSpec, MongoReader, MongoSource};
use ha_lab::{MongoMember, MongoMemberOptions, Toolbox};
use secrecy::SecretString;

mod common;
use common::{peak_rss_kib, reset_peak_rss, seed_mongo};

fn main() {
    let mib: u64 = std::env::var("MONGO_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let tools = Toolbox::discover(std::env::vars_os()).simulator_only();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let work = tempfile::Builder::new()
        .prefix("old-mongo-bench-")
        .tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/var/tmp".to_owned()))
        .expect("work dir");

    eprintln!("bench: generating {mib} MiB of MongoDB documents …");
    let mut modern = MongoMember::start(&tools, MongoMemberOptions::default()).expect("member");
    let generated = Instant::now();
    drop(runtime.block_on(seed_mongo(modern.port(), mib)));
    eprintln!(
        "bench: generated in {:.0}s",
        generated.elapsed().as_secs_f64()
    );

    let export = |port: u16, out: &Path| {
        let uri = SecretString::from(format!("mongodb://localhost:{port}/?directConnection=true"));
        runtime.block_on(async {
            let reader = MongoReader::from_uri(&uri, Duration::from_secs(30))
                .await
                .expect("reader");
            let which = reader.describe();
            reset_peak_rss();
            let started = Instant::now();
            let report = circle_export::export(
                ExportSpec {
                    mongo: Some(MongoSource::Server {
                        reader: &reader,
                        databases: Vec::new(),
                    }),
                    postgres: None,
                    encryption_keys: None,
                    vault_data: None,
                    danger_include_vault_init_output: false,
                    out: out.to_owned(),
                    seal: None,
                    parallel: 4,
                    meter: circle_export::Meter::default(),
                    tool: "circle-export bench".to_owned(),
                },
                &|_| {},
            )
            .await
            .expect("export");
            (started.elapsed(), peak_rss_kib(), report, which)
        })
    };

    let (driver_time, driver_rss, driver_report, driver_reader) =
        export(modern.port(), &work.path().join("driver.tar.zst"));
    modern.stop();
    let old = MongoMember::start_with_data(
        &tools,
        MongoMemberOptions {
            extra_args: vec!["--simServerVersion".into(), "3.6".into()],
            ..MongoMemberOptions::default()
        },
        &modern.dbpath(),
    )
    .expect("3.6 member");
    drop(modern);
    let (wire_time, wire_rss, wire_report, wire_reader) =
        export(old.port(), &work.path().join("wire.tar.zst"));

    let bson_files = |m: &circle_export::Manifest| {
        m.files
            .iter()
            .filter(|f| f.path.ends_with(".bson"))
            .map(|f| (f.path.clone(), f.sha256.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        bson_files(&driver_report.manifest),
        bson_files(&wire_report.manifest),
        "the two readers copied different bytes"
    );
    let documents: u64 = wire_report.manifest.mongo.iter().map(|c| c.documents).sum();
    let mib_of = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "old-server reader benchmark: {:.0} MiB of BSON, {documents} documents in {} collections, {} cores",
        mib_of(wire_report.data_bytes),
        wire_report.manifest.mongo.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for (what, time, rss, reader) in [
        ("7.0 profile", driver_time, driver_rss, driver_reader),
        ("3.6 profile", wire_time, wire_rss, wire_reader),
    ] {
        println!(
            "  export from the {what} ({reader}): {:.2}s, {:.0} MiB/s, peak RSS {:.0} MiB",
            time.as_secs_f64(),
            mib_of(wire_report.data_bytes) / time.as_secs_f64(),
            rss as f64 / 1024.0
        );
    }
    println!(
        "  3.6 / 7.0 time: {:.3} (the .bson files byte-identical)",
        wire_time.as_secs_f64() / driver_time.as_secs_f64()
    );
}
