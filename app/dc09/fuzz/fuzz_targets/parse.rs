//! Arbitrary bytes never panic the parsers; whatever decodes re-encodes to something that
//! decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use watchpost_dc09::{Dc09Error, Key, Message, Reply, ReplyReader, Timestamp, frame};

fuzz_target!(|data: &[u8]| {
    let key = Key::from_bytes(b"0123456789ABCDEF").expect("16 bytes");
    let _ = Reply::parse(data, Some(&key));
    let _ = Reply::parse(data, None);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(t) = Timestamp::parse(text) {
            assert_eq!(Timestamp::parse(&t.to_wire()), Ok(t));
        }
    }
    let mut reader = ReplyReader::new();
    for chunk in data.chunks(7) {
        let _ = reader.push(chunk);
        while reader.next_reply().is_some() {}
    }
    let mut deframer = frame::Deframer::new();
    deframer.push(data);
    while let Some(f) = deframer.next_frame() {
        for k in [None, Some(&key)] {
            if let Ok(d) = Message::decode(&f, k) {
                let again = if d.encrypted {
                    // A foreign pad may be shorter than ours, so the re-encrypted frame can
                    // pass the size limit; only that error is acceptable.
                    match d.message.encode_encrypted(&key, &[1; 16]) {
                        Ok(f) => f,
                        Err(Dc09Error::EncodeBodyTooLong { .. }) => continue,
                        Err(e) => panic!("decoded message does not encode: {e}"),
                    }
                } else {
                    d.message.encode().expect("a decoded clear message encodes")
                };
                assert_eq!(Message::decode(&again, k).expect("re-decodes").message, d.message);
            }
        }
    }
});
