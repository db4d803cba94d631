//! The JSON transport's messages (one per WebSocket text frame).
//!
//! Client to server:
//! `{"id": 1, "command": "Sum", "args": {"a": 1, "b": 2}}`; `id` (a number
//! or a string) asks for an answer, `handle` addresses a referenceable.
//!
//! Server to client: `{"id": 1, "answer": {...}}`,
//! `{"id": 1, "error": {"code": ..., "description": ..., "details": {...}}}`,
//! and pushes `{"command": "Delta", "args": {...}}`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::command::{RemoteError, codes};

/// The largest message accepted, in bytes (as AMP's values, a request is
/// small; snapshots go the other way).
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// A request from a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonRequest {
    /// Present when an answer is wanted: a number or a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    /// The command's wire name.
    pub command: String,
    /// The arguments (an object; absent means none).
    #[serde(default)]
    pub args: Map<String, Value>,
    /// The handle the call is addressed to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<i64>,
}

/// A message that is not a valid request; the error answer to send back
/// (with the request's `id` when it could be read).
#[derive(Debug, Clone, PartialEq)]
pub struct BadRequest {
    /// The `id` of the message, if it had a usable one.
    pub id: Option<Value>,
    /// `BAD_REQUEST` with what was wrong.
    pub error: RemoteError,
}

impl JsonRequest {
    /// Parses one text message.
    pub fn parse(text: &str) -> Result<JsonRequest, BadRequest> {
        let bad = |id: Option<Value>, why: String| BadRequest {
            id,
            error: RemoteError::new(codes::BAD_REQUEST, why),
        };
        if text.len() > MAX_REQUEST_BYTES {
            return Err(bad(
                None,
                format!(
                    "message of {} bytes is over the {MAX_REQUEST_BYTES}-byte limit",
                    text.len()
                ),
            ));
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| bad(None, format!("not JSON: {e}")))?;
        let Value::Object(obj) = value else {
            return Err(bad(None, "a request must be a JSON object".into()));
        };
        let id = match obj.get("id") {
            None | Some(Value::Null) => None,
            Some(v @ (Value::Number(_) | Value::String(_))) => Some(v.clone()),
            Some(_) => return Err(bad(None, "\"id\" must be a number or a string".into())),
        };
        serde_json::from_value::<JsonRequest>(Value::Object(obj))
            .map(|mut r| {
                r.id = id.clone();
                r
            })
            .map_err(|e| bad(id, format!("bad request: {e}")))
    }
}

/// A message from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JsonReply {
    /// A successful answer.
    Answer {
        /// The request's id.
        id: Value,
        /// The answer's fields.
        answer: Map<String, Value>,
    },
    /// An error answer (`id` is null when the request had none readable).
    Error {
        /// The request's id.
        id: Value,
        /// The error.
        error: RemoteError,
    },
    /// A command the server sends on its own (`Delta`, `Resync`).
    Push {
        /// The command's wire name.
        command: String,
        /// Its arguments.
        args: Map<String, Value>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_bad_ones_say_why_with_their_id() {
        let r = JsonRequest::parse(r#"{"id":3,"command":"Sum","args":{"a":1}}"#).unwrap();
        assert_eq!(r.id, Some(Value::from(3)));
        assert_eq!(r.command, "Sum");
        assert_eq!(r.args["a"], 1);
        let e = JsonRequest::parse(r#"{"id":"x","args":{}}"#).unwrap_err();
        assert_eq!(e.id, Some(Value::from("x")));
        assert_eq!(e.error.code, codes::BAD_REQUEST);
        assert!(JsonRequest::parse("[1]").unwrap_err().id.is_none());
        assert!(JsonRequest::parse(r#"{"id":{},"command":"A"}"#).is_err());
        assert!(JsonRequest::parse("{").is_err());
    }

    #[test]
    fn replies_have_the_documented_shape() {
        let e = JsonReply::Error {
            id: Value::from(1),
            error: RemoteError::new("UNHANDLED", "no command X"),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"id":1,"error":{"code":"UNHANDLED","description":"no command X"}}"#
        );
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses_or_is_refused_without_panicking(s in ".{0,200}") {
            let _ = JsonRequest::parse(&s);
        }
    }
}
