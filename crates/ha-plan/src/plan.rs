//! The one shape of a plan: what a concern would change, in order, what
//! stops it, and what the operator should know.

use std::fmt;

use crate::{Change, Report};

/// What a concern would change, in order, and what stops it. Every
/// concern plans in this shape — a replica set's
/// (`mongo_rs_setup::Plan`), PostgreSQL's (`pg_provision::Plan`), Vault's
/// (`vault_transit::configure::Plan`), a member change, the
/// certificates, a publish — over its own step type `S`.
///
/// ```
/// # #[derive(Debug)] struct Create(&'static str);
/// # impl std::fmt::Display for Create {
/// #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
/// #         write!(f, "create database {}", self.0)
/// #     }
/// # }
/// # impl ha_plan::Change for Create {
/// #     fn kind(&self) -> &'static str { "create-database" }
/// #     fn target(&self) -> String { format!("database {}", self.0) }
/// # }
/// let mut plan = ha_plan::Plan::new(vec![Create("vms")]);
/// plan.warnings.push("the app role's password could not be checked".to_owned());
/// assert!(!plan.is_blocked());
/// assert_eq!(
///     plan.to_string(),
///     "would: create database vms\nwarning: the app role's password could not be checked\n"
/// );
/// let report = plan.to_report("pg-provision", true);
/// assert_eq!((report.actions.len(), report.changed()), (1, 0));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan<S> {
    /// The changes, in the order they run.
    pub steps: Vec<S>,
    /// Why the plan cannot be applied (a missing privilege, a conflict
    /// the tool will not resolve on its own): while any is left, nothing
    /// is touched.
    pub blockers: Vec<String>,
    /// What the operator should know; it changes nothing.
    pub warnings: Vec<String>,
}

impl<S> Default for Plan<S> {
    fn default() -> Plan<S> {
        Plan::new(Vec::new())
    }
}

impl<S> Plan<S> {
    /// A plan of `steps`, unblocked, without warnings.
    pub fn new(steps: Vec<S>) -> Plan<S> {
        Plan {
            steps,
            blockers: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Whether there is nothing to change.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Whether something stops the plan.
    pub fn is_blocked(&self) -> bool {
        !self.blockers.is_empty()
    }
}

impl<S: Change> Plan<S> {
    /// The plan as `tool` reports it: its steps as actions (planned with
    /// `dry_run`, done without), its warnings.
    pub fn to_report(&self, tool: &str, dry_run: bool) -> Report {
        Report::from_changes(tool, dry_run, &self.steps, self.warnings.clone())
    }
}

/// One line per step (`would: …`), blocker (`BLOCKED: …`) and warning
/// (`warning: …`); `nothing to do` when there is neither a step nor a
/// blocker.
impl<S: fmt::Display> fmt::Display for Plan<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.steps.is_empty() && self.blockers.is_empty() {
            writeln!(f, "nothing to do")?;
        }
        for step in &self.steps {
            writeln!(f, "would: {step}")?;
        }
        for blocker in &self.blockers {
            writeln!(f, "BLOCKED: {blocker}")?;
        }
        for warning in &self.warnings {
            writeln!(f, "warning: {warning}")?;
        }
        Ok(())
    }
}
