//! AMP over TLS (a Mantle site with `[live] tls = true`): rustls with the
//! ring provider, trusting the certificates of a PEM file (a site's
//! self-signed `tls/cert.pem`, or the system's bundle).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Where Debian (and most Linux systems) keep the trusted certificates,
/// unless `SSL_CERT_FILE` names another file.
pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The trust file cannot be read.
    #[error("{}: cannot read it: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The trust file is not PEM, or holds no certificate rustls accepts
    /// as a trust root.
    #[error("{}: no usable PEM certificate: {detail}", path.display())]
    Certificates {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// The name to check the server's certificate against is not a DNS
    /// name or an IP address.
    #[error("{name:?} is not a DNS name or IP address to check a certificate against")]
    ServerName {
        /// The name.
        name: String,
    },
}

/// How a [`Client`](crate::Client) speaks TLS: the roots it trusts and,
/// optionally, the name the server's certificate must carry (by default
/// the host of the address it connects to).
#[derive(Clone)]
pub struct ClientTls {
    connector: TlsConnector,
    server_name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Trusts the certificates in the PEM file `path` (one or more).
    pub fn trusting(path: &Path) -> Result<Self, TlsSetupError> {
        let pem = std::fs::read(path).map_err(|source| TlsSetupError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |detail: String| TlsSetupError::Certificates {
            path: path.to_path_buf(),
            detail,
        };
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        let mut roots = RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(bad(format!(
                "{ignored} certificate(s) found, none usable as a trust root"
            )));
        }
        Ok(Self::with_roots(roots))
    }

    /// Trusts the system's certificates: the PEM bundle `SSL_CERT_FILE`
    /// names, else [`SYSTEM_BUNDLE`].
    pub fn system() -> Result<Self, TlsSetupError> {
        let bundle =
            std::env::var_os("SSL_CERT_FILE").map_or_else(|| SYSTEM_BUNDLE.into(), PathBuf::from);
        Self::trusting(&bundle)
    }

    /// Trusts `roots`.
    pub fn with_roots(roots: RootCertStore) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self::with_config(Arc::new(config))
    }

    /// Uses a rustls configuration as it is.
    pub fn with_config(config: Arc<ClientConfig>) -> Self {
        Self {
            connector: TlsConnector::from(config),
            server_name: None,
        }
    }

    /// Checks the server's certificate against `name` (a DNS name or an
    /// IP address) rather than the host connected to.
    pub fn server_name(mut self, name: &str) -> Result<Self, TlsSetupError> {
        self.server_name = Some(parse_name(name)?);
        Ok(self)
    }

    /// The TLS session over `stream`, connected to `addr` (`HOST:PORT`).
    pub async fn connect(
        &self,
        addr: &str,
        stream: TcpStream,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let name = match &self.server_name {
            Some(n) => n.clone(),
            None => parse_name(host(addr)).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
            })?,
        };
        self.connector.connect(name, stream).await
    }
}

fn parse_name(name: &str) -> Result<ServerName<'static>, TlsSetupError> {
    ServerName::try_from(name.to_string()).map_err(|_| TlsSetupError::ServerName {
        name: name.to_string(),
    })
}

/// The host of `HOST:PORT` (`[::1]:7001` → `::1`).
fn host(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_name_is_the_host_of_the_address() {
        assert_eq!(host("example.com:7001"), "example.com");
        assert_eq!(host("127.0.0.1:7001"), "127.0.0.1");
        assert_eq!(host("[::1]:7001"), "::1");
        assert!(parse_name(host("[::1]:7001")).is_ok());
        assert!(parse_name("not a name").is_err());
    }

    #[test]
    fn a_trust_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = ClientTls::trusting(&missing).unwrap_err().to_string();
        assert!(e.contains("missing.pem: cannot read"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "nothing here\n").unwrap();
        let e = ClientTls::trusting(&empty).unwrap_err().to_string();
        assert!(e.contains("empty.pem: no usable PEM certificate"), "{e}");
    }
}
