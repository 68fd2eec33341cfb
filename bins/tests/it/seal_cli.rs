//! Sealed archives as an operator uses them, with the Go reference `age`
//! as the independent other side: export sealed to an `age-keygen`
//! recipient, `age -d` + `tar --zstd` read it; verify and restore open it
//! with the identity file; a wrong key or one flipped byte is refused
//! (exit 3) with nothing written; an archive `age -r` sealed restores; a
//! passphrase seals and opens; an unsealed archive restores with a
//! warning.

use std::path::Path;
use std::process::Command;

use ha_lab::{MongoMember, MongoMemberOptions, Postgres, Toolbox};
use secrecy::ExposeSecret as _;

use crate::export_cli::{
    HOSTILE, json, mongo_with_builds, new_target, old_machine, pg_uri, psql, tool,
};

fn age_tool(tools: &Toolbox, name: &str) -> Command {
    let age = tools.age().unwrap_or_else(|e| panic!("{e}"));
    Command::new(age.with_file_name(name))
}

fn ok(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A new `age-keygen` identity file in `dir` and its recipient.
fn keygen(tools: &Toolbox, dir: &Path, name: &str) -> (String, String) {
    let key = dir.join(name);
    ok(age_tool(tools, "age-keygen").arg("-o").arg(&key));
    let recipient = ok(age_tool(tools, "age-keygen").arg("-y").arg(&key));
    (format!("file:{}", key.display()), recipient)
}

/// What the target holds: the table's rows and the collection's count.
fn target_state(pg: &Postgres, mongo_uri: &str) -> (String, u64) {
    let exists = psql(pg, "circle", "SELECT to_regclass('builds') IS NOT NULL");
    let rows = if exists == "t" {
        psql(
            pg,
            "circle",
            "SELECT md5(string_agg(id || ':' || body, ',' ORDER BY id)) FROM builds",
        )
    } else {
        "none".to_owned()
    };
    let documents = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client = mongodb::Client::with_uri_str(mongo_uri).await.unwrap();
        client
            .database("circle_ghe")
            .collection::<bson::Document>("builds")
            .count_documents(bson::doc! {})
            .await
            .unwrap()
    });
    (rows, documents)
}

#[test]
fn sealed_archives_round_trip_refuse_wrong_keys_and_changes_and_read_with_age() {
    // Over 1 MiB: the dump gets a frame of its own and a seek-index entry,
    // so the sealed restore reads it from its offset inside the payload.
    let (tools, pki, old_mongo, old_pg) =
        old_machine("SELECT g, md5(g::text) || repeat('b', 1000) FROM generate_series(1, 3000) g");
    let want_rows = psql(
        &old_pg,
        "circle",
        "SELECT md5(string_agg(id || ':' || body, ',' ORDER BY id)) FROM builds",
    );
    let mongo_uri = mongo_with_builds(&old_mongo);
    let old_password = old_pg.superuser_password().expose_secret().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let (key, recipient) = keygen(&tools, dir.path(), "key.txt");
    let (other_key, _) = keygen(&tools, dir.path(), "other.txt");
    let sealed = dir.path().join("circle-export.tar.zst.age");
    let sealed_arg = sealed.display().to_string();
    let export = |out: &str, seal: &[&str]| {
        let mut command = tool(&[
            "export",
            "--out",
            out,
            "--mongo-uri",
            &mongo_uri,
            "--pg-uri",
            "env:OLD_PG_URI",
        ]);
        command.args(seal).env(
            "OLD_PG_URI",
            pg_uri(&old_pg, old_pg.superuser(), &old_password),
        );
        command
    };

    // A sealed archive's name ends in .age, and only a sealed one's does.
    let plain_named = dir.path().join("x.tar.zst").display().to_string();
    let (code, refused, _) = json(&mut export(&plain_named, &["--encrypt-to", &recipient]));
    assert_eq!(code, 2, "{refused}");
    let (code, refused, _) = json(&mut export(&sealed_arg, &[]));
    assert_eq!(code, 2, "{refused}");
    let (code, refused, _) = json(&mut export(&sealed_arg, &["--encrypt-to", "age1nope"]));
    assert_eq!(code, 2, "{refused}");
    // An unknown compression is bad usage too, found before anything.
    let xz = dir.path().join("x.tar.xz").display().to_string();
    let (code, refused, _) = json(&mut export(&xz, &[]));
    assert_eq!(code, 2, "{refused}");

    let (code, exported, stderr) = json(&mut export(&sealed_arg, &["--encrypt-to", &recipient]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(exported["sealed"], true, "{exported}");
    assert!(
        std::fs::read(&sealed)
            .unwrap()
            .starts_with(b"age-encryption.org/v1\n")
    );

    // The Go reference reads it: age -d, then tar --zstd lists the members.
    let decrypted = dir.path().join("decrypted.tar.zst");
    ok(age_tool(&tools, "age")
        .arg("-d")
        .arg("-i")
        .arg(key.strip_prefix("file:").unwrap())
        .arg("-o")
        .arg(&decrypted)
        .arg(&sealed));
    let listing = ok(Command::new("tar").arg("--zstd").arg("-tf").arg(&decrypted));
    assert!(
        listing.starts_with("manifest.json") && listing.contains("postgres/circle.sql"),
        "{listing}"
    );

    // verify: no key is a usage error, a wrong one exit 3, the right one 0.
    let (code, v, _) = json(&mut tool(&["verify", &sealed_arg]));
    assert_eq!(code, 2, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("sealed")
            && v["error"].as_str().unwrap().contains("--identity"),
        "{v}"
    );
    let (code, v, _) = json(&mut tool(&[
        "verify",
        &sealed_arg,
        "--identity",
        &other_key,
    ]));
    assert_eq!(code, 3, "{v}");
    let (code, v, stderr) = json(&mut tool(&["verify", &sealed_arg, "--identity", &key]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(v["healthy"], true, "{v}");

    let new_mongo = MongoMember::start(&tools, MongoMemberOptions::default()).unwrap();
    let new_pg = new_target(&tools, &pki);
    let new_mongo_uri = format!(
        "mongodb://localhost:{}/?directConnection=true",
        new_mongo.port()
    );
    let restore = |archive: &str, key: &[&str]| {
        let mut command = tool(&[
            "restore",
            archive,
            "--mongo-uri",
            &new_mongo_uri,
            "--pg-uri",
            "env:NEW_PG_URI",
        ]);
        command
            .args(key)
            .env("NEW_PG_URI", pg_uri(&new_pg, "circle", HOSTILE));
        command
    };
    let untouched = ("none".to_owned(), 0);

    // A wrong identity: exit 3, nothing written.
    let (code, refused, _) = json(&mut restore(&sealed_arg, &["--identity", &other_key]));
    assert_eq!(code, 3, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .matches("none of the 1 identity")
            .count()
            == 1,
        "said once, not repeated by the cause chain: {refused}"
    );
    assert_eq!(target_state(&new_pg, &new_mongo_uri), untouched);

    // One flipped byte, in the header or anywhere in the payload: exit 3,
    // nothing written (the whole file is authenticated first).
    let bytes = std::fs::read(&sealed).unwrap();
    for at in [40, bytes.len() / 3, bytes.len() - 10] {
        let mut changed = bytes.clone();
        changed[at] ^= 0x01;
        let damaged = dir.path().join("damaged.tar.zst.age");
        std::fs::write(&damaged, &changed).unwrap();
        let damaged_arg = damaged.display().to_string();
        let (code, refused, _) = json(&mut restore(&damaged_arg, &["--identity", &key]));
        assert_eq!(code, 3, "byte {at}: {refused}");
        assert_eq!(
            target_state(&new_pg, &new_mongo_uri),
            untouched,
            "byte {at}"
        );
        let (code, verdict, _) = json(&mut tool(&["verify", &damaged_arg, "--identity", &key]));
        assert_eq!(code, 3, "byte {at}: {verdict}");
    }

    // The right identity: every row and document, then nothing to do.
    let (code, restored, stderr) = json(&mut restore(&sealed_arg, &["--identity", &key]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(restored["changed"], 2, "{restored}");
    assert_eq!(restored["sealed"], true, "{restored}");
    assert_eq!(restored["warnings"], serde_json::json!([]), "{restored}");
    assert_eq!(
        target_state(&new_pg, &new_mongo_uri),
        (want_rows.clone(), 250)
    );
    let (code, again, stderr) = json(&mut restore(&sealed_arg, &["--identity", &key]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(again["changed"], 0, "{again}");

    // A plain archive restores, warning that it is not sealed; the same
    // archive sealed by `age -r` opens with the identity.
    let plain = dir.path().join("plain.tar.zst");
    let plain_arg = plain.display().to_string();
    let (code, _, stderr) = json(&mut export(&plain_arg, &[]));
    assert_eq!(code, 0, "{stderr}");
    let (code, plain_restore, stderr) = json(&mut restore(&plain_arg, &[]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(plain_restore["sealed"], false, "{plain_restore}");
    assert!(
        plain_restore["warnings"][0]
            .as_str()
            .unwrap()
            .contains("is not sealed"),
        "{plain_restore}"
    );
    // A key given for it is said to be unneeded.
    let (code, with_key, stderr) = json(&mut restore(&plain_arg, &["--identity", &key]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        with_key["warnings"][0]
            .as_str()
            .unwrap()
            .contains("the key given to open it was not needed"),
        "{with_key}"
    );
    let by_age = dir.path().join("by-age.tar.zst.age");
    ok(age_tool(&tools, "age")
        .arg("-r")
        .arg(&recipient)
        .arg("-o")
        .arg(&by_age)
        .arg(&plain));
    let by_age_arg = by_age.display().to_string();
    let (code, v, stderr) = json(&mut tool(&["verify", &by_age_arg, "--identity", &key]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(v["healthy"], true, "{v}");
    let (code, again, stderr) = json(&mut restore(&by_age_arg, &["--identity", &key]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(again["changed"], 0, "{again}");

    // A passphrase (hostile, from the environment) seals; a wrong one is
    // exit 3; neither appears in any output.
    let by_pass = dir.path().join("pass.tar.zst.age").display().to_string();
    let passphrase = format!("{HOSTILE} sealing");
    let (code, _, stderr) = json(
        export(&by_pass, &["--passphrase", "env:ARCHIVE_PASSPHRASE"])
            .env("ARCHIVE_PASSPHRASE", &passphrase),
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, v, stderr) =
        json(tool(&["verify", &by_pass, "--passphrase", "env:P"]).env("P", "not it"));
    assert_eq!(code, 3, "{v} {stderr}");
    let (code, v, stderr) =
        json(tool(&["verify", &by_pass, "--passphrase", "env:P"]).env("P", &passphrase));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(v["healthy"], true, "{v}");
}
