//! The protections of issue 16's attack run, tried the way the attack tried them: the real
//! fom-web on a real Redis, one server and key prefix per test (docs/SECURITY.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ops::ControlFlow;
use std::time::Duration;

use fom_core::deposits::DepositStore;
use fom_core::donation::Donation;
use fom_core::keys::Keys;
use fom_testkit::web::{client, Options, PrivateRedis, Stack, PASSWORD};
use futures_util::StreamExt;
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};

fn redis(stack: &Stack) -> redis::Connection {
    redis::Client::open(stack.redis_url.as_str())
        .unwrap()
        .get_connection()
        .unwrap()
}

/// GET `path` with the session `cookie`.
async fn get(stack: &Stack, c: &reqwest::Client, cookie: &str, path: &str) -> reqwest::Response {
    c.get(stack.url(path))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap()
}

async fn new_deposit(stack: &Stack, c: &reqwest::Client, cookie: &str) -> String {
    let res = c
        .post(stack.url("/api/deposits"))
        .header("Cookie", cookie)
        .header("Origin", stack.origin())
        .json(&json!({"name": "Test deposit"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let v: Value = res.json().await.unwrap();
    v["id"].as_str().unwrap().to_string()
}

/// A deposit with one CSV file that stays queued (no worker runs), so its event streams
/// stay open.
async fn queued_deposit(stack: &Stack, c: &reqwest::Client, cookie: &str) -> String {
    let id = new_deposit(stack, c, cookie).await;
    let csv = b"Date,Name,Amount,Transaction ID\n11/01,Ann Lee,10.00,tx1\n".to_vec();
    let res = c
        .post(stack.url(&format!("/api/deposits/{id}/files")))
        .header("Cookie", cookie)
        .header("Origin", stack.origin())
        .multipart(Form::new().part("files", Part::bytes(csv).file_name("a.csv")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 202);
    id
}

/// Signs in with `next`; the answer's status and Location.
async fn sign_in_to(stack: &Stack, c: &reqwest::Client, next: &str) -> (u16, String) {
    let res = c
        .post(stack.url("/login"))
        .header("Origin", stack.origin())
        .form(&[("password", PASSWORD), ("next", next)])
        .send()
        .await
        .unwrap();
    let location = res
        .headers()
        .get("location")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).to_string())
        .unwrap_or_default();
    (res.status().as_u16(), location)
}

#[tokio::test]
async fn sign_in_follows_only_a_same_site_path() {
    let stack = Stack::start(Options::new("next"));
    let c = client();
    for bad in [
        "/\t/evil.example/phish",
        "/%09/evil.example/phish",
        "/%2509/evil.example/phish",
        "/\r\nSet-Cookie: a=b",
        "/%0d%0aSet-Cookie: a=b",
        "//evil.example",
        "/%2F/evil.example",
        "/%2f%2fevil.example",
        "/\\evil.example",
        "/%5Cevil.example",
        "/ /evil.example",
        "/\u{3000}/evil.example",
        "https://evil.example",
        "evil.example",
        "",
    ] {
        let (status, location) = sign_in_to(&stack, &c, bad).await;
        assert_eq!((status, location.as_str()), (303, "/"), "next={bad:?}");
        // Nor does the sign-in page carry it into its form.
        let page = c
            .get(stack.url("/login"))
            .query(&[("next", bad)])
            .send()
            .await
            .unwrap();
        assert_eq!(page.status().as_u16(), 200, "next={bad:?}");
        let html = page.text().await.unwrap();
        assert!(!html.contains("evil.example"), "next={bad:?}: {html}");
    }
    for good in [
        "/deposits/0123456789abcdef0123456789abcdef",
        "/qbo/callback?code=A1&state=s-2&realmId=9",
    ] {
        assert_eq!(sign_in_to(&stack, &c, good).await, (303, good.to_string()));
    }
    // A path with letters outside ASCII is kept, written so a header can carry it.
    assert_eq!(
        sign_in_to(&stack, &c, "/dépôts").await,
        (303, "/d%C3%A9p%C3%B4ts".to_string())
    );
}

#[tokio::test]
async fn malformed_ids_are_404_before_any_redis_key_is_built() {
    let stack = Stack::start(Options::new("ids"));
    let c = client();
    let cookie = stack.login(&c).await;
    let id = new_deposit(&stack, &c, &cookie).await;
    // Keys of other types next to the ones the routes read: an id with a `:` reached them.
    let job = "0123456789abcdef0123456789abcdef";
    let mut r = redis(&stack);
    let _: () = redis::cmd("SET")
        .arg(format!("{}:job:{job}:result", stack.prefix))
        .arg("{}")
        .query(&mut r)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{}:deposit:{id}:send", stack.prefix))
        .arg(job)
        .query(&mut r)
        .unwrap();
    let record = "0b9f3d7e-3c1a-4c1e-9d4a-2f6a8f1b2c3d";
    let gets = [
        format!("/api/jobs/{job}:result"),
        "/api/jobs/..".to_string(),
        format!("/api/jobs/send-{job}x"),
        format!("/api/deposits/{id}:send"),
        format!("/api/deposits/{id}:send/progress"),
        format!("/api/deposits/{id}:send/events"),
        format!("/api/deposits/{id}:send/report"),
        format!("/api/deposits/{}/send", id.to_uppercase()),
        format!("/api/deposits/{id}/records/{record}x/preview"),
    ];
    for path in &gets {
        let res = get(&stack, &c, &cookie, path).await;
        assert_eq!(res.status().as_u16(), 404, "{path}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error"]["code"], "not_found", "{path}: {v}");
    }
    let writes = [
        (
            reqwest::Method::PATCH,
            format!("/api/deposits/{id}/records/not-a-record"),
        ),
        (
            reqwest::Method::DELETE,
            format!("/api/deposits/{id}/records/{record}:x"),
        ),
        (
            reqwest::Method::POST,
            format!("/api/deposits/{id}:send/files"),
        ),
        (
            reqwest::Method::POST,
            format!("/api/deposits/{id}/files/{job}:x/retry"),
        ),
        (reqwest::Method::DELETE, format!("/api/deposits/{id}:send")),
    ];
    for (method, path) in &writes {
        let res = c
            .request(method.clone(), stack.url(path))
            .header("Cookie", &cookie)
            .header("Origin", stack.origin())
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 404, "{method} {path}");
    }
    // The page of a malformed deposit id is an HTML page, like any missing deposit.
    let res = get(&stack, &c, &cookie, &format!("/deposits/{id}:send")).await;
    assert_eq!(res.status().as_u16(), 404);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    // Well-formed ids still reach their records.
    for (path, status) in [
        (format!("/api/deposits/{id}"), 200),
        (format!("/api/jobs/{job}"), 404),
        (format!("/api/jobs/send-{job}"), 404),
    ] {
        let res = get(&stack, &c, &cookie, &path).await;
        assert_eq!(res.status().as_u16(), status, "{path}");
    }
}

async fn open_events(
    stack: &Stack,
    c: &reqwest::Client,
    cookie: &str,
    id: &str,
) -> reqwest::Response {
    get(stack, c, cookie, &format!("/api/deposits/{id}/events")).await
}

#[tokio::test]
async fn event_streams_are_limited_and_end_with_the_session() {
    let stack = Stack::start(
        Options::new("streams")
            .env("EVENTS_MAX_PER_SESSION", "2")
            .env("EVENTS_MAX", "3"),
    );
    let c = client();
    let a = stack.login(&c).await;
    let b = stack.login(&c).await;
    let id = queued_deposit(&stack, &c, &a).await;

    let a1 = open_events(&stack, &c, &a, &id).await;
    let a2 = open_events(&stack, &c, &a, &id).await;
    assert_eq!((a1.status().as_u16(), a2.status().as_u16()), (200, 200));
    // A third for the same session: refused, with when to try again.
    let a3 = open_events(&stack, &c, &a, &id).await;
    assert_eq!(a3.status().as_u16(), 429);
    assert!(a3.headers().contains_key("retry-after"));
    let v: Value = a3.json().await.unwrap();
    assert_eq!(v["error"]["code"], "too_many_streams", "{v}");
    // Another session takes the last place overall; then the server is full.
    let b1 = open_events(&stack, &c, &b, &id).await;
    assert_eq!(b1.status().as_u16(), 200);
    let b2 = open_events(&stack, &c, &b, &id).await;
    assert_eq!(b2.status().as_u16(), 429, "over the overall limit");

    // A closed stream gives its place back.
    drop(a1);
    let started = std::time::Instant::now();
    loop {
        let again = open_events(&stack, &c, &a, &id).await;
        if again.status().as_u16() == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "a closed stream's place was never given back"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "a closed stream's place came back after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Signing out ends the session's open stream.
    let mut stream = b1.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with("event: progress"));
    let res = c
        .post(stack.url("/logout"))
        .header("Cookie", &b)
        .header("Origin", stack.origin())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    let signed_out = std::time::Instant::now();
    let mut rest = String::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(40), stream.next()).await {
            Ok(Some(Ok(chunk))) => rest.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(None) | Ok(Some(Err(_))) => break,
            Err(_) => panic!("the stream outlived the sign-out by 40 s: {rest}"),
        }
    }
    eprintln!(
        "stream ended {:.1} s after sign-out",
        signed_out.elapsed().as_secs_f64()
    );
    assert!(rest.contains("event: signed_out"), "{rest}");
    drop(a2);
}

#[tokio::test]
async fn editable_fields_have_length_limits() {
    let stack = Stack::start(Options::new("lengths"));
    let c = client();
    let cookie = stack.login(&c).await;
    // A deposit name over its limit is refused, naming the field.
    let res = c
        .post(stack.url("/api/deposits"))
        .header("Cookie", &cookie)
        .header("Origin", stack.origin())
        .json(&json!({"name": "n".repeat(121)}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 422);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_fields");
    assert_eq!(v["error"]["details"][0]["field"], "name", "{v}");

    // A record edit: every field over its limit is named, and nothing changes.
    let id = new_deposit(&stack, &c, &cookie).await;
    let conn =
        redis::aio::ConnectionManager::new(redis::Client::open(stack.redis_url.as_str()).unwrap())
            .await
            .unwrap();
    let store = DepositStore::new(conn, Keys::new(stack.prefix.clone()));
    let mut row = Donation::new("a.csv");
    row.memo = Some("as written".into());
    let rid = row.id.to_string();
    store
        .update(&id, |d| {
            d.records.push(row.clone());
            ControlFlow::<(), ()>::Continue(())
        })
        .await
        .unwrap();
    let res = c
        .patch(stack.url(&format!("/api/deposits/{id}/records/{rid}")))
        .header("Cookie", &cookie)
        .header("Origin", stack.origin())
        .json(&json!({"memo": "m".repeat(1001), "city": "c".repeat(101), "zip": "60201"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 422);
    let v: Value = res.json().await.unwrap();
    let fields: Vec<&str> = v["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["city", "memo"], "{v}");
    let d = store.get(&id).await.unwrap().unwrap();
    assert_eq!(d.records[0].memo.as_deref(), Some("as written"));
    assert_eq!(d.records[0].contact.zip, None);
    // At the limit it is taken.
    let res = c
        .patch(stack.url(&format!("/api/deposits/{id}/records/{rid}")))
        .header("Cookie", &cookie)
        .header("Origin", stack.origin())
        .json(&json!({"memo": "m".repeat(1000)}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

/// The `Max-Age` of a sign-in's cookie, and the session key's TTL in Redis (s).
async fn session_lifetimes(stack: &Stack) -> (u64, i64) {
    let c = client();
    let res = c
        .post(stack.url("/login"))
        .header("Origin", stack.origin())
        .form(&[("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let set = res.headers()["set-cookie"].to_str().unwrap().to_string();
    let max_age = set
        .split(';')
        .find_map(|p| p.trim().strip_prefix("Max-Age="))
        .unwrap()
        .parse()
        .unwrap();
    let mut r = redis(stack);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:session:*", stack.prefix))
        .query(&mut r)
        .unwrap();
    assert_eq!(keys.len(), 1);
    let ttl: i64 = redis::cmd("TTL").arg(&keys[0]).query(&mut r).unwrap();
    (max_age, ttl)
}

#[tokio::test]
async fn the_cookie_lives_as_long_as_the_session_can() {
    // Idle timeout shorter than the absolute lifetime: the cookie lasts the absolute lifetime
    // (an active treasurer is not signed out by it), the session key the idle time.
    let stack = Stack::start(
        Options::new("lifetime")
            .env("SESSION_TTL_HOURS", "1")
            .env("SESSION_MAX_HOURS", "2"),
    );
    let (max_age, ttl) = session_lifetimes(&stack).await;
    assert_eq!(max_age, 7200);
    assert!((3590..=3600).contains(&ttl), "{ttl}");
    drop(stack);
    // Absolute lifetime shorter: the session ends with it however active it is.
    let stack = Stack::start(
        Options::new("lifetime")
            .env("SESSION_TTL_HOURS", "12")
            .env("SESSION_MAX_HOURS", "1"),
    );
    let (max_age, ttl) = session_lifetimes(&stack).await;
    assert_eq!(max_age, 3600);
    assert!((3590..=3600).contains(&ttl), "{ttl}");
}

#[tokio::test]
async fn public_health_shows_status_and_memory_only() {
    const TOKEN: &str = "health-token-for-the-test-0123";
    let stack = Stack::start(Options::new("health-sec").env("HEALTH_TOKEN", TOKEN));
    let c = client();
    let public: Value = c
        .get(stack.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut keys: Vec<&String> = public.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["status", "system"], "{public}");
    assert_eq!(public["status"], "ok");
    assert!(
        public["system"]["memory_monitor"]["rss_mb"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let wrong: Value = c
        .get(stack.url("/health"))
        .header("X-Health-Token", "not the token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(wrong.get("redis").is_none(), "{wrong}");
    // The details: with the token, or signed in.
    let cookie = stack.login(&c).await;
    for req in [
        c.get(stack.url("/health")).header("X-Health-Token", TOKEN),
        c.get(stack.url("/health")).header("Cookie", &cookie),
    ] {
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        assert_eq!(v["redis"]["ok"], true, "{v}");
        assert!(v["queue"].is_object() && v["workers"].is_array(), "{v}");
        assert!(v["version"].is_string(), "{v}");
    }
}

fn is_html(res: &reqwest::Response) -> bool {
    res.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
}

#[tokio::test]
async fn errors_are_json_for_the_api_and_pages_for_people() {
    let stack = Stack::start(Options::new("errors"));
    let c = client();
    let cookie = stack.login(&c).await;
    let id = new_deposit(&stack, &c, &cookie).await;
    let record = "0b9f3d7e-3c1a-4c1e-9d4a-2f6a8f1b2c3d";
    let patch = || {
        c.patch(stack.url(&format!("/api/deposits/{id}/records/{record}")))
            .header("Cookie", &cookie)
            .header("Origin", stack.origin())
    };
    for (req, status, code) in [
        (
            patch()
                .header("Content-Type", "application/json")
                .body("{\"memo\": "),
            400,
            "bad_body",
        ),
        (
            patch().header("Content-Type", "text/plain").body("{}"),
            415,
            "unsupported_media_type",
        ),
        (
            patch()
                .header("Content-Type", "application/json")
                .body(format!("{{\"memo\": \"{}\"}}", "m".repeat(300 * 1024))),
            413,
            "body_too_large",
        ),
    ] {
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{code}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error"]["code"], code, "{v}");
        assert!(v["error"]["message"].as_str().unwrap().len() > 10, "{v}");
    }
    let res = get(&stack, &c, &cookie, "/api/no-such-thing").await;
    assert_eq!(res.status().as_u16(), 404);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_found");
    // Pages and forms answer pages.
    let res = get(&stack, &c, &cookie, "/no-such-page").await;
    assert_eq!(res.status().as_u16(), 404);
    assert!(is_html(&res));
    let res = c
        .post(stack.url("/login"))
        .header("Origin", stack.origin())
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 415);
    assert!(is_html(&res));
    assert!(res.text().await.unwrap().contains("<h1>"));
}

#[tokio::test]
async fn with_redis_down_pages_answer_pages() {
    let mut server = PrivateRedis::start(&[]);
    let stack = Stack::start(Options::new("redis-down").redis(&server.url));
    let c = client();
    let cookie = stack.login(&c).await;
    server.kill();
    let res = get(&stack, &c, &cookie, "/").await;
    assert_eq!(res.status().as_u16(), 503);
    assert!(is_html(&res));
    assert!(res.headers().contains_key("retry-after"));
    let html = res.text().await.unwrap();
    assert!(html.contains("storage"), "{html}");
    let res = get(&stack, &c, &cookie, "/api/deposits").await;
    assert_eq!(res.status().as_u16(), 503);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "storage_unavailable");
}

#[tokio::test]
async fn bidi_controls_are_stripped_from_file_names() {
    let stack = Stack::start(Options::new("bidi"));
    let c = client();
    let cookie = stack.login(&c).await;
    let id = new_deposit(&stack, &c, &cookie).await;
    let csv = b"Date,Name,Amount,Transaction ID\n11/01,Ann Lee,10.00,tx1\n".to_vec();
    // "gifts\u{202E}vsc.exe" shows as "giftsexe.csv"; sent as UTF-8, not percent-encoded.
    let name = "\u{2066}gifts\u{202E}vsc.\u{200F}exe\u{2069}.csv";
    let form = Form::new()
        .percent_encode_noop()
        .part("files", Part::bytes(csv).file_name(name));
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
    assert_eq!(v["files"][0]["name"], "giftsvsc.exe.csv", "{v}");
}

/// Pieces of a multipart body: delimiters (right, wrong and closing), part headers with odd
/// names and file names, file starts the sniffer knows, and arbitrary bytes.
fn multipart_piece() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    prop_oneof![
        Just(b"--B\r\n".to_vec()),
        Just(b"\r\n--B\r\n".to_vec()),
        Just(b"\r\n--B--\r\n".to_vec()),
        Just(b"--X\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"Content-Disposition: form-data; name=\"files\"; filename=\"a.csv\"\r\n".to_vec()),
        Just(b"Content-Disposition: form-data; name=\"other\"\r\n".to_vec()),
        Just(b"Content-Type: text/csv\r\n".to_vec()),
        "[ -~\u{202E}\u{0}]{0,40}".prop_map(|name| format!(
            "Content-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
        )
        .into_bytes()),
        Just(b"Date,Name,Amount\n11/01,Ann Lee,10.00\n".to_vec()),
        Just(b"%PDF-1.4\n".to_vec()),
        Just(vec![0xFF, 0xD8, 0xFF, 0xE0]),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

/// Any body, well-formed or not, gets an answer the page can show: never a 500, never a
/// dropped connection, and at most one verdict per allowed part plus the reason reading
/// stopped, each with a short name. The server answers afterwards.
#[test]
fn any_multipart_body_gets_bounded_verdicts() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let rt = tokio::runtime::Runtime::new().unwrap();
    // Two files at once, so 20 parts: the part limit is reached by generated bodies.
    let stack = Stack::start(Options::new("multiprop").env("MAX_UPLOAD_FILES", "2"));
    let c = client();
    let cookie = rt.block_on(stack.login(&c));
    let id = rt.block_on(new_deposit(&stack, &c, &cookie));
    let bodies = (
        prop::collection::vec(multipart_piece(), 0..60),
        prop_oneof![
            Just("multipart/form-data; boundary=B".to_string()),
            Just("multipart/form-data".to_string()),
            Just("multipart/form-data; boundary=\"B\"".to_string()),
            "[ -~]{0,30}",
        ],
    );
    let mut runner = TestRunner::new(Config::with_cases(96));
    let outcome = runner.run(&bodies, |(pieces, content_type)| {
        let body = pieces.concat();
        let (status, text) = rt.block_on(async {
            let res = c
                .post(stack.url(&format!("/api/deposits/{id}/files")))
                .header("Cookie", &cookie)
                .header("Origin", stack.origin())
                .header("Content-Type", content_type.as_str())
                .body(body)
                .send()
                .await
                .expect("the server answers");
            let status = res.status().as_u16();
            (status, res.text().await.unwrap_or_default())
        });
        prop_assert!(
            [202, 400, 408, 413, 415].contains(&status),
            "status {status}: {text}"
        );
        let v: Value = serde_json::from_str(&text).expect("a JSON answer");
        if let Some(files) = v["files"].as_array() {
            prop_assert!(files.len() <= 21, "{} verdicts", files.len());
            for f in files {
                let name = f["name"].as_str().unwrap_or_default();
                prop_assert!(name.chars().count() <= 200);
                let hidden = name.chars().any(|c| c == '\u{202E}' || c.is_control());
                prop_assert!(!hidden, "name {:?}", name);
                prop_assert!(f["accepted"].is_boolean());
            }
        } else {
            prop_assert!(v["error"]["code"].is_string(), "{text}");
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
    let health = rt.block_on(async { c.get(stack.url("/health")).send().await.unwrap() });
    assert_eq!(health.status().as_u16(), 200);
}
