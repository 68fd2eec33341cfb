//! SQL text: identifier and literal quoting. Pure functions.

/// Quotes an identifier the way PostgreSQL's `quote_ident` does when quoting
/// is needed: wrapped in double quotes, embedded double quotes doubled.
/// Always quoting keeps case and any character (a NUL is rejected earlier by
/// [`crate::Desired::validate`]).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal safely whatever `standard_conforming_strings` is:
/// single quotes are doubled, and if the text holds a backslash it becomes an
/// escape-string literal (`E'…'`) with backslashes doubled, as libpq's
/// `PQescapeLiteral` does.
pub fn quote_literal(text: &str) -> String {
    let escaped = text.replace('\'', "''");
    if text.contains('\\') {
        format!("E'{}'", escaped.replace('\\', "\\\\"))
    } else {
        format!("'{escaped}'")
    }
}

#[cfg(test)]
mod tests {
    use super::{quote_ident, quote_literal};

    #[test]
    fn identifiers_are_always_quoted() {
        assert_eq!(quote_ident("circle"), "\"circle\"");
        assert_eq!(quote_ident("uuid-ossp"), "\"uuid-ossp\"");
        assert_eq!(
            quote_ident("a\"; DROP TABLE x; --"),
            "\"a\"\"; DROP TABLE x; --\""
        );
    }

    #[test]
    fn literals_survive_quotes_and_backslashes() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\'b"), "E'a\\\\''b'");
        assert_eq!(quote_literal("ü$@"), "'ü$@'");
    }
}
