//! When and how long to wait before retrying a request, after the official SDK's policy
//! (`e2b/retry.py`): a `Should-Retry` header decides when present; otherwise 429, 502, 503 and
//! 504 are retried; the wait is `Retry-After` when valid, else exponential backoff with jitter.

use std::time::Duration;

use http::{HeaderMap, StatusCode};

/// Retry policy of an [`E2bClient`](super::client::E2bClient).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retrying).
    pub max_retries: u32,
    /// The first backoff; doubled at each retry.
    pub initial_backoff: Duration,
    /// The longest wait, also the cap on `Retry-After`.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy { max_retries: 0, ..Self::default() }
    }

    /// Whether a response with this status and headers may be retried.
    pub fn retryable(status: StatusCode, headers: &HeaderMap) -> bool {
        match headers.get("should-retry").and_then(|v| v.to_str().ok()).map(|v| v.trim().to_ascii_lowercase()) {
            Some(v) if v == "true" => true,
            Some(v) if v == "false" => false,
            _ => matches!(status.as_u16(), 429 | 502 | 503 | 504),
        }
    }

    /// How long to wait before retry number `retry` (0-based), honouring `Retry-After`.
    pub fn delay(&self, retry: u32, headers: Option<&HeaderMap>) -> Duration {
        if let Some(after) = headers.and_then(retry_after) {
            return after.min(self.max_backoff);
        }
        let exponential = self.initial_backoff.saturating_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX));
        let capped = exponential.min(self.max_backoff);
        // Full jitter between half and all of the backoff: spreads clients that failed together.
        capped / 2 + capped.mul_f64(jitter() / 2.0)
    }
}

/// `Retry-After` as delta-seconds (the HTTP-date form is not used by E2B).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?.trim();
    let seconds: f64 = text.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

/// A number in [0, 1).
fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn should_retry_header_is_authoritative() {
        let none = HeaderMap::new();
        assert!(RetryPolicy::retryable(StatusCode::SERVICE_UNAVAILABLE, &none));
        assert!(RetryPolicy::retryable(StatusCode::TOO_MANY_REQUESTS, &none));
        assert!(!RetryPolicy::retryable(StatusCode::INTERNAL_SERVER_ERROR, &none));
        assert!(!RetryPolicy::retryable(StatusCode::BAD_GATEWAY, &headers(&[("should-retry", "false")])));
        assert!(RetryPolicy::retryable(StatusCode::INTERNAL_SERVER_ERROR, &headers(&[("should-retry", "TRUE")])));
    }

    #[test]
    fn retry_after_wins_and_is_capped() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(0, Some(&headers(&[("retry-after", "2")]))), Duration::from_secs(2));
        assert_eq!(policy.delay(0, Some(&headers(&[("retry-after", "3600")]))), policy.max_backoff);
        let bad = headers(&[("retry-after", "soon")]);
        assert!(policy.delay(0, Some(&bad)) <= policy.initial_backoff);
    }

    #[test]
    fn backoff_grows_and_stays_below_the_cap() {
        let policy = RetryPolicy::default();
        for retry in 0..40 {
            let d = policy.delay(retry, None);
            let full = policy.initial_backoff.saturating_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX));
            assert!(d >= full.min(policy.max_backoff) / 2 && d <= policy.max_backoff, "{retry}: {d:?}");
        }
    }
}
