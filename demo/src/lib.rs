//! The circle-ha demo: start the local lab and run the runbook over it
//! (`cargo xtask demo`, binary `circle-ha-demo`). Not shipped: it links
//! `ha-lab`, which the production binaries never do.
//!
//! It starts the lab the tests use (a throw-away CA, PostgreSQL, OpenBao,
//! the AWS API emulator, three TLS MongoDB members), talks to each through
//! a real client over TLS, writes an `ha.toml` for the lab (secrets as
//! `env:` references to generated values), initialises and unseals Vault
//! as `vault-transit` does, runs `circle-ha apply` (replica set and users,
//! PostgreSQL databases, Vault transit and app token, the Services bundle)
//! twice — the second must change nothing — seeds an "old Services
//! machine" (a lone MongoDB, a PostgreSQL with CircleCI-like data),
//! exports it with circle-export and restores it onto the new hosts with
//! every count checked, publishes the Services bundle to the emulated
//! S3/EC2 (twice: the second changes nothing), and finishes with
//! `circle-ha status`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use ha_config::HaConfig;
use ha_lab::{
    LAB_SECRETS, LabHosts, LabPki, MongoMember, MongoMemberOptions, Moto, OpenBao, Postgres,
    PostgresOptions, Toolbox, lab_ha_toml,
};
use secrecy::{ExposeSecret as _, SecretString};

/// Options of `circle-ha demo`.
#[derive(Clone, Debug, Default)]
pub struct DemoOptions {
    /// Keep the services running until Ctrl-C, and print how to reach them.
    pub keep: bool,
}

/// The outcome of one phase.
#[derive(Debug)]
pub struct Phase {
    /// What the phase did.
    pub name: &'static str,
    /// How long it took.
    pub seconds: f64,
    /// How it ended.
    pub result: Outcome,
}

/// How a phase ended.
#[derive(Debug)]
pub enum Outcome {
    /// It worked; the text says what is up.
    Done(String),
    /// It failed; the text says why and what to do.
    Failed(String),
    /// The project cannot do this phase yet; the text says which part is
    /// missing. Does not fail the demo.
    Pending(String),
    /// The phase has just started: reported to the progress function
    /// only, never in the list of ended phases.
    Running,
}

impl Outcome {
    fn from_result(result: anyhow::Result<String>) -> Outcome {
        match result {
            Ok(detail) => Outcome::Done(detail),
            Err(e) => Outcome::Failed(format!("{e:#}")),
        }
    }

    /// Whether the phase failed.
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Failed(_))
    }
}

/// The lab a demo ran on, with every service it started still running:
/// the new hosts (three MongoDB members, PostgreSQL, OpenBao, the AWS
/// emulator), the "old Services machine" it seeded, and the directory
/// holding `ha.toml`, the bundle and Vault's key files. Dropping it stops
/// the services and removes the directories.
///
/// [`run_lab`] returns it so that a caller (the end-to-end test) can check
/// the results against the live services before they go away. A phase
/// that did not get to start a service leaves its accessor `None`.
pub struct Lab {
    postgres: Option<Postgres>,
    openbao: Option<OpenBao>,
    moto: Option<Moto>,
    mongo: Vec<MongoMember>,
    /// The lab's ha.toml, bundle and Vault key files.
    work: Option<tempfile::TempDir>,
    /// The secrets ha.toml refers to (`env:NAME`), generated.
    secrets: Vec<(&'static str, SecretString)>,
    old_mongo: Option<MongoMember>,
    old_postgres: Option<Postgres>,
    /// What was seeded there: documents and rows.
    seeded: (u64, u64),
    /// The lab CA; last, so that it outlives the services using it.
    pki: Arc<LabPki>,
}

impl Lab {
    /// The lab CA's certificate file, which every service's chains to.
    pub fn ca_file(&self) -> PathBuf {
        self.pki.ca_file()
    }

    /// The directory holding `ha.toml`, `license.rli`, `circle-data/`,
    /// `secrets/vault/` and `bundle/`, once the configuration phase ran.
    pub fn dir(&self) -> Option<&Path> {
        self.work.as_ref().map(tempfile::TempDir::path)
    }

    /// The lab's `ha.toml`, once the configuration phase ran.
    pub fn config_file(&self) -> Option<PathBuf> {
        self.dir().map(|d| d.join("ha.toml"))
    }

    /// The secrets `ha.toml` names as `env:NAME` ([`LAB_SECRETS`]) with
    /// their generated values: set them in a command's environment to run
    /// `circle-ha` against the lab.
    pub fn secrets(&self) -> impl Iterator<Item = (&'static str, &SecretString)> {
        self.secrets.iter().map(|(name, value)| (*name, value))
    }

    /// One secret of [`Lab::secrets`] by name.
    pub fn secret(&self, name: &str) -> Option<&SecretString> {
        self.secrets().find(|(key, _)| *key == name).map(|(_, v)| v)
    }

    /// The new replica set's members.
    pub fn mongo_members(&self) -> &[MongoMember] {
        &self.mongo
    }

    /// The new PostgreSQL server.
    pub fn postgres(&self) -> Option<&Postgres> {
        self.postgres.as_ref()
    }

    /// The Vault (OpenBao) server.
    pub fn openbao(&self) -> Option<&OpenBao> {
        self.openbao.as_ref()
    }

    /// The AWS emulator the bundle was published to.
    pub fn moto(&self) -> Option<&Moto> {
        self.moto.as_ref()
    }

    /// The old machine's lone MongoDB — 3.6.6 (mongo-sim's 3.6 profile), no
    /// auth, no TLS, as on the Services machine — once seeded.
    pub fn old_mongo(&self) -> Option<&MongoMember> {
        self.old_mongo.as_ref()
    }

    /// The old machine's PostgreSQL, once seeded.
    pub fn old_postgres(&self) -> Option<&Postgres> {
        self.old_postgres.as_ref()
    }

    /// How many MongoDB documents and PostgreSQL rows were seeded on the
    /// old machine.
    pub fn seeded(&self) -> (u64, u64) {
        self.seeded
    }
}

/// Runs the demo with tools found through `tools`, writing progress to
/// `progress` as each phase ends; with `--keep`, waits for Ctrl-C before
/// stopping the services. Returns every phase's outcome; the caller
/// decides the exit code.
pub async fn run(
    tools: &Toolbox,
    options: &DemoOptions,
    progress: &mut dyn FnMut(&Phase),
) -> anyhow::Result<Vec<Phase>> {
    let generate = |_: &str| ha_config::generate_secret(32).map_err(anyhow::Error::msg);
    let (phases, lab) = run_lab(tools, &generate, progress).await?;
    if options.keep {
        let env_file = write_keep_file(&lab)?;
        progress(&Phase {
            name: "services kept",
            seconds: 0.0,
            result: Outcome::Done(format!(
                "connection settings and secrets in {env} (0600); in another shell:\n  \
                 . {env}\n  \
                 circle-ha status --config \"$CIRCLE_HA_CONFIG\"   # every concern's health\n  \
                 psql -d circle -c '\\dx'                        # the new PostgreSQL, as its admin\n  \
                 bao status                                     # Vault (OpenBao)\n  \
                 curl -s \"$AWS_ENDPOINT_URL/circleci-ha-config\"  # the published bundle (moto S3)\n\
                 press Ctrl-C here to stop and remove everything",
                env = env_file.display()
            )),
        });
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
    }
    drop(lab);
    Ok(phases)
}

/// Runs every phase of the demo, as [`run`] does, and returns their
/// outcomes with the [`Lab`] still running. A failed phase does not stop
/// this function: the phases after it are reported as not run.
///
/// `secret` gives the value of each secret in [`LAB_SECRETS`] but
/// `PG_ADMIN_PASSWORD` (the lab PostgreSQL's own superuser password); the
/// demo generates 32 random letters and digits, a test may pass hostile
/// ones.
///
/// # Errors
///
/// Only when the lab CA cannot be created; everything else is a failed
/// [`Phase`].
pub async fn run_lab(
    tools: &Toolbox,
    secret: &dyn Fn(&str) -> anyhow::Result<SecretString>,
    progress: &mut dyn FnMut(&Phase),
) -> anyhow::Result<(Vec<Phase>, Lab)> {
    let mut phases = Recorder::new(progress);

    phases.start("certificates (ha-tls)");
    let pki = Arc::new(LabPki::new().context("creating the lab CA")?);
    phases.finish(Outcome::Done(format!(
        "CA and localhost certificate in {}",
        pki.dir().display()
    )));

    let mut running = Lab {
        postgres: None,
        openbao: None,
        moto: None,
        mongo: Vec::new(),
        work: None,
        secrets: Vec::new(),
        old_mongo: None,
        old_postgres: None,
        seeded: (0, 0),
        pki: pki.clone(),
    };
    let tls = Arc::new(ha_tls::client_config(
        Some((&std::fs::read(pki.ca_file())?, "lab CA")),
        ha_tls::ServerVerification::Full,
        None,
    )?);

    phases.start("PostgreSQL (verify-full TLS)");
    let result = postgres_phase(tools, &pki, tls.clone(), &mut running).await;
    phases.finish(Outcome::from_result(result));

    phases.start("OpenBao (TLS)");
    let result = openbao_phase(tools, &pki, tls.clone(), &mut running).await;
    phases.finish(Outcome::from_result(result));

    phases.start("AWS emulator (S3)");
    let result = moto_phase(tools, &mut running).await;
    phases.finish(Outcome::from_result(result));

    phases.start("MongoDB members (TLS, x509)");
    let result = match tools.mongo() {
        Ok(_) => Outcome::from_result(mongo_phase(tools, &pki, &mut running).await),
        Err(ha_lab::Error::ToolMissing { .. }) => Outcome::Failed(
            "no mongod here and no mongo-sim binary: build it with `cargo build -p mongo-sim` \
             (`cargo xtask demo` does), or set MONGOD_BIN to a real mongod"
                .to_owned(),
        ),
        Err(e) => Outcome::Failed(e.to_string()),
    };
    phases.finish(result);

    // The runbook over the lab, as an operator runs it.
    let steps: [&'static str; 13] = [
        "ha.toml for the lab",
        "Vault init + unseal (vault-transit)",
        "apply (every concern in ha.toml)",
        "apply again (changed: 0)",
        "old machine seeded",
        "export + restore (circle-export)",
        "cutover: final pass after changes",
        "contexts readable on the new Vault",
        "bundle published (S3, launch template)",
        "encryption keys backed up and verified",
        "status (circle-ha)",
        "backup of a secondary (mongo-backup)",
        "doctor on the bundle (circle-ha doctor)",
    ];
    for (i, name) in steps.into_iter().enumerate() {
        if phases.any_failed() {
            phases.skip(name, "not run: an earlier phase failed");
            continue;
        }
        phases.start(name);
        let result = match i {
            0 => config_phase(&pki, secret, &mut running),
            1 => vault_phase(&running).await,
            2 => apply_phase(&running, false).await,
            3 => apply_phase(&running, true).await,
            4 => seed_phase(tools, &pki, &mut running).await,
            5 => migrate_phase(&running).await,
            6 => cutover_phase(&running).await,
            7 => contexts_phase(tools, &running).await,
            8 => publish_phase(&running).await,
            9 => keys_phase(&running).await,
            10 => status_phase(&running).await,
            11 => backup_phase(&mut running).await,
            _ => doctor_phase(&running).await,
        };
        phases.finish(Outcome::from_result(result));
    }

    Ok((phases.phases, running))
}

/// Reports each phase to the caller's progress function as it starts
/// ([`Outcome::Running`]) and as it ends, and keeps the ended ones.
struct Recorder<'p> {
    progress: &'p mut dyn FnMut(&Phase),
    phases: Vec<Phase>,
    current: (&'static str, Instant),
}

impl<'p> Recorder<'p> {
    fn new(progress: &'p mut dyn FnMut(&Phase)) -> Recorder<'p> {
        Recorder {
            progress,
            phases: Vec::new(),
            current: ("", Instant::now()),
        }
    }

    fn start(&mut self, name: &'static str) {
        self.current = (name, Instant::now());
        (self.progress)(&Phase {
            name,
            seconds: 0.0,
            result: Outcome::Running,
        });
    }

    fn finish(&mut self, result: Outcome) {
        let (name, started) = self.current;
        self.push(Phase {
            name,
            seconds: started.elapsed().as_secs_f64(),
            result,
        });
    }

    /// A phase that did not start: it ends at once, failed with `why`.
    fn skip(&mut self, name: &'static str, why: &str) {
        self.push(Phase {
            name,
            seconds: 0.0,
            result: Outcome::Failed(why.to_owned()),
        });
    }

    fn push(&mut self, phase: Phase) {
        (self.progress)(&phase);
        self.phases.push(phase);
    }

    fn any_failed(&self) -> bool {
        self.phases.iter().any(|p| p.result.is_failure())
    }
}

async fn postgres_phase(
    tools: &Toolbox,
    pki: &LabPki,
    tls: Arc<rustls::ClientConfig>,
    running: &mut Lab,
) -> anyhow::Result<String> {
    let pg = Postgres::start(tools, pki, PostgresOptions::default())?;
    let config = pg.client_config(
        pg.superuser(),
        pg.superuser_password().expose_secret(),
        "postgres",
    );
    let connector = tokio_postgres_rustls::MakeRustlsConnect::new((*tls).clone());
    let (client, connection) = config
        .connect(connector)
        .await
        .with_context(|| format!("connecting to PostgreSQL on localhost:{}", pg.port()))?;
    tokio::spawn(connection);
    let version: String = client.query_one("SHOW server_version", &[]).await?.get(0);
    let res = format!("PostgreSQL {version} on localhost:{}", pg.port());
    running.postgres = Some(pg);
    Ok(res)
}

async fn openbao_phase(
    tools: &Toolbox,
    pki: &LabPki,
    tls: Arc<rustls::ClientConfig>,
    running: &mut Lab,
) -> anyhow::Result<String> {
    let bao = OpenBao::start(tools, pki)?;
    let client = reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .resolve("localhost", ([127, 0, 0, 1], bao.port()).into())
        .build()?;
    let status: serde_json::Value = client
        .get(format!("{}/v1/sys/seal-status", bao.addr()))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let res = format!(
        "OpenBao {} at {} (initialized: {}, sealed: {})",
        status["version"].as_str().unwrap_or("?"),
        bao.addr(),
        status["initialized"],
        status["sealed"]
    );
    running.openbao = Some(bao);
    Ok(res)
}

async fn moto_phase(tools: &Toolbox, running: &mut Lab) -> anyhow::Result<String> {
    let moto = Moto::start(tools)?;
    let s3 = moto.s3_client();
    s3.create_bucket()
        .bucket("circleci-ha-config")
        .send()
        .await?;
    s3.put_object()
        .bucket("circleci-ha-config")
        .key("hello")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"hello"))
        .send()
        .await?;
    let listed = s3
        .list_objects_v2()
        .bucket("circleci-ha-config")
        .send()
        .await?;
    let res = format!(
        "moto at {} (bucket circleci-ha-config holds {} object)",
        moto.endpoint(),
        listed.contents().len()
    );
    running.moto = Some(moto);
    Ok(res)
}

/// Three members with TLS required and x509 member authentication, as
/// the runbook's mongod.conf starts them; `apply` bootstraps the set.
async fn mongo_phase(tools: &Toolbox, pki: &LabPki, running: &mut Lab) -> anyhow::Result<String> {
    let options = MongoMemberOptions::secure(pki, "circle");
    for _ in 0..3 {
        running
            .mongo
            .push(MongoMember::start(tools, options.clone())?);
    }
    let hosts: Vec<String> = running.mongo.iter().map(MongoMember::host).collect();
    Ok(format!(
        "{} members on {} ({}), started with --replSet circle, requireTLS, x509 member auth",
        running.mongo.len(),
        running.mongo[0].implementation().name(),
        hosts.join(", ")
    ))
}

/// Writes the lab's ha.toml (every section, secrets as `env:` references
/// to generated values) with a license and an encryption-keys directory
/// for the bundle.
fn config_phase(
    pki: &LabPki,
    secret: &dyn Fn(&str) -> anyhow::Result<SecretString>,
    running: &mut Lab,
) -> anyhow::Result<String> {
    let (Some(pg), Some(bao)) = (&running.postgres, &running.openbao) else {
        anyhow::bail!("PostgreSQL and OpenBao must be running");
    };
    anyhow::ensure!(
        running.mongo.len() == 3,
        "the MongoDB members must be running"
    );
    let work = tempfile::Builder::new()
        .prefix("circle-ha-demo-")
        .tempdir()
        .context("creating the demo directory")?;
    let d = work.path();
    std::fs::write(d.join("license.rli"), "demo license\n")?;
    std::fs::create_dir_all(d.join("circle-data"))?;
    ha_tls::write_file(&d.join("circle-data/aes.key"), b"demo-aes-key", 0o600)?;
    running.secrets = LAB_SECRETS
        .into_iter()
        .map(|name| {
            let value = if name == "PG_ADMIN_PASSWORD" {
                pg.superuser_password().clone()
            } else {
                secret(name)?
            };
            Ok((name, value))
        })
        .collect::<anyhow::Result<_>>()?;
    let members: Vec<String> = running.mongo.iter().map(MongoMember::host).collect();
    let config = lab_ha_toml(&LabHosts {
        members: &members,
        ca_file: &pki.ca_file(),
        pg_port: pg.port(),
        pg_admin: pg.superuser(),
        vault_address: &bao.addr(),
    });
    let path = d.join("ha.toml");
    std::fs::write(&path, config)?;
    running.work = Some(work);
    Ok(format!("{}", path.display()))
}

/// The demo's ha.toml and a lookup of its generated secrets.
fn lab_config(running: &Lab) -> anyhow::Result<(HaConfig, PathBuf)> {
    let work = running
        .work
        .as_ref()
        .context("the configuration phase did not run")?;
    let file = HaConfig::load(&work.path().join("ha.toml"))?;
    Ok((file, work.path().join("bundle")))
}

fn lookup<'a>(running: &'a Lab) -> impl Fn(&str) -> Option<String> + 'a {
    move |name: &str| running.secret(name).map(|v| v.expose_secret().to_owned())
}

/// `vault-transit init` (key shares and root token into 0600 files) and
/// `unseal` from those files.
async fn vault_phase(running: &Lab) -> anyhow::Result<String> {
    let (file, _) = lab_config(running)?;
    let settings = file.vault(false)?;
    let client = settings.client()?;
    vault_transit::init_to_files(&client, &settings.init, &settings.keys).await?;
    vault_transit::unseal_from_files(&client, &settings.keys, &|_| {}).await?;
    Ok(format!(
        "initialised (3 shares, threshold 2; 0600 files in {}) and unsealed",
        settings.keys.dir().display()
    ))
}

/// `circle-ha apply` over the lab's ha.toml; `again` checks a second run
/// changes nothing.
async fn apply_phase(running: &Lab, again: bool) -> anyhow::Result<String> {
    let (file, bundle_dir) = lab_config(running)?;
    let env = lookup(running);
    let options = ha_config::RunbookOptions {
        purpose: ha_config::Purpose::Apply,
        only: Vec::new(),
        bundle_dir,
    };
    let runbook = file.runbook(&env, &options).await?;
    let report = ha_runbook::apply(&runbook, false, &|_| {}).await?;
    let per: Vec<String> = report
        .ran
        .iter()
        .map(|(c, r)| format!("{c} {}", r.changed()))
        .collect();
    if again {
        anyhow::ensure!(
            report.changed() == 0,
            "a second apply changed {} things ({})",
            report.changed(),
            per.join(", ")
        );
        Ok("changed: 0".to_owned())
    } else {
        Ok(format!(
            "changed: {} ({})",
            report.changed(),
            per.join(", ")
        ))
    }
}

/// Seeds the "old Services machine" as it is: a lone MongoDB 3.6.6
/// without auth (mongo-sim's 3.6 profile, which the driver refuses, so it
/// is written through circle-export's own old-server connection) holding
/// builds and build states, and a PostgreSQL loaded from dumps shaped as
/// the machine's pg_dump 9.5 writes them (`SET search_path = public,
/// pg_catalog;`, `SET default_with_oids`, unqualified `COPY`), through
/// the same loader a restore uses: `circle` and `vms` tables.
async fn seed_phase(tools: &Toolbox, pki: &LabPki, running: &mut Lab) -> anyhow::Result<String> {
    use circle_export::wire::{Address, WireOptions, WireSource};
    let member = MongoMember::start(
        &tools.clone().simulator_only(),
        MongoMemberOptions {
            extra_args: vec!["--simServerVersion".into(), "3.6".into()],
            ..MongoMemberOptions::default()
        },
    )?;
    let source = WireSource::probe(WireOptions {
        hosts: vec![Address {
            host: "localhost".to_owned(),
            port: member.port(),
        }],
        replica_set: None,
        credential: None,
        tls: None,
        connect_timeout: std::time::Duration::from_secs(10),
        socket_timeout: std::time::Duration::from_secs(60),
    })
    .await?;
    let builds: Vec<bson::Document> = (0..2000)
        .map(|i| {
            bson::doc! {"_id": i, "build_num": i, "branch": if i % 3 == 0 { "main" } else { "feature/ü" },
            "outcome": if i % 7 == 0 { "failed" } else { "success" }, "start_time": bson::DateTime::from_millis(1_500_000_000_000 + i64::from(i) * 60_000)}
        })
        .collect();
    source
        .command(
            "circle_ghe",
            bson::doc! {"insert": "builds", "documents": builds},
        )
        .await?;
    source
        .command(
            "circle_ghe",
            bson::doc! {"createIndexes": "builds", "indexes": [{"key": {"build_num": 1}, "name": "build_num_1", "unique": true}]},
        )
        .await?;
    let states: Vec<bson::Document> = (0..1000)
        .map(|i| bson::doc! {"_id": bson::oid::ObjectId::from_bytes([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, (i / 256) as u8, (i % 256) as u8]), "build": i, "state": "finished", "steps": [{"name": "checkout"}, {"name": "test"}]})
        .collect();
    source
        .command(
            "build_state_dev_ghe",
            bson::doc! {"insert": "states", "documents": states},
        )
        .await?;
    let pg = Postgres::start(tools, pki, PostgresOptions::default())?;
    let old = old_pg_client(&pg)?;
    let dumps = tempfile::tempdir()?;
    for (db, dump) in [("circle", dump_95_circle()), ("vms", dump_95_vms())] {
        old.query("postgres", &format!("CREATE DATABASE {db}"))
            .await?;
        let path = dumps.path().join(format!("{db}.sql"));
        std::fs::write(&path, dump)?;
        old.restore_database(
            db,
            &path,
            &circle_export::Meter::default(),
            false,
            circle_export::sqlsplit::Dialect::Own,
        )
        .await?;
    }
    running.seeded = (3000, 2000);
    running.old_mongo = Some(member);
    running.old_postgres = Some(pg);
    Ok(
        "MongoDB 3.6.6 without auth (3000 documents in circle_ghe, build_state_dev_ghe) and \
         PostgreSQL loaded from pg_dump 9.5-shaped dumps (circle, vms: 2000 rows)"
            .to_owned(),
    )
}

/// The header and fixed settings pg_dump 9.5 starts a plain dump with
/// (`pg_backup_archiver.c`, `_doSetFixedOutputState`), then `SET
/// search_path = public, pg_catalog;` as `_selectOutputSchema` writes it.
const DUMP_95_HEAD: &str = "--\n-- PostgreSQL database dump\n--\n\n\
-- Dumped from database version 9.5.25\n-- Dumped by pg_dump version 9.5.25\n\n\
SET statement_timeout = 0;\nSET lock_timeout = 0;\nSET client_encoding = 'UTF8';\n\
SET standard_conforming_strings = on;\nSET check_function_bodies = false;\n\
SET client_min_messages = warning;\nSET row_security = off;\n\n\
CREATE EXTENSION IF NOT EXISTS plpgsql WITH SCHEMA pg_catalog;\n\n\
SET search_path = public, pg_catalog;\n\nSET default_tablespace = '';\n\n\
SET default_with_oids = false;\n\n";

/// `circle` as pg_dump 9.5 dumps it: `projects` (500 rows).
fn dump_95_circle() -> String {
    let mut sql = DUMP_95_HEAD.to_owned();
    sql.push_str(
        "CREATE TABLE projects (\n    id uuid NOT NULL,\n    name text NOT NULL,\n    \
         settings jsonb,\n    created_at timestamp with time zone DEFAULT now()\n);\n\n\
         COPY projects (id, name, settings, created_at) FROM stdin;\n",
    );
    for g in 1..=500u32 {
        sql.push_str(&format!(
            "00000000-0000-4000-8000-{g:012x}\tproject-{g}\t{{\"parallelism\": {}}}\t2017-06-01 12:00:00+00\n",
            g % 4
        ));
    }
    sql.push_str(
        "\\.\n\n\nALTER TABLE ONLY projects\n    ADD CONSTRAINT projects_pkey PRIMARY KEY (id);\n\n\
         --\n-- PostgreSQL database dump complete\n--\n\n",
    );
    sql
}

/// `vms` as pg_dump 9.5 dumps it: `machines` (1500 rows) and its sequence.
fn dump_95_vms() -> String {
    let mut sql = DUMP_95_HEAD.to_owned();
    sql.push_str(
        "CREATE TABLE machines (\n    id bigint NOT NULL,\n    image text,\n    \
         booted_at timestamp with time zone\n);\n\n\
         CREATE SEQUENCE machines_id_seq\n    START WITH 1\n    INCREMENT BY 1\n    \
         NO MINVALUE\n    NO MAXVALUE\n    CACHE 1;\n\n\
         ALTER SEQUENCE machines_id_seq OWNED BY machines.id;\n\n\
         ALTER TABLE ONLY machines ALTER COLUMN id SET DEFAULT \
         nextval('machines_id_seq'::regclass);\n\n\
         COPY machines (id, image, booted_at) FROM stdin;\n",
    );
    for g in 1..=1500u32 {
        sql.push_str(&format!(
            "{g}\tubuntu-1604:{g}\t2020-01-{:02} {:02}:00:00+00\n",
            1 + g / 24 % 28,
            g % 24
        ));
    }
    sql.push_str(
        "\\.\n\n\nSELECT pg_catalog.setval('machines_id_seq', 1500, true);\n\n\
         ALTER TABLE ONLY machines\n    ADD CONSTRAINT machines_pkey PRIMARY KEY (id);\n\n",
    );
    sql
}

/// The old machine's MongoDB 3.6, read by the old-server reader (the
/// driver refuses 3.6: the handshake picks it).
async fn old_mongo_reader(member: &MongoMember) -> anyhow::Result<circle_export::MongoReader> {
    Ok(circle_export::MongoReader::from_uri(
        &format!(
            "mongodb://localhost:{}/?directConnection=true",
            member.port()
        )
        .into(),
        std::time::Duration::from_secs(30),
    )
    .await?)
}

/// The restore's targets from the lab's `ha.toml`: the replica set as
/// circle-admin and PostgreSQL as the app role (`pg_dump`'s directory
/// from `old_pg`).
fn lab_targets(
    running: &Lab,
    file: &ha_config::HaConfig,
    old_pg: &Postgres,
) -> anyhow::Result<(
    Option<circle_export::MongoConnection>,
    Option<circle_export::PgClient>,
)> {
    let env = lookup(running);
    let mut warnings = Vec::new();
    let targets = file.restore_targets(&env, &mut warnings)?;
    let mongo = targets
        .mongo
        .map(|t| t.connect(std::time::Duration::from_secs(60)))
        .transpose()?;
    let pg = match targets.postgres {
        Some(conn) => Some(circle_export::PgClient::new(
            conn,
            Some(old_pg.bin_dir().to_owned()),
        )?),
        None => None,
    };
    Ok((mongo, pg))
}

fn old_pg_client(pg: &Postgres) -> anyhow::Result<circle_export::PgClient> {
    let conn = circle_export::PgConn {
        host: pg.host().to_owned(),
        port: pg.port(),
        user: pg.superuser().to_owned(),
        password: Some(pg.superuser_password().clone()),
        dbname: "postgres".to_owned(),
        params: vec![
            ("sslmode".to_owned(), "verify-full".to_owned()),
            ("sslrootcert".to_owned(), pg.ca_file().display().to_string()),
            ("hostaddr".to_owned(), pg.hostaddr().to_owned()),
        ],
    };
    Ok(circle_export::PgClient::new(
        conn,
        Some(pg.bin_dir().to_owned()),
    )?)
}

/// Context secrets as the old Vault 0.7 holds them, carried over: an old
/// Vault's file storage (written by vault-transit's test fixture program,
/// from Vault 0.7.3's source, around a two-version transit key
/// `contexts`), three secrets encrypted with it as the contexts service
/// did, stored in the new contexts database; then `vault-transit migrate
/// restore` into the lab's OpenBao and the cutover gate, `migrate verify`,
/// with the contexts service's own token.
async fn contexts_phase(tools: &Toolbox, running: &Lab) -> anyhow::Result<String> {
    let (file, _) = lab_config(running)?;
    let work = running.work.as_ref().context("no demo directory")?;
    let pg = running
        .postgres
        .as_ref()
        .context("PostgreSQL is not running")?;
    let python = tools.python()?;
    // Two random key versions and three ciphertexts made with them.
    let made = std::process::Command::new(&python)
        .args(["-c", MAKE_CONTEXT_SECRETS])
        .output()?;
    anyhow::ensure!(
        made.status.success(),
        "making the sample context secrets failed"
    );
    let made: serde_json::Value = serde_json::from_slice(&made.stdout)?;
    let old = work.path().join("old-vault");
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/vault-transit/tests/fixtures/vault07.py");
    let mut child = std::process::Command::new(&python)
        .arg(script)
        .arg(&old)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()?;
    serde_json::to_writer(child.stdin.take().context("no stdin")?, &made["export"])?;
    anyhow::ensure!(
        child.wait()?.success(),
        "writing the old Vault's storage failed"
    );
    let postgres = file.postgres(&ha_config::PostgresOverrides::default())?;
    let values: Vec<String> = made["ciphertexts"]
        .as_array()
        .context("no ciphertexts")?
        .iter()
        .filter_map(|c| c.as_str().map(|c| format!("('{c}')")))
        .collect();
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS contexts (id serial PRIMARY KEY, value text); \
         INSERT INTO contexts (value) VALUES {}; GRANT SELECT ON contexts TO \"{}\"",
        values.join(", "),
        postgres.app_user.replace('"', "\"\"")
    );
    let psql = std::process::Command::new(pg.bin_dir().join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", &sql])
        .env_clear()
        .envs(pg.libpq_env(ha_config::CONTEXTS_DATABASE)?)
        .output()?;
    anyhow::ensure!(
        psql.status.success(),
        "storing the context secrets failed: {}",
        String::from_utf8_lossy(&psql.stderr)
    );

    // The operator's part: the old shares, restore, the gate.
    let vault = vault_transit::legacy::OldVault::open(&old.join("data"))?;
    let shares = (1..=3)
        .map(|n| {
            let path = old.join(format!("shares/unseal-key-{n}"));
            let text = std::fs::read_to_string(&path)?;
            Ok(vault_transit::legacy::Share::parse(
                &text,
                &path.display().to_string(),
            )?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let unsealed = vault.unseal(&shares)?;
    let keys = unsealed.transit_keys()?;
    let settings = file.vault(false)?;
    let env = lookup(running);
    let admin = file.vault_admin_token(&settings, &env, &mut Vec::new())?;
    let spec = vault_transit::migrate::MigrateSpec::new(&settings.spec.mount);
    let vault_transit::migrate::Migrated::Done(report) =
        vault_transit::migrate::migrate(&settings.client()?, &admin, &keys, &spec).await?
    else {
        anyhow::bail!("the new Vault already holds a different contexts key");
    };
    let postgres = file.postgres(&ha_config::PostgresOverrides::default())?;
    let findings = file
        .vault_setup(&settings, &env, false)?
        .contexts_verify(
            &file.postgres_setup(&postgres, &env, false)?,
            Some("contexts"),
            ha_config::CONTEXTS_DATABASE,
        )
        .await?;
    anyhow::ensure!(
        findings.healthy,
        "{}",
        ha_plan::Document::to_text(&findings)
    );
    Ok(format!(
        "transit key contexts (versions 1–2) restored from a Vault 0.7 storage (changed: {}); \
         {} of {} stored context secrets decrypt with the contexts service's token",
        report.changed(),
        findings.decrypted,
        findings.ciphertexts
    ))
}

/// Python: two random AES-256 key versions of a transit key `contexts` and
/// three context secrets encrypted with them as Vault's transit does
/// (`vault:v<N>:` + base64 of nonce ‖ AES-GCM), as JSON `{"export":
/// {"name", "keys"}, "ciphertexts"}`.
const MAKE_CONTEXT_SECRETS: &str = r#"
import base64, json, os
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
keys = {v: os.urandom(32) for v in (1, 2)}
out = []
for i, v in enumerate([1, 1, 2]):
    nonce = os.urandom(12)
    sealed = nonce + AESGCM(keys[v]).encrypt(nonce, ("context secret %d" % i).encode(), None)
    out.append("vault:v%d:%s" % (v, base64.b64encode(sealed).decode()))
print(json.dumps({"export": {"name": "contexts", "keys": {str(v): base64.b64encode(k).decode() for v, k in keys.items()}}, "ciphertexts": out}))
"#;

/// `circle-export export` of the old machine, then `restore` onto the new
/// hosts (targets from ha.toml: the replica set as circle-admin, the
/// PostgreSQL as the app role) with the archive verified first and every
/// count compared after.
async fn migrate_phase(running: &Lab) -> anyhow::Result<String> {
    let (file, _) = lab_config(running)?;
    let (Some(old_mongo), Some(old_pg)) = (&running.old_mongo, &running.old_postgres) else {
        anyhow::bail!("the old machine was not seeded");
    };
    let work = running.work.as_ref().context("no demo directory")?;
    // Sealed, as the runbook's operators should: to a key made here (on
    // the new hosts, in real life), so the restore proves the archive is
    // the one exported.
    let archive = work.path().join("circle-export.tar.zst.age");
    let identity = circle_export::seal::Identity::generate()?;
    let sealing = circle_export::seal::Sealing::Recipients(vec![identity.recipient()]);
    let unsealing = circle_export::seal::Unsealing::Identities(vec![identity]);
    // The driver refuses 3.6: the handshake picks the old-server reader.
    let source_mongo = old_mongo_reader(old_mongo).await?;
    anyhow::ensure!(
        matches!(source_mongo, circle_export::MongoReader::Wire(_)),
        "the old machine's MongoDB 3.6 should be read by the old-server reader, not {}",
        source_mongo.describe()
    );
    let source_pg = old_pg_client(old_pg)?;
    let exported = circle_export::export(
        circle_export::ExportSpec {
            mongo: Some(circle_export::MongoSource::Server {
                reader: &source_mongo,
                databases: Vec::new(),
            }),
            postgres: Some(circle_export::PgSource {
                client: &source_pg,
                databases: Vec::new(),
            }),
            encryption_keys: Some(work.path().join("circle-data")),
            vault_data: None,
            danger_include_vault_init_output: false,
            out: archive.clone(),
            seal: Some(&sealing),
            parallel: 4,
            tool: format!("circle-ha demo {}", env!("CARGO_PKG_VERSION")),
            meter: circle_export::Meter::default(),
        },
        &|_| {},
    )
    .await?;
    let (target_mongo, target_pg) = lab_targets(running, &file, old_pg)?;
    let restored = circle_export::restore(
        circle_export::RestoreSpec {
            archive,
            unsealing: Some(&unsealing),
            mongo: target_mongo.as_ref(),
            postgres: target_pg.as_ref(),
            drop: false,
            dry_run: false,
            parallel: 4,
            meter: circle_export::Meter::default(),
            failover_wait: std::time::Duration::from_secs(60),
        },
        &|_| {},
    )
    .await?;
    anyhow::ensure!(
        restored.mismatches.is_empty(),
        "counts differ after the restore: {}",
        restored.mismatches.join("; ")
    );
    let rows: u64 = restored
        .manifest
        .postgres
        .iter()
        .flat_map(|d| d.tables.iter().map(|t| t.rows))
        .sum();
    anyhow::ensure!(
        (restored.documents, rows) == running.seeded,
        "restored {} documents and {rows} rows, seeded {} and {}",
        restored.documents,
        running.seeded.0,
        running.seeded.1
    );
    // The restore of this archive is the cutover's pre-copy: its record
    // goes beside the archive, as `transfer` leaves it.
    circle_export::CutoverState::from_manifest(&exported.manifest, &exported.archive)
        .write(&circle_export::cutover::state_path(&exported.archive))?;
    Ok(format!(
        "MongoDB {} read by {}; archive {} ({}, verified); restored {} documents and {rows} \
         rows, every count matches",
        exported
            .manifest
            .mongo_server_version
            .as_deref()
            .unwrap_or("?"),
        source_mongo.describe(),
        exported.archive.display(),
        circle_export::export::human_bytes(exported.archive_bytes),
        restored.documents
    ))
}

/// The cutover's final pass: after the restore (the pre-copy), the old
/// machine changes — MongoDB 3.6 documents replaced, deleted and added,
/// PostgreSQL 9.5-shaped rows updated, deleted and added, its sequence
/// advanced — and `final_pass` moves exactly that into the TLS replica
/// set (`w: "majority"`) and the new PostgreSQL (as the app role), then a
/// second pass finds nothing to move.
async fn cutover_phase(running: &Lab) -> anyhow::Result<String> {
    let (file, _) = lab_config(running)?;
    let (Some(old_mongo), Some(old_pg)) = (&running.old_mongo, &running.old_postgres) else {
        anyhow::bail!("the old machine was not seeded");
    };
    let work = running.work.as_ref().context("no demo directory")?;
    let source_mongo = old_mongo_reader(old_mongo).await?;
    let circle_export::MongoReader::Wire(wire) = &source_mongo else {
        anyhow::bail!("the old MongoDB 3.6 should be read by the old-server reader");
    };
    // The old services were still writing after the pre-copy.
    let replaced: Vec<i32> = (0..20).collect();
    wire.command(
        "circle_ghe",
        bson::doc! {"delete": "builds", "deletes": [{"q": {"_id": {"$in": (0..40).collect::<Vec<i32>>()}}, "limit": 0}]},
    )
    .await?;
    let again: Vec<bson::Document> = replaced
        .iter()
        .chain(&(5000..5030).collect::<Vec<i32>>())
        .map(|i| bson::doc! {"_id": i, "build_num": i, "branch": "main", "outcome": "rerun"})
        .collect();
    wire.command(
        "circle_ghe",
        bson::doc! {"insert": "builds", "documents": again},
    )
    .await?;
    let old = old_pg_client(old_pg)?;
    old.query(
        "vms",
        "UPDATE machines SET image = 'ubuntu-2204:' || id WHERE id % 100 = 0; \
         DELETE FROM machines WHERE id % 100 = 1; \
         INSERT INTO machines (image, booted_at) SELECT 'ubuntu-2204:new', now() \
           FROM generate_series(1, 25)",
    )
    .await?;
    let (target_mongo, target_pg) = lab_targets(running, &file, old_pg)?;
    let target_mongo = target_mongo.context("ha.toml has no [mongo]")?;
    let target_pg = target_pg.context("ha.toml has no [postgres]")?;
    let pass = |dry_run: bool| circle_export::FinalSpec {
        mongo: Some(circle_export::TransferMongo {
            source: &source_mongo,
            databases: Vec::new(),
            target: &target_mongo,
        }),
        postgres: Some(circle_export::TransferPostgres {
            source: &old,
            databases: Vec::new(),
            target: &target_pg,
        }),
        state: circle_export::cutover::state_path(&work.path().join("circle-export.tar.zst.age")),
        dry_run,
        parallel: 4,
        failover_wait: std::time::Duration::from_secs(60),
    };
    let moved = circle_export::final_pass(pass(false), &|_| {}).await?;
    anyhow::ensure!(
        moved.mismatches.is_empty(),
        "the targets differ after the final pass: {}",
        moved.mismatches.join("; ")
    );
    let expect = (
        circle_export::cutover::Moved {
            inserted: 30,
            replaced: 20,
            deleted: 20,
        },
        circle_export::cutover::Moved {
            inserted: 25,
            replaced: 15,
            deleted: 15,
        },
    );
    anyhow::ensure!(
        (moved.documents, moved.rows) == expect,
        "moved {:?} documents and {:?} rows, expected {expect:?}",
        moved.documents,
        moved.rows
    );
    let again = circle_export::final_pass(pass(false), &|_| {}).await?;
    anyhow::ensure!(
        again.changes.is_empty() && again.mismatches.is_empty(),
        "a second final pass still moved {:?}",
        again.changes
    );
    Ok(format!(
        "moved {} documents and {} rows ({} changes, the sequence among them) in {:.1}s, \
         checked equal; a second pass: changed 0",
        moved.documents.total(),
        moved.rows.total(),
        moved.changes.len(),
        moved.seconds
    ))
}

/// `services-userdata publish` of the bundle apply rendered: to the
/// emulated S3 bucket, and a new launch-template version whose userdata
/// fetches it (a template is made first, as an operator's would exist).
async fn publish_phase(running: &Lab) -> anyhow::Result<String> {
    let (file, bundle_dir) = lab_config(running)?;
    let moto = running
        .moto
        .as_ref()
        .context("the AWS emulator is not running")?;
    let s3 = moto.s3_client();
    let ec2 = moto.ec2();
    let target = file.publish_target()?.target;
    moto.create_launch_template(&target.launch_template, "ami-12345678")
        .await
        .context("creating the demo's launch template")?;
    let bundle = services_userdata::Bundle::read_from(&bundle_dir)?;
    let userdata = std::fs::metadata(bundle_dir.join("userdata.sh"))?.len();
    anyhow::ensure!(
        userdata < 16 * 1024,
        "userdata.sh is {userdata} bytes: EC2 takes at most 16 KB"
    );
    let publish = services_userdata::publish::run;
    let published = publish(&s3, &ec2, &target, &bundle, false).await?;
    let again = publish(&s3, &ec2, &target, &bundle, false).await?;
    anyhow::ensure!(
        again.is_empty(),
        "a second publish changed {} things",
        again.steps.len()
    );
    Ok(format!(
        "s3://{}/ and launch template {}: changed {}, again 0; userdata {userdata} bytes",
        target.bucket,
        target.launch_template,
        published.steps.len()
    ))
}

/// Stops and starts a lab member as `systemctl` would stop and start
/// mongod on its machine.
struct LabMember<'a>(&'a mut MongoMember);

impl mongo_backup::MemberProcess for LabMember<'_> {
    async fn stop(&mut self) -> Result<(), mongo_backup::Error> {
        self.0.stop();
        Ok(())
    }

    async fn start(&mut self) -> Result<(), mongo_backup::Error> {
        self.0.restart().map_err(|e| mongo_backup::Error::Command {
            what: "start",
            command: "restart the lab member".to_owned(),
            detail: e.to_string(),
        })
    }
}

/// `mongo-backup snapshot` of a secondary of the new set into a directory
/// store: guards, lock, stop, snapshot, start, catch-up; the set is whole
/// again afterwards.
async fn backup_phase(running: &mut Lab) -> anyhow::Result<String> {
    let (file, _) = lab_config(running)?;
    let setup = {
        let env = lookup(running);
        file.mongo_setup(&env, &ha_config::MongoOptions::default())
            .await?
    };
    let session = mongo_rs_setup::Session::new(&setup.spec);
    let mut secondary = None;
    for (i, member) in running.mongo.iter().enumerate() {
        if session
            .hello(&member.host())
            .await
            .is_ok_and(|h| h.secondary)
        {
            secondary = Some(i);
            break;
        }
    }
    let i = secondary.context("the new set has no SECONDARY to back up")?;
    let work = running
        .work
        .as_ref()
        .context("no lab directory")?
        .path()
        .to_owned();
    let member = &mut running.mongo[i];
    let spec = mongo_backup::BackupSpec {
        member: member.host(),
        // The stop command stops this member's own process: the local
        // mongod the run asks is the one it guards.
        local_port: Some(member.port()),
        state_dir: Some(work.join("backup-state")),
        limits: mongo_backup::guard::Limits {
            max_lag: std::time::Duration::from_secs(30),
            any_member: false,
        },
        db_path: Some(member.dbpath()),
        lease: std::time::Duration::from_secs(600),
        stop_timeout: std::time::Duration::from_secs(60),
        catch_up_timeout: std::time::Duration::from_secs(120),
        complete_timeout: std::time::Duration::from_secs(60),
        retention: mongo_backup::snapshot::Retention {
            keep_last: Some(3),
            keep_days: None,
        },
        poll: std::time::Duration::from_millis(200),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let store = mongo_backup::DirectoryStore {
        source: member.dbpath(),
        root: work.join("mongo-snapshots"),
    };
    let outcome = mongo_backup::run::snapshot(
        &session,
        &spec,
        &mut LabMember(member),
        &store,
        false,
        &mongo_backup::Cancel::never(),
        &|_| {},
    )
    .await?;
    Ok(format!(
        "{} stopped, snapshotted as {} (optime {}), started and caught up",
        spec.member,
        outcome.group,
        outcome
            .cleared
            .optime
            .map_or("-".to_owned(), |o| o.to_string())
    ))
}

/// `circle-ha keys backup` then `keys verify` of the lab's encryption
/// keys, against the emulated bucket.
async fn keys_phase(running: &Lab) -> anyhow::Result<String> {
    let (file, _) = lab_config(running)?;
    let moto = running
        .moto
        .as_ref()
        .context("the AWS emulator is not running")?;
    let (store, _) = file.key_store()?;
    let dir = running
        .work
        .as_ref()
        .context("no lab directory")?
        .path()
        .join("circle-data");
    let s3 = moto.s3_client();
    services_userdata::keys::backup(&s3, &store, &dir, false).await?;
    let diff = services_userdata::keys::verify(&s3, &store, &dir).await?;
    anyhow::ensure!(
        diff.is_identical(),
        "{}",
        ha_plan::Document::to_text(&diff.to_findings("circle-ha keys", &dir))
    );
    Ok(format!(
        "{} key file(s) stored encrypted and identical to {}",
        diff.same.len(),
        dir.display()
    ))
}

/// `circle-ha doctor` on the rendered bundle: everything the Services
/// machine will use works, as it will use it.
async fn doctor_phase(running: &Lab) -> anyhow::Result<String> {
    let (_, bundle_dir) = lab_config(running)?;
    let report = ha_doctor::doctor(
        &ha_doctor::Machine::bundle(&bundle_dir),
        &ha_doctor::Options::default(),
    )
    .await;
    anyhow::ensure!(
        report.is_healthy(),
        "{}",
        ha_plan::Document::to_text(&report)
    );
    Ok(format!("{} checks, nothing wrong", report.checked.len()))
}

/// `circle-ha status`: every concern healthy, the key backup included.
async fn status_phase(running: &Lab) -> anyhow::Result<String> {
    let (file, bundle_dir) = lab_config(running)?;
    let env = lookup(running);
    let runbook = file
        .runbook(
            &env,
            &ha_config::RunbookOptions {
                purpose: ha_config::Purpose::Status,
                only: Vec::new(),
                bundle_dir,
            },
        )
        .await?;
    let mut options = ha_runbook::StatusOptions::default();
    options.s3 = running.moto.as_ref().map(|moto| moto.s3_client());
    options.keys_dir = running
        .work
        .as_ref()
        .context("no lab directory")?
        .path()
        .join("circle-data");
    let checks = ha_runbook::status(&runbook, &options).await;
    let findings = ha_runbook::status_findings(&checks);
    anyhow::ensure!(
        findings.healthy,
        "{}",
        ha_plan::Document::to_text(&findings)
    );
    let names: Vec<&str> = checks.iter().map(|h| h.concern.name()).collect();
    Ok(format!("healthy: {}", names.join(", ")))
}

/// Writes a 0600 shell file with the kept services' connection settings.
fn write_keep_file(running: &Lab) -> anyhow::Result<PathBuf> {
    use services_userdata::text::shell_quote;
    let mut text = String::from("# circle-ha demo lab; source this file to reach the services\n");
    let mut export = |key: &str, value: &str| {
        let _ = writeln!(text, "export {key}={}", shell_quote(value));
    };
    if let Some(pg) = &running.postgres {
        for (key, value) in pg.libpq_env("postgres")? {
            export(&key.to_string_lossy(), &value.to_string_lossy());
        }
    }
    if let Some(bao) = &running.openbao {
        export("BAO_ADDR", &bao.addr());
        export("BAO_CACERT", &bao.ca_file().display().to_string());
    }
    if let Some(moto) = &running.moto {
        export("AWS_ENDPOINT_URL", &moto.endpoint());
        export("AWS_ACCESS_KEY_ID", ha_lab::MOTO_ACCESS_KEY_ID);
        export("AWS_SECRET_ACCESS_KEY", ha_lab::MOTO_SECRET_ACCESS_KEY);
        export("AWS_REGION", ha_lab::MOTO_REGION);
    }
    if !running.mongo.is_empty() {
        let hosts: Vec<String> = running.mongo.iter().map(MongoMember::host).collect();
        export("MONGO_HOSTS", &hosts.join(","));
        export("MONGO_REPLICA_SET", "circle");
    }
    if let Some(config) = running.config_file() {
        // circle-ha status --config "$CIRCLE_HA_CONFIG"
        export("CIRCLE_HA_CONFIG", &config.display().to_string());
    }
    for (name, value) in running.secrets() {
        export(name, value.expose_secret());
    }
    let path = running.pki.dir().join("lab.env");
    ha_tls::write_file(&path, text.as_bytes(), 0o600)?;
    Ok(path)
}
