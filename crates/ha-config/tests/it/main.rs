//! ha-config against files on disk: secret references resolved from a
//! lookup and from files, loose modes warned about, each section turned
//! into its concern's typed input.

use std::os::unix::fs::PermissionsExt as _;

use secrecy::ExposeSecret as _;

fn write(dir: &std::path::Path, name: &str, text: &str, mode: u32) {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

const HOSTILE: &str = "p'\"$@:/?#%ü";

#[test]
fn secrets_resolve_from_the_lookup_and_files_and_loose_files_warn() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "admin-pw", &format!("{HOSTILE}\n"), 0o644);
    write(
        dir.path(),
        "ha.toml",
        "[postgres]\nhost = \"pg.internal\"\nsslmode = \"disable\"\n\
         admin_password = \"file:admin-pw\"\napp_password = \"env:T_APP_PW\"\n",
        0o600,
    );
    let config = ha_config::HaConfig::load(&dir.path().join("ha.toml")).unwrap();
    let settings = config
        .postgres(&ha_config::PostgresOverrides::default())
        .unwrap();
    let env = |name: &str| (name == "T_APP_PW").then(|| HOSTILE.to_owned());
    let mut warnings = Vec::new();
    let admin = config
        .resolve(
            "[postgres].admin_password",
            &settings.admin_password,
            &env,
            &mut warnings,
        )
        .unwrap();
    assert_eq!(admin.expose_secret(), HOSTILE);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("chmod 600"), "{warnings:?}");
    let app = config
        .resolve(
            "[postgres].app_password",
            &settings.app_password,
            &env,
            &mut warnings,
        )
        .unwrap();
    assert_eq!(app.expose_secret(), HOSTILE);

    let nobody = |_: &str| None;
    let problem = config
        .resolve(
            "[postgres].app_password",
            &settings.app_password,
            &nobody,
            &mut warnings,
        )
        .unwrap_err();
    let problem = problem.iter().next().unwrap();
    assert_eq!(problem.key, "[postgres].app_password");
    assert!(
        problem.to_string().contains("T_APP_PW is not set"),
        "{problem}"
    );
}

#[test]
fn restore_targets_use_the_checked_sslmode_and_every_member() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "ha.toml",
        "[mongo]\nreplica_set = \"circle\"\nmembers = [{ host = \"m1:27017\" }, { host = \"m2:27017\" }]\n\
         users.admin = { password = \"env:T_ADMIN\" }\n\
         [postgres]\nhost = \"pg\"\nsslmode = \"require\"\nadmin_password = \"env:T_ADMIN\"\n\
         app_password = \"env:T_ADMIN\"\n",
        0o600,
    );
    let config = ha_config::HaConfig::load(&dir.path().join("ha.toml")).unwrap();
    let env = |_: &str| Some(HOSTILE.to_owned());
    let mut warnings = Vec::new();
    let targets = config.restore_targets(&env, &mut warnings).unwrap();
    let mongo = targets.mongo.unwrap();
    assert_eq!(mongo.hosts, ["m1:27017", "m2:27017"]);
    assert_eq!(mongo.user, "circle-admin");
    assert!(!format!("{mongo:?}").contains(HOSTILE));
    let pg = targets.postgres.unwrap();
    assert_eq!(pg.user, "circle");
    assert!(
        pg.params
            .contains(&("sslmode".to_owned(), "require".to_owned()))
    );

    // A member that does not parse is reported, not dropped.
    write(
        dir.path(),
        "ha.toml",
        "[mongo]\nreplica_set = \"circle\"\nmembers = [{ host = \"m1\" }]\n\
         users.admin = { password = \"env:T_ADMIN\" }\n",
        0o600,
    );
    let config = ha_config::HaConfig::load(&dir.path().join("ha.toml")).unwrap();
    let problems = config.restore_targets(&env, &mut warnings).unwrap_err();
    assert_eq!(
        problems.iter().next().unwrap().key,
        "[mongo].members[0].host"
    );
}
