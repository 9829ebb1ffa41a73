//! `watchpost-capture-standalone --config FILE`: the capture worker without a supervisor, for
//! crash tests (built with the `test-support` feature only).

use std::process::ExitCode;
use std::sync::Arc;

use watchpost_runtime::{CancellationToken, WorkerCtx};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args
        .iter()
        .position(|a| a == "--config")
        .and_then(|i| args.get(i + 1))
    else {
        eprintln!("usage: watchpost-capture-standalone --config FILE");
        return ExitCode::from(64);
    };
    let config = match watchpost_config::load(std::path::Path::new(path)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(78);
        }
    };
    tracing_subscriber_init();
    let Ok(rt) = tokio::runtime::Runtime::new() else {
        return ExitCode::from(1);
    };
    rt.block_on(async move {
        let token = CancellationToken::new();
        let t = token.clone();
        tokio::spawn(async move {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => return,
                };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            t.cancel();
        });
        let ctx = Arc::new(WorkerCtx::standalone("capture", token));
        match watchpost_capture::run(config, ctx).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("capture: {e}");
                ExitCode::from(e.exit_code().code() as u8)
            }
        }
    })
}

fn tracing_subscriber_init() {
    // Logs go to stderr through the runtime's logging setup when available; plain otherwise.
    watchpost_runtime::logging::init(
        watchpost_runtime::logging::LogFormat::Text,
        "info",
        "capture",
    );
}
