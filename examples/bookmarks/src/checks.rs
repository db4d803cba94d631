//! What a bookmark may hold: the URL and title checks, and
//! [`BookmarkError`], why a change, a share or a look was refused.

use axum::http::StatusCode;
use mantle_site::SiteError;
use mantle_web::ApiError;

/// The longest URL kept, in bytes.
pub const MAX_URL: usize = 2048;
/// The longest title kept, in characters.
pub const MAX_TITLE: usize = 200;

/// Why a bookmark change, or a share, was refused (before anything was
/// recorded).
#[derive(Debug, thiserror::Error)]
pub enum BookmarkError {
    /// The URL is not one to keep.
    #[error("url: {0}")]
    BadUrl(String),
    /// The title is not one to keep.
    #[error("title: {0}")]
    BadTitle(String),
    /// No bookmark with this id in the user's store.
    #[error("no bookmark {0}")]
    NotFound(String),
    /// The recipient of a share is the sender.
    #[error("'{0}' is your own account: cannot share with yourself")]
    ToSelf(String),
    /// The recipient of a share is not a user's account (`site`,
    /// `app:NAME`, or no address at all).
    #[error("'{0}' is not a user's account: share with a login or account:ID")]
    NotAnAccount(String),
    /// The recipient of a share names no account, or a disabled one, or
    /// one not given the bookmarks.
    #[error("'{0}' cannot receive bookmarks")]
    CannotReceive(String),
    /// Withdrawing a share from someone the bookmark is not shared with.
    #[error("bookmark {id} is not shared with '{with}'")]
    NotShared {
        /// The bookmark's id.
        id: i64,
        /// Who, as the caller named them.
        with: String,
    },
    /// Another user's bookmark that is missing or that the caller may not
    /// see: one answer for both, so nobody learns what exists.
    #[error("not found")]
    NoSuchShare,
    /// The site or a store failed.
    #[error(transparent)]
    Site(#[from] SiteError),
}

impl From<mantle_store::Error> for BookmarkError {
    fn from(e: mantle_store::Error) -> Self {
        BookmarkError::Site(e.into())
    }
}

/// Bad requests are 400; a missing bookmark, share or owner 404 (the
/// sharing layer's refusal, [`SiteError::NoSuchShare`], is answered as
/// [`BookmarkError::NoSuchShare`]: always the same words).
impl From<BookmarkError> for ApiError {
    fn from(e: BookmarkError) -> Self {
        match e {
            BookmarkError::NoSuchShare | BookmarkError::Site(SiteError::NoSuchShare(_)) => {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    BookmarkError::NoSuchShare.to_string(),
                )
            }
            BookmarkError::NotFound(_) | BookmarkError::NotShared { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, e.to_string())
            }
            BookmarkError::Site(e) => e.into(),
            e => ApiError::new(StatusCode::BAD_REQUEST, e.to_string()),
        }
    }
}

/// Checks a URL to keep: `http://` or `https://` with a host, at most
/// [`MAX_URL`] bytes, no spaces or control characters. Returns it without
/// surrounding blanks.
pub fn check_url(url: &str) -> Result<String, BookmarkError> {
    let url = url.trim();
    let bad = |why: &str| Err(BookmarkError::BadUrl(why.to_string()));
    if url.is_empty() {
        return bad("a bookmark needs a URL");
    }
    if url.len() > MAX_URL {
        return bad(&format!("a URL has at most {MAX_URL} bytes"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("a URL has no spaces or control characters");
    }
    if scheme_len(url).is_none() {
        return bad("only http:// and https:// URLs are kept");
    }
    if host(url).is_empty() {
        return bad("the URL has no host");
    }
    Ok(url.to_string())
}

/// The length of `http://` or `https://` at the start of `url` (any case).
fn scheme_len(url: &str) -> Option<usize> {
    ["http://", "https://"].into_iter().find_map(|s| {
        url.get(..s.len())
            .filter(|p| p.eq_ignore_ascii_case(s))
            .map(|_| s.len())
    })
}

/// The host of an http(s) URL (empty if none).
fn host(url: &str) -> &str {
    let Some(n) = scheme_len(url) else {
        return "";
    };
    let rest = &url[n..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hostport.starts_with('[') {
        // An IPv6 literal, brackets included.
        return hostport.find(']').map_or(hostport, |i| &hostport[..=i]);
    }
    hostport.split(':').next().unwrap_or("")
}

/// The title a bookmark gets when it is given none: the URL's host, or
/// the URL itself when it has none.
pub fn title_from_url(url: &str) -> String {
    match host(url) {
        "" => url.chars().take(MAX_TITLE).collect(),
        h => h.to_string(),
    }
}

/// Checks a title to keep: at most [`MAX_TITLE`] characters, one line.
/// A blank one means "the URL's host".
pub fn check_title(title: Option<&str>, url: &str) -> Result<String, BookmarkError> {
    let title = title.map(str::trim).unwrap_or("");
    if title.is_empty() {
        return Ok(title_from_url(url));
    }
    if title.chars().count() > MAX_TITLE {
        return Err(BookmarkError::BadTitle(format!(
            "a title has at most {MAX_TITLE} characters"
        )));
    }
    if title.chars().any(char::is_control) {
        return Err(BookmarkError::BadTitle(
            "a title is one line, without control characters".into(),
        ));
    }
    Ok(title.to_string())
}
