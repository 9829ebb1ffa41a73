//! Topic mappings between the appliance's bus and an upstream broker (no I/O).
//!
//! A mapping is mosquitto's bridge `topic` line: for every topic `t` matching `pattern`, the
//! local topic `<local_prefix>t` is the remote topic `<remote_prefix>t`. `out` mappings
//! subscribe to `<local_prefix><pattern>` on the bus, `in` mappings to
//! `<remote_prefix><pattern>` upstream; `both` does both, with an [`EchoFilter`] so that a
//! message forwarded one way is not sent back the other way.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use watchpost_bus::topic_matches;
use watchpost_config::upstream::{Qos, RetainPolicy, TopicMapping};

/// The mappings of one upstream.
#[derive(Debug, Clone)]
pub struct Mappings {
    items: Vec<TopicMapping>,
}

impl Mappings {
    pub fn new(items: Vec<TopicMapping>) -> Self {
        Self { items }
    }

    /// The bus filters to subscribe to (`out` and `both` mappings), without duplicates.
    pub fn local_filters(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for m in self.items.iter().filter(|m| m.direction.is_out()) {
            let f = format!("{}{}", m.local_prefix, m.pattern);
            if !out.contains(&f) {
                out.push(f);
            }
        }
        out
    }

    /// The upstream filters to subscribe to (`in` and `both` mappings) with their QoS and
    /// whether a `both` mapping uses them, without duplicates (the highest QoS wins).
    pub fn remote_filters(&self) -> Vec<(String, Qos, bool)> {
        let mut out: Vec<(String, Qos, bool)> = Vec::new();
        for m in self.items.iter().filter(|m| m.direction.is_in()) {
            let f = format!("{}{}", m.remote_prefix, m.pattern);
            let both = m.direction.is_out();
            match out.iter_mut().find(|(g, _, _)| *g == f) {
                Some((_, q, b)) => {
                    if m.qos == Qos::AtLeastOnce {
                        *q = Qos::AtLeastOnce;
                    }
                    *b |= both;
                }
                None => out.push((f, m.qos, both)),
            }
        }
        out
    }

    /// The remote topic and QoS for a local topic: the first `out`/`both` mapping that
    /// matches, with whether it is a `both` mapping.
    pub fn outbound(&self, local: &str) -> Option<Route> {
        self.items
            .iter()
            .filter(|m| m.direction.is_out())
            .find_map(|m| {
                let rest = local.strip_prefix(m.local_prefix.as_str())?;
                topic_matches(m.pattern.as_str(), rest).then(|| Route {
                    topic: format!("{}{rest}", m.remote_prefix),
                    qos: m.qos,
                    retain: m.retain,
                    both: m.direction.is_in(),
                })
            })
    }

    /// The local topic for a remote topic: the first `in`/`both` mapping that matches.
    pub fn inbound(&self, remote: &str) -> Option<Route> {
        self.items
            .iter()
            .filter(|m| m.direction.is_in())
            .find_map(|m| {
                let rest = remote.strip_prefix(m.remote_prefix.as_str())?;
                topic_matches(m.pattern.as_str(), rest).then(|| Route {
                    topic: format!("{}{rest}", m.local_prefix),
                    qos: m.qos,
                    retain: m.retain,
                    both: m.direction.is_out(),
                })
            })
    }
}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub topic: String,
    pub qos: Qos,
    pub retain: RetainPolicy,
    /// The mapping forwards both ways (echo suppression applies).
    pub both: bool,
}

/// Messages recently forwarded one way, so that their echo coming back the other way (a
/// `both` mapping sees its own forwards) is not forwarded again. Keyed by topic and a hash of
/// the payload; each forward suppresses one echo, within `ttl`.
#[derive(Debug)]
pub struct EchoFilter {
    ttl: Duration,
    seen: HashMap<(String, u64), (u32, Instant)>,
}

impl EchoFilter {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            seen: HashMap::new(),
        }
    }

    /// A message was forwarded to `topic`: expect it back once.
    pub fn forwarded(&mut self, topic: &str, payload: &[u8], now: Instant) {
        if self.seen.len() > 10_000 {
            self.expire(now);
        }
        let e = self
            .seen
            .entry((topic.to_string(), hash(payload)))
            .or_insert((0, now));
        e.0 += 1;
        e.1 = now;
    }

    /// Whether a message arriving on `topic` is the echo of a forward (consumes it).
    pub fn is_echo(&mut self, topic: &str, payload: &[u8], now: Instant) -> bool {
        let key = (topic.to_string(), hash(payload));
        let Some(e) = self.seen.get_mut(&key) else {
            return false;
        };
        let fresh = now.duration_since(e.1) <= self.ttl;
        e.0 = e.0.saturating_sub(1);
        if e.0 == 0 || !fresh {
            self.seen.remove(&key);
        }
        fresh
    }

    fn expire(&mut self, now: Instant) {
        let ttl = self.ttl;
        self.seen.retain(|_, (_, t)| now.duration_since(*t) <= ttl);
    }
}

/// FNV-1a: stable and cheap; a collision only suppresses one identical-looking echo.
fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mappings(toml_text: &str) -> Mappings {
        #[derive(serde::Deserialize)]
        struct W {
            mapping: Vec<TopicMapping>,
        }
        Mappings::new(toml::from_str::<W>(toml_text).unwrap().mapping)
    }

    #[test]
    fn prefixes_are_rewritten_both_ways() {
        let m = mappings(
            r##"[[mapping]]
               pattern = "sensors/+/state"
               direction = "out"
               local_prefix = "watchpost/"
               remote_prefix = "sites/17/"
               [[mapping]]
               pattern = "cmd/#"
               direction = "both"
               qos = 0
               local_prefix = "watchpost/remote/"
               remote_prefix = "sites/17/"
               [[mapping]]
               pattern = "#"
               direction = "in"
               remote_prefix = "broadcast/"
               local_prefix = "watchpost/broadcast/"
            "##,
        );
        assert_eq!(
            m.local_filters(),
            ["watchpost/sensors/+/state", "watchpost/remote/cmd/#"]
        );
        assert_eq!(
            m.remote_filters(),
            [
                ("sites/17/cmd/#".to_string(), Qos::AtMostOnce, true),
                ("broadcast/#".to_string(), Qos::AtLeastOnce, false)
            ]
        );
        let r = m.outbound("watchpost/sensors/door1/state").unwrap();
        assert_eq!(r.topic, "sites/17/sensors/door1/state");
        assert_eq!(r.qos, Qos::AtLeastOnce);
        assert!(!r.both);
        assert_eq!(m.outbound("watchpost/sensors/door1/events"), None);
        assert_eq!(m.outbound("other/sensors/door1/state"), None);
        let r = m.outbound("watchpost/remote/cmd/relay/1").unwrap();
        assert_eq!(r.topic, "sites/17/cmd/relay/1");
        assert!(r.both);
        let r = m.inbound("sites/17/cmd/relay/1").unwrap();
        assert_eq!(r.topic, "watchpost/remote/cmd/relay/1");
        assert_eq!(
            m.inbound("broadcast/a/b").unwrap().topic,
            "watchpost/broadcast/a/b"
        );
        // An out-only mapping does not bring anything in.
        assert_eq!(m.inbound("sites/17/sensors/door1/state"), None);
    }

    #[test]
    fn an_echo_is_suppressed_once_and_only_while_fresh() {
        let mut f = EchoFilter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        f.forwarded("a/b", b"1", t0);
        f.forwarded("a/b", b"1", t0);
        assert!(!f.is_echo("a/b", b"2", t0));
        assert!(f.is_echo("a/b", b"1", t0));
        assert!(f.is_echo("a/b", b"1", t0));
        assert!(!f.is_echo("a/b", b"1", t0));
        f.forwarded("a/c", b"1", t0);
        assert!(!f.is_echo("a/c", b"1", t0 + Duration::from_secs(11)));
        assert!(!f.is_echo("a/c", b"1", t0));
    }
}
