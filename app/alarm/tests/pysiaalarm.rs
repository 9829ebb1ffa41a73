//! The SIA DC-09 sender against a real receiver: pysiaalarm 3.2.2 from the project venv
//! (`make venv`), run by `tests/alarm/sia_receiver.py`. Without the venv these tests say so
//! and return.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use serde_json::Value;
use watchpost_alarm::codes::SiaLayout;
use watchpost_alarm::event::{EventKind, Phase};
use watchpost_alarm::sia::{Clock, Outcome, SiaLink, SiaTarget, SystemClock, TryResult};
use watchpost_config::alarms::SiaReceiver;
use watchpost_dc09::{Payload, Seq, SiaCode, SiaEvent};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Peer {
    child: Child,
    port: u16,
    events: Receiver<Value>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Peer {
    /// Starts pysiaalarm, or returns `None` (with a message) when the venv is missing.
    fn start(protocol: &str, accounts: &[&str]) -> Option<Peer> {
        Self::start_with(protocol, accounts, &[])
    }

    /// As [`Peer::start`], with more `sia_receiver.py` arguments.
    fn start_with(protocol: &str, accounts: &[&str], extra: &[&str]) -> Option<Peer> {
        let python = root().join(".venv/bin/python");
        if !python.exists() {
            watchpost_runtime::testing::missing_peer(&format!(
                "{} is missing; run `make venv` for the pysiaalarm peer",
                python.display()
            ));
            return None;
        }
        let mut cmd = Command::new(python);
        cmd.arg(root().join("tests/alarm/sia_receiver.py")).args([
            "--protocol",
            protocol,
            "--port",
            "0",
        ]);
        for a in accounts {
            cmd.args(["--account", a]);
        }
        cmd.args(extra);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pysiaalarm");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && tx.send(v).is_err()
                {
                    return;
                }
            }
        });
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("receiver starts");
        let port = first["listening"].as_u64().expect("port") as u16;
        Some(Peer {
            child,
            port,
            events: rx,
        })
    }

    fn next_event(&self) -> Value {
        self.events
            .recv_timeout(Duration::from_secs(20))
            .expect("pysiaalarm reports the event")
    }

    fn no_event(&self) {
        assert!(
            self.events
                .recv_timeout(Duration::from_millis(300))
                .is_err()
        );
    }
}

fn receiver(toml_text: &str) -> SiaReceiver {
    toml::from_str(toml_text).expect("receiver config")
}

fn link(cfg: &SiaReceiver, clock: Arc<dyn Clock>) -> SiaLink {
    SiaLink::new(
        Arc::new(SiaTarget::from_config(cfg).expect("target")),
        clock,
    )
}

async fn deliver(l: &mut SiaLink, seq: u16, p: Payload) -> (Outcome, Vec<TryResult>) {
    let mut tries = Vec::new();
    let out = l
        .deliver(Seq::new(seq).unwrap(), p, &[], None, &mut tries)
        .await;
    eprintln!("tries: {tries:?}");
    (out, tries.into_iter().map(|t| t.result).collect())
}

fn cfg(port: u16, extra: &str) -> SiaReceiver {
    receiver(&format!(
        "id = \"cms\"\nhost = \"127.0.0.1:{port}\"\nack_timeout_ms = 3000\nattempts = 2\nbackoff_initial_ms = 50\n{extra}"
    ))
}

#[tokio::test]
async fn tcp_clear_adm_cid_and_sia_dcs_and_null() {
    let Some(peer) = Peer::start("tcp", &["AAA"]) else {
        return;
    };
    let c = cfg(peer.port, "account = \"AAA\"\nformat = \"adm_cid\"");
    let layout = SiaLayout::from_config(&c);
    let mut l = link(&c, Arc::new(SystemClock));
    let (out, _) = deliver(
        &mut l,
        1,
        layout.payload(EventKind::Intrusion, Phase::Alarm, 15),
    )
    .await;
    assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    let e = peer.next_event();
    assert_eq!(
        (e["account"].as_str(), e["code"].as_str()),
        (Some("AAA"), Some("BA"))
    );
    assert_eq!(
        (e["ri"].as_str(), e["partition"].as_str()),
        (Some("015"), Some("01"))
    );
    assert_eq!(e["sequence"], "0001");
    assert_eq!(e["encrypted"], false);

    let (out, _) = deliver(
        &mut l,
        2,
        layout.payload(EventKind::Intrusion, Phase::Restore, 15),
    )
    .await;
    assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    assert_eq!(peer.next_event()["code"], "BH");

    // SIA-DCS on the same connection.
    let c = cfg(peer.port, "account = \"AAA\"\nformat = \"sia_dcs\"");
    let layout = SiaLayout::from_config(&c);
    let mut l = link(&c, Arc::new(SystemClock));
    let (out, _) = deliver(
        &mut l,
        3,
        layout.payload(EventKind::Water, Phase::Alarm, 15),
    )
    .await;
    assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    // SIA convention by default: the partition (1) in `ri`, the zone after the code.
    let e = peer.next_event();
    assert_eq!(
        (e["code"].as_str(), e["ri"].as_str(), e["message"].as_str()),
        (Some("WA"), Some("1"), Some("15"))
    );

    // NULL supervision message.
    let (out, _) = deliver(&mut l, 4, Payload::Null).await;
    assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    let e = peer.next_event();
    assert_eq!(
        (e["code"].as_str(), e["message_type"].as_str()),
        (Some("RP"), Some("NULL"))
    );
}

#[tokio::test]
async fn tcp_encrypted_with_ascii_keys_of_every_size_and_a_hex_key() {
    let Some(peer) = Peer::start(
        "tcp",
        &[
            "BBB:0123456789ABCDEF",
            "CCC:0123456789ABCDEF01234567",
            "DDD:0123456789ABCDEF0123456789ABCDEF",
        ],
    ) else {
        return;
    };
    for (i, (acct, key, format, code)) in [
        ("BBB", "0123456789ABCDEF", "sia_dcs", "BA"),
        ("CCC", "0123456789ABCDEF01234567", "adm_cid", "BA"),
        ("DDD", "0123456789ABCDEF0123456789ABCDEF", "sia_dcs", "BA"),
        ("DDD", "0123456789ABCDEF0123456789ABCDEF", "adm_cid", "BA"),
    ]
    .into_iter()
    .enumerate()
    {
        let c = cfg(
            peer.port,
            &format!(
                "account = \"{acct}\"\nkey = \"{key}\"\nkey_format = \"ascii\"\nformat = \"{format}\""
            ),
        );
        let layout = SiaLayout::from_config(&c);
        let mut l = link(&c, Arc::new(SystemClock));
        let (out, _) = deliver(
            &mut l,
            10 + i as u16,
            layout.payload(EventKind::Intrusion, Phase::Alarm, 7),
        )
        .await;
        assert!(
            matches!(out, Outcome::Delivered { .. }),
            "{acct} {format}: {out:?}"
        );
        let e = peer.next_event();
        assert_eq!(e["account"], acct);
        assert_eq!(e["code"], code);
        assert_eq!(e["encrypted"], true);
        assert_eq!(e["valid_timestamp"], true);
    }
    // The same 16-byte key given in hex (what most panels take): pysiaalarm, which reads
    // keys as ASCII, must see the same AES key.
    let hex_key: String = "0123456789ABCDEF"
        .bytes()
        .map(|b| format!("{b:02X}"))
        .collect();
    let c = cfg(
        peer.port,
        &format!(
            "account = \"BBB\"\nkey = \"{hex_key}\"\nkey_format = \"hex\"\nformat = \"adm_cid\""
        ),
    );
    let layout = SiaLayout::from_config(&c);
    let mut l = link(&c, Arc::new(SystemClock));
    let (out, _) = deliver(
        &mut l,
        15,
        layout.payload(EventKind::Water, Phase::Alarm, 8),
    )
    .await;
    assert!(matches!(out, Outcome::Delivered { .. }), "hex key: {out:?}");
    let e = peer.next_event();
    assert_eq!(
        (e["account"].as_str(), e["encrypted"].as_bool()),
        (Some("BBB"), Some(true))
    );
    // An encrypted NULL.
    let c = cfg(
        peer.port,
        "account = \"BBB\"\nkey = \"0123456789ABCDEF\"\nkey_format = \"ascii\"",
    );
    let mut l = link(&c, Arc::new(SystemClock));
    let (out, _) = deliver(&mut l, 20, Payload::Null).await;
    assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    assert_eq!(peer.next_event()["code"], "RP");
}

#[tokio::test]
async fn udp_clear_and_encrypted() {
    let Some(peer) = Peer::start("udp", &["AAA", "BBB:0123456789ABCDEF"]) else {
        return;
    };
    let c = cfg(
        peer.port,
        "account = \"AAA\"\ntransport = \"udp\"\nformat = \"adm_cid\"",
    );
    let layout = SiaLayout::from_config(&c);
    let mut l = link(&c, Arc::new(SystemClock));
    let (out, _) = deliver(
        &mut l,
        21,
        layout.payload(EventKind::Smoke, Phase::Alarm, 3),
    )
    .await;
    assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    let e = peer.next_event();
    assert_eq!(
        (e["code"].as_str(), e["ri"].as_str()),
        (Some("FA"), Some("003"))
    );
    let c = cfg(
        peer.port,
        "account = \"BBB\"\ntransport = \"udp\"\nkey = \"0123456789ABCDEF\"\nkey_format = \"ascii\"",
    );
    let layout = SiaLayout::from_config(&c);
    let mut l = link(&c, Arc::new(SystemClock));
    let (out, _) = deliver(
        &mut l,
        22,
        layout.payload(EventKind::CarbonMonoxide, Phase::Alarm, 4),
    )
    .await;
    assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    let e = peer.next_event();
    assert_eq!(
        (e["code"].as_str(), e["encrypted"].as_bool()),
        (Some("GA"), Some(true))
    );
    // The other two combinations: clear SIA-DCS and encrypted ADM-CID.
    let c = cfg(
        peer.port,
        "account = \"AAA\"\ntransport = \"udp\"\nformat = \"sia_dcs\"",
    );
    let layout = SiaLayout::from_config(&c);
    let mut l = link(&c, Arc::new(SystemClock));
    let (out, _) = deliver(
        &mut l,
        23,
        layout.payload(EventKind::Water, Phase::Alarm, 5),
    )
    .await;
    assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    let e = peer.next_event();
    assert_eq!(
        (
            e["account"].as_str(),
            e["code"].as_str(),
            e["ri"].as_str(),
            e["encrypted"].as_bool()
        ),
        (Some("AAA"), Some("WA"), Some("1"), Some(false))
    );
    let c = cfg(
        peer.port,
        "account = \"BBB\"\ntransport = \"udp\"\nformat = \"adm_cid\"\nkey = \"0123456789ABCDEF\"\nkey_format = \"ascii\"",
    );
    let layout = SiaLayout::from_config(&c);
    let mut l = link(&c, Arc::new(SystemClock));
    let (out, _) = deliver(
        &mut l,
        24,
        layout.payload(EventKind::Intrusion, Phase::Restore, 6),
    )
    .await;
    assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    let e = peer.next_event();
    assert_eq!(
        (
            e["account"].as_str(),
            e["code"].as_str(),
            e["ri"].as_str(),
            e["encrypted"].as_bool()
        ),
        (Some("BBB"), Some("BH"), Some("006"), Some(true))
    );
    // NULL supervision over UDP.
    let (out, _) = deliver(&mut l, 25, Payload::Null).await;
    assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    assert_eq!(peer.next_event()["message_type"], "NULL");
}

/// A panel clock two minutes slow.
#[derive(Debug)]
struct Slow;
impl Clock for Slow {
    fn now_unix_s(&self) -> i64 {
        SystemClock.now_unix_s() - 120
    }
}

#[tokio::test]
async fn nak_for_a_skewed_clock_is_followed_by_an_accepted_resend() {
    let Some(peer) = Peer::start("tcp", &["BBB:0123456789ABCDEF"]) else {
        return;
    };
    let c = cfg(
        peer.port,
        "account = \"BBB\"\nkey = \"0123456789ABCDEF\"\nkey_format = \"ascii\"",
    );
    let layout = SiaLayout::from_config(&c);
    let mut l = link(&c, Arc::new(Slow));
    let (out, tries) = deliver(
        &mut l,
        30,
        layout.payload(EventKind::Intrusion, Phase::Alarm, 1),
    )
    .await;
    assert!(
        matches!(out, Outcome::Delivered { .. }),
        "{out:?} {tries:?}"
    );
    assert!(
        matches!(tries[0], TryResult::ClockRejected { offset_s } if (115..=125).contains(&offset_s)),
        "{tries:?}"
    );
    assert_eq!(tries[1], TryResult::Acked);
    let e = peer.next_event();
    assert_eq!(
        (e["sequence"].as_str(), e["valid_timestamp"].as_bool()),
        (Some("0030"), Some(true))
    );
    // The offset sticks: the next message goes through at once.
    let (out, tries) = deliver(
        &mut l,
        31,
        layout.payload(EventKind::Intrusion, Phase::Restore, 1),
    )
    .await;
    assert!(matches!(out, Outcome::Delivered { .. }));
    assert_eq!(tries, vec![TryResult::Acked]);
    assert_eq!(peer.next_event()["code"], "BH");
}

#[tokio::test]
async fn duh_is_a_failed_try_retried_and_a_backup_that_understands_takes_over() {
    let Some(peer) = Peer::start("tcp", &["AAA"]) else {
        return;
    };
    // pysiaalarm answers DUH to a code it does not know: every try of the round.
    let c = cfg(peer.port, "account = \"AAA\"");
    let mut l = link(&c, Arc::new(SystemClock));
    let unknown = Payload::Sia(SiaEvent {
        user: None,
        area: Some(1),
        code: SiaCode::new("QQ").unwrap(),
        zone: Some(1),
    });
    let (out, tries) = deliver(&mut l, 40, unknown).await;
    assert!(matches!(out, Outcome::Failed), "{out:?}");
    assert_eq!(
        tries,
        vec![TryResult::NotUnderstood, TryResult::NotUnderstood]
    );
    assert!(tries[0].not_understood());
    assert_eq!(tries[0].label(), "duh");
    assert_eq!(
        tries[0].to_string(),
        "receiver did not understand our frame (DUH): check account, key and format"
    );
    peer.no_event();

    // A primary that answers DUH to everything it would acknowledge (restarting, or
    // misconfigured) and a backup that understands: the backup delivers the alarm.
    let Some(duh) = Peer::start_with("tcp", &["AAA"], &["--duh-first", "100"]) else {
        return;
    };
    let c = receiver(&format!(
        "id = \"cms\"\nhost = \"127.0.0.1:{}\"\nbackup = \"127.0.0.1:{}\"\naccount = \"AAA\"\nack_timeout_ms = 2000\nattempts = 1\nbackoff_initial_ms = 10",
        duh.port, peer.port
    ));
    let layout = SiaLayout::from_config(&c);
    let mut l = link(&c, Arc::new(SystemClock));
    let (out, tries) = deliver(
        &mut l,
        39,
        layout.payload(EventKind::Intrusion, Phase::Alarm, 2),
    )
    .await;
    assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    assert_eq!(tries, vec![TryResult::NotUnderstood, TryResult::Acked]);
    assert_eq!(peer.next_event()["sequence"], "0039");
    duh.no_event();

    // Primary: a port nobody listens on (held for the test, so it stays that way); backup:
    // pysiaalarm.
    let dead = watchpost_runtime::testing::HeldPort::new().unwrap();
    let dead_port = dead.port();
    let c = receiver(&format!(
        "id = \"cms\"\nhost = \"127.0.0.1:{dead_port}\"\nbackup = \"127.0.0.1:{}\"\naccount = \"AAA\"\nack_timeout_ms = 2000\nattempts = 1\nbackoff_initial_ms = 10",
        peer.port
    ));
    let layout = SiaLayout::from_config(&c);
    let mut l = link(&c, Arc::new(SystemClock));
    let (out, tries) = deliver(
        &mut l,
        41,
        layout.payload(EventKind::Intrusion, Phase::Alarm, 2),
    )
    .await;
    match &out {
        Outcome::Delivered { endpoint } => assert!(endpoint.ends_with(&peer.port.to_string())),
        other => panic!("{other:?} {tries:?}"),
    }
    assert!(matches!(tries[0], TryResult::Io(_)), "{tries:?}");
    assert_eq!(peer.next_event()["sequence"], "0041");
    // The backup stays the first choice while it works.
    let (_, tries) = deliver(
        &mut l,
        42,
        layout.payload(EventKind::Intrusion, Phase::Restore, 2),
    )
    .await;
    assert_eq!(tries, vec![TryResult::Acked]);
}

#[tokio::test]
async fn a_late_ack_is_a_timeout_and_the_resend_keeps_its_sequence_number() {
    // pysiaalarm answers 800 ms after each frame.
    let Some(peer) = Peer::start_with("tcp", &["AAA"], &["--ack-delay-ms", "800"]) else {
        return;
    };
    let c = receiver(&format!(
        "id = \"cms\"\nhost = \"127.0.0.1:{}\"\naccount = \"AAA\"\nack_timeout_ms = 300\nattempts = 2\nbackoff_initial_ms = 10",
        peer.port
    ));
    let layout = SiaLayout::from_config(&c);
    let mut l = link(&c, Arc::new(SystemClock));
    let payload = layout.payload(EventKind::Intrusion, Phase::Alarm, 4);
    let (out, tries) = deliver(&mut l, 50, payload).await;
    assert!(matches!(out, Outcome::Failed), "{out:?}");
    assert_eq!(tries, vec![TryResult::Timeout, TryResult::Timeout]);
    // Patient enough: delivered, with the same sequence number as the tries that timed out.
    let c = receiver(&format!(
        "id = \"cms\"\nhost = \"127.0.0.1:{}\"\naccount = \"AAA\"\nack_timeout_ms = 3000\nattempts = 1",
        peer.port
    ));
    let mut l = link(&c, Arc::new(SystemClock));
    let (out, tries) = deliver(&mut l, 50, payload).await;
    assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    assert_eq!(tries, vec![TryResult::Acked]);
    // Whatever pysiaalarm reports (it may also report the frames whose answer came too late)
    // is this one alarm.
    let mut seen = Vec::new();
    while let Ok(e) = peer.events.recv_timeout(Duration::from_millis(1500)) {
        seen.push((
            e["sequence"].clone(),
            e["code"].clone(),
            e["message"].clone(),
        ));
    }
    assert!(!seen.is_empty()); // usually three: the two late ones and the resend
    assert!(
        seen.iter()
            .all(|s| *s == ("0050".into(), "BA".into(), "4".into())),
        "{seen:?}"
    );
}

/// The tries of a round in which the receiver refuses every frame: pysiaalarm cannot parse
/// what another key decrypts to and NAKs it, but about one frame in 150 decrypts to something
/// it reads and answers DUH (a failed try too); such a round is not the one this test is
/// about.
async fn refused_round(l: &mut SiaLink, seq: u16, p: Payload) -> Vec<TryResult> {
    for _ in 0..5 {
        let (out, tries) = deliver(l, seq, p).await;
        assert!(matches!(out, Outcome::Failed), "{out:?}");
        if !tries.contains(&TryResult::NotUnderstood) {
            return tries;
        }
    }
    panic!("pysiaalarm answered DUH in five rounds of frames with another key");
}

#[tokio::test]
async fn a_receiver_with_another_key_refuses_our_frames_and_the_try_says_check_the_key() {
    let Some(peer) = Peer::start("tcp", &["BBB:FEDCBA9876543210"]) else {
        return;
    };
    let c = cfg(
        peer.port,
        "account = \"BBB\"\nkey = \"0123456789ABCDEF\"\nkey_format = \"ascii\"",
    );
    let layout = SiaLayout::from_config(&c);
    let mut l = link(&c, Arc::new(SystemClock));
    let tries = refused_round(
        &mut l,
        60,
        layout.payload(EventKind::Intrusion, Phase::Alarm, 1),
    )
    .await;
    // Its NAK (`"NAK"0000L0R0A0[]_<time>`, line before receiver) is read, its clock agrees
    // with ours, so it is not taken for a clock correction.
    assert!(
        tries
            .iter()
            .all(|t| *t == TryResult::Refused { encrypted: true }),
        "{tries:?}"
    );
    assert_eq!(tries[0].label(), "nak_key");
    assert!(
        tries[0].to_string().contains("check the key"),
        "{}",
        tries[0]
    );
    assert_eq!(l.clock_offset_s(), 0);
    peer.no_event();
}

/// A receiver whose clock runs five minutes ahead: pysiaalarm with `--clock-offset-s 300`.
fn skewed_peer() -> Option<Peer> {
    Peer::start_with("tcp", &["AAA"], &["--clock-offset-s", "300"])
}

#[tokio::test]
async fn a_clock_offset_belongs_to_the_endpoint_whose_nak_taught_it() {
    let Some(skewed) = skewed_peer() else {
        return;
    };
    let Some(backup) = Peer::start("tcp", &["AAA"]) else {
        return;
    };
    let c = receiver(&format!(
        "id = \"cms\"\nhost = \"127.0.0.1:{}\"\nbackup = \"127.0.0.1:{}\"\naccount = \"AAA\"\n\
         ack_timeout_ms = 3000\nattempts = 1\nbackoff_initial_ms = 10",
        skewed.port, backup.port
    ));
    let layout = SiaLayout::from_config(&c);
    let mut l = link(&c, Arc::new(SystemClock));
    let (out, tries) = deliver(
        &mut l,
        70,
        layout.payload(EventKind::Intrusion, Phase::Alarm, 3),
    )
    .await;
    assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    assert!(
        matches!(tries[0], TryResult::ClockRejected { offset_s } if (295..=305).contains(&offset_s)),
        "{tries:?}"
    );
    assert_eq!(tries[1..], [TryResult::Acked]);
    assert!((295..=305).contains(&l.clock_offset_s()));
    let e = skewed.next_event();
    assert_eq!(e["valid_timestamp"], true);
    // The skewed receiver goes away; the backup, whose clock is right, gets our own time at
    // once (with the primary's offset it would NAK first).
    drop(skewed);
    let (out, tries) = deliver(
        &mut l,
        71,
        layout.payload(EventKind::Intrusion, Phase::Restore, 3),
    )
    .await;
    match &out {
        Outcome::Delivered { endpoint } => assert!(endpoint.ends_with(&backup.port.to_string())),
        other => panic!("{other:?} {tries:?}"),
    }
    assert_eq!(tries.last(), Some(&TryResult::Acked), "{tries:?}");
    assert!(
        !tries
            .iter()
            .any(|t| matches!(t, TryResult::ClockRejected { .. })),
        "{tries:?}"
    );
    assert_eq!(l.clock_offset_s(), 0);
    assert_eq!(backup.next_event()["code"], "BH");
}

#[tokio::test]
async fn events_carry_their_time_of_occurrence_in_the_receivers_clock() {
    let Some(peer) = skewed_peer() else {
        return;
    };
    let c = cfg(peer.port, "account = \"AAA\"\nformat = \"adm_cid\"");
    let layout = SiaLayout::from_config(&c);
    let mut l = link(&c, Arc::new(SystemClock));
    // The event happened a minute ago (the receiver was away, say).
    let happened = SystemClock.now_unix_s() - 60;
    let mut tries = Vec::new();
    let out = l
        .deliver(
            Seq::new(80).unwrap(),
            layout.payload(EventKind::Intrusion, Phase::Alarm, 2),
            &[],
            Some(happened),
            &mut tries,
        )
        .await;
    assert!(
        matches!(out, Outcome::Delivered { .. }),
        "{out:?} {tries:?}"
    );
    let e = peer.next_event();
    // Contact ID gets the one block pysiaalarm reads there: `[H…]`, in the receiver's clock
    // (the offset learnt from its NAK applies to it as to the timestamp).
    let x = e["x_data"].as_str().expect("x_data");
    let h = watchpost_dc09::Timestamp::parse(x.strip_prefix('H').expect("an H block")).unwrap();
    let offset = l.clock_offset_s();
    assert!((295..=305).contains(&offset), "{offset}");
    assert_eq!(h.unix_secs(), happened + offset);
}
