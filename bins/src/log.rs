//! What every binary says on standard error besides its result: stage
//! lines ("waiting for a primary", "dumping…"), warnings, and — when asked
//! for with `-v`/`-vv` or `RUST_LOG` — the events of the libraries
//! underneath (the AWS SDK's retries, for one), through `tracing`.
//!
//! Every binary takes the same three flags, anywhere on its command line:
//!
//! - `-q`/`--quiet`: warnings and errors only (no stage or progress lines);
//! - `-v`: our debug events, dependencies' info; `-vv`: our trace events,
//!   dependencies' debug (never their trace, where request bodies go);
//! - `--log-format text|json`: `text` (the default) writes `<binary>: …`
//!   lines as before, with a timestamp from `-v` on; `json` writes one JSON
//!   object per line (`timestamp`, `level`, `target`, `fields.message`),
//!   for journald, Loki or `jq`.
//!
//! `RUST_LOG` (`warn`, `circle_ha=debug,aws_smithy_runtime=debug`, …), when
//! set, replaces the levels the flags choose. Errors are printed whatever
//! the level. No secret reaches a log line: our events carry what the
//! text output carries, the `log` crate (which tokio-postgres uses to
//! quote statements) is not bridged, and dependencies are never let below
//! debug unless `RUST_LOG` names them.

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Arg, ArgAction, ArgMatches};
use tracing::Level;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The target of our own events (stage lines, warnings).
pub const TARGET: &str = "circle_ha";

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// `<binary>: message` (with a timestamp and level from `-v` on).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// What the flags asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// -1 for `-q`, 0 by default, 1 for `-v`, 2 or more for `-vv`.
    pub verbosity: i8,
    /// `--log-format`.
    pub format: Format,
}

static QUIET: AtomicBool = AtomicBool::new(false);
static FORMAT: OnceLock<Format> = OnceLock::new();

/// The three flags, global (accepted after any subcommand too).
pub fn args() -> [Arg; 3] {
    [
        Arg::new("log_verbose")
            .short('v')
            .long("verbose")
            .action(ArgAction::Count)
            .global(true)
            .help(
                "More on stderr: -v our debug events, -vv also the libraries' (RUST_LOG overrides)",
            ),
        Arg::new("log_quiet")
            .short('q')
            .long("quiet")
            .action(ArgAction::SetTrue)
            .global(true)
            .conflicts_with("log_verbose")
            .help("Only warnings and errors on stderr: no stage or progress lines"),
        Arg::new("log_format")
            .long("log-format")
            .value_name("FORMAT")
            .value_parser(["text", "json"])
            .global(true)
            .help("How stderr's lines are written: text (default) or json, one object per line"),
    ]
}

impl Settings {
    /// The settings `matches` (parsed with [`args`]) carry.
    pub fn from_matches(matches: &ArgMatches) -> Settings {
        let verbose = matches.get_count("log_verbose").min(2) as i8;
        let quiet = matches.get_flag("log_quiet");
        let format = match matches.get_one::<String>("log_format").map(String::as_str) {
            Some("json") => Format::Json,
            _ => Format::Text,
        };
        Settings {
            verbosity: if quiet { -1 } else { verbose },
            format,
        }
    }

    /// The levels: ours, then everyone else's.
    fn levels(self) -> (LevelFilter, LevelFilter) {
        match self.verbosity {
            i8::MIN..=-1 => (LevelFilter::WARN, LevelFilter::WARN),
            0 => (LevelFilter::INFO, LevelFilter::WARN),
            1 => (LevelFilter::DEBUG, LevelFilter::INFO),
            _ => (LevelFilter::TRACE, LevelFilter::DEBUG),
        }
    }
}

/// Whether `-q` was given: stage lines and progress are not shown.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// The `--log-format` in force.
pub fn format() -> Format {
    FORMAT.get().copied().unwrap_or_default()
}

/// Starts logging for `tool` on standard error, as `settings` and
/// `rust_log` (the `RUST_LOG` variable, when set) say. An unreadable
/// `RUST_LOG` is said once and the flags' levels are used.
#[allow(clippy::print_stderr)]
pub fn init(tool: &'static str, settings: Settings, rust_log: Option<&str>) {
    QUIET.store(settings.verbosity < 0, Ordering::Relaxed);
    let _ = FORMAT.set(settings.format);
    let (ours, theirs) = settings.levels();
    let mut filter = Targets::new()
        .with_target(TARGET, ours)
        .with_default(theirs);
    if let Some(spec) = rust_log.filter(|s| !s.trim().is_empty()) {
        match spec.parse::<Targets>() {
            Ok(parsed) => filter = parsed,
            Err(e) => eprintln!("{tool}: warning: RUST_LOG={spec:?} is not read ({e})"),
        }
    }
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match settings.format {
        Format::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        Format::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(Text {
                        tool,
                        timestamps: settings.verbosity > 0,
                    })
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
}

/// A stage line (`waiting for a primary`, `dumping 1.2 GiB …`).
pub fn stage(line: &str) {
    tracing::info!(target: TARGET, "{line}");
}

/// A warning.
pub fn warning(line: &str) {
    tracing::warn!(target: TARGET, "{line}");
}

/// The text format: ours as `<binary>: message` (`warning: ` before a
/// warning), the libraries' as `<binary>: [LEVEL target] message`; from
/// `-v` on, each line starts with the time (RFC 3339, UTC).
struct Text {
    tool: &'static str,
    timestamps: bool,
}

impl<S, N> FormatEvent<S, N> for Text
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        use tracing_subscriber::fmt::time::FormatTime as _;
        if self.timestamps {
            tracing_subscriber::fmt::time::SystemTime.format_time(&mut writer)?;
            write!(writer, " ")?;
        }
        let meta = event.metadata();
        write!(writer, "{}: ", self.tool)?;
        if meta.target() == TARGET {
            match *meta.level() {
                Level::ERROR => write!(writer, "error: ")?,
                Level::WARN => write!(writer, "warning: ")?,
                _ => {}
            }
        } else {
            write!(writer, "[{} {}] ", meta.level(), meta.target())?;
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_choose_levels_and_quiet_is_warnings_only() {
        let command = clap::Command::new("t")
            .args(args())
            .subcommand(clap::Command::new("sub"));
        let parse = |argv: &[&str]| Settings::from_matches(&command.clone().get_matches_from(argv));
        assert_eq!(parse(&["t"]), Settings::default());
        assert_eq!(parse(&["t", "sub", "-vv"]).verbosity, 2);
        assert_eq!(parse(&["t", "-vvv"]).verbosity, 2);
        assert_eq!(parse(&["t", "sub", "-q"]).verbosity, -1);
        assert_eq!(parse(&["t", "--log-format", "json"]).format, Format::Json);
        assert!(
            command
                .clone()
                .try_get_matches_from(["t", "-q", "-v"])
                .is_err()
        );
        assert_eq!(
            Settings {
                verbosity: -1,
                format: Format::Text
            }
            .levels(),
            (LevelFilter::WARN, LevelFilter::WARN)
        );
        assert_eq!(
            Settings {
                verbosity: 2,
                format: Format::Text
            }
            .levels(),
            (LevelFilter::TRACE, LevelFilter::DEBUG)
        );
    }
}
