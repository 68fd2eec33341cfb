//! The documents commands print, and the envelope around them.

use schemars::JsonSchema;
use serde::Serialize;

/// The version of the `--json` documents' shape: it changes only when a
/// field is removed or changes meaning (new fields keep it).
pub const SCHEMA_VERSION: u32 = 1;

/// What a command prints: one typed value with a JSON form (its
/// `Serialize`, described by its `JsonSchema`) and a human form
/// ([`Document::to_text`]). The binaries print every result through this
/// one seam, so the text and the JSON cannot tell different stories, and
/// `docs/schema/` is generated from the same types.
///
/// A program linking a concern's crate gets the same value the CLI prints
/// and may read its fields directly.
pub trait Document: Serialize + JsonSchema {
    /// The human form: lines ending in `\n`, never a secret.
    fn to_text(&self) -> String;

    /// For a check (`status`, `verify`, `lint`): whether everything checked
    /// is as it should be (the binaries exit 3 when not). `None` for a
    /// report of changes.
    fn healthy(&self) -> Option<bool> {
        None
    }
}

/// A document as `--json` prints it: `schema_version` and `tool` first,
/// then the document's own fields.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Envelope<'a, T> {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The binary and its version, e.g. `circle-export 0.1.0`.
    pub tool: &'a str,
    /// The document.
    #[serde(flatten)]
    pub body: &'a T,
}

impl<'a, T: Document> Envelope<'a, T> {
    /// `body` as `tool` prints it.
    pub fn new(tool: &'a str, body: &'a T) -> Self {
        Envelope {
            schema_version: SCHEMA_VERSION,
            tool,
            body,
        }
    }
}

/// A command that stopped with an error, as `--json` prints it.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ErrorDocument {
    /// The error and its causes, `: `-separated; never a secret.
    pub error: String,
    /// The process's exit code (1 failure, 2 bad input, 3 unhealthy).
    pub exit_code: i32,
}

impl Document for ErrorDocument {
    fn to_text(&self) -> String {
        format!("error: {}\n", self.error)
    }
}

/// The JSON Schema (draft 2020-12) of `T` as `--json` prints it, envelope
/// included.
pub fn schema_of<T: Document + 'static>() -> schemars::Schema {
    schemars::schema_for!(Envelope<'static, T>)
}

/// A check that ran, or the error that stopped it: one concern of
/// `circle-ha status` (an error there is unhealthy, and the others are
/// still checked). In `--json` the check's own object, or `{"error"}`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "Checked_{T}")]
pub enum Checked<T> {
    /// The check ran.
    Ran(T),
    /// It could not run.
    Failed {
        /// The error and its causes, `: `-separated.
        error: String,
    },
}

impl<T> Checked<T> {
    /// `result`, its error shown with its causes.
    pub fn of<E: std::error::Error + 'static>(result: Result<T, E>) -> Checked<T> {
        match result {
            Ok(value) => Checked::Ran(value),
            Err(e) => Checked::Failed {
                error: error_chain(&e),
            },
        }
    }
}

impl<T: Document> Document for Checked<T> {
    fn to_text(&self) -> String {
        match self {
            Checked::Ran(value) => value.to_text(),
            Checked::Failed { error } => format!("error: {error}\n"),
        }
    }

    /// The check's verdict; an error is unhealthy.
    fn healthy(&self) -> Option<bool> {
        match self {
            Checked::Ran(value) => Some(value.healthy().unwrap_or(true)),
            Checked::Failed { .. } => Some(false),
        }
    }
}

/// The lines a findings document's text starts with: `warning: …` for
/// each of `warnings`, then `<label>: …` for each of `items` (`problem`,
/// `refused`), each ending in a newline.
pub fn notes_text(warnings: &[String], label: &str, items: &[String]) -> String {
    let mut text: String = warnings.iter().map(|w| format!("warning: {w}\n")).collect();
    for item in items {
        text.push_str(&format!("{label}: {item}\n"));
    }
    text
}

/// An error and its causes, `: `-separated, each cause once (an error that
/// already quotes its cause does not repeat it).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let shown = cause.to_string();
        if !text.contains(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        source = cause.source();
    }
    text
}

/// A command that refused to start, and every reason why: nothing was
/// touched (`changed: 0`), and it is not healthy (exit 3). In `--json` a
/// report with no actions, and `refused: [reason, …]`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Refused {
    /// No actions; the warnings.
    #[serde(flatten)]
    pub report: crate::Report,
    /// Every reason, each a sentence.
    pub refused: Vec<String>,
}

impl Refused {
    /// `tool` refused for `reasons`.
    pub fn new(tool: &str, reasons: Vec<String>, warnings: Vec<String>) -> Refused {
        Refused {
            report: crate::Report::new(tool, false, Vec::new(), warnings),
            refused: reasons,
        }
    }
}

impl Document for Refused {
    fn to_text(&self) -> String {
        let mut text = notes_text(&self.report.warnings, "refused", &self.refused);
        text.push_str(&format!(
            "{}: refused, nothing touched (changed: 0)\n",
            self.report.tool
        ));
        text
    }

    fn healthy(&self) -> Option<bool> {
        Some(false)
    }
}
