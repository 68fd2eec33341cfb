//! One member's shared state: data, oplog, replica-set runtime state,
//! cursors; the write path and write-concern waits.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bson::{Bson, Document, RawDocumentBuf, doc, oid::ObjectId};
use tokio::sync::{Notify, watch};

use crate::error::{Code, CommandError};
use crate::log::Logger;
use crate::options::ServerOptions;
use crate::replset::{MemberState, ReplConfig};
use crate::storage::{Data, Entry, LocalState, OpTime, Pending, Store, StoreError};
use crate::tls::TlsContext;

/// What this node knows about another member, from heartbeats.
#[derive(Clone, Debug)]
pub(crate) struct PeerStatus {
    /// Whether the last heartbeat succeeded.
    pub(crate) healthy: bool,
    /// The state it reported.
    pub(crate) state: MemberState,
    /// Its last applied optime.
    pub(crate) applied: OpTime,
    /// Its last durable optime.
    pub(crate) durable: OpTime,
    /// Its term.
    pub(crate) term: i64,
    /// Its config version.
    pub(crate) config_version: i32,
    /// When we last heard from it (successful heartbeat).
    pub(crate) last_contact: Option<Instant>,
    /// Wall-clock time of the last heartbeat attempt.
    pub(crate) last_heartbeat: Option<SystemTime>,
    /// Wall-clock time we last received a heartbeat from it.
    pub(crate) last_heartbeat_recv: Option<SystemTime>,
    /// Round-trip of the last heartbeat.
    pub(crate) ping_ms: i64,
    /// Why the last heartbeat failed, or an info message.
    pub(crate) message: String,
    /// When its process started (uptime), as it reported.
    pub(crate) uptime_secs: i64,
    /// Its election time, when primary.
    pub(crate) election_time: Option<OpTime>,
    /// The member it replicates from (heartbeat `syncingTo`), empty when
    /// none.
    pub(crate) sync_source: String,
}

impl Default for PeerStatus {
    fn default() -> Self {
        PeerStatus {
            healthy: false,
            state: MemberState::Unknown,
            applied: OpTime::default(),
            durable: OpTime::default(),
            term: 0,
            config_version: -2,
            last_contact: None,
            last_heartbeat: None,
            last_heartbeat_recv: None,
            ping_ms: 0,
            message: String::new(),
            uptime_secs: 0,
            election_time: None,
            sync_source: String::new(),
        }
    }
}

/// An open cursor.
#[derive(Debug)]
pub(crate) enum Cursor {
    /// Remaining documents of a query.
    Docs {
        /// `db.coll`.
        ns: String,
        /// What is left to return.
        remaining: VecDeque<Arc<RawDocumentBuf>>,
    },
    /// A tailable cursor on the oplog.
    Oplog {
        /// The optime after which entries are returned next.
        after: OpTime,
        /// The node's rollback count when the cursor was opened.
        rollbacks: u64,
    },
}

/// Who opened a cursor and on what: `getMore` and `killCursors` must name
/// the same namespace and come from the same authenticated users, as in
/// mongod (`cursor id … was not created by the authenticated user`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CursorOwner {
    /// `db.collection`.
    pub(crate) ns: String,
    /// The authenticated users, `user@db`, sorted.
    pub(crate) users: Vec<String>,
}

/// Why a cursor may not be used by a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CursorMismatch {
    /// It was opened on another namespace.
    Namespace,
    /// It was opened by other users.
    User,
}

/// The mutable part of a node.
#[derive(Debug)]
pub(crate) struct Inner {
    /// All user data.
    pub(crate) data: Data,
    /// The oplog, oldest first.
    pub(crate) oplog: Vec<Entry>,
    pub(crate) store: Store,
    /// Config (raw), term and vote.
    pub(crate) local: LocalState,
    /// The parsed config, if initiated.
    pub(crate) config: Option<ReplConfig>,
    /// This node's member `_id` in the config.
    pub(crate) self_id: Option<i32>,
    /// This node's state.
    pub(crate) state: MemberState,
    /// The primary as far as this node knows.
    pub(crate) primary_id: Option<i32>,
    /// Other members, from heartbeats.
    pub(crate) peers: BTreeMap<i32, PeerStatus>,
    /// Option<Pending> optimes reported by members (and this node's own).
    pub(crate) positions: BTreeMap<i32, OpTime>,
    /// The majority commit point.
    pub(crate) commit_point: OpTime,
    /// When this node last heard from a primary (or became one).
    pub(crate) last_primary_contact: Instant,
    /// When this node won its election.
    pub(crate) election_time: Option<OpTime>,
    /// No elections by this node until then (after a step-down).
    pub(crate) step_down_until: Option<Instant>,
    /// Open cursors.
    pub(crate) cursors: HashMap<i64, Cursor>,
    /// Each open cursor's namespace and owner.
    pub(crate) cursor_owners: HashMap<i64, CursorOwner>,
    /// How many rollbacks truncated this node's oplog since it started:
    /// an oplog cursor opened before one is dead (mongod's tailing
    /// readers lose their position in the truncated capped collection).
    pub(crate) rollbacks: u64,
    last_ts: (u32, u32),
}

impl Inner {
    /// The last applied optime.
    pub(crate) fn last_applied(&self) -> OpTime {
        self.oplog.last().map(|e| e.optime).unwrap_or_default()
    }

    /// Whether writes are accepted here.
    pub(crate) fn is_writable(&self, repl_set: bool) -> bool {
        !repl_set || self.state == MemberState::Primary
    }

    /// A fresh optime in the current term, after every earlier one.
    fn next_optime(&mut self) -> OpTime {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(0);
        let last_oplog = self.last_applied();
        let last = self.last_ts.max((last_oplog.secs, last_oplog.inc));
        let ts = if now > last.0 {
            (now, 1)
        } else {
            (last.0, last.1 + 1)
        };
        self.last_ts = ts;
        OpTime {
            term: self.local.term,
            secs: ts.0,
            inc: ts.1,
        }
    }

    /// Registers a cursor opened by `owner` and returns its id: a random,
    /// positive 63-bit number, as unguessable as mongod's.
    pub(crate) fn add_cursor(&mut self, cursor: Cursor, owner: CursorOwner) -> i64 {
        use ring::rand::SecureRandom as _;
        let rng = ring::rand::SystemRandom::new();
        let id = loop {
            let mut bytes = [0u8; 8];
            if rng.fill(&mut bytes).is_err() {
                // No randomness: refuse to hand out a guessable id.
                std::process::abort();
            }
            let id = i64::from_le_bytes(bytes) & i64::MAX;
            if id != 0 && !self.cursors.contains_key(&id) {
                break id;
            }
        };
        self.cursors.insert(id, cursor);
        self.cursor_owners.insert(id, owner);
        id
    }

    /// Takes cursor `id` out for a `getMore` on `ns` by `users`: refused
    /// (and left in place) when it belongs to another namespace or other
    /// users; `None` when there is no such cursor.
    pub(crate) fn take_cursor(
        &mut self,
        id: i64,
        ns: &str,
        users: &[String],
    ) -> Result<Option<Cursor>, CursorMismatch> {
        let Some(owner) = self.cursor_owners.get(&id) else {
            return Ok(None);
        };
        if owner.ns != ns {
            return Err(CursorMismatch::Namespace);
        }
        if owner.users != users {
            return Err(CursorMismatch::User);
        }
        Ok(self.cursors.remove(&id))
    }

    /// Puts a cursor taken with [`Inner::take_cursor`] back.
    pub(crate) fn return_cursor(&mut self, id: i64, cursor: Cursor) {
        if self.cursor_owners.contains_key(&id) {
            self.cursors.insert(id, cursor);
        }
    }

    /// Forgets a cursor that is exhausted.
    pub(crate) fn drop_cursor(&mut self, id: i64) {
        self.cursors.remove(&id);
        self.cursor_owners.remove(&id);
    }

    /// Recomputes the majority commit point from member positions.
    pub(crate) fn update_commit_point(&mut self) {
        let Some(config) = &self.config else {
            self.commit_point = self.last_applied();
            return;
        };
        let mut durable: Vec<OpTime> = config
            .voters()
            .filter(|m| !m.arbiter_only)
            .map(|m| self.positions.get(&m.id).copied().unwrap_or_default())
            .collect();
        durable.sort_unstable_by(|a, b| b.cmp(a));
        let needed = config.write_majority_count();
        // A primary never moves the commit point to an entry before the
        // first of its own term (mongod's
        // `updateLastCommittedOpTimeAndWallTime`): an earlier entry a
        // majority seems to hold may be on a branch an old primary wrote.
        let own_term_only = self.state == MemberState::Primary;
        if let Some(point) = durable.get(needed.saturating_sub(1))
            && *point > self.commit_point
            && (!own_term_only || point.term == self.local.term)
        {
            self.commit_point = *point;
        }
    }

    /// The electionId of the current term (`7fffffff` + term).
    pub(crate) fn election_id(&self) -> ObjectId {
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
        bytes[4..].copy_from_slice(&self.local.term.to_be_bytes());
        ObjectId::from_bytes(bytes)
    }

    /// The member a secondary replicates from (the primary), as `(host, id)`.
    pub(crate) fn sync_source(&self) -> Option<(String, i32)> {
        if self.state == MemberState::Primary {
            return None;
        }
        let id = self.primary_id?;
        let host = self.config.as_ref()?.member(id)?.host.clone();
        Some((host, id))
    }
}

/// A member process.
#[derive(Debug)]
pub(crate) struct Node {
    /// How it was started.
    pub(crate) opts: ServerOptions,
    inner: Mutex<Inner>,
    /// Signalled when the oplog grows or the state changes.
    pub(crate) oplog_changed: Notify,
    /// The majority commit point, for write-concern waiters.
    pub(crate) commit_watch: watch::Sender<OpTime>,
    /// Signalled when the config changes (background tasks restart).
    pub(crate) config_changed: Notify,
    /// TLS material, if TLS is on.
    pub(crate) tls: Option<TlsContext>,
    /// The log.
    pub(crate) log: Logger,
    /// Set once shutdown has begun.
    pub(crate) shutting_down: AtomicBool,
    connection_ids: AtomicI64,
    /// Process start.
    pub(crate) started: Instant,
    /// Host names that mean "this machine" (for matching config hosts).
    pub(crate) local_names: Vec<String>,
}

impl Node {
    /// Opens the data directory and builds the node.
    pub(crate) fn open(
        opts: ServerOptions,
        tls: Option<TlsContext>,
        log: Logger,
    ) -> Result<Node, StoreError> {
        let loaded = Store::open(&opts.dbpath)?;
        if loaded.truncated_tail > 0 {
            log.warn(
                "STORAGE",
                &format!(
                    "cut {} bytes of a torn last journal entry (an unclean shutdown)",
                    loaded.truncated_tail
                ),
            );
        }
        let mut local_names: Vec<String> = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        local_names.extend(opts.bind_ip.iter().cloned());
        if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            local_names.push(name.trim().to_owned());
        }
        let config = loaded
            .local
            .config
            .as_ref()
            .and_then(|d| ReplConfig::parse(d).ok());
        let mut inner = Inner {
            data: loaded.data,
            oplog: loaded.oplog,
            store: loaded.store,
            local: loaded.local,
            config: None,
            self_id: None,
            state: MemberState::Startup,
            primary_id: None,
            peers: BTreeMap::new(),
            positions: BTreeMap::new(),
            commit_point: OpTime::default(),
            last_primary_contact: Instant::now(),
            election_time: None,
            step_down_until: None,
            cursors: HashMap::new(),
            cursor_owners: HashMap::new(),
            rollbacks: 0,
            last_ts: (0, 0),
        };
        let node_port = opts.port;
        let names = local_names.clone();
        if opts.repl_set.is_some() {
            if let Some(config) = config {
                let self_id = find_self(&config, node_port, &names);
                inner.self_id = self_id;
                inner.state = match self_id {
                    Some(_) => MemberState::Secondary,
                    None => MemberState::Removed,
                };
                inner.config = Some(config);
            }
        } else {
            inner.commit_point = inner.last_applied();
        }
        if let Some(id) = inner.self_id {
            let applied = inner.last_applied();
            inner.positions.insert(id, applied);
        }
        let commit = inner.commit_point;
        Ok(Node {
            opts,
            inner: Mutex::new(inner),
            oplog_changed: Notify::new(),
            commit_watch: watch::channel(commit).0,
            config_changed: Notify::new(),
            tls,
            log,
            shutting_down: AtomicBool::new(false),
            connection_ids: AtomicI64::new(0),
            started: Instant::now(),
            local_names,
        })
    }

    /// Steps down: SECONDARY, no elections by this node for `freeze`.
    pub(crate) fn become_secondary(&self, inner: &mut Inner, freeze: Duration, reason: &str) {
        if inner.state == MemberState::Primary {
            self.log
                .info("REPL", &format!("stepping down from primary: {reason}"));
            inner.state = MemberState::Secondary;
            inner.primary_id = None;
            inner.step_down_until = Some(Instant::now() + freeze);
            inner.last_primary_contact = Instant::now();
            self.oplog_changed.notify_waiters();
        }
    }

    /// Adopts a higher term seen from another member (stepping down if
    /// primary).
    pub(crate) fn adopt_term(&self, inner: &mut Inner, term: i64) {
        if term <= inner.local.term {
            return;
        }
        inner.local.term = term;
        let _ = self.save_local(inner);
        self.become_secondary(inner, Duration::from_millis(0), "a newer term was seen");
    }

    /// Locks the state. Never held across an `.await`. A poisoned lock (a
    /// panic while it was held) means the state may be half-changed: the
    /// process aborts, as mongod's fassert does, rather than serve it.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(guard) => guard,
            Err(_) => {
                self.log.warn(
                    "CONTROL",
                    "a thread panicked while holding the node's state; aborting",
                );
                std::process::abort()
            }
        }
    }

    /// A new connection id.
    pub(crate) fn next_connection_id(&self) -> i64 {
        self.connection_ids.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Whether started with `--replSet`.
    pub(crate) fn is_repl(&self) -> bool {
        self.opts.repl_set.is_some()
    }

    /// The major version reported.
    pub(crate) fn major(&self) -> u32 {
        self.opts.version.major
    }

    /// `not primary` in this version's words.
    pub(crate) fn not_primary(&self) -> CommandError {
        let message = if self.major() >= 5 {
            "not primary"
        } else {
            "not master"
        };
        CommandError::new(Code::NotWritablePrimary, message)
    }

    /// Runs `f` with a writer that turns changes into oplog entries, applies
    /// them, journals them and publishes them, then — with the node's lock
    /// released — syncs the journal before returning. Fails with
    /// `NotWritablePrimary` on a replica-set member that is not primary.
    pub(crate) fn write<R>(
        &self,
        f: impl FnOnce(&mut Writer<'_>) -> R,
    ) -> Result<(R, OpTime), CommandError> {
        let (res, last, durable) = {
            let mut inner = self.lock();
            if !inner.is_writable(self.is_repl()) {
                return Err(self.not_primary());
            }
            self.write_locked(&mut inner, f)?
        };
        self.make_durable(durable);
        Ok((res, last))
    }

    /// Like [`Node::write`] without the primary check: for the entries a
    /// member writes for itself (initiate, a new primary's no-op).
    pub(crate) fn write_unchecked<R>(
        &self,
        f: impl FnOnce(&mut Writer<'_>) -> R,
    ) -> Result<(R, OpTime), CommandError> {
        let (res, last, durable) = {
            let mut inner = self.lock();
            self.write_locked(&mut inner, f)?
        };
        self.make_durable(durable);
        Ok((res, last))
    }

    /// Runs a write on an already locked state, durable when it returns
    /// (the caller holds the lock through the sync: for rare writes only,
    /// such as a new primary's no-op).
    pub(crate) fn write_with<R>(
        &self,
        inner: &mut Inner,
        f: impl FnOnce(&mut Writer<'_>) -> R,
    ) -> Result<(R, OpTime), CommandError> {
        let (res, last, durable) = self.write_locked(inner, f)?;
        self.make_durable(durable);
        Ok((res, last))
    }

    /// Runs a write on a locked state; the journal still has to be synced
    /// (outside the lock) with [`Node::make_durable`].
    fn write_locked<R>(
        &self,
        inner: &mut Inner,
        f: impl FnOnce(&mut Writer<'_>) -> R,
    ) -> Result<(R, OpTime, Option<Pending>), CommandError> {
        let mut writer = Writer {
            inner,
            entries: Vec::new(),
            statement: None,
        };
        let res = f(&mut writer);
        let entries = std::mem::take(&mut writer.entries);
        let (last, durable) = self.publish(inner, entries)?;
        Ok((res, last, durable))
    }

    /// Syncs the journal up to a write's end. A journal that cannot be
    /// made durable means acknowledged writes could vanish: the process
    /// aborts, as mongod's storage engine does on a failed log flush.
    fn make_durable(&self, durable: Option<Pending>) {
        if let Some(pending) = durable
            && let Err(e) = sync_off_the_runtime(&pending)
        {
            self.log.warn(
                "STORAGE",
                &format!("cannot sync the journal ({e}); aborting"),
            );
            std::process::abort();
        }
    }

    /// Journals already-applied entries and makes them visible. Returns the
    /// node's last optime and what to sync. A journal write that fails
    /// aborts: the in-memory data already holds the entries, and serving
    /// data the journal and the oplog do not have would diverge from every
    /// other member.
    fn publish(
        &self,
        inner: &mut Inner,
        entries: Vec<Entry>,
    ) -> Result<(OpTime, Option<Pending>), CommandError> {
        let mut durable = None;
        if !entries.is_empty() {
            match inner.store.append(&entries) {
                Ok(pending) => durable = Some(pending),
                Err(e) => {
                    self.log.warn(
                        "STORAGE",
                        &format!("cannot write the journal ({e}); aborting"),
                    );
                    std::process::abort();
                }
            }
            inner.oplog.extend(entries);
        }
        let last = inner.last_applied();
        if let Some(id) = inner.self_id {
            inner.positions.insert(id, last);
        }
        inner.update_commit_point();
        if !self.is_repl() {
            inner.commit_point = last;
        }
        let _ = self.commit_watch.send(inner.commit_point);
        self.oplog_changed.notify_waiters();
        Ok((last, durable))
    }

    /// Applies entries fetched from the sync source (secondaries).
    /// An entry that cannot be applied stops the batch there: the entries
    /// before it are applied and in the oplog (the data never holds an
    /// entry the oplog does not), and the error names the entry.
    pub(crate) fn apply_replicated(&self, entries: Vec<Entry>) -> Result<OpTime, CommandError> {
        let (last, durable, failed) = {
            let mut inner = self.lock();
            let mut fresh = Vec::new();
            let mut failed = None;
            for entry in entries {
                if entry.optime <= inner.last_applied() {
                    continue;
                }
                if let Err(e) = inner.data.apply(&entry) {
                    failed = Some(CommandError::new(
                        e.code,
                        format!(
                            "cannot apply the oplog entry of {} ({} on {}): {}",
                            entry.optime,
                            entry.op(),
                            entry.ns(),
                            e.message
                        ),
                    ));
                    break;
                }
                fresh.push(entry);
            }
            let (last, durable) = self.publish(&mut inner, fresh)?;
            (last, durable, failed)
        };
        self.make_durable(durable);
        match failed {
            Some(e) => Err(e),
            None => Ok(last),
        }
    }

    /// Drops oplog entries after `keep` and rebuilds the data from the rest
    /// (rollback).
    pub(crate) fn truncate_oplog(&self, keep: usize) -> Result<(), CommandError> {
        let mut inner = self.lock();
        inner.oplog.truncate(keep);
        inner.rollbacks += 1;
        let mut data = Data::default();
        for entry in &inner.oplog {
            data.apply(entry)?;
        }
        inner.data = data;
        let entries = inner.oplog.clone();
        inner.store.rewrite(&entries).map_err(|e| {
            CommandError::new(
                Code::IllegalOperation,
                format!("journal rewrite failed: {e}"),
            )
        })?;
        let last = inner.last_applied();
        if let Some(id) = inner.self_id {
            inner.positions.insert(id, last);
        }
        self.oplog_changed.notify_waiters();
        Ok(())
    }

    /// Saves config, term and vote.
    pub(crate) fn save_local(&self, inner: &Inner) -> Result<(), CommandError> {
        inner.store.save_local(&inner.local).map_err(|e| {
            CommandError::new(
                Code::IllegalOperation,
                format!("cannot persist local state: {e}"),
            )
        })
    }

    /// Installs a config (initiate, reconfig, or learned from a peer).
    pub(crate) fn install_config(
        &self,
        inner: &mut Inner,
        config: ReplConfig,
    ) -> Result<(), CommandError> {
        inner.local.config = Some(config.to_doc(self.opts.version));
        let self_id = find_self(&config, self.opts.port, &self.local_names);
        inner.self_id = self_id;
        inner.peers.retain(|id, _| config.member(*id).is_some());
        inner.positions.retain(|id, _| config.member(*id).is_some());
        match self_id {
            None => {
                inner.state = MemberState::Removed;
                inner.primary_id = None;
            }
            Some(id) => {
                if matches!(inner.state, MemberState::Startup | MemberState::Removed) {
                    inner.state = MemberState::Secondary;
                    inner.last_primary_contact = Instant::now();
                }
                let applied = inner.last_applied();
                inner.positions.insert(id, applied);
            }
        }
        inner.config = Some(config);
        self.save_local(inner)?;
        inner.update_commit_point();
        let _ = self.commit_watch.send(inner.commit_point);
        self.config_changed.notify_waiters();
        self.oplog_changed.notify_waiters();
        Ok(())
    }

    /// Waits until `optime` satisfies the write concern `wc` (`w: 1`,
    /// `w: N`, `w: "majority"`, with `wtimeout`).
    pub(crate) async fn wait_for_write_concern(
        &self,
        optime: OpTime,
        wc: Option<&Document>,
    ) -> Result<(), CommandError> {
        let Some(wc) = wc else {
            return Ok(());
        };
        let w = wc.get("w").cloned().unwrap_or(Bson::Int32(1));
        let timeout_ms = match wc.get("wtimeout") {
            Some(Bson::Int32(t)) => i64::from(*t),
            Some(Bson::Int64(t)) => *t,
            Some(Bson::Double(t)) => *t as i64,
            _ => 0,
        };
        let deadline =
            (timeout_ms > 0).then(|| Instant::now() + Duration::from_millis(timeout_ms as u64));
        let satisfied = |node: &Node| -> bool {
            let inner = node.lock();
            match &w {
                Bson::String(s) if s == "majority" => {
                    inner.commit_point >= optime || !node.is_repl()
                }
                Bson::Int32(n) => acknowledged(&inner, optime) >= *n as usize,
                Bson::Int64(n) => acknowledged(&inner, optime) >= *n as usize,
                Bson::Double(n) => acknowledged(&inner, optime) >= *n as usize,
                _ => true,
            }
        };
        // A member that is no longer primary in the write's term cannot
        // say whether the write will survive: mongod answers
        // PrimarySteppedDown, which drivers retry (on the new primary,
        // where a retryable write is recognised and not run twice).
        let stepped_down = |node: &Node| -> bool {
            let inner = node.lock();
            node.is_repl()
                && (inner.state != MemberState::Primary || inner.local.term != optime.term)
        };
        let mut watcher = self.commit_watch.subscribe();
        loop {
            if satisfied(self) {
                return Ok(());
            }
            if stepped_down(self) {
                return Err(CommandError::new(
                    Code::PrimarySteppedDown,
                    "Primary stepped down while waiting for replication",
                ));
            }
            let wait = async {
                let changed = watcher.changed();
                let tick = tokio::time::sleep(Duration::from_millis(200));
                tokio::select! {
                    _ = changed => {},
                    _ = tick => {},
                }
            };
            match deadline {
                Some(deadline) => {
                    if Instant::now() >= deadline {
                        return Err(CommandError::new(
                            Code::WriteConcernFailed,
                            "waiting for replication timed out",
                        )
                        .with("errInfo", doc! {"wtimeout": true}));
                    }
                    let _ = tokio::time::timeout_at(deadline.into(), wait).await;
                }
                None => wait.await,
            }
            if self.shutting_down.load(Ordering::Relaxed) {
                return Err(CommandError::new(
                    Code::ShutdownInProgress,
                    "shutdown in progress",
                ));
            }
        }
    }

    /// `$clusterTime` and `operationTime` for replies of members.
    pub(crate) fn gossip(&self, reply: &mut Document) {
        let last = {
            let inner = self.lock();
            if !self.is_repl() || inner.config.is_none() {
                return;
            }
            inner.last_applied()
        };
        reply.insert(
            "$clusterTime",
            doc! {
                "clusterTime": last.ts(),
                "signature": {
                    "hash": Bson::Binary(bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![0; 20] }),
                    "keyId": 0_i64,
                },
            },
        );
        reply.insert("operationTime", last.ts());
    }
}

/// Syncs the journal; on a multi-threaded runtime the worker hands its
/// other tasks (heartbeats, votes, reads) to another thread first, so an
/// fsync never holds them up.
fn sync_off_the_runtime(pending: &Pending) -> std::io::Result<()> {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(|| pending.sync())
    } else {
        pending.sync()
    }
}

/// Members whose durable optime reached `optime`.
fn acknowledged(inner: &Inner, optime: OpTime) -> usize {
    inner
        .positions
        .values()
        .filter(|p| **p >= optime)
        .count()
        .max(1)
}

fn host_is_self(host: &str, port: u16, names: &[String]) -> bool {
    let Some((name, host_port)) = host.rsplit_once(':') else {
        return false;
    };
    if host_port.parse::<u16>().ok() != Some(port) {
        return false;
    }
    let name = name.trim_start_matches('[').trim_end_matches(']');
    names.iter().any(|n| n == name) || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// This node's member `_id` in `config`.
pub(crate) fn find_self(config: &ReplConfig, port: u16, names: &[String]) -> Option<i32> {
    config
        .members
        .iter()
        .find(|m| host_is_self(&m.host, port, names))
        .map(|m| m.id)
}

/// A change document as BSON.
fn encode(doc: &Document) -> Result<bson::RawDocumentBuf, CommandError> {
    bson::RawDocumentBuf::from_document(doc)
        .map_err(|e| CommandError::new(crate::error::Code::InvalidBson, e.to_string()))
}

/// Collects a write's changes as oplog entries (see [`Node::write`]).
pub(crate) struct Writer<'a> {
    inner: &'a mut Inner,
    entries: Vec<Entry>,
    statement: Option<crate::storage::Statement>,
}

impl Writer<'_> {
    /// The retryable-write statement the next data changes belong to
    /// (`None` outside a retryable write): their oplog entries carry its
    /// `lsid`, `txnNumber` and `stmtId`, which is how every member learns
    /// that it was executed.
    pub(crate) fn set_statement(&mut self, statement: Option<crate::storage::Statement>) {
        self.statement = statement;
    }

    /// Applies one change; on success it becomes an oplog entry. A write to
    /// a collection that does not exist yet first creates it (its own
    /// entry, carrying the new UUID, so every member agrees on it).
    pub(crate) fn emit(
        &mut self,
        op: &str,
        ns: &str,
        o: Document,
        o2: Option<Document>,
    ) -> Result<(), CommandError> {
        if matches!(op, "i" | "u") {
            self.create_if_missing(ns)?;
        }
        let (db, coll) = crate::storage::split_ns(ns);
        let uuid = self.inner.data.collection(db, coll).map(|c| c.uuid);
        let uuid = match (op, o.get_str("create")) {
            ("c", Ok(_)) => Some(crate::storage::random_uuid()),
            _ => uuid,
        };
        self.emit_entry(op, ns, encode(&o)?, o2, uuid)
    }

    /// [`Writer::emit`] of an insert of `raw`, a document the caller has
    /// already encoded (an insert encodes it to check its size), so it is
    /// not encoded again to be stored, journaled or replicated.
    pub(crate) fn emit_insert(
        &mut self,
        ns: &str,
        raw: bson::RawDocumentBuf,
    ) -> Result<(), CommandError> {
        self.create_if_missing(ns)?;
        let (db, coll) = crate::storage::split_ns(ns);
        let uuid = self.inner.data.collection(db, coll).map(|c| c.uuid);
        self.emit_entry("i", ns, raw, None, uuid)
    }

    /// A write to a collection that does not exist yet first creates it
    /// (its own entry, carrying the new UUID, so every member agrees on it).
    fn create_if_missing(&mut self, ns: &str) -> Result<(), CommandError> {
        let (db, coll) = crate::storage::split_ns(ns);
        if self.inner.data.collection(db, coll).is_some() {
            return Ok(());
        }
        let uuid = crate::storage::random_uuid();
        self.emit_entry(
            "c",
            &format!("{db}.$cmd"),
            encode(&doc! {"create": coll})?,
            None,
            Some(uuid),
        )
    }

    /// The data as this write has left it so far.
    pub(crate) fn data(&self) -> &crate::storage::Data {
        &self.inner.data
    }

    fn emit_entry(
        &mut self,
        op: &str,
        ns: &str,
        o: bson::RawDocumentBuf,
        o2: Option<Document>,
        uuid: Option<[u8; 16]>,
    ) -> Result<(), CommandError> {
        let statement = self
            .statement
            .as_ref()
            .filter(|_| matches!(op, "i" | "u" | "d"));
        let optime = self.inner.next_optime();
        let entry = Entry::new(optime, op, ns, &o, o2.as_ref(), uuid, statement)?;
        self.inner.data.apply_with(&entry, Some(o))?;
        self.entries.push(entry);
        Ok(())
    }
}
