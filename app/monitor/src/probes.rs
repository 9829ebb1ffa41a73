//! The periodic probes: TCP port, DNS name, HTTP(S) JSON endpoint, and the system target.
//! Each runs as its own task, one probe at a time, every probe bounded by its timeout, and
//! sends its [`Report`] to the worker's main loop.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use watchpost_config::monitor::{DnsTarget, HttpTarget, TcpTarget};
use watchpost_contract::monitor::Figure;

use crate::system::SystemReader;
use crate::{Outcome, Report};

fn figure(metric: &str, value: f64) -> Figure {
    Figure {
        metric: metric.into(),
        item: None,
        value,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

/// Runs `probe` every `interval` until shutdown, reporting each outcome as `target`'s.
async fn every<F, Fut>(
    target: String,
    interval: Duration,
    tx: mpsc::Sender<Report>,
    shutdown: CancellationToken,
    mut probe: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return,
            o = probe() => o,
        };
        if tx
            .send(Report {
                target: target.clone(),
                outcome,
            })
            .await
            .is_err()
        {
            return;
        }
    }
}

/// A TCP connection to the target's port: `connect_ms`.
pub async fn tcp(t: TcpTarget, tx: mpsc::Sender<Report>, shutdown: CancellationToken) {
    let timeout = Duration::from_millis(t.timeout_ms);
    let addr = format!("{}:{}", t.host, t.port);
    every(
        t.id.to_string(),
        Duration::from_millis(t.interval_ms),
        tx,
        shutdown,
        || {
            let addr = addr.clone();
            async move {
                let start = Instant::now();
                match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
                    Ok(Ok(_)) => Outcome::up(vec![figure("connect_ms", ms(start.elapsed()))]),
                    Ok(Err(e)) => Outcome::down(format!("cannot connect to {addr}: {e}")),
                    Err(_) => Outcome::down(format!(
                        "no connection to {addr} within {} ms",
                        timeout.as_millis()
                    )),
                }
            }
        },
    )
    .await
}

/// The name resolved through the system resolver: `resolve_ms` and `addresses`.
pub async fn dns(t: DnsTarget, tx: mpsc::Sender<Report>, shutdown: CancellationToken) {
    let timeout = Duration::from_millis(t.timeout_ms);
    let query = t.query.clone();
    every(
        t.id.to_string(),
        Duration::from_millis(t.interval_ms),
        tx,
        shutdown,
        || {
            let query = query.clone();
            async move {
                let start = Instant::now();
                let lookup = tokio::net::lookup_host((query.as_str(), 0));
                match tokio::time::timeout(timeout, lookup).await {
                    Ok(Ok(addrs)) => {
                        let n = addrs.count();
                        let figures = vec![
                            figure("resolve_ms", ms(start.elapsed())),
                            figure("addresses", n as f64),
                        ];
                        if n == 0 {
                            Outcome::down(format!("`{query}` resolves to no address"))
                                .with_figures(figures)
                        } else {
                            Outcome::up(figures)
                        }
                    }
                    Ok(Err(e)) => Outcome::down(format!("cannot resolve `{query}`: {e}")),
                    Err(_) => Outcome::down(format!(
                        "`{query}` not resolved within {} ms",
                        timeout.as_millis()
                    )),
                }
            }
        },
    )
    .await
}

/// What an HTTP probe learned from a body: figures (numbers, booleans as 0/1) and fields
/// (everything else), by configured name. A pointer that points at nothing gives neither.
pub fn pick_fields(
    body: &serde_json::Value,
    fields: &BTreeMap<watchpost_config::Ident, String>,
) -> (
    Vec<Figure>,
    BTreeMap<String, serde_json::Value>,
    Vec<String>,
) {
    let mut figures = Vec::new();
    let mut picked = BTreeMap::new();
    let mut missing = Vec::new();
    for (name, pointer) in fields {
        match body.pointer(pointer) {
            Some(serde_json::Value::Number(n)) => match n.as_f64() {
                Some(v) if v.is_finite() => figures.push(figure(name.as_str(), v)),
                _ => missing.push(name.to_string()),
            },
            Some(serde_json::Value::Bool(b)) => {
                figures.push(figure(name.as_str(), if *b { 1.0 } else { 0.0 }))
            }
            Some(serde_json::Value::Null) | None => missing.push(name.to_string()),
            Some(v) => {
                picked.insert(name.to_string(), v.clone());
            }
        }
    }
    (figures, picked, missing)
}

/// An HTTP(S) GET: `status_code`, `latency_ms`, the configured fields of the JSON body.
pub async fn http(t: HttpTarget, tx: mpsc::Sender<Report>, shutdown: CancellationToken) {
    let timeout = Duration::from_millis(t.timeout_ms);
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .danger_accept_invalid_certs(t.insecure_tls)
        .user_agent(concat!("watchpost-monitor/", env!("CARGO_PKG_VERSION")))
        .build();
    let client = match client {
        Ok(c) => c,
        Err(e) => {
            let _ = tx
                .send(Report {
                    target: t.id.to_string(),
                    outcome: Outcome::down(format!("cannot make an HTTP client: {e}")).fault(true),
                })
                .await;
            return;
        }
    };
    let t2 = t.clone();
    every(
        t.id.to_string(),
        Duration::from_millis(t.interval_ms),
        tx,
        shutdown,
        move || {
            let client = client.clone();
            let t = t2.clone();
            async move { http_once(&client, &t).await }
        },
    )
    .await
}

async fn http_once(client: &reqwest::Client, t: &HttpTarget) -> Outcome {
    let start = Instant::now();
    let resp = match client.get(&t.url).send().await {
        Ok(r) => r,
        Err(e) => {
            let what = if e.is_timeout() {
                format!("no answer within {} ms", t.timeout_ms)
            } else {
                // The source names the cause (refused, TLS, DNS).
                let mut s = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(inner) = src {
                    s = format!("{s}: {inner}");
                    src = inner.source();
                }
                s
            };
            return Outcome::down(format!("GET {}: {what}", t.url));
        }
    };
    let status = resp.status().as_u16();
    let body = resp.bytes().await;
    let latency = ms(start.elapsed());
    let mut figures = vec![
        figure("status_code", f64::from(status)),
        figure("latency_ms", latency),
    ];
    let status_ok = match t.expect_status {
        Some(s) => s == status,
        None => (200..300).contains(&status),
    };
    let mut fields = BTreeMap::new();
    let mut problem = None;
    match body {
        Ok(bytes) if !t.fields.is_empty() => match serde_json::from_slice(&bytes) {
            Ok(json) => {
                let (f, picked, missing) = pick_fields(&json, &t.fields);
                figures.extend(f);
                fields = picked;
                if !missing.is_empty() {
                    problem = Some(format!("no value at {}", missing.join(", ")));
                }
            }
            Err(e) => problem = Some(format!("the body is not JSON: {e}")),
        },
        Ok(_) => {}
        Err(e) => problem = Some(format!("reading the body: {e}")),
    }
    let mut outcome = if !status_ok {
        let expected = t
            .expect_status
            .map_or_else(|| "2xx".to_string(), |s| s.to_string());
        Outcome::down(format!("status {status}, expected {expected}")).with_figures(figures)
    } else {
        Outcome::up(figures)
    };
    outcome.fields = fields;
    if outcome.reason.is_none() {
        // Up with a body that lacks a configured field: up, and the reason says what lacks.
        outcome.note = problem;
    }
    outcome
}

/// The appliance's own figures every `interval` (the kernel files are read off the async
/// threads).
pub async fn system(interval: Duration, tx: mpsc::Sender<Report>, shutdown: CancellationToken) {
    let reader = std::sync::Arc::new(std::sync::Mutex::new(SystemReader::new()));
    every(
        watchpost_config::monitor::SYSTEM_TARGET.to_string(),
        interval,
        tx,
        shutdown,
        move || {
            let reader = reader.clone();
            async move {
                let r = tokio::task::spawn_blocking(move || {
                    reader
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .read_figures()
                })
                .await;
                match r {
                    Ok(figures) => Outcome::up(figures),
                    Err(e) => Outcome::down(format!("reading the system figures failed: {e}")),
                }
            }
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use watchpost_contract::monitor::TargetState;

    #[test]
    fn fields_are_picked_by_pointer() {
        let body = json!({"status": "healthy", "uptime_s": 12, "workers": [{"name": "hub",
            "restarts": 2}], "ok": true, "gone": null});
        let mut fields = BTreeMap::new();
        for (k, v) in [
            ("status", "/status"),
            ("uptime", "/uptime_s"),
            ("hub_restarts", "/workers/0/restarts"),
            ("ok", "/ok"),
            ("gone", "/gone"),
            ("absent", "/nope"),
        ] {
            fields.insert(k.parse().unwrap(), v.to_string());
        }
        let (figures, picked, missing) = pick_fields(&body, &fields);
        let names: Vec<(&str, f64)> = figures
            .iter()
            .map(|f| (f.metric.as_str(), f.value))
            .collect();
        assert_eq!(
            names,
            [("hub_restarts", 2.0), ("ok", 1.0), ("uptime", 12.0)]
        );
        assert_eq!(picked["status"], json!("healthy"));
        assert_eq!(missing, ["absent", "gone"]);
    }

    #[tokio::test]
    async fn tcp_reports_up_and_down() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let (tx, mut rx) = mpsc::channel(4);
        let stop = CancellationToken::new();
        let target = |port| TcpTarget {
            id: "t".parse().unwrap(),
            name: None,
            host: "127.0.0.1".into(),
            port,
            interval_ms: 100,
            timeout_ms: 1_000,
        };
        let task = tokio::spawn(tcp(target(port), tx.clone(), stop.clone()));
        let r = rx.recv().await.unwrap();
        assert_eq!(r.outcome.state, TargetState::Up, "{:?}", r.outcome.reason);
        assert!(r.outcome.figures.iter().any(|f| f.metric == "connect_ms"));
        drop(l);
        // A port nobody listens on any more: refused.
        let task2 = tokio::spawn(tcp(target(port), tx, stop.clone()));
        let r = loop {
            let r = rx.recv().await.unwrap();
            if r.outcome.state == TargetState::Down {
                break r;
            }
        };
        assert!(r.outcome.reason.unwrap().contains("cannot connect"));
        stop.cancel();
        let _ = tokio::join!(task, task2);
    }
}
