//! What Hetzner checks and computes about names, labels and keys: label syntax, label selectors,
//! hostnames, CIDRs, the MD5 fingerprint of an SSH key, and its RFC 3339 timestamps.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use md5::{Digest as _, Md5};

/// Labels as the API carries them.
pub type Labels = BTreeMap<String, String>;

/// Checks a label against the documented syntax (keys: optional DNS-subdomain prefix and `/`,
/// name of at most 63 characters; values: at most 63 characters; both alphanumeric at the ends
/// with `-`, `_`, `.` inside; `hetzner.cloud/` reserved).
///
/// # Errors
/// The message the API would put in its `invalid_input` error.
pub fn validate_label(k: &str, v: &str) -> Result<(), String> {
    fn segment_ok(s: &str) -> bool {
        dns_label(s, |c| matches!(c, b'-' | b'_' | b'.'))
    }
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix {
        if p == "hetzner.cloud" || p.ends_with(".hetzner.cloud") {
            return Err(format!(
                "label key '{k}' uses the reserved prefix hetzner.cloud/"
            ));
        }
        if !valid_hostname(p) {
            return Err(format!("label key '{k}' has an invalid prefix"));
        }
    }
    if !segment_ok(name) {
        return Err(format!("label key '{k}' is invalid"));
    }
    if !v.is_empty() && !segment_ok(v) {
        return Err(format!("label value '{v}' of key '{k}' is invalid"));
    }
    Ok(())
}

/// 1 to 63 characters, alphanumeric at both ends, alphanumeric or `inner` in between.
fn dns_label(s: &str, inner: impl Fn(u8) -> bool) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter().all(|c| c.is_ascii_alphanumeric() || inner(*c))
}

/// An RFC 1123 hostname: dot-separated DNS labels, at most 253 characters.
pub fn valid_hostname(n: &str) -> bool {
    n.len() <= 253 && n.split('.').all(|l| dns_label(l, |c| c == b'-'))
}

/// An IPv4 or IPv6 network in CIDR notation.
pub fn valid_cidr(s: &str) -> bool {
    let Some((ip, len)) = s.split_once('/') else {
        return false;
    };
    let max = match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => 32,
        Ok(std::net::IpAddr::V6(_)) => 128,
        Err(_) => return false,
    };
    len.parse::<u8>().is_ok_and(|l| l <= max)
}

/// One term of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SelectorTerm {
    /// `k=v` or `k==v`
    Eq(String, String),
    /// `k!=v`
    Ne(String, String),
    /// `k`
    Exists(String),
    /// `!k`
    NotExists(String),
    /// `k in (a,b)`
    In(String, Vec<String>),
    /// `k notin (a,b)`
    NotIn(String, Vec<String>),
}

/// Parses a label selector (terms separated by commas outside parentheses; all must hold).
///
/// # Errors
/// Unbalanced parentheses, an empty term, or a missing or blank key.
pub fn parse_selector(s: &str) -> Result<Vec<SelectorTerm>, String> {
    let mut raw = vec![String::new()];
    let mut depth = 0i32;
    for c in s.chars() {
        depth += match c {
            '(' => 1,
            ')' => -1,
            _ => 0,
        };
        match raw.last_mut() {
            Some(_) if c == ',' && depth == 0 => raw.push(String::new()),
            Some(cur) => cur.push(c),
            None => {}
        }
    }
    if depth != 0 {
        return Err(format!("unbalanced parentheses in label selector '{s}'"));
    }
    let set = |rest: &str| -> Result<Vec<String>, String> {
        let inner = rest
            .trim()
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| format!("expected (v1,v2) in label selector '{s}'"))?;
        Ok(inner.split(',').map(|v| v.trim().to_owned()).collect())
    };
    let pair = |k: &str, v: &str| (k.trim().to_owned(), v.trim().to_owned());
    raw.iter()
        .map(|t| {
            let t = t.trim();
            let term = if t.is_empty() {
                return Err(format!("empty term in label selector '{s}'"));
            } else if let Some((k, rest)) = t.split_once(" notin ") {
                SelectorTerm::NotIn(k.trim().to_owned(), set(rest)?)
            } else if let Some((k, rest)) = t.split_once(" in ") {
                SelectorTerm::In(k.trim().to_owned(), set(rest)?)
            } else if let Some((k, v)) = t.split_once("!=") {
                let (k, v) = pair(k, v);
                SelectorTerm::Ne(k, v)
            } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                let (k, v) = pair(k, v);
                SelectorTerm::Eq(k, v)
            } else if let Some(k) = t.strip_prefix('!') {
                SelectorTerm::NotExists(k.trim().to_owned())
            } else {
                SelectorTerm::Exists(t.to_owned())
            };
            let (SelectorTerm::Eq(key, _)
            | SelectorTerm::Ne(key, _)
            | SelectorTerm::Exists(key)
            | SelectorTerm::NotExists(key)
            | SelectorTerm::In(key, _)
            | SelectorTerm::NotIn(key, _)) = &term;
            if key.is_empty() || key.contains(char::is_whitespace) {
                return Err(format!("invalid key in label selector '{s}'"));
            }
            Ok(term)
        })
        .collect()
}

/// Whether labels satisfy every term.
pub fn selector_matches(sel: &[SelectorTerm], labels: &Labels) -> bool {
    sel.iter().all(|t| match t {
        SelectorTerm::Eq(k, v) => labels.get(k) == Some(v),
        SelectorTerm::Ne(k, v) => labels.get(k) != Some(v),
        SelectorTerm::Exists(k) => labels.contains_key(k),
        SelectorTerm::NotExists(k) => !labels.contains_key(k),
        SelectorTerm::In(k, vs) => labels.get(k).is_some_and(|x| vs.contains(x)),
        SelectorTerm::NotIn(k, vs) => labels.get(k).is_none_or(|x| !vs.contains(x)),
    })
}

/// Whether `labels` match the selector text (a selector that does not parse matches nothing
/// extra: it is checked when stored).
pub(crate) fn matches_text(selector: &str, labels: &Labels) -> bool {
    selector_matches(&parse_selector(selector).unwrap_or_default(), labels)
}

/// The MD5 colon-hex fingerprint of an OpenSSH public key line (`type base64 [comment]`), as
/// Hetzner computes it; checks that the blob's embedded type matches the first field.
///
/// # Errors
/// The line is not an OpenSSH public key (the text the API's `invalid_input` carries).
pub fn md5_fingerprint(public_key: &str) -> Result<String, String> {
    // OpenSSH writes the padding; be as lenient as the API about it.
    const B64: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let mut parts = public_key.split_whitespace();
    let (Some(kind), Some(b64)) = (parts.next(), parts.next()) else {
        return Err("is not an OpenSSH public key".into());
    };
    let blob = B64
        .decode(b64)
        .map_err(|e| format!("is not an OpenSSH public key: {e}"))?;
    let embedded = blob.get(..4).and_then(|len| {
        // `get(..4)` gave exactly four bytes.
        let n = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        blob.get(4..4 + n)
    });
    if embedded != Some(kind.as_bytes()) {
        return Err("is not an OpenSSH public key: key type does not match the blob".into());
    }
    let digest = Md5::digest(&blob);
    Ok(digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":"))
}

/// Formats unix seconds as RFC 3339 UTC (`2016-01-30T23:55:00Z`).
pub fn rfc3339(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
