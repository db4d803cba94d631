//! A connection to the etcd members, with failover: one lazily connected
//! gRPC channel per member; a request that fails or takes longer than the
//! time-out is asked of the next member. A member in a minority (cut off
//! from the others) cannot answer linearizable requests and times out,
//! so requests move to the majority by themselves.
//!
//! Retrying a transaction on another member may apply it twice when the
//! first member applied it and only the answer was lost. Every
//! transaction here compares a revision first, so the second attempt
//! fails its comparison, and callers read back what stands (see
//! `directory.rs`).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use etcdv3client::grpc::TonicClient;
use etcdv3client::{Client, pb};
use tonic::transport::Endpoint;

use crate::{ClusterError, Result};

/// One etcd member's client.
type Member = Client<TonicClient>;

/// The etcd members, asked in turn.
#[derive(Debug)]
pub struct Etcd {
    members: Vec<(String, Member)>,
    /// The member that answered last: asked first next time.
    preferred: AtomicUsize,
    timeout: Duration,
}

impl Etcd {
    /// Clients for `endpoints` (`http://host:port`), connected when first
    /// used; each request may take `timeout` per member.
    pub fn new(endpoints: &[String], timeout: Duration) -> Result<Self> {
        if endpoints.is_empty() {
            return Err(ClusterError::Config("no etcd endpoints".into()));
        }
        let mut members = Vec::new();
        for e in endpoints {
            let endpoint = Endpoint::from_shared(e.clone())
                .map_err(|err| ClusterError::Config(format!("etcd endpoint '{e}': {err}")))?
                .connect_timeout(timeout)
                .timeout(timeout)
                .tcp_nodelay(true);
            let channel = endpoint.connect_lazy();
            members.push((e.clone(), Client::with_service(TonicClient::new(channel))));
        }
        Ok(Self {
            members,
            preferred: AtomicUsize::new(0),
            timeout,
        })
    }

    /// The endpoints, comma-separated (for messages).
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|(e, _)| e.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Asks `f` of each member in turn, from the preferred one, until one
    /// answers.
    async fn ask<T, F, Fut>(&self, op: &str, f: F) -> Result<T>
    where
        F: Fn(Member) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcdv3client::Error>>,
    {
        let first = self.preferred.load(Ordering::Relaxed);
        let mut last = String::new();
        for i in 0..self.members.len() {
            let at = (first + i) % self.members.len();
            let (endpoint, member) = &self.members[at];
            match tokio::time::timeout(self.timeout, f(member.clone())).await {
                Ok(Ok(answer)) => {
                    self.preferred.store(at, Ordering::Relaxed);
                    return Ok(answer);
                }
                Ok(Err(e)) => last = format!("{endpoint}: {e}"),
                Err(_) => last = format!("{endpoint}: no answer in {:?}", self.timeout),
            }
            tracing::debug!(op, %last, "etcd member failed; trying the next");
        }
        Err(ClusterError::Unreachable {
            op: op.to_string(),
            endpoints: self.endpoints(),
            detail: last,
        })
    }

    /// The value under `key`, if any.
    pub async fn get(&self, key: &str) -> Result<Option<pb::KeyValue>> {
        let request = pb::RangeRequest {
            key: key.as_bytes().to_vec(),
            ..Default::default()
        };
        Ok(self
            .range(&format!("a read of {key}"), request)
            .await?
            .into_iter()
            .next())
    }

    /// Every key under `prefix`, in key order.
    pub async fn prefix(&self, prefix: &str) -> Result<Vec<pb::KeyValue>> {
        let request = pb::RangeRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: prefix_end(prefix.as_bytes()),
            ..Default::default()
        };
        self.range(&format!("a read of {prefix}*"), request).await
    }

    async fn range(&self, op: &str, request: pb::RangeRequest) -> Result<Vec<pb::KeyValue>> {
        let answer = self
            .ask(op, |mut m| {
                let request = request.clone();
                async move { m.kv.range(request).await }
            })
            .await?;
        Ok(answer.kvs)
    }

    /// Runs a transaction.
    pub async fn txn(&self, op: &str, request: pb::TxnRequest) -> Result<pb::TxnResponse> {
        self.ask(op, |mut m| {
            let request = request.clone();
            async move { m.kv.txn(request).await }
        })
        .await
    }

    /// Grants a lease of `ttl`; its id.
    pub async fn grant(&self, ttl: Duration) -> Result<i64> {
        let request = pb::LeaseGrantRequest {
            ttl: ttl.as_secs() as i64,
            id: 0,
        };
        let answer = self
            .ask("a lease", |mut m| async move {
                m.lease.lease_grant(request).await
            })
            .await?;
        if !answer.error.is_empty() {
            return Err(ClusterError::Unreachable {
                op: "a lease".into(),
                endpoints: self.endpoints(),
                detail: answer.error,
            });
        }
        Ok(answer.id)
    }

    /// Renews lease `id` once; the seconds it now has left (0: it is gone).
    pub async fn keep_alive(&self, id: i64) -> Result<i64> {
        self.ask(&format!("a renewal of lease {id:x}"), |mut m| async move {
            let once = futures::stream::once(async move { pb::LeaseKeepAliveRequest { id } });
            let mut answers = m.lease.lease_keep_alive(once).await?;
            Ok(answers.message().await?.map_or(0, |a| a.ttl))
        })
        .await
    }

    /// Revokes lease `id`: every key attached to it goes.
    pub async fn revoke(&self, id: i64) -> Result<()> {
        self.ask(
            &format!("the revocation of lease {id:x}"),
            |mut m| async move { m.lease.lease_revoke(pb::LeaseRevokeRequest { id }).await },
        )
        .await
        .map(|_| ())
    }
}

/// The end of the range of keys starting with `prefix` (etcd's
/// convention: the prefix with its last byte incremented).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// A comparison in a transaction.
pub(crate) fn compare(
    key: &str,
    target: pb::compare::CompareTarget,
    result: pb::compare::CompareResult,
    value: pb::compare::TargetUnion,
) -> pb::Compare {
    pb::Compare {
        key: key.as_bytes().to_vec(),
        target: target as i32,
        result: result as i32,
        target_union: Some(value),
        range_end: Vec::new(),
    }
}

/// `key` exists (`true`) or does not.
pub(crate) fn exists(key: &str, yes: bool) -> pb::Compare {
    use pb::compare::{CompareResult, CompareTarget, TargetUnion};
    let result = if yes {
        CompareResult::Greater
    } else {
        CompareResult::Equal
    };
    compare(
        key,
        CompareTarget::Create,
        result,
        TargetUnion::CreateRevision(0),
    )
}

/// `key` was last changed at `revision`.
pub(crate) fn unchanged_since(key: &str, revision: i64) -> pb::Compare {
    use pb::compare::{CompareResult, CompareTarget, TargetUnion};
    compare(
        key,
        CompareTarget::Mod,
        CompareResult::Equal,
        TargetUnion::ModRevision(revision),
    )
}

/// A put, in a transaction.
pub(crate) fn put(key: &str, value: Vec<u8>, lease: i64) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
            key: key.as_bytes().to_vec(),
            value,
            lease,
            ..Default::default()
        })),
    }
}

/// A delete, in a transaction.
pub(crate) fn delete(key: &str) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(pb::request_op::Request::RequestDeleteRange(
            pb::DeleteRangeRequest {
                key: key.as_bytes().to_vec(),
                ..Default::default()
            },
        )),
    }
}

/// A read, in a transaction.
pub(crate) fn read(key: &str) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(pb::request_op::Request::RequestRange(pb::RangeRequest {
            key: key.as_bytes().to_vec(),
            ..Default::default()
        })),
    }
}

/// The key-values a transaction's `at`th operation (a read) found.
pub(crate) fn read_in(answer: &pb::TxnResponse, at: usize) -> Option<&pb::KeyValue> {
    match answer.responses.get(at)?.response.as_ref()? {
        pb::response_op::Response::ResponseRange(r) => r.kvs.first(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn a_prefix_range_ends_past_its_last_key() {
        assert_eq!(prefix_end(b"/m/a"), b"/m/b".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }
}
