//! Client-side retries: a call that fails with a transient status (the service or its database
//! is down, the connection broke) is sent again, unchanged, so commands with an idempotency key
//! reuse the same key. The counts show how often each status was seen.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tonic::{Code, Status};

/// How long one call is retried before the flow gives up on it.
pub const RETRY_FOR: Duration = Duration::from_secs(120);

/// Transient: the service or a server behind it is down or restarting. A database outage shows
/// as INTERNAL (rz-platform maps every sqlx error to it), a killed service as UNAVAILABLE or a
/// transport error (UNKNOWN), a call cut off by the kill as CANCELLED.
pub fn is_transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::Unknown
            | Code::Internal
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Aborted
            | Code::ResourceExhausted
    )
}

/// Retries per status code.
#[derive(Debug, Default)]
pub struct RetryStats {
    by_code: Mutex<BTreeMap<String, u64>>,
}

impl RetryStats {
    pub fn record(&self, code: Code) {
        if let Ok(mut m) = self.by_code.lock() {
            *m.entry(format!("{code:?}")).or_default() += 1;
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.by_code.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }
}

/// Calls `f` until it succeeds, fails with a non-transient status, or [`RETRY_FOR`] has passed.
pub async fn retry<T, F, Fut>(stats: &RetryStats, f: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    retry_for(stats, RETRY_FOR, f).await
}

/// As [`retry`], for `window`.
pub async fn retry_for<T, F, Fut>(
    stats: &RetryStats,
    window: Duration,
    mut f: F,
) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let deadline = Instant::now() + window;
    let mut delay = Duration::from_millis(100);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(s) if is_transient(s.code()) && Instant::now() < deadline => {
                stats.record(s.code());
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(s) => return Err(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn transient_failures_are_retried_and_counted() {
        let stats = RetryStats::default();
        let mut calls = 0;
        let out = retry(&stats, || {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(Status::unavailable("down"))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(out.ok(), Some(3));
        assert_eq!(stats.snapshot().get("Unavailable"), Some(&2));
    }

    #[tokio::test]
    async fn a_rule_violation_is_not_retried() {
        let stats = RetryStats::default();
        let mut calls = 0;
        let out: Result<(), Status> = retry(&stats, || {
            calls += 1;
            async { Err(Status::failed_precondition("rule")) }
        })
        .await;
        assert_eq!(out.map_err(|s| s.code()), Err(Code::FailedPrecondition));
        assert_eq!(calls, 1);
        assert_eq!(stats.total(), 0);
    }
}
