//! Fuzzes mongo-sim's message parser: any byte string, framed as a message
//! (the length field is made to match, so the fuzzer explores the body),
//! must be parsed or rejected, never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mongo_sim::wire::{Header, check_checksum, parse_body};

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let mut header = [0u8; 16];
    header.copy_from_slice(&data[..16]);
    header[..4].copy_from_slice(&(data.len() as i32).to_le_bytes());
    if let Ok(parsed) = Header::parse(&header) {
        let body = &data[16..];
        let _ = check_checksum(&header, body);
        let _ = parse_body(&parsed, body);
    }
});
