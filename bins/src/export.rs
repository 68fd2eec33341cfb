//! `circle-export`: connection strings and `ha.toml` turned into
//! circle-export calls.

use std::path::PathBuf;

use circle_export::{PgClient, PgConn};
use ha_plan::Problems;
use secrecy::{ExposeSecret as _, SecretString};

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
