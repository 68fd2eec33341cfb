//! Backups of a MongoDB replica set the way CircleCI's runbook asks for
//! them: stop mongod on one SECONDARY, wait until it has stopped
//! completely, snapshot its volumes, start it again and let it catch up —
//! with guards so that the set is never left short, and retention.
//!
//! - [`guard::check`] (pure): the member must be a healthy, caught-up
//!   SECONDARY (never the PRIMARY); stopping it must leave a majority of
//!   the voting members up *and* enough caught-up data-bearing voters for
//!   `w: "majority"` writes; no other member may be down; a hidden or
//!   priority-0 backup member is preferred. Every refusal at once, nothing
//!   touched.
//! - [`lock`]: one backup at a time per set, as a lease on the primary
//!   that a crashed run cannot hold for ever.
//! - [`process`]: stopping and starting mongod ([`MemberProcess`];
//!   [`Commands`] runs `systemctl stop mongod` …) and [`wait_stopped`]
//!   (no listener, `mongod.lock` released).
//! - [`store`]: where snapshots go ([`SnapshotStore`]): [`EbsStore`]
//!   (through `ha-ec2`), [`DirectoryStore`] (a copy of the dbPath) or
//!   [`CommandStore`] (an operator's LVM/ZFS/SAN command); each
//!   snapshot tagged with the set, the member, its last applied optime and
//!   wall time, and the run ([`snapshot::Labels`]).
//! - [`run::snapshot`]: the whole run. Whatever fails after the stop —
//!   an AWS error, a timeout, a cancellation (the binaries pass SIGINT and
//!   SIGTERM) — mongod is started again before it returns, and the error
//!   says whether the member is back.
//! - [`snapshot::expired`] (pure) and [`run::prune`]: retention by count
//!   and age, over this tool's snapshots of this set only.
//! - [`report`]: `list` and `status` (the newest complete run's age) as
//!   findings.
//! - [`units::render_units`]: the systemd service and timer.
//!
//! It does not decide which replica set or credentials: the caller passes
//! a [`mongo_rs_setup::Session`] (from `ha.toml` through `ha-config`, or
//! built directly), and the EC2 client.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use mongo_backup::guard::{Limits, MemberView, SetView, check};
//!
//! let member = |host: &str, state: &str| MemberView {
//!     host: host.to_owned(),
//!     state: state.to_owned(),
//!     healthy: true,
//!     votes: 1,
//!     priority: 1.0,
//!     hidden: false,
//!     arbiter: false,
//!     optime: None,
//!     optime_millis: Some(1_800_000_000_000),
//! };
//! let set = SetView {
//!     name: "circle".to_owned(),
//!     members: vec![
//!         member("mongo-1:27017", "PRIMARY"),
//!         member("mongo-2:27017", "SECONDARY"),
//!         member("mongo-3:27017", "SECONDARY"),
//!     ],
//! };
//! let limits = Limits { max_lag: Duration::from_secs(30), any_member: false };
//! assert!(check(&set, "mongo-2:27017", &limits).is_ok());
//! // Never the primary; every reason at once.
//! let refusals = check(&set, "mongo-1:27017", &limits).unwrap_err();
//! assert!(refusals[0].to_string().contains("is the PRIMARY"));
//! ```

#![warn(clippy::print_stdout, clippy::print_stderr)]

// The third-party crates whose types this crate's public API uses, so that
// a program linking it names them at the versions it was built with.
pub use ha_ec2;

mod ebs;
mod error;
pub mod guard;
mod hook;
pub mod local;
pub mod lock;
pub mod marker;
pub mod observe;
pub mod process;
pub mod report;
pub mod run;
pub mod snapshot;
pub mod store;
pub mod units;

pub use ebs::EbsStore;
pub use error::{Error, Restart};
pub use hook::CommandStore;
pub use process::{Commands, MemberProcess, wait_stopped};
pub use run::{BackupSpec, Cancel, CancelHandle, Outcome, RestoredVolume, SnapshotReport, Step};
pub use store::{AnyStore, DirectoryStore, SnapshotStore, StoreSpec};
