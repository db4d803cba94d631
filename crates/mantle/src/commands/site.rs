//! `mantle init`, `mantle serve`, `mantle demo`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use mantle_cluster::{ClusterConfig, Node};
use mantle_live_server::LiveConfig;
use mantle_site::{RunningService, Site, SiteConfig};
use mantle_web::{HttpConfig, HttpService};

use crate::Program;
use crate::cli::InitTls;
use crate::commands::tls;
use crate::error::CliError;

/// What `mantle init` was asked for, besides the directory.
pub struct InitOptions {
    pub domain: String,
    pub http: SocketAddr,
    pub signup: String,
    pub tls: Option<InitTls>,
    pub offerings: Vec<String>,
    pub backup: Option<String>,
}

pub async fn init(program: &Program, dir: PathBuf, options: InitOptions) -> Result<u8, CliError> {
    let InitOptions {
        domain,
        http,
        signup,
        tls,
        offerings,
        backup,
    } = options;
    let mut config = SiteConfig {
        domain,
        ..SiteConfig::default()
    };
    if let Some(target) = &backup {
        config.backup.target = target.clone();
    }
    config.edit_section::<HttpConfig>(|h| h.listen = http)?;
    config.signup.policy = signup.parse()?;
    let offerings = if offerings.iter().any(|o| o == "all") {
        program.installable()
    } else {
        offerings
    };
    if !offerings.is_empty() {
        config.signup.product = Some(DEFAULT_PRODUCT.to_string());
    }
    config.validate()?;
    let tls_plan = match &tls {
        Some(t) => Some(tls::prepare(t, &dir, &mut config)?),
        None => None,
    };
    let site = create(program, &dir, config).await?;
    if let Err(e) = install_product(&site, DEFAULT_PRODUCT, &offerings).await {
        site.close().await;
        return Err(e);
    }
    let certificate = site
        .section::<HttpConfig>()
        .tls_files(&dir)
        .map(|(cert, _)| cert);
    site.close().await;
    if let Some(plan) = tls_plan {
        tls::finish(plan, &dir)?;
    }
    println!("created a site in {}", dir.display());
    if let (Some(cert), Some(InitTls::SelfSigned)) = (&certificate, &tls) {
        println!(
            "  HTTPS with a self-signed certificate: {} (clients trust it with e.g. curl --cacert)",
            cert.display()
        );
    }
    if !offerings.is_empty() {
        println!(
            "  installed {}; new accounts get them (product {DEFAULT_PRODUCT})",
            offerings.join(", ")
        );
    }
    if let Some(target) = &backup {
        println!(
            "  backed up continuously to {target}; keep a copy of {} elsewhere: restoring needs it",
            dir.join(site_backup_key(&dir)).display()
        );
    }
    println!("  add a user:  mantle user add {} alice", dir.display());
    println!("  serve it:    mantle serve {}", dir.display());
    Ok(0)
}

/// The backup key file a site's configuration names.
fn site_backup_key(dir: &std::path::Path) -> String {
    SiteConfig::load(dir).map_or_else(|_| "backup.key".into(), |c| c.backup.key_file)
}

/// The product `mantle init --offerings` makes of the offerings it installs.
const DEFAULT_PRODUCT: &str = "default";

/// The product `mantle demo` makes of every example offering.
const DEMO_PRODUCT: &str = "demo";

/// Installs `offerings` (if not yet) and makes them the product `name`
/// (unless it exists, or there are none).
async fn install_product(site: &Site, name: &str, offerings: &[String]) -> Result<(), CliError> {
    if offerings.is_empty() {
        return Ok(());
    }
    for o in offerings {
        site.offerings().install(o).await?;
    }
    let names: Vec<&str> = offerings.iter().map(String::as_str).collect();
    match site.products().create(name, &names).await {
        Ok(_) | Err(mantle_site::SiteError::ProductExists(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn create(
    program: &Program,
    dir: &std::path::Path,
    config: SiteConfig,
) -> Result<Site, CliError> {
    let site = program.site(dir).init(config).await?;
    site.services()
        .install(HttpService {
            label: "web".into(),
        })
        .await?;
    Ok(site)
}

pub async fn serve(
    program: &Program,
    dir: PathBuf,
    http: Option<SocketAddr>,
    amp: Option<SocketAddr>,
) -> Result<u8, CliError> {
    let mut config = SiteConfig::load(&dir)?;
    if let Some(addr) = http {
        config.edit_section::<HttpConfig>(|h| h.listen = addr)?;
    }
    if let Some(addr) = amp {
        config.edit_section::<LiveConfig>(|l| l.amp = Some(addr))?;
    }
    // A cluster node joins before its site opens: every store it opens
    // is claimed in the directory and commits through the node's fence.
    let cluster: ClusterConfig = config.section()?;
    let node = match cluster.enabled() {
        true => Some(Arc::new(Node::join(&dir, &cluster, &config.domain).await?)),
        false => None,
    };
    let domain = config.domain.clone();
    let mut builder = program.site(&dir).config(config);
    if let Some(node) = &node {
        builder = node.install(builder, &dir, &domain);
        eprintln!(
            "mantle: node {} joined cluster {} (lease {})",
            cluster.node,
            cluster.name,
            node.lease().view().lease
        );
    }
    let served = match builder.open().await {
        Ok(site) => run_until_signal(&site, node.as_deref()).await,
        Err(e) => Err(e.into()),
    };
    if let Some(node) = node {
        // Leaving revokes the lease: the node's stores may be taken over
        // at once instead of a lease length later.
        if let Err(e) = node.leave().await {
            eprintln!("mantle: warning: leaving the cluster: {e}");
        }
    }
    served
}

/// Starts the site's services, says where they listen, and stops them
/// gracefully at SIGINT / SIGTERM.
async fn run_until_signal(site: &Site, node: Option<&Node>) -> Result<u8, CliError> {
    // Listening before anything starts: a SIGTERM sent as soon as the
    // services are up (and the runtime file written) must stop them
    // gracefully, not kill the process.
    let signals = Signals::listen();
    if let Some(node) = node
        && let Err(e) = publish_logins(site, node).await
    {
        site.close().await;
        return Err(e);
    }
    let started = start(site).await?;
    let mut for_nodes = None;
    if let Some(node) = node {
        // The other nodes forward requests to the HTTP front; to a front
        // that speaks TLS, through a plain listener on the advertised
        // (private) address.
        let mut http = started
            .iter()
            .filter_map(|(_, a)| a.clone())
            .find(|a| a.starts_with("http://") || a.starts_with("https://"));
        if http.as_deref().is_some_and(|h| h.starts_with("https://")) {
            match node_listener(site, &node.lease().advertise()).await {
                Ok(service) => {
                    http = service.address.clone();
                    if let Some(a) = &http {
                        eprintln!("mantle: http for the other nodes listening on {a}");
                    }
                    for_nodes = Some(service);
                }
                Err(e) => {
                    site.close().await;
                    return Err(e);
                }
            }
        }
        if let Some(http) = http
            && let Err(e) = node.lease().set_http(&http).await
        {
            site.close().await;
            return Err(e.into());
        }
    }
    let amp = start_amp(site).await?;
    if let Some(node) = node
        && let Some(address) = amp.as_ref().and_then(|a| a.address.as_deref())
        && let Err(e) = node.lease().set_amp(address).await
    {
        site.close().await;
        return Err(e.into());
    }
    stop_at_signal(site, [amp, for_nodes], signals).await
}

/// The plain listener on `advertise` (`host:port`) a node whose HTTP front
/// speaks TLS is reached at by the other nodes.
async fn node_listener(site: &Site, advertise: &str) -> Result<RunningService, CliError> {
    let addr = tokio::net::lookup_host(advertise)
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            CliError::Message(format!(
                "cluster.advertise '{advertise}' is not an address this machine can listen on"
            ))
        })?;
    Ok(mantle_web::start_node_listener(site, addr).await?)
}

/// Claims in the cluster's directory every login of this node's accounts
/// (accounts made before the site joined a cluster, or by a command run
/// offline), so that every node can route them. A login another node's
/// account holds is left to that node, with a warning.
async fn publish_logins(site: &Site, node: &Node) -> Result<(), CliError> {
    use mantle_site::{LoginDirectory, LoginRefusal};
    let logins = node.logins();
    for account in site.accounts().list().await? {
        let store = mantle_site::store_name(&account.store);
        for login in &account.logins {
            match logins.claim(login, &store).await {
                Ok(()) => {}
                Err(LoginRefusal::Taken(elsewhere)) => eprintln!(
                    "mantle: warning: the login {login} is held by an account of {elsewhere}; \
                     requests for it go there"
                ),
                Err(LoginRefusal::Unavailable(why)) => {
                    return Err(CliError::Message(format!(
                        "cannot publish this node's logins in the cluster directory: {why}"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Starts the AMP listener if the configuration asks for one.
async fn start_amp(site: &Site) -> Result<Option<RunningService>, CliError> {
    match mantle_live_server::amp::start(site).await {
        Ok(amp) => {
            if let Some(a) = amp.as_ref().and_then(|a| a.address.as_ref()) {
                eprintln!("mantle: amp listening on {a}");
            }
            Ok(amp)
        }
        Err(e) => {
            site.close().await;
            Err(e.into())
        }
    }
}

/// Starts the site's services and says where they listen (closing the
/// site if one fails to start).
async fn start(site: &Site) -> Result<Vec<(String, Option<String>)>, CliError> {
    let started = match site.start().await {
        Ok(s) => s,
        Err(e) => {
            site.close().await;
            return Err(e.into());
        }
    };
    for (name, address) in &started {
        match address {
            Some(a) => eprintln!("mantle: {name} listening on {a}"),
            None => eprintln!("mantle: {name} started"),
        }
    }
    if started.is_empty() {
        eprintln!("mantle: warning: no services installed; nothing to serve");
    }
    Ok(started)
}

/// Waits for SIGINT / SIGTERM, then stops the site gracefully.
async fn stop_at_signal(
    site: &Site,
    listeners: impl IntoIterator<Item = Option<RunningService>>,
    signals: Signals,
) -> Result<u8, CliError> {
    signals.wait().await;
    eprintln!("mantle: shutting down");
    for listener in listeners.into_iter().flatten() {
        listener.stop().await;
    }
    site.close().await;
    Ok(0)
}

/// SIGINT and SIGTERM, listened for from the moment this is made (a
/// signal that arrives before `wait` is kept, not fatal).
struct Signals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn listen() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        Signals {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    /// Waits for either.
    async fn wait(mut self) {
        async fn next(s: Option<&mut tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            _ = next(self.interrupt.as_mut()) => {}
            _ = next(self.terminate.as_mut()) => {}
        }
    }
}

pub async fn demo(
    program: &Program,
    dir: Option<PathBuf>,
    http: SocketAddr,
) -> Result<u8, CliError> {
    let temp;
    let dir = match dir {
        Some(d) => d,
        None => {
            temp = tempfile::Builder::new()
                .prefix("mantle-demo-")
                .tempdir()
                .map_err(|e| {
                    CliError::Message(format!("cannot make a temporary directory: {e}"))
                })?;
            temp.path().to_path_buf()
        }
    };
    let site = if dir.join(mantle_site::SITE_STORE).exists() {
        program.site(&dir).open().await?
    } else {
        let mut config = SiteConfig::default();
        config.edit_section::<HttpConfig>(|h| h.listen = http)?;
        config.signup.policy = mantle_site::SignupPolicy::Open;
        config.signup.product = Some(DEMO_PRODUCT.to_string());
        // Continuous backup to a directory inside the demo site.
        config.backup.target = "backups".into();
        config
            .edit_section::<LiveConfig>(|l| l.amp = Some(SocketAddr::from(([127, 0, 0, 1], 0))))?;
        create(program, &dir, config).await?
    };
    // The examples, installed and given to everyone who signs up.
    if let Err(e) = install_product(&site, DEMO_PRODUCT, &program.installable()).await {
        site.close().await;
        return Err(e);
    }
    let password = demo_password()?;
    let demo = match site.accounts().get("demo").await {
        Ok(a) => {
            site.accounts().set_password("demo", &password).await?;
            a
        }
        Err(mantle_site::SiteError::NoSuchAccount(_)) => {
            site.accounts().create("demo", &password, true).await?
        }
        Err(e) => return Err(e.into()),
    };
    site.products().grant(DEMO_PRODUCT, demo.id).await?;
    // Start first: the address to show is the one bound (with port 0 in
    // the configuration, the configured one is not it).
    let signals = Signals::listen();
    let started = start(&site).await?;
    let shown = started
        .iter()
        .find(|(name, _)| name == "http")
        .and_then(|(_, address)| address.clone())
        .unwrap_or_else(|| format!("http://{}", site.section::<HttpConfig>().listen));
    let amp = start_amp(&site).await?;
    println!("Mantle demo site in {}", dir.display());
    println!("  open:      {shown}/");
    println!("  home:      {shown}/home (the applications the demo user has)");
    println!(
        "  lists:     {shown}/lists/demo (a live list: open it in two windows; share it from its page)"
    );
    if let Some(a) = amp.as_ref().and_then(|a| a.address.as_ref()) {
        println!(
            "  AMP:       mantle amp call {} Whoami --login demo@{}:PASSWORD",
            a.trim_start_matches("amp://"),
            site.config().domain
        );
    }
    if site.backup().is_some() {
        println!(
            "  backups:   mantle backup list {} (continuous, to {}/backups)",
            dir.display(),
            dir.display()
        );
    }
    println!("  login:     demo@{}", site.config().domain);
    println!("  password:  {password}");
    println!(
        "  API:       curl -s -X POST {shown}/api/login -H 'content-type: application/json' \\"
    );
    println!(
        "               -d '{{\"username\":\"demo@{}\",\"password\":\"{password}\"}}'",
        site.config().domain
    );
    println!("Stop with Ctrl-C.");
    stop_at_signal(&site, [amp], signals).await
}

/// A fresh random password for the demo user (shown once).
fn demo_password() -> Result<String, CliError> {
    const WORDS: &[&str] = &[
        "amber", "basil", "cedar", "delta", "ember", "fjord", "grove", "harbor", "indigo",
        "juniper", "kestrel", "lumen", "meadow", "nectar", "orbit", "pebble", "quartz", "river",
        "sable", "tundra",
    ];
    let mut bytes = [0u8; 4];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(|e| CliError::Message(format!("no randomness available: {e}")))?;
    let pick = |b: u8| WORDS[b as usize % WORDS.len()];
    Ok(format!(
        "{}-{}-{}-{}",
        pick(bytes[0]),
        pick(bytes[1]),
        pick(bytes[2]),
        bytes[3] % 100
    ))
}
