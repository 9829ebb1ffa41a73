//! Runs the fieldbus worker alone, without a supervisor: `fieldbus_worker CONFIG`.
//!
//! The benchmark (`make bench-fieldbus`) uses it so that it measures exactly
//! `watchpost_fieldbus::run` on the same runtime shape as `watchpost worker fieldbus` (two
//! worker threads), without building every other worker of the appliance. Once ready it prints
//! the listeners it bound as one JSON line (`{"modbus_tcp": "127.0.0.1:40123"}`), so a config
//! can ask for port 0. Stops on SIGTERM or SIGINT.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::sync::Arc;

use watchpost_runtime::WorkerCtx;

fn main() -> std::process::ExitCode {
    let Some(path) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: fieldbus_worker CONFIG");
        return std::process::ExitCode::from(64);
    };
    let config = match watchpost_config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(78);
        }
    };
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    else {
        return std::process::ExitCode::from(1);
    };
    rt.block_on(async move {
        let Ok(shutdown) = watchpost_runtime::signals::shutdown_on_signals() else {
            return std::process::ExitCode::from(1);
        };
        let ctx = Arc::new(WorkerCtx::standalone("fieldbus", shutdown));
        let report = ctx.clone();
        tokio::spawn(async move {
            let listeners = report.ready_listeners().await;
            println!("{}", serde_json::to_string(&listeners).unwrap_or_default());
        });
        match watchpost_fieldbus::run(config, ctx).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("fieldbus: {e}");
                std::process::ExitCode::from(e.exit_code() as u8)
            }
        }
    })
}
