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

/// A small deterministic generator: the same company every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

/// A company's gifts for the statements' tests: `customers` people (one in seven without an address; the first is a
/// bank, not a donor) and `receipts` gifts spread over 2025 and 2026. Returns the bank's id and
/// every customer's.
pub fn seed_gifts(fake: &FakeQbo, customers: usize, receipts: usize) -> (String, Vec<String>) {
    let mut rng = Lcg(customers as u64 * 7 + receipts as u64);
    let item = fake
        .items()
        .into_iter()
        .find(|i| i["Name"] == "Donations")
        .map(|i| i["Id"].as_str().unwrap().to_string())
        .unwrap();
    let methods: Vec<String> = fake
        .payment_methods()
        .into_iter()
        .map(|m| m["Id"].as_str().unwrap().to_string())
        .collect();
    let bank = fake.add_customer(serde_json::json!({"DisplayName": "First National Bank",
                                        "CompanyName": "First National Bank"}));
    let mut ids = vec![bank.clone()];
    for i in 1..customers {
        let given = [
            "Ana", "Daniel", "Grace", "Tom", "Priya", "Luis", "Hannah", "Kwame",
        ][i % 8];
        let family = format!("Donor{i:04}");
        let mut c = serde_json::json!({"DisplayName": format!("{given} {family}"),
                           "GivenName": given, "FamilyName": family});
        if i % 7 != 0 {
            c["BillAddr"] = serde_json::json!({"Line1": format!("{} Elm St", 10 + i), "City": "Boston",
                                   "CountrySubDivisionCode": "MA", "PostalCode": "02108"});
        }
        let id = fake.add_customer(c);
        assert!(!id.is_empty());
        ids.push(id);
    }
    for _ in 0..receipts {
        let customer = &ids[rng.next(ids.len() as u64) as usize];
        let year = 2025 + rng.next(2) as i32;
        let date = chrono::NaiveDate::from_yo_opt(year, 1 + rng.next(365) as u32).unwrap();
        // Mostly small gifts, some of $250 or more, all with cents.
        let dollars = if rng.next(10) == 0 {
            250 + rng.next(1000)
        } else {
            5 + rng.next(240)
        };
        let cents = dollars * 100 + rng.next(100);
        let amount = serde_json::Number::from_f64(cents as f64 / 100.0).unwrap();
        let mut r = serde_json::json!({
            "CustomerRef": {"value": customer},
            "TxnDate": date.format("%Y-%m-%d").to_string(),
            "PaymentRefNum": format!("{}", 1000 + rng.next(9000)),
            "Line": [{"DetailType": "SalesItemLineDetail", "Amount": amount,
                      "SalesItemLineDetail": {"ItemRef": {"value": item}, "Qty": 1,
                                              "UnitPrice": amount}}],
        });
        if !methods.is_empty() && rng.next(3) > 0 {
            r["PaymentMethodRef"] =
                serde_json::json!({"value": methods[rng.next(methods.len() as u64) as usize]});
        }
        assert!(!fake.add_sales_receipt(r).is_empty());
    }
    (bank, ids)
}
