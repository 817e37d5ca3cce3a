//! The closed loop: each worker starts its next call as soon as its last one answered, like a
//! mini-program (or an internal service) waiting on each call. Only calls that start and end
//! inside the measured window count, and CPU is read at the window's edges.

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::{
    procfs::{CpuClock, Target},
    stats::Latencies,
};

/// What one run measured.
#[derive(Debug)]
pub struct Run {
    /// Successful calls in the window.
    pub ok: usize,
    /// Failed calls in the window.
    pub errors: usize,
    /// How long the window really was.
    pub window: Duration,
    /// Latencies of the successful calls.
    pub latencies: Latencies,
    /// CPU used in the window by each target, in the order given.
    pub cpu: Vec<Duration>,
}

impl Run {
    /// Successful calls per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.window.as_secs_f64()
    }

    /// CPU milliseconds per successful call of the `index`th target.
    pub fn cpu_ms_per_call(&self, index: usize) -> f64 {
        self.cpu.get(index).map_or(0.0, |cpu| {
            cpu.as_secs_f64() * 1000.0 / self.ok.max(1) as f64
        })
    }
}

#[derive(Default)]
struct Tally {
    ok: usize,
    errors: usize,
    latencies: Vec<Duration>,
}

/// Runs `workers` loops of `call(worker, iteration)` (true when the call succeeded) for
/// `warmup` and then `window`, reading CPU of `targets` at the window's edges.
pub async fn closed_loop<F, Fut>(
    workers: usize,
    warmup: Duration,
    window: Duration,
    targets: &[Target],
    call: F,
) -> Run
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let clock = CpuClock::new();
    let start = Instant::now() + warmup;
    let end = start + window;
    let tally = Arc::new(Mutex::new(Tally::default()));
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let call = call.clone();
            let tally = tally.clone();
            tokio::spawn(async move {
                let mut mine = Tally::default();
                for iteration in 0.. {
                    let began = Instant::now();
                    if began >= end {
                        break;
                    }
                    let ok = call(worker, iteration).await;
                    let finished = Instant::now();
                    if began >= start && finished <= end {
                        if ok {
                            mine.ok += 1;
                            mine.latencies.push(finished - began);
                        } else {
                            mine.errors += 1;
                        }
                    }
                }
                let mut total = tally.lock().unwrap_or_else(|p| p.into_inner());
                total.ok += mine.ok;
                total.errors += mine.errors;
                total.latencies.append(&mut mine.latencies);
            })
        })
        .collect();
    // Benchmark pacing, not synchronisation: the window is a span of wall-clock time.
    tokio::time::sleep_until(start.into()).await;
    let before: Vec<Duration> = targets.iter().map(|target| clock.used(*target)).collect();
    let measured_from = Instant::now();
    tokio::time::sleep_until(end.into()).await;
    let after: Vec<Duration> = targets.iter().map(|target| clock.used(*target)).collect();
    let measured = measured_from.elapsed();
    for task in tasks {
        let _ = task.await;
    }
    let tally = std::mem::take(&mut *tally.lock().unwrap_or_else(|p| p.into_inner()));
    Run {
        ok: tally.ok,
        errors: tally.errors,
        window: measured,
        latencies: Latencies::new(tally.latencies),
        cpu: before
            .iter()
            .zip(&after)
            .map(|(before, after)| after.saturating_sub(*before))
            .collect(),
    }
}
