//! What each command does.

mod amp;
mod backup;
#[cfg(feature = "bench")]
mod bench;
mod cluster;
mod fanout;
mod http;
#[cfg(feature = "examples")]
mod ledger;
mod messages;
mod new;
mod offering;
mod reach;
mod site;
mod stats;
mod store;
mod tls;
mod user;

use crate::Program;
use crate::cli::{Cli, Command};
use crate::error::CliError;

/// Runs a parsed command line for `program`; returns the exit code.
pub async fn run(program: &Program, cli: Cli) -> Result<u8, CliError> {
    match cli.command {
        Command::Store(cmd) => store::run(program, cmd).await,
        Command::Backup(cmd) => backup::run(cmd).await,
        Command::Cluster(cmd) => cluster::run(program, cmd).await,
        Command::Amp(cmd) => amp::run(cmd).await,
        Command::Init {
            dir,
            domain,
            http,
            signup,
            tls,
            offerings,
            backup,
        } => {
            let options = site::InitOptions {
                domain,
                http,
                signup,
                tls,
                offerings,
                backup,
            };
            site::init(program, dir, options).await
        }
        Command::Serve { dir, http, amp } => site::serve(program, dir, http, amp).await,
        Command::Demo { dir, http } => site::demo(program, dir, http).await,
        Command::User(cmd) => user::run(program, cmd).await,
        Command::Messages(cmd) => messages::run(program, cmd).await,
        Command::Fanout {
            dir,
            query,
            parallel,
        } => fanout::run(program, dir, query, parallel).await,
        Command::New(crate::cli::NewCommand::Offering {
            name,
            dir,
            mantle_path,
        }) => new::offering(&name, &dir, mantle_path),
        Command::Offering(cmd) => offering::run(program, cmd).await,
        Command::Product(cmd) => offering::run_product(program, cmd).await,
        #[cfg(feature = "examples")]
        Command::Ledger(cmd) => ledger::run(program, cmd).await,
        Command::Stats {
            target,
            json,
            disable,
            enable,
            token,
        } => stats::run(target, json, disable, enable, token).await,
        #[cfg(feature = "bench")]
        Command::Bench {
            area,
            scale,
            only,
            dir,
        } => bench::run(area, scale, only, dir).await,
        #[cfg(feature = "bench")]
        Command::BenchHold(args) => bench::hold(args).await,
    }
}

/// On a terminal, shows `prompt` and says whether the answer is
/// `expected` (a destructive command's confirmation); elsewhere, no (the
/// command's `--yes` confirms instead).
fn confirm(prompt: &str, expected: &str) -> Result<bool, CliError> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    print!("{prompt}");
    std::io::stdout().flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::Message(format!("cannot read confirmation: {e}")))?;
    Ok(line.trim() == expected)
}
