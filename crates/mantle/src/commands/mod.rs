//! What each command does.

mod amp;
mod bench;
mod fanout;
mod http;
mod ledger;
mod messages;
mod offering;
mod reach;
mod site;
mod stats;
mod store;
mod tls;
mod user;

use crate::cli::{Cli, Command};
use crate::error::CliError;

/// Runs a parsed command line; returns the exit code.
pub async fn run(cli: Cli) -> Result<u8, CliError> {
    match cli.command {
        Command::Store(cmd) => store::run(cmd).await,
        Command::Amp(cmd) => amp::run(cmd).await,
        Command::Init {
            dir,
            domain,
            http,
            signup,
            tls,
            offerings,
        } => site::init(dir, domain, http, signup, tls, offerings).await,
        Command::Serve { dir, http, amp } => site::serve(dir, http, amp).await,
        Command::Demo { dir, http } => site::demo(dir, http).await,
        Command::User(cmd) => user::run(cmd).await,
        Command::Messages(cmd) => messages::run(cmd).await,
        Command::Fanout {
            dir,
            query,
            parallel,
        } => fanout::run(dir, query, parallel).await,
        Command::Offering(cmd) => offering::run(cmd).await,
        Command::Product(cmd) => offering::run_product(cmd).await,
        Command::Ledger(cmd) => ledger::run(cmd).await,
        Command::Stats {
            target,
            json,
            disable,
            enable,
            token,
        } => stats::run(target, json, disable, enable, token).await,
        Command::Bench {
            area,
            scale,
            only,
            dir,
        } => bench::run(area, scale, only, dir).await,
        Command::BenchHold(args) => bench::hold(args).await,
    }
}
