//! `circle-ha apply`: every concern `ha.toml` configures, in the runbook's
//! order — certificates, the MongoDB replica set and its users, the
//! PostgreSQL databases, Vault's transit mount and token, the Services
//! bundle — as one plan and one report.
//!
//! Every selected section is validated before anything is touched (all
//! problems at once, exit 2). Then the concerns run one after another; the
//! first that fails stops the run, and the error names it and says which
//! concerns finished and which did not run. Vault `init`/`unseal` are not
//! part of it: they hand out key shares and stay explicit
//! `vault-transit` commands.

use std::path::PathBuf;

use ha_config::{
    EnvLookup, HaConfig, MongoOptions, MongoSetup, PkiSettings, PostgresOverrides,
    PostgresSettings, Section, VaultSettings,
};
use ha_plan::{Action, Combined, Problems, Progress, Report};

use crate::output::usage;
use crate::{mongo, pki, postgres, services, vault};

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
}

impl Concern {
    /// In the runbook's order.
    pub const ALL: [Concern; 5] = [
        Concern::Pki,
        Concern::Mongo,
        Concern::Postgres,
        Concern::Vault,
        Concern::Userdata,
    ];

    /// The name `--only` takes.
    pub fn name(self) -> &'static str {
        match self {
            Concern::Pki => "pki",
            Concern::Mongo => "mongo",
            Concern::Postgres => "postgres",
            Concern::Vault => "vault",
            Concern::Userdata => "userdata",
        }
    }

    /// The `ha.toml` section it reads.
    pub fn section(self) -> Section {
        match self {
            Concern::Pki => Section::Pki,
            Concern::Mongo => Section::Mongo,
            Concern::Postgres => Section::Postgres,
            Concern::Vault => Section::Vault,
            Concern::Userdata => Section::Services,
        }
    }

    /// Parses an `--only` name.
    pub fn parse(name: &str) -> Result<Concern, Problems> {
        Concern::ALL
            .into_iter()
            .find(|c| c.name() == name.trim())
            .ok_or_else(|| {
                usage(
                    "--only",
                    format!("{name}: not a concern (pki, mongo, postgres, vault, userdata)"),
                )
            })
    }
}

/// How to run `apply`.
#[derive(Clone, Debug)]
pub struct Options {
    /// Only these concerns (empty: every configured one).
    pub only: Vec<Concern>,
    /// Plan only.
    pub dry_run: bool,
    /// Where the Services bundle is rendered.
    pub bundle_dir: PathBuf,
}

/// The selected concerns' settings, checked up front.
enum Checked {
    Pki(PkiSettings),
    Mongo(MongoSetup),
    Postgres(PostgresSettings),
    Vault(VaultSettings),
    Userdata,
}

/// Runs `apply` over the concerns `options` selects. Configuration
/// problems of every selected section come back together as [`Problems`]
/// before anything is touched; a concern that fails stops the run with an
/// error that names it.
pub async fn apply(
    config: &HaConfig,
    env: EnvLookup<'_>,
    options: &Options,
    progress: Progress<'_>,
) -> anyhow::Result<Combined> {
    let mut report = Combined::new("circle-ha apply", options.dry_run);
    let mut selected = Vec::new();
    for concern in Concern::ALL {
        if !options.only.is_empty() && !options.only.contains(&concern) {
            report
                .skipped
                .push((concern.name().to_owned(), "not in --only".to_owned()));
        } else if !config.has(concern.section()) {
            if options.only.contains(&concern) {
                return Err(usage(
                    "--only",
                    format!(
                        "{}: {} has no {} section",
                        concern.name(),
                        config.path().display(),
                        concern.section().header()
                    ),
                )
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
        let result = match concern {
            Concern::Pki => config.pki().map(Checked::Pki),
            Concern::Mongo => config
                .mongo_setup(env, &MongoOptions::default())
                .await
                .map(Checked::Mongo),
            Concern::Postgres => config
                .postgres(&PostgresOverrides::default())
                .map(Checked::Postgres),
            Concern::Vault => config.vault(false).map(Checked::Vault),
            Concern::Userdata => match config.bundle_spec(env, Some(&options.bundle_dir)) {
                Ok(_) => Ok(Checked::Userdata),
                // [vault] runs first and writes the app token.
                Err(e)
                    if selected.contains(&Concern::Vault)
                        && HaConfig::only_app_token_missing(&e) =>
                {
                    Ok(Checked::Userdata)
                }
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(settings) => checked.push((*concern, settings)),
            Err(e) => problems.extend(e),
        }
    }
    problems.finish(())?;

    for (concern, settings) in checked {
        let header = concern.section().header();
        progress(&format!("{header} …"));
        let result = match settings {
            Checked::Pki(settings) => run_pki(&settings, options.dry_run),
            Checked::Mongo(setup) => mongo::apply(setup, options.dry_run, progress).await,
            Checked::Postgres(settings) => {
                postgres::apply(config, &settings, env, options.dry_run).await
            }
            Checked::Vault(settings) => {
                vault::configure(config, &settings, env, options.dry_run).await
            }
            Checked::Userdata => render_bundle(config, env, options),
        };
        match result {
            Ok(done) => {
                progress(&format!("{header}: {}", done.to_summary_text().trim_end()));
                report.ran.push((concern.name().to_owned(), done));
            }
            Err(e) => {
                let finished: Vec<&str> = report.ran.iter().map(|(c, _)| c.as_str()).collect();
                let not_run: Vec<&str> = selected
                    .iter()
                    .skip_while(|c| **c != concern)
                    .skip(1)
                    .map(|c| c.name())
                    .collect();
                return Err(e.context(format!(
                    "apply stopped at {} ({header}): finished {}; not run {}",
                    concern.name(),
                    list_or_none(&finished),
                    list_or_none(&not_run)
                )));
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
    options: &Options,
) -> anyhow::Result<Report> {
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
    services::render(config, env, &options.bundle_dir, options.dry_run)
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// `pki init` then `pki issue`, as one report.
fn run_pki(settings: &PkiSettings, dry_run: bool) -> anyhow::Result<Report> {
    let mut init = pki::init(settings, dry_run)?;
    init.extend(pki::issue(settings, dry_run)?);
    Ok(init)
}
