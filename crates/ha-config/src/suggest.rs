//! "Did you mean …?" for an unknown key: the keys its table knows — the
//! field names serde's derive hands to `deserialize_struct`, read from the
//! `raw` structs themselves, so the list can never drift from the schema —
//! and the closest of them by edit distance.

use std::cell::Cell;

use serde::Deserialize;
use serde::de::{Error as _, Visitor};

use crate::raw;

/// A deserializer that only records the field names a struct asks for.
struct FieldProbe<'a>(&'a Cell<&'static [&'static str]>);

impl<'de> serde::Deserializer<'de> for FieldProbe<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(Self::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.set(fields);
        Err(Self::Error::custom("probed"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
        identifier ignored_any
    }
}

/// The keys of `T`'s table.
fn fields_of<T: Deserialize<'static>>() -> &'static [&'static str] {
    let fields = Cell::new(&[][..]);
    let _ = T::deserialize(FieldProbe(&fields));
    fields.get()
}

/// The keys the table at `parent` knows (`""` for the file itself,
/// `[mongo]`, `[mongo].members[0]`, `[mongo].users.admin` …), if it is one
/// of the schema's tables.
fn known_keys(parent: &str) -> Option<&'static [&'static str]> {
    // Array elements share their table's keys: `[mongo].members[3]`.
    let mut normal = String::with_capacity(parent.len());
    let mut in_index = false;
    for (i, c) in parent.char_indices() {
        match c {
            '[' if i > 0 => in_index = true,
            ']' if in_index => in_index = false,
            _ if in_index => {}
            _ => normal.push(c),
        }
    }
    Some(match normal.as_str() {
        "" => fields_of::<raw::RawConfig>(),
        "[pki]" => fields_of::<raw::RawPki>(),
        "[mongo]" => fields_of::<raw::RawMongo>(),
        "[mongo].members" => fields_of::<raw::RawMember>(),
        "[mongo].tls" => fields_of::<raw::RawMongoTls>(),
        "[mongo].users" => fields_of::<raw::RawMongoUsers>(),
        "[mongo].users.site_admin" | "[mongo].users.admin" | "[mongo].users.app" => {
            fields_of::<raw::RawMongoUser>()
        }
        "[mongo].settings" => fields_of::<raw::RawMongoSettings>(),
        "[mongo].server" => fields_of::<raw::RawMongoServer>(),
        "[postgres]" => fields_of::<raw::RawPostgres>(),
        "[postgres].databases" => fields_of::<raw::RawDatabase>(),
        "[vault]" => fields_of::<raw::RawVault>(),
        "[vault].server" => fields_of::<raw::RawVaultServer>(),
        "[services]" => fields_of::<raw::RawServices>(),
        "[services].github" => fields_of::<raw::RawGithub>(),
        "[services].storage" => fields_of::<raw::RawStorage>(),
        "[backup]" => fields_of::<raw::RawBackup>(),
        "[export]" => fields_of::<raw::RawExport>(),
        _ => return None,
    })
}

/// Edit distance between two short keys, a swap of two neighbours counting
/// as one edit (optimal string alignment: `hots` is one from `host`).
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The known key closest to the unknown `path` (`[postgres].hots` →
/// `host`), when one is close enough to be a typo of it.
pub(crate) fn did_you_mean(path: &str) -> Option<&'static str> {
    let (parent, key) = match path.rsplit_once('.') {
        Some((parent, key)) => (parent, key),
        None => ("", path.trim_start_matches('[').trim_end_matches(']')),
    };
    let known = known_keys(parent)?;
    // A typo within a third of the key's length, or the start of a key.
    let limit = (key.chars().count() / 3).max(1);
    known
        .iter()
        .filter_map(|k| {
            let d = distance(key, k);
            if d <= limit {
                Some((d, *k))
            } else if key.len() >= 3 && k.starts_with(key) {
                Some((limit + 1, *k))
            } else {
                None
            }
        })
        .min()
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::{did_you_mean, distance, known_keys};

    #[test]
    fn the_closest_key_of_the_same_table_is_suggested() {
        assert_eq!(did_you_mean("[postgres].hots"), Some("host"));
        assert_eq!(did_you_mean("[mongo].members[0].prio"), Some("priority"));
        assert_eq!(
            did_you_mean("[mongo].users.admin.pasword"),
            Some("password")
        );
        assert_eq!(did_you_mean("[mongo].replicaset"), Some("replica_set"));
        assert_eq!(did_you_mean("[mongp]"), Some("mongo"));
        assert_eq!(did_you_mean("[postgres].mystery_setting"), None);
        assert_eq!(did_you_mean("[nowhere].x"), None);
        assert!(
            known_keys("[backup]")
                .unwrap()
                .contains(&"snapshot_command")
        );
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn every_section_of_the_file_has_its_keys() {
        let sections = known_keys("").unwrap();
        assert!(sections.len() >= 7, "{sections:?}");
        for section in sections {
            assert!(
                known_keys(&format!("[{section}]")).is_some_and(|k| !k.is_empty()),
                "[{section}]"
            );
        }
    }
}
