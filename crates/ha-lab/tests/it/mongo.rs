//! The MongoDB member launcher: which implementation it picks and the
//! mongod-style command line it runs. No `mongod` package is reachable here
//! and the simulator lands with its own issue, so these tests run the
//! launcher against a stand-in program that only records its arguments and
//! listens on the requested port; the members' behaviour is tested where the
//! servers exist (mongo-sim's conformance suite, or real mongod through
//! MONGOD_BIN).

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use ha_lab::{MongoImpl, MongoMember, MongoMemberOptions, MongoTls, TlsMode, Toolbox};

/// A program that writes its arguments to `<dbpath>/../args` and accepts
/// connections on `--port` until killed.
fn stand_in(dir: &Path) -> PathBuf {
    let python = Toolbox::discover(std::env::vars_os()).python().unwrap();
    let path = dir.join("stand-in-mongod");
    ha_lab::write_executable(
        &path,
        format!(
            "#!{}\nimport socket, sys, os\nargs = sys.argv[1:]\n\
             db = args[args.index('--dbpath') + 1]\n\
             open(os.path.join(db, '..', 'args'), 'a').write(' '.join(args) + '\\n')\n\
             s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('127.0.0.1', int(args[args.index('--port') + 1]))); s.listen()\n\
             while True:\n    s.accept()[0].close()\n",
            python.display()
        ),
    )
    .unwrap();
    path
}

fn vars(pairs: &[(&str, &Path)]) -> Vec<(OsString, OsString)> {
    pairs
        .iter()
        .map(|(k, v)| (OsString::from(k), v.as_os_str().to_owned()))
        .collect()
}

#[test]
fn real_mongod_is_preferred_and_started_with_mongod_arguments() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = stand_in(tmp.path());
    let tools = Toolbox::discover(vars(&[
        ("PATH", Path::new("/nonexistent")),
        ("MONGOD_BIN", &fake),
        ("CIRCLE_HA_TEST_MONGO_SIM", &fake),
    ]));
    assert_eq!(tools.mongo().unwrap(), MongoImpl::Mongod(fake.clone()));

    let options = MongoMemberOptions {
        replica_set: Some("circle".to_owned()),
        auth: true,
        tls: Some(MongoTls {
            mode: TlsMode::Require,
            certificate_key_file: "/pki/m1.pem".into(),
            ca_file: "/pki/ca.pem".into(),
            cluster_file: None,
            allow_connections_without_certificates: true,
        }),
        cluster_auth_x509: true,
        extra_args: vec![],
    };
    let mut member = MongoMember::start(&tools, options).unwrap();
    let args_file = member.dbpath().join("../args");
    let first = fs::read_to_string(&args_file).unwrap();
    assert_eq!(
        first.trim(),
        format!(
            "--port {} --bind_ip 127.0.0.1 --dbpath {} --replSet circle --auth --tlsMode \
             requireTLS --tlsCertificateKeyFile /pki/m1.pem --tlsCAFile /pki/ca.pem \
             --tlsAllowConnectionsWithoutCertificates --clusterAuthMode x509",
            member.port(),
            member.dbpath().display()
        )
    );
    assert_eq!(member.host(), format!("localhost:{}", member.port()));

    // A crash, then a restart on the same port and data directory.
    let port = member.port();
    member.kill();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    member.restart().unwrap();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    let lines = fs::read_to_string(&args_file).unwrap();
    assert_eq!(lines.lines().count(), 2);
    assert_eq!(lines.lines().nth(1).unwrap(), first.trim());
}

#[test]
fn mongo_sim_is_used_when_no_mongod_exists() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = stand_in(tmp.path());
    let tools = Toolbox::discover(vars(&[
        ("PATH", Path::new("/nonexistent")),
        ("CIRCLE_HA_TEST_MONGO_SIM", &fake),
    ]));
    assert_eq!(tools.mongo().unwrap(), MongoImpl::Sim(fake));
    let member = MongoMember::start(&tools, MongoMemberOptions::default()).unwrap();
    assert_eq!(member.implementation().name(), "mongo-sim");
}

#[test]
fn missing_servers_fail_with_instructions() {
    let tools = Toolbox::discover(vars(&[
        ("PATH", Path::new("/nonexistent")),
        (
            "CIRCLE_HA_TEST_MONGO_SIM",
            Path::new("/nonexistent/mongo-sim"),
        ),
    ]));
    let err = tools.mongo().unwrap_err().to_string();
    assert!(
        err.contains("cargo build -p mongo-sim") && err.contains("MONGOD_BIN"),
        "{err}"
    );

    let tools = Toolbox::discover(vars(&[("MONGOD_BIN", Path::new("/nonexistent/mongod"))]));
    let err = tools.mongo().unwrap_err().to_string();
    assert!(err.contains("MONGOD_BIN=/nonexistent/mongod"), "{err}");

    let tools = Toolbox::discover(vars(&[
        ("PATH", Path::new("/nonexistent")),
        ("CIRCLE_HA_TEST_TOOLS_DIR", Path::new("/nonexistent")),
    ]));
    let err = tools.bao().unwrap_err().to_string();
    assert!(err.contains("cargo xtask install"), "{err}");
}
