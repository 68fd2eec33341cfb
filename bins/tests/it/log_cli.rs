//! What the binaries say on stderr besides their result: stage lines,
//! silenced by `-q`; `--log-format json`, one object per line; `-v`'s
//! timestamps; `RUST_LOG`; never a secret, at any level.

use std::path::Path;
use std::process::Command;

use crate::run;

/// `circle-export export` of an empty dump directory into `out`, sealed
/// with the passphrase in `PASS`, with `extra` flags.
fn export(dir: &Path, out: &str, extra: &[&str]) -> Command {
    let dump = dir.join("dump");
    let _ = std::fs::create_dir(&dump);
    let mut command = Command::new(env!("CARGO_BIN_EXE_circle-export"));
    command
        .args(["export", "--mongo-dump"])
        .arg(&dump)
        .arg("--out")
        .arg(dir.join(out))
        .args(["--passphrase", "env:PASS"])
        .args(extra)
        .env("PASS", PASSPHRASE)
        .env_remove("RUST_LOG");
    command
}

const PASSPHRASE: &str = "p'\"$@:/?#% wörd–密 long enough";

#[test]
fn stage_lines_are_silenced_by_q_and_written_as_json_lines_on_request() {
    let dir = tempfile::tempdir().unwrap();
    // By default: stage lines, `<binary>: …`, no timestamp.
    let (code, stdout, stderr) = run(&mut export(dir.path(), "a.tar.age", &[]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("circle-export: dumped")),
        "{stderr}"
    );
    assert!(stdout.contains("wrote"), "{stdout}");
    // -q: nothing on stderr; the result still on stdout.
    let (code, stdout, stderr) = run(&mut export(dir.path(), "b.tar.age", &["-q"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stderr, "", "-q leaves warnings and errors only");
    assert!(stdout.contains("wrote"), "{stdout}");
    // RUST_LOG=warn does the same.
    let (_, _, stderr) = run(export(dir.path(), "c.tar.age", &[]).env("RUST_LOG", "warn"));
    assert_eq!(stderr, "");
    // -v: each line starts with the time.
    let (_, _, stderr) = run(&mut export(dir.path(), "d.tar.age", &["-v"]));
    for line in stderr.lines() {
        assert!(
            line.starts_with("20") && line.contains("Z circle-export: "),
            "{line}"
        );
    }
    // --log-format json -vv (the flags also after the subcommand's own):
    // every line one object with a level and a message.
    let (code, _, stderr) = run(&mut export(
        dir.path(),
        "e.tar.age",
        &["--log-format", "json", "-vv"],
    ));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.lines().count() >= 2, "{stderr}");
    for line in stderr.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(value["level"].is_string(), "{line}");
        assert!(value["fields"]["message"].is_string(), "{line}");
        assert!(value["timestamp"].is_string(), "{line}");
    }
    // A RUST_LOG it cannot read is said, and the flags' levels used.
    let (code, _, stderr) =
        run(export(dir.path(), "f.tar.age", &[]).env("RUST_LOG", "circle_ha=loud"));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("RUST_LOG=\"circle_ha=loud\" is not read"),
        "{stderr}"
    );
    assert!(stderr.contains("circle-export: dumped"), "{stderr}");
    // Never the passphrase, whatever was asked.
    for extra in [&["-vv"][..], &["--log-format", "json", "-vv"]] {
        let mut command = export(dir.path(), "g.tar.age", extra);
        command.env("RUST_LOG", "trace");
        let (_, stdout, stderr) = run(&mut command);
        assert!(
            !stdout.contains(PASSPHRASE) && !stderr.contains(PASSPHRASE),
            "{stdout}{stderr}"
        );
        let _ = std::fs::remove_file(dir.path().join("g.tar.age"));
    }
}

#[test]
fn every_binary_takes_the_logging_flags() {
    for path in [
        env!("CARGO_BIN_EXE_circle-ha"),
        env!("CARGO_BIN_EXE_circle-export"),
        env!("CARGO_BIN_EXE_mongo-rs-setup"),
        env!("CARGO_BIN_EXE_mongo-backup"),
        env!("CARGO_BIN_EXE_pg-provision"),
        env!("CARGO_BIN_EXE_vault-transit"),
        env!("CARGO_BIN_EXE_services-userdata"),
    ] {
        let (code, stdout, _) = run(Command::new(path).arg("--help"));
        assert_eq!(code, 0);
        for flag in ["--quiet", "--verbose", "--log-format"] {
            assert!(stdout.contains(flag), "{path}: {flag}: {stdout}");
        }
    }
}
