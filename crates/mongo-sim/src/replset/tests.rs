use bson::doc;

use super::*;

fn three() -> Document {
    doc! {"_id": "rs", "members": [
        {"_id": 0, "host": "a.example:27017"},
        {"_id": 1, "host": "b.example:27017"},
        {"_id": 2, "host": "c.example"},
    ]}
}

#[test]
fn defaults_are_filled_in() {
    let config = ReplConfig::parse(&three()).unwrap();
    assert_eq!(config.version, 1);
    assert_eq!(config.members[2].host, "c.example:27017");
    assert_eq!(config.members[0].priority, 1.0);
    assert_eq!(config.majority_vote_count(), 2);
    let shown = config.to_doc(Version::default());
    let member = shown.get_array("members").unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    let keys: Vec<&str> = member.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "_id",
            "host",
            "arbiterOnly",
            "buildIndexes",
            "hidden",
            "priority",
            "tags",
            "secondaryDelaySecs",
            "votes"
        ]
    );
    let old = ReplConfig::parse(&three())
        .unwrap()
        .to_doc(Version { major: 4, minor: 4 });
    assert!(
        old.get_array("members").unwrap()[0]
            .as_document()
            .unwrap()
            .contains_key("slaveDelay")
    );
}

#[test]
fn invalid_configs_are_rejected_with_mongod_messages() {
    let mut dup = three();
    dup.get_array_mut("members").unwrap()[1]
        .as_document_mut()
        .unwrap()
        .insert("_id", 0);
    assert!(
        ReplConfig::parse(&dup)
            .unwrap_err()
            .contains("same _id field")
    );
    let mixed = doc! {"_id": "rs", "members": [{"_id": 0, "host": "localhost:1"}, {"_id": 1, "host": "b:2"}]};
    assert!(
        ReplConfig::parse(&mixed)
            .unwrap_err()
            .contains("localhost references")
    );
    let arbiter = doc! {"_id": "rs", "members": [{"_id": 0, "host": "a:1"}, {"_id": 1, "host": "b:1", "arbiterOnly": true, "priority": 2}]};
    assert_eq!(
        ReplConfig::parse(&arbiter).unwrap_err(),
        "Arbiter priority must be 0"
    );
    let hidden = doc! {"_id": "rs", "members": [{"_id": 0, "host": "a:1"}, {"_id": 1, "host": "b:1", "hidden": true}]};
    assert_eq!(
        ReplConfig::parse(&hidden).unwrap_err(),
        "priority must be 0 when hidden=true"
    );
    let pv0 = doc! {"_id": "rs", "protocolVersion": 0, "members": [{"_id": 0, "host": "a:1"}]};
    assert!(
        ReplConfig::parse(&pv0)
            .unwrap_err()
            .contains("protocol version 0")
    );
    let no_electable = doc! {"_id": "rs", "members": [{"_id": 0, "host": "a:1", "priority": 0}]};
    assert!(
        ReplConfig::parse(&no_electable)
            .unwrap_err()
            .contains("priority > 0")
    );
}

#[test]
fn reconfig_rules() {
    let v = Version::default();
    let old = ReplConfig::parse(
        &doc! {"_id": "rs", "version": 1, "members": [{"_id": 0, "host": "a:1"}]},
    )
    .unwrap();
    let two_new_voters = ReplConfig::parse(&doc! {"_id": "rs", "version": 2, "members": [
    {"_id": 0, "host": "a:1"}, {"_id": 1, "host": "b:1"}, {"_id": 2, "host": "c:1"}]})
    .unwrap();
    assert!(
        old.check_replacement(&two_new_voters, false, v)
            .unwrap_err()
            .contains("at most 1 voting member")
    );
    assert!(old.check_replacement(&two_new_voters, true, v).is_ok());
    let one_new = ReplConfig::parse(&doc! {"_id": "rs", "version": 2, "members": [
    {"_id": 0, "host": "a:1"}, {"_id": 1, "host": "b:1"}]})
    .unwrap();
    assert!(old.check_replacement(&one_new, false, v).is_ok());
    let same_version = ReplConfig::parse(&doc! {"_id": "rs", "version": 1, "members": [
    {"_id": 0, "host": "a:1"}, {"_id": 1, "host": "b:1"}]})
    .unwrap();
    assert!(
        old.check_replacement(&same_version, false, v)
            .unwrap_err()
            .contains("must be greater")
    );
    let remapped = ReplConfig::parse(
        &doc! {"_id": "rs", "version": 2, "members": [{"_id": 5, "host": "a:1"}]},
    )
    .unwrap();
    assert!(
        old.check_replacement(&remapped, false, v)
            .unwrap_err()
            .contains("_id field is 5")
    );
    let renamed = ReplConfig::parse(
        &doc! {"_id": "other", "version": 2, "members": [{"_id": 0, "host": "a:1"}]},
    )
    .unwrap();
    assert!(
        old.check_replacement(&renamed, true, v)
            .unwrap_err()
            .contains("replica set name")
    );
}
