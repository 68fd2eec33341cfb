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

use ha_plan::{Action, Combined, Findings, Problem, Problems, Progress, Report};
use serde_json::json;
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

    /// The command that runs it alone; reports carry its name.
    pub fn tool(self) -> &'static str {
        match self {
            Concern::Pki => "circle-ha pki",
            Concern::Mongo => "mongo-rs-setup",
            Concern::Postgres => "pg-provision",
            Concern::Vault => "vault-transit",
            Concern::Userdata => "services-userdata",
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

    /// Parses an `--only` name; a problem keyed `--only` otherwise.
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
enum Checked {
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
            Checked::Pki(settings) => {
                let now = OffsetDateTime::now_utc();
                settings
                    .init(concern.tool(), now, dry_run)
                    .and_then(|mut init| {
                        init.extend(settings.issue(concern.tool(), now, dry_run)?);
                        Ok(init)
                    })
                    .map_err(Error::from)
            }
            Checked::Mongo(setup) => setup.apply(dry_run, progress).await.map_err(Error::from),
            Checked::Postgres(settings) => config.postgres_apply(&settings, env, dry_run).await,
            Checked::Vault(settings) => config.vault_configure(&settings, env, dry_run).await,
            Checked::Userdata => render_bundle(config, env, options),
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
}

/// One concern's health.
#[derive(Debug)]
pub struct Health {
    /// Which concern.
    pub concern: Concern,
    /// What its check found (its JSON is the concern tool's `--json`, or
    /// `{"error": …}`).
    pub findings: Findings,
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
    for concern in Concern::ALL {
        if !config.has(concern.section()) {
            continue;
        }
        let findings = match concern {
            Concern::Pki => config.pki().map(|settings| {
                or_error(
                    settings
                        .lint_findings(concern.tool(), OffsetDateTime::now_utc())
                        .map_err(Error::from),
                )
            }),
            Concern::Mongo => match config.mongo_setup(env, &MongoOptions::default()).await {
                Ok(setup) => Ok(setup.status(options.max_lag).await),
                Err(e) => Err(e),
            },
            Concern::Postgres => match config.postgres(&PostgresOverrides::default()) {
                Ok(settings) => Ok(or_error(config.postgres_verify(&settings, env).await)),
                Err(e) => Err(e),
            },
            Concern::Vault => match config.vault(false) {
                Ok(settings) => Ok(settings.health().await),
                Err(e) => Err(e),
            },
            Concern::Userdata => Ok(bundle_health(config, env, &options.bundle_dir)),
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

/// Findings for an error: unhealthy, `{"error": …}` with the whole cause
/// chain.
pub fn or_error(res: Result<Findings, Error>) -> Findings {
    res.unwrap_or_else(|e| {
        let message = chain(&e);
        Findings::new(
            false,
            json!({ "error": message }),
            format!("error: {message}\n"),
        )
    })
}

/// An error and its causes, `: `-separated (as `{:#}` of anyhow shows
/// them).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let shown = cause.to_string();
        if !text.ends_with(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        source = cause.source();
    }
    text
}

/// The bundle is fresh when rendering ha.toml again would change nothing.
fn bundle_health(config: &HaConfig, env: EnvLookup<'_>, dir: &std::path::Path) -> Findings {
    let shown = dir.display().to_string();
    match config.render_bundle(env, dir, true) {
        Ok(report) if report.actions.is_empty() => Findings::new(
            true,
            json!({"bundle": shown, "fresh": true}),
            format!("bundle {shown} matches ha.toml\n"),
        ),
        Ok(report) => Findings::new(
            false,
            json!({
                "bundle": shown,
                "fresh": false,
                "stale": report.actions.iter().map(|a| a.target.clone()).collect::<Vec<_>>(),
            }),
            format!(
                "bundle {shown} is stale: {} file(s) differ from ha.toml (run circle-ha apply)\n",
                report.actions.len()
            ),
        ),
        Err(e) => or_error(Err(e)),
    }
}

/// `circle-ha status` for Prometheus' node_exporter textfile collector
/// (the text exposition format, version 0.0.4): `circle_ha_healthy` (1 when
/// every concern is as `ha.toml` describes), `circle_ha_concern_healthy`
/// per concern, and `circle_ha_status_last_run_timestamp_seconds` (`now`,
/// seconds since the epoch) so that a check that stopped running shows.
pub fn status_metrics(checks: &[Health], now: u64) -> String {
    let gauge = |out: &mut String, name: &str, help: &str| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
    };
    let flag = |b: bool| u8::from(b);
    let mut out = String::new();
    gauge(
        &mut out,
        "circle_ha_healthy",
        "Whether every configured concern is as ha.toml describes (circle-ha status).",
    );
    out.push_str(&format!(
        "circle_ha_healthy {}\n",
        flag(checks.iter().all(|h| h.findings.healthy))
    ));
    gauge(
        &mut out,
        "circle_ha_concern_healthy",
        "Whether one concern (pki, mongo, postgres, vault, userdata) is as ha.toml describes.",
    );
    for h in checks {
        out.push_str(&format!(
            "circle_ha_concern_healthy{{concern=\"{}\"}} {}\n",
            h.concern.name(),
            flag(h.findings.healthy)
        ));
    }
    gauge(
        &mut out,
        "circle_ha_status_last_run_timestamp_seconds",
        "When circle-ha status last ran, in seconds since the epoch.",
    );
    out.push_str(&format!(
        "circle_ha_status_last_run_timestamp_seconds {now}\n"
    ));
    out
}

/// The combined findings of [`status`]: unhealthy when any concern is;
/// JSON `{healthy, concerns: [{concern, healthy, detail}]}`.
pub fn status_findings(checks: &[Health]) -> Findings {
    let healthy = checks.iter().all(|h| h.findings.healthy);
    let value = json!({
        "healthy": healthy,
        "concerns": checks.iter().map(|h| json!({
            "concern": h.concern.name(),
            "healthy": h.findings.healthy,
            "detail": h.findings.json,
        })).collect::<Vec<_>>(),
    });
    let mut text = String::new();
    for h in checks {
        let mark = if h.findings.healthy { "ok" } else { "FAIL" };
        text.push_str(&format!("{mark:<5} {}\n", h.concern.section().header()));
        for line in h.findings.text.lines() {
            text.push_str(&format!("      {line}\n"));
        }
    }
    let verdict = if healthy {
        "everything is as ha.toml describes".to_owned()
    } else {
        let failing: Vec<&str> = checks
            .iter()
            .filter(|h| !h.findings.healthy)
            .map(|h| h.concern.name())
            .collect();
        format!("unhealthy: {}", failing.join(", "))
    };
    text.push_str(&format!("circle-ha status: {verdict}\n"));
    Findings::new(healthy, value, text)
}
