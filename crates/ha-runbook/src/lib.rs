//! The whole runbook as library calls: every configured concern brought to
//! its desired state in the runbook's order ([`apply`]), and every
//! concern's health at once ([`status`]).
//!
//! A [`Runbook`] holds each concern's typed setup, its secrets already
//! resolved: the certificates ([`ha_tls::PkiSpec`]), the replica set
//! ([`MongoSetup`]), the PostgreSQL databases ([`PostgresSetup`]), Vault's
//! transit mount and app token ([`VaultSetup`]), the Services bundle
//! ([`BundleSetup`]), the backups ([`BackupCheck`]) and the encryption
//! keys' stored copy ([`KeysCheck`]). A concern
//! without a setup is not run (and [`Runbook::not_selected`] says which
//! of those the caller left out on purpose).
//!
//! A program builds the runbook from its own typed values; `ha-config`'s
//! `HaConfig::runbook` builds it from `ha.toml`, checking every section
//! first. Either way the same calls run and return the same reports:
//!
//! - [`apply`]: certificates, the replica set and its users, the
//!   PostgreSQL databases, Vault's transit mount and app token, the
//!   Services bundle — one after another; the first that fails stops the
//!   run with [`Error::Stopped`], which names it, what finished and what
//!   did not run. Vault `init`/`unseal` are not part of it: they hand out
//!   key shares and stay explicit steps.
//! - [`status`]: each concern checked (the backups and the key backup
//!   too); one that cannot be reached is unhealthy with the reason, and
//!   the others are still checked. [`status_findings`] and
//!   [`status_metrics`] turn the result into one document and into
//!   Prometheus' text format.
//!
//! Each setup also runs alone — [`MongoSetup::apply`],
//! [`PostgresSetup::apply`], [`VaultSetup::configure`],
//! [`BundleSetup::render`] — which is what the single-concern commands
//! (`mongo-rs-setup apply`, `pg-provision apply`, …) call.
//!
//! Nothing here reads `ha.toml` or the environment, or prints.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), ha_runbook::Error> {
//! use ha_runbook::{Concern, Runbook, StatusOptions};
//!
//! // A program sets the setups it has (here: none) and leaves out what it
//! // does not want run.
//! let mut runbook = Runbook::new();
//! runbook.not_selected.push(Concern::Vault);
//! let report = ha_runbook::apply(&runbook, true, &ha_plan::no_progress).await?;
//! assert!(report.ran.is_empty());
//! assert_eq!(report.skipped[3], ("vault".to_owned(), "not selected".to_owned()));
//!
//! // Nothing checked is not healthy.
//! let checks = ha_runbook::status(&runbook, &StatusOptions::default()).await;
//! assert!(!ha_runbook::status_findings(&checks).healthy);
//! # Ok(())
//! # }
//! ```

#![warn(clippy::print_stdout, clippy::print_stderr)]

mod apply;
mod error;
mod setup;
mod status;

pub use apply::apply;
pub use error::Error;
pub use setup::{
    BackupCheck, BundleSetup, KeysCheck, MongoSetup, PostgresSetup, VaultHealth, VaultSetup,
};
pub use status::{
    BundleHealth, ConcernHealth, ConcernStatus, Health, StatusAws, StatusFindings, StatusOptions,
    status, status_findings, status_metrics,
};

/// One part of the runbook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Concern {
    /// The CA and host certificates.
    Pki,
    /// The replica set and its users.
    Mongo,
    /// The PostgreSQL databases, extensions and app role.
    Postgres,
    /// Vault's transit mount, policy and app token.
    Vault,
    /// The Services machine's bundle.
    Userdata,
    /// The replica set's snapshots (checked by [`status`], never applied:
    /// a backup run is its own command).
    Backup,
    /// CircleCI's encryption keys' stored copy (checked by [`status`]).
    Keys,
}

impl Concern {
    /// What [`apply`] brings to state, in the runbook's order.
    pub const ALL: [Concern; 5] = [
        Concern::Pki,
        Concern::Mongo,
        Concern::Postgres,
        Concern::Vault,
        Concern::Userdata,
    ];

    /// What [`status`] checks, in the runbook's order: [`Concern::ALL`],
    /// then the backups.
    pub const CHECKED: [Concern; 7] = [
        Concern::Pki,
        Concern::Mongo,
        Concern::Postgres,
        Concern::Vault,
        Concern::Userdata,
        Concern::Backup,
        Concern::Keys,
    ];

    /// Its name: `pki`, `mongo`, `postgres`, `vault`, `userdata`, `backup`
    /// or `keys`.
    pub fn name(self) -> &'static str {
        match self {
            Concern::Pki => "pki",
            Concern::Mongo => "mongo",
            Concern::Postgres => "postgres",
            Concern::Vault => "vault",
            Concern::Userdata => "userdata",
            Concern::Backup => "backup",
            Concern::Keys => "keys",
        }
    }

    /// The command that runs it alone; reports carry its name.
    pub fn tool(self) -> &'static str {
        match self {
            Concern::Pki => "circle-ha pki",
            Concern::Mongo => "mongo-rs-setup",
            Concern::Postgres => "pg-provision",
            Concern::Vault => "vault-transit",
            Concern::Userdata => "services-userdata",
            Concern::Backup => "mongo-backup",
            Concern::Keys => "circle-ha keys",
        }
    }

    /// How a human calls it in text: its `ha.toml` section's header
    /// (`[mongo]`), or what it checks.
    pub fn header(self) -> &'static str {
        match self {
            Concern::Pki => "[pki]",
            Concern::Mongo => "[mongo]",
            Concern::Postgres => "[postgres]",
            Concern::Vault => "[vault]",
            Concern::Userdata => "[services]",
            Concern::Backup => "[backup]",
            Concern::Keys => "[services] encryption keys' backup",
        }
    }

    /// The concern of [`Concern::ALL`] named `name`.
    pub fn parse(name: &str) -> Option<Concern> {
        Concern::ALL.into_iter().find(|c| c.name() == name.trim())
    }
}

/// Every concern's typed setup: what [`apply`] brings to state and
/// [`status`] checks. A concern without one is not run.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Runbook {
    /// The CA and host certificates.
    pub pki: Option<ha_tls::PkiSpec>,
    /// The replica set and its users.
    pub mongo: Option<MongoSetup>,
    /// The PostgreSQL databases.
    pub postgres: Option<PostgresSetup>,
    /// Vault's transit mount and app token.
    pub vault: Option<VaultSetup>,
    /// The Services bundle.
    pub bundle: Option<BundleSetup>,
    /// The backups ([`status`] only).
    pub backup: Option<BackupCheck>,
    /// Where the encryption keys' copy is stored ([`status`] only).
    pub keys: Option<KeysCheck>,
    /// Concerns the caller left out on purpose (reports say "not
    /// selected" for them rather than "not configured").
    pub not_selected: Vec<Concern>,
    /// Concerns that are configured but whose setup could not be built,
    /// with why (a bundle whose other sections are missing, a password
    /// that cannot be read): [`status`] reports each as unhealthy with
    /// that reason, so the others are still checked; [`apply`] does not
    /// run them. The Mongo concern is never unchecked this way (its status
    /// has no error form): leave it out instead.
    pub unchecked: Vec<(Concern, String)>,
}

impl Runbook {
    /// An empty runbook: nothing to run. Set the setups a program has.
    pub fn new() -> Runbook {
        Runbook::default()
    }

    /// Whether `concern` has a setup.
    pub fn has(&self, concern: Concern) -> bool {
        match concern {
            Concern::Pki => self.pki.is_some(),
            Concern::Mongo => self.mongo.is_some(),
            Concern::Postgres => self.postgres.is_some(),
            Concern::Vault => self.vault.is_some(),
            Concern::Userdata => self.bundle.is_some(),
            Concern::Backup => self.backup.is_some(),
            Concern::Keys => self.keys.is_some(),
        }
    }
}

#[cfg(test)]
mod tests;
