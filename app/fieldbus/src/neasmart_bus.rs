//! The Neasmart gateway on the bus: retained state per entity, the status topic, and commands
//! (with replies for the REST API).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use watchpost_bus::{Bus, Message, Retain};
use watchpost_neasmart::api::{self, CommandError, SetpointRange};
use watchpost_neasmart::map::{self, zone_offset};
use watchpost_neasmart::topics::{self, Parsed};
use watchpost_neasmart::views::StatusView;
use watchpost_neasmart::{Entity, Mode, Model, State};

use crate::gateway::Gateway;
use crate::outbox::Outbox;

/// Settings the bus side needs.
#[derive(Debug, Clone)]
pub struct BusSettings {
    pub range: SetpointRange,
    pub stale_after: Duration,
    pub command_timeout: Duration,
    pub startup_global_mode: u8,
    pub startup_global_state: u8,
}

fn levels_topic(bus: &Bus, levels: &[String]) -> String {
    let refs: Vec<&str> = levels.iter().map(String::as_str).collect();
    bus.topic(&refs)
}

/// The retained payload of `entity`. Zone and global payloads carry a few fields beyond the
/// original API's (ids, names, pending marks); readers ignore what they do not know.
pub fn state_payload(model: &Model, entity: Entity) -> Value {
    let to_value = |v: Result<Value, serde_json::Error>| v.unwrap_or(Value::Null);
    match entity {
        Entity::Zone(z) => {
            let v = model.zone(z);
            let n = z.address();
            json!({
                "base": z.base(),
                "zone": z.zone(),
                "active": model.zone_active(z),
                "state": v.state,
                "state_name": State::name(v.state),
                "setpoint": v.setpoint,
                "temperature": v.temperature,
                "relative_humidity": v.relative_humidity,
                "pending_state": model.pending(n + zone_offset::STATE).is_some(),
                "pending_setpoint": model.pending(n + zone_offset::SETPOINT).is_some(),
            })
        }
        Entity::Global => {
            let g = model.global();
            json!({
                "mode": g.mode,
                "mode_name": Mode::name(g.mode),
                "state": g.state,
                "state_name": State::name(g.state),
                "pending_mode": model.pending(map::GLOBAL_MODE).is_some(),
                "pending_state": model.pending(map::GLOBAL_STATE).is_some(),
            })
        }
        Entity::Notifications => to_value(serde_json::to_value(model.notifications())),
        Entity::Outside => to_value(serde_json::to_value(model.outside())),
        Entity::MixedGroup(g) => to_value(serde_json::to_value(model.mixed_group(g))),
        Entity::Dehumidifier(d) => to_value(serde_json::to_value(model.dehumidifier(d))),
        Entity::Pump(p) => to_value(serde_json::to_value(model.pump(p))),
    }
}

/// The status payload at `now`.
pub fn status_payload(
    model: &Model,
    gateway: &Gateway,
    settings: &BusSettings,
    now: Instant,
) -> StatusView {
    let f = model.freshness(now);
    let last_ms = gateway.last_write_unix_ms();
    StatusView {
        registers_receiving_updates: !f.stale,
        registers_stale: f.stale,
        registers_age_seconds: f.age.map(|a| a.as_secs_f64()),
        last_register_write: last_ms.map(rfc3339_ms),
        last_register_write_unix_ms: last_ms,
        stale_after_seconds: settings.stale_after.as_secs(),
        command_sync_timeout_seconds: settings.command_timeout.as_secs(),
        pending_command_registers: model.pending_count(),
        persist_command_registers: false,
        startup_global_mode: settings.startup_global_mode,
        startup_global_state: settings.startup_global_state,
    }
}

/// Milliseconds since the Unix epoch as RFC 3339 UTC with a `Z`.
pub fn rfc3339_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        ms % 1000
    )
}

/// Queues the state of `entities` for publishing.
pub fn publish_entities(
    bus: &Bus,
    outbox: &Outbox,
    gateway: &Gateway,
    entities: impl IntoIterator<Item = Entity>,
) {
    let payloads: Vec<(Entity, Value)> = {
        let model = gateway.model();
        entities
            .into_iter()
            .map(|e| (e, state_payload(&model, e)))
            .collect()
    };
    for (e, p) in payloads {
        outbox.put_json(levels_topic(bus, &topics::entity(e)), &p, Retain::Yes);
    }
}

/// Queues the status for publishing.
pub fn publish_status(bus: &Bus, outbox: &Outbox, gateway: &Gateway, settings: &BusSettings) {
    let s = {
        let model = gateway.model();
        status_payload(&model, gateway, settings, Instant::now())
    };
    outbox.put_json(levels_topic(bus, &topics::status()), &s, Retain::Yes);
}

fn error_reply(e: &CommandError) -> Value {
    json!({"ok": false, "error": {"code": e.code, "message": e.message}})
}

/// Applies a command message. Returns the reply (also for messages without `reply_to`, which
/// get none) and the entity whose state changed.
pub fn apply_command(
    msg: &Message,
    prefix: &str,
    gateway: &Gateway,
    settings: &BusSettings,
) -> (Value, Value, Option<Entity>) {
    let body: Value = serde_json::from_slice(&msg.payload).unwrap_or(Value::Null);
    let rest = msg
        .topic
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or("");
    let levels: Vec<&str> = rest.split('/').collect();
    let result: Result<(Vec<watchpost_neasmart::Command>, Entity), CommandError> =
        match topics::parse(&levels) {
            Some(Parsed::ZoneSet(z)) => {
                api::zone_command(z, &body, settings.range).map(|c| (c.commands(), Entity::Zone(z)))
            }
            Some(Parsed::ModeSet) => api::mode_command(&body).map(|m| {
                (
                    vec![watchpost_neasmart::Command::GlobalMode(m)],
                    Entity::Global,
                )
            }),
            Some(Parsed::StateSet) => api::state_command(&body).map(|s| {
                (
                    vec![watchpost_neasmart::Command::GlobalState(s)],
                    Entity::Global,
                )
            }),
            _ => Err(CommandError {
                code: "UNKNOWN_COMMAND",
                message: format!("no command on topic {}", msg.topic),
            }),
        };
    match result {
        Ok((commands, entity)) => {
            let now = Instant::now();
            let state = {
                let mut model = gateway.model();
                for c in &commands {
                    model.command(*c, now);
                }
                let s = state_payload(&model, entity);
                gateway
                    .metrics
                    .pending_commands
                    .set(model.pending_count() as f64);
                s
            };
            gateway.metrics.commands.add(commands.len() as u64);
            tracing::info!(topic = %msg.topic, ?commands, "command applied; pending until the base reads it");
            (body, json!({"ok": true, "state": state}), Some(entity))
        }
        Err(e) => {
            gateway.metrics.commands_rejected.inc();
            tracing::info!(topic = %msg.topic, code = e.code, error = %e, "command refused");
            (body, error_reply(&e), None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339_ms(1_798_761_599_000), "2026-12-31T23:59:59.000Z");
    }
}
