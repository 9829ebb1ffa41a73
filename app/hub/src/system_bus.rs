//! The hub's side of the `system` area on the bus (`watchpost_contract::system`).
//!
//! Role: answers `system/hub/alarms/pending`, the supervisor's question before a factory reset
//! deletes the hub's store: how many alarm deliveries are queued and not yet acknowledged, in
//! total and per receiver. The counts are the alarm service's own (`HubState::alarm`, the
//! queue view behind `/api/v1/alarms/queues` and `watchpost_hub_alarm_queue_length`).
//!
//! Design: one task serving the request with `Bus::serve`; the answer itself is the pure
//! [`count`], unit-tested. An answer of zero has to mean "nothing can be lost", so the hub
//! answers with an error rather than a number it cannot vouch for: the alarm service is not
//! running (`ALARM_SERVICE_NOT_RUNNING`), it has not loaded the queue of every configured
//! receiver yet (`ALARM_QUEUES_LOADING`, just after a start or a change through the API), or
//! the configured receivers cannot be read (`ALARM_CONFIG_UNREADABLE`). With `[alarms]
//! enabled = false` nothing is delivered, so nothing waits: the answer is zero.
//!
//! Failure and shutdown: a subscription that cannot be made ends the service with an error in
//! the log (the supervisor then hears no answer and refuses the reset). The service stops on
//! the hub's shutdown token between two requests.

use std::collections::BTreeSet;

use serde_json::json;
use watchpost_bus::{Outcome, ReplyError};
use watchpost_contract::system::{
    ALARMS_PENDING, AlarmsPending, PendingAlarms, ReceiverPending, SystemCode,
};

use crate::state::HubState;

/// Starts the service (one entry of [`crate::services::start`]).
pub fn start(state: &HubState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(serve(state.clone()))
}

async fn serve(state: HubState) {
    let filter = state.bus.topic(ALARMS_PENDING);
    let mut requests = match state.bus.serve::<AlarmsPending>(&filter).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "system requests: cannot subscribe; the supervisor will get no answer");
            return;
        }
    };
    let shutdown = state.ctx.shutdown().clone();
    loop {
        let incoming = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = requests.recv() => match r {
                Some(r) => r,
                None => return,
            },
        };
        let outcome = match incoming.decode() {
            Ok(AlarmsPending {}) => alarms_pending(&state).await,
            Err(e) => Err(e),
        };
        match &outcome {
            Ok(p) => tracing::info!(
                total = p.total,
                alarms_enabled = p.alarms_enabled,
                "asked for undelivered alarms"
            ),
            Err(e) => {
                tracing::warn!(code = %e.code, reason = %e.message, "asked for undelivered alarms; cannot count them")
            }
        }
        if let Err(e) = state.bus.respond(&incoming, &outcome).await {
            // Only a closed client fails here: the hub is stopping.
            tracing::debug!(error = %e, "system requests: cannot answer");
            return;
        }
    }
}

/// Counts what waits for delivery, or says why it cannot.
async fn alarms_pending(state: &HubState) -> Outcome<AlarmsPending> {
    let alarm = &state.alarm;
    if !alarm.running() {
        return Err(ReplyError::new(
            SystemCode::AlarmServiceNotRunning,
            "the alarm service is not running",
        ));
    }
    if !alarm.enabled() {
        return Ok(PendingAlarms {
            alarms_enabled: false,
            total: 0,
            receivers: Vec::new(),
        });
    }
    // The receivers of the file and the API, as the service merges them when it (re)starts.
    let store = state.store.clone();
    let data_dir = state.config.system.data_dir.clone();
    let managed =
        tokio::task::spawn_blocking(move || watchpost_alarm::load_managed(&store, &data_dir)).await;
    let configured: Vec<String> = match managed {
        Ok(Ok(m)) => m
            .merged(&state.config.alarms)
            .receivers
            .iter()
            .map(|r| r.id().as_str().to_string())
            .collect(),
        Ok(Err(e)) => {
            return Err(ReplyError::new(
                SystemCode::AlarmConfigUnreadable,
                format!("cannot read the receivers added through the API: {e}"),
            ));
        }
        Err(e) => {
            return Err(ReplyError::new(
                SystemCode::AlarmConfigUnreadable,
                format!("reading the receivers added through the API failed: {e}"),
            ));
        }
    };
    let queues: Vec<(String, u64)> = alarm
        .queues()
        .into_iter()
        .map(|q| (q.receiver, q.queued))
        .collect();
    count(&configured, &queues)
}

/// The answer from the configured receivers and the queues the alarm service has loaded
/// (`(receiver, queued)`): every configured receiver must have its queue loaded, or a zero
/// could hide a queue nobody has looked at yet.
fn count(configured: &[String], loaded: &[(String, u64)]) -> Outcome<AlarmsPending> {
    let have: BTreeSet<&str> = loaded.iter().map(|(r, _)| r.as_str()).collect();
    let missing: Vec<&str> = configured
        .iter()
        .map(String::as_str)
        .filter(|r| !have.contains(r))
        .collect();
    if !missing.is_empty() {
        return Err(ReplyError::new(
            SystemCode::AlarmQueuesLoading,
            format!(
                "the alarm service has not loaded the queue of {} yet",
                missing.join(", ")
            ),
        )
        .with_details(json!({ "missing": missing })));
    }
    let receivers: Vec<ReceiverPending> = loaded
        .iter()
        .map(|(receiver, queued)| ReceiverPending {
            receiver: receiver.clone(),
            queued: *queued,
        })
        .collect();
    Ok(PendingAlarms {
        alarms_enabled: true,
        total: receivers.iter().map(|r| r.queued).sum(),
        receivers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn counts_every_loaded_queue() {
        let loaded = vec![("cms".to_string(), 3), ("outputs".to_string(), 0)];
        let p = count(&names(&["cms", "outputs"]), &loaded).unwrap();
        assert!(p.alarms_enabled);
        assert_eq!(p.total, 3);
        assert_eq!(
            p.receivers,
            vec![
                ReceiverPending {
                    receiver: "cms".into(),
                    queued: 3
                },
                ReceiverPending {
                    receiver: "outputs".into(),
                    queued: 0
                },
            ]
        );
        // A queue still loaded for a receiver just removed from the configuration counts too.
        assert_eq!(count(&names(&["outputs"]), &loaded).unwrap().total, 3);
        // No receiver at all: nothing can wait.
        assert_eq!(count(&[], &[]).unwrap().total, 0);
    }

    #[test]
    fn a_configured_receiver_without_its_queue_is_not_counted_as_zero() {
        let loaded = vec![("outputs".to_string(), 0)];
        let e = count(&names(&["cms", "outputs"]), &loaded).unwrap_err();
        assert_eq!(e.code, SystemCode::AlarmQueuesLoading);
        assert_eq!(e.details, json!({"missing": ["cms"]}));
        // Before the service loaded anything.
        let e = count(&names(&["cms"]), &[]).unwrap_err();
        assert_eq!(e.code, SystemCode::AlarmQueuesLoading);
    }
}
