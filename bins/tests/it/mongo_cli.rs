//! `mongo-rs-setup` run as an operator would: a hand-written ha.toml with
//! hostile passwords in the environment, three TLS members with x509
//! member authentication (mongo-sim, or real mongod when MONGOD_BIN is set).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ha_lab::{LabPki, MongoImpl, MongoMember, MongoMemberOptions, Toolbox};
use serde_json::Value;

use ha_lab::members_toml;

use crate::run;

const HOSTILE: &str = "p'\"$@:/?#%\\ `x` wörd–密";

struct Set {
    pki: LabPki,
    members: Vec<MongoMember>,
    dir: tempfile::TempDir,
}

fn secure(pki: &LabPki) -> MongoMemberOptions {
    MongoMemberOptions::secure(pki, "circle")
}

impl Set {
    fn start() -> Set {
        let pki = LabPki::new().unwrap();
        let tools = Toolbox::discover(std::env::vars_os());
        let members = (0..3)
            .map(|_| MongoMember::start(&tools, secure(&pki)).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let set = Set {
            pki,
            members,
            dir: tempfile::tempdir().unwrap(),
        };
        set.write_config("");
        set
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("ha.toml")
    }

    fn write_config(&self, extra_members: &str) {
        let hosts: Vec<String> = self.members.iter().map(MongoMember::host).collect();
        let members = members_toml(&hosts);
        std::fs::write(
            self.config(),
            format!(
                "[mongo]\nreplica_set = \"circle\"\nserver_version = \"7.0\"\n\
                 members = [\n{}{extra_members}]\n\
                 tls = {{ ca_file = \"{}\" }}\n\
                 users.site_admin = {{ name = \"siteUserAdmin\", password = \"env:T_SITE\" }}\n\
                 users.admin = {{ name = \"circle-admin\", password = \"env:T_ADMIN\" }}\n\
                 users.app = {{ name = \"circle\", password = \"env:T_APP\" }}\n\
                 settings = {{ election_timeout_millis = 2000, heartbeat_interval_millis = 500 }}\n\
                 connect_timeout = 5\nwait_timeout = 120\n",
                members,
                self.pki.ca_file().display()
            ),
        )
        .unwrap();
    }

    fn tool(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mongo-rs-setup"));
        command
            .args(args)
            .arg("--config")
            .arg(self.config())
            .env("T_SITE", format!("{HOSTILE}-s"))
            .env("T_ADMIN", format!("{HOSTILE}-a"))
            .env("T_APP", format!("{HOSTILE}-p"));
        command
    }

    /// Runs the tool; returns (exit code, stdout JSON or Null, stderr).
    fn json(&self, args: &[&str]) -> (i32, Value, String) {
        let (code, stdout, stderr) = run(self.tool(args).arg("--json"));
        assert_no_secret(&stdout);
        assert_no_secret(&stderr);
        let value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
        (code, value, stderr)
    }
}

fn assert_no_secret(text: &str) {
    assert!(!text.contains(HOSTILE), "a password leaked:\n{text}");
    assert!(!text.contains("wörd–密"), "a password leaked:\n{text}");
}

fn wait_for(what: &str, deadline: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn apply_bootstraps_a_fresh_set_twice_status_follows_a_member_down_and_back() {
    let mut set = Set::start();

    // --dry-run lists everything and changes nothing.
    let (code, plan, stderr) = set.json(&["apply", "--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(plan["changed"], 0, "{plan}");
    assert_eq!(plan["planned"], 6, "{plan}");
    let kinds: Vec<&str> = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "initiate-replica-set",
            "create-user",
            "create-user",
            "create-user",
            "add-member",
            "add-member"
        ]
    );
    let (code, status, _) = set.json(&["status"]);
    assert_eq!(code, 3, "a fresh set is not healthy: {status}");
    assert!(
        status["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["state"] == "NOT INITIATED"),
        "{status}"
    );
    assert!(
        status["problems"][0]
            .as_str()
            .unwrap()
            .contains("not initiated"),
        "{status}"
    );
    let (_, again, _) = set.json(&["apply", "--dry-run"]);
    assert_eq!(
        again["planned"], 6,
        "the dry run changed something: {again}"
    );

    let (code, applied, stderr) = set.json(&["apply"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(applied["changed"], 6, "{applied}");
    assert!(
        stderr.contains("waiting") || stderr.contains("adding"),
        "progress is shown: {stderr}"
    );

    let (code, second, stderr) = set.json(&["apply"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(second["changed"], 0, "{second}");

    let (code, status, stderr) = set.json(&["status"]);
    assert_eq!(code, 0, "{status} {stderr}");
    assert_eq!(status["healthy"], true);
    let members = status["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    assert!(
        members
            .iter()
            .all(|m| m["tls"] == true && m["auth_ok"] == true),
        "{status}"
    );

    // Human output: one line per member.
    let (code, text, _) = run(&mut set.tool(&["status"]));
    assert_eq!(code, 0);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("localhost:")).count(),
        3,
        "{text}"
    );

    // A secondary goes down: exit 3, naming it; back: exit 0.
    let primary = status["primary"].as_str().unwrap().to_owned();
    let down = set
        .members
        .iter()
        .position(|m| m.host() != primary)
        .unwrap();
    let host = set.members[down].host();
    set.members[down].kill();
    let (code, status, _) = set.json(&["status"]);
    assert_eq!(code, 3, "{status}");
    assert!(
        status["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().contains(&host)),
        "{status}"
    );
    set.members[down].restart().unwrap();
    wait_for(
        "status to be healthy again",
        Duration::from_secs(90),
        || set.json(&["status"]).0 == 0,
    );

    // set-priority, then apply puts ha.toml's value back.
    let (code, changed, stderr) = set.json(&["set-priority", "--host", &host, "--priority", "0.5"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(changed["changed"], 1, "{changed}");
    assert!(
        changed["warnings"].to_string().contains("next apply"),
        "{changed}"
    );
    let (_, same, _) = set.json(&["set-priority", "--host", &host, "--priority", "0.5"]);
    assert_eq!(same["changed"], 0, "{same}");
    // add-member of a member the set has, remove-member of a host it has
    // not (and ha.toml does not list): nothing to do, said as a report.
    let (code, added, stderr) = set.json(&["add-member", "--host", &host]);
    assert_eq!(
        (code, added["changed"].as_u64()),
        (0, Some(0)),
        "{added} {stderr}"
    );
    let (code, removed, stderr) = set.json(&["remove-member", "--host", "localhost:1"]);
    assert_eq!(
        (code, removed["changed"].as_u64()),
        (0, Some(0)),
        "{removed} {stderr}"
    );
    let (code, fixed, _) = set.json(&["apply"]);
    assert_eq!(code, 0);
    assert_eq!(fixed["actions"][0]["kind"], "set-member-options", "{fixed}");

    // remove-member refuses a member ha.toml still lists.
    let (code, refused, _) = set.json(&["remove-member", "--host", &host]);
    assert_eq!(code, 2, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("[mongo].members"),
        "{refused}"
    );
}

#[test]
fn a_run_killed_right_after_initiate_is_finished_by_the_next() {
    let set = Set::start();
    let mut child = set
        .tool(&["apply"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it the moment the seed has a replica-set config.
    let seed = set.members[0].port();
    let ca = set.pki.ca_file();
    wait_for("the seed to be initiated", Duration::from_secs(60), || {
        hello(seed, &ca).is_some_and(|h| h.set_name.is_some())
    });
    child.kill().unwrap();
    child.wait().unwrap();

    let (code, applied, stderr) = set.json(&["apply"]);
    assert_eq!(code, 0, "{stderr}");
    let kinds = applied["actions"].to_string();
    assert!(!kinds.contains("initiate-replica-set"), "{applied}");
    assert!(kinds.contains("add-member"), "{applied}");
    assert_eq!(set.json(&["apply"]).1["changed"], 0);
    assert_eq!(set.json(&["status"]).0, 0);
}

/// The `hello` of the member on `port`, over TLS, if it answers.
pub(crate) fn hello(port: u16, ca: &Path) -> Option<mongo_rs_setup::Hello> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let user = || mongo_rs_setup::UserSpec {
        name: "nobody".to_owned(),
        password: secrecy::SecretString::from("x".to_owned()),
    };
    let spec = mongo_rs_setup::SetSpec {
        name: "circle".to_owned(),
        members: Vec::new(),
        settings: mongo_rs_setup::SetSettings::default(),
        site_admin: user(),
        admin: user(),
        app: user(),
        app_databases: Vec::new(),
        reach: mongo_rs_setup::Reach {
            tls: Some(mongo_rs_setup::TlsFiles {
                ca_file: ca.to_owned(),
                certificate_key_file: None,
            }),
            connect_timeout: Duration::from_secs(2),
            bootstrap_via_localhost: false,
        },
        wait_timeout: Duration::from_secs(1),
    };
    runtime.block_on(async {
        mongo_rs_setup::Session::new(&spec)
            .hello(&format!("localhost:{port}"))
            .await
            .ok()
    })
}

#[test]
fn every_config_problem_is_reported_at_once_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ha.toml");
    std::fs::write(
        &config,
        "[mongo]\nreplica_set = \"circle\"\nserver_version = \"7.0\"\n\
         members = [\n  { host = \"localhost:27017\" },\n  { host = \"LOCALHOST:27017\" },\n\
           { host = \"mongo_2:27017\" },\n  { host = \"no-such-host.invalid:27017\" },\n\
           { host = \"localhost:27018\", hidden = true, priority = 1 },\n]\n\
         tls = { ca_file = \"missing-ca.pem\" }\n\
         users.site_admin = { name = \"siteUserAdmin\", password = \"hunter2\" }\n\
         users.admin = { name = \"circle-admin\", password = \"env:T_UNSET_ADMIN\" }\n\
         users.app = { name = \"circle\", password = \"env:T_APP\", databases = [\"circle_ghe\", \"bad/name\"] }\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run(Command::new(env!("CARGO_BIN_EXE_mongo-rs-setup"))
        .args(["apply", "--json", "--config"])
        .arg(&config)
        .env("T_APP", "x")
        .env_remove("T_UNSET_ADMIN"));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        !stderr.contains("hunter2") && !stdout.contains("hunter2"),
        "{stderr}"
    );
    for expected in [
        "listed twice",
        "mongo_2",
        "no-such-host.invalid",
        "must have priority 0",
        "missing-ca.pem",
        "users.site_admin.password must be a secret reference",
        "T_UNSET_ADMIN is not set",
        "bad/name",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    let error: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(error["exit_code"], 2);
}

#[test]
fn render_config_output_starts_a_member_unchanged() {
    let pki = LabPki::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::create_dir(dir.path().join("db")).unwrap();
    let config = dir.path().join("ha.toml");
    let tools = Toolbox::discover(std::env::vars_os());
    let implementation = tools.mongo().unwrap_or_else(|e| panic!("{e}"));
    for version in ["7.0", "4.4"] {
        std::fs::write(
            &config,
            format!(
                "[mongo]\nreplica_set = \"circle\"\nserver_version = \"{version}\"\n\
                 members = [{{ host = \"localhost:{port}\" }}]\n\
                 [mongo.server]\ndb_path = \"{db}\"\nlog_path = \"{log}\"\n\
                 certificate_key_file = \"{pem}\"\nca_file = \"{ca}\"\n",
                db = dir.path().join("db").display(),
                log = dir.path().join("mongod.log").display(),
                pem = pki.server().combined.display(),
                ca = pki.ca_file().display(),
            ),
        )
        .unwrap();
        let out = dir.path().join(format!("mongod-{version}.conf"));
        let (code, _, stderr) = run(Command::new(env!("CARGO_BIN_EXE_mongo-rs-setup"))
            .args([
                "render-config",
                "--member",
                &format!("localhost:{port}"),
                "--out",
            ])
            .arg(&out)
            .arg("--config")
            .arg(&config));
        assert_eq!(code, 0, "{stderr}");
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(text.contains("journal:"), version == "4.4", "{text}");
        let mut command = Command::new(implementation.program());
        command.arg("--config").arg(&out);
        if let MongoImpl::Sim(_) = implementation {
            command.args(["--simServerVersion", version]);
        } else if version == "4.4" {
            // A real mongod of another version would refuse the dialect.
            continue;
        }
        let mut member = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let ca = pki.ca_file();
        let started = Instant::now();
        while !hello(port, &ca).is_some_and(|h| h.awaiting_config) {
            if let Some(status) = member.try_wait().unwrap() {
                let mut stderr = String::new();
                std::io::Read::read_to_string(member.stderr.as_mut().unwrap(), &mut stderr)
                    .unwrap();
                panic!(
                    "{version}: the member exited ({status}) with the rendered config:\n{stderr}\n{text}"
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{version}: no answer"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        member.kill().unwrap();
        member.wait().unwrap();
        assert!(
            dir.path().join("mongod.log").exists(),
            "the log goes to systemLog.path"
        );
    }
}

#[test]
fn the_example_config_renders_a_member_config() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ha.toml");
    let (code, stdout, stderr) = run(Command::new(env!("CARGO_BIN_EXE_mongo-rs-setup"))
        .args(["render-config", "--member", "mongo-2.internal", "--config"])
        .arg(&example));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("certificateKeyFile: \"/etc/mongodb/mongo-2.internal.pem\""),
        "{stdout}"
    );
    assert!(stdout.contains("replSetName: \"circle\""), "{stdout}");
    // Three voters: no warning.
    assert!(!stderr.contains("warning"), "{stderr}");
}

/// The runbook's MongoDB steps as an operator types them into `mongosh`
/// (comments are the runbook's step numbers). Passwords come from the
/// environment, so they never appear in a command line.
const RUNBOOK_USERS: &str = r#"
// 3. On the initial PRIMARY, with ssl, auth and replication commented
//    out: mongo, then `use admin`.
db = db.getSiblingDB("admin");
// 4. siteUserAdmin.
db.createUser({ user: "siteUserAdmin", pwd: process.env.SITE_PW,
                roles: [ { role: "userAdminAnyDatabase", db: "admin" } ] });
// 5. circle-admin.
db.createUser({ user: 'circle-admin', pwd: process.env.ADMIN_PW,
                roles: [{ role: 'root', db: 'admin' }, { role: 'dbAdmin', db: 'admin' }] });
print("users: " + db.getUsers().users.map(u => u.user).sort().join(","));
"#;

const RUNBOOK_SET: &str = r#"
// 5 (cont.). Reconnect as circle-admin and rs.initiate().
db = db.getSiblingDB("admin");
db.auth("circle-admin", process.env.ADMIN_PW);
printjson(rs.initiate());
const deadline = Date.now() + 60000;
while (!db.hello().isWritablePrimary) {
  if (Date.now() > deadline) throw new Error("no primary after rs.initiate()");
  sleep(100);
}
// The runbook's note: if the PRIMARY adopted a name the other hosts cannot
// use, rename it before extending the set.
let cfg = rs.conf();
if (cfg.members[0].host !== process.env.FIRST) {
  print("renaming " + cfg.members[0].host + " to " + process.env.FIRST);
  cfg.members[0].host = process.env.FIRST;
  printjson(rs.reconfig(cfg));
}
// 6. The remaining two hosts.
printjson(rs.add(process.env.SECOND));
printjson(rs.add(process.env.THIRD));
// 7. The application user, exactly as the runbook writes it (without
//    remote_containers_dev_ghe, which its own URIs use).
db.createUser({ user: "circle", pwd: process.env.APP_PW,
                roles: [ { role: "readWrite", db: "circle_ghe" },
                         { role: "readWrite", db: "build_state_dev_ghe" },
                         { role: "readWrite", db: "containers_dev_ghe" } ] });
print("members: " + rs.status().members.map(m => m.name).join(","));
"#;

fn mongosh(script: &str, port: u16, ca: Option<&Path>, dir: &Path) -> (i32, String, String) {
    let tools = Toolbox::discover(std::env::vars_os());
    let mongosh = tools.mongosh().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join(format!("step-{port}.js"));
    std::fs::write(&file, script).unwrap();
    let mut command = Command::new(mongosh);
    command.args(["--quiet", "--norc"]);
    if let Some(ca) = ca {
        command.arg("--tls").arg("--tlsCAFile").arg(ca);
    }
    command
        .arg(format!("mongodb://localhost:{port}/?directConnection=true"))
        .arg("--file")
        .arg(&file)
        .env("DO_NOT_TRACK", "1")
        .env("HOME", dir)
        .env("SITE_PW", format!("{HOSTILE}-s"))
        .env("ADMIN_PW", format!("{HOSTILE}-a"))
        .env("APP_PW", format!("{HOSTILE}-p"));
    run(&mut command)
}

#[test]
fn the_runbooks_mongosh_steps_build_a_set_that_apply_adopts_and_completes() {
    let tools = Toolbox::discover(std::env::vars_os());
    let pki = LabPki::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // 3-5: the first host started without TLS, auth or replication; the
    // two users created from the shell.
    let mut plain = MongoMember::start(&tools, MongoMemberOptions::default()).unwrap();
    let (code, stdout, stderr) = mongosh(RUNBOOK_USERS, plain.port(), None, dir.path());
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("users: circle-admin,siteUserAdmin"),
        "{stdout}"
    );
    // "Uncomment the configuration and restart": the same data, with the
    // runbook's TLS, auth and replication settings.
    plain.stop();
    let first = MongoMember::start_with_data(&tools, secure(&pki), &plain.dbpath()).unwrap();
    drop(plain);
    let others: Vec<MongoMember> = (0..2)
        .map(|_| MongoMember::start(&tools, secure(&pki)).unwrap())
        .collect();
    let (code, stdout, stderr) = {
        let mut command_env = vec![
            ("FIRST", first.host()),
            ("SECOND", others[0].host()),
            ("THIRD", others[1].host()),
        ];
        let script = command_env
            .drain(..)
            .map(|(k, v)| format!("process.env.{k} = {v:?};\n"))
            .collect::<String>()
            + RUNBOOK_SET;
        mongosh(&script, first.port(), Some(&pki.ca_file()), dir.path())
    };
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_no_secret(&stdout);
    assert_no_secret(&stderr);
    assert!(
        stdout.contains(&format!(
            "members: {},{},{}",
            first.host(),
            others[0].host(),
            others[1].host()
        )),
        "{stdout}"
    );

    // mongo-rs-setup adopts the hand-built set: the same users, members
    // and passwords, so only what the runbook got wrong is changed — the
    // app user's missing database — and a second run changes nothing.
    let set = Set {
        pki,
        members: std::iter::once(first).chain(others).collect(),
        dir,
    };
    set.write_config("");
    let (code, done, stderr) = set.json(&["apply"]);
    assert_eq!(code, 0, "{stderr}");
    let actions: Vec<String> = done["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                a["kind"].as_str().unwrap(),
                a["target"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        actions
            .iter()
            .any(|a| a.contains("circle") && a.starts_with("grant-roles")),
        "{actions:?}"
    );
    assert!(
        !actions.iter().any(|a| a.starts_with("initiate")
            || a.starts_with("add-member")
            || a.starts_with("create-user")),
        "{actions:?}"
    );
    let (code, again, _) = set.json(&["apply"]);
    assert_eq!((code, again["changed"].as_u64()), (0, Some(0)), "{again}");
    let (code, status, _) = set.json(&["status"]);
    assert_eq!(code, 0, "{status}");
}
