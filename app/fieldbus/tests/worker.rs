//! The worker's `run` with a standalone context (no supervisor, no broker): Modbus TCP in and
//! out, a clean stop on the shutdown token that writes the last measurements, and a second run
//! on the same data directory that restores them without the command registers. The server
//! binds port 0; the test connects to the address the worker reports when it is ready.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use watchpost_config::Config;
use watchpost_fieldbus::FieldbusError;
use watchpost_modbus::{Request, tcp};
use watchpost_runtime::{CancellationToken, WorkerCtx};

fn config(data_dir: &std::path::Path) -> Config {
    let text = format!(
        r#"
        [system]
        data_dir = "{}"
        [broker]
        listen = "127.0.0.1:1"
        [fieldbus]
        enabled = true
        [fieldbus.neasmart]
        tcp_listen = "127.0.0.1:0"
        persist_interval_ms = 100000
        "#,
        data_dir.display()
    );
    watchpost_config::from_str_with_env(&text, std::path::Path::new("test.toml"), &[]).unwrap()
}

async fn call(s: &mut TcpStream, tid: u16, req: &Request) -> Vec<u8> {
    s.write_all(&tcp::encode_request(tid, 240, req))
        .await
        .unwrap();
    let mut head = [0u8; 7];
    s.read_exact(&mut head).await.unwrap();
    let len = usize::from(u16::from_be_bytes([head[4], head[5]]));
    let mut pdu = vec![0u8; len - 1];
    s.read_exact(&mut pdu).await.unwrap();
    assert_eq!(u16::from_be_bytes([head[0], head[1]]), tid);
    pdu
}

/// The worker running with a standalone context, and a connection to the Modbus TCP address
/// it reported at readiness.
struct Running {
    token: CancellationToken,
    worker: JoinHandle<Result<(), FieldbusError>>,
    conn: TcpStream,
}

async fn start(data_dir: &std::path::Path) -> Running {
    let token = CancellationToken::new();
    let ctx = Arc::new(WorkerCtx::standalone("fieldbus", token.clone()));
    let mut worker = tokio::spawn(watchpost_fieldbus::run(config(data_dir), ctx.clone()));
    let listeners = tokio::select! {
        l = ctx.ready_listeners() => l,
        end = &mut worker => panic!("the worker ended before it was ready: {end:?}"),
    };
    let addr = listeners["modbus_tcp"];
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    let conn = TcpStream::connect(addr).await.unwrap();
    Running {
        token,
        worker,
        conn,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_stops_cleanly_and_restores_measurements() {
    let dir = tempfile::tempdir().unwrap();

    let Running {
        token,
        worker,
        conn: mut s,
    } = start(dir.path()).await;
    // Status from the base: zone 1 state, setpoint, temperature; an outside temperature.
    let w = Request::WriteMultipleRegisters {
        address: 100,
        values: vec![1, 0x0C65, 0x07C6],
    };
    assert_eq!(call(&mut s, 1, &w).await, vec![16, 0, 100, 0, 3]);
    let w = Request::WriteSingleRegister {
        address: 7,
        value: 0x860C,
    };
    call(&mut s, 2, &w).await;
    let r = Request::ReadHoldingRegisters {
        address: 100,
        count: 3,
    };
    assert_eq!(
        call(&mut s, 3, &r).await,
        vec![3, 6, 0, 1, 0x0C, 0x65, 0x07, 0xC6]
    );
    drop(s);
    // The persist interval is long: the measurements reach the disk because of the clean stop.
    token.cancel();
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("the worker stops within the grace period")
        .unwrap()
        .unwrap();

    let Running {
        token,
        worker,
        conn: mut s,
    } = start(dir.path()).await;
    // Temperature back, state and setpoint (command registers) not.
    assert_eq!(
        call(&mut s, 4, &r).await,
        vec![3, 6, 0, 0, 0, 0, 0x07, 0xC6]
    );
    let r7 = Request::ReadHoldingRegisters {
        address: 7,
        count: 1,
    };
    assert_eq!(call(&mut s, 5, &r7).await, vec![3, 2, 0x86, 0x0C]);
    drop(s);
    token.cancel();
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
