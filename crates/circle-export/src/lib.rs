//! Export and restore of the CircleCI Services-machine databases.
//!
//! [`export()`] dumps MongoDB (through the driver, raw BSON exactly as the
//! server sends it, or from a mongodump directory for servers the driver
//! cannot read) and PostgreSQL (`pg_dump`, plain SQL per database) in
//! parallel into a private spool directory, hashing and counting as the
//! bytes stream past, then writes one archive — `.tar`, `.tar.gz` or
//! `.tar.zst` — whose first entry, `manifest.json`, lists every file's
//! size and SHA-256, every collection's document count and every table's
//! row count. The archive appears under its name only when complete.
//!
//! [`verify::inspect`] reads an archive back and reports every damaged,
//! missing, extra or miscounted entry. [`restore()`] unpacks and verifies
//! the whole archive before it writes anything, refuses targets that hold
//! data unless told to replace it, restores collections (unordered batched
//! inserts, indexes after the data) and databases (through the protocol,
//! never `psql`: every statement judged against an allow-list, one
//! transaction per database — see [`sqlsplit`] and [`pgload`]) in
//! parallel, and compares the
//! target's counts with the archive's. It also restores the
//! `circleci_export.tar.gz` CircleCI's own `circle-database-export` script
//! writes.
//!
//! Memory stays bounded: every file is streamed in 1 MiB chunks; the only
//! whole values held are single documents (≤ 16 MiB) and insert batches
//! (≤ 8 MiB).
//!
//! # Example
//!
//! A restore onto typed targets (what `circle-export restore --config`
//! builds from `ha.toml`), checked like the CLI checks it:
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use circle_export::{Meter, MongoTarget, PgClient, PgConn, RestoreSpec};
//!
//! let mongo = MongoTarget {
//!     hosts: vec!["mongo-1.internal:27017".to_owned(), "mongo-2.internal:27017".to_owned()],
//!     replica_set: Some("circle".to_owned()),
//!     user: "circle-admin".to_owned(),
//!     password: "from your vault".to_owned().into(),
//!     tls_ca_file: Some("pki/ca.pem".into()),
//!     tls_certificate_key_file: None,
//! }
//! .connect(std::time::Duration::from_secs(60))?;
//! let postgres = PgClient::new(
//!     PgConn {
//!         host: "pg.internal".to_owned(),
//!         port: 5432,
//!         user: "circle".to_owned(),
//!         password: Some("from your vault".to_owned().into()),
//!         dbname: "postgres".to_owned(),
//!         params: vec![
//!             ("sslmode".to_owned(), "verify-full".to_owned()),
//!             ("sslrootcert".to_owned(), "pki/ca.pem".to_owned()),
//!         ],
//!     },
//!     None, // pg_dump from PATH (the export's only client program)
//! )?;
//! let report = circle_export::restore(
//!     RestoreSpec {
//!         archive: "circle-export.tar.zst".into(),
//!         unsealing: None, // or Some(&Unsealing::Identities(…)) for a sealed one
//!         mongo: Some(&mongo),
//!         postgres: Some(&postgres),
//!         drop: false,
//!         dry_run: false,
//!         parallel: 4,
//!         meter: Meter::new(),
//!         failover_wait: std::time::Duration::from_secs(60),
//!     },
//!     &|line| eprintln!("{line}"),
//! )
//! .await?;
//! assert!(report.mismatches.is_empty());
//! # Ok(()) }
//! ```

// The third-party crates whose types this crate's public API uses, so that
// a program linking it names them at the versions it was built with.
pub use {bson, mongodb, secrecy, tokio_postgres};

pub mod archive;
pub mod count;
pub mod cutover;
pub mod error;
pub mod export;
pub mod failover;
pub mod manifest;
pub mod meter;
pub mod mongo;
pub mod pgload;
pub mod postgres;
pub mod restore;
pub mod seal;
pub mod spool;
pub(crate) mod sqlscan;
pub mod sqlsplit;
mod summary;
pub mod target;
pub mod transfer;
pub mod vault_init;
pub mod verify;
pub mod wire;

pub use cutover::{CutoverState, FinalReport, FinalSpec, final_pass};
pub use error::Error;
pub use export::{ExportPlan, ExportReport, ExportSpec, MongoSource, PgSource, export};
pub use manifest::Manifest;
pub use meter::{Meter, Reading, Stage};
pub use postgres::{PgClient, PgConn};
pub use restore::{RestoreReport, RestoreSpec, restore};
pub use summary::{
    ExportPlanSummary, ExportSummary, FinalSummary, InspectionSummary, RestoreSummary,
    TransferSummary,
};
pub use target::{MongoConnection, MongoReader, MongoTarget, RestoreTargets, mongo_from_uri};
pub use transfer::{TransferMongo, TransferPostgres, TransferReport, TransferSpec, transfer};
pub use verify::{Inspection, Layout, extract_prefix, inspect, inspect_metered, vault_data};
