use bson::{Document, doc};

use super::*;

fn msg_bytes(flags: u32, sections: &[u8]) -> (Header, Vec<u8>) {
    let mut body = flags.to_le_bytes().to_vec();
    body.extend_from_slice(sections);
    let header = Header {
        length: (16 + body.len()) as i32,
        request_id: 1,
        response_to: 0,
        op_code: OP_MSG,
    };
    (header, body)
}

fn doc_bytes(doc: &Document) -> Vec<u8> {
    let mut out = Vec::new();
    doc.to_writer(&mut out).unwrap();
    out
}

#[test]
fn crc32c_matches_the_standard_check_value() {
    let mut crc = Crc32c::new();
    crc.update(b"123456789");
    assert_eq!(crc.finish(), 0xE306_9283);
}

#[test]
fn op_msg_sequences_become_array_fields() {
    let mut sections = vec![0];
    sections.extend(doc_bytes(&doc! {"insert": "c", "$db": "d"}));
    let mut sequence = Vec::new();
    sequence.extend_from_slice(b"documents\0");
    sequence.extend(doc_bytes(&doc! {"_id": 1}));
    sequence.extend(doc_bytes(&doc! {"_id": 2}));
    sections.push(1);
    sections.extend(((sequence.len() + 4) as i32).to_le_bytes());
    sections.extend(sequence);
    let (header, body) = msg_bytes(0, &sections);
    let Request::Msg { command, flags } = parse_body(&header, &body).unwrap() else {
        panic!()
    };
    assert_eq!(flags, 0);
    assert_eq!(
        command,
        doc! {"insert": "c", "$db": "d", "documents": [{"_id": 1}, {"_id": 2}]}
    );
}

#[test]
fn malformed_messages_are_rejected_not_panicked_on() {
    let body_doc = doc_bytes(&doc! {"ping": 1});
    let mut sections = vec![0];
    sections.extend(&body_doc);
    // Unknown required flag bit.
    let (header, body) = msg_bytes(1 << 3, &sections);
    assert_eq!(parse_body(&header, &body), Err(WireError::Flags(1 << 3)));
    // Optional high bits are fine.
    let (header, body) = msg_bytes(FLAG_EXHAUST_ALLOWED, &sections);
    assert!(parse_body(&header, &body).is_ok());
    // Two bodies.
    let mut two = sections.clone();
    two.extend(&sections);
    let (header, body) = msg_bytes(0, &two);
    assert_eq!(parse_body(&header, &body), Err(WireError::BodyCount(2)));
    // Unknown section kind.
    let (header, body) = msg_bytes(0, &[7, 0, 0, 0]);
    assert_eq!(parse_body(&header, &body), Err(WireError::SectionKind(7)));
    // Truncated document.
    let (header, body) = msg_bytes(0, &sections[..sections.len() - 2]);
    assert!(parse_body(&header, &body).is_err());
    // Length below 16 or above the maximum.
    let mut raw = [0u8; 16];
    raw[0..4].copy_from_slice(&10i32.to_le_bytes());
    assert_eq!(Header::parse(&raw), Err(WireError::Length(10)));
    raw[0..4].copy_from_slice(&(MAX_MESSAGE_SIZE as i32 + 1).to_le_bytes());
    assert!(Header::parse(&raw).is_err());
    // OP_COMPRESSED is not negotiated.
    let header = Header {
        length: 20,
        request_id: 1,
        response_to: 0,
        op_code: OP_COMPRESSED,
    };
    assert_eq!(
        parse_body(&header, &[0; 4]),
        Err(WireError::Opcode(OP_COMPRESSED))
    );
}

#[test]
fn checksums_are_verified() {
    let mut sections = vec![0];
    sections.extend(doc_bytes(&doc! {"ping": 1}));
    let mut body = FLAG_CHECKSUM_PRESENT.to_le_bytes().to_vec();
    body.extend(&sections);
    let length = 16 + body.len() + 4;
    let mut header = [0u8; 16];
    header[0..4].copy_from_slice(&(length as i32).to_le_bytes());
    header[12..16].copy_from_slice(&OP_MSG.to_le_bytes());
    let mut crc = Crc32c::new();
    crc.update(&header);
    crc.update(&body);
    let mut good = body.clone();
    good.extend(crc.finish().to_le_bytes());
    assert!(check_checksum(&header, &good).is_ok());
    let parsed = Header::parse(&header).unwrap();
    assert!(parse_body(&parsed, &good).is_ok());
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(check_checksum(&header, &bad), Err(WireError::Checksum));
}

#[test]
fn legacy_query_and_reply_round_trip() {
    let mut body = 0i32.to_le_bytes().to_vec();
    body.extend_from_slice(b"admin.$cmd\0");
    body.extend(0i32.to_le_bytes());
    body.extend((-1i32).to_le_bytes());
    body.extend(doc_bytes(&doc! {"isMaster": 1}));
    let header = Header {
        length: (16 + body.len()) as i32,
        request_id: 9,
        response_to: 0,
        op_code: OP_QUERY,
    };
    assert_eq!(
        parse_body(&header, &body).unwrap(),
        Request::Query {
            collection: "admin.$cmd".to_owned(),
            query: doc! {"isMaster": 1}
        }
    );
    let reply = RawDocumentBuf::from_document(&doc! {"ok": 1.0}).unwrap();
    let bytes = encode_reply(10, 9, &reply);
    assert_eq!(parse_reply(&bytes[16..]).unwrap(), doc! {"ok": 1.0});
}

/// Seed messages; `fuzz/corpus/wire/seed-*` hold the same bytes.
fn seeds() -> Vec<Vec<u8>> {
    let msg = |doc: Document, flags: u32| {
        let mut body = flags.to_le_bytes().to_vec();
        body.push(0);
        body.extend(doc_bytes(&doc));
        let mut out = ((16 + body.len()) as i32).to_le_bytes().to_vec();
        out.extend(7i32.to_le_bytes());
        out.extend(0i32.to_le_bytes());
        out.extend(OP_MSG.to_le_bytes());
        out.extend(body);
        out
    };
    let mut with_sequence = msg(doc! {"insert": "c", "$db": "d"}, 0);
    let mut sequence = b"documents\0".to_vec();
    sequence.extend(doc_bytes(&doc! {"_id": 1, "a": [1, 2, {"b": "c"}]}));
    with_sequence.push(1);
    with_sequence.extend(((sequence.len() + 4) as i32).to_le_bytes());
    with_sequence.extend(sequence);
    let total = with_sequence.len() as i32;
    with_sequence[..4].copy_from_slice(&total.to_le_bytes());
    let mut query = Vec::new();
    query.extend(0i32.to_le_bytes());
    query.extend(b"admin.$cmd\0");
    query.extend(0i32.to_le_bytes());
    query.extend((-1i32).to_le_bytes());
    query.extend(doc_bytes(&doc! {"isMaster": 1, "helloOk": true}));
    let mut op_query = ((16 + query.len()) as i32).to_le_bytes().to_vec();
    op_query.extend(1i32.to_le_bytes());
    op_query.extend(0i32.to_le_bytes());
    op_query.extend(OP_QUERY.to_le_bytes());
    op_query.extend(query);
    vec![
        msg(doc! {"hello": 1, "helloOk": true, "$db": "admin"}, 0),
        msg(
            doc! {"find": "c", "filter": {"x": {"$gt": 1}}, "$db": "d"},
            FLAG_EXHAUST_ALLOWED,
        ),
        with_sequence,
        op_query,
    ]
}

#[test]
fn corpus_and_mutations_never_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/wire");
    let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| std::fs::read(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    inputs.extend(seeds());
    assert!(
        inputs.len() >= 4,
        "the corpus in {} is missing",
        dir.display()
    );
    // A deterministic xorshift drives byte flips, truncations and splices.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..20_000 {
        let seed = &inputs[round % inputs.len()];
        let mut data = seed.clone();
        match next() % 4 {
            0 => {
                let at = (next() as usize) % data.len();
                data[at] ^= 1 << (next() % 8);
            }
            1 => data.truncate((next() as usize) % data.len()),
            2 => {
                let at = (next() as usize) % data.len();
                data[at] = next() as u8;
                let at = (next() as usize) % data.len();
                data[at] = 0xff;
            }
            _ => {
                let other = &inputs[(next() as usize) % inputs.len()];
                let cut = (next() as usize) % other.len();
                data.extend_from_slice(&other[cut..]);
            }
        }
        if data.len() < 16 {
            continue;
        }
        let mut header = [0u8; 16];
        header.copy_from_slice(&data[..16]);
        if next() % 2 == 0 {
            header[..4].copy_from_slice(&(data.len() as i32).to_le_bytes());
        }
        if let Ok(parsed) = Header::parse(&header) {
            let body = &data[16..];
            let _ = check_checksum(&header, body);
            let _ = parse_body(&parsed, body);
        }
    }
}

/// A document nested `depth` levels deep, built by hand (the bson crate
/// itself would recurse): `{a: {a: … {} …}}`.
pub(crate) fn nested(depth: usize) -> Vec<u8> {
    // Each level: i32 length, 0x03, "a\0", <inner>, 0x00.
    let mut doc = vec![5, 0, 0, 0, 0];
    for _ in 0..depth {
        let len = 4 + 1 + 2 + doc.len() + 1;
        let mut outer = (len as i32).to_le_bytes().to_vec();
        outer.push(0x03);
        outer.extend_from_slice(b"a\0");
        outer.extend_from_slice(&doc);
        outer.push(0);
        doc = outer;
    }
    doc
}

#[test]
fn deep_nesting_is_refused_before_decoding_without_overflowing_the_stack() {
    // About 20,000 levels in some 150 KB: a recursive decoder overflows.
    let deep = nested(20_000);
    assert!(deep.len() < 200_000);
    let mut sections = vec![0];
    sections.extend(&deep);
    let (header, body) = msg_bytes(0, &sections);
    let err = parse_body(&header, &body).unwrap_err();
    assert!(
        err.to_string().contains("maximum nested object depth"),
        "{err}"
    );
    // mongod's limit itself is fine.
    let ok = nested(MAX_BSON_DEPTH - 1);
    assert!(check_depth(&ok).is_ok());
    assert!(check_depth(&nested(MAX_BSON_DEPTH + 1)).is_err());
    // Every element type still walks.
    let all = doc_bytes(&doc! {
        "d": 1.5, "s": "x", "o": {"a": [1, 2]}, "b": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![1, 2] },
        "id": bson::oid::ObjectId::new(), "t": true, "dt": bson::DateTime::now(), "n": null,
        "re": bson::Regex { pattern: "a".into(), options: "i".into() }, "js": bson::Bson::JavaScriptCode("1".into()),
        "i": 1i32, "ts": bson::Timestamp { time: 1, increment: 2 }, "l": 1i64,
        "dec": bson::Decimal128::from_bytes([0; 16]), "min": bson::Bson::MinKey, "max": bson::Bson::MaxKey,
        "cws": bson::Bson::JavaScriptCodeWithScope(bson::JavaScriptCodeWithScope { code: "x".into(), scope: doc! {"a": {"b": 1}} }),
    });
    assert_eq!(check_depth(&all), Ok(()));
}
