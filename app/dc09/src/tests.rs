//! Golden frames (computed independently with the reference's Python sender and pycryptodome,
//! or taken from the pysiaalarm run in the protocol notes) and round trips.

use super::*;

const TS: &str = "_14:29:10,11-22-2026";

fn ts() -> Timestamp {
    Timestamp::parse(TS).unwrap()
}

fn msg(seq: u16, account: &str, payload: Payload) -> Message {
    Message {
        seq: Seq::new(seq).unwrap(),
        receiver: Some(Prefix::zero()),
        line: Prefix::zero(),
        account: Account::new(account).unwrap(),
        payload,
        extended: vec![],
        timestamp: Some(ts()),
    }
}

fn burglary() -> Payload {
    Payload::ContactId(ContactId::new(Qualifier::New, 130, 1, 15).unwrap())
}

fn sia_ba15() -> Payload {
    Payload::Sia(SiaEvent {
        user: None,
        area: Some(1),
        code: SiaCode::new("BA").unwrap(),
        zone: Some(15),
    })
}

#[test]
fn golden_clear_adm_cid() {
    let f = msg(1, "AAA", burglary()).encode().unwrap();
    assert_eq!(
        f,
        b"\n5FE0003B\"ADM-CID\"0001R0L0#AAA[#AAA|1130 01 015]_14:29:10,11-22-2026\r"
    );
    let d = Message::decode(&f, None).unwrap();
    assert!(!d.encrypted);
    assert_eq!(d.message, msg(1, "AAA", burglary()));
}

#[test]
fn golden_clear_sia_dcs_and_null() {
    assert_eq!(
        msg(2, "AAA", sia_ba15()).encode().unwrap(),
        b"\n05BD0039\"SIA-DCS\"0002R0L0#AAA[#AAA|Nri1/BA15]_14:29:10,11-22-2026\r"
    );
    assert_eq!(
        msg(3, "AAA", Payload::Null).encode().unwrap(),
        b"\n0B010028\"NULL\"0003R0L0#AAA[]_14:29:10,11-22-2026\r"
    );
}

#[test]
fn golden_encrypted_sia_dcs_ascii_key() {
    let key = Key::parse("0123456789ABCDEF", KeyFormat::Ascii).unwrap();
    // Random bytes 0 pick the pad character `A` every time.
    let f = msg(4, "BBB", sia_ba15())
        .encode_encrypted(&key, &[0; 16])
        .unwrap();
    assert_eq!(
        std::str::from_utf8(&f).unwrap(),
        "\n63D00077\"*SIA-DCS\"0004R0L0#BBB[262EB2D56CA7E8B285C7BA740102811330AD2A453F052F38C0E78FB71796514CD678C34F121AF3A71B72239F9F782DFF\r"
    );
    let d = Message::decode(&f, Some(&key)).unwrap();
    assert!(d.encrypted);
    assert_eq!(d.message, msg(4, "BBB", sia_ba15()));
    assert!(Message::decode(&f, None).is_err());
    let wrong = Key::parse("FEDCBA9876543210", KeyFormat::Ascii).unwrap();
    assert!(Message::decode(&f, Some(&wrong)).is_err());
}

#[test]
fn golden_encrypted_adm_cid_aes256_hex_key_with_xdata() {
    let key = Key::parse(
        "00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF",
        KeyFormat::Hex,
    )
    .unwrap();
    let m = Message {
        seq: Seq::new(9999).unwrap(),
        receiver: Some(Prefix::new("12").unwrap()),
        line: Prefix::new("3").unwrap(),
        account: Account::new("123456").unwrap(),
        payload: Payload::ContactId(ContactId::new(Qualifier::Restore, 130, 1, 15).unwrap()),
        extended: vec![ExtendedData::new('I', "front door").unwrap()],
        timestamp: Some(Timestamp::from_unix_secs(1_893_456_005).unwrap()),
    };
    let f = m.encode_encrypted(&key, &[0; 16]).unwrap();
    assert_eq!(
        std::str::from_utf8(&f).unwrap(),
        "\nBFF3009B\"*ADM-CID\"9999R12L3#123456[D1A16EC5000DD24FABDE57D948D81E8096F370C44151BEE724B57C5F09EED14304B0CEA4457AA9BE341C20B17610DDE8F7BB44A2344897CA903D0EF8C0A608D5\r"
    );
    assert_eq!(Message::decode(&f, Some(&key)).unwrap().message, m);
}

#[test]
fn encryption_round_trips_for_every_key_size_and_pad_length() {
    let keys = [
        Key::parse("0123456789ABCDEF", KeyFormat::Ascii).unwrap(),
        Key::parse("0123456789ABCDEF01234567", KeyFormat::Ascii).unwrap(),
        Key::parse("0123456789ABCDEF0123456789ABCDEF", KeyFormat::Ascii).unwrap(),
        Key::parse(&"A5".repeat(16), KeyFormat::Hex).unwrap(),
        Key::parse(&"5A".repeat(24), KeyFormat::Hex).unwrap(),
        Key::parse(&"C3".repeat(32), KeyFormat::Hex).unwrap(),
    ];
    for key in &keys {
        // Vary the x-data length so that every pad length 1..=16 occurs.
        for n in 0..16 {
            let mut m = msg(42, "1234", sia_ba15());
            m.extended = vec![ExtendedData::new('I', &"x".repeat(n)).unwrap()];
            let random: [u8; 16] = std::array::from_fn(|i| (i * 37 + n) as u8);
            let f = m.encode_encrypted(key, &random).unwrap();
            assert_eq!(Message::decode(&f, Some(key)).unwrap().message, m);
        }
        let mut null = msg(5, "1234", Payload::Null);
        let f = null.encode_encrypted(key, &[9; 16]).unwrap();
        assert_eq!(Message::decode(&f, Some(key)).unwrap().message, null);
        null.timestamp = None;
        assert!(matches!(
            null.encode_encrypted(key, &[9; 16]),
            Err(Dc09Error::EncodeMissingTimestamp { seq: 5 })
        ));
    }
}

#[test]
fn sia_modifier_forms() {
    for (event, text) in [
        (
            SiaEvent {
                user: Some(7),
                area: Some(2),
                code: SiaCode::new("WA").unwrap(),
                zone: Some(104),
            },
            "#1234|Nid7/ri2/WA104",
        ),
        (
            SiaEvent {
                user: None,
                area: None,
                code: SiaCode::new("RP").unwrap(),
                zone: None,
            },
            "#1234|NRP",
        ),
    ] {
        let mut m = msg(8, "1234", Payload::Sia(event));
        m.timestamp = None;
        m.receiver = None;
        let f = m.encode().unwrap();
        let body = frame::unwrap(&f).unwrap();
        let expected = format!("\"SIA-DCS\"0008L0#1234[{text}]");
        assert_eq!(std::str::from_utf8(body).unwrap(), expected);
        assert_eq!(Message::decode(&f, None).unwrap().message, m);
    }
}

#[test]
fn decode_rejects_malformed_messages() {
    let good = msg(1, "AAA", burglary()).encode().unwrap();
    let body = std::str::from_utf8(frame::unwrap(&good).unwrap())
        .unwrap()
        .to_string();
    for bad in [
        body.replace("ADM-CID", "ADM-XXX"),
        body.replace("0001", "0000"),
        body.replace("#AAA|", "#BBB|"),
        body.replace("1130", "2130"),
        body.replace("01 015", "01015 "),
        body.replace("]_", "]x_"),
        body.replace("_14:29:10", "_14:29:99"),
        body.replace("L0", ""),
    ] {
        let f = frame::wrap(bad.as_bytes()).unwrap();
        assert!(Message::decode(&f, None).is_err(), "{bad}");
    }
}

#[test]
fn contact_id_and_field_validation() {
    assert!(ContactId::new(Qualifier::New, 1000, 0, 0).is_err());
    assert!(ContactId::new(Qualifier::New, 0, 100, 0).is_err());
    assert!(ContactId::new(Qualifier::New, 0, 0, 1000).is_err());
    assert!(SiaCode::new("ba").is_err());
    assert!(SiaCode::new("BAR").is_err());
    assert!(ExtendedData::new('i', "x").is_err());
    assert!(ExtendedData::new('I', "a]b").is_err());
    let mut m = msg(1, "AAA", Payload::Null);
    m.extended = vec![ExtendedData::new('I', &"x".repeat(200)).unwrap(); 25];
    assert!(matches!(
        m.encode(),
        Err(Dc09Error::EncodeBodyTooLong { .. })
    ));
}

#[test]
fn parses_the_reference_receiver_replies() {
    // Clear ACK as pysiaalarm sends it (no timestamp).
    let ack = Reply::parse(b"\n802E0013\"ACK\"0001R0L0#AAA[]\r", None).unwrap();
    let Reply::Response(r) = &ack else {
        panic!("{ack:?}")
    };
    assert_eq!((r.kind, r.seq, r.timestamp), (ResponseKind::Ack, 1, None));
    assert_eq!(judge(Seq::new(1).unwrap(), None, &ack), Verdict::Delivered);
    assert_eq!(
        judge(Seq::new(2).unwrap(), None, &ack),
        Verdict::Unrelated { seq: 1 }
    );

    // NAK with the receiver clock.
    let nak = Reply::parse(b"\nB95D0025\"NAK\"0000R0L0A0[]_14:29:11,11-22-2026\r", None).unwrap();
    let receiver_time = Timestamp::parse("_14:29:11,11-22-2026").unwrap();
    assert_eq!(
        judge(Seq::new(4).unwrap(), None, &nak),
        Verdict::ClockRejected { receiver_time }
    );
    let offset = ClockOffset::from_nak(receiver_time, receiver_time.unix_secs() - 120);
    assert_eq!(offset.secs(), 120);
    assert_eq!(
        offset.timestamp(receiver_time.unix_secs() - 120),
        receiver_time
    );

    // Encrypted ACK as pysiaalarm builds it: zero-filled, no pad separator.
    let key = Key::parse("0123456789ABCDEF", KeyFormat::Ascii).unwrap();
    let eack = b"\nA4C70053\"*ACK\"0004R0L0#BBB[99B38022D5359DEDB1271E6213B81F44F4D3ED5446801AAAAB66A8E71264046E\r";
    let reply = Reply::parse(eack, Some(&key)).unwrap();
    let Reply::Response(r) = &reply else {
        panic!("{reply:?}")
    };
    assert!(r.encrypted);
    assert_eq!(r.timestamp, Some(ts()));
    assert_eq!(
        judge(Seq::new(4).unwrap(), None, &reply),
        Verdict::Delivered
    );
    // Without the key it is still an ACK for seq 4.
    assert_eq!(
        judge(
            Seq::new(4).unwrap(),
            None,
            &Reply::parse(eack, None).unwrap()
        ),
        Verdict::Delivered
    );

    // DUH, bare NAK, discarded frame.
    let duh = Reply::parse(b"\n00000013\"DUH\"0010R0L0#AAA[]\r", None);
    assert!(matches!(duh, Err(Dc09Error::ParseCrc { .. })));
    let duh = Response::answer(ResponseKind::Duh, &msg(10, "AAA", sia_ba15()))
        .encode(None)
        .unwrap();
    assert_eq!(
        judge(
            Seq::new(10).unwrap(),
            None,
            &Reply::parse(&duh, None).unwrap()
        ),
        Verdict::NotUnderstood
    );
    assert_eq!(
        judge(
            Seq::new(3).unwrap(),
            None,
            &Reply::parse(b"\"NAK\"", None).unwrap()
        ),
        Verdict::Refused {
            receiver_time: None
        }
    );
    assert_eq!(
        judge(
            Seq::new(3).unwrap(),
            None,
            &Reply::parse(b"\n\r", None).unwrap()
        ),
        Verdict::Discarded
    );
    assert!(Reply::parse(b"\"HUH\"", None).is_err());
    // pysiaalarm echoes a missing receiver number as `None`.
    let none = frame::wrap(b"\"ACK\"0001NoneL0#AAA[]").unwrap();
    assert_eq!(
        judge(
            Seq::new(1).unwrap(),
            None,
            &Reply::parse(&none, None).unwrap()
        ),
        Verdict::Delivered
    );
}

#[test]
fn responses_round_trip() {
    let key = Key::parse("0123456789ABCDEF", KeyFormat::Ascii).unwrap();
    let m = msg(77, "ABC", burglary());
    let mut ack = Response::answer(ResponseKind::Ack, &m);
    let f = ack.encode(None).unwrap();
    assert_eq!(
        Reply::parse(&f, None).unwrap(),
        Reply::Response(ack.clone())
    );
    ack.encrypted = true;
    ack.timestamp = Some(ts());
    let f = ack.encode(Some((&key, &[3; 16]))).unwrap();
    assert_eq!(Reply::parse(&f, Some(&key)).unwrap(), Reply::Response(ack));
    let nak = Response::nak(Timestamp::parse("_14:29:11,11-22-2026").unwrap());
    let f = nak.encode(None).unwrap();
    assert_eq!(f, b"\nB95D0025\"NAK\"0000R0L0A0[]_14:29:11,11-22-2026\r");
    assert_eq!(Reply::parse(&f, None).unwrap(), Reply::Response(nak));
}

#[test]
fn reply_reader_handles_split_and_bare_replies() {
    let a = Response::answer(ResponseKind::Ack, &msg(1, "AAA", burglary()))
        .encode(None)
        .unwrap();
    let mut r = ReplyReader::new();
    assert_eq!(r.push(b"\"NAK\""), Some(b"\"NAK\"".to_vec()));
    assert_eq!(r.push(&a[..3]), None);
    assert_eq!(r.next_reply(), None);
    assert_eq!(r.push(&a[3..]), None);
    assert_eq!(r.next_reply(), Some(a));
}

#[test]
fn naks_in_any_field_order() {
    let receiver_time = Timestamp::parse("_14:29:11,11-22-2026").unwrap();
    // pysiaalarm's own NAK (a frame it cannot parse, e.g. one it cannot decrypt) puts the line
    // before the receiver; the standard's puts the receiver first. Both read the same.
    for body in [
        "\"NAK\"0000L0R0A0[]_14:29:11,11-22-2026",
        "\"NAK\"0000R0L0A0[]_14:29:11,11-22-2026",
        "\"NAK\"0000A0R0L0[]_14:29:11,11-22-2026",
        "\"NAK\"0000NoneL0A0[]_14:29:11,11-22-2026",
    ] {
        let reply = Reply::parse(&frame::wrap(body.as_bytes()).unwrap(), None).unwrap();
        let Reply::Response(r) = &reply else {
            panic!("{reply:?}")
        };
        assert_eq!(r.kind, ResponseKind::Nak, "{body}");
        assert_eq!(r.line, Some(Prefix::zero()), "{body}");
        assert_eq!(
            r.account,
            ResponseAccount::Anonymous(Prefix::zero()),
            "{body}"
        );
        assert_eq!(r.timestamp, Some(receiver_time), "{body}");
        if !body.contains("None") {
            assert_eq!(r.receiver, Some(Prefix::zero()), "{body}");
        }
        assert_eq!(
            judge(Seq::new(4).unwrap(), None, &reply),
            Verdict::ClockRejected { receiver_time }
        );
    }
    // Other orders of the full fields; a receiver number with an A digit stays whole when an
    // account follows.
    let reply = Reply::parse(
        &frame::wrap(b"\"NAK\"0000#ABCL2R1A[]_14:29:11,11-22-2026").unwrap(),
        None,
    )
    .unwrap();
    let Reply::Response(r) = reply else { panic!() };
    assert_eq!(
        (r.receiver, r.line, r.account),
        (
            Some(Prefix::new("1A").unwrap()),
            Some(Prefix::new("2").unwrap()),
            ResponseAccount::Account(Account::new("ABC").unwrap())
        )
    );
    // A field given twice is not a header.
    for bad in [
        &b"\"NAK\"0000R0R0L0[]"[..],
        b"\"NAK\"0000L0#AAA#AAA[]",
        b"\"NAK\"0000L0Q0[]",
        b"\"NAK\"0000L0",
    ] {
        assert!(
            Reply::parse(&frame::wrap(bad).unwrap(), None).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn a_nak_whose_clock_agrees_refuses_the_frame_itself() {
    let ours = ts();
    let nak_at = |secs: i64| {
        let t = Timestamp::from_unix_secs(ours.unix_secs() + secs).unwrap();
        let body = format!("\"NAK\"0000L0R0A0[]{t}");
        Reply::parse(&frame::wrap(body.as_bytes()).unwrap(), None).unwrap()
    };
    let seq = Seq::new(9).unwrap();
    for agree in [-CLOCK_AGREEMENT_S, 0, 1, CLOCK_AGREEMENT_S] {
        let receiver_time = Timestamp::from_unix_secs(ours.unix_secs() + agree).unwrap();
        assert_eq!(
            judge(seq, Some(ours), &nak_at(agree)),
            Verdict::Refused {
                receiver_time: Some(receiver_time)
            }
        );
    }
    for skew in [-CLOCK_AGREEMENT_S - 1, CLOCK_AGREEMENT_S + 1, 120, -3600] {
        let receiver_time = Timestamp::from_unix_secs(ours.unix_secs() + skew).unwrap();
        assert_eq!(
            judge(seq, Some(ours), &nak_at(skew)),
            Verdict::ClockRejected { receiver_time }
        );
    }
    // Without a time in the NAK nothing says the clock was the reason.
    assert_eq!(
        judge(seq, Some(ours), &Reply::parse(b"\"NAK\"", None).unwrap()),
        Verdict::Refused {
            receiver_time: None
        }
    );
}

#[test]
fn time_of_occurrence_block() {
    let happened = Timestamp::parse("_14:20:05,11-22-2026").unwrap();
    let mut m = msg(5, "AAA", sia_ba15());
    m.extended = vec![
        ExtendedData::new('I', "Front door").unwrap(),
        ExtendedData::time_of_occurrence(happened),
    ];
    let f = m.encode().unwrap();
    let text = String::from_utf8(f.clone()).unwrap();
    assert!(
        text.ends_with("[#AAA|Nri1/BA15][IFront door][H14:20:05,11-22-2026]_14:29:10,11-22-2026\r"),
        "{text}"
    );
    let back = Message::decode(&f, None).unwrap().message;
    assert_eq!(back, m);
    assert_eq!(back.extended[1].occurred_at(), Some(happened));
    assert_eq!(back.extended[0].occurred_at(), None);
    let key = Key::parse("0123456789ABCDEF", KeyFormat::Ascii).unwrap();
    let f = m.encode_encrypted(&key, &[7; 16]).unwrap();
    assert_eq!(Message::decode(&f, Some(&key)).unwrap().message, m);
}
