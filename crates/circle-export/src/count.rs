//! Streaming counters: BSON documents in a mongodump `.bson` file, and rows
//! per table in a plain-format `pg_dump` script. Both take bytes in chunks
//! of any size, so they run alongside hashing while data streams past.

use std::collections::BTreeMap;

use xxhash_rust::xxh3::{Xxh3, xxh3_128};

/// The largest document a `.bson` file may hold: MongoDB's 16 MiB limit
/// plus the 16 KiB the server allows internally for oplog entries.
pub const MAX_DOCUMENT: usize = 16 * 1024 * 1024 + 16 * 1024;

/// Counts the documents of a concatenated-BSON stream and checks its
/// framing (every length in range, every document ends in a 0 byte, no
/// trailing partial document).
#[derive(Debug, Default)]
pub struct BsonCounter {
    documents: u64,
    header: Vec<u8>,
    /// Bytes still to skip in the current document (after its length).
    remaining: usize,
    error: Option<String>,
    offset: u64,
    last_byte: u8,
}

impl BsonCounter {
    /// Feeds the next chunk.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() && self.error.is_none() {
            if self.remaining > 0 {
                let take = self.remaining.min(chunk.len());
                self.last_byte = chunk[take - 1];
                self.remaining -= take;
                self.offset += take as u64;
                chunk = &chunk[take..];
                if self.remaining == 0 {
                    if self.last_byte != 0 {
                        self.error = Some(format!(
                            "document {} does not end in a 0 byte (offset {})",
                            self.documents + 1,
                            self.offset
                        ));
                    }
                    self.documents += 1;
                }
                continue;
            }
            let take = (4 - self.header.len()).min(chunk.len());
            self.header.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.header.len() == 4 {
                let len = i32::from_le_bytes([
                    self.header[0],
                    self.header[1],
                    self.header[2],
                    self.header[3],
                ]);
                self.header.clear();
                if len < 5 || len as usize > MAX_DOCUMENT {
                    self.error = Some(format!(
                        "document {} has an impossible length {len} (offset {})",
                        self.documents + 1,
                        self.offset
                    ));
                    return;
                }
                self.offset += 4;
                self.remaining = len as usize - 4;
            }
        }
    }

    /// The number of documents, or what is wrong with the stream.
    pub fn finish(self) -> Result<u64, String> {
        if let Some(error) = self.error {
            return Err(error);
        }
        if self.remaining > 0 || !self.header.is_empty() {
            return Err(format!(
                "truncated: document {} is incomplete at the end (offset {})",
                self.documents + 1,
                self.offset
            ));
        }
        Ok(self.documents)
    }
}

/// The database a `\connect` line of a `pg_dumpall` script switches to:
/// the rule restore splits the script by, re-exported where the row
/// counter always had it.
pub use crate::sqlsplit::connect_target;

/// An order-independent digest of a table's rows: the wrapping sum of each
/// row's XXH3-128 (seed 0), where a row is one line of COPY text without
/// its newline. Not a security check — an archive that lies about it can
/// at most make a restore leave the target as it is — but a fast one: it
/// is computed for every row an export dumps. The same rows in any order give the same
/// digest; one row changed, added or dropped gives another. Written in
/// the manifest by export and compared with the target's rows (read back
/// with `COPY … TO STDOUT`) before a restore or transfer calls a table
/// "already restored".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowDigest(u128);

impl RowDigest {
    /// Adds a row, given its XXH3-128.
    pub fn add_hash(&mut self, hash: u128) {
        self.0 = self.0.wrapping_add(hash);
    }

    /// Adds a row.
    pub fn add(&mut self, row: &[u8]) {
        self.add_hash(xxh3_128(row));
    }

    /// 32 lowercase hex digits.
    pub fn hex(&self) -> String {
        format!("{:032x}", self.0)
    }
}

/// One row's hash as its bytes arrive: a row inside one chunk is hashed
/// in one call; one that spans chunks streams through a hasher (never
/// buffered, whatever its length).
#[derive(Default)]
struct RowHasher {
    spanning: Option<Box<Xxh3>>,
}

impl std::fmt::Debug for RowHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RowHasher")
    }
}

impl RowHasher {
    /// A row's last (or only) part: its hash.
    fn finish(&mut self, last: &[u8]) -> u128 {
        match self.spanning.take() {
            None => xxh3_128(last),
            Some(mut hasher) => {
                hasher.update(last);
                hasher.digest128()
            }
        }
    }

    /// A part of a row that goes on in the next chunk.
    fn part(&mut self, part: &[u8]) {
        self.spanning
            .get_or_insert_with(|| Box::new(Xxh3::new()))
            .update(part);
    }

    /// Drops a row begun (the line was not a row after all).
    fn reset(&mut self) {
        self.spanning = None;
    }
}

/// Digests of a COPY text stream (what `COPY … TO STDOUT` sends), one row
/// per line, fed in chunks of any size.
#[derive(Debug, Default)]
pub struct RowDigester {
    row: RowHasher,
    digest: RowDigest,
    rows: u64,
}

impl RowDigester {
    /// Feeds the next chunk.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        while let Some(pos) = memchr::memchr(b'\n', chunk) {
            let hash = self.row.finish(&chunk[..pos]);
            self.digest.add_hash(hash);
            self.rows += 1;
            chunk = &chunk[pos + 1..];
        }
        if !chunk.is_empty() {
            self.row.part(chunk);
        }
    }

    /// The rows seen and their digest.
    pub fn finish(self) -> (u64, RowDigest) {
        (self.rows, self.digest)
    }
}

/// Whether a name read by [`crate::manifest::leading_table_name`] has a
/// schema part: a `.` outside double quotes.
fn qualified(name: &str) -> bool {
    let mut quoted = false;
    for c in name.chars() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => return true,
            _ => {}
        }
    }
    false
}

/// How much of a line [`CopyCounter`] keeps: enough for a COPY header
/// with hundreds of columns.
const LINE_PREFIX: usize = 64 * 1024;

/// Counts the rows of each `COPY … FROM stdin;` block in a plain-format
/// SQL dump. In COPY text format every row is one line (newlines inside
/// values are escaped), and a block ends with a line `\.`.
#[derive(Debug, Default)]
pub struct CopyCounter {
    line: Vec<u8>,
    current: Option<(String, u64)>,
    tables: BTreeMap<String, u64>,
    /// The `\connect` target of the current section (pg_dumpall scripts).
    database: Option<String>,
    per_database: BTreeMap<String, BTreeMap<String, u64>>,
    /// The current COPY row's hash so far.
    row: RowHasher,
    /// Each table's [`RowDigest`], like `tables`.
    digests: BTreeMap<String, RowDigest>,
    per_database_digests: BTreeMap<String, BTreeMap<String, RowDigest>>,
    /// The current COPY block's digest.
    digest: RowDigest,
    /// The schema of the last `SET search_path = <schema>, pg_catalog;`
    /// (pg_dump before 10 names tables unqualified after it).
    schema: Option<String>,
}

impl CopyCounter {
    /// Feeds the next chunk.
    pub fn feed(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        loop {
            // The current row's bytes in this chunk, if in COPY data.
            let mut pending: Option<&[u8]> = None;
            let (segment, ended) = match memchr::memchr(b'\n', rest) {
                Some(pos) => (&rest[..pos], Some(pos)),
                None => (rest, None),
            };
            if self.current.is_some() {
                pending = Some(segment);
            }
            // Only the start of a line matters for counting (COPY data
            // lines can be huge): keep at most a prefix, long enough for
            // any COPY header; rows are hashed whole above.
            let room = LINE_PREFIX.saturating_sub(self.line.len());
            self.line
                .extend_from_slice(&segment[..segment.len().min(room)]);
            let Some(pos) = ended else {
                if let Some(part) = pending.filter(|p| !p.is_empty()) {
                    self.row.part(part);
                }
                return;
            };
            let line = std::mem::take(&mut self.line);
            self.handle_line(&line, pending.unwrap_or_default());
            rest = &rest[pos + 1..];
        }
    }

    /// A whole line; `last` is its part in the current chunk (the rest was
    /// fed to the row hasher already).
    fn handle_line(&mut self, line: &[u8], last: &[u8]) {
        if let Some((_, rows)) = &mut self.current {
            if line == b"\\." {
                self.row.reset();
                let (table, rows) = self.current.take().unwrap_or_default();
                let digest = std::mem::take(&mut self.digest);
                let total = self.digests.entry(table.clone()).or_default();
                total.0 = total.0.wrapping_add(digest.0);
                *self.tables.entry(table).or_default() += rows;
            } else {
                *rows += 1;
                let hash = self.row.finish(last);
                self.digest.add_hash(hash);
            }
            return;
        }
        if let Some(rest) = line.strip_prefix(b"COPY ")
            && line.ends_with(b"FROM stdin;")
        {
            let text = String::from_utf8_lossy(rest);
            // Quote-aware: `"a (b"` is one name. A line that does not start
            // with a name keeps its text, which verify then refuses.
            let table = match crate::manifest::leading_table_name(&text) {
                // pg_dump 9.x: `COPY builds (…)` after `SET search_path =
                // public, pg_catalog;` — named as pg_dump 10+ names it.
                Some(name) if !qualified(name) => match &self.schema {
                    Some(schema) => format!("{schema}.{name}"),
                    None => name.to_owned(),
                },
                Some(name) => name.to_owned(),
                None => text.trim_end_matches(" FROM stdin;").to_owned(),
            };
            self.current = Some((table, 0));
        } else if let Some(rest) = line.strip_prefix(b"SET search_path = ") {
            let text = String::from_utf8_lossy(rest);
            self.schema = crate::manifest::leading_table_name(&text)
                .filter(|s| !qualified(s) && text[s.len()..].starts_with([',', ';']))
                .map(str::to_owned);
        } else if let Some(name) = connect_target(line) {
            self.close_database();
            self.database = Some(name);
            self.schema = None;
        }
    }

    fn close_database(&mut self) {
        if let Some(db) = self.database.take() {
            let tables = std::mem::take(&mut self.tables);
            self.per_database
                .entry(db.clone())
                .or_default()
                .extend(tables);
            let digests = std::mem::take(&mut self.digests);
            self.per_database_digests
                .entry(db)
                .or_default()
                .extend(digests);
        }
    }

    /// Each table's [`RowDigest`] so far (like [`CopyCounter::finish`]'s
    /// counts; call before it).
    pub fn digests(&self) -> BTreeMap<String, RowDigest> {
        self.digests.clone()
    }

    /// Each table's [`RowDigest`] per `\connect` section, for `pg_dumpall`
    /// scripts (call before [`CopyCounter::finish_sections`]).
    pub fn section_digests(&self) -> BTreeMap<String, BTreeMap<String, RowDigest>> {
        let mut all = self.per_database_digests.clone();
        if let Some(db) = &self.database {
            all.entry(db.clone())
                .or_default()
                .extend(self.digests.clone());
        }
        all
    }

    /// Rows per table (`schema.table` as the dump names it), or an error
    /// when the stream ends inside a COPY block.
    pub fn finish(mut self) -> Result<BTreeMap<String, u64>, String> {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.handle_line(&line, &[]);
        }
        if let Some((table, _)) = &self.current {
            return Err(format!("truncated: the data of {table} does not end"));
        }
        Ok(self.tables)
    }

    /// Rows per table per `\connect` section (for `pg_dumpall` scripts).
    pub fn finish_sections(mut self) -> Result<BTreeMap<String, BTreeMap<String, u64>>, String> {
        if let Some((table, _)) = &self.current {
            return Err(format!("truncated: the data of {table} does not end"));
        }
        self.close_database();
        Ok(self.per_database)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bson_documents_are_counted_across_any_chunking() {
        let mut data = Vec::new();
        for i in 0..10 {
            let doc = bson::doc! {"i": i as i32, "s": "x".repeat(i * 10)};
            data.extend(bson::to_vec(&doc).unwrap());
        }
        for chunk in [1, 3, 7, 64, 100_000] {
            let mut counter = BsonCounter::default();
            for piece in data.chunks(chunk) {
                counter.feed(piece);
            }
            assert_eq!(counter.finish(), Ok(10), "chunk {chunk}");
        }
        let mut counter = BsonCounter::default();
        counter.feed(&data[..data.len() - 3]);
        assert!(counter.finish().unwrap_err().contains("truncated"));
        let mut flipped = data.clone();
        flipped[0] = 0xff;
        flipped[3] = 0x7f;
        let mut counter = BsonCounter::default();
        counter.feed(&flipped);
        assert!(counter.finish().unwrap_err().contains("impossible length"));
    }

    #[test]
    fn copy_rows_are_counted_per_table_and_per_section() {
        let sql = "SET x = 1;\nCOPY public.builds (id, name) FROM stdin;\n1\ta\n2\tb\\nc\n\\.\n\
                   COPY public.empty (id) FROM stdin;\n\\.\n\\connect -reuse-previous=on \"dbname='vms'\"\n\
                   COPY public.tasks (id) FROM stdin;\n1\n\\.\n";
        for chunk in [1, 5, 1000] {
            let mut counter = CopyCounter::default();
            for piece in sql.as_bytes().chunks(chunk) {
                counter.feed(piece);
            }
            let sections = counter.finish_sections().unwrap();
            assert_eq!(sections["vms"]["public.tasks"], 1, "chunk {chunk}");
        }
        let mut counter = CopyCounter::default();
        counter.feed(sql.split("\\connect").next().unwrap().as_bytes());
        let tables = counter.finish().unwrap();
        assert_eq!(tables["public.builds"], 2);
        assert_eq!(tables["public.empty"], 0);
        let mut counter = CopyCounter::default();
        counter.feed(b"COPY public.t (a) FROM stdin;\n1\n");
        assert!(counter.finish().is_err());
    }

    #[test]
    fn row_digests_ignore_order_and_chunking_and_see_every_changed_row() {
        let digest_of = |rows: &[&str], chunk: usize| {
            let mut sql = String::from("COPY public.t (a, b) FROM stdin;\n");
            for row in rows {
                sql.push_str(row);
                sql.push('\n');
            }
            sql.push_str("\\.\n");
            let mut counter = CopyCounter::default();
            for piece in sql.as_bytes().chunks(chunk) {
                counter.feed(piece);
            }
            counter.digests()["public.t"]
        };
        let long = "x".repeat(100_000);
        let rows = ["1\ta", "2\tb", long.as_str()];
        let d = digest_of(&rows, 1000);
        for chunk in [1, 3, 7, 65_536] {
            assert_eq!(digest_of(&rows, chunk), d, "chunk {chunk}");
        }
        assert_eq!(digest_of(&[long.as_str(), "2\tb", "1\ta"], 5), d);
        assert_ne!(digest_of(&["1\ta", "2\tc", long.as_str()], 5), d);
        assert_ne!(digest_of(&["1\ta", "2\tb"], 5), d);
        // What COPY … TO STDOUT sends digests the same.
        let mut digester = RowDigester::default();
        for piece in format!("2\tb\n{long}\n1\ta\n").as_bytes().chunks(9) {
            digester.feed(piece);
        }
        assert_eq!(digester.finish(), (3, d));
    }

    #[test]
    fn quoted_table_names_holding_a_parenthesis_are_one_name() {
        let mut counter = CopyCounter::default();
        counter.feed(
            b"COPY public.\"a (b\" (x) FROM stdin;\n1\n2\n\\.\n\
              COPY \"odd schema\".\"t\"\"q\" FROM stdin;\n1\n\\.\n",
        );
        let tables = counter.finish().unwrap();
        assert_eq!(tables["public.\"a (b\""], 2, "{tables:?}");
        assert_eq!(tables["\"odd schema\".\"t\"\"q\""], 1, "{tables:?}");
    }

    #[test]
    fn pg_dump_9_5_names_tables_after_its_search_path_and_they_are_qualified() {
        // pg_backup_archiver.c (9.5), _selectOutputSchema: `SET search_path
        // = <schema>, pg_catalog;` before the objects of a schema, whose
        // COPY then names the table alone.
        let mut counter = CopyCounter::default();
        counter.feed(
            b"SET search_path = public, pg_catalog;\nCOPY builds (id) FROM stdin;\n1\n2\n\\.\n\
              SET search_path = \"Odd\"\"s\", pg_catalog;\nCOPY \"T\" (a) FROM stdin;\n1\n\\.\n\
              COPY public.q (a) FROM stdin;\n\\.\n",
        );
        let tables = counter.finish().unwrap();
        assert_eq!(
            tables.into_iter().collect::<Vec<_>>(),
            [
                ("\"Odd\"\"s\".\"T\"".to_owned(), 1),
                ("public.builds".to_owned(), 2),
                ("public.q".to_owned(), 0)
            ]
        );
    }
}
