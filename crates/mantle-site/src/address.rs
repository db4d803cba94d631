//! Login addresses: `localpart@domain`, compared case-insensitively.

use crate::{Result, SiteError};

/// Checks a domain; returns it lowercased.
pub(crate) fn valid_domain(domain: &str) -> Option<String> {
    let d = domain.to_ascii_lowercase();
    let ok = !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    ok.then_some(d)
}

/// A login address, normalised to lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    /// Before the `@`.
    pub localpart: String,
    /// After the `@`.
    pub domain: String,
}

impl Address {
    /// Parses `localpart@domain`; a bare `localpart` takes `default_domain`.
    ///
    /// ```
    /// use mantle_site::Address;
    /// let a = Address::parse("Alice@Example.COM", "localhost").unwrap();
    /// assert_eq!(a.to_string(), "alice@example.com");
    /// assert_eq!(Address::parse("bob", "example.com").unwrap().to_string(), "bob@example.com");
    /// assert!(Address::parse("a@b@c", "x").is_err());
    /// ```
    pub fn parse(text: &str, default_domain: &str) -> Result<Self> {
        let bad = || SiteError::InvalidAddress(text.to_string());
        let (local, domain) = match text.split_once('@') {
            Some((l, d)) => (l, d),
            None => (text, default_domain),
        };
        let local = local.to_ascii_lowercase();
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c));
        if !local_ok {
            return Err(bad());
        }
        let domain = valid_domain(domain).ok_or_else(bad)?;
        Ok(Self {
            localpart: local,
            domain,
        })
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.localpart, self.domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // Logins come from the network (login, signup, message addresses):
        // any text parses to an address or to InvalidAddress, never a panic,
        // and what parses is normalised and parses to itself again.
        #[test]
        fn parsing_is_total_and_normalising(text in ".{0,80}") {
            if let Ok(a) = Address::parse(&text, "example.com") {
                let shown = a.to_string();
                prop_assert_eq!(shown.to_ascii_lowercase(), shown.clone());
                prop_assert_eq!(Address::parse(&shown, "other.org").unwrap(), a);
            }
        }
    }
}
