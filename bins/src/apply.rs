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

use serde_json::{Value, json};

use crate::config::{ConfigFile, UsageError};
use crate::output::ChangeReport;
use crate::postgres::EnvLookup;
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
    pub fn section(self) -> &'static str {
        match self {
            Concern::Pki => "[pki]",
            Concern::Mongo => "[mongo]",
            Concern::Postgres => "[postgres]",
            Concern::Vault => "[vault]",
            Concern::Userdata => "[services]",
        }
    }

    /// Parses an `--only` name.
    pub fn parse(name: &str) -> Result<Concern, UsageError> {
        Concern::ALL
            .into_iter()
            .find(|c| c.name() == name.trim())
            .ok_or_else(|| {
                UsageError::new(format!(
                    "--only {name}: not a concern (pki, mongo, postgres, vault, userdata)"
                ))
            })
    }

    fn configured(self, file: &ConfigFile) -> bool {
        match self {
            Concern::Pki => file.raw.pki.is_some(),
            Concern::Mongo => file.raw.mongo.is_some(),
            Concern::Postgres => file.raw.postgres.is_some(),
            Concern::Vault => file.raw.vault.is_some(),
            Concern::Userdata => file.raw.services.is_some(),
        }
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

/// What `apply` did, concern by concern.
#[derive(Debug)]
pub struct Report {
    /// Whether it only planned.
    pub dry_run: bool,
    /// Each concern that ran, in order, with its report.
    pub ran: Vec<(Concern, ChangeReport)>,
    /// Concerns left out: not configured, or not in `--only`.
    pub skipped: Vec<(Concern, &'static str)>,
}

impl Report {
    /// Actions applied (0 for a dry run).
    pub fn changed(&self) -> usize {
        self.ran.iter().map(|(_, r)| r.changed()).sum()
    }

    /// The combined JSON: `{"changed", "dry_run", "planned", "actions":
    /// [{"concern", "kind", "target", "detail"}], "concerns": [...],
    /// "warnings"}`.
    pub fn to_json(&self) -> Value {
        let actions: Vec<Value> = self
            .ran
            .iter()
            .flat_map(|(concern, report)| {
                report.actions.iter().map(move |a| {
                    json!({
                        "concern": concern.name(),
                        "kind": a.kind,
                        "target": a.target,
                        "detail": a.detail,
                    })
                })
            })
            .collect();
        json!({
            "changed": self.changed(),
            "dry_run": self.dry_run,
            "planned": actions.len(),
            "actions": actions,
            "concerns": self.ran.iter().map(|(c, r)| json!({
                "concern": c.name(),
                "changed": r.changed(),
                "planned": r.actions.len(),
            })).chain(self.skipped.iter().map(|(c, why)| json!({
                "concern": c.name(),
                "skipped": why,
            }))).collect::<Vec<_>>(),
            "warnings": self.ran.iter().flat_map(|(c, r)| {
                r.warnings.iter().map(move |w| format!("{}: {w}", c.name()))
            }).collect::<Vec<_>>(),
        })
    }

    /// The human text: each concern's actions and a summary.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for (concern, report) in &self.ran {
            for w in &report.warnings {
                text.push_str(&format!("warning: {}: {w}\n", concern.name()));
            }
            let verb = if self.dry_run { "would" } else { "done" };
            for a in &report.actions {
                text.push_str(&format!("{verb}: {}: {}\n", concern.name(), a.detail));
            }
        }
        for (concern, why) in &self.skipped {
            text.push_str(&format!("skipped: {}: {why}\n", concern.name()));
        }
        let planned: usize = self.ran.iter().map(|(_, r)| r.actions.len()).sum();
        text.push_str(&match (self.dry_run, planned) {
            (_, 0) => "circle-ha apply: nothing to do (changed: 0)\n".to_owned(),
            (true, n) => format!("circle-ha apply: {n} change(s) planned, none made (--dry-run)\n"),
            (false, n) => format!("circle-ha apply: changed: {n}\n"),
        });
        text
    }
}

/// The selected concerns' settings, checked up front.
enum Checked {
    Pki(pki::Settings),
    Mongo(mongo::Setup),
    Postgres(postgres::Settings),
    Vault(vault::Settings),
    Userdata,
}

/// Runs `apply` over the concerns `options` selects. Configuration
/// problems of every selected section come back together as a
/// [`UsageError`] before anything is touched; a concern that fails stops
/// the run with an error that names it.
pub async fn apply(
    file: &ConfigFile,
    env: EnvLookup<'_>,
    options: &Options,
    progress: &dyn Fn(&str),
) -> anyhow::Result<Report> {
    let mut report = Report {
        dry_run: options.dry_run,
        ran: Vec::new(),
        skipped: Vec::new(),
    };
    let mut selected = Vec::new();
    for concern in Concern::ALL {
        if !options.only.is_empty() && !options.only.contains(&concern) {
            report.skipped.push((concern, "not in --only"));
        } else if !concern.configured(file) {
            if options.only.contains(&concern) {
                return Err(UsageError::new(format!(
                    "--only {}: {} has no {} section",
                    concern.name(),
                    file.path.display(),
                    concern.section()
                ))
                .into());
            }
            report.skipped.push((concern, "not configured"));
        } else {
            selected.push(concern);
        }
    }

    // Every selected section validated before anything is touched.
    let mut problems: Vec<String> = Vec::new();
    let mut checked = Vec::new();
    for concern in &selected {
        let result = match concern {
            Concern::Pki => pki::settings(file).map(Checked::Pki),
            Concern::Mongo => mongo::setup(file, env, &mongo::Options::default())
                .await
                .map(Checked::Mongo),
            Concern::Postgres => {
                postgres::settings(file, &postgres::Overrides::default()).map(Checked::Postgres)
            }
            Concern::Vault => vault::settings(file, false).map(Checked::Vault),
            Concern::Userdata => {
                match services::bundle_spec(file, env, Some(&options.bundle_dir)) {
                    Ok(_) => Ok(Checked::Userdata),
                    // [vault] runs first and writes the app token.
                    Err(e) if selected.contains(&Concern::Vault) && only_missing_token(&e) => {
                        Ok(Checked::Userdata)
                    }
                    Err(e) => Err(e),
                }
            }
        };
        match result {
            Ok(settings) => checked.push((*concern, settings)),
            Err(e) => problems.extend(e.problems),
        }
    }
    if !problems.is_empty() {
        return Err(UsageError { problems }.into());
    }

    for (concern, settings) in checked {
        progress(&format!("{} …", concern.section()));
        let result = match settings {
            Checked::Pki(settings) => run_pki(&settings, options.dry_run),
            Checked::Mongo(setup) => mongo::apply(setup, options.dry_run, progress).await,
            Checked::Postgres(settings) => {
                postgres::apply(file, &settings, env, options.dry_run).await
            }
            Checked::Vault(settings) => {
                vault::configure(file, &settings, env, options.dry_run).await
            }
            Checked::Userdata => render_bundle(file, env, options),
        };
        match result {
            Ok(done) => {
                progress(&format!(
                    "{}: {}",
                    concern.section(),
                    done.to_summary_text().trim_end()
                ));
                report.ran.push((concern, done));
            }
            Err(e) => {
                let finished: Vec<&str> = report.ran.iter().map(|(c, _)| c.name()).collect();
                let not_run: Vec<&str> = selected
                    .iter()
                    .skip_while(|c| **c != concern)
                    .skip(1)
                    .map(|c| c.name())
                    .collect();
                return Err(e.context(format!(
                    "apply stopped at {} ({}): finished {}; not run {}",
                    concern.name(),
                    concern.section(),
                    list_or_none(&finished),
                    list_or_none(&not_run)
                )));
            }
        }
    }
    Ok(report)
}

/// Whether the only problems are the Vault app token not written yet.
fn only_missing_token(e: &UsageError) -> bool {
    e.problems
        .iter()
        .all(|p| p.starts_with("no Vault app token at"))
}

/// Renders the bundle; in a dry run whose Vault step has not written the
/// app token yet, plans the render instead.
fn render_bundle(
    file: &ConfigFile,
    env: EnvLookup<'_>,
    options: &Options,
) -> anyhow::Result<ChangeReport> {
    if options.dry_run
        && let Err(e) = services::bundle_spec(file, env, Some(&options.bundle_dir))
        && only_missing_token(&e)
    {
        return Ok(ChangeReport {
            tool: "circle-ha apply",
            dry_run: true,
            actions: vec![crate::output::Action {
                kind: "render-bundle".to_owned(),
                target: options.bundle_dir.display().to_string(),
                detail: format!(
                    "render the Services bundle into {} (once [vault] has written the app token)",
                    options.bundle_dir.display()
                ),
            }],
            warnings: Vec::new(),
        });
    }
    services::render(file, env, &options.bundle_dir, options.dry_run)
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// `pki init` then `pki issue`, as one report.
fn run_pki(settings: &pki::Settings, dry_run: bool) -> anyhow::Result<ChangeReport> {
    let mut init = pki::init(settings, dry_run)?;
    let issue = pki::issue(settings, dry_run)?;
    init.actions.extend(issue.actions);
    init.warnings.extend(issue.warnings);
    Ok(init)
}
