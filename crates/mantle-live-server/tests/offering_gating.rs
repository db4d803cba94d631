//! An offering's live commands and models are present only while the
//! offering is installed: `UNHANDLED` and `NO_SUCH_MODEL` before, served
//! after, absent again once it is uninstalled.

mod common;

use common::*;
use mantle_client::{CallError, Client};
use mantle_live::builtin::{Observe, ObserveArgs, ObserveError};
use mantle_live::{Empty, NoError, arguments, codes, command};
use mantle_live_server::LiveOffering;
use mantle_site::Offering;

arguments! {
    /// `Chime` answer.
    pub struct ChimeAnswer {
        /// Always 7.
        pub n: i64,
    }
}

command!(
    /// The gated offering's command.
    pub Chime, Empty, ChimeAnswer, NoError
);

fn gated() -> Offering {
    Offering::new("gated", 1).live(|live| {
        live.command::<Chime, _, _>(|_, _| async { Ok(ChimeAnswer { n: 7 }) });
        live.model(
            "chimes",
            |caller, _| async move {
                use mantle_live_server::OrFail;
                caller.store().await.or_fail()
            },
            |_, _| Ok(serde_json::json!({})),
        );
    })
}

/// Whether observing `chimes` is refused as a model that does not exist.
async fn no_such_model(c: &Client) -> bool {
    match c
        .call::<Observe>(ObserveArgs {
            model: "chimes".into(),
            since: None,
        })
        .await
    {
        Err(CallError::Command(ObserveError::NoSuchModel { .. })) => true,
        Ok(_) => false,
        Err(e) => panic!("observing chimes: {e:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offerings_commands_and_models_follow_its_installation() {
    let t = TestSite::start_program(|_| {}, |b| b.offering(gated())).await;
    let c = Client::connect(t.client_options()).await.unwrap();

    let absent = c.call::<Chime>(Empty {}).await.unwrap_err();
    assert_eq!(absent.code(), Some(codes::UNHANDLED), "{absent:?}");
    assert!(matches!(absent, CallError::Remote(_)));
    assert!(no_such_model(&c).await);

    t.site.offerings().install("gated").await.unwrap();
    assert_eq!(c.call::<Chime>(Empty {}).await.unwrap().n, 7);
    assert!(!no_such_model(&c).await);

    t.site.offerings().uninstall("gated").await.unwrap();
    let gone = c.call::<Chime>(Empty {}).await.unwrap_err();
    assert_eq!(gone.code(), Some(codes::UNHANDLED), "{gone:?}");
}
