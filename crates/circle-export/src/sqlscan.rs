//! What psql would read as a meta-command in a SQL file.
//!
//! A restore feeds each database's SQL to `psql`, and psql executes any
//! backslash command it meets outside quoted text and `COPY` data: `\!`
//! runs a shell command, `\o |cmd` and `\copy … program` too, `\i` reads
//! another file. An archive comes from a possibly hostile machine (its
//! checksums prove only that it is self-consistent), so every SQL file is
//! scanned the way psql's lexer reads it, and any meta-command but the few
//! our dumps and the vendor's `pg_dumpall` contain is refused before
//! anything is written.
//!
//! The scanner follows psql's lexer where it matters: single-quoted
//! strings (`''` inside; `E'…'` with backslash escapes), double-quoted
//! identifiers, dollar quoting (`$$…$$`, `$tag$…$tag$`), `--` and nested
//! `/* */` comments, and `COPY … FROM stdin;` data up to its `\.` line. A
//! backslash anywhere else starts a meta-command, at the start of a line or
//! not (`SELECT 1; \! id` runs `id`). Files that turn
//! `standard_conforming_strings` off (which changes how psql reads
//! backslashes in strings) are refused: our dumps and pg_dumpall set it on.

/// Meta-commands a restore accepts outside COPY data.
pub const ALLOWED: [&str; 4] = ["connect", "c", "restrict", "unrestrict"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Normal,
    SingleQuote { escapes: bool },
    DoubleQuote,
    Dollar,
    LineComment,
    BlockComment(u32),
    Meta,
    CopyData,
}

/// Scans a SQL file fed in chunks of any size.
#[derive(Debug)]
pub struct Scanner {
    state: State,
    line: u64,
    /// The previous byte in Normal state (for `E'`, `--`, `/*`, `$`).
    prev: u8,
    /// The byte before it.
    prev2: u8,
    /// Whether the string just closed took backslash escapes: `''` inside
    /// an `E'…'` string closes and reopens it, and it keeps taking them.
    last_quote_escapes: bool,
    /// A dollar-quote tag being read (`$tag$`), or the one being closed.
    tag: Vec<u8>,
    reading_tag: bool,
    /// In Dollar state: how much of `$tag$` has matched so far.
    closing: usize,
    /// In BlockComment: the previous byte.
    comment_prev: u8,
    /// The current statement outside quotes, lower-cased, capped.
    statement: Vec<u8>,
    /// The meta-command being read.
    meta: Vec<u8>,
    meta_line: u64,
    /// Start of a COPY data line: bytes of it seen so far (up to 3).
    copy_line: Vec<u8>,
    copy_pending: bool,
    found: Vec<(u64, String)>,
}

impl Default for Scanner {
    fn default() -> Scanner {
        Scanner {
            state: State::Normal,
            line: 1,
            prev: b'\n',
            prev2: b'\n',
            last_quote_escapes: false,
            tag: Vec::new(),
            reading_tag: false,
            closing: 0,
            comment_prev: 0,
            statement: Vec::new(),
            meta: Vec::new(),
            meta_line: 0,
            copy_line: Vec::new(),
            copy_pending: false,
            found: Vec::new(),
        }
    }
}

const STATEMENT_CAP: usize = 4096;

impl Scanner {
    /// Feeds the next bytes.
    pub fn feed(&mut self, chunk: &[u8]) {
        let mut i = 0;
        while i < chunk.len() {
            if self.state == State::CopyData {
                i += self.copy_data(&chunk[i..]);
                continue;
            }
            self.byte(chunk[i]);
            i += 1;
        }
    }

    /// Consumes COPY data up to the end of `bytes` or of the data (the
    /// `\.` line), returning how many bytes it took.
    fn copy_data(&mut self, bytes: &[u8]) -> usize {
        let mut taken = 0;
        while taken < bytes.len() {
            let rest = &bytes[taken..];
            if self.copy_line.len() < 3 {
                let b = rest[0];
                taken += 1;
                if b == b'\n' {
                    self.line += 1;
                    let end = self.copy_line == b"\\." || self.copy_line == b"\\.\r";
                    self.copy_line.clear();
                    if end {
                        self.state = State::Normal;
                        self.prev = b'\n';
                        self.prev2 = b'\n';
                        return taken;
                    }
                } else {
                    self.copy_line.push(b);
                }
                continue;
            }
            // Past a line's first bytes: skip to its end.
            match memchr::memchr(b'\n', rest) {
                Some(n) => {
                    taken += n + 1;
                    self.line += 1;
                    self.copy_line.clear();
                }
                None => taken = bytes.len(),
            }
        }
        taken
    }

    fn byte(&mut self, b: u8) {
        if b == b'\n' {
            self.line += 1;
        }
        match self.state {
            State::Normal => self.normal(b),
            State::SingleQuote { escapes } => {
                if escapes && self.prev == b'\\' {
                    // An escaped byte; `\\\\` must not escape what follows.
                    self.prev = 0;
                    return;
                }
                if b == b'\'' {
                    self.state = State::Normal;
                    self.prev = b'\'';
                    self.prev2 = 0;
                    self.last_quote_escapes = escapes;
                    return;
                }
                self.prev = b;
            }
            State::DoubleQuote => {
                if b == b'"' {
                    self.state = State::Normal;
                    self.prev = b'"';
                    self.prev2 = 0;
                }
            }
            State::Dollar => {
                // Match `$tag$` to close.
                let want = if self.closing == 0 || self.closing == self.tag.len() + 1 {
                    b'$'
                } else {
                    self.tag[self.closing - 1]
                };
                if b == want {
                    self.closing += 1;
                    if self.closing == self.tag.len() + 2 {
                        self.state = State::Normal;
                        self.closing = 0;
                        self.prev = b'$';
                        self.prev2 = 0;
                    }
                } else {
                    self.closing = usize::from(b == b'$');
                }
            }
            State::LineComment => {
                if b == b'\n' {
                    self.state = State::Normal;
                    self.prev = b'\n';
                    self.prev2 = 0;
                }
            }
            State::BlockComment(depth) => {
                if self.comment_prev == b'*' && b == b'/' {
                    self.state = if depth == 1 {
                        State::Normal
                    } else {
                        State::BlockComment(depth - 1)
                    };
                    self.comment_prev = 0;
                    self.prev = b' ';
                    return;
                }
                if self.comment_prev == b'/' && b == b'*' {
                    self.state = State::BlockComment(depth + 1);
                    self.comment_prev = 0;
                    return;
                }
                self.comment_prev = b;
            }
            State::Meta => {
                if b == b'\n' {
                    self.end_meta();
                    self.state = State::Normal;
                    self.prev = b'\n';
                    self.prev2 = 0;
                } else if b == b'\\' {
                    // `\\` (psql's separator) or another backslash: psql
                    // may read a further meta-command on the same line;
                    // each is judged alone.
                    if !self.meta.is_empty() {
                        self.end_meta();
                    }
                } else if self.meta.len() < 32 && !self.meta_done() {
                    if b.is_ascii_whitespace() {
                        if !self.meta.is_empty() {
                            self.meta.push(b' ');
                        }
                    } else {
                        self.meta.push(b);
                    }
                }
            }
            State::CopyData => unreachable!("handled by copy_data"),
        }
    }

    fn meta_done(&self) -> bool {
        self.meta.last() == Some(&b' ')
    }

    fn end_meta(&mut self) {
        let name = String::from_utf8_lossy(&self.meta).trim().to_owned();
        if !name.is_empty() {
            self.found.push((self.meta_line, name));
        }
        self.meta.clear();
    }

    fn normal(&mut self, b: u8) {
        if self.reading_tag {
            if b == b'$' {
                self.reading_tag = false;
                self.state = State::Dollar;
                self.closing = 0;
                return;
            }
            if b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80 {
                if self.tag.is_empty() && b.is_ascii_digit() {
                    // `$1`: a parameter, not a dollar quote.
                    self.reading_tag = false;
                } else {
                    self.tag.push(b);
                    return;
                }
            } else {
                self.reading_tag = false;
            }
        }
        let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80;
        match b {
            b'\'' => {
                let escapes = if self.prev == b'\'' {
                    self.last_quote_escapes
                } else {
                    matches!(self.prev, b'e' | b'E') && !ident(self.prev2)
                };
                self.state = State::SingleQuote { escapes };
                self.prev = 0;
                return;
            }
            b'"' => {
                self.state = State::DoubleQuote;
                return;
            }
            b'$' if !ident(self.prev) => {
                self.reading_tag = true;
                self.tag.clear();
            }
            b'-' if self.prev == b'-' => {
                self.state = State::LineComment;
                self.statement.pop();
                return;
            }
            b'*' if self.prev == b'/' => {
                self.state = State::BlockComment(1);
                self.comment_prev = 0;
                self.statement.pop();
                return;
            }
            b'\\' => {
                self.state = State::Meta;
                self.meta.clear();
                self.meta_line = self.line;
                return;
            }
            b';' => {
                self.end_statement();
                self.prev2 = self.prev;
                self.prev = b;
                return;
            }
            b'\n' if self.copy_pending => {
                self.copy_pending = false;
                self.state = State::CopyData;
                self.copy_line.clear();
                return;
            }
            _ => {}
        }
        if self.statement.len() < STATEMENT_CAP {
            let c = if b.is_ascii_whitespace() {
                b' '
            } else {
                b.to_ascii_lowercase()
            };
            if !(c == b' ' && self.statement.last().is_none_or(|l| *l == b' ')) {
                self.statement.push(c);
            }
        }
        self.prev2 = self.prev;
        self.prev = b;
    }

    fn end_statement(&mut self) {
        let text = String::from_utf8_lossy(&self.statement).trim().to_owned();
        if text.starts_with("copy ") && text.ends_with("from stdin") {
            self.copy_pending = true;
        }
        if text.contains("standard_conforming_strings")
            && text.replace(' ', "") != "setstandard_conforming_strings=on"
        {
            self.found.push((
                self.line,
                "(a statement changing standard_conforming_strings)".to_owned(),
            ));
        }
        self.statement.clear();
    }

    /// Whether the next byte starts a new statement: outside quotes,
    /// comments and COPY data, with nothing of a statement pending. Line
    /// filters act only there (a line of a function body is never a
    /// statement of its own).
    pub fn at_statement_start(&self) -> bool {
        self.state == State::Normal
            && !self.reading_tag
            && !self.copy_pending
            && self.statement.iter().all(|b| *b == b' ')
    }

    /// Whether what was fed so far holds a meta-command psql would run
    /// other than [`ALLOWED`] — or one being read whose name can no longer
    /// become an allowed one (`\!` before its line ends). The loader checks
    /// this before handing each chunk to psql.
    pub fn refuses(&self) -> Option<String> {
        if let Some((line, name)) = self
            .found
            .iter()
            .find(|(_, name)| !ALLOWED.contains(&name.as_str()))
        {
            return Some(format!("\\{name} at line {line}"));
        }
        if self.state == State::Meta {
            let so_far = String::from_utf8_lossy(&self.meta).trim().to_owned();
            if !so_far.is_empty() && !ALLOWED.iter().any(|a| a.starts_with(so_far.as_str())) {
                return Some(format!("\\{so_far} at line {}", self.meta_line));
            }
        }
        None
    }

    /// Ends the scan: every meta-command psql would run outside COPY data,
    /// with its line, except [`ALLOWED`] ones.
    pub fn finish(mut self) -> Vec<(u64, String)> {
        if self.state == State::Meta {
            self.end_meta();
        }
        self.found
            .into_iter()
            .filter(|(_, name)| !ALLOWED.contains(&name.as_str()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Scanner;

    fn scan(text: &str) -> Vec<(u64, String)> {
        // Every split point, so that state carried across chunks is tested.
        let all = {
            let mut s = Scanner::default();
            s.feed(text.as_bytes());
            s.finish()
        };
        for split in 1..text.len() {
            let mut s = Scanner::default();
            s.feed(&text.as_bytes()[..split]);
            s.feed(&text.as_bytes()[split..]);
            assert_eq!(s.finish(), all, "split at {split} of {text:?}");
        }
        all
    }

    #[test]
    fn meta_commands_anywhere_outside_quotes_are_found() {
        assert_eq!(scan("\\! touch /tmp/x\n"), [(1, "!".to_owned())]);
        assert_eq!(scan("SELECT 1;\nSELECT 2; \\! id\n"), [(2, "!".to_owned())]);
        assert_eq!(scan("SELECT 1 \\g\n"), [(1, "g".to_owned())]);
        assert_eq!(scan("\\o |sh\n"), [(1, "o".to_owned())]);
        assert_eq!(scan("\\i /etc/passwd\n"), [(1, "i".to_owned())]);
    }

    #[test]
    fn quotes_comments_dollar_quotes_and_copy_data_hide_backslashes() {
        let dump = "SET standard_conforming_strings = on;\n\
                    \\restrict abc123\n\
                    CREATE FUNCTION f() RETURNS text AS $body$ SELECT '\\! no' $body$ LANGUAGE sql;\n\
                    CREATE FUNCTION g() RETURNS text AS $$\n\\! inside\n$$ LANGUAGE sql;\n\
                    SELECT 'a\\b', E'it\\'s \\\\', \"we\\ird\"; -- \\! comment\n\
                    /* outer /* \\! nested */ still */ SELECT $1;\n\
                    COPY public.t (a, b) FROM stdin;\n\
                    1\t\\! data\n\
                    \\\\x\t\\N\n\
                    \\.\n\
                    \\unrestrict abc123\n";
        assert_eq!(scan(dump), []);
    }

    #[test]
    fn after_copy_data_ends_the_scan_resumes() {
        let text = "COPY t (a) FROM stdin;\n\\! in data\n\\.\n\\! after\n";
        assert_eq!(scan(text), [(4, "!".to_owned())]);
        // A COPY TO (not from stdin) has no data block.
        assert_eq!(scan("COPY t TO stdout;\n\\! x\n"), [(2, "!".to_owned())]);
    }

    #[test]
    fn turning_standard_conforming_strings_off_is_refused() {
        let found = scan("SET standard_conforming_strings = off;\nSELECT 'x\\'';\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].1.contains("standard_conforming_strings"));
    }

    #[test]
    fn an_allowed_command_cannot_smuggle_another_or_an_e_string_hide_one() {
        assert_eq!(scan("\\connect db \\\\ \\! id\n"), [(1, "!".to_owned())]);
        assert_eq!(scan("SELECT E'a''b\\'c'; \\! id\n"), [(1, "!".to_owned())]);
    }

    #[test]
    fn the_allowed_commands_pass() {
        assert_eq!(
            scan("\\connect circle\n\\c vms\n\\restrict k\n\\unrestrict k\n"),
            []
        );
    }
}
