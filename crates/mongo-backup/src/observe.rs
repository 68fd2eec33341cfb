//! Reading the replica set's state from one member: `replSetGetStatus`
//! and `replSetGetConfig`, as `circle-admin`.

use std::time::{Duration, Instant};

use bson::{Bson, Document, doc};
use mongo_rs_setup::{Session, UserKind, Who};

use crate::Error;
use crate::guard::{MemberView, OpTime, SetView};

const ADMIN: Who = Who::User(UserKind::Admin);

/// The set as `host` sees it: every configured member with its state,
/// health, votes, priority, hidden/arbiter flags and last applied optime.
pub async fn observe(session: &Session<'_>, host: &str) -> Result<SetView, Error> {
    let status = session
        .command(host, ADMIN, doc! {"replSetGetStatus": 1})
        .await?;
    let config = session
        .command(host, ADMIN, doc! {"replSetGetConfig": 1})
        .await?;
    parse(host, &status, &config)
}

fn parse(host: &str, status: &Document, config: &Document) -> Result<SetView, Error> {
    let reply = |command: &str, detail: &str| Error::Reply {
        host: host.to_owned(),
        command: command.to_owned(),
        detail: detail.to_owned(),
    };
    let config = config
        .get_document("config")
        .map_err(|_| reply("replSetGetConfig", "no config document"))?;
    let name = config
        .get_str("_id")
        .map_err(|_| reply("replSetGetConfig", "no _id"))?
        .to_owned();
    let statuses: Vec<&Document> = status
        .get_array("members")
        .map_err(|_| reply("replSetGetStatus", "no members array"))?
        .iter()
        .filter_map(Bson::as_document)
        .collect();
    let mut members = Vec::new();
    for member in config
        .get_array("members")
        .map_err(|_| reply("replSetGetConfig", "no members array"))?
        .iter()
        .filter_map(Bson::as_document)
    {
        let member_host = member.get_str("host").unwrap_or_default().to_owned();
        let seen = statuses.iter().find(|s| {
            s.get_str("name")
                .is_ok_and(|n| n.eq_ignore_ascii_case(&member_host))
        });
        let optime = seen
            .and_then(|s| s.get_document("optime").ok())
            .and_then(|o| match (o.get("ts"), o.get("t")) {
                (Some(Bson::Timestamp(ts)), t) => Some(OpTime {
                    secs: ts.time,
                    inc: ts.increment,
                    term: t.and_then(number).unwrap_or(-1),
                }),
                _ => None,
            });
        members.push(MemberView {
            host: member_host,
            state: seen
                .and_then(|s| s.get_str("stateStr").ok())
                .unwrap_or("(not in status)")
                .to_owned(),
            healthy: seen
                .and_then(|s| s.get("health"))
                .and_then(|h| h.as_f64().or_else(|| number(h).map(|n| n as f64)))
                .is_some_and(|h| h >= 1.0),
            votes: member.get("votes").and_then(number).unwrap_or(1),
            priority: member
                .get("priority")
                .and_then(|p| p.as_f64().or_else(|| number(p).map(|n| n as f64)))
                .unwrap_or(1.0),
            hidden: member.get_bool("hidden").unwrap_or(false),
            arbiter: member.get_bool("arbiterOnly").unwrap_or(false),
            optime,
            optime_millis: seen
                .and_then(|s| s.get_datetime("optimeDate").ok())
                .map(|d| d.timestamp_millis()),
        });
    }
    Ok(SetView { name, members })
}

fn number(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int32(n) => Some(i64::from(*n)),
        Bson::Int64(n) => Some(*n),
        Bson::Double(n) if n.fract() == 0.0 => Some(*n as i64),
        _ => None,
    }
}

/// Waits until `host` answers as a SECONDARY no more than `max_lag` behind
/// the primary, asking every `poll` until `timeout`. While mongod starts,
/// connection errors are expected and retried.
pub async fn wait_caught_up(
    session: &Session<'_>,
    host: &str,
    max_lag: Duration,
    timeout: Duration,
    poll: Duration,
    progress: ha_plan::Progress<'_>,
) -> Result<(), Error> {
    let started = Instant::now();
    let mut last = String::from("not asked yet");
    loop {
        match observe(session, host).await {
            Ok(view) => {
                let me = view.member(host);
                let lag = me.and_then(|m| view.lag_seconds(m));
                let state = me.map_or("(not in config)", |m| m.state.as_str());
                if state == "SECONDARY"
                    && lag
                        .is_some_and(|l| l <= i64::try_from(max_lag.as_secs()).unwrap_or(i64::MAX))
                {
                    return Ok(());
                }
                let now = match lag {
                    Some(lag) => format!("{host} is {state}, {lag}s behind the primary"),
                    None => format!("{host} is {state}"),
                };
                if now != last {
                    progress(&format!("waiting: {now}"));
                }
                last = now;
            }
            Err(e) => {
                // A restarting member refuses connections for a while; a
                // cached client may hold a dead connection.
                session.forget(host, ADMIN);
                last = e.to_string();
            }
        }
        if started.elapsed() >= timeout {
            return Err(Error::Timeout {
                what: format!("{host} to be a caught-up SECONDARY"),
                waited: timeout,
                last,
            });
        }
        tokio::time::sleep(poll).await;
    }
}
