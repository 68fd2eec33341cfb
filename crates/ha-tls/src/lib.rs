//! Certificates for a circle-ha installation: a CA, host and client
//! certificates, the files each consumer wants, and a linter.
//!
//! The runbook asks for "an internally generated CA" whose root certificate
//! goes to every client and MongoDB instance, PEM files for each replica-set
//! member (which authenticate to each other with them: `clusterAuthMode:
//! x509`), and TLS for PostgreSQL and Vault. This crate owns exactly that:
//!
//! - [`Ca`] creates or loads a certificate authority and [`Ca::issue`]s
//!   certificates for a [`LeafSpec`]: hosts (extended key usage `serverAuth`
//!   and `clientAuth`, as MongoDB member authentication requires) and clients.
//! - [`PkiDir`] keeps them in a directory in the forms consumers read (see
//!   the [`store`] module for the layout), private keys mode 0600. Its
//!   `ensure_*` methods are idempotent: a valid certificate is kept, a missing
//!   or unfit one is issued, and the CA itself is never replaced silently.
//! - [`client_config`] builds the rustls client configuration every TLS
//!   client in the workspace uses: trust the given CA, verify fully unless a
//!   weaker [`ServerVerification`] is asked for by name.
//! - [`lint()`] checks a set of certificates against the rules of MongoDB x509
//!   member authentication and TLS host-name verification, and reports every
//!   problem at once.
//!
//! It does not deploy files to hosts, start servers, or read configuration:
//! callers pass typed values. It never prints and never puts key material in
//! an error or a `Debug` output.
//!
//! # Example
//!
//! ```
//! use ha_tls::{CaSpec, LeafSpec, PkiDir};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let now = time::OffsetDateTime::now_utc();
//! let pki = PkiDir::new(dir.path());
//! let (ca, _) = pki.ensure_ca(&CaSpec::new("Example Corp", "CircleCI"), now).unwrap();
//! let spec = LeafSpec::host(&["mongo-1.internal:27017"], "Example Corp", "CircleCI").unwrap();
//! let (paths, outcome) = pki.ensure_leaf(&ca, "mongo-1.internal", &spec, now).unwrap();
//! assert!(outcome.changed());
//! assert!(paths.combined.exists());
//! // A second run keeps what is there.
//! let (_, outcome) = pki.ensure_leaf(&ca, "mongo-1.internal", &spec, now).unwrap();
//! assert!(!outcome.changed());
//! ```

#![warn(clippy::print_stdout, clippy::print_stderr)]

// The third-party crates whose types this crate's public API uses, so that
// a program linking it names them at the versions it was built with.
pub use {rustls, secrecy};

mod ca;
mod cert;
mod client;
mod error;
mod install;
mod lint;
pub mod store;

pub use ca::{Ca, CaSpec, IssuedCert, LeafKind, LeafSpec};
pub use cert::{Certificate, ExtendedKeyUsage, KeyUsage, MembershipAttributes};
pub use client::{
    ClientIdentity, ServerVerification, client_config, crypto_provider, root_store,
    system_client_config,
};
pub use error::Error;
pub use install::{LintFindings, PkiFinding, PkiSpec, PkiStep, WantedCert};
pub use lint::{LintInput, Problem, Role, Rule, Severity, lint};
pub use store::{CaPaths, LeafPaths, LeafState, Outcome, PkiDir, write_file};
