//! What each command does.

mod bench;
mod store;

use crate::cli::{Cli, Command};
use crate::error::CliError;

/// Runs a parsed command line; returns the exit code.
pub async fn run(cli: Cli) -> Result<u8, CliError> {
    match cli.command {
        Command::Store(cmd) => store::run(cmd).await,
        Command::Bench {
            area,
            scale,
            only,
            dir,
        } => bench::run(area, scale, only, dir).await,
    }
}
