//! What commands print: human lines on stderr, or one JSON object on stdout
//! with `--json` (DESIGN.md: `{"changed": N, "actions": [{"kind", "target"},
//! …]}`, more fields welcome).

use serde_json::{Value, json};

/// One planned or applied change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    /// Stable kebab-case kind, e.g. `create-database`.
    pub kind: String,
    /// What it changes, e.g. `database vms`.
    pub target: String,
    /// A human description (never holds a secret).
    pub detail: String,
}

impl Action {
    fn to_json(&self) -> Value {
        json!({"kind": self.kind, "target": self.target, "detail": self.detail})
    }
}

/// The outcome of a mutating command.
#[derive(Debug)]
pub struct ChangeReport {
    /// The tool, for human output (`pg-provision`).
    pub tool: &'static str,
    /// Whether this was `--dry-run`.
    pub dry_run: bool,
    /// Planned actions (dry run) or applied actions.
    pub actions: Vec<Action>,
    /// Warnings to show (loose secret-file modes …).
    pub warnings: Vec<String>,
}

impl ChangeReport {
    /// How many changes were applied: 0 for a dry run.
    pub fn changed(&self) -> usize {
        if self.dry_run { 0 } else { self.actions.len() }
    }

    /// The `--json` object.
    pub fn to_json(&self) -> Value {
        json!({
            "changed": self.changed(),
            "dry_run": self.dry_run,
            "planned": self.actions.len(),
            "actions": self.actions.iter().map(Action::to_json).collect::<Vec<_>>(),
            "warnings": self.warnings,
        })
    }

    /// The human form for a run whose progress already listed each action
    /// as it was done: the warnings and the summary line only.
    pub fn to_summary_text(&self) -> String {
        let mut text = self.warnings_text();
        text.push_str(&self.summary_line());
        text
    }

    fn warnings_text(&self) -> String {
        self.warnings
            .iter()
            .map(|w| format!("warning: {w}\n"))
            .collect()
    }

    fn summary_line(&self) -> String {
        match (self.dry_run, self.actions.len()) {
            (_, 0) => format!("{}: nothing to do (changed: 0)\n", self.tool),
            (true, n) => format!(
                "{}: {n} change(s) planned, none made (--dry-run)\n",
                self.tool
            ),
            (false, n) => format!("{}: changed: {n}\n", self.tool),
        }
    }

    /// The human form, for stderr.
    pub fn to_text(&self) -> String {
        let mut text = self.warnings_text();
        let verb = if self.dry_run { "would" } else { "done" };
        for action in &self.actions {
            text.push_str(&format!("{verb}: {}\n", action.detail));
        }
        text.push_str(&self.summary_line());
        text
    }
}

/// Prints a report: JSON on stdout with `json`, else text on stderr.
#[allow(clippy::print_stdout, clippy::print_stderr)]
pub fn emit(json: bool, text: &str, value: &Value) {
    if json {
        println!("{value}");
    } else {
        eprint!("{text}");
    }
}
