//! The final pass's PostgreSQL half, one database at a time and each in
//! one transaction on the target. Every table of the source is read
//! through the protocol as a binary `COPY`, in key order — the server
//! sends its rows as stored, the cheapest thing it can do with them (a
//! column whose binary form could differ between versions, see
//! [`binary_stable`], is sent as its text) — and each row is digested here
//! as its bytes pass (SHA-256 under the state's random key, so no writer
//! of rows can make two rows digest alike; a row is never held whole).
//! The pre-copy recorded the target's rows the same way ([`record`]); the
//! source is merged with that record — or, where the target's row count is
//! not the record's, with the target's rows read the same way. Rows only
//! the source has are inserted, rows only the other side has are deleted,
//! rows whose digest differs are updated, all from the source's own
//! `COPY` of exactly those rows (never SQL from anywhere else; keys go
//! into SQL as printed here from their binary form). A table is merged by
//! key when its primary key is one integer or `uuid` column; any other
//! table (no primary key, a composite or text key) is compared whole, by
//! an order-independent sum of its rows' digests, and replaced whole when
//! it differs. Sequences are set from the source. The source is read in
//! one `REPEATABLE READ READ ONLY` transaction: the server itself refuses
//! any write to it. Afterwards every row written is read back from the
//! target and compared, every row deleted checked gone, and each changed
//! table's row count compared with the source's; the record of each table
//! moved is renewed.

use std::collections::BTreeMap;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use sha2::{Digest as _, Sha256};
use tokio_postgres::{Client, CopyOutStream};

use super::keys::{DigestKey, KeyReader, KeyWriter, first_half};
use super::state::{DatabaseDigests, TableDigests};
use super::{Change, KeyFiles, Moved};
use crate::error::Error;
use crate::postgres::{PgClient, describe};

/// Keys remembered per table before the table is replaced whole instead.
const MAX_KEYS: usize = 1_000_000;
/// Keys named in one `COPY` of source rows, or one `DELETE`.
const KEYS_PER_STATEMENT: usize = 10_000;

/// How a table's key is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    /// `smallint`, `integer`, `bigint`: compared as numbers.
    Integer(&'static str),
    /// `uuid`: compared as its bytes, as the server orders it.
    Uuid,
}

impl KeyKind {
    fn of(sql_type: &str) -> Option<KeyKind> {
        match sql_type {
            "smallint" => Some(KeyKind::Integer("smallint")),
            "integer" => Some(KeyKind::Integer("integer")),
            "bigint" => Some(KeyKind::Integer("bigint")),
            "uuid" => Some(KeyKind::Uuid),
            _ => None,
        }
    }

    fn sql_type(self) -> &'static str {
        match self {
            KeyKind::Integer(t) => t,
            KeyKind::Uuid => "uuid",
        }
    }

    /// The key from its binary form (big-endian integer of the type's
    /// width, or the uuid's 16 bytes); `None` for any other length.
    fn read(self, bytes: &[u8]) -> Option<Key> {
        match (self, bytes.len()) {
            (KeyKind::Integer("smallint"), 2) => Some(Key::Int(i64::from(i16::from_be_bytes([
                bytes[0], bytes[1],
            ])))),
            (KeyKind::Integer("integer"), 4) => Some(Key::Int(i64::from(i32::from_be_bytes(
                bytes.try_into().ok()?,
            )))),
            (KeyKind::Integer("bigint"), 8) => {
                Some(Key::Int(i64::from_be_bytes(bytes.try_into().ok()?)))
            }
            (KeyKind::Uuid, 16) => Some(Key::Uuid(bytes.try_into().ok()?)),
            _ => None,
        }
    }
}

/// A key as read: it orders as the server orders the column, and its text
/// (what goes into SQL) is made here, never taken from the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Int(i64),
    Uuid([u8; 16]),
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Int(i) => write!(f, "{i}"),
            Key::Uuid(b) => {
                for (i, byte) in b.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        f.write_str("-")?;
                    }
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
        }
    }
}

impl Key {
    /// The key as a key file holds it: `0` and the integer (8 bytes), or
    /// `1` and the uuid's 16 bytes.
    fn to_bytes(self) -> Vec<u8> {
        match self {
            Key::Int(i) => [&[0u8][..], &i.to_be_bytes()].concat(),
            Key::Uuid(b) => [&[1u8][..], &b].concat(),
        }
    }

    /// A key file's key, if it is one of `kind`.
    fn from_bytes(bytes: &[u8], kind: KeyKind) -> Option<Key> {
        match (kind, bytes.split_first()?) {
            (KeyKind::Integer(_), (0, rest)) => {
                Some(Key::Int(i64::from_be_bytes(rest.try_into().ok()?)))
            }
            (KeyKind::Uuid, (1, rest)) => Some(Key::Uuid(rest.try_into().ok()?)),
            _ => None,
        }
    }
}

/// `'{k1,k2,…}'::type[]`: keys as an SQL array literal.
fn key_array(keys: &[Key], kind: KeyKind) -> String {
    let texts: Vec<String> = keys.iter().map(Key::to_string).collect();
    format!("'{{{}}}'::{}[]", texts.join(","), kind.sql_type())
}

/// Column types whose binary form is the same on every PostgreSQL from
/// 9.5 on and names no catalog OID; any other column is compared as its
/// text. (Dates and times only when both servers store them as integers.)
fn binary_stable(sql_type: &str, integer_datetimes: bool) -> bool {
    match sql_type {
        "smallint" | "integer" | "bigint" | "boolean" | "text" | "character varying"
        | "character" | "bytea" | "uuid" | "real" | "double precision" | "numeric" | "jsonb"
        | "json" => true,
        "date"
        | "timestamp without time zone"
        | "timestamp with time zone"
        | "time without time zone" => integer_datetimes,
        _ => false,
    }
}

/// A table as the catalog describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Table {
    schema: String,
    name: String,
    columns: Vec<String>,
    /// Each column's type, as `format_type` names it.
    types: Vec<String>,
    /// The one-column primary key and its type's name.
    key: Option<(String, String)>,
}

impl Table {
    /// `schema.name` as the dump names it (for messages and the report).
    fn shown(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    fn qualified(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(&self.name))
    }

    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `src."a", src."b"`: the columns of the table aliased `src`.
    fn source_columns(&self) -> String {
        self.columns
            .iter()
            .map(|c| format!("src.{}", ident(c)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The `COPY` that sends the rows as they are compared, in binary:
    /// the key first when the table has a usable key (in key order when
    /// `ordered`; only the rows with `only` keys when given), then every
    /// column — as it is stored when its binary form is the same on both
    /// servers ([`binary_stable`]), else as its text.
    fn compared_rows(
        &self,
        ordered: bool,
        only: Option<&[Key]>,
        integer_datetimes: bool,
    ) -> String {
        let columns: Vec<String> = self
            .columns
            .iter()
            .zip(&self.types)
            .map(|(c, t)| {
                if binary_stable(t, integer_datetimes) {
                    format!("src.{}", ident(c))
                } else {
                    format!("src.{}::text", ident(c))
                }
            })
            .collect();
        let mut select = match self.key_kind() {
            Some((key, _)) => format!("SELECT src.{}, {}", ident(&key), columns.join(", ")),
            None => format!("SELECT {}", columns.join(", ")),
        };
        select.push_str(&format!(" FROM ONLY {} src", self.qualified()));
        if let (Some((key, kind)), Some(keys)) = (self.key_kind(), only) {
            select.push_str(&format!(
                " WHERE src.{} = ANY({})",
                ident(&key),
                key_array(keys, kind)
            ));
        }
        if let (Some((key, _)), true) = (self.key_kind(), ordered) {
            select.push_str(&format!(" ORDER BY src.{}", ident(&key)));
        }
        format!("COPY ({select}) TO STDOUT (FORMAT binary)")
    }

    fn key_kind(&self) -> Option<(String, KeyKind)> {
        let (column, sql_type) = self.key.as_ref()?;
        Some((column.clone(), KeyKind::of(sql_type)?))
    }
}

/// A quoted identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A count and an order-independent sum of keyed row digests (a multiset
/// hash: with a key no writer of rows knows, sets of rows that differ do
/// not sum alike).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Aggregate {
    rows: u64,
    sum: u128,
}

impl Aggregate {
    fn add(&mut self, digest: u128) {
        self.rows += 1;
        self.sum = self.sum.wrapping_add(digest);
    }

    /// The record of a table compared whole.
    fn entry(self) -> TableDigests {
        TableDigests {
            rows: self.rows,
            file: None,
            sum: Some(format!("{:032x}", self.sum)),
        }
    }
}

/// The record of a keyed table whose key file `name` is written by `out`
/// (finished here).
fn keyed_entry(name: String, out: KeyWriter) -> Result<TableDigests, Error> {
    Ok(TableDigests {
        rows: out.finish()?,
        file: Some(name),
        sum: None,
    })
}

/// A sequence to set: schema, name, the source's `(last_value,
/// is_called)` and the target's.
type SequenceChange = (String, String, (i64, bool), (i64, bool));

/// What one table needs.
#[derive(Debug)]
enum TablePlan {
    /// The same rows on both sides.
    Same,
    /// These keys to insert or update from the source, these to delete.
    Keys {
        /// With the source row's digest, to check the target against.
        upsert: Vec<(Key, u128)>,
        delete: Vec<Key>,
        moved: Moved,
    },
    /// Different, and compared whole: replace every row.
    Whole { source_rows: u64, target_rows: u64 },
}

/// What the pass found and did in one database.
#[derive(Debug, Default)]
pub(super) struct DatabaseOutcome {
    pub(super) moved: Moved,
    pub(super) changes: Vec<Change>,
    pub(super) unchanged: usize,
    pub(super) mismatches: Vec<String>,
    pub(super) warnings: Vec<String>,
    /// The record of what the target holds now (`None`: not recorded).
    pub(super) recorded: Option<DatabaseDigests>,
}

fn failed(what: String) -> impl Fn(tokio_postgres::Error) -> Error {
    move |e| Error::Postgres {
        what: what.clone(),
        detail: describe(&e),
    }
}

/// Session settings under which both servers print a row the same way:
/// ISO dates in UTC, `postgres` intervals, hex bytea, and floats to the
/// precision both print alike (`float_digits`: 3, exact, when both are on
/// the same side of PostgreSQL 12; else 0, fifteen significant digits).
fn settings(float_digits: i32) -> String {
    format!(
        "SET DateStyle = ISO; SET IntervalStyle = postgres; SET TimeZone = 'UTC'; \
         SET bytea_output = hex; SET extra_float_digits = {float_digits}"
    )
}

async fn tables(client: &Client, what: &str) -> Result<Vec<Table>, Error> {
    let key = |column: &str| {
        format!(
            "(SELECT {column} FROM pg_index i JOIN pg_attribute a \
               ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
             WHERE i.indrelid = c.oid AND i.indisprimary AND i.indnatts = 1)"
        )
    };
    let sql = format!(
        "SELECT n.nspname::text, c.relname::text, \
           ARRAY(SELECT a.attname::text FROM pg_attribute a \
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum), \
           ARRAY(SELECT format_type(a.atttypid, NULL) FROM pg_attribute a \
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum), \
           {}, {} \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' \
           AND n.nspname NOT LIKE 'pg\\_%' \
         ORDER BY 1, 2",
        key("a.attname::text"),
        key("format_type(a.atttypid, NULL)")
    );
    let rows = client
        .query(sql.as_str(), &[])
        .await
        .map_err(failed(format!("listing the tables of {what}")))?;
    Ok(rows
        .iter()
        .map(|row| Table {
            schema: row.get(0),
            name: row.get(1),
            columns: row.get(2),
            types: row.get(3),
            key: match (
                row.get::<_, Option<String>>(4),
                row.get::<_, Option<String>>(5),
            ) {
                (Some(column), Some(sql_type)) => Some((column, sql_type)),
                _ => None,
            },
        })
        .collect())
}

/// `(schema, name)` of every sequence.
async fn sequences(client: &Client, what: &str) -> Result<Vec<(String, String)>, Error> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'S' AND n.nspname <> 'information_schema' \
               AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(failed(format!("listing the sequences of {what}")))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// A sequence's `(last_value, is_called)`.
async fn sequence_value(
    client: &Client,
    schema: &str,
    name: &str,
    what: &str,
) -> Result<(i64, bool), Error> {
    let row = client
        .query_one(
            format!(
                "SELECT last_value, is_called FROM {}.{}",
                ident(schema),
                ident(name)
            )
            .as_str(),
            &[],
        )
        .await
        .map_err(failed(format!(
            "reading sequence {schema}.{name} of {what}"
        )))?;
    Ok((row.get(0), row.get(1)))
}

/// `(child, parent)` foreign-key edges between tables, as `schema.name`.
async fn references(client: &Client, what: &str) -> Result<Vec<(String, String)>, Error> {
    let rows = client
        .query(
            "SELECT cn.nspname || '.' || c.relname, pn.nspname || '.' || p.relname \
             FROM pg_constraint k \
             JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace \
             JOIN pg_class p ON p.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace \
             WHERE k.contype = 'f' AND k.conrelid <> k.confrelid",
            &[],
        )
        .await
        .map_err(failed(format!("reading the foreign keys of {what}")))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Each table's depth below the tables it references (0: references
/// none), so that rows are added parents first and deleted children first.
fn depths(tables: &[Table], edges: &[(String, String)]) -> BTreeMap<String, usize> {
    let mut depth: BTreeMap<String, usize> = tables.iter().map(|t| (t.shown(), 0)).collect();
    for _ in 0..tables.len().min(64) {
        let mut moved = false;
        for (child, parent) in edges {
            let want = depth.get(parent).copied().unwrap_or(0) + 1;
            if let Some(d) = depth.get_mut(child)
                && *d < want
            {
                *d = want;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    depth
}

/// The signature that opens a binary `COPY`.
const BINARY_SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// The rows of a binary `COPY … TO STDOUT`, each as its key (the first
/// field, when the read is keyed) and a keyed digest of all its fields,
/// computed here as the bytes pass: the servers only send their rows as
/// stored (no formatting, the cheapest thing they can do with them), and
/// however long a row is, only a chunk of it is held. Every length read
/// is bounded before it is used; none is allocated.
struct Rows {
    stream: Pin<Box<CopyOutStream>>,
    chunk: Bytes,
    at: usize,
    done: bool,
    started: bool,
    key: Option<KeyKind>,
    fields: usize,
    digests: DigestKey,
    what: String,
}

impl Rows {
    /// Opens `sql`, whose rows have `fields` fields (the key first when
    /// `key` is given).
    async fn open(
        client: &Client,
        sql: &str,
        key: Option<KeyKind>,
        fields: usize,
        digests: &DigestKey,
        what: String,
    ) -> Result<Rows, Error> {
        let stream = client
            .copy_out(sql)
            .await
            .map_err(failed(format!("reading {what}")))?;
        Ok(Rows {
            stream: Box::pin(stream),
            chunk: Bytes::new(),
            at: 0,
            done: false,
            started: false,
            key,
            fields,
            digests: digests.clone(),
            what,
        })
    }

    /// Whether there are bytes to read, fetching the next chunk if needed.
    async fn fill(&mut self) -> Result<bool, Error> {
        while self.at == self.chunk.len() {
            if self.done {
                return Ok(false);
            }
            match self.stream.next().await {
                Some(chunk) => {
                    self.chunk = chunk.map_err(failed(format!("reading {}", self.what)))?;
                    self.at = 0;
                }
                None => self.done = true,
            }
        }
        Ok(true)
    }

    /// Reads exactly `out.len()` bytes.
    async fn take(&mut self, out: &mut [u8]) -> Result<(), Error> {
        let mut got = 0;
        while got < out.len() {
            if !self.fill().await? {
                return Err(self.bad("cut short"));
            }
            let n = (out.len() - got).min(self.chunk.len() - self.at);
            out[got..got + n].copy_from_slice(&self.chunk[self.at..self.at + n]);
            self.at += n;
            got += n;
        }
        Ok(())
    }

    /// Passes the next `len` bytes to `digest` (or drops them).
    async fn pass_on(
        &mut self,
        mut len: usize,
        mut digest: Option<&mut Sha256>,
    ) -> Result<(), Error> {
        while len > 0 {
            if !self.fill().await? {
                return Err(self.bad("cut short"));
            }
            let n = len.min(self.chunk.len() - self.at);
            if let Some(d) = digest.as_deref_mut() {
                d.update(&self.chunk[self.at..self.at + n]);
            }
            self.at += n;
            len -= n;
        }
        Ok(())
    }

    async fn int32(&mut self) -> Result<i32, Error> {
        let mut b = [0u8; 4];
        self.take(&mut b).await?;
        Ok(i32::from_be_bytes(b))
    }

    fn bad(&self, what: &str) -> Error {
        Error::Invalid(format!(
            "{}: the server sent rows this reader cannot read ({what})",
            self.what
        ))
    }
}

/// Rows digested per batch handed over by [`Ahead`].
const AHEAD_BATCH: usize = 1024;

/// A row as compared: its key (for a keyed read) and its digest.
type Digested = (Option<Key>, u128);

/// A [`Rows`] read ahead on its own task ([`super::read_ahead`]).
struct Ahead {
    batches: super::Ahead<Digested>,
    batch: std::vec::IntoIter<Digested>,
    done: bool,
}

impl super::Pull for Rows {
    type Item = Digested;

    /// The next row: its key (for a keyed read) and its digest.
    async fn pull(&mut self) -> Result<Option<Digested>, Error> {
        if !self.started {
            let mut signature = [0u8; 11];
            self.take(&mut signature).await?;
            if &signature != BINARY_SIGNATURE {
                return Err(self.bad("not a binary COPY"));
            }
            let _flags = self.int32().await?;
            let extension = usize::try_from(self.int32().await?)
                .map_err(|_| self.bad("a negative header length"))?;
            self.pass_on(extension, None).await?;
            self.started = true;
        }
        let mut count = [0u8; 2];
        self.take(&mut count).await?;
        let count = i16::from_be_bytes(count);
        if count == -1 {
            return Ok(None);
        }
        if usize::try_from(count).ok() != Some(self.fields) {
            return Err(self.bad("a row with another number of fields"));
        }
        let mut digest = Sha256::new();
        digest.update(self.digests.0);
        digest.update(count.to_be_bytes());
        let mut key = None;
        for field in 0..self.fields {
            let len = self.int32().await?;
            digest.update(len.to_be_bytes());
            if len == -1 {
                if field == 0 && self.key.is_some() {
                    return Err(self.bad("a null key"));
                }
                continue;
            }
            let len = usize::try_from(len).map_err(|_| self.bad("a negative field length"))?;
            match self.key {
                Some(kind) if field == 0 => {
                    if len > 16 {
                        return Err(self.bad("a key longer than a uuid"));
                    }
                    let mut bytes = [0u8; 16];
                    self.take(&mut bytes[..len]).await?;
                    digest.update(&bytes[..len]);
                    key = Some(
                        kind.read(&bytes[..len])
                            .ok_or_else(|| self.bad("a key of another width than its type's"))?,
                    );
                }
                _ => self.pass_on(len, Some(&mut digest)).await?,
            }
        }
        Ok(Some((key, first_half(&digest.finalize()))))
    }
}

impl Ahead {
    fn spawn(rows: Rows) -> Ahead {
        Ahead {
            batches: super::read_ahead(rows, AHEAD_BATCH),
            batch: Vec::new().into_iter(),
            done: false,
        }
    }

    /// The next row.
    async fn next(&mut self) -> Result<Option<Digested>, Error> {
        loop {
            if let Some(row) = self.batch.next() {
                return Ok(Some(row));
            }
            if self.done {
                return Ok(None);
            }
            match self.batches.recv().await {
                Some(Ok(batch)) => self.batch = batch.into_iter(),
                Some(Err(e)) => return Err(e),
                None => self.done = true,
            }
        }
    }
}

/// The two sides of one database, and the record of the target.
pub(super) struct Pair<'a> {
    pub(super) db: &'a str,
    pub(super) source: &'a PgClient,
    pub(super) target: &'a PgClient,
    pub(super) dry_run: bool,
    pub(super) progress: ha_plan::Progress<'a>,
    /// The record of what the target held (the pre-copy's, or the last
    /// pass's), if any.
    pub(super) recorded: Option<&'a DatabaseDigests>,
    /// Where its key files are.
    pub(super) dir: &'a std::path::Path,
    /// The key of every digest.
    pub(super) key: &'a DigestKey,
    /// Where new key files go (`None`: a dry run writes none).
    pub(super) files: Option<&'a KeyFiles>,
}

/// A server's major version (for [`settings`]) and whether it stores
/// dates and times as integers (for [`binary_stable`]).
async fn server_kind(client: &Client, what: &str) -> Result<(i32, bool), Error> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int / 10000, \
                    current_setting('integer_datetimes') = 'on'",
            &[],
        )
        .await
        .map_err(failed(format!("reading the version of {what}")))?;
    Ok((row.get(0), row.get(1)))
}

/// How two servers' rows are compared: dates and times in binary only when
/// both store them as integers; floats in text exact when both are on the
/// same side of PostgreSQL 12.
async fn comparing(source: &Client, target: &Client, db: &str) -> Result<(bool, i32), Error> {
    let (source_what, target_what) = (format!("the source's {db}"), format!("the target's {db}"));
    let ((source_major, source_dates), (target_major, target_dates)) = futures_util::try_join!(
        server_kind(source, &source_what),
        server_kind(target, &target_what)
    )?;
    let float_digits = if (source_major >= 12) == (target_major >= 12) {
        3
    } else {
        0
    };
    Ok((source_dates && target_dates, float_digits))
}

/// Records, after a pre-copy loaded `db`, what the target holds: each
/// keyed table's keys and row digests (a key file), each other table's
/// count and digest sum — computed as a final pass computes the source's.
pub(super) async fn record(
    source: &PgClient,
    target: &PgClient,
    db: &str,
    key: &DigestKey,
    files: &KeyFiles,
) -> Result<DatabaseDigests, Error> {
    let target_what = format!("the target's {db}");
    let (source, target) = futures_util::try_join!(source.connect(db), target.connect(db))?;
    let (integer_datetimes, float_digits) = comparing(&source, &target, db).await?;
    drop(source);
    target
        .batch_execute(&settings(float_digits))
        .await
        .map_err(failed(format!("settings on {target_what}")))?;
    let how = Reading {
        digests: key,
        integer_datetimes,
    };
    let mut recorded = DatabaseDigests {
        integer_datetimes,
        float_digits,
        tables: BTreeMap::new(),
    };
    for table in tables(&target, &target_what).await? {
        let what = format!("{} of {target_what}", table.shown());
        let entry = if table.key_kind().is_some() {
            let (name, mut out) = files.create()?;
            let mut rows = how.open(&target, &table, true, None, &what).await?;
            let mut last: Option<Key> = None;
            while let Some((k, h)) = rows.next().await? {
                let k = k.expect("a keyed read");
                if last.is_some_and(|l| l >= k) {
                    return Err(Error::Invalid(format!(
                        "{what}: rows did not come in key order (at key {k})"
                    )));
                }
                last = Some(k);
                out.push(&k.to_bytes(), h)?;
            }
            keyed_entry(name, out)?
        } else {
            aggregate_of(&target, &table, how, &what).await?.entry()
        };
        recorded.tables.insert(table.shown(), entry);
    }
    Ok(recorded)
}

/// Makes the target's database hold the source's rows and sequence values.
pub(super) async fn pass(pair: Pair<'_>) -> Result<DatabaseOutcome, Error> {
    let db = pair.db;
    let source_what = format!("the source's {db}");
    let target_what = format!("the target's {db}");
    let source = pair.source.connect(db).await?;
    let target = pair.target.connect(db).await?;
    let (integer_datetimes, float_digits) = comparing(&source, &target, db).await?;
    let how = Reading {
        digests: pair.key,
        integer_datetimes,
    };
    // The record serves only if its digests were computed as these are.
    let record = pair
        .recorded
        .filter(|r| r.integer_datetimes == integer_datetimes && r.float_digits == float_digits);
    source
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(failed(format!(
            "starting a read-only transaction on {source_what}"
        )))?;
    let reading = &source;
    reading
        .batch_execute(&settings(float_digits))
        .await
        .map_err(failed(format!("settings on {source_what}")))?;
    target
        .batch_execute(&settings(float_digits))
        .await
        .map_err(failed(format!("settings on {target_what}")))?;
    let (ours, theirs) =
        futures_util::try_join!(tables(reading, &source_what), tables(&target, &target_what))?;
    check_same_tables(db, &ours, &theirs)?;
    let mut outcome = DatabaseOutcome::default();
    let mut plans = Vec::new();
    let mut planned = Vec::new();
    for table in &ours {
        let entry = record.and_then(|r| r.tables.get(&table.shown()));
        let found = plan_table(
            reading,
            &target,
            table,
            db,
            how,
            entry.map(|e| (e, pair.dir)),
            pair.files,
        )
        .await?;
        outcome.warnings.extend(found.warning.clone());
        let entry = entry.filter(|_| found.used_record);
        let plan = found.plan;
        match &plan {
            TablePlan::Same => outcome.unchanged += 1,
            TablePlan::Keys { moved, .. } => {
                (pair.progress)(&format!(
                    "postgres {db} {}: {} to insert, {} to update, {} to delete",
                    table.shown(),
                    moved.inserted,
                    moved.replaced,
                    moved.deleted
                ));
                outcome.moved.add(*moved);
            }
            TablePlan::Whole {
                source_rows,
                target_rows,
            } => {
                (pair.progress)(&format!(
                    "postgres {db} {}: differs; {target_rows} rows to replace with the source's \
                     {source_rows}",
                    table.shown()
                ));
                outcome.moved.add(Moved {
                    inserted: *source_rows,
                    deleted: *target_rows,
                    replaced: 0,
                });
            }
        }
        plans.push((table.clone(), plan, found.aggregate));
        planned.push((entry, found.renewed));
    }
    let mut sequence_changes = Vec::new();
    for (schema, name) in sequences(reading, &source_what).await? {
        let want = sequence_value(reading, &schema, &name, &source_what).await?;
        let held = sequence_value(&target, &schema, &name, &target_what).await?;
        if want != held {
            sequence_changes.push((schema, name, want, held));
        }
    }
    for (table, plan, _) in &plans {
        if let Some(change) = table_change(db, table, plan) {
            outcome.changes.push(change);
        }
    }
    for (schema, name, want, held) in &sequence_changes {
        outcome.changes.push(Change::new(
            "set-sequence",
            format!("postgres {db} {schema}.{name}"),
            format!("{} (was {})", want.0, held.0),
        ));
    }
    if pair.dry_run {
        return Ok(outcome);
    }
    let mut wrong_tables = Vec::new();
    if !outcome.changes.is_empty() {
        // Rows move exactly as the source holds them: floats to the last digit.
        reading
            .batch_execute("SET extra_float_digits = 3")
            .await
            .map_err(failed(format!("settings on {source_what}")))?;
        let edges = references(&target, &target_what).await?;
        let depth = depths(&ours, &edges);
        apply(reading, &target, db, &plans, &depth, &sequence_changes).await?;
        (pair.progress)(&format!("postgres {db}: committed"));
        // Checked, not assumed: every row written is read back from the
        // target and must digest as the source's, every row deleted must
        // be gone, and each changed table must hold as many rows as the
        // source; a table replaced whole is read back whole. Every set
        // sequence too.
        for (table, plan, aggregate) in &plans {
            let what = format!("{} of the target's {db}", table.shown());
            let wrong = match plan {
                TablePlan::Same => None,
                TablePlan::Whole { .. } => {
                    let held = aggregate_of(&target, table, how, &what).await?;
                    (held != *aggregate).then(|| {
                        format!(
                            "the target has {} rows, the source {}, or other rows",
                            held.rows, aggregate.rows
                        )
                    })
                }
                TablePlan::Keys { upsert, delete, .. } => {
                    check_keys(&target, table, how, upsert, delete, aggregate.rows, &what).await?
                }
            };
            if let Some(wrong) = wrong {
                wrong_tables.push(table.shown());
                outcome.mismatches.push(format!(
                    "postgres {db} {}: after the pass {wrong}",
                    table.shown()
                ));
            }
        }
        for (schema, name, want, _) in &sequence_changes {
            let held = sequence_value(&target, schema, name, &target_what).await?;
            if held != *want {
                outcome.mismatches.push(format!(
                    "postgres {db} sequence {schema}.{name}: {} on the target, {} on the source",
                    held.0, want.0
                ));
            }
        }
    }
    reading
        .batch_execute("COMMIT")
        .await
        .map_err(failed(format!("ending the read of {source_what}")))?;
    // The record of what the target holds now: a table left as it was
    // keeps its entry; one written to, or not recorded before, gets the
    // source's digests as this pass read them; one found wrong, none.
    let mut renewed = DatabaseDigests {
        integer_datetimes,
        float_digits,
        tables: BTreeMap::new(),
    };
    for ((table, plan, aggregate), (entry, fresh)) in plans.iter().zip(planned) {
        let shown = table.shown();
        if wrong_tables.contains(&shown) {
            continue;
        }
        let entry = match (plan, entry, fresh) {
            (TablePlan::Same, Some(entry), _) => entry.clone(),
            (_, _, Some((name, out))) => keyed_entry(name, out)?,
            (_, _, None) if table.key_kind().is_none() => aggregate.entry(),
            _ => continue,
        };
        renewed.tables.insert(shown, entry);
    }
    outcome.recorded = Some(renewed);
    Ok(outcome)
}

fn check_same_tables(db: &str, ours: &[Table], theirs: &[Table]) -> Result<(), Error> {
    let mut problems = Vec::new();
    for table in ours {
        match theirs
            .iter()
            .find(|t| t.schema == table.schema && t.name == table.name)
        {
            None => problems.push(format!("{} is not on the target", table.shown())),
            Some(held) if held.columns != table.columns => problems.push(format!(
                "{} has columns ({}) on the target, ({}) on the source",
                table.shown(),
                held.columns.join(", "),
                table.columns.join(", ")
            )),
            Some(_) => {}
        }
    }
    for table in theirs {
        if !ours
            .iter()
            .any(|t| t.schema == table.schema && t.name == table.name)
        {
            problems.push(format!("{} is on the target only", table.shown()));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "postgres {db}: the schema changed since the pre-copy ({}); the final pass moves rows, \
         not tables: move this database again whole with a transfer of it that drops what the \
         target holds",
        problems.join("; ")
    )))
}

/// How both servers send a table's rows for comparison.
#[derive(Clone, Copy)]
struct Reading<'a> {
    /// The key of every digest.
    digests: &'a DigestKey,
    /// Both servers store dates and times as integers.
    integer_datetimes: bool,
}

impl Reading<'_> {
    /// Opens the rows of `table` (in key order when `ordered`, only those
    /// with `only` keys when given) on `client`.
    async fn open(
        &self,
        client: &Client,
        table: &Table,
        ordered: bool,
        only: Option<&[Key]>,
        what: &str,
    ) -> Result<Ahead, Error> {
        let kind = table.key_kind().map(|(_, kind)| kind);
        let fields = table.columns.len() + usize::from(kind.is_some());
        let sql = table.compared_rows(ordered, only, self.integer_datetimes);
        Rows::open(client, &sql, kind, fields, self.digests, what.to_owned())
            .await
            .map(Ahead::spawn)
    }
}

/// What comparing one table found.
struct Found {
    plan: TablePlan,
    /// The source's row count and digest sum.
    aggregate: Aggregate,
    /// Whether the record of the target served (the target was not read).
    used_record: bool,
    /// A keyed table's new key file, the source's keys and digests as
    /// read (name, writer), kept once the pass is checked.
    renewed: Option<(String, KeyWriter)>,
    /// What the operator should know.
    warning: Option<String>,
}

/// The other side of a table's merge: the target's rows, or the record
/// of them (its key file).
enum Theirs {
    Target(Ahead),
    Record {
        reader: KeyReader,
        kind: KeyKind,
        key: Vec<u8>,
        last: Option<Key>,
    },
}

impl Theirs {
    async fn next(&mut self) -> Result<Option<(Key, u128)>, Error> {
        match self {
            Theirs::Target(rows) => Ok(rows
                .next()
                .await?
                .map(|(k, h)| (k.expect("a keyed read"), h))),
            Theirs::Record {
                reader,
                kind,
                key,
                last,
            } => {
                let Some(digest) = reader.next(key)? else {
                    return Ok(None);
                };
                let k = Key::from_bytes(key, *kind)
                    .ok_or_else(|| reader.bad("a key not of the table's key type"))?;
                if last.is_some_and(|l| l >= k) {
                    return Err(reader.bad("its keys out of order"));
                }
                *last = Some(k);
                Ok(Some((k, digest)))
            }
        }
    }
}

/// A table's row count.
async fn count_rows(client: &Client, table: &Table, what: &str) -> Result<u64, Error> {
    let n: i64 = client
        .query_one(
            format!("SELECT count(*) FROM ONLY {}", table.qualified()).as_str(),
            &[],
        )
        .await
        .map_err(failed(format!("counting {what}")))?
        .get(0);
    u64::try_from(n).map_err(|_| Error::Invalid(format!("{what}: a row count of {n}")))
}

/// Compares one table of the source with the target — with the record of
/// what the target holds (`recorded`: its entry and the key files'
/// directory) when there is one and the target still holds as many rows
/// as it says, else with the target's rows.
async fn plan_table(
    source: &Client,
    target: &Client,
    table: &Table,
    db: &str,
    reading: Reading<'_>,
    recorded: Option<(&TableDigests, &std::path::Path)>,
    files: Option<&KeyFiles>,
) -> Result<Found, Error> {
    let source_what = format!("{} of the source's {db}", table.shown());
    let target_what = format!("{} of the target's {db}", table.shown());
    let mut warning = None;
    let mut recorded = recorded;
    if let Some((entry, _)) = recorded {
        let held = count_rows(target, table, &target_what).await?;
        if held != entry.rows {
            warning = Some(format!(
                "postgres {db} {}: the target holds {held} rows, the record of it {} (was it \
                 written to after the pre-copy?); compared with the target's rows instead",
                table.shown(),
                entry.rows
            ));
            recorded = None;
        }
    }
    let (source_ref, target_ref) = (&source_what, &target_what);
    let whole = |warning: Option<String>| async move {
        let (ours, theirs) = futures_util::try_join!(
            aggregate_of(source, table, reading, source_ref),
            aggregate_of(target, table, reading, target_ref)
        )?;
        let plan = if ours == theirs {
            TablePlan::Same
        } else {
            TablePlan::Whole {
                source_rows: ours.rows,
                target_rows: theirs.rows,
            }
        };
        Ok::<_, Error>(Found {
            plan,
            aggregate: ours,
            used_record: false,
            renewed: None,
            warning,
        })
    };
    let Some((_, kind)) = table.key_kind() else {
        let sum = recorded
            .and_then(|(entry, _)| entry.sum.as_deref().map(|sum| (entry.rows, sum)))
            .and_then(|(rows, sum)| Some((rows, u128::from_str_radix(sum, 16).ok()?)));
        let Some((rows, sum)) = sum else {
            return whole(warning).await;
        };
        let ours = aggregate_of(source, table, reading, &source_what).await?;
        let plan = if ours == (Aggregate { rows, sum }) {
            TablePlan::Same
        } else {
            TablePlan::Whole {
                source_rows: ours.rows,
                target_rows: rows,
            }
        };
        return Ok(Found {
            plan,
            aggregate: ours,
            used_record: true,
            renewed: None,
            warning,
        });
    };
    let reader = match recorded.and_then(|(entry, dir)| Some((entry.file.as_deref()?, dir))) {
        Some((file, dir)) => super::open_recorded(dir, file)?,
        None => None,
    };
    let used_record = reader.is_some();
    let mut theirs = match reader {
        Some(reader) => Theirs::Record {
            reader,
            kind,
            key: Vec::new(),
            last: None,
        },
        None => Theirs::Target(
            reading
                .open(target, table, true, None, &target_what)
                .await?,
        ),
    };
    let mut ours = reading
        .open(source, table, true, None, &source_what)
        .await?;
    let mut renewed = files.map(KeyFiles::create).transpose()?;
    let mut aggregate = Aggregate::default();
    let (mut upsert, mut delete) = (Vec::new(), Vec::new());
    let mut moved = Moved::default();
    let (mut a, mut b) = futures_util::try_join!(ours.next(), theirs.next())?;
    let mut last: Option<Key> = None;
    loop {
        // Each side must come in strictly ascending key order (it is the
        // primary key, sorted by the server): anything else is refused.
        let step = match (&a, &b) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((x, _)), Some((y, _))) => x.expect("a keyed read").cmp(y),
        };
        let key = if step == std::cmp::Ordering::Greater {
            let (k, _) = b.take().expect("matched");
            delete.push(k);
            moved.deleted += 1;
            b = theirs.next().await?;
            k
        } else {
            let (k, h) = a.take().expect("matched");
            let k = k.expect("a keyed read");
            aggregate.add(h);
            if let Some((_, out)) = renewed.as_mut() {
                out.push(&k.to_bytes(), h)?;
            }
            if step == std::cmp::Ordering::Less {
                upsert.push((k, h));
                moved.inserted += 1;
                a = ours.next().await?;
            } else {
                let (_, held) = b.take().expect("matched");
                if h != held {
                    upsert.push((k, h));
                    moved.replaced += 1;
                }
                (a, b) = futures_util::try_join!(ours.next(), theirs.next())?;
            }
            k
        };
        if last.is_some_and(|l| l >= key) {
            return Err(Error::Invalid(format!(
                "{}: rows did not come in key order (at key {key}): the table cannot be \
                 compared row by row",
                table.shown()
            )));
        }
        last = Some(key);
        if upsert.len() + delete.len() > MAX_KEYS {
            // Too many to name: the table is replaced whole.
            drop((ours, theirs));
            return whole(warning).await;
        }
    }
    let plan = if upsert.is_empty() && delete.is_empty() {
        TablePlan::Same
    } else {
        TablePlan::Keys {
            upsert,
            delete,
            moved,
        }
    };
    Ok(Found {
        plan,
        aggregate,
        used_record,
        renewed,
        warning,
    })
}

/// The count and digest sum of a table's rows, read in any order.
async fn aggregate_of(
    client: &Client,
    table: &Table,
    reading: Reading<'_>,
    what: &str,
) -> Result<Aggregate, Error> {
    let mut rows = reading.open(client, table, false, None, what).await?;
    let mut aggregate = Aggregate::default();
    while let Some((_, h)) = rows.next().await? {
        aggregate.add(h);
    }
    Ok(aggregate)
}

/// Reads back what the pass wrote into a keyed table: each upserted row
/// must digest as the source's did, no deleted key may remain, and the
/// table must hold `source_rows` rows. Returns what is wrong, if anything.
async fn check_keys(
    target: &Client,
    table: &Table,
    how: Reading<'_>,
    upsert: &[(Key, u128)],
    delete: &[Key],
    source_rows: u64,
    what: &str,
) -> Result<Option<String>, Error> {
    let (key, kind) = table.key_kind().expect("keyed plans have a key");
    for chunk in upsert.chunks(KEYS_PER_STATEMENT) {
        let keys: Vec<Key> = chunk.iter().map(|(k, _)| *k).collect();
        let mut rows = how.open(target, table, true, Some(&keys), what).await?;
        let mut wanted = chunk.iter();
        while let Some((held, digest)) = rows.next().await? {
            match wanted.next() {
                Some((k, want)) if Some(*k) == held && *want == digest => {}
                Some((k, _)) => return Ok(Some(format!("the row with key {k} differs"))),
                None => return Ok(Some("rows no one wrote".to_owned())),
            }
        }
        if let Some((k, _)) = wanted.next() {
            return Ok(Some(format!("the row with key {k} is missing")));
        }
    }
    for chunk in delete.chunks(KEYS_PER_STATEMENT) {
        let left: i64 = target
            .query_one(
                format!(
                    "SELECT count(*) FROM ONLY {} WHERE {} = ANY({})",
                    table.qualified(),
                    ident(&key),
                    key_array(chunk, kind)
                )
                .as_str(),
                &[],
            )
            .await
            .map_err(failed(format!("reading back {what}")))?
            .get(0);
        if left > 0 {
            return Ok(Some(format!("{left} rows it deleted are still there")));
        }
    }
    let held = count_rows(target, table, what).await?;
    Ok((held != source_rows)
        .then(|| format!("the target has {held} rows, the source {source_rows}")))
}

fn table_change(db: &str, table: &Table, plan: &TablePlan) -> Option<Change> {
    match plan {
        TablePlan::Same => None,
        TablePlan::Keys { moved, .. } => Some(Change::new(
            "update-table",
            format!("postgres {db} {}", table.shown()),
            format!(
                "{} inserted, {} updated, {} deleted",
                moved.inserted, moved.replaced, moved.deleted
            ),
        )),
        TablePlan::Whole {
            source_rows,
            target_rows,
        } => Some(Change::new(
            "replace-table",
            format!("postgres {db} {}", table.shown()),
            format!("{target_rows} rows replaced by the source's {source_rows}"),
        )),
    }
}

/// Streams the source's `COPY … TO STDOUT` of `select` into the target's
/// `COPY … FROM STDIN` of `into`.
async fn pipe(
    source: &Client,
    select: &str,
    target: &Client,
    into: &str,
    what: &str,
) -> Result<(), Error> {
    let stream = source
        .copy_out(select)
        .await
        .map_err(failed(format!("reading rows of {what}")))?;
    let sink = target
        .copy_in::<_, Bytes>(into)
        .await
        .map_err(failed(format!("writing rows of {what}")))?;
    let mut sink = std::pin::pin!(sink);
    let mut stream = std::pin::pin!(stream);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(failed(format!("reading rows of {what}")))?;
        sink.send(chunk)
            .await
            .map_err(failed(format!("writing rows of {what}")))?;
    }
    sink.as_mut()
        .finish()
        .await
        .map_err(failed(format!("writing rows of {what}")))?;
    Ok(())
}

/// Applies every plan in one transaction on the target: rows added or
/// updated parents first, tables replaced whole, rows deleted children
/// first, sequences set; committed only if all of it went through.
async fn apply(
    source: &Client,
    target: &Client,
    db: &str,
    plans: &[(Table, TablePlan, Aggregate)],
    depth: &BTreeMap<String, usize>,
    sequences: &[SequenceChange],
) -> Result<(), Error> {
    let what = format!("the target's {db}");
    // A failure below leaves the transaction open; the connection is then
    // dropped, and the server rolls it back (as it does when killed).
    target
        .batch_execute("BEGIN")
        .await
        .map_err(failed(format!("starting a transaction on {what}")))?;
    let tx = target;
    let mut order: Vec<&(Table, TablePlan, Aggregate)> = plans.iter().collect();
    order.sort_by_key(|(t, _, _)| depth.get(&t.shown()).copied().unwrap_or(0));
    for (i, (table, plan, _)) in order.iter().enumerate() {
        let where_ = format!("{} of {db}", table.shown());
        match plan {
            TablePlan::Same => {}
            TablePlan::Whole { .. } => {
                tx.batch_execute(&format!("DELETE FROM ONLY {}", table.qualified()))
                    .await
                    .map_err(failed(format!("emptying {where_}")))?;
                pipe(
                    source,
                    &format!(
                        "COPY (SELECT {} FROM ONLY {} src) TO STDOUT",
                        table.source_columns(),
                        table.qualified()
                    ),
                    tx,
                    &format!(
                        "COPY {} ({}) FROM STDIN",
                        table.qualified(),
                        table.column_list()
                    ),
                    &where_,
                )
                .await?;
            }
            TablePlan::Keys { upsert, .. } if !upsert.is_empty() => {
                let (key, kind) = table.key_kind().expect("keyed plans have a key");
                let stage = format!("circle_export_stage_{i}");
                tx.batch_execute(&format!(
                    "CREATE TEMP TABLE {stage} (LIKE {}) ON COMMIT DROP",
                    table.qualified()
                ))
                .await
                .map_err(failed(format!("staging rows for {where_}")))?;
                for chunk in upsert.chunks(KEYS_PER_STATEMENT) {
                    let keys: Vec<Key> = chunk.iter().map(|(k, _)| *k).collect();
                    let select = format!(
                        "COPY (SELECT {} FROM ONLY {} src WHERE src.{} = ANY({})) TO STDOUT",
                        table.source_columns(),
                        table.qualified(),
                        ident(&key),
                        key_array(&keys, kind)
                    );
                    pipe(
                        source,
                        &select,
                        tx,
                        &format!("COPY {stage} ({}) FROM STDIN", table.column_list()),
                        &where_,
                    )
                    .await?;
                }
                let set: Vec<String> = table
                    .columns
                    .iter()
                    .filter(|c| **c != key)
                    .map(|c| format!("{0} = s.{0}", ident(c)))
                    .collect();
                if !set.is_empty() {
                    tx.batch_execute(&format!(
                        "UPDATE ONLY {t} AS t SET {set} FROM {stage} s WHERE t.{k} = s.{k}",
                        t = table.qualified(),
                        set = set.join(", "),
                        k = ident(&key)
                    ))
                    .await
                    .map_err(failed(format!("updating rows of {where_}")))?;
                }
                tx.batch_execute(&format!(
                    "INSERT INTO {t} ({cols}) SELECT {scols} FROM {stage} s \
                     WHERE NOT EXISTS (SELECT 1 FROM ONLY {t} AS t WHERE t.{k} = s.{k})",
                    t = table.qualified(),
                    cols = table.column_list(),
                    scols = table
                        .columns
                        .iter()
                        .map(|c| format!("s.{}", ident(c)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    k = ident(&key)
                ))
                .await
                .map_err(failed(format!("inserting rows of {where_}")))?;
            }
            TablePlan::Keys { .. } => {}
        }
    }
    for (table, plan, _) in order.iter().rev() {
        let TablePlan::Keys { delete, .. } = plan else {
            continue;
        };
        let Some((key, kind)) = table.key_kind() else {
            continue;
        };
        for keys in delete.chunks(KEYS_PER_STATEMENT) {
            tx.batch_execute(&format!(
                "DELETE FROM ONLY {} WHERE {} = ANY({})",
                table.qualified(),
                ident(&key),
                key_array(keys, kind)
            ))
            .await
            .map_err(failed(format!(
                "deleting rows of {} of {db}",
                table.shown()
            )))?;
        }
    }
    for (schema, name, (value, called), _) in sequences {
        tx.execute(
            "SELECT setval($1::text::regclass, $2, $3)",
            &[&format!("{}.{}", ident(schema), ident(name)), value, called],
        )
        .await
        .map_err(failed(format!("setting sequence {schema}.{name} of {db}")))?;
    }
    tx.batch_execute("COMMIT")
        .await
        .map_err(failed(format!("committing {what}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_at_their_types_width_ordered_as_the_server_and_printed_here() {
        let int = KeyKind::of("bigint").unwrap();
        assert_eq!(int.read(&(-42i64).to_be_bytes()), Some(Key::Int(-42)));
        // Any other width than the type's is refused, not guessed at.
        assert_eq!(int.read(&7i32.to_be_bytes()), None);
        assert_eq!(
            KeyKind::of("integer").unwrap().read(&7i32.to_be_bytes()),
            Some(Key::Int(7))
        );
        assert_eq!(
            KeyKind::of("smallint")
                .unwrap()
                .read(&(-3i16).to_be_bytes()),
            Some(Key::Int(-3))
        );
        assert!(Key::Int(-1) < Key::Int(9) && Key::Int(9) < Key::Int(10));
        let uuid = KeyKind::Uuid
            .read(&[
                0x0e, 0x8b, 0x4c, 0xf2, 0x5b, 0xb4, 0x4b, 0x7e, 0x9c, 0x1e, 0x2f, 0x3c, 0x4d, 0x5e,
                0x6f, 0x70,
            ])
            .unwrap();
        assert_eq!(uuid.to_string(), "0e8b4cf2-5bb4-4b7e-9c1e-2f3c4d5e6f70");
        assert!(uuid < Key::Uuid([0xff; 16]));
        assert_eq!(KeyKind::Uuid.read(&[0; 15]), None);
        assert_eq!(
            key_array(&[Key::Int(-1), Key::Int(2)], int),
            "'{-1,2}'::bigint[]"
        );
        assert_eq!(KeyKind::of("text"), None);
        assert_eq!(ident("we\"ird"), "\"we\"\"ird\"");
        // As a key file holds them: only a key of the table's key type.
        for (key, kind) in [(Key::Int(-42), int), (uuid, KeyKind::Uuid)] {
            assert_eq!(Key::from_bytes(&key.to_bytes(), kind), Some(key));
        }
        assert_eq!(
            Key::from_bytes(&Key::Int(1).to_bytes(), KeyKind::Uuid),
            None
        );
        assert_eq!(Key::from_bytes(&uuid.to_bytes(), int), None);
        assert_eq!(Key::from_bytes(&[0, 1, 2], int), None);
        assert_eq!(Key::from_bytes(&[], int), None);
    }

    #[test]
    fn columns_go_binary_only_where_every_version_sends_the_same_bytes() {
        assert!(binary_stable("bigint", false));
        assert!(binary_stable("jsonb", false));
        assert!(binary_stable("timestamp with time zone", true));
        // Float-stored dates differ from integer ones; arrays, enums and
        // composites name catalog OIDs that differ between clusters.
        assert!(!binary_stable("timestamp with time zone", false));
        assert!(!binary_stable("integer[]", true));
        assert!(!binary_stable("mood", true));
        let table = Table {
            schema: "public".to_owned(),
            name: "t".to_owned(),
            columns: vec!["id".to_owned(), "tags".to_owned()],
            types: vec!["bigint".to_owned(), "text[]".to_owned()],
            key: Some(("id".to_owned(), "bigint".to_owned())),
        };
        assert_eq!(
            table.compared_rows(true, Some(&[Key::Int(5)]), true),
            "COPY (SELECT src.\"id\", src.\"id\", src.\"tags\"::text FROM ONLY \"public\".\"t\" src \
             WHERE src.\"id\" = ANY('{5}'::bigint[]) ORDER BY src.\"id\") TO STDOUT (FORMAT binary)"
        );
    }

    #[test]
    fn parents_come_before_the_tables_that_reference_them() {
        let table = |name: &str| Table {
            schema: "public".to_owned(),
            name: name.to_owned(),
            columns: vec!["id".to_owned()],
            types: vec!["bigint".to_owned()],
            key: None,
        };
        let tables = [table("builds"), table("steps"), table("orgs")];
        let edges = [
            ("public.steps".to_owned(), "public.builds".to_owned()),
            ("public.builds".to_owned(), "public.orgs".to_owned()),
        ];
        let depth = depths(&tables, &edges);
        assert_eq!(depth["public.orgs"], 0);
        assert_eq!(depth["public.builds"], 1);
        assert_eq!(depth["public.steps"], 2);
    }
}
