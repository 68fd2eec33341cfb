//! `circle-export` run as an operator would: URIs with passwords only
//! through the environment, export → verify → restore twice, a damaged
//! archive, and a password on the command line refused.

use std::process::Command;

use ha_lab::{LabPki, MongoMember, MongoMemberOptions, Postgres, PostgresOptions, Toolbox};
use secrecy::ExposeSecret as _;
use serde_json::Value;

use crate::run_json;

pub(crate) const HOSTILE: &str = "p'\"$@:/?#%\\ `x` wörd–密";

pub(crate) fn tool(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_circle-export"));
    command.args(args);
    command
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Seeds `circle_ghe.builds` on `member` with 250 documents `{_id: i,
/// n: i}` (through the driver the library uses) and returns the member's
/// URI.
pub(crate) fn mongo_with_builds(member: &MongoMember) -> String {
    let uri = format!(
        "mongodb://localhost:{}/?directConnection=true",
        member.port()
    );
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
        client
            .database("circle_ghe")
            .collection::<bson::Document>("builds")
            .insert_many((0..250).map(|i| bson::doc! {"_id": i, "n": i}))
            .await
            .unwrap();
    });
    uri
}

pub(crate) fn pg_uri(pg: &Postgres, user: &str, password: &str) -> String {
    format!(
        "postgresql://{}:{}@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}&hostaddr=127.0.0.1",
        enc(user),
        enc(password),
        pg.port(),
        enc(&pg.ca_file().display().to_string())
    )
}

pub(crate) fn psql(pg: &Postgres, db: &str, sql: &str) -> String {
    let output = Command::new(pg.bin_dir().join("psql"))
        .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env_clear()
        .envs(pg.libpq_env(db).unwrap())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The new PostgreSQL as pg-provision leaves it: the app role `circle`
/// (hostile password) owning the database `circle`.
pub(crate) fn new_target(tools: &Toolbox, pki: &LabPki) -> Postgres {
    let pg = Postgres::start(tools, pki, PostgresOptions::default()).unwrap();
    psql(
        &pg,
        "postgres",
        &format!(
            "CREATE ROLE circle LOGIN PASSWORD '{}'",
            HOSTILE.replace('\'', "''")
        ),
    );
    psql(&pg, "postgres", "CREATE DATABASE circle OWNER circle");
    pg
}

/// The old machine: a MongoDB member and a PostgreSQL whose database
/// `circle` holds `builds (id int PRIMARY KEY, body text)` filled by
/// `rows` (a `SELECT` giving id and body).
pub(crate) fn old_machine(rows: &str) -> (Toolbox, LabPki, MongoMember, Postgres) {
    let tools = Toolbox::discover(std::env::vars_os());
    let pki = LabPki::new().unwrap();
    let mongo = MongoMember::start(&tools, MongoMemberOptions::default()).unwrap();
    let pg = Postgres::start(&tools, &pki, PostgresOptions::default()).unwrap();
    psql(&pg, "postgres", "CREATE DATABASE circle");
    psql(
        &pg,
        "circle",
        &format!("CREATE TABLE builds (id int PRIMARY KEY, body text); INSERT INTO builds {rows}"),
    );
    (tools, pki, mongo, pg)
}

pub(crate) fn json(command: &mut Command) -> (i32, Value, String) {
    run_json(command.arg("--json"))
}

#[test]
fn export_verify_restore_twice_and_refuse_damage() {
    let (tools, pki, old_mongo, old_pg) =
        old_machine("SELECT g, repeat('b', g) FROM generate_series(1, 400) g");
    let mongo_uri = mongo_with_builds(&old_mongo);
    let old_password = old_pg.superuser_password().expose_secret().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("circle-export.tar.zst");
    let archive_arg = archive.display().to_string();

    // A password on the command line is refused before anything happens.
    let (code, refused, _) = json(
        tool(&["export", "--out", &archive_arg, "--pg-uri"]).arg(pg_uri(
            &old_pg,
            old_pg.superuser(),
            &old_password,
        )),
    );
    assert_eq!(code, 2, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("env:NAME"),
        "{refused}"
    );
    assert!(!archive.exists());

    // A dry run reaches both sources, lists them, writes nothing.
    let export = || {
        let mut command = tool(&[
            "export",
            "--out",
            &archive_arg,
            "--mongo-uri",
            &mongo_uri,
            "--pg-uri",
            "env:OLD_PG_URI",
        ]);
        command.env(
            "OLD_PG_URI",
            pg_uri(&old_pg, old_pg.superuser(), &old_password),
        );
        command
    };
    let (code, planned, stderr) = json(export().arg("--dry-run"));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(planned["changed"], 0, "{planned}");
    let targets: Vec<&str> = planned["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["target"].as_str())
        .collect();
    assert!(
        targets.contains(&"mongo circle_ghe.builds") && targets.contains(&"postgres circle"),
        "{planned}"
    );
    assert!(
        planned["estimated_bytes"].as_u64().unwrap() > 0,
        "{planned}"
    );
    assert!(!archive.exists(), "a dry run wrote the archive");

    let (code, exported, stderr) = json(&mut export());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(exported["documents"], 250, "{exported}");
    assert_eq!(exported["rows"], 400, "{exported}");
    assert_eq!(exported["databases"], 1, "{exported}");

    let (code, verified, _) = json(&mut tool(&["verify", &archive_arg]));
    assert_eq!(code, 0, "{verified}");
    assert_eq!(verified["healthy"], true);

    // The new hosts.
    let new_mongo = MongoMember::start(&tools, MongoMemberOptions::default()).unwrap();
    let new_pg = new_target(&tools, &pki);
    let new_mongo_uri = format!(
        "mongodb://localhost:{}/?directConnection=true",
        new_mongo.port()
    );
    let restore = || {
        let mut command = tool(&[
            "restore",
            &archive_arg,
            "--mongo-uri",
            &new_mongo_uri,
            "--pg-uri",
            "env:NEW_PG_URI",
        ]);
        command.env("NEW_PG_URI", pg_uri(&new_pg, "circle", HOSTILE));
        command
    };
    let (code, dry, stderr) = json(restore().arg("--dry-run"));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        (dry["changed"].clone(), dry["planned"].clone()),
        (0.into(), 2.into()),
        "{dry}"
    );
    let (code, restored, stderr) = json(&mut restore());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(restored["changed"], 2, "{restored}");
    assert_eq!(
        psql(&new_pg, "circle", "SELECT count(*) FROM builds"),
        "400"
    );
    let (code, again, stderr) = json(&mut restore());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(again["changed"], 0, "second restore: {again}");

    // A program linking the crates, from typed values (no flags): the
    // same export, verification and (no-op) restore documents.
    let typed_archive = dir.path().join("typed.tar.zst");
    let documents = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let pg_client = |pg: &Postgres, user: &str, password: &str| {
            let conn = circle_export::PgConn::parse_uri(&pg_uri(pg, user, password)).unwrap();
            circle_export::PgClient::new(conn, Some(pg.bin_dir().to_path_buf())).unwrap()
        };
        let reader = circle_export::MongoReader::from_uri(
            &mongo_uri.clone().into(),
            std::time::Duration::from_secs(30),
        )
        .await
        .unwrap();
        let source_pg = pg_client(&old_pg, old_pg.superuser(), &old_password);
        let spec = circle_export::ExportSpec {
            mongo: Some(circle_export::MongoSource::Server {
                reader: &reader,
                databases: Vec::new(),
            }),
            postgres: Some(circle_export::PgSource {
                client: &source_pg,
                databases: Vec::new(),
            }),
            encryption_keys: None,
            vault_data: None,
            danger_include_vault_init_output: false,
            out: typed_archive.clone(),
            seal: None,
            parallel: 4,
            tool: "a program".to_owned(),
            meter: circle_export::Meter::new(),
        };
        let exported = circle_export::export(spec, &|_| {}).await.unwrap();
        let source = circle_export::archive::Source::open(&typed_archive, None).unwrap();
        let inspection =
            circle_export::inspect_metered(&source, None, &circle_export::Meter::new()).unwrap();
        let target_mongo = circle_export::mongo_from_uri(
            &new_mongo_uri.clone().into(),
            std::time::Duration::from_secs(30),
        )
        .await
        .unwrap();
        let target_pg = pg_client(&new_pg, "circle", HOSTILE);
        let restored = circle_export::restore(
            circle_export::RestoreSpec {
                archive: typed_archive.clone(),
                unsealing: None,
                mongo: Some(&target_mongo),
                postgres: Some(&target_pg),
                drop: false,
                dry_run: false,
                parallel: 4,
                meter: circle_export::Meter::new(),
                failover_wait: std::time::Duration::from_secs(60),
            },
            &|_| {},
        )
        .await
        .unwrap();
        [
            serde_json::to_value(exported.to_findings()).unwrap(),
            serde_json::to_value(inspection.to_findings(&typed_archive)).unwrap(),
            serde_json::to_value(restored.to_findings()).unwrap(),
        ]
    });
    for (typed, cli) in documents.iter().zip([&exported, &verified, &again]) {
        let typed = typed
            .to_string()
            .replace(&typed_archive.display().to_string(), &archive_arg);
        let mut typed: Value = serde_json::from_str(&typed).unwrap();
        let mut cli = cli.clone();
        // What differs from run to run: wall time, the compressed size
        // (tar headers carry the time), and the CLI's envelope.
        for volatile in ["seconds", "archive_bytes", "schema_version", "tool"] {
            typed.as_object_mut().unwrap().remove(volatile);
            cli.as_object_mut().unwrap().remove(volatile);
        }
        assert_eq!(typed, cli);
    }

    // One flipped byte: verify exits 3 naming the file; restore refuses.
    let mut bytes = std::fs::read(&archive).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    let damaged = dir.path().join("damaged.tar.zst");
    std::fs::write(&damaged, &bytes).unwrap();
    let damaged_arg = damaged.display().to_string();
    let (code, verdict, _) = json(&mut tool(&["verify", &damaged_arg]));
    assert_eq!(code, 3, "{verdict}");
    assert!(
        !verdict["problems"].as_array().unwrap().is_empty(),
        "{verdict}"
    );
    let (code, refused, _) = json(
        tool(&[
            "restore",
            &damaged_arg,
            "--mongo-uri",
            &new_mongo_uri,
            "--pg-uri",
            "env:NEW_PG_URI",
            "--drop",
        ])
        .env("NEW_PG_URI", pg_uri(&new_pg, "circle", HOSTILE)),
    );
    assert_eq!(code, 1, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("nothing from a damaged part was restored"),
        "{refused}"
    );
    assert_eq!(
        psql(&new_pg, "circle", "SELECT count(*) FROM builds"),
        "400"
    );
}

/// Polls `condition` every 20 ms until it holds or `deadline` passes.
pub(crate) fn wait_until(
    what: &str,
    deadline: std::time::Duration,
    mut condition: impl FnMut() -> bool,
) {
    let start = std::time::Instant::now();
    while !condition() {
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_restore_killed_while_loading_commits_no_partial_database_and_the_rerun_finishes() {
    let tools = Toolbox::discover(std::env::vars_os());
    let pki = LabPki::new().unwrap();
    let old_pg = Postgres::start(&tools, &pki, PostgresOptions::default()).unwrap();
    psql(&old_pg, "postgres", "CREATE DATABASE circle");
    // Big enough that loading takes a while; small enough for a busy CI.
    psql(
        &old_pg,
        "circle",
        "CREATE TABLE builds (id int PRIMARY KEY, body text); \
         INSERT INTO builds SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 300000) g",
    );
    let old_password = old_pg.superuser_password().expose_secret().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("pg.tar");
    let archive_arg = archive.display().to_string();
    let (code, _, stderr) = json(
        tool(&[
            "export",
            "--out",
            &archive_arg,
            "--pg-uri",
            "env:OLD_PG_URI",
        ])
        .env(
            "OLD_PG_URI",
            pg_uri(&old_pg, old_pg.superuser(), &old_password),
        ),
    );
    assert_eq!(code, 0, "{stderr}");

    let new_pg = new_target(&tools, &pki);
    let restore = || {
        let mut command = tool(&["restore", &archive_arg, "--pg-uri", "env:NEW_PG_URI"]);
        command.env("NEW_PG_URI", pg_uri(&new_pg, "circle", HOSTILE));
        command
    };
    let mut child = restore()
        .arg("--json")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    kill_while_copying(&mut child, &new_pg, &["circle"], 300_000);

    let (code, rerun, stderr) = json(&mut restore());
    assert_eq!(code, 0, "{stderr}");
    assert!(
        rerun["mismatches"].as_array().unwrap().is_empty(),
        "{rerun}"
    );
    assert_eq!(
        psql(&new_pg, "circle", "SELECT count(*) FROM builds"),
        "300000"
    );
    assert_eq!(
        psql(
            &new_pg,
            "circle",
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'builds'"
        ),
        "1",
        "the primary key (post-data) is there"
    );
}

/// Kills `child` once its COPY into `circle` on `pg` runs, waits for the
/// psql sessions it left on `databases` to end (psql reads the end of its
/// input without a COMMIT and leaves; the server rolls back), and checks
/// that `circle.builds` is either absent or whole (`rows`): were the kill
/// to land after the last byte, the database would be complete — never
/// partial.
pub(crate) fn kill_while_copying(
    child: &mut std::process::Child,
    pg: &Postgres,
    databases: &[&str],
    rows: u32,
) {
    wait_until(
        "the COPY into circle to start",
        std::time::Duration::from_secs(120),
        || {
            psql(
                pg,
                "postgres",
                "SELECT count(*) FROM pg_stat_activity WHERE datname = 'circle' AND query LIKE 'COPY%'",
            ) != "0"
        },
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let names = databases
        .iter()
        .map(|d| format!("'{d}'"))
        .collect::<Vec<_>>()
        .join(", ");
    wait_until(
        "the orphaned psql sessions to end",
        std::time::Duration::from_secs(120),
        || {
            psql(
                pg,
                "postgres",
                &format!("SELECT count(*) FROM pg_stat_activity WHERE datname IN ({names})"),
            ) == "0"
        },
    );
    let tables = psql(
        pg,
        "circle",
        "SELECT count(*) FROM pg_tables WHERE tablename = 'builds'",
    );
    if tables != "0" {
        assert_eq!(
            psql(pg, "circle", "SELECT count(*) FROM builds"),
            rows.to_string(),
            "a killed run committed part of a database"
        );
    }
}

/// SIGTERM (or Ctrl-C) while circle-export waits on a server leaves no
/// password file and no spool behind, and says so; exit 130.
#[test]
fn a_terminated_export_removes_its_password_file_and_spool() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    // A "server" that accepts and never answers: pg_dump waits on it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let out = dir.path().join("out.tar.zst");
    let child = tool(&["export", "--pg-uri", "env:T_OLD_PG_URI", "--out"])
        .arg(&out)
        .env(
            "T_OLD_PG_URI",
            format!(
                "postgresql://circle:{}@127.0.0.1:{port}/postgres?sslmode=disable",
                enc(HOSTILE)
            ),
        )
        .env("TMPDIR", &tmp)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let passfile_dirs = || {
        std::fs::read_dir(&tmp)
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("circle-export-pg-")
            })
            .count()
    };
    wait_until(
        "the password file",
        std::time::Duration::from_secs(60),
        || passfile_dirs() == 1,
    );
    // The shell's own kill: no procps needed.
    let killed = Command::new("sh")
        .args(["-c", "kill -TERM \"$0\"", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(passfile_dirs(), 0, "the password file outlived the run");
    let spool = dir.path().join("out.tar.zst.spool.d");
    assert!(!spool.exists(), "the spool outlived the run");
    assert!(!stderr.contains("wörd"), "{stderr}");
    drop(silent);
}
