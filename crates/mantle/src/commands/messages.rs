//! `mantle messages …`: parked interstore messages, by the site's files
//! or, while the site is served, through its server.

use super::reach;
use crate::Program;
use crate::cli::MessagesCommand;
use crate::error::CliError;

pub async fn run(program: &Program, cmd: MessagesCommand) -> Result<u8, CliError> {
    match cmd {
        MessagesCommand::List { dir, json } => {
            let parked =
                reach::with_site(program, &dir, async |site| site.parked_messages().await).await?;
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
            reach::with_site(program, &dir, async |site| {
                site.handle_parked(&id, true).await
            })
            .await?;
            println!("{id}: back in line for delivery");
        }
        MessagesCommand::Drop { dir, id } => {
            reach::with_site(program, &dir, async |site| {
                site.handle_parked(&id, false).await
            })
            .await?;
            println!("{id}: dropped");
        }
    }
    Ok(0)
}
