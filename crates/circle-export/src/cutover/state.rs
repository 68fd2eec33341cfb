//! The pre-copy's record, kept beside the archive: what `transfer` copied
//! (each collection's documents and each table's rows, the sources'
//! versions) and every final pass since. No secret is in it; it is
//! written 0600 all the same, whole or not at all.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::manifest::Manifest;

/// The state format this crate writes and reads (a state with
/// [`Digests`] is still format 1: an older reader ignores them).
pub const STATE_FORMAT: u32 = 1;

/// The largest state file read (it lists names and counts only).
const MAX_STATE_BYTES: u64 = 64 * 1024 * 1024;

/// What a pre-copy (`transfer`) copied, and the final passes since.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CutoverState {
    /// [`STATE_FORMAT`].
    pub format: u32,
    /// `circle-export <version>` of the pre-copy.
    pub tool: String,
    /// The archive the pre-copy wrote alongside.
    pub archive: String,
    /// When the pre-copy finished (RFC 3339, UTC, as its manifest says).
    pub precopy_at: String,
    /// The MongoDB source's version at the pre-copy.
    pub mongo_version: Option<String>,
    /// The PostgreSQL source's version at the pre-copy.
    pub postgres_version: Option<String>,
    /// Documents copied, by `db.collection`.
    pub collections: BTreeMap<String, u64>,
    /// Rows copied, by `db` then table (`public.builds`).
    pub tables: BTreeMap<String, BTreeMap<String, u64>>,
    /// Every final pass that finished (dry runs are not recorded).
    pub final_passes: Vec<FinalRecord>,
    /// What the target holds, key by key (absent in the state of an
    /// older circle-export: the final pass then reads both sides whole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digests: Option<Digests>,
}

/// The record of what the target holds, key by key: files in
/// [`keys_dir`], one per collection and keyed table, listing each key in
/// the server's order with a digest of its document or row.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digests {
    /// The random key of every digest (64 hex digits). Not a credential:
    /// it keeps writers of documents and rows, who do not know it, from
    /// making two of them digest alike.
    pub key: String,
    /// MongoDB collections, by `db.collection`: the key file's name.
    pub collections: BTreeMap<String, String>,
    /// MongoDB collections, by `db.collection`: their MD5 as `dbHash`
    /// reports it for what the target held (32 hex digits).
    #[serde(default)]
    pub md5s: BTreeMap<String, String>,
    /// PostgreSQL databases, by name.
    pub databases: BTreeMap<String, DatabaseDigests>,
}

/// What a PostgreSQL database's digests were computed under.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseDigests {
    /// Dates and times compared in their binary form (both servers store
    /// them as integers).
    pub integer_datetimes: bool,
    /// `extra_float_digits` for the columns compared as text.
    pub float_digits: i32,
    /// Tables by `schema.name`.
    pub tables: BTreeMap<String, TableDigests>,
}

/// One table's record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDigests {
    /// Rows the target held.
    pub rows: u64,
    /// A keyed table: its key file's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// A table compared whole: the sum of its rows' digests (32 hex
    /// digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum: Option<String>,
}

/// The directory of a state's key files: `<archive>.state.d`, beside the
/// state `<archive>.state.json`.
pub fn keys_dir(state: &Path) -> PathBuf {
    let name = state.file_name().unwrap_or_default().to_string_lossy();
    let stem = name.strip_suffix(".json").unwrap_or(&name);
    state.with_file_name(format!("{stem}.d"))
}

/// One final pass that finished.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalRecord {
    /// When it finished (seconds since the Unix epoch).
    pub finished_unix: u64,
    /// Collections, tables, sequences and indexes it changed.
    pub changed: usize,
    /// Documents it inserted, replaced or deleted.
    pub documents: u64,
    /// Rows it inserted, updated or deleted.
    pub rows: u64,
}

/// Opens `<path>.partial` afresh (0600, replacing a leftover of a killed
/// run), to be renamed over `path` once written whole.
pub(super) fn create_partial(path: &Path) -> Result<(std::fs::File, PathBuf), Error> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut partial = path.as_os_str().to_os_string();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let _ = std::fs::remove_file(&partial);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(Error::io(partial.display()))?;
    Ok((file, partial))
}

/// Where the state of the transfer writing `archive` is kept:
/// `<archive>.state.json`, beside it.
pub fn state_path(archive: &Path) -> PathBuf {
    let mut name = archive.file_name().unwrap_or_default().to_os_string();
    name.push(".state.json");
    archive.with_file_name(name)
}

impl CutoverState {
    /// The record of a transfer that wrote `archive` with `manifest`.
    pub fn from_manifest(manifest: &Manifest, archive: &Path) -> CutoverState {
        CutoverState {
            format: STATE_FORMAT,
            tool: manifest.tool.clone(),
            archive: archive.display().to_string(),
            precopy_at: manifest.created_at.clone(),
            mongo_version: manifest.mongo_server_version.clone(),
            postgres_version: manifest.postgres_server_version.clone(),
            collections: manifest
                .mongo
                .iter()
                .map(|c| (format!("{}.{}", c.db, c.collection), c.documents))
                .collect(),
            tables: manifest
                .postgres
                .iter()
                .map(|d| {
                    (
                        d.db.clone(),
                        d.tables.iter().map(|t| (t.name.clone(), t.rows)).collect(),
                    )
                })
                .collect(),
            final_passes: Vec::new(),
            digests: None,
        }
    }

    /// Removes from [`keys_dir`] every key file this state does not name
    /// (those of an earlier pre-copy or pass, and any a kill left half
    /// written).
    pub fn prune(&self, state: &Path) -> Result<(), Error> {
        let dir = keys_dir(state);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(dir.display())(e)),
        };
        let named: std::collections::BTreeSet<&str> = self
            .digests
            .iter()
            .flat_map(|d| {
                d.collections.values().map(String::as_str).chain(
                    d.databases
                        .values()
                        .flat_map(|db| db.tables.values().filter_map(|t| t.file.as_deref())),
                )
            })
            .collect();
        for entry in entries {
            let entry = entry.map_err(Error::io(dir.display()))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.contains(".keys") && !named.contains(name.as_ref()) {
                std::fs::remove_file(entry.path()).map_err(Error::io(entry.path().display()))?;
            }
        }
        Ok(())
    }

    /// Reads the state at `path`: a missing file says to run the
    /// pre-copy first; one too large, not JSON or of another format is
    /// refused.
    pub fn read(path: &Path) -> Result<CutoverState, Error> {
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Invalid(format!(
                    "{}: no pre-copy state here: run `circle-export transfer` (without --final) \
                     with this --out first; the final pass moves what changed since it",
                    path.display()
                )));
            }
            Err(e) => return Err(Error::io(path.display())(e)),
        };
        let size = file.metadata().map_err(Error::io(path.display()))?.len();
        if size > MAX_STATE_BYTES {
            return Err(Error::Invalid(format!(
                "{}: {size} bytes, more than a pre-copy state can be ({MAX_STATE_BYTES})",
                path.display()
            )));
        }
        let state: CutoverState =
            serde_json::from_reader(std::io::BufReader::new(file)).map_err(|e| {
                Error::Invalid(format!("{}: not a pre-copy state: {e}", path.display()))
            })?;
        if state.format != STATE_FORMAT {
            return Err(Error::Invalid(format!(
                "{}: state format {}, this circle-export reads {STATE_FORMAT}",
                path.display(),
                state.format
            )));
        }
        Ok(state)
    }

    /// Writes the state to `path` (0600), through a temporary file renamed
    /// over it: a kill leaves the old state or the new one.
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        let (mut file, partial) = create_partial(path)?;
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Invalid(format!("the pre-copy state: {e}")))?;
        file.write_all(&text)
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .map_err(Error::io(partial.display()))?;
        std::fs::rename(&partial, path).map_err(Error::io(path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_sits_beside_the_archive_and_round_trips_0600() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("circle.tar.zst");
        assert_eq!(
            state_path(&archive),
            dir.path().join("circle.tar.zst.state.json")
        );
        let mut state = CutoverState {
            format: STATE_FORMAT,
            ..CutoverState::default()
        };
        state.collections.insert("circle_ghe.builds".to_owned(), 7);
        let path = state_path(&archive);
        state.write(&path).unwrap();
        state.write(&path).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(CutoverState::read(&path).unwrap(), state);
        let missing = CutoverState::read(&dir.path().join("nope.state.json")).unwrap_err();
        assert!(
            missing.to_string().contains("no pre-copy state"),
            "{missing}"
        );
        std::fs::write(&path, b"{\"format\": 9}").unwrap();
        assert!(CutoverState::read(&path).is_err());
    }
}
