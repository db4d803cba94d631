//! `mantle fanout …`: a question asked of every user store, by the site's
//! files or, while the site is served, through its server.

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

use super::reach;
use crate::Program;
use crate::cli::FanoutQuery;
use crate::error::CliError;

pub async fn run(
    program: &Program,
    dir: PathBuf,
    query: FanoutQuery,
    parallel: usize,
) -> Result<u8, CliError> {
    let FanoutQuery::Count { type_name } = query;
    // A cluster node asks every node, and adds up.
    if let Some((count, nodes)) = super::cluster::fanout_count(&dir, &type_name, parallel).await? {
        println!(
            "{type_name}: {} items in {} user stores ({} hold some) on {nodes} nodes",
            count.items, count.stores, count.holding
        );
        return Ok(0);
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} stores ({eta} left)")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(format!("counting {type_name}"));
    let count = reach::with_site(program, &dir, async |site| {
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
