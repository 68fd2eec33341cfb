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
//! inserts, indexes after the data) and databases (`psql` in one
//! transaction with `ON_ERROR_STOP`) in parallel, and compares the
//! target's counts with the archive's. It also restores the
//! `circleci_export.tar.gz` CircleCI's own `circle-database-export` script
//! writes.
//!
//! Memory stays bounded: every file is streamed in 1 MiB chunks; the only
//! whole values held are single documents (≤ 16 MiB) and insert batches
//! (≤ 8 MiB).

pub mod archive;
pub mod count;
pub mod error;
pub mod export;
pub mod manifest;
pub mod meter;
pub mod mongo;
pub mod postgres;
pub mod restore;
pub mod spool;
pub mod verify;

pub use error::Error;
pub use export::{ExportPlan, ExportReport, ExportSpec, MongoSource, export};
pub use manifest::Manifest;
pub use meter::{Meter, Reading, Stage};
pub use postgres::{PgClient, PgConn};
pub use restore::{RestoreReport, RestoreSpec, restore};
pub use verify::{Inspection, Layout, inspect, inspect_metered};
