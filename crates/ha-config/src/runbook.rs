//! `ha.toml` as a [`Runbook`]: every selected section checked, its secrets
//! resolved, and turned into the setup `ha-runbook` runs.

use std::path::PathBuf;

use ha_plan::{Problem, ProblemKind, Problems};
use ha_runbook::{BackupCheck, Concern, KeysCheck, Runbook};

use crate::{EnvLookup, HaConfig, MongoOptions, PostgresOverrides, Section};

/// What a runbook is built for, which decides the secrets it resolves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Purpose {
    /// `circle-ha apply`: the admin logins too; the backups and the key
    /// backup are not part of it.
    Apply,
    /// `circle-ha status`: what the checks log in with (the app logins),
    /// the backups and the key backup too; a Vault app token not written
    /// yet makes the bundle unhealthy rather than the file wrong.
    Status,
}

/// How to build a runbook from `ha.toml`.
#[derive(Clone, Debug)]
pub struct RunbookOptions {
    /// What it is for.
    pub purpose: Purpose,
    /// Only these concerns (empty: every configured one). A concern named
    /// here whose section is missing is a problem keyed `--only`.
    pub only: Vec<Concern>,
    /// Where the Services bundle is (to be) rendered.
    pub bundle_dir: PathBuf,
}

/// The `ha.toml` section a concern reads.
pub fn section_of(concern: Concern) -> Section {
    match concern {
        Concern::Pki => Section::Pki,
        Concern::Mongo => Section::Mongo,
        Concern::Postgres => Section::Postgres,
        Concern::Vault => Section::Vault,
        Concern::Backup => Section::Backup,
        _ => Section::Services,
    }
}

impl HaConfig {
    /// The runbook this file describes, for `options.purpose`: every
    /// selected section validated and its secrets resolved, all problems
    /// at once, before anything is touched. For [`Purpose::Status`], a
    /// file that configures no concern is a problem too (nothing checked
    /// is not healthy).
    pub async fn runbook(
        &self,
        env: EnvLookup<'_>,
        options: &RunbookOptions,
    ) -> Result<Runbook, Problems> {
        let apply = options.purpose == Purpose::Apply;
        let concerns: &[Concern] = if apply {
            &Concern::ALL
        } else {
            &Concern::CHECKED
        };
        let selected = |c: Concern| options.only.is_empty() || options.only.contains(&c);
        let mut runbook = Runbook::new();
        let mut problems = Problems::new();
        for &concern in concerns {
            if !selected(concern) {
                runbook.not_selected.push(concern);
                continue;
            }
            let section = section_of(concern);
            if !self.has(section) {
                if options.only.contains(&concern) {
                    problems.push(Problem::invalid(
                        "--only",
                        format!(
                            "{}: {} has no {} section",
                            concern.name(),
                            self.path().display(),
                            section.header()
                        ),
                    ));
                }
                continue;
            }
            let res = match concern {
                Concern::Pki => self.pki().map(|pki| runbook.pki = Some(pki)),
                Concern::Mongo => self
                    .mongo_setup(env, &MongoOptions::default())
                    .await
                    .map(|mongo| runbook.mongo = Some(mongo)),
                Concern::Postgres => {
                    self.postgres(&PostgresOverrides::default())
                        .and_then(|settings| {
                            match self.postgres_setup(&settings, env, apply) {
                                Ok(postgres) => runbook.postgres = Some(postgres),
                                // The app login checks with: unhealthy.
                                Err(e) if !apply => {
                                    runbook.unchecked.push((concern, e.to_string()))
                                }
                                Err(e) => return Err(e),
                            }
                            Ok(())
                        })
                }
                Concern::Vault => self
                    .vault_with_env(false, env)
                    .and_then(|settings| self.vault_setup(&settings, env, apply))
                    .map(|vault| runbook.vault = Some(vault)),
                Concern::Userdata => {
                    // The app token is read when the bundle is rendered:
                    // after [vault] wrote it (apply), or as the check's
                    // finding (status).
                    let later = !apply || (selected(Concern::Vault) && self.has(Section::Vault));
                    match self.bundle_setup(env, &options.bundle_dir, later) {
                        Ok(bundle) => {
                            runbook.bundle = Some(bundle);
                            Ok(())
                        }
                        // A bundle that cannot be rendered is unhealthy;
                        // the other concerns are still checked.
                        Err(e) if !apply => {
                            runbook.unchecked.push((concern, e.to_string()));
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
                Concern::Backup => self.backup(None).map(|settings| {
                    match self.mongo_layout() {
                        Ok(layout) => {
                            runbook.backup = Some(BackupCheck::new(
                                layout.name,
                                settings.store.clone(),
                                settings.spec.db_path.clone().unwrap_or_default(),
                                settings.max_age,
                            ));
                        }
                        // The set's name comes from [mongo]: unhealthy.
                        Err(e) => runbook.unchecked.push((concern, e.to_string())),
                    }
                }),
                Concern::Keys if !self.stores_keys() => Ok(()),
                Concern::Keys => self.key_store().map(|(store, region)| {
                    runbook.keys = Some(KeysCheck::new(store, region));
                }),
                _ => Ok(()),
            };
            if let Err(e) = res {
                problems.extend(e);
            }
        }
        if !apply
            && problems.is_empty()
            && runbook.unchecked.is_empty()
            && !Concern::CHECKED.into_iter().any(|c| runbook.has(c))
        {
            problems.push(Problem::new(
                self.path().display().to_string(),
                ProblemKind::Invalid,
                ": configures none of [pki], [mongo], [postgres], [vault], [services], so status \
                 has nothing to check (see `circle-ha config example`)",
            ));
        }
        problems.finish(runbook)
    }
}
