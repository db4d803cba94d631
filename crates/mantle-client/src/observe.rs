//! Observed models: a snapshot, then ordered deltas, resumed after a
//! reconnection.

use std::sync::{Arc, Weak};

use mantle_amp::AmpBox;
use mantle_live::Command;
use mantle_live::builtin::{
    Delta, DeltaArgs, Ended, EndedArgs, Observe, ObserveAnswer, ObserveArgs, ObserveError, Resync,
    ResyncArgs, SnapshotPart, SnapshotPartArgs, Unobserve, UnobserveArgs,
};
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::client::{Inner, MapTyped, ask, decode, encode};
use crate::conn::Conn;
use crate::error::CallError;

/// What an observation yields.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelEvent {
    /// The whole model as of `sequence`: replace what you have.
    Snapshot {
        /// Its sequence number.
        sequence: i64,
        /// The model.
        value: Value,
    },
    /// One committed change after the previous event.
    Delta {
        /// Its sequence number (one more than the previous event's).
        sequence: i64,
        /// The change.
        value: Value,
    },
    /// The server ended the observation for good (the share it was
    /// granted through was withdrawn: code `NOT_FOUND`). No event follows,
    /// and it is not observed again after a reconnection.
    Ended {
        /// Why, as an error code.
        code: String,
        /// Why, for people.
        reason: String,
    },
}

pub(crate) struct SubInner {
    model: String,
    /// The last sequence handed to the application.
    last: Mutex<Option<i64>>,
    /// A snapshot arriving in `SnapshotPart`s.
    assembling: Mutex<Option<Assembly>>,
    events: mpsc::UnboundedSender<ModelEvent>,
}

/// The pieces of a large snapshot received so far.
struct Assembly {
    sequence: i64,
    parts: i64,
    received: i64,
    text: String,
}

/// An observation of one model; dropping it stops observing.
pub struct Subscription {
    events: mpsc::UnboundedReceiver<ModelEvent>,
    inner: Arc<SubInner>,
    client: Weak<Inner>,
}

impl Subscription {
    pub(crate) fn new(model: &str, client: Weak<Inner>) -> (Subscription, Arc<SubInner>) {
        let (tx, events) = mpsc::unbounded_channel();
        let inner = Arc::new(SubInner {
            model: model.to_string(),
            last: Mutex::new(None),
            assembling: Mutex::new(None),
            events: tx,
        });
        (
            Subscription {
                events,
                inner: inner.clone(),
                client,
            },
            inner,
        )
    }

    /// The next event; waits across disconnections (`None` once the
    /// client is gone).
    pub async fn next(&mut self) -> Option<ModelEvent> {
        self.events.recv().await
    }

    /// The next event if one is waiting.
    pub fn try_next(&mut self) -> Option<ModelEvent> {
        self.events.try_recv().ok()
    }

    /// The last sequence delivered.
    pub fn last_sequence(&self) -> Option<i64> {
        *self.inner.last.lock()
    }

    /// The model's name.
    pub fn model(&self) -> &str {
        &self.inner.model
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let Some(client) = self.client.upgrade() else {
            return;
        };
        client.subs.lock().remove(&self.inner.model);
        if let Some(conn) = client.current() {
            let args = UnobserveArgs {
                model: self.inner.model.clone(),
            };
            if let Ok(b) = encode::<_, ()>(&args) {
                conn.send(&mantle_amp::frame::request(
                    Unobserve::NAME.as_bytes(),
                    None,
                    b,
                ));
            }
        }
    }
}

impl SubInner {
    /// Sends `Observe` (with the last sequence seen, to resume). The
    /// snapshot is taken in the reader, before any later delta is read.
    pub(crate) async fn observe(
        self: &Arc<Self>,
        conn: &Conn,
    ) -> Result<(), CallError<ObserveError>> {
        let args = ObserveArgs {
            model: self.model.clone(),
            since: *self.last.lock(),
        };
        let b = encode(&args)?;
        let me = self.clone();
        let hook = Box::new(move |reply: &Result<AmpBox, mantle_live::RemoteError>| {
            let Ok(b) = reply else { return };
            let Ok(a) = decode::<ObserveAnswer, ()>(b) else {
                return;
            };
            if a.resumed {
                return;
            }
            match a.parts {
                // Too long for one AMP value: the parts follow.
                Some(parts) if parts > 0 => {
                    *me.assembling.lock() = Some(Assembly {
                        sequence: a.sequence,
                        parts,
                        received: 0,
                        text: String::new(),
                    });
                }
                _ => me.snapshot(a.sequence, a.snapshot.unwrap_or(Value::Null)),
            }
        });
        ask(conn, Observe::NAME, b, Some(hook))
            .await
            .map(|_| ())
            .map_err(|e| e.map_typed())
    }

    fn snapshot(&self, sequence: i64, value: Value) {
        *self.assembling.lock() = None;
        *self.last.lock() = Some(sequence);
        let _ = self.events.send(ModelEvent::Snapshot { sequence, value });
    }

    /// Takes a piece of a large snapshot; `false` if it is not the one
    /// expected (or the whole is not JSON), so the model must be observed
    /// again. Pieces when none are expected are left: they are the rest
    /// of a snapshot already given up on, and one new `Observe` is enough.
    fn snapshot_part(&self, p: SnapshotPartArgs) -> bool {
        let mut assembling = self.assembling.lock();
        let Some(a) = assembling.as_mut() else {
            return true;
        };
        if p.sequence != a.sequence || p.parts != a.parts || p.part != a.received + 1 {
            *assembling = None;
            return false;
        }
        a.received = p.part;
        a.text.push_str(&p.text);
        if a.received < a.parts {
            return true;
        }
        let a = assembling.take().expect("checked above");
        drop(assembling);
        match serde_json::from_str(&a.text) {
            Ok(value) => {
                self.snapshot(a.sequence, value);
                true
            }
            Err(_) => false,
        }
    }

    /// Takes delta `seq`; `false` if it does not follow the last one.
    fn delta(&self, seq: i64, value: Value) -> bool {
        let mut last = self.last.lock();
        match *last {
            Some(l) if seq <= l => true,
            Some(l) if seq == l + 1 => {
                *last = Some(seq);
                let _ = self.events.send(ModelEvent::Delta {
                    sequence: seq,
                    value,
                });
                true
            }
            _ => false,
        }
    }
}

/// Handles a push from the server (in the reader).
pub(crate) fn on_push(inner: &Arc<Inner>, command: &str, args: AmpBox) {
    let (model, in_order) = match command {
        Delta::NAME => {
            let Ok(d) = decode::<DeltaArgs, ()>(&args) else {
                return;
            };
            let Some(sub) = sub_of(inner, &d.model) else {
                return;
            };
            let ok = sub.delta(d.sequence, d.delta);
            (sub, ok)
        }
        SnapshotPart::NAME => {
            let Ok(p) = decode::<SnapshotPartArgs, ()>(&args) else {
                return;
            };
            let Some(sub) = sub_of(inner, &p.model) else {
                return;
            };
            let ok = sub.snapshot_part(p);
            (sub, ok)
        }
        Ended::NAME => {
            let Ok(e) = decode::<EndedArgs, ()>(&args) else {
                return;
            };
            // Forgotten: a reconnection does not observe it again.
            let Some(sub) = inner.subs.lock().remove(&e.model).and_then(|w| w.upgrade()) else {
                return;
            };
            let _ = sub.events.send(ModelEvent::Ended {
                code: e.code,
                reason: e.reason,
            });
            return;
        }
        Resync::NAME => {
            let Ok(r) = decode::<ResyncArgs, ()>(&args) else {
                return;
            };
            let Some(sub) = sub_of(inner, &r.model) else {
                return;
            };
            (sub, false)
        }
        _ => return,
    };
    if !in_order {
        // Observe again from the last sequence seen: the server sends what
        // was missed from its history, or a snapshot.
        let inner = inner.clone();
        tokio::spawn(async move {
            if let Some(conn) = inner.current()
                && let Err(e) = model.observe(&conn).await
            {
                tracing::warn!(model = %model.model, %e, "could not resync");
            }
        });
    }
}

fn sub_of(inner: &Inner, model: &str) -> Option<Arc<SubInner>> {
    inner.subs.lock().get(model).and_then(Weak::upgrade)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(sequence: i64, part: i64, parts: i64, text: &str) -> SnapshotPartArgs {
        SnapshotPartArgs {
            model: "m".into(),
            sequence,
            part,
            parts,
            text: text.into(),
        }
    }

    fn expecting(sub: &SubInner, sequence: i64, parts: i64) {
        *sub.assembling.lock() = Some(Assembly {
            sequence,
            parts,
            received: 0,
            text: String::new(),
        });
    }

    #[test]
    fn snapshot_parts_join_into_one_snapshot_and_wrong_ones_ask_to_observe_again() {
        let (mut s, sub) = Subscription::new("m", Weak::new());
        // In order: one snapshot, and the sequence is taken.
        expecting(&sub, 7, 3);
        assert!(sub.snapshot_part(part(7, 1, 3, r#"{"a":"€"#)));
        assert!(sub.snapshot_part(part(7, 2, 3, "€")));
        assert!(s.try_next().is_none(), "nothing before the last part");
        assert!(sub.snapshot_part(part(7, 3, 3, r#"","b":1}"#)));
        assert_eq!(
            s.try_next(),
            Some(ModelEvent::Snapshot {
                sequence: 7,
                value: serde_json::json!({"a": "€€", "b": 1})
            })
        );
        assert_eq!(s.last_sequence(), Some(7));
        // A part when none is expected is left alone.
        assert!(sub.snapshot_part(part(7, 2, 3, "x")));
        // Out of order, another sequence, or not JSON: observe again.
        for bad in [
            part(8, 2, 2, "{}"),
            part(9, 1, 2, "{}"),
            part(8, 1, 3, "{}"),
        ] {
            expecting(&sub, 8, 2);
            assert!(!sub.snapshot_part(bad));
            assert!(sub.assembling.lock().is_none(), "given up");
        }
        expecting(&sub, 8, 1);
        assert!(!sub.snapshot_part(part(8, 1, 1, "{not json")));
        assert!(s.try_next().is_none());
        assert_eq!(s.last_sequence(), Some(7), "unchanged by what failed");
    }
}
