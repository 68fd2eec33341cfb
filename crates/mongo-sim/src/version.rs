//! The MongoDB version the simulator reports, and what depends on it.

/// A server version profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl Default for Version {
    /// 7.0, the default profile.
    fn default() -> Self {
        Version { major: 7, minor: 0 }
    }
}

impl Version {
    /// The profiles `--simServerVersion` accepts. 3.6 is mongod 3.6.6, the
    /// Services machine's (MONGO-FACTS §8).
    pub const SUPPORTED: [&'static str; 6] = ["3.6", "4.4", "5.0", "6.0", "7.0", "8.0"];

    /// Parses `4.4`, `7.0` … (a patch level is ignored).
    pub fn parse(text: &str) -> Option<Version> {
        let mut parts = text.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let version = Version { major, minor };
        Version::SUPPORTED
            .contains(&format!("{major}.{minor}").as_str())
            .then_some(version)
    }

    /// The full version string `buildInfo` reports.
    pub fn string(self) -> String {
        let patch = match (self.major, self.minor) {
            (3, 6) => 6,
            (4, 4) => 29,
            (5, 0) => 30,
            (6, 0) => 19,
            (7, 0) => 14,
            _ => 3,
        };
        format!("{}.{}.{patch}", self.major, self.minor)
    }

    /// `maxWireVersion` (the specification's wire-version list).
    pub fn max_wire_version(self) -> i32 {
        match (self.major, self.minor) {
            (3, 6) => 6,
            (4, 4) => 9,
            (5, 0) => 13,
            (6, 0) => 17,
            (7, 0) => 21,
            _ => 25,
        }
    }

    /// Whether `storage.journal.enabled` is still an option (removed in
    /// 6.1: mongod then refuses it as unrecognised).
    pub fn accepts_journal_option(self) -> bool {
        (self.major, self.minor) < (6, 1)
    }

    /// Whether `hello` exists: 4.4.2+ (backported to 3.6.21, 4.0.21 and
    /// 4.2.10; not in 3.6.6, which answers 59 CommandNotFound).
    pub fn has_hello(self) -> bool {
        (self.major, self.minor) >= (4, 4)
    }

    /// Whether SCRAM-SHA-256 and `isMaster`'s `saslSupportedMechs` exist
    /// (4.0+); 3.6 knows SCRAM-SHA-1 only.
    pub fn has_scram_sha256(self) -> bool {
        (self.major, self.minor) >= (4, 0)
    }

    /// Whether `listCollections` honours `nameOnly` (4.0+; 3.6 ignores it
    /// and answers whole entries).
    pub fn list_collections_name_only(self) -> bool {
        (self.major, self.minor) >= (4, 0)
    }

    /// Whether index specs carry their namespace `ns` (`listIndexes`
    /// answers it below 4.4; SERVER-41696 removed it in 4.3.x, SPEC-1399 /
    /// DRIVERS-731 told the drivers).
    pub fn index_specs_have_ns(self) -> bool {
        (self.major, self.minor) < (4, 4)
    }

    /// Whether a non-force reconfig may change at most one voting member
    /// (4.4+). Always true for the supported profiles.
    pub fn single_voter_reconfig_rule(self) -> bool {
        self.major >= 5 || (self.major, self.minor) >= (4, 4)
    }
}
