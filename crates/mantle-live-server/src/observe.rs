//! `Observe`: a model's snapshot (in parts when it is longer than the
//! transport's values) or the deltas missed since a sequence, then live
//! deltas through the hub.

use std::sync::Arc;

use mantle_live::builtin::{
    Delta, DeltaArgs, Observe, ObserveAnswer, ObserveArgs, ObserveError, SnapshotPart,
    SnapshotPartArgs,
};
use mantle_live::{Arguments, Command, RemoteError};
use tokio::sync::mpsc;

use crate::commands::{Fields, decode, failed};
use crate::hub::Observation;
use crate::publish::{ModelDelta, sequence};
use crate::session::{Conn, Out, Push, Request, reply};

/// `Observe`: registers the observation before reading, so nothing
/// committed in between is lost, answers with a snapshot (or resumes from
/// the history), then releases what arrived meanwhile, in order.
pub(crate) async fn observe<T: Send + 'static>(
    conn: Arc<Conn>,
    out: mpsc::Sender<Out<T>>,
    req: Request<T>,
) {
    let result = start(&conn, req.args).await;
    let (answer, obs, missed, parts) = match result {
        Ok(ok) => ok,
        Err(e) => return reply(&conn, &out, req.tag, Err(e)).await,
    };
    let sequence = answer.sequence;
    let fields = match serde_json::to_value(&answer) {
        Ok(serde_json::Value::Object(f)) => f,
        _ => Fields::new(),
    };
    reply(&conn, &out, req.tag, Ok((fields, ObserveAnswer::schema()))).await;
    // The parts go through the connection's queue in order, right after
    // the answer; deltas committed meanwhile wait in the observation.
    for part in parts {
        if out.send(Out::Push(part)).await.is_err() {
            obs.close();
            return;
        }
    }
    obs.activate(sequence, missed);
}

/// The answer, the observation, the missed deltas that follow it (when
/// resumed) and the `SnapshotPart`s (when the snapshot is too long for
/// one value).
type Started = (
    ObserveAnswer,
    Arc<Observation>,
    Vec<(i64, Arc<Push>)>,
    Vec<Arc<Push>>,
);

/// Splits `text` into pieces of at most `max` bytes, each ending on a
/// character boundary (every piece must be valid UTF-8 on its own, as
/// AMP's Unicode values are). A character longer than `max` is a piece
/// of its own.
fn split_text(text: &str, max: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(first) = rest.chars().next() {
        let mut end = rest.len().min(max);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        if end == 0 {
            end = first.len_utf8();
        }
        let (piece, tail) = rest.split_at(end);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

/// The snapshot as `SnapshotPart` pushes if its JSON text is longer than
/// the transport's values (`max_value`); `None` if it fits as it is.
fn snapshot_parts(
    model: &str,
    sequence: i64,
    snapshot: &serde_json::Value,
    max_value: Option<usize>,
) -> Option<Vec<Arc<Push>>> {
    let max = max_value?;
    let text = serde_json::to_string(snapshot).ok()?;
    if text.len() <= max {
        return None;
    }
    let pieces = split_text(&text, max);
    let parts = pieces.len() as i64;
    Some(
        pieces
            .into_iter()
            .zip(1..)
            .map(|(piece, part)| {
                Push::new::<SnapshotPart>(&SnapshotPartArgs {
                    model: model.to_string(),
                    sequence,
                    part,
                    parts,
                    text: piece.to_string(),
                })
            })
            .collect(),
    )
}

async fn start(conn: &Arc<Conn>, raw: crate::session::RawArgs) -> Result<Started, RemoteError> {
    let args: ObserveArgs = decode(raw.fields(ObserveArgs::schema())?)?;
    let caller = conn.caller_or_unauthorized()?;
    let (kind, key) = args.model.split_once(':').unwrap_or((&args.model, ""));
    let live = conn.live();
    let no_such = || {
        RemoteError::from_typed(&ObserveError::NoSuchModel {
            model: args.model.clone(),
        })
    };
    let spec = live
        .models
        .get(kind)
        .filter(|_| live.present(&conn.site, kind))
        .cloned()
        .ok_or_else(no_such)?;
    let source = (spec.source)(caller, key.to_string())
        .await
        .map_err(|f| f.into_remote(Observe::NAME))?;
    let obs = Arc::new(Observation::new(
        args.model.clone(),
        &source,
        conn.sink.clone(),
        conn.stats.clone(),
    ));
    if source.guard.is_some() {
        crate::shared::watch(&conn.site, live);
    }
    let store = source.store;
    live.hub.add(store.path().to_path_buf(), obs.clone());
    if let Some(old) = conn
        .observing
        .lock()
        .insert(args.model.clone(), obs.clone())
    {
        old.close();
    }
    let (model, key, since) = (obs.published().to_string(), source.key, args.since);
    let snapshot = spec.snapshot.clone();
    let max_value = conn.sink.max_value();
    let history_max = max_value.unwrap_or(usize::MAX);
    let read = store
        .read(move |r| {
            let head = sequence(r, &model)?;
            if let Some(since) = since.filter(|s| (0..=head).contains(s)) {
                let missed = r
                    .query::<ModelDelta>()
                    .filter(
                        ModelDelta::MODEL
                            .eq(model.as_str())
                            .and(ModelDelta::SEQUENCE.gt(since)),
                    )
                    .order_by(ModelDelta::SEQUENCE.asc())
                    .all()?;
                // Resumable only if the history still starts right after
                // `since`, and every missed delta fits the transport (else
                // a snapshot replaces them).
                if missed.len() as i64 == head - since
                    && missed.iter().all(|d| d.delta.len() <= history_max)
                {
                    let missed = missed
                        .into_iter()
                        .map(|d| {
                            let d = d.into_inner();
                            (d.sequence, d.delta)
                        })
                        .collect::<Vec<_>>();
                    return Ok((head, None, missed));
                }
            }
            mantle_store::ok((head, Some(snapshot(r, &key)?), Vec::new()))
        })
        .await;
    let (head, snapshot, missed) = match read {
        Ok(r) => r,
        Err(e) => {
            obs.close();
            return Err(failed(Observe::NAME, e.to_string()));
        }
    };
    let missed = missed
        .into_iter()
        .map(|(seq, delta)| {
            let delta = serde_json::from_str(&delta).unwrap_or(serde_json::Value::Null);
            let push = Push::new::<Delta>(&DeltaArgs {
                model: args.model.clone(),
                sequence: seq,
                delta,
            });
            (seq, push)
        })
        .collect();
    let resumed = snapshot.is_none();
    let parts = snapshot
        .as_ref()
        .and_then(|s| snapshot_parts(&args.model, head, s, max_value));
    let answer = ObserveAnswer {
        sequence: head,
        resumed,
        parts: parts.as_ref().map(|p| p.len() as i64),
        snapshot: if parts.is_some() { None } else { snapshot },
    };
    Ok((answer, obs, missed, parts.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_splits_on_character_boundaries_and_joins_back() {
        let text = "ab€d".repeat(10); // '€' is 3 bytes
        for max in [3, 4, 5, 7, 64] {
            let pieces = split_text(&text, max);
            assert!(pieces.iter().all(|p| !p.is_empty() && p.len() <= max));
            assert_eq!(pieces.concat(), text);
        }
        assert!(split_text("", 10).is_empty());
        assert_eq!(split_text("a€", 1), ["a", "€"]);
        let snap = serde_json::json!({"entries": ["x".repeat(100)]});
        assert!(snapshot_parts("m", 1, &snap, None).is_none(), "no limit");
        assert!(snapshot_parts("m", 1, &snap, Some(1000)).is_none(), "fits");
        let parts = snapshot_parts("m", 7, &snap, Some(40)).unwrap();
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.amp().is_some()));
    }
}
