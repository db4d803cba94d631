//! TLS for the site's listeners (rustls with the ring provider): the HTTP
//! front when `[http] tls_cert` and `tls_key` are set (HTTP/2 or HTTP/1.1
//! chosen by ALPN), and the AMP listener with the same certificate when
//! `[live] tls` is set.
//!
//! The files are read when a listener starts; whatever is wrong with them
//! (missing, not PEM, no certificate or key, a key that does not match the
//! certificate) is one [`TlsError`] naming the setting and the file.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mantle_site::SiteError;

use crate::HttpConfig;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The protocols the HTTP front offers by ALPN, preferred first.
pub const HTTP_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The setting naming the certificate file.
const CERT_SETTING: &str = "http.tls_cert";
/// The setting naming the key file.
const KEY_SETTING: &str = "http.tls_key";

/// What is wrong with the configured certificate or key.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be read.
    #[error("{setting} = {}: cannot read it: {source}", path.display())]
    Read {
        /// The setting that names the file.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file is not valid PEM.
    #[error("{setting} = {}: not valid PEM: {detail}", path.display())]
    Pem {
        /// The setting that names the file.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// What the parser said.
        detail: String,
    },
    /// The certificate file holds no certificate.
    #[error("{CERT_SETTING} = {}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no private key.
    #[error(
        "{KEY_SETTING} = {}: holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA or EC)",
        path.display()
    )]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// The key is not the certificate's.
    #[error(
        "{KEY_SETTING} = {}: is not the private key of the certificate in {CERT_SETTING} = {}",
        key.display(),
        cert.display()
    )]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the certificate or key for another reason (an
    /// unsupported key type, a certificate it cannot parse).
    #[error(
        "{CERT_SETTING} = {}, {KEY_SETTING} = {}: unusable: {source}",
        cert.display(),
        key.display()
    )]
    Unusable {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
}

impl From<TlsError> for SiteError {
    fn from(e: TlsError) -> Self {
        SiteError::Service {
            service: "TLS",
            source: Box::new(e),
        }
    }
}

fn read(setting: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        setting,
        path: path.to_path_buf(),
        source,
    })
}

fn pem_error(setting: &'static str, path: &Path, e: rustls::pki_types::pem::Error) -> TlsError {
    TlsError::Pem {
        setting,
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

/// A server configuration for the certificate chain in `cert` and the
/// private key in `key` (PEM files), offering `alpn` (may be empty).
/// Fails unless the key is the certificate's.
pub fn server_config(cert: &Path, key: &Path, alpn: &[&[u8]]) -> Result<ServerConfig, TlsError> {
    let chain = CertificateDer::pem_slice_iter(&read(CERT_SETTING, cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(CERT_SETTING, cert, e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.to_path_buf(),
        });
    }
    let private = match PrivateKeyDer::from_pem_slice(&read(KEY_SETTING, key)?) {
        Ok(k) => k,
        Err(rustls::pki_types::pem::Error::NoItemsFound) => {
            return Err(TlsError::NoKey {
                path: key.to_path_buf(),
            });
        }
        Err(e) => return Err(pem_error(KEY_SETTING, key, e)),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, private))
        .map_err(|source| match source {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                TlsError::Mismatch {
                    cert: cert.to_path_buf(),
                    key: key.to_path_buf(),
                }
            }
            source => TlsError::Unusable {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                source,
            },
        })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The acceptor for the site's certificate (`[http] tls_cert`, `tls_key`,
/// relative to the site directory `dir`), offering `alpn`; `None` when
/// the site serves plain HTTP.
pub fn acceptor(
    http: &HttpConfig,
    dir: &Path,
    alpn: &[&[u8]],
) -> Result<Option<TlsAcceptor>, TlsError> {
    let Some((cert, key)) = http.tls_files(dir) else {
        return Ok(None);
    };
    let config = server_config(&cert, &key, alpn)?;
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh self-signed certificate and its key, as PEM.
    fn pair() -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_matching_pair_loads_with_alpn_and_every_mistake_names_setting_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_pem, key_pem) = pair();
        let (_, other_key) = pair();
        let cert = write(dir.path(), "cert.pem", &cert_pem);
        let key = write(dir.path(), "key.pem", &key_pem);
        let config = server_config(&cert, &key, &HTTP_ALPN).unwrap();
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );

        let err = |cert: &Path, key: &Path| server_config(cert, key, &[]).unwrap_err().to_string();
        let missing = dir.path().join("missing.pem");
        let e = err(&missing, &key);
        assert!(
            e.starts_with("http.tls_cert = ") && e.contains("missing.pem: cannot read"),
            "{e}"
        );
        let e = err(&cert, &missing);
        assert!(
            e.starts_with("http.tls_key = ") && e.contains("missing.pem: cannot read"),
            "{e}"
        );

        let garbage = write(
            dir.path(),
            "garbage.pem",
            "-----BEGIN CERTIFICATE-----\n!!!\n",
        );
        let e = err(&garbage, &key);
        assert!(e.contains("garbage.pem: not valid PEM"), "{e}");
        let e = err(&key, &key);
        assert!(e.contains("key.pem: holds no PEM certificate"), "{e}");
        let e = err(&cert, &cert);
        assert!(
            e.starts_with("http.tls_key = ") && e.contains("holds no PEM private key"),
            "{e}"
        );

        let wrong = write(dir.path(), "other-key.pem", &other_key);
        let e = err(&cert, &wrong);
        assert!(
            e.contains("other-key.pem: is not the private key of the certificate in http.tls_cert"),
            "{e}"
        );
    }

    #[test]
    fn relative_paths_are_taken_from_the_site_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_pem, key_pem) = pair();
        std::fs::create_dir(dir.path().join("tls")).unwrap();
        write(&dir.path().join("tls"), "cert.pem", &cert_pem);
        write(&dir.path().join("tls"), "key.pem", &key_pem);
        let mut http = HttpConfig::default();
        assert!(acceptor(&http, dir.path(), &[]).unwrap().is_none());
        http.tls_cert = Some("tls/cert.pem".into());
        http.tls_key = Some("tls/key.pem".into());
        assert!(acceptor(&http, dir.path(), &[]).unwrap().is_some());
        let Err(e) = acceptor(&http, Path::new("/nonexistent"), &[]) else {
            panic!("no certificate there");
        };
        assert!(e.to_string().contains("/nonexistent/tls/cert.pem"), "{e}");
    }
}
