//! The real fom-web binary against a real Redis: health, sign-in, cross-site refusal, upload
//! verdicts, interrupted uploads, load shedding and the Redis headroom check. Each test runs
//! its own server with its own key prefix. (The worker is exercised in tests/e2e.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use fom_testkit::web::{client, Options, PrivateRedis, Stack};
use reqwest::multipart::{Form, Part};
use serde_json::Value;

fn redis_keys(stack: &Stack, pattern: &str) -> Vec<String> {
    let mut conn = redis::Client::open(stack.redis_url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("KEYS")
        .arg(format!("{}:{pattern}", stack.prefix))
        .query(&mut conn)
        .unwrap()
}

async fn new_deposit(stack: &Stack, c: &reqwest::Client, cookie: &str) -> String {
    let res = c
        .post(stack.url("/api/deposits"))
        .header("Cookie", cookie)
        .header("Origin", stack.origin())
        .json(&serde_json::json!({"name": "Test deposit"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let v: Value = res.json().await.unwrap();
    v["id"].as_str().unwrap().to_string()
}

/// GET with the session, answer as JSON.
async fn get_json(c: &reqwest::Client, cookie: &str, url: String) -> Value {
    c.get(url)
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn file(name: &str, bytes: Vec<u8>) -> Part {
    Part::bytes(bytes).file_name(name.to_string())
}

async fn upload(
    stack: &Stack,
    c: &reqwest::Client,
    cookie: &str,
    id: &str,
    form: Form,
) -> (u16, Value) {
    let res = c
        .post(stack.url(&format!("/api/deposits/{id}/files")))
        .header("Cookie", cookie)
        .header("Origin", stack.origin())
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn csv(rows: usize) -> Vec<u8> {
    let mut s = String::from("Date,Name,Amount,Transaction ID\n");
    for i in 0..rows {
        s.push_str(&format!(
            "11/0{},Donor {i},{}.00,tx{i}\n",
            1 + i % 9,
            10 + i
        ));
    }
    s.into_bytes()
}

#[tokio::test]
async fn health_reports_memory_redis_queue_and_workers() {
    let stack = Stack::start(Options::new("health"));
    // The details are for a signed-in person (docs/SECURITY.md; security.rs tries the rest).
    let cookie = stack.login(&client()).await;
    let res = client()
        .get(stack.url("/health"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert!(res.headers().contains_key("x-request-id"));
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    assert!(res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["status"], "ok");
    assert!(v["version"].is_string());
    let m = &v["system"]["memory_monitor"];
    for k in ["rss_mb", "warning_mb", "critical_mb"] {
        assert!(m[k].as_f64().unwrap() > 0.0, "{k}: {m}");
    }
    assert_eq!(m["status"], "ok");
    assert_eq!(v["redis"]["ok"], true);
    assert!(v["redis"]["latency_ms"].as_f64().is_some());
    assert!(v["redis"]["used_memory_mb"].as_f64().unwrap() > 0.0);
    for k in ["queued", "running", "failed", "dead"] {
        assert_eq!(v["queue"][k], 0, "{k}");
    }
    assert_eq!(v["workers"], Value::Array(vec![]));
}

#[test]
fn missing_secrets_stop_start_up_with_every_problem_named() {
    let out = Command::new(fom_testkit::bin_path("fom-web", "fom-web"))
        .env_remove("APP_PASSWORD")
        .env_remove("SESSION_SECRET")
        .env("REDIS_URL", "http://nope")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for var in ["APP_PASSWORD", "SESSION_SECRET", "REDIS_URL"] {
        assert!(err.contains(var), "{var} not named in: {err}");
    }
}

#[tokio::test]
async fn everything_but_health_and_sign_in_needs_a_session() {
    let stack = Stack::start(Options::new("auth"));
    let c = client();
    let res = c.get(stack.url("/api/deposits")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "sign_in_required");
    let res = c.get(stack.url("/")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(res.headers()["location"], "/login?next=/");
    let res = c.get(stack.url("/login")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.text().await.unwrap().contains("name=\"password\""));
    assert_eq!(
        c.get(stack.url("/static/app.css"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );

    // An upload without a session is refused before anything is stored.
    let form = Form::new().part("files", file("gifts.csv", csv(2)));
    let res = c
        .post(stack.url("/api/deposits/whatever/files"))
        .header("Origin", stack.origin())
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    assert!(redis_keys(&stack, "upload:*").is_empty());

    let res = c
        .post(stack.url("/login"))
        .header("Origin", stack.origin())
        .form(&[("password", "wrong password")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    assert!(res.headers().get("set-cookie").is_none());

    let res = c
        .post(stack.url("/login"))
        .header("Origin", stack.origin())
        .form(&[
            ("password", fom_testkit::web::PASSWORD),
            ("next", "/deposits/x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(res.headers()["location"], "/deposits/x");
    let set = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    assert!(
        !set.contains("Secure"),
        "INSECURE_COOKIES=1 drops Secure: {set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();
    let ok = c
        .get(stack.url("/api/deposits"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);

    // A forged or altered cookie is no session.
    let (name, value) = cookie.split_once('=').unwrap();
    let forged = format!("{name}={}x", &value[..value.len() - 1]);
    for bad in [forged, format!("{name}=plainsessionid")] {
        let res = c
            .get(stack.url("/api/deposits"))
            .header("Cookie", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 401);
    }

    // Signing out ends the session on the server, not only in the browser.
    let res = c
        .post(stack.url("/logout"))
        .header("Cookie", &cookie)
        .header("Origin", stack.origin())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    let res = c
        .get(stack.url("/api/deposits"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
}

#[tokio::test]
async fn cross_site_writes_are_refused() {
    let stack = Stack::start(Options::new("csrf"));
    let c = client();
    let cookie = stack.login(&c).await;
    let post = |headers: Vec<(&'static str, String)>| {
        let mut r = c.post(stack.url("/api/deposits")).header("Cookie", &cookie);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        r.send()
    };
    for (headers, why) in [
        (vec![], "no Origin and no Referer"),
        (
            vec![("Origin", "https://evil.example".to_string())],
            "foreign Origin",
        ),
        (
            vec![("Referer", "https://evil.example/page".to_string())],
            "foreign Referer",
        ),
        (
            vec![
                ("Origin", stack.origin()),
                ("Sec-Fetch-Site", "cross-site".to_string()),
            ],
            "cross-site fetch",
        ),
    ] {
        let res = post(headers).await.unwrap();
        assert_eq!(res.status().as_u16(), 403, "{why}");
    }
    // Sign-in is protected too (login CSRF).
    let res = c
        .post(stack.url("/login"))
        .header("Origin", "https://evil.example")
        .form(&[("password", fom_testkit::web::PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    let res = post(vec![("Referer", stack.url("/deposits"))])
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201, "same-site Referer is accepted");
    assert!(c
        .get(stack.url("/api/deposits"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
}

#[tokio::test]
async fn sign_in_attempts_are_limited_per_address() {
    let stack = Stack::start(Options::new("limit").env("LOGIN_MAX_ATTEMPTS", "3"));
    let c = client();
    let attempt = |password: &'static str| {
        c.post(stack.url("/login"))
            .header("Origin", stack.origin())
            .form(&[("password", password)])
            .send()
    };
    for _ in 0..3 {
        assert_eq!(attempt("nope nope").await.unwrap().status().as_u16(), 401);
    }
    let res = attempt(fom_testkit::web::PASSWORD).await.unwrap();
    assert_eq!(res.status().as_u16(), 429, "even the right password waits");
    let wait: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0 && wait <= 900, "{wait}");
}

#[tokio::test]
async fn each_file_gets_its_own_verdict() {
    let stack = Stack::start(
        Options::new("verdicts")
            .env("MAX_FILE_MB", "1")
            .env("MAX_UPLOAD_FILES", "3"),
    );
    let c = client();
    let cookie = stack.login(&c).await;
    let id = new_deposit(&stack, &c, &cookie).await;

    // Too large: 413, and nothing of it stays in the store.
    let mut big = b"%PDF-1.7\n".to_vec();
    big.resize(1024 * 1024 + 4096, b'x');
    let (status, v) = upload(
        &stack,
        &c,
        &cookie,
        &id,
        Form::new().part("files", file("big.pdf", big)),
    )
    .await;
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["files"][0]["code"], "file_too_large");
    assert!(redis_keys(&stack, "upload:*").is_empty());

    // Wrong type by content, whatever the name says: 415. Empty: 400.
    let (status, v) = upload(
        &stack,
        &c,
        &cookie,
        &id,
        Form::new().part(
            "files",
            file("scan.pdf", b"PK\x03\x04 a zip really".to_vec()),
        ),
    )
    .await;
    assert_eq!(status, 415, "{v}");
    assert!(v["files"][0]["error"].as_str().unwrap().contains("ZIP"));
    let (status, v) = upload(
        &stack,
        &c,
        &cookie,
        &id,
        Form::new().part("files", file("empty.csv", vec![])),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["files"][0]["code"], "empty_file");

    // One bad file does not sink the others; a path in the name is dropped.
    let mut big = b"%PDF-1.7\n".to_vec();
    big.resize(2 * 1024 * 1024, b'x');
    let form = Form::new()
        .part("files", file("../../etc/gifts.csv", csv(3)))
        .part("files", file("big.pdf", big))
        .part("files", file("more.csv", csv(2)));
    let (status, v) = upload(&stack, &c, &cookie, &id, form).await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(
        (v["accepted"].as_u64(), v["rejected"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(v["files"][0]["name"], "gifts.csv");
    assert_eq!(v["files"][0]["kind"], "csv");
    assert_eq!(v["files"][1]["status"], 413);
    assert!(v["files"][2]["job_id"].is_string());

    // More files than allowed: the extra ones are refused by name, the rest accepted.
    let mut form = Form::new();
    for i in 0..4 {
        form = form.part("files", file(&format!("f{i}.csv"), csv(1)));
    }
    let (status, v) = upload(&stack, &c, &cookie, &id, form).await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["accepted"], 3);
    assert_eq!(v["files"][3]["code"], "too_many_files");
    assert_eq!(v["files"][3]["name"], "f3.csv");

    // The deposit lists exactly the accepted files, each with a queued job.
    let d: Value = get_json(&c, &cookie, stack.url(&format!("/api/deposits/{id}"))).await;
    let files = d["files"].as_array().unwrap();
    assert_eq!(files.len(), 5);
    assert!(files
        .iter()
        .all(|f| f["state"] == "queued" && !f["finished"].as_bool().unwrap()));
    assert_eq!(d["processing"], true);
    let jobs: Value = get_json(&c, &cookie, stack.url("/api/jobs")).await;
    assert_eq!(jobs["counts"]["queued"], 5);

    // Unknown ids are 404, never "processing".
    for path in [
        "/api/deposits/nope".to_string(),
        "/api/deposits/nope/progress".to_string(),
        "/api/deposits/nope/events".to_string(),
        "/api/jobs/nope".to_string(),
        format!("/api/deposits/{id}/records/nope"),
    ] {
        let res = if path.contains("/records/") {
            c.delete(stack.url(&path))
                .header("Cookie", &cookie)
                .header("Origin", stack.origin())
                .send()
                .await
                .unwrap()
        } else {
            c.get(stack.url(&path))
                .header("Cookie", &cookie)
                .send()
                .await
                .unwrap()
        };
        assert_eq!(res.status().as_u16(), 404, "{path}");
    }
    let (status, _) = upload(
        &stack,
        &c,
        &cookie,
        "nope",
        Form::new().part("files", file("a.csv", csv(1))),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_upload_cut_off_mid_stream_leaves_nothing() {
    let stack = Stack::start(Options::new("cutoff"));
    let c = client();
    let cookie = stack.login(&c).await;
    let id = new_deposit(&stack, &c, &cookie).await;
    let port = stack.port;
    let origin = stack.origin();
    let cookie2 = cookie.clone();
    let id2 = id.clone();
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let boundary = "XyZbOuNdArY";
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"scan.pdf\"\r\n\
             Content-Type: application/pdf\r\n\r\n%PDF-1.7\n"
        );
        write!(
            s,
            "POST /api/deposits/{id2}/files HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: {origin}\r\n\
             Cookie: {cookie2}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n\
             Content-Length: 5000000\r\n\r\n{head}"
        )
        .unwrap();
        // 600 KB of the promised 5 MB, so some chunks reach the store, then the line drops.
        s.write_all(&vec![b'x'; 600 * 1024]).unwrap();
        s.flush().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        drop(s);
    })
    .await
    .unwrap();
    // The server notices the broken body and cleans up.
    let mut left = Vec::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = redis_keys(&stack, "upload:*");
        if left.is_empty() {
            break;
        }
    }
    assert!(left.is_empty(), "partial upload left behind: {left:?}");
    assert!(redis_keys(&stack, "job:*").is_empty(), "a job was created");
    let d: Value = get_json(&c, &cookie, stack.url(&format!("/api/deposits/{id}"))).await;
    assert_eq!(d["files"], Value::Array(vec![]));
}

#[tokio::test]
async fn over_the_critical_threshold_uploads_wait_and_the_rest_answers() {
    let stack = Stack::start(
        Options::new("shed")
            .env("MEMORY_WARNING_MB", "1")
            .env("MEMORY_CRITICAL_MB", "2"),
    );
    let c = client();
    let cookie = stack.login(&c).await;
    let id = new_deposit(&stack, &c, &cookie).await;
    let (status, v) = upload(
        &stack,
        &c,
        &cookie,
        &id,
        Form::new().part("files", file("a.csv", csv(1))),
    )
    .await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["code"], "busy");
    let res = c.get(stack.url("/health")).send().await.unwrap();
    assert_eq!(
        res.status().as_u16(),
        200,
        "health answers over the threshold"
    );
    let h: Value = res.json().await.unwrap();
    assert_eq!(h["status"], "critical");
    assert_eq!(h["system"]["memory_monitor"]["status"], "critical");
    let res = c
        .get(stack.url(&format!("/api/deposits/{id}")))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert!(redis_keys(&stack, "upload:*").is_empty());
}

#[tokio::test]
async fn uploads_that_would_fill_redis_get_507() {
    // A private server: maxmemory must not be set on the shared one.
    let redis = PrivateRedis::start(&["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"]);
    let stack = Stack::start(
        Options::new("headroom")
            .redis(&redis.url)
            .env("REDIS_MIN_HEADROOM_MB", "1"),
    );
    let c = client();
    let cookie = stack.login(&c).await;
    let id = new_deposit(&stack, &c, &cookie).await;
    let mut big = b"%PDF-1.7\n".to_vec();
    big.resize(3 * 1024 * 1024, b'x');
    let (status, v) = upload(
        &stack,
        &c,
        &cookie,
        &id,
        Form::new().part("files", file("big.pdf", big)),
    )
    .await;
    assert_eq!(status, 507, "{v}");
    assert_eq!(v["error"]["code"], "storage_full");
    assert!(redis_keys(&stack, "upload:*").is_empty());
    let (status, v) = upload(
        &stack,
        &c,
        &cookie,
        &id,
        Form::new().part("files", file("small.csv", csv(2))),
    )
    .await;
    assert_eq!(status, 202, "a small file still fits: {v}");
    let h: Value = c
        .get(stack.url("/health"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["redis"]["maxmemory_mb"], 4.0);
}

#[tokio::test]
async fn deposits_and_sessions_outlive_the_web_process() {
    let first = Stack::start(Options::new("restart"));
    let c = client();
    let cookie = first.login(&c).await;
    let id = new_deposit(&first, &c, &cookie).await;
    // A second web process on the same Redis (another dyno, or the same one restarted) knows
    // the session and the deposit.
    let second = Stack::start(Options::new("restart").same_keys_as(&first));
    let res = c
        .get(second.url(&format!("/api/deposits/{id}")))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["name"], "Test deposit");
    let list: Value = get_json(&c, &cookie, second.url("/api/deposits")).await;
    assert_eq!(list["deposits"][0]["id"], id.as_str());
    drop(second);
}

#[tokio::test]
async fn event_streams_send_state_then_heartbeats_while_waiting() {
    use futures_util::StreamExt;
    let stack = Stack::start(Options::new("sse"));
    let c = client();
    let cookie = stack.login(&c).await;
    let id = new_deposit(&stack, &c, &cookie).await;
    let (status, _) = upload(
        &stack,
        &c,
        &cookie,
        &id,
        Form::new().part("files", file("a.csv", csv(1))),
    )
    .await;
    assert_eq!(status, 202);
    // No worker runs here: the file stays queued, so the stream must keep the line alive.
    let res = c
        .get(stack.url(&format!("/api/deposits/{id}/events")))
        .header("Cookie", &cookie)
        .header("Accept-Encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    assert_eq!(
        res.headers()["content-encoding"],
        "identity",
        "events are never buffered by compression"
    );
    let mut stream = res.bytes_stream();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
    while !seen.contains(": heartbeat") {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(chunk)) => seen.push_str(&String::from_utf8_lossy(&chunk.unwrap())),
            _ => panic!("no heartbeat within 25 s: {seen}"),
        }
    }
    assert!(seen.starts_with("event: progress\ndata: "), "{seen}");
    assert!(seen.contains("\"state\":\"queued\""), "{seen}");
    assert!(!seen.contains("event: done"));
}

#[tokio::test]
async fn pages_assets_and_the_deposit_report() {
    let stack = Stack::start(Options::new("report"));
    let c = client();
    // Assets and the icon need no session (the sign-in page uses them).
    for (path, kind) in [
        ("/static/app.js", "text/javascript"),
        ("/static/app.css", "text/css"),
        ("/static/icon.svg", "image/svg+xml"),
        ("/favicon.ico", "image/svg+xml"),
    ] {
        let res = c.get(stack.url(path)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200, "{path}");
        let ct = res.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with(kind), "{path}: {ct}");
    }
    let cookie = stack.login(&c).await;
    let id = new_deposit(&stack, &c, &cookie).await;

    // The pages are shells that load app.js; an unknown deposit is a page, not JSON.
    let page = |path: String| {
        let c = c.clone();
        let cookie = cookie.clone();
        async move {
            let res = c.get(path).header("Cookie", cookie).send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    let (status, html) = page(stack.url(&format!("/deposits/{id}"))).await;
    assert_eq!(status, 200);
    assert!(html.contains("data-page=\"deposit\"") && html.contains("/static/app.js?v="));
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "{html}"
    );
    let (status, html) = page(stack.url("/deposits/nope")).await;
    assert_eq!(status, 404);
    assert!(html.contains("Deposit not found"), "{html}");

    let report = get_json(
        &c,
        &cookie,
        stack.url(&format!("/api/deposits/{id}/report")),
    )
    .await;
    let text = report["text"].as_str().unwrap();
    assert!(text.starts_with("Deposit Report: "), "{text}");
    assert!(text.contains("Total Deposits: $0.00"), "{text}");
    assert_eq!(report["total"], "0");
    assert_eq!(report["date"].as_str().unwrap().len(), 10);

    let res = c
        .get(stack.url(&format!("/api/deposits/{id}/report.csv")))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let disposition = res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        disposition.starts_with("attachment; filename=\"deposit-")
            && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let body = res.text().await.unwrap();
    assert!(
        body.starts_with("Lookup,Salutation,Donor Name,Check No.,Gift Amount,"),
        "{body}"
    );
    // The header and the Total line.
    assert_eq!(body.trim().lines().count(), 2, "{body}");
    assert!(
        body.trim().ends_with(",,Total,,0.00,,,,,,,,,,,,,,"),
        "{body}"
    );
    let all = c
        .get(stack.url(&format!("/api/deposits/{id}/export.csv")))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(all.status().as_u16(), 200);
    assert!(all.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment; filename=\"deposit-all-fields-"));
    let body = all.text().await.unwrap();
    assert!(body.starts_with("id,payment_ref,"), "{body}");
    assert_eq!(body.trim().lines().count(), 1);

    // Without a session: 401, like the rest of the API.
    let res = c
        .get(stack.url(&format!("/api/deposits/{id}/report.csv")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
}

/// Every module of the page script, as `app.js` and the modules import it: each file of
/// `assets/js` is reachable from the entry and served as JavaScript with a revalidated cache;
/// other names are 404.
#[tokio::test]
async fn page_script_modules_are_served() {
    let stack = Stack::start(Options::new("modules"));
    let c = client();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/js");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    // The names a module imports: `from './x.js'` (entry: `from './js/x.js'`).
    let imports = |text: &str, prefix: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("import "))
            .filter_map(|l| l.split_once(" from '")?.1.strip_suffix("';"))
            .map(|spec| {
                spec.strip_prefix(prefix)
                    .unwrap_or_else(|| panic!("unexpected import {spec}"))
                    .to_string()
            })
            .collect()
    };
    let entry = c
        .get(stack.url("/static/app.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut todo = imports(&entry, "./js/");
    assert!(!todo.is_empty(), "{entry}");
    let mut seen = std::collections::BTreeSet::new();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let url = stack.url(&format!("/static/js/{name}"));
        let res = c.get(&url).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200, "{name}");
        let h = res.headers().clone();
        let ct = h["content-type"].to_str().unwrap();
        assert!(ct.starts_with("text/javascript"), "{name}: {ct}");
        assert_eq!(h["cache-control"], "no-cache", "{name}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{name}");
        let body = res.text().await.unwrap();
        assert_eq!(body, std::fs::read_to_string(dir.join(&name)).unwrap());
        // Unchanged: a bodiless 304 for the ETag the browser kept.
        let res = c
            .get(&url)
            .header("If-None-Match", h["etag"].clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 304, "{name}");
        assert_eq!(res.headers()["etag"], h["etag"]);
        assert!(res.text().await.unwrap().is_empty());
        // Changed (another ETag): the text again.
        let res = c
            .get(&url)
            .header("If-None-Match", "W/\"0\"")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "{name}");
        todo.extend(imports(&body, "./"));
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), on_disk);

    for name in ["nope.js", "app.js", "app.css", "..%2Fapp.js", "api"] {
        let res = c
            .get(stack.url(&format!("/static/js/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 404, "{name}");
    }

    // A page that runs the script announces every module, so they load side by side.
    let cookie = stack.login(&c).await;
    let html = c
        .get(stack.url("/"))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in &on_disk {
        let link = format!("<link rel=\"modulepreload\" href=\"/static/js/{name}\">");
        assert!(html.contains(&link), "{name}: {html}");
    }
}

/// An upload written by hand over a socket, for bodies reqwest does not make (chunked floods,
/// trickles, pauses). `send` writes the multipart body (chunked when `length` is `None`) while
/// another thread reads the answer, so an answer given before the body ends is seen; `send`
/// may stop writing once `answered` is set. Write errors (the server closed) end the body.
struct RawAnswer {
    status: u16,
    /// Header lines, lower-cased.
    headers: String,
    json: Value,
    /// Why the body could not be written to its end (the server closed the connection).
    write_error: Option<String>,
}

struct Chunked<W: Write>(W);

impl<W: Write> Write for Chunked<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        write!(self.0, "{:x}\r\n", buf.len())?;
        self.0.write_all(buf)?;
        self.0.write_all(b"\r\n")?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

const BOUNDARY: &str = "RawBoundary7Mq";

fn part_head(name: &str, filename: Option<&str>) -> String {
    let file = filename.map_or(String::new(), |f| format!("; filename=\"{f}\""));
    format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"{file}\r\n\r\n")
}

async fn raw_upload<F>(
    stack: &Stack,
    cookie: &str,
    id: &str,
    length: Option<u64>,
    send: F,
) -> RawAnswer
where
    F: FnOnce(&mut dyn Write, &std::sync::atomic::AtomicBool) -> std::io::Result<()>
        + Send
        + 'static,
{
    use std::io::Read;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let port = stack.port;
    let head = format!(
        "POST /api/deposits/{id}/files HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: {}\r\n\
         Cookie: {cookie}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n{}\r\n",
        stack.origin(),
        length.map_or("Transfer-Encoding: chunked\r\n".to_string(), |n| format!(
            "Content-Length: {n}\r\n"
        )),
    );
    let raw = tokio::task::spawn_blocking(move || {
        let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let answered = Arc::new(AtomicBool::new(false));
        let mut reader = s.try_clone().unwrap();
        let seen = answered.clone();
        let read = std::thread::spawn(move || {
            let mut out = Vec::new();
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
                seen.store(true, Ordering::SeqCst);
            }
            out
        });
        let mut w = s.try_clone().unwrap();
        let sent = w.write_all(head.as_bytes()).and_then(|()| {
            if length.is_some() {
                let mut body = std::io::BufWriter::with_capacity(64 * 1024, &mut w);
                send(&mut body, &answered)?;
                body.flush()
            } else {
                let mut body = std::io::BufWriter::with_capacity(64 * 1024, Chunked(&mut w));
                send(&mut body, &answered)?;
                body.flush()?;
                drop(body);
                w.write_all(b"0\r\n\r\n")
            }
        });
        let _ = s.shutdown(std::net::Shutdown::Write);
        (read.join().unwrap(), sent.err().map(|e| e.to_string()))
    })
    .await
    .unwrap();
    let (raw, write_error) = raw;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no answer: {text:?}"));
    let status = head[9..12].parse().unwrap();
    let headers = head.to_ascii_lowercase();
    let body = if headers.contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&after[..n]);
            rest = &after[n + 2..];
        }
        out
    } else {
        body.to_string()
    };
    RawAnswer {
        status,
        headers,
        json: serde_json::from_str(&body).unwrap_or(Value::Null),
        write_error,
    }
}

/// The highest RSS the process has had, in MB (`VmHWM`).
fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb / 1024.0
}

#[tokio::test]
async fn a_million_empty_parts_end_with_a_clear_error_in_bounded_memory() {
    // Default limits: 30 files, so at most 300 parts are read.
    let stack = Stack::start(Options::new("flood"));
    let c = client();
    let cookie = stack.login(&c).await;
    let id = new_deposit(&stack, &c, &cookie).await;
    // Chunked (no Content-Length to refuse up front), generated as it is sent: a million
    // parts, then more until the server hangs up (or a minute has passed).
    let started = std::time::Instant::now();
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = written.clone();
    let answer = raw_upload(&stack, &cookie, &id, None, move |body, _| {
        for i in 0u64.. {
            count.store(i, std::sync::atomic::Ordering::Relaxed);
            if i >= 1_000_000 && started.elapsed() > Duration::from_secs(60) {
                break;
            }
            if i > 0 {
                body.write_all(b"\r\n")?;
            }
            body.write_all(part_head("files", Some(&format!("e{i}.pdf"))).as_bytes())?;
        }
        write!(body, "\r\n--{BOUNDARY}--\r\n")
    })
    .await;
    assert!(
        answer.write_error.is_some(),
        "the server read on instead of closing the connection"
    );
    let files = answer.json["files"].as_array().unwrap();
    assert_eq!(answer.status, 413, "{}", answer.json);
    assert_eq!(
        files.len(),
        301,
        "one verdict per part read, then one for the rest"
    );
    assert_eq!(files[0]["code"], "empty_file");
    assert_eq!(files[299]["code"], "too_many_files");
    let last = &files[300];
    assert_eq!(last["code"], "too_many_parts");
    let message = last["error"].as_str().unwrap();
    assert!(message.contains("at most 30 files"), "{message}");
    assert!(
        answer.headers.contains("connection: close"),
        "{}",
        answer.headers
    );
    let peak = peak_rss_mb(stack.web_pid());
    eprintln!(
        "fom-web peak RSS {peak:.1} MB; {} parts written before it hung up",
        written.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert!(peak <= 80.0, "fom-web peaked at {peak:.1} MB");
    // The server is fine: a normal upload goes through.
    let (status, v) = upload(
        &stack,
        &c,
        &cookie,
        &id,
        Form::new().part("files", file("gifts.csv", csv(2))),
    )
    .await;
    assert_eq!(status, 202, "{v}");
}

#[tokio::test]
async fn a_chunked_body_over_the_byte_limit_is_refused() {
    // 2 files of 1 MB: at most 3 MB per upload, counted whether or not a length is declared.
    let stack = Stack::start(
        Options::new("bytecap")
            .env("MAX_FILE_MB", "1")
            .env("MAX_UPLOAD_FILES", "2"),
    );
    let c = client();
    let cookie = stack.login(&c).await;
    let id = new_deposit(&stack, &c, &cookie).await;
    let gifts = csv(3);
    let answer = raw_upload(&stack, &cookie, &id, None, move |body, _| {
        body.write_all(part_head("files", Some("gifts.csv")).as_bytes())?;
        body.write_all(&gifts)?;
        // A part that is not a file counts too: 4 MB of it.
        body.write_all(format!("\r\n{}", part_head("notes", None)).as_bytes())?;
        for _ in 0..64 {
            body.write_all(&[b'x'; 64 * 1024])?;
        }
        write!(body, "\r\n--{BOUNDARY}--\r\n")
    })
    .await;
    assert_eq!(answer.status, 202, "{}", answer.json);
    let files = answer.json["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{}", answer.json);
    assert_eq!(files[0]["accepted"], true);
    assert_eq!(files[1]["code"], "upload_too_large");
    assert_eq!(files[1]["status"], 413);
    assert!(
        files[1]["error"]
            .as_str()
            .unwrap()
            .contains("2 files of 1 MB"),
        "{}",
        files[1]
    );
    assert!(
        answer.headers.contains("connection: close"),
        "{}",
        answer.headers
    );
    let d = get_json(&c, &cookie, stack.url(&format!("/api/deposits/{id}"))).await;
    assert_eq!(d["files"].as_array().unwrap().len(), 1, "{d}");
}

#[tokio::test]
async fn a_body_slower_than_the_floor_rate_is_cut() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    // At least 1,000 bytes per second of waiting, over a 1 s window; the client sends 100.
    let stack = Stack::start(
        Options::new("slow")
            .env("UPLOAD_MIN_BYTES_PER_SEC", "1000")
            .env("UPLOAD_RATE_WINDOW_SECS", "1"),
    );
    let c = client();
    let cookie = stack.login(&c).await;
    let id = new_deposit(&stack, &c, &cookie).await;
    let gave_up = Arc::new(AtomicBool::new(false));
    let trickled_out = gave_up.clone();
    // A declared length: the guard does not depend on chunked bodies.
    let answer = raw_upload(
        &stack,
        &cookie,
        &id,
        Some(1_000_000),
        move |body, answered| {
            body.write_all(part_head("files", Some("scan.pdf")).as_bytes())?;
            body.write_all(b"%PDF-1.7\n")?;
            body.flush()?;
            // Ten bytes every 100 ms, for up to two minutes (far longer than the window).
            for _ in 0..1200 {
                if answered.load(Ordering::SeqCst) {
                    return Ok(());
                }
                body.write_all(&[b'x'; 10])?;
                body.flush()?;
                std::thread::sleep(Duration::from_millis(100));
            }
            trickled_out.store(true, Ordering::SeqCst);
            Ok(())
        },
    )
    .await;
    assert!(!gave_up.load(Ordering::SeqCst), "the trickle was never cut");
    assert_eq!(answer.status, 408, "{}", answer.json);
    let v = &answer.json["files"][0];
    assert_eq!(v["code"], "upload_too_slow", "{v}");
    assert_eq!(v["name"], "scan.pdf");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("check the connection"),
        "{v}"
    );
    assert!(
        answer.headers.contains("connection: close"),
        "{}",
        answer.headers
    );
    // Nothing of the file was kept, and no job made.
    let mut left = Vec::new();
    for _ in 0..50 {
        left = redis_keys(&stack, "upload:*");
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(left.is_empty(), "{left:?}");
    assert!(redis_keys(&stack, "job:*").is_empty());
}

#[tokio::test]
async fn after_a_storage_error_the_rest_of_the_body_is_not_read() {
    // A directory store whose directory is a plain file: every write fails.
    let dir = std::env::temp_dir().join(format!("fom-web-broken-store-{}", std::process::id()));
    std::fs::write(&dir, b"not a directory").unwrap();
    let stack = Stack::start(
        Options::new("storefail").env("UPLOAD_STORE", &format!("dir:{}", dir.display())),
    );
    let c = client();
    let cookie = stack.login(&c).await;
    let id = new_deposit(&stack, &c, &cookie).await;
    let answer = raw_upload(&stack, &cookie, &id, None, |body, answered| {
        body.write_all(part_head("files", Some("a.csv")).as_bytes())?;
        body.write_all(&csv(2))?;
        body.write_all(format!("\r\n{}", part_head("files", Some("b.csv"))).as_bytes())?;
        body.flush()?;
        // The body goes on only once answered: a server that read on would wait for it forever
        // (well, for this test's two minutes).
        for _ in 0..1200 {
            if answered.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        body.write_all(&csv(2))?;
        write!(body, "\r\n--{BOUNDARY}--\r\n")
    })
    .await;
    let _ = std::fs::remove_file(&dir);
    assert_eq!(answer.status, 503, "{}", answer.json);
    let files = answer.json["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "b.csv was not read: {}", answer.json);
    assert_eq!(files[0]["code"], "storage_unavailable");
    assert_eq!(files[0]["name"], "a.csv");
    assert!(
        answer.headers.contains("connection: close"),
        "{}",
        answer.headers
    );
}

/// The documents queue's task hash turned into a string (the hash set aside): every push fails
/// (WRONGTYPE) while the rest of Redis answers, as a push can fail after a restart. Returns
/// the connection and the key, to mend it with `DEL`.
fn break_documents_queue(stack: &Stack) -> (redis::Connection, String) {
    let active = format!("{}:queue:documents:data", stack.prefix);
    let mut conn = redis::Client::open(stack.redis_url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: Result<(), _> = redis::cmd("RENAME")
        .arg(&active)
        .arg(format!("{active}:aside"))
        .query(&mut conn);
    let _: () = redis::cmd("SET")
        .arg(&active)
        .arg("broken")
        .query(&mut conn)
        .unwrap();
    (conn, active)
}

#[tokio::test]
async fn a_file_the_queue_refuses_gets_503_and_leaves_nothing_behind() {
    let stack = Stack::start(Options::new("unqueued"));
    let c = client();
    let cookie = stack.login(&c).await;
    let id = new_deposit(&stack, &c, &cookie).await;
    let (mut conn, active) = break_documents_queue(&stack);
    let (status, v) = upload(
        &stack,
        &c,
        &cookie,
        &id,
        Form::new()
            .part("files", file("first.csv", csv(2)))
            .part("files", file("second.csv", csv(2))),
    )
    .await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["accepted"], 0, "{v}");
    let first = &v["files"][0];
    assert_eq!(first["code"], "storage_unavailable", "{v}");
    assert_eq!(
        first["error"], "the file could not be queued; try again in a minute",
        "{v}"
    );
    // Nothing of it is kept: not on the deposit, no job record, no stored bytes.
    let d = get_json(&c, &cookie, stack.url(&format!("/api/deposits/{id}"))).await;
    assert_eq!(d["files"], serde_json::json!([]), "{d}");
    assert!(redis_keys(&stack, "upload:*").is_empty());
    assert!(redis_keys(&stack, "job:*").is_empty());
    // Once the queue answers again the same file is accepted.
    let _: () = redis::cmd("DEL").arg(&active).query(&mut conn).unwrap();
    let (status, v) = upload(
        &stack,
        &c,
        &cookie,
        &id,
        Form::new().part("files", file("first.csv", csv(2))),
    )
    .await;
    assert_eq!(status, 202, "{v}");
}

/// Photos sent in one request share one job (read together, so a check meets its envelope);
/// any other file keeps its own. When the queue refuses, the photos are taken back together.
#[tokio::test]
async fn photos_of_one_request_share_a_job() {
    let stack = Stack::start(Options::new("photogroup"));
    let c = client();
    let cookie = stack.login(&c).await;
    let id = new_deposit(&stack, &c, &cookie).await;
    let jpeg = || b"\xFF\xD8\xFF\xE0 not decoded by the web".to_vec();
    let png = || b"\x89PNG\r\n\x1a\n not decoded by the web".to_vec();
    let (status, v) = upload(
        &stack,
        &c,
        &cookie,
        &id,
        Form::new()
            .part("files", file("check.jpg", jpeg()))
            .part("files", file("gifts.csv", csv(2)))
            .part("files", file("envelope.png", png())),
    )
    .await;
    assert_eq!(status, 202, "{v}");
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 3, "{v}");
    assert!(files.iter().all(|f| f["accepted"] == true), "{v}");
    assert_eq!(files[0]["job_id"], files[2]["job_id"], "{v}");
    assert_ne!(files[0]["job_id"], files[1]["job_id"], "{v}");
    let job = files[0]["job_id"].as_str().unwrap();
    let record = get_json(&c, &cookie, stack.url(&format!("/api/jobs/{job}"))).await;
    assert_eq!(record["file_name"], "check.jpg", "{record}");
    assert_eq!(
        record["more_files"][0]["file_name"], "envelope.png",
        "{record}"
    );
    let d = get_json(&c, &cookie, stack.url(&format!("/api/deposits/{id}"))).await;
    let listed: Vec<(&str, &str)> = d["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["job_id"].as_str().unwrap()))
        .collect();
    assert_eq!(listed.len(), 3, "{d}");
    assert!(listed.contains(&("check.jpg", job)) && listed.contains(&("envelope.png", job)));
    assert_eq!(redis_keys(&stack, "queue:documents:data").len(), 1);

    // The queue refuses: both photos are refused and nothing of them is kept.
    let uploads_before = redis_keys(&stack, "upload:*").len();
    break_documents_queue(&stack);
    let (status, v) = upload(
        &stack,
        &c,
        &cookie,
        &id,
        Form::new()
            .part("files", file("check-2.jpg", jpeg()))
            .part("files", file("envelope-2.jpg", jpeg())),
    )
    .await;
    assert_eq!(status, 503, "{v}");
    for f in v["files"].as_array().unwrap() {
        assert_eq!(f["code"], "storage_unavailable", "{v}");
        assert_eq!(
            f["error"],
            "the file could not be queued; try again in a minute"
        );
    }
    assert_eq!(redis_keys(&stack, "upload:*").len(), uploads_before);
    let d = get_json(&c, &cookie, stack.url(&format!("/api/deposits/{id}"))).await;
    assert_eq!(d["files"].as_array().unwrap().len(), 3, "{d}");
}

/// Redis's OOM error count (`INFO errorstats`): a write refused because Redis was full.
fn oom_errors(url: &str) -> u64 {
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    let info: String = redis::cmd("INFO")
        .arg("errorstats")
        .query(&mut conn)
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("errorstat_OOM:count="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn uploads_wait_for_room_while_files_ahead_are_read() {
    // A private, small Redis and no worker: accepted files stay queued, holding their room.
    let redis = PrivateRedis::start(&["--maxmemory", "12mb", "--maxmemory-policy", "noeviction"]);
    let stack = Stack::start(
        Options::new("room")
            .redis(&redis.url)
            .env("REDIS_MIN_HEADROOM_MB", "1"),
    );
    let c = client();
    let cookie = stack.login(&c).await;
    let id = new_deposit(&stack, &c, &cookie).await;
    let two_mb = |n: usize| {
        let mut b = format!("%PDF-1.7\n% file {n}\n").into_bytes();
        b.resize(2 * 1024 * 1024, b'x');
        b
    };

    // Nothing ahead to free room (the store is full of something else): waiting cannot help,
    // so the answer is for the operator.
    let mut conn = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let filler = vec![b'f'; 500_000];
    let mut fillers = 0;
    loop {
        let info: String = redis::cmd("INFO").arg("memory").query(&mut conn).unwrap();
        let used: u64 = info
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap();
        // Leave about 2.5 MB: less than a 2 MB file plus the 1 MB reserve.
        if used > 12 * 1024 * 1024 - 2_600_000 {
            break;
        }
        let _: () = redis::cmd("SET")
            .arg(format!("filler:{fillers}"))
            .arg(&filler)
            .query(&mut conn)
            .unwrap();
        fillers += 1;
    }
    let form = Form::new().part("files", file("a.pdf", two_mb(0)));
    let (status, v) = upload(&stack, &c, &cookie, &id, form).await;
    assert_eq!(status, 507, "{v}");
    assert_eq!(v["error"]["code"], "storage_full", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no file is being read")),
        "{v}"
    );
    for i in 0..fillers {
        let _: () = redis::cmd("DEL")
            .arg(format!("filler:{i}"))
            .query(&mut conn)
            .unwrap();
    }

    // One file per request until the room is taken; the next one is told to wait.
    let mut accepted = 0;
    let waited = loop {
        let form = Form::new().part("files", file(&format!("p{accepted}.pdf"), two_mb(accepted)));
        let res = c
            .post(stack.url(&format!("/api/deposits/{id}/files")))
            .header("Cookie", &cookie)
            .header("Origin", stack.origin())
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let retry_after = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let v: Value = res.json().await.unwrap();
        if status == 202 {
            accepted += 1;
            assert!(
                accepted < 8,
                "12 MB cannot hold {accepted} files of 2 MB: {v}"
            );
            continue;
        }
        assert_eq!(status, 503, "{v}");
        break (retry_after, v);
    };
    let (retry_after, v) = waited;
    assert!(accepted >= 2, "only {accepted} file(s) fitted");
    assert_eq!(v["error"]["code"], "wait_for_room", "{v}");
    let details = &v["error"]["details"];
    assert_eq!(details["ahead"], accepted as u64, "{v}");
    assert!(
        retry_after.is_some_and(|s| (2..=30).contains(&s)),
        "{retry_after:?}"
    );
    assert_eq!(details["retry_after"], retry_after.unwrap_or(0), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("waiting for room")),
        "{v}"
    );
    // Nothing of the waiting file was kept, and Redis never refused a write.
    let d = get_json(&c, &cookie, stack.url(&format!("/api/deposits/{id}"))).await;
    assert_eq!(d["files"].as_array().map(Vec::len), Some(accepted), "{d}");
    assert_eq!(oom_errors(&redis.url), 0);
}

#[tokio::test]
async fn three_hundred_parallel_wrong_passwords_get_at_most_the_allowed_tries() {
    let stack = Stack::start(Options::new("signin-race"));
    let c = client();
    let tries = (0..300).map(|_| {
        c.post(stack.url("/login"))
            .header("Origin", stack.origin())
            .form(&[("password", "wrong password!")])
            .send()
    });
    let answers = futures_util::future::join_all(tries).await;
    let statuses: Vec<u16> = answers
        .into_iter()
        .map(|r| r.map(|r| r.status().as_u16()).unwrap_or(0))
        .collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    // LOGIN_MAX_ATTEMPTS is 10: each attempt is counted before the password is checked.
    assert!(checked <= 10, "{checked} passwords were checked");
    assert_eq!(checked + refused, 300, "{statuses:?}");
}

#[tokio::test]
async fn sign_in_never_redirects_off_site_or_fails_on_a_crafted_next() {
    let stack = Stack::start(Options::new("signin-next"));
    let c = client();
    for next in [
        "/\t/evil.example/phish",
        "/\r\nSet-Cookie: stolen=1",
        "//evil.example",
        "/\\evil.example",
    ] {
        let res = c
            .post(stack.url("/login"))
            .header("Origin", stack.origin())
            .form(&[("password", fom_testkit::web::PASSWORD), ("next", next)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 303, "{next:?}");
        assert_eq!(res.headers()["location"], "/", "{next:?}");
    }
}

/// What Intuit's developer portal links to answers without a session: the licence agreement,
/// the privacy policy (defaults, then the operator's own text, escaped, then the default
/// again) and the page after a disconnect; changing a text needs a session.
#[tokio::test]
async fn legal_pages_answer_without_sign_in_and_take_the_operators_text() {
    let stack = Stack::start(Options::new("legal"));
    let c = client();
    for (path, says) in [
        ("/legal/eula", "End-user licence agreement"),
        ("/legal/privacy", "Privacy policy"),
        ("/qbo/disconnected", "QuickBooks is disconnected"),
    ] {
        let res = c.get(stack.url(path)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200, "{path}");
        let body = res.text().await.unwrap();
        assert!(body.contains(says), "{path}: {body}");
    }
    let put = |cookie: Option<String>, body: Value| {
        let mut r = c
            .put(stack.url("/api/settings/legal/privacy"))
            .header("Origin", stack.origin())
            .json(&body);
        if let Some(cookie) = cookie {
            r = r.header("Cookie", cookie);
        }
        r.send()
    };
    let res = put(None, serde_json::json!({"text": "Nothing."}))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);

    let cookie = stack.login(&c).await;
    let own = "Friends of Music keeps donor data for 7 years.\n\nAsk <the treasurer> & us.";
    let res = put(Some(cookie.clone()), serde_json::json!({"text": own}))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["own"], true);
    let body = c
        .get(stack.url("/legal/privacy"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.contains("<p>Friends of Music keeps donor data for 7 years.</p>"),
        "{body}"
    );
    assert!(
        body.contains("Ask &lt;the treasurer&gt; &amp; us."),
        "{body}"
    );
    assert!(!body.contains("<the treasurer>"));
    // Too long, or empty: refused by name, the text unchanged.
    let res = put(
        Some(cookie.clone()),
        serde_json::json!({"text": "x".repeat(50_001)}),
    )
    .await
    .unwrap();
    assert_eq!(res.status().as_u16(), 422);
    let res = put(Some(cookie.clone()), serde_json::json!({"text": "  "}))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 422);
    let v = get_json(&c, &cookie, stack.url("/api/settings/legal")).await;
    assert_eq!(v["privacy"]["own"], true);
    assert_eq!(v["eula"]["own"], false);
    // Back to the default.
    let res = put(Some(cookie.clone()), serde_json::json!({"text": null}))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let body = c
        .get(stack.url("/legal/privacy"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!body.contains("Friends of Music keeps"), "{body}");
    assert!(body.contains("QuickBooks"), "{body}");
}

/// The operations page and its API: a signed-in person only; worker processes with their
/// memory series (a stopped one stays listed), queue depths, jobs; a failed job retried once
/// (a second retry refused), purge bounds, and both actions in the activity log.
#[tokio::test]
async fn operations_page_shows_workers_and_retries_and_purges_jobs() {
    use fom_core::jobs::{now_ms, JobRecord, JobState, JobStore};
    use fom_core::keys::Keys;
    use fom_core::workers::{Heartbeat, WorkerRegistry};

    let stack = Stack::start(Options::new("operations"));
    let c = client();
    let res = c.get(stack.url("/api/operations")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let res = c.get(stack.url("/operations")).send().await.unwrap();
    assert_ne!(res.status().as_u16(), 200, "the page needs a session");

    // What a worker dyno would have written: a live child, a stopped one, a failed job.
    let conn =
        redis::aio::ConnectionManager::new(redis::Client::open(stack.redis_url.as_str()).unwrap())
            .await
            .unwrap();
    let keys = Keys::new(stack.prefix.clone());
    let reg = WorkerRegistry::new(conn.clone(), keys.clone());
    let now = now_ms();
    for (i, mb) in [31.5, 64.0, 48.2].into_iter().enumerate() {
        reg.note_rss("local-1-live", now - 10_000 + i as i64 * 5_000, mb)
            .await
            .unwrap();
    }
    reg.note_rss("local-2-gone", now - 600_000, 70.0)
        .await
        .unwrap();
    reg.beat(&Heartbeat {
        id: "local-1-live".into(),
        pid: 4242,
        rss_mb: 48.2,
        jobs_done: 3,
        current_job: None,
        last_seen: now,
        consuming: true,
    })
    .await
    .unwrap();
    let jobs = JobStore::new(conn.clone(), keys.clone(), 3);
    let job_id = "0123456789abcdef0123456789abcdef";
    let mut failed = JobRecord::new(job_id, "d1", "f1", "scan.pdf", now - 60_000);
    failed.state = JobState::Failed;
    failed.last_error = Some("the PDF is damaged".into());
    jobs.create(&failed).await.unwrap();

    let cookie = stack.login(&c).await;
    let res = c
        .get(stack.url("/operations"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-page=\"operations\""), "{html}");

    let v = get_json(&c, &cookie, stack.url("/api/operations")).await;
    let children = v["children"].as_array().unwrap();
    assert_eq!(children.len(), 2, "{v}");
    assert_eq!(children[0]["id"], "local-1-live", "live first: {v}");
    assert_eq!(children[0]["live"], true);
    assert_eq!(children[0]["pid"], 4242);
    assert_eq!(children[0]["series"].as_array().unwrap().len(), 3);
    assert_eq!(children[0]["series"][1][1], 64.0);
    assert_eq!(children[1]["id"], "local-2-gone");
    assert_eq!(children[1]["live"], false);
    let queues: Vec<&str> = v["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(queues, ["documents", "qbo"]);
    assert_eq!(v["queues"][0]["waiting"], 0);
    assert_eq!(v["counts"]["failed"], 1);
    assert_eq!(v["jobs"][0]["id"], job_id);
    let v = get_json(&c, &cookie, stack.url("/api/operations?state=bogus")).await;
    assert_eq!(v["error"]["code"], "bad_state");

    let post = |path: &str, body: Value| {
        c.post(stack.url(path))
            .header("Cookie", &cookie)
            .header("Origin", stack.origin())
            .json(&body)
            .send()
    };
    let res = post(&format!("/api/jobs/{job_id}/retry"), Value::Null)
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 202);
    assert_eq!(
        jobs.get(job_id).await.unwrap().unwrap().state,
        JobState::Queued
    );
    let v = get_json(&c, &cookie, stack.url("/api/operations")).await;
    assert_eq!(v["queues"][0]["waiting"], 1, "pushed onto its queue: {v}");
    let res = post(&format!("/api/jobs/{job_id}/retry"), Value::Null)
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 409);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_retryable");
    let res = post(
        "/api/jobs/ffffffffffffffffffffffffffffffff/retry",
        Value::Null,
    )
    .await
    .unwrap();
    assert_eq!(res.status().as_u16(), 404);

    // Purge: a done job older than asked goes, the queued one stays.
    let mut done = JobRecord::new("fedcba9876543210fedcba9876543210", "d1", "f2", "old.csv", 0);
    done.state = JobState::Done;
    done.updated_at = now - 3 * 3600 * 1000;
    jobs.create(&done).await.unwrap();
    let res = post(
        "/api/jobs/purge",
        serde_json::json!({"older_than_hours": 9000}),
    )
    .await
    .unwrap();
    assert_eq!(res.status().as_u16(), 422);
    let res = post(
        "/api/jobs/purge",
        serde_json::json!({"older_than_hours": 1}),
    )
    .await
    .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["purged"], 1);
    assert!(jobs.get(&done.id).await.unwrap().is_none());
    assert!(jobs.get(job_id).await.unwrap().is_some());

    let audit = get_json(&c, &cookie, stack.url("/api/audit?limit=20")).await;
    let kinds: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"job_retried"), "{kinds:?}");
    assert!(kinds.contains(&"jobs_purged"), "{kinds:?}");
}

/// The statements page's API without QuickBooks: the settings saved as a draft with what
/// they lack named, a field over its length refused, customers left out and counted again
/// (a malformed id refused), and no run without QuickBooks.
#[tokio::test]
async fn statement_settings_and_exclusions() {
    let stack = Stack::start(Options::new("statements"));
    let c = client();
    let res = c.get(stack.url("/api/statements")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let cookie = stack.login(&c).await;
    let page = c
        .get(stack.url("/statements"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("data-page=\"statements\""));

    let v = get_json(&c, &cookie, stack.url("/api/statements")).await;
    let lacking: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    assert_eq!(lacking, ["organization", "ein", "signer_name"]);
    assert!(v["settings"]["acknowledgement"]
        .as_str()
        .unwrap()
        .contains("No goods or services"));
    assert!(v["latest"].is_null());

    let send = |method: reqwest::Method, path: &str, body: Value| {
        c.request(method, stack.url(path))
            .header("Cookie", &cookie)
            .header("Origin", stack.origin())
            .json(&body)
            .send()
    };
    let res = send(
        reqwest::Method::PUT,
        "/api/statements/settings",
        serde_json::json!({"organization": "Friends of Music", "ein": "12-3456789"}),
    )
    .await
    .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["problems"][0]["field"], "signer_name", "{v}");
    let res = send(
        reqwest::Method::PUT,
        "/api/statements/settings",
        serde_json::json!({"organization": "x".repeat(2001)}),
    )
    .await
    .unwrap();
    assert_eq!(res.status().as_u16(), 422);
    let v = get_json(&c, &cookie, stack.url("/api/statements")).await;
    assert_eq!(
        v["settings"]["organization"], "Friends of Music",
        "kept: {v}"
    );

    let res = send(
        reqwest::Method::POST,
        "/api/statements/excluded",
        serde_json::json!({"customer_id": "58", "name": "First National Bank"}),
    )
    .await
    .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let res = send(
        reqwest::Method::POST,
        "/api/statements/excluded",
        serde_json::json!({"customer_id": "58:x", "name": "Bad"}),
    )
    .await
    .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let v = get_json(&c, &cookie, stack.url("/api/statements")).await;
    assert_eq!(
        v["excluded"],
        serde_json::json!([{"customer_id": "58", "name": "First National Bank"}])
    );
    let res = send(
        reqwest::Method::DELETE,
        "/api/statements/excluded/58",
        Value::Null,
    )
    .await
    .unwrap();
    assert_eq!(res.status().as_u16(), 204);
    let res = send(
        reqwest::Method::DELETE,
        "/api/statements/excluded/58",
        Value::Null,
    )
    .await
    .unwrap();
    assert_eq!(res.status().as_u16(), 404);

    // No QuickBooks here: no run; an unknown file kind is not found.
    let res = send(
        reqwest::Method::POST,
        "/api/statements",
        serde_json::json!({}),
    )
    .await
    .unwrap();
    assert_ne!(res.status().as_u16(), 202);
    let res = c
        .get(stack.url("/api/statements/stmt-0123456789abcdef0123456789abcdef/files/exe"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
}
