//! Talking HTTP to a running server (`mantle stats`, and the commands that
//! reach a served site through its admin API): one client setup, one way
//! to send a request and read its answer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::StatusCode;

use crate::error::CliError;

/// An HTTP client for talking to a server: a time-out, no redirects.
pub fn client() -> Result<reqwest::Client, CliError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| CliError::Message(format!("cannot make an HTTP client: {e}")))
}

/// Why a request got no successful answer; each caller words it.
pub enum Failure {
    /// The server could not be reached (or the answer not read).
    Unreachable(reqwest::Error),
    /// The server answered with an error status.
    Refused {
        /// The status.
        status: StatusCode,
        /// The `error` of a JSON error body, if it had one.
        error: Option<String>,
    },
}

/// Sends `req` (with `token` as a bearer token, if any) and answers the
/// body of a successful answer.
pub async fn fetch(req: reqwest::RequestBuilder, token: Option<&str>) -> Result<String, Failure> {
    let req = match token {
        Some(t) => req.bearer_auth(t),
        None => req,
    };
    let answer = req.send().await.map_err(Failure::Unreachable)?;
    let status = answer.status();
    let body = answer.text().await.map_err(Failure::Unreachable)?;
    if !status.is_success() {
        let error = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string));
        return Err(Failure::Refused { status, error });
    }
    Ok(body)
}

/// The address to reach a listener on: a wildcard becomes loopback; port 0
/// cannot be reached.
pub fn reachable(listen: SocketAddr) -> Option<SocketAddr> {
    if listen.port() == 0 {
        return None;
    }
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Some(SocketAddr::new(ip, listen.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_are_reached_on_loopback() {
        let r = |s: &str| reachable(s.parse().unwrap()).map(|a| a.to_string());
        assert_eq!(r("0.0.0.0:80").as_deref(), Some("127.0.0.1:80"));
        assert_eq!(r("[::]:80").as_deref(), Some("[::1]:80"));
        assert_eq!(r("10.1.2.3:80").as_deref(), Some("10.1.2.3:80"));
        assert_eq!(r("127.0.0.1:0"), None);
    }
}
