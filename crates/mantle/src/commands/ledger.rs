//! `mantle ledger …`: the example ledger's grants and balances, by the
//! site's files or, while the site is served, through its server.

use super::reach;
use crate::Program;
use crate::cli::LedgerCommand;
use crate::error::CliError;

pub async fn run(program: &Program, cmd: LedgerCommand) -> Result<u8, CliError> {
    match cmd {
        LedgerCommand::Grant { dir, login, amount } => {
            let balance = reach::with_site(program, &dir, async |site| {
                site.ledger_grant(&login, amount).await
            })
            .await?;
            println!("{login}: granted {amount}, balance {balance}");
        }
        LedgerCommand::Balance { dir, login } => {
            let balance = reach::with_site(program, &dir, async |site| {
                site.ledger_balance(&login).await
            })
            .await?;
            println!("{login}: {balance}");
        }
    }
    Ok(0)
}
