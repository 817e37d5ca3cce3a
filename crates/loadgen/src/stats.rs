//! Latency percentiles and the printed figures.

use std::time::Duration;

/// Latencies of one run, sorted.
#[derive(Debug, Default)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    /// Sorts what the workers measured.
    pub fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Self(samples)
    }

    /// How many samples.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `q` quantile (0.5 for the median), or zero without samples.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((self.0.len() as f64 * q).ceil() as usize).clamp(1, self.0.len());
        self.0[rank - 1]
    }
}

/// Milliseconds with two decimals.
pub fn ms(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_the_nearest_rank() {
        let samples = Latencies::new((1..=1000).rev().map(Duration::from_millis).collect());
        assert_eq!(samples.quantile(0.5), Duration::from_millis(500));
        assert_eq!(samples.quantile(0.99), Duration::from_millis(990));
        assert_eq!(samples.quantile(0.999), Duration::from_millis(999));
        assert_eq!(samples.quantile(1.0), Duration::from_millis(1000));
        assert_eq!(Latencies::default().quantile(0.5), Duration::ZERO);
    }
}
