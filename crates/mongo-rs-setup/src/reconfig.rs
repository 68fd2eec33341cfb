//! Replica-set reconfiguration, one change at a time: what `apply` uses to
//! add members and correct their options, and what `add-member`,
//! `remove-member` and `set-priority` are made of.

use std::time::{Duration, Instant};

use bson::{Bson, Document, doc};

use crate::conn::{Session, Who, number};
use crate::error::Error;
use crate::observe::config_members;
use crate::spec::{MemberSpec, SetSettings, UserKind};

const ADMIN: Who = Who::User(UserKind::Admin);

/// The set's current config, read from `primary` as `circle-admin`.
pub async fn current_config(session: &Session<'_>, primary: &str) -> Result<Document, Error> {
    let reply = session
        .command(primary, ADMIN, doc! {"replSetGetConfig": 1})
        .await?;
    reply
        .get_document("config")
        .cloned()
        .map_err(|_| Error::Other {
            host: primary.to_owned(),
            detail: "replSetGetConfig returned no config".to_owned(),
        })
}

/// Reads the config from `primary`, lets `change` edit its members (and
/// settings), bumps the version and runs `replSetReconfig`. Returns
/// `false` without reconfiguring when `change` reports no change.
pub async fn reconfigure(
    session: &Session<'_>,
    primary: &str,
    change: impl FnOnce(&mut Vec<Document>, &mut Document) -> Result<bool, Error>,
) -> Result<bool, Error> {
    let mut config = current_config(session, primary).await?;
    let mut members = config_members(&config);
    let mut settings = config.get_document("settings").cloned().unwrap_or_default();
    if !change(&mut members, &mut settings)? {
        return Ok(false);
    }
    let version = number(config.get("version")).unwrap_or(1) + 1;
    config.insert("version", version as i32);
    // The term is the server's to manage.
    config.remove("term");
    config.insert(
        "members",
        members.into_iter().map(Bson::Document).collect::<Vec<_>>(),
    );
    config.insert("settings", settings);
    let timeout = session.spec().wait_timeout;
    session
        .command(
            primary,
            ADMIN,
            doc! {"replSetReconfig": config, "maxTimeMS": timeout.as_millis() as i64},
        )
        .await?;
    Ok(true)
}

/// Adds `member` with the next free `_id`. A no-op if it is already in the
/// config.
pub async fn add_member(
    session: &Session<'_>,
    primary: &str,
    member: &MemberSpec,
) -> Result<bool, Error> {
    reconfigure(session, primary, |members, _| {
        if members.iter().any(|m| {
            m.get_str("host")
                .is_ok_and(|h| h.eq_ignore_ascii_case(&member.host))
        }) {
            return Ok(false);
        }
        let id = members
            .iter()
            .filter_map(|m| number(m.get("_id")))
            .max()
            .map_or(0, |n| n + 1);
        members.push(member.to_config(id as i32));
        Ok(true)
    })
    .await
}

/// Sets a member's priority, votes and hidden flag to `member`'s.
pub async fn set_member_options(
    session: &Session<'_>,
    primary: &str,
    member: &MemberSpec,
) -> Result<bool, Error> {
    reconfigure(session, primary, |members, _| {
        let Some(current) = members.iter_mut().find(|m| {
            m.get_str("host")
                .is_ok_and(|h| h.eq_ignore_ascii_case(&member.host))
        }) else {
            return Err(Error::Other {
                host: primary.to_owned(),
                detail: format!("{} is not a member of the replica set", member.host),
            });
        };
        if crate::plan::member_changes(current, member).is_empty() {
            return Ok(false);
        }
        if !member.arbiter_only {
            current.insert("priority", member.priority);
        }
        current.insert("votes", i32::from(member.votes));
        if member.hidden {
            current.insert("hidden", true);
        } else {
            current.remove("hidden");
        }
        Ok(true)
    })
    .await
}

/// Removes the member `host`. Refuses to remove the primary it runs on.
pub async fn remove_member(
    session: &Session<'_>,
    primary: &str,
    host: &str,
) -> Result<bool, Error> {
    if primary.eq_ignore_ascii_case(host) {
        return Err(Error::Other {
            host: host.to_owned(),
            detail: "this member is the primary: step it down first (rs.stepDown(), or stop \
                     it and wait for the election), then remove it"
                .to_owned(),
        });
    }
    reconfigure(session, primary, |members, _| {
        let before = members.len();
        members.retain(|m| {
            !m.get_str("host")
                .is_ok_and(|h| h.eq_ignore_ascii_case(host))
        });
        Ok(members.len() != before)
    })
    .await
}

/// Pins `settings` values.
pub async fn set_settings(
    session: &Session<'_>,
    primary: &str,
    wanted: &SetSettings,
) -> Result<bool, Error> {
    reconfigure(session, primary, |_, settings| {
        let mut changed = false;
        for (key, value) in wanted.to_doc() {
            if number(settings.get(&key)) != number(Some(&value)) {
                settings.insert(key, value);
                changed = true;
            }
        }
        Ok(changed)
    })
    .await
}

/// One member as `replSetGetStatus` reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusEntry {
    /// `name`: its host in the config.
    pub host: String,
    /// `stateStr`: PRIMARY, SECONDARY, STARTUP2, ARBITER, (not reachable/healthy) …
    pub state: String,
    /// `health == 1`.
    pub healthy: bool,
    /// `optimeDate` in milliseconds since the epoch.
    pub optime_millis: Option<i64>,
    /// `syncSourceHost`, when it has one.
    pub sync_source: Option<String>,
    /// `lastHeartbeatMessage`, when not empty.
    pub message: Option<String>,
}

impl StatusEntry {
    /// PRIMARY, SECONDARY or ARBITER, and healthy.
    pub fn ready(&self) -> bool {
        self.healthy && matches!(self.state.as_str(), "PRIMARY" | "SECONDARY" | "ARBITER")
    }
}

/// `replSetGetStatus` on `host` as `circle-admin`.
pub async fn set_status(session: &Session<'_>, host: &str) -> Result<Vec<StatusEntry>, Error> {
    let reply = session
        .command(host, ADMIN, doc! {"replSetGetStatus": 1})
        .await?;
    Ok(
        config_members(&doc! {"members": reply.get_array("members").cloned().unwrap_or_default()})
            .iter()
            .map(|m| StatusEntry {
                host: m.get_str("name").unwrap_or_default().to_owned(),
                state: m.get_str("stateStr").unwrap_or_default().to_owned(),
                healthy: m
                    .get("health")
                    .and_then(|h| h.as_f64().or_else(|| number(Some(h)).map(|n| n as f64)))
                    .is_some_and(|h| h >= 1.0),
                optime_millis: m
                    .get_datetime("optimeDate")
                    .ok()
                    .map(|d| d.timestamp_millis()),
                sync_source: m
                    .get_str("syncSourceHost")
                    .ok()
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
                message: m
                    .get_str("lastHeartbeatMessage")
                    .ok()
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            })
            .collect(),
    )
}

/// Waits until every member in `hosts` is PRIMARY, SECONDARY or ARBITER
/// according to `primary`, telling `progress` about state changes.
pub async fn wait_until_ready(
    session: &Session<'_>,
    primary: &str,
    hosts: &[String],
    progress: ha_plan::Progress<'_>,
) -> Result<(), Error> {
    let timeout = session.spec().wait_timeout;
    let started = Instant::now();
    let mut last_said = String::new();
    loop {
        let entries = set_status(session, primary).await?;
        let waiting: Vec<String> = hosts
            .iter()
            .filter_map(
                |host| match entries.iter().find(|e| e.host.eq_ignore_ascii_case(host)) {
                    Some(e) if e.ready() => None,
                    Some(e) => Some(format!(
                        "{host} is {}{}",
                        e.state,
                        e.message
                            .as_ref()
                            .map(|m| format!(" ({m})"))
                            .unwrap_or_default()
                    )),
                    None => Some(format!("{host} is not in the config")),
                },
            )
            .collect();
        if waiting.is_empty() {
            return Ok(());
        }
        let said = waiting.join("; ");
        if started.elapsed() >= timeout {
            return Err(Error::Timeout {
                what: "members to become SECONDARY (initial sync)".to_owned(),
                waited: timeout,
                last: said,
            });
        }
        if said != last_said {
            progress(&format!(
                "waiting ({}s): {said}",
                started.elapsed().as_secs()
            ));
            last_said = said;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
