//! The gate's test step: every test target built once by cargo (`cargo test
//! --no-run`), then the test binaries and the doctests run several at a
//! time.
//!
//! `cargo test` runs one test binary after another. Many of ours spend
//! most of their time waiting — a server starting, an election, a seal —
//! so the two cores sat a third idle while one binary waited. Here up to
//! [`JOBS`] binaries run at once, longest first, each as cargo would run
//! it (in its package's directory, its default test threads). A binary's
//! output is kept and shown whole when it fails, so failures read as they
//! do under `cargo test`; when every binary passes, one line per binary
//! says how many tests passed and how long it took.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use crate::json::Json;

/// How many test binaries run at once.
pub(crate) const JOBS: usize = 3;

/// The binaries known to take longest, started first so that the pool
/// does not end waiting on one of them (package directory, target name).
const LONGEST_FIRST: &[(&str, &str)] = &[
    ("bins", "it"),
    ("crates/mongo-sim", "it"),
    ("crates/circle-export", "it"),
    ("crates/vault-transit", "it"),
    ("tests", "runbook"),
    ("", "doctests"),
    ("crates/pg-provision", "it"),
    ("demo", "it"),
    ("crates/mongo-rs-setup", "it"),
];

/// One thing to run: a test binary, or the doctests.
#[derive(Clone, Debug)]
pub(crate) struct Job {
    /// `<package dir>/<target>`, for the output.
    pub(crate) label: String,
    /// The program and its arguments.
    pub(crate) argv: Vec<String>,
    /// Where it runs (the package's directory, as cargo runs tests).
    pub(crate) dir: PathBuf,
}

/// Builds every test target of the workspace and returns one job per test
/// binary, plus one for the doctests.
pub(crate) fn build(root: &Path, cargo: &OsStr, path: &OsStr) -> Result<Vec<Job>, String> {
    let output = Command::new(cargo)
        .args([
            "test",
            "--workspace",
            "--locked",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(root)
        .env("PATH", path)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!("building the tests failed ({})", output.status));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut jobs = jobs_of(&text, root)?;
    jobs.push(Job {
        label: "doctests".to_owned(),
        argv: vec![
            cargo.to_string_lossy().into_owned(),
            "test".to_owned(),
            "--workspace".to_owned(),
            "--locked".to_owned(),
            "--doc".to_owned(),
        ],
        dir: root.to_path_buf(),
    });
    order(&mut jobs, root);
    Ok(jobs)
}

/// The test binaries in cargo's JSON messages (one message per line).
fn jobs_of(messages: &str, root: &Path) -> Result<Vec<Job>, String> {
    let mut jobs = Vec::new();
    for line in messages.lines().filter(|l| l.starts_with('{')) {
        let message = Json::parse(line)?;
        if message.get("reason").and_then(Json::as_str) != Some("compiler-artifact") {
            continue;
        }
        let is_test = message
            .get("profile")
            .and_then(|p| p.get("test"))
            .is_some_and(|t| *t == Json::Bool(true));
        let Some(executable) = message.get("executable").and_then(Json::as_str) else {
            continue;
        };
        if !is_test {
            continue;
        }
        let manifest = message
            .get("manifest_path")
            .and_then(Json::as_str)
            .ok_or("a test artifact without manifest_path")?;
        let dir = Path::new(manifest)
            .parent()
            .ok_or("a manifest path without a directory")?;
        let target = message
            .get("target")
            .and_then(|t| t.get("name"))
            .and_then(Json::as_str)
            .unwrap_or("?");
        let package = dir.strip_prefix(root).unwrap_or(dir).display().to_string();
        jobs.push(Job {
            label: format!("{package}/{target}"),
            argv: vec![executable.to_owned()],
            dir: dir.to_path_buf(),
        });
    }
    Ok(jobs)
}

/// Longest first ([`LONGEST_FIRST`]), the rest in cargo's order.
fn order(jobs: &mut [Job], root: &Path) {
    let rank = |job: &Job| {
        LONGEST_FIRST
            .iter()
            .position(|(dir, target)| {
                let dir = if dir.is_empty() {
                    root.to_path_buf()
                } else {
                    root.join(dir)
                };
                job.dir == dir && job.label.ends_with(&format!("/{target}"))
                    || (job.label == *target)
            })
            .unwrap_or(LONGEST_FIRST.len())
    };
    jobs.sort_by_key(rank);
}

/// What one job did.
#[derive(Clone, Debug)]
pub(crate) struct Outcome {
    /// The job's label.
    pub(crate) label: String,
    /// Whether it passed.
    pub(crate) passed: bool,
    /// Tests passed, from libtest's `test result:` lines.
    pub(crate) tests: u64,
}

/// Runs `jobs`, [`JOBS`] at a time, with `path` as `PATH`; prints each
/// job's line as it ends (its whole output too when it failed). Every job
/// runs even after one failed, so one run shows every failure.
pub(crate) fn run(jobs: Vec<Job>, path: &OsStr) -> Vec<Outcome> {
    let queue = Arc::new(Mutex::new(jobs.into_iter().collect::<VecDeque<_>>()));
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..JOBS)
        .map(|_| {
            let queue = Arc::clone(&queue);
            let outcomes = Arc::clone(&outcomes);
            let path = path.to_owned();
            thread::spawn(move || {
                // The guard is dropped inside `and_then`: the queue is
                // locked only while a job is taken.
                while let Some(job) = queue.lock().ok().and_then(|mut q| q.pop_front()) {
                    let outcome = run_one(&job, &path);
                    if let Ok(mut all) = outcomes.lock() {
                        all.push(outcome);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
    Arc::try_unwrap(outcomes)
        .ok()
        .and_then(|m| m.into_inner().ok())
        .unwrap_or_default()
}

fn run_one(job: &Job, path: &OsStr) -> Outcome {
    let started = Instant::now();
    let output = Command::new(&job.argv[0])
        .args(&job.argv[1..])
        .current_dir(&job.dir)
        .env("PATH", path)
        .stdin(Stdio::null())
        .output();
    let seconds = started.elapsed().as_secs_f64();
    let (passed, text) = match output {
        Ok(out) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            (out.status.success(), text)
        }
        Err(e) => (false, format!("cannot run {}: {e}", job.argv[0])),
    };
    let tests = passed_tests(&text);
    if passed {
        eprintln!(
            "xtask: ok     {:<32} {tests:>4} passed  {seconds:>5.0} s",
            job.label
        );
    } else {
        eprintln!(
            "xtask: FAILED {} after {seconds:.0} s; its output:\n{text}\nxtask: (end of {}'s output)",
            job.label, job.label
        );
    }
    Outcome {
        label: job.label.clone(),
        passed,
        tests,
    }
}

/// The sum of libtest's `test result: ok. N passed; …` counts in `text`.
fn passed_tests(text: &str) -> u64 {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("test result: "))
        .filter_map(|rest| {
            let (_, after) = rest.split_once(". ")?;
            after.split_once(" passed")?.0.trim().parse::<u64>().ok()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_libtest_says_passed() {
        let text = "running 3 tests\n...\ntest result: ok. 3 passed; 0 failed; 0 ignored; \
                    0 measured; 0 filtered out; finished in 0.01s\n\n   Doc-tests x\n\
                    test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured\n\
                    test result: FAILED. 4 passed; 1 failed; 0 ignored\n";
        assert_eq!(passed_tests(text), 19);
        assert_eq!(passed_tests("no tests here"), 0);
    }

    #[test]
    fn reads_test_binaries_from_cargo_messages_and_puts_the_longest_first() {
        let root = Path::new("/w");
        let messages = [
            r#"{"reason":"compiler-artifact","manifest_path":"/w/crates/ha-tls/Cargo.toml","target":{"name":"it"},"profile":{"test":true},"executable":"/w/target/debug/deps/it-1"}"#,
            r#"{"reason":"compiler-artifact","manifest_path":"/w/bins/Cargo.toml","target":{"name":"circle-ha"},"profile":{"test":false},"executable":"/w/target/debug/circle-ha"}"#,
            r#"{"reason":"compiler-artifact","manifest_path":"/w/bins/Cargo.toml","target":{"name":"it"},"profile":{"test":true},"executable":"/w/target/debug/deps/it-2"}"#,
            r#"{"reason":"compiler-artifact","manifest_path":"/w/crates/ha-plan/Cargo.toml","target":{"name":"ha_plan"},"profile":{"test":false},"executable":null}"#,
            r#"{"reason":"build-finished","success":true}"#,
        ]
        .join("\n");
        let mut jobs = jobs_of(&messages, root).unwrap();
        // Only test executables; a binary target is built, not run.
        let labels: Vec<&str> = jobs.iter().map(|j| j.label.as_str()).collect();
        assert_eq!(labels, ["crates/ha-tls/it", "bins/it"]);
        order(&mut jobs, root);
        assert_eq!(jobs[0].label, "bins/it");
        assert_eq!(jobs[0].dir, Path::new("/w/bins"));
        assert_eq!(jobs[0].argv, ["/w/target/debug/deps/it-2"]);
    }
}
