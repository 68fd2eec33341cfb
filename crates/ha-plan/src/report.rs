//! Actions, reports and findings.

use std::fmt;

use serde::Serialize;
use serde_json::{Value, json};

/// A step of a concern's plan, as the outside sees it.
///
/// Every concern crate implements this for its own `Step` enum. `Display`
/// is the human description (it never holds a secret); `kind` and `target`
/// are stable across releases, for scripts reading `--json`.
pub trait Change: fmt::Display {
    /// A stable kebab-case name, e.g. `create-database`.
    fn kind(&self) -> &'static str;

    /// What the step changes, e.g. `database vms` or `member mongo-2:27017`.
    fn target(&self) -> String;

    /// The step as a report carries it.
    fn action(&self) -> Action {
        Action {
            kind: self.kind().to_owned(),
            target: self.target(),
            detail: self.to_string(),
        }
    }
}

/// One planned or applied change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Action {
    /// Stable kebab-case kind, e.g. `create-database`.
    pub kind: String,
    /// What it changes, e.g. `database vms`.
    pub target: String,
    /// A human description (never holds a secret).
    pub detail: String,
}

impl Action {
    /// An action that is not one of a plan's steps (e.g. `init`, `seal`).
    pub fn new(
        kind: impl Into<String>,
        target: impl Into<String>,
        detail: impl Into<String>,
    ) -> Action {
        Action {
            kind: kind.into(),
            target: target.into(),
            detail: detail.into(),
        }
    }
}

/// The outcome of a mutating command: what it planned (dry run) or did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The tool, for human output (`pg-provision`).
    pub tool: String,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Planned actions (dry run) or applied actions, in order.
    pub actions: Vec<Action>,
    /// Things to tell the operator that did not stop the run.
    pub warnings: Vec<String>,
    /// Further fields of the `--json` object, after the standard ones
    /// (the contract welcomes more fields).
    pub details: serde_json::Map<String, Value>,
}

impl Report {
    /// A report of `actions`.
    pub fn new(
        tool: impl Into<String>,
        dry_run: bool,
        actions: Vec<Action>,
        warnings: Vec<String>,
    ) -> Report {
        Report {
            tool: tool.into(),
            dry_run,
            actions,
            warnings,
            details: serde_json::Map::new(),
        }
    }

    /// A report of a plan's steps.
    pub fn from_changes<C: Change>(
        tool: impl Into<String>,
        dry_run: bool,
        steps: &[C],
        warnings: Vec<String>,
    ) -> Report {
        Report::new(
            tool,
            dry_run,
            steps.iter().map(Change::action).collect(),
            warnings,
        )
    }

    /// The report with one more `--json` field.
    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Report {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// How many changes were applied: 0 for a dry run.
    pub fn changed(&self) -> usize {
        if self.dry_run { 0 } else { self.actions.len() }
    }

    /// How many changes were planned (or made).
    pub fn planned(&self) -> usize {
        self.actions.len()
    }

    /// Appends another report's actions and warnings (same tool, same mode).
    pub fn extend(&mut self, other: Report) {
        self.actions.extend(other.actions);
        self.warnings.extend(other.warnings);
    }

    /// The `--json` object: `{"changed", "dry_run", "planned", "actions":
    /// [{"kind", "target", "detail"}], "warnings"}`.
    pub fn to_json(&self) -> Value {
        let mut value = json!({
            "changed": self.changed(),
            "dry_run": self.dry_run,
            "planned": self.planned(),
            "actions": self.actions,
            "warnings": self.warnings,
        });
        if let Value::Object(fields) = &mut value {
            for (key, detail) in &self.details {
                fields.entry(key.clone()).or_insert_with(|| detail.clone());
            }
        }
        value
    }

    /// The human form for a run whose progress already listed each action
    /// as it was done: the warnings and the summary line only.
    pub fn to_summary_text(&self) -> String {
        let mut text = warnings_text(&self.warnings, "");
        text.push_str(&summary_line(&self.tool, self.dry_run, self.planned()));
        text
    }

    /// The human form: warnings, one line per action, the summary.
    pub fn to_text(&self) -> String {
        let mut text = warnings_text(&self.warnings, "");
        let verb = if self.dry_run { "would" } else { "done" };
        for action in &self.actions {
            text.push_str(&format!("{verb}: {}\n", action.detail));
        }
        text.push_str(&summary_line(&self.tool, self.dry_run, self.planned()));
        text
    }
}

fn warnings_text(warnings: &[String], prefix: &str) -> String {
    warnings
        .iter()
        .map(|w| format!("warning: {prefix}{w}\n"))
        .collect()
}

fn summary_line(tool: &str, dry_run: bool, planned: usize) -> String {
    match (dry_run, planned) {
        (_, 0) => format!("{tool}: nothing to do (changed: 0)\n"),
        (true, n) => format!("{tool}: {n} change(s) planned, none made (--dry-run)\n"),
        (false, n) => format!("{tool}: changed: {n}\n"),
    }
}

/// Several concerns run one after another, each with its own [`Report`]
/// (`circle-ha apply`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Combined {
    /// The command, for human output (`circle-ha apply`).
    pub tool: String,
    /// Whether it only planned.
    pub dry_run: bool,
    /// Each concern that ran, in order: its name and its report.
    pub ran: Vec<(String, Report)>,
    /// Concerns left out, with why ("not configured", "not in --only").
    pub skipped: Vec<(String, String)>,
}

impl Combined {
    /// An empty run.
    pub fn new(tool: impl Into<String>, dry_run: bool) -> Combined {
        Combined {
            tool: tool.into(),
            dry_run,
            ran: Vec::new(),
            skipped: Vec::new(),
        }
    }

    /// Actions applied (0 for a dry run).
    pub fn changed(&self) -> usize {
        self.ran.iter().map(|(_, r)| r.changed()).sum()
    }

    /// Actions planned (or made).
    pub fn planned(&self) -> usize {
        self.ran.iter().map(|(_, r)| r.planned()).sum()
    }

    /// The `--json` object: `{"changed", "dry_run", "planned", "actions":
    /// [{"concern", "kind", "target", "detail"}], "concerns": [{"concern",
    /// "changed", "planned"} | {"concern", "skipped"}], "warnings"}`.
    pub fn to_json(&self) -> Value {
        let actions: Vec<Value> = self
            .ran
            .iter()
            .flat_map(|(concern, report)| {
                report.actions.iter().map(move |a| {
                    json!({
                        "concern": concern,
                        "kind": a.kind,
                        "target": a.target,
                        "detail": a.detail,
                    })
                })
            })
            .collect();
        json!({
            "changed": self.changed(),
            "dry_run": self.dry_run,
            "planned": actions.len(),
            "actions": actions,
            "concerns": self.ran.iter().map(|(c, r)| json!({
                "concern": c,
                "changed": r.changed(),
                "planned": r.planned(),
            })).chain(self.skipped.iter().map(|(c, why)| json!({
                "concern": c,
                "skipped": why,
            }))).collect::<Vec<_>>(),
            "warnings": self.ran.iter().flat_map(|(c, r)| {
                r.warnings.iter().map(move |w| format!("{c}: {w}"))
            }).collect::<Vec<_>>(),
        })
    }

    /// The human text: each concern's warnings and actions, what was
    /// skipped, and a summary.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        let verb = if self.dry_run { "would" } else { "done" };
        for (concern, report) in &self.ran {
            text.push_str(&warnings_text(&report.warnings, &format!("{concern}: ")));
            for a in &report.actions {
                text.push_str(&format!("{verb}: {concern}: {}\n", a.detail));
            }
        }
        for (concern, why) in &self.skipped {
            text.push_str(&format!("skipped: {concern}: {why}\n"));
        }
        text.push_str(&summary_line(&self.tool, self.dry_run, self.planned()));
        text
    }
}

/// What a status or verify command found: healthy or not, as JSON and as
/// text. The binaries exit 3 when it is not healthy.
#[derive(Clone, Debug, PartialEq)]
pub struct Findings {
    /// Whether everything checked is as it should be.
    pub healthy: bool,
    /// The `--json` object.
    pub json: Value,
    /// The human text (lines ending in `\n`).
    pub text: String,
}

impl Findings {
    /// Findings of a check.
    pub fn new(healthy: bool, json: Value, text: String) -> Findings {
        Findings {
            healthy,
            json,
            text,
        }
    }
}
