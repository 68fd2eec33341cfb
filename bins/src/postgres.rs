//! `pg-provision`: `[postgres]` (read by ha-config) turned into
//! pg-provision calls.

use ha_config::{EnvLookup, HaConfig, PostgresSettings};
use ha_plan::{Findings, Report};
use pg_provision::Desired;
use serde_json::json;

/// `pg-provision apply`: observe, plan, and (unless `dry_run`) apply.
pub async fn apply(
    config: &HaConfig,
    settings: &PostgresSettings,
    env: EnvLookup<'_>,
    dry_run: bool,
) -> anyhow::Result<Report> {
    let mut warnings = settings.warnings.clone();
    let (admin, app) = config.postgres_logins(settings, env, &mut warnings)?;
    let desired = Desired {
        app_role: app.user,
        app_password: app.password,
        databases: settings.databases.clone(),
    };
    let plan = pg_provision::provision(
        &settings.server,
        &admin,
        &settings.admin_database,
        &desired,
        dry_run,
    )
    .await?;
    warnings.extend(plan.warnings.iter().cloned());
    Ok(Report::from_changes(
        "pg-provision",
        dry_run,
        &plan.steps,
        warnings,
    ))
}

/// `pg-provision verify`: log in as the app role and check every database.
pub async fn verify(
    config: &HaConfig,
    settings: &PostgresSettings,
    env: EnvLookup<'_>,
) -> anyhow::Result<Findings> {
    let mut warnings = settings.warnings.clone();
    let app = config.postgres_app_login(settings, env, &mut warnings)?;
    let report = pg_provision::verify(&settings.server, &app, &settings.databases).await;
    let mut text = String::new();
    for warning in &warnings {
        text.push_str(&format!("warning: {warning}\n"));
    }
    for database in &report.databases {
        if database.problems.is_empty() {
            text.push_str(&format!("ok    {}\n", database.database));
        } else {
            for problem in &database.problems {
                text.push_str(&format!("FAIL  {}: {problem}\n", database.database));
            }
        }
    }
    let healthy = report.is_healthy();
    text.push_str(&format!(
        "pg-provision: {} as {} on {}: {}\n",
        if healthy {
            "verified"
        } else {
            "problems found"
        },
        app.user,
        report.server,
        if healthy {
            format!(
                "all {} databases reachable with their extensions",
                report.databases.len()
            )
        } else {
            format!("{} problem(s)", report.problems().len())
        }
    ));
    let value = json!({
        "healthy": healthy,
        "server": report.server,
        "user": app.user,
        "databases": report.databases.iter().map(|d| json!({
            "name": d.database,
            "ok": d.problems.is_empty(),
            "problems": d.problems,
        })).collect::<Vec<_>>(),
        "warnings": warnings,
    });
    Ok(Findings::new(healthy, value, text))
}
