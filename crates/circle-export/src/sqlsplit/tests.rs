use super::*;

/// A piece, owned, with consecutive COPY data merged.
#[derive(Debug, PartialEq, Eq)]
enum Owned {
    Statement(String, u64, Verdict),
    Meta(String, u64),
    Copy(String),
}

fn split_chunks(text: &str, dialect: Dialect, chunk: usize) -> Result<Vec<Owned>, SplitError> {
    let mut out: Vec<Owned> = Vec::new();
    let mut splitter = Splitter::new(dialect);
    let mut emit = |piece: Piece<'_>| -> Result<(), SplitError> {
        match piece {
            Piece::Statement {
                text,
                line,
                verdict,
                ..
            } => out.push(Owned::Statement(
                String::from_utf8_lossy(text).into_owned(),
                line,
                verdict,
            )),
            Piece::Meta { text, line } => {
                out.push(Owned::Meta(
                    String::from_utf8_lossy(text).into_owned(),
                    line,
                ));
            }
            Piece::CopyData(data) => match out.last_mut() {
                Some(Owned::Copy(text)) => text.push_str(&String::from_utf8_lossy(data)),
                _ => out.push(Owned::Copy(String::from_utf8_lossy(data).into_owned())),
            },
            Piece::CopyEnd => out.push(Owned::Copy(String::new())),
        }
        Ok(())
    };
    for piece in text.as_bytes().chunks(chunk.max(1)) {
        splitter.feed(piece, &mut emit)?;
    }
    splitter.finish(&mut emit)?;
    // Merge the empty marker pushed at CopyEnd into nothing: a Copy entry
    // always ends with one.
    out.retain(|o| *o != Owned::Copy(String::new()));
    Ok(out)
}

/// Splits `text` whole and at every chunk size up to 7, which must agree.
fn split(text: &str, dialect: Dialect) -> Result<Vec<Owned>, SplitError> {
    let whole = split_chunks(text, dialect, usize::MAX);
    for chunk in 1..=7 {
        assert_eq!(
            split_chunks(text, dialect, chunk),
            whole,
            "chunks of {chunk} of {text:?}"
        );
    }
    whole
}

fn statements(text: &str) -> Vec<String> {
    split(text, Dialect::Own)
        .unwrap()
        .into_iter()
        .filter_map(|p| match p {
            Owned::Statement(s, _, _) => Some(s),
            _ => None,
        })
        .collect()
}

fn refused(text: &str, dialect: Dialect) -> String {
    match split(text, dialect) {
        Err(e) => e.to_string(),
        Ok(pieces) => pieces
            .iter()
            .find_map(|p| match p {
                Owned::Statement(_, line, Verdict::Refuse(why)) => {
                    Some(format!("line {line}: {why}"))
                }
                Owned::Meta(text, line) => match meta_verdict(text.as_bytes(), dialect) {
                    Verdict::Refuse(why) => Some(format!("line {line}: {why}")),
                    _ => None,
                },
                _ => None,
            })
            .unwrap_or_else(|| panic!("{text:?} was not refused: {pieces:?}")),
    }
}

#[test]
fn a_pg_dump_file_splits_into_its_statements_and_copy_data() {
    let dump = "--\n-- PostgreSQL database dump\n--\n\n\\restrict abcDEF123\n\
                SET statement_timeout = 0;\nSET client_encoding = 'UTF8';\n\
                SET standard_conforming_strings = on;\n\
                SELECT pg_catalog.set_config('search_path', '', false);\n\
                CREATE EXTENSION IF NOT EXISTS \"uuid-ossp\" WITH SCHEMA public;\n\
                COMMENT ON EXTENSION \"uuid-ossp\" IS 'generate universally unique identifiers (UUIDs)';\n\
                CREATE FUNCTION public.f() RETURNS trigger\n    LANGUAGE plpgsql\n    AS $$\nBEGIN\n  NEW.t := now(); RETURN NEW;\nEND;\n$$;\n\
                CREATE TABLE public.builds (\n    id integer NOT NULL,\n    name text DEFAULT 'a;b'::text\n);\n\
                COPY public.builds (id, name) FROM stdin;\n1\tx;y\n2\t\\\\N\n3\t\\.x\n\\.\n\
                SELECT pg_catalog.setval('public.builds_id_seq', 3, true);\n\
                ALTER TABLE ONLY public.builds\n    ADD CONSTRAINT builds_pkey PRIMARY KEY (id);\n\
                \\unrestrict abcDEF123\n";
    let pieces = split(dump, Dialect::Own).unwrap();
    let verdicts: Vec<(String, Verdict)> = pieces
        .iter()
        .map(|p| match p {
            Owned::Statement(s, _, v) => (s.lines().next().unwrap().to_owned(), v.clone()),
            Owned::Meta(m, _) => (m.clone(), meta_verdict(m.as_bytes(), Dialect::Own)),
            Owned::Copy(data) => (data.clone(), Verdict::Run),
        })
        .collect();
    let expected = [
        ("\\restrict abcDEF123", Verdict::Skip),
        ("SET statement_timeout = 0;", Verdict::Run),
        ("SET client_encoding = 'UTF8';", Verdict::Run),
        ("SET standard_conforming_strings = on;", Verdict::Run),
        (
            "SELECT pg_catalog.set_config('search_path', '', false);",
            Verdict::Run,
        ),
        (
            "CREATE EXTENSION IF NOT EXISTS \"uuid-ossp\" WITH SCHEMA public;",
            Verdict::Run,
        ),
        (
            "COMMENT ON EXTENSION \"uuid-ossp\" IS 'generate universally unique identifiers (UUIDs)';",
            Verdict::Skip,
        ),
        ("CREATE FUNCTION public.f() RETURNS trigger", Verdict::Run),
        ("CREATE TABLE public.builds (", Verdict::Run),
        ("COPY public.builds (id, name) FROM stdin;", Verdict::Run),
        ("1\tx;y\n2\t\\\\N\n3\t\\.x\n", Verdict::Run),
        (
            "SELECT pg_catalog.setval('public.builds_id_seq', 3, true);",
            Verdict::Run,
        ),
        ("ALTER TABLE ONLY public.builds", Verdict::Run),
        ("\\unrestrict abcDEF123", Verdict::Skip),
    ];
    let expected: Vec<(String, Verdict)> = expected
        .into_iter()
        .map(|(s, v)| (s.to_owned(), v))
        .collect();
    assert_eq!(verdicts, expected);
    // Lines are counted through comments, bodies and COPY data.
    assert!(pieces.contains(&Owned::Meta("\\unrestrict abcDEF123".to_owned(), 31)));
}

#[test]
fn boundaries_follow_psqls_lexer() {
    // Parentheses: a `;` inside them does not end the statement.
    assert_eq!(
        statements("SELECT (1; 2);\nSELECT 3;\n"),
        ["SELECT (1; 2);", "SELECT 3;"]
    );
    // `$` continues an identifier: `x$$$` is no dollar quote.
    assert_eq!(
        statements("SELECT x$$$ ; SELECT 1;\n"),
        ["SELECT x$$$ ;", "SELECT 1;"]
    );
    // After a number, `$$` is a dollar quote.
    assert_eq!(statements("SELECT 1$$;$$;\n"), ["SELECT 1$$;$$;"]);
    // Tagged dollar quotes, and a wrong tag inside.
    assert_eq!(
        statements("SELECT $a$ $b$ ; $ab$ ; $a$;\nSELECT 2;\n"),
        ["SELECT $a$ $b$ ; $ab$ ; $a$;", "SELECT 2;"]
    );
    // `$1` is a parameter, `$abc` a `$` and an identifier.
    assert_eq!(
        statements("SELECT $1;SELECT $abc;\n"),
        ["SELECT $1;", "SELECT $abc;"]
    );
    // Nested comments; `--` inside an operator.
    assert_eq!(
        statements("SELECT /* a /* ; */ ; */ 1;\nSELECT 1 +-- ;\n 2;\n"),
        ["SELECT /* a /* ; */ ; */ 1;", "SELECT 1 +\n 2;"]
    );
    // `''` inside a string; E'' strings and their escapes.
    assert_eq!(
        statements("SELECT 'it''s;', E'\\';', e'\\\\';\nSELECT 2;\n"),
        ["SELECT 'it''s;', E'\\';', e'\\\\';", "SELECT 2;"]
    );
    // `''` inside an E'' string keeps its escapes.
    assert_eq!(
        statements("SELECT E'a''b\\'c';\nSELECT 2;\n"),
        ["SELECT E'a''b\\'c';", "SELECT 2;"]
    );
    // A string continued after a newline keeps E'' rules.
    assert_eq!(
        statements("SELECT E'a'\n'\\';';\nSELECT 2;\n"),
        ["SELECT E'a'\n'\\';';", "SELECT 2;"]
    );
    // Without a newline between them, the second quote opens a plain string.
    assert_eq!(
        statements("SELECT E'a' '\\';\nSELECT 2;\n"),
        ["SELECT E'a' '\\';", "SELECT 2;"]
    );
    // Quoted identifiers, with `""`, and U& forms.
    assert_eq!(
        statements("SELECT \"a;\"\"b\", U&\"c;\", U&'d;';\nSELECT 2;\n"),
        ["SELECT \"a;\"\"b\", U&\"c;\", U&'d;';", "SELECT 2;"]
    );
    // SQL-standard function bodies: BEGIN ATOMIC … END, with CASE … END.
    let body = "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT CASE WHEN a > 0 THEN 1 ELSE 2 END;\n  SELECT 3;\nEND;\nSELECT 4;\n";
    assert_eq!(
        statements(body),
        [
            "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT CASE WHEN a > 0 THEN 1 ELSE 2 END;\n  SELECT 3;\nEND;",
            "SELECT 4;"
        ]
    );
    // BEGIN outside a routine does not count.
    assert_eq!(
        statements("SELECT begin;\nSELECT 2;\n"),
        ["SELECT begin;", "SELECT 2;"]
    );
}

#[test]
fn the_eight_findings_of_the_audit_are_refused() {
    // 1. Shell through allowed meta-commands.
    assert!(
        refused(
            "\\restrict `touch /tmp/x; echo k1`\nSELECT 1;\n",
            Dialect::Own
        )
        .contains("meta-command")
    );
    assert!(refused("\\c db `touch /tmp/x`\n", Dialect::Vendor).contains("meta-command"));
    assert!(refused("\\connect vms\n", Dialect::Own).contains("meta-command"));
    // 2. The lexer's rules: `(` keeps `;` from ending, `x$$$` is no quote.
    assert!(
        refused(
            "SELECT (1; COPY t FROM stdin;\n\\! touch /tmp/x\n",
            Dialect::Own
        )
        .contains("backslash")
    );
    assert!(refused("SELECT x$$$ \\! touch /tmp/x\n", Dialect::Own).contains("backslash"));
    // 4. Roles and passwords.
    assert!(
        refused("ALTER ROLE CURRENT_USER PASSWORD 'x';\n", Dialect::Own).contains("ALTER ROLE")
    );
    assert!(refused("SET ROLE postgres;\n", Dialect::Own).contains("role"));
    assert!(refused("SET SESSION AUTHORIZATION postgres;\n", Dialect::Own).contains("role"));
    assert!(
        refused(
            "SELECT pg_catalog.set_config('role', 'postgres', false);\n",
            Dialect::Own
        )
        .contains("SELECT")
    );
    assert!(refused("ALTER FUNCTION f() SET role TO postgres;\n", Dialect::Own).contains("role"));
    // And what a loader must never run.
    for (sql, why) in [
        ("DO $$ BEGIN PERFORM 1; END $$;\n", "DO"),
        ("COPY t FROM PROGRAM 'id';\n", "COPY"),
        ("COPY t FROM '/etc/passwd';\n", "COPY"),
        ("COPY t TO stdout;\n", "COPY"),
        ("LOAD 'x';\n", "LOAD"),
        ("ALTER SYSTEM SET x = 1;\n", "ALTER SYSTEM"),
        ("CREATE DATABASE x;\n", "CREATE DATABASE"),
        (
            "CREATE TABLESPACE x LOCATION '/tmp';\n",
            "CREATE TABLESPACE",
        ),
        (
            "CREATE FUNCTION f() RETURNS int LANGUAGE c AS 'libc', 'system';\n",
            "language",
        ),
        (
            "CREATE OR REPLACE FUNCTION f() RETURNS int AS $$ 1 $$ LANGUAGE plpython3u;\n",
            "language",
        ),
        ("COMMIT;\n", "COMMIT"),
        (
            "SELECT pg_catalog.setval('s', 1), pg_read_file('/etc/passwd');\n",
            "SELECT",
        ),
        ("SELECT lo_import('/etc/passwd');\n", "SELECT"),
        (
            "SET standard_conforming_strings = off;\n",
            "standard_conforming_strings",
        ),
        ("SET client_encoding = 'SJIS';\n", "client_encoding"),
        ("CREATE EXTENSION dblink;\n", "EXTENSION"),
        (
            "CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw;\n",
            "CREATE SERVER",
        ),
        ("GRANT pg_read_server_files TO circle;\n", "grants a role"),
        ("SELECT 1x;\n", "number"),
    ] {
        let found = refused(sql, Dialect::Own);
        assert!(found.contains(why), "{sql:?}: {found}");
    }
}

#[test]
fn a_vendor_section_leaves_out_its_roles_databases_and_grants() {
    let section = "\\connect -reuse-previous=on \"dbname='vms'\"\n\
                   CREATE ROLE circle;\nALTER ROLE circle WITH LOGIN PASSWORD 'md5abc';\n\
                   DROP DATABASE vms;\nCREATE DATABASE vms WITH TEMPLATE = template0;\n\
                   ALTER DATABASE vms OWNER TO circle;\nALTER TABLE public.t OWNER TO circle;\n\
                   GRANT ALL ON SCHEMA public TO PUBLIC;\nREVOKE ALL ON DATABASE vms FROM PUBLIC;\n\
                   CREATE TABLE public.t (a int);\n";
    let pieces = split(section, Dialect::Vendor).unwrap();
    let verdicts: Vec<Verdict> = pieces
        .iter()
        .map(|p| match p {
            Owned::Statement(_, _, v) => v.clone(),
            Owned::Meta(m, _) => meta_verdict(m.as_bytes(), Dialect::Vendor),
            Owned::Copy(_) => Verdict::Run,
        })
        .collect();
    let mut expected = vec![Verdict::Skip; 9];
    expected.push(Verdict::Run);
    assert_eq!(verdicts, expected);
    // The same in our own dumps is refused.
    assert!(refused("ALTER TABLE public.t OWNER TO circle;\n", Dialect::Own).contains("owner"));
    assert_eq!(
        connect_target(b"\\connect -reuse-previous=on \"dbname='vms'\""),
        Some("vms".to_owned())
    );
    assert_eq!(connect_target(b"\\connect \"vms\""), Some("vms".to_owned()));
    assert_eq!(connect_target(b"\\connect vms `id`"), None);
    assert_eq!(
        connect_target(b"\\connect -reuse-previous=on \"dbname='v`id`'\""),
        None
    );
}

#[test]
fn cut_short_dumps_and_oversized_pieces_are_errors() {
    for (text, what) in [
        ("SELECT 'abc;\n", "quoted string"),
        ("SELECT $$ abc;\n", "dollar"),
        ("SELECT /* abc;\n", "comment"),
        ("COPY t (a) FROM stdin;\n1\n2\n", "COPY data"),
        ("SELECT 1\n", "semicolon"),
        ("COPY t (a) FROM stdin; SELECT 1;\n1\n\\.\n", "same line"),
    ] {
        let err = split_chunks(text, Dialect::Own, usize::MAX).unwrap_err();
        assert!(err.message.contains(what), "{text:?}: {err}");
    }
    let long_meta = format!("\\restrict {}\n", "a".repeat(5000));
    assert!(
        split_chunks(&long_meta, Dialect::Own, usize::MAX)
            .unwrap_err()
            .message
            .contains("longer than")
    );
}

#[test]
fn copy_data_ends_only_at_a_whole_backslash_dot_line() {
    let text = "COPY t (a) FROM stdin;\n\\.x\n \\.\n\\.\r\nSELECT 1;\n";
    let pieces = split(text, Dialect::Own).unwrap();
    assert_eq!(
        pieces[1..],
        [
            Owned::Copy("\\.x\n \\.\n".to_owned()),
            Owned::Statement(
                "SELECT 1;".to_owned(),
                5,
                Verdict::Refuse(
                    "a SELECT other than pg_catalog.setval(…) or set_config('search_path', …)"
                        .to_owned()
                )
            ),
        ]
    );
}

/// Random text from the lexer's interesting bytes never panics, and any
/// chunking gives the same pieces or the same error (the fuzz target
/// `fuzz/fuzz_targets/sqlsplit.rs` does the same without bounds).
#[test]
fn random_text_never_panics_and_chunking_never_changes_the_split() {
    const ALPHABET: &[u8] = b"'\"$;()\\\n\r -/*eEuUxXbBnN&a1._:\t\x80\xc3\xa9begin end case create function copy from stdin";
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    for _ in 0..3000 {
        let len = next(60);
        let bytes: Vec<u8> = (0..len).map(|_| ALPHABET[next(ALPHABET.len())]).collect();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let whole = split_chunks(&text, Dialect::Vendor, usize::MAX);
        for chunk in [1, 2, 5] {
            let chunked = split_chunks(&text, Dialect::Vendor, chunk);
            assert_eq!(
                chunked.as_ref().map_err(|e| e.line),
                whole.as_ref().map_err(|e| e.line),
                "chunks of {chunk} of {text:?}"
            );
        }
    }
}
