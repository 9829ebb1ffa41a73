//! The appliance as a whole (the `system` area): questions one Watchpost process asks another
//! about the appliance rather than about a device. Today one: before a factory reset deletes
//! the hub's store, the supervisor asks the hub how many alarms wait for delivery in it.
//!
//! Topics, under the bus prefix: `system/hub/alarms/pending` ([`AlarmsPending`], answered by
//! the hub with [`PendingAlarms`] or a [`SystemCode`]). The retained `system/<worker>/status`
//! (`online`/`offline`, plain text) beside them is the bus client's own (`watchpost_bus`).

use serde::{Deserialize, Serialize};

use crate::rpc::Request;

/// First level of every system topic.
pub const AREA: &str = "system";

/// `system/hub/alarms/pending`: where the hub answers [`AlarmsPending`].
pub const ALARMS_PENDING: &[&str] = &[AREA, "hub", "alarms", "pending"];

/// `system/hub/alarms/pending`: how many alarms are queued in the hub and not yet delivered.
/// The body is `{}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AlarmsPending {}

impl Request for AlarmsPending {
    type Reply = PendingAlarms;
    type Code = SystemCode;
}

/// The answer to [`AlarmsPending`]: `{"alarms_enabled", "total", "receivers": [{"receiver",
/// "queued"}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PendingAlarms {
    /// `[alarms] enabled`. With alarms off the hub delivers nothing, so nothing is counted as
    /// waiting (`total` is 0).
    pub alarms_enabled: bool,
    /// Deliveries queued and not yet acknowledged by their receiver, over every receiver
    /// (the one in flight included).
    pub total: u64,
    /// The same per receiver, in the alarm service's order.
    pub receivers: Vec<ReceiverPending>,
}

/// One receiver's share of [`PendingAlarms`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiverPending {
    /// The receiver's configured id.
    pub receiver: String,
    /// Deliveries waiting in its queue.
    pub queued: u64,
}

crate::error_codes! {
    /// Why a system question has no answer.
    pub enum SystemCode {
        #[invalid_body]
        /// The request's body is not the documented object.
        InvalidBody = "INVALID_BODY",
        /// The hub's alarm service has not started or has stopped: nobody can count its queues.
        AlarmServiceNotRunning = "ALARM_SERVICE_NOT_RUNNING",
        /// The alarm service runs but has not loaded the queue of every configured receiver
        /// yet (just after a start or a configuration change); `details.missing` names them.
        AlarmQueuesLoading = "ALARM_QUEUES_LOADING",
        /// The hub could not read which receivers are configured (its store failed).
        AlarmConfigUnreadable = "ALARM_CONFIG_UNREADABLE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::{ReplyError, decode_reply, encode_reply, encode_request};
    use serde_json::json;

    #[test]
    fn the_question_and_its_answers_have_the_documented_shapes() {
        let request = encode_request(&AlarmsPending {}, "1", "wp/reply/c/1").unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&request).unwrap(),
            json!({"request_id": "1", "reply_to": "wp/reply/c/1"})
        );

        let answer = PendingAlarms {
            alarms_enabled: true,
            total: 3,
            receivers: vec![
                ReceiverPending {
                    receiver: "cms".into(),
                    queued: 3,
                },
                ReceiverPending {
                    receiver: "outputs".into(),
                    queued: 0,
                },
            ],
        };
        let bytes = encode_reply::<_, SystemCode>(&Ok(answer.clone()));
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
            json!({"ok": true, "alarms_enabled": true, "total": 3, "receivers": [
                {"receiver": "cms", "queued": 3}, {"receiver": "outputs", "queued": 0}]})
        );
        assert_eq!(
            decode_reply::<PendingAlarms, SystemCode>(&bytes).unwrap(),
            Ok(answer)
        );

        let refusal = ReplyError::new(SystemCode::AlarmQueuesLoading, "loading")
            .with_details(json!({"missing": ["cms"]}));
        let bytes = encode_reply::<PendingAlarms, _>(&Err(refusal.clone()));
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
            json!({"ok": false, "error": {"code": "ALARM_QUEUES_LOADING", "message": "loading",
                "details": {"missing": ["cms"]}}})
        );
        assert_eq!(
            decode_reply::<PendingAlarms, SystemCode>(&bytes).unwrap(),
            Err(refusal)
        );
        assert_eq!(SystemCode::ALL.len(), 4);
    }
}
