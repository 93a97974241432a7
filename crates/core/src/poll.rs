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
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) if e.is_retryable() => {
                tracing::debug!(what, error = %e, "poll failed, polling on")
            }
            Err(e) => return Err(e),
        }
        let wait = cfg.interval(n);
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "timed out after {}s waiting for {what} (raise --timeout if the provider is slow)",
                    (now - started).as_secs()
                ),
            ));
        }
        tokio::time::sleep(wait.min(deadline - now)).await;
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
}
