use super::{UnitSpec, render_units};

#[test]
fn the_service_runs_snapshot_with_the_config_and_counts_a_refusal_as_success() {
    let units = render_units(&UnitSpec::default()).unwrap();
    let names: Vec<&str> = units.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["mongo-backup.service", "mongo-backup.timer"]);
    let service = &units[0].1;
    assert!(service.contains(
        "ExecStart=/usr/local/bin/mongo-backup snapshot --config /etc/circle-ha/ha.toml\n"
    ));
    assert!(service.contains("SuccessExitStatus=3\n"));
    let timer = &units[1].1;
    assert!(timer.contains("OnCalendar=*-*-* 03:00:00\n") && timer.contains("Persistent=true"));
}

#[test]
fn values_systemd_would_read_differently_are_refused() {
    for bad in [
        UnitSpec {
            config: "/etc/ha.toml\nExecStartPre=/bin/rm".to_owned(),
            ..UnitSpec::default()
        },
        UnitSpec {
            binary: "/usr/bin/mongo backup".to_owned(),
            ..UnitSpec::default()
        },
        UnitSpec {
            on_calendar: "daily %n".to_owned(),
            ..UnitSpec::default()
        },
        UnitSpec {
            config: "ha.toml".to_owned(),
            ..UnitSpec::default()
        },
    ] {
        assert!(render_units(&bad).is_err(), "{bad:?}");
    }
}
