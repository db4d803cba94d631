//! `mantle user …`: manage accounts from the command line, by the site's
//! files or, while the site is served, through its server.

use std::io::{BufRead, IsTerminal};
use std::path::Path;

use super::reach::with_site;
use crate::Program;
use crate::cli::UserCommand;
use crate::error::CliError;

pub async fn run(program: &Program, cmd: UserCommand) -> Result<u8, CliError> {
    match cmd {
        UserCommand::Add { dir, login, admin } => {
            let password = read_new_password(&login)?;
            let info = with_site(program, &dir, async |site| {
                site.create_account(&login, &password, admin).await
            })
            .await?;
            println!(
                "created {}{}",
                info.primary,
                if admin { " (admin)" } else { "" }
            );
        }
        UserCommand::List { dir, json } => {
            let accounts = with_site(program, &dir, async |site| site.accounts().await).await?;
            if json {
                let text = serde_json::to_string_pretty(&accounts)
                    .map_err(|e| CliError::Message(format!("cannot encode: {e}")))?;
                println!("{text}");
            } else {
                println!("{:<40} {:<9} {:<6} STORE", "LOGIN", "STATE", "ADMIN");
                for a in accounts {
                    println!(
                        "{:<40} {:<9} {:<6} {}",
                        a.primary,
                        if a.disabled { "disabled" } else { "active" },
                        if a.admin { "yes" } else { "no" },
                        a.store
                    );
                }
            }
        }
        UserCommand::Disable { dir, login } => set_disabled(program, &dir, &login, true).await?,
        UserCommand::Enable { dir, login } => set_disabled(program, &dir, &login, false).await?,
        UserCommand::Passwd { dir, login } => {
            let password = read_new_password(&login)?;
            with_site(program, &dir, async |site| {
                site.set_password(&login, &password).await
            })
            .await?;
            println!("password changed for {login}; its tokens were revoked");
        }
        UserCommand::Delete {
            dir,
            login,
            purge_store,
            yes,
        } => {
            if purge_store
                && !yes
                && !super::confirm(
                    &format!("This deletes all data of {login}. Type the login to confirm: "),
                    &login,
                )?
            {
                return Err(CliError::Message(
                    "not confirmed; nothing deleted (use --yes to confirm without asking)".into(),
                ));
            }
            let file = with_site(program, &dir, async |site| {
                site.delete_account(&login, purge_store).await
            })
            .await?;
            if purge_store {
                println!("deleted {login} and its user store");
            } else {
                println!(
                    "deleted {login}; its user store is kept at {}",
                    file.display()
                );
            }
        }
        UserCommand::Invite { dir } => {
            println!(
                "{}",
                with_site(program, &dir, async |site| site.create_invite().await).await?
            );
        }
    }
    Ok(0)
}

async fn set_disabled(
    program: &Program,
    dir: &Path,
    login: &str,
    disabled: bool,
) -> Result<(), CliError> {
    with_site(program, dir, async |site| {
        site.set_disabled(login, disabled).await
    })
    .await?;
    println!("{login} {}", if disabled { "disabled" } else { "enabled" });
    Ok(())
}

/// A new password: one line from standard input when it is not a
/// terminal (scripts), else prompted twice without echo.
fn read_new_password(login: &str) -> Result<String, CliError> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line).map_err(|e| {
            CliError::Message(format!("cannot read the password from standard input: {e}"))
        })?;
        let pw = line.trim_end_matches(['\n', '\r']).to_string();
        if pw.is_empty() {
            return Err(CliError::Message("no password on standard input".into()));
        }
        return Ok(pw);
    }
    let first = rpassword::prompt_password(format!("Password for {login}: "))
        .map_err(|e| CliError::Message(format!("cannot read the password: {e}")))?;
    let second = rpassword::prompt_password("Again: ")
        .map_err(|e| CliError::Message(format!("cannot read the password: {e}")))?;
    if first != second {
        return Err(CliError::Message("the passwords differ".into()));
    }
    Ok(first)
}
