//! The splitter against psql itself: a generated corpus of statements full
//! of the lexer's corner cases, run through `psql -e` (which prints every
//! statement it sends, as it sends it), must split exactly as
//! [`circle_export::sqlsplit::Splitter`] splits it.

use std::process::Command;

use circle_export::sqlsplit::{Dialect, Piece, SplitError, Splitter};

use crate::Pg;

/// Lexical pieces a statement is built from; each is complete on its own
/// (strings closed, parentheses balanced) and on one line, so psql's echo
/// has one line per statement.
const FRAGMENTS: &[&str] = &[
    "1",
    "'a;b'",
    "'it''s;'",
    "E'\\';'",
    "e'\\\\'",
    "E'x''y\\';'",
    "$$;$$",
    "$t$ ; $x$ ; $t$",
    "$a$$b$;$a$",
    "x$$",
    "y$$$",
    "\"q;\"\"x\"",
    "U&\"d;\"",
    "U&'e;'",
    "B'01'",
    "X'ff'",
    "N'n;'",
    "/* ; /* ; */ ; */",
    "/*/ ; */",
    "(1; 2)",
    "((;))",
    "[1]",
    "1.5e3",
    ".5",
    "1..2",
    "$1",
    "a::text",
    "+-/**/1",
    "case when true then 1 else 2 end",
    "begin",
    "end",
];

/// A small deterministic generator (xorshift), so the corpus is the same
/// on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn corpus(n: usize) -> String {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut text = String::new();
    for i in 0..n {
        match rng.below(10) {
            // SQL-standard bodies: BEGIN ATOMIC … END holds semicolons
            // (a lone `begin` or `end` would unbalance it for psql too).
            0 => {
                let fragment = loop {
                    let f = FRAGMENTS[rng.below(FRAGMENTS.len())];
                    if f != "begin" && f != "end" {
                        break f;
                    }
                };
                text.push_str(&format!(
                    "CREATE OR REPLACE FUNCTION pg_temp.f{i}() RETURNS int LANGUAGE sql BEGIN \
                     ATOMIC SELECT {fragment}; SELECT CASE WHEN true THEN 1 END; END;"
                ));
            }
            _ => {
                text.push_str("SELECT ");
                for _ in 0..1 + rng.below(6) {
                    text.push_str(FRAGMENTS[rng.below(FRAGMENTS.len())]);
                    text.push(' ');
                }
                text.push(';');
            }
        }
        // Sometimes several statements share a line.
        text.push(if rng.below(3) == 0 { ' ' } else { '\n' });
    }
    text.push('\n');
    text
}

#[test]
fn the_splitter_agrees_with_psql_on_a_generated_corpus() {
    let pg = Pg::start();
    let text = corpus(3000);
    let mut ours = Vec::new();
    let mut splitter = Splitter::new(Dialect::Own);
    let mut emit = |piece: Piece<'_>| -> Result<(), SplitError> {
        if let Piece::Statement { text, .. } = piece {
            ours.push(String::from_utf8(text.to_vec()).unwrap());
        }
        Ok(())
    };
    splitter.feed(text.as_bytes(), &mut emit).unwrap();
    splitter.finish(&mut emit).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("corpus.sql");
    std::fs::write(&file, &text).unwrap();
    let output = Command::new(pg.server.bin_dir().join("psql"))
        .args(["-X", "-q", "-e", "-o", "/dev/null", "-f"])
        .arg(&file)
        .env_clear()
        .envs(pg.server.libpq_env("postgres").unwrap())
        .output()
        .unwrap();
    let echoed = String::from_utf8(output.stdout).unwrap();
    let psql: Vec<&str> = echoed.lines().collect();
    // The corpus is deterministic: 3,000 statements, every one sent by
    // psql exactly as the splitter cut it.
    assert_eq!(psql.len(), 3000, "psql sent {} statements", psql.len());
    for (i, (ours, theirs)) in ours.iter().zip(&psql).enumerate() {
        assert_eq!(ours, theirs, "statement {i} differs");
    }
    assert_eq!(
        ours.len(),
        psql.len(),
        "psql sent {} statements, the splitter found {}",
        psql.len(),
        ours.len()
    );
}
