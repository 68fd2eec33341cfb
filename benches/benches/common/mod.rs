//! What the benchmarks share: generated MongoDB data and peak-RSS readings.

#![allow(dead_code)] // each bench uses its part

use bson::doc;

/// A direct driver client for the member on `port`.
pub(crate) async fn direct(port: u16) -> mongodb::Client {
    mongodb::Client::with_uri_str(format!("mongodb://localhost:{port}/?directConnection=true"))
        .await
        .expect("mongo client")
}

/// `mib` MiB of ~1 KiB documents with incompressible-ish hex strings, over
/// four collections in two databases.
pub(crate) async fn seed_mongo(port: u16, mib: u64) -> mongodb::Client {
    let client = direct(port).await;
    let docs_total = mib * 1024;
    let targets = [
        ("circle_ghe", "builds"),
        ("circle_ghe", "action_logs"),
        ("build_state_dev_ghe", "states"),
        ("containers_dev_ghe", "containers"),
    ];
    let per = docs_total / targets.len() as u64;
    let mut tasks = Vec::new();
    for (t, (db, coll)) in targets.into_iter().enumerate() {
        let collection = client.database(db).collection::<bson::Document>(coll);
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while i < per {
                let batch: Vec<bson::Document> = (i..(i + 2000).min(per))
                    .map(|n| {
                        doc! {
                            "_id": n as i64,
                            "vcs_url": format!("https://github.com/org{}/repo{}", n % 97, n % 1013),
                            "payload": hexish(n * 31 + t as u64, 900),
                            "n": n as i64,
                            "ok": n % 3 == 0,
                        }
                    })
                    .collect();
                i += batch.len() as u64;
                collection.insert_many(batch).await.expect("insert");
            }
        }));
    }
    for task in tasks {
        task.await.expect("seed task");
    }
    client
}

/// `len` pseudo-random hex characters (compress like real ids and hashes).
pub(crate) fn hexish(seed: u64, len: usize) -> String {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut s = String::with_capacity(len);
    while s.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(&format!("{x:016x}"));
    }
    s.truncate(len);
    s
}

/// Hands freed memory back and resets the peak RSS (VmHWM).
#[allow(unsafe_code)]
pub(crate) fn reset_peak_rss() {
    // Memory earlier phases freed but the allocator kept would count in
    // the next phase's peak: hand it back first.
    // SAFETY: malloc_trim only releases free heap memory; no pointer held
    // anywhere is affected.
    unsafe {
        libc::malloc_trim(0);
    }
    // Writing 5 to clear_refs resets VmHWM (Linux 4.0+).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The peak RSS (VmHWM) since the last reset, in KiB.
pub(crate) fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}
