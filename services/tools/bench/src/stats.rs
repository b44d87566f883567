//! Percentiles and rates over measured samples.

use std::time::Duration;

/// Nearest-rank percentile (`p` in 0..=100) of `samples` in milliseconds; `None` when empty.
pub fn percentile_ms(samples: &mut [Duration], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let n = samples.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    let i = rank.clamp(1, n) - 1;
    Some(samples[i].as_secs_f64() * 1000.0)
}

/// `count` per second over `elapsed`; `None` for an empty interval.
pub fn rate(count: u64, elapsed: Duration) -> Option<f64> {
    let s = elapsed.as_secs_f64();
    (s > 0.0).then(|| count as f64 / s)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut v: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&mut v, 50.0).unwrap(), 50.0);
        assert_eq!(percentile_ms(&mut v, 99.0).unwrap(), 99.0);
        assert_eq!(percentile_ms(&mut v, 100.0).unwrap(), 100.0);
        assert_eq!(percentile_ms(&mut [], 50.0), None);
        let mut one = [Duration::from_millis(7)];
        assert_eq!(percentile_ms(&mut one, 1.0).unwrap(), 7.0);
    }

    #[test]
    fn rates() {
        assert_eq!(rate(10, Duration::from_secs(2)), Some(5.0));
        assert_eq!(rate(10, Duration::ZERO), None);
    }
}
