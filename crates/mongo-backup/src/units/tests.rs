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

#[test]
fn the_member_credentials_failure_unit_and_recovery_reach_the_service() {
    let spec = UnitSpec {
        member: Some("mongo-2.internal:27017".to_owned()),
        environment_file: Some("/etc/circle-ha/backup.env".to_owned()),
        credentials: vec![(
            "mongo-admin".to_owned(),
            "/etc/circle-ha/creds/mongo-admin".to_owned(),
        )],
        on_failure: Some("page-oncall.service".to_owned()),
        ..UnitSpec::default()
    };
    let service = &render_units(&spec).unwrap()[0].1;
    for line in [
        "ExecStart=/usr/local/bin/mongo-backup snapshot --config /etc/circle-ha/ha.toml --member mongo-2.internal:27017\n",
        "ExecStopPost=/usr/local/bin/mongo-backup recover --config /etc/circle-ha/ha.toml --member mongo-2.internal:27017\n",
        "EnvironmentFile=/etc/circle-ha/backup.env\n",
        "LoadCredential=mongo-admin:/etc/circle-ha/creds/mongo-admin\n",
        "OnFailure=page-oncall.service\n",
    ] {
        assert!(service.contains(line), "{line}in:\n{service}");
    }
    for bad in [
        UnitSpec {
            member: Some("m:1 --any-member".to_owned()),
            ..UnitSpec::default()
        },
        UnitSpec {
            credentials: vec![("a/b".to_owned(), "/x".to_owned())],
            ..UnitSpec::default()
        },
        UnitSpec {
            environment_file: Some("backup.env".to_owned()),
            ..UnitSpec::default()
        },
    ] {
        assert!(render_units(&bad).is_err(), "{bad:?}");
    }
}
