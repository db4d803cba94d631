//! `mantle backup …`: what a site's target holds, status, verify, restore.

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use mantle_backup::{
    BackupConfig, BackupKey, BackupStatus, Catalog, Keyring, Target, format_us, parse_moment,
    restore_store,
};
use mantle_site::SiteConfig;

use crate::cli::BackupCommand;
use crate::error::{CliError, EXIT_PROBLEMS};

pub async fn run(cmd: BackupCommand) -> Result<u8, CliError> {
    match cmd {
        BackupCommand::List { dir, json } => list(&dir, json).await,
        BackupCommand::Status { dir, json } => status(&dir, json).await,
        BackupCommand::Verify {
            dir,
            stores,
            sample,
        } => verify(&dir, stores, sample).await,
        BackupCommand::Restore { dir, store, at, to } => restore(&dir, &store, at, to).await,
        BackupCommand::RestoreSite {
            target,
            dir,
            key_file,
            endpoint,
            region,
        } => restore_site(target, &dir, &key_file, endpoint, region).await,
        BackupCommand::NewKey { file } => {
            let key = BackupKey::create_file(&file)?;
            println!("wrote {} (key id {})", file.display(), key.id_hex());
            Ok(0)
        }
    }
}

/// The site's backup settings, its target and keyring.
fn open(dir: &Path) -> Result<(BackupConfig, Target, Keyring), CliError> {
    let config = SiteConfig::load(dir)?.backup;
    if !config.enabled() {
        return Err(CliError::Message(format!(
            "{} has no backup target ([backup] target in mantle.toml)",
            dir.display()
        )));
    }
    let target = Target::open(&config, dir)?;
    let keys = mantle_backup::keyring(&config, dir, false)?;
    Ok((config, target, keys))
}

fn spinner(text: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_message(text.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

fn json_out(value: &impl serde::Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Message(format!("cannot encode: {e}")))?;
    println!("{text}");
    Ok(())
}

async fn list(dir: &Path, json: bool) -> Result<u8, CliError> {
    let (_, target, _) = open(dir)?;
    let catalog = Catalog::read(&target).await?;
    let summaries = catalog.summaries();
    if json {
        json_out(&summaries)?;
        return Ok(0);
    }
    println!("{}: {} store(s)", target.name(), summaries.len());
    for s in &summaries {
        let span = match (s.earliest_us, s.latest_us) {
            (Some(a), Some(b)) => format!("{} .. {}", format_us(a), format_us(b)),
            _ => "not restorable yet (no complete snapshot)".into(),
        };
        println!(
            "  {}  {} generation(s), {} snapshot(s), {} segment(s), {}  {span}",
            s.store,
            s.generations,
            s.snapshots,
            s.segments,
            size(s.bytes)
        );
    }
    for stray in catalog.strays() {
        println!("  warning: {stray} is not a backup object");
    }
    Ok(0)
}

async fn status(dir: &Path, json: bool) -> Result<u8, CliError> {
    let (config, target, _) = open(dir)?;
    let live = BackupStatus::read(dir)?;
    if json {
        json_out(&live)?;
        return Ok(0);
    }
    println!(
        "target {}   point of loss {}   keep {}",
        target.name(),
        config.point_of_loss,
        config.keep
    );
    match live {
        None => println!("no status file: the server has not run with backup on"),
        Some(s) => {
            let age = mantle_backup::now_us().saturating_sub(s.written_us) as f64 / 1e6;
            let running = if age < 30.0 {
                "the server is running"
            } else {
                "the server is not running (status is old)"
            };
            println!(
                "status of {} ({age:.0} s ago: {running})",
                format_us(s.written_us)
            );
            let behind: Vec<_> = s.stores.iter().filter(|r| r.backlog_bytes > 0).collect();
            let lag = s.stores.iter().map(|r| r.lag_seconds).fold(0.0, f64::max);
            println!(
                "  {} open store(s); {} behind, {} waiting, oldest {lag:.1} s; {} segment(s) spooled",
                s.stores.len(),
                behind.len(),
                size(behind.iter().map(|r| r.backlog_bytes).sum()),
                s.spooled
            );
            for r in s.stores.iter().filter(|r| r.last_error.is_some()) {
                println!(
                    "  {}: the target refuses: {}",
                    r.store,
                    r.last_error.as_deref().unwrap_or_default()
                );
            }
            if let Some((at, what)) = &s.last_prune {
                println!("  last prune {}: {what}", format_us(*at));
            }
            if let Some((at, what)) = &s.last_verify {
                println!("  last verification {}: {what}", format_us(*at));
            }
        }
    }
    Ok(0)
}

async fn verify(dir: &Path, only: Vec<String>, sample: Option<usize>) -> Result<u8, CliError> {
    let (_, target, keys) = open(dir)?;
    let catalog = Catalog::read(&target).await?;
    let mut stores: Vec<String> = if only.is_empty() {
        catalog.stores().map(String::from).collect()
    } else {
        only
    };
    if let Some(n) = sample {
        stores = mantle_backup::choose(stores, n);
    }
    let bar = ProgressBar::new(stores.len() as u64).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} stores {msg}")
            .expect("a valid template"),
    );
    let mut failed = 0;
    for store in &stores {
        bar.set_message(store.clone());
        let v =
            mantle_backup::verify(&target, &keys, &catalog, std::slice::from_ref(store)).await?;
        for r in &v.ok {
            bar.println(format!(
                "{}: ok (generation {}, commit {}, {})",
                r.store,
                r.generation,
                r.seq,
                format_us(r.time_us)
            ));
        }
        for (s, e) in &v.failed {
            failed += 1;
            bar.println(format!("{s}: FAILED: {e}"));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!("{} store(s) verified, {failed} failed", stores.len());
    Ok(if failed > 0 { EXIT_PROBLEMS } else { 0 })
}

/// The store `name` means: a path the catalog holds, or a user's login.
fn resolve(catalog: &Catalog, name: &str, domain: &str) -> Result<String, CliError> {
    if catalog.stores().any(|s| s == name) {
        return Ok(name.to_string());
    }
    let login = if name.contains('@') {
        name.to_string()
    } else {
        format!("{name}@{domain}")
    };
    let guess = mantle_site::user_store_path(&login, 1);
    if catalog.stores().any(|s| s == guess) {
        return Ok(guess);
    }
    Err(CliError::Message(format!(
        "the target holds no store {name:?} (nor {guess}); `mantle backup list` shows what it holds"
    )))
}

async fn restore(
    dir: &Path,
    store: &str,
    at: Option<String>,
    to: Option<PathBuf>,
) -> Result<u8, CliError> {
    let (_, target, keys) = open(dir)?;
    let domain = SiteConfig::load(dir)?.domain;
    let at_us = at.as_deref().map(parse_moment).transpose()?;
    let bar = spinner("reading the target");
    let catalog = Catalog::read(&target).await?;
    let store = resolve(&catalog, store, &domain)?;
    bar.set_message(format!("restoring {store}"));
    let started = Instant::now();
    let in_place = to.is_none();
    let dest = match &to {
        Some(p) => p.clone(),
        None => dir.join(format!("{store}.restored")),
    };
    let _ = in_place.then(|| std::fs::remove_file(&dest));
    let restored = restore_store(&target, &keys, &catalog, &store, at_us, &dest).await;
    bar.finish_and_clear();
    let restored = restored?;
    if in_place && let Err(e) = mantle_store::replace_store(&dir.join(&store), &dest) {
        let _ = std::fs::remove_file(&dest);
        return Err(match e {
            mantle_store::Error::Locked { .. } => CliError::Message(format!(
                "{store} is open (is `mantle serve` running?): stop the server, or restore with --to PATH"
            )),
            e => e.into(),
        });
    }
    println!(
        "restored {store} as of {} (generation {}, commit {}) to {} in {:.2?} ({} read)",
        format_us(restored.time_us),
        restored.generation,
        restored.seq,
        if in_place { dir.join(&store) } else { dest }.display(),
        started.elapsed(),
        size(restored.bytes_read),
    );
    Ok(0)
}

async fn restore_site(
    target: String,
    dir: &Path,
    key_file: &Path,
    endpoint: Option<String>,
    region: String,
) -> Result<u8, CliError> {
    let config = BackupConfig {
        target: target.clone(),
        endpoint: endpoint.unwrap_or_default(),
        region,
        ..BackupConfig::default()
    };
    let base = std::env::current_dir()
        .map_err(|e| CliError::Message(format!("current directory: {e}")))?;
    let opened = Target::open(&config, &base)?;
    let keys = Keyring::new(BackupKey::read_file(key_file)?);
    let started = Instant::now();
    let bar = spinner("reading the target");
    let restored = mantle_backup::restore_site(&opened, &keys, dir, |r| {
        bar.set_message(format!("restored {}", r.store));
    })
    .await;
    bar.finish_and_clear();
    let restored = restored?;
    // The new site goes on backing up with the same key.
    let mut site_config = SiteConfig::load(dir)?;
    let key_dest = dir.join(&site_config.backup.key_file);
    if !key_dest.exists() {
        std::fs::copy(key_file, &key_dest)
            .map_err(|e| CliError::Message(format!("{}: {e}", key_dest.display())))?;
    }
    if !site_config.backup.enabled() {
        site_config.backup.target = target;
        site_config.save(dir)?;
    }
    let bytes: u64 = restored.iter().map(|r| r.bytes_read).sum();
    println!(
        "restored a site of {} store(s) into {} in {:.2?} ({} read)",
        restored.len(),
        dir.display(),
        started.elapsed(),
        size(bytes)
    );
    println!("  serve it:    mantle serve {}", dir.display());
    Ok(0)
}
