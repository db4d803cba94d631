//! Bad input on both transports gets an error answer where one is
//! possible, else the connection is closed; the server, the other
//! connections and the stores carry on.

mod common;

use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use mantle_amp::{AmpBox, BoxDecoder, Message, encode, frame};
use mantle_client::Client;
use mantle_live::builtin::Whoami;
use mantle_live::{Empty, codes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const WAIT: Duration = Duration::from_secs(20);

/// Reads one box from a raw connection (`None`: closed).
async fn read_box(s: &mut TcpStream, buf: &mut bytes::BytesMut) -> Option<AmpBox> {
    let mut dec = BoxDecoder::new();
    loop {
        if let Some(b) = dec.decode(buf).unwrap() {
            return Some(b);
        }
        let n = tokio::time::timeout(WAIT, s.read_buf(buf))
            .await
            .unwrap()
            .ok()?;
        if n == 0 {
            return None;
        }
    }
}

async fn ask(s: &mut TcpStream, buf: &mut bytes::BytesMut, b: AmpBox) -> Message {
    s.write_all(&encode(&b).unwrap()).await.unwrap();
    Message::classify(read_box(s, buf).await.expect("an answer")).unwrap()
}

/// Logs a raw connection in as `user` (the answer must be a token).
async fn login(s: &mut TcpStream, buf: &mut bytes::BytesMut, user: &str, tag: &[u8]) {
    let args = AmpBox::new()
        .with("username", user)
        .with("password", PASSWORD);
    let m = ask(s, buf, frame::request(b"Login", Some(tag), args)).await;
    assert!(matches!(m, Message::Answer { .. }), "{m:?}");
}

fn code_of(m: &Message) -> &[u8] {
    match m {
        Message::Error { code, .. } => code,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_amp_is_answered_or_closed_and_harms_nothing() {
    let t = TestSite::start().await;
    let store = t.alice_store().await;
    let bystander = Client::connect(t.client_options()).await.unwrap();
    let mut sub = bystander.observe("notes").await.unwrap();
    sub.next().await.unwrap();

    let mut s = TcpStream::connect(t.amp_addr).await.unwrap();
    let mut buf = bytes::BytesMut::new();
    // A command before login.
    let m = ask(
        &mut s,
        &mut buf,
        frame::request(
            b"Sum",
            Some(b"1"),
            AmpBox::new().with("a", "1").with("b", "2"),
        ),
    )
    .await;
    assert_eq!(code_of(&m), codes::UNAUTHORIZED.as_bytes());
    // Unknown command.
    let m = ask(
        &mut s,
        &mut buf,
        frame::request(b"NoSuch", Some(b"2"), AmpBox::new()),
    )
    .await;
    assert_eq!(code_of(&m), b"UNHANDLED");
    // `_ask` without `_command`.
    let m = ask(
        &mut s,
        &mut buf,
        AmpBox::new().with("_ask", "3").with("x", "y"),
    )
    .await;
    assert_eq!(code_of(&m), codes::BAD_REQUEST.as_bytes());
    // Log in, then a wrong argument type and a call on a dead handle.
    login(&mut s, &mut buf, &t.user, b"4").await;
    let m = ask(
        &mut s,
        &mut buf,
        frame::request(
            b"Sum",
            Some(b"5"),
            AmpBox::new().with("a", "x").with("b", "2"),
        ),
    )
    .await;
    assert_eq!(code_of(&m), codes::BAD_ARGUMENTS.as_bytes());
    let m = ask(
        &mut s,
        &mut buf,
        frame::request(
            b"Increment",
            Some(b"6"),
            AmpBox::new().with("_handle", "99"),
        ),
    )
    .await;
    assert_eq!(code_of(&m), codes::NO_SUCH_HANDLE.as_bytes());
    let m = ask(
        &mut s,
        &mut buf,
        frame::request(b"Increment", Some(b"7"), AmpBox::new().with("_handle", "x")),
    )
    .await;
    assert_eq!(code_of(&m), codes::BAD_ARGUMENTS.as_bytes());
    // A command name that is not UTF-8.
    let m = ask(
        &mut s,
        &mut buf,
        frame::request(b"\xff\xfe", Some(b"8"), AmpBox::new()),
    )
    .await;
    assert_eq!(code_of(&m), codes::UNHANDLED.as_bytes());
    // A box with no `_command` and no `_ask`: closed, as Twisted does.
    s.write_all(&encode(&AmpBox::new().with("x", "y")).unwrap())
        .await
        .unwrap();
    assert!(read_box(&mut s, &mut buf).await.is_none(), "closed");

    // A key over 255 bytes: unreadable, closed.
    let mut s = TcpStream::connect(t.amp_addr).await.unwrap();
    s.write_all(&[0x01, 0x00]).await.unwrap();
    s.write_all(&[b'k'; 256]).await.unwrap();
    assert!(read_box(&mut s, &mut buf).await.is_none(), "closed");
    // A value length past the end of the stream, then EOF.
    let mut s = TcpStream::connect(t.amp_addr).await.unwrap();
    s.write_all(b"\x00\x01a\xff\xffshort").await.unwrap();
    s.shutdown().await.unwrap();
    assert!(
        read_box(&mut s, &mut bytes::BytesMut::new())
            .await
            .is_none(),
        "closed"
    );
    // A box over the size limit (1 MiB by default), each value valid.
    let mut s = TcpStream::connect(t.amp_addr).await.unwrap();
    let mut big = AmpBox::new();
    for i in 0..20 {
        big.insert(format!("k{i}"), vec![b'v'; 60_000]);
    }
    let _ = s.write_all(&encode(&big).unwrap()).await;
    assert!(
        read_box(&mut s, &mut bytes::BytesMut::new())
            .await
            .is_none(),
        "closed"
    );
    // Garbage.
    let mut s = TcpStream::connect(t.amp_addr).await.unwrap();
    s.write_all(&[0xff; 4096]).await.unwrap();
    assert!(
        read_box(&mut s, &mut bytes::BytesMut::new())
            .await
            .is_none(),
        "closed"
    );

    // Everyone else is unaffected.
    assert_eq!(
        bystander.call::<Whoami>(Empty {}).await.unwrap().username,
        t.user
    );
    add_note(&store, "still here").await;
    let ev = tokio::time::timeout(WAIT, sub.next())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(ev, mantle_client::ModelEvent::Delta { .. }));
    let notes = store.read(|r| r.query::<Note>().count()).await.unwrap();
    assert_eq!(notes, 1, "the store holds exactly what was committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_json_serves_the_same_commands_and_refuses_bad_messages() {
    let t = TestSite::start().await;
    let url = format!("ws://{}/live", t.http);
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let r = ws_ask(&mut ws, r#"{"id":1,"command":"Whoami"}"#).await;
    assert_eq!(r["error"]["code"], codes::UNAUTHORIZED);
    let r = ws_ask(
        &mut ws,
        &format!(
            r#"{{"id":2,"command":"Login","args":{{"username":"{}","password":"{PASSWORD}"}}}}"#,
            t.user
        ),
    )
    .await;
    assert_eq!(r["id"], 2);
    assert!(r["answer"]["token"].is_string(), "{r}");
    let r = ws_ask(&mut ws, r#"{"id":"w","command":"Whoami"}"#).await;
    assert_eq!(r["answer"]["username"], t.user.as_str());
    let r = ws_ask(
        &mut ws,
        r#"{"id":3,"command":"Sum","args":{"a":13,"b":81}}"#,
    )
    .await;
    assert_eq!(r["answer"]["total"], 94);
    let r = ws_ask(
        &mut ws,
        r#"{"id":4,"command":"Sum","args":{"a":"x","b":1}}"#,
    )
    .await;
    assert_eq!(r["error"]["code"], codes::BAD_ARGUMENTS);
    let r = ws_ask(&mut ws, r#"{"id":5,"command":"Nope"}"#).await;
    assert_eq!(r["error"]["code"], codes::UNHANDLED);
    let r = ws_ask(&mut ws, r#"{"id":6,"command":"Increment","handle":7}"#).await;
    assert_eq!(r["error"]["code"], codes::NO_SUCH_HANDLE);
    let r = ws_ask(&mut ws, "{not json").await;
    assert_eq!(r["error"]["code"], codes::BAD_REQUEST);
    assert!(r["id"].is_null());
    let r = ws_ask(&mut ws, r#"{"id":8}"#).await;
    assert_eq!(r["error"]["code"], codes::BAD_REQUEST);
    assert_eq!(r["id"], 8);
    // Observe and see a committed change pushed.
    let r = ws_ask(
        &mut ws,
        r#"{"id":9,"command":"Observe","args":{"model":"notes"}}"#,
    )
    .await;
    assert_eq!(r["answer"]["resumed"], false);
    let seq = r["answer"]["sequence"].as_i64().unwrap();
    add_note(&t.alice_store().await, "pushed").await;
    let m = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let push: serde_json::Value = serde_json::from_str(m.to_text().unwrap()).unwrap();
    assert_eq!(push["command"], "Delta");
    assert_eq!(push["args"]["sequence"], seq + 1);
    assert_eq!(push["args"]["delta"]["text"], "pushed");
    // A message over the 1 MiB limit closes the connection.
    let (mut big, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let text = format!(
        r#"{{"id":1,"command":"Whoami","args":{{"x":"{}"}}}}"#,
        "y".repeat(1_100_000)
    );
    let _ = big.send(WsMessage::Text(text.into())).await;
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match big.next().await {
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "an oversized message ends the connection");
    // A binary frame closes the connection with 1003.
    ws.send(WsMessage::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    let closed = tokio::time::timeout(WAIT, async {
        while let Some(Ok(m)) = ws.next().await {
            if let WsMessage::Close(f) = m {
                return f.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await
    .unwrap();
    assert_eq!(closed, Some(1003));

    // An HTTP login token logs the socket in at the upgrade; a bad one is 401.
    let issued = t.site.auth().login("bob", PASSWORD, "test").await.unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(with_bearer(&url, &issued.token))
        .await
        .unwrap();
    let r = ws_ask(&mut ws, r#"{"id":1,"command":"Whoami"}"#).await;
    assert_eq!(r["answer"]["username"], "bob@example.com");
    // A token in the URL is refused outright (it would end up in logs).
    match tokio_tungstenite::connect_async(format!("{url}?token={}", issued.token)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 400),
        other => panic!("expected 400, got {other:?}"),
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(with_bearer(&url, "nonsense"))
        .await
        .unwrap();
    let closed = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
    match closed {
        Some(Ok(WsMessage::Close(Some(f)))) => {
            assert_eq!(u16::from(f.code), mantle_live_server::CLOSE_UNAUTHORIZED)
        }
        other => panic!("expected a 4401 close, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_attempts_are_limited_per_address_on_every_transport() {
    // Four a minute: one comes back every 15 s, far longer than this test
    // takes, so the count cannot be topped up half-way.
    let t = TestSite::start_with(|c| c.auth.login_attempts_per_minute = 4).await;
    let per_minute = t.site.config().auth.login_attempts_per_minute;
    // Half the allowance is spent over HTTP: one allowance for all. (A
    // new login each time: failures for one login back off on their own.)
    let http = reqwest::Client::new();
    let over_http = per_minute / 2;
    for i in 0..over_http {
        let r = http
            .post(format!("http://{}/api/login", t.http))
            .json(&serde_json::json!({"username": format!("nobody{i}"), "password": "wrong"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let mut s = TcpStream::connect(t.amp_addr).await.unwrap();
    let mut buf = bytes::BytesMut::new();
    let mut limited = None;
    for i in over_http..=per_minute {
        let login = AmpBox::new()
            .with("username", format!("nobody{i}"))
            .with("password", "wrong");
        let tag = i.to_string();
        let m = ask(
            &mut s,
            &mut buf,
            frame::request(b"Login", Some(tag.as_bytes()), login),
        )
        .await;
        if code_of(&m) == codes::TOO_MANY_ATTEMPTS.as_bytes() {
            limited = Some(i);
            break;
        }
        assert_eq!(code_of(&m), codes::UNAUTHORIZED.as_bytes());
    }
    assert_eq!(
        limited,
        Some(per_minute),
        "the attempt after the allowance is refused"
    );
    // Every transport shares the allowance.
    let c = Client::connect(t.client_options()).await;
    match c {
        Err(mantle_client::ConnectError::Login(e)) => {
            assert_eq!(e.code(), Some(codes::TOO_MANY_ATTEMPTS))
        }
        other => panic!("expected the login to be refused, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_holds_a_bounded_number_of_handles() {
    let t = TestSite::start().await;
    let c = Client::connect(t.client_options()).await.unwrap();
    let opened = futures::future::join_all((0..mantle_live_server::MAX_HANDLES).map(|_| {
        let c = c.clone();
        async move {
            c.call::<OpenCounter>(OpenCounterArgs { start: 0 })
                .await
                .unwrap()
                .handle
        }
    }))
    .await;
    let e = c
        .call::<OpenCounter>(OpenCounterArgs { start: 0 })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(codes::UNKNOWN), "{e:?}");
    c.call::<mantle_live::builtin::Release>(mantle_live::builtin::ReleaseArgs {
        handle: opened[0],
    })
    .await
    .unwrap();
    c.call::<OpenCounter>(OpenCounterArgs { start: 0 })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_websocket_frame_closes_the_connection() {
    let t = TestSite::start().await;
    let mut s = TcpStream::connect(t.http).await.unwrap();
    // A hand-made upgrade, then a frame a client must never send: unmasked.
    let upgrade = format!(
        "GET /live HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        t.http
    );
    s.write_all(upgrade.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        tokio::time::timeout(WAIT, s.read_exact(&mut byte))
            .await
            .unwrap()
            .unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s.write_all(&[0x81, 0x02, b'{', b'}']).await.unwrap();
    // The WebSocket layer gives up on the connection: it can no longer
    // send even a close frame, so the socket just ends.
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut rest))
        .await
        .expect("the server closes the connection")
        .unwrap();
    assert!(
        rest.is_empty() || rest[0] == 0x88,
        "nothing but a close frame: {rest:?}"
    );
    // The server goes on.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/live", t.http))
        .await
        .unwrap();
    let r = ws_ask(&mut ws, r#"{"id":1,"command":"Whoami"}"#).await;
    assert_eq!(r["error"]["code"], codes::UNAUTHORIZED);
}

/// An observer that stops reading cannot hold the server: once its queue
/// is full it is told to `Resync` (and that push is not lost to the full
/// queue), the deltas it got before are consecutive, and observing again
/// brings it up to date. Another observer of the same model sees every
/// change, and the writer is never held up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_that_stops_reading_is_told_to_resync() {
    let t = TestSite::start().await;
    let store = t.alice_store().await;
    let bystander = Client::connect(t.client_options()).await.unwrap();
    let mut others = bystander.observe("notes").await.unwrap();

    // A small receive buffer, so the server's queue fills sooner.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(t.amp_addr).await.unwrap();
    let mut buf = bytes::BytesMut::new();
    login(&mut s, &mut buf, &t.user, b"1").await;
    let m = ask(
        &mut s,
        &mut buf,
        frame::request(b"Observe", Some(b"2"), AmpBox::new().with("model", "notes")),
    )
    .await;
    let Message::Answer { values, .. } = m else {
        panic!("{m:?}")
    };
    let int = |b: &AmpBox, key: &str| -> i64 {
        std::str::from_utf8(b.get(key).unwrap_or_else(|| panic!("no {key}")))
            .unwrap()
            .parse()
            .unwrap()
    };
    let start = int(&values, "sequence");

    // Stop reading; publish (8 KiB deltas, 50 a transaction) until the
    // server gives up on this observer.
    let resyncs = || {
        let site = t.site.clone();
        async move {
            let snap = site.stats_snapshot().await.unwrap();
            match snap
                .namespace(mantle_live_server::LIVE_NAMESPACE)
                .and_then(|ns| ns.value("Resyncs").cloned())
            {
                Some(mantle_stats::Value::Int(n)) => n,
                _ => 0,
            }
        }
    };
    let text = "x".repeat(8 * 1024);
    let mut published = 0i64;
    while resyncs().await == 0 {
        assert!(
            published < 20_000,
            "no resync after {published} deltas to an observer that reads nothing"
        );
        let text = text.clone();
        store
            .transact(move |tx| {
                for _ in 0..50 {
                    let id = tx.insert(&Note { text: text.clone() })?;
                    mantle_live_server::publish(
                        tx,
                        "notes",
                        &NoteDelta {
                            id: id.raw(),
                            text: text.clone(),
                        },
                    )?;
                }
                mantle_store::ok(())
            })
            .await
            .unwrap();
        published += 50;
    }

    // Read again: consecutive deltas from `start`, then the Resync.
    let mut last = start;
    loop {
        let b = read_box(&mut s, &mut buf)
            .await
            .expect("the connection stays open");
        match Message::classify(b).unwrap() {
            Message::Request { command, args, .. } if command == b"Delta" => {
                let seq = int(&args, "sequence");
                assert_eq!(seq, last + 1, "deltas arrive in order, without gaps");
                last = seq;
            }
            Message::Request { command, args, .. } if command == b"Resync" => {
                assert_eq!(args.get("model"), Some(&b"notes"[..]));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(last < start + published, "it fell behind before the end");

    // Observing again from the last sequence seen brings it up to date.
    let m = ask(
        &mut s,
        &mut buf,
        frame::request(
            b"Observe",
            Some(b"3"),
            AmpBox::new()
                .with("model", "notes")
                .with("since", last.to_string().as_str()),
        ),
    )
    .await;
    let Message::Answer { values, .. } = m else {
        panic!("{m:?}")
    };
    assert_eq!(int(&values, "sequence"), start + published);
    if values.get("resumed") == Some(&b"True"[..]) {
        // Within the history: the missed deltas follow.
        for want in last + 1..=start + published {
            let b = read_box(&mut s, &mut buf).await.expect("a delta");
            let Message::Request { command, args, .. } = Message::classify(b).unwrap() else {
                panic!("expected a delta")
            };
            assert_eq!(command, b"Delta");
            assert_eq!(int(&args, "sequence"), want);
        }
    }

    // The other observer saw everything, in order.
    let mut seen = start;
    while seen < start + published {
        match tokio::time::timeout(WAIT, others.next())
            .await
            .expect("the other observer keeps up")
            .unwrap()
        {
            mantle_client::ModelEvent::Snapshot { sequence, .. } if sequence == start => {}
            mantle_client::ModelEvent::Snapshot { sequence, .. } => {
                panic!("the other observer had to resync (at {sequence})")
            }
            mantle_client::ModelEvent::Delta { sequence, .. } => {
                assert_eq!(sequence, seen + 1);
                seen = sequence;
            }
            e @ mantle_client::ModelEvent::Ended { .. } => panic!("the observation ended: {e:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amp_listener_on_a_site_built_without_the_live_layer_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let site = mantle_web::install(mantle_site::Site::builder(dir.path()))
        .init(mantle_site::SiteConfig::default())
        .await
        .unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    match mantle_live_server::amp::start_on(&site, addr).await {
        Err(mantle_site::SiteError::NotInstalled(what)) => {
            assert_eq!(what, "mantle_live_server::install");
        }
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("started without the live layer"),
    }
    site.close().await;
}
