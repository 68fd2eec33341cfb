//! Where `init`'s output lives: one 0600 file per key share (one per key
//! holder) and one for the root token, in a 0700 directory.
//!
//! Layout of `keys_dir`:
//!
//! | file | content |
//! |---|---|
//! | `unseal-key-1` … `unseal-key-N` | one hex key share each |
//! | `unseal-key-1.pgp.b64` … | instead, when PGP keys were given: the share encrypted to its holder, base64 |
//! | `root-token` | the initial root token |

use std::fs;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret as _, SecretString};

use crate::{Error, InitResponse};

/// The key-share and root-token files of one Vault.
#[derive(Clone, Debug)]
pub struct KeyFiles {
    dir: PathBuf,
}

impl KeyFiles {
    /// Files under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> KeyFiles {
        KeyFiles { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of share `index` (1-based).
    pub fn key_path(&self, index: usize, encrypted: bool) -> PathBuf {
        if encrypted {
            self.dir.join(format!("unseal-key-{index}.pgp.b64"))
        } else {
            self.dir.join(format!("unseal-key-{index}"))
        }
    }

    /// The root token's file.
    pub fn root_token_path(&self) -> PathBuf {
        self.dir.join("root-token")
    }

    /// Makes sure `init`'s output can be written before Vault is asked to
    /// produce it: the directory exists (created 0700) and is writable, and
    /// none of the files exist (they might be the only copy of an earlier
    /// Vault's keys).
    pub fn prepare(&self, shares: u8, encrypted: bool) -> Result<(), Error> {
        if !self.dir.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)
                .map_err(|source| Error::File {
                    action: "cannot create",
                    path: self.dir.clone(),
                    source,
                })?;
        }
        let mut paths: Vec<PathBuf> = (1..=usize::from(shares))
            .map(|i| self.key_path(i, encrypted))
            .collect();
        paths.push(self.root_token_path());
        for path in paths {
            if path.exists() {
                return Err(Error::WouldOverwrite { path });
            }
        }
        let probe = self.dir.join(".write-probe");
        fs::write(&probe, b"probe").map_err(|source| Error::File {
            action: "cannot write to",
            path: self.dir.clone(),
            source,
        })?;
        let _ = fs::remove_file(&probe);
        Ok(())
    }

    /// Writes every share and the root token, each 0600. Returns the paths
    /// written. On failure the error carries the whole response, so the
    /// caller can still hand it to the operator.
    pub fn write(&self, address: &str, response: InitResponse) -> Result<Vec<PathBuf>, Error> {
        let mut files: Vec<(PathBuf, &SecretString)> = response
            .keys
            .iter()
            .enumerate()
            .map(|(i, key)| (self.key_path(i + 1, response.keys_encrypted), key))
            .collect();
        files.push((self.root_token_path(), &response.root_token));
        let mut written = Vec::new();
        for (path, secret) in files {
            let text = format!("{}\n", secret.expose_secret());
            if let Err(e) = ha_tls::write_file(&path, text.as_bytes(), 0o600) {
                let source = match e {
                    ha_tls::Error::Write { source, .. } => source,
                    other => std::io::Error::other(other.to_string()),
                };
                return Err(Error::KeysNotSaved {
                    address: address.to_owned(),
                    path,
                    keys: Box::new(response),
                    source,
                });
            }
            written.push(path);
        }
        Ok(written)
    }

    /// Reads the plain (not PGP-encrypted) key shares present, in index
    /// order. Missing indexes are skipped: key holders may keep theirs
    /// elsewhere.
    pub fn read_keys(&self) -> Result<Vec<(PathBuf, SecretString)>, Error> {
        let entries = fs::read_dir(&self.dir).map_err(|source| Error::File {
            action: "cannot read",
            path: self.dir.clone(),
            source,
        })?;
        let mut keys: Vec<(usize, PathBuf)> = entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().to_str()?.to_owned();
                let index = name.strip_prefix("unseal-key-")?.parse::<usize>().ok()?;
                Some((index, entry.path()))
            })
            .collect();
        keys.sort();
        keys.into_iter()
            .map(|(_, path)| {
                let text = fs::read_to_string(&path).map_err(|source| Error::File {
                    action: "cannot read",
                    path: path.clone(),
                    source,
                })?;
                Ok((path, SecretString::from(text.trim().to_owned())))
            })
            .collect()
    }
}

/// What [`init_to_files`] did.
#[derive(Debug)]
pub struct Initialised {
    /// The files written (each 0600): the shares, then the root token.
    pub files: Vec<PathBuf>,
    /// Whether the shares are PGP-encrypted to their holders.
    pub keys_encrypted: bool,
}

/// The runbook's `vault init`, done so that no share can be lost: refuses
/// an initialised server, checks that `keys` can take every file *before*
/// Vault is asked (the response is the only copy of the shares), then
/// writes one 0600 file per share and one for the root token. When a file
/// cannot be written after all, the error is [`Error::KeysNotSaved`] and
/// carries the whole response, so that the caller can still put it in the
/// operator's hands.
pub async fn init_to_files(
    client: &crate::Client,
    request: &crate::InitRequest,
    keys: &KeyFiles,
) -> Result<Initialised, Error> {
    request.validate()?;
    if crate::is_initialized(client).await? {
        return Err(Error::AlreadyInitialized {
            address: client.address().to_owned(),
        });
    }
    let encrypted = request.pgp_keys.is_some();
    keys.prepare(request.secret_shares, encrypted)?;
    let response = crate::init(client, request).await?;
    let keys_encrypted = response.keys_encrypted;
    let files = keys.write(client.address(), response)?;
    Ok(Initialised {
        files,
        keys_encrypted,
    })
}

/// Unseals with the plain shares in `keys` alone. Refuses (before touching
/// anything) when they are fewer than the threshold, since the other
/// holders must then submit theirs ([`crate::unseal`] one at a time). An
/// unfinished earlier attempt is discarded first: its shares are unknown,
/// and the files hold enough. `progress` is told which file goes in.
pub async fn unseal_from_files(
    client: &crate::Client,
    keys: &KeyFiles,
    progress: ha_plan::Progress<'_>,
) -> Result<crate::UnsealOutcome, Error> {
    let shares = keys.read_keys()?;
    let status = crate::seal_status(client).await?;
    if !status.sealed {
        return crate::unseal(client, false, &mut |_| None).await;
    }
    if shares.len() < status.threshold as usize {
        return Err(Error::NotEnoughKeyFiles {
            dir: keys.dir().to_owned(),
            found: shares.len(),
            threshold: status.threshold,
        });
    }
    let mut shares = shares.into_iter();
    crate::unseal(client, true, &mut |status| {
        let (path, key) = shares.next()?;
        progress(&format!(
            "unseal progress {}/{}: submitting {}",
            status.progress,
            status.threshold,
            path.display()
        ));
        Some(key)
    })
    .await
}
