//! Any bytes as an `application/x-www-form-urlencoded` body (or a query string): what the hub
//! reads from strangers before it knows who they are, and from signed-in users' forms.
//!
//! The body is deserialized exactly as axum's `Form` and `Query` do (serde_urlencoded over
//! `form_urlencoded::parse`) into every page form and API query struct, scanned for the CSRF
//! field as the guard does, and mapped by the settings form onto a real configuration (the
//! demo's, plus one section with every kind of field). Invariants, beyond not panicking:
//! - the guard's CSRF scan agrees with the first `csrf` pair of the body;
//! - `safe_next` only ever answers a local path (one leading `/`, no `\`, no control
//!   character, which browsers drop) and answers either its input or `/`;
//! - `deny_unknown_fields` query structs accept no other key; `PageParams::check` accepts
//!   exactly the documented ranges;
//! - the settings form changes or refuses only fields the body named, never both, every
//!   changed key is present in the patch, and the patch re-serializes as JSON that reads back.
#![no_main]

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use watchpost_hub::api::events::ListParams;
use watchpost_hub::api::list::{MAX_LIMIT, MAX_PAGE, PageParams};
use watchpost_hub::auth::guard::form_csrf_matches;
use watchpost_hub::auth::pages::{
    ClaimForm, CodeForm, LoginForm, NewUserForm, NextQuery, PasswordForm, PasswordOnlyForm,
    TokenForm, UserForm, safe_next,
};
use watchpost_hub::pages::events::EventsForm;
use watchpost_hub::pages::layout::FlashQuery;
use watchpost_hub::pages::relays::SetForm;
use watchpost_hub::pages::settings::RestoreForm;
use watchpost_hub::pages::settings_form::{self, Field};
use watchpost_hub::pages::zones::{ModeForm, StateForm, ZoneForm};

/// The settings form's fields: the demo configuration as the settings page shows it, and a
/// `fuzz` section with one field of every kind.
fn fields() -> &'static [Field] {
    static FIELDS: OnceLock<Vec<Field>> = OnceLock::new();
    FIELDS.get_or_init(|| {
        let text = include_str!("../../../../examples/demo.toml");
        let config = watchpost_config::from_str_with_env(text, Path::new("demo.toml"), &[])
            .expect("examples/demo.toml loads");
        let mut effective = serde_json::to_value(&config).expect("the configuration is JSON");
        watchpost_config::overlay::redact_secrets(&mut effective);
        effective["fuzz"] = json!({
            "flag": true, "count": 3, "ratio": 0.5, "name": "box", "password": "***",
            "unset": null, "tags": ["a", "b"], "ports": [1, 2], "ratios": [0.5], "flags": [true],
            "empty": [], "tables": [{"a": 1}], "deep": {"a": {"b": {"c": 1}}},
        });
        settings_form::sections(&effective)
            .into_iter()
            .flat_map(|s| s.fields)
            .collect()
    })
}

fn check_next(input: Option<&str>) {
    let out = safe_next(input);
    assert!(out.starts_with('/'), "{input:?} -> {out:?}");
    assert!(!out.starts_with("//"), "{input:?} -> {out:?}");
    assert!(!out.contains('\\'), "{input:?} -> {out:?}");
    assert!(!out.chars().any(char::is_control), "{input:?} -> {out:?}");
    assert!(out == "/" || Some(out.as_str()) == input, "{input:?} -> {out:?}");
}

fn form<T: serde::de::DeserializeOwned>(data: &[u8]) -> Option<T> {
    serde_urlencoded::from_bytes::<T>(data).ok()
}

fuzz_target!(|data: &[u8]| {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(data).into_owned().collect();
    let keys: BTreeSet<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();

    // The guard's CSRF scan: the first `csrf` field decides.
    let first_csrf = pairs.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str());
    assert_eq!(form_csrf_matches(data, "t0ken"), first_csrf == Some("t0ken"));
    if let Some(v) = first_csrf {
        assert!(form_csrf_matches(data, v));
    }

    // Every page form, as axum's Form reads it.
    let _ = form::<ClaimForm>(data);
    let _ = form::<LoginForm>(data);
    let _ = form::<PasswordForm>(data);
    let _ = form::<CodeForm>(data);
    let _ = form::<PasswordOnlyForm>(data);
    let _ = form::<NewUserForm>(data);
    let _ = form::<UserForm>(data);
    let _ = form::<TokenForm>(data);
    let _ = form::<RestoreForm>(data);
    let _ = form::<SetForm>(data);
    let _ = form::<ZoneForm>(data);
    let _ = form::<ModeForm>(data);
    let _ = form::<StateForm>(data);
    let _ = form::<FlashQuery>(data);
    let _ = form::<NextQuery>(data);
    if let Some(f) = form::<EventsForm>(data) {
        let (q, problems) = f.query(50);
        if !f.since.trim().is_empty() && !problems.iter().any(|p| p.starts_with("From")) {
            assert!(q.filter.since_us.is_some());
        }
        if !f.until.trim().is_empty() && !problems.iter().any(|p| p.starts_with("Until")) {
            assert!(q.filter.until_us.is_some());
        }
    }

    // Where login sends the browser: every value of the body, and the body itself.
    check_next(None);
    for (_, v) in &pairs {
        check_next(Some(v));
    }
    check_next(std::str::from_utf8(data).ok());

    // The API's query strings, as axum's Query reads them.
    if let Some(p) = form::<PageParams>(data) {
        assert!(keys.iter().all(|k| matches!(*k, "page" | "limit")), "{keys:?}");
        let page_ok = p.page.is_none_or(|n| (1..=MAX_PAGE).contains(&n));
        let limit_ok = p.limit.is_none_or(|n| (1..=MAX_LIMIT).contains(&n));
        assert_eq!(p.check().is_ok(), page_ok && limit_ok, "{p:?}");
    }
    if form::<ListParams>(data).is_some() {
        const KNOWN: &[&str] = &[
            "page", "limit", "kind", "source", "min_severity", "since_us", "until_us", "order",
        ];
        assert!(keys.iter().all(|k| KNOWN.contains(k)), "{keys:?}");
    }

    // The settings form (and the setup wizard, which posts the same shape).
    let fields = fields();
    let parsed = settings_form::parse(fields, &pairs);
    let field_keys: BTreeSet<&str> = fields.iter().map(|f| f.key.as_str()).collect();
    for k in &parsed.changed {
        assert!(keys.contains(k.as_str()), "changed {k} was not in the body");
        assert!(field_keys.contains(k.as_str()), "changed {k} is no field");
        assert!(!parsed.errors.contains_key(k), "{k} both changed and refused");
        assert!(settings_form::at_path(&parsed.patch, k).is_some(), "{k} missing from the patch");
    }
    for k in parsed.errors.keys() {
        assert!(keys.contains(k.as_str()), "refused {k} was not in the body");
        assert!(field_keys.contains(k.as_str()), "refused {k} is no field");
    }
    if let Value::Object(top) = &parsed.patch {
        for section in top.keys() {
            assert!(
                parsed.changed.iter().any(|k| k.split('.').next() == Some(section.as_str())),
                "patch section {section} with no changed key"
            );
        }
    } else {
        panic!("the patch is not an object: {}", parsed.patch);
    }
    let text = serde_json::to_string(&parsed.patch).expect("the patch serializes");
    let back: Value = serde_json::from_str(&text).expect("the patch reads back");
    assert!(same(&back, &parsed.patch), "the patch does not round-trip: {text}");
});

/// JSON equality, floats within a relative 1e-15 (serde_json's default float parsing may
/// differ from the shortest representation in the last bit).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-15 * x.abs().max(y.abs()),
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}
