use std::io::{Cursor, Read as _, Seek as _, SeekFrom, Write as _};

use secrecy::{ExposeSecret as _, SecretString};

use super::{CHUNK, Identity, Recipient, SealError, SealWriter, SealedReader, Sealing, Unsealing};

fn seal(plain: &[u8], sealing: &Sealing) -> Vec<u8> {
    let mut writer = SealWriter::new(Vec::new(), sealing).unwrap();
    // Odd write sizes, so chunk edges fall inside writes.
    for piece in plain.chunks(7_777) {
        writer.write_all(piece).unwrap();
    }
    writer.finish().unwrap()
}

fn open(sealed: &[u8], unsealing: &Unsealing) -> Result<Vec<u8>, SealError> {
    let (mut reader, _) = SealedReader::open(Cursor::new(sealed), unsealing)?;
    let mut out = Vec::new();
    reader.read_to_end(&mut out).map_err(|e| {
        match e.into_inner().map(|inner| inner.downcast::<SealError>()) {
            Some(Ok(seal)) => *seal,
            _ => SealError::Payload("other".to_owned()),
        }
    })?;
    Ok(out)
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 131 + i / 977) as u8).collect()
}

#[test]
fn every_length_around_a_chunk_edge_round_trips_and_seeks() {
    let identity = Identity::generate().unwrap();
    let sealing = Sealing::Recipients(vec![identity.recipient()]);
    let unsealing = Unsealing::Identities(vec![identity]);
    for len in [
        0,
        1,
        CHUNK - 1,
        CHUNK,
        CHUNK + 1,
        2 * CHUNK,
        3 * CHUNK + 12_345,
    ] {
        let plain = data(len);
        let sealed = seal(&plain, &sealing);
        let chunks = len.div_ceil(CHUNK).max(1);
        assert_eq!(
            sealed.len() - plain.len() - 16 * chunks,
            header_len(&sealed) + 16
        );
        assert_eq!(open(&sealed, &unsealing).unwrap(), plain, "length {len}");
        // Seek anywhere: the bytes there, without reading what is before.
        let (mut reader, _) = SealedReader::open(Cursor::new(&sealed), &unsealing).unwrap();
        assert_eq!(reader.len(), len as u64);
        for at in [len / 2, len.saturating_sub(3), CHUNK.min(len), 0] {
            reader.seek(SeekFrom::Start(at as u64)).unwrap();
            let mut got = vec![0u8; (len - at).min(100)];
            reader.read_exact(&mut got).unwrap();
            assert_eq!(got, plain[at..at + got.len()], "length {len} at {at}");
        }
        assert_eq!(reader.seek(SeekFrom::End(0)).unwrap(), len as u64);
        let mut nothing = Vec::new();
        reader.read_to_end(&mut nothing).unwrap();
        assert!(nothing.is_empty());
    }
}

fn header_len(sealed: &[u8]) -> usize {
    let mac = sealed.windows(4).position(|w| w == b"\n---").unwrap() + 1;
    mac + sealed[mac..].iter().position(|b| *b == b'\n').unwrap() + 1
}

#[test]
fn any_of_several_recipients_opens_and_others_do_not() {
    let (a, b, c) = (
        Identity::generate().unwrap(),
        Identity::generate().unwrap(),
        Identity::generate().unwrap(),
    );
    let sealed = seal(
        b"rows",
        &Sealing::Recipients(vec![a.recipient(), b.recipient()]),
    );
    assert_eq!(
        open(&sealed, &Unsealing::Identities(vec![b])).unwrap(),
        b"rows"
    );
    assert_eq!(
        open(&sealed, &Unsealing::Identities(vec![c, a])).unwrap(),
        b"rows"
    );
    let stranger = Identity::generate().unwrap();
    let err = open(&sealed, &Unsealing::Identities(vec![stranger])).unwrap_err();
    assert!(matches!(err, SealError::NoMatch(_)), "{err}");
    assert!(err.is_refusal());
    let err = open(
        &sealed,
        &Unsealing::Passphrase(SecretString::from("x".to_owned())),
    )
    .unwrap_err();
    assert!(matches!(err, SealError::NoMatch(_)), "{err}");
}

#[test]
fn a_passphrase_seals_with_scrypt_alone_and_a_wrong_one_does_not_open() {
    let pass = SecretString::from("pässwörd '\"$@:/?#%".to_owned());
    let sealed = seal(&data(100_000), &Sealing::Passphrase(pass.clone()));
    let text = String::from_utf8_lossy(&sealed[..header_len(&sealed)]).into_owned();
    assert!(
        text.contains("\n-> scrypt ") && text.contains(" 16\n"),
        "{text}"
    );
    assert!(!text.contains(pass.expose_secret()));
    assert_eq!(
        open(&sealed, &Unsealing::Passphrase(pass)).unwrap(),
        data(100_000)
    );
    let err = open(
        &sealed,
        &Unsealing::Passphrase(SecretString::from("password".to_owned())),
    )
    .unwrap_err();
    assert!(matches!(err, SealError::NoMatch(_)), "{err}");
    let who = Identity::generate().unwrap();
    let err = open(&sealed, &Unsealing::Identities(vec![who])).unwrap_err();
    assert!(err.to_string().contains("passphrase"), "{err}");
}

#[test]
fn a_changed_cut_or_extended_file_is_refused() {
    let identity = Identity::generate().unwrap();
    let sealed = seal(
        &data(3 * CHUNK + 5),
        &Sealing::Recipients(vec![identity.recipient()]),
    );
    let unsealing = Unsealing::Identities(vec![identity]);
    let header = header_len(&sealed);
    // One bit anywhere: in the stanza, the MAC, the nonce, each chunk.
    for at in [
        30,
        header - 5,
        header + 3,
        header + 16 + 10,
        sealed.len() - 1,
        header + 16 + CHUNK + 16 + 7,
    ] {
        let mut bad = sealed.clone();
        bad[at] ^= 1;
        let err = open(&bad, &unsealing).unwrap_err();
        assert!(err.is_refusal(), "byte {at}: {err}");
    }
    // Cut at a chunk edge: the new last chunk is not marked final.
    let cut = &sealed[..header + 16 + 2 * (CHUNK + 16)];
    assert!(matches!(open(cut, &unsealing), Err(SealError::Payload(_))));
    // Cut inside the last chunk, or a byte added.
    assert!(open(&sealed[..sealed.len() - 1], &unsealing).is_err());
    let mut longer = sealed.clone();
    longer.push(0);
    assert!(open(&longer, &unsealing).is_err());
    // The header alone.
    assert!(open(&sealed[..header + 16], &unsealing).is_err());
}

#[test]
fn keys_print_and_parse_as_age_keygen_writes_them_and_errors_hide_them() {
    let identity = Identity::generate().unwrap();
    let secret = identity.to_secret_string();
    let text = secret.expose_secret();
    assert!(
        text.starts_with("AGE-SECRET-KEY-1") && text.len() == 74,
        "{text}"
    );
    let file = format!(
        "# created: today\n# public key: {}\n{text}\n\n",
        identity.recipient()
    );
    let parsed = Identity::parse_file(&file).unwrap();
    assert_eq!(parsed[0].recipient(), identity.recipient());
    let recipient = identity.recipient().to_string();
    assert!(
        recipient.starts_with("age1") && recipient.len() == 62,
        "{recipient}"
    );
    assert_eq!(
        recipient.parse::<Recipient>().unwrap(),
        identity.recipient()
    );
    // A typo in the checksum, and an identity given where a recipient goes.
    let mut typo = recipient.clone().into_bytes();
    let last = typo.len() - 1;
    typo[last] = if typo[last] == b'q' { b'p' } else { b'q' };
    assert!(
        String::from_utf8(typo)
            .unwrap()
            .parse::<Recipient>()
            .is_err()
    );
    let err = text.parse::<Recipient>().unwrap_err().to_string();
    assert!(!err.contains(&text[16..]), "{err}");
    let mut broken = text.to_owned();
    broken.replace_range(30..31, if &text[30..31] == "Q" { "P" } else { "Q" });
    let err = Identity::parse_file(&format!("#\n{broken}\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 2") && !err.contains(&broken[16..]),
        "{err}"
    );
    assert!(format!("{identity:?}").contains("age1"));
    assert!(!format!("{identity:?}").contains("AGE-SECRET"));
}

#[test]
fn hostile_headers_are_bounded_and_refused() {
    let identity = Identity::generate().unwrap();
    let unsealing = Unsealing::Identities(vec![identity]);
    let long_line = [
        b"age-encryption.org/v1\n-> X25519 ".as_slice(),
        &vec![b'A'; 1 << 20],
    ]
    .concat();
    assert!(matches!(
        open(&long_line, &unsealing),
        Err(SealError::Header(_))
    ));
    let many: Vec<u8> = std::iter::once(b"age-encryption.org/v1\n".to_vec())
        .chain(std::iter::repeat_n(b"-> a\n\n".to_vec(), 5_000))
        .flatten()
        .collect();
    assert!(matches!(open(&many, &unsealing), Err(SealError::Header(_))));
    let endless = b"age-encryption.org/v1\n-> a\n".to_vec();
    assert!(matches!(
        open(&endless, &unsealing),
        Err(SealError::Header(_))
    ));
    assert!(matches!(
        open(b"-----BEGIN AGE ENCRYPTED FILE-----\n", &unsealing),
        Err(SealError::Header(_))
    ));
    let heavy = b"age-encryption.org/v1\n-> scrypt rF0/NwblUHHTpgQgRpe5CQ 22\nqW9eVsT0NVb/Vswtw8kPIxUnaYmm9Px1dYmq2+4+qZA\n--- 38TpQMxQRRNMfmYYpBX6DDrPx4/QY5UmJnhPyVoX/cw\n";
    let err = open(
        heavy,
        &Unsealing::Passphrase(SecretString::from("password".to_owned())),
    )
    .unwrap_err();
    assert!(err.to_string().contains("2^22"), "{err}");
}
