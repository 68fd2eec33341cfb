//! `pg-provision` run as an operator would: a hand-written ha.toml, secrets
//! in the environment and in files, a real PostgreSQL over verify-full.

use std::path::{Path, PathBuf};
use std::process::Command;

use ha_lab::{LabPki, Postgres, PostgresOptions, Toolbox};
use secrecy::ExposeSecret as _;
use serde_json::Value;

use crate::run;

const HOSTILE: &str = "pa'ss\"wo$rd@:/?#%\\ `x` ünï–密";

struct Setup {
    _pki: LabPki,
    pg: Postgres,
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let pki = LabPki::new().unwrap();
        let pg = Postgres::start(
            &Toolbox::discover(std::env::vars_os()),
            &pki,
            PostgresOptions::default(),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let setup = Setup { _pki: pki, pg, dir };
        setup.write_config("");
        std::fs::write(setup.dir.path().join("app.pw"), format!("{HOSTILE}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(
            setup.dir.path().join("app.pw"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        setup
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("ha.toml")
    }

    /// Writes ha.toml; `extra` is appended inside [postgres].
    fn write_config(&self, extra: &str) {
        std::fs::write(
            self.config(),
            format!(
                "[postgres]\nhost = \"localhost\"\nhostaddr = \"127.0.0.1\"\nport = {}\n\
                 admin_user = \"{}\"\nadmin_password = \"env:TEST_PG_ADMIN_PASSWORD\"\n\
                 app_user = \"circle\"\napp_password = \"file:app.pw\"\n\
                 sslmode = \"verify-full\"\nca_file = \"{}\"\n{extra}",
                self.pg.port(),
                self.pg.superuser(),
                self.pg.ca_file().display()
            ),
        )
        .unwrap();
    }

    fn pg_provision(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pg-provision"));
        command.args(args).arg("--config").arg(self.config()).env(
            "TEST_PG_ADMIN_PASSWORD",
            self.pg.superuser_password().expose_secret(),
        );
        command
    }

    fn psql(&self, database: &str, sql: &str) -> String {
        let output = Command::new(self.pg.bin_dir().join("psql"))
            .args(["-X", "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env_clear()
            .envs(self.pg.libpq_env(database).unwrap())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn assert_no_secret(setup: &Setup, texts: &[&str]) {
    for text in texts {
        assert!(!text.contains(HOSTILE), "the app password leaked: {text}");
        assert!(
            !text.contains(setup.pg.superuser_password().expose_secret()),
            "the admin password leaked: {text}"
        );
    }
}

#[test]
fn apply_twice_then_verify_with_hostile_password() {
    let setup = Setup::new();
    let (code, stdout, stderr) = run(&mut setup.pg_provision(&["apply", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    let report = json(&stdout);
    assert_eq!(report["changed"], 18, "{report}");
    let actions = report["actions"].as_array().unwrap();
    assert_eq!(actions[0]["kind"], "create-role");
    assert_eq!(actions[0]["target"], "role circle");
    assert!(
        actions
            .iter()
            .any(|a| a["target"] == "extension pgcrypto in database circle")
    );
    assert_no_secret(&setup, &[&stdout, &stderr]);

    let (code, stdout, stderr) = run(&mut setup.pg_provision(&["apply", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json(&stdout)["changed"], 0);
    assert_eq!(json(&stdout)["actions"], Value::Array(vec![]));

    let (code, stdout, _) = run(&mut setup.pg_provision(&["apply"]));
    assert_eq!(code, 0);
    assert!(stdout.contains("nothing to do (changed: 0)"), "{stdout}");

    let (code, stdout, stderr) = run(&mut setup.pg_provision(&["verify", "--json"]));
    assert_eq!(code, 0, "{stderr}{stdout}");
    let report = json(&stdout);
    assert_eq!(report["healthy"], true);
    assert_eq!(report["databases"].as_array().unwrap().len(), 8);
    assert_no_secret(&setup, &[&stdout, &stderr]);

    // Someone drops an extension: verify names the database and exits 3.
    setup.psql("vms", "DROP EXTENSION \"uuid-ossp\"");
    let (code, stdout, stderr) = run(&mut setup.pg_provision(&["verify"]));
    assert_eq!(code, 3);
    assert!(
        stdout.contains("FAIL  vms: extension uuid-ossp is missing"),
        "{stdout}{stderr}"
    );

    let (code, stdout, _) = run(&mut setup.pg_provision(&["apply", "--json"]));
    assert_eq!(code, 0);
    assert_eq!(json(&stdout)["changed"], 1);
    assert_eq!(
        json(&stdout)["actions"][0]["target"],
        "extension uuid-ossp in database vms"
    );
}

#[test]
fn dry_run_lists_the_plan_and_changes_nothing() {
    let setup = Setup::new();
    let (code, stdout, stderr) = run(&mut setup.pg_provision(&["apply", "--dry-run", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    let report = json(&stdout);
    assert_eq!(report["changed"], 0);
    assert_eq!(report["planned"], 18);
    assert_eq!(report["dry_run"], true);
    let (code, stdout, _) = run(&mut setup.pg_provision(&["apply", "--dry-run"]));
    assert_eq!(code, 0);
    assert!(
        stdout.contains("would: CREATE ROLE \"circle\" LOGIN PASSWORD <redacted>"),
        "{stdout}"
    );
    assert_eq!(
        setup.psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname = 'circle'"
        ),
        "0"
    );
    assert_eq!(
        setup.psql(
            "postgres",
            "SELECT count(*) FROM pg_roles WHERE rolname = 'circle'"
        ),
        "0"
    );
}

#[test]
fn wrong_admin_password_and_wrong_ca_exit_1_and_change_nothing() {
    let setup = Setup::new();
    let (code, stdout, stderr) = run(setup
        .pg_provision(&["apply", "--json"])
        .env("TEST_PG_ADMIN_PASSWORD", "wrong-password-123"));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("cannot connect as postgres to database postgres on localhost:")
            && stderr.contains("password authentication failed"),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong-password-123") && !stdout.contains("wrong-password-123"));
    assert_eq!(json(&stdout)["exit_code"], 1);

    let other = LabPki::new().unwrap();
    let (code, _, stderr) = run(setup
        .pg_provision(&["apply"])
        .arg("--ca-file")
        .arg(other.ca_file()));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(
            "TLS: the certificate localhost presented (O=circle-ha lab, OU=hosts, CN=localhost"
        ),
        "{stderr}"
    );
    assert_eq!(
        setup.psql(
            "postgres",
            "SELECT count(*) FROM pg_roles WHERE rolname = 'circle'"
        ),
        "0"
    );
}

#[test]
fn configuration_problems_exit_2_all_at_once_before_connecting() {
    let setup = Setup::new();
    std::fs::write(
        setup.config(),
        "[postgres]\nsslmode = \"prefer\"\nadmin_password = \"hunter2\"\napp_password = \"env:\"\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run(&mut setup.pg_provision(&["apply", "--json"]));
    assert_eq!(code, 2, "{stderr}");
    for needle in [
        "[postgres].host is missing",
        "[postgres].sslmode \"prefer\"",
        "[postgres].admin_password must be a secret reference",
        "[postgres].app_password env: must be followed",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in {stderr}");
    }
    assert!(!stderr.contains("hunter2") && !stdout.contains("hunter2"));

    std::fs::write(setup.config(), "[postgres]\nhots = \"typo\"\n").unwrap();
    let (code, _, stderr) = run(&mut setup.pg_provision(&["apply"]));
    assert_eq!(code, 2);
    assert!(stderr.contains("[postgres].hots: unknown key"), "{stderr}");

    setup.write_config("");
    let (code, _, stderr) = run(setup
        .pg_provision(&["apply"])
        .env_remove("TEST_PG_ADMIN_PASSWORD"));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("[postgres].admin_password (env:TEST_PG_ADMIN_PASSWORD): environment variable TEST_PG_ADMIN_PASSWORD is not set"),
        "{stderr}"
    );

    let (code, _, stderr) = run(setup
        .pg_provision(&["apply"])
        .arg("--sslmode")
        .arg("verify-full")
        .arg("--ca-file")
        .arg(Path::new("/nonexistent/ca.pem")));
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent/ca.pem"), "{stderr}");
}
