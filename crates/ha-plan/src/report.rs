//! Actions, reports and findings.

use std::fmt;

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use crate::Document;

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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
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
        serde_json::to_value(self).unwrap_or(Value::Null)
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

/// [`Report`] as `--json` shows it.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Report")]
struct ReportView<'a> {
    /// Changes made: 0 for a dry run (a second run of an idempotent
    /// command reports 0 too).
    changed: usize,
    /// Whether this was a dry run.
    dry_run: bool,
    /// Changes planned (or made).
    planned: usize,
    /// The planned or applied changes, in order.
    actions: &'a [Action],
    /// Things the operator should know that did not stop the run.
    warnings: &'a [String],
}

impl Serialize for Report {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ReportView {
            changed: self.changed(),
            dry_run: self.dry_run,
            planned: self.planned(),
            actions: &self.actions,
            warnings: &self.warnings,
        }
        .serialize(serializer)
    }
}

impl JsonSchema for Report {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Report".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        ReportView::json_schema(generator)
    }
}

impl Document for Report {
    fn to_text(&self) -> String {
        Report::to_text(self)
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
        (true, n) => format!("{tool}: {n} change(s) planned, none made (dry run)\n"),
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
    /// Concerns left out, with why ("not configured", "not selected").
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
        serde_json::to_value(self).unwrap_or(Value::Null)
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

/// [`Combined`] as `--json` shows it.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Combined")]
struct CombinedView<'a> {
    /// Changes made by every concern together: 0 for a dry run.
    changed: usize,
    /// Whether it only planned.
    dry_run: bool,
    /// Changes planned (or made) by every concern together.
    planned: usize,
    /// Every concern's actions, in the order they ran.
    actions: Vec<ConcernAction<'a>>,
    /// Each concern: how much it changed, or why it was skipped.
    concerns: Vec<ConcernOutcome<'a>>,
    /// Every concern's warnings, each prefixed `<concern>: `.
    warnings: Vec<String>,
}

/// One action of [`Combined`], with the concern that made it.
#[derive(Serialize, JsonSchema)]
struct ConcernAction<'a> {
    /// The concern (`pki`, `mongo`, `postgres`, `vault`, `userdata`).
    concern: &'a str,
    /// The action's stable kebab-case kind.
    kind: &'a str,
    /// What it changes.
    target: &'a str,
    /// A human description.
    detail: &'a str,
}

/// What one concern of [`Combined`] did.
#[derive(Serialize, JsonSchema)]
#[serde(untagged)]
enum ConcernOutcome<'a> {
    /// It ran.
    Ran {
        /// The concern.
        concern: &'a str,
        /// Changes made.
        changed: usize,
        /// Changes planned (or made).
        planned: usize,
    },
    /// It was left out.
    Skipped {
        /// The concern.
        concern: &'a str,
        /// Why ("not configured", "not selected").
        skipped: &'a str,
    },
}

impl Serialize for Combined {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let actions: Vec<ConcernAction<'_>> = self
            .ran
            .iter()
            .flat_map(|(concern, report)| {
                report.actions.iter().map(move |a| ConcernAction {
                    concern,
                    kind: &a.kind,
                    target: &a.target,
                    detail: &a.detail,
                })
            })
            .collect();
        CombinedView {
            changed: self.changed(),
            dry_run: self.dry_run,
            planned: actions.len(),
            actions,
            concerns: self
                .ran
                .iter()
                .map(|(concern, r)| ConcernOutcome::Ran {
                    concern,
                    changed: r.changed(),
                    planned: r.planned(),
                })
                .chain(
                    self.skipped
                        .iter()
                        .map(|(concern, skipped)| ConcernOutcome::Skipped { concern, skipped }),
                )
                .collect(),
            warnings: self
                .ran
                .iter()
                .flat_map(|(c, r)| r.warnings.iter().map(move |w| format!("{c}: {w}")))
                .collect(),
        }
        .serialize(serializer)
    }
}

impl JsonSchema for Combined {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Combined".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        CombinedView::json_schema(generator)
    }
}

impl Document for Combined {
    fn to_text(&self) -> String {
        Combined::to_text(self)
    }
}

/// A [`Report`] whose steps were already shown as progress while they ran
/// (`done: …` lines on stderr): its text is the warnings and the summary
/// line only; its JSON is the report's.
#[derive(Clone, Copy, Debug)]
pub struct Summarised<'a>(pub &'a Report);

impl Serialize for Summarised<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl JsonSchema for Summarised<'_> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        Report::schema_name()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        Report::json_schema(generator)
    }
}

impl Document for Summarised<'_> {
    fn to_text(&self) -> String {
        if self.0.dry_run {
            self.0.to_text()
        } else {
            self.0.to_summary_text()
        }
    }
}
