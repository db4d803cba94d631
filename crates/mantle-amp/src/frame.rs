//! Request / answer / error boxes (the keys Twisted's `BoxDispatcher` uses).

use crate::wire::AmpBox;

/// Key naming the command of a request.
pub const COMMAND: &[u8] = b"_command";
/// Key carrying the tag of a request that wants an answer.
pub const ASK: &[u8] = b"_ask";
/// Key carrying the tag of the request a successful answer replies to.
pub const ANSWER: &[u8] = b"_answer";
/// Key carrying the tag of the request an error replies to.
pub const ERROR: &[u8] = b"_error";
/// Key carrying an error's code.
pub const ERROR_CODE: &[u8] = b"_error_code";
/// Key carrying an error's description (UTF-8).
pub const ERROR_DESCRIPTION: &[u8] = b"_error_description";
/// Error code for a handler that raised an unexpected error (Twisted
/// answers "Unknown Error").
pub const UNKNOWN_ERROR_CODE: &[u8] = b"UNKNOWN";
/// Error code for a command the peer has no responder for (Twisted
/// answers "Unhandled Command").
pub const UNHANDLED_ERROR_CODE: &[u8] = b"UNHANDLED";

/// A request box: `args` plus `_command`, and `_ask` when `tag` is given
/// (no tag means no answer is wanted).
pub fn request(command: &[u8], tag: Option<&[u8]>, args: AmpBox) -> AmpBox {
    let mut b = args;
    b.insert(COMMAND, command);
    if let Some(tag) = tag {
        b.insert(ASK, tag);
    }
    b
}

/// A successful answer: `values` plus `_answer`.
pub fn answer(tag: &[u8], values: AmpBox) -> AmpBox {
    values.with(ANSWER, tag)
}

/// An error answer with `_error`, `_error_code` and `_error_description`.
pub fn error(tag: &[u8], code: &[u8], description: &str) -> AmpBox {
    AmpBox::new()
        .with(ERROR, tag)
        .with(ERROR_CODE, code)
        .with(ERROR_DESCRIPTION, description.as_bytes())
}

/// A box classified by its control keys, with those keys removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Has `_command`.
    Request {
        /// `_command`.
        command: Vec<u8>,
        /// `_ask`, if an answer is wanted.
        tag: Option<Vec<u8>>,
        /// The remaining keys.
        args: AmpBox,
    },
    /// Has `_answer`.
    Answer {
        /// `_answer`.
        tag: Vec<u8>,
        /// The remaining keys.
        values: AmpBox,
    },
    /// Has `_error`.
    Error {
        /// `_error`.
        tag: Vec<u8>,
        /// `_error_code` (empty if missing).
        code: Vec<u8>,
        /// `_error_description`, lossily decoded (empty if missing).
        description: String,
    },
}

impl Message {
    /// Classifies `b` the way Twisted's `BoxDispatcher.ampBoxReceived` does:
    /// `_answer` first, then `_error`, then `_command`. `None` if it has none.
    pub fn classify(mut b: AmpBox) -> Option<Message> {
        if let Some(tag) = b.remove(ANSWER) {
            return Some(Message::Answer { tag, values: b });
        }
        if let Some(tag) = b.remove(ERROR) {
            let code = b.remove(ERROR_CODE).unwrap_or_default();
            let description =
                String::from_utf8_lossy(&b.remove(ERROR_DESCRIPTION).unwrap_or_default())
                    .into_owned();
            return Some(Message::Error {
                tag,
                code,
                description,
            });
        }
        let command = b.remove(COMMAND)?;
        let tag = b.remove(ASK);
        Some(Message::Request {
            command,
            tag,
            args: b,
        })
    }

    /// Back to a box.
    pub fn into_box(self) -> AmpBox {
        match self {
            Message::Request { command, tag, args } => request(&command, tag.as_deref(), args),
            Message::Answer { tag, values } => answer(&tag, values),
            Message::Error {
                tag,
                code,
                description,
            } => error(&tag, &code, &description),
        }
    }
}
