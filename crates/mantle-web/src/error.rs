//! Errors as HTTP answers: a status and `{"error": "..."}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mantle_site::SiteError;

/// An error answer. Client errors (4xx) are not logged as server errors.
#[derive(Debug)]
pub struct ApiError {
    /// The status.
    pub status: StatusCode,
    /// What went wrong, for the client.
    pub message: String,
    /// Seconds to wait, for 429 and 503.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 401: no valid token.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "login required")
    }

    /// 404.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, what)
    }

    /// A site error answered to an admin (the admin API): in the error's
    /// own words whatever its status, so that an operator's program says
    /// what the same operation said without a server. Server faults are
    /// logged too.
    pub fn for_admin(e: SiteError) -> Self {
        let status = status_of(&e);
        let retry_after = retry_after_of(&e);
        if status.is_server_error() && retry_after.is_none() {
            tracing::error!(error = %e, "admin request failed");
        }
        let mut a = Self::new(status, e.to_string());
        a.retry_after = retry_after;
        a
    }
}

/// The status answering a site error: 4xx for what the client caused,
/// 500 for faults of ours.
pub(crate) fn status_of(e: &SiteError) -> StatusCode {
    match e {
        SiteError::TooManyAttempts { .. } | SiteError::SignupsPaused { .. } => {
            StatusCode::TOO_MANY_REQUESTS
        }
        SiteError::Busy { .. }
        | SiteError::DirectoryUnavailable(_)
        | SiteError::Store(mantle_store::Error::Fenced { .. }) => StatusCode::SERVICE_UNAVAILABLE,
        SiteError::BadCredentials | SiteError::BadToken => StatusCode::UNAUTHORIZED,
        SiteError::Disabled(_) | SiteError::SignupClosed(_) | SiteError::BadInvite => {
            StatusCode::FORBIDDEN
        }
        SiteError::InvalidAddress(_)
        | SiteError::InvalidRecipient(_)
        | SiteError::WeakPassword(_)
        | SiteError::InvalidSlateName(_) => StatusCode::BAD_REQUEST,
        SiteError::AddressTaken(_) => StatusCode::CONFLICT,
        SiteError::SlateConflict { .. } => StatusCode::PRECONDITION_FAILED,
        SiteError::SlateVersionRequired(_) => StatusCode::PRECONDITION_REQUIRED,
        SiteError::NoSuchSlate(_)
        | SiteError::NoSuchAccount(_)
        | SiteError::NoSuchStore(_)
        | SiteError::NoSuchParkedMessage(_)
        | SiteError::NoSuchOffering(_)
        | SiteError::OfferingNotInstalled(_)
        | SiteError::NoSuchProduct(_)
        | SiteError::NoSuchShare(_)
        | SiteError::NoSuchGroup(_) => StatusCode::NOT_FOUND,
        SiteError::BadRole(_)
        | SiteError::BadSharingName { .. }
        | SiteError::BadShareId(_)
        | SiteError::BadEntity(_)
        | SiteError::BadFilter { .. } => StatusCode::BAD_REQUEST,
        SiteError::ShareIdTaken(_) | SiteError::RoleCycle { .. } => StatusCode::CONFLICT,
        SiteError::BadMessageId(_)
        | SiteError::BadOfferingName(_)
        | SiteError::BadProductName(_)
        | SiteError::OfferingIsLayer(_) => StatusCode::BAD_REQUEST,
        SiteError::MessageAnswered(_)
        | SiteError::OfferingNeeds { .. }
        | SiteError::OfferingInstalled(_)
        | SiteError::ProductExists(_)
        | SiteError::ProductHeld { .. } => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Seconds to wait before trying again, for the refusals that say so.
fn retry_after_of(e: &SiteError) -> Option<u64> {
    match e {
        SiteError::TooManyAttempts { retry_after }
        | SiteError::SignupsPaused { retry_after }
        | SiteError::Busy { retry_after } => Some(retry_after.as_secs_f64().ceil() as u64),
        _ => None,
    }
}

impl From<SiteError> for ApiError {
    fn from(e: SiteError) -> Self {
        if let SiteError::Store(mantle_store::Error::Fenced { .. }) = &e {
            // A cluster node that may not write the store now (it moved,
            // or the node lost touch with etcd): nothing was acknowledged,
            // and the client may try again. The store's file is not the
            // client's business.
            tracing::warn!(error = %e, "refused a write: fenced");
            let mut a = Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "this node cannot write this store now (it may have moved to another node); \
                 nothing was saved, try again",
            );
            a.retry_after = Some(1);
            return a;
        }
        if let Some(wait) = retry_after_of(&e) {
            // Refusals that say when to come back; an overloaded server
            // is not a fault to log at every refused guess.
            let mut a = Self::new(status_of(&e), e.to_string());
            a.retry_after = Some(wait);
            return a;
        }
        let status = status_of(&e);
        if status.is_server_error() {
            tracing::error!(error = %e, "request failed");
            return Self::new(status, "internal error");
        }
        Self::new(status, e.to_string())
    }
}

impl From<mantle_store::Error> for ApiError {
    fn from(e: mantle_store::Error) -> Self {
        SiteError::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s.max(1)));
        }
        r
    }
}
