//! Best-of-N timing. The machines are shared and noisy: the best run is the figure (what the code
//! costs when nothing else interferes) and the median shows how noisy the runs were.

use std::time::{Duration, Instant};

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    pub runs: usize,
    pub best_ms: f64,
    pub median_ms: f64,
}

impl Timing {
    pub fn from_samples(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Self {
            runs: samples.len(),
            best_ms: samples.first().map_or(f64::NAN, |d| ms(*d)),
            median_ms: samples.get(samples.len() / 2).map_or(f64::NAN, |d| ms(*d)),
        }
    }
}

/// Runs `prepare` then `measured` `runs` times, timing only `measured`, including the drop of
/// what it returns (freeing a parsed batch is part of handling it).
pub fn best_of<P, T, F, R>(runs: usize, mut prepare: P, mut measured: F) -> anyhow::Result<Timing>
where
    P: FnMut() -> anyhow::Result<T>,
    F: FnMut(T) -> anyhow::Result<R>,
{
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let input = prepare()?;
        let started = Instant::now();
        let output = measured(input)?;
        drop(output);
        samples.push(started.elapsed());
    }
    Ok(Timing::from_samples(samples))
}

/// CPU time (user + system) this process has used so far, all threads included.
pub fn process_cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}
