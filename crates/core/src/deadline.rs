//! The run's deadline (`--timeout`), checked arithmetic included, and carried through a flow as a
//! task-local (as Go's `context.Context` carries one), so that every wait under it — the retry
//! loop's backoff, a `Retry-After`, the HTTP client's rate-limit gate — can give up early with a
//! message instead of sleeping past it. Providers need not pass it along: they cannot sleep.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, ErrorKind};

/// When the waits of a run must be over, and the `--timeout` that set it (for messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    at: Instant,
    timeout: Duration,
}

tokio::task_local! {
    static CURRENT: Deadline;
}

/// `now + d`, saturating at a far future (about 30 years) instead of panicking.
pub fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(30 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

impl Deadline {
    /// `timeout` from now.
    pub fn after(timeout: Duration) -> Self {
        Self {
            at: after(timeout),
            timeout,
        }
    }

    /// The instant.
    pub fn at(&self) -> Instant {
        self.at
    }

    /// The `--timeout` it came from.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Time left (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// The deadline of the flow this task runs in, if any.
    pub fn current() -> Option<Self> {
        CURRENT.try_with(|d| *d).ok()
    }

    /// Runs `f` under this deadline; an enclosing one that ends earlier stays in force.
    pub async fn scope<F: Future>(self, f: F) -> F::Output {
        let d = match Self::current() {
            Some(outer) if outer.at <= self.at => outer,
            _ => self,
        };
        CURRENT.scope(d, f).await
    }

    /// Whether sleeping `wait` from now would end past the deadline.
    pub fn would_pass(&self, wait: Duration) -> bool {
        wait > self.remaining()
    }

    /// The error for a wait the API asked for (`asked`, e.g. "Retry-After") that does not fit
    /// in what is left: giving up now says more than a timeout later.
    pub fn too_long(&self, what: &str, wait: Duration, asked: &str) -> Error {
        Error::new(
            ErrorKind::DeadlineExceeded,
            format!(
                "{what}: the API asked to wait {} ({asked}), longer than the {} left of --timeout {}; giving up now (try again later, or raise --timeout)",
                human(wait),
                human(self.remaining()),
                human(self.timeout),
            ),
        )
    }
}

/// A duration for people: whole seconds, minutes, hours, days (`1d 3h 46m 40s`).
pub fn human(d: Duration) -> String {
    let mut s = d.as_secs();
    if s == 0 {
        return format!("{}ms", d.as_millis());
    }
    let mut out = Vec::new();
    for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if s >= n {
            out.push(format!("{}{unit}", s / n));
            s %= n;
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_panicking() {
        // See: issue 13, finding 3.
        let far = after(Duration::MAX);
        assert!(far > Instant::now() + Duration::from_secs(365 * 24 * 3600));
        let d = Deadline::after(Duration::from_secs(u64::MAX));
        assert!(d.remaining() > Duration::from_secs(3600));
        assert_eq!(human(Duration::from_secs(100_000)), "1d 3h 46m 40s");
        assert_eq!(human(Duration::from_millis(20)), "20ms");
    }

    #[tokio::test]
    async fn the_earlier_deadline_wins_and_scopes_end() {
        assert!(Deadline::current().is_none());
        let outer = Deadline::after(Duration::from_secs(5));
        outer
            .scope(async {
                let inner = Deadline::after(Duration::from_secs(60));
                inner
                    .scope(async {
                        assert_eq!(Deadline::current(), Some(outer));
                        let d = Deadline::current().unwrap();
                        assert!(d.would_pass(Duration::from_secs(10)));
                        assert!(!d.would_pass(Duration::from_secs(1)));
                        let e = d.too_long("list servers", Duration::from_secs(10), "Retry-After");
                        assert_eq!(e.kind(), &ErrorKind::DeadlineExceeded);
                        let msg = e.to_string();
                        assert!(
                            msg.contains("wait 10s (Retry-After)") && msg.contains("--timeout 5s"),
                            "{msg}"
                        );
                    })
                    .await;
            })
            .await;
        assert!(Deadline::current().is_none());
    }
}
