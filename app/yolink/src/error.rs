/// Why a YoLink message could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YolinkError {
    #[error("report on `{topic}` is not a JSON object: {reason}")]
    ParseReportJson { topic: String, reason: String },
    #[error("report on `{topic}` has no {field}")]
    ParseReportField { topic: String, field: &'static str },
    #[error("report on `{topic}` names device `{payload_id}` but the topic names `{topic_id}`")]
    ParseReportDeviceMismatch {
        topic: String,
        topic_id: String,
        payload_id: String,
    },
    #[error("{what} response is not valid JSON: {reason}")]
    ParseResponseJson { what: &'static str, reason: String },
    #[error("{what} response lacks `{field}`")]
    ParseResponseField {
        what: &'static str,
        field: &'static str,
    },
    #[error("{method} failed with code {code}: {desc}")]
    Api {
        method: String,
        code: String,
        desc: String,
    },
}

/// At most 200 characters of `s`, for messages.
pub(crate) fn excerpt(s: &str) -> String {
    let mut out: String = s.chars().take(200).collect();
    if s.chars().count() > 200 {
        out.push_str("...");
    }
    out
}
