//! The appliance's own figures (target `system`): CPU, memory, load, disk use per mount,
//! temperatures of the thermal zones, uptime, SD/eMMC wear, interface throughput and errors.
//!
//! Design: every kernel file has a pure parser here (text in, numbers out, unit-tested); a
//! [`SystemReader`] reads them under a root directory (`/` on the appliance, a fixture tree in
//! tests) and keeps the previous CPU and interface counters to turn them into rates. A file
//! the kernel does not offer (no thermal zone, no eMMC) gives no figure, not an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use watchpost_contract::monitor::Figure;

/// CPU time counters of `/proc/stat`'s `cpu` line, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    pub busy: u64,
    pub total: u64,
}

/// The aggregate `cpu` line of `/proc/stat`.
pub fn parse_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 4 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest time is inside user already).
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some(CpuTimes {
        busy: total.saturating_sub(idle),
        total,
    })
}

/// CPU use between two readings, in percent.
pub fn cpu_percent(prev: CpuTimes, now: CpuTimes) -> Option<f64> {
    let total = now.total.checked_sub(prev.total)?;
    let busy = now.busy.checked_sub(prev.busy)?;
    (total > 0).then(|| busy as f64 * 100.0 / total as f64)
}

/// `/proc/meminfo`: (total, available) in bytes.
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
        Some(kib * 1024)
    };
    Some((field("MemTotal:")?, field("MemAvailable:")?))
}

/// `/proc/loadavg`: the 1, 5 and 15 minute load averages.
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_whitespace().map(|x| x.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// `/proc/uptime`: seconds since boot.
pub fn parse_uptime(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// File systems whose use is worth reporting (not proc, sysfs, tmpfs, cgroups…).
const DISK_FS: &[&str] = &[
    "ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "vfat", "exfat", "overlay", "squashfs", "zfs",
    "ntfs3", "fuseblk",
];

/// The mount points of `/proc/mounts` on disk file systems, each once, in order.
pub fn parse_mounts(text: &str) -> Vec<String> {
    let mut seen = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(_dev), Some(mount), Some(fs)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        // Octal escapes of /proc/mounts (`\040` for a space).
        let mount = unescape_mount(mount);
        // Bind mounts under the kernel's and the runtime's trees repeat a disk shown already.
        let virtual_tree = ["/proc/", "/sys/", "/dev/", "/run/"]
            .iter()
            .any(|p| mount.starts_with(p));
        if DISK_FS.contains(&fs) && !virtual_tree && !seen.contains(&mount) {
            seen.push(mount);
        }
    }
    seen
}

fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// eMMC `life_time`: two hex bytes (type A and type B), each 0x01 = 0–10 % of the rated
/// erase cycles used … 0x0A = 90–100 %, 0x0B = exceeded. The upper bound in percent, the worse
/// of the two, or `None` when the card does not say (0x00).
pub fn parse_life_time(text: &str) -> Option<f64> {
    text.split_whitespace()
        .filter_map(|x| u8::from_str_radix(x.trim_start_matches("0x"), 16).ok())
        .filter(|v| (1..=0x0b).contains(v))
        .map(|v| f64::from(v) * 10.0)
        .reduce(f64::max)
}

/// eMMC `pre_eol_info`: 1 normal, 2 warning (80 % of the reserved blocks used), 3 urgent.
pub fn parse_pre_eol(text: &str) -> Option<f64> {
    let v = u8::from_str_radix(text.trim().trim_start_matches("0x"), 16).ok()?;
    (1..=3).contains(&v).then_some(f64::from(v))
}

/// One interface's counters of `/proc/net/dev`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IfCounters {
    pub rx_bytes: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// `/proc/net/dev`: every interface but `lo`.
pub fn parse_net_dev(text: &str) -> BTreeMap<String, IfCounters> {
    let mut m = BTreeMap::new();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let v: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() < 12 {
            continue;
        }
        m.insert(
            name.to_string(),
            IfCounters {
                rx_bytes: v[0],
                rx_errors: v[2],
                rx_dropped: v[3],
                tx_bytes: v[8],
                tx_errors: v[10],
                tx_dropped: v[11],
            },
        );
    }
    m
}

fn figure(metric: &str, item: Option<&str>, value: f64) -> Option<Figure> {
    value.is_finite().then(|| Figure {
        metric: metric.into(),
        item: item.map(str::to_string),
        value,
    })
}

/// Reads the system figures under a root directory, keeping what rates need.
#[derive(Debug)]
pub struct SystemReader {
    root: PathBuf,
    cpu: Option<CpuTimes>,
    net: Option<(Instant, BTreeMap<String, IfCounters>)>,
    /// Use of the mounts is read from the real file systems only under `/`.
    statvfs: bool,
}

impl SystemReader {
    /// The appliance's own kernel files.
    pub fn new() -> Self {
        Self::with_root("/", true)
    }

    /// Files under `root` (a fixture tree); `statvfs` reads the mounts' use from the real
    /// file systems.
    pub fn with_root(root: impl Into<PathBuf>, statvfs: bool) -> Self {
        Self {
            root: root.into(),
            cpu: None,
            net: None,
            statvfs,
        }
    }

    fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(rel)).ok()
    }

    fn glob(&self, dir: &str, prefix: &str) -> Vec<(String, PathBuf)> {
        let Ok(rd) = std::fs::read_dir(self.root.join(dir)) else {
            return Vec::new();
        };
        let mut v: Vec<(String, PathBuf)> = rd
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with(prefix).then(|| (name, e.path()))
            })
            .collect();
        v.sort();
        v
    }

    /// Every figure the kernel offers now.
    pub fn read_figures(&mut self) -> Vec<Figure> {
        let mut f: Vec<Option<Figure>> = Vec::new();
        if let Some(now) = self.read("proc/stat").as_deref().and_then(parse_stat) {
            if let Some(p) = self.cpu.and_then(|prev| cpu_percent(prev, now)) {
                f.push(figure("cpu_percent", None, p));
            }
            self.cpu = Some(now);
        }
        if let Some((total, avail)) = self.read("proc/meminfo").as_deref().and_then(parse_meminfo)
            && total > 0
        {
            f.push(figure("memory_total_bytes", None, total as f64));
            f.push(figure("memory_available_bytes", None, avail as f64));
            let used = total.saturating_sub(avail) as f64 * 100.0 / total as f64;
            f.push(figure("memory_used_percent", None, used));
        }
        if let Some([l1, l5, l15]) = self.read("proc/loadavg").as_deref().and_then(parse_loadavg) {
            f.push(figure("load1", None, l1));
            f.push(figure("load5", None, l5));
            f.push(figure("load15", None, l15));
        }
        if let Some(up) = self.read("proc/uptime").as_deref().and_then(parse_uptime) {
            f.push(figure("uptime_seconds", None, up));
        }
        if self.statvfs
            && let Some(mounts) = self.read("proc/mounts")
        {
            for m in parse_mounts(&mounts) {
                if let Some((used_pct, free)) = disk_use(Path::new(&m)) {
                    f.push(figure("disk_used_percent", Some(&m), used_pct));
                    f.push(figure("disk_free_bytes", Some(&m), free));
                }
            }
        }
        for (zone, path) in self.glob("sys/class/thermal", "thermal_zone") {
            let Some(milli) = std::fs::read_to_string(path.join("temp"))
                .ok()
                .and_then(|t| t.trim().parse::<f64>().ok())
            else {
                continue;
            };
            let kind = std::fs::read_to_string(path.join("type"))
                .map(|t| t.trim().to_string())
                .unwrap_or_default();
            let item = if kind.is_empty() {
                zone
            } else {
                format!("{zone}:{kind}")
            };
            f.push(figure("temperature_celsius", Some(&item), milli / 1000.0));
        }
        for (dev, path) in self.glob("sys/block", "mmcblk") {
            if dev.contains("boot") || dev.contains("rpmb") || dev.contains('p') {
                continue;
            }
            let device = path.join("device");
            if let Some(v) = std::fs::read_to_string(device.join("life_time"))
                .ok()
                .as_deref()
                .and_then(parse_life_time)
            {
                f.push(figure("card_life_used_percent", Some(&dev), v));
            }
            if let Some(v) = std::fs::read_to_string(device.join("pre_eol_info"))
                .ok()
                .as_deref()
                .and_then(parse_pre_eol)
            {
                f.push(figure("card_pre_eol", Some(&dev), v));
            }
        }
        if let Some(text) = self.read("proc/net/dev") {
            let now = Instant::now();
            let counters = parse_net_dev(&text);
            if let Some((then, prev)) = &self.net {
                let dt = now.duration_since(*then).as_secs_f64();
                for (name, c) in &counters {
                    let Some(p) = prev.get(name) else { continue };
                    if dt > 0.0 {
                        let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / dt;
                        f.push(figure(
                            "net_rx_bytes_per_second",
                            Some(name),
                            rate(c.rx_bytes, p.rx_bytes),
                        ));
                        f.push(figure(
                            "net_tx_bytes_per_second",
                            Some(name),
                            rate(c.tx_bytes, p.tx_bytes),
                        ));
                    }
                }
            }
            for (name, c) in &counters {
                f.push(figure("net_rx_errors", Some(name), c.rx_errors as f64));
                f.push(figure("net_tx_errors", Some(name), c.tx_errors as f64));
                f.push(figure("net_rx_dropped", Some(name), c.rx_dropped as f64));
                f.push(figure("net_tx_dropped", Some(name), c.tx_dropped as f64));
            }
            self.net = Some((now, counters));
        }
        f.into_iter().flatten().collect()
    }
}

impl Default for SystemReader {
    fn default() -> Self {
        Self::new()
    }
}

/// (used percent, free bytes for unprivileged users) of the file system at `mount`.
fn disk_use(mount: &Path) -> Option<(f64, f64)> {
    let s = nix::sys::statvfs::statvfs(mount).ok()?;
    let frsize = s.fragment_size() as f64;
    let total = s.blocks() as f64 * frsize;
    if total <= 0.0 {
        return None;
    }
    let free = s.blocks_free() as f64 * frsize;
    let avail = s.blocks_available() as f64 * frsize;
    // As df: used / (used + available to users).
    let used = total - free;
    let denom = used + avail;
    let pct = if denom > 0.0 {
        used * 100.0 / denom
    } else {
        0.0
    };
    Some((pct, avail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse() {
        let stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n";
        let a = parse_stat(stat).unwrap();
        assert_eq!(
            a,
            CpuTimes {
                busy: 150,
                total: 1000
            }
        );
        let b = parse_stat("cpu  200 0 100 850 50 0 0 0 0 0\n").unwrap();
        assert_eq!(cpu_percent(a, b), Some(75.0));
        assert_eq!(
            parse_meminfo("MemTotal:  1000 kB\nMemFree: 10 kB\nMemAvailable:   250 kB\n"),
            Some((1_024_000, 256_000))
        );
        assert_eq!(
            parse_loadavg("0.50 1.25 2.00 1/100 42\n"),
            Some([0.5, 1.25, 2.0])
        );
        assert_eq!(parse_uptime("123.45 400.00\n"), Some(123.45));
        let mounts = "proc /proc proc rw 0 0\n/dev/root / ext4 rw 0 0\ntmpfs /run tmpfs rw 0 0\n\
                      /dev/mmcblk0p4 /data\\040card ext4 rw 0 0\n/dev/root / ext4 rw 0 0\n\
                      overlay /run/netns overlay rw 0 0\n";
        assert_eq!(parse_mounts(mounts), ["/", "/data card"]);
    }

    #[test]
    fn card_wear_parses() {
        assert_eq!(parse_life_time("0x01 0x03\n"), Some(30.0));
        assert_eq!(parse_life_time("0x00 0x00\n"), None);
        assert_eq!(parse_life_time("0x0b 0x02"), Some(110.0));
        assert_eq!(parse_pre_eol("0x01\n"), Some(1.0));
        assert_eq!(parse_pre_eol("0x00\n"), None);
    }

    #[test]
    fn net_dev_parses_without_lo() {
        let text = "Inter-|   Receive    |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed\n    lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n  eth0: 5000 10 2 3 0 0 0 0 7000 12 4 5 0 0 0 0\n";
        let m = parse_net_dev(text);
        assert_eq!(m.len(), 1);
        assert_eq!(
            m["eth0"],
            IfCounters {
                rx_bytes: 5000,
                rx_errors: 2,
                rx_dropped: 3,
                tx_bytes: 7000,
                tx_errors: 4,
                tx_dropped: 5,
            }
        );
    }

    #[test]
    fn a_fixture_tree_gives_its_figures_and_nothing_missing_fails() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write = |rel: &str, text: &str| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write("proc/stat", "cpu  100 0 50 800 50 0 0 0\n");
        write("proc/uptime", "42.5 10\n");
        write("sys/class/thermal/thermal_zone0/temp", "48500\n");
        write("sys/class/thermal/thermal_zone0/type", "cpu-thermal\n");
        write("sys/block/mmcblk0/device/life_time", "0x02 0x01\n");
        write("sys/block/mmcblk0/device/pre_eol_info", "0x01\n");
        let mut r = SystemReader::with_root(root, false);
        let f = r.read_figures();
        let get = |m: &str, item: Option<&str>| {
            f.iter()
                .find(|x| x.metric == m && x.item.as_deref() == item)
                .map(|x| x.value)
        };
        assert_eq!(get("uptime_seconds", None), Some(42.5));
        assert_eq!(
            get("temperature_celsius", Some("thermal_zone0:cpu-thermal")),
            Some(48.5)
        );
        assert_eq!(get("card_life_used_percent", Some("mmcblk0")), Some(20.0));
        assert_eq!(get("card_pre_eol", Some("mmcblk0")), Some(1.0));
        // CPU needs two readings; memory and load files are missing: no figure, no error.
        assert_eq!(get("cpu_percent", None), None);
        assert_eq!(get("memory_used_percent", None), None);
        write("proc/stat", "cpu  200 0 100 850 50 0 0 0\n");
        let f = r.read_figures();
        assert!(
            f.iter()
                .any(|x| x.metric == "cpu_percent" && x.value == 75.0)
        );
    }

    #[test]
    fn the_real_system_reads() {
        let mut r = SystemReader::new();
        let f = r.read_figures();
        assert!(f.iter().any(|x| x.metric == "uptime_seconds"));
        assert!(
            f.iter()
                .any(|x| x.metric == "disk_used_percent" && x.item.as_deref() == Some("/"))
        );
    }
}
