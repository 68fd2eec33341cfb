//! Bad input never crashes a member: malformed, oversized and unknown
//! messages get a closed connection, and the server keeps serving.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use bson::{Document, doc};
use ha_lab::MongoMember;

use crate::{admin, direct, plain_options, tools};

/// Sends `bytes` and reads until the member closes the connection. A
/// member that stops reading early may make the write fail (it closed:
/// fine); one that keeps the connection open past the deadline fails the
/// test, since a hang is not a close.
fn send(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    if let Err(e) = stream.write_all(bytes) {
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ),
            "writing failed for another reason than a close: {e}"
        );
    }
    let mut reply = Vec::new();
    match stream.read_to_end(&mut reply) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!(
            "the member neither answered nor closed the connection within 20 s ({e}) after {} \
             bytes starting {:02x?}",
            bytes.len(),
            &bytes[..bytes.len().min(16)]
        ),
    }
    reply
}

fn header(length: i32, op_code: i32) -> Vec<u8> {
    let mut out = length.to_le_bytes().to_vec();
    out.extend(1i32.to_le_bytes());
    out.extend(0i32.to_le_bytes());
    out.extend(op_code.to_le_bytes());
    out
}

fn op_msg(doc: &Document) -> Vec<u8> {
    let mut body = vec![0, 0, 0, 0, 0];
    doc.to_writer(&mut body).unwrap();
    let mut out = header((16 + body.len()) as i32, 2013);
    out.extend(body);
    out
}

#[tokio::test]
async fn garbage_gets_a_closed_connection_and_the_server_keeps_serving() {
    let member = MongoMember::start(&tools(), plain_options(Some("rs"))).unwrap();
    let port = member.port();
    let mut cases: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        header(10, 2013),
        header(60_000_000, 2013),
        header(20, 9999).into_iter().chain([0, 0, 0, 0]).collect(),
        header(20, 2012).into_iter().chain([0, 0, 0, 0]).collect(),
        {
            // OP_MSG whose document claims more bytes than the message
            // has. (The header's length must match what is sent: a member
            // waits for the rest of a message, as mongod does.)
            let body = [0, 0, 0, 0, 0, 100, 0, 0, 0, 1, 2, 3];
            let mut m = header(16 + body.len() as i32, 2013);
            m.extend(body);
            m
        },
        {
            // Required flag bit set.
            let mut m = op_msg(&doc! {"ping": 1, "$db": "admin"});
            m[16] = 0x04;
            m
        },
    ];
    cases.push(vec![0xff; 4096]);
    for case in &cases {
        let reply = send(port, case);
        assert!(
            reply.is_empty(),
            "a malformed message got a reply: {reply:?}"
        );
    }
    // A well-formed raw OP_MSG still gets an answer …
    let reply = send_one(port, &op_msg(&doc! {"ping": 1, "$db": "admin"}));
    assert_eq!(reply.get_f64("ok"), Ok(1.0));
    // … and a secondary-only read without a read preference on a node that
    // is not primary is refused with NotPrimaryOrSecondary/NoSecondaryOk.
    let reply = send_one(port, &op_msg(&doc! {"find": "c", "$db": "app"}));
    assert_eq!(reply.get_f64("ok"), Ok(0.0));
    // The driver is fine too.
    let client = direct(&member, None, None).await;
    admin(&client, doc! {"ping": 1}).await.unwrap();
}

fn send_one(port: u16, bytes: &[u8]) -> Document {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    let mut head = [0u8; 16];
    stream.read_exact(&mut head).unwrap();
    let length = i32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let mut body = vec![0u8; length - 16];
    stream.read_exact(&mut body).unwrap();
    Document::from_reader(&body[5..]).unwrap()
}

/// Sends `bytes` and reads one reply message (the member keeps the
/// connection open).
fn request(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    let mut head = [0_u8; 16];
    stream.read_exact(&mut head).unwrap();
    let length = i32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let mut rest = vec![0_u8; length.saturating_sub(16)];
    stream.read_exact(&mut rest).unwrap();
    rest
}

/// Peak resident memory of process `pid` (VmHWM), bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// Before authentication, a kind-1 sequence is not decoded: ten parallel
/// 48 MB `insert` messages whose sequence holds ~9.6 million empty
/// documents each are answered Unauthorized and cost the member no more
/// than their bytes; an authenticated client is served all along.
#[tokio::test(flavor = "multi_thread")]
async fn document_sequences_before_authentication_cost_no_memory() {
    let options = ha_lab::MongoMemberOptions {
        auth: true,
        ..crate::plain_options(None)
    };
    let member = MongoMember::start(&tools(), options).unwrap();
    let anonymous = direct(&member, None, None).await;
    admin(
        &anonymous,
        doc! {"createUser": "root", "pwd": "p'w\"d", "roles": [{"role": "root", "db": "admin"}]},
    )
    .await
    .unwrap();
    let root = direct(&member, None, Some(("root", "p'w\"d"))).await;
    admin(&root, doc! {"ping": 1}).await.unwrap();
    let pid = member.pid().expect("the member's pid");
    let before = peak_rss(pid);

    // OP_MSG: flags, the body {insert: "c", $db: "circle_ghe"}, then one
    // kind-1 section "documents" of empty documents up to ~48 MB.
    let mut body = vec![0, 0, 0, 0, 0];
    doc! {"insert": "c", "$db": "circle_ghe"}
        .to_writer(&mut body)
        .unwrap();
    let empties = (47_000_000 - body.len()) / 5;
    let mut sequence = vec![1];
    let size = 4 + b"documents\0".len() + empties * 5;
    sequence.extend((size as i32).to_le_bytes());
    sequence.extend(b"documents\0");
    for _ in 0..empties {
        sequence.extend([5, 0, 0, 0, 0]);
    }
    body.extend(sequence);
    let mut message = header((16 + body.len()) as i32, 2013);
    message.extend(body);
    let message = std::sync::Arc::new(message);
    let port = member.port();
    let senders: Vec<_> = (0..10)
        .map(|_| {
            let message = message.clone();
            std::thread::spawn(move || request(port, &message))
        })
        .collect();
    // Served while the hostile messages arrive.
    admin(&root, doc! {"ping": 1}).await.unwrap();
    for sender in senders {
        let reply = sender.join().unwrap();
        // The member answered each: Unauthorized, as mongod does.
        let text = String::from_utf8_lossy(&reply);
        assert!(text.contains("Unauthorized"), "{text}");
    }
    let grew = peak_rss(pid).saturating_sub(before);
    assert!(
        peak_rss(pid) < 256 << 20,
        "peak RSS {} MiB (grew {} MiB)",
        peak_rss(pid) >> 20,
        grew >> 20
    );
    admin(&root, doc! {"ping": 1}).await.unwrap();
}
