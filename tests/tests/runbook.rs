//! The whole runbook, end to end, on the lab `circle-ha demo` uses.
//!
//! Runs the demo's flow ([`ha_demo::run_lab`]: certificates, the
//! lab services, `ha.toml`, Vault init and unseal, `apply` twice, an old
//! Services machine seeded, export and restore, the bundle published to
//! the emulated S3/EC2, `status`) with hostile secrets, then checks each
//! phase's result against the live services with clients of its own:
//!
//! - the published userdata is under EC2's 16 KB, and every MongoDB URI of
//!   the published bundle names the app user with its password, every
//!   member and the set, and lets that user write its database (the four
//!   app databases in all) over TLS, and not `admin`;
//! - the restored data equals the seeded data: every document of every
//!   collection, every row of every table, every sequence;
//! - the app role reaches all eight PostgreSQL databases with their
//!   extensions, and may create tables there;
//! - the app token encrypts and decrypts, is periodic, and cannot read
//!   `sys/mounts`;
//! - the `circle-ha` binary's `apply` changes nothing, twice, and `status`
//!   calls everything healthy;
//! - `circle-ha doctor` on the rendered bundle finds nothing, and finds
//!   exactly the one cause when one thing is broken: a wrong password, a
//!   malformed URI, a member name that does not resolve, a member reached
//!   by another loopback address than the one it listens on, a wrong
//!   `replicaSet`, a CA that did not sign the servers, a missing file, a
//!   missing PostgreSQL extension, a sealed Vault.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use base64::Engine as _;
use bson::Document;
use futures_util::TryStreamExt as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};

use ha_demo::{Lab, Outcome, Phase};

/// Every lab secret is this plus its name: quotes, shell and URI
/// metacharacters, a backslash, non-ASCII. `wörd` marks a leak.
const HOSTILE: &str = "p'\"$@:/?#%\\ `x` wörd–密";

/// The runbook's PostgreSQL databases and the extensions each must have.
const PG_DATABASES: [(&str, &[&str]); 8] = [
    ("circle", &["pgcrypto", "uuid-ossp"]),
    ("conductor_production", &["uuid-ossp"]),
    ("contexts_service_production", &["uuid-ossp"]),
    ("cron_service_production", &["uuid-ossp"]),
    ("domain", &["uuid-ossp"]),
    ("federations", &["uuid-ossp"]),
    ("permissions", &["uuid-ossp"]),
    ("vms", &["uuid-ossp"]),
];

/// The databases CircleCI's five MongoDB URIs name.
const MONGO_APP_DATABASES: [&str; 4] = [
    "build_state_dev_ghe",
    "circle_ghe",
    "containers_dev_ghe",
    "remote_containers_dev_ghe",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runbook_runs_end_to_end_and_every_phase_did_what_it_says() {
    let tools = ha_lab::Toolbox::discover(std::env::vars_os());
    let hostile = |name: &str| Ok(SecretString::from(format!("{HOSTILE}-{name}")));
    // Progress as the phases end; a phase text holding a secret is not
    // printed (the assertion below fails on it).
    let mut print = |phase: &Phase| {
        let text = format!("{:?}", phase.result);
        let text = if text.contains("wörd") {
            "(withheld: holds a secret)"
        } else {
            &text
        };
        eprintln!("{:>6.1}s {} {text}", phase.seconds, phase.name);
    };
    let (phases, lab) = ha_demo::run_lab(&tools, &hostile, &mut print)
        .await
        .expect("the lab CA");
    let report: Vec<String> = phases
        .iter()
        .map(|p| format!("{}: {:?}", p.name, p.result))
        .collect();
    let report = report.join("\n");
    assert!(!report.contains("wörd"), "a secret leaked into the report");
    assert!(
        phases.iter().all(|p| matches!(p.result, Outcome::Done(_))),
        "not every phase is green:\n{report}"
    );
    assert!(
        report.contains("apply again (changed: 0): Done(\"changed: 0\")"),
        "{report}"
    );

    let config = Config::read(&lab);
    let bundle = published_bundle(&lab, &config).await;
    let uris = mongo_uris(&bundle, &lab, &config).await;
    restored_mongo_equals_seeded(&lab, &uris).await;
    restored_postgres_equals_seeded(&lab, &config).await;
    app_user_writes_its_mongo_databases(&uris).await;
    app_role_reaches_every_database(&lab, &config).await;
    app_token_encrypts_and_is_confined(&lab, &config).await;
    binary_applies_nothing_and_reports_healthy(&lab);
    doctor_names_each_cause_and_nothing_else(&lab).await;
}

/// What the test reads from the lab's `ha.toml`.
struct Config {
    mongo_app_user: String,
    replica_set: String,
    pg_app_user: String,
    app_token_file: PathBuf,
    transit_mount: String,
    bucket: String,
    launch_template: String,
}

impl Config {
    fn read(lab: &Lab) -> Config {
        let path = lab.config_file().expect("ha.toml was written");
        let table: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        let get = |section: &str, key: &str| -> String {
            let mut value = &table[section];
            for part in key.split('.') {
                value = &value[part];
            }
            value
                .as_str()
                .unwrap_or_else(|| panic!("[{section}] {key}"))
                .to_owned()
        };
        let dir = path.parent().unwrap().to_owned();
        Config {
            mongo_app_user: get("mongo", "users.app.name"),
            replica_set: get("mongo", "replica_set"),
            pg_app_user: get("postgres", "app_user"),
            app_token_file: dir.join(get("vault", "app_token_file")),
            transit_mount: get("vault", "transit_mount"),
            bucket: get("services", "s3_bucket"),
            launch_template: get("services", "launch_template"),
        }
    }
}

fn secret(lab: &Lab, name: &str) -> String {
    lab.secret(name)
        .unwrap_or_else(|| panic!("no secret {name}"))
        .expose_secret()
        .to_owned()
}

fn tls_config(lab: &Lab) -> rustls::ClientConfig {
    let ca = std::fs::read(lab.ca_file()).unwrap();
    ha_tls::client_config(
        Some((&ca, "lab CA")),
        ha_tls::ServerVerification::Full,
        None,
    )
    .unwrap()
}

/// The bundle as the Services machine would fetch it: every object in
/// the bucket, by key. Checks the launch template's default version
/// carries userdata under 16 KB that fetches from that bucket and holds
/// no secret.
async fn published_bundle(lab: &Lab, config: &Config) -> BTreeMap<String, Vec<u8>> {
    let moto = lab.moto().expect("moto runs");
    let s3 = moto.s3_client();
    let listed = s3
        .list_objects_v2()
        .bucket(&config.bucket)
        .send()
        .await
        .unwrap();
    let mut bundle = BTreeMap::new();
    for object in listed.contents() {
        let key = object.key().unwrap().to_owned();
        let body = s3
            .get_object()
            .bucket(&config.bucket)
            .key(&key)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .to_vec();
        bundle.insert(key, body);
    }

    // Read back through boto3, moto's own client (not the tools' EC2 calls).
    let versions = moto
        .boto3(
            "ec2",
            "describe_launch_template_versions",
            &json!({ "LaunchTemplateName": config.launch_template, "Versions": ["$Default"] }),
        )
        .unwrap();
    let encoded = versions["LaunchTemplateVersions"][0]["LaunchTemplateData"]["UserData"]
        .as_str()
        .expect("the default version has user data");
    let userdata = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    assert!(
        userdata.len() < 16 * 1024,
        "userdata is {} bytes; EC2 takes at most 16 KB",
        userdata.len()
    );
    let userdata = String::from_utf8(userdata).unwrap();
    // First, so that the messages below never print a secret.
    assert!(!userdata.contains("wörd"), "a secret is in the userdata");
    assert!(userdata.starts_with("#!"), "{userdata}");
    assert!(userdata.contains(&config.bucket), "{userdata}");
    assert!(
        bundle.keys().any(|k| k.ends_with("settings.conf")),
        "{:?}",
        bundle.keys()
    );
    bundle
}

/// The five `CIRCLE_SECRETS_MONGODB_*_URI` of the published bundle, each
/// checked against `ha.toml`'s app user, its password, the members and
/// the set, with the options a client needs to reach the lab: database →
/// client options.
async fn mongo_uris(
    bundle: &BTreeMap<String, Vec<u8>>,
    lab: &Lab,
    config: &Config,
) -> BTreeMap<String, mongodb::options::ClientOptions> {
    let (_, customizations) = bundle
        .iter()
        .find(|(k, _)| k.ends_with("circle-installation-customizations"))
        .expect("circle-installation-customizations is published");
    let customizations = String::from_utf8(customizations.clone()).unwrap();
    let uris: Vec<String> = customizations
        .lines()
        .filter_map(|l| l.strip_prefix("export CIRCLE_SECRETS_MONGODB_"))
        .filter_map(|l| l.split_once('=').map(|(_, v)| shell_unquote(v)))
        .collect();
    assert_eq!(uris.len(), 5, "{}", customizations.len());
    let password = secret(lab, "MONGO_APP_PASSWORD");
    let mut members: Vec<String> = lab.mongo_members().iter().map(|m| m.host()).collect();
    members.sort();
    let mut by_database = BTreeMap::new();
    for uri in &uris {
        let mut options = mongodb::options::ClientOptions::parse(uri)
            .await
            .unwrap_or_else(|e| panic!("a published URI does not parse: {e}"));
        let credential = options.credential.clone().expect("credentials");
        assert_eq!(
            credential.username.as_deref(),
            Some(&*config.mongo_app_user)
        );
        assert!(
            credential.password.as_deref() == Some(&*password),
            "a URI's password is not the app user's"
        );
        assert_eq!(credential.source.as_deref(), Some("admin"));
        assert_eq!(options.repl_set_name.as_deref(), Some(&*config.replica_set));
        let mut hosts: Vec<String> = options.hosts.iter().map(ToString::to_string).collect();
        hosts.sort();
        assert_eq!(hosts, members);
        assert!(
            matches!(options.tls, Some(mongodb::options::Tls::Enabled(_))),
            "a URI without TLS"
        );
        // On the Services machine the CA is in the system store; here it
        // is the lab's.
        options.tls = Some(mongodb::options::Tls::Enabled(
            mongodb::options::TlsOptions::builder()
                .ca_file_path(lab.ca_file())
                .build(),
        ));
        options.server_selection_timeout = Some(std::time::Duration::from_secs(60));
        let db = options.default_database.clone().expect("a database");
        by_database.insert(db, options);
    }
    assert_eq!(
        by_database.keys().collect::<Vec<_>>(),
        MONGO_APP_DATABASES,
        "the URIs' databases"
    );
    by_database
}

/// `'...'` with `'\''` inside, as the bundle writes shell values.
fn shell_unquote(value: &str) -> String {
    let inner = value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or_else(|| panic!("not single-quoted ({} bytes)", value.len()));
    inner.replace("'\\''", "'")
}

/// Every collection of every database of the old machine (MongoDB 3.6,
/// which the Rust driver refuses: read by pymongo 3.13, a client of that
/// era independent of circle-export's reader), document by document in
/// `_id` order as raw BSON, and its index names, against the replica set as
/// CircleCI reads it (the app user, through the published URI).
async fn restored_mongo_equals_seeded(
    lab: &Lab,
    uris: &BTreeMap<String, mongodb::options::ClientOptions>,
) {
    const READ_OLD: &str = r#"
import json, sys, pymongo
from bson.raw_bson import RawBSONDocument
from bson.codec_options import CodecOptions
c = pymongo.MongoClient("mongodb://localhost:%s/?directConnection=true" % sys.argv[1],
                        serverSelectionTimeoutMS=20000)
raw = CodecOptions(document_class=RawBSONDocument)
out = {}
for db in sorted(d for d in c.list_database_names() if d not in ("admin", "local", "config")):
    out[db] = {}
    for name in sorted(c[db].list_collection_names()):
        coll = c[db].get_collection(name, codec_options=raw)
        out[db][name] = {
            "docs": [d.raw.hex() for d in coll.find({}).sort("_id", 1)],
            "indexes": sorted(i["name"] for i in c[db][name].list_indexes()),
        }
print(json.dumps(out))
"#;
    let old = lab.old_mongo().expect("the old machine was seeded");
    let python = ha_lab::Toolbox::discover(std::env::vars_os())
        .python_pymongo3()
        .unwrap_or_else(|e| panic!("{e}"));
    let output = Command::new(python)
        .args(["-c", READ_OLD, &old.port().to_string()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "pymongo 3.13 could not read the old machine: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seeded: Value = serde_json::from_slice(&output.stdout).unwrap();
    let databases: Vec<&String> = seeded.as_object().unwrap().keys().collect();
    assert_eq!(databases, ["build_state_dev_ghe", "circle_ghe"]);
    let mut documents = 0;
    for (name, collections) in seeded.as_object().unwrap() {
        let new = mongodb::Client::with_options(uris[name].clone()).unwrap();
        let new_db = new.database(name);
        let mut restored = new_db.list_collection_names().await.unwrap();
        restored.sort();
        let wanted: Vec<&String> = collections.as_object().unwrap().keys().collect();
        assert_eq!(
            restored.iter().collect::<Vec<_>>(),
            wanted,
            "collections of {name}"
        );
        for (collection, old) in collections.as_object().unwrap() {
            let c = new_db.collection::<bson::RawDocumentBuf>(collection);
            let got: Vec<String> = c
                .find(bson::doc! {})
                .sort(bson::doc! {"_id": 1})
                .await
                .unwrap()
                .try_collect::<Vec<_>>()
                .await
                .unwrap()
                .iter()
                .map(|d| d.as_bytes().iter().map(|b| format!("{b:02x}")).collect())
                .collect();
            let seeded_docs: Vec<&str> = old["docs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap())
                .collect();
            assert_eq!(got.len(), seeded_docs.len(), "{name}.{collection}");
            if let Some(i) = (0..got.len()).find(|&i| got[i] != seeded_docs[i]) {
                panic!(
                    "{name}.{collection}: document {i} differs:\nseeded   {}\nrestored {}",
                    seeded_docs[i], got[i]
                );
            }
            let mut indexes = c.list_index_names().await.unwrap();
            indexes.sort();
            assert_eq!(
                serde_json::to_value(&indexes).unwrap(),
                old["indexes"],
                "{name}.{collection}"
            );
            documents += got.len() as u64;
        }
    }
    // The demo's cutover phase added 30 documents and deleted 20 on the
    // old side after the restore, and moved them.
    assert_eq!(documents, lab.seeded().0 + 10, "documents compared");
}

/// A verify-full TLS connection to one of the lab's PostgreSQL servers.
async fn pg_connect(
    pg: &ha_lab::Postgres,
    tls: &rustls::ClientConfig,
    user: &str,
    password: &str,
    dbname: &str,
) -> tokio_postgres::Client {
    let config = pg.client_config(user, password, dbname);
    let (client, connection) = config
        .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls.clone()))
        .await
        .unwrap_or_else(|e| panic!("{user} cannot reach {dbname}: {e}"));
    tokio::spawn(connection);
    client
}

/// The first column of every row `sql` returns.
async fn strings(client: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    let rows = client.query(sql, &[]).await.unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

/// What a PostgreSQL database holds, to compare: per table its row count
/// and a digest of its rows in a fixed order, per sequence its last value.
async fn pg_contents(client: &tokio_postgres::Client) -> Vec<(String, i64, String)> {
    let mut contents = Vec::new();
    let tables = strings(
        client,
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables \
         WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    )
    .await;
    for table in tables {
        let row = client
            .query_one(
                &format!(
                    "SELECT count(*), coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '') \
                     FROM {table} t"
                ),
                &[],
            )
            .await
            .unwrap();
        contents.push((table, row.get(0), row.get(1)));
    }
    let sequences = client
        .query(
            "SELECT format('%I.%I', schemaname, sequencename), last_value FROM pg_sequences ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    for row in sequences {
        let last: Option<i64> = row.get(1);
        contents.push((row.get(0), last.unwrap_or(-1), "sequence".to_owned()));
    }
    contents
}

/// Every table and sequence of every database of the old PostgreSQL, as
/// the app role sees them on the new server.
async fn restored_postgres_equals_seeded(lab: &Lab, config: &Config) {
    let tls = tls_config(lab);
    let old = lab.old_postgres().expect("the old machine was seeded");
    let new = lab.postgres().expect("the new PostgreSQL runs");
    let old_password = old.superuser_password().expose_secret().to_owned();
    let app_password = secret(lab, "PG_APP_PASSWORD");
    let admin = pg_connect(old, &tls, old.superuser(), &old_password, "postgres").await;
    let databases = strings(
        &admin,
        "SELECT datname::text FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres' \
         ORDER BY 1",
    )
    .await;
    assert_eq!(databases, ["circle", "vms"]);
    let mut rows = 0;
    for db in &databases {
        let seeded =
            pg_contents(&pg_connect(old, &tls, old.superuser(), &old_password, db).await).await;
        let restored =
            pg_contents(&pg_connect(new, &tls, &config.pg_app_user, &app_password, db).await).await;
        assert_eq!(restored, seeded, "{db}: (table, rows, md5 of the rows)");
        rows += seeded
            .iter()
            .filter(|(_, _, digest)| digest != "sequence")
            .map(|(_, n, _)| u64::try_from(*n).unwrap())
            .sum::<u64>();
    }
    // The cutover phase: 25 rows added, 15 deleted on the old side.
    assert_eq!(rows, lab.seeded().1 + 10, "rows compared");
}

/// The app user writes each of its databases through its URI, and is
/// refused `admin`.
async fn app_user_writes_its_mongo_databases(
    uris: &BTreeMap<String, mongodb::options::ClientOptions>,
) {
    for (db, options) in uris {
        let client = mongodb::Client::with_options(options.clone()).unwrap();
        let probe = client
            .database(db)
            .collection::<Document>("circle_ha_probe");
        probe
            .insert_one(bson::doc! {"by": "the end-to-end test"})
            .await
            .unwrap_or_else(|e| panic!("the app user cannot write {db}: {e}"));
        assert_eq!(
            probe.count_documents(bson::doc! {}).await.unwrap(),
            1,
            "{db}"
        );
        let denied = client
            .database("admin")
            .collection::<Document>("circle_ha_probe")
            .insert_one(bson::doc! {"x": 1})
            .await
            .expect_err("the app user may write admin");
        assert!(
            matches!(
                *denied.kind,
                mongodb::error::ErrorKind::Command(ref c) if c.code == 13
            ) || denied.to_string().contains("not authorized"),
            "{denied}"
        );
    }
}

/// The app role connects to each of the eight databases, finds exactly
/// its extensions there and can use them, and may create a table.
async fn app_role_reaches_every_database(lab: &Lab, config: &Config) {
    let tls = tls_config(lab);
    let pg = lab.postgres().expect("the new PostgreSQL runs");
    let password = secret(lab, "PG_APP_PASSWORD");
    for (db, extensions) in PG_DATABASES {
        let client = pg_connect(pg, &tls, &config.pg_app_user, &password, db).await;
        let found = strings(
            &client,
            "SELECT extname::text FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY 1",
        )
        .await;
        assert_eq!(found, extensions, "extensions of {db}");
        let uuid: String = client
            .query_one("SELECT uuid_generate_v4()::text", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(uuid.len(), 36, "{db}");
        if extensions.contains(&"pgcrypto") {
            let digest: String = client
                .query_one("SELECT encode(digest('circle', 'sha256'), 'hex')", &[])
                .await
                .unwrap()
                .get(0);
            assert_eq!(digest.len(), 64, "{db}");
        }
        client
            .batch_execute("CREATE TABLE circle_ha_probe (id int); DROP TABLE circle_ha_probe")
            .await
            .unwrap_or_else(|e| panic!("the app role cannot create a table in {db}: {e}"));
    }
}

/// The token `apply` wrote (0600) encrypts and decrypts with a key of its
/// own making, is periodic, and is refused `sys/mounts`.
async fn app_token_encrypts_and_is_confined(lab: &Lab, config: &Config) {
    use std::os::unix::fs::PermissionsExt as _;
    let bao = lab.openbao().expect("OpenBao runs");
    let mode = std::fs::metadata(&config.app_token_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{}", config.app_token_file.display());
    let token = std::fs::read_to_string(&config.app_token_file).unwrap();
    let token = token.trim();
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls_config(lab))
        .resolve("localhost", ([127, 0, 0, 1], bao.port()).into())
        .build()
        .unwrap();
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut request = http
            .request(method, format!("{}/v1/{path}", bao.addr()))
            .header("X-Vault-Token", token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body)
        }
    };
    let mount = &config.transit_mount;
    let plaintext = base64::engine::general_purpose::STANDARD.encode("circle-ha: ünïcode ✓");
    let (status, encrypted) = call(
        reqwest::Method::POST,
        &format!("{mount}/encrypt/circle-ha-e2e"),
        Some(json!({ "plaintext": plaintext })),
    )
    .await;
    assert_eq!(status, 200, "encrypt: {encrypted}");
    let ciphertext = encrypted["data"]["ciphertext"].as_str().unwrap().to_owned();
    assert!(ciphertext.starts_with("vault:v1:"), "{ciphertext}");
    let (status, decrypted) = call(
        reqwest::Method::POST,
        &format!("{mount}/decrypt/circle-ha-e2e"),
        Some(json!({ "ciphertext": ciphertext })),
    )
    .await;
    assert_eq!(status, 200, "decrypt: {decrypted}");
    assert_eq!(decrypted["data"]["plaintext"], plaintext);

    let (status, me) = call(reqwest::Method::GET, "auth/token/lookup-self", None).await;
    assert_eq!(status, 200, "{me}");
    assert!(
        me["data"]["period"].as_u64().unwrap_or(0) > 0,
        "not periodic: {me}"
    );
    assert_eq!(me["data"]["renewable"], true, "{me}");
    assert_eq!(me["data"]["orphan"], true, "{me}");

    let (status, mounts) = call(reqwest::Method::GET, "sys/mounts", None).await;
    assert_eq!(status, 403, "the app token read sys/mounts: {mounts}");
}

/// `circle-ha apply --config ha.toml --json` as an operator runs it, twice
/// (the demo applied twice already: both change nothing), then `status`.
fn binary_applies_nothing_and_reports_healthy(lab: &Lab) {
    let config = lab.config_file().unwrap();
    let run = |args: &[&str]| {
        let output = Command::new(circle_ha_bin())
            .args(args)
            .arg("--config")
            .arg(&config)
            .arg("--json")
            .current_dir(config.parent().unwrap())
            .envs(lab.secrets().map(|(k, v)| (k, v.expose_secret())))
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !stdout.contains("wörd") && !stderr.contains("wörd"),
            "a secret leaked from circle-ha {args:?}"
        );
        let json: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("circle-ha {args:?}: {e}\n{stdout}\n{stderr}"));
        (output.status.code(), json, stderr.into_owned())
    };
    for round in 1..=2 {
        let (code, report, stderr) = run(&["apply"]);
        assert_eq!(code, Some(0), "apply {round}: {report}\n{stderr}");
        assert_eq!(report["changed"], 0, "apply {round}: {report}");
        assert!(report["actions"].is_array(), "{report}");
    }
    // Status reads the encryption keys' copy the demo stored back from the
    // emulator and compares it with the lab's keys directory.
    let moto = lab.moto().expect("moto runs");
    let endpoint = moto.endpoint();
    let keys_dir = config.parent().unwrap().join("circle-data");
    let keys_dir = keys_dir.to_str().unwrap();
    let (code, status, stderr) = run(&[
        "status",
        "--endpoint-url",
        &endpoint,
        "--keys-dir",
        keys_dir,
    ]);
    assert_eq!(code, Some(0), "{status}\n{stderr}");
    let concerns = status["concerns"].as_array().unwrap();
    let names: Vec<&str> = concerns
        .iter()
        .map(|c| c["concern"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["mongo", "postgres", "vault", "userdata", "keys"],
        "{status}"
    );
    assert!(concerns.iter().all(|c| c["healthy"] == true), "{status}");
}

/// The `circle-ha` binary cargo built next to this test (`cargo test
/// --workspace` builds it for the `circle-ha` package's own tests).
fn circle_ha_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let candidates = [
        deps.join("circle-ha"),
        deps.parent().unwrap().join("circle-ha"),
    ];
    candidates
        .iter()
        .find(|c| c.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no circle-ha binary at {}: build it with `cargo build -p circle-ha` \
                 (`cargo test --workspace`, as `cargo xtask test` runs it, does)",
                candidates[1].display()
            )
        })
}

/// Copies the rendered bundle into a fresh directory and lets `edit`
/// break one thing in it.
fn bundle_variant(
    bundle: &std::path::Path,
    edit: impl FnOnce(&std::path::Path),
) -> tempfile::TempDir {
    fn copy(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(bundle, dir.path());
    edit(dir.path());
    dir
}

/// Rewrites the MAIN URI line of the customizations file.
fn edit_main_uri(dir: &std::path::Path, edit: impl Fn(&str) -> String) {
    let path = dir.join("circle-installation-customizations");
    let text = std::fs::read_to_string(&path).unwrap();
    let text: Vec<String> = text
        .lines()
        .map(|line| {
            if line.starts_with("export CIRCLE_SECRETS_MONGODB_MAIN_URI=") {
                edit(line)
            } else {
                line.to_owned()
            }
        })
        .collect();
    std::fs::write(&path, text.join("\n") + "\n").unwrap();
}

async fn doctor(dir: &std::path::Path) -> ha_doctor::Report {
    let options = ha_doctor::Options {
        step_timeout: std::time::Duration::from_secs(5),
        read_only: false,
    };
    ha_doctor::doctor(&ha_doctor::Machine::bundle(dir), &options).await
}

/// Asserts that the report holds only `cause`, on `what` (a prefix), at
/// least once, and no secret.
fn only(report: &ha_doctor::Report, cause: ha_doctor::Cause, what: &str, case: &str) {
    let text = ha_plan::Document::to_text(report);
    assert!(
        !text.contains("wörd"),
        "{case}: a secret in the report:\n{text}"
    );
    assert!(!report.findings.is_empty(), "{case}: nothing found");
    for finding in &report.findings {
        assert!(
            finding.cause == cause && finding.what.starts_with(what),
            "{case}: expected only {cause} on {what}, got:\n{text}"
        );
    }
}

async fn doctor_names_each_cause_and_nothing_else(lab: &Lab) {
    use ha_doctor::Cause;
    let bundle = lab.dir().expect("lab dir").join("bundle");
    let healthy = doctor(&bundle).await;
    assert!(
        healthy.is_healthy(),
        "{}",
        ha_plan::Document::to_text(&healthy)
    );
    assert!(healthy.checked.len() >= 12, "{:?}", healthy.checked);
    let main = "CIRCLE_SECRETS_MONGODB_MAIN_URI";
    let members: Vec<String> = lab.mongo_members().iter().map(|m| m.host()).collect();

    let wrong_password = bundle_variant(&bundle, |dir| {
        edit_main_uri(dir, |line| {
            let start = line.find("://").unwrap() + 3;
            let colon = start + line[start..].find(':').unwrap();
            let at = colon + line[colon..].find('@').unwrap();
            format!("{}wrong{}", &line[..=colon], &line[at..])
        })
    });
    only(
        &doctor(wrong_password.path()).await,
        Cause::Credentials,
        main,
        "wrong password",
    );
    // The binary: exit 0 on the healthy bundle, 3 naming the cause, 2 for
    // a directory that is not there; JSON only on stdout, no secret.
    let doctor_bin = |dir: &std::path::Path| {
        let output = Command::new(circle_ha_bin())
            .args(["doctor", "--json", "--bundle-dir"])
            .arg(dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(!stdout.contains("wörd"), "a secret leaked from doctor");
        let json: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
        (output.status.code(), json)
    };
    let (code, json) = doctor_bin(&bundle);
    assert_eq!((code, &json["healthy"]), (Some(0), &json!(true)), "{json}");
    let (code, json) = doctor_bin(wrong_password.path());
    assert_eq!(code, Some(3), "{json}");
    assert_eq!(json["problems"][0]["cause"], "credentials", "{json}");
    // A program linking ha-doctor gets the same document.
    let mut cli = json.clone();
    for envelope in ["schema_version", "tool"] {
        cli.as_object_mut().unwrap().remove(envelope);
    }
    let typed = serde_json::to_value(doctor(wrong_password.path()).await).unwrap();
    assert_eq!(typed, cli);
    assert_eq!(doctor_bin(&bundle.join("no-such-dir")).0, Some(2));

    let malformed = bundle_variant(&bundle, |dir| {
        edit_main_uri(dir, |line| line.replace("mongodb://", "mongodb:/"))
    });
    only(
        &doctor(malformed.path()).await,
        Cause::MalformedUri,
        main,
        "malformed URI",
    );

    let first_port = members[0].rsplit_once(':').unwrap().1.to_owned();
    let unresolvable = bundle_variant(&bundle, |dir| {
        edit_main_uri(dir, |line| {
            line.replace(&members[0], &format!("mongo-9.invalid:{first_port}"))
        })
    });
    only(
        &doctor(unresolvable.path()).await,
        Cause::Network,
        main,
        "unresolvable member",
    );

    let localhost_only = bundle_variant(&bundle, |dir| {
        edit_main_uri(dir, |line| {
            line.replace(&members[0], &format!("127.0.0.2:{first_port}"))
        })
    });
    only(
        &doctor(localhost_only.path()).await,
        Cause::LocalhostOnly,
        main,
        "bound to localhost",
    );

    let wrong_set = bundle_variant(&bundle, |dir| {
        edit_main_uri(dir, |line| {
            let start = line.find("replicaSet=").unwrap() + "replicaSet=".len();
            let end = start + line[start..].find('&').unwrap();
            format!("{}wrong_set{}", &line[..start], &line[end..])
        })
    });
    only(
        &doctor(wrong_set.path()).await,
        Cause::DatabaseConfiguration,
        main,
        "wrong replicaSet",
    );

    let other_ca = ha_lab::LabPki::new().unwrap();
    let wrong_ca = bundle_variant(&bundle, |dir| {
        std::fs::copy(other_ca.ca_file(), dir.join("ca.crt")).unwrap();
    });
    only(
        &doctor(wrong_ca.path()).await,
        Cause::Tls,
        "",
        "a CA that did not sign the servers",
    );

    // An expired server certificate (from the right CA) on a member the
    // URI names.
    let lab_pki = ha_lab::LabPki::in_dir(lab.ca_file().parent().unwrap()).unwrap();
    let long_ago = time::OffsetDateTime::now_utc() - time::Duration::days(800);
    let spec = ha_tls::LeafSpec::host(&["localhost", "127.0.0.1"], "Lab", "Expired").unwrap();
    let expired = lab_pki.ca().issue(&spec, long_ago).unwrap();
    let expired_dir = tempfile::tempdir().unwrap();
    let expired_pem = expired_dir.path().join("expired.pem");
    std::fs::write(
        &expired_pem,
        format!("{}{}", expired.cert_pem, expired.key_pem.expose_secret()),
    )
    .unwrap();
    let tools = ha_lab::Toolbox::discover(std::env::vars_os());
    let stale = ha_lab::MongoMember::start(
        &tools,
        ha_lab::MongoMemberOptions {
            tls: Some(ha_lab::MongoTls {
                mode: ha_lab::TlsMode::Require,
                certificate_key_file: expired_pem,
                ca_file: lab.ca_file(),
                cluster_file: None,
                allow_connections_without_certificates: true,
            }),
            ..ha_lab::MongoMemberOptions::default()
        },
    )
    .unwrap();
    let expired_cert = bundle_variant(&bundle, |dir| {
        edit_main_uri(dir, |line| {
            let start = line.find('@').unwrap() + 1;
            let end = start + line[start..].find('/').unwrap();
            format!("{}{}{}", &line[..start], stale.host(), &line[end..])
        })
    });
    only(
        &doctor(expired_cert.path()).await,
        Cause::Tls,
        main,
        "an expired server certificate",
    );
    drop(stale);

    let missing = bundle_variant(&bundle, |dir| {
        std::fs::remove_file(dir.join("circleconfig/shared/vault")).unwrap();
    });
    only(
        &doctor(missing.path()).await,
        Cause::MachineSetup,
        &missing
            .path()
            .join("circleconfig/shared/vault")
            .display()
            .to_string(),
        "missing file",
    );

    // A missing extension, then put back.
    let postgres = lab.postgres().expect("postgres");
    let psql = |sql: &str| {
        let status = Command::new(postgres.bin_dir().join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .envs(postgres.libpq_env("vms").unwrap())
            .status()
            .unwrap();
        assert!(status.success(), "psql {sql}");
    };
    psql("DROP EXTENSION \"uuid-ossp\"");
    only(
        &doctor(&bundle).await,
        Cause::DatabaseConfiguration,
        "postgresql",
        "missing extension",
    );
    psql("CREATE EXTENSION \"uuid-ossp\"");

    // A sealed Vault, then unsealed from its key files.
    let config = ha_config::HaConfig::load(&lab.config_file().unwrap()).unwrap();
    let settings = config.vault(false).unwrap();
    let client = settings.client().unwrap();
    let env = |name: &str| lab.secret(name).map(|v| v.expose_secret().to_owned());
    let admin = config
        .vault_admin_token(&settings, &env, &mut Vec::new())
        .unwrap();
    vault_transit::seal(&client, &admin).await.unwrap();
    only(
        &doctor(&bundle).await,
        Cause::DatabaseConfiguration,
        "vault",
        "sealed Vault",
    );
    vault_transit::unseal_from_files(&client, &settings.keys, &|_| {})
        .await
        .unwrap();
    assert!(doctor(&bundle).await.is_healthy());

    // The app user without readWrite on one of its databases, then back.
    let setup = config
        .mongo_setup(&env, &ha_config::MongoOptions::default())
        .await
        .unwrap();
    let session = mongo_rs_setup::Session::new(&setup.spec);
    let mut primary = None;
    for member in &members {
        if session.hello(member).await.is_ok_and(|h| h.primary) {
            primary = Some(member.clone());
        }
    }
    let primary = primary.expect("a primary");
    let admin_user = mongo_rs_setup::Who::User(mongo_rs_setup::UserKind::Admin);
    let role = bson::doc! {"role": "readWrite", "db": "remote_containers_dev_ghe"};
    let app = setup.spec.app.name.clone();
    session
        .command(
            &primary,
            admin_user,
            bson::doc! {"revokeRolesFromUser": &app, "roles": [role.clone()], "writeConcern": {"w": "majority"}},
        )
        .await
        .unwrap();
    only(
        &doctor(&bundle).await,
        Cause::DatabaseConfiguration,
        "CIRCLE_SECRETS_MONGODB_REMOTE_CONTAINERS_URI",
        "app user without readWrite",
    );
    session
        .command(
            &primary,
            admin_user,
            bson::doc! {"grantRolesToUser": &app, "roles": [role], "writeConcern": {"w": "majority"}},
        )
        .await
        .unwrap();

    // A revoked token (last: the lab's Vault stays without an app token).
    let token = std::fs::read_to_string(&settings.app_token_file).unwrap();
    client
        .put(
            "auth/token/revoke",
            Some(&admin),
            &json!({ "token": token.trim() }),
        )
        .await
        .unwrap();
    only(
        &doctor(&bundle).await,
        Cause::Credentials,
        "vault",
        "revoked token",
    );
}
