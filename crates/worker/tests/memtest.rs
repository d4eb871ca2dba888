//! Memory ceilings of the page pipeline, measured on the real binary (peak RSS is stable enough
//! to assert; wall-clock time is not asserted anywhere).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::Value;

fn memtest(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_fom-worker"))
        .arg("memtest")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn peak(v: &Value) -> f64 {
    v["peak_rss_mb"].as_f64().unwrap()
}

/// Not passing pages through (the expensive path) on a 100-page 300 DPI scan stays under the
/// ceiling, and the peak does not grow with the page count: with the scan's full-page JPEGs
/// decoded at a reduced scale (the default), and rendered by pdfium (`--pdfium-only`).
#[test]
fn rendering_peak_is_bounded_and_flat() {
    for (extra, counted) in [(None, "decoded"), (Some("--pdfium-only"), "rendered")] {
        let args = |pages: &'static str| {
            let mut a = vec!["--pages", pages, "--force-render"];
            a.extend(extra);
            a
        };
        let small = memtest(&args("5"));
        let large = memtest(&args("100"));
        assert_eq!(large[counted], 100, "{large}");
        assert_eq!(large["failed"], 0);
        assert!(large["peak_excludes_generation"].as_bool().unwrap());
        assert!(peak(&large) <= 80.0, "{counted}: peak {} MB", peak(&large));
        assert!(
            (peak(&large) - peak(&small)).abs() <= 10.0,
            "{counted}: 5 pages {} MB vs 100 pages {} MB",
            peak(&small),
            peak(&large)
        );
    }
}

#[test]
fn pass_through_peak_is_bounded_and_flat() {
    let small = memtest(&["--pages", "5"]);
    let large = memtest(&["--pages", "120"]);
    assert_eq!(large["passed_through"], 120);
    assert!(peak(&large) <= 80.0, "peak {} MB", peak(&large));
    assert!((peak(&large) - peak(&small)).abs() <= 10.0);
}

/// Without reopening, pdfium's caches grow with every page (~1.5 MB per distinct image here);
/// this guards the measurement itself: if it cannot see growth, the ceilings above prove nothing.
#[test]
fn the_measurement_detects_cache_growth() {
    let out = Command::new(env!("CARGO_BIN_EXE_fom-worker"))
        .env("PDF_REOPEN_EVERY", "10000")
        .args([
            "memtest",
            "--pages",
            "60",
            "--force-render",
            "--pdfium-only",
            "--json",
        ])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let flat = memtest(&["--pages", "60", "--force-render", "--pdfium-only"]);
    assert!(
        peak(&v) > peak(&flat) + 20.0,
        "no reopen {} MB vs reopen {} MB",
        peak(&v),
        peak(&flat)
    );
}
