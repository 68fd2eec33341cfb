//! Shared glue for the circle-ha command-line tools.
//!
//! Each binary in `src/bin/` is a thin `main` that parses its command line
//! with clap and calls into this crate. `ha.toml` is read by `ha-config`,
//! which hands each section to its concern crate as typed values; the
//! concern crates do the work and describe it in `ha-plan`'s vocabulary.
//! This crate owns the policy on top: which concerns a command runs, how
//! the outcome is printed (text, `--json`, progress) and the exit codes.
//! Libraries below never print or read the environment; this crate does
//! both, on their behalf.

pub mod aws;
pub mod backup;
pub mod cli;
pub mod exit;
pub mod export;
pub mod keys;
pub mod log;
pub mod migrate;
pub mod output;
pub mod progress;
pub mod schema;
pub mod services;
pub mod vault;
