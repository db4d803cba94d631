//! The `mantle` command as a library: the CLI (`init`, `serve`, `demo`,
//! `user`, `offering`, `product`, `messages`, `fanout`, `store`, `stats`,
//! `amp`), the server's wiring and its signals, for any program built on
//! Mantle. An application's own binary is a few lines and gets every
//! subcommand:
//!
//! ```no_run
//! # mod bookmarks { pub fn offering() -> mantle_site::Offering { mantle_site::Offering::new("bookmarks", 1) } }
//! fn main() -> std::process::ExitCode {
//!     mantle::main(|site| site.offering(bookmarks::offering()))
//! }
//! ```
//!
//! The layers (the web front, live objects) are part of every program;
//! `main`'s closure adds the program's offerings, which a site then
//! installs (`mantle offering install`). The stock `mantle` binary is this
//! library with the example offerings (the `examples` feature, on by
//! default; `mantle ledger` comes with it) and, with the `bench` feature,
//! `mantle bench`. An application depends on it with
//! `default-features = false`.

mod cli;
mod commands;
mod error;
mod program;

use std::process::ExitCode;

use clap::Parser;
use mantle_site::SiteBuilder;

pub use error::{CliError, EXIT_FAILURE, EXIT_PROBLEMS};
pub use program::Program;

/// Runs the `mantle` command line of the program whose sites `assemble`
/// completes (adding its offerings), and returns the exit code: `0`
/// success, `1` failure (one line on stderr says why), `2` a wrong command
/// line, `3` problems found by `store check`. Logs go to stderr, filtered
/// by `MANTLE_LOG`.
pub fn main(assemble: impl Fn(SiteBuilder) -> SiteBuilder + Send + Sync + 'static) -> ExitCode {
    run(&Program::new(assemble))
}

/// As [`main`], for a [`Program`] made already.
pub fn run(program: &Program) -> ExitCode {
    limit_malloc_arenas();
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MANTLE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mantle: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(commands::run(program, cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("mantle: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// The example offerings the stock binary includes (`examples` feature):
/// notes, ledger, lists.
#[cfg(feature = "examples")]
pub fn with_examples(site: SiteBuilder) -> SiteBuilder {
    site.offering(mantle_example_notes::offering())
        .offering(mantle_example_ledger::offering())
        .offering(mantle_example_lists::offering())
}

/// glibc gives each thread that allocates its own malloc arena; a server
/// whose blocking threads open and close many stores ends up holding tens
/// of megabytes in idle arenas. A few arenas serve it as well.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator tunable; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
}
