//! Fuzzes the old-server reader's framing (`circle_export::wire`): any
//! bytes, read as a server's message (header, then an OP_MSG or OP_REPLY
//! body), a cursor batch in it, and a SCRAM server-first message, never
//! panic, never allocate past the bounds, and every document handed out
//! lies inside the message with its own length.

#![no_main]

use circle_export::wire::{batch_documents, frame, scram};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() >= frame::HEADER {
        let mut head = [0u8; frame::HEADER];
        head.copy_from_slice(&data[..frame::HEADER]);
        if let Ok(header) = frame::Header::parse(&head) {
            assert!(header.length >= frame::HEADER && header.length <= frame::MAX_MESSAGE);
        }
    }
    let body = data.get(frame::HEADER..).unwrap_or_default();
    for parsed in [frame::parse_msg(body), frame::parse_reply(body)] {
        if let Ok(document) = parsed {
            assert!(document.len() >= 5 && document.len() <= body.len());
            let length = i32::from_le_bytes([document[0], document[1], document[2], document[3]]);
            assert_eq!(length as usize, document.len());
            if let Ok(reply) = bson::RawDocumentBuf::from_bytes(document.to_vec())
                && let Ok(batch) = batch_documents(&reply)
            {
                for d in batch {
                    assert!(d.as_bytes().len() <= document.len());
                }
            }
        }
    }
    let (mut conversation, _) = scram::Conversation::start("user", b"0123456789abcdef01234567");
    let password = secrecy::SecretString::from("pencil");
    if conversation.answer("user", &password, data).is_ok() {
        let _ = conversation.verify(data);
    }
});
