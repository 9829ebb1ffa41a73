use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    from_str_with_env(text, Path::new("test.toml"), &[])
}

#[test]
fn defaults_round_trip_through_print_default_config() {
    let text = Config::default_toml();
    let cfg = parse(&text).unwrap();
    assert_eq!(cfg, Config::default());
}

#[test]
fn unknown_key_names_key_and_line() {
    let err = parse("[hub]\nenabled = true\nlisten_port = 80\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("listen_port"), "{err}");
}

#[test]
fn wrong_type_names_line() {
    let err = parse("[supervisor]\nrestart_budget = \"ten\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn port_out_of_range_is_explained() {
    let err = parse("[hub]\nlisten = \"127.0.0.1:99999\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("out of range"), "{err}");
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn cross_key_problems_name_keys() {
    let err = parse(
        "[supervisor]\nheartbeat_interval_ms = 500\nheartbeat_timeout_ms = 600\n\
         [[auth.users]]\nname = \"admin\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("supervisor.heartbeat_timeout_ms"), "{err}");
    assert!(err.contains("auth.users[0]: needs password"), "{err}");
}

#[test]
fn essential_workers_are_known_workers() {
    let err = parse("[supervisor]\nessential = [\"hub\", \"nope\"]\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`supervisor.essential[1]`"), "{err}");
    assert!(
        err.contains("line 2") && err.contains("unknown worker `nope`"),
        "{err}"
    );
    let cfg = parse("[supervisor]\nessential = [\"capture\"]\n").unwrap();
    assert_eq!(cfg.supervisor.essential.len(), 1);
    assert!(cfg.supervisor.essential[0] == "capture");
    for w in WORKERS {
        assert_eq!(w.parse::<WorkerName>().map(WorkerName::as_str), Ok(*w));
    }
}

#[test]
fn duplicate_ports_are_rejected() {
    let err = parse("[broker]\nlisten = \"127.0.0.1:9000\"\n[hub]\nlisten = \"0.0.0.0:9000\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("hub.listen: port 9000 is already used by broker.listen"),
        "{err}"
    );
}

#[test]
fn env_overrides_apply_and_are_validated() {
    let env = vec![
        (
            "WATCHPOST_HUB__LISTEN".to_string(),
            "127.0.0.1:9191".to_string(),
        ),
        (
            "WATCHPOST_SUPERVISOR__RESTART_BUDGET".to_string(),
            "3".to_string(),
        ),
        ("WATCHPOST_UNRELATED".to_string(), "x".to_string()),
    ];
    let cfg = from_str_with_env("", Path::new("t.toml"), &env).unwrap();
    assert_eq!(cfg.hub.listen.port(), 9191);
    assert_eq!(cfg.supervisor.restart_budget, 3);

    let bad = vec![("WATCHPOST_HUB__NOPE".to_string(), "1".to_string())];
    let err = from_str_with_env("", Path::new("t.toml"), &bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn enabled_workers_follow_start_order() {
    let mut cfg = Config::default();
    cfg.fieldbus.enabled = true;
    assert_eq!(cfg.enabled_workers(), vec!["broker", "fieldbus", "hub"]);
    assert_eq!(cfg.dependencies("hub"), vec!["broker"]);
    cfg.bus.external = Some("mqtt.example:1883".parse().unwrap());
    assert_eq!(cfg.enabled_workers(), vec!["fieldbus", "hub"]);
    assert_eq!(cfg.bus_endpoint().host(), "mqtt.example");
}

#[test]
fn closed_sets_name_key_path_and_line() {
    let camera = "[capture]\n[[capture.cameras]]\nid = \"heat\"\nkind = \"thermal\"\n\
                  source = { type = \"v4l2\", device = \"/dev/video0\" }\n";
    let err = parse(&format!(
        "{camera}[capture.cameras.thermal]\nformat = \"centikelvin16\"\n\
         [[capture.cameras.thermal.rules]]\nid = \"hot\"\nthreshold_c = 60.0\n\
         statistic = \"maximum\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("capture.cameras[0].thermal.rules[0].statistic"),
        "{err}"
    );
    assert!(
        err.contains("line 11") && err.contains("`maximum`"),
        "{err}"
    );

    let err = parse(&format!(
        "{camera}[capture.cameras.thermal]\nformat = \"centikelvin16\"\n\
         [capture.cameras.record]\nmode = \"schedule\"\n\
         [[capture.cameras.record.schedule]]\ndays = [\"Mon\", \"Funday\"]\n\
         start = \"07:30\"\nstop = \"18:00\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("capture.cameras[0].record.schedule[0].days[1]"),
        "{err}"
    );
    assert!(err.contains("line 11") && err.contains("`Funday`"), "{err}");

    let err = parse(
        "[alarms]\n[[alarms.receivers]]\ntype = \"relay\"\nid = \"r\"\nmodule = \"m\"\n\
         [[alarms.mappings]]\nsensor = \"d1\"\nconditions = [\"intrusion\", \"burglary\"]\n\
         routes = [{ receiver = \"r\", output = \"o\" }]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("alarms.mappings[0].conditions[1]"), "{err}");
    assert!(
        err.contains("line 8") && err.contains("`burglary`"),
        "{err}"
    );
}

#[test]
fn env_override_errors_name_the_key() {
    let env = vec![(
        "WATCHPOST_SUPERVISOR__RESTART_BUDGET".to_string(),
        "\"ten\"".to_string(),
    )];
    let err = from_str_with_env("", Path::new("t.toml"), &env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("after environment overrides"), "{err}");
    assert!(err.contains("supervisor.restart_budget"), "{err}");
}

fn overlay(text: &str) -> toml::Table {
    toml::from_str(text).unwrap()
}

const OVERLAY: &str = "/data/settings/overlay.toml";

#[test]
fn overlay_merges_between_file_and_environment() {
    let base = "[hub]\nlisten = \"127.0.0.1:8080\"\nevents_max_age_days = 90\n";
    let o = overlay("[hub]\nevents_max_age_days = 30\nhealth_timeout_ms = 500\n");
    let env = vec![(
        "WATCHPOST_HUB__HEALTH_TIMEOUT_MS".to_string(),
        "700".to_string(),
    )];
    let cfg = validate_overlay(base, Path::new("t.toml"), &o, Path::new(OVERLAY), &env).unwrap();
    assert_eq!(cfg.hub.events_max_age_days, 30);
    assert_eq!(cfg.hub.listen.port(), 8080);
    assert_eq!(cfg.hub.health_timeout_ms, 700);
}

#[test]
fn overlay_errors_name_the_key_and_the_overlay() {
    let base = "[hub]\nlisten = \"127.0.0.1:8080\"\n";
    let o = overlay("[hub]\nevents_max_age_days = \"thirty\"\n");
    let err = validate_overlay(base, Path::new("t.toml"), &o, Path::new(OVERLAY), &[]).unwrap_err();
    assert!(matches!(err, ConfigError::Overlay { .. }), "{err}");
    assert_eq!(err.key(), Some("hub.events_max_age_days"));
    let text = err.to_string();
    assert!(text.contains("settings overlay"), "{text}");
    assert!(text.contains(OVERLAY), "{text}");

    let o = overlay("[hub]\nnope = 1\n");
    let err = validate_overlay(base, Path::new("t.toml"), &o, Path::new(OVERLAY), &[]).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    assert!(matches!(err, ConfigError::Overlay { .. }), "{err}");

    // A cross-key problem caused by the overlay says so.
    let o = overlay("[broker]\nlisten = \"127.0.0.1:8080\"\n");
    let err = validate_overlay(base, Path::new("t.toml"), &o, Path::new(OVERLAY), &[]).unwrap_err();
    let p = &err.problems()[0];
    assert_eq!(p.key, "hub.listen");
    let o = overlay("[supervisor]\nrestart_budget = 0\n");
    let err = validate_overlay(base, Path::new("t.toml"), &o, Path::new(OVERLAY), &[]).unwrap_err();
    assert_eq!(err.key(), Some("supervisor.restart_budget"));
    assert!(
        err.to_string().contains("set in the settings overlay"),
        "{err}"
    );
}

#[test]
fn overlay_cannot_move_the_data_directory() {
    let o = overlay("[system]\ndata_dir = \"/elsewhere\"\n");
    let err = validate_overlay("", Path::new("t.toml"), &o, Path::new(OVERLAY), &[]).unwrap_err();
    assert_eq!(err.key(), Some("system.data_dir"));
    assert!(
        err.to_string().contains("cannot change the data directory"),
        "{err}"
    );
}

#[test]
fn errors_of_the_file_keep_their_line_with_an_overlay() {
    let base = "[hub]\n\nevents_max_age_days = \"x\"\n";
    let o = overlay("[bridge]\nenabled = true\n");
    let err = validate_overlay(base, Path::new("t.toml"), &o, Path::new(OVERLAY), &[]).unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
    assert!(err.to_string().contains("line 3"), "{err}");
    assert_eq!(err.key(), Some("hub.events_max_age_days"));
}

#[test]
fn load_reads_the_overlay_of_the_data_directory() {
    let dir = std::env::temp_dir().join(format!("wp-config-overlay-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("settings")).unwrap();
    let file = dir.join("w.toml");
    std::fs::write(
        &file,
        format!(
            "[system]\ndata_dir = {:?}\n[hub]\nevents_max_age_days = 90\n",
            dir.display().to_string()
        ),
    )
    .unwrap();
    assert_eq!(
        load_with_env(&file, &[]).unwrap().hub.events_max_age_days,
        90
    );
    std::fs::write(
        dir.join(overlay::OVERLAY_FILE),
        "[hub]\nevents_max_age_days = 7\n",
    )
    .unwrap();
    assert_eq!(
        load_with_env(&file, &[]).unwrap().hub.events_max_age_days,
        7
    );
    std::fs::write(dir.join(overlay::OVERLAY_FILE), "[hub\n").unwrap();
    let err = load_with_env(&file, &[]).unwrap_err();
    assert!(matches!(err, ConfigError::Overlay { .. }), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
