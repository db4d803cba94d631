//! Links: one AMP connection from this node to each other node's AMP
//! listener, carrying this node's own requests (batches of messages and
//! their answers), and the serving of such connections here.
//!
//! A link opens with a `MantleNode` box holding the node's name and a
//! voucher (see `routing.rs`) for [`LINK_VOUCHER_PATH`] under the cluster's
//! secret; the listener answers it, or refuses it with an error box and
//! closes. After that, requests (`Deliver`, `Answers`) carry a JSON
//! document cut into values of at most 65,535 bytes (AMP's limit) under
//! the keys `j0`, `j1`, …, and are answered the same way, or with an error
//! box whose code says why ([`codes`]). Requests run concurrently (up to
//! [`IN_FLIGHT`] a link), and answers come back in the order they are
//! ready, matched by their `_ask` tags.
//!
//! A link that fails (the other node restarts, or its listener closes it
//! after its idle time-out) fails the calls waiting on it; the next call
//! opens a new one. A failed call is one the sender tries again: its
//! outbox still holds the messages, and the receiver's receipts make a
//! batch applied twice take effect once.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use mantle_amp::{AmpBox, BoxDecoder, Message, frame};
use mantle_client::{CallError, ClientTls, Connection};
use mantle_live_server::amp::{NODE_COMMAND, NodeLinkIo, NodeLinks};
use mantle_site::Site;
use parking_lot::Mutex;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::codec::FramedRead;

use crate::peers::MAX_PEER_JSON;

/// What a link's voucher names as its "path".
pub const LINK_VOUCHER_PATH: &str = "/cluster/link";
/// A batch of messages for a store of the receiving node.
pub(crate) const DELIVER: &str = "Deliver";
/// Answers for a store of the receiving node.
pub(crate) const ANSWERS: &str = "Answers";

/// The error codes a link answers with.
pub mod codes {
    /// The link's voucher did not check out.
    pub const UNAUTHORIZED: &str = "UNAUTHORIZED";
    /// The sending store is not the sending node's at that epoch.
    pub const STALE: &str = "STALE";
    /// Not now (the store is moving, etcd does not answer): try again.
    pub const UNAVAILABLE: &str = "UNAVAILABLE";
    /// The request was refused for what it is.
    pub const REFUSED: &str = "REFUSED";
}

/// Requests a link runs at once on the receiving node.
pub const IN_FLIGHT: usize = 256;
/// Bytes of one AMP value.
const CHUNK: usize = 65_535;
/// The largest box on a link: a JSON document of [`MAX_PEER_JSON`] bytes
/// in chunks, with their keys and lengths.
const MAX_LINK_BOX: usize = MAX_PEER_JSON + (MAX_PEER_JSON / CHUNK + 1) * 8 + 4096;
/// How long opening a link may take.
const CONNECT_WAIT: Duration = Duration::from_secs(2);
/// How long the other node may take to answer a request.
const ANSWER_WAIT: Duration = Duration::from_secs(60);

/// `json` cut into values of `b`.
fn put_json(mut b: AmpBox, json: &[u8]) -> AmpBox {
    for (i, chunk) in json.chunks(CHUNK).enumerate() {
        b.insert(format!("j{i}"), chunk);
    }
    b
}

/// The JSON document the values of `b` hold.
fn take_json(b: &AmpBox) -> Vec<u8> {
    let mut json = Vec::new();
    for i in 0.. {
        match b.get(format!("j{i}")) {
            Some(chunk) => json.extend_from_slice(chunk),
            None => break,
        }
    }
    json
}

/// Writes the boxes `rx` hands over, flushing when none is waiting.
async fn write_boxes(wr: impl AsyncWrite + Unpin, mut rx: mpsc::Receiver<Vec<u8>>) {
    let mut wr = BufWriter::new(wr);
    while let Some(bytes) = rx.recv().await {
        if wr.write_all(&bytes).await.is_err() {
            return;
        }
        while let Ok(bytes) = rx.try_recv() {
            if wr.write_all(&bytes).await.is_err() {
                return;
            }
        }
        if wr.flush().await.is_err() {
            return;
        }
    }
    let _ = wr.shutdown().await;
}

fn encoded(b: &AmpBox) -> Vec<u8> {
    // Every key is ours and every value a chunk: always encodable.
    mantle_amp::encode(b).unwrap_or_default()
}

// ---- calling ---------------------------------------------------------------

/// This node's links to the other nodes, by their AMP `host:port`.
#[derive(Default)]
pub(crate) struct Links {
    links: Mutex<HashMap<String, Arc<Slot>>>,
}

/// Where the link to one node is kept (locked while it is being opened).
type Slot = tokio::sync::Mutex<Option<Arc<Connection>>>;

impl Links {
    /// Sends `command` with the JSON document `json` to the node whose
    /// AMP listener is `addr` (opening a link to it first if none is
    /// open); its JSON answer, or why there is none.
    pub(crate) async fn call(
        &self,
        (routing, tls): (&crate::Routing, Option<&ClientTls>),
        me: &str,
        addr: &str,
        command: &str,
        json: &[u8],
    ) -> Result<Vec<u8>, String> {
        let link = self.link((routing, tls), me, addr).await?;
        let args = put_json(AmpBox::new(), json);
        match tokio::time::timeout(ANSWER_WAIT, link.call(command, args)).await {
            Ok(Ok(answer)) => Ok(take_json(&answer)),
            Ok(Err(CallError::Remote(e))) => Err(format!("{addr} answered {e}")),
            Ok(Err(e)) => Err(format!("the link to {addr}: {e}")),
            Err(_) => Err(format!("{addr} did not answer in {ANSWER_WAIT:?}")),
        }
    }

    /// The open link to `addr`, opened now if there is none.
    async fn link(
        &self,
        (routing, tls): (&crate::Routing, Option<&ClientTls>),
        me: &str,
        addr: &str,
    ) -> Result<Arc<Connection>, String> {
        let slot = self
            .links
            .lock()
            .entry(addr.to_string())
            .or_default()
            .clone();
        // Callers to one node wait for one opening, not one each.
        let mut slot = slot.lock().await;
        if let Some(link) = slot.as_ref().filter(|l| l.is_alive()) {
            return Ok(link.clone());
        }
        let link = match tokio::time::timeout(CONNECT_WAIT, open(routing, tls, me, addr)).await {
            Ok(opened) => Arc::new(opened?),
            Err(_) => return Err(format!("no link to {addr}: no answer in {CONNECT_WAIT:?}")),
        };
        tracing::debug!(to = %addr, "link to a node opened");
        *slot = Some(link.clone());
        Ok(link)
    }
}

/// Opens a link to `addr` (`host:port`, or `amps://host:port` over TLS
/// with `tls`): connects, and says who this node is.
async fn open(
    routing: &crate::Routing,
    tls: Option<&ClientTls>,
    me: &str,
    addr: &str,
) -> Result<Connection, String> {
    let opened = match addr.strip_prefix("amps://") {
        Some(host_port) => {
            let tls = tls.ok_or_else(|| {
                format!("no link to {addr}: no certificates to trust (cluster.ca_file)")
            })?;
            Connection::open_with(host_port, Some(tls), MAX_LINK_BOX).await
        }
        None => Connection::open(addr, MAX_LINK_BOX).await,
    };
    let link = opened.map_err(|e| format!("no link to {addr}: {e}"))?;
    let voucher = mantle_web::Forwarding::vouch(
        routing,
        std::net::IpAddr::from([127, 0, 0, 1]),
        "AMP",
        LINK_VOUCHER_PATH,
    );
    let hello = AmpBox::new()
        .with("node", me.as_bytes())
        .with("voucher", voucher.into_bytes());
    let command = std::str::from_utf8(NODE_COMMAND).expect("ASCII");
    link.call(command, hello)
        .await
        .map_err(|e| format!("{addr} refused a link: {e}"))?;
    Ok(link)
}

// ---- serving ---------------------------------------------------------------

/// Serves links other nodes open to this node (the AMP listener's
/// [`NodeLinks`]).
pub(crate) struct LinkServer;

impl NodeLinks for LinkServer {
    fn serve(
        &self,
        site: Site,
        hello: AmpBox,
        io: NodeLinkIo,
    ) -> Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(serve(site, hello, io))
    }
}

async fn serve(site: Site, hello: AmpBox, io: NodeLinkIo) {
    let NodeLinkIo {
        buffered,
        rd,
        mut wr,
    } = io;
    let tag = hello.get(frame::ASK).unwrap_or(b"0").to_vec();
    let node = crate::peers::node_of(&site).ok();
    let vouched = node.as_ref().is_some_and(|node| {
        hello
            .get("voucher")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| {
                mantle_web::Forwarding::verify(&*node.routing(), v, "AMP", LINK_VOUCHER_PATH)
            })
            .is_some()
    });
    let from = String::from_utf8_lossy(hello.get("node").unwrap_or_default()).into_owned();
    let Some(node) = node.filter(|_| vouched) else {
        tracing::warn!(%from, "refused a link: its voucher does not check out");
        let refusal = frame::error(
            &tag,
            codes::UNAUTHORIZED.as_bytes(),
            "only a node of this cluster may open a link",
        );
        let _ = wr.write_all(&encoded(&refusal)).await;
        let _ = wr.shutdown().await;
        return;
    };
    let (tx, rx) = mpsc::channel::<Vec<u8>>(IN_FLIGHT);
    if tx
        .send(encoded(&frame::answer(&tag, AmpBox::new())))
        .await
        .is_err()
    {
        return;
    }
    let writer = tokio::spawn(write_boxes(wr, rx));
    tracing::debug!(%from, "link from a node");
    // What the listener read past the hello comes first (a reader handed
    // a full buffer would wait for more bytes before decoding it).
    let rd = tokio::io::AsyncReadExt::chain(std::io::Cursor::new(buffered), rd);
    let mut boxes = FramedRead::new(rd, BoxDecoder::with_max_box_size(MAX_LINK_BOX));
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(next) = boxes.next().await {
        let Ok(b) = next else {
            tracing::debug!(%from, "closing a link: unreadable box");
            break;
        };
        let Some(Message::Request {
            command,
            tag: Some(tag),
            args,
        }) = Message::classify(b)
        else {
            continue;
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let (node, site, tx) = (node.clone(), site.clone(), tx.clone());
        tokio::spawn(async move {
            let answer =
                match crate::messages::receive(&node, &site, &command, &take_json(&args)).await {
                    Ok(json) => put_json(frame::answer(&tag, AmpBox::new()), &json),
                    Err((code, why)) => frame::error(&tag, code.as_bytes(), &why),
                };
            let _ = tx.send(encoded(&answer)).await;
            drop(slot);
        });
    }
    // Let the requests in flight answer before the writer ends.
    drop(tx);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    #[test]
    fn documents_past_one_value_are_cut_and_joined_again() {
        for len in [0, 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17] {
            let json: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let b = put_json(frame::request(b"Deliver", Some(b"1"), AmpBox::new()), &json);
            let bytes = encoded(&b);
            let mut dec = BoxDecoder::with_max_box_size(MAX_LINK_BOX);
            let back = dec
                .decode(&mut BytesMut::from(&bytes[..]))
                .unwrap()
                .unwrap();
            assert_eq!(take_json(&back), json, "{len} bytes");
        }
    }
}
