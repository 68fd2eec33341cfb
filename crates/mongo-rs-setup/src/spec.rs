//! The desired state of a replica set: its members, its three users, how
//! the tools reach it.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use bson::{Document, doc};
use ha_plan::{Problem, ProblemKind, Problems};
use secrecy::SecretString;

/// MongoDB allows at most this many voting members in a replica set.
pub const MAX_VOTERS: usize = 7;

/// The databases the app user gets `readWrite` on by default: every
/// database the Services machine's five connection URIs use. (The
/// runbook's `createUser` forgets `remote_containers_dev_ghe`, which its
/// own `CIRCLE_SECRETS_MONGODB_REMOTE_CONTAINERS_URI` names.)
pub const DEFAULT_APP_DATABASES: [&str; 4] = [
    "circle_ghe",
    "build_state_dev_ghe",
    "containers_dev_ghe",
    "remote_containers_dev_ghe",
];

/// Checks a replica-set name: non-empty ASCII letters, digits, `-`, `_`
/// or `.`.
pub fn check_set_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{name:?} must be non-empty ASCII letters, digits, '-', '_' or '.'"
        ))
    }
}

/// Checks a database name the app user is given: 1-63 characters without
/// `/ \ . space " $ * < > : | ?` or control characters, and not `admin`,
/// `local` or `config`.
pub fn check_app_database(name: &str) -> Result<(), String> {
    let bad = name.is_empty()
        || name.len() > 63
        || name
            .chars()
            .any(|c| "/\\. \"$*<>:|?".contains(c) || c.is_control())
        || matches!(name, "admin" | "local" | "config");
    if bad {
        Err(format!(
            "{name:?} is not a usable database name (1-63 characters without / \\ . space \" $ \
             * < > : | ?, and not admin, local or config)"
        ))
    } else {
        Ok(())
    }
}

/// Checks the members against MongoDB's rules, every problem at once, each
/// keyed `members[i].field`: addresses parse and are distinct, priority
/// within 0–1000, votes 0 or 1, arbiters/hidden/non-voting members have
/// priority 0, at most [`MAX_VOTERS`] voters, at least one electable
/// member. Returns the warnings (an even number of voters) when it passes.
pub fn check_members(members: &[MemberSpec]) -> Result<Vec<String>, Problems> {
    let mut problems = Problems::new();
    let mut warnings = Vec::new();
    if members.is_empty() {
        problems.push(Problem::new(
            "members",
            ProblemKind::Missing,
            "is empty: list every member as { host = \"name:27017\" }",
        ));
    }
    for (i, m) in members.iter().enumerate() {
        let key = format!("members[{i}]");
        if let Err(e) = parse_member_host(&m.host) {
            problems.push(Problem::invalid(format!("{key}.host"), e));
            continue;
        }
        if let Some(first) = members[..i]
            .iter()
            .position(|o| o.host.eq_ignore_ascii_case(&m.host))
        {
            problems.push(Problem::new(
                format!("{key}.host"),
                ProblemKind::Conflict,
                format!("{:?} is listed twice (also members[{first}])", m.host),
            ));
            continue;
        }
        if !(0.0..=1000.0).contains(&m.priority) {
            problems.push(Problem::invalid(
                format!("{key}.priority"),
                format!("{} must be between 0 and 1000", m.priority),
            ));
        }
        if m.votes > 1 {
            problems.push(Problem::invalid(
                format!("{key}.votes"),
                format!("{} must be 0 or 1", m.votes),
            ));
        }
        if m.priority > 0.0 && (m.arbiter_only || m.hidden || m.votes == 0) {
            problems.push(Problem::new(
                key,
                ProblemKind::Conflict,
                ": an arbiter, a hidden member or a member with votes = 0 must have priority 0 \
                 (MongoDB refuses the config otherwise)",
            ));
        }
    }
    let voters = members.iter().filter(|m| m.votes > 0).count();
    if voters > MAX_VOTERS {
        problems.push(Problem::invalid(
            "members",
            format!("has {voters} voting members; MongoDB allows at most {MAX_VOTERS}"),
        ));
    }
    if !members.is_empty() && !members.iter().any(MemberSpec::electable) {
        problems.push(Problem::invalid(
            "members",
            "has no member that can become primary",
        ));
    }
    if voters > 0 && voters % 2 == 0 {
        warnings.push(format!(
            "members has {voters} voting members: an even number tolerates no more failures \
             than {} would; add an arbiter (arbiter_only = true) or another member",
            voters - 1
        ));
    }
    problems.finish(warnings)
}

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
    /// Checks the whole spec before anything is sent to a server, every
    /// problem at once (keys as in `ha.toml`'s `[mongo]`: `replica_set`,
    /// `members[2].priority`, `users.app.databases`, `settings.…`): the set
    /// name, [`check_members`], three distinct non-empty user names, the
    /// app databases ([`check_app_database`]), positive settings. Returns
    /// the warnings when it passes.
    pub fn validate(&self) -> Result<Vec<String>, Problems> {
        let mut problems = Problems::new();
        if let Err(e) = check_set_name(&self.name) {
            problems.push(Problem::invalid("replica_set", e));
        }
        let warnings = match check_members(&self.members) {
            Ok(warnings) => warnings,
            Err(e) => {
                problems.extend(e);
                Vec::new()
            }
        };
        for kind in UserKind::ALL {
            let name = &self.user(kind).name;
            if name.is_empty() || name.len() > 1000 {
                problems.push(Problem::invalid(
                    format!("users.{}.name", kind.key()),
                    "must not be empty",
                ));
            }
        }
        let mut names = [&self.site_admin.name, &self.admin.name, &self.app.name];
        names.sort();
        if names.windows(2).any(|w| w[0] == w[1]) {
            problems.push(Problem::new(
                "users",
                ProblemKind::Conflict,
                ": site_admin, admin and app must be three different users",
            ));
        }
        if self.app_databases.is_empty() {
            problems.push(Problem::invalid("users.app.databases", "is empty"));
        }
        for db in &self.app_databases {
            if let Err(e) = check_app_database(db) {
                problems.push(Problem::invalid("users.app.databases", format!(": {e}")));
            }
        }
        for (key, value) in [
            (
                "election_timeout_millis",
                self.settings.election_timeout_millis,
            ),
            (
                "heartbeat_interval_millis",
                self.settings.heartbeat_interval_millis,
            ),
        ] {
            if value.is_some_and(|v| v <= 0) {
                problems.push(Problem::invalid(
                    format!("settings.{key}"),
                    "must be positive",
                ));
            }
        }
        problems.finish(warnings)
    }

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
