//! `ha.toml`, read in one place: its schema, secret references, validation,
//! and each section turned into the typed input of the crate that owns the
//! concern.
//!
//! An operator describes the installation once, in `ha.toml` (see
//! `docs/configuration.md` and `examples/ha.toml`). [`HaConfig::load`]
//! parses it (unknown keys are errors, so a typo never passes silently);
//! [`HaConfig::check`] and each per-section method validate, returning
//! *every* problem at once as typed [`ha_plan::Problem`]s: the key path
//! (`[mongo].members[2].priority`), a [`ha_plan::ProblemKind`] and a
//! message. No message, a TOML syntax error included, ever quotes a value
//! that could be a secret.
//!
//! Then one method per concern turns its section into that concern's input:
//!
//! | section | method | gives |
//! |---|---|---|
//! | `[pki]` | [`HaConfig::pki`] | [`PkiSettings`] (the certificates every host needs) |
//! | `[mongo]` | [`HaConfig::mongo_layout`], [`HaConfig::mongo_setup`] | [`mongo_rs_setup::SetSpec`] and the mongod.conf layout |
//! | `[postgres]` | [`HaConfig::postgres`] | [`pg_provision::Server`], the roles, [`pg_provision::DatabaseSpec`]s |
//! | `[vault]` | [`HaConfig::vault`], [`HaConfig::vault_server`] | the client, [`vault_transit::ConfigureSpec`], [`vault_transit::KeyFiles`] |
//! | `[services]` | [`HaConfig::bundle_spec`], [`HaConfig::publish_target`] | [`services_userdata::BundleSpec`] |
//! | `[mongo]` + `[postgres]` | [`HaConfig::restore_targets`] | circle-export's restore targets |
//! | all of them | [`HaConfig::runbook`] | [`ha_runbook::Runbook`]: what `circle-ha apply` and `status` run |
//!
//! Secrets are written `env:NAME` or `file:PATH` ([`SecretRef`]); literal
//! secrets are refused without being echoed. This crate never reads the
//! environment itself: the caller passes a lookup function (the binaries
//! pass `std::env::var`), so a program can resolve references from
//! wherever it keeps them. Relative paths are resolved against the file's
//! directory. Secret files readable by other users produce warnings.
//!
//! The concern crates do not depend on this one: a program without an
//! `ha.toml` builds their inputs directly.
//!
//! # Example
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("ha.toml");
//! std::fs::write(&path, r#"
//! [postgres]
//! host = "pg.internal"
//! admin_password = "env:PG_ADMIN_PASSWORD"
//! app_password = "env:PG_APP_PASSWORD"
//! sslmode = "disable"
//! "#)?;
//! let config = ha_config::HaConfig::load(&path)?;
//! let postgres = config.postgres(&ha_config::PostgresOverrides::default())?;
//! assert_eq!(postgres.server.port, 5432);
//! assert_eq!(postgres.databases.len(), 8); // the runbook's eight
//!
//! // Every problem at once, each with its key, none quoting a secret.
//! std::fs::write(&path, "[postgres]\nadmin_password = \"hunter2\"\n")?;
//! let config = ha_config::HaConfig::load(&path)?;
//! let problems = config.check().unwrap_err();
//! let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
//! assert!(keys.contains(&"[postgres].host"));
//! assert!(keys.contains(&"[postgres].admin_password"));
//! assert!(!problems.to_string().contains("hunter2"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(clippy::print_stdout, clippy::print_stderr)]

// The third-party crates whose types this crate's public API uses, so that
// a program linking it names them at the versions it was built with.
pub use mongo_backup::ha_ec2;
pub use secrecy;

mod backup;
mod collect;
mod export;
mod mongo;
mod pki;
mod postgres;
pub mod raw;
mod runbook;
mod secret;
mod services;
mod suggest;
mod vault;

use std::path::{Path, PathBuf};

use ha_plan::{Problem, ProblemKind, Problems};

pub use backup::{BackupSettings, BackupStore};
pub use export::RestoreTargets;
pub use mongo::{DEFAULT_APP_DATABASES, MongoLayout, MongoOptions, MongoSetup};
pub use pki::{PkiSettings, WantedCertificate};
pub use postgres::{PostgresOverrides, PostgresSettings};
pub use runbook::{Purpose, RunbookOptions, section_of};
pub use secret::{Resolved, SecretRef, generate_secret, secret_from_flag, uri_from_flag};
pub use services::PublishTarget;
pub use vault::{CONTEXTS_DATABASE, VaultSettings};

use crate::raw::RawConfig;

/// Looks an environment variable up, for `env:NAME` references. The
/// binaries pass `|name| std::env::var(name).ok()`; tests pass a map.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// `circle-ha config check`: the file holds no problem.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ConfigCheck {
    /// Always true: a problem is reported as an error (exit 2).
    pub healthy: bool,
    /// The file checked.
    pub config: String,
    /// The sections it holds (`[mongo]` …).
    pub sections: Vec<String>,
}

impl ha_plan::Document for ConfigCheck {
    fn to_text(&self) -> String {
        format!(
            "circle-ha: {}: no problem found in {}\n",
            self.config,
            if self.sections.is_empty() {
                "(no section)".to_owned()
            } else {
                self.sections.join(", ")
            }
        )
    }

    fn healthy(&self) -> Option<bool> {
        Some(self.healthy)
    }
}

/// One section of `ha.toml`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// `[pki]`: the CA and host certificates.
    Pki,
    /// `[mongo]`: the replica set and its users.
    Mongo,
    /// `[postgres]`: the databases, extensions and app role.
    Postgres,
    /// `[vault]`: the transit mount, policy and app token.
    Vault,
    /// `[services]`: the Services machine's bundle.
    Services,
    /// `[backup]`: snapshots of a stopped MongoDB secondary.
    Backup,
}

impl Section {
    /// Every section, in the runbook's order.
    pub const ALL: [Section; 6] = [
        Section::Pki,
        Section::Mongo,
        Section::Postgres,
        Section::Vault,
        Section::Services,
        Section::Backup,
    ];

    /// How the file writes it: `[mongo]`.
    pub fn header(self) -> &'static str {
        match self {
            Section::Pki => "[pki]",
            Section::Mongo => "[mongo]",
            Section::Postgres => "[postgres]",
            Section::Vault => "[vault]",
            Section::Services => "[services]",
            Section::Backup => "[backup]",
        }
    }
}

/// A loaded `ha.toml`.
#[derive(Clone, Debug)]
pub struct HaConfig {
    path: PathBuf,
    raw: RawConfig,
}

impl HaConfig {
    /// Reads and parses `path`. Every key must be one the schema knows and
    /// of the right type: a typo never passes silently. When there are
    /// unknown keys, every present section is checked too
    /// ([`HaConfig::check`]), so that the first run shows the whole list.
    /// Otherwise each section is checked when it is used (the per-section
    /// methods), so that a command needs only the sections it reads: `pki
    /// init` works before the passwords of `[postgres]` exist.
    pub fn load(path: &Path) -> Result<HaConfig, Problems> {
        HaConfig::load_checked(path)
    }

    fn load_checked(path: &Path) -> Result<HaConfig, Problems> {
        let text = read_file(path)?;
        let (config, unknown) = HaConfig::parse_collecting(&text, path)?;
        if unknown.is_empty() {
            return Ok(config);
        }
        let mut problems = unknown;
        if let Err(more) = config.check() {
            problems.extend(more);
        }
        Err(problems)
    }

    /// [`HaConfig::load`] for a command whose flags override `section`
    /// (`--host` standing in for a missing `[postgres].host`): `check`
    /// reads that section with the overrides applied, and its problems come
    /// together with any unknown keys and the other sections' problems.
    pub fn load_with<T>(
        path: &Path,
        section: Section,
        check: impl FnOnce(&HaConfig) -> Result<T, Problems>,
    ) -> Result<(HaConfig, T), Problems> {
        let text = read_file(path)?;
        let (config, mut problems) = HaConfig::parse_collecting(&text, path)?;
        let checked = check(&config);
        if !problems.is_empty()
            && let Err(more) = config.check_sections(Some(section))
        {
            problems.extend(more);
        }
        match checked {
            Ok(value) if problems.is_empty() => Ok((config, value)),
            Ok(_) => Err(problems),
            Err(more) => {
                problems.extend(more);
                Err(problems)
            }
        }
    }

    /// Parses `text` as if read from `path` (relative paths in it are
    /// relative to `path`'s directory), without checking the sections.
    /// Syntax errors and unknown keys are reported with the line and column,
    /// never with the text around them (which may hold a secret).
    pub fn parse(text: &str, path: &Path) -> Result<HaConfig, Problems> {
        let (config, unknown) = HaConfig::parse_collecting(text, path)?;
        unknown.finish(config)
    }

    /// Parses, returning the unknown keys apart.
    fn parse_collecting(text: &str, path: &Path) -> Result<(HaConfig, Problems), Problems> {
        let syntax = |e: toml::de::Error| {
            let position = e
                .span()
                .map(|span| {
                    let before = &text[..span.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                    format!(" line {line}, column {column}")
                })
                .unwrap_or_default();
            Problems::one(Problem::new(
                format!("{}{position}", path.display()),
                ProblemKind::Invalid,
                format!(": {}", redact_quoted(e.message().trim_end())),
            ))
        };
        let deserializer = toml::Deserializer::parse(text).map_err(syntax)?;
        let mut unknown = Vec::new();
        let raw: RawConfig =
            serde_ignored::deserialize(deserializer, |key| unknown.push(key_path(&key)))
                .map_err(syntax)?;
        let unknown = unknown
            .into_iter()
            .map(|key| {
                let hint = match suggest::did_you_mean(&key) {
                    Some(known) => format!(": unknown key (did you mean {known}?)"),
                    None => ": unknown key (a typo?)".to_owned(),
                };
                Problem::new(key, ProblemKind::Invalid, hint)
            })
            .collect();
        Ok((
            HaConfig {
                path: path.to_owned(),
                raw,
            },
            unknown,
        ))
    }

    /// Checks every section present (values, ranges, rules, the syntax of
    /// secret references), every problem at once. Files the sections name
    /// need not exist yet and secrets are not resolved: the per-section
    /// methods do that when the section is used.
    pub fn check(&self) -> Result<(), Problems> {
        self.check_sections(None)
    }

    /// [`HaConfig::check`] as `circle-ha config check` reports it: the
    /// file and the sections it holds, healthy (a problem is an error).
    pub fn check_report(&self) -> Result<ConfigCheck, Problems> {
        self.check()?;
        Ok(ConfigCheck {
            healthy: true,
            config: self.path.display().to_string(),
            sections: Section::ALL
                .iter()
                .filter(|s| self.has(**s))
                .map(|s| s.header().to_owned())
                .collect(),
        })
    }

    fn check_sections(&self, skip: Option<Section>) -> Result<(), Problems> {
        let mut problems = Problems::new();
        if self.raw.pki.is_some()
            && let Err(e) = self.pki()
        {
            problems.extend(e);
        }
        if self.raw.mongo.is_some()
            && let Err(e) = self.mongo_layout()
        {
            problems.extend(e);
        }
        if self.raw.postgres.is_some()
            && skip != Some(Section::Postgres)
            && let Err(e) = self.postgres(&PostgresOverrides::default())
        {
            problems.extend(e);
        }
        if self.raw.vault.is_some() {
            if skip != Some(Section::Vault)
                && let Err(e) = self.vault(false)
            {
                problems.extend(e);
            }
            if self.raw.vault.as_ref().is_some_and(|v| v.server.is_some())
                && let Err(e) = self.vault_server()
            {
                problems.extend(e);
            }
        }
        if self.raw.services.is_some()
            && let Err(e) = self.publish_target()
        {
            problems.extend(e);
        }
        if self.raw.backup.is_some()
            && let Err(e) = self.backup(None)
        {
            problems.extend(e);
        }
        if let Err(e) = self.export_pg_dump_command() {
            problems.extend(e);
        }
        // One problem reported by two sections' checks is one problem; a
        // file that does not exist yet is checked when its section is used.
        let mut unique = Problems::new();
        for problem in problems {
            if problem.kind != ProblemKind::Unreadable && !unique.iter().any(|p| *p == problem) {
                unique.push(problem);
            }
        }
        unique.finish(())
    }

    /// Where it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file as written.
    pub fn raw(&self) -> &RawConfig {
        &self.raw
    }

    /// Whether `section` is present.
    pub fn has(&self, section: Section) -> bool {
        match section {
            Section::Pki => self.raw.pki.is_some(),
            Section::Mongo => self.raw.mongo.is_some(),
            Section::Postgres => self.raw.postgres.is_some(),
            Section::Vault => self.raw.vault.is_some(),
            Section::Services => self.raw.services.is_some(),
            Section::Backup => self.raw.backup.is_some(),
        }
    }

    /// The directory relative paths in the file are relative to.
    pub fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        }
    }

    /// Resolves a path from the file against its directory.
    pub fn path_of(&self, path: &Path) -> PathBuf {
        self.dir().join(path)
    }

    /// Resolves the secret reference at `key`, adding any warning (a loose
    /// file mode) to `warnings`. The problem (one) never holds the secret.
    pub fn resolve(
        &self,
        key: &str,
        reference: &SecretRef,
        env: EnvLookup<'_>,
        warnings: &mut Vec<String>,
    ) -> Result<secrecy::SecretString, Problems> {
        let resolved = reference.resolve(env, &self.dir()).map_err(|why| {
            Problem::new(
                key,
                ProblemKind::Unreadable,
                format!("({reference}): {why}"),
            )
        })?;
        warnings.extend(resolved.warning);
        Ok(resolved.value)
    }

    fn no_section(&self, section: Section, hint: &str) -> Problems {
        Problems::one(Problem::new(
            section.header(),
            ProblemKind::Missing,
            format!("is missing from {}{hint}", self.path.display()),
        ))
    }
}

/// The file's text, or the problem of reading it.
fn read_file(path: &Path) -> Result<String, Problems> {
    std::fs::read_to_string(path).map_err(|e| {
        Problems::one(Problem::new(
            path.display().to_string(),
            ProblemKind::Unreadable,
            format!(": cannot read it: {e}"),
        ))
    })
}

/// A parser message with every double-quoted part replaced by `"…"`: serde
/// quotes the value it could not take (`invalid type: string "…"`), and
/// that value may be a secret written in the wrong place. Quoted parts are
/// read as Rust's `{:?}` writes them — `\"` and `\\` inside do not end
/// them — and an unterminated one is redacted to the end.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            out.push(c);
            continue;
        }
        out.push_str("\"…\"");
        while let Some(inner) = chars.next() {
            match inner {
                '\\' => {
                    chars.next();
                }
                '"' => break,
                _ => {}
            }
        }
    }
    out
}

/// `mongo.members.0.host` as the file's reader sees it:
/// `[mongo].members[0].host`.
fn key_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", key_path(parent)),
        Path::Map { parent, key } => match key_path(parent) {
            p if p.is_empty() => format!("[{key}]"),
            p => format!("{p}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => key_path(parent),
    }
}

#[cfg(test)]
mod tests;
