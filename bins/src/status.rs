//! `circle-ha status`: every configured concern's health in one report —
//! certificates (lint), the replica set (members, states, lag), the
//! PostgreSQL databases and extensions as the app role, Vault's seal state
//! and the app token, and whether the rendered Services bundle still
//! matches `ha.toml`. Unhealthy anywhere: exit 3.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::apply::Concern;
use crate::config::{ConfigFile, UsageError};
use crate::exit::Exit;
use crate::postgres::EnvLookup;
use crate::{mongo, pki, postgres, services, vault};

/// How to run `status`.
#[derive(Clone, Debug)]
pub struct Options {
    /// Seconds behind the primary above which a member is unhealthy.
    pub max_lag: Duration,
    /// Where `apply` rendered the Services bundle.
    pub bundle_dir: PathBuf,
}

/// One concern's health.
#[derive(Debug)]
pub struct Health {
    /// Which concern.
    pub concern: Concern,
    /// Whether it is as ha.toml describes.
    pub healthy: bool,
    /// Its own report (the concern tool's `--json`), or the error.
    pub detail: Value,
    /// Its own text.
    pub text: String,
}

/// Every configured concern's health, in the runbook's order. Bad
/// configuration is a [`UsageError`] (exit 2); a concern that cannot be
/// reached is unhealthy, with the reason, and the others are still
/// checked.
pub async fn status(
    file: &ConfigFile,
    env: EnvLookup<'_>,
    options: &Options,
) -> Result<Vec<Health>, UsageError> {
    let mut problems = Vec::new();
    let mut checks = Vec::new();
    for concern in Concern::ALL {
        let health = match concern {
            Concern::Pki if file.raw.pki.is_some() => match pki::settings(file) {
                Ok(settings) => Some(from_result(concern, pki::lint(&settings))),
                Err(e) => {
                    problems.extend(e.problems);
                    None
                }
            },
            Concern::Mongo if file.raw.mongo.is_some() => {
                match mongo::setup(file, env, &mongo::Options::default()).await {
                    Ok(setup) => {
                        let (value, text, exit) = mongo::status(&setup, options.max_lag).await;
                        Some(health(concern, value, text, exit))
                    }
                    Err(e) => {
                        problems.extend(e.problems);
                        None
                    }
                }
            }
            Concern::Postgres if file.raw.postgres.is_some() => {
                match postgres::settings(file, &postgres::Overrides::default()) {
                    Ok(settings) => Some(from_result(
                        concern,
                        postgres::verify(file, &settings, env).await,
                    )),
                    Err(e) => {
                        problems.extend(e.problems);
                        None
                    }
                }
            }
            Concern::Vault if file.raw.vault.is_some() => match vault::settings(file, false) {
                Ok(settings) => Some(vault_health(&settings).await),
                Err(e) => {
                    problems.extend(e.problems);
                    None
                }
            },
            Concern::Userdata if file.raw.services.is_some() => {
                Some(bundle_health(file, env, &options.bundle_dir))
            }
            _ => None,
        };
        checks.extend(health);
    }
    if problems.is_empty() {
        Ok(checks)
    } else {
        Err(UsageError { problems })
    }
}

fn health(concern: Concern, detail: Value, text: String, exit: Exit) -> Health {
    Health {
        concern,
        healthy: matches!(exit, Exit::Success),
        detail,
        text,
    }
}

fn from_result(concern: Concern, result: anyhow::Result<(Value, String, Exit)>) -> Health {
    match result {
        Ok((value, text, exit)) => health(concern, value, text, exit),
        Err(e) => Health {
            concern,
            healthy: false,
            detail: json!({"error": format!("{e:#}")}),
            text: format!("error: {e:#}\n"),
        },
    }
}

/// Seal state, then (unsealed, with an app token) the token's checks.
async fn vault_health(settings: &vault::Settings) -> Health {
    let status = from_result(Concern::Vault, vault::status(settings).await);
    if !status.healthy {
        return status;
    }
    let verified = from_result(Concern::Vault, vault::verify(settings).await);
    Health {
        concern: Concern::Vault,
        healthy: verified.healthy,
        detail: json!({"server": status.detail, "app_token": verified.detail}),
        text: format!("{}{}", status.text, verified.text),
    }
}

/// The bundle is fresh when rendering ha.toml again would change nothing.
fn bundle_health(file: &ConfigFile, env: EnvLookup<'_>, dir: &std::path::Path) -> Health {
    match services::render(file, env, dir, true) {
        Ok(report) if report.actions.is_empty() => Health {
            concern: Concern::Userdata,
            healthy: true,
            detail: json!({"bundle": dir.display().to_string(), "fresh": true}),
            text: format!("bundle {} matches ha.toml\n", dir.display()),
        },
        Ok(report) => Health {
            concern: Concern::Userdata,
            healthy: false,
            detail: json!({
                "bundle": dir.display().to_string(),
                "fresh": false,
                "stale": report.actions.iter().map(|a| a.target.clone()).collect::<Vec<_>>(),
            }),
            text: format!(
                "bundle {} is stale: {} file(s) differ from ha.toml (run circle-ha apply)\n",
                dir.display(),
                report.actions.len()
            ),
        },
        Err(e) => Health {
            concern: Concern::Userdata,
            healthy: false,
            detail: json!({"error": format!("{e:#}")}),
            text: format!("error: {e:#}\n"),
        },
    }
}

/// The combined JSON, text and exit code (3 when anything is unhealthy).
pub fn report(checks: &[Health]) -> (Value, String, Exit) {
    let healthy = checks.iter().all(|h| h.healthy);
    let value = json!({
        "healthy": healthy,
        "concerns": checks.iter().map(|h| json!({
            "concern": h.concern.name(),
            "healthy": h.healthy,
            "detail": h.detail,
        })).collect::<Vec<_>>(),
    });
    let mut text = String::new();
    for h in checks {
        text.push_str(&format!(
            "{:<5} {}\n",
            if h.healthy { "ok" } else { "FAIL" },
            h.concern.section()
        ));
        for line in h.text.lines() {
            text.push_str(&format!("      {line}\n"));
        }
    }
    text.push_str(&format!(
        "circle-ha status: {}\n",
        if healthy {
            "everything is as ha.toml describes".to_owned()
        } else {
            let failing: Vec<&str> = checks
                .iter()
                .filter(|h| !h.healthy)
                .map(|h| h.concern.name())
                .collect();
            format!("unhealthy: {}", failing.join(", "))
        }
    ));
    let exit = if healthy {
        Exit::Success
    } else {
        Exit::Unhealthy
    };
    (value, text, exit)
}
