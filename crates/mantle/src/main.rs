//! The stock `mantle` binary: the `mantle` library with the example
//! offerings (see `mantle --help`).

fn main() -> std::process::ExitCode {
    mantle::main(mantle::with_examples)
}
