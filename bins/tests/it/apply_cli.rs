//! `circle-ha apply` over a whole lab: three TLS MongoDB members,
//! PostgreSQL, OpenBao (initialised and unsealed by vault-transit, as the
//! operator does first) and the Services bundle — planned, applied,
//! applied again (changed 0), narrowed with --only, and stopped by a
//! sealed Vault with a message naming it.

use std::path::Path;
use std::process::Command;

use ha_lab::{
    LabPki, MongoMember, MongoMemberOptions, Moto, OpenBao, Postgres, PostgresOptions, Toolbox,
};
use secrecy::ExposeSecret as _;
use serde_json::Value;

use ha_lab::{LAB_SECRETS, LabHosts, lab_ha_toml};

use crate::{circle_ha, run, run_json};

/// `[services].s3_bucket` of `lab_ha_toml`.
const LAB_BUCKET: &str = "circleci-ha-config";

const HOSTILE: &str = "p'\"$@:/?#%\\ `x` wörd–密";

struct Lab {
    pki: LabPki,
    members: Vec<MongoMember>,
    pg: Postgres,
    _bao: OpenBao,
    /// OpenBao's address.
    bao_addr: String,
    /// The AWS emulator: the bucket the encryption keys are backed up to.
    moto: Moto,
    dir: tempfile::TempDir,
}

impl Lab {
    fn start() -> Lab {
        let tools = Toolbox::discover(std::env::vars_os());
        let pki = LabPki::new().unwrap();
        let members: Vec<MongoMember> = (0..3)
            .map(|_| {
                MongoMember::start(&tools, MongoMemberOptions::secure(&pki, "circle"))
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        let pg = Postgres::start(&tools, &pki, PostgresOptions::default()).unwrap();
        let bao = OpenBao::start(&tools, &pki).unwrap();
        let moto = Moto::start(&tools).unwrap_or_else(|e| panic!("{e}"));
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("license.rli"), "license-bytes\n").unwrap();
        std::fs::create_dir_all(d.join("circle-data")).unwrap();
        std::fs::write(d.join("circle-data/aes.key"), "aes-key-bytes").unwrap();
        let hosts: Vec<String> = members.iter().map(MongoMember::host).collect();
        std::fs::write(
            d.join("ha.toml"),
            lab_ha_toml(&LabHosts {
                members: &hosts,
                ca_file: &pki.ca_file(),
                pg_port: pg.port(),
                pg_admin: pg.superuser(),
                vault_address: &bao.addr(),
            }),
        )
        .unwrap();
        Lab {
            pki,
            members,
            pg,
            bao_addr: bao.addr(),
            _bao: bao,
            moto,
            dir,
        }
    }

    fn env(&self, command: &mut Command) {
        command
            .current_dir(self.dir.path())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test");
        for name in LAB_SECRETS {
            let value = if name == "PG_ADMIN_PASSWORD" {
                self.pg.superuser_password().expose_secret().to_owned()
            } else {
                format!("{HOSTILE}-{name}")
            };
            command.env(name, value);
        }
    }

    fn vault_transit(&self, args: &[&str]) -> (i32, String, String) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vault-transit"));
        command.args(args).args(["--config", "ha.toml"]);
        self.env(&mut command);
        run(&mut command)
    }

    fn apply(&self, args: &[&str]) -> (i32, Value, String) {
        self.circle_ha("apply", args)
    }

    /// `status`, the key backup read from the emulator and compared with
    /// the lab's keys directory.
    fn status(&self) -> (i32, Value, String) {
        let endpoint = self.moto.endpoint();
        self.circle_ha(
            "status",
            &["--endpoint-url", &endpoint, "--keys-dir", "circle-data"],
        )
    }

    fn circle_ha(&self, command_name: &str, args: &[&str]) -> (i32, Value, String) {
        let mut command = circle_ha();
        command
            .arg(command_name)
            .args(args)
            .args(["--config", "ha.toml", "--json"]);
        self.env(&mut command);
        run_json(&mut command)
    }
}

/// The runbook `ha.toml` describes, built from typed values alone (no
/// `ha.toml`): what a program linking the crates writes. The Services
/// bundle is left out here (`services_userdata` renders one from typed
/// values).
fn typed_runbook(lab: &Lab, hosts: &[String], ca_file: &Path) -> ha_runbook::Runbook {
    use secrecy::SecretString;
    let secret = |name: &str| SecretString::from(format!("{HOSTILE}-{name}"));
    let spec = crate::typed_set(hosts, ca_file, |role| {
        secret(match role {
            "site_admin" => "MONGO_SITE_ADMIN_PASSWORD",
            "admin" => "MONGO_ADMIN_PASSWORD",
            _ => "MONGO_APP_PASSWORD",
        })
    });
    let ca_pem = std::fs::read(ca_file).unwrap();
    let server = pg_provision::Server {
        host: "localhost".to_owned(),
        hostaddr: Some([127, 0, 0, 1].into()),
        port: lab.pg.port(),
        sslmode: pg_provision::SslMode::VerifyFull,
        ca: Some((ca_pem.clone(), ca_file.display().to_string())),
        connect_timeout: std::time::Duration::from_secs(10),
    };
    let admin = pg_provision::Login {
        user: lab.pg.superuser().to_owned(),
        password: lab.pg.superuser_password().clone(),
    };
    let app = pg_provision::Login {
        user: "circle".to_owned(),
        password: secret("PG_APP_PASSWORD"),
    };
    let root_token =
        std::fs::read_to_string(lab.dir.path().join("secrets/vault/root-token")).unwrap();
    let mut runbook = ha_runbook::Runbook::new();
    runbook.mongo = Some(ha_runbook::MongoSetup::new(spec, Vec::new()).unwrap());
    runbook.postgres = Some(ha_runbook::PostgresSetup::new(
        server,
        Some(admin),
        "postgres",
        app,
        pg_provision::default_databases(),
    ));
    runbook.vault = Some(ha_runbook::VaultSetup::new(
        lab.bao_addr.clone(),
        vault_transit::Trust::Ca {
            pem: ca_pem,
            path: ca_file.display().to_string(),
        },
        Some(SecretString::from(root_token.trim().to_owned())),
        lab.dir.path().join("secrets/vault/circleci-token"),
        vault_transit::ConfigureSpec::new("transit", "1h"),
    ));
    runbook
}

/// Each concern's actions in `circle-ha apply --json`'s combined report.
fn actions_of(report: &Value, concern: &str) -> Vec<Value> {
    report["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["concern"] == concern)
        .map(|a| {
            let mut a = a.clone();
            a.as_object_mut().unwrap().remove("concern");
            a
        })
        .collect()
}

fn concern<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["concerns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["concern"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

fn exists(dir: &Path, name: &str) -> bool {
    dir.join(name).exists()
}

#[test]
fn apply_plans_applies_is_a_no_op_the_second_time_and_stops_at_a_sealed_vault() {
    let lab = Lab::start();
    let (code, _, stderr) = lab.vault_transit(&["init"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = lab.vault_transit(&["unseal"]);
    assert_eq!(code, 0, "{stderr}");

    let (code, plan, stderr) = lab.apply(&["--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(plan["changed"], 0, "{plan}");
    for name in ["mongo", "postgres", "vault", "userdata"] {
        assert!(
            concern(&plan, name)["planned"].as_u64().unwrap() > 0,
            "{name}: {plan}"
        );
    }
    assert_eq!(concern(&plan, "pki")["skipped"], "not configured");

    // A program linking the crates, from typed values alone, gets the same
    // plan for every concern it sets up.
    let hosts: Vec<String> = lab.members.iter().map(MongoMember::host).collect();
    let runbook = typed_runbook(&lab, &hosts, &lab.pki.ca_file());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let library = runtime
        .block_on(ha_runbook::apply(&runbook, true, &ha_plan::no_progress))
        .unwrap();
    let library = serde_json::to_value(&library).unwrap();
    for name in ["mongo", "postgres", "vault"] {
        assert_eq!(
            actions_of(&library, name),
            actions_of(&plan, name),
            "{name}: the library's plan differs from the CLI's"
        );
        assert_eq!(concern(&library, name), concern(&plan, name), "{name}");
    }
    assert_eq!(concern(&library, "userdata")["skipped"], "not configured");
    assert!(!exists(lab.dir.path(), "bundle"), "a dry run rendered");
    assert!(
        !exists(lab.dir.path(), "secrets/vault/circleci-token"),
        "a dry run minted a token"
    );

    let (code, applied, stderr) = lab.apply(&[]);
    assert_eq!(code, 0, "{stderr}");
    for name in ["mongo", "postgres", "vault", "userdata"] {
        assert!(
            concern(&applied, name)["changed"].as_u64().unwrap() > 0,
            "{name}: {applied}"
        );
    }
    assert_eq!(
        applied["changed"].as_u64(),
        applied["planned"].as_u64(),
        "{applied}"
    );
    assert!(exists(lab.dir.path(), "bundle/userdata.sh"));

    let (code, again, stderr) = lab.apply(&[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(again["changed"], 0, "second apply: {again}");

    // What the bundle's URIs let the app user do is checked on the
    // published bundle by the end-to-end test (tests/tests/runbook.rs).

    // Status checks the encryption keys' stored copy too: none yet.
    let (code, unsaved, _) = lab.status();
    assert_eq!(code, 3, "{unsaved}");
    assert_eq!(concern(&unsaved, "keys")["healthy"], false, "{unsaved}");
    assert_eq!(concern(&unsaved, "vault")["healthy"], true, "{unsaved}");
    runtime.block_on(async {
        let s3 = lab.moto.s3_client();
        s3.create_bucket().bucket(LAB_BUCKET).send().await.unwrap();
    });
    let endpoint = lab.moto.endpoint();
    let (code, _, stderr) = lab.circle_ha(
        "keys",
        &[
            "backup",
            "--from",
            "circle-data",
            "--endpoint-url",
            &endpoint,
        ],
    );
    assert_eq!(code, 0, "{stderr}");

    let (code, healthy, stderr) = lab.status();
    assert_eq!(code, 0, "{healthy}\n{stderr}");
    assert_eq!(
        healthy["concerns"].as_array().unwrap().len(),
        5,
        "{healthy}"
    );

    // A hand-edited bundle: status names it, apply puts it back.
    std::fs::write(lab.dir.path().join("bundle/settings.conf"), "{}").unwrap();
    let (code, stale, _) = lab.status();
    assert_eq!(code, 3, "{stale}");
    assert_eq!(concern(&stale, "userdata")["healthy"], false, "{stale}");
    assert_eq!(concern(&stale, "mongo")["healthy"], true, "{stale}");
    let (code, fixed, stderr) = lab.apply(&["--only", "userdata"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(fixed["changed"], 1, "{fixed}");

    let (code, only, stderr) = lab.apply(&["--only", "postgres"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(only["changed"], 0, "{only}");
    assert_eq!(concern(&only, "mongo")["skipped"], "not selected");
    assert_eq!(concern(&only, "postgres")["planned"], 0);

    let (code, _, stderr) = lab.apply(&["--only", "nonsense"]);
    assert_eq!(code, 2, "{stderr}");

    // A sealed Vault: mongo and postgres finish, vault stops the run and
    // is named, userdata does not run.
    let (code, _, stderr) = lab.vault_transit(&["seal"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, sealed, _) = lab.status();
    assert_eq!(code, 3, "{sealed}");
    assert_eq!(concern(&sealed, "vault")["healthy"], false, "{sealed}");
    assert_eq!(concern(&sealed, "postgres")["healthy"], true, "{sealed}");
    let (code, failed, stderr) = lab.apply(&[]);
    assert_eq!(code, 1, "{failed}");
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("apply stopped at vault ([vault])")
            && error.contains("finished mongo, postgres")
            && error.contains("not run userdata"),
        "{error}\n{stderr}"
    );
}
