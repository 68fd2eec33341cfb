//! `circle-export`: connection strings and `ha.toml` turned into
//! circle-export calls.

use std::path::{Path, PathBuf};
use std::time::Instant;

use circle_export::{PgClient, PgConn};
use ha_plan::Problems;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};

use crate::output::usage;

/// A PostgreSQL connection from a `--pg-uri` value: verified TLS
/// (`verify-full`) unless the URI says otherwise; `sslmode=require` adds a
/// warning to `warnings`.
pub fn pg_conn(
    flag: &str,
    uri: &SecretString,
    warnings: &mut Vec<String>,
) -> Result<PgConn, Problems> {
    let conn = PgConn::parse_uri(uri.expose_secret()).map_err(|e| usage(flag, format!(": {e}")))?;
    warnings.extend(conn.tls_warning());
    Ok(conn)
}

/// The PostgreSQL client programs: `--pg-bin-dir`, else
/// [`PgClient::find_bin_dir`] along this process's `PATH`.
pub fn pg_bin_dir(flag: Option<PathBuf>) -> Option<PathBuf> {
    let path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect())
        .unwrap_or_default();
    flag.or_else(|| PgClient::find_bin_dir(&path))
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
        "warnings": report.left_out,
    });
    let mut text: String = report
        .left_out
        .iter()
        .map(|w| format!("circle-export: warning: {w}\n"))
        .collect();
    text += &format!(
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
