//! The whole installation from one `ha.toml`: `circle-ha apply` (every
//! configured concern brought to its desired state, in the runbook's
//! order) and `circle-ha status` (every concern's health at once), as
//! library calls.
//!
//! [`apply`] validates every selected section before anything is touched
//! (all problems at once, [`Error::Config`]); then the concerns run one
//! after another — certificates, the replica set and its users, the
//! PostgreSQL databases, Vault's transit mount and app token, the Services
//! bundle — and the first that fails stops the run with
//! [`Error::Stopped`], which names it, what finished and what did not
//! run. Vault `init`/`unseal` are not part of it: they hand out key shares
//! and stay explicit steps.
//!
//! [`status`] checks each configured concern; one that cannot be reached
//! is unhealthy with the reason, and the others are still checked.

use std::path::PathBuf;
use std::time::Duration;

use ha_plan::exposition::{gauge, label};
use ha_plan::{
    Action, Checked, Combined, Document, JsonSchema, Problem, Problems, Progress, Report,
};
use serde::Serialize;
use time::OffsetDateTime;

use crate::{EnvLookup, Error, HaConfig, MongoOptions, PostgresOverrides, Section};

/// One part of the runbook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Concern {
    /// `[pki]`: the CA and host certificates.
    Pki,
    /// `[mongo]`: the replica set and its users.
    Mongo,
    /// `[postgres]`: the databases, extensions and app role.
    Postgres,
    /// `[vault]`: the transit mount, policy and app token.
    Vault,
    /// `[services]`: the Services machine's bundle.
    Userdata,
    /// `[backup]`: the replica set's snapshots (checked by `status`, never
    /// applied: a backup run is its own command).
    Backup,
    /// `[services]`: CircleCI's encryption keys in the bundle's bucket
    /// (checked by `status`; `circle-ha keys backup` stores them).
    Keys,
}

impl Concern {
    /// What `apply` brings to state, in the runbook's order.
    pub const ALL: [Concern; 5] = [
        Concern::Pki,
        Concern::Mongo,
        Concern::Postgres,
        Concern::Vault,
        Concern::Userdata,
    ];

    /// What `status` checks, in the runbook's order: [`Concern::ALL`], then
    /// the backups.
    pub const CHECKED: [Concern; 7] = [
        Concern::Pki,
        Concern::Mongo,
        Concern::Postgres,
        Concern::Vault,
        Concern::Userdata,
        Concern::Backup,
        Concern::Keys,
    ];

    /// The name `--only` takes.
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

    /// The `ha.toml` section it reads.
    pub fn section(self) -> Section {
        match self {
            Concern::Pki => Section::Pki,
            Concern::Mongo => Section::Mongo,
            Concern::Postgres => Section::Postgres,
            Concern::Vault => Section::Vault,
            Concern::Userdata | Concern::Keys => Section::Services,
            Concern::Backup => Section::Backup,
        }
    }

    /// Parses an `--only` name (one of [`Concern::ALL`]); a problem keyed
    /// `--only` otherwise.
    pub fn parse(name: &str) -> Result<Concern, Problem> {
        Concern::ALL
            .into_iter()
            .find(|c| c.name() == name.trim())
            .ok_or_else(|| {
                Problem::invalid(
                    "--only",
                    format!("{name}: not a concern (pki, mongo, postgres, vault, userdata)"),
                )
            })
    }
}

/// How to run [`apply`].
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// Only these concerns (empty: every configured one).
    pub only: Vec<Concern>,
    /// Plan only; change nothing.
    pub dry_run: bool,
    /// Where the Services bundle is rendered.
    pub bundle_dir: PathBuf,
}

/// A selected concern's settings, checked up front.
enum Selected {
    Pki(crate::PkiSettings),
    Mongo(crate::MongoSetup),
    Postgres(crate::PostgresSettings),
    Vault(crate::VaultSettings),
    Userdata,
}

/// `circle-ha apply`: the concerns `options` selects, in the runbook's
/// order, as one combined report. Every selected section's problems come
/// back together as [`Error::Config`] before anything is touched; a
/// concern that fails stops the run with [`Error::Stopped`].
pub async fn apply(
    config: &HaConfig,
    env: EnvLookup<'_>,
    options: &ApplyOptions,
    progress: Progress<'_>,
) -> Result<Combined, Error> {
    let mut report = Combined::new("circle-ha apply", options.dry_run);
    let mut selected = Vec::new();
    for concern in Concern::ALL {
        if !options.only.is_empty() && !options.only.contains(&concern) {
            report
                .skipped
                .push((concern.name().to_owned(), "not in --only".to_owned()));
        } else if !config.has(concern.section()) {
            if options.only.contains(&concern) {
                return Err(Problems::one(Problem::invalid(
                    "--only",
                    format!(
                        "{}: {} has no {} section",
                        concern.name(),
                        config.path().display(),
                        concern.section().header()
                    ),
                ))
                .into());
            }
            report
                .skipped
                .push((concern.name().to_owned(), "not configured".to_owned()));
        } else {
            selected.push(concern);
        }
    }

    // Every selected section validated before anything is touched.
    let mut problems = Problems::new();
    let mut checked = Vec::new();
    for concern in &selected {
        let res = match concern {
            Concern::Pki => config.pki().map(Selected::Pki),
            Concern::Mongo => config
                .mongo_setup(env, &MongoOptions::default())
                .await
                .map(Selected::Mongo),
            Concern::Postgres => config
                .postgres(&PostgresOverrides::default())
                .map(Selected::Postgres),
            Concern::Vault => config.vault_with_env(false, env).map(Selected::Vault),
            Concern::Backup | Concern::Keys => continue,
            Concern::Userdata => match config.bundle_spec(env, Some(&options.bundle_dir)) {
                Ok(_) => Ok(Selected::Userdata),
                // [vault] runs first and writes the app token.
                Err(e)
                    if selected.contains(&Concern::Vault)
                        && HaConfig::only_app_token_missing(&e) =>
                {
                    Ok(Selected::Userdata)
                }
                Err(e) => Err(e),
            },
        };
        match res {
            Ok(settings) => checked.push((*concern, settings)),
            Err(e) => problems.extend(e),
        }
    }
    problems.finish(())?;

    let dry_run = options.dry_run;
    for (concern, settings) in checked {
        let header = concern.section().header();
        progress(&format!("{header} …"));
        let res = match settings {
            Selected::Pki(settings) => {
                let now = OffsetDateTime::now_utc();
                settings
                    .init(concern.tool(), now, dry_run)
                    .and_then(|mut init| {
                        init.extend(settings.issue(concern.tool(), now, dry_run)?);
                        Ok(init)
                    })
                    .map_err(Error::from)
            }
            Selected::Mongo(setup) => setup.apply(dry_run, progress).await.map_err(Error::from),
            Selected::Postgres(settings) => config.postgres_apply(&settings, env, dry_run).await,
            Selected::Vault(settings) => config.vault_configure(&settings, env, dry_run).await,
            Selected::Userdata => render_bundle(config, env, options),
        };
        match res {
            Ok(done) => {
                progress(&format!("{header}: {}", done.to_summary_text().trim_end()));
                report.ran.push((concern.name().to_owned(), done));
            }
            Err(source) => {
                return Err(Error::Stopped {
                    at: concern,
                    finished: selected
                        .iter()
                        .take_while(|c| **c != concern)
                        .copied()
                        .collect(),
                    not_run: selected
                        .iter()
                        .skip_while(|c| **c != concern)
                        .skip(1)
                        .copied()
                        .collect(),
                    source: Box::new(source),
                });
            }
        }
    }
    Ok(report)
}

/// Renders the bundle; in a dry run whose Vault step has not written the
/// app token yet, plans the render instead.
fn render_bundle(
    config: &HaConfig,
    env: EnvLookup<'_>,
    options: &ApplyOptions,
) -> Result<Report, Error> {
    if options.dry_run
        && let Err(e) = config.bundle_spec(env, Some(&options.bundle_dir))
        && HaConfig::only_app_token_missing(&e)
    {
        let dir = options.bundle_dir.display();
        return Ok(Report::new(
            "circle-ha apply",
            true,
            vec![Action::new(
                "render-bundle",
                dir.to_string(),
                format!(
                    "render the Services bundle into {dir} (once [vault] has written the app \
                     token)"
                ),
            )],
            Vec::new(),
        ));
    }
    config.render_bundle(env, &options.bundle_dir, options.dry_run)
}

/// How to run [`status`].
#[derive(Clone, Debug)]
pub struct StatusOptions {
    /// How far behind the primary a member may be and still be healthy.
    pub max_lag: Duration,
    /// Where `apply` rendered the Services bundle.
    pub bundle_dir: PathBuf,
    /// Where CircleCI's encryption keys are on this machine (compared with
    /// their stored copy when it is a directory here).
    pub keys_dir: PathBuf,
    /// An EC2 client for `[backup]`'s EBS snapshots (the program builds it
    /// for [`HaConfig::backup_region`]); without one, an EBS `[backup]`
    /// is reported unchecked.
    pub ec2: Option<aws_sdk_ec2::Client>,
    /// An S3 client for the key backup in `[services]`'s bucket (built for
    /// [`HaConfig::key_store`]'s region); without one, the key backup is
    /// reported unchecked.
    pub s3: Option<services_userdata::aws_sdk_s3::Client>,
}

/// The AWS clients [`status`] can use for `config`, by region: EC2 for an
/// EBS `[backup]`, S3 for the key backup in `[services]`' bucket (`None`:
/// not needed). A program builds a client for each region given (its
/// credentials, its endpoint) and sets [`StatusOptions::ec2`] and
/// [`StatusOptions::s3`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusAws {
    /// The region of `[backup]`'s EBS snapshots.
    pub ec2_region: Option<String>,
    /// The region of the key backup's bucket.
    pub s3_region: Option<String>,
}

impl StatusAws {
    /// What `config` needs.
    pub fn of(config: &HaConfig) -> StatusAws {
        StatusAws {
            ec2_region: config.backup_region(),
            s3_region: config
                .stores_keys()
                .then(|| config.key_store().ok().map(|(_, region)| region))
                .flatten(),
        }
    }
}

impl StatusOptions {
    /// Lag 30 s, the bundle beside `config`'s file, the keys where the
    /// Services machine keeps them, and no AWS clients.
    pub fn new(config: &HaConfig) -> StatusOptions {
        StatusOptions {
            max_lag: Duration::from_secs(30),
            bundle_dir: config.path_of(std::path::Path::new("bundle")),
            keys_dir: PathBuf::from(services_userdata::keys::KEYS_DIR),
            ec2: None,
            s3: None,
        }
    }
}

/// One concern's health.
#[derive(Clone, Debug)]
pub struct Health {
    /// Which concern.
    pub concern: Concern,
    /// What its check found.
    pub findings: ConcernHealth,
}

impl Health {
    /// Whether the concern is as `ha.toml` describes.
    pub fn healthy(&self) -> bool {
        self.findings.healthy() == Some(true)
    }
}

/// What one concern's check found: the concern tool's own findings (its
/// `--json`), or the error that kept it from checking (`{"error"}`).
#[derive(Clone, Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ConcernHealth {
    /// `[pki]`: `circle-ha pki lint`.
    Pki(Checked<ha_tls::LintFindings>),
    /// `[mongo]`: `mongo-rs-setup status`.
    Mongo(mongo_rs_setup::SetFindings),
    /// `[postgres]`: `pg-provision verify`.
    Postgres(Checked<pg_provision::VerifyFindings>),
    /// `[vault]`: `vault-transit status`, then `verify`.
    Vault(crate::vault::VaultHealth),
    /// `[services]`: whether the rendered bundle matches `ha.toml`.
    Userdata(Checked<BundleHealth>),
    /// `[backup]`: `mongo-backup status`.
    Backup(Checked<mongo_backup::report::BackupHealth>),
    /// `[services]`: the encryption keys' stored copy.
    Keys(Checked<services_userdata::keys::KeyBackupHealth>),
}

impl Document for ConcernHealth {
    fn to_text(&self) -> String {
        match self {
            ConcernHealth::Pki(c) => c.to_text(),
            ConcernHealth::Mongo(c) => c.to_text(),
            ConcernHealth::Postgres(c) => c.to_text(),
            ConcernHealth::Vault(c) => c.to_text(),
            ConcernHealth::Userdata(c) => c.to_text(),
            ConcernHealth::Backup(c) => c.to_text(),
            ConcernHealth::Keys(c) => c.to_text(),
        }
    }

    fn healthy(&self) -> Option<bool> {
        match self {
            ConcernHealth::Pki(c) => c.healthy(),
            ConcernHealth::Mongo(c) => c.healthy(),
            ConcernHealth::Postgres(c) => c.healthy(),
            ConcernHealth::Vault(c) => c.healthy(),
            ConcernHealth::Userdata(c) => c.healthy(),
            ConcernHealth::Backup(c) => c.healthy(),
            ConcernHealth::Keys(c) => c.healthy(),
        }
    }
}

/// Whether the Services bundle rendered by `apply` matches `ha.toml`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct BundleHealth {
    /// Fresh: rendering again would change nothing.
    pub healthy: bool,
    /// The bundle directory.
    pub bundle: String,
    /// Same as `healthy`.
    pub fresh: bool,
    /// The files that differ from what `ha.toml` renders.
    pub stale: Vec<String>,
}

impl Document for BundleHealth {
    fn to_text(&self) -> String {
        if self.fresh {
            format!("bundle {} matches ha.toml\n", self.bundle)
        } else {
            format!(
                "bundle {} is stale: {} file(s) differ from ha.toml (run circle-ha apply)\n",
                self.bundle,
                self.stale.len()
            )
        }
    }

    fn healthy(&self) -> Option<bool> {
        Some(self.healthy)
    }
}

/// `circle-ha status`: every configured concern's health, in the
/// runbook's order. Bad configuration is [`Problems`] (all at once), and so
/// is a file that configures no concern (nothing checked is not healthy); a
/// concern that cannot be reached is unhealthy with the reason, and the
/// others are still checked. [`status_findings`] combines the result.
pub async fn status(
    config: &HaConfig,
    env: EnvLookup<'_>,
    options: &StatusOptions,
) -> Result<Vec<Health>, Problems> {
    let mut problems = Problems::new();
    let mut checks = Vec::new();
    for concern in Concern::CHECKED {
        if !config.has(concern.section()) {
            continue;
        }
        let findings = match concern {
            Concern::Backup => match config.backup(None) {
                Ok(settings) => Ok(ConcernHealth::Backup(Checked::of(
                    backup_health(config, &settings, options.ec2.clone()).await,
                ))),
                Err(e) => Err(e),
            },
            Concern::Keys if !config.stores_keys() => continue,
            Concern::Keys => match config.key_store() {
                Ok((store, _region)) => Ok(ConcernHealth::Keys(Checked::of(
                    key_backup_health(&store, options).await,
                ))),
                Err(e) => Err(e),
            },
            Concern::Pki => config.pki().map(|settings| {
                ConcernHealth::Pki(Checked::of(
                    settings.lint_findings(concern.tool(), OffsetDateTime::now_utc()),
                ))
            }),
            Concern::Mongo => match config.mongo_setup(env, &MongoOptions::default()).await {
                Ok(setup) => Ok(ConcernHealth::Mongo(setup.status(options.max_lag).await)),
                Err(e) => Err(e),
            },
            Concern::Postgres => match config.postgres(&PostgresOverrides::default()) {
                Ok(settings) => Ok(ConcernHealth::Postgres(Checked::of(
                    config.postgres_verify(&settings, env).await,
                ))),
                Err(e) => Err(e),
            },
            Concern::Vault => match config.vault_with_env(false, env) {
                Ok(settings) => Ok(ConcernHealth::Vault(settings.health().await)),
                Err(e) => Err(e),
            },
            Concern::Userdata => Ok(ConcernHealth::Userdata(Checked::of(bundle_health(
                config,
                env,
                &options.bundle_dir,
            )))),
        };
        match findings {
            Ok(findings) => checks.push(Health { concern, findings }),
            Err(e) => problems.extend(e),
        }
    }
    // Nothing checked is not healthy: the file describes nothing status
    // can check.
    if checks.is_empty() && problems.is_empty() {
        problems.push(Problem::new(
            config.path.display().to_string(),
            ha_plan::ProblemKind::Invalid,
            ": configures none of [pki], [mongo], [postgres], [vault], [services], so status has \
             nothing to check (see `circle-ha config example`)",
        ));
    }
    problems.finish(checks)
}

/// `mongo-backup status` for `settings`' store.
async fn backup_health(
    config: &HaConfig,
    settings: &crate::BackupSettings,
    ec2: Option<aws_sdk_ec2::Client>,
) -> Result<mongo_backup::report::BackupHealth, Error> {
    use mongo_backup::SnapshotStore as _;
    let set = config.mongo_layout()?.name;
    let store = settings.snapshot_store(ec2)?;
    let snapshots = store.list(&set).await?;
    let groups = mongo_backup::snapshot::groups(&snapshots, &set);
    Ok(mongo_backup::report::status_findings(
        &set,
        &groups,
        settings.max_age,
        OffsetDateTime::now_utc(),
    ))
}

/// The key backup's stored copy, read back (see
/// `services_userdata::keys::backup_health`).
async fn key_backup_health(
    store: &services_userdata::keys::KeyStore,
    options: &StatusOptions,
) -> Result<services_userdata::keys::KeyBackupHealth, Error> {
    let s3 = options.s3.as_ref().ok_or(Error::NoClient {
        what: "an S3 client for the key backup",
    })?;
    Ok(services_userdata::keys::backup_health(s3, store, &options.keys_dir).await?)
}

/// The bundle is fresh when rendering ha.toml again would change nothing.
fn bundle_health(
    config: &HaConfig,
    env: EnvLookup<'_>,
    dir: &std::path::Path,
) -> Result<BundleHealth, Error> {
    let report = config.render_bundle(env, dir, true)?;
    Ok(BundleHealth {
        healthy: report.actions.is_empty(),
        bundle: dir.display().to_string(),
        fresh: report.actions.is_empty(),
        stale: report.actions.iter().map(|a| a.target.clone()).collect(),
    })
}

/// `circle-ha status` for Prometheus' node_exporter textfile collector
/// (the text exposition format, version 0.0.4): `circle_ha_healthy` (1 when
/// every concern is as `ha.toml` describes), `circle_ha_concern_healthy`
/// per concern, `circle_ha_status_last_run_timestamp_seconds` (`now`,
/// seconds since the epoch) so that a check that stopped running shows,
/// and what the checks measured: `circle_ha_certificate_expiry_timestamp_seconds`
/// per certificate file, `circle_ha_backup_newest_complete_age_seconds`
/// and `circle_ha_backup_last_complete_timestamp_seconds` per member,
/// `circle_ha_key_backup_keys`, `circle_ha_key_backup_last_upload_timestamp_seconds`
/// and `circle_ha_key_backup_verified_timestamp_seconds` (`now`, present
/// only when the stored copy read back healthy).
pub fn status_metrics(checks: &[Health], now: u64) -> String {
    let mut out = String::new();
    gauge(
        &mut out,
        "circle_ha_healthy",
        "Whether every configured concern is as ha.toml describes (circle-ha status).",
        &[(String::new(), i64::from(checks.iter().all(Health::healthy)))],
    );
    gauge(
        &mut out,
        "circle_ha_concern_healthy",
        "Whether one concern (pki, mongo, postgres, vault, userdata, backup, keys) is as ha.toml \
         describes.",
        &checks
            .iter()
            .map(|h| {
                (
                    format!("concern=\"{}\"", h.concern.name()),
                    i64::from(h.healthy()),
                )
            })
            .collect::<Vec<_>>(),
    );
    gauge(
        &mut out,
        "circle_ha_status_last_run_timestamp_seconds",
        "When circle-ha status last ran, in seconds since the epoch.",
        &[(String::new(), i64::try_from(now).unwrap_or(i64::MAX))],
    );
    for h in checks {
        measured(&mut out, &h.findings, now);
    }
    out
}

/// The series of what one concern's check measured (see
/// [`status_metrics`]).
fn measured(out: &mut String, findings: &ConcernHealth, now: u64) {
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    match findings {
        ConcernHealth::Pki(Checked::Ran(lint)) => gauge(
            out,
            "circle_ha_certificate_expiry_timestamp_seconds",
            "When each certificate expires (its notAfter), by file.",
            &lint
                .expires
                .iter()
                .map(|(file, at)| (format!("file=\"{}\"", label(file)), *at))
                .collect::<Vec<_>>(),
        ),
        ConcernHealth::Backup(Checked::Ran(backup)) => {
            let set = format!("replica_set=\"{}\"", label(&backup.replica_set));
            if let Some(age) = backup.age_seconds {
                gauge(
                    out,
                    "circle_ha_backup_newest_complete_age_seconds",
                    "Age of the newest complete backup run.",
                    &[(set.clone(), age)],
                );
            }
            gauge(
                out,
                "circle_ha_backup_last_complete_timestamp_seconds",
                "When each member's newest complete backup run was taken.",
                &backup.member_samples(&set),
            );
        }
        ConcernHealth::Keys(Checked::Ran(keys)) => {
            let location = format!("location=\"{}\"", label(&keys.location));
            gauge(
                out,
                "circle_ha_key_backup_keys",
                "Encryption key files in the stored copy.",
                &[(
                    location.clone(),
                    i64::try_from(keys.stored).unwrap_or(i64::MAX),
                )],
            );
            if let Some(at) = keys.newest_upload {
                gauge(
                    out,
                    "circle_ha_key_backup_last_upload_timestamp_seconds",
                    "When the newest stored encryption key was uploaded.",
                    &[(location.clone(), at)],
                );
            }
            if keys.healthy {
                gauge(
                    out,
                    "circle_ha_key_backup_verified_timestamp_seconds",
                    "When the stored encryption keys last read back healthy.",
                    &[(location, now)],
                );
            }
        }
        _ => {}
    }
}

/// The combined findings of [`status`]: unhealthy when any concern is;
/// JSON `{healthy, concerns: [{concern, healthy, detail}]}`.
pub fn status_findings(checks: &[Health]) -> StatusFindings {
    StatusFindings {
        healthy: checks.iter().all(Health::healthy),
        concerns: checks
            .iter()
            .map(|h| ConcernStatus {
                concern: h.concern.name().to_owned(),
                healthy: h.healthy(),
                detail: h.findings.clone(),
                header: match h.concern {
                    Concern::Keys => "[services] encryption keys' backup".to_owned(),
                    other => other.section().header().to_owned(),
                },
            })
            .collect(),
    }
}

/// `circle-ha status`: every configured concern's health.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct StatusFindings {
    /// Every concern is as `ha.toml` describes.
    pub healthy: bool,
    /// Each configured concern, in the runbook's order.
    pub concerns: Vec<ConcernStatus>,
}

/// One concern of [`StatusFindings`].
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ConcernStatus {
    /// `pki`, `mongo`, `postgres`, `vault` or `userdata`.
    pub concern: String,
    /// Whether it is as `ha.toml` describes.
    pub healthy: bool,
    /// What its check found: the concern tool's own `--json`, or
    /// `{"error"}`.
    pub detail: ConcernHealth,
    /// Its `ha.toml` section, for the text.
    #[serde(skip)]
    pub header: String,
}

impl Document for StatusFindings {
    fn to_text(&self) -> String {
        let mut text = String::new();
        for c in &self.concerns {
            let mark = if c.healthy { "ok" } else { "FAIL" };
            text.push_str(&format!("{mark:<5} {}\n", c.header));
            for line in c.detail.to_text().lines() {
                text.push_str(&format!("      {line}\n"));
            }
        }
        let verdict = if self.healthy {
            "everything is as ha.toml describes".to_owned()
        } else {
            let failing: Vec<&str> = self
                .concerns
                .iter()
                .filter(|c| !c.healthy)
                .map(|c| c.concern.as_str())
                .collect();
            format!("unhealthy: {}", failing.join(", "))
        };
        text.push_str(&format!("circle-ha status: {verdict}\n"));
        text
    }

    fn healthy(&self) -> Option<bool> {
        Some(self.healthy)
    }
}
