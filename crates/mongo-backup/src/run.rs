//! A snapshot run, end to end: guards, lock, stop, snapshot, start (always),
//! catch-up, completion, retention.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use mongo_rs_setup::Session;
use time::OffsetDateTime;

use crate::error::Restart;
use crate::guard::{self, Cleared, Limits};
use crate::observe::{observe, wait_caught_up};
use crate::process::{MemberProcess, wait_stopped};
use crate::snapshot::{Labels, Retention, Snapshot, expired};
use crate::store::SnapshotStore;
use crate::{Error, lock, marker};

/// A request to stop a run early (the binaries trigger it on SIGINT and
/// SIGTERM). Before the member is stopped, a cancelled run releases the
/// lock and returns [`Error::Cancelled`]; after, it starts the member
/// again first ([`Error::Interrupted`]).
#[derive(Clone, Debug)]
pub struct Cancel {
    fired: tokio::sync::watch::Receiver<bool>,
    /// For [`Cancel::never`]: the sender, kept so that the channel never
    /// reads as closed (which would look like a cancel).
    _keep: Option<std::sync::Arc<tokio::sync::watch::Sender<bool>>>,
}

/// Triggers a [`Cancel`].
#[derive(Debug)]
pub struct CancelHandle(tokio::sync::watch::Sender<bool>);

impl Cancel {
    /// A cancel and the handle that triggers it.
    pub fn new() -> (CancelHandle, Cancel) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (
            CancelHandle(tx),
            Cancel {
                fired: rx,
                _keep: None,
            },
        )
    }

    /// A cancel that never fires.
    pub fn never() -> Cancel {
        let (tx, rx) = tokio::sync::watch::channel(false);
        Cancel {
            fired: rx,
            _keep: Some(std::sync::Arc::new(tx)),
        }
    }

    /// Whether it has fired.
    pub fn is_cancelled(&self) -> bool {
        *self.fired.borrow()
    }

    /// Resolves once it fires. A handle dropped without firing never
    /// fires.
    pub async fn cancelled(&self) {
        let mut rx = self.fired.clone();
        if rx.wait_for(|fired| *fired).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl CancelHandle {
    /// Fires the cancel.
    pub fn cancel(&self) {
        let _ = self.0.send(true);
    }
}

/// The member this machine runs: asks `127.0.0.1:<port>` for `hello.me`
/// (anonymously; TLS verifies the chain to the set's CA but not the host
/// name, since the member's certificate names its host, not the
/// loopback). Refuses unless it is `member` (any, when `member` is empty).
async fn local_identity(session: &Session<'_>, member: &str, port: u16) -> Result<String, Error> {
    let address = format!("127.0.0.1:{port}");
    let local = ask_local(session, port).await.ok().flatten();
    match local {
        Some(me) if member.is_empty() || me.eq_ignore_ascii_case(member) => Ok(me),
        local => Err(Error::Refused(vec![guard::Refusal::NotThisMachine {
            member: if member.is_empty() {
                "the member to back up".to_owned()
            } else {
                member.to_owned()
            },
            local,
            address,
        }])),
    }
}

/// `hello.me` of this machine's mongod on `port`, reached as the set's
/// spec says (TLS, connect timeout).
async fn ask_local(session: &Session<'_>, port: u16) -> Result<Option<String>, Error> {
    let reach = &session.spec().reach;
    crate::local::local_me(port, reach.tls.as_ref(), reach.connect_timeout).await
}

/// What a snapshot run is asked to do, besides where the set is (the
/// [`Session`]) and where snapshots go (the [`SnapshotStore`]).
#[derive(Clone, Debug)]
pub struct BackupSpec {
    /// This member, `host:port` as in the set's config; empty: whatever
    /// the local mongod (see `local_port`) says it is (`hello.me`).
    pub member: String,
    /// The port this machine's mongod listens on — the mongod the stop
    /// command stops. Before anything is touched, `127.0.0.1:<port>` is
    /// asked who it is (`hello.me`), and the run refuses
    /// ([`guard::Refusal::NotThisMachine`]) unless it is `member`. `None`
    /// skips the check (a caller whose stop command provably stops
    /// `member`).
    pub local_port: Option<u16>,
    /// Where a run keeps its marker while the member is stopped
    /// ([`crate::marker`]); a run killed after the stop is then finished
    /// by [`recover`] or the next [`snapshot`]. `None`: no marker (a
    /// killed run leaves mongod down until someone starts it).
    pub state_dir: Option<PathBuf>,
    /// The guards' limits.
    pub limits: Limits,
    /// The member's dbPath on this machine, to check that `mongod.lock`
    /// was released (`None`: only the listener is checked).
    pub db_path: Option<PathBuf>,
    /// How long the lock is leased (longer than stop + snapshot +
    /// catch-up: a crashed run's lock is taken over after it).
    pub lease: Duration,
    /// How long mongod may take to stop.
    pub stop_timeout: Duration,
    /// How long the restarted member may take to be a caught-up SECONDARY.
    pub catch_up_timeout: Duration,
    /// How long the snapshots may take to complete.
    pub complete_timeout: Duration,
    /// What to keep; older runs of this set are deleted after a good run.
    pub retention: Retention,
    /// How often to poll while waiting.
    pub poll: Duration,
    /// This tool's version, for the tags.
    pub version: String,
}

impl BackupSpec {
    /// A run backing up `member` (`host:port` as in the set's config;
    /// empty: whatever the mongod on `local_port` says it is) with the
    /// runbook's defaults: lag at most 30 s, no hidden member skipped, a
    /// 2-hour lease, 10 minutes to stop, an hour to catch up, six hours
    /// for the snapshots to complete, polling every 2 s, nothing deleted
    /// (no retention), no marker and no local check. Set the fields a
    /// machine needs (`local_port`, `state_dir`, `db_path`, `retention`).
    pub fn new(member: impl Into<String>) -> BackupSpec {
        BackupSpec {
            member: member.into(),
            local_port: None,
            state_dir: None,
            limits: Limits::default(),
            db_path: None,
            lease: Duration::from_secs(7200),
            stop_timeout: Duration::from_secs(600),
            catch_up_timeout: Duration::from_secs(3600),
            complete_timeout: Duration::from_secs(6 * 3600),
            retention: Retention::default(),
            poll: Duration::from_secs(2),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// One step of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Take the set's backup lock.
    Lock {
        /// The set.
        set: String,
    },
    /// Stop mongod and wait until it has stopped.
    StopMember {
        /// The member.
        member: String,
    },
    /// Snapshot one source.
    Snapshot {
        /// The volume or directory.
        source: String,
        /// The snapshot's id (empty in a plan).
        id: String,
    },
    /// Start mongod again.
    StartMember {
        /// The member.
        member: String,
    },
    /// Wait until the member is a caught-up SECONDARY.
    WaitCaughtUp {
        /// The member.
        member: String,
    },
    /// Give the lock back.
    Unlock {
        /// The set.
        set: String,
    },
    /// Delete a snapshot retention lets go.
    DeleteSnapshot {
        /// Its id.
        id: String,
        /// Its run.
        group: String,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Lock { set } => write!(f, "take replica set {set}'s backup lock"),
            Step::StopMember { member } => {
                write!(f, "stop mongod on {member} and wait until it has stopped")
            }
            Step::Snapshot { source, id } if id.is_empty() => write!(f, "snapshot {source}"),
            Step::Snapshot { source, id } => write!(f, "snapshot {source} as {id}"),
            Step::StartMember { member } => write!(f, "start mongod on {member}"),
            Step::WaitCaughtUp { member } => {
                write!(f, "wait until {member} is a caught-up SECONDARY")
            }
            Step::Unlock { set } => write!(f, "release replica set {set}'s backup lock"),
            Step::DeleteSnapshot { id, group } => write!(f, "delete snapshot {id} (run {group})"),
        }
    }
}

impl ha_plan::Change for Step {
    fn kind(&self) -> &'static str {
        match self {
            Step::Lock { .. } => "lock",
            Step::StopMember { .. } => "stop-member",
            Step::Snapshot { .. } => "snapshot",
            Step::StartMember { .. } => "start-member",
            Step::WaitCaughtUp { .. } => "wait-caught-up",
            Step::Unlock { .. } => "unlock",
            Step::DeleteSnapshot { .. } => "delete-snapshot",
        }
    }

    fn target(&self) -> String {
        match self {
            Step::Lock { set } | Step::Unlock { set } => format!("replica set {set}"),
            Step::StopMember { member }
            | Step::StartMember { member }
            | Step::WaitCaughtUp { member } => member.clone(),
            Step::Snapshot { source, id } if id.is_empty() => source.clone(),
            Step::Snapshot { id, .. } => id.clone(),
            Step::DeleteSnapshot { id, .. } => id.clone(),
        }
    }
}

/// What a run did (or, in a dry run, would do).
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// The run's id (the snapshots' group).
    pub group: String,
    /// The member's position the snapshots hold.
    pub cleared: Cleared,
    /// The snapshots taken.
    pub snapshots: Vec<Snapshot>,
    /// Things the operator should know (a lock not released …).
    pub warnings: Vec<String>,
}

impl Outcome {
    /// The run as `mongo-backup snapshot` reports it under `tool`'s name:
    /// its steps, `warnings` then the run's own, and `run`, `optime`,
    /// `snapshots` in `--json`.
    pub fn to_report(
        &self,
        tool: &str,
        dry_run: bool,
        mut warnings: Vec<String>,
    ) -> SnapshotReport {
        warnings.extend(self.warnings.iter().cloned());
        SnapshotReport {
            report: ha_plan::Report::from_changes(tool, dry_run, &self.steps, warnings),
            run: self.group.clone(),
            optime: self.cleared.optime.map(|o| o.to_string()),
            snapshots: self.snapshots.iter().map(|s| s.id.clone()).collect(),
        }
    }
}

/// `mongo-backup snapshot`: the steps of one backup run, and what it made.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct SnapshotReport {
    /// The steps.
    #[serde(flatten)]
    pub report: ha_plan::Report,
    /// The run's id (the snapshots' group).
    pub run: String,
    /// The member's last applied optime the snapshots hold.
    pub optime: Option<String>,
    /// The snapshots taken.
    pub snapshots: Vec<String>,
}

impl ha_plan::Document for SnapshotReport {
    /// A dry run lists the steps it would take; a run only warns and sums
    /// up (its progress lines said what happened as it happened).
    fn to_text(&self) -> String {
        ha_plan::Summarised(&self.report).to_text()
    }
}

/// `mongo-backup restore-volume`: the volume made from a snapshot.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct RestoredVolume {
    /// One `create-volume` action.
    #[serde(flatten)]
    pub report: ha_plan::Report,
    /// The new volume's id.
    pub volume: String,
}

impl RestoredVolume {
    /// `volume`, created by `tool` from `snapshot` in `zone`.
    pub fn new(tool: &str, volume: &str, snapshot: &str, zone: &str) -> RestoredVolume {
        RestoredVolume {
            report: ha_plan::Report::new(
                tool,
                false,
                vec![ha_plan::Action::new(
                    "create-volume",
                    volume,
                    format!("created volume {volume} from {snapshot} in {zone}"),
                )],
                Vec::new(),
            ),
            volume: volume.to_owned(),
        }
    }
}

impl ha_plan::Document for RestoredVolume {
    fn to_text(&self) -> String {
        self.report
            .actions
            .iter()
            .map(|a| format!("{}: {}\n", self.report.tool, a.detail))
            .collect()
    }
}

/// A refusal as `mongo-backup snapshot` reports it: unhealthy (exit 3),
/// every reason, `{changed: 0, actions: [], refused: […], warnings}`.
pub fn refusal_findings(
    tool: &str,
    refusals: &[guard::Refusal],
    warnings: &[String],
) -> ha_plan::Refused {
    ha_plan::Refused::new(
        tool,
        refusals.iter().map(ToString::to_string).collect(),
        warnings.to_vec(),
    )
}

/// A new run id: the UTC time and a random suffix (`20261130T031500Z-4f2a`).
fn new_group() -> String {
    let now = OffsetDateTime::now_utc();
    let suffix = bson::oid::ObjectId::new().to_hex();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z-{}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        &suffix[suffix.len() - 6..]
    )
}

/// Takes a snapshot of `spec.member`: checks the guards (every refusal at
/// once, [`Error::Refused`], nothing touched), takes the set's lock, stops
/// mongod through `process` and waits until it has stopped, snapshots every
/// source of `store`, starts mongod again — **always**, whatever failed
/// after the stop, and also when `cancel` fires (the binaries fire it on
/// SIGINT/SIGTERM) — waits until the member is a caught-up SECONDARY and
/// the snapshots are complete, releases the lock and deletes what
/// `spec.retention` lets go. With `dry_run`, checks the guards and returns
/// the plan.
pub async fn snapshot<P, S>(
    session: &Session<'_>,
    spec: &BackupSpec,
    process: &mut P,
    store: &S,
    dry_run: bool,
    cancel: &Cancel,
    progress: ha_plan::Progress<'_>,
) -> Result<Outcome, Error>
where
    P: MemberProcess,
    S: SnapshotStore,
{
    // A run before this one was killed while the member was stopped:
    // finish it first (start mongod, wait, release the lock) — before the
    // local mongod, down since then, is asked who it is.
    if !dry_run
        && let Some(dir) = &spec.state_dir
        && marker::find(dir, &spec.member)?.is_some()
    {
        recover(session, spec, process, progress).await?;
    }
    let member = match spec.local_port {
        Some(port) => local_identity(session, &spec.member, port).await?,
        None => spec.member.clone(),
    };
    let resolved = BackupSpec {
        member: member.clone(),
        ..spec.clone()
    };
    let spec = &resolved;
    let view = observe(session, &member).await?;
    let cleared = guard::check(&view, &member, &spec.limits).map_err(Error::Refused)?;
    let set = view.name.clone();
    let primary = view.primary().map(|p| p.host.clone()).ok_or_else(|| {
        Error::Refused(vec![guard::Refusal::Lagging {
            member: member.clone(),
            seconds: None,
            limit: spec.limits.max_lag.as_secs(),
        }])
    })?;
    let mut outcome = Outcome {
        steps: Vec::new(),
        group: new_group(),
        cleared,
        snapshots: Vec::new(),
        warnings: Vec::new(),
    };
    if dry_run {
        outcome.steps = planned_steps(spec, store, &set).await?;
        return Ok(outcome);
    }
    let (lease, labels) = lock_and_mark(
        session,
        spec,
        &primary,
        &set,
        cancel,
        &mut outcome,
        progress,
    )
    .await?;
    let stopped = stop_and_snapshot(spec, process, store, &labels, cancel, progress).await;
    let (stage, snapshots) = match stopped {
        Ok(snapshots) => (None, snapshots),
        Err((stage, error)) => (Some((stage, error)), Vec::new()),
    };
    if stage.as_ref().is_none_or(|(s, _)| *s != "stop") {
        outcome.steps.push(Step::StopMember {
            member: member.clone(),
        });
    }
    for snapshot in &snapshots {
        outcome.steps.push(Step::Snapshot {
            source: snapshot.source.clone(),
            id: snapshot.id.clone(),
        });
    }
    outcome.snapshots = snapshots;
    // Interrupted while mongod was stopping: let it finish stopping before
    // starting it again (a start racing a shutdown fails on the port or the
    // dbPath lock).
    if matches!(&stage, Some(("stop" | "waiting for the stop", None))) {
        progress(&format!(
            "waiting for mongod on {member} to finish stopping"
        ));
        let _ = wait_stopped(
            &member,
            spec.db_path.as_deref(),
            spec.stop_timeout,
            spec.poll,
        )
        .await;
    }
    // Whatever happened after the stop: start it again.
    let restart = restart(session, spec, process, &mut outcome, progress).await;
    if let Some((stage, error)) = stage {
        // The lock stays held when the member may be down, so that no
        // other member is stopped on top of it before the lease runs out.
        if !matches!(restart, Restart::Failed(_)) {
            release(session, &member, &lease, &mut outcome).await;
        }
        return Err(match error {
            None => Error::Interrupted { restart },
            Some(source) => Error::AfterStop {
                stage,
                source: Box::new(source),
                restart,
            },
        });
    }
    if restart != Restart::CaughtUp {
        if matches!(restart, Restart::Started(_)) {
            release(session, &member, &lease, &mut outcome).await;
        }
        return Err(Error::NotBack {
            snapshots: outcome.snapshots.iter().map(|s| s.id.clone()).collect(),
            restart,
        });
    }
    complete_and_prune(session, spec, store, &lease, cancel, outcome, progress).await
}

/// What a snapshot of `spec.member` would do (the dry run's steps).
async fn planned_steps<S: SnapshotStore>(
    spec: &BackupSpec,
    store: &S,
    set: &str,
) -> Result<Vec<Step>, Error> {
    let member = &spec.member;
    let mut steps = vec![
        Step::Lock {
            set: set.to_owned(),
        },
        Step::StopMember {
            member: member.clone(),
        },
    ];
    for source in store.sources() {
        steps.push(Step::Snapshot {
            source,
            id: String::new(),
        });
    }
    steps.push(Step::StartMember {
        member: member.clone(),
    });
    steps.push(Step::WaitCaughtUp {
        member: member.clone(),
    });
    steps.push(Step::Unlock {
        set: set.to_owned(),
    });
    steps.extend(prune_steps(store, set, &spec.retention).await?);
    Ok(steps)
}

/// Takes the set's backup lock, checks the guards once more with it held
/// and leaves the marker a later run finishes from (released again on
/// failure): the lease and the labels the snapshots carry.
async fn lock_and_mark(
    session: &Session<'_>,
    spec: &BackupSpec,
    primary: &str,
    set: &str,
    cancel: &Cancel,
    outcome: &mut Outcome,
    progress: ha_plan::Progress<'_>,
) -> Result<(lock::Lease, Labels), Error> {
    let member = &spec.member;
    let holder = format!("{member} (pid {})", std::process::id());
    let lease = tokio::select! {
        lease = lock::acquire(session, primary, set, &holder, spec.lease) => lease?,
        () = cancel.cancelled() => return Err(Error::Cancelled),
    };
    outcome.steps.push(Step::Lock {
        set: set.to_owned(),
    });
    progress(&format!("took replica set {set}'s backup lock"));
    // With the lock held, the guards once more on a fresh view: another
    // member may have gone down since the first look. The member applies
    // operations until it stops: its position is read here, as late as
    // possible. The snapshot holds at least everything up to it.
    let checked = match observe(session, member).await {
        Ok(view) => guard::check(&view, member, &spec.limits).map_err(Error::Refused),
        // Not knowing the set's state now is no state to stop a member in.
        Err(e) => Err(e),
    };
    let marked = checked.and_then(|now| {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        if let Some(dir) = &spec.state_dir {
            marker::write(
                dir,
                &marker::Marker {
                    member: member.clone(),
                    lease: lease.clone(),
                    pid: std::process::id(),
                },
            )?;
        }
        Ok(now)
    });
    let now = match marked {
        Ok(now) => now,
        Err(e) => {
            release(session, member, &lease, outcome).await;
            return Err(e);
        }
    };
    outcome.cleared = Cleared {
        optime: now.optime,
        optime_millis: now.optime_millis,
    };
    let labels = Labels {
        group: outcome.group.clone(),
        set: set.to_owned(),
        member: member.clone(),
        optime: now.optime,
        optime_millis: now.optime_millis,
        version: spec.version.clone(),
    };
    Ok((lease, labels))
}

/// Starts the stopped member again and waits (not cancellable: after a
/// stop, the member is seen back, or the wait times out, before the run
/// ends) until it is a caught-up SECONDARY; then removes the marker.
async fn restart<P: MemberProcess>(
    session: &Session<'_>,
    spec: &BackupSpec,
    process: &mut P,
    outcome: &mut Outcome,
    progress: ha_plan::Progress<'_>,
) -> Restart {
    let member = &spec.member;
    progress(&format!("starting mongod on {member}"));
    if let Err(e) = process.start().await {
        return Restart::Failed(e.to_string());
    }
    outcome.steps.push(Step::StartMember {
        member: member.clone(),
    });
    let caught_up = wait_caught_up(
        session,
        member,
        spec.limits.max_lag,
        spec.catch_up_timeout,
        spec.poll,
        progress,
    )
    .await;
    if let Err(e) = caught_up {
        return Restart::Started(e.to_string());
    }
    outcome.steps.push(Step::WaitCaughtUp {
        member: member.clone(),
    });
    progress(&format!("{member} is a caught-up SECONDARY again"));
    // The member runs again: nothing is left for a later run to finish.
    if let Some(dir) = &spec.state_dir
        && let Err(e) = marker::remove(dir, member)
    {
        outcome.warnings.push(e.to_string());
    }
    Restart::CaughtUp
}

/// With the member back: waits for the snapshots to complete, releases
/// the lock and deletes what the retention lets go.
async fn complete_and_prune<S: SnapshotStore>(
    session: &Session<'_>,
    spec: &BackupSpec,
    store: &S,
    lease: &lock::Lease,
    cancel: &Cancel,
    mut outcome: Outcome,
    progress: ha_plan::Progress<'_>,
) -> Result<Outcome, Error> {
    let ids: Vec<String> = outcome.snapshots.iter().map(|s| s.id.clone()).collect();
    progress(&format!(
        "waiting for {} snapshot(s) to complete",
        ids.len()
    ));
    let completed = tokio::select! {
        res = store.wait_completed(&ids, spec.complete_timeout) => res,
        () = cancel.cancelled() => Err(Error::Interrupted { restart: Restart::CaughtUp }),
    };
    release(session, &spec.member, lease, &mut outcome).await;
    completed?;
    for step in prune_steps(store, &lease.set, &spec.retention).await? {
        if let Step::DeleteSnapshot { id, .. } = &step {
            store.delete(id).await?;
            progress(&format!("deleted {id}"));
        }
        outcome.steps.push(step);
    }
    Ok(outcome)
}

/// Finishes a run that was killed while its member was stopped (see
/// [`crate::marker`]): when this machine's mongod does not answer, waits
/// until the old one has finished stopping and starts it; then waits until
/// the member is a caught-up SECONDARY, releases the lease the run held and
/// removes the marker. Nothing to do (no marker, or no `state_dir`):
/// `Ok` with no steps. A member that cannot be started keeps its marker
/// and the lock, so no other member is stopped on top of it.
pub async fn recover<P: MemberProcess>(
    session: &Session<'_>,
    spec: &BackupSpec,
    process: &mut P,
    progress: ha_plan::Progress<'_>,
) -> Result<Vec<Step>, Error> {
    let Some(dir) = &spec.state_dir else {
        return Ok(Vec::new());
    };
    let Some(left) = marker::find(dir, &spec.member)? else {
        return Ok(Vec::new());
    };
    let member = left.member.clone();
    progress(&format!(
        "a run (pid {}) stopped mongod on {member} and did not finish; finishing it",
        left.pid
    ));
    let mut steps = Vec::new();
    let answers = match spec.local_port {
        Some(port) => ask_local(session, port).await.is_ok(),
        None => session.hello(&member).await.is_ok(),
    };
    if !answers {
        progress(&format!(
            "waiting for mongod on {member} to finish stopping, then starting it"
        ));
        let _ = wait_stopped(
            &member,
            spec.db_path.as_deref(),
            spec.stop_timeout,
            spec.poll,
        )
        .await;
        process.start().await?;
        steps.push(Step::StartMember {
            member: member.clone(),
        });
    }
    wait_caught_up(
        session,
        &member,
        spec.limits.max_lag,
        spec.catch_up_timeout,
        spec.poll,
        progress,
    )
    .await?;
    steps.push(Step::WaitCaughtUp {
        member: member.clone(),
    });
    progress(&format!("{member} is a caught-up SECONDARY again"));
    match release_on_primary(session, &member, &left.lease).await {
        Ok(()) => steps.push(Step::Unlock {
            set: left.lease.set.clone(),
        }),
        Err(e) => progress(&format!(
            "the backup lock was not released ({e}); it expires by itself"
        )),
    }
    marker::remove(dir, &member)?;
    Ok(steps)
}

/// Releases `lease` on whichever member is primary now (as `member`
/// sees it).
async fn release_on_primary(
    session: &Session<'_>,
    member: &str,
    lease: &lock::Lease,
) -> Result<(), Error> {
    let primary = match observe(session, member).await {
        Ok(view) => view.primary().map(|p| p.host.clone()),
        Err(_) => None,
    };
    match primary {
        Some(primary) => lock::release(session, &primary, lease).await,
        None => Err(Error::Timeout {
            what: "a primary to release the backup lock on".to_owned(),
            waited: Duration::ZERO,
            last: "no primary".to_owned(),
        }),
    }
}

/// Releases the lock on whichever member is primary now.
async fn release(session: &Session<'_>, member: &str, lease: &lock::Lease, outcome: &mut Outcome) {
    match release_on_primary(session, member, lease).await {
        Ok(()) => outcome.steps.push(Step::Unlock {
            set: lease.set.clone(),
        }),
        Err(e) => outcome.warnings.push(format!(
            "the backup lock was not released ({e}); it expires by itself"
        )),
    }
}

/// Stops the member, waits for the stop, snapshots. On failure: the stage
/// and the error (`None`: cancelled).
async fn stop_and_snapshot<P, S>(
    spec: &BackupSpec,
    process: &mut P,
    store: &S,
    labels: &Labels,
    cancel: &Cancel,
    progress: ha_plan::Progress<'_>,
) -> Result<Vec<Snapshot>, (&'static str, Option<Error>)>
where
    P: MemberProcess,
    S: SnapshotStore,
{
    progress(&format!("stopping mongod on {}", spec.member));
    tokio::select! {
        res = process.stop() => res.map_err(|e| ("stop", Some(e)))?,
        () = cancel.cancelled() => return Err(("stop", None)),
    }
    tokio::select! {
        res = wait_stopped(&spec.member, spec.db_path.as_deref(), spec.stop_timeout, spec.poll) => {
            res.map_err(|e| ("waiting for the stop", Some(e)))?;
        }
        () = cancel.cancelled() => return Err(("waiting for the stop", None)),
    }
    progress(&format!(
        "mongod on {} has stopped; snapshotting {}",
        spec.member,
        store.describe()
    ));
    tokio::select! {
        res = store.create(labels) => res.map_err(|e| ("snapshot", Some(e))),
        () = cancel.cancelled() => Err(("snapshot", None)),
    }
}

/// The deletions `retention` calls for among `store`'s snapshots of `set`.
pub async fn prune_steps<S: SnapshotStore>(
    store: &S,
    set: &str,
    retention: &Retention,
) -> Result<Vec<Step>, Error> {
    let snapshots = store.list(set).await?;
    Ok(
        expired(&snapshots, set, retention, OffsetDateTime::now_utc())
            .into_iter()
            .flat_map(|group| {
                group
                    .snapshots
                    .into_iter()
                    .map(move |s| Step::DeleteSnapshot {
                        id: s.id,
                        group: group.id.clone(),
                    })
            })
            .collect(),
    )
}

/// Deletes what `retention` lets go (with `dry_run`, only says what).
pub async fn prune<S: SnapshotStore>(
    store: &S,
    set: &str,
    retention: &Retention,
    dry_run: bool,
) -> Result<Vec<Step>, Error> {
    let steps = prune_steps(store, set, retention).await?;
    if !dry_run {
        for step in &steps {
            if let Step::DeleteSnapshot { id, .. } = step {
                store.delete(id).await?;
            }
        }
    }
    Ok(steps)
}
