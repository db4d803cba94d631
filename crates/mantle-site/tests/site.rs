//! The site layer without HTTP: accounts, signup policies, tokens, slates.

use std::time::Duration;

use mantle_site::{Expect, SignupPolicy, Site, SiteConfig, SiteError};
use serde_json::json;

const PW: &str = "correct horse battery";

async fn site_with(policy: SignupPolicy, dir: &std::path::Path) -> Site {
    let mut config = SiteConfig {
        domain: "example.com".into(),
        ..SiteConfig::default()
    };
    config.signup.policy = policy;
    Site::builder(dir).init(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signup_policies_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let admin_only = site_with(SignupPolicy::Admin, &dir.path().join("a")).await;
    assert!(matches!(
        admin_only.accounts().signup("x", PW, None).await,
        Err(SiteError::SignupClosed(_))
    ));
    admin_only.accounts().create("x", PW, false).await.unwrap();

    let invite = site_with(SignupPolicy::Invite, &dir.path().join("i")).await;
    assert!(matches!(
        invite.accounts().signup("y", PW, None).await,
        Err(SiteError::BadInvite)
    ));
    assert!(matches!(
        invite.accounts().signup("y", PW, Some("made-up")).await,
        Err(SiteError::BadInvite)
    ));
    let code = invite.accounts().create_invite().await.unwrap();
    invite
        .accounts()
        .signup("y", PW, Some(&code))
        .await
        .unwrap();
    assert!(
        matches!(
            invite.accounts().signup("z", PW, Some(&code)).await,
            Err(SiteError::BadInvite)
        ),
        "an invite is used once"
    );

    let open = site_with(SignupPolicy::Open, &dir.path().join("o")).await;
    let info = open
        .accounts()
        .signup("Zed@Example.com", PW, None)
        .await
        .unwrap();
    assert_eq!(info.primary, "zed@example.com");
    assert!(matches!(
        open.accounts().signup("zed", PW, None).await,
        Err(SiteError::AddressTaken(_))
    ));
    assert!(matches!(
        open.accounts().signup("not valid!", PW, None).await,
        Err(SiteError::InvalidAddress(_))
    ));
    assert!(matches!(
        open.accounts().signup("short", "1234", None).await,
        Err(SiteError::WeakPassword(_))
    ));
    for s in [admin_only, invite, open] {
        s.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_get_a_user_store_and_several_logins() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_with(SignupPolicy::Admin, dir.path()).await;
    let info = site.accounts().create("alice", PW, false).await.unwrap();
    assert!(
        dir.path().join(&info.store).is_file(),
        "user store made at signup"
    );
    site.accounts()
        .add_login("alice", "al@other.org")
        .await
        .unwrap();
    let token = site.auth().login("al@other.org", PW, "t").await.unwrap();
    let me = site.auth().authenticate(&token.token).await.unwrap();
    assert_eq!(me.address, "alice@example.com", "the primary login");
    assert_eq!(
        site.accounts().get("alice").await.unwrap().logins,
        ["alice@example.com", "al@other.org"]
    );
    site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_unknown_login_are_the_same_error() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_with(SignupPolicy::Admin, dir.path()).await;
    site.accounts().create("alice", PW, false).await.unwrap();
    let wrong = site
        .auth()
        .login("alice", "wrong password", "t")
        .await
        .unwrap_err();
    let unknown = site.auth().login("nobody", PW, "t").await.unwrap_err();
    let invalid = site.auth().login("in valid", PW, "t").await.unwrap_err();
    assert_eq!(wrong.to_string(), unknown.to_string());
    assert_eq!(wrong.to_string(), invalid.to_string());
    assert!(matches!(wrong, SiteError::BadCredentials));
    site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_an_account_stops_its_tokens_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_with(SignupPolicy::Admin, dir.path()).await;
    site.accounts().create("bob", PW, false).await.unwrap();
    let t = site.auth().login("bob", PW, "t").await.unwrap();
    site.auth().authenticate(&t.token).await.unwrap();
    site.accounts().set_disabled("bob", true).await.unwrap();
    assert!(matches!(
        site.auth().authenticate(&t.token).await,
        Err(SiteError::BadToken)
    ));
    assert!(matches!(
        site.auth().login("bob", PW, "t").await,
        Err(SiteError::Disabled(_))
    ));
    site.accounts().set_disabled("bob", false).await.unwrap();
    assert!(
        site.auth().authenticate(&t.token).await.is_err(),
        "enabling does not revive revoked tokens"
    );
    let fresh = site.auth().login("bob", PW, "t").await.unwrap();
    site.auth().authenticate(&fresh.token).await.unwrap();
    site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_listed_revoked_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_with(SignupPolicy::Admin, dir.path()).await;
    let acc = site.accounts().create("carol", PW, false).await.unwrap();
    let a = site.auth().login("carol", PW, "phone").await.unwrap();
    let b = site.auth().login("carol", PW, "laptop").await.unwrap();
    let listed = site.auth().tokens(acc.id).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].label, "laptop", "newest first");
    assert!(
        site.auth()
            .revoke_token(acc.id, listed[0].id)
            .await
            .unwrap()
    );
    assert!(site.auth().authenticate(&b.token).await.is_err());
    assert!(site.auth().logout(&a.token).await.unwrap());
    assert!(site.auth().authenticate(&a.token).await.is_err());
    assert!(
        !site.auth().logout(&a.token).await.unwrap(),
        "already revoked"
    );
    assert!(site.auth().authenticate("not-a-token").await.is_err());
    site.close().await;

    // A zero time to live: tokens are born expired.
    let mut config = SiteConfig::load(dir.path()).unwrap();
    config.auth.token_ttl_hours = 0;
    let site = Site::builder(dir.path())
        .config(config)
        .open()
        .await
        .unwrap();
    let t = site.auth().login("carol", PW, "t").await.unwrap();
    assert!(matches!(
        site.auth().authenticate(&t.token).await,
        Err(SiteError::BadToken)
    ));
    site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slates_have_versions_and_time_to_live() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_with(SignupPolicy::Admin, dir.path()).await;
    let acc = site.accounts().create("dana", PW, false).await.unwrap().id;
    let (doc, created) = site
        .slates()
        .put(
            acc,
            "user-info",
            json!({"theme": "dark"}),
            Expect::Unspecified,
            None,
        )
        .await
        .unwrap();
    assert!(created);
    assert_eq!(doc.version, 1);
    assert!(matches!(
        site.slates()
            .put(acc, "user-info", json!(1), Expect::Unspecified, None)
            .await,
        Err(SiteError::SlateVersionRequired(_))
    ));
    assert!(matches!(
        site.slates()
            .put(acc, "user-info", json!(1), Expect::Version(7), None)
            .await,
        Err(SiteError::SlateConflict { current: 1, .. })
    ));
    assert!(matches!(
        site.slates()
            .put(acc, "user-info", json!(1), Expect::Absent, None)
            .await,
        Err(SiteError::SlateConflict { .. })
    ));
    let (doc, _) = site
        .slates()
        .put(
            acc,
            "user-info",
            json!({"theme": "light"}),
            Expect::Version(1),
            None,
        )
        .await
        .unwrap();
    assert_eq!(doc.version, 2);
    assert_eq!(
        site.slates()
            .get(acc, "user-info")
            .await
            .unwrap()
            .unwrap()
            .body,
        json!({"theme": "light"})
    );

    site.slates()
        .put(
            acc,
            "checkout",
            json!({"step": 1}),
            Expect::Absent,
            Some(Duration::from_millis(300)),
        )
        .await
        .unwrap();
    assert!(site.slates().get(acc, "checkout").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        site.slates().get(acc, "checkout").await.unwrap().is_none(),
        "expired"
    );
    assert_eq!(site.slates().names(acc).await.unwrap(), ["user-info"]);
    // The scheduler removed the expired slate, and nothing else.
    let store = site.stores().user_store_unchecked(acc).await.unwrap();
    let left = store
        .read(|r| r.query::<mantle_site::Slate>().count())
        .await
        .unwrap();
    assert_eq!(left, 1);

    site.slates()
        .delete(acc, "user-info", Some(2))
        .await
        .unwrap();
    assert!(matches!(
        site.slates().delete(acc, "user-info", None).await,
        Err(SiteError::NoSuchSlate(_))
    ));
    assert!(matches!(
        site.slates().get(acc, "bad/name").await,
        Err(SiteError::InvalidSlateName(_))
    ));
    site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_account_keeps_its_store_unless_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_with(SignupPolicy::Admin, dir.path()).await;
    site.accounts().create("erin", PW, false).await.unwrap();
    site.accounts().create("fay", PW, false).await.unwrap();
    let t = site.auth().login("erin", PW, "t").await.unwrap();
    let kept = site.accounts().delete("erin", false).await.unwrap();
    assert!(kept.is_file());
    assert!(site.auth().authenticate(&t.token).await.is_err());
    assert!(matches!(
        site.accounts().get("erin").await,
        Err(SiteError::NoSuchAccount(_))
    ));
    // A new erin gets a new, empty store; the old one is never reused.
    let again = site.accounts().create("erin", PW, false).await.unwrap();
    assert_ne!(dir.path().join(&again.store), kept);

    let fay = site.accounts().get("fay").await.unwrap();
    site.slates()
        .put(fay.id, "s", json!(1), Expect::Unspecified, None)
        .await
        .unwrap();
    let purged = site.accounts().delete("fay", true).await.unwrap();
    assert!(!purged.exists());
    site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sites_in_one_process_do_not_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let one = site_with(SignupPolicy::Admin, &dir.path().join("one")).await;
    let two = site_with(SignupPolicy::Admin, &dir.path().join("two")).await;
    one.accounts().create("alice", PW, false).await.unwrap();
    two.accounts().create("bob", PW, false).await.unwrap();
    assert!(one.auth().login("bob", PW, "t").await.is_err());
    assert!(two.auth().login("alice", PW, "t").await.is_err());
    let t = one.auth().login("alice", PW, "t").await.unwrap();
    assert!(two.auth().authenticate(&t.token).await.is_err());
    one.close().await;
    two.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_directory_without_a_site_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = Site::builder(dir.path()).open().await.unwrap_err();
    assert!(matches!(e, SiteError::NotASite(_)), "{e}");
    let site = site_with(SignupPolicy::Admin, dir.path()).await;
    site.close().await;
    let e = Site::builder(dir.path())
        .init(SiteConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(e, SiteError::AlreadyASite(_)), "{e}");
}

/// An offering's own section of `mantle.toml`.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Greeting {
    text: String,
}

impl mantle_site::ConfigSection for Greeting {
    const NAME: &'static str = "greeting";
    fn validate(&self, _: &SiteConfig) -> mantle_site::Result<()> {
        if self.text.is_empty() {
            return Err(SiteError::Config("greeting.text must not be empty".into()));
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sections_are_checked_when_the_site_opens_and_read_by_their_owner() {
    let dir = tempfile::tempdir().unwrap();
    let config = |text: &str| {
        let mut c: SiteConfig = toml::from_str(text).unwrap();
        c.domain = "example.com".into();
        c
    };
    // A section nobody declared (misspelt, say) is an error naming it.
    let e = Site::builder(dir.path().join("a"))
        .section::<Greeting>()
        .init(config("[greetng]\ntext = \"hi\""))
        .await
        .unwrap_err();
    assert!(matches!(e, SiteError::Config(_)), "{e:?}");
    assert!(e.to_string().contains("[greetng]"), "{e}");
    assert!(e.to_string().contains("[greeting]"), "what is read: {e}");
    // A declared one is checked by its owner.
    let e = Site::builder(dir.path().join("b"))
        .section::<Greeting>()
        .init(config("[greeting]\ntext = \"\""))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("greeting.text"), "{e}");
    // And read back as parsed, after a restart too.
    let site = Site::builder(dir.path().join("c"))
        .section::<Greeting>()
        .init(config("[greeting]\ntext = \"hello\""))
        .await
        .unwrap();
    assert_eq!(site.section::<Greeting>().text, "hello");
    site.close().await;
    let site = Site::builder(dir.path().join("c"))
        .section::<Greeting>()
        .open()
        .await
        .unwrap();
    assert_eq!(site.section::<Greeting>().text, "hello");
    site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_client_cannot_take_a_fresh_address_for_each_guess() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SiteConfig {
        domain: "example.com".into(),
        ..SiteConfig::default()
    };
    config.auth.login_attempts_per_minute = 3;
    let site = Site::builder(dir.path()).init(config).await.unwrap();
    site.accounts().create("alice", PW, false).await.unwrap();
    // Three guesses, each from another address of one /64: the allowance
    // is the /64's.
    for n in 1..=3 {
        let ip = format!("2001:db8:7:7::{n}").parse().unwrap();
        let r = site
            .auth()
            .login_from(Some(ip), "alice", "guess", "t")
            .await;
        assert!(matches!(r, Err(SiteError::BadCredentials)), "{r:?}");
    }
    let ip = "2001:db8:7:7:abcd::1".parse().unwrap();
    let r = site.auth().login_from(Some(ip), "alice", PW, "t").await;
    assert!(matches!(r, Err(SiteError::TooManyAttempts { .. })), "{r:?}");
    // Another /64 is another client.
    let ip = "2001:db8:7:8::1".parse().unwrap();
    site.auth()
        .login_from(Some(ip), "alice", PW, "t")
        .await
        .unwrap();
    site.close().await;
}
