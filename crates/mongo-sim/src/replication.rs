//! A member's background work: heartbeats to every other member, elections
//! (dry run, then a real vote in a new term; priority takeover), stepping
//! down without a majority, and pulling the primary's oplog (with rollback
//! when this member's oplog diverged).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bson::{Bson, Document, doc};
use tokio::task::JoinHandle;

use crate::node::Node;
use crate::peer::PeerConn;
use crate::peer::fetch_config;
use crate::replset::{MemberState, ReplConfig};
use crate::storage::{Entry, OpTime};

/// Starts the supervisor, which (re)starts the per-config tasks whenever
/// the config changes.
pub(crate) fn spawn(node: Arc<Node>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let changed = node.config_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let config = node.lock().config.clone();
            let mut tasks: Vec<JoinHandle<()>> = Vec::new();
            if let Some(config) = config {
                let self_id = node.lock().self_id;
                for member in config.members.iter().filter(|m| Some(m.id) != self_id) {
                    tasks.push(tokio::spawn(heartbeat_loop(
                        node.clone(),
                        member.id,
                        member.host.clone(),
                        config.clone(),
                    )));
                }
                tasks.push(tokio::spawn(election_loop(node.clone(), config.clone())));
                tasks.push(tokio::spawn(fetcher_loop(node.clone())));
            }
            changed.await;
            for task in tasks {
                task.abort();
            }
        }
    })
}

fn heartbeat_request(node: &Node, config: &ReplConfig) -> Document {
    let inner = node.lock();
    let me = inner
        .self_id
        .and_then(|id| config.member(id))
        .map(|m| m.host.clone())
        .unwrap_or_default();
    doc! {
        "replSetHeartbeat": &config.name,
        "configVersion": inner.config.as_ref().map_or(-2, |c| c.version),
        "configTerm": inner.config.as_ref().map_or(-1, |c| c.term),
        "hbv": 1,
        "from": me,
        "fromId": inner.self_id.unwrap_or(-1),
        "term": inner.local.term,
    }
}

async fn heartbeat_loop(node: Arc<Node>, id: i32, host: String, config: ReplConfig) {
    let interval = Duration::from_millis(config.settings.heartbeat_interval_ms.max(50) as u64);
    let timeout = Duration::from_secs(config.settings.heartbeat_timeout_secs.max(1) as u64).min(
        Duration::from_millis(config.settings.election_timeout_ms.max(100) as u64),
    );
    let mut conn: Option<PeerConn> = None;
    loop {
        let started = Instant::now();
        // As mongod: a failed heartbeat is retried at once, up to
        // `MAX_HEARTBEAT_RETRIES` times while the round is within the
        // heartbeat timeout, before the member is marked down.
        let mut retries = 0;
        loop {
            let attempt_started = Instant::now();
            let request = heartbeat_request(&node, &config);
            let attempt = async {
                if conn.is_none() {
                    conn = Some(PeerConn::connect(&node, &host, timeout).await?);
                }
                match conn.as_mut() {
                    Some(c) => c.command("admin", request).await,
                    None => Err("no connection".to_owned()),
                }
            };
            let left = timeout
                .saturating_sub(started.elapsed())
                .max(Duration::from_millis(50));
            let result = match tokio::time::timeout(left, attempt).await {
                Ok(result) => result,
                Err(_) => Err(format!("heartbeat to {host} timed out")),
            };
            let failure = match result {
                Ok(reply) if reply.get_f64("ok").unwrap_or(0.0) == 1.0 => {
                    on_heartbeat_reply(&node, id, &host, &reply, attempt_started.elapsed());
                    None
                }
                Ok(reply) => Some(
                    reply
                        .get_str("errmsg")
                        .unwrap_or("heartbeat failed")
                        .to_owned(),
                ),
                Err(e) => {
                    conn = None;
                    Some(e)
                }
            };
            let Some(message) = failure else {
                break;
            };
            if retries < MAX_HEARTBEAT_RETRIES && started.elapsed() < timeout {
                retries += 1;
                continue;
            }
            mark_unhealthy(&node, id, message);
            break;
        }
        let next = started + interval;
        tokio::time::sleep_until(next.into()).await;
    }
}

/// mongod's `kMaxHeartbeatRetries`.
const MAX_HEARTBEAT_RETRIES: u32 = 2;

fn mark_unhealthy(node: &Node, id: i32, message: String) {
    let mut inner = node.lock();
    let was_primary = inner.primary_id == Some(id);
    let peer = inner.peers.entry(id).or_default();
    peer.healthy = false;
    peer.state = MemberState::Down;
    peer.message = message;
    peer.last_heartbeat = Some(SystemTime::now());
    if was_primary {
        // Keep `primary_id` until the election timeout decides; clients see
        // no primary from this node meanwhile only if we clear it.
    }
}

fn on_heartbeat_reply(node: &Arc<Node>, id: i32, host: &str, reply: &Document, rtt: Duration) {
    let state = MemberState::from_number(reply.get_i32("state").unwrap_or(6));
    let term = reply.get_i64("term").unwrap_or(0);
    let version = reply.get_i32("configVersion").unwrap_or(-2);
    let applied = reply
        .get_document("opTime")
        .ok()
        .and_then(OpTime::from_doc)
        .unwrap_or_default();
    let durable = reply
        .get_document("durableOpTime")
        .ok()
        .and_then(OpTime::from_doc)
        .unwrap_or(applied);
    let election_time = reply.get_timestamp("electionTime").ok().map(|ts| OpTime {
        term,
        secs: ts.time,
        inc: ts.increment,
    });
    let mut fetch = false;
    {
        let mut inner = node.lock();
        if term > inner.local.term {
            node.adopt_term(&mut inner, term);
        }
        let my_version = inner.config.as_ref().map_or(-2, |c| c.version);
        if version > my_version {
            fetch = true;
        }
        let peer = inner.peers.entry(id).or_default();
        peer.healthy = true;
        peer.state = state;
        peer.applied = applied;
        peer.durable = durable;
        peer.term = term;
        peer.config_version = version;
        peer.last_contact = Some(Instant::now());
        peer.last_heartbeat = Some(SystemTime::now());
        peer.ping_ms = rtt.as_millis() as i64;
        peer.message = String::new();
        peer.uptime_secs = reply.get_i64("uptime").unwrap_or(0);
        peer.election_time = election_time;
        peer.sync_source = reply.get_str("syncingTo").unwrap_or_default().to_owned();
        let current = inner.positions.get(&id).copied().unwrap_or_default();
        if durable > current {
            inner.positions.insert(id, durable);
        }
        if state == MemberState::Primary && term >= inner.local.term {
            if inner.state == MemberState::Primary && inner.self_id != Some(id) {
                node.become_secondary(
                    &mut inner,
                    Duration::from_millis(0),
                    "another primary in the same term",
                );
            }
            inner.primary_id = Some(id);
            inner.last_primary_contact = Instant::now();
        } else if inner.primary_id == Some(id) && state != MemberState::Primary {
            inner.primary_id = None;
        }
        inner.update_commit_point();
        let _ = node.commit_watch.send(inner.commit_point);
    }
    if fetch {
        let node = node.clone();
        let host = host.to_owned();
        tokio::spawn(async move { fetch_config(&node, &host).await });
    }
}

/// A per-node random offset so members do not all stand at once.
fn jitter(max: Duration) -> Duration {
    let bytes = crate::storage::random_bytes::<4>();
    let n = u32::from_le_bytes(bytes);
    Duration::from_millis(u64::from(n) % max.as_millis().max(1) as u64)
}

enum Decision {
    Nothing,
    Elect { takeover: bool },
    StepDown(String),
}

async fn election_loop(node: Arc<Node>, config: ReplConfig) {
    let election_timeout =
        Duration::from_millis(config.settings.election_timeout_ms.max(100) as u64);
    let heartbeat = Duration::from_millis(config.settings.heartbeat_interval_ms.max(50) as u64);
    let mut offset = jitter(election_timeout * 15 / 100);
    let mut takeover_since: Option<Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let decision = {
            let inner = node.lock();
            let Some(self_id) = inner.self_id else {
                continue;
            };
            let Some(me) = config.member(self_id) else {
                continue;
            };
            let now = Instant::now();
            match inner.state {
                MemberState::Primary => {
                    let seen = config
                        .voters()
                        .filter(|m| {
                            m.id == self_id
                                || inner
                                    .peers
                                    .get(&m.id)
                                    .and_then(|p| p.last_contact)
                                    .is_some_and(|t| now.duration_since(t) < election_timeout)
                        })
                        .count();
                    if seen < config.majority_vote_count() {
                        Decision::StepDown("cannot see a majority of the set".to_owned())
                    } else {
                        Decision::Nothing
                    }
                }
                MemberState::Secondary if me.is_electable() => {
                    let frozen = inner.step_down_until.is_some_and(|until| now < until);
                    let primary = inner.primary_id.filter(|p| *p != self_id);
                    let primary_alive = primary.is_some_and(|p| {
                        inner.peers.get(&p).is_some_and(|peer| {
                            peer.healthy
                                && peer
                                    .last_contact
                                    .is_some_and(|t| now.duration_since(t) < election_timeout)
                        })
                    });
                    if frozen {
                        Decision::Nothing
                    } else if primary_alive {
                        // Priority takeover: a caught-up member with a higher
                        // priority than the primary takes over.
                        let primary_id = primary.unwrap_or(-1);
                        let primary_priority =
                            config.member(primary_id).map_or(0.0, |m| m.priority);
                        let caught_up = inner
                            .peers
                            .get(&primary_id)
                            .is_some_and(|p| inner.last_applied() >= p.applied);
                        if me.priority > primary_priority && caught_up {
                            let since = *takeover_since.get_or_insert(now);
                            if now.duration_since(since) >= heartbeat * 2 + offset {
                                takeover_since = None;
                                Decision::Elect { takeover: true }
                            } else {
                                Decision::Nothing
                            }
                        } else {
                            takeover_since = None;
                            Decision::Nothing
                        }
                    } else {
                        takeover_since = None;
                        // Higher priorities wait less.
                        let best = config
                            .members
                            .iter()
                            .filter(|m| m.is_electable())
                            .filter(|m| {
                                m.id == self_id || inner.peers.get(&m.id).is_some_and(|p| p.healthy)
                            })
                            .map(|m| m.priority)
                            .fold(0.0_f64, f64::max);
                        let penalty = if me.priority < best {
                            heartbeat * 2
                        } else {
                            Duration::ZERO
                        };
                        if now.duration_since(inner.last_primary_contact)
                            >= election_timeout + offset + penalty
                        {
                            Decision::Elect { takeover: false }
                        } else {
                            Decision::Nothing
                        }
                    }
                }
                _ => Decision::Nothing,
            }
        };
        match decision {
            Decision::Nothing => {}
            Decision::StepDown(reason) => {
                let mut inner = node.lock();
                node.become_secondary(&mut inner, Duration::from_millis(0), &reason);
            }
            Decision::Elect { takeover } => {
                run_election(&node, &config, takeover, election_timeout).await;
                offset = jitter(election_timeout * 15 / 100);
                // Whatever happened, wait a full timeout before trying again.
                node.lock().last_primary_contact = Instant::now();
            }
        }
    }
}

async fn request_votes(
    node: &Arc<Node>,
    config: &ReplConfig,
    term: i64,
    dry_run: bool,
    takeover: bool,
    timeout: Duration,
) -> Votes {
    let (self_id, last_applied) = {
        let inner = node.lock();
        (inner.self_id.unwrap_or(-1), inner.last_applied())
    };
    let mut tasks = Vec::new();
    for member in config.voters().filter(|m| m.id != self_id) {
        let node = node.clone();
        let host = member.host.clone();
        let request = doc! {
            "replSetRequestVotes": 1,
            "setName": &config.name,
            "dryRun": dry_run,
            "term": term,
            "candidateIndex": self_id,
            "configVersion": config.version,
            "configTerm": config.term,
            "lastAppliedOpTime": last_applied.to_doc(),
            "takeover": takeover,
        };
        let id = member.id;
        tasks.push(tokio::spawn(async move {
            let ask = async {
                let mut conn = PeerConn::connect(&node, &host, timeout).await?;
                conn.run("admin", request).await
            };
            tokio::time::timeout(timeout, ask)
                .await
                .ok()
                .and_then(Result::ok)
                .map(|reply| (id, reply))
        }));
    }
    let mut votes = Votes {
        yes: 1,
        highest_term: term,
        responders: Vec::new(),
    };
    for task in tasks {
        if let Ok(Some((id, reply))) = task.await {
            votes.responders.push(id);
            if reply.get_bool("voteGranted").unwrap_or(false) {
                votes.yes += 1;
            }
            votes.highest_term = votes.highest_term.max(reply.get_i64("term").unwrap_or(0));
        }
    }
    votes
}

/// The answers to one round of vote requests.
struct Votes {
    /// Votes granted, this member's own included.
    yes: usize,
    /// The highest term a voter answered with.
    highest_term: i64,
    /// The members that answered at all.
    responders: Vec<i32>,
}

async fn run_election(
    node: &Arc<Node>,
    config: &ReplConfig,
    takeover: bool,
    election_timeout: Duration,
) {
    let timeout = election_timeout.min(Duration::from_secs(10));
    let needed = config.majority_vote_count();
    let term = node.lock().local.term;
    // The dry run asks in the current term, without changing it (mongod's
    // `ElectionState::start`); only the real election increments it.
    let dry = request_votes(node, config, term, true, takeover, timeout).await;
    if dry.highest_term > term {
        let mut inner = node.lock();
        node.adopt_term(&mut inner, dry.highest_term);
        return;
    }
    if dry.yes < needed {
        return;
    }
    let new_term = {
        let mut inner = node.lock();
        if inner.state != MemberState::Secondary || inner.local.term != term {
            return;
        }
        inner.local.term = term + 1;
        inner.local.voted_term = term + 1;
        inner.local.voted_for = inner.self_id;
        if node.save_local(&inner).is_err() {
            return;
        }
        term + 1
    };
    let real = request_votes(node, config, new_term, false, takeover, timeout).await;
    let mut inner = node.lock();
    if real.highest_term > new_term {
        node.adopt_term(&mut inner, real.highest_term);
        return;
    }
    if real.yes < needed || inner.local.term != new_term || inner.state != MemberState::Secondary {
        return;
    }
    // Every member that answered is alive: a new primary does not step down
    // at once for want of a recent heartbeat (mongod's
    // `resetMemberTimeouts` with the vote requester's responders).
    let now = Instant::now();
    for id in &real.responders {
        inner.peers.entry(*id).or_default().last_contact = Some(now);
    }
    inner.state = MemberState::Primary;
    inner.primary_id = inner.self_id;
    inner.step_down_until = None;
    inner.last_primary_contact = Instant::now();
    let result = node.write_with(&mut inner, |w| {
        w.emit("n", "", doc! {"msg": "new primary"}, None)
    });
    if let Ok((_, optime)) = result {
        inner.election_time = Some(optime);
    }
    node.log.info(
        "ELECTION",
        &format!(
            "election succeeded, assuming primary role in term {new_term}{}",
            if takeover { " (priority takeover)" } else { "" }
        ),
    );
    node.oplog_changed.notify_waiters();
}

fn entries_of(batch: &[Bson]) -> Vec<Entry> {
    batch
        .iter()
        .filter_map(|b| b.as_document().cloned())
        .filter_map(Entry::from_doc)
        .collect()
}

async fn fetcher_loop(node: Arc<Node>) {
    loop {
        let source = {
            let inner = node.lock();
            let syncing = matches!(
                inner.state,
                MemberState::Secondary | MemberState::Startup2 | MemberState::Recovering
            );
            if syncing { inner.sync_source() } else { None }
        };
        let Some((host, source_id)) = source else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if let Err(e) = sync_from(&node, &host, source_id).await {
            node.log
                .info("REPL", &format!("sync from {host} stopped: {e}"));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn sync_from(node: &Arc<Node>, host: &str, source_id: i32) -> Result<(), String> {
    let mut conn = PeerConn::connect(node, host, Duration::from_secs(10)).await?;
    let (last, empty) = {
        let inner = node.lock();
        (inner.last_applied(), inner.oplog.is_empty())
    };
    let reply = conn
        .run(
            "local",
            doc! {"find": "oplog.rs", "filter": {"ts": {"$gte": last.ts()}}, "tailable": true, "awaitData": true, "batchSize": 1000},
        )
        .await?;
    let cursor = reply.get_document("cursor").map_err(|e| e.to_string())?;
    let mut entries = entries_of(cursor.get_array("firstBatch").map_err(|e| e.to_string())?);
    let cursor_id = cursor.get_i64("id").unwrap_or(0);
    if !empty {
        let matches_mine = entries.first().is_some_and(|first| first.optime == last);
        if !matches_mine {
            return rollback(node, &mut conn).await;
        }
        entries.remove(0);
    }
    // Positions are reported after every batch applied, and at least every
    // half election timeout without one (mongod's sync source feedback
    // keepalive), so that a primary under load hears from this member.
    let keepalive = {
        let inner = node.lock();
        let timeout = inner
            .config
            .as_ref()
            .map_or(10_000, |c| c.settings.election_timeout_ms.max(100));
        Duration::from_millis(timeout as u64 / 2)
    };
    let mut last_report = Instant::now();
    if apply_batch(node, &mut conn, entries, false).await? {
        last_report = Instant::now();
    }
    if cursor_id == 0 {
        return Ok(());
    }
    loop {
        let still_source = {
            let inner = node.lock();
            inner.primary_id == Some(source_id) && inner.state != MemberState::Primary
        };
        if !still_source {
            return Ok(());
        }
        let reply = conn
            .run("local", doc! {"getMore": cursor_id, "collection": "oplog.rs", "maxTimeMS": 500_i64, "batchSize": 1000})
            .await?;
        // A batch from the primary is news from the primary: as mongod's
        // oplog fetcher, it puts the election timeout off like a heartbeat.
        {
            let mut inner = node.lock();
            if inner.primary_id == Some(source_id) {
                inner.last_primary_contact = Instant::now();
            }
        }
        let cursor = reply.get_document("cursor").map_err(|e| e.to_string())?;
        let entries = entries_of(cursor.get_array("nextBatch").map_err(|e| e.to_string())?);
        let due = last_report.elapsed() >= keepalive;
        if apply_batch(node, &mut conn, entries, due).await? {
            last_report = Instant::now();
        }
    }
}

/// Applies a batch and reports this member's position to the source when
/// the batch had entries or `report` asks for it; returns whether it
/// reported.
async fn apply_batch(
    node: &Arc<Node>,
    conn: &mut PeerConn,
    entries: Vec<Entry>,
    report: bool,
) -> Result<bool, String> {
    let had_entries = !entries.is_empty();
    let applied = node.apply_replicated(entries).map_err(|e| e.message)?;
    let (self_id, version) = {
        let mut inner = node.lock();
        if inner.state == MemberState::Startup2 {
            inner.state = MemberState::Secondary;
        }
        (
            inner.self_id.unwrap_or(-1),
            inner.config.as_ref().map_or(0, |c| c.version),
        )
    };
    if had_entries || report {
        conn.run(
            "admin",
            doc! {"replSetUpdatePosition": 1, "optimes": [{
                "memberId": self_id,
                "cfgver": version,
                "durableOpTime": applied.to_doc(),
                "appliedOpTime": applied.to_doc(),
                "durableWallTime": bson::DateTime::from_millis(applied.millis()),
                "appliedWallTime": bson::DateTime::from_millis(applied.millis()),
            }]},
        )
        .await?;
    }
    Ok(had_entries || report)
}

/// This member's oplog diverged from the source's (it was primary and wrote
/// entries that never reached a majority): find the last common entry,
/// drop everything after it, rebuild the data, and start syncing again.
async fn rollback(node: &Arc<Node>, conn: &mut PeerConn) -> Result<(), String> {
    {
        node.lock().state = MemberState::Rollback;
    }
    let mine: Vec<OpTime> = node.lock().oplog.iter().map(|e| e.optime).collect();
    let mut keep = 0;
    for (index, optime) in mine.iter().enumerate().rev() {
        let reply = conn
            .run(
                "local",
                doc! {"find": "oplog.rs", "filter": {"ts": {"$gte": optime.ts()}}, "batchSize": 1, "singleBatch": true},
            )
            .await?;
        let first = reply
            .get_document("cursor")
            .ok()
            .and_then(|c| c.get_array("firstBatch").ok())
            .and_then(|b| b.first().and_then(|d| d.as_document()).cloned())
            .and_then(Entry::from_doc);
        if first.is_some_and(|e| e.optime == *optime) {
            keep = index + 1;
            break;
        }
    }
    let dropped = mine.len() - keep;
    node.truncate_oplog(keep).map_err(|e| e.message)?;
    {
        let mut inner = node.lock();
        inner.state = MemberState::Secondary;
    }
    node.log.warn(
        "ROLLBACK",
        &format!("rolled back {dropped} oplog entries to the common point with the sync source"),
    );
    Ok(())
}
