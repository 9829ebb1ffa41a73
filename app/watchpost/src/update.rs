//! `watchpost update status|install FILE|mark-good|mark-bad`: RAUC for installers with a
//! shell, with the same checks the hub makes before an install (docs/update.md).
//!
//! It talks to RAUC directly over the system bus (`DBUS_SYSTEM_BUS_ADDRESS` when set), so it
//! works when the hub does not. Exit codes: 0 done, 1 the install failed or RAUC refused a
//! mark, 65 the bundle was refused by the checks, 69 RAUC cannot be reached.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use futures::StreamExt;
use watchpost_runtime::ExitCode;
use watchpost_update::bundle::Keyring;
use watchpost_update::check::{self, InspectError};
use watchpost_update::dbus::DbusRauc;
use watchpost_update::{InstallArgs, MarkState, Rauc, RaucEvent, SlotRef};

use crate::{BUILD, ProcessExit, runtime};

/// Exit code of a bundle refused by the checks (EX_DATAERR).
const REFUSED: u8 = 65;

#[derive(Debug, Subcommand)]
pub enum UpdateCommand {
    /// RAUC's slots, the booted and the primary slot, the operation and the last error.
    Status,
    /// Check a bundle (frame, signer against the keyring, compatible, version) and install
    /// it, printing RAUC's progress.
    Install {
        file: PathBuf,
        /// Install a bundle older than the running version.
        #[arg(long)]
        force: bool,
        /// RAUC's keyring, for the signer check.
        #[arg(long, default_value = "/etc/rauc/ca.cert.pem")]
        keyring: PathBuf,
    },
    /// Mark the booted slot good.
    MarkGood,
    /// Mark the booted slot bad (the other slot boots next).
    MarkBad,
}

pub fn run(cmd: UpdateCommand) -> Result<(), ProcessExit> {
    let rt = runtime(1)?;
    rt.block_on(async {
        let rauc = DbusRauc::connect(None).await.map_err(|e| {
            eprintln!("watchpost update: {e}");
            ProcessExit::from(ExitCode::Unavailable)
        })?;
        match cmd {
            UpdateCommand::Status => status(&rauc).await,
            UpdateCommand::Install {
                file,
                force,
                keyring,
            } => install(&rauc, &file, force, &keyring).await,
            UpdateCommand::MarkGood => mark(&rauc, MarkState::Good).await,
            UpdateCommand::MarkBad => mark(&rauc, MarkState::Bad).await,
        }
    })
}

fn unavailable(e: impl std::fmt::Display) -> ProcessExit {
    eprintln!("watchpost update: {e}");
    ExitCode::Unavailable.into()
}

async fn status(rauc: &DbusRauc) -> Result<(), ProcessExit> {
    let slots = rauc.slot_status().await.map_err(unavailable)?;
    let booted = rauc.boot_slot().await.map_err(unavailable)?;
    let primary = rauc.primary().await.map_err(unavailable)?;
    let op = rauc.operation().await.map_err(unavailable)?;
    let last = rauc.last_error().await.map_err(unavailable)?;
    println!("running: watchpost {}", BUILD.version);
    println!("booted: {booted}   primary: {primary}   operation: {op}");
    if !last.is_empty() {
        println!("last error: {last}");
    }
    for s in slots {
        println!(
            "  {:<10} {:<2} {:<9} {:<5} {}",
            s.name,
            s.bootname.as_deref().unwrap_or("-"),
            s.state.as_deref().unwrap_or("-"),
            s.boot_status.as_deref().unwrap_or("-"),
            s.bundle_version.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

async fn install(
    rauc: &DbusRauc,
    file: &Path,
    force: bool,
    keyring: &Path,
) -> Result<(), ProcessExit> {
    let file = std::fs::canonicalize(file).map_err(|e| {
        eprintln!("watchpost update: {}: {e}", file.display());
        ProcessExit::from(ExitCode::Usage)
    })?;
    let keyring = std::fs::read(keyring).ok().map(|b| Keyring::from_pem(&b));
    let inspection = match check::inspect_bundle(rauc, &file, keyring.as_ref()).await {
        Ok(i) => i,
        Err(InspectError::Refused(r)) => {
            eprintln!("watchpost update: refused ({}): {r}", r.code());
            return Err(ProcessExit::from(REFUSED));
        }
        Err(InspectError::Rauc(e)) => return Err(unavailable(e)),
        Err(e @ InspectError::Read { .. }) => {
            eprintln!("watchpost update: {e}");
            return Err(ExitCode::Usage.into());
        }
    };
    let compatible = rauc.compatible().await.map_err(unavailable)?;
    if let Err(r) = check::admit(&inspection, &compatible, BUILD.version, force) {
        eprintln!("watchpost update: refused ({}): {r}", r.code());
        return Err(ProcessExit::from(REFUSED));
    }
    println!(
        "installing {} {} (signed by {})",
        inspection.compatible, inspection.version, inspection.signer
    );
    let mut events = rauc.events().await.map_err(unavailable)?;
    rauc.install_bundle(file, InstallArgs::default())
        .await
        .map_err(unavailable)?;
    let result = loop {
        match events.next().await {
            Some(RaucEvent::Progress(p)) => println!("{:>3} % {}", p.percent, p.message),
            Some(RaucEvent::Completed(r)) => break r,
            Some(_) => {}
            None => break -1,
        }
    };
    if result == 0 {
        let primary = rauc.primary().await.unwrap_or_default();
        println!("installed; {primary} boots next");
        Ok(())
    } else {
        let last = rauc.last_error().await.unwrap_or_default();
        eprintln!("watchpost update: the install failed: {last}");
        Err(ExitCode::Failure.into())
    }
}

async fn mark(rauc: &DbusRauc, state: MarkState) -> Result<(), ProcessExit> {
    match rauc.mark(state, SlotRef::Booted).await {
        Ok(m) => {
            println!("{}", m.message);
            Ok(())
        }
        Err(e) => {
            eprintln!("watchpost update: {e}");
            Err(ExitCode::Failure.into())
        }
    }
}
