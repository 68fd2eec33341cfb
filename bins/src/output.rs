//! What commands print: results on stdout — human lines, or with `--json`
//! one JSON object (`{"schema_version": 1, "tool": "<name> <version>",
//! "changed": N, "actions": [{"kind", "target"}, …]}` for a change,
//! `healthy` for a check, more fields welcome; see `docs/cli.md` and the
//! schemas in `docs/schema/`) — diagnostics and progress on stderr
//! (DESIGN.md, "Command-line contract"). Every result is a typed
//! [`ha_plan::Document`] of a concern crate, printed by [`print()`].

use std::sync::OnceLock;

use ha_plan::{Document, Envelope, ErrorDocument};

use crate::exit::Exit;

/// `<binary> <version>`, set once by [`crate::cli::parse`].
static TOOL: OnceLock<String> = OnceLock::new();

/// The binaries' version: the package's, with the git commit they were
/// built from as semver build metadata when built from a checkout
/// (`0.1.0+1a2b3c4d5e`).
pub const VERSION: &str = env!("CIRCLE_HA_VERSION");

/// Names the running binary for every JSON document's `tool`.
pub fn set_tool(name: &str) {
    let _ = TOOL.set(format!("{name} {VERSION}"));
}

/// The running binary and its version, as every JSON document names it.
pub fn tool() -> &'static str {
    TOOL.get_or_init(|| format!("circle-ha {VERSION}"))
}

/// Says each warning on stderr (`<binary>: warning: …`, or a JSON log
/// line), before a result whose document has no warnings of its own.
pub fn warn(warnings: &[String]) {
    for w in warnings {
        crate::log::warning(w);
    }
}

/// Prints a command's result on stdout — with `json` the document in its
/// envelope (`schema_version`, `tool`, then its fields) on one line, else
/// its text — and returns the exit code it calls for: 3 for a check that
/// is not healthy, else 0. A reader that went away (`| head`) is not an
/// error worth a panic: the output is simply cut.
pub fn print<T: Document>(json: bool, document: &T) -> Exit {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = if json {
        match serde_json::to_string(&Envelope::new(tool(), document)) {
            Ok(line) => writeln!(out, "{line}"),
            Err(e) => writeln!(
                out,
                "{}",
                serde_json::json!({"error": format!("cannot print the result as JSON: {e}"), "exit_code": 1})
            ),
        }
    } else {
        write!(out, "{}", document.to_text())
    };
    match document.healthy() {
        Some(false) => Exit::Unhealthy,
        _ => Exit::Success,
    }
}

/// Prints an error as `--json` shows it (`{"error", "exit_code"}` in the
/// envelope) on stdout.
pub fn print_error(message: String, exit: Exit) {
    print(
        true,
        &ErrorDocument {
            error: message,
            exit_code: i32::from(exit.code()),
        },
    );
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

/// A bad flag or flag combination (exit 2), as a problem keyed by the flag.
pub fn usage(flag: &str, message: impl Into<String>) -> ha_plan::Problems {
    ha_plan::Problems::one(ha_plan::Problem::invalid(flag, message))
}
