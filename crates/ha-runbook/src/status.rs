//! [`status`]: every concern's health at once, and the two forms it is
//! read in ([`status_findings`], [`status_metrics`]).

use std::path::PathBuf;
use std::time::Duration;

use ha_plan::exposition::{gauge, label};
use ha_plan::{Checked, Document, JsonSchema};
use serde::Serialize;
use time::OffsetDateTime;

use crate::setup::bundle_fresh;
use crate::{BackupCheck, BundleSetup, Concern, Error, KeysCheck, Runbook, VaultHealth};

/// How to run [`status`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StatusOptions {
    /// How far behind the primary a member may be and still be healthy.
    pub max_lag: Duration,
    /// Where CircleCI's encryption keys are on this machine (compared with
    /// their stored copy when it is a directory here).
    pub keys_dir: PathBuf,
    /// An EC2 client for an EBS backup store (built for
    /// [`StatusAws::ec2_region`]); without one, such a store is reported
    /// unchecked.
    pub ec2: Option<mongo_backup::ha_ec2::Ec2>,
    /// An S3 client for the key backup's bucket (built for
    /// [`StatusAws::s3_region`]); without one, the key backup is reported
    /// unchecked.
    pub s3: Option<services_userdata::aws_sdk_s3::Client>,
}

impl Default for StatusOptions {
    /// Lag 30 s, the keys where the Services machine keeps them, and no
    /// AWS clients.
    fn default() -> StatusOptions {
        StatusOptions {
            max_lag: Duration::from_secs(30),
            keys_dir: PathBuf::from(services_userdata::keys::KEYS_DIR),
            ec2: None,
            s3: None,
        }
    }
}

/// The AWS clients [`status`] can use for a runbook, by region: EC2 for an
/// EBS backup store, S3 for the key backup's bucket (`None`: not needed).
/// A program builds a client for each region given (its credentials, its
/// endpoint) and sets [`StatusOptions::ec2`] and [`StatusOptions::s3`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatusAws {
    /// The region of the EBS snapshots.
    pub ec2_region: Option<String>,
    /// The region of the key backup's bucket.
    pub s3_region: Option<String>,
}

impl StatusAws {
    /// What `runbook` needs.
    pub fn of(runbook: &Runbook) -> StatusAws {
        StatusAws {
            ec2_region: runbook
                .backup
                .as_ref()
                .and_then(|b| b.store.region())
                .map(str::to_owned),
            s3_region: runbook.keys.as_ref().map(|k| k.region.clone()),
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
    Vault(VaultHealth),
    /// `[services]`: whether the rendered bundle matches `ha.toml`.
    Userdata(Checked<BundleHealth>),
    /// `[backup]`: `mongo-backup status`.
    Backup(Checked<mongo_backup::report::BackupHealth>),
    /// `[services]`: the encryption keys' stored copy.
    Keys(Checked<services_userdata::keys::KeyBackupHealth>),
}

impl ConcernHealth {
    /// A concern that could not be checked, and why (unhealthy). `None`
    /// for the replica set, whose findings have no error form.
    pub fn unchecked(concern: Concern, why: &str) -> Option<ConcernHealth> {
        fn failed<T>(why: &str) -> Checked<T> {
            Checked::Failed {
                error: why.to_owned(),
            }
        }
        Some(match concern {
            Concern::Pki => ConcernHealth::Pki(failed(why)),
            Concern::Postgres => ConcernHealth::Postgres(failed(why)),
            Concern::Vault => ConcernHealth::Vault(VaultHealth {
                server: failed(why),
                app_token: None,
            }),
            Concern::Userdata => ConcernHealth::Userdata(failed(why)),
            Concern::Backup => ConcernHealth::Backup(failed(why)),
            Concern::Keys => ConcernHealth::Keys(failed(why)),
            Concern::Mongo => return None,
        })
    }
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

/// `circle-ha status`: the health of every concern `runbook` has a setup
/// for, in the runbook's order. A concern that cannot be reached is
/// unhealthy with the reason, and the others are still checked.
/// [`status_findings`] combines the result (nothing checked is not
/// healthy).
pub async fn status(runbook: &Runbook, options: &StatusOptions) -> Vec<Health> {
    let mut checks = Vec::new();
    for concern in Concern::CHECKED {
        let findings = match concern {
            Concern::Pki => runbook.pki.as_ref().map(|pki| {
                ConcernHealth::Pki(Checked::of(
                    pki.lint_findings(concern.tool(), OffsetDateTime::now_utc()),
                ))
            }),
            Concern::Mongo => match &runbook.mongo {
                Some(mongo) => Some(ConcernHealth::Mongo(mongo.status(options.max_lag).await)),
                None => None,
            },
            Concern::Postgres => match &runbook.postgres {
                Some(postgres) => Some(ConcernHealth::Postgres(Checked::Ran(
                    postgres.verify().await,
                ))),
                None => None,
            },
            Concern::Vault => match &runbook.vault {
                Some(vault) => Some(ConcernHealth::Vault(vault.health().await)),
                None => None,
            },
            Concern::Userdata => runbook
                .bundle
                .as_ref()
                .map(|bundle| ConcernHealth::Userdata(Checked::of(bundle_health(bundle)))),
            Concern::Backup => match &runbook.backup {
                Some(backup) => Some(ConcernHealth::Backup(Checked::of(
                    backup_health(backup, options.ec2.clone()).await,
                ))),
                None => None,
            },
            Concern::Keys => match &runbook.keys {
                Some(keys) => Some(ConcernHealth::Keys(Checked::of(
                    key_backup_health(keys, options).await,
                ))),
                None => None,
            },
        };
        let findings = findings.or_else(|| {
            let (_, why) = runbook.unchecked.iter().find(|(c, _)| *c == concern)?;
            ConcernHealth::unchecked(concern, why)
        });
        if let Some(findings) = findings {
            checks.push(Health { concern, findings });
        }
    }
    checks
}

/// `mongo-backup status` for `check`'s store.
async fn backup_health(
    check: &BackupCheck,
    ec2: Option<mongo_backup::ha_ec2::Ec2>,
) -> Result<mongo_backup::report::BackupHealth, Error> {
    use mongo_backup::SnapshotStore as _;
    let set = &check.replica_set;
    let store = check.store.open(&check.db_path, ec2)?;
    let snapshots = store.list(set).await?;
    let groups = mongo_backup::snapshot::groups(&snapshots, set);
    Ok(mongo_backup::report::status_findings(
        set,
        &groups,
        check.max_age,
        OffsetDateTime::now_utc(),
    ))
}

/// The key backup's stored copy, read back (see
/// `services_userdata::keys::backup_health`).
async fn key_backup_health(
    keys: &KeysCheck,
    options: &StatusOptions,
) -> Result<services_userdata::keys::KeyBackupHealth, Error> {
    let s3 = options.s3.as_ref().ok_or(Error::Missing {
        concern: "keys",
        what: "S3 client for the key backup",
    })?;
    Ok(services_userdata::keys::backup_health(s3, &keys.store, &options.keys_dir).await?)
}

/// The bundle is fresh when rendering it again would change nothing.
fn bundle_health(setup: &BundleSetup) -> Result<BundleHealth, Error> {
    let (fresh, stale) = bundle_fresh(setup)?;
    Ok(BundleHealth {
        healthy: fresh,
        bundle: setup.dir.display().to_string(),
        fresh,
        stale,
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

/// The combined findings of [`status`]: unhealthy when any concern is, or
/// when nothing was checked;
/// JSON `{healthy, concerns: [{concern, healthy, detail}]}`.
pub fn status_findings(checks: &[Health]) -> StatusFindings {
    StatusFindings {
        healthy: !checks.is_empty() && checks.iter().all(Health::healthy),
        concerns: checks
            .iter()
            .map(|h| ConcernStatus {
                concern: h.concern.name().to_owned(),
                healthy: h.healthy(),
                detail: h.findings.clone(),
                header: h.concern.header().to_owned(),
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
