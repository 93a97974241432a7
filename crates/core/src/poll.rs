//! One polling loop for every asynchronous thing a cloud does. The wait between checks is 5%
//! of the time waited so far, at least 1 s and at most 60 s: a finished operation is seen within
//! max(1 s, 5% of its duration), and one wait never asks more than once a second (Hetzner's
//! bucket refills at 1/s), so a create stays far inside every provider's rate budget.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, ErrorKind, Result};

/// Polling intervals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollConfig {
    /// Shortest wait between checks (also the first).
    pub initial: Duration,
    /// Longest wait between checks.
    pub max: Duration,
}

impl Default for PollConfig {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

impl PollConfig {
    /// The wait after a check made `waited` after the wait began: 5% of `waited`, within
    /// `initial..=max`. The lag after the operation finishes is at most that wait.
    pub fn interval(&self, waited: Duration) -> Duration {
        (waited / 20).clamp(self.initial, self.max.max(self.initial))
    }
}

/// Calls `check` until it returns `Some`, sleeping between checks; retryable errors of a check
/// are logged and polling goes on; any other error ends the wait. Past `deadline` the error is
/// `ErrorKind::Timeout` naming `what`.
pub async fn wait_until<T, F, Fut>(
    cfg: &PollConfig,
    deadline: Instant,
    what: &str,
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let started = Instant::now();
    loop {
        // The error of this check, if it failed: at the deadline that is what went wrong, not
        // the wait itself.
        let failing = match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => None,
            Err(e) if e.is_retryable() => {
                tracing::debug!(what, error = %e, "poll failed, polling on");
                Some(e)
            }
            Err(e) => return Err(e),
        };
        let now = Instant::now();
        let wait = cfg.interval(now.saturating_duration_since(started));
        if now >= deadline {
            let waited = now.saturating_duration_since(started).as_secs();
            return Err(match failing {
                Some(e) => e.context(format!(
                    "gave up waiting for {what} after {waited}s, the last check failed"
                )),
                None => Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "timed out after {waited}s waiting for {what} (raise --timeout if the provider is slow)"
                    ),
                ),
            });
        }
        tokio::time::sleep(wait.min(deadline.saturating_duration_since(now))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn intervals_are_five_percent_of_the_wait_within_one_second_and_a_minute() {
        let c = PollConfig::default();
        let s = Duration::from_secs;
        assert_eq!(c.interval(Duration::ZERO), s(1));
        assert_eq!(c.interval(s(19)), s(1));
        assert_eq!(c.interval(s(40)), s(2));
        assert_eq!(c.interval(s(600)), s(30));
        assert_eq!(c.interval(s(7200)), s(60));
    }

    /// An operation that finishes at `d` is seen by a check at most max(1 s, 5% of d) later,
    /// with at most one check a second (issue 12: waits without lag, inside the rate budget).
    #[tokio::test(start_paused = true)]
    async fn a_finished_operation_is_seen_within_five_percent_or_a_second() {
        for secs in [0.3, 3.0, 30.0, 95.0, 400.0] {
            let done_after = Duration::from_secs_f64(secs);
            let start = Instant::now();
            let checks = AtomicU32::new(0);
            wait_until(
                &PollConfig::default(),
                start + Duration::from_secs(3600),
                "x",
                || async {
                    checks.fetch_add(1, Ordering::SeqCst);
                    Ok((start.elapsed() >= done_after).then_some(()))
                },
            )
            .await
            .unwrap();
            let lag = start.elapsed() - done_after;
            let allowed = Duration::from_secs(1).max(done_after / 20);
            assert!(
                lag <= allowed,
                "{secs}s: seen {lag:?} late, allowed {allowed:?}"
            );
            let n = checks.load(Ordering::SeqCst);
            assert!(
                f64::from(n) <= secs.max(1.0) + 1.0,
                "{secs}s: {n} checks, more than one a second"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn returns_when_ready_and_times_out_naming_what() {
        let c = PollConfig::default();
        let n = AtomicU32::new(0);
        let v = wait_until(
            &c,
            Instant::now() + Duration::from_secs(60),
            "x",
            || async { Ok((n.fetch_add(1, Ordering::SeqCst) >= 3).then_some(9)) },
        )
        .await
        .unwrap();
        assert_eq!(v, 9);
        assert_eq!(n.load(Ordering::SeqCst), 4);

        let e = wait_until(
            &c,
            Instant::now() + Duration::from_secs(10),
            "action 7 (create_server)",
            || async { Ok(None::<()>) },
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::Timeout);
        assert!(e.to_string().contains("action 7 (create_server)"), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_do_not_end_the_wait_but_others_do() {
        let c = PollConfig::default();
        let n = AtomicU32::new(0);
        let v = wait_until(
            &c,
            Instant::now() + Duration::from_secs(60),
            "x",
            || async {
                if n.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err(Error::new(ErrorKind::Transient, "503"))
                } else {
                    Ok(Some(1))
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(v, 1);
        let e = wait_until(
            &c,
            Instant::now() + Duration::from_secs(60),
            "x",
            || async { Err::<Option<()>, _>(Error::new(ErrorKind::ActionFailed, "boom")) },
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::ActionFailed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_failing_until_the_deadline_is_reported_as_itself() {
        // See: issue 13, finding 11 (DeleteSecurityGroup's 500 reported as a timeout).
        let e = wait_until(
            &PollConfig::default(),
            Instant::now() + Duration::from_secs(10),
            "firewall 7 to be released",
            || async {
                Err::<Option<()>, _>(Error::new(
                    ErrorKind::Transient,
                    "DeleteSecurityGroup: HTTP 500 InternalError",
                ))
            },
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::Transient);
        let msg = e.to_string();
        assert!(msg.contains("DeleteSecurityGroup: HTTP 500"), "{msg}");
        assert!(!msg.starts_with("timed out"), "{msg}");
    }
}
