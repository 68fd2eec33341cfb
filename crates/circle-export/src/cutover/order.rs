//! MongoDB's order of `_id` values, as the server sorts them (BSON's
//! comparison order, `BSONElement::woCompare` with the simple collation):
//! first the canonical type — MinKey, Undefined, Null, numbers, strings
//! and symbols, objects, arrays, binary data, ObjectId, booleans, dates,
//! timestamps, regular expressions, MaxKey — then the value. Numbers of
//! every type compare by value; a binary by length, subtype, then bytes;
//! an object element by element (type, field name, value), the shorter
//! first. Types this reader does not order (Decimal128, arrays, regular
//! expressions, code, DBPointer) answer `None`: the final pass then
//! refuses to diff that collection instead of guessing.

use std::cmp::Ordering;

use bson::Bson;

/// The canonical type rank (mongod's `canonicalizeBSONType`).
fn rank(value: &Bson) -> i32 {
    match value {
        Bson::MinKey => -1,
        Bson::Undefined => 0,
        Bson::Null => 5,
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => 10,
        Bson::String(_) | Bson::Symbol(_) => 15,
        Bson::Document(_) => 20,
        Bson::Array(_) => 25,
        Bson::Binary(_) => 30,
        Bson::ObjectId(_) => 35,
        Bson::Boolean(_) => 40,
        Bson::DateTime(_) => 45,
        Bson::Timestamp(_) => 47,
        Bson::RegularExpression(_) => 50,
        Bson::DbPointer(_) => 55,
        Bson::JavaScriptCode(_) => 60,
        Bson::JavaScriptCodeWithScope(_) => 65,
        Bson::MaxKey => 127,
    }
}

/// How `a` and `b` sort on the server; `None` when this reader cannot say.
pub fn compare_ids(a: &Bson, b: &Bson) -> Option<Ordering> {
    let by_rank = rank(a).cmp(&rank(b));
    if by_rank != Ordering::Equal {
        return Some(by_rank);
    }
    Some(match (a, b) {
        (Bson::MinKey, _) | (Bson::MaxKey, _) | (Bson::Null, _) | (Bson::Undefined, _) => {
            Ordering::Equal
        }
        (Bson::String(x) | Bson::Symbol(x), Bson::String(y) | Bson::Symbol(y)) => {
            x.as_bytes().cmp(y.as_bytes())
        }
        (Bson::ObjectId(x), Bson::ObjectId(y)) => x.bytes().cmp(&y.bytes()),
        (Bson::Boolean(x), Bson::Boolean(y)) => x.cmp(y),
        (Bson::DateTime(x), Bson::DateTime(y)) => x.timestamp_millis().cmp(&y.timestamp_millis()),
        (Bson::Timestamp(x), Bson::Timestamp(y)) => {
            (x.time, x.increment).cmp(&(y.time, y.increment))
        }
        (Bson::Binary(x), Bson::Binary(y)) => (x.bytes.len(), u8::from(x.subtype), &x.bytes)
            .cmp(&(y.bytes.len(), u8::from(y.subtype), &y.bytes)),
        (Bson::Document(x), Bson::Document(y)) => {
            for ((ka, va), (kb, vb)) in x.iter().zip(y.iter()) {
                let by_type = rank(va).cmp(&rank(vb));
                if by_type != Ordering::Equal {
                    return Some(by_type);
                }
                let by_name = ka.as_bytes().cmp(kb.as_bytes());
                if by_name != Ordering::Equal {
                    return Some(by_name);
                }
                let by_value = compare_ids(va, vb)?;
                if by_value != Ordering::Equal {
                    return Some(by_value);
                }
            }
            x.len().cmp(&y.len())
        }
        (x, y) if rank(x) == 10 => numbers(x, y)?,
        _ => return None,
    })
}

/// Two numbers by value (Decimal128: `None`); NaN before every other
/// number and equal to itself, as the server orders them.
fn numbers(a: &Bson, b: &Bson) -> Option<Ordering> {
    enum N {
        I(i64),
        F(f64),
    }
    let n = |v: &Bson| match v {
        Bson::Int32(i) => Some(N::I(i64::from(*i))),
        Bson::Int64(i) => Some(N::I(*i)),
        Bson::Double(f) => Some(N::F(*f)),
        _ => None,
    };
    let int_float = |i: i64, f: f64| -> Ordering {
        if f.is_nan() {
            return Ordering::Greater;
        }
        // Exact: compare i with f's integral part, then its fraction.
        // 2^63: the first float above every i64; -2^63 is i64::MIN.
        if f >= 9_223_372_036_854_775_808.0 {
            return Ordering::Less;
        }
        if f < -9_223_372_036_854_775_808.0 {
            return Ordering::Greater;
        }
        let whole = f.floor();
        match i.cmp(&(whole as i64)) {
            Ordering::Equal if f > whole => Ordering::Less,
            other => other,
        }
    };
    Some(match (n(a)?, n(b)?) {
        (N::I(x), N::I(y)) => x.cmp(&y),
        (N::I(x), N::F(y)) => int_float(x, y),
        (N::F(x), N::I(y)) => int_float(y, x).reverse(),
        (N::F(x), N::F(y)) => match (x.is_nan(), y.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, oid::ObjectId};

    #[test]
    fn types_sort_in_the_servers_canonical_order_and_numbers_by_value() {
        let ordered = [
            Bson::MinKey,
            Bson::Null,
            Bson::Double(f64::NAN),
            Bson::Int64(-5),
            Bson::Double(-4.5),
            Bson::Int32(1),
            Bson::Double(1.5),
            Bson::Int64(2),
            Bson::String("A".into()),
            Bson::String("a".into()),
            Bson::String("ab".into()),
            Bson::Document(doc! {"a": 1}),
            Bson::Document(doc! {"a": 1, "b": 1}),
            Bson::Document(doc! {"b": 0}),
            Bson::Binary(bson::Binary {
                subtype: bson::spec::BinarySubtype::Generic,
                bytes: vec![9],
            }),
            Bson::Binary(bson::Binary {
                subtype: bson::spec::BinarySubtype::Generic,
                bytes: vec![0, 0],
            }),
            Bson::ObjectId(ObjectId::from_bytes([0; 12])),
            Bson::ObjectId(ObjectId::from_bytes([1; 12])),
            Bson::Boolean(false),
            Bson::Boolean(true),
            Bson::DateTime(bson::DateTime::from_millis(-1)),
            Bson::DateTime(bson::DateTime::from_millis(0)),
            Bson::MaxKey,
        ];
        for (i, a) in ordered.iter().enumerate() {
            for (j, b) in ordered.iter().enumerate() {
                assert_eq!(compare_ids(a, b), Some(i.cmp(&j)), "{a:?} vs {b:?}");
            }
        }
        assert_eq!(
            compare_ids(&Bson::Int32(3), &Bson::Double(3.0)),
            Some(Ordering::Equal)
        );
        assert_eq!(
            compare_ids(&Bson::Int64(i64::MAX), &Bson::Double(9.3e18)),
            Some(Ordering::Less)
        );
        // A field name decides before a value; a type before a name.
        assert_eq!(
            compare_ids(
                &Bson::Document(doc! {"a": 9}),
                &Bson::Document(doc! {"b": 1})
            ),
            Some(Ordering::Less)
        );
        assert_eq!(
            compare_ids(
                &Bson::Document(doc! {"b": 1}),
                &Bson::Document(doc! {"a": "x"})
            ),
            Some(Ordering::Less)
        );
        let decimal = Bson::Decimal128(bson::Decimal128::from_bytes([0; 16]));
        assert_eq!(compare_ids(&decimal, &Bson::Int32(1)), None);
    }
}
