//! Errors in handlers: `?` on a command's typed error answers with it;
//! `?` after `or_fail` on a store (or site) error answers `UNKNOWN`, naming
//! the command and the error, on both transports, and the connection
//! carries on.

mod common;

use common::*;
use mantle_client::{CallError, Client};
use mantle_live::codes;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_error_in_a_handler_is_answered_unknown_and_a_typed_error_as_itself() {
    let t = TestSite::start().await;
    let c = Client::connect(t.client_options()).await.unwrap();

    // The typed error, through `?`.
    match c
        .call::<CountGhosts>(CountGhostsArgs { refuse: true })
        .await
    {
        Err(CallError::Command(GhostError::Refused)) => {}
        other => panic!("expected the typed error, got {other:?}"),
    }

    // The store error, through `or_fail()?`: UNKNOWN, with the command and
    // the store's own description.
    let e = c
        .call::<CountGhosts>(CountGhostsArgs { refuse: false })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(codes::UNKNOWN), "{e:?}");
    let CallError::Remote(remote) = &e else {
        panic!("expected a remote error, got {e:?}");
    };
    assert!(
        remote.description.starts_with("CountGhosts failed: ")
            && remote
                .description
                .contains("'test_ghost' is not registered"),
        "{}",
        remote.description
    );

    // The connection carries on.
    assert_eq!(
        c.call::<Sum>(SumArgs { a: 2, b: 3 }).await.unwrap().total,
        5
    );

    // The same over WebSocket JSON.
    let url = format!("ws://{}/live", t.http);
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    ws_login(&mut ws, &t.user).await;
    let r = ws_ask(
        &mut ws,
        r#"{"id":2,"command":"CountGhosts","args":{"refuse":false}}"#,
    )
    .await;
    assert_eq!(r["id"], 2);
    assert_eq!(r["error"]["code"], codes::UNKNOWN, "{r}");
    let r = ws_ask(
        &mut ws,
        r#"{"id":3,"command":"CountGhosts","args":{"refuse":true}}"#,
    )
    .await;
    assert_eq!(r["error"]["code"], "REFUSED", "{r}");
}
