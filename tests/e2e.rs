//! End-to-end: what `make demo` runs, through the real release-or-debug binaries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn demo_files_produce_records_and_exit_zero() {
    let worker = fom_testkit::bin_path("fom-worker", "fom-worker");
    let examples = fom_testkit::repo_root().join("examples");
    let out = Command::new(worker)
        .arg("process")
        .arg("--json")
        .arg(examples.join("deposit.pdf"))
        .arg(examples.join("online-gifts.csv"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let total: rust_decimal_free::Cents = json["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| rust_decimal_free::cents(r["amount"].as_str().unwrap()))
        .sum();
    // The report's own total ($2,810.00), the slip's new $40.00 (its two repeats merge away),
    // and the CSV's $1,150.00.
    assert_eq!(total, 400_000);
}

/// Exact sums without floats, so the test cannot pass by rounding luck.
mod rust_decimal_free {
    pub type Cents = i64;
    pub fn cents(s: &str) -> Cents {
        let (int, frac) = s.split_once('.').unwrap_or((s, "0"));
        let frac = format!("{frac:0<2}");
        int.parse::<i64>().unwrap() * 100 + frac[..2].parse::<i64>().unwrap()
    }
}

mod web_and_worker {
    use std::time::Duration;

    use fom_testkit::web::{client, Options, Stack};
    use futures_util::StreamExt;
    use reqwest::multipart::{Form, Part};
    use serde_json::Value;

    fn example(name: &str) -> Part {
        let bytes = std::fs::read(fom_testkit::repo_root().join("examples").join(name)).unwrap();
        Part::bytes(bytes).file_name(name.to_string())
    }

    /// Follows the deposit's event stream to its final `done` event; returns every event name.
    async fn follow(stack: &Stack, cookie: &str, id: &str) -> (Vec<String>, Value) {
        let res = client()
            .get(stack.url(&format!("/api/deposits/{id}/events")))
            .header("Cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        let mut stream = res.bytes_stream();
        let mut buf = String::new();
        let mut names = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, stream.next()).await {
            buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            while let Some(end) = buf.find("\n\n") {
                let frame: String = buf.drain(..end + 2).collect();
                let name = frame.lines().find_map(|l| l.strip_prefix("event: "));
                let data = frame.lines().find_map(|l| l.strip_prefix("data: "));
                if let (Some(name), Some(data)) = (name, data) {
                    names.push(name.to_string());
                    if name == "done" {
                        return (names, serde_json::from_str(data).unwrap());
                    }
                }
            }
        }
        panic!("the event stream never reached done: {names:?}");
    }

    async fn deposit(stack: &Stack, cookie: &str, id: &str) -> Value {
        client()
            .get(stack.url(&format!("/api/deposits/{id}")))
            .header("Cookie", cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    fn total_cents(records: &Value) -> i64 {
        records
            .as_array()
            .unwrap()
            .iter()
            .map(|r| super::rust_decimal_free::cents(r["amount"].as_str().unwrap()))
            .sum()
    }

    #[tokio::test]
    async fn upload_progress_records_edits_and_later_merges() {
        let stack = Stack::start(Options::new("e2e").with_worker());
        let c = client();

        // Without a session nothing is accepted.
        let res = c
            .post(stack.url("/api/deposits"))
            .header("Origin", stack.origin())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 401);

        let cookie = stack.login(&c).await;
        let res = c
            .post(stack.url("/api/deposits"))
            .header("Cookie", &cookie)
            .header("Origin", stack.origin())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 201);
        let id = res.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let form = Form::new()
            .part("files", example("deposit.pdf"))
            .part("files", example("online-gifts.csv"));
        let res = c
            .post(stack.url(&format!("/api/deposits/{id}/files")))
            .header("Cookie", &cookie)
            .header("Origin", stack.origin())
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 202);
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["accepted"], 2, "{v}");

        let (events, last) = follow(&stack, &cookie, &id).await;
        assert_eq!(events.last().map(String::as_str), Some("done"));
        let files = last["files"].as_array().unwrap();
        assert_eq!(files.len(), 2);
        for f in files {
            assert_eq!(f["state"], "done", "{f}");
            assert_eq!(f["stage"], "done", "{f}");
        }
        let pdf = files.iter().find(|f| f["name"] == "deposit.pdf").unwrap();
        assert_eq!(
            (pdf["page"].as_u64(), pdf["pages"].as_u64()),
            (Some(3), Some(3))
        );

        // The same records and total as the offline run of the same files.
        let d = deposit(&stack, &cookie, &id).await;
        assert_eq!(d["processing"], false);
        assert_eq!(d["errors"], Value::Array(vec![]), "{}", d["errors"]);
        assert_eq!(total_cents(&d["records"]), 400_000);
        let count = d["records"].as_array().unwrap().len();
        assert!(count >= 10, "{count} records");
        for r in d["records"].as_array().unwrap() {
            assert!(!r["provenance"]["file"].as_str().unwrap().is_empty());
        }

        // An edit is validated, saved and survives a reload.
        let rec = d["records"][0]["id"].as_str().unwrap().to_string();
        let path = format!("/api/deposits/{id}/records/{rec}");
        let res = c
            .patch(stack.url(&path))
            .header("Cookie", &cookie)
            .header("Origin", stack.origin())
            .json(&serde_json::json!({"amount": "twelve", "payment_date": "02/30/2026"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 422);
        let err: Value = res.json().await.unwrap();
        assert_eq!(
            err["error"]["details"].as_array().unwrap().len(),
            2,
            "{err}"
        );
        let old = super::rust_decimal_free::cents(d["records"][0]["amount"].as_str().unwrap());
        let res = c
            .patch(stack.url(&path))
            .header("Cookie", &cookie)
            .header("Origin", stack.origin())
            .json(&serde_json::json!({"amount": "$1,234.50", "memo": "checked by hand"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let d = deposit(&stack, &cookie, &id).await;
        assert_eq!(d["records"][0]["amount"], "1234.50");
        assert_eq!(d["records"][0]["memo"], "checked by hand");
        assert_eq!(total_cents(&d["records"]), 400_000 - old + 123_450);

        // Delete one record.
        let last_id = d["records"][count - 1]["id"].as_str().unwrap().to_string();
        let last_from_csv = d["records"][count - 1]["provenance"]["file"] == "online-gifts.csv";
        let res = c
            .delete(stack.url(&format!("/api/deposits/{id}/records/{last_id}")))
            .header("Cookie", &cookie)
            .header("Origin", stack.origin())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 204);
        let d = deposit(&stack, &cookie, &id).await;
        assert_eq!(d["records"].as_array().unwrap().len(), count - 1);

        // Uploading the CSV again merges into the deposit instead of adding its gifts twice.
        let res = c
            .post(stack.url(&format!("/api/deposits/{id}/files")))
            .header("Cookie", &cookie)
            .header("Origin", stack.origin())
            .multipart(Form::new().part("files", example("online-gifts.csv")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 202);
        let (_, last) = follow(&stack, &cookie, &id).await;
        assert_eq!(last["files"].as_array().unwrap().len(), 3);
        let d = deposit(&stack, &cookie, &id).await;
        let records = d["records"].as_array().unwrap();
        // (A deleted gift read again from its file comes back, once.)
        let expected = count - 1 + usize::from(last_from_csv);
        assert_eq!(records.len(), expected, "no gift was added twice");
        assert!(records
            .iter()
            .any(|r| r["merge_history"].as_array().is_some_and(|h| !h.is_empty())));
        // The edited record kept the treasurer's values.
        assert_eq!(d["records"][0]["amount"], "1234.50");

        // A damaged file ends visibly: dead, with a reason, listed among the deposit's errors.
        let broken =
            Part::bytes(b"%PDF-1.7\nthis is not really a PDF\n".to_vec()).file_name("broken.pdf");
        let res = c
            .post(stack.url(&format!("/api/deposits/{id}/files")))
            .header("Cookie", &cookie)
            .header("Origin", stack.origin())
            .multipart(Form::new().part("files", broken))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 202);
        let (_, last) = follow(&stack, &cookie, &id).await;
        let f = last["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "broken.pdf")
            .unwrap()
            .clone();
        assert_eq!(f["state"], "dead", "{f}");
        assert!(f["error"].as_str().is_some_and(|e| !e.is_empty()), "{f}");
        let d = deposit(&stack, &cookie, &id).await;
        assert!(
            d["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["file"] == "broken.pdf"),
            "{}",
            d["errors"]
        );

        // The workers' heartbeats show in /health (signed in: they are not public).
        let h: Value = c
            .get(stack.url("/health"))
            .header("Cookie", &cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(!h["workers"].as_array().unwrap().is_empty(), "{h}");
        assert_eq!(h["queue"]["queued"], 0);
    }

    /// `fom-worker enqueue` run against the stack's Redis and key prefix.
    fn enqueue(stack: &Stack, args: &[&std::ffi::OsStr]) -> std::process::Output {
        std::process::Command::new(fom_testkit::bin_path("fom-worker", "fom-worker"))
            .env("REDIS_URL", &stack.redis_url)
            .env("KEY_PREFIX", &stack.prefix)
            .env("RUST_LOG", "warn")
            .env_remove("UPLOAD_STORE")
            .arg("enqueue")
            .args(args)
            .output()
            .unwrap()
    }

    /// Waits until every file of the deposit is done; returns the deposit.
    async fn settled(stack: &Stack, cookie: &str, id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let d = deposit(stack, cookie, id).await;
            let files = d["files"].as_array().cloned().unwrap_or_default();
            if !files.is_empty() && files.iter().all(|f| f["state"] == "done") {
                return d;
            }
            assert!(tokio::time::Instant::now() < deadline, "not done: {d}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    #[tokio::test]
    async fn enqueue_into_a_deposit_shows_its_files_and_records_on_the_page() {
        let stack = Stack::start(Options::new("e2e-enq").with_worker());
        let api = fom_e2e::signed_in(&stack).await;
        let (status, created) = api.post("/api/deposits", None).await;
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_str().unwrap().to_string();
        let cookie = api.cookie.clone();
        let csv = fom_testkit::repo_root().join("examples/online-gifts.csv");
        let out = enqueue(
            &stack,
            &["--deposit".as_ref(), id.as_ref(), csv.as_os_str()],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(stdout.starts_with(&format!("deposit\t{id}\n")), "{stdout}");

        let d = settled(&stack, &cookie, &id).await;
        let files = d["files"].as_array().unwrap();
        assert_eq!(files.len(), 1, "{d}");
        assert_eq!(files[0]["name"], "online-gifts.csv");
        assert_eq!(files[0]["kind"], "csv");
        assert!(
            stdout.contains(files[0]["job_id"].as_str().unwrap()),
            "{stdout}"
        );
        // The CSV's gifts are the deposit's records, not only the job's.
        assert_eq!(total_cents(&d["records"]), 115_000, "{}", d["records"]);

        // A deposit that does not exist is refused, and nothing is queued for it.
        let out = enqueue(
            &stack,
            &["--deposit".as_ref(), "nope".as_ref(), csv.as_os_str()],
        );
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("no deposit nope"));
    }

    #[tokio::test]
    async fn enqueue_without_a_deposit_starts_one_and_prints_its_id() {
        let stack = Stack::start(Options::new("e2e-enq-new").with_worker());
        let pdf = fom_testkit::repo_root().join("examples/deposit.pdf");
        let out = enqueue(&stack, &[pdf.as_os_str()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let id = stdout
            .lines()
            .find_map(|l| l.strip_prefix("deposit\t"))
            .unwrap_or_else(|| panic!("no deposit id in {stdout:?}"))
            .to_string();

        let api = fom_e2e::signed_in(&stack).await;
        let (_, list) = api.get("/api/deposits").await;
        assert!(list.to_string().contains(&id), "{list}");
        let d = settled(&stack, &api.cookie, &id).await;
        assert_eq!(d["files"][0]["name"], "deposit.pdf");
        assert!(!d["records"].as_array().unwrap().is_empty(), "{d}");
    }
}
