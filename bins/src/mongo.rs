//! `mongo-rs-setup`: `[mongo]` (read by ha-config) turned into
//! mongo-rs-setup calls.

use std::time::Duration;

use ha_config::{HaConfig, MongoSetup};
use ha_plan::{Findings, Problems, Progress, Report};
use mongo_rs_setup::conf::{self, MemberConf};
use mongo_rs_setup::{MemberChange, MemberSpec, Session, parse_member_host};
use serde_json::{Value, json};

use crate::output::usage;

const TOOL: &str = "mongo-rs-setup";

/// `render-config`: the mongod.conf text for `member` (`host:port`, or a
/// host name listed once) and the warnings to show.
pub fn render_config(config: &HaConfig, member: &str) -> Result<(String, Vec<String>), Problems> {
    let layout = config.mongo_layout()?;
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
        [one] => one.clone(),
        [] => {
            let listed: Vec<&str> = layout.members.iter().map(|m| m.host.as_str()).collect();
            return Err(usage(
                "--member",
                format!(
                    "{member:?} is not in [mongo].members ({})",
                    listed.join(", ")
                ),
            ));
        }
        _ => {
            return Err(usage(
                "--member",
                format!("{member:?} matches several members: give host:port"),
            ));
        }
    };
    let (host, port) = parse_member_host(&chosen.host).map_err(|e| usage("--member", e))?;
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

/// `apply`: observe, plan and (unless `dry_run`) carry out the plan.
pub async fn apply(
    setup: MongoSetup,
    dry_run: bool,
    progress: Progress<'_>,
) -> anyhow::Result<Report> {
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
    Ok(Report::from_changes(TOOL, dry_run, &steps, warnings))
}

/// `status`: the JSON, the text and the exit code (3 when unhealthy).
pub async fn status(setup: &MongoSetup, max_lag: Duration) -> Findings {
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
    Findings::new(status.healthy(), value, text)
}

/// `add-member`, `remove-member`, `set-priority`: one reconfig on the
/// primary, or nothing when the set already is that way.
pub async fn change_member(
    setup: MongoSetup,
    change: MemberChange,
    dry_run: bool,
    progress: Progress<'_>,
) -> anyhow::Result<Report> {
    let spec = &setup.spec;
    if let MemberChange::Remove(host) = &change
        && spec.member(host).is_some()
    {
        return Err(usage(
            "--host",
            format!(
                "{host} is listed in [mongo].members: take it out of ha.toml first, or the next \
                 apply adds it back"
            ),
        )
        .into());
    }
    let session = Session::new(spec);
    let plan = mongo_rs_setup::plan_member_change(&session, spec, &change, progress).await?;
    if !dry_run {
        mongo_rs_setup::apply_member_change(&session, &plan, progress).await?;
    }
    let mut warnings = setup.warnings.clone();
    warnings.extend(plan.warnings);
    Ok(Report::from_changes(TOOL, dry_run, &plan.steps, warnings))
}
