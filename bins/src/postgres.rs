//! `pg-provision`: the `[postgres]` section turned into pg-provision calls.

use std::net::IpAddr;
use std::path::PathBuf;

use pg_provision::{DatabaseSpec, Desired, Login, Server, SslMode};
use serde_json::json;

use crate::config::{ConfigFile, Problems, UsageError, seconds};
use crate::exit::Exit;
use crate::output::{Action, ChangeReport};
use crate::secret::SecretRef;

/// Command-line values that override `[postgres]`.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--host`.
    pub host: Option<String>,
    /// `--port`.
    pub port: Option<u16>,
    /// `--sslmode`.
    pub sslmode: Option<String>,
    /// `--ca-file`.
    pub ca_file: Option<PathBuf>,
}

/// `[postgres]`, validated; secrets still as references.
#[derive(Debug)]
pub struct Settings {
    /// Where the server is and how TLS is checked.
    pub server: Server,
    /// The admin role.
    pub admin_user: String,
    /// Its password.
    pub admin_password: Option<SecretRef>,
    /// The admin's maintenance database.
    pub admin_database: String,
    /// The app role.
    pub app_user: String,
    /// Its password.
    pub app_password: Option<SecretRef>,
    /// The databases.
    pub databases: Vec<DatabaseSpec>,
}

/// Validates `[postgres]` with `overrides` applied, reporting every problem
/// at once.
pub fn settings(file: &ConfigFile, overrides: &Overrides) -> Result<Settings, UsageError> {
    let Some(raw) = &file.raw.postgres else {
        return Err(UsageError::new(format!(
            "{}: there is no [postgres] section",
            file.path.display()
        )));
    };
    let mut problems = Problems::default();
    let host = overrides.host.clone().or_else(|| raw.host.clone());
    let host = match host {
        Some(host) if !host.trim().is_empty() => host,
        _ => {
            problems.push("[postgres].host is missing");
            String::new()
        }
    };
    let hostaddr = match &raw.hostaddr {
        None => None,
        Some(text) => match text.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                problems.push(format!("[postgres].hostaddr {text:?} is not an IP address"));
                None
            }
        },
    };
    let sslmode_text = overrides
        .sslmode
        .clone()
        .or_else(|| raw.sslmode.clone())
        .unwrap_or_else(|| "verify-full".to_owned());
    let sslmode = SslMode::parse(&sslmode_text).unwrap_or_else(|| {
        problems.push(format!(
            "[postgres].sslmode {sslmode_text:?} is not one of disable, require, verify-ca, \
             verify-full"
        ));
        SslMode::VerifyFull
    });
    let ca_file = overrides
        .ca_file
        .clone()
        .or_else(|| raw.ca_file.as_ref().map(|p| file.path_of(p)));
    let ca = match &ca_file {
        None => {
            if matches!(sslmode, SslMode::VerifyCa | SslMode::VerifyFull) {
                problems.push(format!(
                    "[postgres].sslmode = {:?} needs ca_file (the CA that signed the server's \
                     certificate); or choose sslmode = \"disable\" for a plain connection",
                    sslmode.as_str()
                ));
            }
            None
        }
        Some(path) => match std::fs::read(path) {
            Ok(pem) => match ha_tls::root_store(&pem, &path.display().to_string()) {
                Ok(_) => Some((pem, path.display().to_string())),
                Err(e) => {
                    problems.push(format!("[postgres].ca_file: {e}"));
                    None
                }
            },
            Err(e) => {
                problems.push(format!("[postgres].ca_file {}: {e}", path.display()));
                None
            }
        },
    };
    let admin_password =
        problems.secret_ref("[postgres].admin_password", raw.admin_password.as_deref());
    let app_password = problems.secret_ref("[postgres].app_password", raw.app_password.as_deref());
    let databases = match &raw.databases {
        None => pg_provision::default_databases(),
        Some(list) => list
            .iter()
            .map(|d| DatabaseSpec {
                name: d.name.clone(),
                extensions: d.extensions.clone(),
            })
            .collect(),
    };
    if databases.is_empty() {
        problems.push("[postgres].databases is empty; leave it out for the runbook's eight");
    }
    let settings = Settings {
        server: Server {
            host,
            hostaddr,
            port: overrides.port.or(raw.port).unwrap_or(5432),
            sslmode,
            ca,
            connect_timeout: seconds(raw.connect_timeout, 30),
        },
        admin_user: raw
            .admin_user
            .clone()
            .unwrap_or_else(|| "postgres".to_owned()),
        admin_password,
        admin_database: raw
            .admin_database
            .clone()
            .unwrap_or_else(|| "postgres".to_owned()),
        app_user: raw.app_user.clone().unwrap_or_else(|| "circle".to_owned()),
        app_password,
        databases,
    };
    problems.finish(settings)
}

/// Looks up environment variables for secret references.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn resolve(
    file: &ConfigFile,
    key: &str,
    reference: Option<&SecretRef>,
    env: EnvLookup<'_>,
    warnings: &mut Vec<String>,
) -> Result<secrecy::SecretString, UsageError> {
    let reference = reference.ok_or_else(|| UsageError::new(format!("{key} is missing")))?;
    let resolved = reference
        .resolve(env, &file.dir())
        .map_err(|why| UsageError::new(format!("{key} ({reference}): {why}")))?;
    warnings.extend(resolved.warning);
    Ok(resolved.value)
}

/// `pg-provision apply`: observe, plan, and (unless `dry_run`) apply.
pub async fn apply(
    file: &ConfigFile,
    settings: &Settings,
    env: EnvLookup<'_>,
    dry_run: bool,
) -> anyhow::Result<ChangeReport> {
    let mut warnings = Vec::new();
    let admin_password = resolve(
        file,
        "[postgres].admin_password",
        settings.admin_password.as_ref(),
        env,
        &mut warnings,
    );
    let app_password = resolve(
        file,
        "[postgres].app_password",
        settings.app_password.as_ref(),
        env,
        &mut warnings,
    );
    let (admin_password, app_password) = match (admin_password, app_password) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => {
            let problems = [a.err(), b.err()]
                .into_iter()
                .flatten()
                .flat_map(|e| e.problems)
                .collect();
            return Err(UsageError { problems }.into());
        }
    };
    let desired = Desired {
        app_role: settings.app_user.clone(),
        app_password,
        databases: settings.databases.clone(),
    };
    desired
        .validate()
        .map_err(|e| UsageError::new(e.to_string()))?;
    let admin = Login {
        user: settings.admin_user.clone(),
        password: admin_password,
    };

    let observed =
        pg_provision::observe(&settings.server, &admin, &settings.admin_database, &desired).await?;
    let plan = pg_provision::plan(&desired, &observed);
    let actions: Vec<Action> = plan
        .steps
        .iter()
        .map(|step| Action {
            kind: step.kind().to_owned(),
            target: step.target(),
            detail: step.to_string(),
        })
        .collect();
    if !plan.blockers.is_empty() {
        // Reported as an error, before anything is changed.
        return Err(pg_provision::Error::Blocked {
            server: plan.server.clone(),
            problems: plan.blockers.clone(),
        }
        .into());
    }
    if !dry_run {
        pg_provision::apply(
            &plan,
            &desired,
            &settings.server,
            &admin,
            &settings.admin_database,
        )
        .await?;
    }
    Ok(ChangeReport {
        tool: "pg-provision",
        dry_run,
        actions,
        warnings,
    })
}

/// `pg-provision verify`: log in as the app role and check every database.
/// Returns the JSON, the text and the exit code (3 when unhealthy).
pub async fn verify(
    file: &ConfigFile,
    settings: &Settings,
    env: EnvLookup<'_>,
) -> anyhow::Result<(serde_json::Value, String, Exit)> {
    let mut warnings = Vec::new();
    let app_password = resolve(
        file,
        "[postgres].app_password",
        settings.app_password.as_ref(),
        env,
        &mut warnings,
    )?;
    let app = Login {
        user: settings.app_user.clone(),
        password: app_password,
    };
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
    Ok((
        value,
        text,
        if healthy {
            Exit::Success
        } else {
            Exit::Unhealthy
        },
    ))
}
