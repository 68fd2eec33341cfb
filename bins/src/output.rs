//! What commands print: results on stdout — human lines, or with `--json`
//! one JSON object (`{"schema_version": 1, "tool": "<name> <version>",
//! "changed": N, "actions": [{"kind", "target"}, …]}` for a change,
//! `healthy` for a check, more fields welcome; see `docs/cli.md`) —
//! diagnostics and progress on stderr (DESIGN.md, "Command-line
//! contract"). The reports themselves are `ha-plan`'s.

use std::sync::OnceLock;

use serde_json::Value;

/// The version of the `--json` documents' shape: it changes only when a
/// field is removed or changes meaning (new fields keep it).
pub const SCHEMA_VERSION: u32 = 1;

/// `<binary> <version>`, set once by [`crate::cli::parse`].
static TOOL: OnceLock<String> = OnceLock::new();

/// Names the running binary for every JSON document's `tool`.
pub fn set_tool(name: &str) {
    let _ = TOOL.set(format!("{name} {}", env!("CARGO_PKG_VERSION")));
}

/// `value` with `schema_version` and `tool` first (an object; anything
/// else is left as it is).
pub fn envelope(value: &Value) -> Value {
    let Value::Object(fields) = value else {
        return value.clone();
    };
    let mut out = serde_json::Map::new();
    out.insert("schema_version".to_owned(), SCHEMA_VERSION.into());
    out.insert(
        "tool".to_owned(),
        TOOL.get()
            .cloned()
            .unwrap_or_else(|| format!("circle-ha {}", env!("CARGO_PKG_VERSION")))
            .into(),
    );
    for (k, v) in fields {
        if k != "schema_version" && k != "tool" {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

/// Prints a result on stdout: the JSON document (with its envelope) with
/// `json`, else the text. A reader that went away (`| head`) is not an
/// error worth a panic: the output is simply cut.
pub fn emit(json: bool, text: &str, value: &Value) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = if json {
        writeln!(out, "{}", envelope(value))
    } else {
        write!(out, "{text}")
    };
}

/// Writes `text` as `dir/name` for node_exporter's textfile collector:
/// into a hidden temporary file in `dir` first, then renamed over `name`,
/// so the collector never reads half a file. 0644: metrics hold no secret.
pub fn write_textfile(dir: &std::path::Path, name: &str, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt as _;
    let mut file = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .tempfile_in(dir)?;
    file.write_all(text.as_bytes())?;
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    file.as_file().sync_all()?;
    file.persist(dir.join(name)).map_err(|e| e.error)?;
    Ok(())
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
