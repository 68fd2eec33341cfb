//! `circle-ha demo`: start the local lab and prove every service answers.
//!
//! This is the foundation's version of the demo. It starts the lab the
//! tests use (a throw-away CA, PostgreSQL, OpenBao, the AWS API emulator and
//! the MongoDB launcher), talks to each through a real client over TLS, and
//! reports what is up; the MongoDB phase bootstraps a three-member TLS
//! replica set with mongo-rs-setup. The rest of the runbook (provisioning,
//! Vault, export/restore, the Services bundle) joins it as the end-to-end
//! `circle-ha` command lands.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use ha_lab::{
    LabPki, MongoMember, MongoMemberOptions, Moto, OpenBao, Postgres, PostgresOptions, Toolbox,
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

/// The services the demo started, kept alive until the report is printed.
#[derive(Default)]
struct Running {
    postgres: Option<Postgres>,
    openbao: Option<OpenBao>,
    moto: Option<Moto>,
    mongo: Vec<MongoMember>,
    mongo_admin: Option<(String, SecretString)>,
}

/// Runs the demo with tools found through `tools`, writing progress to
/// `progress` as each phase ends. Returns every phase's outcome; the caller
/// decides the exit code.
pub async fn run(
    tools: &Toolbox,
    options: &DemoOptions,
    progress: &mut dyn FnMut(&Phase),
) -> anyhow::Result<Vec<Phase>> {
    let mut phases = Vec::new();
    let mut record = |phase: Phase, phases: &mut Vec<Phase>| {
        progress(&phase);
        phases.push(phase);
    };

    let started = Instant::now();
    let pki = LabPki::new().context("creating the lab CA")?;
    record(
        Phase {
            name: "certificates (ha-tls)",
            seconds: started.elapsed().as_secs_f64(),
            result: Outcome::Done(format!(
                "CA and localhost certificate in {}",
                pki.dir().display()
            )),
        },
        &mut phases,
    );

    let mut running = Running::default();
    let tls = Arc::new(ha_tls::client_config(
        Some((&std::fs::read(pki.ca_file())?, "lab CA")),
        ha_tls::ServerVerification::Full,
        None,
    )?);

    let started = Instant::now();
    let result = postgres_phase(tools, &pki, tls.clone(), &mut running).await;
    record(
        Phase {
            name: "PostgreSQL (verify-full TLS)",
            seconds: started.elapsed().as_secs_f64(),
            result: Outcome::from_result(result),
        },
        &mut phases,
    );

    let started = Instant::now();
    let result = openbao_phase(tools, &pki, tls.clone(), &mut running).await;
    record(
        Phase {
            name: "OpenBao (TLS)",
            seconds: started.elapsed().as_secs_f64(),
            result: Outcome::from_result(result),
        },
        &mut phases,
    );

    let started = Instant::now();
    let result = moto_phase(tools, &mut running).await;
    record(
        Phase {
            name: "AWS emulator (S3)",
            seconds: started.elapsed().as_secs_f64(),
            result: Outcome::from_result(result),
        },
        &mut phases,
    );

    let started = Instant::now();
    let result = match tools.mongo() {
        Ok(_) => Outcome::from_result(mongo_phase(tools, &pki, &mut running).await),
        Err(ha_lab::Error::ToolMissing { .. }) => Outcome::Failed(
            "no mongod here and no mongo-sim binary: build it with `cargo build -p mongo-sim` \
             (`cargo xtask demo` does), or set MONGOD_BIN to a real mongod"
                .to_owned(),
        ),
        Err(e) => Outcome::Failed(e.to_string()),
    };
    record(
        Phase {
            name: "MongoDB replica set (mongo-rs-setup)",
            seconds: started.elapsed().as_secs_f64(),
            result,
        },
        &mut phases,
    );

    if options.keep {
        let env_file = write_keep_file(pki.dir(), &running)?;
        progress(&Phase {
            name: "services kept",
            seconds: 0.0,
            result: Outcome::Done(format!(
                "connection settings in {} (source it); press Ctrl-C to stop",
                env_file.display()
            )),
        });
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
    }
    drop(running);
    Ok(phases)
}

async fn postgres_phase(
    tools: &Toolbox,
    pki: &LabPki,
    tls: Arc<rustls::ClientConfig>,
    running: &mut Running,
) -> anyhow::Result<String> {
    let pg = Postgres::start(tools, pki, PostgresOptions::default())?;
    let mut config = tokio_postgres::Config::new();
    config
        .host(pg.host())
        .hostaddr(pg.hostaddr().parse()?)
        .port(pg.port())
        .user(pg.superuser())
        .password(pg.superuser_password().expose_secret())
        .dbname("postgres")
        .ssl_mode(tokio_postgres::config::SslMode::Require);
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
    running: &mut Running,
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

async fn moto_phase(tools: &Toolbox, running: &mut Running) -> anyhow::Result<String> {
    let moto = Moto::start(tools)?;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&moto.sdk_config())
            .force_path_style(true)
            .build(),
    );
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

/// Three members with TLS required and x509 member authentication, brought
/// up by mongo-rs-setup from nothing: initiate, the runbook's three users
/// (random passwords), the other two members; then its status.
async fn mongo_phase(
    tools: &Toolbox,
    pki: &LabPki,
    running: &mut Running,
) -> anyhow::Result<String> {
    use mongo_rs_setup::{MemberSpec, Reach, SetSettings, SetSpec, TlsFiles, UserSpec};
    let options = MongoMemberOptions::secure(pki, "circle");
    for _ in 0..3 {
        running
            .mongo
            .push(MongoMember::start(tools, options.clone())?);
    }
    let user = |name: &str| -> anyhow::Result<UserSpec> {
        Ok(UserSpec {
            name: name.to_owned(),
            password: crate::secret::generate(24).map_err(anyhow::Error::msg)?,
        })
    };
    let mut members: Vec<MemberSpec> = running
        .mongo
        .iter()
        .map(|m| MemberSpec::new(m.host()))
        .collect();
    members[0].priority = 2.0;
    let spec = SetSpec {
        name: "circle".to_owned(),
        members,
        settings: SetSettings {
            election_timeout_millis: Some(2000),
            heartbeat_interval_millis: Some(500),
        },
        site_admin: user("siteUserAdmin")?,
        admin: user("circle-admin")?,
        app: user("circle")?,
        app_databases: crate::config::DEFAULT_APP_DATABASES
            .map(str::to_owned)
            .to_vec(),
        reach: Reach {
            tls: Some(TlsFiles {
                ca_file: pki.ca_file(),
                certificate_key_file: None,
            }),
            ..Reach::default()
        },
        wait_timeout: std::time::Duration::from_secs(120),
    };
    let session = mongo_rs_setup::Session::new(&spec);
    let applied = mongo_rs_setup::apply(&session, &|_| {}).await?;
    let again = mongo_rs_setup::apply(&session, &|_| {}).await?;
    let status = mongo_rs_setup::status(&session, std::time::Duration::from_secs(30)).await;
    anyhow::ensure!(
        status.healthy(),
        "the set is not healthy: {}",
        status.problems.join("; ")
    );
    let mut states: Vec<&str> = status.members.iter().map(|m| m.state.as_str()).collect();
    states.sort_unstable();
    running.mongo_admin = Some((spec.admin.name.clone(), spec.admin.password.clone()));
    Ok(format!(
        "{} members on {} ({}); apply made {} changes, a second apply {}",
        running.mongo.len(),
        running.mongo[0].implementation().name(),
        states.join(", "),
        applied.steps.len(),
        again.steps.len()
    ))
}

/// Writes a 0600 shell file with the kept services' connection settings.
fn write_keep_file(dir: &Path, running: &Running) -> anyhow::Result<PathBuf> {
    let mut text = String::from("# circle-ha demo lab; source this file to reach the services\n");
    if let Some(pg) = &running.postgres {
        for (key, value) in pg.libpq_env("postgres")? {
            let _ = writeln!(
                text,
                "export {}='{}'",
                key.to_string_lossy(),
                value.to_string_lossy().replace('\'', "'\\''")
            );
        }
    }
    if let Some(bao) = &running.openbao {
        let _ = writeln!(text, "export BAO_ADDR='{}'", bao.addr());
        let _ = writeln!(text, "export BAO_CACERT='{}'", bao.ca_file().display());
    }
    if let Some(moto) = &running.moto {
        let _ = writeln!(text, "export AWS_ENDPOINT_URL='{}'", moto.endpoint());
        let _ = writeln!(
            text,
            "export AWS_ACCESS_KEY_ID='{}'",
            ha_lab::MOTO_ACCESS_KEY_ID
        );
        let _ = writeln!(
            text,
            "export AWS_SECRET_ACCESS_KEY='{}'",
            ha_lab::MOTO_SECRET_ACCESS_KEY
        );
        let _ = writeln!(text, "export AWS_REGION='{}'", ha_lab::MOTO_REGION);
    }
    if !running.mongo.is_empty() {
        let hosts: Vec<String> = running.mongo.iter().map(MongoMember::host).collect();
        let _ = writeln!(text, "export MONGO_HOSTS='{}'", hosts.join(","));
        let _ = writeln!(text, "export MONGO_REPLICA_SET='circle'");
        if let Some((name, password)) = &running.mongo_admin {
            let _ = writeln!(text, "export MONGO_ADMIN_USER='{name}'");
            let _ = writeln!(
                text,
                "export MONGO_ADMIN_PASSWORD='{}'",
                password.expose_secret()
            );
        }
    }
    let path = dir.join("lab.env");
    ha_tls::write_file(&path, text.as_bytes(), 0o600)?;
    Ok(path)
}
