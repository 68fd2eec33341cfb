//! mongo-rs-setup against a three-member set with TLS required and x509
//! member authentication: mongo-sim members, or real mongod when
//! `MONGOD_BIN` (or a `mongod` on PATH) exists.

mod bootstrap;
mod status;

use std::time::{Duration, Instant};

use bson::{Document, doc};
use ha_lab::{LabPki, MongoMember, MongoMemberOptions, Toolbox};
use mongo_rs_setup::{MemberSpec, Reach, SetSettings, SetSpec, TlsFiles, UserSpec};
use secrecy::SecretString;

/// A password with every character a shell, a URI or a YAML file could
/// trip on.
pub(crate) const HOSTILE: &str = "p'\"$@:/?#%&=+ \\wörd`;";

/// Three fresh members (started with --replSet, auth and TLS required, x509
/// member auth, nothing initiated) and a spec for them.
pub(crate) struct Lab {
    pub pki: LabPki,
    pub members: Vec<MongoMember>,
    pub spec: SetSpec,
}

impl Lab {
    pub(crate) fn start(set: &str) -> Lab {
        let pki = LabPki::new().unwrap();
        let tools = Toolbox::discover(std::env::vars_os());
        let members: Vec<MongoMember> = (0..3)
            .map(|_| {
                MongoMember::start(&tools, MongoMemberOptions::secure(&pki, set))
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        let user = |name: &str, suffix: &str| UserSpec {
            name: name.to_owned(),
            password: SecretString::from(format!("{HOSTILE}{suffix}")),
        };
        let mut member_specs: Vec<MemberSpec> =
            members.iter().map(|m| MemberSpec::new(m.host())).collect();
        member_specs[0].priority = 2.0;
        let spec = SetSpec {
            name: set.to_owned(),
            members: member_specs,
            settings: SetSettings {
                election_timeout_millis: Some(2000),
                heartbeat_interval_millis: Some(500),
            },
            site_admin: user("siteUserAdmin", "-site"),
            admin: user("circle-admin", "-admin"),
            app: user("circle", "-app"),
            app_databases: [
                "circle_ghe",
                "build_state_dev_ghe",
                "containers_dev_ghe",
                "remote_containers_dev_ghe",
            ]
            .map(str::to_owned)
            .to_vec(),
            reach: Reach {
                tls: Some(TlsFiles {
                    ca_file: pki.ca_file(),
                    certificate_key_file: None,
                }),
                connect_timeout: Duration::from_secs(5),
                bootstrap_via_localhost: false,
            },
            wait_timeout: Duration::from_secs(120),
        };
        Lab { pki, members, spec }
    }

    /// A direct client to member `i` as `circle-admin`.
    pub(crate) fn admin_client(&self, i: usize) -> mongodb::Client {
        use mongodb::options::{ClientOptions, Credential, ServerAddress, Tls, TlsOptions};
        use secrecy::ExposeSecret as _;
        let mut options = ClientOptions::builder()
            .hosts(vec![ServerAddress::Tcp {
                host: "localhost".to_owned(),
                port: Some(self.members[i].port()),
            }])
            .direct_connection(true)
            .server_selection_timeout(Duration::from_secs(30))
            .build();
        options.tls = Some(Tls::Enabled(
            TlsOptions::builder()
                .ca_file_path(self.pki.ca_file())
                .build(),
        ));
        options.credential = Some(
            Credential::builder()
                .username(self.spec.admin.name.clone())
                .password(self.spec.admin.password.expose_secret().to_owned())
                .source("admin".to_owned())
                .build(),
        );
        mongodb::Client::with_options(options).unwrap()
    }

    /// The index of the member that is primary now.
    pub(crate) async fn primary_index(&self) -> usize {
        let started = Instant::now();
        loop {
            for i in 0..self.members.len() {
                let reply = self
                    .admin_client(i)
                    .database("admin")
                    .run_command(doc! {"hello": 1})
                    .await;
                if reply.is_ok_and(|r| r.get_bool("isWritablePrimary") == Ok(true)) {
                    return i;
                }
            }
            assert!(started.elapsed() < Duration::from_secs(60), "no primary");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs a command on the primary's `admin` as `circle-admin`.
    pub(crate) async fn on_primary(&self, command: Document) -> Document {
        let i = self.primary_index().await;
        self.admin_client(i)
            .database("admin")
            .run_command(command)
            .await
            .unwrap()
    }
}

/// Polls `check` until it is true; fails the test after `deadline`.
pub(crate) async fn wait_for<F, Fut>(what: &str, deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Progress lines go to the test's output (shown when it fails).
#[allow(clippy::print_stderr)]
pub(crate) fn progress(line: &str) {
    eprintln!("progress: {line}");
}

/// A spec that breaks MongoDB's rules never reaches a server: `apply` and
/// `dry_run` return every problem before connecting (the members here
/// are refused loopback ports, which would otherwise be `Unreachable`).
#[tokio::test]
async fn an_invalid_spec_is_refused_before_any_member_is_contacted() {
    let user = |name: &str| UserSpec {
        name: name.to_owned(),
        password: SecretString::from("pw".to_owned()),
    };
    let spec = SetSpec {
        name: "bad/name".to_owned(),
        members: (1..=8)
            .map(|port| MemberSpec::new(format!("localhost:{port}")))
            .collect(),
        settings: SetSettings::default(),
        site_admin: user("siteUserAdmin"),
        admin: user("circle-admin"),
        app: user("circle"),
        app_databases: vec!["circle_ghe".to_owned()],
        reach: Reach {
            tls: None,
            connect_timeout: Duration::from_secs(1),
            bootstrap_via_localhost: false,
        },
        wait_timeout: Duration::from_secs(1),
    };
    let session = mongo_rs_setup::Session::new(&spec);
    let heard = std::sync::Mutex::new(Vec::<String>::new());
    let progress = |line: &str| heard.lock().unwrap().push(line.to_owned());
    for err in [
        mongo_rs_setup::apply(&session, &progress)
            .await
            .unwrap_err(),
        mongo_rs_setup::dry_run(&session, &progress)
            .await
            .unwrap_err(),
    ] {
        let mongo_rs_setup::Error::Invalid(problems) = &err else {
            panic!("not refused as invalid: {err}")
        };
        let text = problems.to_string();
        assert!(text.contains("replica_set"), "{text}");
        assert!(text.contains('7'), "the voter limit: {text}");
    }
    assert!(
        heard.lock().unwrap().is_empty(),
        "{:?}",
        heard.lock().unwrap()
    );
}
