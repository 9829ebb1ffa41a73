//! The Neasmart gateway on the bus: retained state per entity, the status topic, and commands
//! (answered with the contract's reply envelope).
//!
//! Payloads and commands are the types of the area's contract (`watchpost_neasmart::{state,
//! views, commands}`). Commands come from the hub and from any other MQTT client, so their raw
//! bodies are checked with the shared validators (`watchpost_neasmart::api`); a refusal carries
//! a [`NeasmartCode`].

use std::time::{Duration, Instant};

use watchpost_bus::{Bus, Incoming, Outcome, ReplyError, Request, Retain};
use watchpost_neasmart::api::{self, CommandError, SetpointRange};
use watchpost_neasmart::commands::{GlobalReply, ModeSet, StateSet, ZoneReply, ZoneSet};
use watchpost_neasmart::topics::{self, Parsed};
use watchpost_neasmart::views::StatusView;
use watchpost_neasmart::{Command, Entity, Model, NeasmartCode};

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

/// The subscription filters of the gateway's commands.
pub fn command_filters(bus: &Bus) -> Vec<String> {
    let area = topics::AREA;
    vec![
        bus.filter(&[area, "zone", "+", "+", "set"]),
        bus.filter(&[area, "mode", "set"]),
        bus.filter(&[area, "state", "set"]),
    ]
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
    let states: Vec<_> = {
        let model = gateway.model();
        entities
            .into_iter()
            .map(|e| (e, model.entity_state(e)))
            .collect()
    };
    for (e, state) in states {
        outbox.put_json(levels_topic(bus, &topics::entity(e)), &state, Retain::Yes);
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

/// What a command message did.
#[derive(Debug, Default)]
pub struct Handled {
    /// The answer's topic and payload, for a command that asked for one.
    pub reply: Option<(String, Vec<u8>)>,
    /// The entity whose state the command changed.
    pub changed: Option<Entity>,
}

/// Applies validated register commands and reads the answer from the model under the same
/// lock; a refusal is counted and logged.
fn execute<R>(
    gateway: &Gateway,
    topic: &str,
    commands: Result<Vec<Command>, CommandError>,
    answer: impl FnOnce(&Model) -> R,
) -> Result<R, ReplyError<NeasmartCode>> {
    match commands {
        Ok(commands) => {
            let now = Instant::now();
            let reply = {
                let mut model = gateway.model();
                for c in &commands {
                    model.command(*c, now);
                }
                gateway
                    .metrics
                    .pending_commands
                    .set(model.pending_count() as f64);
                answer(&model)
            };
            gateway.metrics.commands.add(commands.len() as u64);
            tracing::info!(%topic, ?commands, "command applied; pending until the base reads it");
            Ok(reply)
        }
        Err(e) => Err(refuse(gateway, topic, e)),
    }
}

/// Counts and logs a refused command.
fn refuse(gateway: &Gateway, topic: &str, e: CommandError) -> ReplyError<NeasmartCode> {
    gateway.metrics.commands_rejected.inc();
    tracing::info!(%topic, code = %e.code, error = %e, "command refused");
    e.into()
}

/// Answers `request` with `outcome`; the entity changed when the command was applied.
fn handled<C: Request>(request: &Incoming<C>, outcome: &Outcome<C>, entity: Entity) -> Handled {
    Handled {
        reply: request.reply_payload(outcome),
        changed: outcome.is_ok().then_some(entity),
    }
}

/// Applies a command message received on `topic` (the full topic, under `prefix`).
pub fn apply_command(
    topic: &str,
    payload: &[u8],
    prefix: &str,
    gateway: &Gateway,
    settings: &BusSettings,
) -> Handled {
    let rest = topic
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or("");
    let levels: Vec<&str> = rest.split('/').collect();
    match topics::parse(&levels) {
        Some(Parsed::ZoneSet(z)) => {
            let request = Incoming::<ZoneSet>::parse(topic, payload);
            let commands =
                api::zone_command(z, &request.body, settings.range).map(|c| c.commands());
            let outcome = execute(gateway, topic, commands, |m| ZoneReply {
                state: m.zone_state(z),
            });
            handled(&request, &outcome, Entity::Zone(z))
        }
        Some(Parsed::ModeSet) => {
            let request = Incoming::<ModeSet>::parse(topic, payload);
            let commands = api::mode_command(&request.body).map(|m| vec![Command::GlobalMode(m)]);
            let outcome = execute(gateway, topic, commands, |m| GlobalReply {
                state: m.global_state(),
            });
            handled(&request, &outcome, Entity::Global)
        }
        Some(Parsed::StateSet) => {
            let request = Incoming::<StateSet>::parse(topic, payload);
            let commands = api::state_command(&request.body).map(|s| vec![Command::GlobalState(s)]);
            let outcome = execute(gateway, topic, commands, |m| GlobalReply {
                state: m.global_state(),
            });
            handled(&request, &outcome, Entity::Global)
        }
        Some(Parsed::State(_) | Parsed::Status) | None => {
            // A zone outside the map, or a topic that is no command: refused in the envelope
            // every command shares.
            let request = Incoming::<ZoneSet>::parse(topic, payload);
            let e = CommandError {
                code: NeasmartCode::UnknownCommand,
                message: format!("no command on topic {topic}"),
            };
            let outcome: Outcome<ZoneSet> = Err(refuse(gateway, topic, e));
            Handled {
                reply: request.reply_payload(&outcome),
                changed: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use watchpost_bus::rpc::{decode_reply, encode_request};
    use watchpost_neasmart::{ModelConfig, ZoneId};

    use super::*;
    use crate::metrics::GatewayMetrics;

    fn gateway() -> Gateway {
        Gateway::new(
            Model::new(ModelConfig::default()),
            [240].into_iter().collect(),
            GatewayMetrics::new(&watchpost_runtime::Registry::new()),
        )
    }

    fn settings() -> BusSettings {
        BusSettings {
            range: SetpointRange::default(),
            stale_after: Duration::from_secs(180),
            command_timeout: Duration::from_secs(30),
            startup_global_mode: 0,
            startup_global_state: 0,
        }
    }

    /// Where the test requests ask to be answered.
    const ANSWER_TO: &str = "wp/reply/c/7";

    fn apply(g: &Gateway, topic: &str, payload: &str) -> Handled {
        apply_command(topic, payload.as_bytes(), "wp", g, &settings())
    }

    /// Sends `body` (JSON) as a request that wants an answer.
    fn ask(g: &Gateway, topic: &str, body: &str) -> Handled {
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        let payload = encode_request(&body, "7", ANSWER_TO).unwrap();
        apply_command(topic, &payload, "wp", g, &settings())
    }

    fn reply<R: serde::de::DeserializeOwned>(h: &Handled) -> Result<R, ReplyError<NeasmartCode>> {
        let (to, payload) = h.reply.as_ref().expect("a reply");
        assert_eq!(to, ANSWER_TO);
        decode_reply(payload).unwrap()
    }

    #[test]
    fn zone_commands_are_applied_and_answered_with_the_zone_state() {
        let g = gateway();
        let h = ask(
            &g,
            "wp/neasmart/zone/1/3/set",
            r#"{"setpoint": 21.5, "state": 2}"#,
        );
        let z = ZoneId::new(1, 3).unwrap();
        assert_eq!(h.changed, Some(Entity::Zone(z)));
        let state = reply::<ZoneReply>(&h).unwrap().state;
        assert_eq!(state.id, z);
        assert_eq!((state.state, state.setpoint), (2, Some(21.5)));
        assert!(state.pending_state && state.pending_setpoint);
        assert_eq!(g.model().pending_count(), 2);

        // Refusals carry the validator's code and change nothing.
        let h = ask(&g, "wp/neasmart/zone/1/3/set", r#"{"setpoint": 60}"#);
        assert_eq!(h.changed, None);
        let e = reply::<ZoneReply>(&h).unwrap_err();
        assert_eq!(e.code, NeasmartCode::SetpointOutOfRange);
        assert_eq!(g.model().pending_count(), 2);
    }

    #[test]
    fn global_commands_in_other_clients_spellings() {
        let g = gateway();
        // Extra fields from another MQTT client, no reply address: applied, not answered.
        let h = apply(&g, "wp/neasmart/mode/set", r#"{"mode": 3, "source": "ha"}"#);
        assert!(h.reply.is_none());
        assert_eq!(h.changed, Some(Entity::Global));
        assert_eq!(g.model().global().mode, 3);
        let h = ask(&g, "wp/neasmart/state/set", r#"{"state": 5}"#);
        let state = reply::<GlobalReply>(&h).unwrap().state;
        assert_eq!((state.mode, state.state), (3, 5));
        assert_eq!(state.state_name, "party");
        let h = ask(&g, "wp/neasmart/state/set", r#"{"state": "party"}"#);
        assert_eq!(
            reply::<GlobalReply>(&h).unwrap_err().code,
            NeasmartCode::InvalidBody
        );
        let h = apply(&g, "wp/neasmart/mode/set", "auto");
        assert!(h.reply.is_none() && h.changed.is_none());
    }

    #[test]
    fn a_zone_outside_the_map_is_an_unknown_command() {
        let g = gateway();
        let h = ask(&g, "wp/neasmart/zone/9/1/set", r#"{"state": 1}"#);
        assert_eq!(h.changed, None);
        assert_eq!(
            reply::<ZoneReply>(&h).unwrap_err().code,
            NeasmartCode::UnknownCommand
        );
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339_ms(1_798_761_599_000), "2026-12-31T23:59:59.000Z");
    }
}
