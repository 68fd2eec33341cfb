//! Each concern's typed setup and the calls that run it alone.

use std::path::PathBuf;
use std::time::Duration;

use ha_plan::{Action, Checked, Document, Problem, Problems, Progress, Report};
use secrecy::SecretString;
use serde::Serialize;

use crate::Error;

/// The replica set: a validated, resolved spec (passwords included) and
/// the warnings found on the way.
#[derive(Debug)]
#[non_exhaustive]
pub struct MongoSetup {
    /// The desired state.
    pub spec: mongo_rs_setup::SetSpec,
    /// Warnings (even voter count, loose secret-file modes, certificate
    /// warnings …), carried first in every report.
    pub warnings: Vec<String>,
}

impl MongoSetup {
    /// A setup of `spec`, validated ([`mongo_rs_setup::SetSpec::validate`]:
    /// every problem at once; its warnings join `warnings`, once each).
    pub fn new(
        spec: mongo_rs_setup::SetSpec,
        mut warnings: Vec<String>,
    ) -> Result<MongoSetup, Problems> {
        for warning in spec.validate()? {
            if !warnings.contains(&warning) {
                warnings.push(warning);
            }
        }
        Ok(MongoSetup { spec, warnings })
    }

    /// `mongo-rs-setup apply` (or its dry run): observe, plan, and unless
    /// `dry_run` bring the set to the spec.
    pub async fn apply(&self, dry_run: bool, progress: Progress<'_>) -> Result<Report, Error> {
        let session = mongo_rs_setup::Session::new(&self.spec);
        Ok(mongo_rs_setup::run(
            &session,
            "mongo-rs-setup",
            dry_run,
            self.warnings.clone(),
            progress,
        )
        .await?)
    }

    /// `add-member`, `remove-member`, `set-priority`: one reconfig on the
    /// primary, or nothing when the set already is that way. Removing a
    /// member the spec still lists is [`Error::MemberStillWanted`] (the
    /// next apply would add it back).
    pub async fn change_member(
        &self,
        change: &mongo_rs_setup::MemberChange,
        dry_run: bool,
        progress: Progress<'_>,
    ) -> Result<Report, Error> {
        if let mongo_rs_setup::MemberChange::Remove(host) = change
            && self.spec.member(host).is_some()
        {
            return Err(Error::MemberStillWanted { host: host.clone() });
        }
        let session = mongo_rs_setup::Session::new(&self.spec);
        let plan =
            mongo_rs_setup::plan_member_change(&session, &self.spec, change, progress).await?;
        if !dry_run {
            mongo_rs_setup::apply_member_change(&session, &plan, progress).await?;
        }
        let mut report = plan.plan.to_report("mongo-rs-setup", dry_run);
        report.warnings.splice(0..0, self.warnings.iter().cloned());
        Ok(report)
    }

    /// `mongo-rs-setup status`: every member's state, lag, TLS and login,
    /// unhealthy beyond `max_lag`. Never fails: what cannot be read is a
    /// problem in the findings.
    pub async fn status(&self, max_lag: Duration) -> mongo_rs_setup::SetFindings {
        let session = mongo_rs_setup::Session::new(&self.spec);
        let status = mongo_rs_setup::status(&session, max_lag).await;
        let tls = self.spec.reach.tls.is_some();
        status.to_findings("mongo-rs-setup", tls, &self.warnings)
    }
}

/// The PostgreSQL databases: the server, the logins, the databases.
#[derive(Debug)]
#[non_exhaustive]
pub struct PostgresSetup {
    /// Where the server is and how TLS is checked.
    pub server: pg_provision::Server,
    /// The admin login [`PostgresSetup::apply`] needs (`None`: only
    /// [`PostgresSetup::verify`] can run).
    pub admin: Option<pg_provision::Login>,
    /// The admin's maintenance database.
    pub admin_database: String,
    /// The app login: the role the databases belong to, and what
    /// [`PostgresSetup::verify`] logs in as.
    pub app: pg_provision::Login,
    /// The databases.
    pub databases: Vec<pg_provision::DatabaseSpec>,
    /// Things to tell the operator on every run.
    pub warnings: Vec<String>,
}

impl PostgresSetup {
    /// A setup of these parts.
    pub fn new(
        server: pg_provision::Server,
        admin: Option<pg_provision::Login>,
        admin_database: impl Into<String>,
        app: pg_provision::Login,
        databases: Vec<pg_provision::DatabaseSpec>,
    ) -> PostgresSetup {
        PostgresSetup {
            server,
            admin,
            admin_database: admin_database.into(),
            app,
            databases,
            warnings: Vec::new(),
        }
    }

    /// `pg-provision apply` (or its dry run): [`pg_provision::provision`]
    /// as the admin; the report carries the setup's warnings first.
    pub async fn apply(&self, dry_run: bool) -> Result<Report, Error> {
        let admin = self.admin.as_ref().ok_or(Error::Missing {
            concern: "postgres",
            what: "admin login (provisioning creates roles and databases)",
        })?;
        let desired = pg_provision::Desired {
            app_role: self.app.user.clone(),
            app_password: self.app.password.clone(),
            databases: self.databases.clone(),
        };
        let plan =
            pg_provision::provision(&self.server, admin, &self.admin_database, &desired, dry_run)
                .await?;
        let mut warnings = self.warnings.clone();
        warnings.extend(plan.warnings.iter().cloned());
        Ok(Report::from_changes(
            "pg-provision",
            dry_run,
            &plan.steps,
            warnings,
        ))
    }

    /// `pg-provision verify`: logged in as the app role, every database,
    /// its extensions and the right to create objects.
    pub async fn verify(&self) -> pg_provision::VerifyFindings {
        let verification = pg_provision::verify(&self.server, &self.app, &self.databases).await;
        verification.to_findings("pg-provision", &self.app.user, &self.warnings)
    }
}

/// Vault's transit mount, policy and app token.
#[derive(Debug)]
#[non_exhaustive]
pub struct VaultSetup {
    /// Vault's address, without a trailing `/`.
    pub address: String,
    /// How its certificate is checked.
    pub trust: vault_transit::Trust,
    /// The privileged token [`VaultSetup::configure`] needs (`None`: only
    /// the checks can run).
    pub admin_token: Option<SecretString>,
    /// Where the app token is written (0600) and read back.
    pub app_token_file: PathBuf,
    /// Mount, policy, period.
    pub spec: vault_transit::ConfigureSpec,
    /// Things to tell the operator on every run (a plain-HTTP address).
    pub warnings: Vec<String>,
}

impl VaultSetup {
    /// A setup of these parts.
    pub fn new(
        address: impl Into<String>,
        trust: vault_transit::Trust,
        admin_token: Option<SecretString>,
        app_token_file: impl Into<PathBuf>,
        spec: vault_transit::ConfigureSpec,
    ) -> VaultSetup {
        VaultSetup {
            address: address.into().trim_end_matches('/').to_owned(),
            trust,
            admin_token,
            app_token_file: app_token_file.into(),
            spec,
            warnings: Vec::new(),
        }
    }

    /// The HTTP client for [`VaultSetup::address`].
    pub fn client(&self) -> Result<vault_transit::Client, vault_transit::Error> {
        vault_transit::Client::new(&self.address, &self.trust)
    }

    /// `vault-transit configure` (or its dry run): the transit mount, the
    /// policy and the periodic app token, written to
    /// [`VaultSetup::app_token_file`]; a kept app token that was renewed
    /// is said in a warning.
    pub async fn configure(&self, dry_run: bool) -> Result<Report, Error> {
        let admin = self.admin_token.as_ref().ok_or(Error::Missing {
            concern: "vault",
            what: "admin token (configuring mounts and policies needs one)",
        })?;
        let client = self.client()?;
        let (plan, applied) = vault_transit::configure::run(
            &client,
            admin,
            &self.spec,
            &self.app_token_file,
            dry_run,
        )
        .await?;
        let mut warnings = self.warnings.clone();
        if applied.is_some_and(|a| a.renewed) {
            warnings.push(format!(
                "kept the existing app token in {} and renewed it for another {}",
                self.app_token_file.display(),
                self.spec.period
            ));
        }
        Ok(Report::from_changes(
            "vault-transit",
            dry_run,
            &plan.steps,
            warnings,
        ))
    }

    /// `vault-transit status`: initialised and unsealed (no token needed).
    pub async fn server_health(&self) -> Result<vault_transit::ServerHealth, Error> {
        let client = self.client()?;
        Ok(vault_transit::server_health(&client, "vault-transit").await?)
    }

    /// `vault-transit verify`: with the app token configure wrote, what the
    /// contexts service will do, and that it can do nothing more. No token
    /// in the file yet is [`Error::NoAppToken`].
    pub async fn verify(&self) -> Result<vault_transit::TokenFindings, Error> {
        let client = self.client()?;
        let Some(app) = vault_transit::configure::read_token_file(&self.app_token_file)? else {
            return Err(Error::NoAppToken {
                path: self.app_token_file.clone(),
            });
        };
        let report = vault_transit::verify(&client, &app, &self.spec).await;
        Ok(report.to_findings("vault-transit", &self.address))
    }

    /// Seal state, then (unsealed) the app token's checks, as one finding.
    /// Never fails: errors are unhealthy findings.
    pub async fn health(&self) -> VaultHealth {
        let server = Checked::of(self.server_health().await);
        let app_token = if server.healthy() == Some(true) {
            Some(Checked::of(self.verify().await))
        } else {
            None
        };
        VaultHealth { server, app_token }
    }
}

impl VaultSetup {
    /// `vault-transit migrate verify`, the contexts cutover gate: every
    /// `vault:v<N>:` value in `database` (read with `postgres`'s app login)
    /// decrypts on this Vault with the contexts service's token (the app
    /// token file), with `key` (default: the one key in the transit mount
    /// besides verify's probe key; several are a problem keyed `key`). The
    /// findings carry both setups' warnings.
    pub async fn contexts_verify(
        &self,
        postgres: &PostgresSetup,
        key: Option<&str>,
        database: &str,
    ) -> Result<vault_transit::contexts::ContextsFindings, Error> {
        let mut warnings = self.warnings.clone();
        warnings.extend(postgres.warnings.iter().cloned());
        let Some(token) = vault_transit::configure::read_token_file(&self.app_token_file)? else {
            return Err(Error::NoAppToken {
                path: self.app_token_file.clone(),
            });
        };
        let client = self.client()?;
        let mount = self.spec.mount.trim_matches('/');
        let key = match key {
            Some(key) => key.to_owned(),
            None => {
                let listed = client.list(&format!("{mount}/keys"), Some(&token)).await?;
                let names: Vec<String> = listed["data"]["keys"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|k| k.as_str())
                            .filter(|k| *k != vault_transit::PROBE_KEY)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                let [name] = &names[..] else {
                    return Err(Problems::one(Problem::invalid(
                        "key",
                        format!(
                            ": {mount}/ holds {} key(s) ({}): name the contexts service's",
                            names.len(),
                            names.join(", ")
                        ),
                    ))
                    .into());
                };
                name.clone()
            }
        };
        let db = postgres.server.connect(&postgres.app, database).await?;
        let found = pg_provision::scan::matching_values(
            &db,
            &postgres.server.describe(),
            r"^vault:v[0-9]+:",
        )
        .await?;
        let columns: Vec<String> = found.iter().map(|f| f.column.clone()).collect();
        let ciphertexts: Vec<String> = found.into_iter().flat_map(|f| f.values).collect();
        let mut findings =
            vault_transit::contexts::verify(&client, &token, mount, &key, &ciphertexts, columns)
                .await?;
        warnings.append(&mut findings.warnings);
        findings.warnings = warnings;
        Ok(findings)
    }
}

/// Vault's part of `circle-ha status`: the server's seal state, then, once
/// it is unsealed, the app token's checks.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct VaultHealth {
    /// Initialised and unsealed (`vault-transit status`).
    pub server: Checked<vault_transit::ServerHealth>,
    /// The app token's checks (`vault-transit verify`); absent while the
    /// server is not healthy.
    pub app_token: Option<Checked<vault_transit::TokenFindings>>,
}

impl Document for VaultHealth {
    fn to_text(&self) -> String {
        let mut text = self.server.to_text();
        if let Some(app_token) = &self.app_token {
            text.push_str(&app_token.to_text());
        }
        text
    }

    fn healthy(&self) -> Option<bool> {
        Some(
            self.server.healthy() == Some(true)
                && self
                    .app_token
                    .as_ref()
                    .is_some_and(|a| a.healthy() == Some(true)),
        )
    }
}

/// The Services bundle: its spec, where it is rendered, and — when Vault's
/// app token is still to be written by the runbook's Vault step — the file
/// to read it from at render time.
#[derive(Debug)]
#[non_exhaustive]
pub struct BundleSetup {
    /// What the bundle holds.
    pub spec: services_userdata::BundleSpec,
    /// Where it is rendered.
    pub dir: PathBuf,
    /// `Some`: the spec's Vault token is read from this file when the
    /// bundle is rendered (Vault's configure step writes it); `None`: the
    /// spec already holds it.
    pub app_token_file: Option<PathBuf>,
    /// Things to tell the operator on every run.
    pub warnings: Vec<String>,
}

impl BundleSetup {
    /// A bundle of `spec` rendered into `dir`, its Vault token in the spec.
    pub fn new(spec: services_userdata::BundleSpec, dir: impl Into<PathBuf>) -> BundleSetup {
        BundleSetup {
            spec,
            dir: dir.into(),
            app_token_file: None,
            warnings: Vec::new(),
        }
    }

    /// `services-userdata render` (or its dry run): the bundle rendered
    /// and the files that differ written (0600 for secrets). With the app
    /// token still to be written, a dry run plans the render and a real
    /// run is [`Error::NoAppToken`].
    pub fn render(&self, dry_run: bool) -> Result<Report, Error> {
        let spec = match self.spec_with_token() {
            Ok(spec) => spec,
            Err(Error::NoAppToken { .. }) if dry_run => {
                let dir = self.dir.display();
                return Ok(Report::new(
                    "services-userdata",
                    true,
                    vec![Action::new(
                        "render-bundle",
                        dir.to_string(),
                        format!(
                            "render the Services bundle into {dir} (once Vault's app token is \
                             written)"
                        ),
                    )],
                    self.warnings.clone(),
                ));
            }
            Err(e) => return Err(e),
        };
        let bundle = services_userdata::render(&spec)?;
        Ok(bundle.sync_to(
            &self.dir,
            "services-userdata",
            dry_run,
            self.warnings.clone(),
        )?)
    }

    /// The spec, its Vault token read from [`BundleSetup::app_token_file`]
    /// when there is one.
    fn spec_with_token(
        &self,
    ) -> Result<std::borrow::Cow<'_, services_userdata::BundleSpec>, Error> {
        let Some(path) = &self.app_token_file else {
            return Ok(std::borrow::Cow::Borrowed(&self.spec));
        };
        match vault_transit::configure::read_token_file(path)? {
            Some(token) => {
                let mut spec = self.spec.clone();
                spec.vault.token = token;
                Ok(std::borrow::Cow::Owned(spec))
            }
            None => Err(Error::NoAppToken { path: path.clone() }),
        }
    }
}

/// The backups [`crate::status`] checks: the newest complete run and each
/// member's.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct BackupCheck {
    /// The replica set's name (snapshots are labelled with it).
    pub replica_set: String,
    /// Where the snapshots are.
    pub store: mongo_backup::StoreSpec,
    /// The member's dbPath (what a directory or command store copies).
    pub db_path: PathBuf,
    /// The newest complete run may be at most this old.
    pub max_age: Duration,
}

impl BackupCheck {
    /// A check of `replica_set`'s snapshots in `store`.
    pub fn new(
        replica_set: impl Into<String>,
        store: mongo_backup::StoreSpec,
        db_path: impl Into<PathBuf>,
        max_age: Duration,
    ) -> BackupCheck {
        BackupCheck {
            replica_set: replica_set.into(),
            store,
            db_path: db_path.into(),
            max_age,
        }
    }
}

/// Where the encryption keys' stored copy is, for [`crate::status`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct KeysCheck {
    /// The bucket and prefix.
    pub store: services_userdata::keys::KeyStore,
    /// The bucket's AWS region.
    pub region: String,
}

impl KeysCheck {
    /// The copy in `store`, a bucket in `region`.
    pub fn new(store: services_userdata::keys::KeyStore, region: impl Into<String>) -> KeysCheck {
        KeysCheck {
            store,
            region: region.into(),
        }
    }
}

/// Whether the rendered bundle is what `setup` renders: fresh, or the
/// files that differ. No app token yet is [`Error::NoAppToken`].
pub(crate) fn bundle_fresh(setup: &BundleSetup) -> Result<(bool, Vec<String>), Error> {
    let spec = setup.spec_with_token()?;
    let bundle = services_userdata::render(&spec)?;
    let report = bundle.sync_to(&setup.dir, "services-userdata", true, Vec::new())?;
    Ok((
        report.actions.is_empty(),
        report.actions.iter().map(|a| a.target.clone()).collect(),
    ))
}
