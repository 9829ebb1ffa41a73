//! Relay outputs on Modbus relay modules (the worker is the master).
//!
//! Modules are grouped by port (a TCP endpoint or a serial line); each port has one task that
//! owns the link and is the port's **arbiter**: it serves the modules on the port round-robin,
//! one request at a time, and skips a module whose circuit breaker is open, so a slow or dead
//! module costs the others at most one timeout per breaker period. Separate ports run
//! independently.
//!
//! Each channel is reconciled towards a *desired* state: a command, a pulse (on for N ms, then
//! off), or the followed bus topic sets it; the task writes the coil (FC05) when the module's
//! reported state differs, and reads the coils back (FC01) every poll interval, which also
//! probes an open breaker. After a start, channels without a command adopt the state the
//! module reports (a restart does not switch outputs), pulse channels are released.
//! State and breaker status are published retained; commands get a reply once the coil write
//! has succeeded or failed. The payloads, commands, replies and error codes are the relay
//! contract's ([`watchpost_contract::relay`]).

pub mod breaker;
pub mod master;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use watchpost_bus::{Incoming, ReplyError, Retain};
use watchpost_config::fieldbus::{RelayMode, RelayModuleConfig};
use watchpost_contract::relay::{self, ChannelReply, ModuleStatus, RelayCode};
use watchpost_modbus::{Request, Response};
use watchpost_runtime::Registry;
use watchpost_runtime::metrics::{Counter, Gauge};

use crate::gateway::unix_ms_now;
use crate::outbox::Outbox;
use breaker::{Breaker, BreakerState};
use master::{Link, RelayError};

/// What a command asks of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Set(bool),
    Pulse(Duration),
    /// A pulse of the channel's configured length, whatever its mode.
    Test,
    /// The followed topic's state changed.
    Follow(bool),
}

/// What a set or test command is answered with.
pub type ChannelOutcome = Result<ChannelReply, ReplyError<RelayCode>>;

/// A set or test command received from the bus, waiting for its answer.
#[derive(Debug)]
pub enum Waiter {
    Set(Incoming<relay::Set>),
    Test(Incoming<relay::Test>),
}

impl Waiter {
    /// Queues the answer (nothing for a command sent without a reply address).
    pub fn answer(&self, outbox: &Outbox, outcome: &ChannelOutcome) {
        let reply = match self {
            Waiter::Set(r) => r.reply_payload(outcome),
            Waiter::Test(r) => r.reply_payload(outcome),
        };
        if let Some((topic, payload)) = reply {
            outbox.put_bytes(topic, payload, Retain::No);
        }
    }

    fn refuse(&self, outbox: &Outbox, code: RelayCode, message: impl Into<String>) {
        self.answer(outbox, &Err(ReplyError::new(code, message)));
    }
}

/// A command routed to a port task.
#[derive(Debug)]
pub struct PortCommand {
    pub module: usize,
    pub channel: usize,
    pub action: Action,
    /// The command to answer; `None` for follower updates.
    pub request: Option<Waiter>,
}

/// Where a module and its channels live.
#[derive(Debug, Clone)]
struct Route {
    port: usize,
    module: usize,
    channels: BTreeMap<String, usize>,
}

/// The relay side of the worker: one task per port, and the routing of commands to them.
#[derive(Debug)]
pub struct Relays {
    ports: Vec<mpsc::Sender<PortCommand>>,
    routes: BTreeMap<String, Route>,
    /// Follower subscriptions: topic → (module name, channel index).
    followers: Vec<(String, String, usize)>,
    prefix: String,
}

/// Builds a topic under the bus prefix from the contract's levels.
fn levels_topic(prefix: &str, levels: &[String]) -> String {
    let refs: Vec<&str> = levels.iter().map(String::as_str).collect();
    watchpost_bus::topic::build(prefix, &refs)
}

impl Relays {
    /// Starts one task per port for `modules`. Tasks stop on `shutdown`.
    /// `board_relays` are the opened GPIO relays for the module with `board = true`, or why
    /// they could not be opened.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        modules: &[RelayModuleConfig],
        board: Option<&watchpost_board::BoardDescription>,
        mut board_relays: Option<
            Result<Vec<watchpost_board::Relay<watchpost_board::BoardPin>>, String>,
        >,
        prefix: &str,
        outbox: Arc<Outbox>,
        registry: &Registry,
        shutdown: &CancellationToken,
        tasks: &mut tokio::task::JoinSet<()>,
    ) -> Self {
        // Group modules by port, keeping configuration order.
        let mut groups: Vec<(String, Vec<&RelayModuleConfig>)> = Vec::new();
        for m in modules {
            let key = match (&m.tcp, &m.serial) {
                _ if m.board => "board".to_string(),
                (Some(e), _) => format!("tcp:{e}"),
                (None, Some(s)) => format!("serial:{}", s.port.display()),
                (None, None) => continue,
            };
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => v.push(m),
                None => groups.push((key, vec![m])),
            }
        }
        let mut ports = Vec::new();
        let mut routes = BTreeMap::new();
        let mut followers = Vec::new();
        for (port_idx, (key, mods)) in groups.into_iter().enumerate() {
            let link = match (&mods[0].tcp, &mods[0].serial) {
                _ if mods[0].board => match board_relays.take() {
                    Some(Ok(relays)) => Link::board(relays),
                    Some(Err(reason)) => Link::board_unavailable(reason),
                    None => Link::board_unavailable("not opened".into()),
                },
                (Some(e), _) => Link::tcp(e.clone()),
                (None, Some(s)) => Link::rtu(s.clone(), board.cloned()),
                (None, None) => continue,
            };
            let (tx, rx) = mpsc::channel(256);
            let mut states = Vec::new();
            for (mi, m) in mods.iter().enumerate() {
                let channels: BTreeMap<String, usize> = m
                    .channels
                    .iter()
                    .enumerate()
                    .map(|(ci, c)| (c.name.to_string(), ci))
                    .collect();
                for (ci, c) in m.channels.iter().enumerate() {
                    if let (RelayMode::Follower, Some(t)) = (c.mode, &c.follow_topic) {
                        followers.push((t.to_string(), m.name.to_string(), ci));
                    }
                }
                routes.insert(
                    m.name.to_string(),
                    Route {
                        port: port_idx,
                        module: mi,
                        channels,
                    },
                );
                states.push(ModuleState::new((*m).clone(), registry));
            }
            let task = PortTask {
                key,
                link,
                modules: states,
                next: 0,
                rx,
                outbox: outbox.clone(),
                prefix: prefix.to_string(),
            };
            let shutdown = shutdown.clone();
            tasks.spawn(task.run(shutdown));
            ports.push(tx);
        }
        Self {
            ports,
            routes,
            followers,
            prefix: prefix.to_string(),
        }
    }

    /// Topics the worker must subscribe to for followers.
    pub fn follow_topics(&self) -> Vec<String> {
        let mut v: Vec<String> = self.followers.iter().map(|(t, _, _)| t.clone()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// Command filters (`<prefix>/relay/+/channel/+/set` and `.../test`).
    pub fn command_filters(&self) -> Vec<String> {
        if self.routes.is_empty() {
            return Vec::new();
        }
        ["set", "test"]
            .into_iter()
            .map(|verb| {
                watchpost_bus::topic::filter(
                    &self.prefix,
                    &[relay::AREA, "+", "channel", "+", verb],
                )
            })
            .collect()
    }

    /// Routes a state message of a followed topic.
    pub fn on_follow(&self, topic_name: &str, payload: &[u8]) {
        let Some(on) = truthy(payload) else {
            tracing::debug!(
                topic = topic_name,
                "follower payload is neither on nor off; ignored"
            );
            return;
        };
        for (t, module, channel) in &self.followers {
            if t == topic_name
                && let Some(r) = self.routes.get(module)
            {
                self.send(r, *channel, Action::Follow(on), None, &Outbox::new());
            }
        }
    }

    /// Routes a command message (`.../set` or `.../test`); refusals are answered at once.
    /// Set bodies come from any MQTT client and are read in every accepted spelling
    /// ([`relay::Set::from_body`]).
    pub fn on_command(&self, topic_name: &str, payload: &[u8], outbox: &Outbox) {
        let rest = topic_name
            .strip_prefix(&self.prefix)
            .and_then(|r| r.strip_prefix('/'))
            .unwrap_or("");
        let levels: Vec<&str> = rest.split('/').collect();
        let (module, channel, waiter) = match levels.as_slice() {
            [relay::AREA, m, "channel", c, "set"] => {
                (*m, *c, Waiter::Set(Incoming::parse(topic_name, payload)))
            }
            [relay::AREA, m, "channel", c, "test"] => {
                (*m, *c, Waiter::Test(Incoming::parse(topic_name, payload)))
            }
            _ => return,
        };
        let Some(route) = self.routes.get(module) else {
            waiter.refuse(
                outbox,
                RelayCode::RelayNotFound,
                format!("no relay module `{module}`"),
            );
            return;
        };
        let Some(&ci) = route.channels.get(channel) else {
            waiter.refuse(
                outbox,
                RelayCode::ChannelNotFound,
                format!("relay module `{module}` has no channel `{channel}`"),
            );
            return;
        };
        let action = match &waiter {
            Waiter::Test(_) => Action::Test,
            Waiter::Set(request) => match relay::Set::from_body(&request.body) {
                Ok(set) => Action::from(set),
                Err(e) => {
                    waiter.answer(outbox, &Err(e));
                    return;
                }
            },
        };
        self.send(route, ci, action, Some(waiter), outbox);
    }

    fn send(
        &self,
        route: &Route,
        channel: usize,
        action: Action,
        request: Option<Waiter>,
        outbox: &Outbox,
    ) {
        let cmd = PortCommand {
            module: route.module,
            channel,
            action,
            request,
        };
        if let Err(e) = self.ports[route.port].try_send(cmd) {
            let cmd = match e {
                mpsc::error::TrySendError::Full(c) | mpsc::error::TrySendError::Closed(c) => c,
            };
            if let Some(waiter) = &cmd.request {
                waiter.refuse(outbox, RelayCode::RelayBusy, "the relay port is overloaded");
            }
        }
    }
}

impl From<relay::Set> for Action {
    fn from(set: relay::Set) -> Self {
        match set {
            relay::Set::Switch { on } => Action::Set(on),
            relay::Set::Pulse { pulse_ms } => Action::Pulse(Duration::from_millis(pulse_ms)),
        }
    }
}

/// Interprets the payload of a followed topic as on/off ([`relay::on_off`]); a payload that
/// is not JSON is read as a plain string.
pub fn truthy(payload: &[u8]) -> Option<bool> {
    match serde_json::from_slice::<Value>(payload) {
        Ok(v) => relay::on_off(&v),
        Err(_) => relay::on_off(&Value::String(
            String::from_utf8_lossy(payload).trim().to_string(),
        )),
    }
}

#[derive(Debug)]
struct Channel {
    number: u16,
    name: String,
    mode: RelayMode,
    pulse: Duration,
    invert: bool,
    /// `None`: adopt what the module reports.
    desired: Option<bool>,
    actual: Option<bool>,
    /// A pulse waiting for its coil write (its length), or running (its end).
    pulse_pending: Option<Duration>,
    pulse_until: Option<Instant>,
    waiters: Vec<Waiter>,
}

#[derive(Debug)]
struct ModuleState {
    cfg: RelayModuleConfig,
    breaker: Breaker,
    channels: Vec<Channel>,
    coil_count: u16,
    next_poll: Instant,
    last_error: Option<String>,
    last_ok_unix_ms: Option<u64>,
    published: Option<ModuleStatus>,
    requests: Counter,
    failures: Counter,
    breaker_gauge: Gauge,
    breaker_opens: Counter,
}

#[derive(Debug, Clone, Copy)]
enum Work {
    Write(usize),
    Poll,
}

impl ModuleState {
    fn new(cfg: RelayModuleConfig, registry: &Registry) -> Self {
        let name = cfg.name.to_string();
        let labels = [("module", name.as_str())];
        let channels = cfg
            .channels
            .iter()
            .map(|c| Channel {
                number: c.channel,
                name: c.name.to_string(),
                mode: c.mode,
                pulse: Duration::from_millis(c.pulse_ms),
                invert: c.invert,
                desired: (c.mode == RelayMode::Pulse).then_some(false),
                actual: None,
                pulse_pending: None,
                pulse_until: None,
                waiters: Vec::new(),
            })
            .collect();
        let coil_count = cfg.channels.iter().map(|c| c.channel).max().unwrap_or(1);
        Self {
            breaker: Breaker::new(
                cfg.breaker_failures,
                Duration::from_millis(cfg.breaker_open_ms),
            ),
            channels,
            coil_count,
            next_poll: Instant::now(),
            last_error: None,
            last_ok_unix_ms: None,
            published: None,
            requests: registry.counter(
                "watchpost_fieldbus_relay_requests_total",
                "Requests sent to relay modules.",
                &labels,
            ),
            failures: registry.counter(
                "watchpost_fieldbus_relay_failures_total",
                "Failed requests to relay modules (timeout, connection, exception).",
                &labels,
            ),
            breaker_gauge: registry.gauge(
                "watchpost_fieldbus_relay_breaker_state",
                "Circuit breaker of a relay module: 0 closed, 1 half-open, 2 open.",
                &labels,
            ),
            breaker_opens: registry.counter(
                "watchpost_fieldbus_relay_breaker_opens_total",
                "Times the circuit breaker of a relay module opened.",
                &labels,
            ),
            cfg,
        }
    }

    fn expire_pulses(&mut self, now: Instant) {
        for c in &mut self.channels {
            if c.pulse_until.is_some_and(|t| now >= t) {
                c.pulse_until = None;
                c.desired = Some(false);
            }
        }
    }

    fn work(&self, now: Instant) -> Option<Work> {
        if !self.breaker.would_allow(now) {
            return None;
        }
        if let Some(i) = self
            .channels
            .iter()
            .position(|c| c.actual.is_some() && c.desired.is_some() && c.actual != c.desired)
        {
            return Some(Work::Write(i));
        }
        if now >= self.next_poll || self.channels.iter().any(|c| c.actual.is_none()) {
            return Some(Work::Poll);
        }
        None
    }

    /// When this module next needs the port.
    fn next_due(&self) -> Instant {
        let mut t = self.next_poll;
        for c in &self.channels {
            if let Some(p) = c.pulse_until {
                t = t.min(p);
            }
        }
        if let Some(r) = self.breaker.reopens_at() {
            t = t.max(r);
        }
        t
    }

    fn apply(
        &mut self,
        channel: usize,
        action: Action,
        request: Option<Waiter>,
        now: Instant,
        outbox: &Outbox,
    ) {
        let module = self.cfg.name.to_string();
        let open = !self.breaker.would_allow(now);
        let Some(c) = self.channels.get_mut(channel) else {
            return;
        };
        if let Action::Follow(on) = action {
            c.desired = Some(on ^ c.invert);
            return;
        }
        if open {
            if let Some(waiter) = &request {
                let e = RelayError::BreakerOpen { module };
                waiter.refuse(outbox, e.code(), e.to_string());
            }
            return;
        }
        match action {
            Action::Set(true) if c.mode == RelayMode::Pulse => {
                c.desired = Some(true);
                c.pulse_pending = Some(c.pulse);
            }
            Action::Set(on) => {
                c.desired = Some(on);
                c.pulse_pending = None;
                c.pulse_until = None;
            }
            Action::Pulse(d) => {
                c.desired = Some(true);
                c.pulse_pending = Some(d);
            }
            Action::Test => {
                c.desired = Some(true);
                c.pulse_pending = Some(c.pulse);
            }
            Action::Follow(_) => {}
        }
        // A pulse on a coil that is already on restarts at once.
        if c.actual == Some(true)
            && c.desired == Some(true)
            && let Some(d) = c.pulse_pending.take()
        {
            c.pulse_until = Some(now + d);
        }
        if let Some(waiter) = request {
            if c.actual.is_some() && c.actual == c.desired {
                waiter.answer(outbox, &Ok(c.reply(&module)));
            } else {
                c.waiters.push(waiter);
            }
        }
    }

    fn on_ok(&mut self) {
        self.breaker.on_success();
        self.last_error = None;
        self.last_ok_unix_ms = Some(unix_ms_now());
    }

    fn on_error(&mut self, e: &RelayError, now: Instant, outbox: &Outbox) {
        let was_open = matches!(self.breaker.state(now), BreakerState::Open { .. });
        self.failures.inc();
        self.breaker.on_failure(now);
        if !was_open && matches!(self.breaker.state(now), BreakerState::Open { .. }) {
            self.breaker_opens.inc();
            tracing::warn!(module = %self.cfg.name, error = %e, "relay module unreachable; circuit breaker open");
        }
        self.last_error = Some(e.to_string());
        let refusal: ChannelOutcome = Err(ReplyError::new(e.code(), e.to_string()));
        for c in &mut self.channels {
            for waiter in c.waiters.drain(..) {
                waiter.answer(outbox, &refusal);
            }
        }
    }

    /// The module's retained status at `now`.
    fn status(&self, now: Instant) -> ModuleStatus {
        let name = self.cfg.name.to_string();
        ModuleStatus {
            unit_id: self.cfg.unit_id.get(),
            breaker: self.breaker.state(now).contract(),
            consecutive_failures: self.breaker.consecutive_failures(),
            last_error: self.last_error.clone(),
            last_ok_unix_ms: self.last_ok_unix_ms,
            channels: self.channels.iter().map(|c| c.state(&name)).collect(),
            module: name,
        }
    }
}

impl Channel {
    /// The channel's retained state.
    fn state(&self, module: &str) -> relay::ChannelState {
        relay::ChannelState {
            module: module.to_string(),
            channel: self.number,
            name: self.name.clone(),
            mode: match self.mode {
                RelayMode::Manual => relay::Mode::Manual,
                RelayMode::Pulse => relay::Mode::Pulse,
                RelayMode::Follower => relay::Mode::Follower,
            },
            on: self.actual,
            desired: self.desired,
            pulse_active: self.pulse_until.is_some() || self.pulse_pending.is_some(),
        }
    }

    /// The answer to a command that the channel now carries out.
    fn reply(&self, module: &str) -> ChannelReply {
        ChannelReply {
            channel: self.state(module),
        }
    }

    fn answer_waiters(&mut self, module: &str, outbox: &Outbox) {
        if self.waiters.is_empty() {
            return;
        }
        let done: ChannelOutcome = Ok(self.reply(module));
        for waiter in self.waiters.drain(..) {
            waiter.answer(outbox, &done);
        }
    }
}

struct PortTask {
    key: String,
    link: Link,
    modules: Vec<ModuleState>,
    next: usize,
    rx: mpsc::Receiver<PortCommand>,
    outbox: Arc<Outbox>,
    prefix: String,
}

impl PortTask {
    async fn run(mut self, shutdown: CancellationToken) {
        tracing::debug!(port = %self.key, modules = self.modules.len(), "relay port started");
        loop {
            while let Ok(cmd) = self.rx.try_recv() {
                self.command(cmd);
            }
            let now = Instant::now();
            for m in &mut self.modules {
                m.expire_pulses(now);
            }
            self.publish(now);
            match self.pick(now) {
                Some((mi, work)) => {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = self.execute(mi, work) => {}
                    }
                }
                None => {
                    let wake = self
                        .modules
                        .iter()
                        .map(ModuleState::next_due)
                        .min()
                        .unwrap_or(now + Duration::from_secs(1))
                        .max(now + Duration::from_millis(1));
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        cmd = self.rx.recv() => match cmd {
                            Some(cmd) => self.command(cmd),
                            None => return,
                        },
                        _ = tokio::time::sleep_until(wake.into()) => {}
                    }
                }
            }
        }
    }

    fn command(&mut self, cmd: PortCommand) {
        let now = Instant::now();
        if let Some(m) = self.modules.get_mut(cmd.module) {
            m.apply(cmd.channel, cmd.action, cmd.request, now, &self.outbox);
        }
    }

    /// Round-robin over the modules with work, starting after the last one served.
    fn pick(&mut self, now: Instant) -> Option<(usize, Work)> {
        let n = self.modules.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            if let Some(w) = self.modules[i].work(now) {
                self.next = (i + 1) % n;
                return Some((i, w));
            }
        }
        None
    }

    async fn execute(&mut self, mi: usize, work: Work) {
        let now = Instant::now();
        let m = &mut self.modules[mi];
        if !m.breaker.try_acquire(now) {
            return;
        }
        let unit = m.cfg.unit_id.get();
        let timeout = Duration::from_millis(m.cfg.timeout_ms);
        let request = match work {
            Work::Write(ci) => Request::WriteSingleCoil {
                address: m.cfg.coil_offset + m.channels[ci].number - 1,
                on: m.channels[ci].desired.unwrap_or(false),
            },
            Work::Poll => Request::ReadCoils {
                address: m.cfg.coil_offset,
                count: m.coil_count,
            },
        };
        m.requests.inc();
        let result = self.link.request(unit, &request, timeout).await;
        let now = Instant::now();
        let m = &mut self.modules[mi];
        match (work, result) {
            (Work::Write(ci), Ok(Response::WriteSingleCoil { on, .. })) => {
                m.on_ok();
                let name = m.cfg.name.to_string();
                let c = &mut m.channels[ci];
                c.actual = Some(on);
                if on && let Some(d) = c.pulse_pending.take() {
                    c.pulse_until = Some(now + d);
                }
                c.answer_waiters(&name, &self.outbox);
            }
            (Work::Poll, Ok(Response::ReadCoils(bits))) => {
                m.on_ok();
                m.next_poll = now + Duration::from_millis(m.cfg.poll_interval_ms);
                let name = m.cfg.name.to_string();
                for c in &mut m.channels {
                    let on = bits.get(usize::from(c.number - 1)).copied();
                    c.actual = on;
                    if c.desired.is_none() {
                        c.desired = on;
                    }
                    if c.actual.is_some() && c.actual == c.desired {
                        c.answer_waiters(&name, &self.outbox);
                    }
                }
            }
            (_, Ok(other)) => {
                let e = RelayError::Response {
                    peer: self.key.clone(),
                    unit,
                    source: watchpost_modbus::ResponseError::WrongFunction {
                        expected: request.function(),
                        got: other.function(),
                    },
                };
                m.on_error(&e, now, &self.outbox);
            }
            (_, Err(e)) => {
                m.next_poll = now + Duration::from_millis(m.cfg.poll_interval_ms);
                m.on_error(&e, now, &self.outbox);
            }
        }
        m.breaker_gauge.set(m.breaker.state(now).gauge());
    }

    /// Publishes the modules and channels whose state changed.
    fn publish(&mut self, now: Instant) {
        for m in &mut self.modules {
            m.breaker_gauge.set(m.breaker.state(now).gauge());
            let status = m.status(now);
            if m.published.as_ref() == Some(&status) {
                continue;
            }
            let previous = m.published.take();
            for (i, c) in status.channels.iter().enumerate() {
                let before = previous.as_ref().and_then(|p| p.channels.get(i));
                if before != Some(c) {
                    self.outbox.put_json(
                        levels_topic(&self.prefix, &relay::channel(&status.module, &c.name)),
                        c,
                        Retain::Yes,
                    );
                }
            }
            self.outbox.put_json(
                levels_topic(&self.prefix, &relay::status(&status.module)),
                &status,
                Retain::Yes,
            );
            m.published = Some(status);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truthy_payloads() {
        for on in [
            &b"true"[..],
            b"1",
            b"\"ON\"",
            b"on",
            b"{\"on\": true}",
            b"{\"state\": \"on\"}",
            b"2",
        ] {
            assert_eq!(truthy(on), Some(true), "{}", String::from_utf8_lossy(on));
        }
        for off in [&b"false"[..], b"0", b"OFF", b"{\"state\": \"off\"}"] {
            assert_eq!(truthy(off), Some(false), "{}", String::from_utf8_lossy(off));
        }
        assert_eq!(truthy(b"maybe"), None);
        assert_eq!(truthy(b"[]"), None);
    }

    use watchpost_contract::rpc::{decode_reply, encode_request};

    fn refusal(outbox: &Outbox, to: &str) -> ReplyError<RelayCode> {
        let queued = outbox.take();
        let (payload, retain) = queued.get(to).expect("an answer on the reply topic");
        assert_eq!(*retain, Retain::No);
        decode_reply::<ChannelReply, RelayCode>(payload)
            .unwrap()
            .unwrap_err()
    }

    #[tokio::test]
    async fn commands_that_cannot_be_routed_are_refused_with_their_code() {
        let module: RelayModuleConfig = serde_json::from_value(serde_json::json!({
            "name": "out", "tcp": "127.0.0.1:9",
            "channels": [{"channel": 3, "name": "door", "mode": "manual"}],
        }))
        .unwrap();
        let outbox = Arc::new(Outbox::new());
        let shutdown = CancellationToken::new();
        let mut tasks = tokio::task::JoinSet::new();
        let relays = Relays::start(
            &[module],
            None,
            None,
            "wp",
            outbox.clone(),
            &Registry::new(),
            &shutdown,
            &mut tasks,
        );
        assert_eq!(
            relays.command_filters(),
            ["wp/relay/+/channel/+/set", "wp/relay/+/channel/+/test"]
        );
        let ask = |topic: &str, body: Value| {
            let payload = encode_request(&body, "1", "wp/reply/c/1").unwrap();
            relays.on_command(topic, &payload, &outbox);
            refusal(&outbox, "wp/reply/c/1")
        };
        let e = ask(
            "wp/relay/nope/channel/door/set",
            serde_json::json!({"on": true}),
        );
        assert_eq!(e.code, RelayCode::RelayNotFound);
        let e = ask("wp/relay/out/channel/nope/test", serde_json::json!({}));
        assert_eq!(e.code, RelayCode::ChannelNotFound);
        let e = ask(
            "wp/relay/out/channel/door/set",
            serde_json::json!({"on": "maybe"}),
        );
        assert_eq!(e.code, RelayCode::InvalidBody);
        assert_eq!(e.details, serde_json::json!({}));
        // Without a reply address nothing is answered.
        relays.on_command("wp/relay/nope/channel/door/set", b"ON", &outbox);
        assert!(outbox.take().is_empty());
        shutdown.cancel();
        while tasks.join_next().await.is_some() {}
    }

    #[test]
    fn set_commands_become_actions() {
        assert_eq!(
            Action::from(relay::Set::Switch { on: true }),
            Action::Set(true)
        );
        assert_eq!(
            Action::from(relay::Set::Pulse { pulse_ms: 250 }),
            Action::Pulse(Duration::from_millis(250))
        );
    }
}
