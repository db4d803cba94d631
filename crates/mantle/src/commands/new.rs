//! `mantle new offering NAME`: a new offering's crate, ready to build,
//! test and serve.

use std::path::{Path, PathBuf};

use crate::error::CliError;

/// The files of a new offering: where each goes, and its template.
const FILES: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../scaffold/offering/Cargo.toml.tmpl"),
    ),
    (
        "README.md",
        include_str!("../../scaffold/offering/README.md.tmpl"),
    ),
    (
        "src/lib.rs",
        include_str!("../../scaffold/offering/lib.rs.tmpl"),
    ),
    (
        "src/main.rs",
        include_str!("../../scaffold/offering/main.rs.tmpl"),
    ),
    (
        "tests/offering.rs",
        include_str!("../../scaffold/offering/test.rs.tmpl"),
    ),
];

/// The Mantle workspace this program was built from: where a new
/// offering's crate finds the Mantle crates unless told otherwise.
fn built_from() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Writes the crate of offering `name` in `DIR/NAME`; returns its
/// directory.
pub fn offering(name: &str, dir: &Path, mantle: Option<PathBuf>) -> Result<u8, CliError> {
    check_name(name)?;
    let mantle = mantle.unwrap_or_else(built_from);
    let mantle = std::fs::canonicalize(&mantle).map_err(|e| {
        CliError::Message(format!(
            "{}: not the Mantle source tree ({e}); pass --mantle-path",
            mantle.display()
        ))
    })?;
    if !mantle.join("crates/mantle-site/Cargo.toml").exists() {
        return Err(CliError::Message(format!(
            "{}: not the Mantle source tree (no crates/mantle-site); pass --mantle-path",
            mantle.display()
        )));
    }
    let root = dir.join(name);
    if root.exists() {
        return Err(CliError::Message(format!(
            "{} exists: choose another name or directory",
            root.display()
        )));
    }
    let ident = name.replace('-', "_");
    let title: String = name
        .split(['-', '_'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ");
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{ident}}", &ident)
            .replace("{{IDENT}}", &ident.to_uppercase())
            .replace("{{Title}}", &title)
            .replace("{{mantle}}", &mantle.to_string_lossy())
    };
    for (path, template) in FILES {
        let file = root.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| CliError::Message(format!("{}: {e}", parent.display())))?;
        }
        std::fs::write(&file, fill(template))
            .map_err(|e| CliError::Message(format!("{}: {e}", file.display())))?;
    }
    println!("made the offering {name} in {}", root.display());
    println!("  test it:   cd {} && cargo test", root.display());
    println!("  serve it:  cargo run -- init site --offerings {name} && cargo run -- serve site");
    Ok(0)
}

/// An offering's name is also a crate's: lower-case letters, digits, `-`
/// and `_`, starting with a letter.
fn check_name(name: &str) -> Result<(), CliError> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(CliError::Message(format!(
            "{name:?} cannot name an offering: use lower-case letters, digits, '-' and '_', starting with a letter"
        )))
    }
}
