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
    /// The `pg_dump` that wrote the PostgreSQL part (`pg_dump
    /// (PostgreSQL) 9.5.25` when it ran in the old machine's container).
    /// Absent in archives written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_dump_version: Option<String>,
    /// Every file in the archive except the manifest.
    pub files: Vec<FileEntry>,
    /// Every exported collection.
    pub mongo: Vec<CollectionEntry>,
    /// Every exported view: its definition only, in
    /// `mongo/<db>/<view>.metadata.json` (`options.viewOn`,
    /// `options.pipeline`), as mongodump writes a view. Absent in archives
    /// written before views were exported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mongo_views: Vec<ViewEntry>,
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

/// One view: a definition, no documents.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewEntry {
    /// The database.
    pub db: String,
    /// The view.
    pub view: String,
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
    /// Its rows' [`crate::count::RowDigest`], 32 hex digits (absent in
    /// archives written before it existed: a restore then cannot call the
    /// table already restored on its counts alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl Manifest {
    /// The file entry for `path`.
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.path == path)
    }
}

/// A database, collection or table name as one path component: `%`,
/// `/`, `\\`, control characters and a leading `.` are percent-encoded
/// (as mongodump escapes collection names), so a name can never climb out
/// of its directory or hide as a dot file, whatever the source server held.
/// Ordinary names are unchanged.
pub fn path_component(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, c) in name.char_indices() {
        if matches!(c, '%' | '/' | '\\') || c.is_control() || (i == 0 && c == '.') {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The archive path of a collection's data (mongodump's layout; names
/// encoded by [`path_component`]).
pub fn bson_path(db: &str, collection: &str) -> String {
    format!(
        "mongo/{}/{}.bson",
        path_component(db),
        path_component(collection)
    )
}

/// The archive path of a collection's metadata (mongodump's layout).
pub fn metadata_path(db: &str, collection: &str) -> String {
    format!(
        "mongo/{}/{}.metadata.json",
        path_component(db),
        path_component(collection)
    )
}

/// The archive path of a database's SQL.
pub fn sql_path(db: &str) -> String {
    format!("postgres/{}.sql", path_component(db))
}

/// Checks a table name as pg_dump writes it in `COPY` (and as the manifest
/// carries it): an identifier, optionally schema-qualified, each part
/// either plain (`[A-Za-z_][A-Za-z0-9_$]*`) or double-quoted with `""` for
/// a quote. Only such a name may ever be put into SQL.
pub fn is_table_name(name: &str) -> bool {
    let mut parts = 0;
    let mut rest = name;
    loop {
        let Some(after) = identifier(rest) else {
            return false;
        };
        parts += 1;
        match after.strip_prefix('.') {
            Some(next) if parts < 2 => rest = next,
            Some(_) => return false,
            None => return after.is_empty(),
        }
    }
}

/// The schema-qualified table name at the start of `text` (`public."a (b"
/// (x, y) FROM stdin;` → `public."a (b"`), read as [`is_table_name`]
/// reads names, or `None`.
pub fn leading_table_name(text: &str) -> Option<&str> {
    let after_first = identifier(text)?;
    let end = match after_first.strip_prefix('.') {
        Some(rest) => identifier(rest)?,
        None => after_first,
    };
    Some(&text[..text.len() - end.len()])
}

/// Consumes one identifier at the start of `text`, returning what follows.
fn identifier(text: &str) -> Option<&str> {
    if let Some(quoted) = text.strip_prefix('"') {
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if quoted[i + 1..].starts_with('"') {
                    chars.next();
                    continue;
                }
                return (i > 0).then(|| &quoted[i + 1..]);
            }
            if c == '\0' {
                return None;
            }
        }
        return None;
    }
    let first = text.chars().next()?;
    if !(first.is_alphabetic() || first == '_') {
        return None;
    }
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .unwrap_or(text.len());
    Some(&text[end..])
}

/// MongoDB databases a restore never writes: users, roles, the oplog,
/// sessions and cluster state live there (export and the vendor path leave
/// them out too).
pub const SYSTEM_DATABASES: [&str; 3] = ["admin", "local", "config"];

/// Every problem with the names a manifest carries, found before anything
/// is read by name or put into SQL: empty, overlong or NUL-holding names,
/// MongoDB's system namespaces (`admin`, `local`, `config`, `*.system.*`:
/// a restore with `--drop` there could delete the target's users), table
/// names that are not identifiers, collections and databases whose data
/// file the manifest does not list. Names are cut short in the messages.
pub fn check_names(manifest: &Manifest) -> Vec<String> {
    let mut problems = Vec::new();
    let listed = |path: &str| manifest.files.iter().any(|f| f.path == path);
    let bad = |name: &str, max: usize| name.is_empty() || name.contains('\0') || name.len() > max;
    let shown = |name: &str| crate::sqlsplit::cut(name, 80);
    for c in &manifest.mongo {
        if bad(&c.db, 64) || bad(&c.collection, 255) {
            problems.push(format!(
                "manifest: MongoDB collection {:?}.{:?} has an empty or overlong name, or one \
                 holding NUL",
                shown(&c.db),
                shown(&c.collection)
            ));
        } else if SYSTEM_DATABASES.contains(&c.db.as_str()) || c.collection.starts_with("system.") {
            problems.push(format!(
                "manifest: MongoDB collection {}.{} is a system namespace (users, roles, the \
                 oplog or cluster state); a restore never writes one, so this archive is refused",
                shown(&c.db),
                shown(&c.collection)
            ));
        } else if !listed(&bson_path(&c.db, &c.collection)) {
            problems.push(format!(
                "manifest: collection {}.{} has no data file {} in the archive's file list",
                c.db,
                c.collection,
                bson_path(&c.db, &c.collection)
            ));
        }
    }
    for v in &manifest.mongo_views {
        if bad(&v.db, 64) || bad(&v.view, 255) {
            problems.push(format!(
                "manifest: MongoDB view {:?}.{:?} has an empty or overlong name, or one holding NUL",
                shown(&v.db),
                shown(&v.view)
            ));
        } else if SYSTEM_DATABASES.contains(&v.db.as_str()) || v.view.starts_with("system.") {
            problems.push(format!(
                "manifest: MongoDB view {}.{} is in a system namespace; a restore never writes one, \
                 so this archive is refused",
                shown(&v.db),
                shown(&v.view)
            ));
        } else if !listed(&metadata_path(&v.db, &v.view)) {
            problems.push(format!(
                "manifest: view {}.{} has no definition {} in the archive's file list",
                v.db,
                v.view,
                metadata_path(&v.db, &v.view)
            ));
        }
    }
    for d in &manifest.postgres {
        if bad(&d.db, 63) {
            problems.push(format!(
                "manifest: PostgreSQL database {:?} has an empty or overlong name, or one \
                 holding NUL",
                shown(&d.db)
            ));
        } else if !listed(&sql_path(&d.db)) {
            problems.push(format!(
                "manifest: database {} has no SQL file {} in the archive's file list",
                d.db,
                sql_path(&d.db)
            ));
        }
        for t in &d.tables {
            if !is_table_name(&t.name) {
                problems.push(format!(
                    "manifest: database {}: {:?} is not a table name as pg_dump writes them \
                     (schema.table, quoted where needed); refused before it reaches any SQL",
                    d.db,
                    shown(&t.name)
                ));
            }
        }
    }
    problems
}
