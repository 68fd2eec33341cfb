//! `circle-ha status`: every configured concern's health in one report —
//! certificates (lint), the replica set (members, states, lag), the
//! PostgreSQL databases and extensions as the app role, Vault's seal state
//! and the app token, and whether the rendered Services bundle still
//! matches `ha.toml`. Unhealthy anywhere: exit 3.

use std::path::PathBuf;
use std::time::Duration;

use ha_config::{EnvLookup, HaConfig, MongoOptions, PostgresOverrides, VaultSettings};
use ha_plan::{Findings, Problems};
use serde_json::json;

use crate::apply::Concern;
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
    /// What its check found (its `detail` is the concern tool's `--json`,
    /// or the error).
    pub findings: Findings,
}

/// Every configured concern's health, in the runbook's order. Bad
/// configuration is [`Problems`] (exit 2); a concern that cannot be
/// reached is unhealthy, with the reason, and the others are still
/// checked.
pub async fn status(
    config: &HaConfig,
    env: EnvLookup<'_>,
    options: &Options,
) -> Result<Vec<Health>, Problems> {
    let mut problems = Problems::new();
    let mut checks = Vec::new();
    for concern in Concern::ALL {
        if !config.has(concern.section()) {
            continue;
        }
        let findings = match concern {
            Concern::Pki => config.pki().map(|settings| or_error(pki::lint(&settings))),
            Concern::Mongo => match config.mongo_setup(env, &MongoOptions::default()).await {
                Ok(setup) => Ok(mongo::status(&setup, options.max_lag).await),
                Err(e) => Err(e),
            },
            Concern::Postgres => match config.postgres(&PostgresOverrides::default()) {
                Ok(settings) => Ok(or_error(postgres::verify(config, &settings, env).await)),
                Err(e) => Err(e),
            },
            Concern::Vault => match config.vault(false) {
                Ok(settings) => Ok(vault_health(&settings).await),
                Err(e) => Err(e),
            },
            Concern::Userdata => Ok(bundle_health(config, env, &options.bundle_dir)),
        };
        match findings {
            Ok(findings) => checks.push(Health { concern, findings }),
            Err(e) => problems.extend(e),
        }
    }
    problems.finish(checks)
}

fn or_error(result: anyhow::Result<Findings>) -> Findings {
    result.unwrap_or_else(|e| {
        Findings::new(
            false,
            json!({"error": format!("{e:#}")}),
            format!("error: {e:#}\n"),
        )
    })
}

/// Seal state, then (unsealed, with an app token) the token's checks.
async fn vault_health(settings: &VaultSettings) -> Findings {
    let status = or_error(vault::status(settings).await);
    if !status.healthy {
        return status;
    }
    let verified = or_error(vault::verify(settings).await);
    Findings::new(
        verified.healthy,
        json!({"server": status.json, "app_token": verified.json}),
        format!("{}{}", status.text, verified.text),
    )
}

/// The bundle is fresh when rendering ha.toml again would change nothing.
fn bundle_health(config: &HaConfig, env: EnvLookup<'_>, dir: &std::path::Path) -> Findings {
    match services::render(config, env, dir, true) {
        Ok(report) if report.actions.is_empty() => Findings::new(
            true,
            json!({"bundle": dir.display().to_string(), "fresh": true}),
            format!("bundle {} matches ha.toml\n", dir.display()),
        ),
        Ok(report) => Findings::new(
            false,
            json!({
                "bundle": dir.display().to_string(),
                "fresh": false,
                "stale": report.actions.iter().map(|a| a.target.clone()).collect::<Vec<_>>(),
            }),
            format!(
                "bundle {} is stale: {} file(s) differ from ha.toml (run circle-ha apply)\n",
                dir.display(),
                report.actions.len()
            ),
        ),
        Err(e) => or_error(Err(e)),
    }
}

/// The combined findings (unhealthy when any concern is).
pub fn report(checks: &[Health]) -> Findings {
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
        text.push_str(&format!(
            "{:<5} {}\n",
            if h.findings.healthy { "ok" } else { "FAIL" },
            h.concern.section().header()
        ));
        for line in h.findings.text.lines() {
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
                .filter(|h| !h.findings.healthy)
                .map(|h| h.concern.name())
                .collect();
            format!("unhealthy: {}", failing.join(", "))
        }
    ));
    Findings::new(healthy, value, text)
}
