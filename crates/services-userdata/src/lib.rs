//! The Services machine's recovery bundle for circle-ha.
//!
//! The runbook replaces the Services machine with an auto-scaling group of
//! one whose user data installs Replicated with the settings and connection
//! files it needs. Its snippet has real bugs (typographic quotes and an em
//! dash that break bash, `apt-get install python-pip` that fails on current
//! images, secrets inline in user data that anyone on the instance can read
//! through the metadata service). This crate renders instead:
//!
//! - the files (`settings.conf`, `replicated.conf`, `license.rli`,
//!   `circle-installation-customizations`, `circleconfig/shared/{postgresql,
//!   vault}`, the encryption keys, `ca.crt`) — every value quoted for where
//!   it lands (JSON strings, single-quoted shell words, percent-encoded URI
//!   user info) — with [`render`], pure and byte-for-byte deterministic;
//! - user data with no secret in it, which fetches those files from S3 with
//!   IMDSv2 and installs Replicated last, checked against EC2's 16 KB limit.
//!
//! [`publish`] uploads the files (server-side encrypted) and creates a new
//! launch-template version, only when something changed. [`import_settings`]
//! turns an existing `settings.conf` into the `[services]` section.

#![warn(clippy::print_stdout, clippy::print_stderr)]

mod error;
mod import;
pub mod publish;
mod render;
mod spec;
pub mod text;

pub use error::Error;
pub use import::import_settings;
pub use render::{
    Bundle, BundleFile, CA_DIRECTORY, USERDATA_LIMIT, describe, render, secret_values,
};
pub use spec::{
    BundleSpec, GithubSpec, MONGO_URI_DATABASES, MongoSpec, PostgresSpec, StorageSpec, VaultSpec,
};
