//! `mantle bench AREA`: benchmarks, one JSON object per line.

use std::path::PathBuf;

use crate::cli::{BenchArea, HoldArgs};
use crate::error::CliError;

pub async fn run(
    area: BenchArea,
    scale: f64,
    only: Option<String>,
    dir: Option<PathBuf>,
) -> Result<u8, CliError> {
    if cfg!(debug_assertions) {
        eprintln!(
            "mantle: warning: this is a debug build; run `cargo run --release -p mantle --features bench -- bench ...` for real figures"
        );
    }
    if scale.is_nan() || scale <= 0.0 {
        return Err(CliError::Message(format!(
            "--scale must be greater than 0 (got {scale})"
        )));
    }
    let mut emit = |record: mantle_bench::BenchRecord| {
        // One line per record, flushed, so long runs show progress.
        println!(
            "{}",
            serde_json::to_string(&record).unwrap_or_else(|e| format!(
                "{{\"bench\":\"{}\",\"error\":\"{e}\"}}",
                record.bench
            ))
        );
    };
    let result = match area {
        BenchArea::Store => {
            let opts = mantle_bench::StoreBenchOptions { scale, dir, only };
            mantle_bench::run_store(&opts, &mut emit).await
        }
        BenchArea::Messaging => {
            let opts = mantle_bench::MessagingBenchOptions { scale, dir, only };
            mantle_bench::run_messaging(&opts, &mut emit).await
        }
        BenchArea::Site => {
            let opts = mantle_bench::SiteBenchOptions { scale, dir, only };
            mantle_bench::run_site(&opts, &mut emit).await
        }
        BenchArea::Live => {
            let opts = mantle_bench::LiveBenchOptions { scale, dir, only };
            mantle_bench::run_live(&opts, &mut emit).await
        }
        BenchArea::Hostile => {
            let opts = mantle_bench::HostileBenchOptions { scale, dir, only };
            mantle_bench::run_hostile(&opts, &mut emit).await
        }
        BenchArea::Sharing => {
            let opts = mantle_bench::SharingBenchOptions { scale, dir, only };
            mantle_bench::run_sharing(&opts, &mut emit).await
        }
        BenchArea::Backup => {
            let opts = mantle_bench::BackupBenchOptions { scale, dir, only };
            mantle_bench::run_backup(&opts, &mut emit).await
        }
        BenchArea::Cluster => {
            let opts = mantle_bench::ClusterBenchOptions { scale, dir, only };
            mantle_bench::run_cluster(&opts, &mut emit).await
        }
    };
    result.map_err(|e| CliError::Message(format!("bench {}: {e}", area_name(area))))?;
    Ok(0)
}

fn area_name(area: BenchArea) -> &'static str {
    match area {
        BenchArea::Store => "store",
        BenchArea::Messaging => "messaging",
        BenchArea::Site => "site",
        BenchArea::Live => "live",
        BenchArea::Hostile => "hostile",
        BenchArea::Sharing => "sharing",
        BenchArea::Backup => "backup",
        BenchArea::Cluster => "cluster",
    }
}

/// `mantle bench-hold`: a helper of `mantle bench hostile` holding idle
/// connections (see [`mantle_bench::hold_idle`]).
pub async fn hold(args: HoldArgs) -> Result<u8, CliError> {
    let spec = mantle_bench::HoldSpec {
        target: args.target,
        count: args.count,
        first_source: args.first_source,
        sources: args.sources,
        max_secs: args.max_secs,
    };
    let mut out = std::io::stdout();
    mantle_bench::hold_idle(&spec, &mut out)
        .await
        .map_err(|e| CliError::Message(format!("bench-hold: {e}")))?;
    Ok(0)
}
