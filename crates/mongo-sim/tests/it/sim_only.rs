//! Behaviour of the simulator itself (its version profiles), run against
//! the `mongo-sim` binary even when MONGOD_BIN points at a real mongod.

use std::ffi::OsString;
use std::time::Duration;

use bson::doc;
use ha_lab::{MongoMember, MongoMemberOptions, Toolbox};

use crate::{admin, code, direct, hello, wait_for};

fn sim_tools() -> Toolbox {
    let vars: Vec<(OsString, OsString)> = vec![
        ("PATH".into(), "/nonexistent".into()),
        (
            "CIRCLE_HA_TEST_MONGO_SIM".into(),
            env!("CARGO_BIN_EXE_mongo-sim").into(),
        ),
    ];
    Toolbox::discover(vars)
}

#[tokio::test]
async fn the_4_4_profile_reports_4_4_and_its_names() {
    let member = MongoMember::start(
        &sim_tools(),
        MongoMemberOptions {
            replica_set: Some("rs".to_owned()),
            extra_args: vec!["--simServerVersion".into(), "4.4".into()],
            ..MongoMemberOptions::default()
        },
    )
    .unwrap();
    let client = direct(&member, None, None).await;
    let reply = hello(&client).await.unwrap();
    assert_eq!(reply.get_i32("maxWireVersion"), Ok(9));
    let info = admin(&client, doc! {"buildInfo": 1}).await.unwrap();
    assert!(info.get_str("version").unwrap().starts_with("4.4."));
    // Before 5.0 NotWritablePrimary was called NotMaster.
    let err = client
        .database("d")
        .collection::<bson::Document>("c")
        .insert_one(doc! {})
        .await
        .unwrap_err();
    match *err.kind {
        mongodb::error::ErrorKind::Write(mongodb::error::WriteFailure::WriteError(ref e)) => {
            assert_eq!(e.code, 10107)
        }
        mongodb::error::ErrorKind::Command(ref e) => {
            assert_eq!((e.code, e.code_name.as_str()), (10107, "NotMaster"))
        }
        ref other => panic!("{other:?}"),
    }
    // 4.4's replSetGetStatus error carries the `info` hint.
    let err = admin(&client, doc! {"replSetGetStatus": 1})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(94));
}

#[tokio::test]
async fn a_member_restarted_from_its_dbpath_keeps_config_and_data() {
    let mut member = MongoMember::start(
        &sim_tools(),
        MongoMemberOptions {
            replica_set: Some("rs".to_owned()),
            ..MongoMemberOptions::default()
        },
    )
    .unwrap();
    let client = direct(&member, None, None).await;
    admin(
        &client,
        doc! {"replSetInitiate": {"_id": "rs", "members": [{"_id": 0, "host": member.host()}]}},
    )
    .await
    .unwrap();
    wait_for("primary", Duration::from_secs(60), || async {
        hello(&client)
            .await
            .is_some_and(|h| h.get_bool("isWritablePrimary") == Ok(true))
    })
    .await;
    client
        .database("d")
        .collection("c")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap();
    member.kill();
    member.restart().unwrap();
    let client = direct(&member, None, None).await;
    wait_for("primary again", Duration::from_secs(60), || async {
        hello(&client)
            .await
            .is_some_and(|h| h.get_bool("isWritablePrimary") == Ok(true))
    })
    .await;
    assert_eq!(
        client
            .database("d")
            .collection::<bson::Document>("c")
            .count_documents(doc! {})
            .await
            .unwrap(),
        1
    );
    let config = admin(&client, doc! {"replSetGetConfig": 1}).await.unwrap();
    assert_eq!(
        config.get_document("config").unwrap().get_str("_id"),
        Ok("rs")
    );
}

#[test]
fn a_7_0_config_file_with_journal_enabled_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("mongod.conf");
    std::fs::write(
        &conf,
        "storage:\n  dbPath: /tmp\n  journal:\n    enabled: true\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mongo-sim"))
        .arg("--config")
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("Unrecognized option: storage.journal.enabled")
    );
}

/// A ~150 KB message nested 20,000 levels deep is refused before it is
/// decoded (it overflowed the stack and killed the process), and
/// `--maxConns` bounds the open connections; the member keeps serving.
#[tokio::test]
async fn deep_nesting_and_too_many_connections_do_not_take_a_member_down() {
    use std::io::{Read as _, Write as _};
    let member = MongoMember::start(
        &sim_tools(),
        MongoMemberOptions {
            extra_args: vec!["--maxConns".into(), "3".into()],
            ..MongoMemberOptions::default()
        },
    )
    .unwrap();
    let port = member.port();
    let connect = || {
        let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream
    };
    let op_msg = |doc: &[u8]| {
        let mut body = vec![0, 0, 0, 0, 0];
        body.extend_from_slice(doc);
        let mut out = ((16 + body.len()) as i32).to_le_bytes().to_vec();
        out.extend(1i32.to_le_bytes());
        out.extend(0i32.to_le_bytes());
        out.extend(2013i32.to_le_bytes());
        out.extend(body);
        out
    };
    let mut deep = vec![5, 0, 0, 0, 0];
    for _ in 0..20_000 {
        let mut outer = ((4 + 1 + 2 + deep.len() + 1) as i32).to_le_bytes().to_vec();
        outer.push(0x03);
        outer.extend_from_slice(b"a\0");
        outer.extend_from_slice(&deep);
        outer.push(0);
        deep = outer;
    }
    let mut stream = connect();
    let _ = stream.write_all(&op_msg(&deep));
    let mut reply = Vec::new();
    let read = stream.read_to_end(&mut reply);
    assert!(
        read.is_ok()
            || read
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the member neither answered nor closed: {read:?}"
    );
    assert!(reply.is_empty(), "a reply to a refused message");
    drop(stream);

    let ping = {
        let mut bytes = Vec::new();
        doc! {"ping": 1, "$db": "admin"}
            .to_writer(&mut bytes)
            .unwrap();
        op_msg(&bytes)
    };
    // Three connections are served; a fourth is closed unanswered.
    let answered = |stream: &mut std::net::TcpStream| {
        stream.write_all(&ping).is_ok() && {
            let mut head = [0u8; 16];
            stream.read_exact(&mut head).is_ok()
        }
    };
    let mut held = Vec::new();
    wait_for("three connections served", Duration::from_secs(30), || {
        held.retain_mut(answered);
        while held.len() < 3 {
            let mut stream = connect();
            if !answered(&mut stream) {
                break;
            }
            held.push(stream);
        }
        let done = held.len() == 3;
        async move { done }
    })
    .await;
    let mut fourth = connect();
    assert!(!answered(&mut fourth), "a fourth connection was served");
    drop(held);
    // The slots come back, and the member was never taken down.
    wait_for("a connection served again", Duration::from_secs(30), || {
        let ok = answered(&mut connect());
        async move { ok }
    })
    .await;
    let client = direct(&member, None, None).await;
    admin(&client, doc! {"ping": 1}).await.unwrap();
}

/// With `ulimit -n 64`, 120 idle connections neither make the accept loop
/// spin on EMFILE nor flood the log: connections past 80 % of the
/// open-file limit are closed at once (as mongod caps maxConns), accept
/// errors back off and are logged once per burst, and once the clients go
/// the member serves again.
#[test]
fn a_low_open_file_limit_caps_connections_without_a_spinning_accept_loop() {
    use std::io::{Read as _, Write as _};
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dbpath = dir.path().join("db");
    std::fs::create_dir(&dbpath).unwrap();
    let log = dir.path().join("member.log");
    let mut member = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 64 && exec '{}' --port {port} --bind_ip 127.0.0.1 --dbpath '{}' > '{}' 2>&1",
            env!("CARGO_BIN_EXE_mongo-sim"),
            dbpath.display(),
            log.display()
        ))
        .spawn()
        .unwrap();
    let ping = || -> bool {
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut body = vec![0, 0, 0, 0, 0];
        doc! {"ping": 1, "$db": "admin"}
            .to_writer(&mut body)
            .unwrap();
        let mut message = ((16 + body.len()) as i32).to_le_bytes().to_vec();
        message.extend(1_i32.to_le_bytes());
        message.extend(0_i32.to_le_bytes());
        message.extend(2013_i32.to_le_bytes());
        message.extend(body);
        if stream.write_all(&message).is_err() {
            return false;
        }
        let mut head = [0_u8; 16];
        stream.read_exact(&mut head).is_ok()
    };
    let started = std::time::Instant::now();
    while !ping() {
        assert!(started.elapsed() < Duration::from_secs(60), "never served");
        std::thread::sleep(Duration::from_millis(50));
    }
    let held: Vec<std::net::TcpStream> = (0..120)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    assert_eq!(
        held.len(),
        120,
        "the kernel queues connections past the member"
    );
    // Wait until the member has met its limit: a connection over the cap
    // refused, or an accept failing (other files use descriptors too).
    let started = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("too many open connections") || text.contains("accept failed") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Then, watched for two seconds: no spinning (little CPU) and no
    // flood (a small log).
    let cpu = || {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", member.id())).unwrap();
        let after_name = stat.rsplit(')').next().unwrap().to_owned();
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // utime and stime (fields 14 and 15 of stat), clock ticks.
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    let (before, watched) = (cpu(), std::time::Instant::now());
    while watched.elapsed() < Duration::from_secs(2) {
        let size = std::fs::metadata(&log).unwrap().len();
        assert!(size < 256 << 10, "the log grew to {size} bytes");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ticks = cpu() - before;
    assert!(
        ticks < 100,
        "{ticks} clock ticks of CPU in 2 s: the accept loop spins"
    );
    drop(held);
    let started = std::time::Instant::now();
    while !ping() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not served after the clients left"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = member.kill();
    let _ = member.wait();
}
