//! Test-only behaviours (`WORKER_TEST_HOOKS=1`), chosen by the job's file name, so the
//! supervisor and the queue can be tested against real crashes, leaks and long jobs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Runs before the pipeline, on the job's blocking thread.
pub fn before_pipeline(name: &str, stopping: &AtomicBool) {
    let arg = |prefix: &str| -> Option<u64> {
        name.strip_prefix(prefix)?.split('-').next()?.parse().ok()
    };
    if name.starts_with("crash-") {
        std::process::abort();
    }
    if let Some(mb) = arg("bloat-") {
        // A leak the budget must catch, growing a MB at a time as a document's memory does
        // (so the memory watchdog sees it grow); every page touched so it counts in RSS.
        for _ in 0..mb {
            std::mem::forget(vec![1u8; 1024 * 1024]);
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    if let Some(mb) = arg("spike-") {
        // Touch every page, then give it all back: RSS falls again, the peak stays.
        let block = vec![1u8; usize::try_from(mb).unwrap_or(0) * 1024 * 1024];
        std::hint::black_box(&block);
        drop(block);
    }
    if let Some(secs) = arg("spin-") {
        let until = std::time::Instant::now() + Duration::from_secs(secs);
        let mut x = 0u64;
        while std::time::Instant::now() < until {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
    }
    if let Some(secs) = arg("slow-") {
        let until = std::time::Instant::now() + Duration::from_secs(secs);
        while std::time::Instant::now() < until && !stopping.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
