//! The `[cluster]` section of `mantle.toml`, with its environment
//! overrides:
//!
//! | variable | setting |
//! |---|---|
//! | `MANTLE_CLUSTER_ETCD` | `cluster.etcd` (endpoints, comma-separated; empty: no cluster) |
//! | `MANTLE_CLUSTER_NODE` | `cluster.node` |
//! | `MANTLE_CLUSTER_ADVERTISE` | `cluster.advertise` |
//! | `MANTLE_CLUSTER_SECRET_FILE` | `cluster.secret_file` |
//! | `MANTLE_CLUSTER_CA_FILE` | `cluster.ca_file` (empty: the system's) |
//! | `MANTLE_CLUSTER_NAME` | `cluster.name` |
//! | `MANTLE_CLUSTER_LEASE_TTL_SECS` | `cluster.lease_ttl_secs` |
//! | `MANTLE_CLUSTER_REQUEST_TIMEOUT_MS` | `cluster.request_timeout_ms` |

use std::time::Duration;

use mantle_site::{ConfigSection, SiteConfig, SiteError, parse_env};
use serde::{Deserialize, Serialize};

/// A node's cluster settings. With no `etcd` endpoints (the default) the
/// node runs alone, as a site with no cluster always has.
///
/// ```
/// let config: mantle_cluster::ClusterConfig = toml::from_str(r#"
///     etcd = ["http://10.0.0.1:2379", "http://10.0.0.2:2379", "http://10.0.0.3:2379"]
///     node = "n1"
///     advertise = "10.0.0.11:7001"
/// "#).unwrap();
/// assert!(config.enabled());
/// assert_eq!(config.lease_ttl().as_secs(), 10);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// The etcd members' client URLs (`http://host:2379`). Empty: no
    /// cluster.
    pub etcd: Vec<String>,
    /// This node's name, unique among the cluster's live nodes
    /// (lowercase letters, digits and `-`).
    pub node: String,
    /// Where the other nodes reach this one (`host:port`).
    pub advertise: String,
    /// A file holding the secret every node of the cluster shares (at
    /// least 32 bytes; a relative path is relative to the site
    /// directory): nodes vouch with it for the requests they forward.
    pub secret_file: Option<std::path::PathBuf>,
    /// Certificates (PEM; relative to the site directory) trusted for the
    /// other nodes' AMP listeners over TLS, where a node passes AMP
    /// connections on. None: the system's certificate authorities.
    pub ca_file: Option<std::path::PathBuf>,
    /// The cluster's name: every key in etcd starts with `/NAME/`, so
    /// several clusters can share one etcd.
    pub name: String,
    /// Seconds a node's lease lasts without renewal. A node stops
    /// committing before its lease could have run out; a dead node's
    /// stores can be taken over this long after it stopped renewing.
    pub lease_ttl_secs: u64,
    /// Milliseconds one etcd request may take before the next member is
    /// tried.
    pub request_timeout_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            etcd: Vec::new(),
            node: String::new(),
            advertise: String::new(),
            secret_file: None,
            ca_file: None,
            name: "mantle".into(),
            lease_ttl_secs: 10,
            request_timeout_ms: 2000,
        }
    }
}

impl ClusterConfig {
    /// Whether this node is part of a cluster (etcd endpoints are set).
    pub fn enabled(&self) -> bool {
        !self.etcd.is_empty()
    }

    /// How long the node's lease lasts without renewal.
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_secs(self.lease_ttl_secs)
    }

    /// The cluster's shared secret, read from `secret_file` (relative to
    /// the site directory `dir`).
    pub fn secret(&self, dir: &std::path::Path) -> crate::Result<Vec<u8>> {
        let Some(file) = &self.secret_file else {
            return Err(crate::ClusterError::Config(
                "cluster.secret_file is not set".into(),
            ));
        };
        let path = dir.join(file);
        let text = std::fs::read(&path).map_err(|e| {
            crate::ClusterError::Config(format!(
                "cannot read the cluster secret {}: {e}",
                path.display()
            ))
        })?;
        let secret = text.trim_ascii().to_vec();
        if secret.len() < 32 {
            return Err(crate::ClusterError::Config(format!(
                "the cluster secret {} holds {} bytes: at least 32",
                path.display(),
                secret.len()
            )));
        }
        Ok(secret)
    }

    /// How long one etcd request may take.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

/// Whether `name` may name a node or a cluster.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl ConfigSection for ClusterConfig {
    const NAME: &'static str = "cluster";

    fn apply_env(&mut self, var: &dyn Fn(&str) -> Option<String>) -> mantle_site::Result<()> {
        if let Some(v) = var("MANTLE_CLUSTER_ETCD") {
            self.etcd = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        }
        if let Some(v) = var("MANTLE_CLUSTER_NODE") {
            self.node = v;
        }
        if let Some(v) = var("MANTLE_CLUSTER_ADVERTISE") {
            self.advertise = v;
        }
        if let Some(v) = var("MANTLE_CLUSTER_SECRET_FILE") {
            self.secret_file = (!v.trim().is_empty()).then(|| v.into());
        }
        if let Some(v) = var("MANTLE_CLUSTER_CA_FILE") {
            self.ca_file = (!v.trim().is_empty()).then(|| v.into());
        }
        if let Some(v) = var("MANTLE_CLUSTER_NAME") {
            self.name = v;
        }
        if let Some(v) = var("MANTLE_CLUSTER_LEASE_TTL_SECS") {
            self.lease_ttl_secs = parse_env("MANTLE_CLUSTER_LEASE_TTL_SECS", &v)?;
        }
        if let Some(v) = var("MANTLE_CLUSTER_REQUEST_TIMEOUT_MS") {
            self.request_timeout_ms = parse_env("MANTLE_CLUSTER_REQUEST_TIMEOUT_MS", &v)?;
        }
        Ok(())
    }

    /// In a cluster, the node has a valid name and an address, the
    /// endpoints are URLs, and the lease lasts at least 2 s.
    fn validate(&self, _site: &SiteConfig) -> mantle_site::Result<()> {
        let bad = |what: String| Err(SiteError::Config(what));
        if !valid_name(&self.name) {
            return bad(format!(
                "cluster.name '{}' must be 1-63 lowercase letters, digits or '-'",
                self.name
            ));
        }
        if !self.enabled() {
            return Ok(());
        }
        if !valid_name(&self.node) {
            return bad(format!(
                "cluster.node '{}' must be 1-63 lowercase letters, digits or '-'",
                self.node
            ));
        }
        if self.advertise.trim().is_empty() || !self.advertise.contains(':') {
            return bad(format!(
                "cluster.advertise '{}' must be host:port, where the other nodes reach this one",
                self.advertise
            ));
        }
        if self.secret_file.is_none() {
            return bad(
                "cluster.secret_file is not set: every node needs the cluster's shared secret"
                    .into(),
            );
        }
        for e in &self.etcd {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return bad(format!(
                    "cluster.etcd endpoint '{e}' must be a URL (http://host:2379)"
                ));
            }
        }
        if self.lease_ttl_secs < 2 {
            return bad(format!(
                "cluster.lease_ttl_secs is {}: at least 2",
                self.lease_ttl_secs
            ));
        }
        if self.request_timeout_ms == 0 || self.request_timeout_ms >= self.lease_ttl_secs * 1000 / 3
        {
            return bad(format!(
                "cluster.request_timeout_ms is {}: more than 0 and under a third of the lease",
                self.request_timeout_ms
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(c: &ClusterConfig) -> Result<(), String> {
        c.validate(&SiteConfig::default())
            .map_err(|e| e.to_string())
    }

    fn enabled() -> ClusterConfig {
        ClusterConfig {
            etcd: vec!["http://127.0.0.1:2379".into()],
            node: "n1".into(),
            advertise: "127.0.0.1:7001".into(),
            secret_file: Some("cluster.secret".into()),
            ..ClusterConfig::default()
        }
    }

    #[test]
    fn no_endpoints_no_cluster_and_nothing_else_is_asked() {
        let c = ClusterConfig::default();
        assert!(!c.enabled());
        validate(&c).unwrap();
    }

    #[test]
    fn a_cluster_node_needs_a_name_an_address_and_urls() {
        validate(&enabled()).unwrap();
        let e = validate(&ClusterConfig {
            node: "N 1".into(),
            ..enabled()
        })
        .unwrap_err();
        assert!(e.contains("cluster.node 'N 1'"), "{e}");
        let e = validate(&ClusterConfig {
            advertise: String::new(),
            ..enabled()
        })
        .unwrap_err();
        assert!(e.contains("cluster.advertise"), "{e}");
        let e = validate(&ClusterConfig {
            secret_file: None,
            ..enabled()
        })
        .unwrap_err();
        assert!(e.contains("cluster.secret_file"), "{e}");
        let e = validate(&ClusterConfig {
            etcd: vec!["127.0.0.1:2379".into()],
            ..enabled()
        })
        .unwrap_err();
        assert!(e.contains("must be a URL"), "{e}");
        let e = validate(&ClusterConfig {
            lease_ttl_secs: 1,
            ..enabled()
        })
        .unwrap_err();
        assert!(e.contains("lease_ttl_secs is 1"), "{e}");
        let e = validate(&ClusterConfig {
            request_timeout_ms: 5000,
            ..enabled()
        })
        .unwrap_err();
        assert!(e.contains("request_timeout_ms is 5000"), "{e}");
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let mut c = ClusterConfig::default();
        let env = |k: &str| match k {
            "MANTLE_CLUSTER_ETCD" => Some("http://a:2379, http://b:2379,".to_string()),
            "MANTLE_CLUSTER_NODE" => Some("n2".to_string()),
            "MANTLE_CLUSTER_ADVERTISE" => Some("b:7001".to_string()),
            "MANTLE_CLUSTER_LEASE_TTL_SECS" => Some("6".to_string()),
            _ => None,
        };
        c.apply_env(&env).unwrap();
        assert_eq!(c.etcd, vec!["http://a:2379", "http://b:2379"]);
        assert_eq!((c.node.as_str(), c.lease_ttl_secs), ("n2", 6));
        let bad = |k: &str| (k == "MANTLE_CLUSTER_LEASE_TTL_SECS").then(|| "soon".to_string());
        let e = c.apply_env(&bad).unwrap_err().to_string();
        assert!(e.contains("MANTLE_CLUSTER_LEASE_TTL_SECS=soon"), "{e}");
    }
}
