//! Request/reply against the embedded broker (the `broker` worker's rumqttd): a round trip,
//! a refusal in the area's error enum, a timeout, and many requests in flight at once.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use watchpost_bus::{Bus, ReplyError, Request, RequestError};
use watchpost_runtime::WorkerCtx;
use watchpost_runtime::net::HeldPort;

watchpost_contract::error_codes! {
    /// The test area's codes.
    pub enum LampCode {
        #[invalid_body] InvalidBody = "INVALID_BODY",
        LampNotFound = "LAMP_NOT_FOUND",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LampSet {
    on: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LampState {
    lamp: String,
    on: bool,
}

impl Request for LampSet {
    type Reply = LampState;
    type Code = LampCode;
}

/// The broker worker on a loopback port held for the test (rumqttd binds its listener itself
/// from the configured address and cannot report a port it picked), and the test's config.
async fn broker(shutdown: &CancellationToken) -> (watchpost_config::Config, HeldPort) {
    let held = HeldPort::new().expect("a loopback port");
    let port = held.port();
    let toml = format!(
        "[system]\ndata_dir = \"/tmp\"\n[broker]\nlisten = \"127.0.0.1:{port}\"\n[bus]\nreconnect_initial_ms = 10\n"
    );
    let config = watchpost_config::from_str_with_env(&toml, std::path::Path::new("t.toml"), &[])
        .expect("test config");
    let ctx = Arc::new(WorkerCtx::standalone("broker", shutdown.clone()));
    let c = config.clone();
    tokio::spawn(async move { watchpost_broker::run(c, ctx).await });
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(&addr).await.is_ok() {
            return (config, held);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the broker did not listen on {addr}");
}

async fn connected(
    config: &watchpost_config::Config,
    name: &str,
    shutdown: &CancellationToken,
) -> Bus {
    let bus = Bus::connect(config, name, shutdown.clone());
    for _ in 0..500 {
        if bus.is_connected() {
            return bus;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{name} did not connect");
}

/// A worker serving `lamp/+/set`: lamp `hall` exists, others are refused.
async fn lamp_worker(bus: Bus) {
    let mut requests = bus
        .serve::<LampSet>(&bus.filter(&["lamp", "+", "set"]))
        .await
        .expect("serve");
    while let Some(req) = requests.recv().await {
        let lamp = req.topic.split('/').nth(2).unwrap_or_default().to_string();
        let outcome = req.decode().and_then(|cmd| {
            if lamp == "hall" {
                Ok(LampState { lamp, on: cmd.on })
            } else {
                Err(ReplyError::new(
                    LampCode::LampNotFound,
                    format!("no lamp {lamp}"),
                ))
            }
        });
        bus.respond(&req, &outcome).await.expect("respond");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_refusal_timeout_and_concurrency() {
    let shutdown = CancellationToken::new();
    let (config, _port) = broker(&shutdown).await;
    let worker = connected(&config, "lamps", &shutdown).await;
    let caller = connected(&config, "hub", &shutdown).await;
    tokio::spawn(lamp_worker(worker.clone()));
    // The worker's subscription is in place once a request is answered; the first may race it.
    let topic = caller.topic(&["lamp", "hall", "set"]);
    let mut first = None;
    for _ in 0..50 {
        match caller
            .request(&topic, &LampSet { on: true }, Duration::from_millis(200))
            .await
        {
            Ok(r) => {
                first = Some(r);
                break;
            }
            Err(RequestError::Timeout { .. }) => continue,
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!(
        first.expect("a reply"),
        LampState {
            lamp: "hall".into(),
            on: true
        }
    );

    // A refusal arrives as the area's code.
    let err = caller
        .request(
            &caller.topic(&["lamp", "attic", "set"]),
            &LampSet { on: false },
            Duration::from_secs(5),
        )
        .await
        .expect_err("refused");
    match err {
        RequestError::Refused { error, .. } => {
            assert_eq!(error.code, LampCode::LampNotFound);
            assert_eq!(error.message, "no lamp attic");
        }
        other => panic!("expected a refusal, got {other}"),
    }

    // Nobody serves this topic: a timeout, and the pending entry is gone afterwards (a late
    // reply would be dropped, not delivered to the next request).
    let err = caller
        .request(
            &caller.topic(&["nobody", "set"]),
            &LampSet { on: true },
            Duration::from_millis(300),
        )
        .await
        .expect_err("timeout");
    assert!(
        matches!(&err, RequestError::Timeout { timeout_ms: 300, topic } if topic.ends_with("/nobody/set")),
        "{err}"
    );

    // Many requests in flight: every one gets its own answer.
    let mut tasks = Vec::new();
    for i in 0..64 {
        let caller = caller.clone();
        let topic = topic.clone();
        tasks.push(tokio::spawn(async move {
            let on = i % 2 == 0;
            let r = caller
                .request(&topic, &LampSet { on }, Duration::from_secs(10))
                .await
                .expect("reply");
            assert_eq!(r.on, on);
        }));
    }
    for t in tasks {
        t.await.expect("request task");
    }
    assert_eq!(caller.pending_requests(), 0);

    // A caller that gives up (drops the future) leaves no pending entry behind.
    let abandoned = tokio::time::timeout(
        Duration::from_millis(50),
        caller.request(
            &caller.topic(&["nobody", "set"]),
            &LampSet { on: true },
            Duration::from_secs(60),
        ),
    )
    .await;
    assert!(abandoned.is_err(), "nobody answers");
    assert_eq!(caller.pending_requests(), 0);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_decode_is_refused_with_the_invalid_body_code() {
    let shutdown = CancellationToken::new();
    let (config, _port) = broker(&shutdown).await;
    let worker = connected(&config, "lamps", &shutdown).await;
    let caller = connected(&config, "hub", &shutdown).await;
    tokio::spawn(lamp_worker(worker));

    #[derive(Serialize, Deserialize)]
    struct Wrong {
        on: String,
    }
    impl Request for Wrong {
        type Reply = LampState;
        type Code = LampCode;
    }
    let topic = caller.topic(&["lamp", "hall", "set"]);
    let mut last = None;
    for _ in 0..50 {
        match caller
            .request(
                &topic,
                &Wrong { on: "yes".into() },
                Duration::from_millis(200),
            )
            .await
        {
            Err(RequestError::Timeout { .. }) => continue,
            other => {
                last = Some(other);
                break;
            }
        }
    }
    match last.expect("an answer") {
        Err(RequestError::Refused { error, .. }) => assert_eq!(error.code, LampCode::InvalidBody),
        Err(e) => panic!("expected a refusal, got {e}"),
        Ok(r) => panic!("expected a refusal, got {r:?}"),
    }
    shutdown.cancel();
}
