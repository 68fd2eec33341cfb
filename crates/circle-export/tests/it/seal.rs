//! Sealed archives: the age reader against the age authors' own test
//! vectors (C2SP/CCTV, `tests/fixtures/age-testkit`), and against the Go
//! reference `age` CLI in both directions.

use std::io::Read as _;
use std::path::Path;

use circle_export::seal::{Identity, SealError, SealedReader, Unsealing};
use secrecy::SecretString;
use sha2::Digest as _;

/// One vector: its `key: value` lines and the age file after them.
struct Vector {
    expect: String,
    payload: Option<String>,
    identities: Vec<String>,
    passphrases: Vec<String>,
    file: Vec<u8>,
}

fn read_vector(path: &Path) -> Vector {
    let bytes = std::fs::read(path).unwrap();
    let split = bytes.windows(2).position(|w| w == b"\n\n").unwrap();
    let head = std::str::from_utf8(&bytes[..split]).unwrap();
    let mut file = bytes[split + 2..].to_vec();
    let mut vector = Vector {
        expect: String::new(),
        payload: None,
        identities: Vec::new(),
        passphrases: Vec::new(),
        file: Vec::new(),
    };
    for line in head.lines() {
        let (key, value) = line.split_once(": ").unwrap();
        match key {
            "expect" => vector.expect = value.to_owned(),
            "payload" => vector.payload = Some(value.to_owned()),
            "identity" => vector.identities.push(value.to_owned()),
            "passphrase" => vector.passphrases.push(value.to_owned()),
            "compressed" => {
                assert_eq!(value, "zlib");
                let mut plain = Vec::new();
                flate2::read::ZlibDecoder::new(&file[..])
                    .read_to_end(&mut plain)
                    .unwrap();
                file = plain;
            }
            _ => {}
        }
    }
    vector.file = file;
    vector
}

/// What opening and reading the vector's file gave: `success` with the
/// plaintext's SHA-256, or the kind of refusal in the vectors' words.
fn outcome(vector: &Vector) -> (String, Option<String>) {
    let unsealing = if !vector.passphrases.is_empty() {
        Unsealing::Passphrase(SecretString::from(vector.passphrases[0].clone()))
    } else {
        let mut identities = Vec::new();
        for text in &vector.identities {
            match Identity::parse(text) {
                Ok(identity) => identities.push(identity),
                Err(_) => return ("identity failure".to_owned(), None),
            }
        }
        Unsealing::Identities(identities)
    };
    let kind = |e: &SealError| match e {
        SealError::Header(_) => "header failure",
        SealError::NoMatch(_) => "no match",
        SealError::Payload(_) => "payload failure",
        _ => "other failure",
    };
    let mut reader = match SealedReader::open(std::io::Cursor::new(&vector.file), &unsealing) {
        Ok((reader, _)) => reader,
        Err(e) => return (kind(&e).to_owned(), Some(e.to_string())),
    };
    let mut plain = Vec::new();
    if let Err(e) = reader.read_to_end(&mut plain) {
        let inner = e.into_inner().and_then(|i| i.downcast::<SealError>().ok());
        return match inner {
            Some(e) => (kind(&e).to_owned(), Some(e.to_string())),
            None => ("other failure".to_owned(), None),
        };
    }
    (
        "success".to_owned(),
        Some(hex(&sha2::Sha256::digest(&plain))),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_age_authors_vectors_open_or_fail_as_they_say() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/age-testkit");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "README.md")
        .collect();
    names.sort();
    assert!(names.len() >= 90, "{} vectors", names.len());
    let mut wrong = Vec::new();
    for name in &names {
        let vector = read_vector(&dir.join(name));
        let (got, detail) = outcome(&vector);
        // A MAC that does not match is a header failure here.
        let want = match vector.expect.as_str() {
            "HMAC failure" => "header failure",
            other => other,
        };
        let ok = match want {
            "success" => got == "success" && detail == vector.payload,
            _ => got == want,
        };
        if !ok {
            wrong.push(format!("{name}: expected {want}, got {got} ({detail:?})"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} vectors:\n{}",
        wrong.len(),
        names.len(),
        wrong.join("\n")
    );
}
