//! Bus round trips for `make bench`: the typed request/reply (`Bus::request` answered by a
//! `Bus::serve` worker) beside a plain publish/subscribe echo, on the same broker in the same
//! run, each between two bus clients of their own.
//!
//! Usage: `bus_rtt HOST:PORT COUNT`. Prints one JSON line with p50/p99/max in microseconds
//! for both.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use watchpost_bus::{Bus, Request, Retain};

watchpost_contract::error_codes! {
    /// The benchmark's only code.
    pub enum EchoCode {
        #[invalid_body] InvalidBody = "INVALID_BODY",
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Echo {
    n: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct EchoReply {
    n: u64,
}

impl Request for Echo {
    type Reply = EchoReply;
    type Code = EchoCode;
}

async fn connected(
    config: &watchpost_config::Config,
    name: &str,
    stop: &CancellationToken,
) -> anyhow::Result<Bus> {
    let bus = Bus::connect(config, name, stop.clone());
    let t0 = Instant::now();
    while !bus.is_connected() {
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(10),
            "{name} did not connect"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(bus)
}

fn summary(mut us: Vec<u64>) -> serde_json::Value {
    us.sort_unstable();
    let at = |q: f64| us[((us.len() as f64 - 1.0) * q).round() as usize];
    serde_json::json!({"p50_us": at(0.5), "p99_us": at(0.99), "max_us": at(1.0), "n": us.len()})
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() == 3, "usage: bus_rtt HOST:PORT COUNT");
    let count: usize = args[2].parse()?;
    let toml = format!(
        "[system]\ndata_dir = \"/tmp\"\n[broker]\nlisten = \"{}\"\n",
        args[1]
    );
    let config =
        watchpost_config::from_str_with_env(&toml, std::path::Path::new("bench.toml"), &[])?;
    let stop = CancellationToken::new();
    let worker = connected(&config, "bench-worker", &stop).await?;
    let caller = connected(&config, "bench-caller", &stop).await?;

    // The typed call: a worker serving `bench/echo/set`.
    let mut requests = worker
        .serve::<Echo>(&worker.filter(&["bench", "echo", "set"]))
        .await?;
    let w = worker.clone();
    tokio::spawn(async move {
        while let Some(req) = requests.recv().await {
            let outcome = req.decode().map(|e| EchoReply { n: e.n });
            let _ = w.respond(&req, &outcome).await;
        }
    });
    // The plain echo: the worker republishes `bench/ping` on `bench/pong`.
    let mut pings = worker.subscribe(&worker.topic(&["bench", "ping"])).await?;
    let pong_topic = worker.topic(&["bench", "pong"]);
    let w = worker.clone();
    tokio::spawn(async move {
        while let Some(m) = pings.recv().await {
            let _ = w
                .publish_bytes(&pong_topic, m.payload.to_vec(), Retain::No)
                .await;
        }
    });
    let mut pongs = caller.subscribe(&caller.topic(&["bench", "pong"])).await?;

    let topic = caller.topic(&["bench", "echo", "set"]);
    let ping = caller.topic(&["bench", "ping"]);
    let timeout = Duration::from_secs(5);
    // Warm up both paths (subscriptions in place, connections hot).
    let t0 = Instant::now();
    loop {
        if caller
            .request(&topic, &Echo { n: 0 }, Duration::from_millis(200))
            .await
            .is_ok()
        {
            break;
        }
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(10), "no echo worker");
    }
    for _ in 0..50 {
        caller.request(&topic, &Echo { n: 0 }, timeout).await?;
        caller
            .publish_bytes(&ping, b"0".to_vec(), Retain::No)
            .await?;
        tokio::time::timeout(timeout, pongs.recv()).await?;
    }

    let mut rpc = Vec::with_capacity(count);
    let mut plain = Vec::with_capacity(count);
    for i in 0..count as u64 {
        let t = Instant::now();
        let r = caller.request(&topic, &Echo { n: i }, timeout).await?;
        rpc.push(t.elapsed().as_micros() as u64);
        anyhow::ensure!(r.n == i, "echo {} for {i}", r.n);

        let t = Instant::now();
        caller
            .publish_bytes(&ping, i.to_string().into_bytes(), Retain::No)
            .await?;
        tokio::time::timeout(timeout, pongs.recv()).await?;
        plain.push(t.elapsed().as_micros() as u64);
    }
    stop.cancel();
    println!(
        "{}",
        serde_json::json!({"request_reply": summary(rpc), "publish_subscribe": summary(plain)})
    );
    Ok(())
}
