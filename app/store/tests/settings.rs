//! Settings and migrations through the public API.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use serde::{Deserialize, Serialize};
use watchpost_store::{Migration, SettingsTxn, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Receiver {
    host: String,
    port: u16,
}

#[test]
fn typed_values_round_trip_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let rx = Receiver {
        host: "127.0.0.1".into(),
        port: 12_000,
    };
    {
        let store = Store::open(&path).unwrap();
        let s = store.settings();
        assert_eq!(s.get::<Receiver>("receiver.primary").unwrap(), None);
        s.put("receiver.primary", &rx).unwrap();
        s.put("site.name", "warehouse").unwrap();
        s.write(|t| {
            t.put("a", &1u32)?;
            t.put("b", &2u32)
        })
        .unwrap();
        assert!(s.remove("b").unwrap());
        assert!(!s.remove("b").unwrap());
    }
    let store = Store::open(&path).unwrap();
    let s = store.settings();
    assert_eq!(s.get::<Receiver>("receiver.primary").unwrap(), Some(rx));
    assert_eq!(
        s.get::<String>("site.name").unwrap().as_deref(),
        Some("warehouse")
    );
    assert_eq!(
        s.keys().unwrap(),
        vec!["a", "receiver.primary", "site.name"]
    );
    // Wrong type: a typed error naming the key.
    match s.get::<Receiver>("site.name") {
        Err(StoreError::SettingDecode { key, .. }) => assert_eq!(key, "site.name"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(s.put("", &1), Err(StoreError::SettingKey { .. })));
}

fn v1(t: &mut SettingsTxn<'_>) -> Result<(), StoreError> {
    t.put(
        "receiver.primary",
        &Receiver {
            host: "10.0.0.1".into(),
            port: 9_000,
        },
    )
}

fn v2(t: &mut SettingsTxn<'_>) -> Result<(), StoreError> {
    // Rename a key, keeping the value.
    if let Some(r) = t.get::<Receiver>("receiver.primary")? {
        t.remove("receiver.primary")?;
        t.put("receivers.0", &r)?;
    }
    let runs: u32 = t.get("v2.runs")?.unwrap_or(0);
    t.put("v2.runs", &(runs + 1))
}

fn v3_fails(t: &mut SettingsTxn<'_>) -> Result<(), StoreError> {
    t.put("half.written", &true)?;
    // Reading a value as the wrong type fails the migration.
    t.get::<Receiver>("v2.runs").map(|_| ())
}

#[test]
fn migrations_run_once_in_order_and_roll_back_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let m1 = Migration {
        version: 1,
        name: "seed receiver",
        apply: v1,
    };
    let m2 = Migration {
        version: 2,
        name: "rename receiver key",
        apply: v2,
    };
    let m3 = Migration {
        version: 3,
        name: "broken",
        apply: v3_fails,
    };
    {
        let store = Store::open(&path).unwrap();
        let s = store.settings();
        assert_eq!(s.schema_version().unwrap(), 0);
        let r = s.migrate(&[m1, m2]).unwrap();
        assert_eq!((r.from, r.to, r.applied.clone()), (0, 2, vec![1, 2]));
        // Again: nothing to do.
        let r = s.migrate(&[m1, m2]).unwrap();
        assert_eq!((r.from, r.to, r.applied.len()), (2, 2, 0));
        assert_eq!(s.get::<u32>("v2.runs").unwrap(), Some(1));
        assert!(s.get::<Receiver>("receivers.0").unwrap().is_some());
        // A failing step: typed error, version and data unchanged.
        match s.migrate(&[m1, m2, m3]) {
            Err(StoreError::Migration { version: 3, .. }) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(s.schema_version().unwrap(), 2);
        assert_eq!(s.get::<bool>("half.written").unwrap(), None);
    }
    let store = Store::open(&path).unwrap();
    let s = store.settings();
    assert_eq!(s.schema_version().unwrap(), 2);
    let r = s.migrate(&[m1, m2]).unwrap();
    assert!(r.applied.is_empty());
    assert_eq!(s.get::<u32>("v2.runs").unwrap(), Some(1));
    // Out-of-order lists are refused before anything runs.
    match s.migrate(&[m2, m1]) {
        Err(StoreError::MigrationOrder { version: 1, .. }) => {}
        other => panic!("{other:?}"),
    }
}
