//! Observe: what the replica set looks like now, read without changing
//! anything.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bson::{Bson, Document, doc};
use futures_util::future::join_all;

use crate::conn::{Hello, Session, Who};
use crate::error::Error;
use crate::spec::{Role, UserKind};

/// Whether a user could log in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Login {
    /// It logged in.
    Ok,
    /// The server rejected the name and password (no such user, or another
    /// password).
    Rejected,
    /// Not tried: no member to try it on.
    Untried,
}

/// One configured member as seen now.
#[derive(Debug)]
pub struct MemberView {
    /// `host:port` from the spec.
    pub host: String,
    /// Its `hello`, or why it could not be asked.
    pub hello: Result<Hello, Error>,
}

/// A user as `usersInfo` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    /// Its role grants.
    pub roles: Vec<Role>,
}

/// Everything observed.
#[derive(Debug)]
pub struct Observed {
    /// Each configured member, in spec order.
    pub members: Vec<MemberView>,
    /// Whether any member has a replica-set config.
    pub initiated: bool,
    /// The writable primary (`host:port` as in the set's config), if any.
    pub primary: Option<String>,
    /// The member logins and `usersInfo` were tried on: the primary, or the
    /// seed member before the set is initiated.
    pub target: Option<String>,
    /// Which users could log in on `target`.
    pub logins: BTreeMap<UserKind, Login>,
    /// The three users as `usersInfo` shows them (`None` inside: absent);
    /// `None` when no user that may read them could log in.
    pub users: Option<BTreeMap<UserKind, Option<UserInfo>>>,
    /// The set's config from the primary (`replSetGetConfig`), when
    /// `circle-admin` could log in there.
    pub config: Option<Document>,
    /// The hosts the primary's `hello` lists (visible members; hidden ones
    /// only appear in `config`).
    pub primary_hosts: Vec<String>,
}

impl Observed {
    /// The view of a configured member.
    pub fn member(&self, host: &str) -> Option<&MemberView> {
        self.members
            .iter()
            .find(|m| m.host.eq_ignore_ascii_case(host))
    }

    /// Whether `kind` logged in.
    pub fn logged_in(&self, kind: UserKind) -> bool {
        self.logins.get(&kind) == Some(&Login::Ok)
    }

    /// The members of the set's config, as `host` strings: from `config`
    /// when readable, else from the primary's `hello`.
    pub fn set_hosts(&self) -> Vec<String> {
        match &self.config {
            Some(config) => config_members(config)
                .iter()
                .filter_map(|m| m.get_str("host").ok().map(str::to_owned))
                .collect(),
            None => self.primary_hosts.clone(),
        }
    }
}

/// The `members` array of a replica-set config.
pub fn config_members(config: &Document) -> Vec<Document> {
    config
        .get_array("members")
        .map(|a| a.iter().filter_map(|m| m.as_document().cloned()).collect())
        .unwrap_or_default()
}

/// Reads the current state. When the set is initiated but has no primary
/// (an election is under way), waits up to `wait` for one, telling
/// `progress` what it waits for; with `wait` zero it does not wait.
pub async fn observe(
    session: &Session<'_>,
    wait: Duration,
    progress: ha_plan::Progress<'_>,
) -> Result<Observed, Error> {
    let spec = session.spec();
    let hosts: Vec<String> = spec.members.iter().map(|m| m.host.clone()).collect();
    let started = Instant::now();
    let mut announced = false;
    let (members, primary) = loop {
        let hellos = join_all(hosts.iter().map(|h| session.hello(h))).await;
        let members: Vec<MemberView> = hosts
            .iter()
            .cloned()
            .zip(hellos)
            .map(|(host, hello)| MemberView { host, hello })
            .collect();
        let initiated = members
            .iter()
            .any(|m| m.hello.as_ref().is_ok_and(|h| h.set_name.is_some()));
        let primary = find_primary(session, &members).await;
        // No election can succeed without a majority of the voters: do
        // not wait for one when too few answer.
        let voters = spec.members.iter().filter(|m| m.votes > 0);
        let (reachable, total) = voters.fold((0, 0), |(up, all), m| {
            let answers = members.iter().any(|v| v.host == m.host && v.hello.is_ok());
            (up + usize::from(answers), all + 1)
        });
        let majority_up = reachable * 2 > total;
        if primary.is_some() || !initiated || !majority_up || started.elapsed() >= wait {
            break (members, primary);
        }
        if !announced {
            progress("waiting for the replica set to elect a primary");
            announced = true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let initiated = members
        .iter()
        .any(|m| m.hello.as_ref().is_ok_and(|h| h.set_name.is_some()));
    let (primary, primary_hosts) = match primary {
        Some((host, hello)) => (Some(host), hello.hosts),
        None => (None, Vec::new()),
    };
    let target = match &primary {
        Some(p) => Some(p.clone()),
        None if !initiated => spec.seed().and_then(|seed| {
            members
                .iter()
                .find(|m| m.host == seed.host && m.hello.is_ok())
                .map(|m| m.host.clone())
        }),
        None => None,
    };
    let mut logins = BTreeMap::new();
    for kind in UserKind::ALL {
        let login = match &target {
            Some(t) => {
                if session.can_log_in(t, kind).await? {
                    Login::Ok
                } else {
                    Login::Rejected
                }
            }
            None => Login::Untried,
        };
        logins.insert(kind, login);
    }
    let reader = [UserKind::Admin, UserKind::SiteAdmin]
        .into_iter()
        .find(|k| logins.get(k) == Some(&Login::Ok));
    let users = match (&target, reader) {
        // On the primary the users must be readable; before initiate the
        // seed may refuse reads (not primary or secondary yet): the next
        // observation, after initiate, reads them.
        (Some(t), Some(reader)) if primary.is_some() => Some(read_users(session, t, reader).await?),
        (Some(t), Some(reader)) => read_users(session, t, reader).await.ok(),
        _ => None,
    };
    let config = match &primary {
        Some(p) if logins.get(&UserKind::Admin) == Some(&Login::Ok) => Some(
            session
                .command(p, Who::User(UserKind::Admin), doc! {"replSetGetConfig": 1})
                .await?
                .get_document("config")
                .cloned()
                .map_err(|_| Error::Other {
                    host: p.clone(),
                    detail: "replSetGetConfig returned no config".to_owned(),
                })?,
        ),
        _ => None,
    };
    Ok(Observed {
        members,
        initiated,
        primary,
        target,
        logins,
        users,
        config,
        primary_hosts,
    })
}

/// The writable primary: a configured member that says so, or the member
/// the others name as primary (which may be missing from the spec).
async fn find_primary(session: &Session<'_>, members: &[MemberView]) -> Option<(String, Hello)> {
    for m in members {
        if let Ok(hello) = &m.hello
            && hello.primary
        {
            return Some((
                hello.me.clone().unwrap_or_else(|| m.host.clone()),
                hello.clone(),
            ));
        }
    }
    let named = members
        .iter()
        .filter_map(|m| m.hello.as_ref().ok()?.primary_host.clone())
        .next()?;
    let hello = session.hello(&named).await.ok()?;
    hello.primary.then_some((named, hello))
}

async fn read_users(
    session: &Session<'_>,
    host: &str,
    reader: UserKind,
) -> Result<BTreeMap<UserKind, Option<UserInfo>>, Error> {
    let spec = session.spec();
    let wanted: Vec<Bson> = UserKind::ALL
        .iter()
        .map(|k| Bson::Document(doc! {"user": &spec.user(*k).name, "db": "admin"}))
        .collect();
    let reply = session
        .command(host, Who::User(reader), doc! {"usersInfo": wanted})
        .await?;
    let found: Vec<Document> = reply
        .get_array("users")
        .map(|a| a.iter().filter_map(|u| u.as_document().cloned()).collect())
        .unwrap_or_default();
    let mut users = BTreeMap::new();
    for kind in UserKind::ALL {
        let name = &spec.user(kind).name;
        let info = found
            .iter()
            .find(|u| u.get_str("user") == Ok(name) && u.get_str("db") == Ok("admin"))
            .map(|u| UserInfo {
                roles: u
                    .get_array("roles")
                    .map(|roles| {
                        roles
                            .iter()
                            .filter_map(|r| {
                                let r = r.as_document()?;
                                Some(Role::new(r.get_str("role").ok()?, r.get_str("db").ok()?))
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        users.insert(kind, info);
    }
    Ok(users)
}
