//! The desired state of a replica set: its members, its three users, how
//! the tools reach it.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use bson::{Document, doc};
use secrecy::SecretString;

/// One member as the operator wants it.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberSpec {
    /// `host:port`, exactly as members and clients reach it; written into
    /// the replica-set config as is.
    pub host: String,
    /// Election priority (mongod default 1; 0 never becomes primary).
    pub priority: f64,
    /// Votes: 1 or 0.
    pub votes: u8,
    /// Hidden from clients (needs priority 0).
    pub hidden: bool,
    /// An arbiter: votes, holds no data, never primary.
    pub arbiter_only: bool,
}

impl MemberSpec {
    /// A voting, data-bearing member with priority 1.
    pub fn new(host: impl Into<String>) -> MemberSpec {
        MemberSpec {
            host: host.into(),
            priority: 1.0,
            votes: 1,
            hidden: false,
            arbiter_only: false,
        }
    }

    /// Whether it can become primary.
    pub fn electable(&self) -> bool {
        !self.arbiter_only && !self.hidden && self.priority > 0.0 && self.votes > 0
    }

    /// The member document for a replica-set config, with `_id`.
    pub fn to_config(&self, id: i32) -> Document {
        let mut member = doc! {"_id": id, "host": &self.host};
        if self.arbiter_only {
            member.insert("arbiterOnly", true);
            member.insert("priority", 0.0);
        } else {
            member.insert("priority", self.priority);
        }
        member.insert("votes", i32::from(self.votes));
        if self.hidden {
            member.insert("hidden", true);
        }
        member
    }
}

/// Which of the runbook's users.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UserKind {
    /// `siteUserAdmin`: `userAdminAnyDatabase`. The first user, created
    /// through the localhost exception; it creates the others.
    SiteAdmin,
    /// `circle-admin`: `root` and `dbAdmin` on admin. Runs the replica-set
    /// commands.
    Admin,
    /// `circle`: `readWrite` on each app database.
    App,
}

impl UserKind {
    /// All three, in the order they are created.
    pub const ALL: [UserKind; 3] = [UserKind::SiteAdmin, UserKind::Admin, UserKind::App];

    /// The `ha.toml` key (`site_admin`, `admin`, `app`).
    pub fn key(self) -> &'static str {
        match self {
            UserKind::SiteAdmin => "site_admin",
            UserKind::Admin => "admin",
            UserKind::App => "app",
        }
    }
}

/// A user's name and password. All three live in the `admin` database, as
/// the runbook's URIs (`authSource=admin`) expect.
#[derive(Clone, Debug)]
pub struct UserSpec {
    /// The user name.
    pub name: String,
    /// The password (never printed).
    pub password: SecretString,
}

/// A role grant: `{role, db}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Role {
    /// Role name, e.g. `readWrite`.
    pub role: String,
    /// The database it applies to.
    pub db: String,
}

impl Role {
    /// `role` on `db`.
    pub fn new(role: &str, db: &str) -> Role {
        Role {
            role: role.to_owned(),
            db: db.to_owned(),
        }
    }

    /// `{role, db}`.
    pub fn to_doc(&self) -> Document {
        doc! {"role": &self.role, "db": &self.db}
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.role, self.db)
    }
}

/// TLS for the tools' own connections.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The CA the members' certificates chain to (verification is always
    /// on: host names are checked against the member certificates).
    pub ca_file: PathBuf,
    /// A client certificate and key (PEM), for servers that ask for one.
    pub certificate_key_file: Option<PathBuf>,
}

/// Replica-set settings the operator may pin (`settings` in the config).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetSettings {
    /// `settings.electionTimeoutMillis` (mongod default 10000).
    pub election_timeout_millis: Option<i64>,
    /// `settings.heartbeatIntervalMillis` (mongod default 2000).
    pub heartbeat_interval_millis: Option<i64>,
}

impl SetSettings {
    /// The `settings` document for these values (may be empty).
    pub fn to_doc(&self) -> Document {
        let mut settings = Document::new();
        if let Some(ms) = self.election_timeout_millis {
            settings.insert("electionTimeoutMillis", ms);
        }
        if let Some(ms) = self.heartbeat_interval_millis {
            settings.insert("heartbeatIntervalMillis", ms);
        }
        settings
    }
}

/// How to reach the members.
#[derive(Clone, Debug)]
pub struct Reach {
    /// TLS, or `None` for plain connections.
    pub tls: Option<TlsFiles>,
    /// How long to wait for a member to answer before calling it
    /// unreachable.
    pub connect_timeout: Duration,
    /// Send unauthenticated bootstrap commands (initiate, the first user) to
    /// `localhost:<port>` instead of the member's host name, so the server
    /// sees a loopback connection and applies the localhost exception. Only
    /// meaningful when run on the member's own machine; TLS then checks the
    /// member certificate against `localhost`.
    pub bootstrap_via_localhost: bool,
}

impl Default for Reach {
    fn default() -> Reach {
        Reach {
            tls: None,
            connect_timeout: Duration::from_secs(10),
            bootstrap_via_localhost: false,
        }
    }
}

/// The whole desired state.
#[derive(Clone, Debug)]
pub struct SetSpec {
    /// The replica set's name (`--replSet`).
    pub name: String,
    /// The members, in the order they are brought in: the first electable
    /// one is initiated, the rest are added one at a time.
    pub members: Vec<MemberSpec>,
    /// Pinned settings.
    pub settings: SetSettings,
    /// `siteUserAdmin`.
    pub site_admin: UserSpec,
    /// `circle-admin`.
    pub admin: UserSpec,
    /// `circle`.
    pub app: UserSpec,
    /// The databases `circle` gets `readWrite` on.
    pub app_databases: Vec<String>,
    /// How to reach the members.
    pub reach: Reach,
    /// How long to wait for an election or a member's initial sync.
    pub wait_timeout: Duration,
}

impl SetSpec {
    /// A user's name and password.
    pub fn user(&self, kind: UserKind) -> &UserSpec {
        match kind {
            UserKind::SiteAdmin => &self.site_admin,
            UserKind::Admin => &self.admin,
            UserKind::App => &self.app,
        }
    }

    /// The roles a user must have.
    pub fn roles(&self, kind: UserKind) -> Vec<Role> {
        match kind {
            UserKind::SiteAdmin => vec![Role::new("userAdminAnyDatabase", "admin")],
            UserKind::Admin => vec![Role::new("root", "admin"), Role::new("dbAdmin", "admin")],
            UserKind::App => self
                .app_databases
                .iter()
                .map(|db| Role::new("readWrite", db))
                .collect(),
        }
    }

    /// The member initiated first: the first electable one.
    pub fn seed(&self) -> Option<&MemberSpec> {
        self.members.iter().find(|m| m.electable())
    }

    /// The configured member with this host (case-insensitive).
    pub fn member(&self, host: &str) -> Option<&MemberSpec> {
        self.members
            .iter()
            .find(|m| m.host.eq_ignore_ascii_case(host))
    }
}

/// Checks a member address `host:port` (a port is required; IPv6 as
/// `[::1]:27017`) and returns the host name and port. Host names are ASCII
/// letters, digits, `-` and `.` (write internationalised names in their
/// `xn--` form): what MongoDB and the TLS name check both accept.
pub fn parse_member_host(text: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (ip, port) = rest
            .split_once("]:")
            .ok_or_else(|| format!("{text:?} is not host:port (IPv6 as [addr]:port)"))?;
        ip.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("{text:?}: {ip:?} is not an IPv6 address"))?;
        (ip, port)
    } else {
        text.rsplit_once(':')
            .ok_or_else(|| format!("{text:?} has no port: write host:port, e.g. {text}:27017"))?
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{text:?}: {port:?} is not a port number"))?;
    let valid = !host.is_empty()
        && host.len() <= 253
        && (host.parse::<std::net::IpAddr>().is_ok()
            || (host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
                && host.split('.').all(|label| {
                    !label.is_empty() && label.len() <= 63 && !label.starts_with('-')
                })));
    if !valid {
        return Err(format!(
            "{text:?}: {host:?} is not a valid host name (ASCII letters, digits, '-' and '.'; \
             internationalised names in their xn-- form)"
        ));
    }
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_hosts_need_a_valid_name_and_port() {
        assert_eq!(
            parse_member_host("mongo-1.internal:27017"),
            Ok(("mongo-1.internal".to_owned(), 27017))
        );
        assert_eq!(
            parse_member_host("[::1]:27018"),
            Ok(("::1".to_owned(), 27018))
        );
        for bad in [
            "mongo-1",
            "mongo-1:0",
            "mongo-1:99999",
            ":27017",
            "mongo_1:27017",
            "mö.example:27017",
            "a..b:27017",
            "[zz]:1",
        ] {
            assert!(parse_member_host(bad).is_err(), "{bad}");
        }
    }
}
