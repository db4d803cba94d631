//! The object storage backups go to.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};

use crate::config::BackupConfig;
use crate::{BackupError, Result};

/// Where a target is, parsed from `[backup] target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TargetSpec {
    /// A local directory (absolute, or relative to the site).
    Dir(PathBuf),
    /// An S3 bucket and a prefix in it.
    S3 { bucket: String, prefix: String },
}

impl TargetSpec {
    pub(crate) fn parse(text: &str) -> Result<TargetSpec> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(BackupError::Config(format!(
                    "target {text:?} names no bucket"
                )));
            }
            return Ok(TargetSpec::S3 {
                bucket: bucket.into(),
                prefix: prefix.trim_matches('/').into(),
            });
        }
        if text.starts_with("file://") {
            let url = url::Url::parse(text)
                .map_err(|e| BackupError::Config(format!("target {text:?}: {e}")))?;
            let path = url.to_file_path().map_err(|()| {
                BackupError::Config(format!("target {text:?} is not a local path"))
            })?;
            return Ok(TargetSpec::Dir(path));
        }
        if text.contains("://") {
            return Err(BackupError::Config(format!(
                "target {text:?}: only file:// and s3:// targets are supported"
            )));
        }
        Ok(TargetSpec::Dir(PathBuf::from(text)))
    }
}

/// An opened target: the object store and how to name it in messages.
#[derive(Clone, Debug)]
pub struct Target {
    pub(crate) store: Arc<dyn ObjectStore>,
    /// The target's address, without credentials.
    pub(crate) name: String,
}

impl Target {
    /// Opens the target `config` names; a relative directory is taken
    /// from `site`.
    pub fn open(config: &BackupConfig, site: &Path) -> Result<Target> {
        let spec = TargetSpec::parse(&config.target)?;
        let name = config.target.trim().to_string();
        let store: Arc<dyn ObjectStore> = match spec {
            TargetSpec::Dir(dir) => {
                let dir = if dir.is_absolute() {
                    dir
                } else {
                    site.join(dir)
                };
                mantle_store::create_private_dir_all(&dir).map_err(|e| BackupError::io(&dir, e))?;
                let local = object_store::local::LocalFileSystem::new_with_prefix(&dir).map_err(
                    |source| BackupError::Target {
                        target: name.clone(),
                        source,
                    },
                )?;
                Arc::new(local)
            }
            #[cfg(feature = "s3")]
            TargetSpec::S3 { bucket, prefix } => {
                let env = |var: &str| std::env::var(var).ok().filter(|v| !v.is_empty());
                let key = Some(config.access_key_id.clone())
                    .filter(|v| !v.is_empty())
                    .or_else(|| env("AWS_ACCESS_KEY_ID"));
                let secret = Some(config.secret_access_key.clone())
                    .filter(|v| !v.is_empty())
                    .or_else(|| env("AWS_SECRET_ACCESS_KEY"));
                let mut b = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(&bucket)
                    .with_region(&config.region)
                    // Our own loop retries with back-off for as long as it
                    // takes; a request itself gives up soon.
                    .with_retry(object_store::RetryConfig {
                        backoff: object_store::BackoffConfig::default(),
                        max_retries: 2,
                        retry_timeout: std::time::Duration::from_secs(15),
                    })
                    .with_client_options(
                        object_store::ClientOptions::new()
                            .with_timeout(std::time::Duration::from_secs(60))
                            .with_connect_timeout(std::time::Duration::from_secs(5))
                            .with_allow_http(config.endpoint.starts_with("http://")),
                    );
                if !config.endpoint.is_empty() {
                    b = b
                        .with_endpoint(&config.endpoint)
                        .with_virtual_hosted_style_request(false);
                }
                if let (Some(k), Some(s)) = (key, secret) {
                    b = b.with_access_key_id(k).with_secret_access_key(s);
                }
                let s3 = b.build().map_err(|source| BackupError::Target {
                    target: name.clone(),
                    source,
                })?;
                if prefix.is_empty() {
                    Arc::new(s3)
                } else {
                    Arc::new(object_store::prefix::PrefixStore::new(s3, prefix.as_str()))
                }
            }
            #[cfg(not(feature = "s3"))]
            TargetSpec::S3 { .. } => {
                return Err(BackupError::Config(format!(
                    "target {name:?}: this program is built without S3 support (feature s3)"
                )));
            }
        };
        Ok(Target { store, name })
    }

    /// A target over any object store (tests, other services).
    pub fn from_store(store: Arc<dyn ObjectStore>, name: impl Into<String>) -> Target {
        Target {
            store,
            name: name.into(),
        }
    }

    /// The target's address.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn err(&self, source: object_store::Error) -> BackupError {
        BackupError::Target {
            target: self.name.clone(),
            source,
        }
    }

    /// Stores `bytes` as `name` (`Bytes`: a retry shares them, uncopied).
    pub(crate) async fn put(&self, name: &str, bytes: impl Into<bytes::Bytes>) -> Result<()> {
        self.store
            .put(&ObjectPath::from(name), PutPayload::from(bytes.into()))
            .await
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    pub(crate) async fn get(&self, name: &str) -> Result<Vec<u8>> {
        let got = self
            .store
            .get(&ObjectPath::from(name))
            .await
            .map_err(|e| self.err(e))?;
        Ok(got.bytes().await.map_err(|e| self.err(e))?.to_vec())
    }

    pub(crate) async fn delete(&self, name: &str) -> Result<()> {
        match self.store.delete(&ObjectPath::from(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Every object under `prefix`, with its size.
    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        let prefix = ObjectPath::from(prefix);
        self.store
            .list(Some(&prefix))
            .map_ok(|m| (m.location.to_string(), m.size))
            .try_collect()
            .await
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(
            TargetSpec::parse("s3://b/p/q/").unwrap(),
            TargetSpec::S3 {
                bucket: "b".into(),
                prefix: "p/q".into()
            }
        );
        assert_eq!(
            TargetSpec::parse("file:///var/backups").unwrap(),
            TargetSpec::Dir("/var/backups".into())
        );
        assert_eq!(
            TargetSpec::parse("backups").unwrap(),
            TargetSpec::Dir("backups".into())
        );
        assert!(TargetSpec::parse("gs://x").is_err());
        assert!(TargetSpec::parse("s3:///x").is_err());
    }
}
