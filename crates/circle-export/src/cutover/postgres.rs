//! The final pass's PostgreSQL half, one database at a time and each in
//! one transaction on the target. Every table is read on both sides
//! through the protocol as `COPY` prints it, in key order, and each row is
//! digested here as its bytes pass (SHA-256 under a random key of the
//! pass, so no writer of rows can make two rows digest alike; a row is
//! never held whole): rows only the source has are inserted, rows only
//! the target has are deleted, rows whose digest differs are updated, all
//! from the source's own `COPY` of exactly those rows (never SQL from
//! anywhere else). The servers only print rows, the cheapest thing they
//! can do with them. A table is merged by key when its primary key is one
//! integer or `uuid` column; any other table (no primary key, a composite
//! or text key) is compared whole, by an order-independent sum of its
//! rows' digests, and replaced whole when it differs. Sequences are set
//! from the source. The source is read in one `REPEATABLE READ READ ONLY`
//! transaction: the server itself refuses any write to it.

use std::collections::BTreeMap;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_postgres::{Client, CopyOutStream};

use super::{Change, Moved};
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
    /// `uuid`: compared as its lowercase text, which sorts as its bytes.
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

    /// Whether `key` is what the server prints for this type (so that it
    /// can be written back into SQL as it is).
    fn valid(self, key: &str) -> bool {
        match self {
            KeyKind::Integer(_) => key.parse::<i64>().is_ok(),
            KeyKind::Uuid => {
                key.len() == 36 && key.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
            }
        }
    }

    fn compare(self, a: &str, b: &str) -> std::cmp::Ordering {
        match self {
            KeyKind::Integer(_) => a
                .parse::<i64>()
                .unwrap_or_default()
                .cmp(&b.parse::<i64>().unwrap_or_default()),
            KeyKind::Uuid => a.cmp(b),
        }
    }
}

/// A table as the catalog describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Table {
    schema: String,
    name: String,
    columns: Vec<String>,
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

    /// The `COPY` that prints the rows as they are compared: the key's
    /// text first when the table has a usable key (in key order when
    /// `ordered`), then every column.
    fn compared_rows(&self, ordered: bool) -> String {
        match self.key_kind() {
            Some((key, _)) => format!(
                "COPY (SELECT src.{k}::text, {cols} FROM ONLY {t} src{order}) TO STDOUT",
                k = ident(&key),
                cols = self.source_columns(),
                t = self.qualified(),
                order = if ordered {
                    format!(" ORDER BY src.{}", ident(&key))
                } else {
                    String::new()
                }
            ),
            None => format!(
                "COPY (SELECT {} FROM ONLY {} src) TO STDOUT",
                self.source_columns(),
                self.qualified()
            ),
        }
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
        upsert: Vec<String>,
        delete: Vec<String>,
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
            key: match (
                row.get::<_, Option<String>>(3),
                row.get::<_, Option<String>>(4),
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

/// The longest key text read (a `bigint` prints in 20 bytes, a `uuid` in 36).
const MAX_KEY_TEXT: usize = 64;

/// A random key for one pass's row digests: the digests are keyed, so no
/// one who writes rows can make two different rows (or two different sets
/// of rows) digest alike.
#[derive(Clone)]
pub(super) struct PassKey([u8; 32]);

impl PassKey {
    pub(super) fn new() -> Result<PassKey, Error> {
        use ring::rand::SecureRandom as _;
        let mut key = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| Error::Invalid("no randomness from the system".to_owned()))?;
        Ok(PassKey(key))
    }
}

/// The rows of a `COPY … TO STDOUT`, each as its key (the first field,
/// when the read is keyed) and a keyed digest of the whole line, computed
/// here as the bytes pass: the servers only print their rows (as they do
/// for `COPY`), and however long a row is, only a chunk of it is held.
struct Lines {
    stream: Pin<Box<CopyOutStream>>,
    chunk: Bytes,
    at: usize,
    done: bool,
    keyed: bool,
    pass: PassKey,
    what: String,
}

impl Lines {
    async fn open(
        client: &Client,
        sql: &str,
        keyed: bool,
        pass: &PassKey,
        what: String,
    ) -> Result<Lines, Error> {
        let stream = client
            .copy_out(sql)
            .await
            .map_err(failed(format!("reading {what}")))?;
        Ok(Lines {
            stream: Box::pin(stream),
            chunk: Bytes::new(),
            at: 0,
            done: false,
            keyed,
            pass: pass.clone(),
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

    /// The next row: its key (empty for an unkeyed read) and its digest.
    async fn next(&mut self) -> Result<Option<(String, u128)>, Error> {
        use sha2::Digest as _;
        if !self.fill().await? {
            return Ok(None);
        }
        let mut digest = sha2::Sha256::new();
        digest.update(self.pass.0);
        let mut key = Vec::new();
        if self.keyed {
            loop {
                if !self.fill().await? {
                    return Err(self.bad());
                }
                let rest = &self.chunk[self.at..];
                match memchr::memchr(b'\t', rest) {
                    Some(end) => {
                        key.extend_from_slice(&rest[..end]);
                        self.at += end;
                        break;
                    }
                    None => {
                        key.extend_from_slice(rest);
                        self.at = self.chunk.len();
                    }
                }
                if key.len() > MAX_KEY_TEXT {
                    return Err(self.bad());
                }
            }
            if key.len() > MAX_KEY_TEXT {
                return Err(self.bad());
            }
            digest.update(&key);
        }
        loop {
            if !self.fill().await? {
                // A last line without its newline: COPY never sends one.
                return Err(self.bad());
            }
            let rest = &self.chunk[self.at..];
            match memchr::memchr(b'\n', rest) {
                Some(end) => {
                    digest.update(&rest[..end]);
                    self.at += end + 1;
                    break;
                }
                None => {
                    digest.update(rest);
                    self.at = self.chunk.len();
                }
            }
        }
        let key = String::from_utf8(key).map_err(|_| self.bad())?;
        let sum = digest.finalize();
        let mut first = [0u8; 16];
        first.copy_from_slice(&sum[..16]);
        Ok(Some((key, u128::from_be_bytes(first))))
    }

    fn bad(&self) -> Error {
        Error::Invalid(format!(
            "{}: the server sent a row this reader cannot read (a key longer than {MAX_KEY_TEXT} \
             bytes, or a row cut short)",
            self.what
        ))
    }
}

/// The two sides of one database.
pub(super) struct Pair<'a> {
    pub(super) db: &'a str,
    pub(super) source: &'a PgClient,
    pub(super) target: &'a PgClient,
    pub(super) dry_run: bool,
    pub(super) progress: ha_plan::Progress<'a>,
}

/// The servers' major versions, for [`settings`].
async fn major(client: &Client, what: &str) -> Result<i32, Error> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int / 10000",
            &[],
        )
        .await
        .map_err(failed(format!("reading the version of {what}")))?;
    Ok(row.get(0))
}

/// Makes the target's database hold the source's rows and sequence values.
pub(super) async fn pass(pair: Pair<'_>) -> Result<DatabaseOutcome, Error> {
    let db = pair.db;
    let source_what = format!("the source's {db}");
    let target_what = format!("the target's {db}");
    let source = pair.source.connect(db).await?;
    let target = pair.target.connect(db).await?;
    let pass = PassKey::new()?;
    let (source_major, target_major) =
        futures_util::try_join!(major(&source, &source_what), major(&target, &target_what))?;
    let float_digits = if (source_major >= 12) == (target_major >= 12) {
        3
    } else {
        0
    };
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
    for table in &ours {
        let (plan, aggregate) = plan_table(reading, &target, table, db, &pass).await?;
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
        plans.push((table.clone(), plan, aggregate));
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
    if pair.dry_run || outcome.changes.is_empty() {
        return Ok(outcome);
    }
    // Rows move exactly as the source holds them: floats to the last digit.
    reading
        .batch_execute("SET extra_float_digits = 3")
        .await
        .map_err(failed(format!("settings on {source_what}")))?;
    let edges = references(&target, &target_what).await?;
    let depth = depths(&ours, &edges);
    apply(reading, &target, db, &plans, &depth, &sequence_changes).await?;
    (pair.progress)(&format!("postgres {db}: committed"));
    reading
        .batch_execute("COMMIT")
        .await
        .map_err(failed(format!("ending the read of {source_what}")))?;
    // Checked, not assumed: every changed table's rows and every set
    // sequence, read back from the target.
    for (table, plan, aggregate) in &plans {
        if matches!(plan, TablePlan::Same) {
            continue;
        }
        let held = aggregate_of(&target, table, &pass, &target_what).await?;
        if held != *aggregate {
            outcome.mismatches.push(format!(
                "postgres {db} {}: after the pass the target has {} rows, the source {}, or \
                 other rows",
                table.shown(),
                held.rows,
                aggregate.rows
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

/// Compares one table; returns what it needs and the source's aggregate.
async fn plan_table(
    source: &Client,
    target: &Client,
    table: &Table,
    db: &str,
    pass: &PassKey,
) -> Result<(TablePlan, Aggregate), Error> {
    let source_what = format!("{} of the source's {db}", table.shown());
    let target_what = format!("{} of the target's {db}", table.shown());
    let Some((_, kind)) = table.key_kind() else {
        let (ours, theirs) = futures_util::try_join!(
            aggregate_of(source, table, pass, &source_what),
            aggregate_of(target, table, pass, &target_what)
        )?;
        let plan = if ours == theirs {
            TablePlan::Same
        } else {
            TablePlan::Whole {
                source_rows: ours.rows,
                target_rows: theirs.rows,
            }
        };
        return Ok((plan, ours));
    };
    let sql = table.compared_rows(true);
    let (mut ours, mut theirs) = futures_util::try_join!(
        Lines::open(source, &sql, true, pass, source_what.clone()),
        Lines::open(target, &sql, true, pass, target_what.clone())
    )?;
    let mut aggregate = Aggregate::default();
    let (mut upsert, mut delete) = (Vec::new(), Vec::new());
    let mut moved = Moved::default();
    let (mut a, mut b) = futures_util::try_join!(ours.next(), theirs.next())?;
    loop {
        let step = match (&a, &b) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((x, _)), Some((y, _))) => kind.compare(x, y),
        };
        match step {
            std::cmp::Ordering::Less => {
                let (k, h) = a.take().expect("matched");
                aggregate.add(h);
                upsert.push(checked_key(kind, k, &source_what)?);
                moved.inserted += 1;
                a = ours.next().await?;
            }
            std::cmp::Ordering::Greater => {
                let (k, _) = b.take().expect("matched");
                delete.push(checked_key(kind, k, &target_what)?);
                moved.deleted += 1;
                b = theirs.next().await?;
            }
            std::cmp::Ordering::Equal => {
                let (k, h) = a.take().expect("matched");
                let (_, held) = b.take().expect("matched");
                aggregate.add(h);
                if h != held {
                    upsert.push(checked_key(kind, k, &source_what)?);
                    moved.replaced += 1;
                }
                (a, b) = futures_util::try_join!(ours.next(), theirs.next())?;
            }
        }
        if upsert.len() + delete.len() > MAX_KEYS {
            // Too many to name: the table is replaced whole. Its source
            // aggregate is read on its own.
            drop((ours, theirs));
            let ours = aggregate_of(source, table, pass, &source_what).await?;
            let theirs = aggregate_of(target, table, pass, &target_what).await?;
            return Ok((
                TablePlan::Whole {
                    source_rows: ours.rows,
                    target_rows: theirs.rows,
                },
                ours,
            ));
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
    Ok((plan, aggregate))
}

fn checked_key(kind: KeyKind, key: String, what: &str) -> Result<String, Error> {
    if kind.valid(&key) {
        Ok(key)
    } else {
        Err(Error::Invalid(format!(
            "{what}: the key {:?} is not a {} as the server prints one",
            crate::sqlsplit::cut(&key, 40),
            kind.sql_type()
        )))
    }
}

/// The count and digest sum of a table's rows, read in any order.
async fn aggregate_of(
    client: &Client,
    table: &Table,
    pass: &PassKey,
    what: &str,
) -> Result<Aggregate, Error> {
    let sql = table.compared_rows(false);
    let keyed = table.key_kind().is_some();
    let mut lines = Lines::open(client, &sql, keyed, pass, what.to_owned()).await?;
    let mut aggregate = Aggregate::default();
    while let Some((_, h)) = lines.next().await? {
        aggregate.add(h);
    }
    Ok(aggregate)
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
                for keys in upsert.chunks(KEYS_PER_STATEMENT) {
                    let select = format!(
                        "COPY (SELECT {} FROM ONLY {} src WHERE src.{} = ANY('{{{}}}'::{}[])) TO STDOUT",
                        table.source_columns(),
                        table.qualified(),
                        ident(&key),
                        keys.join(","),
                        kind.sql_type()
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
                "DELETE FROM ONLY {} WHERE {} = ANY('{{{}}}'::{}[])",
                table.qualified(),
                ident(&key),
                keys.join(","),
                kind.sql_type()
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
    fn keys_are_written_back_only_as_the_server_prints_them() {
        let int = KeyKind::of("bigint").unwrap();
        assert!(int.valid("-42"));
        assert!(!int.valid("1); DROP TABLE x; --"));
        assert!(KeyKind::Uuid.valid("0e8b4cf2-5bb4-4b7e-9c1e-2f3c4d5e6f70"));
        assert!(!KeyKind::Uuid.valid("0e8b4cf2-5bb4-4b7e-9c1e-2f3c4d5e6f7'"));
        assert_eq!(int.compare("9", "10"), std::cmp::Ordering::Less);
        assert_eq!(KeyKind::of("text"), None);
        assert_eq!(ident("we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn parents_come_before_the_tables_that_reference_them() {
        let table = |name: &str| Table {
            schema: "public".to_owned(),
            name: name.to_owned(),
            columns: vec!["id".to_owned()],
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
