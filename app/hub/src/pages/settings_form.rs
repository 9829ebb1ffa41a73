//! The settings form ⇄ configuration JSON: the fields of a form generated from the effective
//! configuration, and the partial configuration (the changed keys only) a submitted form
//! stands for. Pure: no hub, no I/O; the settings page and the setup wizard render and stage
//! through it.
//!
//! Field names are dotted key paths (`hub.events_max_age_days`). Each value's JSON type picks
//! the input: a bool is a checkbox with a hidden `false` before it (a form carries the last
//! value of a name, so a checked box wins); numbers are number inputs (whole or not, as the
//! effective value is); strings are text inputs; a secret (`"***"`) is a password input whose
//! empty value keeps it; an array of scalars is a comma-separated text input; an array of
//! tables, an empty array (its element type is unknown) and a table deeper than
//! [`MAX_DEPTH`] are a TOML text area holding a document whose one key is the field's last
//! name. A `null` (an unset optional value) is a text input whose text is read as a TOML
//! number or bool when it is one, else as a string; left empty it stays unset.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use watchpost_config::overlay::{REDACTED, is_secret_key};
use watchpost_config::toml;

/// Tables nested deeper than this many key steps are edited as TOML.
pub const MAX_DEPTH: usize = 3;

/// Key paths always edited as TOML, even when unset (`null`): optional tables.
pub const TOML_KEYS: &[&str] = &["bridge.yolink"];

/// How a field is edited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Integer,
    Float,
    Text,
    /// A secret: empty keeps the current one.
    Secret,
    /// An unset optional value.
    Unset,
    /// Comma-separated scalars; the element type is the first element's.
    List(ListOf),
    /// A TOML document with one key, the field's last name.
    Toml,
}

/// The element type of a [`Kind::List`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListOf {
    Integer,
    Float,
    Bool,
    Text,
}

/// One input of the form.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The dotted key path, also the input's name.
    pub key: String,
    pub kind: Kind,
    /// The effective value as the input shows it (empty for secrets).
    pub text: String,
    /// The effective value (secrets `"***"`), what a submission is compared with.
    pub current: Value,
}

impl Field {
    /// The last step of the key path: the label.
    pub fn name(&self) -> &str {
        self.key.rsplit('.').next().unwrap_or(&self.key)
    }

    /// The input's element id.
    pub fn id(&self) -> String {
        format!("f-{}", self.key)
    }
}

/// A top-level section and its fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub name: String,
    pub fields: Vec<Field>,
}

/// The sections of the form for an effective configuration (a JSON object of sections).
pub fn sections(effective: &Value) -> Vec<Section> {
    let Some(map) = effective.as_object() else {
        return Vec::new();
    };
    map.iter()
        .map(|(name, v)| {
            let mut fields = Vec::new();
            match v {
                Value::Object(m) => walk(m, name, 1, &mut fields),
                other => fields.push(field(name, other)),
            }
            Section {
                name: name.clone(),
                fields,
            }
        })
        .collect()
}

fn walk(map: &Map<String, Value>, path: &str, depth: usize, out: &mut Vec<Field>) {
    for (k, v) in map {
        let key = format!("{path}.{k}");
        match v {
            Value::Object(m) if depth < MAX_DEPTH && !TOML_KEYS.contains(&key.as_str()) => {
                walk(m, &key, depth + 1, out);
            }
            _ => out.push(field(&key, v)),
        }
    }
}

fn field(key: &str, v: &Value) -> Field {
    let last = key.rsplit('.').next().unwrap_or(key);
    let (kind, text) = if TOML_KEYS.contains(&key) {
        (Kind::Toml, toml_text(last, v))
    } else {
        match v {
            Value::Bool(b) => (Kind::Bool, b.to_string()),
            Value::Number(n) if n.is_f64() => (Kind::Float, n.to_string()),
            Value::Number(n) => (Kind::Integer, n.to_string()),
            Value::String(s) if is_secret_key(last) && s == REDACTED => {
                (Kind::Secret, String::new())
            }
            Value::String(s) => (Kind::Text, s.clone()),
            Value::Null if is_secret_key(last) => (Kind::Secret, String::new()),
            Value::Null => (Kind::Unset, String::new()),
            Value::Array(items) => match list_of(items) {
                Some(of) => (
                    Kind::List(of),
                    items.iter().map(scalar_text).collect::<Vec<_>>().join(", "),
                ),
                None => (Kind::Toml, toml_text(last, v)),
            },
            Value::Object(_) => (Kind::Toml, toml_text(last, v)),
        }
    };
    Field {
        key: key.to_string(),
        kind,
        text,
        current: v.clone(),
    }
}

/// The element type of a non-empty array of scalars (strings without commas).
fn list_of(items: &[Value]) -> Option<ListOf> {
    let first = items.first()?;
    let of = match first {
        Value::Bool(_) => ListOf::Bool,
        Value::Number(n) if n.is_f64() => ListOf::Float,
        Value::Number(_) => ListOf::Integer,
        Value::String(_) => ListOf::Text,
        _ => return None,
    };
    let same = items.iter().all(|x| match (of, x) {
        (ListOf::Bool, Value::Bool(_)) | (ListOf::Integer | ListOf::Float, Value::Number(_)) => {
            true
        }
        (ListOf::Text, Value::String(s)) => !s.contains(','),
        _ => false,
    });
    same.then_some(of)
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `v` without its `null`s (TOML has none: an unset optional key is left out).
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, x)| (k.clone(), without_nulls(x)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// The TOML document `{last = v}` (empty for an unset value).
fn toml_text(last: &str, v: &Value) -> String {
    if v.is_null() {
        return String::new();
    }
    let mut doc = Map::new();
    doc.insert(last.to_string(), without_nulls(v));
    serde_json::from_value::<toml::Table>(Value::Object(doc))
        .ok()
        .and_then(|t| toml::to_string(&t).ok())
        .unwrap_or_default()
}

/// What a submitted form stands for.
#[derive(Debug, Default, PartialEq)]
pub struct Parsed {
    /// The changed keys only, as a partial configuration (`{}` when nothing changed).
    pub patch: Value,
    /// Key paths of the changed keys.
    pub changed: Vec<String>,
    /// Values that are not of their field's type: key path → why.
    pub errors: BTreeMap<String, String>,
}

/// Reads a submitted form against the fields it was generated from. Names that are not
/// fields (`csrf`, `_…`) are ignored; a field the form did not carry is unchanged. Of a name
/// given twice (a checkbox and its hidden `false`) the last value counts.
pub fn parse(fields: &[Field], form: &[(String, String)]) -> Parsed {
    let mut last: BTreeMap<&str, &str> = BTreeMap::new();
    for (k, v) in form {
        last.insert(k, v);
    }
    let mut out = Parsed {
        patch: Value::Object(Map::new()),
        ..Parsed::default()
    };
    for f in fields {
        let Some(text) = last.get(f.key.as_str()) else {
            continue;
        };
        match value_of(f, text) {
            Ok(Some(v)) if v != without_nulls(&f.current) => {
                set_path(&mut out.patch, &f.key, v);
                out.changed.push(f.key.clone());
            }
            Ok(_) => {}
            Err(e) => {
                out.errors.insert(f.key.clone(), e);
            }
        }
    }
    out
}

/// The value a field's text stands for; `None`: unchanged (a secret or unset value left
/// empty).
pub fn value_of(f: &Field, text: &str) -> Result<Option<Value>, String> {
    let t = text.trim();
    match f.kind {
        Kind::Bool => match t {
            "true" | "on" => Ok(Some(Value::Bool(true))),
            "false" | "off" | "" => Ok(Some(Value::Bool(false))),
            other => Err(format!("`{other}` is not on or off")),
        },
        Kind::Integer => integer(t).map(Some),
        Kind::Float => float(t).map(Some),
        Kind::Text => Ok(Some(Value::String(text.to_string()))),
        Kind::Secret if text.is_empty() => Ok(None),
        Kind::Secret => Ok(Some(Value::String(text.to_string()))),
        Kind::Unset if t.is_empty() => Ok(None),
        Kind::Unset => Ok(Some(guess(t))),
        Kind::List(of) => t
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| match of {
                ListOf::Integer => integer(s),
                ListOf::Float => float(s),
                ListOf::Bool => match s {
                    "true" => Ok(Value::Bool(true)),
                    "false" => Ok(Value::Bool(false)),
                    other => Err(format!("`{other}` is not true or false")),
                },
                ListOf::Text => Ok(Value::String(s.to_string())),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|v| Some(Value::Array(v))),
        Kind::Toml => toml_value(f.name(), text, &f.current),
    }
}

fn integer(t: &str) -> Result<Value, String> {
    t.parse::<i64>()
        .map(Value::from)
        .or_else(|_| t.parse::<u64>().map(Value::from))
        .map_err(|_| format!("`{t}` is not a whole number"))
}

fn float(t: &str) -> Result<Value, String> {
    t.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .and_then(|x| serde_json::Number::from_f64(x).map(Value::Number))
        .ok_or_else(|| format!("`{t}` is not a number"))
}

/// An unset value's text: a TOML integer, float or bool when it reads as one, else a string.
fn guess(t: &str) -> Value {
    match toml::from_str::<toml::Table>(&format!("v = {t}")).map(|mut d| d.remove("v")) {
        Ok(Some(
            v @ (toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_)),
        )) => serde_json::to_value(v).unwrap_or_else(|_| Value::String(t.to_string())),
        _ => Value::String(t.to_string()),
    }
}

/// A TOML text area: a document whose one key is `name`.
fn toml_value(name: &str, text: &str, current: &Value) -> Result<Option<Value>, String> {
    if text.trim().is_empty() {
        return match current {
            Value::Null => Ok(None),
            Value::Array(a) if a.is_empty() => Ok(None),
            _ => Err(format!(
                "empty: write `{name} = []` to clear a list (a table cannot be removed here)"
            )),
        };
    }
    let mut doc: toml::Table = toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| {
                let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                format!("line {line}: ")
            })
            .unwrap_or_default();
        format!("not TOML: {at}{}", e.message())
    })?;
    let value = doc
        .remove(name)
        .ok_or_else(|| format!("the TOML must set `{name}` (as `{name} = …` or `[[{name}]]`)"))?;
    if let Some(other) = doc.keys().next() {
        return Err(format!("only `{name}` may be set here, not `{other}`"));
    }
    serde_json::to_value(value)
        .map(Some)
        .map_err(|e| format!("not a configuration value: {e}"))
}

/// Sets `v` at the dotted `key` of the object `root`, making tables on the way.
pub fn set_path(root: &mut Value, key: &str, v: Value) {
    let mut cur = root;
    let steps: Vec<&str> = key.split('.').collect();
    for (i, step) in steps.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(m) = cur else { return };
        if i + 1 == steps.len() {
            m.insert((*step).to_string(), v);
            return;
        }
        cur = m
            .entry((*step).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// The field an error's key path (`fieldbus.relays[0].unit_id`) belongs to: the field whose
/// key is the longest prefix of it, on a step boundary.
pub fn field_of<'a>(fields: &'a [Field], error_key: &str) -> Option<&'a Field> {
    fields
        .iter()
        .filter(|f| {
            error_key == f.key
                || error_key
                    .strip_prefix(f.key.as_str())
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        })
        .max_by_key(|f| f.key.len())
}

/// The value at a key path (`a.b[2].c`) of a JSON view.
pub fn at_path<'a>(root: &'a Value, key: &str) -> Option<&'a Value> {
    use watchpost_config::overlay::KeyStep;
    let mut cur = root;
    for step in watchpost_config::overlay::key_steps(key) {
        cur = match step {
            KeyStep::Key(k) => cur.get(k)?,
            KeyStep::Index(i) => cur.get(i)?,
        };
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn effective() -> Value {
        json!({
            "hub": {"enabled": true, "events_max_age_days": 30, "ratio": 0.5, "name": "box",
                    "tags": ["a", "b"], "ports": [1, 2], "empty": []},
            "bus": {"password": "***", "username": "u"},
            "system": {"hostname": null, "deep": {"a": {"b": {"c": 1}}}},
            "fieldbus": {"relays": [{"module": "m1", "unit_id": 3, "note": null}]},
            "bridge": {"yolink": null},
        })
    }

    fn fields() -> Vec<Field> {
        sections(&effective())
            .into_iter()
            .flat_map(|s| s.fields)
            .collect()
    }

    fn get<'a>(fs: &'a [Field], key: &str) -> &'a Field {
        fs.iter().find(|f| f.key == key).unwrap()
    }

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn every_json_type_has_its_input() {
        let fs = fields();
        assert_eq!(get(&fs, "hub.enabled").kind, Kind::Bool);
        assert_eq!(get(&fs, "hub.events_max_age_days").kind, Kind::Integer);
        assert_eq!(get(&fs, "hub.ratio").kind, Kind::Float);
        assert_eq!(get(&fs, "hub.name").kind, Kind::Text);
        assert_eq!(get(&fs, "hub.tags").kind, Kind::List(ListOf::Text));
        assert_eq!(get(&fs, "hub.tags").text, "a, b");
        assert_eq!(get(&fs, "hub.ports").kind, Kind::List(ListOf::Integer));
        assert_eq!(get(&fs, "hub.empty").kind, Kind::Toml);
        assert_eq!(get(&fs, "bus.password").kind, Kind::Secret);
        assert_eq!(get(&fs, "bus.password").text, "");
        assert_eq!(get(&fs, "system.hostname").kind, Kind::Unset);
        assert_eq!(get(&fs, "bridge.yolink").kind, Kind::Toml);
        // Depth: tables up to three steps deep are expanded, deeper ones are TOML.
        assert_eq!(get(&fs, "system.deep.a.b").kind, Kind::Toml);
        assert_eq!(get(&fs, "system.deep.a.b").text, "[b]\nc = 1\n");
        let relays = get(&fs, "fieldbus.relays");
        assert_eq!(relays.kind, Kind::Toml);
        assert!(relays.text.contains("[[relays]]"), "{}", relays.text);
        assert!(!relays.text.contains("note"), "nulls are left out");
    }

    #[test]
    fn only_changed_keys_are_staged() {
        let fs = fields();
        // Everything as rendered (checkbox checked: hidden false then true): no change.
        let same = form(&[
            ("csrf", "x"),
            ("hub.enabled", "false"),
            ("hub.enabled", "true"),
            ("hub.events_max_age_days", "30"),
            ("hub.ratio", "0.5"),
            ("hub.name", "box"),
            ("hub.tags", "a, b"),
            ("hub.ports", "1,2"),
            ("hub.empty", ""),
            ("bus.password", ""),
            ("bus.username", "u"),
            ("system.hostname", ""),
            ("fieldbus.relays", &get(&fs, "fieldbus.relays").text),
            ("bridge.yolink", ""),
        ]);
        let p = parse(&fs, &same);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(p.changed, Vec::<String>::new());
        assert_eq!(p.patch, json!({}));

        let p = parse(
            &fs,
            &form(&[
                ("hub.enabled", "false"),
                ("hub.events_max_age_days", "7"),
                ("hub.ratio", "0.25"),
                ("hub.tags", "a, b, c"),
                ("hub.ports", "3"),
                ("hub.empty", "empty = [\"x\"]"),
                ("bus.password", "new-pw"),
                ("system.hostname", "watchpost-1"),
                (
                    "bridge.yolink",
                    "[yolink]\nsource = \"cloud\"\nuaid = \"u\"\nsecret = \"s\"\n",
                ),
            ]),
        );
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(
            p.patch,
            json!({
                "hub": {"enabled": false, "events_max_age_days": 7, "ratio": 0.25,
                        "tags": ["a", "b", "c"], "ports": [3], "empty": ["x"]},
                "bus": {"password": "new-pw"},
                "system": {"hostname": "watchpost-1"},
                "bridge": {"yolink": {"source": "cloud", "uaid": "u", "secret": "s"}},
            })
        );
        assert_eq!(p.changed.len(), 9);
    }

    #[test]
    fn unset_values_guess_their_type() {
        let f = Field {
            key: "a.b".into(),
            kind: Kind::Unset,
            text: String::new(),
            current: Value::Null,
        };
        assert_eq!(value_of(&f, "12").unwrap(), Some(json!(12)));
        assert_eq!(value_of(&f, "true").unwrap(), Some(json!(true)));
        assert_eq!(
            value_of(&f, "Europe/Berlin").unwrap(),
            Some(json!("Europe/Berlin"))
        );
        assert_eq!(value_of(&f, " ").unwrap(), None);
    }

    #[test]
    fn wrong_types_and_bad_toml_are_named() {
        let fs = fields();
        let p = parse(
            &fs,
            &form(&[
                ("hub.events_max_age_days", "thirty"),
                ("hub.ratio", "NaN"),
                ("hub.ports", "1, x"),
                ("fieldbus.relays", "[[relays]]\nmodule = \n"),
                ("system.deep.a.b", "other = 1"),
                ("hub.empty", "x = 1\nempty = []"),
            ]),
        );
        assert_eq!(
            p.errors.keys().collect::<Vec<_>>(),
            [
                "fieldbus.relays",
                "hub.empty",
                "hub.events_max_age_days",
                "hub.ports",
                "hub.ratio",
                "system.deep.a.b"
            ]
        );
        assert!(
            p.errors["fieldbus.relays"].starts_with("not TOML: line 2"),
            "{}",
            p.errors["fieldbus.relays"]
        );
        assert!(p.errors["system.deep.a.b"].contains("must set `b`"));
        assert!(p.errors["hub.empty"].contains("only `empty`"));
        assert!(p.changed.is_empty());
    }

    #[test]
    fn a_secret_inside_a_toml_table_comes_back_as_stars() {
        let eff = json!({"alarms": {"receivers": [{"id": "r1", "key": "***"}]}});
        let fs: Vec<Field> = sections(&eff).into_iter().flat_map(|s| s.fields).collect();
        let f = get(&fs, "alarms.receivers");
        assert!(f.text.contains("key = \"***\""), "{}", f.text);
        let p = parse(&fs, &form(&[("alarms.receivers", &f.text)]));
        assert!(p.changed.is_empty());
    }

    #[test]
    fn errors_find_their_field() {
        let fs = fields();
        assert_eq!(
            field_of(&fs, "fieldbus.relays[0].unit_id").map(|f| f.key.as_str()),
            Some("fieldbus.relays")
        );
        assert_eq!(
            field_of(&fs, "hub.events_max_age_days").map(|f| f.key.as_str()),
            Some("hub.events_max_age_days")
        );
        assert!(field_of(&fs, "hub.events").is_none());
        assert_eq!(
            at_path(&effective(), "fieldbus.relays[0].unit_id"),
            Some(&json!(3))
        );
    }
}
