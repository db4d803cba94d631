//! `mantle amp call`: one AMP request from the command line.

use std::time::Duration;

use mantle_amp::AmpBox;
use mantle_client::{CallError, Client, ClientOptions, ClientTls, ConnectError};

use crate::cli::AmpCommand;
use crate::error::CliError;

/// Exit code when the server cannot be reached (or the login fails).
const EXIT_UNREACHABLE: u8 = 2;

pub async fn run(cmd: AmpCommand) -> Result<u8, CliError> {
    match cmd {
        AmpCommand::Call {
            addr,
            command,
            args,
            login,
            handle,
            timeout,
            tls,
            cacert,
        } => {
            // `amps://` (as `mantle serve` shows an AMP listener over TLS)
            // means --tls.
            let (addr, tls) = match addr.strip_prefix("amps://") {
                Some(a) => (a.to_string(), true),
                None => (addr.trim_start_matches("amp://").to_string(), tls),
            };
            let tls = match (tls, cacert) {
                (_, Some(file)) => Some(ClientTls::trusting(&file)),
                (true, None) => Some(ClientTls::system()),
                (false, None) => None,
            }
            .transpose()
            .map_err(|e| CliError::Message(format!("TLS: {e}")))?;
            call(addr, command, args, login, handle, timeout, tls).await
        }
    }
}

fn parse_args(args: &[String], handle: Option<i64>) -> Result<AmpBox, CliError> {
    let mut b = AmpBox::new();
    for a in args {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| CliError::Message(format!("argument {a:?} is not KEY=VALUE")))?;
        if k.is_empty() || k.len() > mantle_amp::MAX_KEY_LENGTH {
            return Err(CliError::Message(format!(
                "argument name {k:?} must be 1 to 255 bytes"
            )));
        }
        b.insert(k, v);
    }
    if let Some(h) = handle {
        b.insert(mantle_live::builtin::HANDLE_KEY, h.to_string());
    }
    Ok(b)
}

/// A value for the terminal: text as it is, other bytes escaped.
fn printable(v: &[u8]) -> String {
    match std::str::from_utf8(v) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_string(),
        _ => v.escape_ascii().to_string(),
    }
}

async fn call(
    addr: String,
    command: String,
    args: Vec<String>,
    login: Option<String>,
    handle: Option<i64>,
    timeout: u64,
    tls: Option<ClientTls>,
) -> Result<u8, CliError> {
    let args = parse_args(&args, handle)?;
    let mut options = ClientOptions::new(addr.clone());
    options.reconnect = false;
    options.tls = tls;
    if let Some(l) = login {
        let (user, password) = l
            .split_once(':')
            .ok_or_else(|| CliError::Message("--login wants USER:PASSWORD".into()))?;
        options = options.login(user, password);
    }
    let client = match Client::connect(options).await {
        Ok(c) => c,
        Err(ConnectError::Login(e)) => {
            eprintln!("mantle: login failed: {e}");
            return Ok(EXIT_UNREACHABLE);
        }
        Err(e) => {
            eprintln!("mantle: {e}");
            return Ok(EXIT_UNREACHABLE);
        }
    };
    let answer = tokio::time::timeout(
        Duration::from_secs(timeout),
        client.call_box(&command, args),
    )
    .await
    .map_err(|_| CliError::Message(format!("no answer from {addr} within {timeout} s")))?;
    client.close();
    match answer {
        Ok(values) => {
            for (k, v) in values.iter() {
                println!("{}={}", printable(k), printable(v));
            }
            Ok(0)
        }
        Err(CallError::Remote(e)) => {
            eprintln!("{}: {}", e.code, e.description);
            Ok(crate::error::EXIT_FAILURE)
        }
        Err(CallError::ConnectionLost) => {
            eprintln!("mantle: the connection to {addr} was lost before the answer");
            Ok(EXIT_UNREACHABLE)
        }
        Err(e) => Err(CliError::Message(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_must_be_key_equals_value_with_a_valid_key() {
        let b = parse_args(&["a=1".into(), "b=x=y".into()], Some(7)).unwrap();
        assert_eq!(b.get("a"), Some(&b"1"[..]));
        assert_eq!(b.get("b"), Some(&b"x=y"[..]));
        assert_eq!(b.get("_handle"), Some(&b"7"[..]));
        for bad in ["novalue", "=1"] {
            let e = parse_args(&[bad.into()], None).unwrap_err();
            assert!(
                e.to_string().contains(bad.trim_start_matches('='))
                    || e.to_string().contains("1 to 255"),
                "{e}"
            );
        }
        let long = format!("{}=1", "k".repeat(256));
        assert!(
            parse_args(&[long], None)
                .unwrap_err()
                .to_string()
                .contains("1 to 255")
        );
    }
}
