//! Command-line syntax (clap). Kept apart from the work it drives.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Mantle: a multi-user application server with a built-in object store.
///
/// Exit codes: 0 success; 1 the operation failed (one line on stderr says
/// why); 2 the command line was wrong; 3 `store check` found problems.
/// Set MANTLE_LOG (e.g. MANTLE_LOG=info) for logs on stderr.
#[derive(Debug, Parser)]
#[command(name = "mantle", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new site in DIR: its configuration (mantle.toml), its site
    /// store, and an HTTP service.
    Init {
        /// The site directory (created if missing; must not hold a site).
        dir: PathBuf,
        /// The site's domain: logins without '@' get '@DOMAIN'.
        #[arg(long, default_value = "localhost")]
        domain: String,
        /// Where the HTTP front listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        /// Who may create accounts: open, invite, or admin (only `mantle user add`).
        #[arg(long, default_value = "admin")]
        signup: String,
        /// Serve HTTPS. `self-signed`: make a certificate for the domain,
        /// localhost, 127.0.0.1 and ::1 in DIR/tls/ (cert.pem, key.pem);
        /// `CERT,KEY`: use these PEM files (a certificate chain and its
        /// private key), left where they are.
        #[arg(long, value_name = "self-signed|CERT,KEY")]
        tls: Option<InitTls>,
        /// Install these offerings (comma-separated, or `all` for every
        /// one this program has) and put them in a product, `default`,
        /// that every new account is granted (`[signup] product`).
        #[arg(long, value_name = "NAMES|all", value_delimiter = ',')]
        offerings: Vec<String>,
        /// Back the site up continuously to TARGET: a directory
        /// (`file:///srv/backups`, or relative to DIR) or
        /// `s3://BUCKET/PREFIX` (set `[backup] endpoint` and credentials
        /// in mantle.toml). Makes the backup key DIR/backup.key.
        #[arg(long, value_name = "TARGET")]
        backup: Option<String>,
    },
    /// Serve the site in DIR until SIGINT or SIGTERM, then stop gracefully.
    ///
    /// Configuration comes from DIR/mantle.toml, overridden by MANTLE_*
    /// environment variables, overridden by these flags.
    Serve {
        /// The site directory.
        dir: PathBuf,
        /// Listen here instead of the configured address (port 0: any free port).
        #[arg(long)]
        http: Option<SocketAddr>,
        /// Also serve live objects over AMP (Twisted-compatible) on this
        /// address (default: `live.amp` in the configuration, else none).
        #[arg(long)]
        amp: Option<SocketAddr>,
    },
    /// Make a demo site with a demo user, print its URL and credentials,
    /// and serve it until SIGINT or SIGTERM.
    Demo {
        /// Keep the demo site here (default: a temporary directory, removed
        /// at exit).
        dir: Option<PathBuf>,
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
    },
    /// Manage accounts.
    ///
    /// While `mantle serve` runs on DIR, this goes through the server's
    /// admin API (found with DIR/run/admin.json); otherwise it opens the
    /// site's files. The output is the same either way.
    #[command(subcommand)]
    User(UserCommand),
    /// See and act on parked interstore messages (through the server's
    /// admin API while the site is served, as `mantle user`).
    #[command(subcommand)]
    Messages(MessagesCommand),
    /// Run a read-only query in every user store and collate the results,
    /// with a progress bar (while the site is served, the server runs it,
    /// without a progress bar).
    Fanout {
        /// The site directory.
        dir: PathBuf,
        /// The query.
        #[command(subcommand)]
        query: FanoutQuery,
        /// Stores worked on at once.
        #[arg(long, default_value_t = 8, global = true)]
        parallel: usize,
    },
    /// Start something new (an offering's crate).
    #[command(subcommand)]
    New(NewCommand),
    /// The site's offerings (applications): which are installed, installing
    /// and uninstalling them (through the server's admin API while the site
    /// is served, as `mantle user`).
    #[command(subcommand)]
    Offering(OfferingCommand),
    /// Products: named sets of offerings that users are given together
    /// (through the server's admin API while the site is served).
    #[command(subcommand)]
    Product(ProductCommand),
    /// The ledger offering's administration (through the server's admin
    /// API while the site is served, as `mantle user`).
    #[cfg(feature = "examples")]
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Work with store files (one SQLite file per store).
    #[command(subcommand)]
    Store(StoreCommand),
    /// Continuous backups: what a site's target holds, how far behind it
    /// is, verifying it, and restoring a store, a moment, or a whole site.
    ///
    /// Backup is on when `[backup] target` is set in mantle.toml (see
    /// `mantle init --backup`). Objects are sealed with the site's backup
    /// key (DIR/backup.key by default): keep a copy of it away from the
    /// site, restoring needs it.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Several nodes as one site, coordinated through etcd (when
    /// `[cluster] etcd` is set in mantle.toml): the nodes, their leases,
    /// and which node owns which store. See docs/cluster.md.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Show a running server's statistics, and pause or resume a
    /// namespace's collection.
    ///
    /// TARGET is the server's URL (http://HOST:PORT) or a site directory:
    /// then the address is the configured `[http] listen` (MANTLE_HTTP_LISTEN
    /// overrides it), reached on loopback when it is a wildcard address.
    /// Statistics are answered to requests from loopback and to admins: from
    /// elsewhere, pass an admin's token.
    Stats {
        /// The server's URL (http://HOST:PORT) or the site directory.
        target: String,
        /// Print the statistics as JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// Pause collection in this namespace (repeatable), e.g. HTTP.
        #[arg(long, value_name = "NS")]
        disable: Vec<String>,
        /// Resume collection in this namespace (repeatable).
        #[arg(long, value_name = "NS")]
        enable: Vec<String>,
        /// An admin's login token (sent as a bearer token).
        // Tokens are base64url, so one may start with '-'.
        #[arg(
            long,
            env = "MANTLE_TOKEN",
            hide_env_values = true,
            allow_hyphen_values = true
        )]
        token: Option<String>,
    },
    /// Talk AMP (Twisted's protocol) to a server: Mantle's or any other.
    #[command(subcommand)]
    Amp(AmpCommand),
    /// Run an area's benchmarks; prints one JSON object per line.
    ///
    /// Build with --release and the `bench` feature for meaningful figures:
    /// `cargo run --release -p mantle --features bench -- bench store`.
    #[cfg(feature = "bench")]
    Bench {
        /// The area to benchmark.
        #[arg(value_enum)]
        area: BenchArea,
        /// Scale every bench's size (1.0 = the documented sizes).
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Run only the bench of this name.
        #[arg(long)]
        only: Option<String>,
        /// Where to put benchmark files (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Internal to `mantle bench hostile`: hold idle connections to TARGET
    /// until standard input ends, reporting on standard output.
    #[cfg(feature = "bench")]
    #[command(name = "bench-hold", hide = true)]
    BenchHold(HoldArgs),
}

/// What `mantle bench-hold` holds (see `mantle_bench::HoldSpec`).
#[cfg(feature = "bench")]
#[derive(Debug, clap::Args)]
pub struct HoldArgs {
    /// Where to connect.
    pub target: SocketAddr,
    /// How many connections.
    #[arg(long)]
    pub count: u64,
    /// The first source address.
    #[arg(long)]
    pub first_source: std::net::Ipv4Addr,
    /// Source addresses used, from the first upwards.
    #[arg(long)]
    pub sources: u32,
    /// The longest the connections are held.
    #[arg(long)]
    pub max_secs: u64,
}

/// `mantle init --tls`.
#[derive(Debug, Clone, PartialEq)]
pub enum InitTls {
    /// Make a self-signed certificate.
    SelfSigned,
    /// An existing certificate chain and key.
    Files {
        /// The certificate chain (PEM).
        cert: PathBuf,
        /// Its private key (PEM).
        key: PathBuf,
    },
}

impl std::str::FromStr for InitTls {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "self-signed" {
            return Ok(InitTls::SelfSigned);
        }
        match s.split_once(',') {
            Some((cert, key)) if !cert.is_empty() && !key.is_empty() => Ok(InitTls::Files {
                cert: cert.into(),
                key: key.into(),
            }),
            _ => Err(format!(
                "{s:?} is neither `self-signed` nor CERT,KEY (two PEM files)"
            )),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// The cluster's live nodes (address, when each joined, stores it
    /// owns), stores whose owner is not alive, and this node's own view of
    /// its lease (from the running server's status file).
    Status {
        /// The site directory (its mantle.toml names the etcd endpoints).
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Move a user's store (`users/…`, as `status --json` and the
    /// directory name it) to another node while the cluster serves: its
    /// owner stops writing it, copies it to NODE, which verifies it, then
    /// hands it over with a new epoch. Writes meanwhile are answered 503
    /// (nothing saved) and tried again by their clients.
    Move {
        /// A site directory of the cluster (for its etcd endpoints and
        /// secret).
        dir: PathBuf,
        /// The store.
        store: String,
        /// The node to move it to.
        #[arg(long)]
        to: String,
    },
    /// Move every user store off NODE to the other live nodes, each to
    /// the one with the fewest, with a progress bar (before taking NODE
    /// down, say).
    Drain {
        /// A site directory of the cluster.
        dir: PathBuf,
        /// The node to empty.
        node: String,
    },
    /// Even out the user stores among the live nodes: while one node has
    /// two stores more than another, move one store from the node with
    /// the most to the node with the fewest (see docs/cluster.md).
    Rebalance {
        /// A site directory of the cluster.
        dir: PathBuf,
    },
    /// Bring a dead node's users back on the live nodes from its backup:
    /// its site is restored from TARGET into a temporary directory, and
    /// each user store goes to the live node with the fewest, which
    /// verifies it and takes it over with a new epoch (refused while NODE
    /// is alive: drain it instead). Writes the dead node made after its
    /// backup's point of loss are lost; a zombie NODE coming back is fenced.
    Recover {
        /// A site directory of the cluster (a live node's).
        dir: PathBuf,
        /// The dead node.
        node: String,
        /// The dead node's backup target, as in its `[backup] target`.
        #[arg(long = "from", value_name = "TARGET")]
        target: String,
        /// The dead node's backup key.
        #[arg(long, value_name = "FILE")]
        key_file: PathBuf,
        /// S3: the endpoint of an S3-compatible service.
        #[arg(long)]
        endpoint: Option<String>,
        /// S3: the region.
        #[arg(long, default_value = "us-east-1")]
        region: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// List the stores the site's target holds: generations, snapshots,
    /// segments, bytes, and the span of moments each can be restored to.
    List {
        /// The site directory (its mantle.toml names the target).
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// How far behind the running server's backup is (from the status
    /// file it rewrites every few seconds), and what the target holds.
    Status {
        /// The site directory.
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Restore stores from the target into a temporary place and check
    /// them (every object's checksum, then SQLite's integrity check).
    /// Exit code 3 if any fails.
    Verify {
        /// The site directory.
        dir: PathBuf,
        /// Only these stores (their paths as `list` shows them).
        #[arg(long = "store", value_name = "STORE")]
        stores: Vec<String>,
        /// Only this many stores, chosen at random.
        #[arg(long)]
        sample: Option<usize>,
    },
    /// Restore one store to its latest backed-up state, or to a moment.
    ///
    /// Without --to, the restored copy replaces the store in the site
    /// (the server must be stopped: the store must not be open).
    Restore {
        /// The site directory.
        dir: PathBuf,
        /// The store: its path in the site as `list` shows it
        /// (`users/alice_example.com.store`), or a user's login.
        store: String,
        /// The moment: RFC 3339 (`2026-12-01T10:30:00Z`) or seconds since
        /// 1970. The store as it was then: exactly the transactions
        /// committed before it.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Write the restored store here instead (a new file).
        #[arg(long, value_name = "PATH")]
        to: Option<PathBuf>,
    },
    /// Rebuild a whole site in DIR (empty) from TARGET alone: every store
    /// at its latest state, and the site's configuration.
    RestoreSite {
        /// The target, as in `[backup] target` (`s3://…` or a directory).
        target: String,
        /// The new site directory (absent or empty).
        dir: PathBuf,
        /// The site's backup key (copied into the new site).
        #[arg(long, value_name = "FILE", env = "MANTLE_BACKUP_KEY_FILE")]
        key_file: PathBuf,
        /// S3: the endpoint of an S3-compatible service.
        #[arg(long, env = "MANTLE_BACKUP_ENDPOINT")]
        endpoint: Option<String>,
        /// S3: the region.
        #[arg(long, default_value = "us-east-1")]
        region: String,
    },
    /// Make a new backup key file (for a key rotation: see docs/backup.md).
    NewKey {
        /// The key file to write (must not exist).
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account. The password is read from standard input when it
    /// is not a terminal (one line), else prompted for without echo.
    Add {
        /// The site directory.
        dir: PathBuf,
        /// The login (localpart@domain; a bare name gets the site's domain).
        login: String,
        /// Make the account an administrator.
        #[arg(long)]
        admin: bool,
    },
    /// List accounts.
    List {
        /// The site directory.
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Disable an account: it cannot log in and its tokens stop working.
    Disable {
        /// The site directory.
        dir: PathBuf,
        /// The login.
        login: String,
    },
    /// Enable a disabled account.
    Enable {
        /// The site directory.
        dir: PathBuf,
        /// The login.
        login: String,
    },
    /// Set an account's password (read like `add`); revokes its tokens.
    Passwd {
        /// The site directory.
        dir: PathBuf,
        /// The login.
        login: String,
    },
    /// Delete an account and its logins. Its user store is kept unless
    /// --purge-store is given and confirmed.
    Delete {
        /// The site directory.
        dir: PathBuf,
        /// The login.
        login: String,
        /// Also delete the account's user store (all its data).
        #[arg(long)]
        purge_store: bool,
        /// Confirm --purge-store without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Make an invite code (for signup under the invite policy).
    Invite {
        /// The site directory.
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum MessagesCommand {
    /// List parked messages: ID, sender, recipient, type, attempts, reason.
    List {
        /// The site directory.
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Put a parked message back in line for delivery.
    Retry {
        /// The site directory.
        dir: PathBuf,
        /// The message's ID as listed (STORE/NUMBER).
        id: String,
    },
    /// Delete a parked message for good.
    Drop {
        /// The site directory.
        dir: PathBuf,
        /// The message's ID as listed (STORE/NUMBER).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum FanoutQuery {
    /// Count the items of a type (by its stored name) in every user store.
    Count {
        /// The item type's name (see `mantle store inspect`).
        type_name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum NewCommand {
    /// Make a new offering's crate in DIR/NAME: an item type, a page, a
    /// live command, its configuration, a test, and a `main.rs` that is
    /// the `mantle` command with the offering included. It builds and its
    /// test passes as made: `cd DIR/NAME && cargo test`.
    Offering {
        /// The offering's name (and its crate's): lower-case letters,
        /// digits, '-' and '_'.
        name: String,
        /// Where to make it.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The Mantle source tree its crate depends on (default: the one
        /// this program was built from).
        #[arg(long)]
        mantle_path: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum OfferingCommand {
    /// List the program's offerings and where each stands in the site
    /// (layer, installed, available, or installed by a program that had it).
    List {
        /// The site directory.
        dir: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Install an offering: its routes, commands and message handlers
    /// become present, and users whose products include it are given it.
    Install {
        /// The site directory.
        dir: PathBuf,
        /// The offering.
        name: String,
    },
    /// Uninstall an offering: it is absent from the site; its data is
    /// kept, and a later install finds it (unless --purge).
    Uninstall {
        /// The site directory.
        dir: PathBuf,
        /// The offering.
        name: String,
        /// Also delete its data: its items in every store and its app
        /// store (asks for the offering's name to confirm, on a terminal).
        #[arg(long)]
        purge: bool,
        /// Confirm --purge without asking.
        #[arg(long, requires = "purge")]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProductCommand {
    /// Make a product of some offerings.
    Create {
        /// The site directory.
        dir: PathBuf,
        /// The product's name.
        name: String,
        /// Its offerings.
        #[arg(required = true)]
        offerings: Vec<String>,
    },
    /// List the products, their offerings and how many hold each.
    List {
        /// The site directory.
        dir: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete a product nobody holds.
    Delete {
        /// The site directory.
        dir: PathBuf,
        /// The product.
        name: String,
    },
    /// Grant a product to an account: the user is given its offerings.
    Grant {
        /// The site directory.
        dir: PathBuf,
        /// The product.
        name: String,
        /// The account's login.
        login: String,
    },
    /// Revoke a product from an account: offerings no other product of
    /// theirs gives are taken back; their data stays.
    Revoke {
        /// The site directory.
        dir: PathBuf,
        /// The product.
        name: String,
        /// The account's login.
        login: String,
    },
}

#[cfg(feature = "examples")]
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Give new units to an account.
    Grant {
        /// The site directory.
        dir: PathBuf,
        /// The login.
        login: String,
        /// Units to grant (1 to 1000000000000; a balance never passes
        /// 9223372036854775807).
        amount: i64,
    },
    /// Show an account's balance.
    Balance {
        /// The site directory.
        dir: PathBuf,
        /// The login.
        login: String,
    },
}

#[cfg(feature = "bench")]
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum BenchArea {
    /// The object store against raw rusqlite.
    Store,
    /// Interstore messages (one-way, round trips) against raw rusqlite
    /// doing the commits a message needs.
    Messaging,
    /// The HTTP front (an authenticated slate read) against a plain
    /// handler serving the same bytes; needs `wrk`.
    Site,
    /// Live objects over AMP: calls through the client (1 and 100 in
    /// flight) against a plain TCP echo of the same bytes, and deltas to
    /// 1,000 observers against the same bytes written to plain sockets.
    Live,
    /// A real `mantle serve` under a password-guessing flood from 1,000
    /// addresses and under 20,000 idle connections per listener: a
    /// legitimate client's latency and logins against the same client
    /// unloaded, and the server's peak memory.
    Hostile,
    /// A shared item read through the sharing layer (roles through
    /// groups, cached) against its owner's direct read of the same item.
    Sharing,
    /// Continuous backup to a local directory: small transactions and
    /// one-way messages with backup on against off, and a restore against
    /// copying the same bytes.
    Backup,
    /// Two nodes of a cluster (on an etcd member started for the run;
    /// needs Debian's etcd-server): one-way messages across nodes against
    /// on one node, a forwarded slate read against a direct one, and
    /// moving a 100 MB store against copying its file.
    Cluster,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Show what a store holds: types, versions, item counts, powerups,
    /// outbox and schedule. Safe while the store is in use.
    Inspect {
        /// The store file.
        file: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check a store's integrity and schema; exit code 3 if there are
    /// problems. Safe while the store is in use.
    Check {
        /// The store file.
        file: PathBuf,
    },
    /// Copy a store to DEST as one consistent snapshot, while other
    /// processes keep writing to it.
    Backup {
        /// The store file.
        file: PathBuf,
        /// The new file to write (must not exist).
        dest: PathBuf,
    },
    /// Upgrade items stored at older schema versions to the versions this
    /// program knows, with a progress bar. Resumable: if interrupted, run
    /// it again. Needs the store not to be open elsewhere.
    Upgrade {
        /// The store file.
        file: PathBuf,
    },
}

/// `mantle amp ...`
#[derive(Debug, Subcommand)]
pub enum AmpCommand {
    /// Send one command and print its answer, like curl for AMP.
    ///
    /// Prints the answer's values as `key=value` lines (sorted, as AMP
    /// sends them). On an error answer, prints `CODE: description` on
    /// stderr and exits 1; if the server cannot be reached, exits 2.
    /// Values are sent as the text given: AMP values are untyped bytes, so
    /// `n=7` is a valid Integer and `flag=True` a valid Boolean.
    ///
    /// Example: `mantle amp call 127.0.0.1:7001 Whoami --login alice:secret`
    Call {
        /// The server's `HOST:PORT` (`amps://HOST:PORT`: over TLS, as
        /// with --tls; `amp://` may lead too).
        addr: String,
        /// The command's name (`_command`).
        command: String,
        /// Arguments as `key=value` (repeatable).
        #[arg(value_name = "KEY=VALUE")]
        args: Vec<String>,
        /// Log in first with Mantle's `Login` command, as USER:PASSWORD.
        #[arg(
            long,
            value_name = "USER:PASSWORD",
            env = "MANTLE_AMP_LOGIN",
            hide_env_values = true
        )]
        login: Option<String>,
        /// Address the command to a handle (`_handle`).
        #[arg(long)]
        handle: Option<i64>,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// Speak TLS (a Mantle site with `[live] tls = true`), checking
        /// the server's certificate against the system's trusted ones
        /// (SSL_CERT_FILE, else /etc/ssl/certs/ca-certificates.crt) or
        /// --cacert's.
        #[arg(long)]
        tls: bool,
        /// Trust the certificates in this PEM file instead (for a
        /// self-signed site: its DIR/tls/cert.pem); implies --tls.
        #[arg(long, value_name = "FILE")]
        cacert: Option<PathBuf>,
    },
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn init_tls_is_self_signed_or_two_files() {
        assert_eq!("self-signed".parse(), Ok(InitTls::SelfSigned));
        assert_eq!(
            "a.crt,b.key".parse(),
            Ok(InitTls::Files {
                cert: "a.crt".into(),
                key: "b.key".into()
            })
        );
        for bad in ["selfsigned", "a.crt", "a.crt,", ",b.key"] {
            assert!(bad.parse::<InitTls>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_token_may_start_with_a_hyphen() {
        // Tokens are base64url: about one in 64 starts with '-'.
        let cli = Cli::try_parse_from(["mantle", "stats", "http://127.0.0.1:1", "--token", "-f3x"])
            .unwrap();
        match cli.command {
            Command::Stats { token, .. } => assert_eq!(token.as_deref(), Some("-f3x")),
            _ => panic!("not stats"),
        }
    }
}
