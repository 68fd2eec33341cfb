//! Fuzzes the sealed-archive reader: any bytes, read as an age file with a
//! fixed identity, never panic and never return a byte of a chunk that
//! failed authentication; and any bytes, sealed to that identity's
//! recipient, read back identical (whole and from a fuzzer-chosen offset).

#![no_main]

use std::io::{Cursor, Read as _, Seek as _, SeekFrom, Write as _};

use circle_export::seal::{Identity, SealWriter, SealedReader, Sealing, Unsealing};
use libfuzzer_sys::fuzz_target;

/// The identity of the age authors' test vectors (C2SP/CCTV).
const IDENTITY: &str = "AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0";

fuzz_target!(|data: &[u8]| {
    let identity = Identity::parse(IDENTITY).expect("the vectors' identity");
    let sealing = Sealing::Recipients(vec![identity.recipient()]);
    let unsealing = Unsealing::Identities(vec![identity]);

    // Hostile bytes as a sealed file.
    if let Ok((mut reader, _)) = SealedReader::open(Cursor::new(data), &unsealing) {
        let mut out = Vec::new();
        let _ = reader.read_to_end(&mut out);
    }

    // Any bytes sealed and read back.
    let mut writer = SealWriter::new(Vec::new(), &sealing).expect("seal");
    let cut = data.first().map_or(0, |b| usize::from(*b) * 257 % (data.len() + 1));
    writer.write_all(&data[..cut]).expect("write");
    writer.write_all(&data[cut..]).expect("write");
    let sealed = writer.finish().expect("finish");
    let (mut reader, _) = SealedReader::open(Cursor::new(&sealed), &unsealing).expect("open");
    let mut back = Vec::new();
    reader.read_to_end(&mut back).expect("read");
    assert_eq!(back, data);
    reader.seek(SeekFrom::Start(cut as u64)).expect("seek");
    let mut tail = Vec::new();
    reader.read_to_end(&mut tail).expect("read the tail");
    assert_eq!(tail, &data[cut..]);
});
