//! Replica-set commands: initiate, status, config, reconfig, step-down,
//! shutdown, and the member-to-member commands (heartbeat, votes,
//! positions).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use bson::{Bson, DateTime, Document, doc, oid::ObjectId};

use super::Reply;
use crate::error::{Code, CommandError};
use crate::node::{Inner, Node, find_self};
use crate::peer::PeerConn;
use crate::replset::{MemberState, ReplConfig};
use crate::storage::OpTime;

fn not_repl() -> CommandError {
    CommandError::new(Code::NoReplicationEnabled, "not running with --replSet")
}

fn not_initialized(node: &Node) -> CommandError {
    let error = CommandError::new(
        Code::NotYetInitialized,
        "no replset config has been received",
    );
    if node.major() <= 4 {
        error.with("info", "run rs.initiate(...) if not yet done for the set")
    } else {
        error
    }
}

fn date(secs_since_epoch_ms: i64) -> DateTime {
    DateTime::from_millis(secs_since_epoch_ms)
}

fn system_date(time: SystemTime) -> DateTime {
    DateTime::from_system_time(time)
}

/// `replSetInitiate`.
pub(super) async fn initiate(
    node: &Arc<Node>,
    command: &Document,
) -> Result<Document, CommandError> {
    let Some(set_name) = node.opts.repl_set.clone() else {
        return Err(CommandError::new(
            Code::NoReplicationEnabled,
            "This node was not started with the replSet option",
        ));
    };
    if node.lock().config.is_some() {
        return Err(
            CommandError::new(Code::AlreadyInitialized, "already initialized").with(
                "info",
                "try querying local.system.replset to see current configuration",
            ),
        );
    }
    let mut info2 = None;
    // As mongod's replSetInitiate: an empty or absent config object (the
    // shell's `rs.initiate()` sends `{replSetInitiate: {}}`) means a
    // default configuration: `_id` = replSetName, this member alone.
    let config_doc = match command.get("replSetInitiate") {
        Some(Bson::Document(d)) if !d.is_empty() => d.clone(),
        _ => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "localhost".to_owned());
            info2 = Some("no configuration specified. Using a default configuration for the set");
            doc! {"_id": &set_name, "version": 1, "members": [{"_id": 0, "host": format!("{host}:{}", node.opts.port)}]}
        }
    };
    if config_doc
        .get_document("settings")
        .is_ok_and(|s| s.contains_key("replicaSetId"))
    {
        return Err(CommandError::new(
            Code::InvalidReplicaSetConfig,
            "replica set configuration cannot contain 'replicaSetId' field when called from replSetInitiate",
        ));
    }
    let mut config = ReplConfig::parse(&config_doc)
        .map_err(|m| CommandError::new(Code::InvalidReplicaSetConfig, m))?;
    if config.name != set_name {
        return Err(CommandError::new(
            Code::InvalidReplicaSetConfig,
            format!(
                "Attempting to initiate a replica set with name {}, but command line reports {set_name}; rejecting",
                config.name
            ),
        ));
    }
    let Some(self_id) = find_self(&config, node.opts.port, &node.local_names) else {
        return Err(CommandError::new(
            Code::InvalidReplicaSetConfig,
            format!(
                "No host described in new configuration with version {} for replica set {} maps to this node",
                config.version, config.name
            ),
        ));
    };
    // Quorum check: every other member must answer a heartbeat.
    let me = config
        .member(self_id)
        .map(|m| m.host.clone())
        .unwrap_or_default();
    for member in config.members.iter().filter(|m| m.id != self_id) {
        let probe = async {
            let mut conn = PeerConn::connect(node, &member.host, Duration::from_secs(10)).await?;
            conn.run(
                "admin",
                doc! {"replSetHeartbeat": &config.name, "configVersion": -2, "hbv": 1, "from": &me, "fromId": self_id, "term": 0_i64, "checkEmpty": true},
            )
            .await
        };
        if let Err(e) = probe.await {
            return Err(CommandError::new(
                Code::NodeNotFound,
                format!(
                    "replSetInitiate quorum check failed because not all proposed set members responded affirmatively: {} failed with {e}",
                    member.host
                ),
            ));
        }
    }
    config.settings.replica_set_id = Some(ObjectId::new());
    {
        let mut inner = node.lock();
        if inner.config.is_some() {
            return Err(CommandError::new(
                Code::AlreadyInitialized,
                "already initialized",
            ));
        }
        config.term = inner.local.term;
        let election_timeout = Duration::from_millis(config.settings.election_timeout_ms as u64);
        node.install_config(&mut inner, config)?;
        inner.state = MemberState::Secondary;
        // A fresh set elects without waiting a full election timeout.
        inner.last_primary_contact = Instant::now()
            .checked_sub(election_timeout)
            .unwrap_or_else(Instant::now);
    }
    node.write_unchecked(|w| w.emit("n", "", doc! {"msg": "initiating set"}, None))?
        .0?;
    node.log.info(
        "REPL",
        &format!("replSetInitiate: config installed, this node is member {self_id}"),
    );
    let mut reply = doc! {};
    if let Some(info2) = info2 {
        reply.insert("info2", info2);
        reply.insert("me", me);
    }
    Ok(reply)
}

fn optime_fields(prefix: &str, optime: OpTime, out: &mut Document) {
    out.insert(prefix, optime.to_doc());
    out.insert(format!("{prefix}Date"), date(optime.millis()));
}

/// `replSetGetStatus`.
pub(super) fn get_status(node: &Node) -> Result<Document, CommandError> {
    if !node.is_repl() {
        return Err(not_repl());
    }
    let inner = node.lock();
    let Some(config) = &inner.config else {
        return Err(not_initialized(node));
    };
    let now = SystemTime::now();
    let applied = inner.last_applied();
    let mut members = Vec::new();
    for member in &config.members {
        let mut m = doc! {"_id": member.id, "name": &member.host};
        if Some(member.id) == inner.self_id {
            m.insert("health", 1.0);
            m.insert("state", inner.state.number());
            m.insert("stateStr", inner.state.name());
            m.insert("uptime", node.started.elapsed().as_secs() as i32);
            optime_fields("optime", applied, &mut m);
            m.insert("lastAppliedWallTime", date(applied.millis()));
            m.insert("lastDurableWallTime", date(applied.millis()));
            let source = inner.sync_source();
            m.insert(
                "syncSourceHost",
                source.as_ref().map(|(h, _)| h.clone()).unwrap_or_default(),
            );
            m.insert("syncSourceId", source.map_or(-1, |(_, id)| id));
            m.insert("infoMessage", "");
            if inner.state == MemberState::Primary
                && let Some(election) = inner.election_time
            {
                m.insert("electionTime", election.ts());
                m.insert("electionDate", date(election.millis()));
            }
            m.insert("configVersion", config.version);
            m.insert("configTerm", config.term);
            m.insert("self", true);
            m.insert("lastHeartbeatMessage", "");
        } else {
            let peer = inner.peers.get(&member.id).cloned().unwrap_or_default();
            let state = if peer.healthy {
                peer.state
            } else {
                MemberState::Down
            };
            m.insert("health", if peer.healthy { 1.0 } else { 0.0 });
            m.insert("state", state.number());
            m.insert("stateStr", state.name());
            m.insert("uptime", peer.uptime_secs as i32);
            // mongod reports the optimes and sync source of the last
            // heartbeat response, which it resets when a member goes down
            // (MemberData::setDownValues): a down member shows a null
            // optime (epoch date) and no sync source.
            let (applied, durable, source) = if peer.healthy {
                (peer.applied, peer.durable, peer.sync_source.clone())
            } else {
                (OpTime::default(), OpTime::default(), String::new())
            };
            optime_fields("optime", applied, &mut m);
            optime_fields("optimeDurable", durable, &mut m);
            m.insert("lastAppliedWallTime", date(applied.millis()));
            m.insert("lastDurableWallTime", date(durable.millis()));
            m.insert(
                "lastHeartbeat",
                system_date(peer.last_heartbeat.unwrap_or(SystemTime::UNIX_EPOCH)),
            );
            m.insert(
                "lastHeartbeatRecv",
                system_date(peer.last_heartbeat_recv.unwrap_or(SystemTime::UNIX_EPOCH)),
            );
            m.insert("pingMs", peer.ping_ms);
            m.insert("lastHeartbeatMessage", peer.message.clone());
            // From the member's heartbeat (`syncingTo`), as mongod does.
            let source_id = config
                .members
                .iter()
                .find(|c| !source.is_empty() && c.host == source)
                .map_or(-1, |c| c.id);
            m.insert("syncSourceHost", source);
            m.insert("syncSourceId", source_id);
            m.insert("infoMessage", "");
            if state == MemberState::Primary
                && let Some(election) = peer.election_time
            {
                m.insert("electionTime", election.ts());
                m.insert("electionDate", date(election.millis()));
            }
            m.insert("configVersion", peer.config_version);
            m.insert("configTerm", peer.term);
        }
        members.push(Bson::Document(m));
    }
    let commit = inner.commit_point;
    let voters = config.voters().count() as i32;
    let writable_voters = config.voters().filter(|m| !m.arbiter_only).count() as i32;
    let source = inner.sync_source();
    Ok(doc! {
        "set": &config.name,
        "date": system_date(now),
        "myState": inner.state.number(),
        "term": inner.local.term,
        "syncSourceHost": source.as_ref().map(|(h, _)| h.clone()).unwrap_or_default(),
        "syncSourceId": source.map_or(-1, |(_, id)| id),
        "heartbeatIntervalMillis": config.settings.heartbeat_interval_ms,
        "majorityVoteCount": config.majority_vote_count() as i32,
        "writeMajorityCount": config.write_majority_count() as i32,
        "votingMembersCount": voters,
        "writableVotingMembersCount": writable_voters,
        "optimes": {
            "lastCommittedOpTime": commit.to_doc(),
            "lastCommittedWallTime": date(commit.millis()),
            "readConcernMajorityOpTime": commit.to_doc(),
            "appliedOpTime": applied.to_doc(),
            "durableOpTime": applied.to_doc(),
            "lastAppliedWallTime": date(applied.millis()),
            "lastDurableWallTime": date(applied.millis()),
        },
        "members": members,
    })
}

/// `replSetGetConfig`.
pub(super) fn get_config(node: &Node) -> Result<Document, CommandError> {
    if !node.is_repl() {
        return Err(not_repl());
    }
    let inner = node.lock();
    let config = inner.config.as_ref().ok_or_else(|| not_initialized(node))?;
    Ok(doc! {"config": config.to_doc(node.opts.version)})
}

/// `replSetReconfig`.
pub(super) async fn reconfig(
    node: &Arc<Node>,
    command: &Document,
) -> Result<Document, CommandError> {
    if !node.is_repl() {
        return Err(not_repl());
    }
    let force = command.get_bool("force").unwrap_or(false);
    let new_doc = command
        .get_document("replSetReconfig")
        .map_err(|_| CommandError::type_mismatch("replSetReconfig", "object"))?
        .clone();
    let (old, state) = {
        let inner = node.lock();
        let Some(old) = inner.config.clone() else {
            return Err(CommandError::new(
                Code::NotYetInitialized,
                "Node not yet initialized; use the replSetInitiate command",
            ));
        };
        (old, inner.state)
    };
    if state != MemberState::Primary && !force {
        return Err(CommandError::new(
            Code::NotWritablePrimary,
            format!(
                "replSetReconfig should only be run on PRIMARY, but my state is {}; use the \"force\" argument to override",
                state.name()
            ),
        ));
    }
    let mut new = ReplConfig::parse(&new_doc)
        .map_err(|m| CommandError::new(Code::InvalidReplicaSetConfig, m))?;
    if new.settings.replica_set_id.is_none() {
        new.settings.replica_set_id = old.settings.replica_set_id;
    }
    old.check_replacement(&new, force, node.opts.version)
        .map_err(|m| CommandError::new(Code::NewReplicaSetConfigurationIncompatible, m))?;
    let self_id = find_self(&new, node.opts.port, &node.local_names);
    match self_id.and_then(|id| new.member(id)) {
        None if !force => {
            return Err(CommandError::new(
                Code::InvalidReplicaSetConfig,
                format!(
                    "No host described in new configuration with version {} for replica set {} maps to this node",
                    new.version, new.name
                ),
            ));
        }
        Some(me) if state == MemberState::Primary && !force && !me.is_electable() => {
            return Err(CommandError::new(
                Code::NodeNotElectable,
                format!(
                    "This node, {}, with _id {} is not electable under the new configuration with {{version: {}, term: {}}} for replica set {}",
                    me.host, me.id, new.version, old.term, new.name
                ),
            ));
        }
        _ => {}
    }
    if force {
        let bump =
            10_000 + (u32::from_le_bytes(crate::storage::random_bytes::<4>()) % 100_000) as i32;
        new.version = new.version.max(old.version) + bump;
    }
    {
        let mut inner = node.lock();
        new.term = inner.local.term;
        node.install_config(&mut inner, new.clone())?;
    }
    node.log.info(
        "REPL",
        &format!("replSetReconfig: installed config version {}", new.version),
    );
    if !force {
        // Wait until a majority of the voters run the new config.
        let deadline = Instant::now()
            + Duration::from_millis(
                command
                    .get_i64("maxTimeMS")
                    .ok()
                    .or_else(|| command.get_i32("maxTimeMS").ok().map(i64::from))
                    .unwrap_or(60_000)
                    .max(0) as u64,
            );
        loop {
            let (have, need) = {
                let inner = node.lock();
                let have = new
                    .voters()
                    .filter(|m| {
                        Some(m.id) == inner.self_id
                            || inner
                                .peers
                                .get(&m.id)
                                .is_some_and(|p| p.healthy && p.config_version >= new.version)
                    })
                    .count();
                (have, new.majority_vote_count())
            };
            if have >= need || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(doc! {})
}

/// Whether an electable secondary has caught up with `target`.
fn caught_up_secondary(inner: &Inner, target: OpTime) -> bool {
    let Some(config) = &inner.config else {
        return false;
    };
    config.members.iter().any(|m| {
        Some(m.id) != inner.self_id
            && m.is_electable()
            && inner.peers.get(&m.id).is_some_and(|p| {
                p.healthy && p.state == MemberState::Secondary && p.applied >= target
            })
    })
}

async fn wait_for_caught_up_secondary(node: &Node, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        {
            let inner = node.lock();
            let target = inner.last_applied();
            if caught_up_secondary(&inner, target) {
                return true;
            }
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `replSetStepDown`.
pub(super) async fn step_down(node: &Node, command: &Document) -> Result<Document, CommandError> {
    if !node.is_repl() {
        return Err(not_repl());
    }
    let number = |key: &str, default: f64| -> f64 {
        match command.get(key) {
            Some(Bson::Int32(i)) => f64::from(*i),
            Some(Bson::Int64(i)) => *i as f64,
            Some(Bson::Double(f)) => *f,
            Some(Bson::Boolean(true)) => 1.0,
            _ => default,
        }
    };
    let mut secs = number("replSetStepDown", 60.0);
    if secs == 0.0 {
        secs = 60.0;
    }
    let force = command.get_bool("force").unwrap_or(false);
    let catch_up = number("secondaryCatchUpPeriodSecs", if force { 0.0 } else { 10.0 });
    if secs < 0.0 || catch_up < 0.0 {
        return Err(CommandError::bad_value(
            "stepdown period must be a positive integer",
        ));
    }
    if catch_up > secs {
        return Err(CommandError::bad_value(format!(
            "stepdown period must be longer than secondaryCatchUpPeriodSecs: stepdown period {secs}, secondaryCatchUpPeriodSecs {catch_up}"
        )));
    }
    if node.lock().state != MemberState::Primary {
        return Err(CommandError::new(
            Code::NotWritablePrimary,
            "not primary so can't step down",
        ));
    }
    if !force && !wait_for_caught_up_secondary(node, Duration::from_secs_f64(catch_up)).await {
        return Err(CommandError::new(
            Code::ExceededTimeLimit,
            format!(
                "No electable secondaries caught up as of {}. Please use the replSetStepDown command with the argument {{force: true}} to force node to step down.",
                system_date(SystemTime::now())
                    .try_to_rfc3339_string()
                    .unwrap_or_default()
            ),
        ));
    }
    let mut inner = node.lock();
    node.become_secondary(&mut inner, Duration::from_secs_f64(secs), "replSetStepDown");
    Ok(doc! {})
}

/// `replSetFreeze`.
pub(super) fn freeze(node: &Node, command: &Document) -> Result<Document, CommandError> {
    let secs = command
        .get_i32("replSetFreeze")
        .map(i64::from)
        .or_else(|_| command.get_i64("replSetFreeze"))
        .unwrap_or(0);
    let mut inner = node.lock();
    inner.step_down_until = (secs > 0).then(|| Instant::now() + Duration::from_secs(secs as u64));
    Ok(doc! {})
}

/// `shutdown`: steps down first if primary (waiting for a caught-up
/// secondary unless `force`), then exits without replying.
pub(super) async fn shutdown(
    node: &Arc<Node>,
    db: &str,
    command: &Document,
) -> Result<Reply, CommandError> {
    if db != "admin" {
        return Err(CommandError::new(
            Code::Unauthorized,
            "shutdown must run from admin db",
        ));
    }
    let force = command.get_bool("force").unwrap_or(false);
    let default_timeout = if node.major() >= 5 { 15 } else { 10 };
    let timeout = command
        .get_i32("timeoutSecs")
        .map(i64::from)
        .or_else(|_| command.get_i64("timeoutSecs"))
        .unwrap_or(default_timeout);
    let is_primary = node.lock().state == MemberState::Primary;
    if is_primary {
        let has_peers = node
            .lock()
            .config
            .as_ref()
            .is_some_and(|c| c.members.len() > 1);
        if has_peers
            && !force
            && !wait_for_caught_up_secondary(node, Duration::from_secs(timeout.max(0) as u64)).await
        {
            return Err(CommandError::new(
                Code::ExceededTimeLimit,
                "No electable secondaries caught up as of the shutdown deadline. Please use the {force: true} option to force the shutdown.",
            ));
        }
        let mut inner = node.lock();
        node.become_secondary(&mut inner, Duration::from_secs(60), "shutdown");
    }
    node.log
        .info("CONTROL", "shutting down on request (shutdown command)");
    node.shutting_down.store(true, Ordering::Relaxed);
    tokio::spawn(async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        std::process::exit(0);
    });
    Ok(Reply::Close)
}

/// `replSetHeartbeat` from another member (or from an initiating node's
/// quorum check).
pub(crate) fn handle_heartbeat(
    node: &Arc<Node>,
    command: &Document,
) -> Result<Document, CommandError> {
    let Some(our_name) = node.opts.repl_set.clone() else {
        return Err(not_repl());
    };
    let their_name = command.get_str("replSetHeartbeat").unwrap_or_default();
    if their_name != our_name {
        return Err(CommandError::new(
            Code::InvalidReplicaSetConfig,
            format!(
                "replica set names do not match, ours: {our_name}; remote node's: {their_name}"
            ),
        ));
    }
    let from = command.get_str("from").unwrap_or_default().to_owned();
    let from_id = command.get_i32("fromId").ok();
    let their_version = command.get_i32("configVersion").unwrap_or(-2);
    let their_term = command.get_i64("term").unwrap_or(0);
    let mut fetch_from = None;
    let reply = {
        let mut inner = node.lock();
        if let Some(id) = from_id {
            let peer = inner.peers.entry(id).or_default();
            peer.last_heartbeat_recv = Some(SystemTime::now());
        }
        if their_term > inner.local.term {
            node.adopt_term(&mut inner, their_term);
        }
        let my_version = inner.config.as_ref().map_or(-2, |c| c.version);
        if their_version > my_version
            && !from.is_empty()
            && !command.get_bool("checkEmpty").unwrap_or(false)
        {
            fetch_from = Some(from.clone());
        }
        if inner.config.is_some() && inner.self_id.is_none() {
            return Err(CommandError::new(
                Code::InvalidReplicaSetConfig,
                "Our replica set configuration is invalid or does not include us",
            ));
        }
        let applied = inner.last_applied();
        let mut reply = doc! {
            "set": &our_name,
            "state": inner.state.number(),
            "term": inner.local.term,
            "configVersion": my_version,
            "configTerm": inner.config.as_ref().map_or(-1, |c| c.term),
            "durableOpTime": applied.to_doc(),
            "durableWallTime": date(applied.millis()),
            "opTime": applied.to_doc(),
            "wallTime": date(applied.millis()),
            "uptime": node.started.elapsed().as_secs() as i64,
            "syncingTo": inner.sync_source().map(|(host, _)| host).unwrap_or_default(),
        };
        if inner.state == MemberState::Primary
            && let Some(election) = inner.election_time
        {
            reply.insert("electionTime", election.ts());
        }
        reply
    };
    if let Some(host) = fetch_from {
        let node = node.clone();
        tokio::spawn(async move { crate::peer::fetch_config(&node, &host).await });
    }
    Ok(reply)
}

/// `replSetRequestVotes` from a candidate.
pub(crate) fn handle_request_votes(
    node: &Arc<Node>,
    command: &Document,
) -> Result<Document, CommandError> {
    if !node.is_repl() {
        return Err(not_repl());
    }
    let term = command.get_i64("term").unwrap_or(0);
    let candidate = command.get_i32("candidateIndex").unwrap_or(-1);
    let dry_run = command.get_bool("dryRun").unwrap_or(false);
    let their_version = command.get_i32("configVersion").unwrap_or(0);
    let their_last = command
        .get_document("lastAppliedOpTime")
        .ok()
        .and_then(OpTime::from_doc)
        .unwrap_or_default();
    let mut inner = node.lock();
    let my_version = inner.config.as_ref().map_or(-2, |c| c.version);
    let answer = |inner: &Inner, granted: bool, reason: &str| {
        doc! {"term": inner.local.term, "voteGranted": granted, "reason": reason}
    };
    if command.get_str("setName").ok() != node.opts.repl_set.as_deref() {
        return Ok(answer(
            &inner,
            false,
            "candidate's set name differs from mine",
        ));
    }
    // A real election's term is adopted before the vote itself is decided
    // (mongod updates its term first): a primary that sees it steps down
    // even when it refuses the vote.
    if !dry_run && term > inner.local.term {
        node.adopt_term(&mut inner, term);
    }
    if term < inner.local.term {
        return Ok(answer(&inner, false, "candidate's term is lower than mine"));
    }
    if their_version < my_version {
        return Ok(answer(
            &inner,
            false,
            "candidate's config version differs from mine",
        ));
    }
    if their_last < inner.last_applied() {
        return Ok(answer(
            &inner,
            false,
            "candidate's data is staler than mine",
        ));
    }
    if !dry_run
        && inner.local.voted_term == term
        && inner.local.voted_for.is_some_and(|v| v != candidate)
    {
        return Ok(answer(
            &inner,
            false,
            "already voted for another candidate in this term",
        ));
    }
    // An arbiter that still sees a healthy primary of equal or greater
    // priority than the candidate says no, so that a partition cannot make
    // the primary flap (mongod's `_findHealthyPrimaryOfEqualOrGreaterPriority`).
    if let Some(config) = inner.config.as_ref()
        && inner
            .self_id
            .and_then(|id| config.member(id))
            .is_some_and(|me| me.arbiter_only)
    {
        let candidate_priority = config.member(candidate).map_or(0.0, |m| m.priority);
        let better_primary = inner.primary_id.is_some_and(|p| {
            inner.peers.get(&p).is_some_and(|peer| peer.healthy)
                && config
                    .member(p)
                    .is_some_and(|m| m.priority >= candidate_priority)
        });
        if better_primary {
            return Ok(answer(
                &inner,
                false,
                "can see a healthy primary of equal or greater priority",
            ));
        }
    }
    if dry_run {
        // A dry run neither changes the term nor records a vote.
        return Ok(answer(&inner, true, ""));
    }
    inner.local.voted_term = term;
    inner.local.voted_for = Some(candidate);
    node.save_local(&inner)?;
    // Having voted for a candidate, this member gives it an election
    // timeout to take office before standing itself (mongod reschedules
    // its election timer when it grants a vote, as Raft does).
    inner.last_primary_contact = std::time::Instant::now();
    Ok(answer(&inner, true, ""))
}

/// `replSetUpdatePosition` from a secondary.
pub(super) fn update_position(node: &Node, command: &Document) -> Result<Document, CommandError> {
    let mut inner = node.lock();
    if let Ok(optimes) = command.get_array("optimes") {
        for item in optimes {
            let Some(d) = item.as_document() else {
                continue;
            };
            let Ok(id) = d.get_i32("memberId") else {
                continue;
            };
            // A position report is a sign of life, as a heartbeat reply is
            // (mongod's MemberData updates `lastUpdate` for both): a
            // primary under load hears from its secondaries this way.
            if Some(id) != inner.self_id && inner.peers.contains_key(&id) {
                inner.peers.entry(id).or_default().last_contact = Some(std::time::Instant::now());
            }
            if let Some(durable) = d
                .get_document("durableOpTime")
                .ok()
                .and_then(OpTime::from_doc)
            {
                let current = inner.positions.get(&id).copied().unwrap_or_default();
                if durable > current {
                    inner.positions.insert(id, durable);
                }
                let peer = inner.peers.entry(id).or_default();
                if durable > peer.applied {
                    peer.applied = durable;
                    peer.durable = durable;
                }
            }
        }
    }
    inner.update_commit_point();
    let _ = node.commit_watch.send(inner.commit_point);
    Ok(doc! {})
}
