//! The sharing bench: a shared item read through the sharing layer
//! (`site.sharing().open`) by a user who reaches it through groups,
//! against its owner's direct read of the same item.
//!
//! Alice's store holds 200 items shared under their own ids with a mix of
//! roles (accounts, `authenticated`, eight groups); the one read is shared
//! with the group `circle`, which Bob is in through `friends`
//! (`account:bob` ∈ `friends` ∈ `circle`), so his roles are a real closure,
//! computed once and then served from the role cache while the store's
//! sharing generation stays the same. Both sides find the store by account
//! (`user_store_unchecked`) and read in one `store.read` per operation:
//! ours checks the grant (generation, cached roles, the share) and reads
//! the item; the reference reads the item.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mantle_site::sharing::{Role, ShareItems, Viewer};
use mantle_site::{Site, SiteConfig, SiteError};
use mantle_store::Item;
use serde::{Deserialize, Serialize};

use crate::BenchError;
use crate::report::BenchRecord;
use crate::store::{BenchDir, check, scaled};

/// The benches [`run_sharing`] runs, in order; each emits one record of
/// its name.
pub const SHARING_BENCHES: &[&str] = &["sharing_open"];

/// Options of the sharing benches (see [`BenchOptions`](crate::BenchOptions)).
pub type SharingBenchOptions = crate::BenchOptions;

/// Reads per side at scale 1.0.
const READS: u64 = 400_000;
/// Reads in flight at once, on both sides.
pub const CONCURRENCY: usize = 16;
/// Items in Alice's store, each shared.
const ITEMS: usize = 200;
const GROUPS: usize = 8;
const SHARE_ID: &str = "the-doc";
const TARGET: &str = "ratio >= 0.7";

/// What Alice shares.
#[derive(Item, Debug, Clone, Serialize, Deserialize)]
#[item(name = "bench_doc", version = 1)]
struct Doc {
    title: String,
    body: String,
}

/// Runs the sharing bench, calling `emit` with its record.
///
/// | bench | work (scale 1.0) | one op |
/// |---|---|---|
/// | `sharing_open` | 400,000 `site.sharing().open::<Doc>(bob, alice, id)` (Bob in the group shared with through another group), 16 in flight, against 400,000 `store.read(get)` of the same item on Alice's store, 16 in flight | read |
///
/// Each side runs in two rounds of half the reads, in the order ours,
/// reference, reference, ours (so a drift in background load falls on
/// both), after a warm-up of each.
///
/// Errors: [`BenchError::UnknownBench`] for an unknown `only`; site and
/// store errors; [`BenchError::Check`] if a read answers anything but the
/// item.
pub async fn run_sharing(
    opts: &SharingBenchOptions,
    emit: &mut dyn FnMut(BenchRecord),
) -> Result<(), BenchError> {
    opts.check_only(SHARING_BENCHES)?;
    let workspace = opts.workspace()?;
    emit(open(opts.scale, workspace.path()).await?);
    Ok(())
}

/// Runs `n` operations made by `op` in `CONCURRENCY` tasks, each doing
/// its part one operation after another: the time they took, and each
/// operation's latency.
async fn timed<F, Fut>(n: u64, op: F) -> Result<(Duration, Vec<Duration>), BenchError>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BenchError>> + Send + 'static,
{
    let op = Arc::new(op);
    let workers = CONCURRENCY as u64;
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let op = op.clone();
            let count = n / workers + u64::from(w < n % workers);
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    let t = Instant::now();
                    op().await?;
                    latencies.push(t.elapsed());
                }
                Ok::<_, BenchError>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(n as usize);
    for task in tasks {
        latencies.extend(task.await.map_err(|e| BenchError::Task(e.to_string()))??);
    }
    Ok((started.elapsed(), latencies))
}

async fn open(scale: f64, base: &Path) -> Result<BenchRecord, BenchError> {
    const NAME: &str = "sharing_open";
    let dir = BenchDir::new(base, NAME)?;
    let reads = scaled(READS, scale);
    let site = Site::builder(dir.join("site"))
        .with(|r| {
            r.register::<Doc>();
        })
        .init(SiteConfig {
            domain: "bench.test".into(),
            ..SiteConfig::default()
        })
        .await?;
    let measured = measure(&site, reads).await;
    site.close().await;
    let (ours, reference, lat, ref_lat) = measured?;

    let (mut lat, mut ref_lat) = (lat, ref_lat);
    let mut rec = BenchRecord::new(NAME, "read", reads, scale, ours, reference).p99(
        "one read as its caller awaits it",
        &mut lat,
        &mut ref_lat,
    );
    rec.p50_ms = crate::report::percentile_ms(&mut lat, 0.5);
    rec.reference_p50_ms = crate::report::percentile_ms(&mut ref_lat, 0.5);
    rec.concurrency = Some(CONCURRENCY as u64);
    rec.items = Some(ITEMS as u64);
    rec.target = Some(TARGET.into());
    rec.note = Some(format!(
        "ours: site.sharing().open::<Doc>(Viewer::Account(bob), alice, id): Alice's store \
         found by account, then in one store.read the sharing generation, Bob's roles from \
         the role cache (account:bob in friends in circle; {GROUPS} groups), the share's grant \
         and the item; reference: user_store_unchecked(alice) then store.read(get) of the \
         same item; {ITEMS} items each shared under its own id to a mix of roles; \
         {CONCURRENCY} reads in flight on both sides, 2 rounds per side (ours, reference, \
         reference, ours) after a warm-up"
    ));
    Ok(rec)
}

type Measured = (Duration, Duration, Vec<Duration>, Vec<Duration>);

/// Sets Alice's store up, checks both sides read the item, and times them.
async fn measure(site: &Site, reads: u64) -> Result<Measured, BenchError> {
    const NAME: &str = "sharing_open";
    let password = "bench password, not secret";
    let alice = site.accounts().create("alice", password, false).await?.id;
    let bob = site.accounts().create("bob", password, false).await?.id;
    let carol = site.accounts().create("carol", password, false).await?.id;
    let store = site.stores().user_store_unchecked(alice).await?;
    let doc = store
        .transact(move |tx| {
            for g in 0..GROUPS {
                tx.create_group(&format!("g{g}"))?;
                tx.add_member(&format!("g{g}"), &Role::Account(carol))?;
            }
            tx.create_group("friends")?;
            tx.create_group("circle")?;
            tx.add_member("friends", &Role::Account(bob))?;
            tx.add_member("circle", &Role::group("friends")?)?;
            tx.add_member("g0", &Role::group("circle")?)?;
            let mut doc = None;
            for i in 0..ITEMS {
                let id = tx.insert(&Doc {
                    title: format!("doc {i}"),
                    body: "x".repeat(200),
                })?;
                let (role, share_id) = match i {
                    0 => (Role::group("circle")?, SHARE_ID.to_string()),
                    i if i % 3 == 0 => (Role::group(&format!("g{}", i % GROUPS))?, i.to_string()),
                    i if i % 3 == 1 => (Role::Account(carol), i.to_string()),
                    _ => (Role::Authenticated, i.to_string()),
                };
                tx.share(id, &role, &[], Some(&share_id))?;
                if i == 0 {
                    doc = Some(id);
                }
            }
            Ok::<_, SiteError>(doc.expect("item 0 is made"))
        })
        .await?;

    let sharing = site.sharing().clone();
    let stores = site.stores().clone();
    let viewer = Viewer::Account(bob);
    let s = sharing.clone();
    let ours = move || {
        let sharing = s.clone();
        async move {
            let shared = sharing.open::<Doc>(viewer, alice, SHARE_ID).await?;
            check(NAME, shared.title == "doc 0", || {
                format!("open answered {:?}", shared.title)
            })
        }
    };
    let reference = move || {
        let stores = stores.clone();
        async move {
            let store = stores.user_store_unchecked(alice).await?;
            let item = store
                .read(move |r| r.get(doc))
                .await?
                .ok_or_else(|| BenchError::Check {
                    bench: NAME,
                    reason: "the item is missing".into(),
                })?;
            check(NAME, item.title == "doc 0", || {
                format!("get answered {:?}", item.title)
            })
        }
    };
    // The refusals hold: Bob may not read what is not shared with him.
    let refused = sharing.open::<Doc>(viewer, alice, "1").await;
    check(
        NAME,
        matches!(refused, Err(SiteError::NoSuchShare(_))),
        || format!("bob opened another's share: {refused:?}"),
    )?;

    let warm = (reads / 10).clamp(1, 5_000);
    timed(warm, ours.clone()).await?;
    timed(warm, reference.clone()).await?;
    let half = reads.div_ceil(2);
    let (o1, mut lat) = timed(half, ours.clone()).await?;
    let (r1, mut ref_lat) = timed(half, reference.clone()).await?;
    let (r2, l) = timed(reads - half, reference).await?;
    ref_lat.extend(l);
    let (o2, l) = timed(reads - half, ours).await?;
    lat.extend(l);
    Ok((o1 + o2, r1 + r2, lat, ref_lat))
}
