//! Splits a SQL dump into statements, meta-command lines and `COPY` data
//! the way `psql` reads it, and judges every statement against what a
//! restore may run.
//!
//! A restore loads dumps through the PostgreSQL protocol, never through
//! `psql` (which runs shell commands for `\!` and for `` `…` `` in the
//! arguments of any meta-command). The boundaries still have to be the
//! ones `psql` would find, because that is how `pg_dump` wrote them: the
//! [`Splitter`] follows the lexer `psql` shares with the server
//! (PostgreSQL's `src/fe_utils/psqlscan.l`, itself `src/backend/parser/scan.l`
//! with parenthesis and `BEGIN … END` counting added):
//!
//! - a `;` ends a statement only outside quotes and comments, at
//!   parenthesis depth 0, and outside the `BEGIN … END` body of a
//!   `CREATE [OR REPLACE] FUNCTION|PROCEDURE` (SQL-standard bodies);
//! - strings `'…'` (with `''`), `E'…'` (backslash escapes), `B'…'`,
//!   `X'…'`, `N'…'`, `U&'…'`, and a string continued after whitespace
//!   holding a newline (`'a'` newline `'b'`, which keeps the first part's
//!   escape rules);
//! - identifiers `"…"` (with `""`) and `U&"…"`; a `$` inside an identifier
//!   belongs to it (`x$$$` is one identifier, not a dollar quote);
//! - dollar quotes `$tag$…$tag$`, `$1` parameters;
//! - `--` comments to the end of the line and nested `/* … */` comments,
//!   also where they start inside an operator (`+--`).
//!
//! Where PostgreSQL versions lex differently (a number followed directly
//! by a letter: `1a$$` is `1` and `a$$` up to 14, junk from 15 on) the
//! splitter refuses instead of guessing. `standard_conforming_strings` is
//! on for the whole load, and a statement that turns it off is refused.
//!
//! Each statement is sent on its own with the extended protocol, which
//! refuses a message holding two statements: a boundary this splitter got
//! wrong makes the load fail, it cannot smuggle a statement past the
//! allow-list (see [`Verdict`]).

use std::fmt;

/// How a statement or line is treated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Sent to the server.
    Run,
    /// Left out on purpose (the roles, databases and ownership a
    /// `pg_dumpall` script carries; `COMMENT ON EXTENSION`).
    Skip,
    /// The member is refused: the reason.
    Refuse(String),
}

/// Whose dump is read: what may be left out differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// A database dumped by circle-export (`pg_dump --no-owner
    /// --no-privileges`): nothing but objects and data; anything else is
    /// refused.
    Own,
    /// A section of CircleCI's `pg_dumpall -c` script: its roles,
    /// databases, grants and ownership are left out (the new hosts have
    /// their own, from pg-provision), the rest is judged as [`Dialect::Own`].
    Vendor,
}

/// One piece of a dump, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// A whole statement with its `;`, its first line, and its verdict.
    Statement {
        /// The statement text (leading whitespace and `--` comments left
        /// out).
        text: &'a [u8],
        /// Its first line in the file.
        line: u64,
        /// What to do with it.
        verdict: Verdict,
        /// Whether it is a `COPY … FROM stdin` whose data follows.
        copy: bool,
    },
    /// A line that starts with a backslash (a psql meta-command), without
    /// its newline; only [`meta_verdict`]'s forms are accepted.
    Meta {
        /// The line, from its backslash.
        text: &'a [u8],
        /// Its line number.
        line: u64,
    },
    /// Bytes of `COPY` data (whole or partial lines, never the `\.` line).
    CopyData(&'a [u8]),
    /// The `\.` line that ends `COPY` data.
    CopyEnd,
}

/// A dump the splitter cannot read as a restore may load it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitError {
    /// The line where it was found.
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for SplitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for SplitError {}

/// The longest statement accepted (a function body larger than this is
/// not something pg_dump writes for CircleCI's databases).
pub const MAX_STATEMENT: usize = 64 << 20;

/// The longest meta-command line accepted.
const MAX_META: usize = 4096;

/// Tokens kept from the start of a statement for [`judge`].
const HEAD_TOKENS: usize = 48;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QuoteKind {
    /// `'…'`, `B'…'`, `X'…'`, `N'…'`, `U&'…'`: no backslash escapes.
    Plain,
    /// `E'…'`: backslash escapes.
    Escapes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// Between tokens.
    Initial,
    /// Inside an identifier or keyword (`word` holds it).
    Word,
    /// Inside a number: digits, then maybe `.` digits and an exponent.
    Number(NumberStage),
    /// After `-` (a second `-` starts a comment).
    Dash,
    /// After `/` (a `*` starts a comment).
    Slash,
    /// After `$`, reading what may be a dollar-quote tag.
    DollarTag,
    /// `$` followed by digits (a parameter).
    Param,
    /// After an identifier `u`/`U` and `&`.
    UAmp,
    /// Inside a quoted string.
    Quote(QuoteKind),
    /// Inside an `E'…'` string, after a backslash.
    QuoteEscape,
    /// After a string's closing quote: whitespace with a newline and
    /// another quote continue it (psqlscan's `xqs`).
    AfterQuote {
        kind: QuoteKind,
        /// Nothing was read since the quote (a `'` now doubles it).
        fresh: bool,
        newline: bool,
        /// Inside a `--` comment.
        comment: bool,
        /// A `-` was seen (a second one starts a comment).
        dash: bool,
    },
    /// Inside `"…"`.
    Ident,
    /// After a `"` inside `"…"`: another `"` continues it.
    IdentQuote,
    /// Inside `$tag$…$tag$`; `closing` is how much of the closing
    /// delimiter matched (`None` outside a candidate).
    DollarBody { closing: Option<usize> },
    /// In a `--` comment.
    LineComment,
    /// In a `/* */` comment at this depth; `prev` is the previous byte.
    BlockComment { depth: u32, prev: u8 },
    /// Reading a meta-command line.
    Meta,
    /// After the `;` of `COPY … FROM stdin`, up to the end of its line.
    CopyLineRest,
    /// In COPY data; `start` holds the first bytes of the current line
    /// (up to 4) while they may still be `\.`.
    CopyData { at_line_start: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NumberStage {
    Digits,
    /// After `.`.
    Fraction,
    /// After `e`/`E` (maybe a sign next).
    ExponentMark,
    /// After the exponent's sign.
    ExponentSign,
    ExponentDigits,
}

fn ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn ident_cont(b: u8) -> bool {
    ident_start(b) || b.is_ascii_digit() || b == b'$'
}

fn dolq_cont(b: u8) -> bool {
    ident_start(b) || b.is_ascii_digit()
}

/// What the judge sees of a statement: its first tokens (words lowered,
/// strings by their first bytes), and a few facts from the rest.
#[derive(Debug, Default)]
struct Skeleton {
    head: Vec<String>,
    /// Every `LANGUAGE x` (lowered, quotes removed).
    languages: Vec<String>,
    /// `SET ROLE`, `SET SESSION AUTHORIZATION` or `RESET ROLE` anywhere.
    sets_role: bool,
    /// The last two tokens, for the facts above.
    last: [String; 2],
    tokens: usize,
}

impl Skeleton {
    fn push(&mut self, token: String) {
        let prev = &self.last[1];
        if prev == "language" && self.languages.len() < 16 {
            self.languages
                .push(token.trim_matches('\'').trim_matches('"').to_lowercase());
        }
        let pair = (self.last[1].as_str(), token.as_str());
        if matches!(
            pair,
            ("set" | "reset", "role") | ("session", "authorization")
        ) {
            self.sets_role = true;
        }
        if self.head.len() < HEAD_TOKENS {
            self.head.push(token.clone());
        }
        self.tokens += 1;
        self.last[0] = std::mem::replace(&mut self.last[1], token);
    }
}

/// Splits a dump fed in chunks of any size; see the module docs.
#[derive(Debug)]
pub struct Splitter {
    dialect: Dialect,
    state: State,
    line: u64,
    /// The current statement's bytes.
    statement: Vec<u8>,
    /// Its first line.
    statement_line: u64,
    /// Whether it holds anything but whitespace and `--` comments.
    content: bool,
    /// The byte before the current one (for line starts).
    prev: u8,
    word: Vec<u8>,
    /// A string's first bytes (for the judge).
    literal: Vec<u8>,
    tag: Vec<u8>,
    paren_depth: u32,
    begin_depth: u32,
    identifier_count: usize,
    identifiers: [u8; 4],
    skeleton: Skeleton,
    meta: Vec<u8>,
    meta_line: u64,
    /// The first bytes of a COPY data line, while they may be `\.`.
    copy_start: Vec<u8>,
    /// Set once an error was returned: nothing more is read.
    failed: bool,
}

impl Splitter {
    /// A splitter for a dump of `dialect`.
    pub fn new(dialect: Dialect) -> Splitter {
        Splitter {
            dialect,
            state: State::Initial,
            line: 1,
            statement: Vec::new(),
            statement_line: 1,
            content: false,
            prev: b'\n',
            word: Vec::new(),
            literal: Vec::new(),
            tag: Vec::new(),
            paren_depth: 0,
            begin_depth: 0,
            identifier_count: 0,
            identifiers: [0; 4],
            skeleton: Skeleton::default(),
            meta: Vec::new(),
            meta_line: 0,
            copy_start: Vec::new(),
            failed: false,
        }
    }

    /// The line being read.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Whether the next byte starts a new statement: no token of one is
    /// pending (comments may be), not in COPY data or a quote.
    pub fn at_statement_start(&self) -> bool {
        self.state == State::Initial && self.skeleton.tokens == 0
    }

    fn error(&mut self, message: impl Into<String>) -> SplitError {
        self.failed = true;
        SplitError {
            line: self.line,
            message: message.into(),
        }
    }

    /// Feeds the next bytes; `emit` gets every piece completed, in order.
    /// An error from `emit` stops the feed and is returned.
    pub fn feed<E: From<SplitError>>(
        &mut self,
        chunk: &[u8],
        emit: &mut dyn FnMut(Piece<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.failed {
            return Err(self.error("the dump was refused earlier").into());
        }
        let mut i = 0;
        while i < chunk.len() {
            if let State::CopyData { at_line_start } = self.state {
                i += self.copy_data(&chunk[i..], at_line_start, emit)?;
                continue;
            }
            let b = chunk[i];
            self.byte(b, emit)?;
            if b == b'\n' {
                self.line += 1;
            }
            self.prev = b;
            i += 1;
        }
        Ok(())
    }

    /// Ends the dump: a statement, string, comment or COPY block left open
    /// is an error (the file was cut short); a last statement without `;`
    /// is also refused (psql would run it; pg_dump never writes one).
    pub fn finish<E: From<SplitError>>(
        &mut self,
        emit: &mut dyn FnMut(Piece<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.failed {
            return Err(self.error("the dump was refused earlier").into());
        }
        match self.state {
            State::Meta => {
                self.end_meta(emit)?;
                self.state = State::Initial;
            }
            State::Word => self.end_word(),
            State::LineComment
            | State::Dash
            | State::Slash
            | State::Number(_)
            | State::Param
            | State::AfterQuote { .. } => {}
            State::Initial => {}
            _ => {
                let what = match self.state {
                    State::CopyData { .. } | State::CopyLineRest => {
                        "COPY data without its closing \\. line"
                    }
                    State::Quote(_) | State::QuoteEscape => "an unterminated quoted string",
                    State::Ident | State::IdentQuote => "an unterminated quoted identifier",
                    State::DollarBody { .. } | State::DollarTag => {
                        "an unterminated dollar-quoted string"
                    }
                    State::BlockComment { .. } => "an unterminated /* comment",
                    _ => "an unfinished statement",
                };
                return Err(self.error(format!("the dump ends inside {what}")).into());
            }
        }
        if self.content {
            self.line = self.statement_line;
            return Err(self
                .error("the dump ends with a statement that has no closing semicolon")
                .into());
        }
        Ok(())
    }

    fn push(&mut self, b: u8) -> Result<(), SplitError> {
        if self.statement.len() >= MAX_STATEMENT {
            return Err(self.error(format!(
                "a statement longer than {} MiB (from line {})",
                MAX_STATEMENT >> 20,
                self.statement_line
            )));
        }
        if !self.content {
            if b.is_ascii_whitespace() {
                return Ok(());
            }
            self.content = true;
            self.statement_line = self.line;
        }
        self.statement.push(b);
        Ok(())
    }

    fn byte<E: From<SplitError>>(
        &mut self,
        b: u8,
        emit: &mut dyn FnMut(Piece<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        // A state may hand the byte back (`false`) to the state it moved to.
        loop {
            if self.step(b, emit)? {
                return Ok(());
            }
        }
    }

    /// Handles `b` in the current state; `false` when it must be handled
    /// again in the state just entered.
    fn step<E: From<SplitError>>(
        &mut self,
        b: u8,
        emit: &mut dyn FnMut(Piece<'_>) -> Result<(), E>,
    ) -> Result<bool, E> {
        match self.state.clone() {
            State::Initial => self.initial(b, emit),
            State::Word => {
                if ident_cont(b) {
                    if self.word.len() < 64 {
                        self.word.push(b.to_ascii_lowercase());
                    }
                    self.push(b)?;
                    return Ok(true);
                }
                let word = std::mem::take(&mut self.word);
                if word.len() == 1 && b == b'\'' {
                    // `E'`, `B'`, `X'`, `N'`: a string, not an identifier.
                    match word[0] {
                        b'e' => return self.open_quote(QuoteKind::Escapes, b).map_err(E::from),
                        b'b' | b'x' | b'n' => {
                            return self.open_quote(QuoteKind::Plain, b).map_err(E::from);
                        }
                        _ => {}
                    }
                }
                if word.len() == 1 && word[0] == b'u' && b == b'&' {
                    self.push(b)?;
                    self.state = State::UAmp;
                    return Ok(true);
                }
                self.word = word;
                self.end_word();
                self.state = State::Initial;
                Ok(false)
            }
            State::UAmp => {
                // `U&'…'` and `U&"…"`; otherwise `u` was an identifier and
                // `&` an operator.
                match b {
                    b'\'' => self.open_quote(QuoteKind::Plain, b).map_err(E::from),
                    b'"' => {
                        self.push(b)?;
                        self.literal.clear();
                        self.state = State::Ident;
                        Ok(true)
                    }
                    _ => {
                        self.word = b"u".to_vec();
                        self.end_word();
                        self.skeleton_token("&".to_owned());
                        self.state = State::Initial;
                        Ok(false)
                    }
                }
            }
            State::Number(stage) => {
                let next = match (stage, b) {
                    (NumberStage::Digits | NumberStage::Fraction, b'0'..=b'9') => Some(stage),
                    (NumberStage::Digits, b'.') if self.prev != b'.' => Some(NumberStage::Fraction),
                    (NumberStage::Digits | NumberStage::Fraction, b'e' | b'E') => {
                        Some(NumberStage::ExponentMark)
                    }
                    (NumberStage::ExponentMark, b'+' | b'-') => Some(NumberStage::ExponentSign),
                    (
                        NumberStage::ExponentMark
                        | NumberStage::ExponentSign
                        | NumberStage::ExponentDigits,
                        b'0'..=b'9',
                    ) => Some(NumberStage::ExponentDigits),
                    _ => None,
                };
                if let Some(next) = next {
                    self.push(b)?;
                    self.state = State::Number(next);
                    return Ok(true);
                }
                if matches!(stage, NumberStage::ExponentMark | NumberStage::ExponentSign)
                    || ident_start(b)
                    || (stage == NumberStage::Digits && b == b'.')
                {
                    // `1e`, `1e+`, `1x`, `1..`: lexed differently by
                    // different PostgreSQL versions (or a syntax error).
                    return Err(self
                        .error(
                            "a number followed directly by a letter, sign or dots (lexed \
                             differently by different PostgreSQL versions; pg_dump never writes \
                             it)",
                        )
                        .into());
                }
                self.skeleton_token("0".to_owned());
                self.state = State::Initial;
                Ok(false)
            }
            State::Dash => {
                if b == b'-' {
                    // A comment: the `-` already pushed is taken back.
                    if self.statement.last() == Some(&b'-') {
                        self.statement.pop();
                        if self.statement.is_empty() {
                            self.content = false;
                        }
                    }
                    self.state = State::LineComment;
                    return Ok(true);
                }
                self.skeleton_token("-".to_owned());
                self.state = State::Initial;
                Ok(false)
            }
            State::Slash => {
                if b == b'*' {
                    self.push(b)?;
                    self.state = State::BlockComment { depth: 1, prev: 0 };
                    return Ok(true);
                }
                self.skeleton_token("/".to_owned());
                self.state = State::Initial;
                Ok(false)
            }
            State::DollarTag => {
                if dolq_cont(b) && !(self.tag.is_empty() && b.is_ascii_digit()) {
                    if self.tag.len() >= 1024 {
                        return Err(self
                            .error("a dollar-quote tag longer than 1024 bytes")
                            .into());
                    }
                    self.tag.push(b);
                    self.push(b)?;
                    return Ok(true);
                }
                if b == b'$' {
                    self.push(b)?;
                    self.skeleton_token("$$".to_owned());
                    self.state = State::DollarBody { closing: None };
                    return Ok(true);
                }
                if self.tag.is_empty() && b.is_ascii_digit() {
                    self.push(b)?;
                    self.state = State::Param;
                    return Ok(true);
                }
                // `$abc` without a closing `$`: `$` alone, then the
                // identifier `abc`.
                self.skeleton_token("$".to_owned());
                if !self.tag.is_empty() {
                    self.word = self.tag.to_ascii_lowercase();
                    self.tag.clear();
                    if ident_cont(b) {
                        // Only `$` can continue it here.
                        self.state = State::Word;
                        return Ok(false);
                    }
                    self.end_word();
                }
                self.state = State::Initial;
                Ok(false)
            }
            State::Param => {
                if b.is_ascii_digit() {
                    self.push(b)?;
                    return Ok(true);
                }
                if ident_start(b) {
                    return Err(self
                        .error("a parameter followed directly by a letter")
                        .into());
                }
                self.skeleton_token("$0".to_owned());
                self.state = State::Initial;
                Ok(false)
            }
            State::Quote(kind) => {
                self.push(b)?;
                if b == b'\'' {
                    self.state = State::AfterQuote {
                        kind,
                        fresh: true,
                        newline: false,
                        comment: false,
                        dash: false,
                    };
                } else if kind == QuoteKind::Escapes && b == b'\\' {
                    self.state = State::QuoteEscape;
                } else if self.literal.len() < 64 {
                    self.literal.push(b.to_ascii_lowercase());
                }
                Ok(true)
            }
            State::QuoteEscape => {
                self.push(b)?;
                self.state = State::Quote(QuoteKind::Escapes);
                Ok(true)
            }
            State::AfterQuote {
                kind,
                fresh,
                newline,
                comment,
                dash,
            } => {
                if fresh && b == b'\'' {
                    // `''` inside the string (psqlscan's xqdouble): it
                    // goes on with its own rules.
                    self.push(b)?;
                    if self.literal.len() < 64 {
                        self.literal.push(b);
                    }
                    self.state = State::Quote(kind);
                    return Ok(true);
                }
                if comment {
                    if b == b'\n' || b == b'\r' {
                        self.state = State::AfterQuote {
                            kind,
                            fresh: false,
                            newline: true,
                            comment: false,
                            dash: false,
                        };
                    }
                    return Ok(true);
                }
                if dash {
                    if b == b'-' {
                        // `--` after the quote: a comment; the first `-`
                        // was not pushed.
                        self.state = State::AfterQuote {
                            kind,
                            fresh: false,
                            newline,
                            comment: true,
                            dash: false,
                        };
                        return Ok(true);
                    }
                    // A lone `-`: the string ended; handle `-` then `b`.
                    self.end_literal();
                    self.state = State::Initial;
                    self.byte(b'-', emit)?;
                    return Ok(false);
                }
                match b {
                    b' ' | b'\t' | b'\x0c' => {
                        self.push(b)?;
                        self.state = State::AfterQuote {
                            kind,
                            fresh: false,
                            newline,
                            comment,
                            dash,
                        };
                        Ok(true)
                    }
                    b'\n' | b'\r' => {
                        self.push(b)?;
                        self.state = State::AfterQuote {
                            kind,
                            fresh: false,
                            newline: true,
                            comment,
                            dash,
                        };
                        Ok(true)
                    }
                    b'-' => {
                        self.state = State::AfterQuote {
                            kind,
                            fresh: false,
                            newline,
                            comment,
                            dash: true,
                        };
                        Ok(true)
                    }
                    b'\'' if newline => {
                        // The string goes on, with its first part's rules.
                        self.push(b)?;
                        self.state = State::Quote(kind);
                        Ok(true)
                    }
                    _ => {
                        self.end_literal();
                        self.state = State::Initial;
                        Ok(false)
                    }
                }
            }
            State::Ident => {
                self.push(b)?;
                if b == b'"' {
                    self.state = State::IdentQuote;
                } else if self.literal.len() < 64 {
                    self.literal.push(b);
                }
                Ok(true)
            }
            State::IdentQuote => {
                if b == b'"' {
                    self.push(b)?;
                    self.literal.push(b);
                    self.state = State::Ident;
                    return Ok(true);
                }
                let name = format!("\"{}\"", String::from_utf8_lossy(&self.literal));
                self.literal.clear();
                self.skeleton_token(name);
                self.state = State::Initial;
                Ok(false)
            }
            State::DollarBody { closing } => {
                self.push(b)?;
                let closing = match closing {
                    None => (b == b'$').then_some(0),
                    Some(matched) if matched == self.tag.len() => {
                        if b == b'$' {
                            self.tag.clear();
                            self.state = State::Initial;
                            return Ok(true);
                        }
                        // `$tag` followed by more tag bytes or other: not
                        // the delimiter.
                        None
                    }
                    Some(matched) => {
                        if b == self.tag[matched] {
                            Some(matched + 1)
                        } else if b == b'$' {
                            Some(0)
                        } else {
                            None
                        }
                    }
                };
                self.state = State::DollarBody { closing };
                Ok(true)
            }
            State::LineComment => {
                if b == b'\n' || b == b'\r' {
                    self.state = State::Initial;
                    return Ok(false);
                }
                Ok(true)
            }
            State::BlockComment { depth, prev } => {
                self.push(b)?;
                self.state = if prev == b'*' && b == b'/' {
                    if depth == 1 {
                        State::Initial
                    } else {
                        State::BlockComment {
                            depth: depth - 1,
                            prev: 0,
                        }
                    }
                } else if prev == b'/' && b == b'*' {
                    State::BlockComment {
                        depth: depth + 1,
                        prev: 0,
                    }
                } else {
                    State::BlockComment { depth, prev: b }
                };
                Ok(true)
            }
            State::Meta => {
                if b == b'\n' {
                    self.end_meta(emit)?;
                    self.state = State::Initial;
                    return Ok(true);
                }
                if self.meta.len() >= MAX_META {
                    return Err(self
                        .error(format!("a meta-command line longer than {MAX_META} bytes"))
                        .into());
                }
                self.meta.push(b);
                Ok(true)
            }
            State::CopyLineRest => {
                match b {
                    b'\n' => {
                        self.state = State::CopyData {
                            at_line_start: true,
                        }
                    }
                    b'\r' => {}
                    _ => {
                        return Err(self
                            .error("text after the semicolon of COPY … FROM stdin on the same line")
                            .into());
                    }
                }
                Ok(true)
            }
            State::CopyData { .. } => unreachable!("COPY data is read by copy_data"),
        }
    }

    fn initial<E: From<SplitError>>(
        &mut self,
        b: u8,
        emit: &mut dyn FnMut(Piece<'_>) -> Result<(), E>,
    ) -> Result<bool, E> {
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => {
                if self.content {
                    self.push(b)?;
                }
            }
            b'-' => {
                self.push(b)?;
                self.state = State::Dash;
            }
            b'/' => {
                self.push(b)?;
                self.state = State::Slash;
            }
            b'\'' => return self.open_quote(QuoteKind::Plain, b).map_err(E::from),
            b'"' => {
                self.push(b)?;
                self.literal.clear();
                self.state = State::Ident;
            }
            b'$' => {
                self.push(b)?;
                self.tag.clear();
                self.state = State::DollarTag;
            }
            b'0'..=b'9' => {
                self.push(b)?;
                self.state = State::Number(NumberStage::Digits);
            }
            b'.' => {
                self.push(b)?;
                self.skeleton_token(".".to_owned());
            }
            b'(' => {
                self.push(b)?;
                self.paren_depth += 1;
                self.skeleton_token("(".to_owned());
            }
            b')' => {
                self.push(b)?;
                self.paren_depth = self.paren_depth.saturating_sub(1);
                self.skeleton_token(")".to_owned());
            }
            b';' => {
                self.push(b)?;
                if self.paren_depth == 0 && self.begin_depth == 0 {
                    self.end_statement(emit)?;
                } else {
                    self.skeleton_token(";".to_owned());
                }
            }
            b'\\' => {
                let line_start = self.prev == b'\n' || self.prev == b'\r';
                if line_start && !self.content {
                    self.state = State::Meta;
                    self.meta.clear();
                    self.meta.push(b);
                    self.meta_line = self.line;
                } else {
                    return Err(self
                        .error(
                            "a backslash outside quoted text (psql would read a meta-command \
                             here; a restore runs none)",
                        )
                        .into());
                }
            }
            _ if ident_start(b) => {
                self.push(b)?;
                self.word.clear();
                self.word.push(b.to_ascii_lowercase());
                self.state = State::Word;
            }
            _ => {
                self.push(b)?;
                self.skeleton_token((b as char).to_string());
            }
        }
        Ok(true)
    }

    fn open_quote(&mut self, kind: QuoteKind, quote: u8) -> Result<bool, SplitError> {
        self.push(quote)?;
        self.literal.clear();
        self.state = State::Quote(kind);
        Ok(true)
    }

    fn end_literal(&mut self) {
        let text = format!("'{}'", String::from_utf8_lossy(&self.literal));
        self.literal.clear();
        self.skeleton_token(text);
    }

    fn skeleton_token(&mut self, token: String) {
        self.skeleton.push(token);
    }

    /// An identifier ended: psql's `BEGIN … END` counting, then the
    /// skeleton.
    fn end_word(&mut self) {
        let word = String::from_utf8_lossy(&self.word).into_owned();
        self.word.clear();
        if self.identifier_count == 0 {
            self.identifiers = [0; 4];
        }
        if matches!(
            word.as_str(),
            "create" | "function" | "procedure" | "or" | "replace"
        ) && self.identifier_count < self.identifiers.len()
        {
            self.identifiers[self.identifier_count] = word.as_bytes()[0];
        }
        self.identifier_count += 1;
        let ids = self.identifiers;
        let routine = ids[0] == b'c'
            && (ids[1] == b'f'
                || ids[1] == b'p'
                || (ids[1] == b'o' && ids[2] == b'r' && (ids[3] == b'f' || ids[3] == b'p')));
        if routine && self.paren_depth == 0 {
            match word.as_str() {
                "begin" => self.begin_depth += 1,
                "case" if self.begin_depth >= 1 => self.begin_depth += 1,
                "end" if self.begin_depth > 0 => self.begin_depth -= 1,
                _ => {}
            }
        }
        self.skeleton_token(word);
    }

    fn end_statement<E: From<SplitError>>(
        &mut self,
        emit: &mut dyn FnMut(Piece<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let skeleton = std::mem::take(&mut self.skeleton);
        let verdict = judge(&skeleton, self.dialect);
        let copy = verdict == Verdict::Run && skeleton.head.first().is_some_and(|t| t == "copy");
        let statement = std::mem::take(&mut self.statement);
        let line = self.statement_line;
        self.content = false;
        self.identifier_count = 0;
        self.paren_depth = 0;
        emit(Piece::Statement {
            text: &statement,
            line,
            verdict,
            copy,
        })?;
        // The buffer is kept for the next statement.
        self.statement = statement;
        self.statement.clear();
        if copy {
            self.state = State::CopyLineRest;
        }
        Ok(())
    }

    fn end_meta<E: From<SplitError>>(
        &mut self,
        emit: &mut dyn FnMut(Piece<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let meta = std::mem::take(&mut self.meta);
        let text = meta.strip_suffix(b"\r").unwrap_or(&meta);
        emit(Piece::Meta {
            text,
            line: self.meta_line,
        })
    }

    /// COPY data from `bytes` (at a line start when `at_line_start`):
    /// passed on whole lines at a time, up to the `\.` line.
    fn copy_data<E: From<SplitError>>(
        &mut self,
        bytes: &[u8],
        mut at_line_start: bool,
        emit: &mut dyn FnMut(Piece<'_>) -> Result<(), E>,
    ) -> Result<usize, E> {
        let mut taken = 0;
        while taken < bytes.len() {
            let rest = &bytes[taken..];
            if at_line_start {
                // The line's first bytes are held until they cannot be `\.`.
                let b = rest[0];
                taken += 1;
                self.copy_start.push(b);
                let start = self.copy_start.as_slice();
                if start == b"\\.\n" || start == b"\\.\r\n" {
                    self.copy_start.clear();
                    self.line += 1;
                    self.prev = b'\n';
                    self.state = State::Initial;
                    emit(Piece::CopyEnd)?;
                    return Ok(taken);
                }
                if [&b"\\.\r\n"[..], b"\\.\n"]
                    .iter()
                    .any(|end| end.starts_with(start))
                {
                    continue;
                }
                let held = std::mem::take(&mut self.copy_start);
                emit(Piece::CopyData(&held))?;
                if b == b'\n' {
                    self.line += 1;
                } else {
                    at_line_start = false;
                }
                continue;
            }
            match memchr::memchr(b'\n', rest) {
                Some(n) => {
                    emit(Piece::CopyData(&rest[..=n]))?;
                    taken += n + 1;
                    self.line += 1;
                    at_line_start = true;
                }
                None => {
                    emit(Piece::CopyData(rest))?;
                    taken = bytes.len();
                }
            }
        }
        self.state = State::CopyData { at_line_start };
        Ok(taken)
    }
}

/// Whether `head` starts with `words`.
fn starts(head: &[String], words: &[&str]) -> bool {
    head.len() >= words.len() && head.iter().zip(words).all(|(h, w)| h == w)
}

/// Extensions a dump may create (`CREATE EXTENSION IF NOT EXISTS`): the
/// ones CircleCI uses and common trusted ones; none reaches files, the
/// network or a shell.
pub const EXTENSIONS: [&str; 14] = [
    "plpgsql",
    "pgcrypto",
    "uuid-ossp",
    "citext",
    "hstore",
    "pg_trgm",
    "btree_gin",
    "btree_gist",
    "fuzzystrmatch",
    "intarray",
    "ltree",
    "unaccent",
    "tablefunc",
    "cube",
];

/// The languages a function may be written in.
const LANGUAGES: [&str; 2] = ["sql", "plpgsql"];

/// What a restore does with a statement (see the module docs). `Own`
/// dumps may hold only what `pg_dump --no-owner --no-privileges` writes
/// for a database; a `Vendor` section also carries its roles, databases,
/// grants and ownership, which are left out.
fn judge(skeleton: &Skeleton, dialect: Dialect) -> Verdict {
    let head = skeleton.head.as_slice();
    let words: Vec<&str> = head.iter().map(String::as_str).collect();
    let refuse = |why: &str| Verdict::Refuse(why.to_owned());
    let vendor_skips = dialect == Dialect::Vendor;
    let is_role_or_db =
        |w: &str| matches!(w, "role" | "user" | "group" | "database" | "tablespace");
    if words.is_empty() {
        return refuse("an empty statement");
    }
    if skeleton.sets_role {
        return refuse("it changes the session's role (SET ROLE / SESSION AUTHORIZATION)");
    }
    let routine = head
        .iter()
        .take(5)
        .any(|t| t == "function" || t == "procedure");
    if let Some(language) = skeleton
        .languages
        .iter()
        .find(|l| routine && !LANGUAGES.contains(&l.as_str()))
    {
        return Verdict::Refuse(format!(
            "a function in language {language:?} (only {} are loaded)",
            LANGUAGES.join(", ")
        ));
    }
    // `COMMENT ON EXTENSION` needs the extension's owner, and the
    // extensions come from pg-provision.
    if starts(head, &["comment", "on", "extension"]) {
        return Verdict::Skip;
    }
    match words[0] {
        "set" => {
            let mut name_at = 1;
            if matches!(words.get(1), Some(&"local" | &"session")) {
                name_at = 2;
            }
            let name = words.get(name_at).copied().unwrap_or("");
            let value: Vec<&str> = words.iter().skip(name_at + 2).copied().collect();
            match name {
                "role" | "session" => refuse("it changes the session's role"),
                "standard_conforming_strings" if !matches!(value.as_slice(), ["on"] | ["'on'"]) => {
                    refuse(
                        "it turns standard_conforming_strings off (strings would then be read differently)",
                    )
                }
                "client_encoding" if !matches!(value.as_slice(), ["'utf8'"] | ["utf8"]) => {
                    refuse("it changes client_encoding (the load is UTF-8)")
                }
                "transaction" | "constraints" => refuse("it changes the load's transaction"),
                // pg_dump before 12 (pg_backup_archiver.c, _setWithOids)
                // sets it before each table created WITH OIDS; 12 and later
                // refuse `true`. The tables are created without OIDs (the
                // loader names them in a warning).
                "default_with_oids"
                    if !matches!(
                        value.as_slice(),
                        ["false"] | ["off"] | ["'false'"] | ["'off'"]
                    ) =>
                {
                    Verdict::Skip
                }
                _ => Verdict::Run,
            }
        }
        "select" => {
            // Exactly `SELECT [pg_catalog.]setval('seq', n[, bool])` or
            // `SELECT [pg_catalog.]set_config('search_path', '…', bool)`.
            let whole = skeleton.tokens == head.len();
            let mut args = &words[1..];
            if starts(&head[1..], &["pg_catalog", "."]) {
                args = &args[2..];
            }
            let literal = |t: &str| t.len() >= 2 && t.starts_with('\'') && t.ends_with('\'');
            let boolean = |t: &str| matches!(t, "true" | "false");
            let shape = match args {
                ["setval", "(", seq, ",", "0", ")"] => literal(seq),
                ["setval", "(", seq, ",", "0", ",", b, ")"] => literal(seq) && boolean(b),
                ["set_config", "(", "'search_path'", ",", value, ",", b, ")"] => {
                    literal(value) && boolean(b)
                }
                _ => false,
            };
            if whole && shape {
                Verdict::Run
            } else {
                refuse("a SELECT other than pg_catalog.setval(…) or set_config('search_path', …)")
            }
        }
        "create" => {
            let mut at = 1;
            if starts(&head[1..], &["or", "replace"]) {
                at = 3;
            }
            while matches!(
                words.get(at),
                Some(
                    &"unlogged"
                        | &"temporary"
                        | &"temp"
                        | &"recursive"
                        | &"trusted"
                        | &"constraint"
                        | &"unique"
                        | &"default"
                )
            ) {
                at += 1;
            }
            let kind = words.get(at).copied().unwrap_or("");
            match kind {
                "table" | "sequence" | "index" | "view" | "type" | "domain" | "schema"
                | "function" | "procedure" | "aggregate" | "trigger" | "rule" | "operator"
                | "collation" | "policy" | "statistics" | "cast" | "conversion" => Verdict::Run,
                "materialized" if words.get(at + 1) == Some(&"view") => Verdict::Run,
                "text" if words.get(at + 1) == Some(&"search") => {
                    if matches!(words.get(at + 2), Some(&"configuration" | &"dictionary")) {
                        Verdict::Run
                    } else {
                        refuse("a text search parser or template (C functions)")
                    }
                }
                "extension" => {
                    let mut name_at = at + 1;
                    if starts(&head[name_at..], &["if", "not", "exists"]) {
                        name_at += 3;
                    }
                    let name = words.get(name_at).copied().unwrap_or("");
                    let name = name.trim_matches('\'').trim_matches('"');
                    if EXTENSIONS.contains(&name) {
                        Verdict::Run
                    } else {
                        Verdict::Refuse(format!(
                            "CREATE EXTENSION of an extension not on the list ({}); install it on \
                             the target first",
                            EXTENSIONS.join(", ")
                        ))
                    }
                }
                "role" | "user" | "group" | "database" if vendor_skips => Verdict::Skip,
                _ => Verdict::Refuse(format!("CREATE {}", kind.to_uppercase())),
            }
        }
        "alter" => {
            let kind = words.get(1).copied().unwrap_or("");
            let owner = head.windows(2).any(|w| w[0] == "owner" && w[1] == "to");
            if is_role_or_db(kind) || kind == "default" {
                return if vendor_skips && kind != "tablespace" {
                    Verdict::Skip
                } else {
                    Verdict::Refuse(format!("ALTER {}", kind.to_uppercase()))
                };
            }
            if owner {
                return if vendor_skips {
                    Verdict::Skip
                } else {
                    refuse("it changes an object's owner")
                };
            }
            match kind {
                "table" | "sequence" | "index" | "view" | "materialized" | "type" | "domain"
                | "schema" | "function" | "procedure" | "aggregate" | "trigger" | "rule"
                | "operator" | "collation" | "policy" | "statistics" | "text" => Verdict::Run,
                _ => Verdict::Refuse(format!("ALTER {}", kind.to_uppercase())),
            }
        }
        "comment" => {
            if matches!(words.get(2), Some(w) if is_role_or_db(w)) {
                if vendor_skips {
                    Verdict::Skip
                } else {
                    refuse("a comment on a role or database")
                }
            } else {
                Verdict::Run
            }
        }
        "grant" | "revoke" => {
            let on = head.iter().position(|t| t == "on");
            let to = head.iter().position(|t| t == "to" || t == "from");
            if vendor_skips {
                Verdict::Skip
            } else if matches!((on, to), (Some(on), Some(to)) if on < to) {
                Verdict::Run
            } else {
                refuse("it grants a role")
            }
        }
        "drop" => {
            let kind = words.get(1).copied().unwrap_or("");
            if vendor_skips && is_role_or_db(kind) && kind != "tablespace" {
                Verdict::Skip
            } else {
                Verdict::Refuse(format!("DROP {}", kind.to_uppercase()))
            }
        }
        "copy" => {
            let from_stdin = head.windows(2).any(|w| w[0] == "from" && w[1] == "stdin");
            let program = head.iter().any(|t| t == "program");
            if from_stdin && !program {
                Verdict::Run
            } else {
                refuse("COPY other than FROM stdin (a file or program on the server)")
            }
        }
        "insert" => Verdict::Run,
        // pg_dumpall -c around template1: `UPDATE pg_catalog.pg_database
        // SET datistemplate = …`.
        "update"
            if vendor_skips && starts(&head[1..], &["pg_catalog", ".", "pg_database", "set"]) =>
        {
            Verdict::Skip
        }
        _ => Verdict::Refuse(words[0].to_uppercase().to_string()),
    }
}

/// What a restore does with a meta-command line: `\restrict KEY` and
/// `\unrestrict KEY` (pg_dump 17.6+/16.10+/15.14+, KEY alphanumeric, at
/// most 64) are ignored; in a `pg_dumpall` script `\connect` lines are
/// where one database's section ends (restore splits there, see
/// [`connect_target`]); anything else refuses the member.
pub fn meta_verdict(text: &[u8], dialect: Dialect) -> Verdict {
    let line = String::from_utf8_lossy(text);
    let mut parts = line.split([' ', '\t']).filter(|p| !p.is_empty());
    let command = parts.next().unwrap_or("");
    let args: Vec<&str> = parts.collect();
    match command {
        "\\restrict" | "\\unrestrict"
            if args.len() == 1
                && !args[0].is_empty()
                && args[0].len() <= 64
                && args[0].bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            Verdict::Skip
        }
        "\\connect" if dialect == Dialect::Vendor && connect_target(text).is_some() => {
            Verdict::Skip
        }
        _ => Verdict::Refuse(format!(
            "the meta-command line {:?} (psql would run it; a restore runs none)",
            cut(&line, 80)
        )),
    }
}

/// The database a `\connect` line of a `pg_dumpall` script switches to, in
/// the forms pg_dumpall writes: `\connect -reuse-previous=on
/// "dbname='x'"` (12+) or `\connect x` / `\connect "x"` (older). Only a
/// plain name is accepted (letters, digits, `_`, `-`, `.`; no quotes,
/// backquotes or spaces inside).
pub fn connect_target(line: &[u8]) -> Option<String> {
    let line = std::str::from_utf8(line)
        .ok()?
        .trim_end_matches(['\r', '\n']);
    let rest = line.strip_prefix("\\connect ")?;
    let name = if let Some(quoted) = rest.strip_prefix("-reuse-previous=on ") {
        quoted.strip_prefix("\"dbname='")?.strip_suffix("'\"")?
    } else if let Some(quoted) = rest.strip_prefix('"') {
        quoted.strip_suffix('"')?
    } else {
        rest
    };
    let plain = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    plain.then(|| name.to_owned())
}

/// `text` cut to `max` characters, with `…` when cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests;
