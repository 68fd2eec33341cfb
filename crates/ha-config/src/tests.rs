use std::path::Path;

use ha_plan::ProblemKind;

use crate::HaConfig;

fn parse(text: &str) -> Result<HaConfig, ha_plan::Problems> {
    HaConfig::parse(text, Path::new("/etc/circle/ha.toml"))
}

#[test]
fn every_unknown_key_is_reported_with_its_path() {
    let problems = parse(
        "[pki]\ncolour = \"blue\"\n[mongo]\nmembers = [{ host = \"a:1\", prio = 2 }]\n[mystery]\n",
    )
    .unwrap_err();
    let mut keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["[mongo].members[0].prio", "[mystery]", "[pki].colour"]
    );
    assert!(problems.iter().all(|p| p.kind == ProblemKind::Invalid));
}

#[test]
fn a_syntax_error_names_the_place_but_never_the_text() {
    let problems = parse("[postgres]\nadmin_password = \"hunter2\n").unwrap_err();
    let text = problems.to_string();
    assert!(text.starts_with("/etc/circle/ha.toml line 2"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    let problems = parse("[postgres]\nport = \"s3cr3t-value\"\n").unwrap_err();
    assert!(!problems.to_string().contains("s3cr3t"), "{problems}");
    assert!(problems.to_string().contains("expected u16"), "{problems}");
}

#[test]
fn sections_report_every_problem_at_once_with_keys() {
    let config = parse(
        "[postgres]\nsslmode = \"prefer\"\nadmin_password = \"hunter2\"\n\
         [mongo]\nreplica_set = \"bad name\"\nmembers = [{ host = \"m:1\", votes = 2 }, { host = \"M:1\" }]\n\
         [vault]\naddress = \"vault:8200\"\n",
    )
    .unwrap();
    let problems = config.check().unwrap_err();
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    for key in [
        "[mongo].replica_set",
        "[mongo].members[0].votes",
        "[mongo].members[1].host",
        "[postgres].host",
        "[postgres].sslmode",
        "[postgres].admin_password",
        "[postgres].app_password",
        "[vault].address",
    ] {
        assert!(keys.contains(&key), "{key} not in {keys:?}");
    }
    assert!(!problems.to_string().contains("hunter2"));
    let duplicate = problems
        .iter()
        .find(|p| p.key == "[mongo].members[1].host")
        .unwrap();
    assert_eq!(duplicate.kind, ProblemKind::Conflict);
}

#[test]
fn relative_paths_are_relative_to_the_file() {
    let config = parse("[postgres]\nhost = \"pg\"\nsslmode = \"disable\"\n").unwrap();
    assert_eq!(
        config.path_of(Path::new("pki/ca.pem")),
        Path::new("/etc/circle/pki/ca.pem")
    );
}

#[test]
fn a_typo_at_load_comes_with_every_other_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ha.toml");
    std::fs::write(
        &path,
        "[pki]\ndir = \"pki\"\norganizational_unit = \"\"\ncolour = \"blue\"\n",
    )
    .unwrap();
    let problems = HaConfig::load(&path).unwrap_err();
    let text = problems.to_string();
    for needle in [
        "[pki].colour: unknown key",
        "[pki].organization is missing",
        "[pki].organizational_unit must be a non-empty string",
    ] {
        assert!(text.contains(needle), "{needle} not in {text}");
    }
    // Without a typo, load leaves each section to the command that uses it.
    std::fs::write(&path, "[pki]\ndir = \"pki\"\n").unwrap();
    let config = HaConfig::load(&path).unwrap();
    assert_eq!(config.pki().unwrap_err().len(), 2);
}

#[test]
fn plain_http_vault_needs_the_danger_opt_in_and_require_warns_every_run() {
    let config = parse("[vault]\naddress = \"http://vault:8200\"\n").unwrap();
    let problems = config.vault(false).unwrap_err();
    assert!(problems.to_string().contains("plain HTTP"), "{problems}");
    let config =
        parse("[vault]\naddress = \"http://vault:8200\"\ndanger_allow_plain_http = true\n")
            .unwrap();
    let settings = config.vault(false).unwrap();
    assert!(settings.warnings[0].contains("clear text"));

    let config = parse(
        "[postgres]\nhost = \"pg\"\nsslmode = \"require\"\nadmin_password = \"env:A\"\n\
         app_password = \"env:B\"\n",
    )
    .unwrap();
    let settings = config
        .postgres(&crate::PostgresOverrides::default())
        .unwrap();
    assert!(settings.warnings[0].contains("does not check the server's certificate"));
    for mode in ["prefer", "allow"] {
        let config = parse(&format!(
            "[postgres]\nhost = \"pg\"\nsslmode = \"{mode}\"\nadmin_password = \"env:A\"\n\
             app_password = \"env:B\"\n"
        ))
        .unwrap();
        assert!(
            config
                .postgres(&crate::PostgresOverrides::default())
                .is_err(),
            "{mode}"
        );
    }
}

#[test]
fn a_command_with_overrides_sees_its_section_problems_with_the_typos() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ha.toml");
    std::fs::write(&path, "[postgres]\nhots = \"pg\"\nsslmode = \"prefer\"\n").unwrap();
    let problems = HaConfig::load_with(&path, crate::Section::Postgres, |config| {
        config.postgres(&crate::PostgresOverrides::default())
    })
    .unwrap_err();
    let text = problems.to_string();
    for needle in [
        "[postgres].hots: unknown key",
        "[postgres].host is missing",
        "\"prefer\"",
    ] {
        assert!(text.contains(needle), "{needle} not in {text}");
    }
    // An override stands in for a missing key.
    std::fs::write(
        &path,
        "[postgres]\nsslmode = \"disable\"\nadmin_password = \"env:A\"\napp_password = \"env:B\"\n",
    )
    .unwrap();
    let overrides = crate::PostgresOverrides {
        host: Some("pg.internal".to_owned()),
        ..crate::PostgresOverrides::default()
    };
    let (_, settings) =
        HaConfig::load_with(&path, crate::Section::Postgres, |c| c.postgres(&overrides)).unwrap();
    assert_eq!(settings.server.host, "pg.internal");
}

#[test]
fn postgres_logins_resolve_both_passwords_or_name_every_missing_one() {
    use secrecy::ExposeSecret as _;
    let config = parse(
        "[postgres]\nhost = \"pg\"\nsslmode = \"disable\"\n\
         admin_password = \"env:PG_ADMIN\"\napp_password = \"env:PG_APP\"\n",
    )
    .unwrap();
    let settings = config.postgres(&Default::default()).unwrap();
    let nothing = |_: &str| None;
    let problems = config
        .postgres_logins(&settings, &nothing, &mut Vec::new())
        .unwrap_err();
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        ["[postgres].admin_password", "[postgres].app_password"]
    );
    let both = |name: &str| Some(format!("{name}-secret"));
    let (admin, app) = config
        .postgres_logins(&settings, &both, &mut Vec::new())
        .unwrap();
    assert_eq!(admin.password.expose_secret(), "PG_ADMIN-secret");
    assert_eq!(app.password.expose_secret(), "PG_APP-secret");
    assert_eq!(app.user, settings.app_user);
    assert_eq!(admin.user, settings.admin_user);
}

#[test]
fn the_example_configuration_checks_clean_and_its_backup_section_reads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ha.toml");
    let config = HaConfig::load(&path).unwrap();
    config.check().unwrap();
    let backup = config.backup(None).unwrap();
    assert_eq!(backup.spec.member, "mongo-3.internal:27017");
    assert_eq!(
        backup.spec.db_path.as_deref(),
        Some(Path::new("/mongo/data"))
    );
    assert_eq!(
        backup.store,
        crate::BackupStore::Ebs {
            volumes: vec!["vol-0123456789abcdef0".to_owned()],
            region: "us-east-1".to_owned()
        }
    );
    assert_eq!(backup.commands.stop, ["systemctl", "stop", "mongod"]);
}

#[test]
fn backup_problems_come_together_with_their_keys() {
    let config = parse(
        "[mongo]\nreplica_set = \"circle\"\nmembers = [{ host = \"m1:27017\" }]\n\
         [backup]\nmember = \"m9:27017\"\nvolumes = [\"vol-xyz\"]\nkeep_last = 0\n\
         stop_command = []\nlease = 5\n",
    )
    .unwrap();
    let problems = config.backup(None).unwrap_err();
    let mut keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "[backup].aws_region",
            "[backup].keep_last",
            "[backup].lease",
            "[backup].member",
            "[backup].stop_command",
            "[backup].volumes[0]",
        ]
    );
    // --member overrides the file.
    let problems = config.backup(Some("m1:27017")).unwrap_err();
    assert!(problems.iter().all(|p| p.key != "[backup].member"));
}

#[test]
fn parser_messages_never_show_any_part_of_a_quoted_value() {
    let leaked =
        super::redact_quoted(r#"invalid type: string "p\"ass\\wörd\"tail", expected a table"#);
    assert_eq!(leaked, r#"invalid type: string "…", expected a table"#);
    assert_eq!(super::redact_quoted(r#"a "x" b "y""#), r#"a "…" b "…""#);
    assert_eq!(super::redact_quoted(r#"cut "secret"#), r#"cut "…""#);
    // Through the loader: a secret literal where a table belongs.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ha.toml");
    std::fs::write(
        &path,
        "[postgres]\nhost = \"pg\"\nadmin_password = { x = 1 }\n[mongo]\nusers = \"s3cr\\\"et-tail\"\n",
    )
    .unwrap();
    let err = crate::HaConfig::load(&path).err().unwrap().to_string();
    assert!(!err.contains("et-tail") && !err.contains("s3cr"), "{err}");
}

#[test]
fn export_pg_dump_command_is_an_argv_without_empty_words() {
    let config =
        parse("[export]\npg_dump_command = [\"docker\", \"exec\", \"-i\", \"-e\", \"PGPASSWORD\", \"postgres\"]\n")
            .unwrap();
    assert_eq!(
        config.export_pg_dump_command().unwrap().unwrap(),
        ["docker", "exec", "-i", "-e", "PGPASSWORD", "postgres"]
    );
    assert_eq!(parse("").unwrap().export_pg_dump_command().unwrap(), None);
    for bad in ["[]", "[\"docker\", \"\"]", "[\" \"]"] {
        let config = parse(&format!("[export]\npg_dump_command = {bad}\n")).unwrap();
        let problems = config.export_pg_dump_command().unwrap_err();
        assert_eq!(
            problems.iter().next().unwrap().key,
            "[export].pg_dump_command",
            "{bad}"
        );
        assert!(config.check().is_err(), "{bad}");
    }
    let problems = parse("[export]\npg_dump = [\"x\"]\n").unwrap_err();
    assert_eq!(problems.iter().next().unwrap().key, "[export].pg_dump");
}

#[test]
fn vault_addr_and_cacert_stand_between_the_flags_and_the_file_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let pki = ha_tls::Ca::generate(
        &ha_tls::CaSpec::new("Test", "Vault"),
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    std::fs::write(&ca, pki.cert_pem()).unwrap();
    let config = parse("[vault]\naddress = \"https://old-vault:8200\"\n").unwrap();
    let env = |name: &str| match name {
        "VAULT_ADDR" => Some("https://new-vault:8200/".to_owned()),
        "VAULT_CACERT" => Some(ca.display().to_string()),
        _ => None,
    };
    let settings = config.vault_with_env(false, &env).unwrap();
    assert_eq!(settings.address, "https://new-vault:8200");
    assert!(
        settings.warnings[0].contains(
            "VAULT_ADDR=https://new-vault:8200/ overrides [vault].address https://old-vault:8200"
        ),
        "{:?}",
        settings.warnings
    );
    // The same address: nothing to say. BAO_ADDR when VAULT_ADDR is unset.
    let same = |name: &str| (name == "BAO_ADDR").then(|| "https://old-vault:8200".to_owned());
    let problems = config.vault_with_env(false, &same).unwrap_err();
    assert!(
        problems.to_string().contains("[vault].ca_file"),
        "{problems}"
    );
    // A relative VAULT_CACERT is refused under its own name.
    let relative = |name: &str| (name == "VAULT_CACERT").then(|| "ca.pem".to_owned());
    let problems = config.vault_with_env(false, &relative).unwrap_err();
    assert!(problems.to_string().contains("VAULT_CACERT"), "{problems}");
}
