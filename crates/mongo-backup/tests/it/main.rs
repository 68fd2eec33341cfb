//! mongo-backup as a library against a three-member lab set (TLS
//! required, x509 member authentication, auth on; mongo-sim members, or
//! real mongod when one is available) and the AWS emulator.

mod ebs;
mod snapshot;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bson::doc;
use ha_lab::{LabPki, MongoMember, MongoMemberOptions, Toolbox};
use mongo_backup::{BackupSpec, Error, MemberProcess};
use mongo_rs_setup::{MemberSpec, Reach, SetSettings, SetSpec, TlsFiles, UserSpec};
use secrecy::SecretString;

/// A password with every character a shell, a URI or a YAML file could
/// trip on.
const HOSTILE: &str = "b'\"$@:/?#%&=+ \\wörd`;";

/// A bootstrapped three-member set and its spec.
pub(crate) struct Lab {
    pub pki: LabPki,
    pub members: Vec<Arc<Mutex<MongoMember>>>,
    pub spec: SetSpec,
}

pub(crate) fn tools() -> Toolbox {
    Toolbox::discover(std::env::vars_os())
}

impl Lab {
    pub(crate) async fn start(set: &str) -> Lab {
        let pki = LabPki::new().unwrap();
        let members: Vec<MongoMember> = (0..3)
            .map(|_| {
                MongoMember::start(&tools(), MongoMemberOptions::secure(&pki, set))
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        let user = |name: &str| UserSpec {
            name: name.to_owned(),
            password: SecretString::from(format!("{HOSTILE}{name}")),
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
            site_admin: user("siteUserAdmin"),
            admin: user("circle-admin"),
            app: user("circle"),
            app_databases: vec!["circle_ghe".to_owned()],
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
        let session = mongo_rs_setup::Session::new(&spec);
        mongo_rs_setup::apply(&session, &progress).await.unwrap();
        Lab {
            pki,
            members: members
                .into_iter()
                .map(|m| Arc::new(Mutex::new(m)))
                .collect(),
            spec,
        }
    }

    pub(crate) fn host(&self, i: usize) -> String {
        self.members[i].lock().unwrap().host()
    }

    /// A client to the whole set as `circle-admin`.
    pub(crate) fn set_client(&self) -> mongodb::Client {
        use mongodb::options::{ClientOptions, Credential, ServerAddress, Tls, TlsOptions};
        use secrecy::ExposeSecret as _;
        let hosts: Vec<ServerAddress> = (0..3)
            .map(|i| ServerAddress::parse(self.host(i)).unwrap())
            .collect();
        let mut options = ClientOptions::builder()
            .hosts(hosts)
            .repl_set_name(self.spec.name.clone())
            .server_selection_timeout(Duration::from_secs(60))
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

    /// The members' states, sorted, as the set's primary reports them once
    /// they have settled to `want` (or the last seen, after 90 s).
    pub(crate) async fn settle(&self, want: &[&str]) -> Vec<String> {
        let client = self.set_client();
        let started = Instant::now();
        loop {
            let mut states: Vec<String> = match client
                .database("admin")
                .run_command(doc! {"replSetGetStatus": 1})
                .await
            {
                Ok(reply) => reply
                    .get_array("members")
                    .unwrap()
                    .iter()
                    .filter_map(|m| m.as_document())
                    .map(|m| m.get_str("stateStr").unwrap_or_default().to_owned())
                    .collect(),
                Err(e) => vec![e.to_string()],
            };
            states.sort();
            if states == want || started.elapsed() > Duration::from_secs(90) {
                return states;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A member that is SECONDARY now.
    pub(crate) async fn secondary_index(&self) -> usize {
        let session = mongo_rs_setup::Session::new(&self.spec);
        let started = Instant::now();
        loop {
            for i in 0..3 {
                if let Ok(hello) = session.hello(&self.host(i)).await
                    && hello.secondary
                {
                    return i;
                }
            }
            assert!(started.elapsed() < Duration::from_secs(60), "no secondary");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A backup spec for member `i`.
    pub(crate) fn backup_spec(&self, i: usize) -> BackupSpec {
        let member = self.members[i].lock().unwrap();
        BackupSpec {
            member: member.host(),
            local_port: Some(member.port()),
            state_dir: None,
            limits: mongo_backup::guard::Limits {
                max_lag: Duration::from_secs(30),
                any_member: false,
            },
            db_path: Some(member.dbpath()),
            lease: Duration::from_secs(600),
            stop_timeout: Duration::from_secs(60),
            catch_up_timeout: Duration::from_secs(120),
            complete_timeout: Duration::from_secs(60),
            retention: mongo_backup::snapshot::Retention::default(),
            poll: Duration::from_millis(100),
            version: "test".to_owned(),
        }
    }
}

/// Stops and starts a lab member the way `systemctl` would stop and
/// start mongod: SIGTERM, and the same command line again.
pub(crate) struct LabProcess(pub Arc<Mutex<MongoMember>>);

impl MemberProcess for LabProcess {
    async fn stop(&mut self) -> Result<(), Error> {
        let member = self.0.clone();
        tokio::task::spawn_blocking(move || member.lock().unwrap().stop())
            .await
            .unwrap();
        Ok(())
    }

    async fn start(&mut self) -> Result<(), Error> {
        let member = self.0.clone();
        tokio::task::spawn_blocking(move || member.lock().unwrap().restart())
            .await
            .unwrap()
            .map_err(|e| Error::Command {
                what: "start",
                command: "lab restart".to_owned(),
                detail: e.to_string(),
            })
    }
}

/// Progress lines go to the test's output (shown when it fails).
#[allow(clippy::print_stderr)]
pub(crate) fn progress(line: &str) {
    eprintln!("progress: {line}");
}
