//! Shared pieces of the end-to-end tests: a signed-in API client and the QuickBooks set-up
//! (the contract fake, the environment that points web and worker at it, the OAuth round trip).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::Engine;
use fom_testkit::qbo::{FakeQbo, FakeQboOptions};
use fom_testkit::web::{client, Options, Stack};
use serde_json::Value;

/// The test deployment's TOKEN_ENCRYPTION_KEY.
pub const KEY: [u8; 32] = [42u8; 32];

pub fn key_b64() -> String {
    base64::engine::general_purpose::STANDARD.encode(KEY)
}

pub fn fake(latency_ms: u64) -> FakeQbo {
    FakeQbo::start(FakeQboOptions {
        per_second: 1000,
        per_minute: 100_000,
        latency: Duration::from_millis(latency_ms),
        ..FakeQboOptions::default()
    })
    .unwrap()
}

pub fn qbo_options(tag: &'static str, fake: &FakeQbo) -> Options {
    Options::new(tag)
        .env("QBO_CLIENT_ID", fom_testkit::qbo::CLIENT_ID)
        .env("QBO_CLIENT_SECRET", fom_testkit::qbo::CLIENT_SECRET)
        .env("QBO_REDIRECT_URI", "http://localhost/qbo/callback")
        .env("TOKEN_ENCRYPTION_KEY", &key_b64())
        .env("INTUIT_DISCOVERY_URL", &fake.discovery_url())
        .env("QBO_API_BASE", &fake.api_base())
        .env("QBO_RETRY_BASE_MS", "50")
        .env("QBO_THROTTLE_WAIT_MS", "100")
        .env("QBO_MAX_ATTEMPTS", "6")
}

pub struct Api<'a> {
    pub stack: &'a Stack,
    pub cookie: String,
    pub c: reqwest::Client,
}

impl Api<'_> {
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .c
            .get(self.stack.url(path))
            .header("Cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self
            .c
            .request(method, self.stack.url(path))
            .header("Cookie", &self.cookie)
            .header("Origin", self.stack.origin());
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, body).await
    }
}

impl Api<'_> {
    /// One file in one upload request: (status, Retry-After seconds, answer).
    pub async fn upload(
        &self,
        deposit: &str,
        name: &str,
        bytes: Vec<u8>,
    ) -> (u16, Option<u64>, Value) {
        self.upload_many(deposit, vec![(name.to_string(), bytes)])
            .await
    }

    /// Several files in one request, as the page sends the photos picked together.
    pub async fn upload_many(
        &self,
        deposit: &str,
        files: Vec<(String, Vec<u8>)>,
    ) -> (u16, Option<u64>, Value) {
        let mut form = reqwest::multipart::Form::new();
        for (name, bytes) in files {
            form = form.part(
                "files",
                reqwest::multipart::Part::bytes(bytes).file_name(name),
            );
        }
        let res = self
            .c
            .post(self.stack.url(&format!("/api/deposits/{deposit}/files")))
            .header("Cookie", &self.cookie)
            .header("Origin", self.stack.origin())
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let retry_after = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        (status, retry_after, res.json().await.unwrap_or(Value::Null))
    }
}

/// `opts` with photos and scans read by the model, through the contract fake of Gemini.
pub fn with_gemini(opts: Options, fake: &fom_testkit::gemini::FakeGemini) -> Options {
    opts.env("EXTRACTOR", "gemini")
        .env("GEMINI_API_KEY", fom_testkit::gemini::DEFAULT_KEY)
        .env("GEMINI_BASE_URL", &fake.base_url())
        .env("GEMINI_RETRY_INITIAL_MS", "50")
        .env("GEMINI_RPM", "0")
}

pub async fn signed_in(stack: &Stack) -> Api<'_> {
    let c = client();
    let cookie = stack.login(&c).await;
    Api { stack, cookie, c }
}

/// `/qbo/connect` and Intuit's consent page: the browser's cookies (session and the OAuth
/// cookie that binds the state to it) and the callback path Intuit sends it back to.
pub async fn consent(api: &Api<'_>) -> (String, String) {
    let r = api
        .c
        .get(api.stack.url("/qbo/connect"))
        .header("Cookie", &api.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 302);
    let authorize = r.headers()["location"].to_str().unwrap().to_string();
    let browser = with_set_cookies(&api.cookie, &r);
    for part in [
        "client_id=fake-client-id",
        "response_type=code",
        "scope=com.intuit.quickbooks.accounting",
        "redirect_uri=",
        "state=",
    ] {
        assert!(authorize.contains(part), "{part} missing in {authorize}");
    }
    let r = api.c.get(&authorize).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 302);
    let back = r.headers()["location"].to_str().unwrap().to_string();
    let callback = format!("/qbo/callback?{}", back.split_once('?').unwrap().1);
    (browser, callback)
}

/// The browser's trip: /qbo/connect -> Intuit's page -> /qbo/callback.
pub async fn connect(api: &Api<'_>) {
    let (browser, callback) = consent(api).await;
    // The first callback connects; the state is single-use, so replaying it is refused.
    for expected in [303, 400] {
        let r = api
            .c
            .get(api.stack.url(&callback))
            .header("Cookie", &browser)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), expected, "callback");
    }
}

/// `cookie` plus the cookies `res` sets (name=value only), as one `Cookie` header.
pub fn with_set_cookies(cookie: &str, res: &reqwest::Response) -> String {
    let mut all = vec![cookie.to_string()];
    for v in res.headers().get_all("set-cookie") {
        let pair = v.to_str().unwrap().split(';').next().unwrap().to_string();
        all.push(pair);
    }
    all.join("; ")
}
