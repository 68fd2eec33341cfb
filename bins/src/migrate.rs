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
            Ok(Share::read_dir(dir).map_err(|e| usage("--shares", e.to_string()))?)
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

/// The old storage, and the temporary directory it was unpacked into when
/// it came from an export archive (removed when this is dropped).
pub struct Opened {
    /// The old Vault.
    pub vault: OldVault,
    _unpacked: Option<tempfile::TempDir>,
}

/// How to open a sealed export archive: `--identity`/`--passphrase`.
#[derive(Clone, Debug, Default)]
pub struct ArchiveKey {
    /// `--identity REF`.
    pub identity: Option<String>,
    /// `--passphrase REF`.
    pub passphrase: Option<String>,
}

/// The old Vault as the command line names it: OLD, the key to a sealed
/// archive, and where the shares come from.
#[derive(Clone, Debug)]
pub struct Old {
    /// The storage directory or an export archive.
    pub path: PathBuf,
    /// `--identity`/`--passphrase`.
    pub key: ArchiveKey,
    /// `--shares`/`--stdin`.
    pub shares: ShareSource,
}

use circle_export::verify::VAULT_DATA;

/// Opens OLD: the old Vault's storage directory, or an export archive
/// (`circle-export export --vault-data`) whose `vault-data/` is unpacked
/// into a 0700 temporary directory after the whole archive was read and
/// found intact (a damaged or changed archive: exit 3, nothing unpacked is
/// used).
pub fn open(old: &Path, key: &ArchiveKey, warnings: &mut Vec<String>) -> anyhow::Result<Opened> {
    if old.is_dir() {
        if key.identity.is_some() || key.passphrase.is_some() {
            return Err(usage(
                "--identity/--passphrase",
                format!("{} is a directory, not a sealed archive", old.display()),
            )
            .into());
        }
        return Ok(Opened {
            vault: OldVault::open(old)?,
            _unpacked: None,
        });
    }
    if !old.is_file() {
        return Err(usage(
            "OLD",
            format!(
                "{}: neither the old Vault's storage directory nor an export archive",
                old.display()
            ),
        )
        .into());
    }
    let unsealing =
        crate::export::unsealing(key.identity.as_deref(), key.passphrase.as_deref(), warnings)?;
    let source = circle_export::archive::Source::open(old, unsealing.as_ref())
        .map_err(crate::export::name_key_flags)?;
    let unpacked = tempfile::Builder::new()
        .prefix("vault-transit-old-")
        .tempdir()?;
    let found =
        circle_export::vault_data(&source, unpacked.path(), &circle_export::Meter::default())
            .map_err(|e| match e {
                circle_export::Error::Damaged(problems) => {
                    anyhow::Error::from(vault_transit::Error::OldStorage {
                        path: old.to_owned(),
                        detail: format!(
                            "the archive is damaged or was changed, so nothing in it is used: {}",
                            problems.join("; ")
                        ),
                    })
                }
                other => other.into(),
            })?;
    let Some(dir) = found else {
        return Err(usage(
            "OLD",
            format!(
                "{}: the archive holds no {VAULT_DATA}/ (export with --vault-data /vault/file, \
                 or give the storage directory itself)",
                old.display()
            ),
        )
        .into());
    };
    Ok(Opened {
        vault: OldVault::open(&dir).map_err(|e| match e {
            vault_transit::Error::OldStorage { detail, .. } => vault_transit::Error::OldStorage {
                path: old.join(VAULT_DATA),
                detail,
            },
            other => other,
        })?,
        _unpacked: Some(unpacked),
    })
}

/// `vault-transit migrate inspect`: the seal, the keys' paths and loose
/// secrets; with shares, the mounts and every transit key's facts.
pub fn inspect(old: &Old) -> anyhow::Result<Inspection> {
    let source = &old.shares;
    let mut warnings = Vec::new();
    let opened = open(&old.path, &old.key, &mut warnings)?;
    crate::output::warn(&warnings);
    let vault = &opened.vault;
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
    old: &Old,
    spec: &MigrateSpec,
    json: bool,
) -> anyhow::Result<Exit> {
    let source = &old.shares;
    let mut warnings = settings.warnings.clone();
    let opened = open(&old.path, &old.key, &mut warnings)?;
    let vault = &opened.vault;
    let seal = vault.seal_config()?;
    let admin = config.vault_admin_token(settings, env, &mut warnings)?;
    let shares = read_shares(source, seal.secret_threshold)?;
    let unsealed = vault.unseal(&shares)?;
    drop(shares);
    let keys = unsealed.transit_keys()?;
    if keys.is_empty() {
        return Err(usage(
            "OLD",
            format!("{}: the old Vault holds no transit key", old.path.display()),
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
