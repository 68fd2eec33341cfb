//! `circle-export`: connection strings and `ha.toml` turned into
//! circle-export calls.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use circle_export::{Layout, PgClient, PgConn};
use mongodb::Client;
use mongodb::options::{ClientOptions, Credential, ServerAddress, Tls, TlsOptions};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

use crate::config::{ConfigFile, UsageError};
use crate::exit::Exit;
use crate::postgres::EnvLookup;
use crate::secret::SecretRef;

/// A connection-string flag: a secret reference (`env:NAME`,
/// `file:PATH`), or a literal URI that holds no password.
pub fn resolve_uri(
    flag: &str,
    value: &str,
    env: EnvLookup<'_>,
    base: &Path,
    warnings: &mut Vec<String>,
) -> Result<String, UsageError> {
    if value.starts_with("env:") || value.starts_with("file:") {
        let reference =
            SecretRef::parse(value).map_err(|e| UsageError::new(format!("{flag} {e}")))?;
        let resolved = reference
            .resolve(env, base)
            .map_err(|e| UsageError::new(format!("{flag} {reference}: {e}")))?;
        warnings.extend(resolved.warning);
        return Ok(resolved.value.expose_secret().trim().to_owned());
    }
    let authority = value
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or_default())
        .unwrap_or_default();
    let has_password = authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    if has_password {
        return Err(UsageError::new(format!(
            "{flag}: a URI with a password must not be given on the command line (other users \
             can read it in the process list); put it in an environment variable or a 0600 file \
             and pass {flag} env:NAME or {flag} file:PATH"
        )));
    }
    Ok(value.to_owned())
}

/// A MongoDB client from a URI, and whether it talks to a replica set
/// (then inserts use `w: majority`).
pub async fn mongo_from_uri(uri: &str) -> anyhow::Result<(Client, bool)> {
    let mut options = ClientOptions::parse(uri).await.map_err(|e| {
        // The driver's message may quote the URI; do not pass it on.
        let kind = match *e.kind {
            mongodb::error::ErrorKind::InvalidArgument { .. } => "it is not a valid MongoDB URI",
            _ => "it could not be resolved",
        };
        UsageError::new(format!("--mongo-uri: {kind}"))
    })?;
    options.app_name = Some("circle-export".to_owned());
    if options.server_selection_timeout.is_none() {
        options.server_selection_timeout = Some(Duration::from_secs(30));
    }
    let replica_set = options.repl_set_name.is_some();
    Ok((Client::with_options(options)?, replica_set))
}

/// Restore targets: a MongoDB client (and whether it is a replica set)
/// and a PostgreSQL connection, each if configured.
#[derive(Debug, Default)]
pub struct Targets {
    /// MongoDB and whether inserts use `w: majority`.
    pub mongo: Option<(Client, bool)>,
    /// PostgreSQL.
    pub postgres: Option<PgConn>,
}

/// The restore targets `ha.toml` describes: the `[mongo]` replica set as
/// circle-admin, and `[postgres]` as the app role (which owns the
/// databases, so what it restores belongs to it).
pub fn targets_from_config(
    file: &ConfigFile,
    env: EnvLookup<'_>,
    warnings: &mut Vec<String>,
) -> Result<Targets, UsageError> {
    let mut problems = crate::config::Problems::default();
    let mut mongo = None;
    if let Some(raw) = &file.raw.mongo {
        let hosts: Vec<ServerAddress> = raw
            .members
            .iter()
            .filter_map(|m| ServerAddress::parse(&m.host).ok())
            .collect();
        let admin = raw.users.as_ref().and_then(|u| u.admin.as_ref());
        let reference = problems.secret_ref(
            "[mongo].users.admin.password",
            admin.and_then(|a| a.password.as_deref()),
        );
        let password = reference.and_then(|r| match r.resolve(env, &file.dir()) {
            Ok(resolved) => {
                warnings.extend(resolved.warning);
                Some(resolved.value)
            }
            Err(e) => {
                problems.push(format!("[mongo].users.admin.password: {e}"));
                None
            }
        });
        if let Some(password) = password {
            let mut options = ClientOptions::builder()
                .hosts(hosts)
                .repl_set_name(raw.replica_set.clone())
                .app_name("circle-export".to_owned())
                .server_selection_timeout(Duration::from_secs(60))
                .build();
            if let Some(tls) = &raw.tls {
                options.tls = Some(Tls::Enabled(
                    TlsOptions::builder()
                        .ca_file_path(tls.ca_file.as_ref().map(|p| file.path_of(p)))
                        .cert_key_file_path(
                            tls.certificate_key_file.as_ref().map(|p| file.path_of(p)),
                        )
                        .build(),
                ));
            }
            options.credential = Some(
                Credential::builder()
                    .username(
                        admin
                            .and_then(|a| a.name.clone())
                            .unwrap_or_else(|| "circle-admin".to_owned()),
                    )
                    .password(password.expose_secret().to_owned())
                    .source("admin".to_owned())
                    .build(),
            );
            match Client::with_options(options) {
                Ok(client) => mongo = Some((client, true)),
                Err(e) => problems.push(format!("[mongo]: {e}")),
            }
        }
    }
    let mut pg = None;
    if let Some(raw) = &file.raw.postgres {
        let reference = problems.secret_ref("[postgres].app_password", raw.app_password.as_deref());
        if let Some(reference) = reference {
            match reference.resolve(env, &file.dir()) {
                Ok(resolved) => {
                    warnings.extend(resolved.warning);
                    let mut params = vec![(
                        "sslmode".to_owned(),
                        raw.sslmode
                            .clone()
                            .unwrap_or_else(|| "verify-full".to_owned()),
                    )];
                    if let Some(ca) = &raw.ca_file {
                        params.push((
                            "sslrootcert".to_owned(),
                            file.path_of(ca).display().to_string(),
                        ));
                    }
                    if let Some(addr) = &raw.hostaddr {
                        params.push(("hostaddr".to_owned(), addr.clone()));
                    }
                    pg = Some(PgConn {
                        host: raw.host.clone().unwrap_or_default(),
                        port: raw.port.unwrap_or(5432),
                        user: raw.app_user.clone().unwrap_or_else(|| "circle".to_owned()),
                        password: Some(resolved.value),
                        dbname: "postgres".to_owned(),
                        params,
                    });
                }
                Err(e) => problems.push(format!("[postgres].app_password: {e}")),
            }
        }
    }
    problems.finish(Targets {
        mongo,
        postgres: pg,
    })
}

/// The PostgreSQL client programs: `--pg-bin-dir`, else PATH, else the
/// newest `/usr/lib/postgresql/<N>/bin` (Debian's layout, where `pg_dump`
/// of the newest major dumps every older server).
pub fn pg_bin_dir(flag: Option<PathBuf>) -> Option<PathBuf> {
    if flag.is_some() {
        return flag;
    }
    let on_path = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join("pg_dump").is_file()));
    if on_path {
        return None;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_dump").is_file().then_some((n, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// A PostgreSQL client for `conn`.
pub fn pg_client(conn: PgConn, bin_dir: Option<PathBuf>) -> anyhow::Result<PgClient> {
    Ok(PgClient::new(conn, bin_dir)?)
}

/// The `export` result as JSON and text.
pub fn export_report(report: &circle_export::ExportReport, started: Instant) -> (Value, String) {
    let m = &report.manifest;
    let documents: u64 = m.mongo.iter().map(|c| c.documents).sum();
    let rows: u64 = m
        .postgres
        .iter()
        .flat_map(|d| d.tables.iter().map(|t| t.rows))
        .sum();
    let seconds = started.elapsed().as_secs_f64();
    let value = json!({
        "changed": 1,
        "actions": [{"kind": "write-archive", "target": report.archive.display().to_string()}],
        "archive": report.archive.display().to_string(),
        "archive_bytes": report.archive_bytes,
        "data_bytes": report.data_bytes,
        "collections": m.mongo.len(),
        "documents": documents,
        "databases": m.postgres.len(),
        "rows": rows,
        "files": m.files.len(),
        "seconds": seconds,
    });
    let text = format!(
        "circle-export: wrote {} — {} collections ({documents} documents), {} PostgreSQL databases \
         ({rows} rows), {} files; {} of data in {} ({:.1}s)\n",
        report.archive.display(),
        m.mongo.len(),
        m.postgres.len(),
        m.files.len(),
        circle_export::export::human_bytes(report.data_bytes),
        circle_export::export::human_bytes(report.archive_bytes),
        seconds
    );
    (value, text)
}

/// `export --dry-run`: JSON and text of what would be exported.
pub fn plan_report(out: &Path, plan: &circle_export::ExportPlan) -> (Value, String) {
    let mut actions: Vec<Value> = plan
        .collections
        .iter()
        .map(|(db, c)| json!({"kind": "export-collection", "target": format!("mongo {db}.{c}")}))
        .chain(
            plan.databases
                .iter()
                .map(|db| json!({"kind": "export-database", "target": format!("postgres {db}")})),
        )
        .collect();
    actions.push(json!({"kind": "write-archive", "target": out.display().to_string()}));
    let value = json!({
        "changed": 0,
        "dry_run": true,
        "planned": actions.len(),
        "actions": actions,
        "collections": plan.collections.len(),
        "databases": plan.databases.len(),
        "files": plan.files,
        "estimated_bytes": plan.estimated_bytes,
    });
    let mut text = String::new();
    for (db, c) in &plan.collections {
        text.push_str(&format!("would export: mongo {db}.{c}\n"));
    }
    for db in &plan.databases {
        text.push_str(&format!("would export: postgres {db}\n"));
    }
    text.push_str(&format!(
        "circle-export: would write {} — {} collections, {} PostgreSQL databases, {} other \
         files, about {} of data (--dry-run: nothing written)\n",
        out.display(),
        plan.collections.len(),
        plan.databases.len(),
        plan.files,
        circle_export::export::human_bytes(plan.estimated_bytes)
    ));
    (value, text)
}

/// `verify`: JSON, text and exit code (3 when damaged).
pub fn verify_report(path: &Path, inspection: &circle_export::Inspection) -> (Value, String, Exit) {
    let layout = match inspection.layout {
        Layout::Ours => "circle-export",
        Layout::Vendor => "circle-database-export",
    };
    let m = &inspection.manifest;
    let ok = inspection.problems.is_empty();
    let value = json!({
        "ok": ok,
        "archive": path.display().to_string(),
        "layout": layout,
        "files": m.files.len(),
        "collections": m.mongo.len(),
        "databases": m.postgres.len(),
        "problems": inspection.problems,
    });
    let mut text = String::new();
    for problem in &inspection.problems {
        text.push_str(&format!("problem: {problem}\n"));
    }
    if ok {
        text.push_str(&format!(
            "circle-export: {} is intact ({layout} archive: {} files, {} collections, {} \
             PostgreSQL databases{})\n",
            path.display(),
            m.files.len(),
            m.mongo.len(),
            m.postgres.len(),
            if inspection.layout == Layout::Vendor {
                "; it has no checksums, so only its structure and counts were checked"
            } else {
                "; every checksum and count matches"
            }
        ));
    } else {
        text.push_str(&format!(
            "circle-export: {} is damaged ({} problem(s))\n",
            path.display(),
            inspection.problems.len()
        ));
    }
    (
        value,
        text,
        if ok { Exit::Success } else { Exit::Unhealthy },
    )
}

/// `restore`: JSON, text and exit code (3 when counts differ).
pub fn restore_report(report: &circle_export::RestoreReport) -> (Value, String, Exit) {
    let actions: Vec<Value> = report
        .restored
        .iter()
        .map(|target| {
            let kind = if target.starts_with("mongo ") {
                "restore-collection"
            } else {
                "restore-database"
            };
            json!({"kind": kind, "target": target})
        })
        .collect();
    let planned = actions.len();
    let value = json!({
        "changed": if report.dry_run { 0 } else { planned },
        "dry_run": report.dry_run,
        "planned": planned,
        "actions": actions,
        "documents": report.documents,
        "mismatches": report.mismatches,
        "skipped": report.skipped,
    });
    let mut text = String::new();
    for mismatch in &report.mismatches {
        text.push_str(&format!("mismatch: {mismatch}\n"));
    }
    text.push_str(&if report.dry_run {
        format!(
            "circle-export: the archive is intact and the targets are ready; would restore {} \
             collections and {} databases (--dry-run)\n",
            report.collections, report.databases
        )
    } else if report.restored.is_empty() {
        "circle-export: nothing to do: the targets already hold this archive's data (same \
         counts); --drop restores it again (changed: 0)\n"
            .to_owned()
    } else if report.mismatches.is_empty() {
        format!(
            "circle-export: restored {} collections ({} documents) and {} databases; every count \
             matches the archive\n",
            report.collections, report.documents, report.databases
        )
    } else {
        format!(
            "circle-export: restored, but {} count(s) differ from the archive\n",
            report.mismatches.len()
        )
    });
    let exit = if report.mismatches.is_empty() {
        Exit::Success
    } else {
        Exit::Unhealthy
    };
    (value, text, exit)
}
