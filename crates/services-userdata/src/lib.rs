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
//!
//! # Example
//!
//! Render the bundle from typed values, write it (secret files 0600) and
//! read it back; a second write changes nothing.
//!
//! ```
//! use services_userdata::{
//!     Bundle, BundleSpec, GithubSpec, MongoSpec, PostgresSpec, StorageSpec, VaultSpec,
//! };
//!
//! let secret = |s: &str| secrecy::SecretString::from(s.to_owned());
//! let spec = BundleSpec {
//!     hostname: "circleci.example.com".to_owned(),
//!     aws_region: "us-east-1".to_owned(),
//!     s3_bucket: "circleci-ha-config".to_owned(),
//!     s3_prefix: String::new(),
//!     mongo: MongoSpec {
//!         replica_set: "circle".to_owned(),
//!         hosts: vec!["mongo-1.internal:27017".to_owned(), "mongo-2.internal:27017".to_owned()],
//!         user: "circle".to_owned(),
//!         password: secret("p@ss:/?#"),
//!         databases: ["circle_ghe", "build_state_dev_ghe", "containers_dev_ghe",
//!                     "remote_containers_dev_ghe"].map(str::to_owned).to_vec(),
//!         tls: true,
//!     },
//!     postgres: PostgresSpec {
//!         host: "pg.internal".to_owned(),
//!         port: 5432,
//!         user: "circle".to_owned(),
//!         password: secret("pg-secret"),
//!     },
//!     vault: VaultSpec {
//!         scheme: "https".to_owned(),
//!         host: "vault.internal".to_owned(),
//!         port: 8200,
//!         token: secret("hvs.token"),
//!         transit_mount: "transit".to_owned(),
//!     },
//!     replicated_password: secret("replicated"),
//!     replicated_log_level: "debug".to_owned(),
//!     replicated_version: None,
//!     secret_passphrase: secret("passphrase"),
//!     github: GithubSpec {
//!         kind: "github_type_public".to_owned(),
//!         client_id: "id".to_owned(),
//!         client_secret: secret("gh-secret"),
//!     },
//!     storage: StorageSpec {
//!         backend: "storage_backend_s3".to_owned(),
//!         bucket: "artifacts".to_owned(),
//!         sqs_queue_url: "https://sqs.us-east-1.amazonaws.com/1/circleci".to_owned(),
//!     },
//!     extra_settings: Default::default(),
//!     license: b"license".to_vec(),
//!     ca_certificates: Vec::new(),
//!     encryption_keys: vec![("aes.key".to_owned(), b"key".to_vec())],
//!     session_cookie_key: secret("abcdefghijklmnop"),
//! };
//! let bundle = services_userdata::render(&spec)?;
//! assert!(!bundle.userdata.contains("pg-secret")); // user data is readable through IMDS
//! let dir = tempfile::tempdir()?;
//! assert!(!bundle.write_to(dir.path())?.is_empty());
//! assert!(bundle.write_to(dir.path())?.is_empty()); // nothing changed
//! let back = Bundle::read_from(dir.path())?;
//! assert!(back.files == bundle.files);
//! assert!(back.session_cookie_key().is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(clippy::print_stdout, clippy::print_stderr)]

// The third-party crates whose types this crate's public API uses, so that
// a program linking it names them at the versions it was built with.
pub use {aws_sdk_s3, ha_ec2, secrecy};

mod dir;
pub mod envfile;
mod error;
mod import;
pub mod keys;
pub mod publish;
mod render;
mod spec;
pub mod text;

pub use dir::is_secret_path;
pub use error::Error;
pub use import::import_settings;
pub use render::{
    Bundle, BundleFile, CA_DIRECTORY, USERDATA_LIMIT, describe, render, secret_values,
};
pub use spec::{
    BundleSpec, GithubSpec, MONGO_URI_DATABASES, MongoSpec, PostgresSpec, StorageSpec, VaultSpec,
};
