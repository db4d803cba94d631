//! `mantle bench AREA`: benchmarks, one JSON object per line.

use std::path::PathBuf;

use crate::cli::BenchArea;
use crate::error::CliError;

pub async fn run(
    area: BenchArea,
    scale: f64,
    only: Option<String>,
    dir: Option<PathBuf>,
) -> Result<u8, CliError> {
    if cfg!(debug_assertions) {
        eprintln!(
            "mantle: warning: this is a debug build; run `cargo run --release -p mantle -- bench ...` for real figures"
        );
    }
    if scale.is_nan() || scale <= 0.0 {
        return Err(CliError::Message(format!(
            "--scale must be greater than 0 (got {scale})"
        )));
    }
    match area {
        BenchArea::Store => {
            let opts = mantle_bench::StoreBenchOptions { scale, dir, only };
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
            mantle_bench::run_store(&opts, &mut emit)
                .await
                .map_err(|e| CliError::Message(format!("bench store: {e}")))?;
        }
    }
    Ok(0)
}
