//! Loads one database's dump through the PostgreSQL protocol: no `psql`,
//! so no shell is ever reachable from an archive.
//!
//! The dump is read on a blocking thread and split by
//! [`crate::sqlsplit::Splitter`]; every statement is judged before it is
//! sent ([`crate::sqlsplit::Verdict`]): a refused one stops the load and
//! names the line. On the server side everything runs in one transaction:
//! each statement alone through the extended protocol (which refuses a
//! message holding two statements), each `COPY … FROM stdin` block as a
//! streamed copy-in. The transaction is committed only once the reader
//! ended whole (`Ok(0)`: for an archive member, only once it matched the
//! manifest); any error, or this process dying, rolls it back.

use std::io::Read;

use bytes::{Bytes, BytesMut};
use futures_util::SinkExt as _;

use crate::error::Error;
use crate::meter::Meter;
use crate::sqlsplit::{Dialect, Piece, SplitError, Splitter, Verdict, cut, meta_verdict};

/// What the reader thread hands the loader.
enum Op {
    Statement { text: String, line: u64 },
    CopyStart { text: String, line: u64 },
    CopyData(Bytes),
    CopyEnd,
}

/// Why the reader stopped early.
enum Stop {
    /// The loader went away (it failed first): nothing to report.
    Gone,
    /// The dump was refused.
    Refused(SplitError),
    /// Reading failed (a damaged member fails with `InvalidData`).
    Read(std::io::Error),
}

impl From<SplitError> for Stop {
    fn from(e: SplitError) -> Stop {
        Stop::Refused(e)
    }
}

/// COPY data is sent in pieces of about this size (with the channel's
/// few slots, what one load holds in flight stays around a MiB).
const COPY_PIECE: usize = 256 << 10;

/// Pieces the reader may run ahead of the loader.
const IN_FLIGHT: usize = 2;

/// Statements that drop what a plain dump creates, leaving extensions
/// (and what they own) alone: each query's rows are statements to run,
/// in order (psql's `\gexec`, done here).
const DROP_OBJECTS: [&str; 4] = [
    "SELECT format('DROP SCHEMA %I CASCADE', n.nspname)
       FROM pg_namespace n
      WHERE n.nspname NOT IN ('public', 'pg_catalog', 'information_schema')
        AND n.nspname NOT LIKE 'pg\\_%'
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = n.oid AND d.deptype = 'e')",
    "SELECT format('DROP %s IF EXISTS %I.%I CASCADE',
                   CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                  WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
                   n.nspname, c.relname)
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND n.nspname = 'public'
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('e', 'a', 'i'))",
    "SELECT format('DROP ROUTINE IF EXISTS %s CASCADE', p.oid::regprocedure)
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = 'public'
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')",
    "SELECT format('DROP TYPE IF EXISTS %I.%I CASCADE', n.nspname, t.typname)
       FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
      WHERE n.nspname = 'public' AND t.typtype IN ('e', 'c', 'd', 'r')
        AND (t.typrelid = 0 OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = t.oid AND d.deptype = 'e')",
];

/// Loads what `open` gives (on a blocking thread) into `client`'s
/// database in one transaction, committed only once the reader ended
/// whole; see the module docs. `what` names the load and `source` the
/// dump in messages. With `replace`, the database's objects are dropped
/// first, in the same transaction. Returns what the operator should know of
/// a load that committed: tables a pg_dump before 12 created WITH OIDS,
/// loaded without them.
pub(crate) async fn load<R: Read + 'static>(
    client: tokio_postgres::Client,
    what: &str,
    source: &str,
    open: impl FnOnce() -> std::io::Result<R> + Send + 'static,
    meter: &Meter,
    replace: bool,
    dialect: Dialect,
) -> Result<Vec<String>, Error> {
    let server = |detail: String| Error::Postgres {
        what: what.to_owned(),
        detail,
    };
    client
        .batch_execute("BEGIN; SET LOCAL standard_conforming_strings = on")
        .await
        .map_err(|e| server(crate::postgres::describe(&e)))?;
    if replace {
        for query in DROP_OBJECTS {
            for message in client
                .simple_query(query)
                .await
                .map_err(|e| server(crate::postgres::describe(&e)))?
            {
                if let tokio_postgres::SimpleQueryMessage::Row(row) = message
                    && let Some(drop) = row.get(0)
                {
                    client
                        .batch_execute(drop)
                        .await
                        .map_err(|e| server(crate::postgres::describe(&e)))?;
                }
            }
        }
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Op>(IN_FLIGHT);
    let meter = meter.clone();
    let reader = tokio::task::spawn_blocking(move || read(open, &tx, &meter, dialect));
    let sent = run(&client, &mut rx).await;
    // The reader stops once nothing receives.
    drop(rx);
    let read = reader.await.map_err(|e| Error::Internal {
        what: format!("the reader of {what} panicked: {e}"),
    })?;
    match (read, sent) {
        (Ok(oid_tables), Ok(())) => {
            client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| server(crate::postgres::describe(&e)))?;
            Ok(if oid_tables.is_empty() {
                Vec::new()
            } else {
                vec![format!(
                    "{what}: {} had OIDs on the old server (created WITH OIDS; the dump says \
                     SET default_with_oids = true); PostgreSQL 12 and later have no table OIDs: \
                     loaded without the hidden oid column",
                    oid_tables.join(", ")
                )]
            })
        }
        // What the reader found explains a server error that followed it.
        (Err(Stop::Refused(e)), _) => Err(Error::Damaged(vec![format!(
            "{source}: {e}; refused, nothing of it was committed (a restore loads data and \
             nothing else)"
        )])),
        (Err(Stop::Read(e)), _) => Err(Error::Io {
            what: format!("{what}: reading {source} (nothing of it was committed)"),
            source: e,
        }),
        (_, Err((line, detail))) => Err(server(format!(
            "{source} line {line}: {detail} (nothing of it was committed)"
        ))),
        (Err(Stop::Gone), Ok(())) => Err(server("the load stopped early".to_owned())),
    }
}

/// Sends what the reader hands over; the first server error stops it,
/// with the line of the statement that failed.
async fn run(
    client: &tokio_postgres::Client,
    rx: &mut tokio::sync::mpsc::Receiver<Op>,
) -> Result<(), (u64, String)> {
    while let Some(op) = rx.recv().await {
        match op {
            Op::Statement { text, line } => {
                client
                    .query_typed(&text, &[])
                    .await
                    .map_err(|e| (line, crate::postgres::describe(&e)))?;
            }
            Op::CopyStart { text, line } => {
                let sink = client
                    .copy_in::<_, Bytes>(&text)
                    .await
                    .map_err(|e| (line, crate::postgres::describe(&e)))?;
                let mut sink = std::pin::pin!(sink);
                loop {
                    match rx.recv().await {
                        Some(Op::CopyData(data)) => sink
                            .send(data)
                            .await
                            .map_err(|e| (line, crate::postgres::describe(&e)))?,
                        Some(Op::CopyEnd) => break,
                        // The reader stopped inside the data: never end
                        // the COPY (the transaction is rolled back).
                        _ => return Ok(()),
                    }
                }
                sink.as_mut()
                    .finish()
                    .await
                    .map_err(|e| (line, crate::postgres::describe(&e)))?;
            }
            Op::CopyData(_) | Op::CopyEnd => {
                return Err((0, "COPY data outside a COPY".to_owned()));
            }
        }
    }
    Ok(())
}

/// The reader thread: splits and judges the dump, hands what may run to
/// the loader.
fn read<R: Read>(
    open: impl FnOnce() -> std::io::Result<R>,
    tx: &tokio::sync::mpsc::Sender<Op>,
    meter: &Meter,
    dialect: Dialect,
) -> Result<Vec<String>, Stop> {
    let mut input = open().map_err(Stop::Read)?;
    let mut splitter = Splitter::new(dialect);
    // Whether pg_dump 9.x said the next tables have OIDs, and which did.
    let mut with_oids = false;
    let mut oid_tables = Vec::new();
    // pg_dump 9.x names tables after `SET search_path = <schema>, …`.
    let mut schema: Option<String> = None;
    let mut copy = BytesMut::new();
    let send = |op: Op| tx.blocking_send(op).map_err(|_| Stop::Gone);
    let mut emit = |piece: Piece<'_>| -> Result<(), Stop> {
        match piece {
            Piece::Statement {
                text,
                line,
                verdict,
                copy: is_copy,
            } => match verdict {
                Verdict::Run => {
                    if let Some(on) = sets_default_with_oids(text) {
                        with_oids = on;
                    } else if let Some(path) = text.strip_prefix(b"SET search_path = ") {
                        schema = std::str::from_utf8(path)
                            .ok()
                            .and_then(crate::manifest::leading_table_name)
                            .filter(|s| !s.contains('.'))
                            .map(str::to_owned);
                    } else if with_oids && let Some(table) = created_table(text) {
                        oid_tables.push(match (&schema, table.contains('.')) {
                            (Some(schema), false) => format!("{schema}.{table}"),
                            _ => table,
                        });
                    }
                    let text = String::from_utf8(text.to_vec()).map_err(|_| {
                        Stop::Refused(SplitError {
                            line,
                            message: "a statement that is not UTF-8".to_owned(),
                        })
                    })?;
                    send(if is_copy {
                        Op::CopyStart { text, line }
                    } else {
                        Op::Statement { text, line }
                    })
                }
                Verdict::Skip => {
                    if let Some(on) = sets_default_with_oids(text) {
                        with_oids = on;
                    }
                    Ok(())
                }
                Verdict::Refuse(why) => Err(Stop::Refused(SplitError {
                    line,
                    message: format!("{why}: {:?}", cut(&String::from_utf8_lossy(text), 80)),
                })),
            },
            Piece::Meta { text, line } => match meta_verdict(text, dialect) {
                Verdict::Refuse(why) => Err(Stop::Refused(SplitError { line, message: why })),
                Verdict::Run | Verdict::Skip => Ok(()),
            },
            Piece::CopyData(data) => {
                copy.extend_from_slice(data);
                if copy.len() >= COPY_PIECE {
                    send(Op::CopyData(copy.split().freeze()))?;
                }
                Ok(())
            }
            Piece::CopyEnd => {
                if !copy.is_empty() {
                    send(Op::CopyData(copy.split().freeze()))?;
                }
                send(Op::CopyEnd)
            }
        }
    };
    let mut buf = vec![0_u8; COPY_PIECE];
    loop {
        let n = input.read(&mut buf).map_err(Stop::Read)?;
        if n == 0 {
            splitter.finish(&mut emit)?;
            break;
        }
        meter.add(n as u64);
        splitter.feed(&buf[..n], &mut emit)?;
    }
    Ok(oid_tables)
}

/// `Some(on)` for `SET default_with_oids = on|off` (any case, `true` and
/// `false` too), else `None`.
fn sets_default_with_oids(text: &[u8]) -> Option<bool> {
    let text = std::str::from_utf8(text).ok()?.to_ascii_lowercase();
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == ';' || c == '=' || c == '\'')
        .filter(|w| !w.is_empty())
        .collect();
    match words.as_slice() {
        ["set", "default_with_oids", "to" | "", value] | ["set", "default_with_oids", value] => {
            match *value {
                "true" | "on" => Some(true),
                "false" | "off" => Some(false),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The table a `CREATE TABLE` statement creates, as it names it.
fn created_table(text: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(text).ok()?;
    let mut rest = text.trim_start();
    for word in ["create", "table"] {
        let (head, tail) = rest.split_at_checked(word.len())?;
        if !head.eq_ignore_ascii_case(word) {
            return None;
        }
        rest = tail.trim_start();
    }
    let name = crate::manifest::leading_table_name(rest)?;
    Some(name.to_owned())
}
