//! A live connection's login ends with the login: logout, revoking the
//! token, changing the password or disabling the account de-authorizes
//! open AMP and WebSocket connections at once (their next call answers
//! `UNAUTHORIZED`) and ends their observations.

mod common;

use std::time::Duration;

use common::*;
use mantle_client::{CallError, Client, ModelEvent};
use mantle_live::builtin::{Unauthorized, Whoami};
use mantle_live::{Empty, codes};
use mantle_live_server::LiveConfig;

const WAIT: Duration = Duration::from_secs(20);

/// Ways a login ends.
#[derive(Debug, Clone, Copy)]
enum Ending {
    Logout,
    TokenRevoked,
    ChangePassword,
    Disable,
}

async fn revoke(t: &TestSite, how: Ending, token: &str) {
    let alice = t.site.accounts().get("alice").await.unwrap();
    match how {
        Ending::Logout => assert!(t.site.auth().logout(token).await.unwrap()),
        Ending::TokenRevoked => {
            let tokens = t.site.auth().tokens(alice.id).await.unwrap();
            for tk in tokens {
                t.site.auth().revoke_token(alice.id, tk.id).await.unwrap();
            }
        }
        Ending::ChangePassword => t
            .site
            .accounts()
            .set_password("alice", PASSWORD)
            .await
            .unwrap(),
        Ending::Disable => t.site.accounts().set_disabled("alice", true).await.unwrap(),
    }
}

/// Calls `Whoami` until it answers `UNAUTHORIZED` (the revocation is
/// noticed as soon as the connection's task runs again).
async fn until_unauthorized(c: &Client) {
    tokio::time::timeout(WAIT, async {
        loop {
            match c.call::<Whoami>(Empty {}).await {
                Err(CallError::Command(Unauthorized::Unauthorized)) => return,
                Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
    })
    .await
    .expect("the connection is logged out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_a_login_logs_out_its_amp_connections_and_ends_observations() {
    let t = TestSite::start().await;
    let store = t.alice_store().await;
    for how in [
        Ending::Logout,
        Ending::TokenRevoked,
        Ending::ChangePassword,
        Ending::Disable,
    ] {
        let issued = t
            .site
            .auth()
            .login("alice", PASSWORD, "test")
            .await
            .unwrap();
        let mut opts = t.client_options();
        opts.credentials = Some(mantle_client::Credentials::Token(issued.token.clone()));
        let c = Client::connect(opts).await.unwrap();
        // Bob's connection is not touched by Alice's revocation.
        let bob = {
            let mut o = t.client_options();
            o.credentials = Some(mantle_client::Credentials::Password {
                username: "bob@example.com".into(),
                password: PASSWORD.into(),
            });
            Client::connect(o).await.unwrap()
        };
        assert_eq!(
            c.call::<Whoami>(Empty {}).await.unwrap().username,
            "alice@example.com"
        );
        let mut sub = c.observe("notes").await.unwrap();
        let first = tokio::time::timeout(WAIT, sub.next()).await.unwrap();
        assert!(
            matches!(first, Some(ModelEvent::Snapshot { .. })),
            "{how:?}"
        );

        revoke(&t, how, &issued.token).await;
        until_unauthorized(&c).await;
        let e = c.call::<Sum>(SumArgs { a: 1, b: 2 }).await.unwrap_err();
        assert_eq!(e.code(), Some(codes::UNAUTHORIZED), "{how:?}: {e:?}");
        // Its observation has ended: a change is not sent to it.
        add_note(&store, &format!("after {how:?}")).await;
        let next = tokio::time::timeout(Duration::from_millis(500), sub.next()).await;
        assert!(
            !matches!(next, Ok(Some(ModelEvent::Delta { .. }))),
            "{how:?}: a revoked connection still observes: {next:?}"
        );
        assert_eq!(
            bob.call::<Whoami>(Empty {}).await.unwrap().username,
            "bob@example.com"
        );
        if matches!(how, Ending::Disable) {
            t.site
                .accounts()
                .set_disabled("alice", false)
                .await
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_over_http_logs_out_the_websocket() {
    let t = TestSite::start().await;
    let issued = t
        .site
        .auth()
        .login("alice", PASSWORD, "test")
        .await
        .unwrap();
    let url = format!("ws://{}/live", t.http);
    let (mut ws, _) = tokio_tungstenite::connect_async(with_bearer(&url, &issued.token))
        .await
        .unwrap();
    let mut ask = async |id: u32, command: &str| {
        ws_ask(&mut ws, &format!(r#"{{"id":{id},"command":"{command}"}}"#)).await
    };
    assert_eq!(
        ask(1, "Whoami").await["answer"]["username"],
        "alice@example.com"
    );
    let r = reqwest::Client::new()
        .post(format!("http://{}/api/logout", t.http))
        .bearer_auth(&issued.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let mut answer = serde_json::Value::Null;
    for id in 2..200 {
        answer = ask(id, "Whoami").await;
        if answer["error"]["code"] == codes::UNAUTHORIZED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(answer["error"]["code"], codes::UNAUTHORIZED, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_that_never_logs_in_is_closed_at_the_login_deadline() {
    let t = TestSite::start_with(|c| {
        c.edit_section::<LiveConfig>(|s| s.login_timeout_secs = 1)
            .unwrap()
    })
    .await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/live", t.http))
        .await
        .unwrap();
    // It may still ask things that need no login meanwhile.
    let r = ws_ask(&mut ws, r#"{"id":1,"command":"Whoami"}"#).await;
    assert_eq!(r["error"]["code"], codes::UNAUTHORIZED);
    let closed = tokio::time::timeout(WAIT, async {
        use futures::StreamExt;
        while let Some(Ok(m)) = ws.next().await {
            if let tokio_tungstenite::tungstenite::Message::Close(f) = m {
                return f.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await
    .unwrap();
    assert_eq!(closed, Some(mantle_live_server::CLOSE_LOGIN_TIMEOUT));
    // A socket that logged in is not held to it.
    let issued = t
        .site
        .auth()
        .login("alice", PASSWORD, "test")
        .await
        .unwrap();
    let url = format!("ws://{}/live", t.http);
    let (mut ws, _) = tokio_tungstenite::connect_async(with_bearer(&url, &issued.token))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = ws_ask(&mut ws, r#"{"id":2,"command":"Whoami"}"#).await;
    assert_eq!(r["answer"]["username"], "alice@example.com");
}
