//! The Gemini path through the real worker binary against the contract fake
//! (`fom_testkit::gemini`): provenance, retries, failures that stay visible, batch splitting,
//! and the exact request we send (a committed golden file).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use fom_core::pdf::synth::{write_scan_pdf, ScanOptions};
use fom_core::photo::synth::{check_pattern, stored_pixels, write_jpeg, write_png};
use fom_testkit::gemini::{FakeGemini, FakeOptions};
use serde_json::Value;

fn scan(dir: &Path, name: &str, pages: u32) -> PathBuf {
    let path = dir.join(name);
    write_scan_pdf(
        &path,
        &ScanOptions {
            pages,
            dpi: 100,
            distinct: 2,
            seed: 7,
            quality: 70,
            compact: false,
        },
    )
    .unwrap();
    path
}

fn process(fake: &FakeGemini, files: &[&Path], extra: &[(&str, &str)]) -> (i32, Value) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fom-worker"));
    cmd.arg("process")
        .arg("--json")
        .args(files)
        .env("EXTRACTOR", "gemini")
        .env("GEMINI_API_KEY", fom_testkit::gemini::DEFAULT_KEY)
        .env("GEMINI_BASE_URL", fake.base_url())
        .env("GEMINI_BATCH_PAGES", "2")
        .env("GEMINI_RETRY_INITIAL_MS", "50")
        .env("GEMINI_RPM", "0")
        .env("RUST_LOG", "warn");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), json)
}

fn record_pages(json: &Value) -> Vec<u32> {
    let mut pages: Vec<u32> = json["records"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["provenance"]["pages"].as_array().unwrap().clone())
        .map(|p| p.as_u64().unwrap() as u32)
        .collect();
    pages.sort_unstable();
    pages
}

/// An operator's real deposit as a regression case: answers recorded once with the key, then
/// replayed without the network, giving the same records; a changed request is not answered
/// from a stale recording.
#[test]
fn recorded_answers_replay_without_the_network() {
    let fake = FakeGemini::start(FakeOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let answers = tempfile::tempdir().unwrap();
    let pdf = scan(dir.path(), "scan.pdf", 4);
    let record = format!("dir:{}", answers.path().display());
    let (code, recorded) = process(&fake, &[&pdf], &[("GEMINI_RECORD", &record)]);
    assert_eq!(code, 0, "{recorded}");
    let files = std::fs::read_dir(answers.path()).unwrap().count();
    assert_eq!(files, 2, "one answer per request");
    let sent = fake.request_count();
    // Replayed: nothing reaches the fake, the records are the same.
    let (code, replayed) = process(
        &fake,
        &[&pdf],
        &[
            ("GEMINI_REPLAY", &record),
            ("GEMINI_BASE_URL", "http://127.0.0.1:9"),
        ],
    );
    assert_eq!(code, 0, "{replayed}");
    assert_eq!(fake.request_count(), sent);
    let shape = |v: &Value| -> Vec<(Value, Value, Value)> {
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["payment_ref"].clone(),
                    r["amount"].clone(),
                    r["provenance"]["pages"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(shape(&replayed), shape(&recorded));
    // Another batch size is another request: not answered from the recording.
    let (_, changed) = process(
        &fake,
        &[&pdf],
        &[("GEMINI_REPLAY", &record), ("GEMINI_BATCH_PAGES", "1")],
    );
    let errors = changed["errors"].as_array().unwrap();
    assert!(!errors.is_empty(), "{changed}");
    assert!(
        errors[0]["reason"]
            .as_str()
            .unwrap()
            .contains("no recorded answer"),
        "{changed}"
    );
}

#[test]
fn a_scanned_pdf_becomes_records_with_their_pages() {
    let fake = FakeGemini::start(FakeOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pdf = scan(dir.path(), "scan.pdf", 6);
    let (code, json) = process(&fake, &[&pdf], &[]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(record_pages(&json), vec![1, 2, 3, 4, 5, 6]);
    let r = &json["records"][2];
    assert_eq!(r["provenance"]["file"], "scan.pdf");
    assert_eq!(r["provenance"]["kind"], "check");
    assert_eq!(r["amount"], "30.00");
    assert_eq!(r["payment_ref"], "1003");
    assert_eq!(json["errors"], Value::Array(vec![]));
    // Three requests of two pages; the token counts are kept for the job.
    assert_eq!(fake.request_count(), 3);
    let usage = &json["files"][0]["usage"];
    assert_eq!(usage["requests"], 3, "{json}");
    assert!(usage["total_tokens"].as_u64().unwrap() > 0);
}

#[test]
fn rate_limits_and_overload_are_retried_until_they_pass() {
    let fake = FakeGemini::start(FakeOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = scan(dir.path(), "429-once.pdf", 2);
    let b = scan(dir.path(), "503-twice.pdf", 2);
    let (code, json) = process(&fake, &[&a, &b], &[]);
    assert_eq!(code, 0, "{json}");
    // (The fake gives both files the same checks, so they also merge into two records.)
    assert_eq!(json["files"][0]["records"], 2, "{json}");
    assert_eq!(json["files"][1]["records"], 2, "{json}");
    assert_eq!(json["errors"], Value::Array(vec![]));
    assert_eq!(fake.requests_for("429-once.pdf"), 2);
    assert_eq!(fake.requests_for("503-twice.pdf"), 3);
}

#[test]
fn a_batch_that_always_fails_is_an_error_for_its_pages_and_the_rest_continues() {
    let fake = FakeGemini::start(FakeOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pdf = scan(dir.path(), "p3-500.pdf", 6);
    let (code, json) = process(&fake, &[&pdf], &[("GEMINI_MAX_ATTEMPTS", "3")]);
    assert_eq!(code, 0, "page errors are not a failed file: {json}");
    assert_eq!(record_pages(&json), vec![1, 2, 5, 6]);
    let errors = json["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{json}");
    assert_eq!(errors[0]["pages"], serde_json::json!([3, 4]));
    let reason = errors[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("3 attempts") && reason.contains("500"),
        "{reason}"
    );
    // Three attempts for the failing batch, one for each other batch.
    assert_eq!(fake.requests_for("p3-500.pdf"), 5);
}

#[test]
fn fenced_thoughtful_cut_off_blocked_and_malformed_answers() {
    let fake = FakeGemini::start(FakeOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let names = [
        "fenced.pdf",
        "thought.pdf",
        "maxtokens.pdf",
        "blocked.pdf",
        "malformed.pdf",
        "perday.pdf",
    ];
    let files: Vec<PathBuf> = names.iter().map(|n| scan(dir.path(), n, 2)).collect();
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let (_, json) = process(&fake, &refs, &[("GEMINI_MAX_ATTEMPTS", "2")]);
    // Records read per file (the fake gives every file the same checks, which then merge).
    let from = |file: &str| -> u64 {
        json["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["file"] == file)
            .map(|f| f["records"].as_u64().unwrap())
            .unwrap()
    };
    let error = |file: &str| -> String {
        json["errors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["file"] == file)
            .map(|e| e["reason"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert_eq!(from("fenced.pdf"), 2);
    assert_eq!(from("thought.pdf"), 2);
    // Cut off with two pages: retried as two one-page requests, which fit.
    assert_eq!(from("maxtokens.pdf"), 2);
    assert_eq!(fake.requests_for("maxtokens.pdf"), 3);
    assert_eq!(from("blocked.pdf"), 0);
    assert!(error("blocked.pdf").contains("blocked") && error("blocked.pdf").contains("SAFETY"));
    assert!(
        error("malformed.pdf").contains("malformed"),
        "{}",
        error("malformed.pdf")
    );
    assert_eq!(
        fake.requests_for("malformed.pdf"),
        2,
        "malformed answers are retried"
    );
    assert!(
        error("perday.pdf").contains("daily"),
        "{}",
        error("perday.pdf")
    );
    assert_eq!(
        fake.requests_for("perday.pdf"),
        1,
        "a daily quota is not retried"
    );
}

#[test]
fn batches_shrink_so_an_oversize_request_is_never_sent() {
    // The fake refuses bodies over 1 MB; our limit is the same, so batches must split.
    let fake = FakeGemini::start(FakeOptions {
        max_request_bytes: 1024 * 1024,
        ..FakeOptions::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pdf = scan(dir.path(), "scan.pdf", 6);
    let (code, json) = process(
        &fake,
        &[&pdf],
        &[("GEMINI_BATCH_PAGES", "6"), ("GEMINI_MAX_REQUEST_MB", "1")],
    );
    assert_eq!(code, 0);
    assert_eq!(record_pages(&json), vec![1, 2, 3, 4, 5, 6], "{json}");
    let sizes: Vec<usize> = fake
        .requests()
        .iter()
        .map(|r| r["contents"][0]["parts"].as_array().unwrap().len())
        .collect();
    assert!(
        sizes.len() > 1,
        "one request would have been too large: {sizes:?}"
    );
    for r in fake.requests() {
        assert!(
            !r.to_string().contains("too large"),
            "an oversize body reached the fake"
        );
    }
}

#[test]
fn the_request_matches_the_golden_file() {
    let fake = FakeGemini::start(FakeOptions::default()).unwrap();
    let pdf = fom_testkit::repo_root().join("examples/deposit.pdf");
    let (code, _) = process(&fake, &[&pdf], &[("GEMINI_BATCH_PAGES", "4")]);
    assert_eq!(code, 0);
    assert_golden(&fake.requests()[0], "gemini-request.json");
}

/// Photos given together (one upload's photos) are read together: one request holds every
/// photo under its own header, whatever `GEMINI_BATCH_PAGES` says, and the question names them
/// as one upload; each record goes back to its own photo.
#[test]
fn photos_of_one_upload_share_a_request_as_in_the_golden_file() {
    let fake = FakeGemini::start(FakeOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let names = ["check-1.png", "envelope-1.png", "check-2.png"];
    let paths: Vec<PathBuf> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let path = dir.path().join(name);
            image::RgbImage::from_pixel(64, 32, image::Rgb([200, 190 - 20 * i as u8, 180]))
                .save(&path)
                .unwrap();
            path
        })
        .collect();
    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let (code, json) = process(&fake, &refs, &[("GEMINI_BATCH_PAGES", "2")]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(
        fake.request_count(),
        1,
        "the photos went in separate requests"
    );
    let mut files: Vec<String> = json["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["provenance"]["pages"], serde_json::json!([1]));
            r["provenance"]["file"].as_str().unwrap().to_string()
        })
        .collect();
    files.sort();
    assert_eq!(files, ["check-1.png", "check-2.png", "envelope-1.png"]);
    assert_golden(&fake.requests()[0], "gemini-photos-request.json");
}

/// Compares a request with its committed golden file (`UPDATE_GOLDEN=1` rewrites it).
fn assert_golden(got: &Value, file: &str) {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(file);
    // Image sizes depend on the JPEG encoder's CPU path; the shape and text are what matter.
    let pretty = elide_sizes(&(serde_json::to_string_pretty(got).unwrap() + "\n"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &pretty).unwrap();
    }
    let want = std::fs::read_to_string(&golden)
        .expect("golden file missing: run with UPDATE_GOLDEN=1 once and review it");
    assert!(
        want == pretty,
        "the Gemini request changed ({file}); if intended, run with UPDATE_GOLDEN=1 and review \
         the diff"
    );
}

/// "<elided: 121832 base64 chars>" -> "<elided image>".
fn elide_sizes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("<elided: ") {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let end = tail.find('>').map_or(tail.len(), |e| e + 1);
        out.push_str("<elided image>");
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[test]
fn a_photo_goes_through_the_same_batches() {
    let fake = FakeGemini::start(FakeOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A PNG "phone photo" of a check: sniffed by content, sent as one JPEG page.
    let png = dir.path().join("check-photo.png");
    image::RgbImage::from_pixel(64, 32, image::Rgb([200, 190, 180]))
        .save(&png)
        .unwrap();
    let (code, json) = process(&fake, &[&png], &[]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["files"][0]["kind"], "png");
    assert_eq!(record_pages(&json), vec![1]);
    let req = &fake.requests()[0];
    assert_eq!(
        req["contents"][0]["parts"][1]["inline_data"]["mime_type"],
        "image/jpeg"
    );
}

/// Issue 14: a 6000 x 6600 photo (39.6 Mpx, under the 40 Mpx cap; 375 MB peak before photos
/// were decoded at reduced scale) goes through the Gemini path with `MEMORY_CRITICAL_MB=300`:
/// the fake receives it scaled to `RENDER_MAX_PIXELS` (6 Mpx) and upright, and the worker's
/// peak RSS stays far below the ceiling.
fn big_photo_through_gemini(path: &Path, expected: (u32, u32)) {
    let fake = FakeGemini::start(FakeOptions {
        keep_images: true,
        ..FakeOptions::default()
    })
    .unwrap();
    let (code, json) = process(
        &fake,
        &[path],
        &[("MEMORY_CRITICAL_MB", "300"), ("MEMORY_WARNING_MB", "250")],
    );
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["files"][0]["records"], 1, "{json}");
    assert_eq!(json["errors"], Value::Array(vec![]));
    let peak = json["peak_rss_mb"].as_f64().unwrap();
    eprintln!("{}: peak RSS {peak} MB", path.display());
    assert!(peak < PHOTO_PEAK_MB, "peak RSS {peak} MB");
    let images = fake.images();
    assert_eq!(images.len(), 1);
    let img = image::load_from_memory(&images[0]).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), expected);
    // Upright: the pattern's red band along the top, its blue band down the left.
    let (w, h) = img.dimensions();
    let top = img.get_pixel(w / 2, h / 30).0;
    assert!(top[0] > 150 && top[2] < 90, "top {top:?}");
    let left = img.get_pixel(w / 30, h / 2).0;
    assert!(left[2] > 150 && left[0] < 90, "left {left:?}");
}

/// Far below the 300 MB ceiling; these photos took 375 MB before (docs/PERFORMANCE.md,
/// "Photos").
const PHOTO_PEAK_MB: f64 = 100.0;

#[test]
fn a_6000_by_6600_png_reaches_the_model_scaled_in_little_memory() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("big-check.png");
    write_png(&png, 6000, 6600, check_pattern(6000, 6600)).unwrap();
    big_photo_through_gemini(&png, (2335, 2569));
}

#[test]
fn a_6000_by_6600_jpeg_reaches_the_model_scaled_upright_in_little_memory() {
    // Stored 6000 x 6600 with EXIF orientation 6 (turn 90 degrees clockwise to view), so the
    // upright photo is 6600 x 6000.
    let dir = tempfile::tempdir().unwrap();
    let jpeg = dir.path().join("big-check.jpg");
    let pixel = stored_pixels(6, 6000, 6600, check_pattern(6600, 6000));
    write_jpeg(&jpeg, 6000, 6600, 85, Some(6), pixel).unwrap();
    big_photo_through_gemini(&jpeg, (2569, 2335));
}

/// Ten 12 Mpx phone photos read together (one request): each is decoded and encoded on its own,
/// so the worker holds the request's JPEGs, not ten decoded photos; the peak stays under the
/// single big photo's bound (docs/PERFORMANCE.md, "Photos read together").
#[test]
fn ten_phone_photos_read_together_stay_in_little_memory() {
    let fake = FakeGemini::start(FakeOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let photos = fom_testkit::fixtures::write_phone_photos(dir.path(), 10).unwrap();
    let refs: Vec<&Path> = photos.iter().map(PathBuf::as_path).collect();
    let (code, json) = process(
        &fake,
        &refs,
        &[("MEMORY_CRITICAL_MB", "300"), ("MEMORY_WARNING_MB", "250")],
    );
    assert_eq!(code, 0, "{json}");
    assert_eq!(fake.request_count(), 1);
    assert_eq!(json["records"].as_array().unwrap().len(), 10, "{json}");
    let peak = json["peak_rss_mb"].as_f64().unwrap();
    eprintln!("ten photos together: peak RSS {peak} MB");
    assert!(peak < PHOTO_PEAK_MB, "peak RSS {peak} MB");
}
