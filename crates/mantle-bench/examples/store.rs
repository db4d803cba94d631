//! Runs the store benches and prints one JSON line per record, as
//! `mantle bench store` does:
//! `cargo run --release -p mantle-bench --example store [SCALE] [BENCH]`.

use std::io::Write;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let scale = match args.next() {
        Some(s) => s.parse()?,
        None => 1.0,
    };
    let opts = mantle_bench::StoreBenchOptions {
        scale,
        dir: std::env::var_os("MANTLE_BENCH_DIR").map(Into::into),
        only: args.next(),
    };
    let mut failed = None;
    mantle_bench::run_store(&opts, &mut |record| {
        let mut out = std::io::stdout().lock();
        match serde_json::to_string(&record) {
            Ok(line) => {
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
            Err(e) => failed = Some(e),
        }
    })
    .await?;
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
