//! The `bookmarks` program: every `mantle` subcommand, with the bookmarks
//! offering included (`cargo run -- --help`).

fn main() -> std::process::ExitCode {
    mantle::main(|site| site.offering(bookmarks::offering()))
}
