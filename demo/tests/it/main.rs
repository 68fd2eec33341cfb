//! The demo binary, run as a person would: every phase green, everything
//! removed at the end.

use std::process::Command;

#[test]
fn demo_starts_every_lab_service_and_exits_zero() {
    let output = Command::new(env!("CARGO_BIN_EXE_circle-ha-demo"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    for phase in [
        "certificates",
        "PostgreSQL",
        "OpenBao",
        "AWS emulator",
        "MongoDB members",
        "ha.toml for the lab",
        "Vault init + unseal",
        "apply (every concern",
        "apply again (changed: 0)",
        "old machine seeded",
        "export + restore (circle-export)",
        "cutover: final pass after changes",
        "contexts readable on the new Vault",
        "bundle published",
        "encryption keys backed up and verified",
        "status (circle-ha)",
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("ok ") && l.contains(phase)),
            "phase {phase} is not green:\n{stderr}"
        );
    }
    // Status checked the key backup the phase before stored.
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("status (circle-ha)") && l.contains(", keys")),
        "{stderr}"
    );
    // The old machine is the old machine: MongoDB 3.6, read by the
    // old-server reader.
    assert!(
        stderr.contains("MongoDB 3.6.6 read by the old-server reader"),
        "{stderr}"
    );
    // The contexts service's key came over from the old Vault 0.7.
    assert!(
        stderr.contains("3 of 3 stored context secrets decrypt"),
        "{stderr}"
    );
    assert!(stderr.contains("every service stopped"), "{stderr}");
}
