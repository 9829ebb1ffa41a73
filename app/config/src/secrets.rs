//! Secrets in settings: which keys hold one, and how they are sealed at rest.
//!
//! One list of secret key names ([`is_secret_key`]) serves the hub's redaction (every view
//! reads `"***"`) and sealing. A secret kept by the appliance itself — the settings overlay
//! (`<data_dir>/settings/overlay.toml`), the pending changes and the alarm receivers added
//! through the API in the hub's store — is written as `"sealed:v1:<hex>"`: ChaCha20-Poly1305
//! under the device key (`watchpost_runtime::seal`), bound through the associated data to its
//! dotted key path *without list indices* (`alarms.receivers.key`), so an entry may move in
//! its list and still open, while a value copied under another key does not.
//!
//! [`seal_table`] seals every clear secret string (an already sealed one is left as it is);
//! [`open_table`] opens every `sealed:v1:` string, whatever its key. A value that does not
//! open is refused with its key path ([`SecretError::Open`]), never its value. A secret
//! without the prefix is taken as clear text (older stores, a hand-written file) and is
//! sealed on the next write.

use std::path::Path;

use watchpost_runtime::seal::{DEVICE_KEY_FILE, SealError, Sealer};

/// What a sealed value starts with; the rest is [`Sealer::seal`]'s output.
pub const SEALED_PREFIX: &str = "sealed:v1:";

/// Key names whose values are secrets wherever they appear (`[bus] password`, a receiver's
/// `key` or `token`, a camera's `password`, a YoLink `secret`, a user's `password_hash`…).
/// A key ending in `_password`, `_secret`, `_token` or `_key` is a secret too.
pub const SECRET_KEYS: &[&str] = &[
    "password",
    "password_hash",
    "secret",
    "client_secret",
    "key",
    "token",
];

/// Whether a key's value is a secret (see [`SECRET_KEYS`]).
pub fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS.contains(&key)
        || ["_password", "_secret", "_token", "_key"]
            .iter()
            .any(|s| key.ends_with(s))
}

/// Why secrets could not be sealed or opened. Carries the key path, never the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// `key` (a dotted path with list indices) does not open with the device key.
    #[error("`{key}`: sealed with another device key or damaged")]
    Open { key: String },
    /// `key` is sealed but this appliance has no device key (`secrets/device.key`).
    #[error("`{key}`: sealed, but there is no device key ({DEVICE_KEY_FILE}) to open it")]
    NoKey { key: String },
    /// Sealing `key` failed (no random bytes).
    #[error("`{key}`: cannot seal: {source}")]
    Seal { key: String, source: SealError },
}

impl SecretError {
    /// The dotted key path (with list indices) of the value.
    pub fn key(&self) -> &str {
        match self {
            SecretError::Open { key }
            | SecretError::NoKey { key }
            | SecretError::Seal { key, .. } => key,
        }
    }

    /// What is wrong, without the key path.
    pub fn reason(&self) -> String {
        match self {
            SecretError::Open { .. } => "sealed with another device key or damaged".into(),
            SecretError::NoKey { .. } => {
                format!("sealed, but there is no device key ({DEVICE_KEY_FILE}) to open it")
            }
            SecretError::Seal { source, .. } => format!("cannot seal: {source}"),
        }
    }
}

/// The sealer of `data_dir`'s device key when the key exists (`Ok(None)` otherwise): for
/// reading, which must not create a key.
pub fn existing_sealer(data_dir: &Path) -> Result<Option<Sealer>, SealError> {
    if data_dir.join(DEVICE_KEY_FILE).exists() {
        Sealer::for_data_dir(data_dir).map(Some)
    } else {
        Ok(None)
    }
}

/// A location in a table: the path shown in errors (with indices) and the associated data
/// (without them).
#[derive(Clone)]
struct At {
    shown: String,
    aad: String,
}

impl At {
    fn root(prefix: &str) -> Self {
        Self {
            shown: prefix.to_string(),
            aad: prefix.to_string(),
        }
    }

    fn key(&self, k: &str) -> Self {
        let join = |p: &str| {
            if p.is_empty() {
                k.to_string()
            } else {
                format!("{p}.{k}")
            }
        };
        Self {
            shown: join(&self.shown),
            aad: join(&self.aad),
        }
    }

    fn index(&self, i: usize) -> Self {
        Self {
            shown: format!("{}[{i}]", self.shown),
            aad: self.aad.clone(),
        }
    }
}

/// Whether `s` is a sealed value.
pub fn is_sealed(s: &str) -> bool {
    s.starts_with(SEALED_PREFIX)
}

fn seal_str(sealer: &Sealer, at: &At, s: &mut String) -> Result<(), SecretError> {
    if is_sealed(s) {
        return Ok(());
    }
    let sealed = sealer
        .seal(&at.aad, s.as_bytes())
        .map_err(|source| SecretError::Seal {
            key: at.shown.clone(),
            source,
        })?;
    *s = format!("{SEALED_PREFIX}{sealed}");
    Ok(())
}

fn open_str(sealer: Option<&Sealer>, at: &At, s: &mut String) -> Result<(), SecretError> {
    let Some(sealed) = s.strip_prefix(SEALED_PREFIX) else {
        return Ok(());
    };
    let Some(sealer) = sealer else {
        return Err(SecretError::NoKey {
            key: at.shown.clone(),
        });
    };
    let open = |_| SecretError::Open {
        key: at.shown.clone(),
    };
    let plain = sealer.open(&at.aad, sealed).map_err(open)?;
    *s = String::from_utf8(plain).map_err(|_| SecretError::Open {
        key: at.shown.clone(),
    })?;
    Ok(())
}

/// The two walks over TOML and JSON values.
enum Op<'a> {
    Seal(&'a Sealer),
    Open(Option<&'a Sealer>),
}

impl Op<'_> {
    /// `s` at `at`; `secret` when its key (or the array's key) is a secret's.
    fn string(&self, at: &At, secret: bool, s: &mut String) -> Result<(), SecretError> {
        match self {
            Op::Seal(sealer) if secret => seal_str(sealer, at, s),
            Op::Seal(_) => Ok(()),
            Op::Open(sealer) => open_str(*sealer, at, s),
        }
    }

    fn toml(&self, at: &At, secret: bool, v: &mut toml::Value) -> Result<(), SecretError> {
        match v {
            toml::Value::String(s) => self.string(at, secret, s),
            toml::Value::Table(t) => self.toml_table(at, t),
            toml::Value::Array(items) => items
                .iter_mut()
                .enumerate()
                .try_for_each(|(i, x)| self.toml(&at.index(i), secret, x)),
            _ => Ok(()),
        }
    }

    fn toml_table(&self, at: &At, t: &mut toml::Table) -> Result<(), SecretError> {
        t.iter_mut()
            .try_for_each(|(k, v)| self.toml(&at.key(k), is_secret_key(k), v))
    }

    fn json(&self, at: &At, secret: bool, v: &mut serde_json::Value) -> Result<(), SecretError> {
        match v {
            serde_json::Value::String(s) => self.string(at, secret, s),
            serde_json::Value::Object(m) => m
                .iter_mut()
                .try_for_each(|(k, x)| self.json(&at.key(k), is_secret_key(k), x)),
            serde_json::Value::Array(items) => items
                .iter_mut()
                .enumerate()
                .try_for_each(|(i, x)| self.json(&at.index(i), secret, x)),
            _ => Ok(()),
        }
    }
}

/// Seals every clear secret string of `table` (see the module's documentation).
pub fn seal_table(sealer: &Sealer, table: &mut toml::Table) -> Result<(), SecretError> {
    Op::Seal(sealer).toml_table(&At::root(""), table)
}

/// Opens every sealed string of `table`; the first that does not open is refused.
pub fn open_table(sealer: &Sealer, table: &mut toml::Table) -> Result<(), SecretError> {
    Op::Open(Some(sealer)).toml_table(&At::root(""), table)
}

/// [`open_table`] with the device key of `data_dir`, read only when `table` holds a sealed
/// value (no key is created: without one, a sealed value is [`SecretError::NoKey`]).
pub fn open_table_in(data_dir: &Path, table: &mut toml::Table) -> Result<(), SecretError> {
    let Some(first) = first_sealed(table) else {
        return Ok(());
    };
    match existing_sealer(data_dir) {
        Ok(sealer) => Op::Open(sealer.as_ref()).toml_table(&At::root(""), table),
        // An unreadable key opens nothing: named by the first sealed value.
        Err(_) => Err(SecretError::Open { key: first }),
    }
}

/// Seals every clear secret string of a JSON value kept under `prefix` (e.g. the store key
/// `alarms.managed`: a receiver's key is bound to `alarms.managed.receivers.key`).
pub fn seal_json(
    sealer: &Sealer,
    prefix: &str,
    value: &mut serde_json::Value,
) -> Result<(), SecretError> {
    Op::Seal(sealer).json(&At::root(prefix), false, value)
}

/// Opens every sealed string of a JSON value kept under `prefix` with the device key of
/// `data_dir` (read only when there is a sealed value; never created).
pub fn open_json_in(
    data_dir: &Path,
    prefix: &str,
    value: &mut serde_json::Value,
) -> Result<(), SecretError> {
    let mut probe = Vec::new();
    find_sealed_json(&At::root(prefix), value, &mut probe);
    let Some(first) = probe.into_iter().next() else {
        return Ok(());
    };
    match existing_sealer(data_dir) {
        Ok(sealer) => Op::Open(sealer.as_ref()).json(&At::root(prefix), false, value),
        Err(_) => Err(SecretError::Open { key: first }),
    }
}

/// The key path of the first sealed value of `table`.
pub fn first_sealed(table: &toml::Table) -> Option<String> {
    fn walk(at: &At, v: &toml::Value) -> Option<String> {
        match v {
            toml::Value::String(s) if is_sealed(s) => Some(at.shown.clone()),
            toml::Value::Table(t) => t.iter().find_map(|(k, x)| walk(&at.key(k), x)),
            toml::Value::Array(a) => a
                .iter()
                .enumerate()
                .find_map(|(i, x)| walk(&at.index(i), x)),
            _ => None,
        }
    }
    let root = At::root("");
    table.iter().find_map(|(k, v)| walk(&root.key(k), v))
}

fn find_sealed_json(at: &At, v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) if is_sealed(s) => out.push(at.shown.clone()),
        serde_json::Value::Object(m) => m
            .iter()
            .for_each(|(k, x)| find_sealed_json(&at.key(k), x, out)),
        serde_json::Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| find_sealed_json(&at.index(i), x, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr3t-AES-key-0123456789abcdef";

    fn t(s: &str) -> toml::Table {
        toml::from_str(s).unwrap()
    }

    fn sample() -> toml::Table {
        t(&format!(
            "[bus]\nusername = \"u\"\npassword = \"{SECRET}\"\n\
             [bridge.yolink]\nclient_id = \"c\"\nsecret = \"{SECRET}\"\ntoken_refresh_margin_s = 5\n\
             [[alarms.receivers]]\nid = \"a\"\nkey = \"{SECRET}\"\n\
             [[alarms.receivers]]\nid = \"b\"\ntoken = \"t-b\"\nmy_api_key = [\"x1\", \"x2\"]\n"
        ))
    }

    #[test]
    fn sealed_tables_round_trip_and_leave_other_keys_alone() {
        let sealer = Sealer::new([7; 32]);
        let plain = sample();
        let mut table = plain.clone();
        seal_table(&sealer, &mut table).unwrap();
        let text = toml::to_string(&table).unwrap();
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains("t-b") && !text.contains("\"x1\""), "{text}");
        assert!(is_sealed(table["bus"]["password"].as_str().unwrap()));
        assert_eq!(table["bus"]["username"].as_str(), Some("u"));
        assert_eq!(table["bridge"]["yolink"]["client_id"].as_str(), Some("c"));
        assert_eq!(
            table["bridge"]["yolink"]["token_refresh_margin_s"].as_integer(),
            Some(5)
        );
        assert_eq!(first_sealed(&plain), None);
        assert_eq!(first_sealed(&table).as_deref(), Some("bus.password"));
        open_table(&sealer, &mut table).unwrap();
        assert_eq!(table, plain);
    }

    #[test]
    fn a_sealed_value_is_not_sealed_twice() {
        let sealer = Sealer::new([7; 32]);
        let mut table = sample();
        seal_table(&sealer, &mut table).unwrap();
        let once = table.clone();
        seal_table(&sealer, &mut table).unwrap();
        assert_eq!(table, once);
        open_table(&sealer, &mut table).unwrap();
        assert_eq!(table, sample());
    }

    #[test]
    fn another_key_is_refused_naming_the_key_not_the_secret() {
        let mut table = sample();
        seal_table(&Sealer::new([7; 32]), &mut table).unwrap();
        let sealed_value = table["bus"]["password"].as_str().unwrap().to_string();
        let e = open_table(&Sealer::new([8; 32]), &mut table).unwrap_err();
        assert_eq!(e.key(), "bus.password");
        let text = e.to_string();
        assert!(text.contains("bus.password"), "{text}");
        assert!(text.contains("another device key or damaged"), "{text}");
        assert!(
            !text.contains(SECRET) && !text.contains(&sealed_value[12..]),
            "{text}"
        );

        // Damaged: named with its list index.
        let mut table = sample();
        seal_table(&Sealer::new([7; 32]), &mut table).unwrap();
        table["bus"]["password"] = toml::Value::String("clear-pw".into());
        let recv = table["alarms"]["receivers"].as_array_mut().unwrap();
        let sealed = recv[0]["key"].as_str().unwrap();
        let (prefix, hex) = sealed.split_at(SEALED_PREFIX.len());
        let flipped = if hex.starts_with('0') { "1" } else { "0" };
        recv[0]["key"] = toml::Value::String(format!("{prefix}{flipped}{}", &hex[1..]));
        let e = open_table(&Sealer::new([7; 32]), &mut table).unwrap_err();
        assert_eq!(e.key(), "alarms.receivers[0].key");
    }

    #[test]
    fn a_moved_list_entry_still_opens_but_a_moved_value_does_not() {
        let sealer = Sealer::new([7; 32]);
        let mut table = sample();
        seal_table(&sealer, &mut table).unwrap();
        let recv = table["alarms"]["receivers"].as_array_mut().unwrap();
        recv.swap(0, 1);
        open_table(&sealer, &mut table).unwrap();
        let recv = table["alarms"]["receivers"].as_array().unwrap();
        assert_eq!(recv[1]["key"].as_str(), Some(SECRET));
        assert_eq!(recv[0]["token"].as_str(), Some("t-b"));

        // The bus password's sealed value copied under the YoLink secret does not open.
        let mut table = sample();
        seal_table(&sealer, &mut table).unwrap();
        let pw = table["bus"]["password"].clone();
        table["bridge"]["yolink"]["secret"] = pw;
        let e = open_table(&sealer, &mut table).unwrap_err();
        assert_eq!(e.key(), "bridge.yolink.secret");
    }

    #[test]
    fn json_values_seal_under_their_prefix() {
        let dir = std::env::temp_dir().join(format!("wp-secrets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let plain =
            serde_json::json!({"receivers": [{"id": "r", "key": SECRET, "account": "1234"}]});
        // No sealed value: nothing to open, and no key is created.
        let mut v = plain.clone();
        open_json_in(&dir, "alarms.managed", &mut v).unwrap();
        assert!(!dir.join(DEVICE_KEY_FILE).exists());

        let sealer = Sealer::for_data_dir(&dir).unwrap();
        seal_json(&sealer, "alarms.managed", &mut v).unwrap();
        assert!(!v.to_string().contains(SECRET));
        assert_eq!(v["receivers"][0]["account"], "1234");
        let mut moved = v.clone();
        open_json_in(&dir, "alarms.managed", &mut v).unwrap();
        assert_eq!(v, plain);
        let e = open_json_in(&dir, "other", &mut moved).unwrap_err();
        assert_eq!(e.key(), "other.receivers[0].key");
        std::fs::remove_dir_all(&dir).unwrap();
        let e = open_json_in(&dir, "alarms.managed", &mut moved).unwrap_err();
        assert!(matches!(e, SecretError::NoKey { .. }), "{e}");
    }

    #[test]
    fn load_opens_the_overlay_and_the_file_with_the_device_key() {
        let dir = std::env::temp_dir().join(format!("wp-secrets-load-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("settings")).unwrap();
        let file = dir.join("w.toml");
        let head = format!("[system]\ndata_dir = {:?}\n", dir.display().to_string());
        // A sealed value in the file without a device key: refused, named, none created.
        let pasted = format!(
            "{SEALED_PREFIX}{}",
            Sealer::new([9; 32]).seal("bus.password", b"x").unwrap()
        );
        std::fs::write(
            &file,
            format!("{head}[bus]\nusername = \"u\"\npassword = \"{pasted}\"\n"),
        )
        .unwrap();
        let e = crate::load_with_env(&file, &[]).unwrap_err().to_string();
        assert!(
            e.contains("bus.password") && e.contains("no device key"),
            "{e}"
        );
        assert!(!dir.join(DEVICE_KEY_FILE).exists());

        let sealer = Sealer::for_data_dir(&dir).unwrap();
        let e = crate::load_with_env(&file, &[]).unwrap_err().to_string();
        assert!(
            e.contains("bus.password") && e.contains("another device key"),
            "{e}"
        );
        let mut base = t(&format!(
            "[bus]\nusername = \"u\"\npassword = \"{SECRET}\"\n"
        ));
        seal_table(&sealer, &mut base).unwrap();
        let text = format!("{head}{}", toml::to_string(&base).unwrap());
        std::fs::write(&file, &text).unwrap();
        let c = crate::load_with_env(&file, &[]).unwrap();
        assert_eq!(c.bus.password.unwrap().expose(), SECRET);

        // The overlay's secrets open too; a damaged one is the overlay's error, by key.
        let mut overlay = t("[bus]\npassword = \"overlay-pw\"\n");
        seal_table(&sealer, &mut overlay).unwrap();
        let overlay_file = crate::overlay::overlay_path(&dir);
        std::fs::write(&overlay_file, toml::to_string(&overlay).unwrap()).unwrap();
        let c = crate::load_with_env(&file, &[]).unwrap();
        assert_eq!(c.bus.password.unwrap().expose(), "overlay-pw");
        let mut other = t("[bus]\npassword = \"overlay-pw\"\n");
        seal_table(&Sealer::new([9; 32]), &mut other).unwrap();
        std::fs::write(&overlay_file, toml::to_string(&other).unwrap()).unwrap();
        let e = crate::load_with_env(&file, &[]).unwrap_err();
        assert!(matches!(e, crate::ConfigError::Overlay { .. }), "{e}");
        assert_eq!(e.key(), Some("bus.password"));
        assert!(!e.to_string().contains("overlay-pw"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn secret_key_names() {
        for k in [
            "password",
            "key",
            "token",
            "secret",
            "client_secret",
            "mqtt_password",
            "api_key",
            "password_hash",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "username",
            "key_format",
            "token_refresh_margin_s",
            "keys",
            "id",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }
}
