//! Reading the shell files CircleCI sources (`/etc/circle-installation-customizations`,
//! `/etc/circleconfig/shared/{postgresql,vault}`) the way `sh` would, for
//! the subset such files use: comments, `NAME=value` and `export
//! NAME=value`, values single-quoted, double-quoted (with `$NAME`,
//! `${NAME}` and backslash escapes) or bare (with `$NAME`), earlier
//! assignments expanded into later ones — the runbook's own file builds
//! every URI from `$MONGO_BASE_URI`.
//!
//! Anything else is a problem with its line number (a typographic quote
//! from a copied snippet, an unterminated quote, a command). Problems
//! never quote a value: these files hold passwords.

use std::collections::BTreeMap;

use secrecy::SecretString;

/// One line `sh` would not read as an assignment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvProblem {
    /// 1-based.
    pub line: usize,
    /// What is wrong (no value quoted).
    pub message: String,
}

/// The variables a file sets, in the order set (a later one replaces an
/// earlier one), values held as secrets.
#[derive(Debug, Default)]
pub struct EnvFile {
    /// Name → value.
    pub vars: BTreeMap<String, SecretString>,
    /// The names that were `export`ed (the services see only those).
    pub exported: Vec<String>,
}

/// Parses `text`; every problem at once.
pub fn parse_env(text: &str) -> Result<EnvFile, Vec<EnvProblem>> {
    use secrecy::ExposeSecret as _;
    let mut file = EnvFile::default();
    let mut problems = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let number = index + 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut problem = |message: &str| {
            problems.push(EnvProblem {
                line: number,
                message: message.to_owned(),
            });
        };
        if line.contains(['\u{2018}', '\u{2019}', '\u{201c}', '\u{201d}']) {
            problem(
                "has typographic quotes (‘ ’ “ ”) where sh needs ' or \" (copied from a web page?)",
            );
            continue;
        }
        let (exported, rest) = match line.strip_prefix("export ") {
            Some(rest) => (true, rest.trim_start()),
            None => (false, line),
        };
        let Some((name, value)) = rest.split_once('=') else {
            problem("is not an assignment (NAME=value)");
            continue;
        };
        if name.is_empty()
            || name.starts_with(|c: char| c.is_ascii_digit())
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            problem("does not start with a variable name (letters, digits, _)");
            continue;
        }
        let lookup = |var: &str| file.vars.get(var).map(|v| v.expose_secret().to_owned());
        match expand(value, &lookup) {
            Ok(value) => {
                file.vars.insert(name.to_owned(), SecretString::from(value));
                if exported && !file.exported.iter().any(|n| n == name) {
                    file.exported.push(name.to_owned());
                }
            }
            Err(message) => problem(&message),
        }
    }
    if problems.is_empty() {
        Ok(file)
    } else {
        Err(problems)
    }
}

/// The longest value an assignment may expand to: far above any URI or
/// password, and low enough that a file whose lines each double the
/// previous one (`A2="$A1$A1"`, …) is refused after a few lines instead of
/// taking gigabytes.
pub const MAX_VALUE: usize = 1 << 20;

/// One shell word (the value of an assignment), expanded; at most
/// [`MAX_VALUE`] bytes.
fn expand(word: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let value = expand_unbounded(word, lookup)?;
    if value.len() > MAX_VALUE {
        return Err(too_long());
    }
    Ok(value)
}

fn too_long() -> String {
    format!(
        "expands to more than {} KiB (a variable expanded into itself over and over?)",
        MAX_VALUE >> 10
    )
}

fn expand_unbounded(word: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = word.chars().peekable();
    let variable =
        |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| -> Result<String, String> {
            let braced = chars.peek() == Some(&'{');
            if braced {
                chars.next();
            }
            let mut name = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '_' {
                    name.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            if braced && chars.next() != Some('}') {
                return Err("has a ${ without its closing }".to_owned());
            }
            if name.is_empty() {
                return Ok("$".to_owned());
            }
            lookup(&name)
                .ok_or_else(|| format!("uses ${name}, which no earlier line of the file sets"))
        };
    // Expansions are checked before they are appended: the value never
    // grows past the limit.
    let append = |out: &mut String, text: &str| {
        if out.len() + text.len() > MAX_VALUE {
            return Err(too_long());
        }
        out.push_str(text);
        Ok(())
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => loop {
                match chars.next() {
                    Some('\'') => break,
                    Some(c) => out.push(c),
                    None => return Err("has a ' that is never closed".to_owned()),
                }
            },
            '"' => loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c @ ('$' | '`' | '"' | '\\')) => out.push(c),
                        Some(c) => {
                            out.push('\\');
                            out.push(c);
                        }
                        None => return Err("has a \" that is never closed".to_owned()),
                    },
                    Some('$') => append(&mut out, &variable(&mut chars)?)?,
                    Some('`') => return Err("runs a command (`…`): not a plain value".to_owned()),
                    Some(c) => out.push(c),
                    None => return Err("has a \" that is never closed".to_owned()),
                }
            },
            '\\' => match chars.next() {
                Some(c) => out.push(c),
                None => return Err("ends with a lone \\".to_owned()),
            },
            '$' if chars.peek() == Some(&'(') => {
                return Err("runs a command ($(…)): not a plain value".to_owned());
            }
            '$' => append(&mut out, &variable(&mut chars)?)?,
            '`' => return Err("runs a command (`…`): not a plain value".to_owned()),
            c if c.is_whitespace() => {
                // `NAME=value more`: sh would run `more` as a command.
                let rest: String = chars.by_ref().collect();
                if rest.trim_start().starts_with('#') {
                    break;
                }
                return Err("has an unquoted space: sh would run the rest as a command".to_owned());
            }
            ';' | '&' | '|' | '<' | '>' => {
                return Err(format!("has an unquoted {c}: not a plain value"));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
