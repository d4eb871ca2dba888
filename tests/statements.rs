//! Year-end statements against the QuickBooks fake seeded with a company's two years of gifts:
//! the real fom-web and fom-worker, a run started through the API, its files downloaded and
//! read back (CSV parsed, PDFs through pdfium, the ZIP opened), every donor's total checked
//! against what the fake holds, and the job's peak memory measured at two sizes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::str::FromStr;
use std::time::{Duration, Instant};

use fom_e2e::{connect, fake, qbo_options, seed_gifts as seed, signed_in, Api};
use fom_testkit::qbo::FakeQbo;
use fom_testkit::web::Stack;
use rust_decimal::Decimal;
use serde_json::{json, Value};

/// Each donor's 2026 gifts as the fake holds them: count, total, largest.
fn expected(fake: &FakeQbo, bank: &str) -> BTreeMap<String, (usize, Decimal, Decimal)> {
    let mut out: BTreeMap<String, (usize, Decimal, Decimal)> = BTreeMap::new();
    for r in fake.sales_receipts() {
        let date = r["TxnDate"].as_str().unwrap();
        let customer = r["CustomerRef"]["value"].as_str().unwrap();
        let total = Decimal::from_str(&r["TotalAmt"].to_string()).unwrap();
        if !date.starts_with("2026-") || customer == bank || total <= Decimal::ZERO {
            continue;
        }
        let e = out.entry(customer.to_string()).or_default();
        e.0 += 1;
        e.1 += total;
        e.2 = e.2.max(total);
    }
    out
}

async fn bytes(api: &Api<'_>, path: &str) -> Vec<u8> {
    let res = api
        .c
        .get(api.stack.url(path))
        .header("Cookie", &api.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200, "{path}");
    res.bytes().await.unwrap().to_vec()
}

/// Starts a run and waits for it; returns the job record and its result.
async fn run(api: &Api<'_>, only_large: bool) -> (Value, Value) {
    let (status, started) = api
        .post(
            "/api/statements",
            Some(json!({"from": "2026-01-01", "to": "2026-12-31", "only_large": only_large})),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    let job_id = started["job_id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut stages = BTreeSet::new();
    loop {
        let (_, v) = api.get("/api/statements").await;
        let latest = &v["latest"];
        assert_eq!(latest["job"]["id"], job_id.as_str());
        if let Some(stage) = latest["job"]["stage"].as_str() {
            stages.insert(stage.to_string());
        }
        match latest["job"]["state"].as_str().unwrap() {
            // The job's peak is noted just after it is marked done.
            "done" if latest["job"]["peak_rss_mb"].as_f64().unwrap_or(0.0) > 0.0 => {
                return (latest["job"].clone(), latest["result"].clone())
            }
            "failed" | "dead" => panic!("the run failed: {latest}"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "the run did not end: {latest}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn settings(api: &Api<'_>) {
    let (status, v) = api
        .send(
            reqwest::Method::PUT,
            "/api/statements/settings",
            Some(json!({
                "organization": "Friends of Music",
                "address": "1200 Oak Avenue\nPhiladelphia, PA 19103",
                "ein": "12-3456789",
                "signer_name": "Ruth Alvarez",
                "signer_title": "Treasurer",
                "opening": "Thank you for your support of {organization} in {year}.",
                "acknowledgement": "{organization} is a 501(c)(3) organization (EIN {ein}). No goods or services were provided in exchange for these contributions.",
                "closing": "With thanks.",
            })),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["problems"], json!([]), "{v}");
}

fn pdf_text(bytes: &[u8]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.pdf");
    std::fs::write(&path, bytes).unwrap();
    fom_core::pdf::PdfPages::open(
        &path,
        &fom_core::pdf::PdfConfig {
            images: false,
            max_pages: 100_000,
            ..Default::default()
        },
    )
    .unwrap()
    .map(|p| p.unwrap().text)
    .collect()
}

fn dollars(d: Decimal) -> String {
    fom_core::statements::letter::dollars(d)
}

/// 1,000 customers and 5,000 receipts over two years: the 2026 statements list exactly that
/// year's gifts per donor with exact totals (every donor checked against the fake), leave out
/// the customer marked as not a donor, list the donors without an address, and with the
/// $250 filter write letters only to donors with such a gift. The PDFs extract back to the
/// names and totals (a sample), the ZIP holds a PDF per donor, and the job's peak memory stays
/// under 100 MB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_years_statements_list_each_donors_gifts_with_exact_totals() {
    let fake = fake(0);
    let (bank, _) = seed(&fake, 1000, 5000);
    let stack = Stack::start(qbo_options("statements", &fake).with_worker());
    let api = signed_in(&stack).await;
    // Refused until the letters' settings are complete.
    let (status, v) = api.post("/api/statements", Some(json!({}))).await;
    assert_eq!(status, 422, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("EIN"),
        "{v}"
    );
    connect(&api).await;
    settings(&api).await;
    let (status, v) = api
        .post(
            "/api/statements/excluded",
            Some(json!({"customer_id": bank, "name": "First National Bank"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    // The bank gave "gifts" too (interest deposits entered as receipts): left out.
    let expected = expected(&fake, &bank);

    let (job, result) = run(&api, false).await;
    let written = &result["written"];
    assert_eq!(written["letters"], expected.len(), "{result}");
    let gifts: usize = expected.values().map(|e| e.0).sum();
    assert_eq!(written["gifts"], gifts);
    let total: Decimal = expected.values().map(|e| e.1).sum();
    assert_eq!(written["total"], total.to_string());
    assert!(
        result["excluded_receipts"].as_u64().unwrap() > 0,
        "{result}"
    );

    // The CSV: one row per donor, each total exactly the fake's.
    let job_id = job["id"].as_str().unwrap();
    let csv = bytes(&api, &format!("/api/statements/{job_id}/files/csv")).await;
    let mut reader = csv::Reader::from_reader(csv.as_slice());
    let mut rows = 0;
    let mut no_address = BTreeSet::new();
    for row in reader.records() {
        let row = row.unwrap();
        let (count, total, largest) = expected
            .get(&row[1])
            .unwrap_or_else(|| panic!("{} is not a 2026 donor", &row[1]));
        assert_eq!(row[2].parse::<usize>().unwrap(), *count, "{row:?}");
        assert_eq!(Decimal::from_str(&row[3]).unwrap(), *total, "{row:?}");
        assert_eq!(Decimal::from_str(&row[4]).unwrap(), *largest, "{row:?}");
        if &row[6] == "yes" {
            no_address.insert(row[1].to_string());
        }
        rows += 1;
    }
    assert_eq!(rows, expected.len());
    // Donors without an address are listed, not skipped.
    let listed: BTreeSet<String> = written["no_address"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["customer_id"].as_str().unwrap().to_string())
        .collect();
    assert!(!listed.is_empty());
    assert_eq!(listed, no_address);
    for id in &listed {
        let c = fake.customer(id).unwrap();
        assert!(c.get("BillAddr").is_none(), "{c}");
    }

    // The print file: every letter, in name order; a sample read back through pdfium.
    let pdf = bytes(&api, &format!("/api/statements/{job_id}/files/pdf")).await;
    let pages = pdf_text(&pdf);
    assert_eq!(pages.len(), written["pages"].as_u64().unwrap() as usize);
    let all = pages.join("\n");
    for (id, (count, total, _)) in expected.iter().step_by(97) {
        let c = fake.customer(id).unwrap();
        let name = c["DisplayName"].as_str().unwrap();
        assert!(all.contains(&format!("Dear {name},")), "{name}");
        let line = format!(
            "Total of {count} gift{}",
            if *count == 1 { "" } else { "s" }
        );
        assert!(all.contains(&line), "{name}: {line}");
        assert!(
            all.contains(&dollars(*total)),
            "{name}: {}",
            dollars(*total)
        );
    }
    assert!(!all.contains("First National Bank"));

    // The ZIP: a PDF per donor, named after the donor.
    let zip = bytes(&api, &format!("/api/statements/{job_id}/files/zip")).await;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    assert_eq!(archive.len(), expected.len());
    let (id, (_, total, _)) = expected.iter().nth(10).unwrap();
    let name = fake.customer(id).unwrap()["DisplayName"]
        .as_str()
        .unwrap()
        .to_string();
    let mut one = Vec::new();
    archive
        .by_name(&format!("{name}.pdf"))
        .unwrap()
        .read_to_end(&mut one)
        .unwrap();
    // Words as read, lines joined (a phrase may wrap).
    let text = pdf_text(&one)
        .join("\n")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(text.contains(&format!("Dear {name},")));
    assert!(text.contains(&dollars(*total)));
    assert!(text.contains("No goods or services"));

    let peak = job["peak_rss_mb"].as_f64().unwrap();
    println!(
        "statements: {} letters, {} pages, {} gifts; PDF {} KB, ZIP {} KB; job peak {peak:.1} MB",
        written["letters"],
        written["pages"],
        written["gifts"],
        pdf.len() / 1024,
        archive_len(&result, "zip") / 1024,
    );
    assert!(peak > 0.0 && peak <= 100.0, "peak {peak} MB");

    // Only donors with a single gift of $250 or more.
    let (_, large) = run(&api, true).await;
    let with_large = expected
        .values()
        .filter(|e| e.2 >= Decimal::new(250, 0))
        .count();
    assert!(with_large > 0 && with_large < expected.len());
    assert_eq!(large["written"]["letters"], with_large, "{large}");
    assert_eq!(
        large["written"]["below_large"],
        expected.len() - with_large,
        "{large}"
    );
    drop(stack);
}

fn archive_len(result: &Value, kind: &str) -> u64 {
    result["files"][kind]["size"].as_u64().unwrap_or(0)
}

/// The job's peak memory does not grow with the number of donors: 100 and 1,000 donors' runs
/// peak within a few MB of each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_memory_is_flat_from_100_to_1000_donors() {
    let mut peaks = Vec::new();
    for (customers, receipts) in [(100, 500), (1000, 5000)] {
        let fake = fake(0);
        seed(&fake, customers, receipts);
        let logs =
            fom_testkit::repo_root().join(format!("target/test-output/statements-{customers}"));
        std::fs::create_dir_all(&logs).unwrap();
        let stack = Stack::start(
            qbo_options("statements-mem", &fake)
                .with_worker()
                .logs_in(&logs),
        );
        let api = signed_in(&stack).await;
        connect(&api).await;
        settings(&api).await;
        let (job, result) = run(&api, false).await;
        let peak = job["peak_rss_mb"].as_f64().unwrap();
        let took =
            job["finished_at"].as_i64().unwrap_or(0) - job["started_at"].as_i64().unwrap_or(0);
        println!(
            "statements memory: {} letters ({} pages, {} gifts) in {:.1} s -> job peak {peak:.1} MB; \
             PDF {} KB, ZIP {} KB",
            result["written"]["letters"],
            result["written"]["pages"],
            result["written"]["gifts"],
            took as f64 / 1000.0,
            archive_len(&result, "pdf") / 1024,
            archive_len(&result, "zip") / 1024,
        );
        peaks.push(peak);
        drop(stack);
    }
    assert!(peaks.iter().all(|p| *p <= 100.0), "{peaks:?}");
    assert!(
        peaks[1] - peaks[0] <= 8.0,
        "the peak grew with the donors: {peaks:?}"
    );
}

/// On a small Redis holding the uploads (the Key-Value Store's mini plan is 25 MB), a run
/// whose ZIP does not fit still ends done: the print PDF and the CSV are offered, and the
/// ZIP's absence is explained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zip_too_big_for_the_redis_store_leaves_the_pdf_and_csv() {
    let redis = fom_testkit::web::PrivateRedis::start(&[
        "--maxmemory",
        "8mb",
        "--maxmemory-policy",
        "noeviction",
    ]);
    let fake = fake(0);
    seed(&fake, 400, 1200);
    let stack = Stack::start(
        qbo_options("statements-small", &fake)
            .redis(&redis.url)
            .env("UPLOAD_STORE", "redis")
            .with_worker(),
    );
    let api = signed_in(&stack).await;
    connect(&api).await;
    settings(&api).await;
    let (job, result) = run(&api, false).await;
    assert_eq!(job["state"], "done");
    assert!(
        result["files"]["pdf"]["size"].as_u64().unwrap() > 0,
        "{result}"
    );
    assert!(
        result["files"]["csv"]["size"].as_u64().unwrap() > 0,
        "{result}"
    );
    assert!(result["files"]["zip"].is_null(), "{result}");
    let why = result["zip_error"].as_str().unwrap();
    assert!(
        why.contains("could not be kept in the upload store"),
        "{why}"
    );
    assert!(why.contains("S3"), "{why}");
    let job_id = job["id"].as_str().unwrap();
    let pdf = bytes(&api, &format!("/api/statements/{job_id}/files/pdf")).await;
    assert!(pdf.starts_with(b"%PDF-"));
    let res = api
        .c
        .get(stack.url(&format!("/api/statements/{job_id}/files/zip")))
        .header("Cookie", &api.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
    drop(stack);
}
