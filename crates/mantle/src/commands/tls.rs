//! `mantle init --tls`: a self-signed certificate in `DIR/tls/`, or an
//! existing certificate and key, checked before the site is made.

use std::io::Write;
use std::path::{Path, PathBuf};

use mantle_site::SiteConfig;
use mantle_web::HttpConfig;

use crate::cli::InitTls;
use crate::error::CliError;

/// Where a self-signed certificate and its key go, relative to the site
/// directory (and so in `mantle.toml`).
const SELF_SIGNED_CERT: &str = "tls/cert.pem";
const SELF_SIGNED_KEY: &str = "tls/key.pem";

/// How long a self-signed certificate is valid.
const SELF_SIGNED_DAYS: i64 = 5 * 365;

/// Why `--tls` cannot be done.
#[derive(Debug, thiserror::Error)]
pub enum InitTlsError {
    /// A file it would write is there already.
    #[error("{}: exists already; remove it or pass --tls CERT,KEY to use it", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// rcgen refused the names.
    #[error("cannot make a certificate for {names:?}: {source}")]
    Generate {
        /// The names asked for.
        names: Vec<String>,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },
    /// A file could not be written or found.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The certificate or key given is not usable.
    #[error("--tls: {0}")]
    Unusable(#[from] mantle_web::tls::TlsError),
    /// The configuration's `[http]` section cannot take the files.
    #[error(transparent)]
    Config(#[from] mantle_site::SiteError),
}

impl From<InitTlsError> for CliError {
    fn from(e: InitTlsError) -> Self {
        CliError::Message(e.to_string())
    }
}

/// What `--tls` will do once the site exists.
pub enum Plan {
    /// Write this certificate and key (PEM) to `DIR/tls/`.
    SelfSigned { cert: String, key: String },
    /// Nothing: the files exist and are configured as they are.
    Files,
}

/// Checks `--tls` and sets `[http] tls_cert` and `tls_key` in `config`,
/// before anything is written; [`finish`] then writes what it must.
pub fn prepare(tls: &InitTls, dir: &Path, config: &mut SiteConfig) -> Result<Plan, InitTlsError> {
    match tls {
        InitTls::SelfSigned => {
            for file in [SELF_SIGNED_CERT, SELF_SIGNED_KEY] {
                let path = dir.join(file);
                if path.exists() {
                    return Err(InitTlsError::Exists { path });
                }
            }
            let (cert, key) = self_signed(&config.domain)?;
            config.edit_section::<HttpConfig>(|h| {
                h.tls_cert = Some(SELF_SIGNED_CERT.into());
                h.tls_key = Some(SELF_SIGNED_KEY.into());
            })?;
            Ok(Plan::SelfSigned { cert, key })
        }
        InitTls::Files { cert, key } => {
            // Absolute, as relative paths in mantle.toml are the site's.
            let absolute = |p: &PathBuf| {
                std::path::absolute(p).map_err(|source| InitTlsError::Io {
                    path: p.clone(),
                    source,
                })
            };
            let (cert, key) = (absolute(cert)?, absolute(key)?);
            mantle_web::tls::server_config(&cert, &key, &[])?;
            config.edit_section::<HttpConfig>(|h| {
                h.tls_cert = Some(cert);
                h.tls_key = Some(key);
            })?;
            Ok(Plan::Files)
        }
    }
}

/// Writes what [`prepare`] planned into the site directory `dir`: the key
/// with mode 0600 in a 0700 directory.
pub fn finish(plan: Plan, dir: &Path) -> Result<(), InitTlsError> {
    let Plan::SelfSigned { cert, key } = plan else {
        return Ok(());
    };
    let tls_dir = dir.join("tls");
    mantle_store::create_private_dir_all(&tls_dir).map_err(|source| InitTlsError::Io {
        path: tls_dir,
        source,
    })?;
    let write = |file: &str, text: &str, options: std::fs::OpenOptions| {
        let path = dir.join(file);
        let mut options = options;
        options
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|source| InitTlsError::Io { path, source })
    };
    write(SELF_SIGNED_KEY, &key, mantle_store::private_file_options())?;
    write(SELF_SIGNED_CERT, &cert, std::fs::OpenOptions::new())
}

/// A self-signed certificate (PEM) for `domain`, `localhost`, 127.0.0.1
/// and ::1, with its new ECDSA P-256 key (PEM, PKCS#8).
fn self_signed(domain: &str) -> Result<(String, String), InitTlsError> {
    let mut names = vec![domain.to_string()];
    for n in ["localhost", "127.0.0.1", "::1"] {
        if !names.iter().any(|have| have == n) {
            names.push(n.to_string());
        }
    }
    let generate = || -> Result<_, rcgen::Error> {
        let mut params = rcgen::CertificateParams::new(names.clone())?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, domain);
        let now = time::OffsetDateTime::now_utc();
        // An hour's leeway for clocks behind this one.
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(SELF_SIGNED_DAYS);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = rcgen::KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok((cert.pem(), key.serialize_pem()))
    };
    generate().map_err(|source| InitTlsError::Generate {
        names: names.clone(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_pair_loads_with_a_private_key_and_is_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = SiteConfig {
            domain: "example.com".into(),
            ..SiteConfig::default()
        };
        let plan = prepare(&InitTls::SelfSigned, dir.path(), &mut config).unwrap();
        finish(plan, dir.path()).unwrap();
        let http = |c: &SiteConfig| c.section_with_env::<HttpConfig>(&|_| None).unwrap();
        let (cert, key) = http(&config).tls_files(dir.path()).unwrap();
        mantle_web::tls::server_config(&cert, &key, &[]).unwrap();

        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&dir.path().join("tls")), 0o700);

        // Not twice: the key would be lost.
        let Err(e) = prepare(&InitTls::SelfSigned, dir.path(), &mut config) else {
            panic!("made twice");
        };
        assert!(
            e.to_string().contains("tls/cert.pem: exists already"),
            "{e}"
        );

        // Existing files are checked, and configured as absolute paths.
        let mut other = SiteConfig::default();
        let files = InitTls::Files {
            cert: cert.clone(),
            key: key.clone(),
        };
        prepare(&files, Path::new("/elsewhere"), &mut other).unwrap();
        assert_eq!(http(&other).tls_cert, Some(cert.clone()));
        let swapped = InitTls::Files {
            cert: key.clone(),
            key: cert,
        };
        let Err(e) = prepare(&swapped, dir.path(), &mut other) else {
            panic!("a key taken for a certificate");
        };
        assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
    }
}
