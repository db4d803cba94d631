//! One AMP connection: a writer task, a reader task, and the calls waiting
//! for their answers.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use futures::StreamExt;
use mantle_amp::{AmpBox, BoxDecoder, Message, frame};
use mantle_live::{RemoteError, codes};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::FramedRead;

use crate::tls::ClientTls;

/// An answer as it arrives: the values, or the error.
pub(crate) type Reply = Result<AmpBox, RemoteError>;

/// Runs in the reader, on the answer, before the next box is read: lets
/// an observation take its snapshot before any later delta is handled.
pub(crate) type OnAnswer = Box<dyn FnOnce(&Reply) + Send>;

struct Waiting {
    reply: oneshot::Sender<Reply>,
    on_answer: Option<OnAnswer>,
}

/// What the reader does with requests the peer sends (pushes).
pub(crate) type OnRequest = Arc<dyn Fn(&Conn, String, Option<Vec<u8>>, AmpBox) + Send + Sync>;

/// A live connection.
pub(crate) struct Conn {
    out: mpsc::UnboundedSender<Vec<u8>>,
    waiting: Mutex<HashMap<Vec<u8>, Waiting>>,
    next_tag: AtomicU64,
    alive: AtomicBool,
}

impl Conn {
    /// Connects (over TLS with `tls`) and starts the reader and writer;
    /// `closed` fires when the connection ends (every waiting call has
    /// then failed).
    pub async fn open(
        addr: &str,
        tls: Option<&ClientTls>,
        max_box: usize,
        on_request: OnRequest,
    ) -> std::io::Result<(Arc<Conn>, oneshot::Receiver<()>)> {
        let stream = TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        Ok(match tls {
            None => {
                let (rd, wr) = stream.into_split();
                Self::start(rd, wr, max_box, on_request)
            }
            Some(tls) => {
                let (rd, wr) = tokio::io::split(tls.connect(addr, stream).await?);
                Self::start(rd, wr, max_box, on_request)
            }
        })
    }

    /// Starts the reader and writer on a connection's halves, taking
    /// boxes of up to `max_box` bytes.
    fn start(
        rd: impl AsyncRead + Unpin + Send + 'static,
        wr: impl AsyncWrite + Unpin + Send + 'static,
        max_box: usize,
        on_request: OnRequest,
    ) -> (Arc<Conn>, oneshot::Receiver<()>) {
        let (out, rx) = mpsc::unbounded_channel();
        let conn = Arc::new(Conn {
            out,
            waiting: Mutex::new(HashMap::new()),
            next_tag: AtomicU64::new(1),
            alive: AtomicBool::new(true),
        });
        let (closed_tx, closed) = oneshot::channel();
        tokio::spawn(write_loop(wr, rx));
        let reader = conn.clone();
        tokio::spawn(async move {
            let mut boxes = FramedRead::new(rd, BoxDecoder::with_max_box_size(max_box));
            while let Some(Ok(b)) = boxes.next().await {
                reader.received(b, &on_request);
            }
            reader.lost();
            let _ = closed_tx.send(());
        });
        (conn, closed)
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Closes the connection (waiting calls fail with connection lost).
    pub fn close(&self) {
        self.alive.store(false, Ordering::Release);
        // An empty message tells the writer to shut the socket.
        let _ = self.out.send(Vec::new());
    }

    fn lost(&self) {
        self.alive.store(false, Ordering::Release);
        let _ = self.out.send(Vec::new());
        // Dropping the senders fails the waiting calls.
        self.waiting.lock().clear();
    }

    /// Sends a request and returns the answer's receiver (`None`: the
    /// connection is gone, or the box cannot be encoded).
    pub fn ask(
        &self,
        command: &str,
        args: AmpBox,
        on_answer: Option<OnAnswer>,
    ) -> Result<oneshot::Receiver<Reply>, SendError> {
        if !self.is_alive() {
            return Err(SendError::Lost);
        }
        let tag = format!("{:x}", self.next_tag.fetch_add(1, Ordering::Relaxed)).into_bytes();
        let bytes = mantle_amp::encode(&frame::request(command.as_bytes(), Some(&tag), args))
            .map_err(|e| SendError::Encode(e.to_string()))?;
        let (reply, rx) = oneshot::channel();
        self.waiting
            .lock()
            .insert(tag, Waiting { reply, on_answer });
        if self.out.send(bytes).is_err() || !self.is_alive() {
            return Err(SendError::Lost);
        }
        Ok(rx)
    }

    /// Sends a box as it is (an answer to the peer, or a one-way request).
    pub fn send(&self, b: &AmpBox) {
        if let Ok(bytes) = mantle_amp::encode(b) {
            let _ = self.out.send(bytes);
        }
    }

    fn received(&self, mut b: AmpBox, on_request: &OnRequest) {
        // `classify` keeps only code and description of an error; the
        // details of a typed error ride beside them.
        let details = b
            .remove("details")
            .and_then(|d| serde_json::from_slice(&d).ok());
        let (tag, reply) = match Message::classify(b) {
            Some(Message::Answer { tag, values }) => (tag, Ok(values)),
            Some(Message::Error {
                tag,
                code,
                description,
            }) => (
                tag,
                Err(RemoteError {
                    code: String::from_utf8_lossy(&code).into_owned(),
                    description,
                    details,
                }),
            ),
            Some(Message::Request { command, tag, args }) => {
                let command = String::from_utf8_lossy(&command).into_owned();
                return on_request(self, command, tag, args);
            }
            None => return,
        };
        let Some(w) = self.waiting.lock().remove(&tag) else {
            return;
        };
        if let Some(f) = w.on_answer {
            f(&reply);
        }
        let _ = w.reply.send(reply);
    }
}

/// Answers a request this client does not serve with AMP's `UNHANDLED`.
pub(crate) fn refuse(conn: &Conn, command: &str, tag: Option<Vec<u8>>) {
    if let Some(tag) = tag {
        conn.send(&frame::error(
            &tag,
            codes::UNHANDLED.as_bytes(),
            &format!("this client serves no command {command:?}"),
        ));
    }
}

#[derive(Debug)]
pub(crate) enum SendError {
    Lost,
    Encode(String),
}

async fn write_loop(wr: impl AsyncWrite + Unpin, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    let mut w = BufWriter::with_capacity(64 * 1024, wr);
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(bytes) = next {
            if bytes.is_empty() {
                let _ = w.flush().await;
                let _ = w.shutdown().await;
                return;
            }
            if w.write_all(&bytes).await.is_err() {
                return;
            }
            next = rx.try_recv().ok();
        }
        if w.flush().await.is_err() {
            return;
        }
    }
}
