//! `mongo-rs-setup`: the `[mongo]` (and `[pki]`) sections turned into
//! mongo-rs-setup calls.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mongo_rs_setup::conf::{self, MemberConf, ServerPaths};
use mongo_rs_setup::{
    MemberSpec, Reach, ServerVersion, Session, SetSettings, SetSpec, Step, TlsFiles, UserSpec,
    parse_member_host,
};
use serde_json::{Value, json};

use crate::config::{ConfigFile, DEFAULT_APP_DATABASES, Problems, RawMongo, UsageError};
use crate::exit::Exit;
use crate::output::{Action, ChangeReport};
use crate::postgres::EnvLookup;

const TOOL: &str = "mongo-rs-setup";

/// MongoDB allows at most this many voting members.
const MAX_VOTERS: usize = 7;

/// What `render-config` needs: the members and where files live on them.
#[derive(Debug)]
pub struct Layout {
    /// `[mongo].replica_set`.
    pub name: String,
    /// `[mongo].server_version` (default 7.0).
    pub version: ServerVersion,
    /// `[mongo].members`, validated.
    pub members: Vec<MemberSpec>,
    /// `[mongo.server]` paths.
    pub paths: ServerPaths,
    /// `[mongo.server].bind_ip`.
    pub bind_ip: Vec<String>,
    /// Things to tell the operator (an even number of voters …).
    pub warnings: Vec<String>,
}

fn section(file: &ConfigFile) -> Result<&RawMongo, UsageError> {
    file.raw.mongo.as_ref().ok_or_else(|| {
        UsageError::new(format!(
            "{}: there is no [mongo] section",
            file.path.display()
        ))
    })
}

/// Validates the members, version and paths, recording problems.
fn layout(raw: &RawMongo, problems: &mut Problems) -> Layout {
    let name = match raw.replica_set.as_deref().map(str::trim) {
        Some(name)
            if !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) =>
        {
            name.to_owned()
        }
        Some(other) => {
            problems.push(format!(
                "[mongo].replica_set {other:?} must be non-empty ASCII letters, digits, '-', '_' \
                 or '.'"
            ));
            String::new()
        }
        None => {
            problems.push("[mongo].replica_set is missing");
            String::new()
        }
    };
    let version = match ServerVersion::parse(raw.server_version.as_deref().unwrap_or("7.0")) {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!("[mongo].server_version: {e}"));
            ServerVersion { major: 7, minor: 0 }
        }
    };
    let mut warnings = Vec::new();
    let mut members: Vec<MemberSpec> = Vec::new();
    if raw.members.is_empty() {
        problems.push("[mongo].members is empty: list every member as { host = \"name:27017\" }");
    }
    for (i, m) in raw.members.iter().enumerate() {
        let key = format!("[mongo].members[{i}]");
        if let Err(e) = parse_member_host(&m.host) {
            problems.push(format!("{key}.host {e}"));
            continue;
        }
        if let Some(first) = members
            .iter()
            .position(|o| o.host.eq_ignore_ascii_case(&m.host))
        {
            problems.push(format!(
                "{key}.host {:?} is listed twice (also [mongo].members[{first}])",
                m.host
            ));
            continue;
        }
        let arbiter = m.arbiter_only.unwrap_or(false);
        let hidden = m.hidden.unwrap_or(false);
        let votes = m.votes.unwrap_or(1);
        let default_priority = if arbiter || hidden || votes == 0 {
            0.0
        } else {
            1.0
        };
        let priority = m.priority.unwrap_or(default_priority);
        if !(0.0..=1000.0).contains(&priority) {
            problems.push(format!(
                "{key}.priority {priority} must be between 0 and 1000"
            ));
        }
        if votes > 1 {
            problems.push(format!("{key}.votes {votes} must be 0 or 1"));
        }
        if priority > 0.0 && (arbiter || hidden || votes == 0) {
            problems.push(format!(
                "{key}: an arbiter, a hidden member or a member with votes = 0 must have \
                 priority 0 (MongoDB refuses the config otherwise)"
            ));
        }
        members.push(MemberSpec {
            host: m.host.clone(),
            priority,
            votes,
            hidden,
            arbiter_only: arbiter,
        });
    }
    let voters = members.iter().filter(|m| m.votes > 0).count();
    if voters > MAX_VOTERS {
        problems.push(format!(
            "[mongo].members has {voters} voting members; MongoDB allows at most {MAX_VOTERS}"
        ));
    }
    if !members.is_empty() && !members.iter().any(MemberSpec::electable) {
        problems.push("[mongo].members has no member that can become primary");
    }
    if voters > 0 && voters % 2 == 0 {
        warnings.push(format!(
            "[mongo].members has {voters} voting members: an even number tolerates no more \
             failures than {} would; add an arbiter (arbiter_only = true) or another member",
            voters - 1
        ));
    }
    let defaults = ServerPaths::default();
    let server = raw.server.as_ref();
    let pick = |value: Option<&String>, default: String| value.cloned().unwrap_or(default);
    let paths = ServerPaths {
        db_path: pick(server.and_then(|s| s.db_path.as_ref()), defaults.db_path),
        log_path: pick(server.and_then(|s| s.log_path.as_ref()), defaults.log_path),
        certificate_key_file: pick(
            server.and_then(|s| s.certificate_key_file.as_ref()),
            defaults.certificate_key_file,
        ),
        cluster_file: pick(
            server.and_then(|s| s.cluster_file.as_ref().or(s.certificate_key_file.as_ref())),
            defaults.cluster_file,
        ),
        ca_file: pick(server.and_then(|s| s.ca_file.as_ref()), defaults.ca_file),
    };
    for (key, value) in [
        ("db_path", &paths.db_path),
        ("log_path", &paths.log_path),
        ("certificate_key_file", &paths.certificate_key_file),
        ("cluster_file", &paths.cluster_file),
        ("ca_file", &paths.ca_file),
    ] {
        if !value.starts_with('/') {
            problems.push(format!(
                "[mongo.server].{key} {value:?} must be an absolute path on the member"
            ));
        }
    }
    let bind_ip = server.and_then(|s| s.bind_ip.clone()).unwrap_or_default();
    Layout {
        name,
        version,
        members,
        paths,
        bind_ip,
        warnings,
    }
}

/// `render-config`: the mongod.conf text for `member` (`host:port`, or a
/// host name listed once) and the warnings to show.
pub fn render_config(file: &ConfigFile, member: &str) -> Result<(String, Vec<String>), UsageError> {
    let raw = section(file)?;
    let mut problems = Problems::default();
    let layout = layout(raw, &mut problems);
    let matches: Vec<MemberSpec> = layout
        .members
        .iter()
        .filter(|m| {
            m.host.eq_ignore_ascii_case(member)
                || parse_member_host(&m.host).is_ok_and(|(h, _)| h.eq_ignore_ascii_case(member))
        })
        .cloned()
        .collect();
    let chosen = match matches.as_slice() {
        [one] => Some(one.clone()),
        [] => {
            let listed: Vec<&str> = layout.members.iter().map(|m| m.host.as_str()).collect();
            problems.push(format!(
                "--member {member:?} is not in [mongo].members ({})",
                listed.join(", ")
            ));
            None
        }
        _ => {
            problems.push(format!(
                "--member {member:?} matches several members: give host:port"
            ));
            None
        }
    };
    let layout = problems.finish(layout)?;
    let Some(chosen) = chosen else {
        unreachable!("a problem was recorded");
    };
    let (host, port) = parse_member_host(&chosen.host).map_err(UsageError::new)?;
    let text = conf::render(&MemberConf {
        replica_set: &layout.name,
        version: layout.version,
        host: &host,
        port,
        bind_ip: &layout.bind_ip,
        paths: &layout.paths,
    });
    Ok((text, layout.warnings))
}

/// Options of the commands that talk to the set.
#[derive(Debug, Default)]
pub struct Options {
    /// `--bootstrap-via-localhost`.
    pub bootstrap_via_localhost: bool,
    /// `--wait-timeout`.
    pub wait_timeout: Option<Duration>,
}

/// A validated spec and the warnings found on the way.
#[derive(Debug)]
pub struct Setup {
    /// The desired state.
    pub spec: SetSpec,
    /// Warnings (even voter count, loose secret-file modes …).
    pub warnings: Vec<String>,
}

/// Validates `[mongo]` for the commands that talk to the set: everything
/// `render-config` checks, plus that the server version can be reached,
/// every host name resolves, TLS files and secrets are readable, and (with
/// `[pki]`) the member certificates pass ha-tls lint. Every problem is
/// reported at once.
pub async fn setup(
    file: &ConfigFile,
    env: EnvLookup<'_>,
    options: &Options,
) -> Result<Setup, UsageError> {
    let raw = section(file)?;
    let mut problems = Problems::default();
    let layout = layout(raw, &mut problems);
    let mut warnings = layout.warnings.clone();
    if !layout.version.driver_supported() {
        problems.push(format!(
            "[mongo].server_version {}: mongo-rs-setup talks to MongoDB {} and later only (the \
             official Rust driver refuses older servers); render-config still works",
            layout.version,
            ServerVersion::OLDEST_DRIVER_SUPPORTED
        ));
    }
    // Host names must resolve here, or nothing can connect.
    let lookups = futures_util::future::join_all(layout.members.iter().map(|m| async move {
        let Ok((host, port)) = parse_member_host(&m.host) else {
            return None;
        };
        let found = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await
        .map(|r| r.map(|addrs| addrs.count()));
        match found {
            Ok(Ok(n)) if n > 0 => None,
            Ok(Err(e)) => Some(format!(
                "[mongo].members host {host:?} does not resolve: {e}"
            )),
            _ => Some(format!("[mongo].members host {host:?} does not resolve")),
        }
    }))
    .await;
    for problem in lookups.into_iter().flatten() {
        problems.push(problem);
    }
    let tls = raw.tls.as_ref().map(|tls| {
        let ca_file = match &tls.ca_file {
            Some(path) => {
                let path = file.path_of(path);
                check_ca_file(&path, &mut problems);
                path
            }
            None => {
                problems.push(
                    "[mongo].tls.ca_file is missing (TLS verification needs the CA that signed \
                     the member certificates)",
                );
                PathBuf::new()
            }
        };
        let certificate_key_file = tls.certificate_key_file.as_ref().map(|p| {
            let path = file.path_of(p);
            check_key_file(&path, &mut problems);
            path
        });
        TlsFiles {
            ca_file,
            certificate_key_file,
        }
    });
    lint_member_certs(file, &layout, tls.as_ref(), &mut problems, &mut warnings);
    let users = raw.users.as_ref();
    let mut user = |key: &str, default_name: &str| -> UserSpec {
        let raw_user = users.and_then(|u| match key {
            "site_admin" => u.site_admin.as_ref(),
            "admin" => u.admin.as_ref(),
            _ => u.app.as_ref(),
        });
        let name = raw_user
            .and_then(|u| u.name.clone())
            .unwrap_or_else(|| default_name.to_owned());
        if name.is_empty() || name.len() > 1000 {
            problems.push(format!("[mongo].users.{key}.name must not be empty"));
        }
        if key != "app" && raw_user.is_some_and(|u| u.databases.is_some()) {
            problems.push(format!(
                "[mongo].users.{key}.databases: only the app user takes databases"
            ));
        }
        let field = format!("[mongo].users.{key}.password");
        let reference = problems.secret_ref(&field, raw_user.and_then(|u| u.password.as_deref()));
        let password = match reference.map(|r| r.resolve(env, &file.dir())) {
            Some(Ok(resolved)) => {
                warnings.extend(resolved.warning);
                resolved.value
            }
            Some(Err(e)) => {
                problems.push(format!("{field}: {e}"));
                secrecy::SecretString::from(String::new())
            }
            None => secrecy::SecretString::from(String::new()),
        };
        UserSpec { name, password }
    };
    let site_admin = user("site_admin", "siteUserAdmin");
    let admin = user("admin", "circle-admin");
    let app = user("app", "circle");
    let mut names = [&site_admin.name, &admin.name, &app.name];
    names.sort();
    if names.windows(2).any(|w| w[0] == w[1]) {
        problems.push("[mongo].users: site_admin, admin and app must be three different users");
    }
    let app_databases: Vec<String> = users
        .and_then(|u| u.app.as_ref())
        .and_then(|a| a.databases.clone())
        .unwrap_or_else(|| DEFAULT_APP_DATABASES.map(str::to_owned).to_vec());
    if app_databases.is_empty() {
        problems.push("[mongo].users.app.databases is empty");
    }
    for db in &app_databases {
        if db.is_empty()
            || db.len() > 63
            || db
                .chars()
                .any(|c| "/\\. \"$*<>:|?".contains(c) || c.is_control())
            || matches!(db.as_str(), "admin" | "local" | "config")
        {
            problems.push(format!(
                "[mongo].users.app.databases: {db:?} is not a usable database name (1-63 \
                 characters without / \\ . space \" $ * < > : | ?, and not admin, local or config)"
            ));
        }
    }
    let settings = raw
        .settings
        .as_ref()
        .map_or(SetSettings::default(), |s| SetSettings {
            election_timeout_millis: s.election_timeout_millis,
            heartbeat_interval_millis: s.heartbeat_interval_millis,
        });
    for (key, value) in [
        ("election_timeout_millis", settings.election_timeout_millis),
        (
            "heartbeat_interval_millis",
            settings.heartbeat_interval_millis,
        ),
    ] {
        if value.is_some_and(|v| v <= 0) {
            problems.push(format!("[mongo.settings].{key} must be positive"));
        }
    }
    let spec = SetSpec {
        name: layout.name.clone(),
        members: layout.members.clone(),
        settings,
        site_admin,
        admin,
        app,
        app_databases,
        reach: Reach {
            tls,
            connect_timeout: Duration::from_secs(raw.connect_timeout.unwrap_or(10).max(1)),
            bootstrap_via_localhost: options.bootstrap_via_localhost,
        },
        wait_timeout: options
            .wait_timeout
            .unwrap_or(Duration::from_secs(raw.wait_timeout.unwrap_or(900))),
    };
    problems.finish(Setup { spec, warnings })
}

fn check_ca_file(path: &Path, problems: &mut Problems) {
    match std::fs::read(path) {
        Ok(pem) => {
            if let Err(e) = ha_tls::root_store(&pem, &path.display().to_string()) {
                problems.push(format!("[mongo].tls.ca_file: {e}"));
            }
        }
        Err(e) => problems.push(format!("[mongo].tls.ca_file {}: {e}", path.display())),
    }
}

fn check_key_file(path: &Path, problems: &mut Problems) {
    match std::fs::read_to_string(path) {
        Ok(pem) if pem.contains("PRIVATE KEY-----") && pem.contains("CERTIFICATE-----") => {}
        Ok(_) => problems.push(format!(
            "[mongo].tls.certificate_key_file {}: must hold a certificate and its private key \
             (PEM)",
            path.display()
        )),
        Err(e) => problems.push(format!(
            "[mongo].tls.certificate_key_file {}: {e}",
            path.display()
        )),
    }
}

/// With `[pki]`, every member's `<dir>/<host>.pem` must exist and pass
/// ha-tls lint against the CA for the names the members use.
fn lint_member_certs(
    file: &ConfigFile,
    layout: &Layout,
    tls: Option<&TlsFiles>,
    problems: &mut Problems,
    warnings: &mut Vec<String>,
) {
    let Some(dir) = file
        .raw
        .pki
        .as_ref()
        .and_then(|pki| pki.get("dir"))
        .and_then(|d| d.as_str())
    else {
        return;
    };
    let dir = match file.dir() {
        base if base == Path::new(".") => PathBuf::from(dir),
        base => base.join(dir),
    };
    let ca_path = tls
        .map(|t| t.ca_file.clone())
        .unwrap_or_else(|| dir.join("ca.pem"));
    let ca = match std::fs::read(&ca_path)
        .map_err(|e| e.to_string())
        .and_then(|pem| {
            ha_tls::Certificate::from_pem(&pem, &ca_path.display().to_string())
                .map_err(|e| e.to_string())
        }) {
        Ok(ca) => ca,
        Err(e) => {
            problems.push(format!(
                "[pki]: cannot read the CA {} to check member certificates: {e}",
                ca_path.display()
            ));
            return;
        }
    };
    let mut pems = Vec::new();
    for member in &layout.members {
        let Ok((host, _)) = parse_member_host(&member.host) else {
            continue;
        };
        let path = dir.join(format!("{host}.pem"));
        // Several members on one machine share its certificate: check it once.
        if pems.iter().any(|(p, _, _)| *p == path) {
            continue;
        }
        match std::fs::read(&path) {
            Ok(pem) => pems.push((path, host, pem)),
            Err(e) => problems.push(format!(
                "[pki]: member certificate {} for {}: {e}",
                path.display(),
                member.host
            )),
        }
    }
    let inputs: Vec<ha_tls::LintInput<'_>> = pems
        .iter()
        .map(|(path, host, pem)| ha_tls::LintInput {
            label: path.display().to_string(),
            role: ha_tls::Role::Member,
            pem,
            hosts: vec![host.clone()],
        })
        .collect();
    for problem in ha_tls::lint(&ca, &inputs, time::OffsetDateTime::now_utc()) {
        let text = format!(
            "{}: {} [{}]",
            problem.label,
            problem.message,
            problem.rule.name()
        );
        match problem.severity {
            ha_tls::Severity::Error => problems.push(text),
            ha_tls::Severity::Warning => warnings.push(text),
        }
    }
}

fn actions(steps: &[Step]) -> Vec<Action> {
    steps
        .iter()
        .map(|step| Action {
            kind: step.kind().to_owned(),
            target: step.target(),
            detail: step.to_string(),
        })
        .collect()
}

/// `apply`: observe, plan and (unless `dry_run`) carry out the plan.
pub async fn apply(
    setup: Setup,
    dry_run: bool,
    progress: &dyn Fn(&str),
) -> anyhow::Result<ChangeReport> {
    let session = Session::new(&setup.spec);
    let mut warnings = setup.warnings;
    let steps = if dry_run {
        let plan = mongo_rs_setup::dry_run(&session, progress).await?;
        if !plan.blockers.is_empty() {
            return Err(mongo_rs_setup::Error::Blocked(plan.blockers).into());
        }
        warnings.extend(plan.warnings);
        plan.steps
    } else {
        let applied = mongo_rs_setup::apply(&session, progress).await?;
        warnings.extend(applied.warnings);
        applied.steps
    };
    Ok(ChangeReport {
        tool: TOOL,
        dry_run,
        actions: actions(&steps),
        warnings,
    })
}

/// `status`: the JSON, the text and the exit code (3 when unhealthy).
pub async fn status(setup: &Setup, max_lag: Duration) -> (Value, String, Exit) {
    let session = Session::new(&setup.spec);
    let status = mongo_rs_setup::status(&session, max_lag).await;
    let tls = setup.spec.reach.tls.is_some();
    let members: Vec<Value> = status
        .members
        .iter()
        .map(|m| {
            json!({
                "host": m.host,
                "configured": m.configured,
                "state": m.state,
                "healthy": m.problem.is_none() && m.configured,
                "lag_seconds": m.lag_seconds,
                "sync_source": m.sync_source,
                "reachable": m.reachable,
                "tls": tls && m.reachable,
                "auth_ok": m.auth_ok,
                "problem": m.problem,
            })
        })
        .collect();
    let value = json!({
        "healthy": status.healthy(),
        "replica_set": status.set_name,
        "primary": status.primary,
        "members": members,
        "problems": status.problems,
        "warnings": setup.warnings,
    });
    let mut text = String::new();
    for warning in &setup.warnings {
        text.push_str(&format!("warning: {warning}\n"));
    }
    let width = status
        .members
        .iter()
        .map(|m| m.host.len())
        .max()
        .unwrap_or(4);
    let state_width = status
        .members
        .iter()
        .map(|m| m.state.len())
        .max()
        .unwrap_or(9);
    for m in &status.members {
        let lag = m.lag_seconds.map_or("-".to_owned(), |l| format!("{l}s"));
        let sync = m.sync_source.as_deref().unwrap_or("-");
        let link = match (m.reachable, tls) {
            _ if !m.configured => "not probed",
            (false, _) => "unreachable",
            (true, true) => "tls ok",
            (true, false) => "plain",
        };
        let auth = match m.auth_ok {
            Some(true) => "auth ok",
            Some(false) => "AUTH FAILED",
            None => "auth -",
        };
        let extra = if m.configured {
            ""
        } else {
            "  (not in ha.toml)"
        };
        text.push_str(&format!(
            "{:<width$}  {:<state_width$}  lag {:<6} sync {:<w2$}  {link}, {auth}{extra}\n",
            m.host,
            m.state,
            lag,
            sync,
            w2 = width
        ));
    }
    for problem in &status.problems {
        text.push_str(&format!("problem: {problem}\n"));
    }
    text.push_str(&if status.healthy() {
        format!("{TOOL}: replica set {} is healthy\n", status.set_name)
    } else {
        format!(
            "{TOOL}: replica set {} is unhealthy ({} problem(s))\n",
            status.set_name,
            status.problems.len()
        )
    });
    let exit = if status.healthy() {
        Exit::Success
    } else {
        Exit::Unhealthy
    };
    (value, text, exit)
}

/// Which single-member change to make.
#[derive(Debug)]
pub enum MemberChange {
    /// `add-member`.
    Add(MemberSpec),
    /// `remove-member`.
    Remove(String),
    /// `set-priority`.
    Priority(String, f64),
}

/// `add-member`, `remove-member`, `set-priority`: one reconfig on the
/// primary, or nothing when the set already is that way.
pub async fn change_member(
    setup: Setup,
    change: MemberChange,
    dry_run: bool,
    progress: &dyn Fn(&str),
) -> anyhow::Result<ChangeReport> {
    let spec = &setup.spec;
    if let MemberChange::Remove(host) = &change
        && spec.member(host).is_some()
    {
        return Err(UsageError::new(format!(
            "{host} is listed in [mongo].members: take it out of ha.toml first, or the next \
             apply adds it back"
        ))
        .into());
    }
    let mut warnings = setup.warnings.clone();
    let session = Session::new(spec);
    let observed = mongo_rs_setup::observe(&session, spec.wait_timeout, progress).await?;
    let Some(primary) = observed.primary.clone() else {
        anyhow::bail!(
            "replica set {} has no primary: start it (and `mongo-rs-setup apply`) first",
            spec.name
        );
    };
    if !observed.logged_in(mongo_rs_setup::UserKind::Admin) {
        anyhow::bail!(
            "{primary}: {} cannot log in; reconfiguring needs it (check [mongo].users.admin)",
            spec.admin.name
        );
    }
    let config = mongo_rs_setup::reconfig::current_config(&session, &primary).await?;
    let current: Vec<bson::Document> = mongo_rs_setup::observe::config_members(&config);
    let find = |host: &str| {
        current
            .iter()
            .find(|m| {
                m.get_str("host")
                    .is_ok_and(|h| h.eq_ignore_ascii_case(host))
            })
            .cloned()
    };
    let mut actions = Vec::new();
    match change {
        MemberChange::Add(member) => {
            if find(&member.host).is_none() {
                let hello = session.hello(&member.host).await?;
                if hello.set_name.is_some() || !hello.awaiting_config {
                    anyhow::bail!(
                        "{}: it must run with --replSet {} and have no replica-set config yet \
                         (it reports set {:?})",
                        member.host,
                        spec.name,
                        hello.set_name
                    );
                }
                actions.push(Action {
                    kind: "add-member".to_owned(),
                    target: format!("member {}", member.host),
                    detail: format!("add member {} and wait until it is SECONDARY", member.host),
                });
                if !dry_run {
                    mongo_rs_setup::reconfig::add_member(&session, &primary, &member).await?;
                    mongo_rs_setup::reconfig::wait_until_ready(
                        &session,
                        &primary,
                        std::slice::from_ref(&member.host),
                        progress,
                    )
                    .await?;
                }
            }
            if spec.member(&member.host).is_none() {
                warnings.push(format!(
                    "add {} to [mongo].members in ha.toml, or status will list it as not \
                     configured and apply will warn about it",
                    member.host
                ));
            }
        }
        MemberChange::Remove(host) => {
            if find(&host).is_some() {
                actions.push(Action {
                    kind: "remove-member".to_owned(),
                    target: format!("member {host}"),
                    detail: format!("remove member {host} from the replica set"),
                });
                if !dry_run {
                    mongo_rs_setup::reconfig::remove_member(&session, &primary, &host).await?;
                }
            }
        }
        MemberChange::Priority(host, priority) => {
            let Some(member) = find(&host) else {
                anyhow::bail!("{host} is not a member of replica set {}", spec.name);
            };
            let mut wanted = spec
                .member(&host)
                .cloned()
                .unwrap_or_else(|| MemberSpec::new(host.clone()));
            wanted.votes = mongo_rs_setup::conn::number(member.get("votes")).unwrap_or(1) as u8;
            wanted.hidden = member.get_bool("hidden").unwrap_or(false);
            wanted.arbiter_only = member.get_bool("arbiterOnly").unwrap_or(false);
            let configured = spec.member(&host).map(|m| m.priority);
            wanted.priority = priority;
            let changes = mongo_rs_setup::plan::member_changes(&member, &wanted);
            if !changes.is_empty() {
                actions.push(Action {
                    kind: "set-member-options".to_owned(),
                    target: format!("member {host}"),
                    detail: format!("change member {host}: {}", changes.join(", ")),
                });
                if !dry_run {
                    mongo_rs_setup::reconfig::set_member_options(&session, &primary, &wanted)
                        .await?;
                }
            }
            if let Some(configured) = configured
                && (configured - priority).abs() > f64::EPSILON
            {
                warnings.push(format!(
                    "[mongo].members sets {host}'s priority to {configured}: the next apply \
                     changes it back unless ha.toml is changed too"
                ));
            }
        }
    }
    Ok(ChangeReport {
        tool: TOOL,
        dry_run,
        actions,
        warnings,
    })
}
