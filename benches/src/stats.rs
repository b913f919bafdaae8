//! Latency histograms (HdrHistogram, nanoseconds, 3 significant digits) and the summaries the
//! report prints.

use hdrhistogram::Histogram;
use std::time::Duration;

/// Latencies of one kind of operation.
pub struct Recorder {
    histogram: Histogram<u64>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        // 1 ns to 10 minutes: anything slower saturates at the top rather than failing.
        let histogram = Histogram::new_with_bounds(1, 600_000_000_000, 3)
            .expect("static histogram bounds are valid");
        Recorder { histogram }
    }

    pub fn record(&mut self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.histogram.saturating_record(nanos.max(1));
    }

    pub fn merge(&mut self, other: &Recorder) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.histogram.add(&other.histogram);
    }

    pub fn summary(&self) -> Latency {
        let h = &self.histogram;
        let ms = |nanos: u64| nanos as f64 / 1e6;
        Latency {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1e6,
        }
    }
}

/// A latency distribution in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

/// How much moved in how long.
#[derive(Debug, Clone, Copy, Default)]
pub struct Throughput {
    /// Logical bytes: the batches, not the padding.
    pub bytes: u64,
    pub batches: u64,
    pub records: u64,
    pub secs: f64,
}

impl Throughput {
    /// Adds a run that came after this one: the times add up.
    pub fn then(&mut self, other: &Throughput) {
        self.bytes += other.bytes;
        self.batches += other.batches;
        self.records += other.records;
        self.secs += other.secs;
    }
    /// Adds a run that went on at the same time: the time is the longer one.
    pub fn alongside(&mut self, other: &Throughput) {
        self.bytes += other.bytes;
        self.batches += other.batches;
        self.records += other.records;
        self.secs = self.secs.max(other.secs);
    }

    /// Megabytes (10^6 bytes) per second.
    pub fn mb_per_sec(&self) -> f64 {
        self.per_sec(self.bytes) / 1e6
    }
    pub fn records_per_sec(&self) -> f64 {
        self.per_sec(self.records)
    }
    fn per_sec(&self, n: u64) -> f64 {
        if self.secs > 0.0 {
            n as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// When a case stops: after `bytes` or after `secs`, whichever comes first.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub bytes: u64,
    pub secs: f64,
}

impl Limits {
    /// One of `n` slices of these limits.
    pub fn slice(&self, n: usize) -> Limits {
        let n = n.max(1);
        Limits {
            bytes: self.bytes / n as u64,
            secs: self.secs / n as f64,
        }
    }

    pub fn deadline(&self, start: std::time::Instant) -> std::time::Instant {
        start + Duration::from_secs_f64(self.secs)
    }
}
