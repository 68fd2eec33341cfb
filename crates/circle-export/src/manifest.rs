//! `manifest.json`: what an archive holds, with checksums and counts.

use serde::{Deserialize, Serialize};

/// The manifest format this crate writes.
pub const FORMAT: u32 = 1;

/// The archive entry that holds the manifest.
pub const MANIFEST_PATH: &str = "manifest.json";

/// Everything an archive holds and what it must contain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// `circle-export <version>`.
    pub tool: String,
    /// When the export finished (RFC 3339, UTC).
    pub created_at: String,
    /// The MongoDB source's version, when exported from a server.
    pub mongo_server_version: Option<String>,
    /// The PostgreSQL source's version.
    pub postgres_server_version: Option<String>,
    /// Every file in the archive except the manifest.
    pub files: Vec<FileEntry>,
    /// Every exported collection.
    pub mongo: Vec<CollectionEntry>,
    /// Every exported PostgreSQL database.
    pub postgres: Vec<DatabaseEntry>,
}

/// One file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Its path in the archive (`mongo/circle_ghe/builds.bson`).
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
}

/// One collection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionEntry {
    /// The database.
    pub db: String,
    /// The collection.
    pub collection: String,
    /// How many documents its `.bson` file holds.
    pub documents: u64,
}

/// One PostgreSQL database.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseEntry {
    /// Its name.
    pub db: String,
    /// Rows per table, as the dump names the table (`public.builds`).
    pub tables: Vec<TableEntry>,
}

/// One table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableEntry {
    /// `schema.table`.
    pub name: String,
    /// Its rows in the dump.
    pub rows: u64,
}

impl Manifest {
    /// The file entry for `path`.
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.path == path)
    }
}

/// The archive path of a collection's data (mongodump's layout).
pub fn bson_path(db: &str, collection: &str) -> String {
    format!("mongo/{db}/{collection}.bson")
}

/// The archive path of a collection's metadata (mongodump's layout).
pub fn metadata_path(db: &str, collection: &str) -> String {
    format!("mongo/{db}/{collection}.metadata.json")
}

/// The archive path of a database's SQL.
pub fn sql_path(db: &str) -> String {
    format!("postgres/{db}.sql")
}
