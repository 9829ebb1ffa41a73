//! Any valid message encodes (clear and encrypted) and decodes back to itself; any response
//! encodes and parses back to itself.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use watchpost_dc09::{Message, Reply, Response, ResponseKind};

fuzz_target!(|data: &[u8]| {
    let mut src = common::Src(data);
    let m = common::message(&mut src);
    let key = common::key(&mut src);
    let random = src.random16();
    // The body limit is the only way a valid message fails to encode.
    if let Ok(frame) = m.encode() {
        let d = Message::decode(&frame, None).expect("clear frame decodes");
        assert!(!d.encrypted);
        assert_eq!(d.message, m);
    }
    if m.timestamp.is_some() {
        if let Ok(frame) = m.encode_encrypted(&key, &random) {
            let d = Message::decode(&frame, Some(&key)).expect("encrypted frame decodes");
            assert!(d.encrypted);
            assert_eq!(d.message, m);
        }
    } else {
        assert!(m.encode_encrypted(&key, &random).is_err());
    }
    let kind = [ResponseKind::Ack, ResponseKind::Duh, ResponseKind::Rsp][usize::from(src.u8() % 3)];
    let mut r = Response::answer(kind, &m);
    r.timestamp = m.timestamp;
    let frame = r.encode(None).expect("clear response encodes");
    assert_eq!(Reply::parse(&frame, None).expect("parses"), Reply::Response(r.clone()));
    r.encrypted = true;
    let frame = r.encode(Some((&key, &random))).expect("encrypted response encodes");
    assert_eq!(Reply::parse(&frame, Some(&key)).expect("parses"), Reply::Response(r));
});
