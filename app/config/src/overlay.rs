//! The settings overlay: `<data_dir>/settings/overlay.toml`, the changes made at run time
//! (through the hub's settings API) on top of the configuration file.
//!
//! The effective configuration is the file, then the overlay deep-merged over it
//! ([`merge_overlay`]: tables merge key by key, arrays and scalars replace), then the
//! `WATCHPOST_*` environment overrides. The overlay cannot move the data directory: it lives
//! there. An error in a value that comes from the overlay names the key and says so
//! ([`crate::ConfigError::Overlay`]).
//!
//! This module also has the pure helpers the settings API needs: the dotted key paths of the
//! leaves of a table ([`leaf_paths`], for audit records), whether a key path comes from the
//! overlay ([`contains_key_path`]), and secret redaction of a JSON view ([`redact_secrets`]).

use std::path::{Path, PathBuf};

/// The one list of secret key names lives in [`crate::secrets`].
pub use crate::secrets::{SECRET_KEYS, is_secret_key};

/// The overlay's path relative to the data directory.
pub const OVERLAY_FILE: &str = "settings/overlay.toml";

/// What a secret reads as in every view (and, sent back, means "keep the current one").
pub const REDACTED: &str = "***";

/// Where the overlay of the appliance whose data directory is `data_dir` lives.
pub fn overlay_path(data_dir: &Path) -> PathBuf {
    data_dir.join(OVERLAY_FILE)
}

/// `base` with `overlay` deep-merged over it: tables merge key by key, arrays and scalars
/// replace.
pub fn merge_overlay(mut base: toml::Table, overlay: &toml::Table) -> toml::Table {
    for (k, v) in overlay {
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => {
                let merged = merge_overlay(std::mem::take(b), o);
                *b = merged;
            }
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
    base
}

/// Replaces every secret in a JSON view of (part of) the configuration by [`REDACTED`].
pub fn redact_secrets(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if is_secret_key(k) && !v.is_null() {
                    *v = serde_json::Value::String(REDACTED.into());
                } else {
                    redact_secrets(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_secrets),
        _ => {}
    }
}

/// One step of a dotted key path such as `capture.cameras[0].password`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyStep {
    Key(String),
    Index(usize),
}

/// Splits a dotted key path (`a.b[2].c`) into its steps.
pub fn key_steps(path: &str) -> Vec<KeyStep> {
    let mut steps = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            let (name, idx) = rest.split_at(i);
            if !name.is_empty() {
                steps.push(KeyStep::Key(name.to_string()));
            }
            rest = idx;
            while let Some(end) = rest.find(']') {
                if let Ok(n) = rest[1..end].parse() {
                    steps.push(KeyStep::Index(n));
                }
                rest = &rest[end + 1..];
            }
        } else {
            steps.push(KeyStep::Key(rest.to_string()));
        }
    }
    steps
}

/// Whether the value at `path` (or a table, array or value that contains it) is set in
/// `overlay`. Arrays replace as a whole, so any index below an array of the overlay is its.
pub fn contains_key_path(overlay: &toml::Table, path: &str) -> bool {
    let steps = key_steps(path);
    if steps.is_empty() {
        return false;
    }
    let mut table = overlay;
    for step in steps {
        let KeyStep::Key(k) = step else { return true };
        match table.get(&k) {
            None => return false,
            Some(toml::Value::Table(t)) => table = t,
            Some(_) => return true,
        }
    }
    true
}

/// The dotted key paths of every leaf of `table` (an array counts as one leaf), sorted.
pub fn leaf_paths(table: &toml::Table) -> Vec<String> {
    fn walk(prefix: &str, t: &toml::Table, out: &mut Vec<String>) {
        for (k, v) in t {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(sub) if !sub.is_empty() => walk(&path, sub, out),
                _ => out.push(path),
            }
        }
    }
    let mut out = Vec::new();
    walk("", table, &mut out);
    out.sort();
    out
}

/// The key paths whose values differ between two tables (leaves of either; arrays whole).
pub fn changed_paths(before: &toml::Table, after: &toml::Table) -> Vec<String> {
    let get = |t: &toml::Table, p: &str| -> Option<toml::Value> {
        let mut cur = toml::Value::Table(t.clone());
        for step in key_steps(p) {
            let KeyStep::Key(k) = step else { return None };
            cur = cur.as_table()?.get(&k)?.clone();
        }
        Some(cur)
    };
    let mut paths: Vec<String> = leaf_paths(before)
        .into_iter()
        .chain(leaf_paths(after))
        .collect();
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .filter(|p| get(before, p) != get(after, p))
        .collect()
}

/// Reads the overlay at `path` as written (sealed secrets still sealed; see
/// [`read_overlay_in`]): `Ok(None)` when there is none.
pub fn read_overlay(path: &Path) -> Result<Option<toml::Table>, crate::ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(crate::ConfigError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    parse_overlay(&text, path).map(Some)
}

/// Reads the overlay of the appliance whose data directory is `data_dir`, its sealed secrets
/// opened with the device key ([`crate::secrets`]): `Ok(None)` when there is none. A secret
/// that does not open is a [`crate::ConfigError::Overlay`] naming its key, never its value.
pub fn read_overlay_in(data_dir: &Path) -> Result<Option<toml::Table>, crate::ConfigError> {
    let path = overlay_path(data_dir);
    let Some(mut table) = read_overlay(&path)? else {
        return Ok(None);
    };
    crate::secrets::open_table_in(data_dir, &mut table).map_err(|e| {
        crate::ConfigError::Overlay {
            path: path.clone(),
            key: Some(e.key().to_string()),
            message: e.reason(),
        }
    })?;
    Ok(Some(table))
}

/// Parses overlay text (named `path` in errors).
pub fn parse_overlay(text: &str, path: &Path) -> Result<toml::Table, crate::ConfigError> {
    toml::from_str(text).map_err(|e: toml::de::Error| crate::ConfigError::Overlay {
        path: path.to_path_buf(),
        key: None,
        message: e.to_string().trim_end().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> toml::Table {
        toml::from_str(s).unwrap()
    }

    #[test]
    fn tables_merge_arrays_and_scalars_replace() {
        let base = t("[hub]\nlisten = \"0.0.0.0:80\"\nevents_max_age_days = 90\n\
                      [[auth.users]]\nname = \"a\"\n[[auth.users]]\nname = \"b\"\n\
                      [capture.x]\ny = [1, 2]\n");
        let overlay = t(
            "[hub]\nevents_max_age_days = 30\n[[auth.users]]\nname = \"c\"\n\
                         [capture.x]\ny = [3]\n[bridge]\nenabled = true\n",
        );
        let m = merge_overlay(base, &overlay);
        assert_eq!(m["hub"]["listen"].as_str(), Some("0.0.0.0:80"));
        assert_eq!(m["hub"]["events_max_age_days"].as_integer(), Some(30));
        let users = m["auth"]["users"].as_array().unwrap();
        assert_eq!(users.len(), 1);
        assert_eq!(users[0]["name"].as_str(), Some("c"));
        assert_eq!(m["capture"]["x"]["y"].as_array().unwrap().len(), 1);
        assert_eq!(m["bridge"]["enabled"].as_bool(), Some(true));
    }

    #[test]
    fn key_paths_are_found_in_the_overlay() {
        let o = t("[hub]\nevents_max_age_days = 30\n[[capture.cameras]]\nid = \"x\"\n");
        assert!(contains_key_path(&o, "hub.events_max_age_days"));
        assert!(contains_key_path(&o, "hub"));
        assert!(!contains_key_path(&o, "hub.listen"));
        assert!(contains_key_path(&o, "capture.cameras[0].record.mode"));
        assert!(!contains_key_path(&o, "rtsp.listen"));
        assert!(!contains_key_path(&o, ""));
        assert_eq!(
            key_steps("a.b[2][1].c"),
            vec![
                KeyStep::Key("a".into()),
                KeyStep::Key("b".into()),
                KeyStep::Index(2),
                KeyStep::Index(1),
                KeyStep::Key("c".into()),
            ]
        );
    }

    #[test]
    fn changed_paths_name_leaves() {
        let a = t("[hub]\nx = 1\ny = 2\n[bus]\npassword = \"p\"\n");
        let b = t("[hub]\nx = 1\ny = 3\n[bridge]\nenabled = true\n");
        assert_eq!(
            changed_paths(&a, &b),
            vec!["bridge.enabled", "bus.password", "hub.y"]
        );
        assert_eq!(leaf_paths(&a), vec!["bus.password", "hub.x", "hub.y"]);
    }

    #[test]
    fn secrets_are_redacted_everywhere() {
        let mut v = serde_json::json!({
            "bus": {"password": "p", "username": "u"},
            "auth": {"users": [{"name": "a", "password": "pw", "password_hash": null}]},
            "alarms": {"receivers": [{"id": "r", "key": "k", "token": "t"}]},
            "bridge": {"yolink": {"client_secret": "s", "api_key": "k2", "token_refresh_margin_s": 5}},
        });
        redact_secrets(&mut v);
        let text = v.to_string();
        for s in ["\"p\"", "\"pw\"", "\"k\"", "\"t\"", "\"s\"", "\"k2\""] {
            assert!(!text.contains(s), "{s} in {text}");
        }
        assert_eq!(v["bus"]["username"], "u");
        assert_eq!(
            v["auth"]["users"][0]["password_hash"],
            serde_json::Value::Null
        );
        assert_eq!(v["bridge"]["yolink"]["token_refresh_margin_s"], 5);
    }
}
