//! `watchpost worker NAME`: maps a worker name to its crate's `run`. To add a worker, add one
//! arm to [`dispatch`] and the crate to Cargo.toml.

use std::path::Path;
use std::process::ExitCode as ProcessExit;
use std::sync::Arc;

use watchpost_config::Config;
use watchpost_runtime::proto::FatalKind;
use watchpost_runtime::{ExitCode, WorkerCtx};

use crate::BUILD;

/// Maps a worker's result to its exit code, telling the supervisor why first.
fn finish<E: std::fmt::Display>(
    ctx: &WorkerCtx,
    result: Result<(), E>,
    code: impl Fn(&E) -> ExitCode,
) -> ExitCode {
    match result {
        Ok(()) => ExitCode::Clean,
        Err(e) => {
            let c = code(&e);
            let kind = if c == ExitCode::Config {
                FatalKind::Config
            } else {
                FatalKind::Runtime
            };
            ctx.fatal(kind, e.to_string());
            c
        }
    }
}

async fn dispatch(name: &str, config: Config, ctx: Arc<WorkerCtx>) -> ExitCode {
    match name {
        "broker" => finish(
            &ctx,
            watchpost_broker::run(config, ctx.clone()).await,
            |e| e.exit_code(),
        ),
        "capture" => finish(
            &ctx,
            watchpost_capture::run(config, ctx.clone()).await,
            |e| e.exit_code(),
        ),
        "rtsp" => finish(&ctx, watchpost_rtsp::run(config, ctx.clone()).await, |e| {
            e.exit_code()
        }),
        "fieldbus" => finish(
            &ctx,
            watchpost_fieldbus::run(config, ctx.clone()).await,
            |e| e.exit_code(),
        ),
        "bridge" => finish(
            &ctx,
            watchpost_bridge::run(config, ctx.clone()).await,
            |e| e.exit_code(),
        ),
        "monitor" => finish(
            &ctx,
            watchpost_monitor::run(config, ctx.clone()).await,
            |e| e.exit_code(),
        ),
        "hub" => finish(
            &ctx,
            watchpost_hub::run(config, ctx.clone(), BUILD.version).await,
            |e| e.exit_code(),
        ),
        other => {
            ctx.fatal(
                FatalKind::Config,
                format!("worker `{other}` is not available in this build"),
            );
            ExitCode::Config
        }
    }
}

pub fn run_worker(name: &str, path: &Path) -> Result<(), ProcessExit> {
    if !watchpost_config::WORKERS.contains(&name) {
        eprintln!(
            "watchpost: unknown worker `{name}` (known: {})",
            watchpost_config::WORKERS.join(", ")
        );
        return Err(ExitCode::Usage.into());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(format!("wp-{name}"))
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("watchpost: cannot start the async runtime: {e}");
            ProcessExit::from(ExitCode::Failure)
        })?;
    let code = rt.block_on(async {
        let shutdown = match watchpost_runtime::signals::shutdown_on_signals() {
            Ok(t) => t,
            Err(e) => {
                eprintln!("watchpost: cannot install signal handlers: {e}");
                return ExitCode::Failure;
            }
        };
        let ctx = match WorkerCtx::from_env(name, shutdown) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                eprintln!("watchpost worker {name}: {e}");
                return ExitCode::Failure;
            }
        };
        let config = match watchpost_config::load(path) {
            Ok(c) => c,
            Err(e) => {
                ctx.fatal(FatalKind::Config, e.to_string());
                eprintln!("watchpost worker {name}: {e}");
                return ExitCode::Config;
            }
        };
        watchpost_runtime::logging::init(
            config.system.log_format,
            &config.system.log_level,
            &format!("worker:{name}"),
        );
        BUILD.log_banner(&format!("watchpost worker {name}"));
        dispatch(name, config, ctx).await
    });
    // Do not wait for blocking tasks (a stuck device read) past the grace period.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    match code {
        ExitCode::Clean => Ok(()),
        c => Err(c.into()),
    }
}
