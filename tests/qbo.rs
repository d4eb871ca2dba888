//! QuickBooks through the real fom-web and fom-worker binaries against the contract fake of
//! QBO and Intuit OAuth (`fom_testkit::qbo`): connect, match, create, update, send one and
//! all, exactly once under crashes and lost answers, token rotation, escaping, secrecy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use base64::Engine;
use fom_core::deposits::DepositStore;
use fom_core::donation::{Donation, PaymentMethod};
use fom_core::keys::Keys;
use fom_core::qbo::tokens::TokenCipher;
use fom_e2e::{connect, fake, key_b64, qbo_options, signed_in, Api};
use fom_testkit::qbo::{Inject, RefreshStatus};
use fom_testkit::web::{client, Stack};
use redis::AsyncCommands;
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};

async fn deposits(stack: &Stack) -> DepositStore {
    let client = redis::Client::open(stack.redis_url.as_str()).unwrap();
    let conn = redis::aio::ConnectionManager::new(client).await.unwrap();
    DepositStore::new(conn, Keys::new(stack.prefix.clone()))
}

fn record(name: &str, amount: &str, check: &str) -> Donation {
    let mut d = Donation::new("test.pdf");
    d.payer.aliases = vec![name.to_string()];
    d.amount = Some(amount.parse().unwrap());
    d.payment_ref = Some(check.to_string());
    d.payment_method = Some(PaymentMethod::HandwrittenCheck);
    d.payment_date = Some(chrono::Local::now().date_naive());
    d
}

/// A row already matched to QuickBooks customer `customer_id`.
fn matched(name: &str, amount: &str, check: &str, customer_id: &str) -> Donation {
    let mut r = record(name, amount, check);
    r.qbo.customer_id = Some(customer_id.to_string());
    r.qbo.match_status = fom_core::donation::MatchStatus::Matched;
    r
}

/// `n` customers "`name` 0".. in the fake and a $20.00 row matched to each, check numbers
/// from `first_check`.
fn donors(
    fake: &fom_testkit::qbo::FakeQbo,
    name: &str,
    n: usize,
    first_check: usize,
) -> Vec<Donation> {
    (0..n)
        .map(|i| {
            let display = format!("{name} {i}");
            let cid = fake.add_customer(json!({ "DisplayName": display }));
            matched(&display, "20.00", &(first_check + i).to_string(), &cid)
        })
        .collect()
}

/// `fom-worker qbo ARGS...` pointed at the stack's Redis and the fake.
fn qbo_worker(
    stack: &Stack,
    fake: &fom_testkit::qbo::FakeQbo,
    args: &[&str],
) -> std::process::Command {
    let mut c = std::process::Command::new(fom_testkit::bin_path("fom-worker", "fom-worker"));
    c.arg("qbo")
        .args(args)
        .env("REDIS_URL", &stack.redis_url)
        .env("KEY_PREFIX", &stack.prefix)
        .env("QBO_CLIENT_ID", fom_testkit::qbo::CLIENT_ID)
        .env("QBO_CLIENT_SECRET", fom_testkit::qbo::CLIENT_SECRET)
        .env("QBO_REDIRECT_URI", "http://localhost/qbo/callback")
        .env("TOKEN_ENCRYPTION_KEY", key_b64())
        .env("INTUIT_DISCOVERY_URL", fake.discovery_url())
        .env("QBO_API_BASE", fake.api_base());
    c
}

/// Waits until the fake holds at least `n` sales receipts.
async fn wait_for_receipts(fake: &fom_testkit::qbo::FakeQbo, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while fake.sales_receipts().len() < n {
        assert!(Instant::now() < deadline, "sending never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `signal` to every worker child with a heartbeat in the stack's Redis; returns how many.
async fn signal_worker_children(stack: &Stack, signal: &str) -> usize {
    let client = redis::Client::open(stack.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys = Keys::new(stack.prefix.clone());
    let workers: Vec<String> = conn.zrange(keys.workers(), 0, -1).await.unwrap();
    let mut sent = 0;
    for w in workers {
        let pid: Option<i32> = conn.hget(keys.worker(&w), "pid").await.unwrap();
        if let Some(pid) = pid {
            std::process::Command::new("kill")
                .args([signal, &pid.to_string()])
                .status()
                .unwrap();
            sent += 1;
        }
    }
    sent
}

/// A deposit holding `records`, written the way the worker's merge writes them.
async fn deposit_with(stack: &Stack, records: Vec<Donation>) -> String {
    let store = deposits(stack).await;
    let d = store.create("QBO test").await.unwrap();
    store
        .update(&d.id, |dep| {
            dep.records = records.clone();
            std::ops::ControlFlow::Continue(())
        })
        .await
        .unwrap();
    d.id
}

async fn wait_send_job(api: &Api<'_>, deposit: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (_, s) = api.get(&format!("/api/deposits/{deposit}/send")).await;
        if s["job"]["state"] == "done" {
            return s;
        }
        assert!(Instant::now() < deadline, "send-all did not finish: {s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn stored_tokens(stack: &Stack) -> (String, fom_core::qbo::tokens::Tokens) {
    let client = redis::Client::open(stack.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let raw: String = conn
        .get(Keys::new(stack.prefix.clone()).qbo_connection())
        .await
        .unwrap();
    let tokens = TokenCipher::from_base64(&key_b64())
        .unwrap()
        .open(&raw)
        .unwrap();
    (raw, tokens)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_match_create_update_send_one_and_all() {
    let fake = fake(0);
    let grace = fake.add_customer(json!({"DisplayName": "Grace Kim", "GivenName": "Grace",
        "FamilyName": "Kim", "BillAddr": {"Line1": "18 Birch Lane", "City": "Madison",
        "CountrySubDivisionCode": "WI", "PostalCode": "53703"}}));
    let daniel = fake.add_customer(
        json!({"DisplayName": "Daniel Okafor", "GivenName": "Daniel",
        "FamilyName": "Okafor", "PrimaryEmailAddr": {"Address": "old@example.org"},
        "BillAddr": {"Line1": "9 Old Mill Rd", "City": "Evanston",
        "CountrySubDivisionCode": "IL", "PostalCode": "60201"}}),
    );
    let obrien = fake.add_customer(json!({"DisplayName": "Mary O'Brien"}));
    let logs = tempfile::tempdir().unwrap();
    let stack = Stack::start(
        qbo_options("qbo-flow", &fake)
            .with_worker()
            // This flow sends the online gifts it reads (the default lists them only).
            .env("ONLINE_GIFTS", "send")
            .logs_in(logs.path()),
    );
    let api = signed_in(&stack).await;

    let (s, status) = api.get("/api/qbo/status").await;
    assert_eq!(s, 200);
    assert_eq!(status["connected"], false);
    // A callback without a state, or with a forged one, is refused.
    for q in ["code=x&realmId=1", "code=x&state=forged&realmId=1"] {
        let r = api
            .c
            .get(stack.url(&format!("/qbo/callback?{q}")))
            .header("Cookie", &api.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{q}");
    }
    connect(&api).await;
    let (_, status) = api.get("/api/qbo/status").await;
    assert_eq!(status["connected"], true, "{status}");
    assert_eq!(status["environment"], "sandbox");
    assert_eq!(status["realm_id"], fom_testkit::qbo::REALM_ID);
    assert!(status["access_expires_at"].as_str().unwrap().len() > 10);
    assert!(status["refresh_expires_at"].as_str().unwrap().len() > 10);
    assert_eq!(status["reconnect_needed"], false);

    // Tokens at rest are sealed: the raw value holds neither token.
    let (raw, tokens) = stored_tokens(&stack).await;
    assert!(!raw.contains(&tokens.access_token) && !raw.contains(&tokens.refresh_token));
    let other =
        TokenCipher::from_base64(&base64::engine::general_purpose::STANDARD.encode([1u8; 32]))
            .unwrap();
    assert!(other.open(&raw).is_err());

    // Upload the online gifts: the worker extracts, then matches against QuickBooks.
    let (_, dep) = api.post("/api/deposits", None).await;
    let id = dep["id"].as_str().unwrap().to_string();
    let csv = std::fs::read(fom_testkit::repo_root().join("examples/online-gifts.csv")).unwrap();
    let r = api
        .c
        .post(stack.url(&format!("/api/deposits/{id}/files")))
        .header("Cookie", &api.cookie)
        .header("Origin", stack.origin())
        .multipart(Form::new().part("files", Part::bytes(csv).file_name("online-gifts.csv")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let deadline = Instant::now() + Duration::from_secs(60);
    let records = loop {
        let (_, d) = api.get(&format!("/api/deposits/{id}")).await;
        let recs = d["records"].as_array().cloned().unwrap_or_default();
        let files_done = d["files"]
            .as_array()
            .is_some_and(|f| f.iter().all(|f| f["state"] == "done"));
        if files_done && recs.iter().all(|r| r["qbo"]["match_status"] != "unmatched") {
            break recs;
        }
        assert!(Instant::now() < deadline, "no matched records: {d}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let by_name = |n: &str| -> Value {
        records
            .iter()
            .find(|r| r["payer"]["aliases"][0].as_str().unwrap_or("").contains(n))
            .cloned()
            .unwrap_or_else(|| panic!("{n} not among {records:?}"))
    };
    let kim = by_name("Kim");
    assert_eq!(kim["qbo"]["match_status"], "matched");
    assert_eq!(kim["qbo"]["customer_id"], grace.as_str());
    let okafor = by_name("Okafor");
    assert_eq!(okafor["qbo"]["match_status"], "address_changed");
    assert_eq!(okafor["qbo"]["address_snapshot"]["line1"], "9 Old Mill Rd");
    let chen = by_name("Chen");
    assert_eq!(chen["qbo"]["match_status"], "new_donor");

    // Accept Daniel's new address: a sparse update that keeps his other fields.
    let path = format!(
        "/api/deposits/{id}/records/{}",
        okafor["id"].as_str().unwrap()
    );
    let (s, r) = api.post(&format!("{path}/address"), None).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["qbo"]["match_status"], "matched");
    let c = fake.customer(&daniel).unwrap();
    assert_eq!(c["BillAddr"]["Line1"], "77 Lake Shore Dr");
    assert_eq!(
        c["PrimaryEmailAddr"]["Address"], "old@example.org",
        "email overwritten"
    );
    assert_eq!(c["GivenName"], "Daniel");
    assert_eq!(c["SyncToken"], "1");

    // Emily is new: sending is refused with a reason until she exists in QuickBooks.
    let chen_path = format!(
        "/api/deposits/{id}/records/{}",
        chen["id"].as_str().unwrap()
    );
    let (s, refused) = api.post(&format!("{chen_path}/send"), None).await;
    assert_eq!(s, 422);
    assert!(
        refused["message"].as_str().unwrap().contains("customer"),
        "{refused}"
    );
    let (s, created) = api.post(&format!("{chen_path}/customer"), None).await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["record"]["qbo"]["match_status"], "matched");
    let new_id = created["result"]["customer"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(fake.customer(&new_id).unwrap()["DisplayName"], "Emily Chen");
    // The same click again is the same write (same requestid): the same customer back.
    let (s, again) = api.post(&format!("{chen_path}/customer"), None).await;
    assert_eq!(s, 201, "{again}");
    assert_eq!(again["result"]["customer"]["id"], new_id.as_str());
    // Another row with that name hits QuickBooks's unique names: a choice, not a 500.
    let other = deposit_with(&stack, vec![record("Emily Chen", "5.00", "12")]).await;
    let (_, d) = api.get(&format!("/api/deposits/{other}")).await;
    let other_path = format!(
        "/api/deposits/{other}/records/{}",
        d["records"][0]["id"].as_str().unwrap()
    );
    let (s, dup) = api.post(&format!("{other_path}/customer"), None).await;
    assert_eq!(s, 409, "{dup}");
    assert_eq!(dup["error"]["code"], "qbo_duplicate_name");
    assert_eq!(dup["error"]["details"]["existing"]["id"], new_id.as_str());
    let (s, renamed) = api
        .post(
            &format!("{other_path}/customer"),
            Some(json!({"display_name": "Emily Chen (Portland)"})),
        )
        .await;
    assert_eq!(s, 201, "{renamed}");
    // A manual match and its revert.
    let (s, m) = api
        .post(
            &format!("{other_path}/match"),
            Some(json!({"customer_id": new_id})),
        )
        .await;
    assert_eq!(s, 200, "{m}");
    assert_eq!(m["qbo"]["customer_id"], new_id.as_str());
    let (s, m) = api
        .send(
            reqwest::Method::DELETE,
            &format!("{other_path}/match"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert!(m["qbo"]["customer_id"].is_null());

    // Escaping: O'Brien found by search; Smith\Jones created and found again.
    let (_, found) = api.get("/api/qbo/customers?q=O%27Brien").await;
    assert_eq!(found["customers"][0]["id"], obrien.as_str(), "{found}");
    let sj = deposit_with(&stack, vec![record("Smith\\Jones", "10.00", "77")]).await;
    let (_, d) = api.get(&format!("/api/deposits/{sj}")).await;
    let sj_path = format!(
        "/api/deposits/{sj}/records/{}",
        d["records"][0]["id"].as_str().unwrap()
    );
    let (s, created) = api.post(&format!("{sj_path}/customer"), None).await;
    assert_eq!(s, 201, "{created}");
    let (_, found) = api.get("/api/qbo/customers?q=Smith%5CJones").await;
    assert_eq!(found["customers"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["customers"][0]["display_name"], "Smith\\Jones");

    // An expired access token is refreshed once and the call goes through; a throttle is
    // not sat out inside a page's request: 503 qbo_busy at once, in our words, with when to
    // ask again (the page then asks again by itself).
    fake.expire_access_tokens();
    fake.inject(Inject::Throttle, 1, Some("/query"));
    let (s, busy) = api.get("/api/qbo/items").await;
    assert_eq!(s, 503, "{busy}");
    assert_eq!(busy["error"]["code"], "qbo_busy", "{busy}");
    let message = busy["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("QuickBooks is busy"), "{message}");
    assert!(
        !message.contains("ThrottleExceeded") && !message.contains("3001"),
        "{message}"
    );
    let (s, items) = api.get("/api/qbo/items").await;
    assert_eq!(s, 200, "{items}");
    let (_, defaults) = api.get("/api/qbo/defaults").await;
    assert_eq!(defaults["item_name"], "Donations");
    assert_eq!(defaults["deposit_account_name"], "12000 Undeposited Funds");
    assert_eq!(defaults["payment_method_name"], "Check");

    // Preview, then send one.
    let kim_path = format!("/api/deposits/{id}/records/{}", kim["id"].as_str().unwrap());
    let (s, preview) = api.get(&format!("{kim_path}/preview")).await;
    assert_eq!(s, 200);
    assert_eq!(preview["ready"], true, "{preview}");
    let (s, sent) = api.post(&format!("{kim_path}/send"), None).await;
    assert_eq!(s, 201, "{sent}");
    let receipts = fake.sales_receipts();
    assert_eq!(receipts.len(), 1);
    let r0 = &receipts[0];
    assert_eq!(r0["CustomerRef"]["value"], grace.as_str());
    assert_eq!(
        r0["DepositToAccountRef"]["value"],
        defaults["deposit_account_id"]
    );
    assert_eq!(
        r0["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"],
        defaults["item_id"]
    );
    assert_eq!(r0["TotalAmt"].as_f64(), Some(25.0));
    assert_eq!(r0["PaymentRefNum"], kim["payment_ref"]);
    assert!(
        r0.get("PaymentMethodRef").is_none(),
        "online gifts carry no Check method"
    );
    assert!(r0["PrivateNote"]
        .as_str()
        .unwrap()
        .contains(kim["id"].as_str().unwrap()));
    // Every write carried a requestid and every call minorversion 75.
    for req in fake
        .requests()
        .iter()
        .filter(|r| r.path.contains("/v3/company/"))
    {
        assert_eq!(req.minorversion.as_deref(), Some("75"), "{req:?}");
        if req.method == "POST" {
            assert!(req.requestid.is_some(), "{req:?}");
        }
    }

    // Send all: the other rows go, the sent one is skipped, a second run adds nothing.
    let (s, job) = api.post(&format!("/api/deposits/{id}/send"), None).await;
    assert_eq!(s, 202, "{job}");
    let done = wait_send_job(&api, &id, 60).await;
    let results = done["results"]["results"].as_array().unwrap();
    assert_eq!(results.len(), records.len());
    assert!(results.iter().any(|r| r["outcome"] == "already_sent"));
    assert!(
        results.iter().all(|r| r["outcome"] != "error"),
        "{results:?}"
    );
    let total_sent = fake.sales_receipts().len();
    assert_eq!(total_sent, records.len(), "one receipt per row");
    let (_, d) = api.get(&format!("/api/deposits/{id}")).await;
    for r in d["records"].as_array().unwrap() {
        assert_eq!(r["qbo"]["sync_status"], "sent", "{r}");
        assert!(r["qbo"]["sales_receipt_id"].is_string());
    }
    let (s, _) = api.post(&format!("/api/deposits/{id}/send"), None).await;
    assert_eq!(s, 202);
    let again = wait_send_job(&api, &id, 60).await;
    assert!(again["results"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["outcome"] == "already_sent"));
    assert_eq!(fake.sales_receipts().len(), total_sent);

    // Disconnect revokes the grant at Intuit.
    let (s, out) = api.post("/api/qbo/disconnect", None).await;
    assert_eq!(s, 200);
    assert_eq!(out["revoked"], true);
    assert_eq!(fake.revoked(), 1);
    let (_, status) = api.get("/api/qbo/status").await;
    assert_eq!(status["connected"], false);

    // No token ever reached the logs.
    drop(stack);
    for file in ["web.log", "worker.log"] {
        let text = std::fs::read_to_string(logs.path().join(file)).unwrap();
        assert!(
            text.contains("qbo"),
            "{file} has no QuickBooks lines: logging not captured"
        );
        for secret in [&tokens.access_token, &tokens.refresh_token] {
            assert!(!text.contains(secret.as_str()), "{file} leaks a token");
        }
        assert!(!text.to_ascii_lowercase().contains("bearer "), "{file}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_all_is_exactly_once_across_kill_9_and_lost_answers() {
    // Every call takes 150 ms, so the worker is killed with receipts half sent.
    let fake = fake(150);
    let ids: Vec<String> = (0..8)
        .map(|i| fake.add_customer(json!({"DisplayName": format!("Donor {i}")})))
        .collect();
    let stack = Stack::start(
        qbo_options("qbo-once", &fake)
            .with_worker()
            .env("WORKER_MISSED_HEARTBEATS", "3"),
    );
    let api = signed_in(&stack).await;
    connect(&api).await;
    let records: Vec<Donation> = ids
        .iter()
        .enumerate()
        .map(|(i, cid)| {
            matched(
                &format!("Donor {i}"),
                &format!("{}.00", 10 + i),
                &format!("{}", 100 + i),
                cid,
            )
        })
        .collect();
    let id = deposit_with(&stack, records).await;

    let (s, _) = api.post(&format!("/api/deposits/{id}/send"), None).await;
    assert_eq!(s, 202);
    wait_for_receipts(&fake, 3).await;
    // kill -9 the worker child running the job; the supervisor starts a fresh one, which
    // recovers the orphaned job and sends the rest.
    let killed = signal_worker_children(&stack, "-9").await;
    assert_eq!(killed, 1);
    let before = fake.sales_receipts().len();
    assert!(before < 8, "the kill came too late to prove anything");
    let api2 = &api;
    let done = wait_send_job(api2, &id, 90).await;
    assert!(done["job"]["crashes"].as_u64().unwrap() >= 1, "{done}");
    let receipts = fake.sales_receipts();
    assert_eq!(receipts.len(), 8, "one receipt per record after the crash");
    let mut customers: Vec<&str> = receipts
        .iter()
        .map(|r| r["CustomerRef"]["value"].as_str().unwrap())
        .collect();
    customers.sort_unstable();
    customers.dedup();
    assert_eq!(customers.len(), 8);

    // A 500 after QuickBooks made the receipt, with requestid replay off (the reported SDK
    // bug): the retry finds the receipt instead of making a second one.
    fake.set_requestid_dedupe(false);
    let cid = fake.add_customer(json!({"DisplayName": "Lost Answer"}));
    let r = matched("Lost Answer", "55.00", "901", &cid);
    let dep = deposit_with(&stack, vec![r.clone()]).await;
    fake.inject(Inject::ServerErrorAfterWrite, 1, Some("/salesreceipt"));
    let (s, sent) = api
        .post(&format!("/api/deposits/{dep}/records/{}/send", r.id), None)
        .await;
    assert_eq!(s, 200, "{sent}");
    assert_eq!(sent["outcome"], "found_existing");
    let mine: Vec<Value> = fake
        .sales_receipts()
        .into_iter()
        .filter(|x| x["CustomerRef"]["value"] == cid.as_str())
        .collect();
    assert_eq!(mine.len(), 1);
    // And again through send-all: already sent, nothing new.
    let (s, _) = api.post(&format!("/api/deposits/{dep}/send"), None).await;
    assert_eq!(s, 202);
    wait_send_job(&api, &dep, 60).await;
    assert_eq!(fake.sales_receipts().len(), 9);
}

/// Receipts in Friends of Music's layout, field by field: a handwritten check and a check
/// from a CSV list (both with the Check payment method); then a layout of the treasurer's own
/// from the settings API (a bad template refused by name) is what the next receipt says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_follow_the_receipt_layout_field_by_field() {
    let fake = fake(0);
    let jane = fake.add_customer(json!({"DisplayName": "O'Brien, Jane"}));
    let stack = Stack::start(qbo_options("qbo-layout", &fake));
    let api = signed_in(&stack).await;
    connect(&api).await;
    let gift = chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let mut check = matched("Jane O'Brien", "125.00", "1043", &jane);
    check.payment_date = Some(gift);
    check.memo = Some("In memory of Ann".into());
    let mut listed = matched("Jane O'Brien", "40.00", "2001", &jane);
    listed.payment_date = Some(gift);
    listed.payment_method = Some(PaymentMethod::Check);
    let mut third = matched("Jane O'Brien", "10.00", "2002", &jane);
    third.payment_date = Some(gift);
    let id = deposit_with(&stack, vec![check.clone(), listed.clone(), third.clone()]).await;
    let send = |r: &Donation| format!("/api/deposits/{id}/records/{}/send", r.id);
    let (_, defaults) = api.get("/api/qbo/defaults").await;
    let today = chrono::Local::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string();

    for r in [&check, &listed] {
        let (s, sent) = api.post(&send(r), None).await;
        assert_eq!(s, 201, "{sent}");
    }
    let receipts = fake.sales_receipts();
    assert_eq!(receipts.len(), 2);
    let by_ref = |no: &str| {
        receipts
            .iter()
            .find(|r| r["PaymentRefNum"] == no)
            .unwrap_or_else(|| panic!("{no}: {receipts:?}"))
            .clone()
    };
    let r = by_ref("1043");
    let line = &r["Line"][0];
    assert_eq!(
        line["Description"],
        "1043_2026-11-20_125.00_O'Brien_Jane_In memory of Ann"
    );
    assert_eq!(r["DocNumber"], format!("{today}_1043"));
    assert_eq!(
        r["CustomerMemo"]["value"],
        format!("auto import on {today}")
    );
    assert_eq!(r["TxnDate"], "2026-11-20");
    assert_eq!(line["SalesItemLineDetail"]["ServiceDate"], "2026-11-20");
    assert_eq!(
        r["PaymentMethodRef"]["value"],
        defaults["payment_method_id"]
    );
    assert!(r["PrivateNote"]
        .as_str()
        .unwrap()
        .contains(&format!("[fom:{}]", check.id)));
    // The check from a CSV list: the Check payment method too.
    let r = by_ref("2001");
    assert_eq!(
        r["PaymentMethodRef"]["value"],
        defaults["payment_method_id"]
    );
    assert_eq!(
        r["Line"][0]["Description"],
        "2001_2026-11-20_40.00_O'Brien_Jane"
    );

    // The settings API: a misspelt field is refused by name; the preview shows what a layout
    // makes of an example; the saved layout is what the next receipt says.
    let put = |body: Value| api.send(reqwest::Method::PUT, "/api/settings/receipt", Some(body));
    let misspelt = json!({"description": "{ref}_{nmae}", "doc_number": "",
                          "customer_memo": "", "service_date": true});
    let (s, bad) = put(misspelt.clone()).await;
    assert_eq!(s, 422, "{bad}");
    assert_eq!(bad["error"]["details"][0]["field"], "description", "{bad}");
    let (s, shown) = api
        .post("/api/settings/receipt/preview", Some(misspelt))
        .await;
    assert_eq!(s, 200, "{shown}");
    assert_eq!(shown["problems"][0]["field"], "description", "{shown}");
    let mine = json!({"description": "Gift {ref} from {name}", "doc_number": "",
                      "customer_memo": "Thank you, {first}![ ({memo})]", "service_date": false});
    let (s, preview) = api
        .post("/api/settings/receipt/preview", Some(mine.clone()))
        .await;
    assert_eq!(s, 200, "{preview}");
    assert_eq!(preview["description"], "Gift 1043 from Jane O'Brien");
    assert_eq!(
        preview["customer_memo"],
        "Thank you, Jane! (In memory of Ann)"
    );
    assert!(preview["service_date"].is_null());
    let (s, saved) = put(mine).await;
    assert_eq!(s, 200, "{saved}");
    let (_, got) = api.get("/api/settings/receipt").await;
    assert_eq!(got["layout"]["description"], "Gift {ref} from {name}");
    let (s, sent) = api.post(&send(&third), None).await;
    assert_eq!(s, 201, "{sent}");
    let receipts = fake.sales_receipts();
    let r = receipts
        .iter()
        .find(|r| r["PaymentRefNum"] == "2002")
        .unwrap();
    assert_eq!(r["Line"][0]["Description"], "Gift 2002 from Jane O'Brien");
    assert_eq!(r["CustomerMemo"]["value"], "Thank you, Jane!");
    assert!(r["Line"][0]["SalesItemLineDetail"]
        .get("ServiceDate")
        .is_none());
    // No DocNumber sent: QuickBooks numbered it.
    assert!(!r["DocNumber"].as_str().unwrap_or("").contains('_'), "{r}");
    assert_eq!(fake.sales_receipts().len(), 3);
}

/// Online gifts are listed in the report only by default: send-all reports them kept out and
/// makes no receipt for them, and a row kept out by hand is skipped too; once the deposit says
/// "send", its online rows are sent, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_gifts_are_kept_out_unless_the_deposit_sends_them() {
    let fake = fake(0);
    let mut rows = donors(&fake, "Online Donor", 2, 900);
    for r in &mut rows {
        r.payment_method = Some(PaymentMethod::Online);
        r.payment_ref = Some(format!("ch_{}", r.payment_ref.clone().unwrap_or_default()));
    }
    rows.extend(donors(&fake, "Check Donor", 2, 910));
    let stack = Stack::start(qbo_options("qbo-online", &fake).with_worker());
    let api = signed_in(&stack).await;
    connect(&api).await;
    let id = deposit_with(&stack, rows.clone()).await;
    let (_, d) = api.get(&format!("/api/deposits/{id}")).await;
    assert_eq!(d["online_gifts"], "report", "{d}");
    assert_eq!(d["kept_out"][rows[0].id.to_string()]["by"], "online", "{d}");
    // The second check is kept out by hand.
    let kept = rows[3].id;
    let (s, r) = api
        .send(
            reqwest::Method::PATCH,
            &format!("/api/deposits/{id}/records/{kept}"),
            Some(json!({"keep_out": true})),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    // Sending an online row by itself is refused, with why.
    let (s, one) = api
        .post(
            &format!("/api/deposits/{id}/records/{}/send", rows[0].id),
            None,
        )
        .await;
    assert_eq!(s, 409, "{one}");
    assert_eq!(one["outcome"], "kept_out");
    let (s, _) = api.post(&format!("/api/deposits/{id}/send"), None).await;
    assert_eq!(s, 202);
    let done = wait_send_job(&api, &id, 60).await;
    let outcomes: Vec<(String, String)> = done["results"]["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{done}"))
        .iter()
        .map(|r| {
            (
                r["record_id"].as_str().unwrap().to_string(),
                r["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let outcome = |i: usize| {
        outcomes
            .iter()
            .find(|(id, _)| *id == rows[i].id.to_string())
            .map(|(_, o)| o.clone())
    };
    assert_eq!(outcome(0).as_deref(), Some("kept_out"), "{outcomes:?}");
    assert_eq!(outcome(1).as_deref(), Some("kept_out"));
    assert_eq!(outcome(2).as_deref(), Some("sent"));
    assert_eq!(outcome(3).as_deref(), Some("kept_out"));
    assert_eq!(fake.sales_receipts().len(), 1);

    // The deposit sends its online gifts: they go, once each; the row kept out by hand stays.
    let (s, o) = api
        .post(
            &format!("/api/deposits/{id}/options"),
            Some(json!({"online_gifts": "send"})),
        )
        .await;
    assert_eq!(s, 200, "{o}");
    assert_eq!(o["online_gifts"], "send");
    let (s, _) = api.post(&format!("/api/deposits/{id}/send"), None).await;
    assert_eq!(s, 202);
    wait_send_job(&api, &id, 60).await;
    let receipts = fake.sales_receipts();
    assert_eq!(receipts.len(), 3, "{receipts:?}");
    let refs: Vec<&str> = receipts
        .iter()
        .map(|r| r["PaymentRefNum"].as_str().unwrap())
        .collect();
    assert!(
        refs.contains(&"ch_900") && refs.contains(&"ch_901"),
        "{refs:?}"
    );
    assert!(!refs.contains(&"911"), "{refs:?}");
    let (_, d) = api.get(&format!("/api/deposits/{id}")).await;
    assert_eq!(d["kept_out"][kept.to_string()]["by"], "treasurer", "{d}");
}

/// A fresh company without an item for donations: sending says which list to set up
/// (`choose: item`) instead of failing; the item created and chosen from the page's routes,
/// the same row goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_company_without_a_donations_item_is_set_up_from_the_page() {
    let fake = fake(0);
    assert!(fake.deactivate_item("Donations"));
    let rows = donors(&fake, "Setup Donor", 1, 700);
    let stack = Stack::start(qbo_options("qbo-setup", &fake));
    let api = signed_in(&stack).await;
    connect(&api).await;
    let id = deposit_with(&stack, rows.clone()).await;
    let send = format!("/api/deposits/{id}/records/{}/send", rows[0].id);
    let (s, refused) = api.post(&send, None).await;
    assert_eq!(s, 422, "{refused}");
    assert_eq!(refused["choose"], "item", "{refused}");
    assert_eq!(fake.sales_receipts().len(), 0);
    let (s, item) = api
        .post("/api/qbo/items", Some(json!({"name": "Gifts"})))
        .await;
    assert_eq!(s, 201, "{item}");
    let (s, d) = api
        .send(
            reqwest::Method::PUT,
            "/api/qbo/defaults",
            Some(json!({"item_id": item["Id"]})),
        )
        .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["item_name"], "Gifts");
    let (s, sent) = api.post(&send, None).await;
    assert_eq!(s, 201, "{sent}");
    let receipts = fake.sales_receipts();
    assert_eq!(receipts.len(), 1);
    assert_eq!(
        receipts[0]["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"],
        item["Id"]
    );
}

/// A sent row edited: it says "Edited" and that its receipt is out of date; updating it sends
/// a sparse update with a fresh SyncToken, the receipt keeps its number, and one receipt
/// exists for the row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sent_rows_receipt_is_updated_after_an_edit() {
    let fake = fake(0);
    let rows = donors(&fake, "Edited Donor", 1, 800);
    let stack = Stack::start(qbo_options("qbo-update", &fake));
    let api = signed_in(&stack).await;
    connect(&api).await;
    let id = deposit_with(&stack, rows.clone()).await;
    let path = format!("/api/deposits/{id}/records/{}", rows[0].id);
    let (s, sent) = api.post(&format!("{path}/send"), None).await;
    assert_eq!(s, 201, "{sent}");
    let before = fake.sales_receipts()[0].clone();
    let (s, r) = api
        .send(
            reqwest::Method::PATCH,
            &path,
            Some(json!({"amount": "35.00", "memo": "Corrected"})),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["qbo"]["receipt_outdated"], true, "{r}");
    assert_eq!(r["edited"], json!(["amount", "memo"]), "{r}");
    let (s, r) = api.post(&format!("{path}/receipt"), None).await;
    assert_eq!(s, 200, "{r}");
    assert!(r["qbo"].get("receipt_outdated").is_none(), "{r}");
    let receipts = fake.sales_receipts();
    assert_eq!(receipts.len(), 1);
    let after = &receipts[0];
    assert_eq!(after["Id"], before["Id"]);
    assert_eq!(after["SyncToken"], "1");
    assert_eq!(after["TotalAmt"].as_f64(), Some(35.0));
    assert_eq!(after["DocNumber"], before["DocNumber"]);
    assert!(after["PrivateNote"]
        .as_str()
        .unwrap()
        .starts_with("Corrected"));
    // A row never sent has no receipt to update.
    let fresh = donors(&fake, "Unsent Donor", 1, 810);
    let other = deposit_with(&stack, fresh.clone()).await;
    let (s, e) = api
        .post(
            &format!("/api/deposits/{other}/records/{}/receipt", fresh[0].id),
            None,
        )
        .await;
    assert_eq!(s, 422, "{e}");
}

/// Matching beyond names: a row whose name finds no customer is matched by the one customer
/// with its e-mail (or phone); search finds customers by e-mail and street; a donor chosen by
/// hand goes back to the automatic match, and an automatic match is undone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matching_by_email_and_phone_search_by_contact_and_revert() {
    let fake = fake(0);
    let pat = fake.add_customer(
        json!({"DisplayName": "Jones, Patricia", "GivenName": "Patricia",
        "FamilyName": "Jones", "PrimaryEmailAddr": {"Address": "pat.jones@example.org"}}),
    );
    let lee = fake.add_customer(json!({"DisplayName": "Lee Wong",
        "PrimaryPhone": {"FreeFormNumber": "(555) 010-2030"},
        "BillAddr": {"Line1": "44 Harbor Way", "City": "Salem", "PostalCode": "01970"}}));
    let other = fake.add_customer(json!({"DisplayName": "Zed Quill"}));
    let stack = Stack::start(qbo_options("qbo-contact", &fake));
    let api = signed_in(&stack).await;
    connect(&api).await;
    let mut by_email = record("P. J.", "10.00", "501");
    by_email.contact.email = Some("Pat.Jones@Example.org".into());
    let mut by_phone = record("Mr. W.", "12.00", "502");
    by_phone.contact.phone = Some("555.010.2030".into());
    let id = deposit_with(&stack, vec![by_email.clone(), by_phone.clone()]).await;
    let (s, m) = api.post(&format!("/api/deposits/{id}/match"), None).await;
    assert_eq!(s, 200, "{m}");
    let (_, d) = api.get(&format!("/api/deposits/{id}")).await;
    let row = |rid: String| {
        d["records"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == rid.as_str())
            .unwrap()
            .clone()
    };
    let e = row(by_email.id.to_string());
    assert_eq!(e["qbo"]["customer_id"], pat.as_str(), "{e}");
    assert_eq!(e["qbo"]["match_by"], "email");
    assert_eq!(e["qbo"]["match_status"], "matched");
    let p = row(by_phone.id.to_string());
    assert_eq!(p["qbo"]["customer_id"], lee.as_str(), "{p}");
    assert_eq!(p["qbo"]["match_by"], "phone");

    // Search by e-mail, by street, by phone digits.
    for (q, want) in [
        ("pat.jones@example", &pat),
        ("44%20Harbor", &lee),
        ("5550102030", &lee),
    ] {
        let (s, found) = api.get(&format!("/api/qbo/customers?q={q}")).await;
        assert_eq!(s, 200, "{found}");
        let ids: Vec<&str> = found["customers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [want.as_str()], "{q}: {found}");
    }

    // Chosen by hand, then back to the automatic match (by e-mail).
    let path = format!("/api/deposits/{id}/records/{}/match", by_email.id);
    let (s, r) = api.post(&path, Some(json!({"customer_id": other}))).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["qbo"]["match_by"], "hand");
    let (s, r) = api.send(reqwest::Method::DELETE, &path, None).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["qbo"]["customer_id"], pat.as_str(), "{r}");
    assert_eq!(r["qbo"]["match_by"], "email");
    // An automatic match undone: a new donor.
    let (s, r) = api.send(reqwest::Method::DELETE, &path, None).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["qbo"]["match_status"], "new_donor", "{r}");
    assert!(r["qbo"]["customer_id"].is_null());
}

/// The duplicate guard: a check already receipted by hand is flagged when the deposit is
/// matched and is not sent by send-all until the treasurer says "send anyway"; the same check
/// in a second deposit is flagged there, naming the first deposit's row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn possible_duplicates_wait_for_the_treasurer() {
    let fake = fake(0);
    let rows = donors(&fake, "Twice Donor", 2, 600);
    let item = fake
        .items()
        .into_iter()
        .find(|i| i["Name"] == "Donations")
        .map(|i| i["Id"].clone())
        .unwrap();
    // Check 600 was entered by hand in QuickBooks last week.
    let by_hand = fake.add_sales_receipt(json!({
        "CustomerRef": {"value": rows[0].qbo.customer_id},
        "TxnDate": (chrono::Local::now().date_naive() - chrono::Days::new(7)).format("%Y-%m-%d").to_string(),
        "PaymentRefNum": "600",
        "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 20.0,
                  "SalesItemLineDetail": {"ItemRef": {"value": item}, "Qty": 1, "UnitPrice": 20.0}}],
    }));
    assert!(!by_hand.is_empty());
    let stack = Stack::start(qbo_options("qbo-dupes", &fake).with_worker());
    let api = signed_in(&stack).await;
    connect(&api).await;
    let id = deposit_with(&stack, rows.clone()).await;
    let (s, m) = api.post(&format!("/api/deposits/{id}/match"), None).await;
    assert_eq!(s, 200, "{m}");
    let (_, d) = api.get(&format!("/api/deposits/{id}")).await;
    let dup = &d["records"][0]["qbo"]["duplicate"];
    assert_eq!(dup["kind"], "receipt", "{d}");
    assert_eq!(dup["receipt_id"], by_hand.as_str());
    assert!(dup["message"]
        .as_str()
        .unwrap()
        .starts_with("possible duplicate of receipt #"));
    assert!(d["records"][1]["qbo"]["duplicate"].is_null(), "{d}");
    // Send all: the other row goes, the flagged one waits.
    let (s, _) = api.post(&format!("/api/deposits/{id}/send"), None).await;
    assert_eq!(s, 202);
    let done = wait_send_job(&api, &id, 60).await;
    let outcomes: Vec<&str> = done["results"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["duplicate", "sent"], "{done}");
    assert_eq!(fake.sales_receipts().len(), 2);
    // The treasurer looked: not a duplicate after all. Send-all sends it, once.
    let (s, r) = api
        .send(
            reqwest::Method::PATCH,
            &format!("/api/deposits/{id}/records/{}", rows[0].id),
            Some(json!({"duplicate_ok": true})),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (s, _) = api.post(&format!("/api/deposits/{id}/send"), None).await;
    assert_eq!(s, 202);
    wait_send_job(&api, &id, 60).await;
    assert_eq!(fake.sales_receipts().len(), 3);

    // The same check in a later deposit (not sent from the first one): flagged there.
    let first = donors(&fake, "Listed Donor", 1, 650);
    let a = deposit_with(&stack, first.clone()).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let mut again = first[0].clone();
    // The same check read again, as a row of its own.
    again.id = Donation::new("list.pdf").id;
    let b = deposit_with(&stack, vec![again]).await;
    let (s, _) = api.post(&format!("/api/deposits/{b}/match"), None).await;
    assert_eq!(s, 200);
    let (_, d) = api.get(&format!("/api/deposits/{b}")).await;
    let dup = &d["records"][0]["qbo"]["duplicate"];
    assert_eq!(dup["kind"], "deposit", "{d}");
    assert_eq!(dup["deposit_id"], a.as_str());
    assert_eq!(dup["row"], 1);
    // The first deposit is not flagged by the later one.
    let (_, d) = api.get(&format!("/api/deposits/{a}")).await;
    assert!(d["records"][0]["qbo"]["duplicate"].is_null(), "{d}");
}

/// Throttling never fails a send: five 429s in a row on receipts during send-all are waited
/// out, every row is sent once and the job ends done; with no patience at all (each throttle
/// ends the run), the job is queued again each time and still ends done, with no row error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_throttles_in_a_row_never_fail_a_send_all() {
    for (patience, name) in [("900", "qbo-busy-wait"), ("0", "qbo-busy-requeue")] {
        let fake = fake(0);
        let records = donors(&fake, "Busy Donor", 3, 300);
        let stack = Stack::start(
            qbo_options(name, &fake)
                .with_worker()
                .env("QBO_THROTTLE_PATIENCE_SECS", patience),
        );
        let api = signed_in(&stack).await;
        connect(&api).await;
        let id = deposit_with(&stack, records).await;
        fake.inject(Inject::Throttle, 5, Some("/salesreceipt"));
        let (s, _) = api.post(&format!("/api/deposits/{id}/send"), None).await;
        assert_eq!(s, 202);
        let done = wait_send_job(&api, &id, 90).await;
        assert_eq!(
            fake.sales_receipts().len(),
            3,
            "patience {patience}: {done}"
        );
        let (_, d) = api.get(&format!("/api/deposits/{id}")).await;
        for r in d["records"].as_array().unwrap() {
            assert_eq!(r["qbo"]["sync_status"], "sent", "patience {patience}: {r}");
            assert!(r["qbo"]["last_error"].is_null(), "{r}");
        }
        let throttled = fake
            .requests()
            .iter()
            .filter(|r| r.path.contains("/salesreceipt") && r.status == 429)
            .count();
        assert_eq!(throttled, 5, "patience {patience}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_rotation_one_refresher_and_reconnect_after_grace() {
    let fake = fake(100);
    let stack = Stack::start(qbo_options("qbo-rotate", &fake));
    let api = signed_in(&stack).await;
    connect(&api).await;
    let (_, before) = stored_tokens(&stack).await;

    // The stored access token has expired and four processes need QuickBooks at once: one
    // refreshes, the others wait for its result under the Redis lock (or find it done).
    {
        let cipher = TokenCipher::from_base64(&key_b64()).unwrap();
        let mut expired = before.clone();
        expired.access_expires_at = chrono::Utc::now().timestamp() - 10;
        let client = redis::Client::open(stack.redis_url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let _: () = conn
            .set(
                Keys::new(stack.prefix.clone()).qbo_connection(),
                cipher.seal(&expired).unwrap(),
            )
            .await
            .unwrap();
    }
    let empty = deposit_with(&stack, Vec::new()).await;
    let calls = fake.token_calls();
    let spawn = || {
        qbo_worker(&stack, &fake, &["match", &empty])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let children: Vec<_> = (0..4).map(|_| spawn()).collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        fake.token_calls() - calls,
        1,
        "more than one process refreshed"
    );
    let (_, after) = stored_tokens(&stack).await;
    assert_ne!(after.refresh_token, before.refresh_token);
    assert_eq!(
        fake.refresh_token_status(&after.refresh_token),
        RefreshStatus::Current
    );
    assert_eq!(
        fake.refresh_token_status(&before.refresh_token),
        RefreshStatus::Grace
    );

    // Our stored refresh token is superseded elsewhere and its 24 h grace passes: the next
    // refresh is refused and the connection says "reconnect needed"; nothing crashes.
    let rotated = client()
        .post(format!("{}/oauth2/v1/tokens/bearer", fake.base_url()))
        .basic_auth(
            fom_testkit::qbo::CLIENT_ID,
            Some(fom_testkit::qbo::CLIENT_SECRET),
        )
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", after.refresh_token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status().as_u16(), 200);
    fake.advance(Duration::from_secs(25 * 3600));
    let (s, err) = api.get("/api/qbo/customers?q=x").await;
    assert_eq!(s, 409, "{err}");
    assert_eq!(err["error"]["code"], "qbo_reconnect_needed");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("reconnect"));
    let (_, status) = api.get("/api/qbo/status").await;
    assert_eq!(status["reconnect_needed"], true, "{status}");
    assert_eq!(status["connected"], false);
    // Asking again does not hammer Intuit: the dead grant is remembered.
    let calls = fake.token_calls();
    let (s, _) = api.get("/api/qbo/items").await;
    assert_eq!(s, 409);
    assert_eq!(fake.token_calls(), calls);
    // Reconnecting clears it.
    connect(&api).await;
    let (_, status) = api.get("/api/qbo/status").await;
    assert_eq!(status["connected"], true);
}

/// Intuit sends the browser back after the session ended (sign-out here, its lifetime in
/// real life): Intuit's code and state wait through the sign-in, and the connection completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callback_survives_a_sign_in_in_between() {
    let fake = fake(0);
    let stack = Stack::start(qbo_options("qbo-callback", &fake));
    let api = signed_in(&stack).await;
    let (browser, callback) = fom_e2e::consent(&api).await;
    let (status, _) = api.post("/logout", None).await;
    assert_eq!(status, 303);

    // No session: off to sign in, with the whole callback (code and state) as `next`.
    let r = api
        .c
        .get(stack.url(&callback))
        .header("Cookie", &browser)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let login = r.headers()["location"].to_str().unwrap().to_string();
    assert!(login.starts_with("/login?next="), "{login}");
    let next = reqwest::Url::parse(&format!("http://x{login}"))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v.to_string())
        .unwrap();
    assert_eq!(next, callback);
    let page = api.c.get(stack.url(&login)).send().await.unwrap();
    let html = page.text().await.unwrap();
    assert!(html.contains("name=\"next\""), "{html}");
    let r = api
        .c
        .post(stack.url("/login"))
        .header("Origin", stack.origin())
        .form(&[("password", fom_testkit::web::PASSWORD), ("next", &next)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"].to_str().unwrap(), callback);
    let session = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let oauth = browser.split("; ").skip(1).collect::<Vec<_>>().join("; ");
    let cookies = format!("{session}; {oauth}");
    // Back at the callback, signed in: connected; the state is single-use.
    for expected in [303, 400] {
        let r = api
            .c
            .get(stack.url(&callback))
            .header("Cookie", &cookies)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), expected, "callback");
    }
    let after = Api {
        stack: &stack,
        cookie: session,
        c: client(),
    };
    let (_, status) = after.get("/api/qbo/status").await;
    assert_eq!(status["connected"], true, "{status}");
}

/// The OAuth state belongs to the browser that asked for it: another signed-in browser cannot
/// complete it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oauth_state_is_bound_to_the_browser_that_asked() {
    let fake = fake(0);
    let stack = Stack::start(qbo_options("qbo-bound", &fake));
    let api = signed_in(&stack).await;
    let other = signed_in(&stack).await;
    let (_, callback) = fom_e2e::consent(&api).await;
    let r = other
        .c
        .get(stack.url(&callback))
        .header("Cookie", &other.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let (_, status) = api.get("/api/qbo/status").await;
    assert_eq!(status["connected"], false, "{status}");
}

#[test]
fn start_up_refuses_quickbooks_without_its_key() {
    for (pkg, args) in [("fom-web", vec![]), ("fom-worker", vec!["qbo", "status"])] {
        let out = std::process::Command::new(fom_testkit::bin_path(pkg, pkg))
            .args(&args)
            .env("QBO_CLIENT_ID", "x")
            .env("APP_PASSWORD", fom_testkit::web::PASSWORD)
            .env("SESSION_SECRET", fom_testkit::web::SESSION_SECRET)
            .env("TOKEN_ENCRYPTION_KEY", "too-short")
            .env_remove("QBO_CLIENT_SECRET")
            .env_remove("QBO_REDIRECT_URI")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{pkg}");
        let err = String::from_utf8_lossy(&out.stderr);
        for var in [
            "QBO_CLIENT_SECRET",
            "QBO_REDIRECT_URI",
            "TOKEN_ENCRYPTION_KEY",
        ] {
            assert!(err.contains(var), "{pkg} does not name {var}: {err}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_defaults_contact_and_reference_errors() {
    let fake = fake(0);
    let cid = fake.add_customer(json!({"DisplayName": "Ruth Ade", "GivenName": "Ruth",
        "FamilyName": "Ade"}));
    let stack = Stack::start(qbo_options("qbo-lookups", &fake));
    let api = signed_in(&stack).await;
    // Before connecting: a clear refusal, not a 500.
    let (s, err) = api.get("/api/qbo/items").await;
    assert_eq!(s, 409, "{err}");
    assert_eq!(err["error"]["code"], "qbo_not_connected");
    connect(&api).await;

    // More than 100 accounts: Undeposited Funds is found past the first page.
    let (_, accounts) = api.get("/api/qbo/accounts").await;
    assert!(accounts["accounts"].as_array().unwrap().len() > 100);
    let (_, methods) = api.get("/api/qbo/payment-methods").await;
    assert!(methods["payment_methods"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["Name"] == "Check"));

    let mut r = matched("Ruth Ade", "40.00", "3141", &cid);
    r.contact.email = Some("ruth@example.org".into());
    r.contact.phone = Some("(555) 123-4567".into());
    let dep = deposit_with(&stack, vec![r.clone()]).await;
    let path = format!("/api/deposits/{dep}/records/{}", r.id);

    // Email and phone are added where QuickBooks has none.
    let (s, added) = api.post(&format!("{path}/contact"), None).await;
    assert_eq!(s, 200, "{added}");
    assert_eq!(added["added"].as_array().unwrap().len(), 2);
    let c = fake.customer(&cid).unwrap();
    assert_eq!(c["PrimaryEmailAddr"]["Address"], "ruth@example.org");
    assert_eq!(c["PrimaryPhone"]["FreeFormNumber"], "(555) 123-4567");

    // A chosen item that QuickBooks does not have: "choose or create", not a 500.
    let (s, d) = api
        .send(
            reqwest::Method::PUT,
            "/api/qbo/defaults",
            Some(json!({"item_id": "99999"})),
        )
        .await;
    assert_eq!(s, 200, "{d}");
    let (s, sent) = api.post(&format!("{path}/send"), None).await;
    assert_eq!(s, 422, "{sent}");
    assert_eq!(sent["outcome"], "error");
    assert_eq!(sent["choose"], "item");
    assert!(sent["message"]
        .as_str()
        .unwrap()
        .contains("Choose or create the item"));
    let (_, dep_now) = api.get(&format!("/api/deposits/{dep}")).await;
    assert_eq!(dep_now["records"][0]["qbo"]["sync_status"], "error");
    assert!(fake.sales_receipts().is_empty());

    // Create the item, choose it (remembered), and the row goes.
    let (s, item) = api
        .post("/api/qbo/items", Some(json!({"name": "Gifts 2026"})))
        .await;
    assert_eq!(s, 201, "{item}");
    let item_id = item["Id"].as_str().unwrap().to_string();
    let (_, d) = api
        .send(
            reqwest::Method::PUT,
            "/api/qbo/defaults",
            Some(json!({"item_id": item_id})),
        )
        .await;
    assert_eq!(d["item_name"], "Gifts 2026");
    let (_, d) = api.get("/api/qbo/defaults").await;
    assert_eq!(d["item_id"], item_id.as_str());
    let (s, sent) = api.post(&format!("{path}/send"), None).await;
    assert_eq!(s, 201, "{sent}");
    let receipts = fake.sales_receipts();
    assert_eq!(receipts.len(), 1);
    assert_eq!(
        receipts[0]["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"],
        item_id.as_str()
    );
    assert_eq!(receipts[0]["PaymentMethodRef"]["name"], "Check");
    let (_, dep_now) = api.get(&format!("/api/deposits/{dep}")).await;
    assert_eq!(dep_now["records"][0]["qbo"]["sync_status"], "sent");
    assert!(dep_now["records"][0]["qbo"]["last_error"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_send_all_hands_the_job_back_without_a_crash() {
    let fake = fake(150);
    let records = donors(&fake, "Friend", 6, 500);
    let stack = Stack::start(qbo_options("qbo-term", &fake).with_worker());
    let api = signed_in(&stack).await;
    connect(&api).await;
    let id = deposit_with(&stack, records).await;
    let (s, _) = api.post(&format!("/api/deposits/{id}/send"), None).await;
    assert_eq!(s, 202);
    wait_for_receipts(&fake, 2).await;
    assert_eq!(signal_worker_children(&stack, "-TERM").await, 1);
    let done = wait_send_job(&api, &id, 90).await;
    assert_eq!(
        done["job"]["crashes"], 0,
        "a clean stop is not a crash: {done}"
    );
    assert!(done["job"]["attempts"].as_u64().unwrap() >= 2, "{done}");
    assert_eq!(fake.sales_receipts().len(), 6);
}

/// Matching reads the whole customer list (paged) once per deposit: with 5,000 customers and
/// 300 rows the process stays small. Prints the figures docs/PERFORMANCE.md quotes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matching_5000_customers_in_bounded_memory() {
    let fake = fake(0);
    for i in 0..5000 {
        fake.add_customer(
            json!({"DisplayName": format!("Member{i} Family{}", i % 700),
            "GivenName": format!("Member{i}"), "FamilyName": format!("Family{}", i % 700),
            "BillAddr": {"Line1": format!("{i} Main St"), "City": "Springfield",
                         "CountrySubDivisionCode": "IL", "PostalCode": "62704"}}),
        );
    }
    let stack = Stack::start(qbo_options("qbo-scale", &fake));
    let api = signed_in(&stack).await;
    connect(&api).await;
    let records: Vec<Donation> = (0..300)
        .map(|i| {
            let mut r = record(
                &format!("Member{} Family{}", i * 7, (i * 7) % 700),
                "10.00",
                &i.to_string(),
            );
            r.contact.address_line_1 = Some(format!("{} Main St", i * 7));
            r
        })
        .collect();
    let id = deposit_with(&stack, records).await;
    let out = qbo_worker(&stack, &fake, &["match", &id]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let figures: Value = serde_json::from_slice(&out.stdout).unwrap();
    println!("match 300 rows against 5000 customers: {figures}");
    assert_eq!(figures["customers"], 5000);
    assert_eq!(figures["matched"], 300, "{figures}");
    let peak = figures["peak_rss_mb"].as_f64().unwrap();
    assert!(peak < 80.0, "peak RSS {peak} MB");
    // The list was read in pages of 1000; the duplicate check asked for the 300 customers'
    // receipts in a few queries, not one per row.
    let queries: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/query"))
        .map(|r| r.query.clone())
        .collect();
    let receipts = queries
        .iter()
        .filter(|q| q.contains("SalesReceipt"))
        .count();
    let pages = queries.len() - receipts;
    assert_eq!(
        pages, 6,
        "5 full pages and the empty one that ends the list"
    );
    assert!((1..=3).contains(&receipts), "{receipts} receipt queries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_records_who_did_what_and_keeps_secrets_out() {
    let fake = fake(0);
    let ada = fake.add_customer(json!({"DisplayName": "Ada Audit", "GivenName": "Ada",
        "FamilyName": "Audit"}));
    let logs = tempfile::tempdir().unwrap();
    let stack = Stack::start(
        qbo_options("qbo-audit", &fake)
            .with_worker()
            .logs_in(logs.path()),
    );
    // A wrong password, then the right one.
    let c = client();
    let r = c
        .post(stack.url("/login"))
        .header("Origin", stack.origin())
        .form(&[("password", "not the password")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let api = signed_in(&stack).await;
    connect(&api).await;
    // An upload whose rows carry an e-mail address and a phone number.
    let (s, created) = api.post("/api/deposits", None).await;
    assert_eq!(s, 201, "{created}");
    let dep = created["id"].as_str().unwrap().to_string();
    let csv = "Date,First Name,Last Name,Email,Phone,Amount\n\
               2026-03-02,Ada,Audit,ada.audit@example.org,(608) 555-0142,$40.00\n";
    let form = Form::new().part(
        "files",
        Part::bytes(csv.as_bytes().to_vec()).file_name("audit-gifts.csv"),
    );
    let r = api
        .c
        .post(stack.url(&format!("/api/deposits/{dep}/files")))
        .header("Cookie", &api.cookie)
        .header("Origin", stack.origin())
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    // An edit of a row, once the file is read.
    let deadline = Instant::now() + Duration::from_secs(60);
    let record = loop {
        let (_, d) = api.get(&format!("/api/deposits/{dep}")).await;
        if let Some(r) = d["records"].as_array().and_then(|r| r.first()) {
            break r["id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "the CSV was not read: {d}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (s, _) = api
        .send(
            reqwest::Method::PATCH,
            &format!("/api/deposits/{dep}/records/{record}"),
            Some(json!({"memo": "checked against the bank"})),
        )
        .await;
    assert_eq!(s, 200);
    // A receipt made in QuickBooks.
    let row = matched("Ada Audit", "40.00", "1001", &ada);
    let sent = deposit_with(&stack, vec![row.clone()]).await;
    let (s, out) = api
        .post(
            &format!("/api/deposits/{sent}/records/{}/send", row.id),
            None,
        )
        .await;
    assert_eq!(s, 201, "{out}");

    // Newest first, three at a time, until the end.
    let mut events: Vec<Value> = Vec::new();
    let mut before: Option<String> = None;
    for _ in 0..50 {
        let path = match &before {
            Some(b) => format!("/api/audit?limit=3&before={b}"),
            None => "/api/audit?limit=3".to_string(),
        };
        let (s, page) = api.get(&path).await;
        assert_eq!(s, 200, "{page}");
        let got = page["events"].as_array().cloned().unwrap_or_default();
        assert!(got.len() <= 3);
        events.extend(got);
        match page["next"].as_str() {
            Some(n) => before = Some(n.to_string()),
            None => break,
        }
    }
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    for want in [
        "sign_in_failed",
        "sign_in",
        "qbo_connect",
        "upload",
        "record_edit",
        "receipt_created",
    ] {
        assert!(kinds.contains(&want), "{want} missing from {kinds:?}");
    }
    let at: Vec<i64> = events.iter().filter_map(|e| e["at"].as_i64()).collect();
    assert!(at.windows(2).all(|w| w[0] >= w[1]), "not newest first");
    let first = events.iter().position(|e| e["kind"] == "sign_in_failed");
    assert_eq!(
        first,
        Some(events.len() - 1),
        "the failed sign-in came first"
    );
    let receipt = events
        .iter()
        .find(|e| e["kind"] == "receipt_created")
        .unwrap();
    assert_eq!(receipt["details"]["amount"], "40.00", "{receipt}");
    assert!(receipt["details"]["receipt_id"].is_string(), "{receipt}");
    let edit = events.iter().find(|e| e["kind"] == "record_edit").unwrap();
    assert_eq!(edit["details"]["fields"], json!(["memo"]), "{edit}");
    assert!(
        edit["session"].is_string() && edit["client"].is_string(),
        "{edit}"
    );
    let upload = events.iter().find(|e| e["kind"] == "upload").unwrap();
    assert_eq!(upload["details"]["file"], "audit-gifts.csv");
    assert_eq!(upload["details"]["verdict"], "accepted");
    // Filtered by kind.
    let (_, only) = api.get("/api/audit?kind=sign_in").await;
    let only = only["events"].as_array().cloned().unwrap_or_default();
    assert!(!only.is_empty() && only.iter().all(|e| e["kind"] == "sign_in"));
    let (s, _) = api.get("/api/audit?kind=nonsense").await;
    assert_eq!(s, 400);

    // No session id, token, e-mail address or phone number in the log or any log line.
    let (_, tokens) = stored_tokens(&stack).await;
    let session_id = api
        .cookie
        .split_once('=')
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();
    // The signed cookie ends with the session id itself.
    let session_id = session_id[session_id.len().saturating_sub(32)..].to_string();
    assert_eq!(session_id.len(), 32, "{}", api.cookie);
    let audit_text = serde_json::to_string(&events).unwrap();
    drop(stack);
    let mut texts = vec![("audit log".to_string(), audit_text)];
    for file in ["web.log", "worker.log"] {
        texts.push((
            file.to_string(),
            std::fs::read_to_string(logs.path().join(file)).unwrap(),
        ));
    }
    for (what, text) in &texts {
        for secret in [
            session_id.as_str(),
            tokens.access_token.as_str(),
            tokens.refresh_token.as_str(),
            "ada.audit@example.org",
            "555-0142",
        ] {
            assert!(!text.contains(secret), "{what} holds {secret:?}");
        }
    }
}

/// Waits until the deposit's bank deposit is recorded (or its job ends otherwise); answers the
/// deposit's `bank` view.
async fn wait_bank(api: &Api<'_>, deposit: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (_, d) = api.get(&format!("/api/deposits/{deposit}")).await;
        let bank = d["bank"].clone();
        let job = bank["job"]["state"].as_str().unwrap_or("");
        if bank["recorded"]["qbo_id"].is_string() || matches!(job, "failed" | "dead") {
            return bank;
        }
        assert!(
            Instant::now() < deadline,
            "the bank deposit never ended: {bank}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The fake's Deposits whose memo carries this deposit's marker.
fn qbo_deposits_of(fake: &fom_testkit::qbo::FakeQbo, deposit: &str) -> Vec<Value> {
    let mark = fom_core::qbo::bank::marker(deposit);
    fake.deposits()
        .into_iter()
        .filter(|d| d["PrivateNote"].as_str().unwrap_or("").contains(&mark))
        .collect()
}

/// The receipt ids a QuickBooks Deposit links, sorted.
fn linked(deposit: &Value) -> Vec<String> {
    let mut ids: Vec<String> = deposit["Line"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["LinkedTxn"].as_array().cloned().unwrap_or_default())
        .filter(|t| t["TxnType"] == "SalesReceipt")
        .map(|t| t["TxnId"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// The bank deposit: refused until every row is sent, then one QuickBooks Deposit into the
/// bank account linking every receipt of the deposit, exactly once when the worker is killed
/// (kill -9) after QuickBooks made it and before the answer arrived, and when QuickBooks
/// answers 500 after making it (requestid replay off); shown on the page and in the report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bank_deposit_is_recorded_once_across_kill_9_and_a_500() {
    let fake = fake(0);
    let stack = Stack::start(
        qbo_options("qbo-bank", &fake)
            .with_worker()
            .env("WORKER_MISSED_HEARTBEATS", "3"),
    );
    let api = signed_in(&stack).await;
    connect(&api).await;
    let mut rows = donors(&fake, "Bank Donor", 3, 700);
    rows[2].qbo.keep_out = Some(true);
    let id = deposit_with(&stack, rows.clone()).await;
    let (s, accounts) = api.get("/api/qbo/bank-accounts").await;
    assert_eq!(s, 200, "{accounts}");
    let names: Vec<&str> = accounts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["Name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Checking"), "{accounts}");
    assert!(
        !accounts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["AccountSubType"] == "UndepositedFunds"),
        "{accounts}"
    );
    let checking = accounts[0]["Id"].as_str().unwrap().to_string();
    let ask = json!({"account_id": checking, "date": "2026-11-20"});

    // Not before the rows are sent.
    let (_, d) = api.get(&format!("/api/deposits/{id}")).await;
    assert_eq!(d["bank"]["ready"], false, "{d}");
    let (s, r) = api
        .post(
            &format!("/api/deposits/{id}/bank-deposit"),
            Some(ask.clone()),
        )
        .await;
    assert_eq!(s, 422, "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("row 1"),
        "{r}"
    );

    let (s, _) = api.post(&format!("/api/deposits/{id}/send"), None).await;
    assert_eq!(s, 202);
    wait_send_job(&api, &id, 60).await;
    assert_eq!(fake.sales_receipts().len(), 2);

    // QuickBooks makes the Deposit, then the answer is held back; the worker is killed
    // while it waits. A fresh worker finds the Deposit instead of making another.
    fake.inject(
        Inject::DelayAfterWrite(Duration::from_secs(6)),
        1,
        Some("/deposit"),
    );
    let (s, r) = api
        .post(
            &format!("/api/deposits/{id}/bank-deposit"),
            Some(ask.clone()),
        )
        .await;
    assert_eq!(s, 202, "{r}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while fake.deposits().is_empty() {
        assert!(Instant::now() < deadline, "the Deposit was never written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(signal_worker_children(&stack, "-9").await, 1);
    let bank = wait_bank(&api, &id, 90).await;
    assert!(bank["job"]["crashes"].as_u64().unwrap() >= 1, "{bank}");
    let made = qbo_deposits_of(&fake, &id);
    assert_eq!(made.len(), 1, "one Deposit after the crash");
    assert_eq!(fake.deposits().len(), 1);
    let (_, d) = api.get(&format!("/api/deposits/{id}")).await;
    let mut sent: Vec<String> = d["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["qbo"]["sales_receipt_id"].as_str().map(String::from))
        .collect();
    sent.sort();
    assert_eq!(
        linked(&made[0]),
        sent,
        "every receipt of the deposit, linked"
    );
    assert_eq!(made[0]["TxnDate"], "2026-11-20");
    assert_eq!(made[0]["DepositToAccountRef"]["value"], checking.as_str());
    assert_eq!(made[0]["TotalAmt"].as_f64(), Some(40.0));
    let rec = &bank["recorded"];
    assert_eq!(rec["qbo_id"], made[0]["Id"], "{bank}");
    assert_eq!(rec["total"], "40", "{bank}");
    assert_eq!(rec["receipts"], 2);
    // Recorded once: asking again is refused.
    let (s, r) = api
        .post(
            &format!("/api/deposits/{id}/bank-deposit"),
            Some(ask.clone()),
        )
        .await;
    assert_eq!(s, 422, "{r}");
    assert_eq!(fake.deposits().len(), 1);
    // The report says so, with QuickBooks's id.
    let (_, report) = api.get(&format!("/api/deposits/{id}/report")).await;
    let text = report["text"].as_str().unwrap();
    assert!(
        text.contains(&format!(
            "bank deposit #{}",
            rec["qbo_id"].as_str().unwrap()
        )),
        "{text}"
    );

    // A 500 after QuickBooks made it, with requestid replay off: found, not made again.
    fake.set_requestid_dedupe(false);
    let more = donors(&fake, "Second Bank Donor", 2, 800);
    let id2 = deposit_with(&stack, more).await;
    let (s, _) = api.post(&format!("/api/deposits/{id2}/send"), None).await;
    assert_eq!(s, 202);
    wait_send_job(&api, &id2, 60).await;
    fake.inject(Inject::ServerErrorAfterWrite, 1, Some("/deposit"));
    let (s, r) = api
        .post(
            &format!("/api/deposits/{id2}/bank-deposit"),
            Some(json!({"account_id": checking})),
        )
        .await;
    assert_eq!(s, 202, "{r}");
    let bank = wait_bank(&api, &id2, 60).await;
    let made = qbo_deposits_of(&fake, &id2);
    assert_eq!(made.len(), 1, "{bank}");
    assert_eq!(bank["recorded"]["qbo_id"], made[0]["Id"]);
    assert_eq!(linked(&made[0]).len(), 2);
    assert_eq!(fake.deposits().len(), 2);
}

/// `ATTACH_SOURCES=1`: after send-all, each receipt of a 50-page scanned deposit gets the page
/// it was read from as one QuickBooks attachment, exactly once under 500s after the write and
/// a throttle, one page image at a time: the attach job's peak RSS stays under 100 MB. The
/// upload is let go once every row is attached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_receipt_gets_its_page_attached_once_in_bounded_memory() {
    const PAGES: u32 = 50;
    let fake = fake(0);
    let stack = Stack::start(
        qbo_options("qbo-attach", &fake)
            .with_worker()
            .env("ATTACH_SOURCES", "1")
            // Every page rendered and encoded (the heavier path), not passed through.
            .env("PDF_JPEG_PASSTHROUGH", "0"),
    );
    let api = signed_in(&stack).await;
    connect(&api).await;
    // The scan, stored as an upload is.
    let dir = tempfile::tempdir().unwrap();
    let pdf = dir.path().join("deposit.pdf");
    fom_core::pdf::synth::write_scan_pdf(
        &pdf,
        &fom_core::pdf::synth::ScanOptions {
            pages: PAGES,
            dpi: 200,
            ..Default::default()
        },
    )
    .unwrap();
    let client = redis::Client::open(stack.redis_url.as_str()).unwrap();
    let conn = redis::aio::ConnectionManager::new(client).await.unwrap();
    let store =
        fom_core::store::UploadStore::from_spec("redis", conn, Keys::new(stack.prefix.clone()))
            .unwrap();
    let file = tokio::fs::File::open(&pdf).await.unwrap();
    let stored = store.put("deposit.pdf", file, u64::MAX).await.unwrap();
    // One row per page, each read from its page.
    let mut rows = donors(&fake, "Scanned Donor", PAGES as usize, 1000);
    for (i, r) in rows.iter_mut().enumerate() {
        r.provenance = fom_core::donation::Source {
            file: "deposit.pdf".into(),
            pages: vec![i as u32 + 1],
            kind: fom_core::donation::SourceKind::Check,
            job: Some("job-scan".into()),
            ..Default::default()
        };
    }
    let id = deposit_with(&stack, rows).await;
    deposits(&stack)
        .await
        .update(&id, |d| {
            d.files = vec![fom_core::deposits::DepositFile {
                id: stored.id.clone(),
                name: "deposit.pdf".into(),
                size: stored.size,
                kind: "pdf".into(),
                job_id: "job-scan".into(),
                uploaded_at: 0,
            }];
            std::ops::ControlFlow::Continue(())
        })
        .await
        .unwrap();

    // Lost answers (replay off, so only the look-up saves us) and a throttle.
    fake.set_requestid_dedupe(false);
    fake.inject(Inject::ServerErrorAfterWrite, 2, Some("/upload"));
    fake.inject(Inject::Throttle, 1, Some("/upload"));
    let (s, _) = api.post(&format!("/api/deposits/{id}/send"), None).await;
    assert_eq!(s, 202);
    wait_send_job(&api, &id, 120).await;
    let deadline = Instant::now() + Duration::from_secs(180);
    let bank = loop {
        let (_, d) = api.get(&format!("/api/deposits/{id}")).await;
        let state = d["bank"]["attach_job"]["state"].as_str().unwrap_or("");
        if matches!(state, "done" | "failed" | "dead") {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "attaching never ended: {}",
            d["bank"]
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let job = &bank["bank"]["attach_job"];
    assert_eq!(job["state"], "done", "{job}");

    let receipts = fake.sales_receipts();
    assert_eq!(receipts.len(), PAGES as usize);
    let attachables = fake.attachables();
    assert_eq!(
        attachables.len(),
        PAGES as usize,
        "exactly one attachment per receipt"
    );
    for r in &receipts {
        let rid = r["Id"].as_str().unwrap();
        let mine: Vec<&Value> = attachables
            .iter()
            .filter(|a| a["AttachableRef"][0]["EntityRef"]["value"] == rid)
            .collect();
        assert_eq!(mine.len(), 1, "receipt {rid}");
        assert_eq!(
            mine[0]["AttachableRef"][0]["EntityRef"]["type"],
            "SalesReceipt"
        );
        assert_eq!(mine[0]["ContentType"], "image/jpeg");
        let bytes = fake
            .attachment_bytes(mine[0]["Id"].as_str().unwrap())
            .unwrap();
        assert_eq!(&bytes[..3], &[0xFF, 0xD8, 0xFF], "a JPEG");
    }
    // Each row's attachment is its own page.
    for r in bank["records"].as_array().unwrap() {
        let page = r["provenance"]["pages"][0].as_u64().unwrap();
        let a = attachables
            .iter()
            .find(|a| Some(a["Id"].as_str().unwrap()) == r["qbo"]["attachment_id"].as_str())
            .unwrap_or_else(|| panic!("row of page {page} has no attachment: {r}"));
        assert_eq!(a["FileName"], format!("deposit-p{page}.jpg"));
    }
    let peak = job["peak_rss_mb"].as_f64().unwrap();
    println!("attach job: {PAGES} pages, peak RSS {peak:.1} MB");
    assert!(peak > 0.0 && peak <= 100.0, "peak RSS {peak} MB");
    // Attached: the upload is let go.
    assert!(!store.exists(&stored.id).await.unwrap());
}
