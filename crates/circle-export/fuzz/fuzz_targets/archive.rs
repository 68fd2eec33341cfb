//! Fuzzes circle-export's archive reader: any byte string, read as a `.tar`
//! archive (manifest and entries, the SQL scanner, the BSON and COPY
//! counters, unpacking into a directory), must be inspected — accepted or
//! reported damaged — never panic, and never write outside the directory.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("input.tar");
    std::fs::write(&archive, data).unwrap();
    let unpack = dir.path().join("unpack");
    std::fs::create_dir(&unpack).unwrap();
    let _ = circle_export::inspect(&archive, Some(&unpack));
    // Nothing may land beside the unpack directory but the input itself.
    let beside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(beside.len(), 2, "{beside:?}");
});
