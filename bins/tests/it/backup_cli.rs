//! `mongo-backup` run as an operator would: a hand-written ha.toml with
//! hostile passwords in the environment, a three-member TLS set with x509
//! member authentication, stop and start commands that stop and start the
//! member's process, a directory store; then the refusals, SIGTERM in the
//! middle of a run, and bad configuration.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ha_lab::{LabPki, MongoMember, MongoMemberOptions, Toolbox, members_toml};
use serde_json::Value;

use crate::mongo_cli::hello;
use crate::run;

const HOSTILE: &str = "b'\"$@:/?#%\\ `x` wörd–密";

struct Set {
    pki: LabPki,
    members: Vec<MongoMember>,
    dir: tempfile::TempDir,
}

impl Drop for Set {
    fn drop(&mut self) {
        // A member the start script launched is not the lab's child.
        for i in 0..self.members.len() {
            if let Ok(pid) = std::fs::read_to_string(self.pidfile(i)) {
                let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
            }
        }
    }
}

impl Set {
    fn start() -> Set {
        let pki = LabPki::new().unwrap();
        let tools = Toolbox::discover(std::env::vars_os());
        let members = (0..3)
            .map(|_| {
                MongoMember::start(&tools, MongoMemberOptions::secure(&pki, "circle"))
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        let set = Set {
            pki,
            members,
            dir: tempfile::tempdir().unwrap(),
        };
        set.write_config(None, "");
        let (code, _, stderr) = run(&mut set.tool("mongo-rs-setup", &["apply"]));
        assert_eq!(code, 0, "{stderr}");
        set
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("ha.toml")
    }

    fn pidfile(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("member-{i}.pid"))
    }

    /// Stop and start scripts for member `i`, as `systemctl stop/start
    /// mongod` would be on its machine.
    fn scripts(&self, i: usize, slow_stop: bool) -> (PathBuf, PathBuf) {
        let member = &self.members[i];
        std::fs::write(self.pidfile(i), member.pid().unwrap().to_string()).unwrap();
        let args: Vec<String> = MongoMemberOptions::secure(&self.pki, "circle")
            .command_line(member.port(), &member.dbpath())
            .iter()
            .map(|a| format!("'{}'", a.to_string_lossy()))
            .collect();
        let start = self.dir.path().join(format!("start-{i}.sh"));
        let stop = self.dir.path().join(format!("stop-{i}.sh"));
        std::fs::write(
            &start,
            format!(
                "nohup '{}' {} >> '{}' 2>&1 < /dev/null &\necho $! > '{}'\n",
                member.implementation().program().display(),
                args.join(" "),
                self.dir.path().join(format!("member-{i}.log")).display(),
                self.pidfile(i).display()
            ),
        )
        .unwrap();
        std::fs::write(
            &stop,
            format!(
                "kill -TERM \"$(cat '{}')\"\n{}",
                self.pidfile(i).display(),
                if slow_stop { "sleep 5\n" } else { "" }
            ),
        )
        .unwrap();
        (stop, start)
    }

    fn write_config(&self, backup_member: Option<usize>, extra: &str) {
        let hosts: Vec<String> = self.members.iter().map(MongoMember::host).collect();
        let mut text = format!(
            "[mongo]\nreplica_set = \"circle\"\nmembers = [\n{}]\n\
             tls = {{ ca_file = \"{}\" }}\n\
             users.site_admin = {{ name = \"siteUserAdmin\", password = \"env:T_SITE\" }}\n\
             users.admin = {{ name = \"circle-admin\", password = \"env:T_ADMIN\" }}\n\
             users.app = {{ name = \"circle\", password = \"env:T_APP\" }}\n\
             settings = {{ election_timeout_millis = 2000, heartbeat_interval_millis = 500 }}\n\
             connect_timeout = 5\nwait_timeout = 120\n",
            members_toml(&hosts),
            self.pki.ca_file().display()
        );
        if let Some(i) = backup_member {
            let (stop, start) = self.scripts(i, extra.contains("slow-stop"));
            text.push_str(&format!(
                "\n[backup]\nmember = \"{}\"\nstore = \"directory\"\ndirectory = \"{}\"\n\
                 db_path = \"{}\"\nstop_command = [\"sh\", \"{}\"]\nstart_command = [\"sh\", \"{}\"]\n\
                 keep_last = 2\nstate_dir = \"{}\"\n",
                self.members[i].host(),
                self.dir.path().join("snapshots").display(),
                self.members[i].dbpath().display(),
                stop.display(),
                start.display(),
                self.dir.path().join("state").display(),
            ));
        }
        std::fs::write(self.config(), text).unwrap();
    }

    fn tool(&self, binary: &str, args: &[&str]) -> Command {
        let path = match binary {
            "mongo-rs-setup" => env!("CARGO_BIN_EXE_mongo-rs-setup"),
            "circle-ha" => env!("CARGO_BIN_EXE_circle-ha"),
            _ => env!("CARGO_BIN_EXE_mongo-backup"),
        };
        let mut command = Command::new(path);
        command
            .args(args)
            .arg("--config")
            .arg(self.config())
            .env("T_SITE", format!("{HOSTILE}-s"))
            .env("T_ADMIN", format!("{HOSTILE}-a"))
            .env("T_APP", format!("{HOSTILE}-p"));
        command
    }

    fn json(&self, args: &[&str]) -> (i32, Value, String) {
        let (code, stdout, stderr) = run(self.tool("mongo-backup", args).arg("--json"));
        assert_no_secret(&stdout);
        assert_no_secret(&stderr);
        (
            code,
            serde_json::from_str(&stdout).unwrap_or(Value::Null),
            stderr,
        )
    }

    /// `snapshot --dry-run` of member `i` as a program linking the crates
    /// runs it, from typed values (no `ha.toml`): the report's JSON.
    fn typed_dry_run(&self, i: usize) -> Value {
        let hosts: Vec<String> = self.members.iter().map(MongoMember::host).collect();
        let set = crate::typed_set(&hosts, &self.pki.ca_file(), |role| {
            let short = match role {
                "site_admin" => "s",
                "admin" => "a",
                _ => "p",
            };
            secrecy::SecretString::from(format!("{HOSTILE}-{short}"))
        });
        let session = mongo_rs_setup::Session::new(&set);
        let member = &self.members[i];
        let mut spec = mongo_backup::BackupSpec::new(member.host());
        spec.local_port = Some(member.port());
        spec.db_path = Some(member.dbpath());
        spec.state_dir = Some(self.dir.path().join("state"));
        spec.retention.keep_last = Some(2);
        let store = mongo_backup::StoreSpec::Directory {
            root: self.dir.path().join("snapshots"),
        }
        .open(&member.dbpath(), None)
        .unwrap();
        let script = |name: &str| {
            let path = self.dir.path().join(format!("{name}-{i}.sh"));
            vec!["sh".to_owned(), path.display().to_string()]
        };
        let mut process = mongo_backup::Commands {
            stop: script("stop"),
            start: script("start"),
            ..mongo_backup::Commands::default()
        };
        let (_handle, cancel) = mongo_backup::Cancel::new();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let outcome = runtime
            .block_on(mongo_backup::run::snapshot(
                &session,
                &spec,
                &mut process,
                &store,
                true,
                &cancel,
                &|_: &str| {},
            ))
            .unwrap();
        serde_json::to_value(outcome.to_report("mongo-backup", true, Vec::new())).unwrap()
    }

    fn hello(&self, i: usize) -> Option<mongo_rs_setup::Hello> {
        hello(self.members[i].port(), &self.pki.ca_file())
    }

    fn index_where(&self, want: impl Fn(&mongo_rs_setup::Hello) -> bool) -> usize {
        let started = Instant::now();
        loop {
            if let Some(i) = (0..3).find(|i| self.hello(*i).is_some_and(|h| want(&h))) {
                return i;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no such member"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait_all_up(&self) {
        let started = Instant::now();
        while !(0..3).all(|i| self.hello(i).is_some_and(|h| h.primary || h.secondary)) {
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "the set did not come back"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn assert_no_secret(text: &str) {
    assert!(!text.contains(HOSTILE), "a password leaked:\n{text}");
    assert!(!text.contains("wörd–密"), "a password leaked:\n{text}");
}

#[test]
fn snapshot_twice_list_status_refusals_and_bad_config_as_an_operator_runs_them() {
    let set = Set::start();
    let s = set.index_where(|h| h.secondary);
    let p = set.index_where(|h| h.primary);
    set.write_config(Some(s), "");

    // A dry run checks the guards and plans; nothing is touched.
    let (code, plan, stderr) = set.json(&["snapshot", "--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(plan["changed"], 0, "{plan}");
    assert_eq!(plan["planned"], 6, "{plan}");
    // A program linking the crates gets the same plan from typed values.
    let typed = set.typed_dry_run(s);
    for key in [
        "changed",
        "planned",
        "dry_run",
        "actions",
        "warnings",
        "snapshots",
    ] {
        assert_eq!(typed[key], plan[key], "{key}: {typed} against {plan}");
    }

    // Two runs: each stops the member through the script, snapshots,
    // starts it again and waits until it has caught up.
    for run in 1..=2 {
        let (code, done, stderr) = set.json(&["snapshot"]);
        assert_eq!(code, 0, "run {run}: {stderr}");
        let kinds: Vec<&str> = done["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "lock",
                "stop-member",
                "snapshot",
                "start-member",
                "wait-caught-up",
                "unlock"
            ],
            "{done}"
        );
        assert_eq!(done["snapshots"].as_array().unwrap().len(), 1, "{done}");
        assert!(
            done["optime"].as_str().is_some_and(|o| o.contains('/')),
            "{done}"
        );
        set.wait_all_up();
    }
    let (code, list, stderr) = set.json(&["list"]);
    assert_eq!(code, 0, "{stderr}");
    let runs = list["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{list}");
    assert!(
        runs.iter()
            .all(|r| r["state"] == "complete" && r["member"] == set.members[s].host())
    );
    let (code, status, stderr) = set.json(&["status"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(status["healthy"], true, "{status}");
    // The same for node_exporter's textfile collector: exposition format,
    // the set's health, the newest run's age, the member's last run.
    let textfile = tempfile::tempdir().unwrap();
    let textfile_arg = textfile.path().display().to_string();
    let (code, _, stderr) = set.json(&["status", "--textfile", &textfile_arg]);
    assert_eq!(code, 0, "{stderr}");
    let text = std::fs::read_to_string(textfile.path().join("mongo_backup.prom")).unwrap();
    let series: Vec<_> = text.lines().filter_map(crate::exposition_line).collect();
    let find = |name: &str| {
        series
            .iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("{name} missing: {text}"))
    };
    assert_eq!(find("mongo_backup_healthy").2, 1.0, "{text}");
    assert!(
        find("mongo_backup_newest_complete_age_seconds").2 < 3600.0,
        "{text}"
    );
    let (_, labels, at) = find("mongo_backup_last_complete_timestamp_seconds");
    assert!(
        labels
            .iter()
            .any(|(k, v)| k == "member" && *v == set.members[s].host()),
        "{text}"
    );
    assert_eq!(
        *at as i64,
        status["newest"]["created"].as_i64().unwrap(),
        "{text}"
    );
    // `circle-ha status` checks the same runs beside the set, and says the
    // member's last complete run in its own textfile.
    let (code, stdout, stderr) = run(set
        .tool(
            "circle-ha",
            &["status", "--json", "--textfile", &textfile_arg],
        )
        .arg("--max-lag")
        .arg("3600"));
    assert_no_secret(&stdout);
    let all: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    assert_eq!(code, 0, "{all} {stderr}");
    let concerns: Vec<&str> = all["concerns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["concern"].as_str().unwrap())
        .collect();
    assert_eq!(concerns, ["mongo", "backup"], "{all}");
    let backup = &all["concerns"][1]["detail"];
    for key in ["healthy", "replica_set", "runs", "last_complete_by_member"] {
        assert_eq!(backup[key], status[key], "the same findings: {all}");
    }
    let text = std::fs::read_to_string(textfile.path().join("circle_ha.prom")).unwrap();
    let sample = text
        .lines()
        .filter_map(crate::exposition_line)
        .find(|(n, _, _)| n == "circle_ha_backup_last_complete_timestamp_seconds")
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(sample.2, *at, "{text}");
    assert!(
        sample
            .1
            .iter()
            .any(|(k, v)| k == "member" && *v == set.members[s].host()),
        "{text}"
    );
    let (code, pruned, _) = set.json(&["prune", "--dry-run"]);
    assert_eq!(
        (code, pruned["planned"].as_u64()),
        (0, Some(0)),
        "keep_last = 2 keeps both: {pruned}"
    );

    // `circle-ha backup …` is the same command line under circle-ha: exit 0
    // and a document of the same shape (its schema checked by `run`).
    for args in [
        &["list"][..],
        &["status"],
        &["prune", "--dry-run"],
        &["snapshot", "--dry-run"],
        &["recover"],
    ] {
        let mut under = vec!["backup"];
        under.extend(args);
        let (code, stdout, stderr) = run(set.tool("circle-ha", &under).arg("--json"));
        assert_no_secret(&stdout);
        assert_eq!(code, 0, "circle-ha backup {args:?}: {stderr}");
        let document: Value = serde_json::from_str(&stdout).unwrap();
        let (_, alone, _) = set.json(args);
        let keys = |d: &Value| d.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(
            keys(&document),
            keys(&alone),
            "{args:?}: {document} against {alone}"
        );
    }

    // On the primary: refused with the reason, exit 3, nothing touched.
    let (code, refused, stderr) = set.json(&["snapshot", "--member", &set.members[p].host()]);
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(refused["changed"], 0);
    assert!(
        refused["refused"][0]
            .as_str()
            .unwrap()
            .contains("is the PRIMARY"),
        "{refused}"
    );
    // Without --json the refusal is the result, on stdout.
    let (code, text, _) = run(&mut set.tool(
        "mongo-backup",
        &["snapshot", "--member", &set.members[p].host()],
    ));
    assert_eq!(code, 3);
    assert!(text.contains("is the PRIMARY"), "{text}");

    // Bad configuration: exit 2, every problem, nothing touched.
    std::fs::write(
        set.config(),
        std::fs::read_to_string(set.config()).unwrap().replace(
            "store = \"directory\"",
            "store = \"tape\"\nvolumes = [\"vol-xyz\"]",
        ),
    )
    .unwrap();
    let (code, _, stderr) =
        run(&mut set.tool("mongo-backup", &["snapshot", "--member", "nowhere:1"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("[backup].store") && stderr.contains("[backup].member"),
        "{stderr}"
    );
    assert_no_secret(&stderr);
}

/// Runs `snapshot` and sends it `signal` once the stop script has stopped
/// the member (polled, 60 s deadline: never a fixed delay, which a busy
/// machine outlasts); returns its exit status and stderr lines.
fn signal_once_stopped(
    set: &Set,
    s: usize,
    signal: &str,
) -> (std::process::ExitStatus, Vec<String>) {
    let mut child = set
        .tool("mongo-backup", &["snapshot"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let stderr = child.stderr.take().unwrap();
    let mut lines = Vec::new();
    let mut sent = false;
    for line in std::io::BufReader::new(stderr).lines() {
        let line = line.unwrap();
        if !sent && line.contains("stopping mongod on") {
            let started = Instant::now();
            while set.hello(s).is_some() {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "the stop script did not stop the member"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            Command::new("kill").args([signal, &pid]).status().unwrap();
            sent = true;
        }
        lines.push(line);
    }
    (child.wait().unwrap(), lines)
}

#[test]
fn sigterm_while_the_member_stops_still_starts_it_again() {
    let set = Set::start();
    let s = set.index_where(|h| h.secondary);
    set.write_config(Some(s), "slow-stop");
    let (status, lines) = signal_once_stopped(&set, s, "-TERM");
    let text = lines.join("\n");
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(
        text.contains("interrupted after the member was stopped; the member was started again and has caught up"),
        "{text}"
    );
    let started = Instant::now();
    while !set.hello(s).is_some_and(|h| h.secondary) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the member is not a secondary again: {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_no_secret(&text);
}

/// SIGKILL after the stop (no handler runs): mongod stays down and the
/// lease held; `recover` (the unit's ExecStopPost=) brings the member back
/// and releases the lease, and the next `snapshot` finishes a killed run
/// before its own.
#[test]
fn sigkill_after_the_stop_is_finished_by_recover_or_by_the_next_run() {
    let set = Set::start();
    let s = set.index_where(|h| h.secondary);
    set.write_config(Some(s), "slow-stop");
    let kill_after_stop = || {
        signal_once_stopped(&set, s, "-KILL");
        assert!(
            set.hello(s).is_none(),
            "the member must be down after the kill"
        );
    };

    kill_after_stop();
    let (code, done, stderr) = set.json(&["recover"]);
    assert_eq!(code, 0, "{stderr}");
    let kinds: Vec<&str> = done["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["start-member", "wait-caught-up", "unlock"],
        "{done}"
    );
    assert!(set.hello(s).is_some_and(|h| h.secondary));
    // Nothing left to finish: a second recover changes nothing.
    let (code, again, stderr) = set.json(&["recover"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(again["changed"], 0, "{again}");

    // Killed again; this time the next snapshot finishes it first, then
    // takes its own (the lock was released, or it would refuse).
    kill_after_stop();
    set.write_config(Some(s), "");
    let (code, done, stderr) = set.json(&["snapshot"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("did not finish; finishing it") || done.to_string().contains("lock"),
        "{stderr}"
    );
    assert_eq!(done["snapshots"].as_array().unwrap().len(), 1, "{done}");
    set.wait_all_up();
    assert_no_secret(&stderr);
}

/// render-units: --member reaches the unit; a unit that could not read
/// the env: passwords is refused (exit 2); with an EnvironmentFile= it is
/// written, with ExecStopPost= recovery.
#[test]
fn render_units_carries_the_member_and_the_secrets_mechanism() {
    let set = Set::start();
    let s = set.index_where(|h| h.secondary);
    set.write_config(Some(s), "");
    let out = set.dir.path().join("units");
    std::fs::create_dir(&out).unwrap();
    let member = set.members[s].host();
    let out_arg = out.display().to_string();
    let args = [
        "render-units",
        "--out",
        out_arg.as_str(),
        "--member",
        member.as_str(),
    ];
    let (code, _, stderr) = set.json(&args);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("environment_file"), "{stderr}");
    let config = std::fs::read_to_string(set.config()).unwrap();
    std::fs::write(
        set.config(),
        config.replace(
            "[backup]\n",
            "[backup]\nenvironment_file = \"/etc/circle-ha/backup.env\"\n",
        ),
    )
    .unwrap();
    let (code, report, stderr) = set.json(&args);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["changed"], 2, "{report}");
    let service = std::fs::read_to_string(out.join("mongo-backup.service")).unwrap();
    assert!(
        service.contains(&format!(
            "snapshot --config {} --member {member}\n",
            set.config().display()
        )),
        "{service}"
    );
    assert!(service.contains("ExecStopPost="), "{service}");
    assert!(
        service.contains("EnvironmentFile=/etc/circle-ha/backup.env\n"),
        "{service}"
    );
    let (code, again, _) = set.json(&args);
    assert_eq!((code, again["changed"].as_i64()), (0, Some(0)));
    // The same under circle-ha: nothing left to write.
    let mut under = vec!["backup"];
    under.extend(args);
    let (code, stdout, stderr) = run(set.tool("circle-ha", &under).arg("--json"));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        serde_json::from_str::<Value>(&stdout).unwrap()["changed"],
        0
    );
}

/// restore-volume, under both binaries, against the AWS emulator: a
/// volume made from a snapshot this tool took of the set, in the zone
/// asked for; a snapshot it did not take is refused. No mongod is needed.
#[test]
fn restore_volume_makes_a_volume_from_the_sets_snapshot_under_both_binaries() {
    let moto = ha_lab::Moto::start(&Toolbox::discover(std::env::vars_os())).unwrap();
    let made = moto
        .boto3(
            "ec2",
            "create_volume",
            &serde_json::json!({ "AvailabilityZone": "us-east-1a", "Size": 8 }),
        )
        .unwrap();
    let volume = made["VolumeId"].as_str().unwrap().to_owned();
    // A run of this tool's, as the EBS store tags it.
    let store = mongo_backup::EbsStore {
        ec2: moto.ec2(),
        volumes: vec![volume.clone()],
        poll: Duration::from_millis(100),
    };
    let labels = mongo_backup::snapshot::Labels {
        group: "20261207T000000Z-abcdef".to_owned(),
        set: "circle".to_owned(),
        member: "mongo-3.internal:27017".to_owned(),
        optime: None,
        optime_millis: None,
        version: "test".to_owned(),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let taken = runtime
        .block_on(mongo_backup::SnapshotStore::create(&store, &labels))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ha.toml");
    std::fs::write(
        &config,
        format!(
            "[mongo]\nreplica_set = \"circle\"\nmembers = [\n{}]\n\
             users.admin = {{ name = \"circle-admin\", password = \"env:T_ADMIN\" }}\n\n\
             [backup]\nmember = \"mongo-3.internal:27017\"\nstore = \"ebs\"\n\
             volumes = [\"{volume}\"]\naws_region = \"us-east-1\"\nkeep_last = 2\n\
             db_path = \"/var/lib/mongodb\"\n",
            members_toml(&[
                "mongo-1.internal:27017".to_owned(),
                "mongo-2.internal:27017".to_owned(),
                "mongo-3.internal:27017".to_owned(),
            ])
        ),
    )
    .unwrap();
    let endpoint = moto.endpoint();
    let restore = |binary: &str, snapshot: &str| {
        let mut args = vec![];
        if binary == "circle-ha" {
            args.push("backup");
        }
        args.extend([
            "restore-volume",
            snapshot,
            "--availability-zone",
            "us-east-1b",
            "--endpoint-url",
            endpoint.as_str(),
            "--json",
            "--config",
        ]);
        let path = match binary {
            "circle-ha" => env!("CARGO_BIN_EXE_circle-ha"),
            _ => env!("CARGO_BIN_EXE_mongo-backup"),
        };
        let mut command = Command::new(path);
        command
            .args(args)
            .arg(&config)
            .env("T_ADMIN", format!("{HOSTILE}-a"))
            .env("AWS_ACCESS_KEY_ID", ha_lab::MOTO_ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", ha_lab::MOTO_SECRET_ACCESS_KEY)
            .env_remove("AWS_PROFILE");
        let (code, stdout, stderr) = run(&mut command);
        assert_no_secret(&stdout);
        (
            code,
            serde_json::from_str::<Value>(&stdout).unwrap(),
            stderr,
        )
    };
    for binary in ["mongo-backup", "circle-ha"] {
        let (code, restored, stderr) = restore(binary, &taken[0].id);
        assert_eq!(code, 0, "{binary}: {stderr}");
        let new = restored["volume"].as_str().unwrap();
        // Read back through boto3, not through the tool's EC2 calls.
        let seen = moto
            .boto3(
                "ec2",
                "describe_volumes",
                &serde_json::json!({ "VolumeIds": [new] }),
            )
            .unwrap();
        assert_eq!(
            seen["Volumes"][0]["SnapshotId"],
            taken[0].id.as_str(),
            "{seen}"
        );
        assert_eq!(
            seen["Volumes"][0]["AvailabilityZone"], "us-east-1b",
            "{seen}"
        );
    }
    let (code, refused, _) = restore("mongo-backup", "snap-0123456789abcdef0");
    assert_eq!(code, 1, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("not a snapshot this tool made"),
        "{refused}"
    );
}
