//! `/system`: version, uptime, the workers as the supervisor sees them, the board (status LED,
//! watchdog, button), the data directory's disk and how much the appliance's data takes. The
//! worker and board tables are shared with the dashboard. Recent logs are the latest warnings
//! and errors of every worker and the supervisor, as the supervisor keeps them (its snapshot's
//! `recent_logs`); everything else is in the journal (`journalctl -u watchpost`).

use std::path::{Path, PathBuf};

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use watchpost_runtime::proto::{BoardView, LogLine, WorkerState, WorkerStatus};

use crate::pages::fmt;
use crate::pages::layout::{self, PageCtx};
use crate::state::HubState;

/// The supervisor's view, when it answered.
#[derive(Debug, Clone, Default)]
pub struct Supervised {
    pub uptime_s: u64,
    pub workers: Vec<WorkerStatus>,
    pub board: Option<BoardView>,
    /// Warnings and errors, oldest first.
    pub logs: Vec<LogLine>,
}

/// The data directory's file system and contents.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Disk {
    pub path: PathBuf,
    /// Size and free space of the file system, when `statvfs` answered.
    pub total_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
    /// Sum of the sizes of the files under the data directory.
    pub data_bytes: u64,
}

#[derive(Debug, Clone, Default)]
pub struct SystemData {
    pub version: String,
    pub supervised: Option<Supervised>,
    pub disk: Disk,
    pub bus_connected: bool,
}

pub async fn supervised(state: &HubState) -> Option<Supervised> {
    state.snapshot().await.ok().map(|s| Supervised {
        uptime_s: s.uptime_ms / 1000,
        workers: s.workers,
        board: s.board,
        logs: s.recent_logs,
    })
}

/// Sums file sizes under `dir` (not following symlinks), at most `max_entries` entries, so a
/// huge recording tree cannot stall the page.
pub fn data_usage(dir: &Path, max_entries: usize) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = 0usize;
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in rd.flatten() {
            seen += 1;
            if seen > max_entries {
                return total;
            }
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}

/// The data directory's disk and usage (blocking: run off the async threads).
// `fsblkcnt_t` and `c_ulong` are 32 bits on armhf, 64 here.
#[allow(clippy::unnecessary_cast)]
pub fn disk(dir: &Path) -> Disk {
    let vfs = nix::sys::statvfs::statvfs(dir).ok();
    let frag = |v: &nix::sys::statvfs::Statvfs| v.fragment_size() as u64;
    Disk {
        path: dir.to_path_buf(),
        total_bytes: vfs.as_ref().map(|v| v.blocks() as u64 * frag(v)),
        free_bytes: vfs.as_ref().map(|v| v.blocks_available() as u64 * frag(v)),
        data_bytes: data_usage(dir, 100_000),
    }
}

pub async fn disk_of(state: &HubState) -> Disk {
    let dir = state.config.system.data_dir.clone();
    tokio::task::spawn_blocking(move || disk(&dir))
        .await
        .unwrap_or_default()
}

pub async fn gather(state: &HubState) -> SystemData {
    SystemData {
        version: state.version.to_string(),
        supervised: supervised(state).await,
        disk: disk_of(state).await,
        bus_connected: state.bus.is_connected(),
    }
}

fn state_class(s: WorkerState) -> &'static str {
    match s {
        WorkerState::Running => "state ok",
        WorkerState::Failed => "state bad",
        WorkerState::Starting | WorkerState::Backoff | WorkerState::Stopped => "state warn",
    }
}

/// The workers table; cells update from `/live`.
pub fn workers_table(sup: Option<&Supervised>) -> Markup {
    html! {
        @match sup {
            None => p class="muted" { "The supervisor did not answer; worker health is unknown." },
            Some(s) => (layout::live_scroll_table(
                "Workers and their health",
                html! {
                    th scope="col" { "Worker" }
                    th scope="col" { "State" }
                    th scope="col" class="num" { "Restarts" }
                    th scope="col" { "Status" }
                },
                html! {
                    @for w in &s.workers {
                        tr data-worker=(w.name) {
                            th scope="row" { (w.name) @if w.essential { span class="muted" { " (essential)" } } }
                            td { span class=(state_class(w.state)) data-field="state" { (w.state.as_str()) } }
                            td class="num" data-field="restarts" { (w.restarts) }
                            td data-field="status" { (w.status_text.as_deref().or(w.last_error.as_deref()).unwrap_or("–")) }
                        }
                    }
                },
            )),
        }
    }
}

/// The board: status LED, watchdog, button.
pub fn board(sup: Option<&Supervised>) -> Markup {
    html! {
        @match sup.and_then(|s| s.board.as_ref()) {
            None => p class="muted" { "No board information." },
            Some(b) => dl class="kv" data-system {
                dt { "Board" } dd { (b.title) " (" (b.io) ")" }
                dt { "Status LED" } dd data-field="led" { (b.led.as_deref().unwrap_or("none")) }
                dt { "Watchdog" } dd { (b.watchdog.as_deref().unwrap_or("none")) }
                @if let Some(e) = &b.error { dt { "Board I/O" } dd class="bad" { (e) } }
            },
        }
    }
}

/// Version, uptime, disk.
pub fn summary(version: &str, sup: Option<&Supervised>, disk: &Disk) -> Markup {
    html! {
        dl class="kv" data-system {
            dt { "Version" } dd { (version) }
            dt { "Uptime" } dd data-field="uptime" { (sup.map_or("–".into(), |s| fmt::duration_s(s.uptime_s))) }
            dt { "Data directory" } dd { (disk.path.display()) }
            dt { "Disk" } dd {
                @match (disk.total_bytes, disk.free_bytes) {
                    (Some(t), Some(f)) => { (fmt::bytes(f)) " free of " (fmt::bytes(t)) },
                    _ => "unknown",
                }
            }
            dt { "Appliance data" } dd { (fmt::bytes(disk.data_bytes)) }
        }
    }
}

pub fn render(data: &SystemData) -> Markup {
    let sup = data.supervised.as_ref();
    html! {
        div class="grid" {
            section class="card" aria-labelledby="sys-h" {
                h2 id="sys-h" { "Appliance" }
                (summary(&data.version, sup, &data.disk))
                p { "Internal bus: " (if data.bus_connected { "connected" } else { "not connected" }) }
            }
            section class="card" aria-labelledby="board-h" {
                h2 id="board-h" { "Board" }
                (board(sup))
            }
        }
        section class="card" aria-labelledby="w-h" {
            h2 id="w-h" { "Workers" }
            (workers_table(sup))
        }
        section class="card" aria-labelledby="log-h" {
            h2 id="log-h" { "Recent warnings and errors" }
            (logs_table(sup.map_or(&[][..], |s| &s.logs[..])))
            p.hint { "Everything else is in the system journal: " code { "journalctl -u watchpost" } "." }
        }
    }
}

/// The newest 50 lines first.
pub fn logs_table(lines: &[LogLine]) -> Markup {
    html! {
        @if lines.is_empty() {
            p { "None since the appliance started." }
        } @else {
            div class="scroll" tabindex="0" role="region" aria-label="Recent warnings and errors" {
                table {
                    thead { tr { th scope="col" { "Time (UTC)" } th scope="col" { "Level" } th scope="col" { "Where" } th scope="col" { "Message" } } }
                    tbody {
                        @for l in lines.iter().rev().take(50) {
                            tr {
                                td { (fmt::time_ms(i64::try_from(l.ts_ms).unwrap_or(i64::MAX))) }
                                td { (l.level) }
                                td { (l.process) }
                                td { (l.message) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /system`.
pub async fn get(State(state): State<HubState>, ctx: PageCtx) -> Response {
    let data = gather(&state).await;
    layout::live_page("System", &ctx, render(&data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_without_a_supervisor_and_measures_a_directory() {
        let h = render(&SystemData::default()).into_string();
        assert!(h.contains("did not answer") && h.contains("journalctl"));
        let sup = Supervised {
            uptime_s: 5,
            workers: vec![],
            board: None,
            logs: vec![LogLine {
                ts_ms: 1_795_000_000_000,
                level: "WARN".into(),
                process: "fieldbus".into(),
                target: "watchpost_fieldbus".into(),
                message: "serial port /dev/ttyUSB0: <gone>".into(),
            }],
        };
        let h = render(&SystemData {
            supervised: Some(sup),
            ..SystemData::default()
        })
        .into_string();
        assert!(h.contains("serial port /dev/ttyUSB0: &lt;gone&gt;") && h.contains("fieldbus"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), [0u8; 100]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b"), [0u8; 23]).unwrap();
        let d = disk(dir.path());
        assert_eq!(d.data_bytes, 123);
        assert!(d.total_bytes.unwrap() >= d.free_bytes.unwrap());
    }
}
