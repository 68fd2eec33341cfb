//! The MongoDB server version an installation runs, and what depends on it.

use std::fmt;

/// A MongoDB release as `major.minor` (a patch level is accepted and
/// ignored: nothing this crate does depends on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerVersion {
    /// Major version, e.g. 7.
    pub major: u32,
    /// Minor version, e.g. 0.
    pub minor: u32,
}

impl ServerVersion {
    /// The oldest server the official Rust driver (3.x) talks to: it refuses
    /// servers below wire version 9, which is MongoDB 4.4.
    pub const OLDEST_DRIVER_SUPPORTED: ServerVersion = ServerVersion { major: 4, minor: 4 };

    /// Parses `7.0`, `4.4.29`, `3.2.11`.
    pub fn parse(text: &str) -> Result<ServerVersion, String> {
        let bad =
            || format!("{text:?} is not a MongoDB version (write it as major.minor, e.g. \"7.0\")");
        let mut parts = text.trim().split('.');
        let major = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let minor = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        if let Some(patch) = parts.next()
            && patch.parse::<u32>().is_err()
        {
            return Err(bad());
        }
        if parts.next().is_some() || !(2..=20).contains(&major) {
            return Err(bad());
        }
        Ok(ServerVersion { major, minor })
    }

    /// Whether mongod takes the `net.tls.*` option names (4.2 and later);
    /// before 4.2 only `net.ssl.*` exists.
    pub fn has_tls_option_names(self) -> bool {
        self >= ServerVersion { major: 4, minor: 2 }
    }

    /// Whether mongod still accepts `storage.journal.enabled`: 6.1 removed
    /// the option and refuses a config file that sets it.
    pub fn accepts_journal_option(self) -> bool {
        self < ServerVersion { major: 6, minor: 1 }
    }

    /// Whether this crate can connect to such a server (see
    /// [`ServerVersion::OLDEST_DRIVER_SUPPORTED`]).
    pub fn driver_supported(self) -> bool {
        self >= Self::OLDEST_DRIVER_SUPPORTED
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders_versions() {
        let v = |t| ServerVersion::parse(t).unwrap();
        assert_eq!(v("7.0"), ServerVersion { major: 7, minor: 0 });
        assert_eq!(v("3.2.11"), ServerVersion { major: 3, minor: 2 });
        assert!(v("4.2") > v("4.0") && v("10.0") > v("8.0"));
        for bad in ["", "7", "seven.0", "7.0.x", "7.0.1.2", "0.9"] {
            assert!(ServerVersion::parse(bad).is_err(), "{bad}");
        }
        assert!(!v("4.0").has_tls_option_names() && v("4.2").has_tls_option_names());
        assert!(v("6.0").accepts_journal_option() && !v("6.1").accepts_journal_option());
        assert!(!v("4.2").driver_supported() && v("4.4").driver_supported());
    }
}
