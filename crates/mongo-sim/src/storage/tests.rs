use bson::{Bson, RawDocumentBuf, doc};

use super::{Entry, OpTime, Statement};

/// An entry written field by field is byte for byte what encoding the
/// same document with the bson crate gives, in mongod's field order.
#[test]
fn an_oplog_entry_is_the_document_mongod_writes() {
    let optime = OpTime {
        term: 3,
        secs: 1_796_046_853,
        inc: 7,
    };
    let o = doc! {"_id": 42_i64, "name": "tést\u{0}x", "nested": {"a": [1, 2]}};
    let o2 = doc! {"_id": 42_i64};
    let lsid = doc! {"id": Bson::Binary(bson::Binary { subtype: bson::spec::BinarySubtype::Uuid, bytes: vec![9; 16] })};
    let statement = Statement {
        key: Statement::key_of(&lsid),
        lsid: lsid.clone(),
        txn_number: 5,
        stmt_id: 2,
    };
    let uuid = [7_u8; 16];
    let raw_o = RawDocumentBuf::from_document(&o).unwrap();
    let entry = Entry::new(
        optime,
        "u",
        "circle_ghe.builds",
        &raw_o,
        Some(&o2),
        Some(uuid),
        Some(&statement),
    )
    .unwrap();
    let expected = doc! {
        "ts": bson::Timestamp { time: 1_796_046_853, increment: 7 },
        "t": 3_i64,
        "v": 2_i64,
        "op": "u",
        "ns": "circle_ghe.builds",
        "wall": bson::DateTime::from_millis(1_796_046_853_000),
        "o": o,
        "o2": o2,
        "ui": Bson::Binary(bson::Binary { subtype: bson::spec::BinarySubtype::Uuid, bytes: uuid.to_vec() }),
        "lsid": lsid,
        "txnNumber": 5_i64,
        "stmtId": 2_i32,
    };
    assert_eq!(
        entry.raw.as_bytes(),
        RawDocumentBuf::from_document(&expected).unwrap().as_bytes()
    );
    assert_eq!(Entry::from_raw(entry.raw.clone()), Some(entry.clone()));
    assert_eq!((entry.op(), entry.ns()), ("u", "circle_ghe.builds"));

    let plain = Entry::new(optime, "i", "a.b", &raw_o, None, None, None).unwrap();
    let expected = doc! {
        "ts": bson::Timestamp { time: 1_796_046_853, increment: 7 },
        "t": 3_i64, "v": 2_i64, "op": "i", "ns": "a.b",
        "wall": bson::DateTime::from_millis(1_796_046_853_000),
        "o": raw_o.to_document().unwrap(),
    };
    assert_eq!(
        plain.raw.as_bytes(),
        RawDocumentBuf::from_document(&expected).unwrap().as_bytes()
    );
}
