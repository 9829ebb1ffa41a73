//! MQTT throughput client for `make bench`: one publisher and one subscriber on `bench/#`.
//!
//! Usage: `mqtt_bench HOST:PORT QOS COUNT PAYLOAD_BYTES`. Prints one JSON line with the
//! publisher's msgs/s and how many messages the subscriber received. For QoS 0 a final QoS 1
//! publish is the completion barrier.

use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() == 5,
        "usage: mqtt_bench HOST:PORT QOS COUNT PAYLOAD_BYTES"
    );
    let (host, port) = args[1]
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("HOST:PORT"))?;
    let port: u16 = port.parse()?;
    let qos = match args[2].as_str() {
        "0" => QoS::AtMostOnce,
        "1" => QoS::AtLeastOnce,
        q => anyhow::bail!("qos {q} not supported"),
    };
    let count: usize = args[3].parse()?;
    let payload = vec![b'x'; args[4].parse()?];

    let mut sub_opts = MqttOptions::new(format!("bench-sub-{}", std::process::id()), host, port);
    sub_opts.set_keep_alive(Duration::from_secs(30));
    sub_opts.set_max_packet_size(1 << 20, 1 << 20);
    let (sub, mut sub_loop) = AsyncClient::new(sub_opts, 1000);
    sub.subscribe("bench/#", qos).await?;
    // Wait for the SUBACK before publishing.
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = sub_loop.poll().await? {
            break;
        }
    }
    let receiver = tokio::spawn(async move {
        let mut got = 0usize;
        let mut done = false;
        while !done {
            match tokio::time::timeout(Duration::from_secs(10), sub_loop.poll()).await {
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                    if p.topic == "bench/end" {
                        done = true;
                    } else {
                        got += 1;
                    }
                }
                Ok(Ok(_)) => {}
                _ => break,
            }
        }
        got
    });

    let mut pub_opts = MqttOptions::new(format!("bench-pub-{}", std::process::id()), host, port);
    pub_opts.set_keep_alive(Duration::from_secs(30));
    pub_opts.set_inflight(100);
    pub_opts.set_max_packet_size(1 << 20, 1 << 20);
    let (publisher, mut pub_loop) = AsyncClient::new(pub_opts, 1000);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut done_tx = Some(done_tx);
        let mut acked = 0usize;
        loop {
            match pub_loop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acked += 1;
                    // QoS 1: every message plus the end marker; QoS 0: only the end marker.
                    let want = if qos == QoS::AtLeastOnce {
                        count + 1
                    } else {
                        1
                    };
                    if acked >= want
                        && let Some(tx) = done_tx.take()
                    {
                        let _ = tx.send(());
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    let start = Instant::now();
    for i in 0..count {
        publisher
            .publish(format!("bench/{}", i % 16), qos, false, payload.clone())
            .await?;
    }
    publisher
        .publish("bench/end", QoS::AtLeastOnce, false, "end")
        .await?;
    tokio::time::timeout(Duration::from_secs(120), done_rx).await??;
    let elapsed = start.elapsed();
    let received = receiver.await?;
    println!(
        "{{\"qos\": {}, \"count\": {count}, \"seconds\": {:.3}, \"msgs_per_s\": {:.0}, \"received\": {received}}}",
        args[2],
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
