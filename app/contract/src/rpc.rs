//! Request/reply on the bus: the types of the one typed call every area uses for commands
//! that need an answer (REST → worker, alarm service → relays, supervisor → hub). The call
//! itself is `watchpost_bus::Bus::request` / `Bus::serve`.
//!
//! Wire format (documented in `docs/bus.md`, unchanged for MQTT clients that rely on it):
//! - the request is the command's JSON object with two fields added, `request_id` and
//!   `reply_to` (`<prefix>/reply/<client id>/<request id>`); a command without `reply_to` is
//!   executed and answered to nobody;
//! - the reply is one envelope: `{"ok": true, <the reply's fields>}` or
//!   `{"ok": false, "error": {"code", "message", "details"}}`, where `code` is one of the
//!   area's error codes ([`ErrorCode`], declared with [`error_codes!`](crate::error_codes)).
//!
//! Each area declares its commands as types implementing [`Request`] in its contract module;
//! the caller uses `Bus::request`, the worker `Bus::serve` or, when it publishes through its
//! own queue, [`Incoming::parse`] and [`Incoming::reply_payload`].

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// An area's error code: a closed set, serialised as SCREAMING_SNAKE strings. Declare one with
/// [`error_codes!`](crate::error_codes).
pub trait ErrorCode:
    Serialize + DeserializeOwned + Copy + fmt::Debug + fmt::Display + Send + Sync + 'static
{
    /// The code's wire spelling.
    fn as_str(self) -> &'static str;
    /// The code answered when a request's body does not decode.
    fn invalid_body() -> Self;
}

/// A command that is answered: its body is `Self`, its answer `Reply` or an error with one of
/// `Code`.
pub trait Request: Serialize + DeserializeOwned + Send + 'static {
    /// What a successful reply carries; serialises to a JSON object (its fields are merged
    /// into the envelope) or to `null`/`()` for a bare `{"ok": true}`.
    type Reply: Serialize + DeserializeOwned + Send + 'static;
    /// The area's error codes.
    type Code: ErrorCode;
}

/// A refusal: `{"code", "message", "details"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyError<E> {
    pub code: E,
    pub message: String,
    #[serde(default = "empty_object")]
    pub details: Value,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

impl<E> ReplyError<E> {
    pub fn new(code: E, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: empty_object(),
        }
    }

    #[must_use]
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

impl<E: ErrorCode> fmt::Display for ReplyError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl<E: ErrorCode> std::error::Error for ReplyError<E> {}

/// What a worker answers to a request of type `C`.
pub type Outcome<C> = Result<<C as Request>::Reply, ReplyError<<C as Request>::Code>>;

/// Why a request could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("encoding the request: {0}")]
    Json(#[from] serde_json::Error),
    #[error("a request is a JSON object (or null for an empty one)")]
    NotObject,
}

/// The request on the wire: `body` (an object) with `request_id` and `reply_to`.
pub fn encode_request<C: Serialize>(
    body: &C,
    request_id: &str,
    reply_to: &str,
) -> Result<Vec<u8>, EncodeError> {
    let mut obj = match serde_json::to_value(body)? {
        Value::Object(o) => o,
        Value::Null => Map::new(),
        _ => return Err(EncodeError::NotObject),
    };
    obj.insert("request_id".into(), request_id.into());
    obj.insert("reply_to".into(), reply_to.into());
    Ok(serde_json::to_vec(&Value::Object(obj))?)
}

/// The reply envelope on the wire.
pub fn encode_reply<R: Serialize, E: Serialize>(outcome: &Result<R, ReplyError<E>>) -> Vec<u8> {
    let mut obj = Map::new();
    match outcome {
        Ok(reply) => {
            obj.insert("ok".into(), true.into());
            match serde_json::to_value(reply) {
                Ok(Value::Object(fields)) => obj.extend(fields),
                Ok(Value::Null) => {}
                // A reply that is not an object has no place in the envelope; it is a bug in
                // the area's contract, caught by its round-trip tests.
                Ok(other) => {
                    obj.insert("value".into(), other);
                }
                Err(e) => {
                    return encode_reply::<(), _>(&Err(ReplyError::new(
                        "ENCODE_FAILED",
                        e.to_string(),
                    )));
                }
            }
        }
        Err(e) => {
            obj.insert("ok".into(), false.into());
            obj.insert(
                "error".into(),
                serde_json::to_value(e).unwrap_or_else(|_| empty_object()),
            );
        }
    }
    serde_json::to_vec(&Value::Object(obj)).unwrap_or_else(|_| b"{\"ok\":false}".to_vec())
}

/// Reads a reply envelope.
pub fn decode_reply<R: DeserializeOwned, E: DeserializeOwned>(
    bytes: &[u8],
) -> Result<Result<R, ReplyError<E>>, serde_json::Error> {
    #[derive(Deserialize)]
    struct Envelope<E> {
        ok: bool,
        error: Option<ReplyError<E>>,
        #[serde(flatten)]
        rest: Map<String, Value>,
    }
    let env: Envelope<E> = serde_json::from_slice(bytes)?;
    if env.ok {
        let fields = Value::Object(env.rest);
        // `()` and other unit-like replies read from `null`, not from `{}`.
        match serde_json::from_value::<R>(fields.clone()) {
            Ok(r) => Ok(Ok(r)),
            Err(e) => match serde_json::from_value::<R>(Value::Null) {
                Ok(r) if fields.as_object().is_some_and(Map::is_empty) => Ok(Ok(r)),
                _ => Err(e),
            },
        }
    } else {
        match env.error {
            Some(e) => Ok(Err(e)),
            None => Err(serde::de::Error::missing_field("error")),
        }
    }
}

/// A request received by a worker: the body without the envelope fields, and where to answer.
#[derive(Debug)]
pub struct Incoming<C> {
    /// The topic the request came on (it often names the thing: a zone, a camera).
    pub topic: String,
    /// The command's JSON, without `request_id` and `reply_to`. Areas whose commands accept
    /// more than one spelling validate this themselves; the others call [`Incoming::decode`].
    pub body: Value,
    reply_to: Option<String>,
    _command: PhantomData<fn() -> C>,
}

impl<C: Request> Incoming<C> {
    /// Splits a bus message into the command and its reply address. A payload that is not
    /// JSON becomes a JSON string (some commands accept plain `ON`/`OFF`).
    pub fn parse(topic: &str, payload: &[u8]) -> Self {
        let mut body = serde_json::from_slice::<Value>(payload)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).trim().to_string()));
        let mut reply_to = None;
        if let Value::Object(obj) = &mut body {
            obj.remove("request_id");
            reply_to = match obj.remove("reply_to") {
                Some(Value::String(s)) if !s.is_empty() => Some(s),
                _ => None,
            };
        }
        Self {
            topic: topic.to_string(),
            body,
            reply_to,
            _command: PhantomData,
        }
    }

    /// The typed command, or the area's `invalid_body` refusal naming the problem.
    pub fn decode(&self) -> Result<C, ReplyError<C::Code>> {
        serde_json::from_value(self.body.clone()).map_err(|e| {
            ReplyError::new(
                C::Code::invalid_body(),
                format!("the command on {} does not decode: {e}", self.topic),
            )
        })
    }

    /// Where the answer goes; `None` for a command sent without `reply_to`.
    pub fn reply_to(&self) -> Option<&str> {
        self.reply_to.as_deref()
    }

    /// The reply topic and payload, for workers that publish through their own queue.
    pub fn reply_payload(&self, outcome: &Outcome<C>) -> Option<(String, Vec<u8>)> {
        self.reply_to
            .as_ref()
            .map(|to| (to.clone(), encode_reply(outcome)))
    }
}

/// Declares an area's error codes: an enum whose variants serialise as the given strings,
/// with `as_str`, `Display`, `ALL` and [`ErrorCode`]. The first variant marked `#[invalid_body]`
/// is the code for requests that do not decode.
///
/// ```
/// watchpost_contract::error_codes! {
///     /// Why a relay command failed.
///     pub enum RelayCode {
///         #[invalid_body] InvalidBody = "INVALID_BODY",
///         NotFound = "RELAY_NOT_FOUND",
///     }
/// }
/// assert_eq!(RelayCode::NotFound.as_str(), "RELAY_NOT_FOUND");
/// ```
#[macro_export]
macro_rules! error_codes {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            #[invalid_body] $(#[doc = $idoc:literal])* $invalid:ident = $icode:literal,
            $( $(#[doc = $doc:literal])* $variant:ident = $code:literal ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, $crate::__serde::Serialize, $crate::__serde::Deserialize)]
        #[serde(crate = "watchpost_contract::__serde")]
        $vis enum $name {
            $(#[doc = $idoc])*
            #[serde(rename = $icode)]
            $invalid,
            $( $(#[doc = $doc])* #[serde(rename = $code)] $variant, )*
        }
        impl $name {
            /// Every code, in declaration order.
            pub const ALL: &'static [$name] = &[$name::$invalid, $($name::$variant),*];
            /// The code's wire spelling.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $name::$invalid => $icode,
                    $( $name::$variant => $code, )*
                }
            }
        }
        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl $crate::rpc::ErrorCode for $name {
            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }
            fn invalid_body() -> Self {
                $name::$invalid
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::error_codes! {
        /// Test codes.
        pub enum Code {
            #[invalid_body] InvalidBody = "INVALID_BODY",
            NotFound = "THING_NOT_FOUND",
        }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Set {
        on: bool,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct SetReply {
        state: Value,
    }

    impl Request for Set {
        type Reply = SetReply;
        type Code = Code;
    }

    #[test]
    fn envelope_round_trips() {
        let ok: Outcome<Set> = Ok(SetReply {
            state: serde_json::json!({"on": true}),
        });
        let bytes = encode_reply(&ok);
        assert_eq!(
            serde_json::from_slice::<Value>(&bytes).unwrap(),
            serde_json::json!({"ok": true, "state": {"on": true}})
        );
        assert_eq!(decode_reply::<SetReply, Code>(&bytes).unwrap(), ok);

        let err: Outcome<Set> = Err(ReplyError::new(Code::NotFound, "no such thing"));
        let bytes = encode_reply(&err);
        assert_eq!(
            serde_json::from_slice::<Value>(&bytes).unwrap(),
            serde_json::json!({"ok": false, "error": {"code": "THING_NOT_FOUND", "message": "no such thing", "details": {}}})
        );
        assert_eq!(decode_reply::<SetReply, Code>(&bytes).unwrap(), err);

        assert_eq!(Code::ALL, &[Code::InvalidBody, Code::NotFound]);
        assert_eq!(Code::NotFound.to_string(), "THING_NOT_FOUND");

        // A bare acknowledgement.
        let bytes = encode_reply::<(), Code>(&Ok(()));
        assert_eq!(bytes, br#"{"ok":true}"#);
        assert_eq!(decode_reply::<(), Code>(&bytes).unwrap(), Ok(()));

        // An unknown code is a bad reply, not a silent fallback.
        assert!(
            decode_reply::<SetReply, Code>(br#"{"ok":false,"error":{"code":"NEW","message":""}}"#)
                .is_err()
        );
    }

    #[test]
    fn incoming_strips_the_envelope_and_decodes() {
        let payload = encode_request(&Set { on: true }, "7", "wp/reply/c/7").unwrap();
        let inc = Incoming::<Set>::parse("wp/thing/set", &payload);
        assert_eq!(inc.reply_to(), Some("wp/reply/c/7"));
        assert_eq!(inc.body, serde_json::json!({"on": true}));
        assert_eq!(inc.decode().unwrap(), Set { on: true });

        let inc = Incoming::<Set>::parse("wp/thing/set", b"ON");
        assert_eq!(inc.reply_to(), None);
        assert_eq!(inc.body, Value::String("ON".into()));
        assert_eq!(inc.decode().unwrap_err().code, Code::InvalidBody);
        assert!(
            inc.reply_payload(&Ok(SetReply { state: Value::Null }))
                .is_none()
        );
    }
}
