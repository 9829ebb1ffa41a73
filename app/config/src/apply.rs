//! Which workers read which section: what a settings change restarts.
//!
//! A worker reads the configuration once, when it starts, so a changed section takes effect
//! by restarting the workers that read it ([`SECTION_READERS`], the one table of it). The
//! sections of the supervisor itself (`[system]`, `[supervisor]`) take effect only when the
//! appliance restarts; the bus sections (`[bus]`, `[broker]`) restart every worker, since
//! every worker is a bus client.

use crate::{Config, WORKERS};

/// Who has to restart for a section's change to take effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readers {
    /// The supervisor reads it: only a restart of the appliance applies it.
    Appliance,
    /// Every worker.
    All,
    /// These workers.
    Workers(&'static [&'static str]),
}

/// Each top-level section and the workers that read it. A section missing here is a bug that
/// [`tests`] catches (every section of [`Config`] must be listed).
pub const SECTION_READERS: &[(&str, Readers)] = &[
    ("system", Readers::Appliance),
    ("supervisor", Readers::Appliance),
    ("bus", Readers::All),
    ("broker", Readers::All),
    ("hub", Readers::Workers(&["hub"])),
    // The hub's API and the RTSP server's digest authentication.
    ("auth", Readers::Workers(&["hub", "rtsp"])),
    // The hub serves the Neasmart API and its compatibility listener from `[fieldbus]`.
    ("fieldbus", Readers::Workers(&["fieldbus", "hub"])),
    ("bridge", Readers::Workers(&["bridge"])),
    // The alarm service runs in the hub.
    ("alarms", Readers::Workers(&["hub"])),
    // The hub's camera manager and the RTSP server's restreams read the camera list.
    ("capture", Readers::Workers(&["capture", "rtsp", "hub"])),
    ("detect", Readers::Workers(&["detect"])),
    // The capture worker feeds the RTSP server when it is enabled.
    ("rtsp", Readers::Workers(&["rtsp", "capture"])),
    // The hub lists the configured monitor targets in its API and pages.
    ("monitor", Readers::Workers(&["monitor", "hub"])),
];

/// What applying a new configuration over the running one takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyPlan {
    /// Top-level sections that differ.
    pub changed_sections: Vec<String>,
    /// Enabled before and after, and reading a changed section: stop and start again.
    pub restart: Vec<&'static str>,
    /// Newly enabled.
    pub start: Vec<&'static str>,
    /// No longer enabled.
    pub stop: Vec<&'static str>,
    /// Changed sections that only a restart of the appliance applies.
    pub needs_appliance_restart: Vec<String>,
}

fn sections(config: &Config) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(config) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    }
}

/// Compares the running configuration with a new one. Workers are listed in start order.
pub fn plan(old: &Config, new: &Config) -> ApplyPlan {
    let (a, b) = (sections(old), sections(new));
    let mut plan = ApplyPlan::default();
    let mut affected: Vec<&'static str> = Vec::new();
    for (section, readers) in SECTION_READERS {
        if a.get(*section) == b.get(*section) {
            continue;
        }
        plan.changed_sections.push(section.to_string());
        match readers {
            Readers::Appliance => plan.needs_appliance_restart.push(section.to_string()),
            Readers::All => affected.extend(WORKERS.iter().copied()),
            Readers::Workers(ws) => affected.extend(ws.iter().copied()),
        }
    }
    for w in WORKERS.iter().copied() {
        match (old.worker_enabled(w), new.worker_enabled(w)) {
            (true, true) if affected.contains(&w) => plan.restart.push(w),
            (false, true) => plan.start.push(w),
            (true, false) => plan.stop.push(w),
            _ => {}
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_has_readers() {
        let listed: Vec<&str> = SECTION_READERS.iter().map(|(s, _)| *s).collect();
        for section in sections(&Config::default()).keys() {
            assert!(listed.contains(&section.as_str()), "{section} not listed");
        }
        for (_, r) in SECTION_READERS {
            if let Readers::Workers(ws) = r {
                assert!(ws.iter().all(|w| WORKERS.contains(w)));
            }
        }
    }

    #[test]
    fn a_change_restarts_only_its_readers() {
        let mut old = Config::default();
        old.bridge.enabled = true;
        old.fieldbus.enabled = true;
        let mut new = old.clone();
        new.bridge.token_refresh_margin_s += 1;
        let p = plan(&old, &new);
        assert_eq!(p.changed_sections, vec!["bridge"]);
        assert_eq!(p.restart, vec!["bridge"]);
        assert!(p.start.is_empty() && p.stop.is_empty());

        let mut new = old.clone();
        new.hub.events_max_age_days = 7;
        new.supervisor.restart_budget = 3;
        new.bridge.enabled = false;
        new.capture.enabled = true;
        let p = plan(&old, &new);
        assert_eq!(p.restart, vec!["hub"]);
        assert_eq!(p.stop, vec!["bridge"]);
        assert_eq!(p.start, vec!["capture"]);
        assert_eq!(p.needs_appliance_restart, vec!["supervisor"]);

        let mut new = old.clone();
        new.bus.keepalive_s = 30;
        assert_eq!(
            plan(&old, &new).restart,
            vec!["broker", "fieldbus", "bridge", "hub"]
        );
        assert_eq!(plan(&old, &old), ApplyPlan::default());
    }
}
