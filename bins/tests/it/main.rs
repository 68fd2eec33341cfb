//! End-to-end tests of the `circle-ha` binary, run as an operator would.

use std::process::Command;

fn circle_ha() -> Command {
    Command::new(env!("CARGO_BIN_EXE_circle-ha"))
}

#[test]
fn demo_starts_every_lab_service_and_exits_zero() {
    let output = circle_ha().arg("demo").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    for phase in ["certificates", "PostgreSQL", "OpenBao", "AWS emulator"] {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("ok ") && l.contains(phase)),
            "phase {phase} is not green:\n{stderr}"
        );
    }
    assert!(stderr.contains("every service stopped"), "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    let output = circle_ha().arg("no-such-command").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
}
