//! The spool directory an export writes into before the archive is built,
//! and the restore directory an archive is unpacked into: private (0700
//! directories, 0600 files), next to the archive, removed when done.

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncWriteExt as _, BufWriter};

use crate::manifest::FileEntry;
use crate::meter::Meter;

/// A private working directory, removed on drop.
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
    keep: bool,
    meter: Meter,
}

impl WorkDir {
    /// Creates `<next_to>.<suffix>.d` (mode 0700), replacing a leftover of
    /// an earlier, interrupted run.
    pub fn create(next_to: &Path, suffix: &str) -> std::io::Result<WorkDir> {
        use std::os::unix::fs::DirBuilderExt as _;
        let mut name = next_to.as_os_str().to_owned();
        name.push(format!(".{suffix}.d"));
        let path = PathBuf::from(name);
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(WorkDir {
            path,
            keep: false,
            meter: Meter::default(),
        })
    }

    /// Counts the bytes of every [`HashedFile`] written here into `meter`.
    pub fn with_meter(mut self, meter: Meter) -> WorkDir {
        self.meter = meter;
        self
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where archive path `name` lives inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Keep the directory instead of removing it on drop.
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Creates the parent directories of `path` (mode 0700).
pub(crate) fn create_parents(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    Ok(())
}

/// The database an archive path holds data of, as a meter part names it
/// (`mongo/<db>/…` → `mongo <db>`, `postgres/<db>.sql` → `postgres <db>`).
fn database_of(name: &str) -> Option<String> {
    if let Some(rest) = name.strip_prefix("mongo/") {
        let (db, _) = rest.split_once('/')?;
        return Some(format!("mongo {db}"));
    }
    let db = name.strip_prefix("postgres/")?.strip_suffix(".sql")?;
    Some(format!("postgres {db}"))
}

/// A file being written (0600), hashed as it goes.
pub struct HashedFile {
    name: String,
    out: BufWriter<tokio::fs::File>,
    hasher: Sha256,
    size: u64,
    meter: Meter,
}

impl HashedFile {
    /// Creates `dir/name` for archive path `name`.
    pub async fn create(dir: &WorkDir, name: &str) -> std::io::Result<HashedFile> {
        let path = dir.join(name);
        create_parents(&path)?;
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .await?;
        Ok(HashedFile {
            name: name.to_owned(),
            out: BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            size: 0,
            meter: match database_of(name) {
                Some(part) => dir.meter.part(&part, 0),
                None => dir.meter.clone(),
            },
        })
    }

    /// Appends bytes.
    pub async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        self.meter.add(bytes.len() as u64);
        self.out.write_all(bytes).await
    }

    /// Hands what is buffered to the file, so that a reader of the file
    /// sees every byte written so far.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush().await
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Flushes and returns the manifest entry. Not synced to disk: the
    /// spool is scratch (read back from the page cache into the archive,
    /// which is synced; a crash leaves a spool the next run replaces), and
    /// syncing a gigabyte of it cost seconds of every export.
    pub async fn finish(mut self) -> std::io::Result<FileEntry> {
        self.out.flush().await?;
        Ok(FileEntry {
            path: self.name,
            size: self.size,
            sha256: hex(&self.hasher.finalize()),
        })
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `bytes` to `dir/name` and returns its manifest entry.
pub async fn write_whole(dir: &WorkDir, name: &str, bytes: &[u8]) -> std::io::Result<FileEntry> {
    let mut file = HashedFile::create(dir, name).await?;
    file.write(bytes).await?;
    file.finish().await
}
