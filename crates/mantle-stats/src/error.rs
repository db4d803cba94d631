//! The crate's error type.

/// What can go wrong when registering statistics or reading a report back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatsError {
    /// The name is already taken in the namespace by a statistic of another
    /// kind (a counter asked for where a gauge lives). Names are shared by
    /// every kind, collections included; pick another name.
    #[error("statistic {name:?} in namespace {namespace:?} is a {existing}, not a {requested}")]
    KindConflict {
        /// The namespace.
        namespace: String,
        /// The contested name.
        name: String,
        /// The kind already registered.
        existing: &'static str,
        /// The kind asked for.
        requested: &'static str,
    },
    /// `Enabled` (in any letter case) names the namespace's switch in every
    /// report and cannot name a statistic.
    #[error("{name:?} is reserved in namespace {namespace:?}: it reports the Enabled switch")]
    ReservedName {
        /// The namespace.
        namespace: String,
        /// The reserved name asked for.
        name: String,
    },
    /// The text given to [`Snapshot::from_json`](crate::Snapshot::from_json)
    /// is not a snapshot.
    #[error("invalid statistics JSON: {0}")]
    Json(#[from] serde_json::Error),
}
