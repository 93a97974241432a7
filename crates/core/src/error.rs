//! Errors of the core and of every adapter, sorted into kinds that drive retries and exit codes.
//!
//! Adapters convert their own errors into [`Error`] with the right [`ErrorKind`]; the retry loop
//! and the flows decide by kind, never by message text.

use std::time::Duration;

/// Result with the core error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, as far as retrying and the user's fix are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The resource does not exist (HTTP 404).
    NotFound,
    /// A resource with that name or key already exists (Hetzner `uniqueness_error`, HTTP 409).
    Conflict,
    /// The resource is still used by another one (e.g. a firewall still applied to a server).
    InUse,
    /// Too many requests; `retry_after` is what the API told us to wait, if it said.
    RateLimited {
        /// The wait the API asked for (Retry-After / RateLimit-Reset).
        retry_after: Option<Duration>,
    },
    /// A server-side or network failure that may pass (5xx, connection reset).
    Transient,
    /// A request or a wait took too long.
    Timeout,
    /// The token is missing, wrong, or lacks permission (HTTP 401/403).
    Unauthorized,
    /// The API refused the input (HTTP 400/422) or the user's input is invalid.
    InvalidInput,
    /// An asynchronous action finished with an error.
    ActionFailed,
    /// A wait the API asked for (or the work left) does not fit in what is left of
    /// `--timeout`; not retried, since the run gave up on purpose.
    DeadlineExceeded,
    /// The run was interrupted (Ctrl-C).
    Cancelled,
    /// The provider has no such capability (e.g. native backups).
    Unsupported,
    /// Anything else.
    Other,
}

/// An error with its kind, a message for people, and the step it happened in.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// A new error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying cause.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Prefixes the message with what was being done, keeping the kind.
    #[must_use]
    pub fn context(mut self, what: impl std::fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    /// The kind, for decisions.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// True for errors that may pass when the same request is sent again later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::RateLimited { .. } | ErrorKind::Transient | ErrorKind::Timeout
        )
    }

    /// True when the resource is gone.
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
}

/// An error and its causes, `outer: inner: innermost`, each said once: SDK and HTTP client
/// errors say little at the top ("error sending request", "service error").
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}
