//! `mantle store …`: inspect, check, back up and upgrade store files.

use std::path::Path;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use mantle_store::{Store, StoreConfig, StoreReport, Unregistered};

use crate::Program;
use crate::cli::StoreCommand;
use crate::error::{CliError, EXIT_PROBLEMS};

pub async fn run(program: &Program, cmd: StoreCommand) -> Result<u8, CliError> {
    match cmd {
        StoreCommand::Inspect { file, json } => {
            let report = mantle_store::inspect(&file)?;
            let unregistered = report.unregistered(&program.registry());
            if json {
                let encode =
                    |e: serde_json::Error| CliError::Message(format!("cannot encode report: {e}"));
                let mut value = serde_json::to_value(&report).map_err(encode)?;
                value["unregistered"] = serde_json::to_value(&unregistered).map_err(encode)?;
                let text = serde_json::to_string_pretty(&value).map_err(encode)?;
                println!("{text}");
            } else {
                print_report(&report);
                if !unregistered.is_empty() {
                    println!();
                    print_warnings(None, &unregistered);
                }
            }
            Ok(0)
        }
        StoreCommand::Check { file } => {
            let registry = program.registry();
            let report = mantle_store::check_report(&file, Some(&registry))?;
            for p in &report.problems {
                println!("{}: {p}", file.display());
            }
            // Items of types this program does not register are left alone
            // when it opens the store: worth knowing, not a problem.
            print_warnings(Some(&file), &report.unregistered);
            if report.problems.is_empty() {
                println!("{}: ok", file.display());
                Ok(0)
            } else {
                Ok(EXIT_PROBLEMS)
            }
        }
        StoreCommand::Backup { file, dest } => {
            let started = Instant::now();
            let pages = mantle_store::backup(&file, &dest)?;
            println!(
                "{} -> {}: {pages} pages copied in {:.2?}",
                file.display(),
                dest.display(),
                started.elapsed()
            );
            Ok(0)
        }
        StoreCommand::Upgrade { file } => upgrade(program, &file).await,
    }
}

/// One "warning: …" line per (type, version) this program does not
/// register, after `FILE: ` if given.
fn print_warnings(file: Option<&Path>, unregistered: &[Unregistered]) {
    let prefix = file.map_or(String::new(), |f| format!("{}: ", f.display()));
    for u in unregistered {
        println!("{prefix}warning: {u}");
    }
}

fn print_report(r: &StoreReport) {
    println!("store      {}", r.path.display());
    println!(
        "format     {}   journal {}   {} pages of {} bytes ({} bytes on disk)",
        r.format_version, r.journal_mode, r.page_count, r.page_size, r.file_bytes
    );
    println!();
    println!("{:<32} {:>7} {:>12}", "TYPE", "VERSION", "ITEMS");
    for t in &r.types {
        println!("{:<32} {:>7} {:>12}", t.type_name, t.version, t.items);
    }
    if r.types.is_empty() {
        println!("(no items)");
    }
    if !r.powerups.is_empty() {
        println!();
        println!("{:<32} {:<32} {:>8}", "INTERFACE", "POWERUP TYPE", "COUNT");
        for p in &r.powerups {
            println!("{:<32} {:<32} {:>8}", p.interface, p.powerup_type, p.count);
        }
    }
    println!();
    println!(
        "outbox     {} pending, {} parked",
        r.outbox_pending, r.outbox_parked
    );
    println!("schedule   {} scheduled runs", r.scheduled);
}

async fn upgrade(program: &Program, file: &Path) -> Result<u8, CliError> {
    if !file.is_file() {
        return Err(CliError::Message(format!(
            "{}: no such store file",
            file.display()
        )));
    }
    let bar = ProgressBar::hidden();
    bar.set_style(
        ProgressStyle::with_template("{msg:24} [{bar:40}] {pos}/{len} items ({eta} left)")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let shown = bar.clone();
    let mut started = false;
    let config = StoreConfig::new(program.registry());
    let store = Store::open_with_progress(file, &config, move |p| {
        if !started {
            shown.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            started = true;
        }
        shown.set_length(p.total);
        shown.set_position(p.done);
        shown.set_message(format!("{} v{}", p.type_name, p.from_version));
    })
    .await?;
    let moved = bar.position();
    bar.finish_and_clear();
    let store_unregistered = store.unregistered().to_vec();
    store.close().await;
    let report = mantle_store::inspect(file)?;
    if moved == 0 {
        println!("{}: already current", file.display());
    } else {
        println!("{}: upgraded {moved} item moves", file.display());
    }
    for t in &report.types {
        println!("  {} v{}: {} items", t.type_name, t.version, t.items);
    }
    print_warnings(Some(file), store_unregistered.as_slice());
    Ok(0)
}
