//! The cluster benches: two nodes of one cluster in this process, each a
//! site with its web front on a loopback port, on one etcd member started
//! for the run (Debian's `etcd-server`; the bench says so if it is
//! missing).
//!
//! - `messages_cross_node`: one-way messages from 8 sender stores on one
//!   node to 8 recipient stores on the other (ours), against the same
//!   messages to 8 recipients on the senders' own node (the reference),
//!   as `mantle bench messaging`'s `messages_one_way` sends them; timed
//!   until all are read back at the recipients. Half the reference runs
//!   before ours, half after.
//! - `forwarded_get`: `GET /api/slates/NAME` for a user sent to the node
//!   that does not own it (forwarded), against the same request sent to
//!   the owner, 8 clients in flight on each side.
//! - `move_store`: a user's store of 100 MB moved to the other node
//!   (quiesce, copy, verify, flip, retire), in MB/s, against copying the
//!   same file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mantle_cluster::harness::EtcdCluster;
use mantle_cluster::{ClusterConfig, Node};
use mantle_site::{Expect, Site};
use mantle_store::{Item, Store};

use crate::BenchError;
use crate::messaging::{
    BenchSite, DOMAIN, PASSWORD, Received, Sending, handlers, note, site_config, timed_sends, types,
};
use crate::report::BenchRecord;
use crate::store::{BenchDir, check, scaled};

/// The benches [`run_cluster`] runs, in order.
pub const CLUSTER_BENCHES: &[&str] = &["messages_cross_node", "forwarded_get", "move_store"];

/// Options of the cluster benches (see [`BenchOptions`](crate::BenchOptions)).
pub type ClusterBenchOptions = crate::BenchOptions;

/// Messages in `messages_cross_node` (each side).
const MESSAGES: u64 = 20_000;
/// Requests in `forwarded_get` (each side).
const REQUESTS: u64 = 4_000;
/// Requests in flight in `forwarded_get`.
const IN_FLIGHT: usize = 8;
/// The moved store's size in `move_store`, in MB.
const STORE_MB: u64 = 100;
/// Stores per side in `messages_cross_node`.
const STORES: usize = 8;

/// Ballast for the moved store: one 64 KiB blob an item.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "bench_ballast", version = 1)]
struct Ballast {
    data: Vec<u8>,
}

/// One node: its site, its membership, its web front.
struct BenchNode {
    site: Site,
    node: Arc<Node>,
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
    amp: mantle_site::RunningService,
}

impl BenchNode {
    async fn start(
        etcd: &EtcdCluster,
        dir: &Path,
        name: &str,
        secret: &Path,
    ) -> Result<Self, BenchError> {
        std::fs::create_dir_all(dir)?;
        let config = ClusterConfig {
            etcd: etcd.endpoints(),
            node: name.to_string(),
            advertise: "127.0.0.1:1".into(),
            secret_file: Some(secret.to_path_buf()),
            ..ClusterConfig::default()
        };
        let node = Arc::new(Node::join(dir, &config, DOMAIN).await.map_err(cluster)?);
        let builder = Site::builder(dir)
            .with(types)
            .with(|r| {
                r.register::<Ballast>();
            })
            .messages(handlers);
        let builder = node.install(
            mantle_live_server::install(mantle_web::install(builder)),
            dir,
            DOMAIN,
        );
        let site = builder.init(site_config()).await?;
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let base = format!("http://{}", listener.local_addr()?);
        let router = mantle_web::router(site.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let limits = mantle_web::connection_limits(site.section::<mantle_web::HttpConfig>());
        let routing: Arc<dyn mantle_web::Forwarding> = node.routing();
        let server = tokio::spawn(mantle_web::serve_node(
            listener,
            router,
            limits,
            routing,
            async {
                let _ = stopped.await;
            },
        ));
        node.lease().set_http(&base).await.map_err(cluster)?;
        // Batches and answers go to the other node over a link to its AMP
        // listener, as between the nodes `mantle serve` runs.
        let amp =
            mantle_live_server::amp::start_on(&site, SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        if let Some(address) = amp.address.as_deref() {
            node.lease().set_amp(address).await.map_err(cluster)?;
        }
        Ok(Self {
            site,
            node,
            base,
            stop,
            server,
            amp,
        })
    }

    /// Makes accounts `prefix0…` here; their stores and logins.
    async fn accounts(
        &self,
        prefix: &str,
        n: usize,
    ) -> Result<(Vec<Store>, Vec<String>), BenchError> {
        let (mut stores, mut logins) = (Vec::new(), Vec::new());
        for i in 0..n {
            let a = self
                .site
                .accounts()
                .create(&format!("{prefix}{i}"), PASSWORD, false)
                .await?;
            stores.push(self.site.stores().user_store_unchecked(a.id).await?);
            logins.push(a.primary);
        }
        Ok((stores, logins))
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
        self.amp.stop().await;
        self.site.close().await;
        let _ = self.node.leave().await;
    }
}

fn cluster(e: mantle_cluster::ClusterError) -> BenchError {
    BenchError::Process(format!("cluster: {e}"))
}

/// Runs the cluster benches (or the one `opts.only` names), handing each
/// record to `emit`.
pub async fn run_cluster(
    opts: &ClusterBenchOptions,
    emit: &mut dyn FnMut(BenchRecord),
) -> Result<(), BenchError> {
    opts.check_only(CLUSTER_BENCHES)?;
    if mantle_cluster::harness::etcd_binary().is_none() {
        return Err(BenchError::MissingTool {
            tool: "etcd",
            hint: "install Debian's etcd-server (apt-get install etcd-server)",
        });
    }
    let workspace = opts.workspace()?;
    let etcd = EtcdCluster::start(1).ok_or(BenchError::MissingTool {
        tool: "etcd",
        hint: "install Debian's etcd-server (apt-get install etcd-server)",
    })?;
    let dir = BenchDir::new(workspace.path(), "cluster")?;
    let secret = dir.join("cluster.secret");
    std::fs::write(&secret, "the cluster bench's shared secret, long enough\n")?;
    let one = BenchNode::start(&etcd, &dir.join("n1"), "n1", &secret).await?;
    let two = BenchNode::start(&etcd, &dir.join("n2"), "n2", &secret).await?;
    let result = async {
        if opts.wants("messages_cross_node") {
            emit(cross_node(opts.scale, &one, &two).await?);
        }
        if opts.wants("forwarded_get") {
            emit(forwarded_get(opts.scale, &one, &two).await?);
        }
        if opts.wants("move_store") {
            emit(move_store(opts.scale, &one, &two, &dir.join("")).await?);
        }
        Ok(())
    }
    .await;
    one.stop().await;
    two.stop().await;
    result
}

async fn cross_node(
    scale: f64,
    one: &BenchNode,
    two: &BenchNode,
) -> Result<BenchRecord, BenchError> {
    const NAME: &str = "messages_cross_node";
    let n = scaled(MESSAGES, scale).max(2 * STORES as u64);
    let (senders, _) = one.accounts("s", STORES).await?;
    let (near, near_logins) = one.accounts("r", STORES).await?;
    let (far, far_logins) = two.accounts("q", STORES).await?;
    let same = BenchSite::of(one.site.clone(), senders.clone(), near.clone(), near_logins);
    let cross = BenchSite::of(one.site.clone(), senders, far.clone(), far_logins);
    let half = n / 2;
    let before =
        timed_sends::<_, Received>(NAME, &same, (half, 0), Sending::Batched, note, &near).await?;
    let ours =
        timed_sends::<_, Received>(NAME, &cross, (n, 0), Sending::Batched, note, &far).await?;
    let after =
        timed_sends::<_, Received>(NAME, &same, (n - half, half), Sending::Batched, note, &near)
            .await?;
    let mut rec = BenchRecord::new(
        NAME,
        "message",
        n,
        scale,
        ours.took,
        before.took + after.took,
    );
    rec.note = Some(format!(
        "{STORES} sender stores on node n1 → {STORES} recipient stores on node n2 (ours) or on \
         n1 (reference), messages_one_way's batches; timed until read back at the recipients; \
         half the reference before ours, half after; target ratio ≥ 0.5"
    ));
    Ok(rec)
}

/// `n` GETs of `url` with `token`, `IN_FLIGHT` at a time; the time taken.
async fn gets(url: &str, token: &str, n: u64) -> Result<Duration, BenchError> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..IN_FLIGHT as u64 {
        let (client, url, token) = (client.clone(), url.to_string(), token.to_string());
        tasks.spawn(async move {
            let mut i = k;
            while i < n {
                let r = client
                    .get(&url)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .map_err(|e| BenchError::Http(e.to_string()))?;
                if r.status() != reqwest::StatusCode::OK {
                    return Err(BenchError::Http(format!("GET {url}: {}", r.status())));
                }
                r.bytes()
                    .await
                    .map_err(|e| BenchError::Http(e.to_string()))?;
                i += IN_FLIGHT as u64;
            }
            Ok::<_, BenchError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| BenchError::Task(e.to_string()))??;
    }
    Ok(started.elapsed())
}

async fn forwarded_get(
    scale: f64,
    one: &BenchNode,
    two: &BenchNode,
) -> Result<BenchRecord, BenchError> {
    const NAME: &str = "forwarded_get";
    let n = scaled(REQUESTS, scale).max(IN_FLIGHT as u64);
    let account = one
        .site
        .accounts()
        .create("reader", PASSWORD, false)
        .await?;
    let doc = serde_json::json!({ "title": "a slate read through another node", "n": 42 });
    one.site
        .slates()
        .put(account.id, "profile", doc, Expect::Unspecified, None)
        .await?;
    let token = one
        .site
        .auth()
        .issue_token(account.id, "bench")
        .await?
        .token;
    let path = "/api/slates/profile";
    let direct = format!("{}{path}", one.base);
    let forwarded = format!("{}{path}", two.base);
    // Warm both paths (connections, caches), then half the reference
    // before ours and half after.
    gets(&forwarded, &token.clone(), IN_FLIGHT as u64).await?;
    let half = n / 2;
    let before = gets(&direct, &token, half).await?;
    let ours = gets(&forwarded, &token, n).await?;
    let after = gets(&direct, &token, n - half).await?;
    let mut rec = BenchRecord::new(NAME, "request", n, scale, ours, before + after);
    rec.concurrency = Some(IN_FLIGHT as u64);
    rec.note = Some(format!(
        "an authenticated GET {path} of a user owned by n1, sent to n2 (forwarded to n1 with \
         a voucher) against sent to n1 itself; {IN_FLIGHT} in flight, keep-alive; target \
         ratio ≥ 0.6"
    ));
    Ok(rec)
}

async fn move_store(
    scale: f64,
    one: &BenchNode,
    two: &BenchNode,
    dir: &Path,
) -> Result<BenchRecord, BenchError> {
    const NAME: &str = "move_store";
    let mb = scaled(STORE_MB, scale).max(1);
    let account = one.site.accounts().create("mover", PASSWORD, false).await?;
    let store = one.site.stores().user_store_unchecked(account.id).await?;
    // 16 blobs of 64 KiB a MB, 8 MB a transaction.
    for _ in 0..mb.div_ceil(8) {
        store
            .transact(|tx| {
                for i in 0..128u32 {
                    let mut data = vec![0u8; 64 * 1024];
                    data[..4].copy_from_slice(&i.to_le_bytes());
                    // Not all zeros: nothing compresses it away.
                    for (k, b) in data.iter_mut().enumerate().skip(4) {
                        *b = (k as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3];
                    }
                    tx.insert(&Ballast { data })?;
                }
                mantle_store::ok(())
            })
            .await?;
    }
    let file: PathBuf = store.path().to_path_buf();
    drop(store);
    let name = mantle_cluster::store_name(one.site.dir(), "n1", &file)
        .ok_or_else(|| BenchError::Task("the store is outside its site".into()))?;
    let bytes = std::fs::metadata(&file)?.len();
    let started = Instant::now();
    let moved = mantle_cluster::move_out(&one.site, &one.node, &name, "n2")
        .await
        .map_err(cluster)?;
    let ours = started.elapsed();
    check(NAME, moved.epoch == 2 && moved.bytes > 0, || {
        format!("{moved:?}")
    })?;
    let arrived = two
        .site
        .accounts()
        .get(&account.primary)
        .await
        .map(|a| a.store)?;
    let there = two.site.dir().join(&arrived);
    check(NAME, there.exists(), || {
        format!("{} is not on n2", there.display())
    })?;
    // The reference: the same bytes copied, file to file, on the same disk.
    let copy = dir.join("copy.store");
    let started = Instant::now();
    std::fs::copy(&there, &copy)?;
    std::fs::File::open(&copy)?.sync_all()?;
    let reference = started.elapsed();
    let size_mb = bytes as f64 / 1e6;
    let mut rec = BenchRecord::new(NAME, "MB", size_mb.round() as u64, scale, ours, reference);
    rec.ours_ops_per_s = (size_mb / ours.as_secs_f64() * 10.0).round() / 10.0;
    rec.reference_ops_per_s = (size_mb / reference.as_secs_f64() * 10.0).round() / 10.0;
    rec.ratio = (rec.ours_ops_per_s / rec.reference_ops_per_s * 1000.0).round() / 1000.0;
    rec.note = Some(format!(
        "a {size_mb:.1} MB user store moved from n1 to n2 in {:.2} s (writes paused {} ms): \
         closed, read, SHA-256, sent over loopback HTTP, checked (SHA-256 and SQLite's \
         integrity check), written and synced, owner flipped, old copy set aside; reference: \
         copying the same file and syncing it",
        ours.as_secs_f64(),
        moved.paused_ms
    ));
    Ok(rec)
}
