//! CircleCI's encryption keys (`/data/circle/circleci-encryption-keys/`):
//! backed up to the bundle's bucket, where the rendered user data fetches
//! them from before Replicated starts, compared, and restored.
//!
//! Losing these files makes CircleCI's encrypted data unrecoverable, so:
//! every upload is server-side encrypted (the KMS key when configured) and
//! read back to check; the stored copy carries each file's SHA-256; a
//! restore never replaces a different existing key unless forced; keys are
//! written 0600 in a 0700 directory. No message ever holds key material —
//! only file names.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use ha_plan::Document;
use schemars::JsonSchema;
use serde::Serialize;

use crate::Error;
use crate::error::s3_detail;
use crate::publish::{SHA256_METADATA, sha256_hex};

/// Where CircleCI keeps its encryption keys on the Services machine (the
/// rendered user data restores them there).
pub const KEYS_DIR: &str = "/data/circle/circleci-encryption-keys";
/// Their key prefix in the bundle's bucket (below the bundle's prefix).
pub const KEYS_PREFIX: &str = "circleci-encryption-keys/";
/// The mode key files are written with.
pub const KEY_MODE: u32 = 0o600;
/// The largest key file read or fetched (CircleCI's are a few hundred
/// bytes).
pub const MAX_KEY_FILE: u64 = 1 << 20;
/// The most key files read or fetched.
pub const MAX_KEY_FILES: usize = 1000;

/// Where the stored copy lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyStore {
    /// The bundle's bucket.
    pub bucket: String,
    /// The bundle's prefix (empty or ending in `/`).
    pub prefix: String,
    /// A KMS key for server-side encryption; `None` uses SSE-S3.
    pub kms_key_id: Option<String>,
}

impl KeyStore {
    fn key(&self, name: &str) -> String {
        format!("{}{KEYS_PREFIX}{name}", self.prefix)
    }

    fn s3_error(&self, operation: &'static str, key: &str, detail: String) -> Error {
        Error::S3 {
            operation,
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            detail,
        }
    }
}

/// One change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyStep {
    /// Upload a key file (new or changed).
    Upload {
        /// The file name.
        name: String,
    },
    /// Write a key file into the directory (0600).
    Write {
        /// The file's path.
        path: PathBuf,
    },
}

impl fmt::Display for KeyStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyStep::Upload { name } => write!(f, "upload encryption key {name} (encrypted)"),
            KeyStep::Write { path } => write!(f, "write {} (0600)", path.display()),
        }
    }
}

impl ha_plan::Change for KeyStep {
    fn kind(&self) -> &'static str {
        match self {
            KeyStep::Upload { .. } => "upload-key",
            KeyStep::Write { .. } => "write-key",
        }
    }

    fn target(&self) -> String {
        match self {
            KeyStep::Upload { name } => name.clone(),
            KeyStep::Write { path } => path.display().to_string(),
        }
    }
}

/// Reads the key files of `dir` (a flat directory of plain files; anything
/// else is an error naming it). A missing directory is empty.
pub fn read_keys(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    let mut keys = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(keys),
        Err(e) => return Err(io(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io(&path))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !kind.is_file() {
            return Err(Error::KeyFile {
                path,
                problem: "not a plain file (a key directory holds only files)".to_owned(),
            });
        }
        check_name(&name).map_err(|problem| Error::KeyFile {
            path: path.clone(),
            problem,
        })?;
        let size = entry.metadata().map_err(io(&path))?.len();
        if size > MAX_KEY_FILE || keys.len() >= MAX_KEY_FILES {
            return Err(Error::TooLarge {
                what: path.display().to_string(),
                detail: format!(
                    "{size} bytes, file {} of the directory (at most {MAX_KEY_FILE} bytes and \
                     {MAX_KEY_FILES} files)",
                    keys.len() + 1
                ),
            });
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(std::fs::File::open(&path).map_err(io(&path))?, MAX_KEY_FILE),
            &mut bytes,
        )
        .map_err(io(&path))?;
        keys.insert(name, bytes);
    }
    Ok(keys)
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.starts_with('.')
        || name.contains(['/', '\\'])
        || name.chars().any(char::is_control)
    {
        return Err(format!("{name:?} is not a plain file name"));
    }
    Ok(())
}

/// The stored copy: each file's content, checked against its recorded
/// SHA-256.
pub async fn stored_keys(
    s3: &aws_sdk_s3::Client,
    store: &KeyStore,
) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    Ok(fetch_stored(s3, store).await?.0)
}

/// [`stored_keys`], and when the newest of them was uploaded (seconds
/// since the epoch).
async fn fetch_stored(
    s3: &aws_sdk_s3::Client,
    store: &KeyStore,
) -> Result<(BTreeMap<String, Vec<u8>>, Option<i64>), Error> {
    let prefix = store.key("");
    let mut keys = BTreeMap::new();
    let mut newest: Option<i64> = None;
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(&store.bucket)
            .prefix(&prefix)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| store.s3_error("ListObjectsV2", &prefix, s3_detail(&e)))?;
        for object in page.contents() {
            let Some(key) = object.key() else { continue };
            // A listing entry outside the prefix (a store that ignores it)
            // is not ours.
            let Some(name) = key.strip_prefix(prefix.as_str()) else {
                continue;
            };
            if check_name(name).is_err() {
                continue;
            }
            let size = object.size().unwrap_or(0).max(0) as u64;
            if size > MAX_KEY_FILE || keys.len() >= MAX_KEY_FILES {
                return Err(Error::TooLarge {
                    what: format!("s3://{}/{key}", store.bucket),
                    detail: format!(
                        "{size} bytes, object {} of the backup (at most {MAX_KEY_FILE} bytes and \
                         {MAX_KEY_FILES} objects)",
                        keys.len() + 1
                    ),
                });
            }
            let got = s3
                .get_object()
                .bucket(&store.bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| store.s3_error("GetObject", key, s3_detail(&e)))?;
            let recorded = got.metadata().and_then(|m| m.get(SHA256_METADATA)).cloned();
            // The listing's size may be stale: the object's own length is
            // checked too, before its body is read.
            if got.content_length().unwrap_or(0).max(0) as u64 > MAX_KEY_FILE {
                return Err(Error::TooLarge {
                    what: format!("s3://{}/{key}", store.bucket),
                    detail: format!("more than {MAX_KEY_FILE} bytes"),
                });
            }
            let bytes = got
                .body
                .collect()
                .await
                .map_err(|e| store.s3_error("GetObject", key, ha_plan::error_chain(&e)))?
                .into_bytes()
                .to_vec();
            if recorded.as_deref() != Some(sha256_hex(&bytes).as_str()) {
                return Err(Error::Corrupt {
                    bucket: store.bucket.clone(),
                    key: key.to_owned(),
                });
            }
            if let Some(at) = object.last_modified() {
                newest = Some(newest.map_or(at.secs(), |n| n.max(at.secs())));
            }
            keys.insert(name.to_owned(), bytes);
        }
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            return Ok((keys, newest));
        }
    }
}

/// What `backup` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backup {
    /// The uploads (planned, with `dry_run`).
    pub steps: Vec<KeyStep>,
    /// Files stored but no longer in the directory (kept: a key is never
    /// deleted from the backup).
    pub only_stored: Vec<String>,
}

impl Backup {
    /// The run as `circle-ha keys backup --from DIR` reports it under
    /// `tool`'s name: the uploads, and a warning for each file only the
    /// stored copy has (kept).
    pub fn to_report(&self, tool: &str, dry_run: bool, dir: &Path) -> ha_plan::Report {
        let warnings = self
            .only_stored
            .iter()
            .map(|name| {
                format!(
                    "{name} is in the stored copy but no longer in {} (kept)",
                    dir.display()
                )
            })
            .collect();
        ha_plan::Report::from_changes(tool, dry_run, &self.steps, warnings)
    }
}

/// `circle-ha keys backup`: uploads every key file of `dir` that is new or
/// changed (server-side encrypted, with its SHA-256), then reads the
/// stored copy back and checks it matches the directory. A second run
/// uploads nothing.
pub async fn backup(
    s3: &aws_sdk_s3::Client,
    store: &KeyStore,
    dir: &Path,
    dry_run: bool,
) -> Result<Backup, Error> {
    let local = read_keys(dir)?;
    if local.is_empty() {
        return Err(Error::KeyFile {
            path: dir.to_owned(),
            problem: "no key files there: nothing to back up (is this the Services machine?)"
                .to_owned(),
        });
    }
    let stored = stored_keys(s3, store).await?;
    let steps: Vec<KeyStep> = local
        .iter()
        .filter(|(name, bytes)| stored.get(*name) != Some(*bytes))
        .map(|(name, _)| KeyStep::Upload { name: name.clone() })
        .collect();
    let only_stored = stored
        .keys()
        .filter(|name| !local.contains_key(*name))
        .cloned()
        .collect();
    if !dry_run {
        for step in &steps {
            let KeyStep::Upload { name } = step else {
                continue;
            };
            let bytes = &local[name];
            let key = store.key(name);
            let mut put = s3
                .put_object()
                .bucket(&store.bucket)
                .key(&key)
                .body(ByteStream::from(bytes.clone()))
                .metadata(SHA256_METADATA, sha256_hex(bytes));
            put = match &store.kms_key_id {
                Some(kms) => put
                    .server_side_encryption(ServerSideEncryption::AwsKms)
                    .ssekms_key_id(kms),
                None => put.server_side_encryption(ServerSideEncryption::Aes256),
            };
            put.send()
                .await
                .map_err(|e| store.s3_error("PutObject", &key, s3_detail(&e)))?;
        }
        let back = stored_keys(s3, store).await?;
        if let Some(name) = local
            .keys()
            .find(|name| back.get(*name) != local.get(*name))
        {
            return Err(Error::Corrupt {
                bucket: store.bucket.clone(),
                key: store.key(name),
            });
        }
    }
    Ok(Backup { steps, only_stored })
}

/// How a directory compares with the stored copy (names only).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct KeyDiff {
    /// The same in both.
    pub same: Vec<String>,
    /// In both, with different content.
    pub different: Vec<String>,
    /// Stored but not in the directory.
    pub missing_here: Vec<String>,
    /// In the directory but not stored.
    pub not_stored: Vec<String>,
}

impl KeyDiff {
    /// Identical, and not empty.
    pub fn is_identical(&self) -> bool {
        self.different.is_empty()
            && self.missing_here.is_empty()
            && self.not_stored.is_empty()
            && !self.same.is_empty()
    }

    /// As `circle-ha keys verify` shows it for `dir` (file names only):
    /// healthy when identical.
    pub fn to_findings(&self, tool: &str, dir: &Path) -> KeyCheck {
        KeyCheck {
            healthy: self.is_identical(),
            dir: dir.display().to_string(),
            diff: self.clone(),
            tool: tool.to_owned(),
        }
    }
}

/// `circle-ha keys verify`: the key directory against its stored copy,
/// by file name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct KeyCheck {
    /// Identical, and not empty.
    pub healthy: bool,
    /// The key directory.
    pub dir: String,
    /// The names, by how they compare.
    #[serde(flatten)]
    pub diff: KeyDiff,
    /// The tool named in the summary line.
    #[serde(skip)]
    pub tool: String,
}

impl Document for KeyCheck {
    fn to_text(&self) -> String {
        let (d, tool, dir) = (&self.diff, &self.tool, &self.dir);
        let mut text = String::new();
        for (label, names) in [
            ("DIFFERENT from the stored copy", &d.different),
            ("MISSING here (only in the stored copy)", &d.missing_here),
            ("NOT BACKED UP (only here)", &d.not_stored),
        ] {
            for name in names {
                text.push_str(&format!("{label}: {name}\n"));
            }
        }
        text.push_str(&if self.healthy {
            format!(
                "{tool}: {dir} matches the stored copy ({} key file(s))\n",
                d.same.len()
            )
        } else if d.same.is_empty() && d.different.is_empty() && d.missing_here.is_empty() {
            format!("{tool}: no stored copy of the keys in {dir}: run keys backup\n")
        } else {
            format!(
                "{tool}: {dir} does not match the stored copy ({} difference(s))\n",
                d.different.len() + d.missing_here.len() + d.not_stored.len()
            )
        });
        text
    }

    fn healthy(&self) -> Option<bool> {
        Some(self.healthy)
    }
}

/// `circle-ha keys restore` refused: the directory holds keys that differ
/// from the stored copy (and `--force` was not given); nothing touched.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct RestoreRefused {
    /// No actions; `refused` holds the reason.
    #[serde(flatten)]
    pub refused: ha_plan::Refused,
    /// The files that differ (names only).
    pub different: Vec<String>,
}

impl RestoreRefused {
    /// `tool` refused for `reason`; `different` names the files.
    pub fn new(tool: &str, reason: String, different: Vec<String>) -> RestoreRefused {
        RestoreRefused {
            refused: ha_plan::Refused::new(tool, vec![reason], Vec::new()),
            different,
        }
    }
}

impl Document for RestoreRefused {
    fn to_text(&self) -> String {
        self.refused.to_text()
    }

    fn healthy(&self) -> Option<bool> {
        Some(false)
    }
}

fn diff(local: &BTreeMap<String, Vec<u8>>, stored: &BTreeMap<String, Vec<u8>>) -> KeyDiff {
    let mut out = KeyDiff::default();
    for (name, bytes) in local {
        match stored.get(name) {
            Some(other) if other == bytes => out.same.push(name.clone()),
            Some(_) => out.different.push(name.clone()),
            None => out.not_stored.push(name.clone()),
        }
    }
    out.missing_here = stored
        .keys()
        .filter(|name| !local.contains_key(*name))
        .cloned()
        .collect();
    out
}

/// `circle-ha keys verify`: the directory against the stored copy.
pub async fn verify(
    s3: &aws_sdk_s3::Client,
    store: &KeyStore,
    dir: &Path,
) -> Result<KeyDiff, Error> {
    Ok(diff(&read_keys(dir)?, &stored_keys(s3, store).await?))
}

/// The key backup as `circle-ha status` checks it: the stored copy read
/// back whole (every object's SHA-256 against the one recorded at upload)
/// and, where the key directory exists (on the Services machine), compared
/// with it. File names and counts only, never a key's bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct KeyBackupHealth {
    /// Something is stored, every stored key reads back as uploaded, and
    /// the local directory (when there is one) matches it.
    pub healthy: bool,
    /// Where the copy is: `s3://bucket/prefix/circleci-encryption-keys/`.
    pub location: String,
    /// Key files stored.
    pub stored: usize,
    /// When the newest stored key was uploaded, seconds since the epoch.
    pub newest_upload: Option<i64>,
    /// The key directory compared with the copy; absent when this machine
    /// has no such directory.
    pub local: Option<KeyCheck>,
}

impl Document for KeyBackupHealth {
    fn to_text(&self) -> String {
        let mut text = String::new();
        if let Some(local) = &self.local {
            text.push_str(&local.to_text());
        }
        text.push_str(&if self.stored == 0 {
            format!(
                "no encryption keys stored at {}: run `circle-ha keys backup` on the Services \
                 machine\n",
                self.location
            )
        } else {
            format!(
                "{} encryption key file(s) stored at {}, every one read back as uploaded\n",
                self.stored, self.location
            )
        });
        text
    }

    fn healthy(&self) -> Option<bool> {
        Some(self.healthy)
    }
}

/// `circle-ha status`'s check of the key backup (see [`KeyBackupHealth`]):
/// `dir` is compared only when it is a directory here. A stored key whose
/// bytes differ from its recorded SHA-256 is [`Error::Corrupt`].
pub async fn backup_health(
    s3: &aws_sdk_s3::Client,
    store: &KeyStore,
    dir: &Path,
) -> Result<KeyBackupHealth, Error> {
    let (stored, newest_upload) = fetch_stored(s3, store).await?;
    let local = if dir.is_dir() {
        Some(diff(&read_keys(dir)?, &stored).to_findings("circle-ha status", dir))
    } else {
        None
    };
    Ok(KeyBackupHealth {
        healthy: !stored.is_empty() && local.as_ref().is_none_or(|l| l.healthy),
        location: format!("s3://{}/{}", store.bucket, store.key("")),
        stored: stored.len(),
        newest_upload,
        local,
    })
}

/// `circle-ha keys restore`: writes every stored key into `dir` (created
/// 0700; files 0600, written whole then renamed). A file that exists with
/// different content is replaced only with `force` — otherwise
/// [`Error::KeysDiffer`] before anything is written. Identical files are
/// left alone (a second run writes nothing).
pub async fn restore(
    s3: &aws_sdk_s3::Client,
    store: &KeyStore,
    dir: &Path,
    force: bool,
    dry_run: bool,
) -> Result<Vec<KeyStep>, Error> {
    let stored = stored_keys(s3, store).await?;
    if stored.is_empty() {
        return Err(Error::KeyFile {
            path: dir.to_owned(),
            problem: format!(
                "there is no stored copy in s3://{}/{} to restore",
                store.bucket,
                store.key("")
            ),
        });
    }
    let local = read_keys(dir)?;
    let changes = diff(&local, &stored);
    if !changes.different.is_empty() && !force {
        return Err(Error::KeysDiffer {
            dir: dir.to_owned(),
            names: changes.different,
        });
    }
    let steps: Vec<KeyStep> = stored
        .keys()
        .filter(|name| local.get(*name) != stored.get(*name))
        .map(|name| KeyStep::Write {
            path: dir.join(name),
        })
        .collect();
    if dry_run {
        return Ok(steps);
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    for step in &steps {
        let KeyStep::Write { path } = step else {
            continue;
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.partial"));
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(KEY_MODE)
            .open(&tmp)
            .map_err(io(&tmp))?;
        file.write_all(&stored[&name]).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))?;
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_over_the_limit_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("aes.key"), "k").unwrap();
        assert_eq!(read_keys(dir.path()).unwrap().len(), 1);
        std::fs::write(
            dir.path().join("huge.key"),
            vec![0_u8; MAX_KEY_FILE as usize + 1],
        )
        .unwrap();
        let err = read_keys(dir.path()).unwrap_err();
        assert!(matches!(err, Error::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains("huge.key"), "{err}");
    }
}
