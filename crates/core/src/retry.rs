//! One retry policy for every provider: jittered exponential backoff on rate limits, 5xx and
//! timeouts, honouring the wait the API asked for (Retry-After / RateLimit-Reset).

use std::future::Future;
use std::time::Duration;

use rand::Rng;

use crate::deadline::Deadline;
use crate::error::{Error, ErrorKind, Result};

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    /// Retries after the first attempt (0 = no retry).
    pub max_retries: u32,
    /// First backoff.
    pub base: Duration,
    /// Largest backoff, and largest honoured server-requested wait.
    pub cap: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: 5,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(60),
        }
    }
}

impl RetryConfig {
    /// Backoff before retry number `attempt` (0-based): full jitter over `base * 2^attempt`,
    /// capped, and never below half of it so that waits still grow.
    pub fn backoff(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.min(20)))
            .min(self.cap);
        let half = exp / 2;
        let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(rng.gen_range(0..=jitter_ms))
    }

    /// The wait before the next attempt after an error of `kind`: the API's own wait when it
    /// gave one (capped), else the backoff.
    pub fn wait_for(&self, kind: &ErrorKind, attempt: u32, rng: &mut impl Rng) -> Duration {
        match kind {
            ErrorKind::RateLimited {
                retry_after: Some(d),
            } => (*d).min(self.cap),
            _ => self.backoff(attempt, rng),
        }
    }
}

/// Runs `op` until it succeeds, fails with a non-retryable error, or retries run out.
/// `what` names the call in logs. Under a [`Deadline`] no wait passes it: see [`pause`].
pub async fn retry<T, F, Fut>(cfg: &RetryConfig, what: &str, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_retryable() && attempt < cfg.max_retries => {
                let wait = cfg.wait_for(e.kind(), attempt, &mut rand::thread_rng());
                tracing::debug!(call = what, attempt, ?wait, error = %e, "retrying");
                pause(what, e, wait).await?;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Sleeps `wait` before retrying after `e`, unless the run's [`Deadline`] would pass first: a
/// wait the API asked for (`Retry-After`, a rate-limit reset) longer than what is left gives up
/// at once and says so; any other error is returned as itself, never as a later timeout.
pub(crate) async fn pause(what: &str, e: Error, wait: Duration) -> Result<()> {
    let Some(d) = Deadline::current() else {
        tokio::time::sleep(wait).await;
        return Ok(());
    };
    // The API's own wait, uncapped: it will not serve earlier than that.
    let asked = match e.kind() {
        ErrorKind::RateLimited {
            retry_after: Some(a),
        } => Some(*a),
        _ => None,
    };
    match asked {
        Some(a) if d.would_pass(a) => Err(d.too_long(what, a, "Retry-After or RateLimit-Reset")),
        _ if d.would_pass(wait) => Err(e),
        _ => {
            tokio::time::sleep(wait).await;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let cfg = RetryConfig {
            max_retries: 10,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
        };
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 0..8 {
            let exp = (Duration::from_millis(100) * 2u32.pow(attempt)).min(cfg.cap);
            for _ in 0..50 {
                let d = cfg.backoff(attempt, &mut rng);
                assert!(
                    d >= exp / 2 && d <= exp,
                    "attempt {attempt}: {d:?} vs {exp:?}"
                );
            }
        }
        // jitter: not all the same
        let a: Vec<_> = (0..10).map(|_| cfg.backoff(3, &mut rng)).collect();
        assert!(a.iter().any(|d| *d != a[0]));
    }

    #[test]
    fn server_requested_wait_is_honoured_but_capped() {
        let cfg = RetryConfig::default();
        let mut rng = StdRng::seed_from_u64(1);
        let k = ErrorKind::RateLimited {
            retry_after: Some(Duration::from_secs(7)),
        };
        assert_eq!(cfg.wait_for(&k, 0, &mut rng), Duration::from_secs(7));
        let k = ErrorKind::RateLimited {
            retry_after: Some(Duration::from_secs(3600)),
        };
        assert_eq!(cfg.wait_for(&k, 0, &mut rng), cfg.cap);
    }

    #[tokio::test(start_paused = true)]
    async fn waits_past_the_deadline_give_up_at_once() {
        // See: issue 13, finding 6.
        let cfg = RetryConfig::default();
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let e = Deadline::after(Duration::from_secs(5))
            .scope(retry(&cfg, "list servers", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(Error::new(
                    ErrorKind::RateLimited {
                        retry_after: Some(Duration::from_secs(100_000)),
                    },
                    "429",
                ))
            }))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::DeadlineExceeded);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(started.elapsed() < Duration::from_secs(1));
        let msg = e.to_string();
        assert!(
            msg.contains("1d 3h 46m 40s") && msg.contains("--timeout 5s"),
            "{msg}"
        );
        // A backoff that does not fit reports the API's error itself.
        let e = Deadline::after(Duration::from_millis(100))
            .scope(retry(&cfg, "t", || async {
                Err::<(), _>(Error::new(ErrorKind::Transient, "HTTP 503"))
            }))
            .await
            .unwrap_err();
        assert_eq!(
            (e.kind(), e.to_string().as_str()),
            (&ErrorKind::Transient, "HTTP 503")
        );
    }

    #[tokio::test]
    async fn retries_transient_then_succeeds_and_stops_on_permanent() {
        let cfg = RetryConfig {
            max_retries: 3,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(5),
        };
        let calls = AtomicU32::new(0);
        let v = retry(&cfg, "t", || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(Error::new(ErrorKind::Transient, "503"))
            } else {
                Ok(5)
            }
        })
        .await
        .unwrap();
        assert_eq!((v, calls.load(Ordering::SeqCst)), (5, 3));

        calls.store(0, Ordering::SeqCst);
        let e = retry(&cfg, "t", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(Error::new(ErrorKind::Unauthorized, "401"))
        })
        .await
        .unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::Unauthorized);
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        calls.store(0, Ordering::SeqCst);
        let e = retry(&cfg, "t", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(Error::new(ErrorKind::Transient, "502"))
        })
        .await
        .unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::Transient);
        assert_eq!(calls.load(Ordering::SeqCst), 4, "1 try + 3 retries");
    }
}
