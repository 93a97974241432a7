//! The one rule for an API base URL, from whatever source it comes (`--endpoint`,
//! `BOOTSTRAP_<PROVIDER>_ENDPOINT`, `AWS_ENDPOINT_URL*`, the provider CLIs' config files).
//!
//! It is decided with the parser the HTTP client itself uses (`url`, re-exported by reqwest), on
//! the host that client will connect to, so the check and the connection cannot disagree:
//! `http://vm:4099\@127.0.0.1/` is refused before anything reads the host, because the WHATWG
//! parser turns `\` into `/` for http(s) and would connect to `vm:4099`. Plain http is allowed
//! only to a literal loopback address or `localhost`, where a token cannot leave the machine;
//! userinfo, backslashes, control characters, queries and fragments are refused everywhere.

use std::fmt;
use std::net::IpAddr;

use reqwest::Url;
use url::Host;

/// Why an endpoint was refused; the text names the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// Not an absolute `http(s)://host...` URL.
    #[error("give a full URL such as https://api.example.com/v1")]
    NotAUrl,
    /// A scheme other than http and https.
    #[error("use https:// (http:// only for 127.0.0.1, [::1] or localhost)")]
    Scheme,
    /// Characters the parser would drop or reinterpret (backslash, space, control characters).
    #[error("it contains a backslash, space or control character; write the URL plainly")]
    Characters,
    /// `user:password@` in the URL: a token must travel in its header only.
    #[error("it carries user info (`...@`); remove it, the token is sent in a header")]
    UserInfo,
    /// A query or fragment, which request paths would be appended after.
    #[error("give the base URL without ?query or #fragment")]
    QueryOrFragment,
    /// Plain http to a host that is not this machine.
    #[error(
        "plain http would send the API token unencrypted to {0}; use https:// (http:// is only for 127.0.0.1, [::1] or localhost)"
    )]
    PlainHttp(String),
}

/// A checked endpoint, as the client will use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint(Url);

impl Endpoint {
    /// The URL as the HTTP client sees it.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Whether requests go out in plain http (to this machine only).
    pub fn is_plain_http(&self) -> bool {
        self.0.scheme() == "http"
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// Checks `raw` under the one rule (see the module docs); the result is the parsed URL.
pub fn check(raw: &str) -> Result<Endpoint, EndpointError> {
    // The parser silently strips tabs and newlines and reads `\` as `/`: refuse them first, so
    // that what was checked is what was written.
    if raw
        .chars()
        .any(|c| c == '\\' || c.is_whitespace() || c.is_control())
    {
        return Err(EndpointError::Characters);
    }
    let url = Url::parse(raw).map_err(|_| EndpointError::NotAUrl)?;
    let plain = match url.scheme() {
        "https" => false,
        "http" => true,
        _ => return Err(EndpointError::Scheme),
    };
    // An empty user info (`http://@host`) is still a trick: the authority must have no `@`.
    let authority = raw
        .split_once("://")
        .map_or("", |(_, rest)| rest)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    if !url.username().is_empty() || url.password().is_some() || authority.contains('@') {
        return Err(EndpointError::UserInfo);
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(EndpointError::QueryOrFragment);
    }
    let host = url.host().ok_or(EndpointError::NotAUrl)?;
    if plain && !is_loopback(&host) {
        return Err(EndpointError::PlainHttp(host.to_string()));
    }
    Ok(Endpoint(url))
}

/// A literal loopback address or exactly `localhost` (which resolvers keep on this machine).
fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(a) => IpAddr::V4(*a).is_loopback(),
        Host::Ipv6(a) => IpAddr::V6(*a).is_loopback(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_this_machine() {
        for ok in [
            "http://127.0.0.1:8080/v1",
            "http://localhost:4010",
            "http://LOCALHOST:4010/v2",
            "http://[::1]:9000/v1",
            "http://127.0.0.2",
            "https://api.hetzner.cloud/v1",
            "https://10.0.0.1:8443",
        ] {
            assert!(check(ok).is_ok(), "{ok}");
        }
        for (no, want) in [
            ("http://api.hetzner.cloud/v1", "PlainHttp"),
            ("http://10.0.0.1:80", "PlainHttp"),
            ("http://localhost.evil.example/v1", "PlainHttp"),
            ("http://127.0.0.1.nip.io/", "PlainHttp"),
            ("http://localhost%2eevil.example/", "PlainHttp"),
            ("http://[::ffff:10.0.0.1]/", "PlainHttp"),
            ("http://user@example.com", "UserInfo"),
            ("http://vm:4099@127.0.0.1/", "UserInfo"),
            ("https://@api.example.com/", "UserInfo"),
            ("https://u:p@api.example.com/", "UserInfo"),
            ("http://vm:4099\\@127.0.0.1/", "Characters"),
            ("http://evil.example\\@127.0.0.1/", "Characters"),
            ("http://127.0.0.1\n.evil.example/", "Characters"),
            ("http://127.0.0.1\t/", "Characters"),
            (" http://127.0.0.1/", "Characters"),
            ("ftp://127.0.0.1/", "Scheme"),
            ("file:///etc/passwd", "Scheme"),
            ("api.hetzner.cloud/v1", "NotAUrl"),
            ("", "NotAUrl"),
            ("https://api.example.com/v1?x=1", "QueryOrFragment"),
            ("https://api.example.com/v1#x", "QueryOrFragment"),
        ] {
            let e = check(no).expect_err(no);
            assert!(format!("{e:?}").starts_with(want), "{no}: {e:?}");
        }
    }

    #[test]
    fn the_checked_host_is_the_one_the_client_connects_to() {
        // Decimal and short forms are read by the same parser as the client's: the client would
        // connect to 127.0.0.1, so the check sees 127.0.0.1.
        let e = check("http://2130706433:8080/v1").unwrap();
        assert_eq!(e.as_str(), "http://127.0.0.1:8080/v1");
        assert!(e.is_plain_http());
        let e = reqwest::Url::parse(check("https://API.Example.com/v1/").unwrap().as_str());
        assert_eq!(e.unwrap().host_str(), Some("api.example.com"));
    }
}
