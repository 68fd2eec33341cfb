//! Vault's file backend (`physical/file.go`): one file per key, named
//! `_<leaf>` in the key's directory, holding `{"Key": <key>, "Value":
//! <base64>}`.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use crate::Error;

/// The largest storage file read: transit policies of many versions are
/// kilobytes; anything near this is not Vault's.
const MAX_FILE: u64 = 16 << 20;

/// Names in the storage directory that hold secrets CircleCI's vault
/// container kept beside the data (init output, tokens).
const LOOSE_SECRETS: [&str; 3] = ["vault-init-out", "client-token", "root-token"];

/// A Vault file-backend directory, read only.
#[derive(Debug, Clone)]
pub struct FileStorage {
    root: PathBuf,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "Value", default)]
    value: String,
}

/// Whether `segment` is a plain path segment (no separator, not `.`/`..`).
pub(crate) fn safe_segment(segment: &str) -> bool {
    !segment.is_empty() && segment != "." && segment != ".." && !segment.contains(['/', '\\', '\0'])
}

impl FileStorage {
    /// The storage at `root`.
    pub fn new(root: &Path) -> FileStorage {
        FileStorage {
            root: root.to_owned(),
        }
    }

    /// Its directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file that holds `key`.
    fn file_of(&self, key: &str) -> Option<PathBuf> {
        let mut parts: Vec<&str> = key.split('/').collect();
        let leaf = parts.pop()?;
        if !parts.iter().chain([&leaf]).all(|p| safe_segment(p)) {
            return None;
        }
        let mut path = self.root.clone();
        path.extend(parts);
        path.push(format!("_{leaf}"));
        Some(path)
    }

    /// An error saying `key`'s file is damaged.
    pub(crate) fn damaged(&self, key: &str, detail: &str) -> Error {
        Error::OldStorage {
            path: self.file_of(key).unwrap_or_else(|| self.root.join(key)),
            detail: detail.to_owned(),
        }
    }

    /// The stored bytes of `key` (still encrypted, except the seal
    /// configuration), or `None`.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        use std::io::Read as _;
        let path = self
            .file_of(key)
            .ok_or_else(|| self.damaged(key, "not a storage key"))?;
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::File {
                    action: "cannot read",
                    path,
                    source,
                });
            }
        };
        let mut text = Vec::new();
        file.take(MAX_FILE + 1)
            .read_to_end(&mut text)
            .map_err(|source| Error::File {
                action: "cannot read",
                path: path.clone(),
                source,
            })?;
        if text.len() as u64 > MAX_FILE {
            return Err(self.damaged(key, &format!("larger than {MAX_FILE} bytes")));
        }
        let entry: Entry = serde_json::from_slice(&text)
            .map_err(|e| self.damaged(key, &format!("not a storage entry: {e}")))?;
        if entry.key != key {
            return Err(self.damaged(key, "the entry names another key"));
        }
        base64::engine::general_purpose::STANDARD
            .decode(entry.value.as_bytes())
            .map(Some)
            .map_err(|_| self.damaged(key, "its value is not base64"))
    }

    /// The keys directly under `prefix` (which ends in `/`): leaves by
    /// name, subdirectories with a trailing `/`, sorted.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let dir_key = prefix.trim_end_matches('/');
        let mut dir = self.root.clone();
        if !dir_key.is_empty() {
            if !dir_key.split('/').all(safe_segment) {
                return Ok(Vec::new());
            }
            dir.extend(dir_key.split('/'));
        }
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(Error::File {
                    action: "cannot list",
                    path: dir,
                    source,
                });
            }
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            match (is_dir, name.strip_prefix('_')) {
                (true, _) if safe_segment(&name) => out.push(format!("{name}/")),
                (false, Some(leaf)) if safe_segment(leaf) => out.push(leaf.to_owned()),
                _ => {}
            }
        }
        out.sort();
        Ok(out)
    }

    /// Files at the top of the directory that hold secrets (by name).
    pub fn loose_secrets(&self) -> Vec<String> {
        LOOSE_SECRETS
            .iter()
            .filter(|name| self.root.join(name).exists())
            .map(|name| (*name).to_owned())
            .collect()
    }
}
