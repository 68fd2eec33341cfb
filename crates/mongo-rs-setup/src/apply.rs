//! Apply: carry out a plan one step at a time, observing again after each
//! step, so every step is decided on the state it acts on — a run killed
//! half-way is finished by the next one, and a finished set gives an empty
//! plan.

use bson::{Bson, doc};
use secrecy::ExposeSecret as _;

use crate::conn::{Session, Who};
use crate::error::Error;
use crate::observe::{Observed, observe};
use crate::plan::{Plan, Step, Via, plan};
use crate::reconfig;
use crate::spec::{SetSpec, UserKind};

/// No apply needs more steps than this: three users with a grant and a
/// password fix each, and a handful of reconfigs per member.
const MAX_STEPS: usize = 200;

/// What [`apply`] did.
#[derive(Debug, Default)]
pub struct Applied {
    /// The steps carried out, in order.
    pub steps: Vec<Step>,
    /// Warnings from the last observation.
    pub warnings: Vec<String>,
}

/// Observes and plans without changing anything (`--dry-run`). Waits for a
/// primary like [`apply`] would.
pub async fn dry_run(
    session: &Session<'_>,
    progress: ha_plan::Progress<'_>,
) -> Result<Plan, Error> {
    session.spec().validate().map_err(Error::Invalid)?;
    let observed = observe(session, session.spec().wait_timeout, progress).await?;
    Ok(plan(session.spec(), &observed))
}

/// `mongo-rs-setup apply` as one call: with `dry_run` the plan, else
/// [`apply`], as a report under `tool`'s name; `warnings` (about the
/// spec) come first in it. Blockers are [`Error::Blocked`] either way.
pub async fn run(
    session: &Session<'_>,
    tool: &str,
    dry_run: bool,
    mut warnings: Vec<String>,
    progress: ha_plan::Progress<'_>,
) -> Result<ha_plan::Report, Error> {
    let steps = if dry_run {
        let plan = self::dry_run(session, progress).await?;
        if !plan.blockers.is_empty() {
            return Err(Error::Blocked(plan.blockers));
        }
        warnings.extend(plan.warnings);
        plan.steps
    } else {
        let applied = apply(session, progress).await?;
        warnings.extend(applied.warnings);
        applied.steps
    };
    Ok(ha_plan::Report::from_changes(
        tool, dry_run, &steps, warnings,
    ))
}

/// Brings the replica set to the spec. `progress` hears about waits and
/// about each step as it completes (`done: …`).
///
/// A spec that breaks MongoDB's rules is [`Error::Invalid`] before any
/// member is contacted; problems found by the first observation are
/// returned as [`Error::Blocked`] before anything changes.
pub async fn apply(
    session: &Session<'_>,
    progress: ha_plan::Progress<'_>,
) -> Result<Applied, Error> {
    let spec = session.spec();
    spec.validate().map_err(Error::Invalid)?;
    let mut applied = Applied::default();
    let observed = loop {
        let observed = observe(session, spec.wait_timeout, progress).await?;
        let plan = plan(spec, &observed);
        if !plan.blockers.is_empty() {
            return Err(Error::Blocked(plan.blockers));
        }
        applied.warnings = plan.warnings;
        let Some(step) = plan.steps.into_iter().next() else {
            break observed;
        };
        if applied.steps.last() == Some(&step) || applied.steps.len() >= MAX_STEPS {
            return Err(Error::Other {
                host: observed.primary.clone().unwrap_or_default(),
                detail: format!(
                    "\"{step}\" was carried out but the set still needs it; something outside \
                     this run keeps undoing it"
                ),
            });
        }
        execute(session, &observed, &step, progress).await?;
        progress(&format!("done: {step}"));
        applied.steps.push(step);
    };
    // Members that were added earlier (say, by a run that was killed) may
    // still be syncing: wait until every reachable member is healthy.
    if let Some(primary) = &observed.primary
        && observed.logged_in(UserKind::Admin)
    {
        let set_hosts = observed.set_hosts();
        let hosts: Vec<String> = observed
            .members
            .iter()
            .filter(|m| {
                m.hello.is_ok() && set_hosts.iter().any(|h| h.eq_ignore_ascii_case(&m.host))
            })
            .map(|m| m.host.clone())
            .collect();
        reconfig::wait_until_ready(session, primary, &hosts, progress).await?;
    }
    Ok(applied)
}

async fn execute(
    session: &Session<'_>,
    observed: &Observed,
    step: &Step,
    progress: ha_plan::Progress<'_>,
) -> Result<(), Error> {
    let spec = session.spec();
    let primary = || {
        observed.primary.clone().ok_or_else(|| Error::Other {
            host: spec.name.clone(),
            detail: "the replica set has no primary".to_owned(),
        })
    };
    let write_concern = doc! {
        "w": "majority",
        "wtimeout": spec.wait_timeout.as_millis() as i64,
    };
    match step {
        Step::Initiate { host, as_admin } => {
            let seed = spec.member(host).ok_or_else(|| Error::Other {
                host: host.clone(),
                detail: "not in the spec's members".to_owned(),
            })?;
            let mut config = doc! {
                "_id": &spec.name,
                "version": 1,
                "members": [Bson::Document(seed.to_config(0))],
            };
            let settings = spec.settings.to_doc();
            if !settings.is_empty() {
                config.insert("settings", settings);
            }
            let who = if *as_admin {
                Who::User(UserKind::Admin)
            } else {
                Who::Bootstrap
            };
            progress(&format!("initiating replica set {} on {host}", spec.name));
            match session
                .command(host, who, doc! {"replSetInitiate": config})
                .await
            {
                Ok(_) => Ok(()),
                // Initiated meanwhile (a concurrent or killed run).
                Err(e) if e.code() == Some(23) => Ok(()),
                Err(e) if e.code() == Some(13) && !as_admin => Err(Error::FirstUser(
                    localhost_exception_help(spec, host, "replSetInitiate"),
                )),
                Err(e) => Err(e),
            }
        }
        Step::CreateUser { kind, name, via } => {
            let primary = primary()?;
            let user = spec.user(*kind);
            let roles: Vec<Bson> = spec
                .roles(*kind)
                .iter()
                .map(|r| Bson::Document(r.to_doc()))
                .collect();
            let command = doc! {
                "createUser": name,
                "pwd": user.password.expose_secret(),
                "roles": roles,
                "writeConcern": write_concern,
            };
            let who = match via {
                Via::LocalhostException => Who::Bootstrap,
                Via::User(k) => Who::User(*k),
            };
            match session.command(&primary, who, command).await {
                Ok(_) => Ok(()),
                Err(e) if e.code() == Some(13) && *via == Via::LocalhostException => Err(
                    Error::FirstUser(localhost_exception_help(spec, &primary, "createUser")),
                ),
                Err(e) => Err(e),
            }
        }
        Step::GrantRoles {
            name, roles, via, ..
        } => {
            let roles: Vec<Bson> = roles.iter().map(|r| Bson::Document(r.to_doc())).collect();
            session
                .command(
                    &primary()?,
                    Who::User(*via),
                    doc! {"grantRolesToUser": name, "roles": roles, "writeConcern": write_concern},
                )
                .await
                .map(drop)
        }
        Step::SetPassword { kind, name, via } => {
            let primary = primary()?;
            let user = spec.user(*kind);
            session
                .command(
                    &primary,
                    Who::User(*via),
                    doc! {
                        "updateUser": name,
                        "pwd": user.password.expose_secret(),
                        "writeConcern": write_concern,
                    },
                )
                .await?;
            for member in &spec.members {
                session.forget(&member.host, Who::User(*kind));
            }
            session.forget(&primary, Who::User(*kind));
            Ok(())
        }
        Step::AddMember { host } => {
            let primary = primary()?;
            let member = spec.member(host).ok_or_else(|| Error::Other {
                host: host.clone(),
                detail: "not in the spec's members".to_owned(),
            })?;
            progress(&format!("adding {host} to replica set {}", spec.name));
            reconfig::add_member(session, &primary, member).await?;
            reconfig::wait_until_ready(session, &primary, std::slice::from_ref(host), progress)
                .await
        }
        Step::SetMemberOptions { host, .. } => {
            let member = spec.member(host).ok_or_else(|| Error::Other {
                host: host.clone(),
                detail: "not in the spec's members".to_owned(),
            })?;
            reconfig::set_member_options(session, &primary()?, member)
                .await
                .map(drop)
        }
        Step::SetSettings { .. } => reconfig::set_settings(session, &primary()?, &spec.settings)
            .await
            .map(drop),
    }
}

/// What to do when the localhost exception does not apply.
fn localhost_exception_help(spec: &SetSpec, host: &str, command: &str) -> String {
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    format!(
        "{host} refused {command} without a login (Unauthorized). MongoDB allows that only \
         through the localhost exception: while the instance has no users at all, and only \
         from its own loopback interface. One of these applies:\n  \
         - users already exist on {host}: then the site_admin and admin users' passwords \
         must be theirs (apply could not log in as {} or {});\n  \
         - this command runs on another machine: run it on {name} itself, adding \
         --bootstrap-via-localhost (the member's certificate must then also be valid for \
         localhost);\n  \
         - the exception is switched off there (setParameter enableLocalhostAuthBypass: false): \
         start the member once without security.authorization, run apply, then restart it with \
         the rendered mongod.conf.",
        spec.site_admin.name, spec.admin.name
    )
}
