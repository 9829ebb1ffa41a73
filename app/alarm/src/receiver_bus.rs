//! The alarm receivers on the bus, for Home Assistant and other MQTT clients: each receiver's
//! retained status (`alarms/receiver/<id>/status`, [`ReceiverStatus`]) and its test command
//! (`alarms/receiver/<id>/test`, [`TestRequest`] answered with [`TestQueued`] or an
//! [`AlarmCode`]). The REST API's `/api/v1/alarms/queues` and `POST
//! /api/v1/alarms/receivers/{id}/test` read and do the same through the [`AlarmHandle`].
//!
//! **Status.** Every 500 ms the publisher takes each receiver's status from the live counters
//! ([`crate::status::ReceiverStats::status`]) and publishes those that changed since they were
//! last published (so changes are coalesced to at most one message per 500 ms per receiver),
//! and any not published for [`REFRESH`] again (a broker that lost its retained messages
//! has them back within that time). Which statuses to publish is decided by [`Announcer`],
//! sans-IO. The publisher also reads the status topics back: a retained status of a receiver
//! that is not configured (removed from the file before this start, removed through the API,
//! or with `[alarms] enabled = false`, none at all) is cleared with an empty retained payload,
//! once the service knows the configured set.
//!
//! **Test command.** Answered like the REST API's test: the test alarm is queued as a real one
//! (SIA RX / Contact ID 601), and the answer says it is queued, not delivered; the receiver's
//! status shows the delivery. A retained message on a test topic is ignored (a client that
//! retained its command would otherwise start a test at every hub start).
//!
//! **Failure and shutdown.** A subscription that cannot be made is logged and leaves that half
//! out (the rest of the alarm service runs on); a publish that fails is tried again on the
//! next tick. Both tasks end on the hub's shutdown token.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use watchpost_bus::{Bus, Incoming, Message, Retain};
use watchpost_contract::alarm::{
    AlarmCode, RECEIVER_STATUSES, RECEIVER_TESTS, ReceiverStatus, TestRequest, receiver_status,
    receiver_status_id, receiver_test_id,
};
use watchpost_contract::rpc::{Outcome, ReplyError};
use watchpost_runtime::logging::LogLimiter;

use crate::handle::{AlarmHandle, Shared};
use crate::{AlarmError, now_ms};

/// Statuses are taken (and changes published) this often.
pub const COALESCE: Duration = Duration::from_millis(500);

/// A status unchanged this long is published again.
pub const REFRESH: Duration = Duration::from_secs(60);

/// What the publisher has published and seen on the status topics: decides what to publish.
#[derive(Debug, Default)]
pub struct Announcer {
    /// Per receiver: the last status published (its `updated_unix_ms` is when).
    published: BTreeMap<String, ReceiverStatus>,
    /// Receivers with a retained status on the broker, as read back from the status topics.
    retained: BTreeSet<String>,
}

/// One publish: a receiver's status, or `None` to clear a receiver's retained status.
pub type Publish = (String, Option<ReceiverStatus>);

impl Announcer {
    /// A message read back from `alarms/receiver/<id>/status`.
    pub fn seen(&mut self, id: &str, empty: bool) {
        if empty {
            self.retained.remove(id);
        } else {
            self.retained.insert(id.to_string());
        }
    }

    /// What to publish at `now_ms` given the receivers' statuses now (`None` until the
    /// configured set is known): every status that differs from the one last published or was
    /// published [`REFRESH`] ago or longer, and a clearing for every receiver published or
    /// retained that is not among them. Call [`Announcer::published`] for each one that went
    /// out.
    pub fn due(&self, current: Option<&[ReceiverStatus]>, now_ms: i64) -> Vec<Publish> {
        let Some(current) = current else {
            return Vec::new();
        };
        let refresh = i64::try_from(REFRESH.as_millis()).unwrap_or(i64::MAX);
        let mut out: Vec<Publish> = current
            .iter()
            .filter(|s| match self.published.get(&s.id) {
                None => true,
                Some(last) => !same_but_time(last, s) || now_ms - last.updated_unix_ms >= refresh,
            })
            .map(|s| (s.id.clone(), Some(s.clone())))
            .collect();
        let configured: BTreeSet<&str> = current.iter().map(|s| s.id.as_str()).collect();
        let gone: BTreeSet<&String> = self
            .published
            .keys()
            .chain(self.retained.iter())
            .filter(|id| !configured.contains(id.as_str()))
            .collect();
        out.extend(gone.into_iter().map(|id| (id.clone(), None)));
        out
    }

    /// `p` was published.
    pub fn published(&mut self, p: Publish) {
        match p {
            (id, Some(status)) => {
                self.published.insert(id, status);
            }
            (id, None) => {
                self.published.remove(&id);
                self.retained.remove(&id);
            }
        }
    }
}

/// Two statuses that differ at most in when they were taken.
fn same_but_time(a: &ReceiverStatus, b: &ReceiverStatus) -> bool {
    ReceiverStatus {
        updated_unix_ms: b.updated_unix_ms,
        ..a.clone()
    } == *b
}

/// Every receiver's status now, or `None` before the configured set is known.
fn statuses(shared: &Shared, now_ms: i64) -> Option<Vec<ReceiverStatus>> {
    if !shared.receivers_loaded.load(Ordering::Acquire) {
        return None;
    }
    Some(
        shared
            .receivers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|r| r.status(now_ms))
            .collect(),
    )
}

/// The `<id>` of a `<prefix>/alarms/receiver/<id>/<leaf>` topic, by `parse`.
fn topic_id(
    prefix: &str,
    topic: &str,
    parse: for<'a> fn(&[&'a str]) -> Option<&'a str>,
) -> Option<String> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?;
    let levels: Vec<&str> = rest.split('/').collect();
    parse(&levels).map(str::to_string)
}

/// Publishes the receivers' statuses until `shutdown`.
pub(crate) async fn publish_statuses(bus: Bus, shared: Arc<Shared>, shutdown: CancellationToken) {
    let filter = bus.filter(&RECEIVER_STATUSES);
    let mut read_back = match bus.subscribe(&filter).await {
        Ok(rx) => Some(rx),
        Err(e) => {
            tracing::warn!(filter, error = %e, "cannot read receiver statuses back; statuses of removed receivers stay retained");
            None
        }
    };
    let mut announcer = Announcer::default();
    let mut tick = tokio::time::interval(COALESCE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let failed = LogLimiter::new(3, Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            m = recv(&mut read_back) => {
                match m {
                    Some(m) => {
                        if let Some(id) = topic_id(bus.prefix(), &m.topic, receiver_status_id) {
                            announcer.seen(&id, m.payload.is_empty());
                        }
                    }
                    None => read_back = None,
                }
            }
            _ = tick.tick() => {
                let now = now_ms();
                let current = statuses(&shared, now);
                for p in announcer.due(current.as_deref(), now) {
                    let levels = receiver_status(&p.0);
                    let levels: Vec<&str> = levels.iter().map(String::as_str).collect();
                    let topic = bus.topic(&levels);
                    let sent = match &p.1 {
                        Some(status) => bus.publish_json(&topic, status, Retain::Yes).await,
                        None => {
                            tracing::info!(receiver = %p.0, "receiver not configured: its retained status is cleared");
                            bus.publish_bytes(&topic, Vec::new(), Retain::Yes).await
                        }
                    };
                    match sent {
                        Ok(()) => announcer.published(p),
                        Err(e) => {
                            if let Some(suppressed) = failed.check("status") {
                                tracing::warn!(topic, error = %e, suppressed, "cannot publish a receiver status; trying again");
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The next message of an optional subscription (pending for ever without one).
async fn recv(rx: &mut Option<tokio::sync::mpsc::Receiver<Message>>) -> Option<Message> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Answers the receivers' test commands until `shutdown`.
pub(crate) async fn serve_tests(bus: Bus, handle: AlarmHandle, shutdown: CancellationToken) {
    let filter = bus.filter(&RECEIVER_TESTS);
    let mut rx = match bus.subscribe(&filter).await {
        Ok(rx) => rx,
        Err(e) => {
            tracing::warn!(filter, error = %e, "cannot subscribe to receiver test commands");
            return;
        }
    };
    let retained = LogLimiter::new(3, Duration::from_secs(60));
    loop {
        let m = tokio::select! {
            _ = shutdown.cancelled() => return,
            m = rx.recv() => match m { Some(m) => m, None => return },
        };
        let Some(id) = topic_id(bus.prefix(), &m.topic, receiver_test_id) else {
            continue;
        };
        if m.retain {
            if let Some(suppressed) = retained.check("retained") {
                tracing::warn!(topic = %m.topic, suppressed, "retained test command ignored");
            }
            continue;
        }
        let incoming = Incoming::<TestRequest>::parse(&m.topic, &m.payload);
        let outcome: Outcome<TestRequest> = match TestRequest::from_body(&incoming.body) {
            Ok(request) => handle.test_alarm(&id, request).await.map_err(refusal),
            Err(e) => Err(e),
        };
        match &outcome {
            Ok(q) => {
                tracing::info!(receiver = %id, alarm_id = q.alarm_id, "test alarm queued (bus command)")
            }
            Err(e) => {
                tracing::info!(receiver = %id, code = %e.code, reason = %e.message, "test alarm refused (bus command)")
            }
        }
        if let Some((to, payload)) = incoming.reply_payload(&outcome)
            && let Err(e) = bus.publish_bytes(&to, payload, Retain::No).await
        {
            tracing::debug!(error = %e, "cannot answer a test command");
            return;
        }
    }
}

/// The bus answer to a test the service refused (the REST API answers the same codes).
pub fn refusal(e: AlarmError) -> ReplyError<AlarmCode> {
    let code = match &e {
        AlarmError::UnknownReceiver { .. } => AlarmCode::ReceiverNotFound,
        AlarmError::QueueFull { .. } => AlarmCode::QueueFull,
        AlarmError::Disabled => AlarmCode::AlarmsDisabled,
        AlarmError::Stopped | AlarmError::AlreadyServed => AlarmCode::AlarmsUnavailable,
        AlarmError::Receiver { .. } => AlarmCode::InvalidTest,
        AlarmError::OpenQueue { .. }
        | AlarmError::Queue { .. }
        | AlarmError::LoadState { .. }
        | AlarmError::SaveState { .. }
        | AlarmError::HttpClient { .. }
        | AlarmError::Subscribe { .. }
        | AlarmError::Task { .. } => AlarmCode::AlarmServiceError,
        AlarmError::ManagedSecret { .. }
        | AlarmError::ManagedUnreadable { .. }
        | AlarmError::DeviceKey { .. } => AlarmCode::AlarmSecrets,
    };
    ReplyError::new(code, e.to_string())
}

#[cfg(test)]
mod tests {
    use watchpost_contract::alarm::{DeliveryState, ReceiverType};

    use super::*;

    fn status(id: &str, delivered: u64, at: i64) -> ReceiverStatus {
        ReceiverStatus {
            id: id.into(),
            kind: ReceiverType::Sia,
            name: None,
            link_up: delivered > 0,
            state: DeliveryState::Idle,
            last_error: None,
            queued: 0,
            capacity: 100,
            oldest_queued_unix_ms: None,
            delivered_total: delivered,
            failed_total: 0,
            not_understood_total: 0,
            given_up_total: 0,
            attempts_total: delivered,
            rejected_total: 0,
            dropped_total: 0,
            last_delivered_unix_ms: None,
            last_attempt_unix_ms: None,
            last_endpoint: None,
            clock_offset_s: Some(0),
            updated_unix_ms: at,
        }
    }

    fn ids(p: &[Publish]) -> Vec<(&str, bool)> {
        p.iter().map(|(id, s)| (id.as_str(), s.is_some())).collect()
    }

    /// Publishes everything due, as the task does when the bus takes it.
    fn publish(a: &mut Announcer, current: Option<&[ReceiverStatus]>, now: i64) -> Vec<Publish> {
        let due = a.due(current, now);
        for p in &due {
            a.published(p.clone());
        }
        due
    }

    #[test]
    fn changes_are_published_and_unchanged_statuses_every_refresh() {
        let mut a = Announcer::default();
        // Nothing before the configured set is known.
        assert!(publish(&mut a, None, 0).is_empty());
        let t0 = 1_000_000;
        let first = publish(
            &mut a,
            Some(&[status("cms", 0, t0), status("out", 0, t0)]),
            t0,
        );
        assert_eq!(ids(&first), [("cms", true), ("out", true)]);
        // Unchanged half a second later: nothing.
        let t1 = t0 + 500;
        assert!(
            publish(
                &mut a,
                Some(&[status("cms", 0, t1), status("out", 0, t1)]),
                t1
            )
            .is_empty()
        );
        // One changes: only it.
        let t2 = t1 + 500;
        let changed = publish(
            &mut a,
            Some(&[status("cms", 1, t2), status("out", 0, t2)]),
            t2,
        );
        assert_eq!(ids(&changed), [("cms", true)]);
        assert_eq!(changed[0].1.as_ref().unwrap().updated_unix_ms, t2);
        // A minute after it was last published, an unchanged status goes out again.
        let t3 = t0 + 60_000;
        let refreshed = publish(
            &mut a,
            Some(&[status("cms", 1, t3), status("out", 0, t3)]),
            t3,
        );
        assert_eq!(ids(&refreshed), [("out", true)]);
        let t4 = t2 + 60_000;
        let refreshed = publish(
            &mut a,
            Some(&[status("cms", 1, t4), status("out", 0, t4)]),
            t4,
        );
        assert_eq!(ids(&refreshed), [("cms", true)]);
    }

    #[test]
    fn statuses_of_receivers_not_configured_are_cleared_once_the_set_is_known() {
        let mut a = Announcer::default();
        // Retained statuses read back at start: one configured, one removed before the start.
        a.seen("cms", false);
        a.seen("old", false);
        assert!(a.due(None, 0).is_empty());
        let out = publish(&mut a, Some(&[status("cms", 0, 0)]), 0);
        assert_eq!(ids(&out), [("cms", true), ("old", false)]);
        // Our own publishes read back change nothing.
        a.seen("cms", false);
        a.seen("old", true);
        assert!(publish(&mut a, Some(&[status("cms", 0, 10)]), 10).is_empty());
        // A receiver removed while running (a reload): cleared at the next tick.
        let out = publish(&mut a, Some(&[]), 20);
        assert_eq!(ids(&out), [("cms", false)]);
        assert!(publish(&mut a, Some(&[]), 30).is_empty());
        // A clearing that did not go out is due again.
        a.seen("stray", false);
        assert_eq!(ids(&a.due(Some(&[]), 40)), [("stray", false)]);
        assert_eq!(ids(&a.due(Some(&[]), 50)), [("stray", false)]);
    }

    #[test]
    fn refusals_carry_the_rest_apis_codes() {
        let cases = [
            (
                AlarmError::UnknownReceiver {
                    receiver: "x".into(),
                },
                "RECEIVER_NOT_FOUND",
            ),
            (
                AlarmError::QueueFull {
                    receiver: "x".into(),
                    len: 1,
                    capacity: 1,
                },
                "QUEUE_FULL",
            ),
            (AlarmError::Disabled, "ALARMS_DISABLED"),
            (AlarmError::Stopped, "ALARMS_UNAVAILABLE"),
            (
                AlarmError::Receiver {
                    receiver: "x".into(),
                    field: "output",
                    reason: "a relay test needs an output".into(),
                },
                "INVALID_TEST",
            ),
            (
                AlarmError::Task { reason: "x".into() },
                "ALARM_SERVICE_ERROR",
            ),
        ];
        for (e, code) in cases {
            let message = e.to_string();
            let r = refusal(e);
            assert_eq!((r.code.as_str(), r.message), (code, message));
        }
    }
}
