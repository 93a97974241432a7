//! A string that must never be printed: API tokens and passphrases travel in it so that
//! `Debug`, `Display` and error messages show `***` instead of the value.

use std::fmt;

/// A secret value (token, passphrase); formatting it prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value, for the one place that must send it (an auth header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A token refused as read: it holds a control character other than one trailing newline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{from} holds a control character (a line break or similar) at position {at}; set it to the token alone, on one line"
)]
pub struct TokenError {
    /// Where the token came from: a variable's name, or a config file's key and path.
    pub from: String,
    /// The 1-based character position (never the value).
    pub at: usize,
}

/// A token as read from `from` (a variable, or a key of a provider CLI's config file), written
/// once for every provider: one trailing newline (`\n` or `\r\n`, as env files and
/// `kubectl create secret --from-file` leave) is dropped, any other control character is
/// refused, since an HTTP header cannot carry it and a retry will not fix it.
pub fn token(from: &str, raw: &str) -> Result<Secret, TokenError> {
    let t = raw
        .strip_suffix("\r\n")
        .or_else(|| raw.strip_suffix('\n'))
        .unwrap_or(raw);
    match t.chars().position(char::is_control) {
        Some(i) => Err(TokenError {
            from: from.to_owned(),
            at: i + 1,
        }),
        None => Ok(Secret::new(t)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_trailing_newline_is_dropped_other_controls_are_refused() {
        assert_eq!(token("T", "abc\n").unwrap().expose(), "abc");
        assert_eq!(token("T", "abc\r\n").unwrap().expose(), "abc");
        assert_eq!(token("T", "abc").unwrap().expose(), "abc");
        for bad in ["abc\n\n", "a\nbc", "abc\r", "a\tb", "ab\0", "\u{7f}x"] {
            let e = token("HCLOUD_TOKEN", bad).unwrap_err();
            let msg = e.to_string();
            assert!(msg.starts_with("HCLOUD_TOKEN holds a control"), "{msg}");
            assert!(!msg.contains("abc"), "never the value: {msg}");
        }
    }

    #[test]
    fn never_formats_the_value() {
        let s = Secret::new("hunter2-token");
        assert_eq!(format!("{s}"), "***");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2-token");
    }
}
