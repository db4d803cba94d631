//! `mantle messages …`, `mantle fanout …`, `mantle ledger …`: by the
//! site's files or, while the site is served, through its server.

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

use super::reach;
use crate::cli::{FanoutQuery, LedgerCommand, MessagesCommand};
use crate::error::CliError;

pub async fn run(cmd: MessagesCommand) -> Result<u8, CliError> {
    match cmd {
        MessagesCommand::List { dir, json } => {
            let parked = reach::with_site(&dir, async |site| site.parked_messages().await).await?;
            if json {
                let text = serde_json::to_string_pretty(&parked)
                    .map_err(|e| CliError::Message(format!("cannot encode: {e}")))?;
                println!("{text}");
            } else if parked.is_empty() {
                println!("no parked messages");
            } else {
                println!(
                    "{:<24} {:<24} {:<28} {:<20} {:>8}  REASON",
                    "ID", "FROM", "TO", "TYPE", "ATTEMPTS"
                );
                for m in parked {
                    println!(
                        "{:<24} {:<24} {:<28} {:<20} {:>8}  {}",
                        m.id, m.from, m.to, m.kind, m.attempts, m.reason
                    );
                }
            }
        }
        MessagesCommand::Retry { dir, id } => {
            reach::with_site(&dir, async |site| site.handle_parked(&id, true).await).await?;
            println!("{id}: back in line for delivery");
        }
        MessagesCommand::Drop { dir, id } => {
            reach::with_site(&dir, async |site| site.handle_parked(&id, false).await).await?;
            println!("{id}: dropped");
        }
    }
    Ok(0)
}

pub async fn fanout(dir: PathBuf, query: FanoutQuery, parallel: usize) -> Result<u8, CliError> {
    let FanoutQuery::Count { type_name } = query;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} stores ({eta} left)")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(format!("counting {type_name}"));
    let count = reach::with_site(&dir, async |site| {
        site.count_items(&type_name, parallel, |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })
        .await
    })
    .await?;
    bar.finish_and_clear();
    println!(
        "{type_name}: {} items in {} user stores ({} hold some)",
        count.items, count.stores, count.holding
    );
    Ok(0)
}

pub async fn ledger(cmd: LedgerCommand) -> Result<u8, CliError> {
    match cmd {
        LedgerCommand::Grant { dir, login, amount } => {
            let balance =
                reach::with_site(&dir, async |site| site.ledger_grant(&login, amount).await)
                    .await?;
            println!("{login}: granted {amount}, balance {balance}");
        }
        LedgerCommand::Balance { dir, login } => {
            let balance =
                reach::with_site(&dir, async |site| site.ledger_balance(&login).await).await?;
            println!("{login}: {balance}");
        }
    }
    Ok(0)
}
