//! `mantle ledger …`: the example ledger's grants and balances, by the
//! site's files or, while the site is served, through its server.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::reach::{self, Reach};
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

/// `{"login", "balance"}`
#[derive(Deserialize)]
struct Balance {
    balance: i64,
}

impl Reach {
    /// Grants ledger units to an account; its new balance.
    pub async fn ledger_grant(&self, login: &str, amount: i64) -> Result<i64, CliError> {
        match self {
            Reach::Files(site) => Ok(mantle_example_ledger::grant(site, login, amount).await?),
            Reach::Server(r) => {
                let body = json!({ "login": login, "amount": amount });
                let b: Balance = r
                    .call(Method::POST, &["ledger", "grant"], &[], Some(body))
                    .await?;
                Ok(b.balance)
            }
        }
    }

    /// An account's ledger balance.
    pub async fn ledger_balance(&self, login: &str) -> Result<i64, CliError> {
        match self {
            Reach::Files(site) => {
                let account = site.accounts().get(login).await?;
                Ok(mantle_example_ledger::balance(site, account.id).await?)
            }
            Reach::Server(r) => {
                let b: Balance = r
                    .call(Method::GET, &["ledger", "balance", login], &[], None)
                    .await?;
                Ok(b.balance)
            }
        }
    }
}
