//! What commands print: human lines on stderr, or one JSON object on stdout
//! with `--json` (`{"changed": N, "actions": [{"kind", "target"}, …]}`,
//! more fields welcome; see `docs/cli.md`). The reports themselves are
//! `ha-plan`'s.

use serde_json::Value;

/// Prints a report: JSON on stdout with `json`, else text on stderr. A
/// reader that went away (`| head`) is not an error worth a panic: the
/// output is simply cut.
pub fn emit(json: bool, text: &str, value: &Value) {
    use std::io::Write as _;
    let _ = if json {
        writeln!(std::io::stdout().lock(), "{value}")
    } else {
        write!(std::io::stderr().lock(), "{text}")
    };
}

/// Prints a change report.
pub fn emit_report(json: bool, report: &ha_plan::Report) {
    emit(json, &report.to_text(), &report.to_json());
}

/// Prints findings and returns the exit code they call for (3 when not
/// healthy).
pub fn emit_findings(json: bool, findings: &ha_plan::Findings) -> crate::exit::Exit {
    emit(json, &findings.text, &findings.json);
    crate::exit::Exit::of(findings)
}

/// A bad flag or flag combination (exit 2), as a problem keyed by the flag.
pub fn usage(flag: &str, message: impl Into<String>) -> ha_plan::Problems {
    ha_plan::Problems::one(ha_plan::Problem::invalid(flag, message))
}
