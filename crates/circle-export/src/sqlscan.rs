//! Checks a SQL dump the way a restore loads it, without loading it:
//! [`Scanner`] runs [`crate::sqlsplit::Splitter`] over the bytes and
//! collects every line the restore would refuse — a statement outside the
//! allow-list, a meta-command, a backslash outside quoted text, a dump cut
//! short. `verify` reports them, so a tampered archive fails verification
//! and not only its restore.

use crate::sqlsplit::{Dialect, Piece, SplitError, Splitter, Verdict, cut, meta_verdict};

/// Problems are kept up to this many (the first ones name the member).
const MAX_PROBLEMS: usize = 20;

/// Checks a dump fed in chunks of any size.
#[derive(Debug)]
pub(crate) struct Scanner {
    splitter: Splitter,
    dialect: Dialect,
    /// `(line, what)` of every refusal found so far.
    problems: Vec<(u64, String)>,
    /// The splitter failed: nothing more is read.
    stopped: bool,
}

impl Scanner {
    /// A checker for a dump of `dialect`.
    pub(crate) fn new(dialect: Dialect) -> Scanner {
        Scanner {
            splitter: Splitter::new(dialect),
            dialect,
            problems: Vec::new(),
            stopped: false,
        }
    }

    /// Whether the next byte starts a statement (see
    /// [`Splitter::at_statement_start`]).
    pub(crate) fn at_statement_start(&self) -> bool {
        !self.stopped && self.splitter.at_statement_start()
    }

    /// Feeds the next bytes.
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        if self.stopped {
            return;
        }
        let dialect = self.dialect;
        let problems = &mut self.problems;
        let mut emit = |piece: Piece<'_>| -> Result<(), SplitError> {
            if problems.len() >= MAX_PROBLEMS {
                return Ok(());
            }
            match piece {
                Piece::Statement {
                    text,
                    line,
                    verdict: Verdict::Refuse(why),
                    ..
                } => problems.push((
                    line,
                    format!("{why}: {:?}", cut(&String::from_utf8_lossy(text), 80)),
                )),
                Piece::Meta { text, line } => {
                    if let Verdict::Refuse(why) = meta_verdict(text, dialect) {
                        problems.push((line, why));
                    }
                }
                _ => {}
            }
            Ok(())
        };
        if let Err(e) = self.splitter.feed(chunk, &mut emit) {
            self.problems.push((e.line, e.message));
            self.stopped = true;
        }
    }

    /// The first refusal found so far, as `what at line N`: a loader stops
    /// there.
    pub(crate) fn refuses(&self) -> Option<String> {
        self.problems
            .first()
            .map(|(line, what)| format!("{what} at line {line}"))
    }

    /// Ends the check: every refusal, with its line.
    pub(crate) fn finish(mut self) -> Vec<(u64, String)> {
        if !self.stopped {
            let mut ignore = |_: Piece<'_>| -> Result<(), SplitError> { Ok(()) };
            if let Err(e) = self.splitter.finish(&mut ignore) {
                self.problems.push((e.line, e.message));
            }
        }
        self.problems
    }
}
