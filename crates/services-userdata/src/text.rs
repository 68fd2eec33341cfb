//! Quoting for the places values end up: shell words, URI user info, host
//! names. Pure functions.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// A shell word that is exactly `value` whatever it holds: single-quoted,
/// with each `'` written as `'\''`. Backticks, `$`, `"`, spaces, newlines
/// and non-ASCII stay literal.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// `export KEY='value'` for an env file that is `source`d.
pub fn export_line(key: &str, value: &str) -> String {
    format!("export {key}={}\n", shell_quote(value))
}

/// Everything but RFC 3986's unreserved characters is percent-encoded, so
/// `@ : / ? # [ ] %` and non-ASCII in a user name or password cannot end the
/// user-info part of a URI.
const USERINFO: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a URI user name or password (UTF-8 bytes).
pub fn encode_userinfo(value: &str) -> String {
    utf8_percent_encode(value, USERINFO).to_string()
}

/// A host name as TLS clients and URIs need it: lowercase ASCII, with
/// internationalised labels converted to punycode (`xn--…`). IP addresses
/// pass through. Errors say why the name is unusable.
pub fn normalize_host(host: &str) -> Result<String, String> {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(host.to_owned());
    }
    if host.is_empty() {
        return Err("is empty".to_owned());
    }
    let ascii = idna::domain_to_ascii(host)
        .map_err(|_| "is not a valid host name (IDNA conversion failed)".to_owned())?;
    if ascii.is_empty()
        || !ascii
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
        || ascii.split('.').any(|l| l.is_empty() || l.len() > 63)
    {
        return Err(
            "may contain only letters, digits, '-' and '.' (in non-empty labels)".to_owned(),
        );
    }
    Ok(ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_survive_everything() {
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("$x `y` \"z\"\n"), "'$x `y` \"z\"\n'");
    }

    #[test]
    fn userinfo_encodes_delimiters_and_unicode() {
        assert_eq!(
            encode_userinfo("a@b:c/d?e#f%g"),
            "a%40b%3Ac%2Fd%3Fe%23f%25g"
        );
        assert_eq!(encode_userinfo("ü"), "%C3%BC");
        assert_eq!(encode_userinfo("A-z_0.9~"), "A-z_0.9~");
    }

    #[test]
    fn hosts_are_punycoded_or_refused() {
        assert_eq!(
            normalize_host("Mongo-1.Internal").unwrap(),
            "mongo-1.internal"
        );
        assert_eq!(
            normalize_host("bücher.example").unwrap(),
            "xn--bcher-kva.example"
        );
        assert_eq!(normalize_host("10.0.0.1").unwrap(), "10.0.0.1");
        assert!(normalize_host("a b.example").is_err());
        assert!(normalize_host("a..b").is_err());
        assert!(normalize_host("").is_err());
    }
}
