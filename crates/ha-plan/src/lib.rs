//! The one vocabulary every circle-ha concern plans, applies and reports
//! in.
//!
//! Each concern crate (`mongo-rs-setup`, `pg-provision`, `vault-transit`,
//! `services-userdata`, …) has its own `Step` enum, because what a step
//! *does* is the concern's business. What a step *looks like* to the
//! outside is shared, and lives here:
//!
//! - [`Change`]: implemented by every concern's `Step`: a stable kebab-case
//!   `kind`, a `target` naming what it changes, and a human `Display`.
//! - [`Action`]: a change as reports carry it (`{"kind", "target",
//!   "detail"}`).
//! - [`Report`]: the outcome of one mutating command, `{"changed",
//!   "dry_run", "planned", "actions", "warnings"}` in `--json`;
//!   [`Combined`] is several concerns run one after another
//!   (`circle-ha apply`).
//! - [`Problem`] and [`Problems`]: what is wrong with an input, each with
//!   the key it is at, its [`ProblemKind`] and a message; every problem is
//!   collected before anything is touched, and the list is an error type of
//!   its own (the binaries exit 2 for it).
//! - [`Document`]: what a command prints — a typed value with a JSON form
//!   (`Serialize`, described by `JsonSchema`) and a text form; checks
//!   (`status`, `verify`, `lint`) say whether they are healthy. [`Envelope`]
//!   is the `--json` line around it, [`Checked`] a check that ran or the
//!   error that stopped it, [`Refused`] a command that refused to start,
//!   [`ErrorDocument`] any other failure.
//! - [`Progress`]: the callback long operations report through; `Send +
//!   Sync`, so it may be called from any task.
//!
//! It holds no policy: nothing here prints, reads the environment or knows
//! about `ha.toml`.
//!
//! # Example
//!
//! ```
//! use std::fmt;
//!
//! use ha_plan::{Change, Report};
//!
//! /// A concern's own step.
//! enum Step {
//!     CreateDatabase { name: String },
//! }
//!
//! impl fmt::Display for Step {
//!     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
//!         match self {
//!             Step::CreateDatabase { name } => write!(f, "CREATE DATABASE {name}"),
//!         }
//!     }
//! }
//!
//! impl Change for Step {
//!     fn kind(&self) -> &'static str {
//!         "create-database"
//!     }
//!     fn target(&self) -> String {
//!         match self {
//!             Step::CreateDatabase { name } => format!("database {name}"),
//!         }
//!     }
//! }
//!
//! let steps = [Step::CreateDatabase { name: "vms".to_owned() }];
//! let report = Report::from_changes("pg-provision", true, &steps, Vec::new());
//! assert_eq!(report.changed(), 0); // a dry run changes nothing
//! assert_eq!(report.to_json()["planned"], 1);
//! assert_eq!(report.to_json()["actions"][0]["target"], "database vms");
//! ```

#![warn(clippy::print_stdout, clippy::print_stderr)]

mod document;
pub mod exposition;
mod plan;
mod problem;
mod report;

pub use document::{
    Checked, Document, Envelope, ErrorDocument, Refused, SCHEMA_VERSION, error_chain, notes_text,
    schema_of,
};
pub use plan::Plan;
pub use problem::{Problem, ProblemKind, Problems};
pub use report::{Action, Change, Combined, Report, Summarised};
pub use schemars::JsonSchema;

/// The callback long operations report their progress through: one human
/// line at a time ("waiting for mongo-2:27017 to become SECONDARY …").
/// `Send + Sync`, so a library may call it from any task or thread.
pub type Progress<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// A [`Progress`] that drops every line.
pub fn no_progress(_line: &str) {}

#[cfg(test)]
mod tests;
