//! One polling loop for every asynchronous thing a cloud does: starts at ~250 ms, backs off to a
//! few seconds, gives up at an overall deadline with an error that names what was still pending.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, ErrorKind, Result};

/// Polling intervals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollConfig {
    /// First wait.
    pub initial: Duration,
    /// Longest wait between checks.
    pub max: Duration,
}

impl Default for PollConfig {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(4),
        }
    }
}

impl PollConfig {
    /// The wait after check number `n` (0-based): initial * 1.5^n, capped at `max`.
    pub fn interval(&self, n: u32) -> Duration {
        let f = 1.5f64.powi(i32::try_from(n.min(30)).unwrap_or(30));
        self.initial.mul_f64(f).min(self.max)
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
    let mut n = 0;
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
        let wait = cfg.interval(n);
        let now = Instant::now();
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
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn intervals_start_small_and_cap() {
        let c = PollConfig::default();
        assert_eq!(c.interval(0), Duration::from_millis(250));
        assert!(c.interval(1) > c.interval(0));
        assert_eq!(c.interval(20), Duration::from_secs(4));
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
