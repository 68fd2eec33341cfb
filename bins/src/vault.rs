//! `vault-transit`: `[vault]` (read by ha-config) turned into
//! vault-transit calls.

use std::path::{Path, PathBuf};

use ha_config::{EnvLookup, HaConfig, VaultSettings};
use secrecy::SecretString;

use crate::output::usage;

/// `vault-transit init`: the key shares and root token into 0600 files.
pub async fn init(settings: &VaultSettings) -> anyhow::Result<vault_transit::InitReport> {
    let client = settings.client()?;
    let done = match vault_transit::init_to_files(&client, &settings.init, &settings.keys).await {
        Ok(done) => done,
        Err(vault_transit::Error::KeysNotSaved {
            address,
            path,
            keys,
            source,
        }) => {
            // The only copy of the keys is in memory: a terminal may show
            // them, a log never; else a 0600 file next to the key
            // directory, here, or in the temporary directory.
            use std::io::IsTerminal as _;
            let mut dirs: Vec<PathBuf> = settings
                .keys
                .dir()
                .parent()
                .map(Path::to_owned)
                .into_iter()
                .collect();
            dirs.push(PathBuf::from("."));
            dirs.push(std::env::temp_dir());
            let rescued = rescue_keys(&keys, std::io::stderr().is_terminal(), &dirs);
            let error = anyhow::Error::from(vault_transit::Error::KeysNotSaved {
                address,
                path,
                keys,
                source,
            });
            return Err(match rescued {
                Rescue::Shown => error.context("the key shares and root token are shown above"),
                Rescue::File(file) => error.context(format!(
                    "the key shares and root token were written to {} (0600): move them to \
                     their holders and delete it",
                    file.display()
                )),
                Rescue::Lost => error.context(
                    "the key shares and root token could be neither shown (no terminal) nor \
                     written anywhere: this Vault cannot be unsealed; wipe its storage and run \
                     init again",
                ),
            });
        }
        Err(e) => return Err(e.into()),
    };
    Ok(vault_transit::InitReport::new(
        &settings.address,
        settings.init.secret_shares,
        settings.init.secret_threshold,
        &done,
    ))
}

/// Where the only copy of unsaved init output went.
#[derive(Debug, PartialEq, Eq)]
pub enum Rescue {
    /// Shown on the terminal (standard error is one).
    Shown,
    /// Written to this 0600 file (standard error is not a terminal, e.g. a
    /// CI log, where secrets must never go).
    File(PathBuf),
    /// Nowhere: no terminal and no writable place.
    Lost,
}

/// The last chance to keep init's output when its key files could not be
/// written: shown on a terminal, else written 0600 to the first of
/// `fallback_dirs` that takes it. The text never reaches a log.
pub fn rescue_keys(
    response: &vault_transit::InitResponse,
    terminal: bool,
    fallback_dirs: &[PathBuf],
) -> Rescue {
    use secrecy::ExposeSecret as _;
    let mut text = String::from(
        "Vault is initialised but its key files could not be written. These lines are the ONLY \
         copy of the unseal key shares and root token. Store them safely NOW:\n",
    );
    for (i, key) in response.keys.iter().enumerate() {
        text.push_str(&format!("unseal-key-{}: {}\n", i + 1, key.expose_secret()));
    }
    text.push_str(&format!(
        "root-token: {}\n",
        response.root_token.expose_secret()
    ));
    if terminal {
        show_on_terminal(&text);
        return Rescue::Shown;
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for dir in fallback_dirs {
        let path = dir.join(format!("vault-init-rescue-{stamp}-{}", std::process::id()));
        if ha_tls::write_file(&path, text.as_bytes(), 0o600).is_ok() {
            return Rescue::File(path);
        }
    }
    Rescue::Lost
}

#[allow(clippy::print_stderr)]
fn show_on_terminal(text: &str) {
    eprintln!("\n!!! {}", text.replace('\n', "\n!!! "));
}

/// `vault-transit seal`.
pub async fn seal(
    config: &HaConfig,
    settings: &VaultSettings,
    env: EnvLookup<'_>,
) -> anyhow::Result<vault_transit::SealReport> {
    let client = settings.client()?;
    if vault_transit::seal_status(&client).await?.sealed {
        return Ok(vault_transit::SealReport::new(&settings.address, false));
    }
    let admin = config.vault_admin_token(settings, env, &mut Vec::new())?;
    vault_transit::seal(&client, &admin).await?;
    Ok(vault_transit::SealReport::new(&settings.address, true))
}

/// Where unseal key shares come from.
pub enum KeySource {
    /// The files in `keys_dir`.
    Files,
    /// One share per line on standard input (prompted without echo on a
    /// terminal).
    Stdin,
}

/// `vault-transit unseal`. `progress` is called with each status. With key
/// files, an earlier unfinished attempt is discarded when the files hold
/// enough shares to finish alone; from standard input it is continued
/// unless `reset`.
pub async fn unseal(
    settings: &VaultSettings,
    source: KeySource,
    reset: bool,
    read_line: &mut (dyn FnMut(&vault_transit::SealStatus) -> Option<SecretString> + Send),
    progress: ha_plan::Progress<'_>,
) -> anyhow::Result<vault_transit::UnsealReport> {
    let client = settings.client()?;
    let outcome = match source {
        KeySource::Files => {
            if settings.keys.read_keys()?.is_empty() {
                return Err(usage(
                    "[vault].keys_dir",
                    format!(
                        ": no unseal-key-N files in {}: pass --stdin to type or pipe the shares",
                        settings.keys.dir().display()
                    ),
                )
                .into());
            }
            match vault_transit::unseal_from_files(&client, &settings.keys, progress).await {
                // Nothing was touched: a matter of usage (exit 2).
                Err(e @ vault_transit::Error::NotEnoughKeyFiles { .. }) => {
                    return Err(usage("[vault].keys_dir", format!(": {e}")).into());
                }
                other => other?,
            }
        }
        KeySource::Stdin => {
            vault_transit::unseal(&client, reset, &mut |status| {
                progress(&format!(
                    "unseal progress {}/{}: next key share",
                    status.progress, status.threshold
                ));
                read_line(status)
            })
            .await?
        }
    };
    Ok(vault_transit::UnsealReport::new(
        &settings.address,
        &outcome,
    ))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use secrecy::SecretString;

    use super::{Rescue, rescue_keys};

    #[test]
    fn unsaved_keys_go_to_a_0600_file_when_there_is_no_terminal() {
        let response = vault_transit::InitResponse {
            keys: vec![SecretString::from("share-one-wörd".to_owned())],
            keys_encrypted: false,
            root_token: SecretString::from("root-token-wörd".to_owned()),
        };
        let dir = tempfile::tempdir().unwrap();
        let unwritable = dir.path().join("missing/deeper");
        let rescued = rescue_keys(&response, false, &[unwritable, dir.path().to_owned()]);
        let Rescue::File(path) = rescued else {
            panic!("{rescued:?}")
        };
        assert_eq!(path.parent(), Some(dir.path()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("share-one-wörd") && text.contains("root-token-wörd"));
        assert_eq!(rescue_keys(&response, false, &[]), Rescue::Lost);
    }
}
