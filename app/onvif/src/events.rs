//! The event service: ONVIF Events over WS-BaseNotification pull points, sans-IO.
//!
//! Role: NVRs and Home Assistant's `onvif` integration turn a camera's events into binary
//! sensors. The appliance knows motion, detected objects, alarm inputs (its sensors, its
//! thermal rules) and whether each camera delivers video; the `rtsp` worker feeds those states
//! in as [`EventUpdate`]s and this module keeps them as ONVIF *properties* and hands them to
//! pull-point subscribers.
//!
//! Design:
//! - Every event is a property (`IsProperty="true"`): a topic, a source token and one boolean
//!   data item. The current value of each is kept, so a new subscription (and
//!   `SetSynchronizationPoint`) starts with an `Initialized` message per property, then gets a
//!   `Changed` message per change. Home Assistant creates its entities from that first pull.
//! - Topics are the ones Home Assistant's parsers read: `tns1:VideoSource/MotionAlarm`
//!   (`Source`/`State`), `tns1:RuleEngine/MyRuleDetector/{PeopleDetect,VehicleDetect,DogCatDetect}`
//!   (`Source`/`State`), `tns1:Device/Trigger/DigitalInput` (`InputToken`/`LogicalState`), plus
//!   `tns1:VideoSource/SignalLoss` (`Source`/`State`) for a camera without video.
//! - Subscriptions are identified by their address (`/onvif/subscription_<n>`), since clients
//!   built on zeep send no WS-Addressing reference parameters. Each has a termination time
//!   (requested as an `xs:duration` or an absolute time, clamped to
//!   [`EventLimits::max_termination_s`]) and a bounded queue; when the queue is full the
//!   oldest message is dropped. At most [`EventLimits::max_subscriptions`] exist; creating one
//!   more ends the least recently used (clients that never unsubscribe, such as onvif-zeep
//!   which subscribes in its constructor, would otherwise lock everybody out).
//! - A `PullMessages` with nothing queued is not answered here: the service tells the I/O
//!   layer to wait (up to the requested timeout) and to ask again when an update arrives.
//!
//! Failure: unknown or expired subscriptions get `Sender / ter:InvalidArgVal /
//! ter:ResourceUnknown`; unreadable times get `Sender / ter:InvalidArgVal`. Nothing panics on
//! input.

use std::collections::{BTreeMap, VecDeque};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::soap::{Fault, FaultCode};
use crate::xml::XmlWriter;

/// The classes object detection reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectClass {
    Person,
    Vehicle,
    Animal,
}

impl ObjectClass {
    pub const ALL: [ObjectClass; 3] = [
        ObjectClass::Person,
        ObjectClass::Vehicle,
        ObjectClass::Animal,
    ];

    /// The class as detection names it (`person`, `vehicle`, `animal`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "person" => Some(ObjectClass::Person),
            "vehicle" => Some(ObjectClass::Vehicle),
            "animal" => Some(ObjectClass::Animal),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectClass::Person => "person",
            ObjectClass::Vehicle => "vehicle",
            ObjectClass::Animal => "animal",
        }
    }
}

/// An event topic this device publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Topic {
    /// Motion in a video source.
    Motion,
    /// An object of a class seen in a video source.
    Object(ObjectClass),
    /// An alarm input: a sensor in alarm, a thermal rule active.
    DigitalInput,
    /// A video source without video (its camera offline).
    SignalLoss,
}

impl Topic {
    pub const ALL: [Topic; 6] = [
        Topic::Motion,
        Topic::SignalLoss,
        Topic::Object(ObjectClass::Person),
        Topic::Object(ObjectClass::Vehicle),
        Topic::Object(ObjectClass::Animal),
        Topic::DigitalInput,
    ];

    /// The concrete topic expression (prefix `tns1` = `http://www.onvif.org/ver10/topics`).
    pub fn expression(self) -> &'static str {
        match self {
            Topic::Motion => "tns1:VideoSource/MotionAlarm",
            Topic::SignalLoss => "tns1:VideoSource/SignalLoss",
            Topic::Object(ObjectClass::Person) => "tns1:RuleEngine/MyRuleDetector/PeopleDetect",
            Topic::Object(ObjectClass::Vehicle) => "tns1:RuleEngine/MyRuleDetector/VehicleDetect",
            Topic::Object(ObjectClass::Animal) => "tns1:RuleEngine/MyRuleDetector/DogCatDetect",
            Topic::DigitalInput => "tns1:Device/Trigger/DigitalInput",
        }
    }

    /// Name of the source item (its type is `tt:ReferenceToken`).
    pub fn source_item(self) -> &'static str {
        match self {
            Topic::DigitalInput => "InputToken",
            Topic::Motion | Topic::SignalLoss | Topic::Object(_) => "Source",
        }
    }

    /// Name of the boolean data item.
    pub fn data_item(self) -> &'static str {
        match self {
            Topic::DigitalInput => "LogicalState",
            Topic::Motion | Topic::SignalLoss | Topic::Object(_) => "State",
        }
    }
}

/// A property's new value, from the appliance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventUpdate {
    pub topic: Topic,
    /// The source token: a video source token (`cam_<id>`), a sensor id, `thermal_<cam>_<rule>`.
    pub source: String,
    pub state: bool,
}

/// `PropertyOperation` of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyOperation {
    Initialized,
    Changed,
    Deleted,
}

impl PropertyOperation {
    fn as_str(self) -> &'static str {
        match self {
            PropertyOperation::Initialized => "Initialized",
            PropertyOperation::Changed => "Changed",
            PropertyOperation::Deleted => "Deleted",
        }
    }
}

/// One notification, as queued for a subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: Topic,
    pub source: String,
    pub state: bool,
    /// When the value was set, Unix milliseconds.
    pub at_ms: i64,
    pub operation: PropertyOperation,
}

/// Bounds of the event service.
#[derive(Debug, Clone, Copy)]
pub struct EventLimits {
    pub max_subscriptions: usize,
    /// Messages kept per subscription; the oldest is dropped beyond.
    pub queue: usize,
    /// Lifetime of a subscription created without an InitialTerminationTime.
    pub default_termination_s: i64,
    /// Longest lifetime granted at once (Create or Renew).
    pub max_termination_s: i64,
    /// Longest PullMessages wait.
    pub max_pull_timeout_s: i64,
    /// Most messages in one PullMessages answer.
    pub max_messages: u32,
    /// Most properties kept (sources beyond are ignored).
    pub max_properties: usize,
}

impl Default for EventLimits {
    fn default() -> Self {
        Self {
            max_subscriptions: 32,
            queue: 256,
            default_termination_s: 60,
            max_termination_s: 3600,
            max_pull_timeout_s: 60,
            max_messages: 1000,
            max_properties: 4096,
        }
    }
}

#[derive(Debug)]
struct Subscription {
    /// Unix second after which the subscription is gone.
    expires: i64,
    last_used: i64,
    queue: VecDeque<Message>,
}

/// The properties and the subscriptions.
#[derive(Debug)]
pub struct Events {
    states: BTreeMap<(Topic, String), (bool, i64)>,
    subs: BTreeMap<u64, Subscription>,
    next_id: u64,
    limits: EventLimits,
    dropped: u64,
}

impl Default for Events {
    fn default() -> Self {
        Self::new(EventLimits::default())
    }
}

/// The fault for a subscription that does not exist (any more).
pub fn unknown_subscription(id: Option<u64>) -> Fault {
    Fault::new(
        FaultCode::Sender,
        &["InvalidArgVal", "ResourceUnknown"],
        match id {
            Some(id) => format!("no subscription {id} (expired or unsubscribed)"),
            None => "this operation needs a subscription's address".to_string(),
        },
    )
}

fn invalid_time(what: &str, value: &str) -> Fault {
    Fault::new(
        FaultCode::Sender,
        &["InvalidArgVal"],
        format!(
            "{what} `{}` is neither an xs:duration nor a dateTime",
            value.chars().take(64).collect::<String>()
        ),
    )
}

/// Parses an `xs:duration` (`PT60S`, `PT10M`, `P1DT2H`, fractions of seconds) into whole
/// seconds, rounding up. Years and months are refused (their length is not fixed).
pub fn parse_duration_s(text: &str) -> Option<i64> {
    let t = text.trim();
    let rest = t.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, t),
        Some(_) => return None,
        None => (rest, ""),
    };
    if date.is_empty() && time.is_empty() {
        return None;
    }
    let mut total_ms: i64 = 0;
    let mut parse_part = |part: &str, units: &[(char, i64)]| -> Option<()> {
        let mut num = String::new();
        let mut last_unit = None;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
                continue;
            }
            let pos = units.iter().position(|(u, _)| *u == c)?;
            // Units must come in order, each once.
            if last_unit.is_some_and(|l| pos <= l) || num.is_empty() {
                return None;
            }
            last_unit = Some(pos);
            let ms_per = units[pos].1;
            let value: f64 = num.parse().ok()?;
            if num.contains('.') && c != 'S' {
                return None;
            }
            let ms = (value * ms_per as f64).ceil();
            if !(0.0..1e15).contains(&ms) {
                return None;
            }
            total_ms = total_ms.checked_add(ms as i64)?;
            num.clear();
        }
        num.is_empty().then_some(())
    };
    parse_part(date, &[('D', 86_400_000)])?;
    parse_part(time, &[('H', 3_600_000), ('M', 60_000), ('S', 1000)])?;
    Some((total_ms + 999) / 1000)
}

/// A requested termination time, relative (`xs:duration`) or absolute, as an absolute Unix
/// second, clamped to `[now + 1, now + max]`.
fn termination(
    requested: Option<&str>,
    now: i64,
    limits: &EventLimits,
    what: &str,
) -> Result<i64, Fault> {
    let wanted = match requested.map(str::trim).filter(|s| !s.is_empty()) {
        None => now + limits.default_termination_s,
        Some(text) if text.starts_with('P') => {
            now + parse_duration_s(text).ok_or_else(|| invalid_time(what, text))?
        }
        Some(text) => OffsetDateTime::parse(text, &Rfc3339)
            .map(|t| t.unix_timestamp())
            .map_err(|_| invalid_time(what, text))?,
    };
    Ok(wanted.clamp(now + 1, now + limits.max_termination_s))
}

impl Events {
    pub fn new(limits: EventLimits) -> Self {
        Self {
            states: BTreeMap::new(),
            subs: BTreeMap::new(),
            next_id: 1,
            limits,
            dropped: 0,
        }
    }

    pub fn limits(&self) -> &EventLimits {
        &self.limits
    }

    /// How many subscriptions exist now.
    pub fn subscriptions(&self) -> usize {
        self.subs.len()
    }

    /// Messages dropped from full queues since start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The current value of a property.
    pub fn state(&self, topic: Topic, source: &str) -> Option<bool> {
        self.states
            .get(&(topic, source.to_string()))
            .map(|(s, _)| *s)
    }

    fn push_all(&mut self, msg: &Message) {
        for sub in self.subs.values_mut() {
            if sub.queue.len() >= self.limits.queue.max(1) {
                sub.queue.pop_front();
                self.dropped += 1;
            }
            sub.queue.push_back(msg.clone());
        }
    }

    /// Sets a property; queues a message to every subscriber when its value changed (or it is
    /// new). Returns whether anything was queued.
    pub fn update(&mut self, update: EventUpdate, now_ms: i64) -> bool {
        let key = (update.topic, update.source);
        let operation = match self.states.get(&key) {
            Some((state, _)) if *state == update.state => return false,
            Some(_) => PropertyOperation::Changed,
            None if self.states.len() >= self.limits.max_properties => return false,
            None => PropertyOperation::Initialized,
        };
        self.states.insert(key.clone(), (update.state, now_ms));
        let msg = Message {
            topic: key.0,
            source: key.1,
            state: update.state,
            at_ms: now_ms,
            operation,
        };
        self.push_all(&msg);
        true
    }

    /// Removes a property (a sensor that is gone); subscribers get a `Deleted` message.
    pub fn remove(&mut self, topic: Topic, source: &str, now_ms: i64) -> bool {
        let Some((state, _)) = self.states.remove(&(topic, source.to_string())) else {
            return false;
        };
        let msg = Message {
            topic,
            source: source.to_string(),
            state,
            at_ms: now_ms,
            operation: PropertyOperation::Deleted,
        };
        self.push_all(&msg);
        true
    }

    fn initialized(&self) -> impl Iterator<Item = Message> + '_ {
        self.states
            .iter()
            .map(|((topic, source), (state, at_ms))| Message {
                topic: *topic,
                source: source.clone(),
                state: *state,
                at_ms: *at_ms,
                operation: PropertyOperation::Initialized,
            })
    }

    /// Forgets subscriptions whose termination time has passed.
    pub fn expire(&mut self, now: i64) {
        self.subs.retain(|_, s| s.expires >= now);
    }

    /// CreatePullPointSubscription: returns the new subscription's id and termination time.
    pub fn create(
        &mut self,
        now: i64,
        initial_termination: Option<&str>,
    ) -> Result<(u64, i64), Fault> {
        let expires = termination(
            initial_termination,
            now,
            &self.limits,
            "InitialTerminationTime",
        )?;
        self.expire(now);
        while self.subs.len() >= self.limits.max_subscriptions.max(1) {
            let oldest = self
                .subs
                .iter()
                .min_by_key(|(id, s)| (s.last_used, **id))
                .map(|(id, _)| *id);
            match oldest {
                Some(id) => {
                    self.subs.remove(&id);
                }
                None => break,
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut queue: VecDeque<Message> = self.initialized().collect();
        while queue.len() > self.limits.queue.max(1) {
            queue.pop_front();
        }
        self.subs.insert(
            id,
            Subscription {
                expires,
                last_used: now,
                queue,
            },
        );
        Ok((id, expires))
    }

    fn live(&mut self, id: u64, now: i64) -> Result<&mut Subscription, Fault> {
        self.expire(now);
        let sub = self
            .subs
            .get_mut(&id)
            .ok_or_else(|| unknown_subscription(Some(id)))?;
        sub.last_used = now;
        Ok(sub)
    }

    /// Whether a pull on `id` would return at once: messages are queued, or the subscription
    /// is gone (the pull then faults).
    pub fn ready(&self, id: u64, now: i64) -> bool {
        self.subs
            .get(&id)
            .is_none_or(|s| s.expires < now || !s.queue.is_empty())
    }

    /// PullMessages: up to `limit` queued messages, oldest first, and the termination time.
    pub fn pull(&mut self, id: u64, now: i64, limit: u32) -> Result<(Vec<Message>, i64), Fault> {
        let max = limit.clamp(1, self.limits.max_messages) as usize;
        let sub = self.live(id, now)?;
        let n = sub.queue.len().min(max);
        Ok((sub.queue.drain(..n).collect(), sub.expires))
    }

    /// The termination time of a live subscription.
    pub fn expires(&mut self, id: u64, now: i64) -> Result<i64, Fault> {
        Ok(self.live(id, now)?.expires)
    }

    /// Renew: a new termination time.
    pub fn renew(&mut self, id: u64, now: i64, requested: Option<&str>) -> Result<i64, Fault> {
        let expires = termination(requested, now, &self.limits, "TerminationTime")?;
        let sub = self.live(id, now)?;
        sub.expires = expires;
        Ok(expires)
    }

    /// Unsubscribe.
    pub fn unsubscribe(&mut self, id: u64, now: i64) -> Result<(), Fault> {
        self.live(id, now)?;
        self.subs.remove(&id);
        Ok(())
    }

    /// SetSynchronizationPoint: every property again, as `Initialized`.
    pub fn synchronize(&mut self, id: u64, now: i64) -> Result<(), Fault> {
        let all: Vec<Message> = self.initialized().collect();
        let cap = self.limits.queue.max(1);
        let sub = self.live(id, now)?;
        for m in all {
            if sub.queue.len() >= cap {
                sub.queue.pop_front();
            }
            sub.queue.push_back(m);
        }
        Ok(())
    }
}

/// The dialect of the topic expressions in messages.
pub const CONCRETE_SET: &str = "http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet";
const WSNT_CONCRETE: &str = "http://docs.oasis-open.org/wsnt/t-1/TopicExpression/Concrete";
const ITEM_FILTER: &str = "http://www.onvif.org/ver10/tev/messageContentFilter/ItemFilter";

fn utc(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .format(&Rfc3339)
        .unwrap_or_default()
}

fn utc_s(s: i64) -> String {
    utc(s.saturating_mul(1000))
}

/// The `tev:Capabilities` attributes (GetServiceCapabilities and GetServices).
pub(crate) fn capabilities_body(w: &mut XmlWriter, element: &str, limits: &EventLimits) {
    let max = limits.max_subscriptions.to_string();
    w.empty(
        element,
        &[
            ("WSSubscriptionPolicySupport", "false"),
            ("WSPullPointSupport", "true"),
            ("WSPausableSubscriptionManagerInterfaceSupport", "false"),
            ("MaxNotificationProducers", "0"),
            ("MaxPullPoints", &max),
            ("PersistentNotificationStorage", "false"),
        ],
    );
}

pub(crate) fn service_capabilities(w: &mut XmlWriter, limits: &EventLimits) {
    w.open("tev:GetServiceCapabilitiesResponse", &[]);
    capabilities_body(w, "tev:Capabilities", limits);
    w.close("tev:GetServiceCapabilitiesResponse");
}

fn description(w: &mut XmlWriter, topic: Topic) {
    w.open("tt:MessageDescription", &[("IsProperty", "true")]);
    w.open("tt:Source", &[]);
    w.empty(
        "tt:SimpleItemDescription",
        &[("Name", topic.source_item()), ("Type", "tt:ReferenceToken")],
    );
    w.close("tt:Source");
    w.open("tt:Data", &[]);
    w.empty(
        "tt:SimpleItemDescription",
        &[("Name", topic.data_item()), ("Type", "xs:boolean")],
    );
    w.close("tt:Data");
    w.close("tt:MessageDescription");
}

/// GetEventPropertiesResponse: the fixed topic set, one description per topic.
pub(crate) fn event_properties(w: &mut XmlWriter) {
    w.open("tev:GetEventPropertiesResponse", &[]);
    w.leaf(
        "tev:TopicNamespaceLocation",
        "http://www.onvif.org/onvif/ver10/topics/topicns.xml",
    );
    w.boolean("wsnt:FixedTopicSet", true);
    w.open("wstop:TopicSet", &[]);
    // The tree of topics: each expression's levels nest; the first level carries the tns1
    // prefix, the rest are unqualified, as ONVIF devices write them.
    let mut open: Vec<String> = Vec::new();
    for topic in Topic::ALL {
        let expr = topic.expression();
        let levels: Vec<&str> = expr.split('/').collect();
        let common = open
            .iter()
            .zip(&levels)
            .take_while(|(a, b)| a.as_str() == **b)
            .count();
        while open.len() > common {
            if let Some(name) = open.pop() {
                w.close(&name);
            }
        }
        for (i, level) in levels.iter().enumerate().skip(common) {
            if i + 1 == levels.len() {
                w.open(level, &[("wstop:topic", "true")]);
                description(w, topic);
                w.close(level);
            } else {
                w.open(level, &[]);
                open.push((*level).to_string());
            }
        }
    }
    while let Some(name) = open.pop() {
        w.close(&name);
    }
    w.close("wstop:TopicSet");
    w.leaf("wsnt:TopicExpressionDialect", CONCRETE_SET);
    w.leaf("wsnt:TopicExpressionDialect", WSNT_CONCRETE);
    w.leaf("tev:MessageContentFilterDialect", ITEM_FILTER);
    w.leaf(
        "tev:MessageContentSchemaLocation",
        "http://www.onvif.org/onvif/ver10/schema/onvif.xsd",
    );
    w.close("tev:GetEventPropertiesResponse");
}

/// CreatePullPointSubscriptionResponse.
pub(crate) fn created(w: &mut XmlWriter, address: &str, now: i64, expires: i64) {
    w.open("tev:CreatePullPointSubscriptionResponse", &[]);
    w.open("tev:SubscriptionReference", &[]);
    w.leaf("wsa5:Address", address);
    w.close("tev:SubscriptionReference");
    w.leaf("wsnt:CurrentTime", &utc_s(now));
    w.leaf("wsnt:TerminationTime", &utc_s(expires));
    w.close("tev:CreatePullPointSubscriptionResponse");
}

fn simple_item(w: &mut XmlWriter, parent: &str, name: &str, value: &str) {
    w.open(parent, &[]);
    w.empty("tt:SimpleItem", &[("Name", name), ("Value", value)]);
    w.close(parent);
}

fn message(w: &mut XmlWriter, m: &Message) {
    w.open("wsnt:NotificationMessage", &[]);
    w.leaf_with(
        "wsnt:Topic",
        &[("Dialect", CONCRETE_SET)],
        m.topic.expression(),
    );
    w.open("wsnt:Message", &[]);
    let at = utc(m.at_ms);
    w.open(
        "tt:Message",
        &[
            ("UtcTime", &at),
            ("PropertyOperation", m.operation.as_str()),
        ],
    );
    simple_item(w, "tt:Source", m.topic.source_item(), &m.source);
    simple_item(
        w,
        "tt:Data",
        m.topic.data_item(),
        if m.state { "true" } else { "false" },
    );
    w.close("tt:Message");
    w.close("wsnt:Message");
    w.close("wsnt:NotificationMessage");
}

/// PullMessagesResponse.
pub(crate) fn pulled(w: &mut XmlWriter, now: i64, expires: i64, messages: &[Message]) {
    w.open("tev:PullMessagesResponse", &[]);
    w.leaf("tev:CurrentTime", &utc_s(now));
    w.leaf("tev:TerminationTime", &utc_s(expires));
    for m in messages {
        message(w, m);
    }
    w.close("tev:PullMessagesResponse");
}

/// RenewResponse.
pub(crate) fn renewed(w: &mut XmlWriter, now: i64, expires: i64) {
    w.open("wsnt:RenewResponse", &[]);
    w.leaf("wsnt:TerminationTime", &utc_s(expires));
    w.leaf("wsnt:CurrentTime", &utc_s(now));
    w.close("wsnt:RenewResponse");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upd(topic: Topic, source: &str, state: bool) -> EventUpdate {
        EventUpdate {
            topic,
            source: source.into(),
            state,
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_s("PT60S"), Some(60));
        assert_eq!(parse_duration_s("PT10M"), Some(600));
        assert_eq!(parse_duration_s("PT1H2M3.5S"), Some(3724));
        assert_eq!(parse_duration_s("P1DT1S"), Some(86_401));
        assert_eq!(parse_duration_s("PT0.001S"), Some(1));
        for bad in [
            "", "P", "PT", "60", "PT10", "PT1S1M", "P1Y", "PT1.5M", "PTS", "PT-1S",
        ] {
            assert_eq!(parse_duration_s(bad), None, "{bad}");
        }
    }

    #[test]
    fn subscription_lifecycle() {
        let mut ev = Events::default();
        let now = 1_800_000_000;
        ev.update(upd(Topic::SignalLoss, "cam_a", false), now * 1000);
        let (id, expires) = ev.create(now, Some("PT10M")).unwrap();
        assert_eq!(expires, now + 600);
        // The first pull holds the current state.
        let (msgs, _) = ev.pull(id, now, 100).unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].operation, PropertyOperation::Initialized);
        assert!(!ev.ready(id, now));
        // A change, then the same value again (nothing), then a new property.
        assert!(ev.update(upd(Topic::SignalLoss, "cam_a", true), now * 1000));
        assert!(!ev.update(upd(Topic::SignalLoss, "cam_a", true), now * 1000));
        assert!(ev.update(upd(Topic::Motion, "cam_a", true), now * 1000));
        assert!(ev.ready(id, now));
        let (msgs, _) = ev.pull(id, now, 1).unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].operation, PropertyOperation::Changed);
        let (msgs, _) = ev.pull(id, now, 10).unwrap();
        assert_eq!((msgs[0].topic, msgs[0].state), (Topic::Motion, true));
        ev.synchronize(id, now).unwrap();
        assert_eq!(ev.pull(id, now, 10).unwrap().0.len(), 2);
        // Renew with an absolute time, then let it expire.
        let t = utc_s(now + 30);
        assert_eq!(ev.renew(id, now, Some(&t)).unwrap(), now + 30);
        assert!(ev.pull(id, now + 31, 10).is_err());
        assert!(ev.ready(id, now + 31));
        let (id2, _) = ev.create(now, None).unwrap();
        ev.unsubscribe(id2, now).unwrap();
        assert!(ev.unsubscribe(id2, now).is_err());
        assert!(ev.create(now, Some("tomorrow")).is_err());
        // Requests beyond the cap are clamped.
        let (_, e) = ev.create(now, Some("P30D")).unwrap();
        assert_eq!(e, now + 3600);
    }

    #[test]
    fn bounded_subscriptions_and_queues() {
        let mut ev = Events::new(EventLimits {
            max_subscriptions: 2,
            queue: 3,
            ..EventLimits::default()
        });
        let now = 1_800_000_000;
        let (a, _) = ev.create(now, None).unwrap();
        let (b, _) = ev.create(now + 1, None).unwrap();
        ev.pull(a, now + 2, 1).unwrap();
        // A third ends the least recently used (b: a was pulled since).
        let (c, _) = ev.create(now + 3, None).unwrap();
        assert_eq!(ev.subscriptions(), 2);
        assert!(ev.pull(b, now + 3, 1).is_err());
        for i in 0..5 {
            ev.update(upd(Topic::DigitalInput, &format!("s{i}"), true), 0);
        }
        let (msgs, _) = ev.pull(c, now + 3, 10).unwrap();
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[0].source, "s2");
        assert!(ev.dropped() >= 2);
        assert!(ev.remove(Topic::DigitalInput, "s4", 0));
        let (msgs, _) = ev.pull(c, now + 3, 10).unwrap();
        assert_eq!(msgs[0].operation, PropertyOperation::Deleted);
    }
}
