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

/// A secret flag's value, read as [`ha_config::secret_from_flag`] reads
/// it, from this process's environment and working directory.
fn secret_flag(
    flag: &str,
    value: &str,
    warnings: &mut Vec<String>,
) -> Result<SecretString, Problems> {
    ha_config::secret_from_flag(
        flag,
        value,
        &crate::cli::env_var,
        std::path::Path::new("."),
        warnings,
    )
}

/// How `export`/`transfer` seal the archive `out`: to the `--encrypt-to`
/// recipients (`age1…`), or with the `--passphrase` reference; `None`
/// without either. `out`'s name must choose a compression and say
/// whether it is sealed (`.age`): a usage error otherwise, before anything
/// is touched.
pub fn sealing(
    out: &std::path::Path,
    encrypt_to: &[String],
    passphrase: Option<&str>,
    warnings: &mut Vec<String>,
) -> Result<Option<circle_export::seal::Sealing>, Problems> {
    use circle_export::seal::{Recipient, Sealing};
    circle_export::archive::Compression::from_path(out)
        .and_then(|_| {
            circle_export::archive::check_sealed_name(
                out,
                passphrase.is_some() || !encrypt_to.is_empty(),
            )
        })
        .map_err(|e| usage("--out", format!(": {e}")))?;
    if let Some(reference) = passphrase {
        return Ok(Some(Sealing::Passphrase(secret_flag(
            "--passphrase",
            reference,
            warnings,
        )?)));
    }
    if encrypt_to.is_empty() {
        return Ok(None);
    }
    let recipients = encrypt_to
        .iter()
        .map(|r| r.trim().parse::<Recipient>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| usage("--encrypt-to", format!(": {e}")))?;
    Ok(Some(Sealing::Recipients(recipients)))
}

/// How `restore`/`verify` open a sealed archive: the identity file
/// `--identity` names (`AGE-SECRET-KEY-1…` lines, as `age-keygen`
/// writes them), or the `--passphrase` reference; `None` without either.
pub fn unsealing(
    identity: Option<&str>,
    passphrase: Option<&str>,
    warnings: &mut Vec<String>,
) -> Result<Option<circle_export::seal::Unsealing>, Problems> {
    use circle_export::seal::{Identity, Unsealing};
    if let Some(reference) = passphrase {
        return Ok(Some(Unsealing::Passphrase(secret_flag(
            "--passphrase",
            reference,
            warnings,
        )?)));
    }
    let Some(reference) = identity else {
        return Ok(None);
    };
    let text = secret_flag("--identity", reference, warnings)?;
    let identities = Identity::parse_file(text.expose_secret())
        .map_err(|e| usage("--identity", format!(": {reference}: {e}")))?;
    Ok(Some(Unsealing::Identities(identities)))
}

/// A sealed archive given without a key, said with the flags that give one
/// (a usage error, exit 2); any other error unchanged.
pub fn name_key_flags(error: circle_export::Error) -> anyhow::Error {
    if error.is_key_needed() {
        usage(
            "--identity",
            format!(
                ": {error}: give --identity file:PATH (an age-keygen identity file) or \
                 --passphrase env:NAME"
            ),
        )
        .into()
    } else {
        error.into()
    }
}
