use super::*;

fn run(args: &[&str]) -> ServerOptions {
    match parse_args(args).unwrap() {
        Invocation::Run(options) => *options,
        other => panic!("{other:?}"),
    }
}

#[test]
fn mongod_flags_and_their_ssl_spellings() {
    let options = run(&[
        "--port",
        "40001",
        "--bind_ip",
        "127.0.0.1,localhost",
        "--dbpath",
        "/tmp/x",
        "--replSet",
        "circle/seed:1",
        "--sslMode",
        "requireSSL",
        "--sslPEMKeyFile",
        "/p.pem",
        "--tlsCAFile=/ca.pem",
        "--tlsAllowConnectionsWithoutCertificates",
        "--clusterAuthMode",
        "x509",
        "--simServerVersion",
        "4.4",
    ]);
    assert_eq!(options.port, 40001);
    assert_eq!(options.bind_ip, ["127.0.0.1", "localhost"]);
    assert_eq!(options.repl_set.as_deref(), Some("circle"));
    assert_eq!(options.tls_mode, TlsMode::Require);
    assert_eq!(
        options.tls_certificate_key_file,
        Some(PathBuf::from("/p.pem"))
    );
    assert!(options.tls_allow_connections_without_certificates);
    assert!(
        options.cluster_auth_x509 && options.auth,
        "x509 internal auth enforces auth"
    );
    assert_eq!(options.version, Version { major: 4, minor: 4 });
}

#[test]
fn unknown_or_invalid_options_fail_like_mongod() {
    let err = parse_args(&["--frobnicate"]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Error parsing command line: unrecognised option '--frobnicate'")
    );
    let err = parse_args(&["--port"]).unwrap_err();
    assert!(err.0.contains("required argument for option '--port'"));
    assert!(parse_args(&["--tlsMode", "sometimes"]).is_err());
    assert!(
        parse_args(&["--tlsMode", "requireTLS"])
            .unwrap_err()
            .0
            .contains("tlsCertificateKeyFile")
    );
    assert!(parse_args(&["--clusterAuthMode", "keyFile"]).is_err());
    assert!(parse_args(&["--simServerVersion", "3.2"]).is_err());
    // FCV 3.4 is the 3.6 profile's only.
    assert!(parse_args(&["--simFeatureCompatibilityVersion", "3.4"]).is_err());
    assert!(
        parse_args(&[
            "--simServerVersion",
            "3.6",
            "--simFeatureCompatibilityVersion",
            "3.2"
        ])
        .is_err()
    );
    assert!(
        parse_args(&[
            "--simServerVersion",
            "3.6",
            "--simFeatureCompatibilityVersion",
            "3.4"
        ])
        .is_ok()
    );
}

#[test]
fn yaml_config_file_keys_and_version_rules() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("mongod.conf");
    let runbook = "storage:\n  dbPath: /mongo/data\n  journal:\n    enabled: true\n\
        systemLog:\n  destination: file\n  logAppend: true\n  path: /mongo/logs/mongod.log\n  \
        logRotate: reopen\n  timeStampFormat: iso8601-utc\n\
        replication:\n  replSetName: circle\n\
        security:\n  authorization: enabled\n  clusterAuthMode: x509\n\
        net:\n  ssl:\n    mode: requireSSL\n    PEMKeyFile: /etc/mongodb/m.pem\n    \
        clusterFile: /etc/mongodb/m.pem\n    CAFile: /etc/mongodb/ca.pem\n    \
        allowConnectionsWithoutCertificates: true\n";
    std::fs::write(&conf, runbook).unwrap();
    let path = conf.to_str().unwrap();
    // The runbook's template is valid for 4.4 …
    let options = run(&["--config", path, "--simServerVersion", "4.4"]);
    assert_eq!(options.dbpath, PathBuf::from("/mongo/data"));
    assert_eq!(options.repl_set.as_deref(), Some("circle"));
    assert_eq!(options.tls_mode, TlsMode::Require);
    assert_eq!(
        options.log,
        LogDestination::File {
            path: PathBuf::from("/mongo/logs/mongod.log"),
            append: true
        }
    );
    // … but 7.0 no longer knows storage.journal.enabled.
    let err = parse_args(&["--config", path]).unwrap_err();
    assert!(
        err.0
            .starts_with("Unrecognized option: storage.journal.enabled"),
        "{err}"
    );

    std::fs::write(&conf, "net:\n  port: 1\n  frob: 2\n").unwrap();
    let err = parse_args(&["-f", path]).unwrap_err();
    assert!(err.0.starts_with("Unrecognized option: net.frob"), "{err}");

    // The command line overrides the file.
    std::fs::write(&conf, "net:\n  port: 1000\n").unwrap();
    assert_eq!(run(&["--config", path, "--port", "2000"]).port, 2000);
}
