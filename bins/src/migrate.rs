//! `vault-transit migrate`: the old Vault 0.7's storage (read by
//! `vault_transit::legacy`) and the unseal shares, into the new Vault
//! `[vault]` names.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::{Path, PathBuf};

use ha_config::{EnvLookup, HaConfig, VaultSettings};
use vault_transit::legacy::{Inspection, OldVault, Share};
use vault_transit::migrate::{MigrateSpec, Migrated};

use crate::exit::Exit;
use crate::output::{print, usage};

/// Where the old Vault's unseal shares come from.
#[derive(Clone, Debug)]
pub enum ShareSource {
    /// Files named `unseal-key-*` in a directory, each 0600.
    Dir(PathBuf),
    /// Standard input: one share per line, each holder in turn (prompted
    /// without echo on a terminal).
    Stdin,
    /// None (inspect without unsealing).
    None,
}

/// Reads the shares; `threshold` is how many to ask for on a terminal.
pub fn read_shares(source: &ShareSource, threshold: u32) -> anyhow::Result<Vec<Share>> {
    match source {
        ShareSource::None => Ok(Vec::new()),
        ShareSource::Dir(dir) => {
            use std::os::unix::fs::PermissionsExt as _;
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| {
                    usage(
                        "--shares",
                        format!("{}: cannot read it: {e}", dir.display()),
                    )
                })?
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("unseal-key-"))
                })
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(usage(
                    "--shares",
                    format!("{}: no unseal-key-N file in it", dir.display()),
                )
                .into());
            }
            let mut out = Vec::new();
            for path in files {
                let meta = std::fs::metadata(&path)?;
                if meta.permissions().mode() & 0o077 != 0 {
                    return Err(usage(
                        "--shares",
                        format!(
                            "{} may be read by others (mode {:o}): an unseal share must be 0600 \
                             (chmod 600 it, and ask who else could have read it)",
                            path.display(),
                            meta.permissions().mode() & 0o777
                        ),
                    )
                    .into());
                }
                let text = zeroize::Zeroizing::new(std::fs::read_to_string(&path)?);
                out.push(
                    Share::parse(&text, &path.display().to_string())
                        .map_err(|e| usage("--shares", e.to_string()))?,
                );
            }
            Ok(out)
        }
        ShareSource::Stdin => {
            let mut out = Vec::new();
            if std::io::stdin().is_terminal() {
                for n in 1..=threshold {
                    let prompt =
                        format!("Old Vault unseal share {n} of {threshold} (not echoed): ");
                    let text = zeroize::Zeroizing::new(rpassword::prompt_password(prompt)?);
                    if text.trim().is_empty() {
                        break;
                    }
                    out.push(
                        Share::parse(&text, &format!("share {n} from the terminal"))
                            .map_err(|e| usage("--stdin", e.to_string()))?,
                    );
                }
            } else {
                for (n, line) in std::io::stdin().lock().lines().enumerate() {
                    let line = zeroize::Zeroizing::new(line?);
                    if line.trim().is_empty() {
                        continue;
                    }
                    out.push(
                        Share::parse(&line, &format!("stdin line {}", n + 1))
                            .map_err(|e| usage("--stdin", e.to_string()))?,
                    );
                }
            }
            Ok(out)
        }
    }
}

fn open(old: &Path) -> anyhow::Result<OldVault> {
    if !old.is_dir() {
        return Err(usage("OLD_STORAGE", format!("{}: not a directory", old.display())).into());
    }
    Ok(OldVault::open(old)?)
}

/// `vault-transit migrate inspect`: the seal, the keys' paths and loose
/// secrets; with shares, the mounts and every transit key's facts.
pub fn inspect(old: &Path, source: &ShareSource) -> anyhow::Result<Inspection> {
    let vault = open(old)?;
    if matches!(source, ShareSource::None) {
        return Ok(vault.inspect()?);
    }
    let seal = vault.seal_config()?;
    let shares = read_shares(source, seal.secret_threshold)?;
    Ok(vault.unseal(&shares)?.inspect()?)
}

/// `vault-transit migrate restore`.
pub async fn restore(
    config: &HaConfig,
    settings: &VaultSettings,
    env: EnvLookup<'_>,
    old: &Path,
    source: &ShareSource,
    spec: &MigrateSpec,
    json: bool,
) -> anyhow::Result<Exit> {
    let vault = open(old)?;
    let seal = vault.seal_config()?;
    let mut warnings = settings.warnings.clone();
    let admin = config.vault_admin_token(settings, env, &mut warnings)?;
    let shares = read_shares(source, seal.secret_threshold)?;
    let unsealed = vault.unseal(&shares)?;
    drop(shares);
    let keys = unsealed.transit_keys()?;
    if keys.is_empty() {
        return Err(usage(
            "OLD_STORAGE",
            format!("{}: the old Vault holds no transit key", old.display()),
        )
        .into());
    }
    let client = settings.client()?;
    Ok(
        match vault_transit::migrate::migrate(&client, &admin, &keys, spec).await? {
            Migrated::Done(mut report) => {
                warnings.append(&mut report.warnings);
                report.warnings = warnings;
                print(json, &report)
            }
            Migrated::Refused(mut refused) => {
                warnings.append(&mut refused.report.warnings);
                refused.report.warnings = warnings;
                print(json, &refused)
            }
        },
    )
}

/// The database CircleCI's contexts service keeps its secrets in.
pub const CONTEXTS_DATABASE: &str = ha_config::CONTEXTS_DATABASE;
