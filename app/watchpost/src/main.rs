//! `watchpost`: the appliance binary. Thin by design: parse the command line, load the
//! configuration, set up logging, call one `run`, and map its typed error to an exit code.

#![forbid(unsafe_code)]

mod update;
mod workers;

use std::path::{Path, PathBuf};
use std::process::ExitCode as ProcessExit;

use clap::{Parser, Subcommand};
use watchpost_runtime::{BuildInfo, ExitCode};

pub const BUILD: BuildInfo = BuildInfo {
    version: env!("CARGO_PKG_VERSION"),
    git_sha: env!("WATCHPOST_GIT_SHA"),
    target: env!("WATCHPOST_TARGET"),
};

#[derive(Debug, Parser)]
#[command(name = "watchpost", version, about = "Watchpost edge gateway firmware")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the appliance: the supervisor, which starts every enabled worker.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a configuration file and exit (0 when valid, 78 when not).
    CheckConfig { file: PathBuf },
    /// Print the built-in default configuration as TOML.
    PrintDefaultConfig,
    /// Print the OpenAPI 3.1 document of the REST API (as served at /api/v1/openapi.json).
    PrintOpenapi,
    /// Over-the-air updates through RAUC: status, install a bundle, mark the booted slot.
    Update {
        #[command(subcommand)]
        command: update::UpdateCommand,
    },
    /// Run one worker (started by the supervisor; not for direct use).
    Worker {
        name: String,
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn load_config(path: &Path) -> Result<watchpost_config::Config, ProcessExit> {
    watchpost_config::load(path).map_err(|e| {
        eprintln!("watchpost: {e}");
        ExitCode::Config.into()
    })
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, ProcessExit> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("watchpost: cannot start the async runtime: {e}");
            ExitCode::Failure.into()
        })
}

fn main() -> ProcessExit {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::PrintDefaultConfig => {
            print!("{}", watchpost_config::Config::default_toml());
            Ok(())
        }
        Command::PrintOpenapi => match watchpost_hub::openapi().to_pretty_json() {
            Ok(doc) => {
                println!("{doc}");
                Ok(())
            }
            Err(e) => {
                eprintln!("watchpost: cannot print the OpenAPI document: {e}");
                Err(ExitCode::Failure.into())
            }
        },
        Command::Run { config } => run_supervisor(&config),
        Command::Update { command } => update::run(command),
        Command::Worker { name, config } => workers::run_worker(&name, &config),
    };
    match result {
        Ok(()) => ProcessExit::SUCCESS,
        Err(code) => code,
    }
}

fn check_config(file: &Path) -> Result<(), ProcessExit> {
    let config = load_config(file)?;
    println!(
        "{}: OK (workers: {})",
        file.display(),
        config.enabled_workers().join(", ")
    );
    Ok(())
}

fn run_supervisor(path: &Path) -> Result<(), ProcessExit> {
    let config = load_config(path)?;
    watchpost_runtime::logging::init(
        config.system.log_format,
        &config.system.log_level,
        "supervisor",
    );
    BUILD.log_banner("watchpost");
    let rt = runtime(2)?;
    rt.block_on(async {
        let shutdown = watchpost_runtime::signals::shutdown_on_signals().map_err(|e| {
            tracing::error!(error = %e, "cannot install signal handlers");
            ProcessExit::from(ExitCode::Failure)
        })?;
        watchpost_supervisor::run(config, path, BUILD, shutdown)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "supervisor failed");
                eprintln!("watchpost: {e}");
                ProcessExit::from(e.exit_code())
            })
    })
}
