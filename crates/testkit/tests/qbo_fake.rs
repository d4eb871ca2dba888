//! The QuickBooks Online / Intuit OAuth contract fake behaves as Intuit's services do: OAuth
//! grants and refresh-token rotation, the API's faults, its query subset and the entity rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::Engine;
use fom_testkit::qbo::{
    FakeQbo, FakeQboOptions, Inject, RefreshStatus, CLIENT_ID, CLIENT_SECRET, REALM_ID,
};
use reqwest::header::HeaderMap;
use reqwest::Url;
use serde_json::{json, Value};

const REDIRECT: &str = "http://localhost:8080/qbo/callback";

/// A fake without the per-second limit in the way (the rate-limit test uses the defaults).
fn start() -> FakeQbo {
    FakeQbo::start(FakeQboOptions {
        per_second: 1000,
        per_minute: 100_000,
        ..FakeQboOptions::default()
    })
    .unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn basic() -> String {
    let raw = format!("{CLIENT_ID}:{CLIENT_SECRET}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

struct Answer {
    status: u16,
    body: Value,
    text: String,
    headers: HeaderMap,
}

async fn finish(res: reqwest::Response) -> Answer {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        body,
        text,
        headers,
    }
}

async fn token_call(fake: &FakeQbo, form: &[(&str, &str)], auth: &str) -> Answer {
    let res = client()
        .post(format!("{}/oauth2/v1/tokens/bearer", fake.base_url()))
        .header("authorization", auth)
        .header("accept", "application/json")
        .header("x-include-refresh-token-hard-expires-in", "true")
        .form(form)
        .send()
        .await
        .unwrap();
    finish(res).await
}

async fn refresh(fake: &FakeQbo, token: &str) -> Answer {
    token_call(
        fake,
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
        &basic(),
    )
    .await
}

fn api_url(fake: &FakeQbo, tail: &str, params: &[(&str, &str)]) -> Url {
    let mut url = Url::parse(&format!("{}/v3/company/{REALM_ID}/{tail}", fake.api_base())).unwrap();
    url.query_pairs_mut().append_pair("minorversion", "75");
    for (k, v) in params {
        url.query_pairs_mut().append_pair(k, v);
    }
    url
}

async fn get(fake: &FakeQbo, token: &str, tail: &str) -> Answer {
    let res = client()
        .get(api_url(fake, tail, &[]))
        .bearer_auth(token)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    finish(res).await
}

async fn query(fake: &FakeQbo, token: &str, sql: &str) -> Answer {
    let res = client()
        .get(api_url(fake, "query", &[("query", sql)]))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    finish(res).await
}

async fn post(
    fake: &FakeQbo,
    token: &str,
    entity: &str,
    body: &Value,
    requestid: Option<&str>,
) -> Answer {
    let params: Vec<(&str, &str)> = requestid.map(|r| ("requestid", r)).into_iter().collect();
    post_with(fake, token, entity, &params, body).await
}

fn fault_code(body: &Value) -> &str {
    body.pointer("/Fault/Error/0/code")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn receipt(customer: &str, item: &str) -> Value {
    json!({
        "TxnDate": "2026-11-27",
        "DocNumber": "AUTO_GENERATE",
        "CustomerRef": {"value": customer},
        "PrivateNote": "import:batch-7f3a row 12",
        "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 150.00,
                  "SalesItemLineDetail": {"ItemRef": {"value": item}, "Qty": 1, "UnitPrice": 150.00}}]
    })
}

fn donations_id(fake: &FakeQbo) -> String {
    let items = fake.items();
    let item = items.iter().find(|i| i["Name"] == "Donations").unwrap();
    item["Id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn oauth_code_flow_rotation_and_grace() {
    let fake = FakeQbo::start(FakeQboOptions {
        redirect_uri: Some(REDIRECT.into()),
        ..FakeQboOptions::default()
    })
    .unwrap();
    let http = client();

    let discovery = finish(http.get(fake.discovery_url()).send().await.unwrap()).await;
    assert_eq!(discovery.status, 200);
    assert!(discovery.headers.contains_key("intuit_tid"));
    let authorize = discovery.body["authorization_endpoint"].as_str().unwrap();
    let token_endpoint = discovery.body["token_endpoint"].as_str().unwrap();
    assert_eq!(
        token_endpoint,
        format!("{}/oauth2/v1/tokens/bearer", fake.base_url())
    );

    // Scope with `+` (Python) and `%20` (JS) both work; a bad redirect_uri is a 400.
    let auth_url = |scope_sep: &str, redirect: &str| {
        format!(
            "{authorize}?client_id={CLIENT_ID}&response_type=code&scope=openid{scope_sep}\
             com.intuit.quickbooks.accounting&redirect_uri={}&state=st%20ate",
            redirect.replace(':', "%3A").replace('/', "%2F")
        )
    };
    let bad = finish(
        http.get(auth_url("+", "http://localhost/other"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(bad.text.contains("redirect_uri"), "{}", bad.text);

    let res = finish(http.get(auth_url("%20", REDIRECT)).send().await.unwrap()).await;
    assert_eq!(res.status, 302);
    let location = Url::parse(res.headers["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(REDIRECT));
    let pairs: Vec<(String, String)> = location.query_pairs().into_owned().collect();
    let get_pair = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get_pair("state").as_deref(), Some("st ate"));
    assert_eq!(get_pair("realmId").as_deref(), Some(REALM_ID));
    let code = get_pair("code").unwrap();

    // Wrong client secret: 401 invalid_client.
    let wrong = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:nope"))
    );
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
    ];
    let denied = token_call(&fake, &form, &wrong).await;
    assert_eq!(denied.status, 401);
    assert_eq!(denied.body, json!({"error": "invalid_client"}));

    let granted = token_call(&fake, &form, &basic()).await;
    assert_eq!(granted.status, 200, "{}", granted.text);
    assert!(granted.headers.contains_key("intuit_tid"));
    assert_eq!(granted.body["token_type"], "bearer");
    assert_eq!(granted.body["expires_in"], 3600);
    assert_eq!(granted.body["x_refresh_token_expires_in"], 8_726_400);
    assert!(
        granted.body["x_refresh_token_hard_expires_in"]
            .as_i64()
            .unwrap()
            > 100_000_000
    );
    let rt1 = granted.body["refresh_token"].as_str().unwrap().to_string();

    // The code is single-use.
    let reused = token_call(&fake, &form, &basic()).await;
    assert_eq!(reused.status, 400);
    assert_eq!(
        reused.body,
        json!({"error": "invalid_grant", "error_description": "Token invalid"})
    );

    // Rotation: rt1 → rt2; rt1 is then in its grace window and answers with rt2.
    let second = refresh(&fake, &rt1).await;
    assert_eq!(second.status, 200);
    let rt2 = second.body["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2);
    assert_eq!(fake.refresh_token_status(&rt1), RefreshStatus::Grace);
    assert_eq!(fake.refresh_token_status(&rt2), RefreshStatus::Current);
    let graced = refresh(&fake, &rt1).await;
    assert_eq!(graced.status, 200);
    assert_eq!(graced.body["refresh_token"], rt2.as_str());
    assert_ne!(graced.body["access_token"], second.body["access_token"]);

    // After the 24 h grace rt1 is dead; rt2 still rotates.
    fake.advance(Duration::from_secs(24 * 3600 + 1));
    assert_eq!(fake.refresh_token_status(&rt1), RefreshStatus::Invalid);
    let late = refresh(&fake, &rt1).await;
    assert_eq!(late.status, 400);
    assert_eq!(late.body["error"], "invalid_grant");
    let third = refresh(&fake, &rt2).await;
    assert_eq!(third.status, 200);
    assert_ne!(third.body["refresh_token"], rt2.as_str());
    assert_eq!(fake.token_calls(), 7);

    // A denied consent comes back as error=access_denied with the state.
    fake.deny_next_authorization();
    let res = finish(http.get(auth_url("+", REDIRECT)).send().await.unwrap()).await;
    assert_eq!(res.status, 302);
    let location = res.headers["location"].to_str().unwrap();
    assert!(
        location.ends_with("?error=access_denied&state=st%20ate"),
        "{location}"
    );
}

#[tokio::test]
async fn revoke_kills_the_whole_grant() {
    let fake = start();
    let grant = fake.issue_grant();
    assert_eq!(grant.realm_id, REALM_ID);
    assert_eq!(
        get(&fake, &grant.access_token, "account/1").await.status,
        200
    );

    let revoke_url = format!("{}/v2/oauth2/tokens/revoke", fake.base_url());
    let res = client()
        .post(&revoke_url)
        .header("authorization", basic())
        .json(&json!({"token": grant.refresh_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.headers().contains_key("intuit_tid"));
    assert_eq!(fake.revoked(), 1);
    assert_eq!(
        fake.refresh_token_status(&grant.refresh_token),
        RefreshStatus::Invalid
    );
    assert_eq!(
        get(&fake, &grant.access_token, "account/1").await.status,
        401
    );
    let refreshed = refresh(&fake, &grant.refresh_token).await;
    assert_eq!(refreshed.body["error"], "invalid_grant");

    // A form body with an access token works too; unknown tokens are a 400.
    let other = fake.issue_grant();
    let res = client()
        .post(&revoke_url)
        .header("authorization", basic())
        .form(&[("token", other.access_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        fake.refresh_token_status(&other.refresh_token),
        RefreshStatus::Invalid
    );
    let res = client()
        .post(&revoke_url)
        .header("authorization", basic())
        .json(&json!({"token": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    assert_eq!(fake.revoked(), 2);
}

#[tokio::test]
async fn expired_token_gets_the_lower_case_401_and_wrong_realm_403() {
    let fake = start();
    let grant = fake.issue_grant();
    fake.expire_access_tokens();
    let res = get(&fake, &grant.access_token, "account/1").await;
    assert_eq!(res.status, 401);
    assert!(res.headers.contains_key("intuit_tid"));
    let error = &res.body["fault"]["error"][0];
    assert_eq!(
        error["message"],
        "message=AuthenticationFailed; errorCode=003200; statusCode=401"
    );
    assert_eq!(error["code"], "3200");
    assert_eq!(
        error["detail"],
        format!("Token expired: {}...", &grant.access_token[..8])
    );
    assert_eq!(res.body["fault"]["type"], "AUTHENTICATION");
    assert!(res.body["time"].is_i64());
    assert!(res.body["warnings"].is_null() && res.body.get("Fault").is_none());

    // A refresh brings it back; the natural expiry (1 h of fake clock) works too.
    let fresh = refresh(&fake, &grant.refresh_token).await;
    let access = fresh.body["access_token"].as_str().unwrap().to_string();
    assert_eq!(get(&fake, &access, "account/1").await.status, 200);
    fake.advance(Duration::from_secs(3601));
    assert_eq!(get(&fake, &access, "account/1").await.status, 401);

    let grant = fake.issue_grant();
    let res = client()
        .get(format!(
            "{}/v3/company/123/account/1?minorversion=75",
            fake.api_base()
        ))
        .bearer_auth(&grant.access_token)
        .send()
        .await
        .unwrap();
    let res = finish(res).await;
    assert_eq!(res.status, 403);
    assert_eq!(fault_code(&res.body), "3100");
    assert_eq!(res.body["Fault"]["type"], "SERVICE");
}

#[tokio::test]
async fn query_escaping_round_trip() {
    let fake = start();
    let token = fake.issue_grant().access_token;
    for name in ["O'Brien", "Smith\\Jones"] {
        let res = post(
            &fake,
            &token,
            "customer",
            &json!({"DisplayName": name}),
            None,
        )
        .await;
        assert_eq!(res.status, 200, "{}", res.text);
        assert_eq!(res.body["Customer"]["DisplayName"], name);
        assert_eq!(res.body["Customer"]["SyncToken"], "0");
        assert_eq!(res.body["Customer"]["domain"], "QBO");
    }
    let found = query(
        &fake,
        &token,
        "SELECT * FROM Customer WHERE DisplayName = 'o\\'brien'",
    )
    .await;
    assert_eq!(found.status, 200, "{}", found.text);
    let rows = found.body["QueryResponse"]["Customer"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["DisplayName"], "O'Brien");
    assert_eq!(found.body["QueryResponse"]["startPosition"], 1);
    assert_eq!(found.body["QueryResponse"]["maxResults"], 1);

    let found = query(
        &fake,
        &token,
        "select * from Customer where DisplayName = 'Smith\\\\Jones' and Active = true",
    )
    .await;
    assert_eq!(
        found.body["QueryResponse"]["Customer"][0]["DisplayName"],
        "Smith\\Jones"
    );

    // The POST form with a text body, and LIKE.
    let res = client()
        .post(api_url(&fake, "query", &[]))
        .bearer_auth(&token)
        .header("content-type", "application/text")
        .body("SELECT * FROM Customer WHERE DisplayName LIKE '%Brien%'")
        .send()
        .await
        .unwrap();
    let liked = finish(res).await;
    let rows = liked.body["QueryResponse"]["Customer"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["DisplayName"], "O'Brien");

    // Without the escape the quote ends the literal: a 4000.
    let broken = query(
        &fake,
        &token,
        "SELECT * FROM Customer WHERE DisplayName = 'O'Brien'",
    )
    .await;
    assert_eq!(broken.status, 400);
    assert_eq!(fault_code(&broken.body), "4000");
}

#[tokio::test]
async fn paging_counting_and_query_errors() {
    let fake = start();
    let token = fake.issue_grant().access_token;
    let total = fake.accounts().len();
    assert!(total > 100);

    let count = query(&fake, &token, "SELECT COUNT(*) FROM Account").await;
    assert_eq!(count.body["QueryResponse"], json!({"totalCount": total}));

    // Without paging the default page of 100 misses Undeposited Funds.
    let first = query(&fake, &token, "SELECT * FROM Account").await;
    let rows = first.body["QueryResponse"]["Account"].as_array().unwrap();
    assert_eq!(rows.len(), 100);
    assert!(rows
        .iter()
        .all(|a| a["AccountSubType"] != "UndepositedFunds"));

    let mut seen = Vec::new();
    let mut start = 1;
    loop {
        let sql = format!("SELECT * FROM Account STARTPOSITION {start} MAXRESULTS 50");
        let page = query(&fake, &token, &sql).await;
        assert_eq!(page.status, 200);
        let Some(rows) = page.body["QueryResponse"]["Account"].as_array() else {
            assert_eq!(page.body["QueryResponse"], json!({}));
            break;
        };
        assert_eq!(page.body["QueryResponse"]["startPosition"], start);
        assert_eq!(page.body["QueryResponse"]["maxResults"], rows.len());
        seen.extend(rows.iter().map(|a| a["Id"].as_str().unwrap().to_string()));
        start += 50;
    }
    assert_eq!(seen.len(), total);
    let numeric: Vec<u64> = seen.iter().map(|id| id.parse().unwrap()).collect();
    assert!(numeric.windows(2).all(|w| w[0] < w[1]));

    let uf = query(
        &fake,
        &token,
        "SELECT * FROM Account WHERE AccountSubType = 'UndepositedFunds'",
    )
    .await;
    let uf = &uf.body["QueryResponse"]["Account"][0];
    assert_eq!(uf["AccountType"], "Other Current Asset");
    assert!(uf["Id"].as_str().unwrap().parse::<u64>().unwrap() > 100);

    let empty = query(&fake, &token, "SELECT * FROM Customer").await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.body["QueryResponse"], json!({}));
    assert!(empty.body["time"].is_string());

    for (sql, code) in [
        ("SELECT * FROM Account STARTPOSITION 0", "4001"),
        ("SELECT * FROM account", "4000"),
        (
            "SELECT * FROM Customer WHERE DisplayName = 'a' OR DisplayName = 'b'",
            "4000",
        ),
        ("SELECT * FROM Customer c JOIN Item i", "4000"),
        ("SELECT * FROM Customer WHERE DisplayName = 'open", "4000"),
    ] {
        let res = query(&fake, &token, sql).await;
        assert_eq!(res.status, 400, "{sql}");
        assert_eq!(fault_code(&res.body), code, "{sql}: {}", res.text);
        assert_eq!(res.body["Fault"]["type"], "ValidationFault");
    }
}

#[tokio::test]
async fn stale_sync_token_and_sparse_update() {
    let fake = start();
    let token = fake.issue_grant().access_token;
    let created = post(
        &fake,
        &token,
        "customer",
        &json!({"GivenName": "Jane", "FamilyName": "O'Brien",
                "PrimaryEmailAddr": {"Address": "jane@example.org"},
                "BillAddr": {"Line1": "12 Elm St", "City": "Springfield"}}),
        None,
    )
    .await;
    let customer = &created.body["Customer"];
    assert_eq!(customer["DisplayName"], "Jane O'Brien");
    assert_eq!(customer["FullyQualifiedName"], "Jane O'Brien");
    assert_eq!(customer["Active"], true);
    assert_eq!(customer["Balance"], 0);
    assert!(customer["BillAddr"]["Id"].is_string());
    let id = customer["Id"].as_str().unwrap().to_string();

    let sparse = post(
        &fake,
        &token,
        "customer",
        &json!({"Id": id, "SyncToken": "0", "sparse": true,
                "PrimaryEmailAddr": {"Address": "j.obrien@example.org"}}),
        None,
    )
    .await;
    assert_eq!(sparse.status, 200, "{}", sparse.text);
    let updated = &sparse.body["Customer"];
    assert_eq!(updated["SyncToken"], "1");
    assert_eq!(
        updated["PrimaryEmailAddr"]["Address"],
        "j.obrien@example.org"
    );
    assert_eq!(updated["GivenName"], "Jane");
    assert_eq!(updated["BillAddr"]["City"], "Springfield");
    assert_eq!(fake.customer(&id).unwrap(), *updated);

    let stale = post(
        &fake,
        &token,
        "customer",
        &json!({"Id": id, "SyncToken": "0", "sparse": true, "Notes": "late"}),
        None,
    )
    .await;
    assert_eq!(stale.status, 400);
    assert_eq!(fault_code(&stale.body), "5010");
    assert_eq!(
        stale.body["Fault"]["Error"][0]["Message"],
        "Stale Object Error"
    );

    // A full update clears what it leaves out.
    let full = post(
        &fake,
        &token,
        "customer",
        &json!({"Id": id, "SyncToken": "1", "DisplayName": "Jane O'Brien"}),
        None,
    )
    .await;
    assert_eq!(full.body["Customer"]["SyncToken"], "2");
    assert!(full.body["Customer"].get("PrimaryEmailAddr").is_none());

    let read = get(&fake, &token, &format!("customer/{id}")).await;
    assert_eq!(read.body["Customer"]["SyncToken"], "2");
    let missing = get(&fake, &token, "customer/99999").await;
    assert_eq!(missing.status, 400);
    assert_eq!(fault_code(&missing.body), "610");
}

#[tokio::test]
async fn customer_name_rules() {
    let fake = start();
    let token = fake.issue_grant().access_token;
    fake.add_customer(json!({"DisplayName": "Jane Doe"}));
    fake.add_vendor_name("Acme Supplies");
    for name in ["  jane DOE ", "ACME supplies"] {
        let res = post(
            &fake,
            &token,
            "customer",
            &json!({"DisplayName": name}),
            None,
        )
        .await;
        assert_eq!(res.status, 400, "{name}");
        assert_eq!(fault_code(&res.body), "6240");
        assert_eq!(
            res.body["Fault"]["Error"][0]["Detail"],
            "The name supplied already exists. : Another customer is already using this name. \
             Please use a different name."
        );
    }
    let res = post(
        &fake,
        &token,
        "customer",
        &json!({"CompanyName": "X"}),
        None,
    )
    .await;
    assert_eq!(fault_code(&res.body), "2020");
    let res = post(
        &fake,
        &token,
        "customer",
        &json!({"DisplayName": "A:B"}),
        None,
    )
    .await;
    assert_eq!(fault_code(&res.body), "6000");
    let long = "x".repeat(101);
    let res = post(&fake, &token, "customer", &json!({"GivenName": long}), None).await;
    assert_eq!(fault_code(&res.body), "6000");
    let res = post(&fake, &token, "item", &json!({"Name": "donations"}), None).await;
    assert_eq!(fault_code(&res.body), "6240");
    assert_eq!(fake.customers().len(), 1);
}

#[tokio::test]
async fn sales_receipt_rules() {
    let fake = start();
    let token = fake.issue_grant().access_token;
    let customer = fake.add_customer(json!({"DisplayName": "Jane O'Brien"}));
    let item = donations_id(&fake);

    let bad_item = post(
        &fake,
        &token,
        "salesreceipt",
        &receipt(&customer, "999"),
        None,
    )
    .await;
    assert_eq!(bad_item.status, 400);
    assert_eq!(fault_code(&bad_item.body), "2500");
    let error = &bad_item.body["Fault"]["Error"][0];
    assert_eq!(error["element"], "ItemRef");
    assert_eq!(
        error["Detail"],
        "Invalid Reference Id : Item elements id 999 not found"
    );
    let bad_customer = post(&fake, &token, "salesreceipt", &receipt("999", &item), None).await;
    assert_eq!(fault_code(&bad_customer.body), "2500");

    let mut wrong_amount = receipt(&customer, &item);
    wrong_amount["Line"][0]["SalesItemLineDetail"]["Qty"] = json!(2);
    let res = post(&fake, &token, "salesreceipt", &wrong_amount, None).await;
    assert_eq!(fault_code(&res.body), "6070");
    let mut no_customer = receipt(&customer, &item);
    no_customer.as_object_mut().unwrap().remove("CustomerRef");
    let res = post(&fake, &token, "salesreceipt", &no_customer, None).await;
    assert_eq!(fault_code(&res.body), "2020");
    assert!(fake.sales_receipts().is_empty());

    let ok = post(
        &fake,
        &token,
        "salesreceipt",
        &receipt(&customer, &item),
        None,
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let r = &ok.body["SalesReceipt"];
    assert_eq!(r["DocNumber"], "1001");
    assert_eq!(r["TotalAmt"], 150.0);
    assert_eq!(r["CustomerRef"]["name"], "Jane O'Brien");
    assert_eq!(r["DepositToAccountRef"]["name"], "12000 Undeposited Funds");
    assert_eq!(
        r["Line"][0]["SalesItemLineDetail"]["ItemRef"]["name"],
        "Donations"
    );
    assert_eq!(r["Line"][1]["DetailType"], "SubTotalLineDetail");

    let found = query(
        &fake,
        &token,
        &format!("SELECT * FROM SalesReceipt WHERE CustomerRef = '{customer}'"),
    )
    .await;
    assert_eq!(
        found.body["QueryResponse"]["SalesReceipt"][0]["Id"],
        r["Id"]
    );
}

#[tokio::test]
async fn requestid_replays_and_dedupe_off() {
    let fake = start();
    let token = fake.issue_grant().access_token;
    let customer = fake.add_customer(json!({"DisplayName": "Jane O'Brien"}));
    let body = receipt(&customer, &donations_id(&fake));

    let first = post(&fake, &token, "salesreceipt", &body, Some("rid-1")).await;
    fake.advance(Duration::from_secs(5));
    let second = post(&fake, &token, "salesreceipt", &body, Some("rid-1")).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.text, second.text);
    assert_eq!(fake.sales_receipts().len(), 1);

    // Remembered for 24 h of fake clock only.
    fake.advance(Duration::from_secs(24 * 3600));
    let token = fake.issue_grant().access_token;
    let third = post(&fake, &token, "salesreceipt", &body, Some("rid-1")).await;
    assert_ne!(
        third.body["SalesReceipt"]["Id"],
        first.body["SalesReceipt"]["Id"]
    );
    assert_eq!(fake.sales_receipts().len(), 2);

    fake.set_requestid_dedupe(false);
    post(&fake, &token, "salesreceipt", &body, Some("rid-2")).await;
    post(&fake, &token, "salesreceipt", &body, Some("rid-2")).await;
    assert_eq!(fake.sales_receipts().len(), 4);

    let long = "x".repeat(51);
    let res = post(&fake, &token, "salesreceipt", &body, Some(&long)).await;
    assert_eq!(res.status, 400);

    let logged: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/salesreceipt"))
        .collect();
    assert_eq!(logged.len(), 6);
    assert_eq!(logged[0].requestid.as_deref(), Some("rid-1"));
    assert_eq!(logged[0].minorversion.as_deref(), Some("75"));
    assert_eq!(logged[0].method, "POST");
    assert_eq!(logged[0].status, 200);
}

#[tokio::test]
async fn server_error_after_write_then_retry_returns_the_write() {
    let fake = start();
    let token = fake.issue_grant().access_token;
    let customer = fake.add_customer(json!({"DisplayName": "Jane O'Brien"}));
    let body = receipt(&customer, &donations_id(&fake));

    fake.inject(Inject::ServerErrorAfterWrite, 1, Some("/salesreceipt"));
    let failed = post(&fake, &token, "salesreceipt", &body, Some("rid-9")).await;
    assert_eq!(failed.status, 500);
    assert_eq!(fault_code(&failed.body), "10000");
    assert_eq!(failed.body["Fault"]["type"], "SystemFault");
    assert_eq!(fake.sales_receipts().len(), 1);

    let retried = post(&fake, &token, "salesreceipt", &body, Some("rid-9")).await;
    assert_eq!(retried.status, 200);
    assert_eq!(
        retried.body["SalesReceipt"]["Id"],
        fake.sales_receipts()[0]["Id"]
    );
    assert_eq!(fake.sales_receipts().len(), 1);
}

#[tokio::test]
async fn injected_faults_and_the_rate_limit() {
    let fake = FakeQbo::start(FakeQboOptions::default()).unwrap();
    let token = fake.issue_grant().access_token;

    fake.inject(Inject::Throttle, 1, Some("/query"));
    // The path filter skips the read; the query takes the throttle.
    let read = get(&fake, &token, "account/1").await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["Account"]["Id"], "1");
    let throttled = query(&fake, &token, "SELECT * FROM Item").await;
    assert_eq!(throttled.status, 429);
    let error = &throttled.body["Fault"]["Error"][0];
    assert_eq!(throttled.body["Fault"]["type"], "SERVICE");
    assert_eq!(error["code"], "3001");
    assert_eq!(
        error["Message"],
        "message=ThrottleExceeded; errorCode=003001; statusCode=429"
    );
    assert_eq!(
        error["Detail"],
        "The request limit was reached.  Try again later"
    );
    fake.inject(Inject::FaultIn200, 1, None);
    fake.inject(Inject::ServerError, 1, None);
    let in_200 = get(&fake, &token, "account/1").await;
    assert_eq!(in_200.status, 200);
    assert_eq!(fault_code(&in_200.body), "6000");
    assert_eq!(get(&fake, &token, "account/1").await.status, 500);
    // Five calls so far: the per-second bucket of 10 (refilled as real time passes) runs dry
    // after a handful more.
    let mut ok = 0;
    let mut limited = None;
    for _ in 0..40 {
        let res = get(&fake, &token, "account/1").await;
        if res.status == 429 {
            limited = Some(res);
            break;
        }
        ok += 1;
    }
    let limited = limited.expect("the per-second limit never answered 429");
    assert!(ok >= 5, "only {ok} calls before the 429");
    assert_eq!(fault_code(&limited.body), "3001");
    fake.advance(Duration::from_secs(1));
    assert_eq!(get(&fake, &token, "account/1").await.status, 200);
}

#[tokio::test]
async fn concurrency_gate() {
    let fake = FakeQbo::start(FakeQboOptions {
        max_concurrent: 2,
        latency: Duration::from_millis(400),
        ..FakeQboOptions::default()
    })
    .unwrap();
    let token = fake.issue_grant().access_token;
    let calls = (0..5).map(|_| get(&fake, &token, "account/1"));
    let answers = futures_util::future::join_all(calls).await;
    let ok = answers.iter().filter(|a| a.status == 200).count();
    let throttled = answers.iter().filter(|a| a.status == 429).count();
    assert_eq!(ok + throttled, 5);
    assert!(throttled >= 3, "{ok} ok, {throttled} throttled");
    assert_eq!(fake.max_concurrency_seen(), 2);
}

/// Posts `body` to `tail` with extra query parameters (`operation=delete`).
async fn post_with(
    fake: &FakeQbo,
    token: &str,
    tail: &str,
    params: &[(&str, &str)],
    body: &Value,
) -> Answer {
    let res = client()
        .post(api_url(fake, tail, params))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    finish(res).await
}

fn fault_detail(body: &Value) -> &str {
    body.pointer("/Fault/Error/0/Detail")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn account_id(fake: &FakeQbo, name: &str) -> String {
    let accounts = fake.accounts();
    let account = accounts.iter().find(|a| a["Name"] == name).unwrap();
    account["Id"].as_str().unwrap().to_string()
}

/// A receipt of one donation line of `amount`, created through the API; its Id.
async fn receipt_of(
    fake: &FakeQbo,
    token: &str,
    customer: &str,
    amount: f64,
    deposit_to: Option<&str>,
) -> String {
    let mut body = receipt(customer, &donations_id(fake));
    body["Line"][0]["Amount"] = json!(amount);
    body["Line"][0]["SalesItemLineDetail"]["UnitPrice"] = json!(amount);
    if let Some(account) = deposit_to {
        body["DepositToAccountRef"] = json!({"value": account});
    }
    let res = post(fake, token, "salesreceipt", &body, None).await;
    assert_eq!(res.status, 200, "{}", res.text);
    res.body["SalesReceipt"]["Id"].as_str().unwrap().to_string()
}

/// A deposit into `account` of whole receipts, as our client sends it.
fn deposit_body(account: &str, lines: &[(&str, f64)]) -> Value {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(id, amount)| {
            json!({"Amount": amount,
                   "LinkedTxn": [{"TxnId": id, "TxnType": "SalesReceipt", "TxnLineId": "0"}]})
        })
        .collect();
    json!({"TxnDate": "2026-11-27", "DepositToAccountRef": {"value": account},
           "PrivateNote": "Sunday collection [fom-deposit:abc]", "Line": lines})
}

#[tokio::test]
async fn deposits_move_receipts_out_of_undeposited_funds_and_freeze_them() {
    let fake = start();
    let token = fake.issue_grant().access_token;
    let customer = fake.add_customer(json!({"DisplayName": "Jane O'Brien"}));
    let bank = account_id(&fake, "Checking");
    let uf = account_id(&fake, "12000 Undeposited Funds");
    let first = receipt_of(&fake, &token, &customer, 150.0, None).await;
    let second = receipt_of(&fake, &token, &customer, 75.5, None).await;
    let spare = receipt_of(&fake, &token, &customer, 40.0, None).await;
    let direct = receipt_of(&fake, &token, &customer, 20.0, Some(&bank)).await;

    let made = post(
        &fake,
        &token,
        "deposit",
        &deposit_body(&bank, &[(&first, 150.0), (&second, 75.5)]),
        Some("dep-1"),
    )
    .await;
    assert_eq!(made.status, 200, "{}", made.text);
    assert!(made.body["time"].is_string());
    let deposit = &made.body["Deposit"];
    let deposit_id = deposit["Id"].as_str().unwrap().to_string();
    assert_eq!(deposit["TotalAmt"], 225.5);
    assert_eq!(deposit["SyncToken"], "0");
    assert_eq!(deposit["TxnDate"], "2026-11-27");
    assert_eq!(deposit["CurrencyRef"]["value"], "USD");
    assert_eq!(
        deposit["DepositToAccountRef"],
        json!({"value": bank, "name": "Checking"})
    );
    assert_eq!(
        deposit["PrivateNote"],
        "Sunday collection [fom-deposit:abc]"
    );
    let lines = deposit["Line"].as_array().unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["Id"], "2");
    assert_eq!(lines[1]["LineNum"], 2);
    assert_eq!(lines[1]["Amount"], 75.5);
    assert_eq!(lines[1]["DetailType"], "DepositLineDetail");
    assert_eq!(
        lines[0]["LinkedTxn"],
        json!([{"TxnId": first, "TxnType": "SalesReceipt", "TxnLineId": "0"}])
    );
    assert_eq!(fake.deposits(), vec![deposit.clone()]);

    // An "other funds" line names the account the money comes from.
    let mut mixed = deposit_body(&bank, &[(&spare, 40.0)]);
    mixed["Line"].as_array_mut().unwrap().push(json!({
        "Amount": 12.25, "DetailType": "DepositLineDetail",
        "DepositLineDetail": {"AccountRef": {"value": account_id(&fake, "Donation Income")}}}));
    mixed.as_object_mut().unwrap().remove("TxnDate");
    let res = post(&fake, &token, "deposit", &mixed, None).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let other = &res.body["Deposit"];
    assert_eq!(other["TotalAmt"], 52.25);
    assert_eq!(
        other["Line"][1]["DepositLineDetail"]["AccountRef"]["name"],
        "Donation Income"
    );
    assert!(other["TxnDate"].as_str().unwrap().starts_with("20"));
    // Deleting it lets its receipt go again.
    let deleted = post_with(
        &fake,
        &token,
        "deposit",
        &[("operation", "delete")],
        &json!({"Id": other["Id"], "SyncToken": "0"}),
    )
    .await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert_eq!(deleted.body["Deposit"]["status"], "Deleted");

    let refused = [
        (
            deposit_body(&bank, &[(&first, 150.0)]),
            "6000",
            "has already been deposited",
        ),
        (
            deposit_body(&bank, &[(&direct, 20.0)]),
            "6000",
            "not in Undeposited Funds",
        ),
        (
            deposit_body(&bank, &[(&spare, 41.0)]),
            "6000",
            "41.00 does not match",
        ),
        (
            deposit_body(&bank, &[(&spare, 40.0), (&spare, 40.0)]),
            "6000",
            "more than one line",
        ),
        (
            deposit_body(&uf, &[(&spare, 40.0)]),
            "6000",
            "cannot go to Undeposited Funds",
        ),
        (
            deposit_body(&account_id(&fake, "Donation Income"), &[(&spare, 40.0)]),
            "6000",
            "Bank or Other Current Asset",
        ),
        (
            deposit_body(&bank, &[("99999", 40.0)]),
            "2500",
            "SalesReceipt id 99999 not found",
        ),
        (
            deposit_body("99999", &[(&spare, 40.0)]),
            "2500",
            "id 99999 not found",
        ),
        (deposit_body(&bank, &[]), "2020", "Line"),
        (
            json!({"Line": deposit_body(&bank, &[(&spare, 40.0)])["Line"]}),
            "2020",
            "DepositToAccountRef",
        ),
    ];
    for (body, code, detail) in refused {
        let res = post(&fake, &token, "deposit", &body, None).await;
        assert_eq!(res.status, 400, "{body}");
        assert_eq!(res.body["Fault"]["type"], "ValidationFault");
        assert_eq!(fault_code(&res.body), code, "{body}: {}", res.text);
        assert!(fault_detail(&res.body).contains(detail), "{}", res.text);
    }
    let mut payment = deposit_body(&bank, &[(&spare, 40.0)]);
    payment["Line"][0]["LinkedTxn"][0]["TxnType"] = json!("Payment");
    let res = post(&fake, &token, "deposit", &payment, None).await;
    assert_eq!(fault_code(&res.body), "2500", "{}", res.text);
    let mut no_line_id = deposit_body(&bank, &[(&spare, 40.0)]);
    no_line_id["Line"][0]["LinkedTxn"][0]
        .as_object_mut()
        .unwrap()
        .remove("TxnLineId");
    let res = post(&fake, &token, "deposit", &no_line_id, None).await;
    assert_eq!(fault_code(&res.body), "2020", "{}", res.text);
    assert_eq!(fake.deposits().len(), 1);

    // A deposited receipt is frozen: update, delete and void get 6540.
    let frozen = "This transaction has been deposited. If you want to change or delete it, you \
                  must edit the deposit it appears on and remove it first.";
    for (params, body) in [
        (
            vec![],
            json!({"Id": first, "SyncToken": "0", "sparse": true, "PrivateNote": "edited"}),
        ),
        (
            vec![("operation", "delete")],
            json!({"Id": first, "SyncToken": "0"}),
        ),
        (
            vec![("operation", "update"), ("include", "void")],
            json!({"Id": first, "SyncToken": "0"}),
        ),
    ] {
        let res = post_with(&fake, &token, "salesreceipt", &params, &body).await;
        assert_eq!(res.status, 400, "{params:?}");
        assert_eq!(fault_code(&res.body), "6540", "{}", res.text);
        let error = &res.body["Fault"]["Error"][0];
        assert_eq!(error["Message"], "Deposited Transaction cannot be changed");
        assert_eq!(error["Detail"], frozen);
    }
    let receipts = fake.sales_receipts();
    let stored = receipts.iter().find(|r| r["Id"] == first.as_str()).unwrap();
    assert_eq!(stored["SyncToken"], "0");
    // The receipt freed by the deleted deposit can change.
    let res = post(
        &fake,
        &token,
        "salesreceipt",
        &json!({"Id": spare, "SyncToken": "0", "sparse": true, "PrivateNote": "edited"}),
        None,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text);

    let found = query(
        &fake,
        &token,
        "SELECT * FROM Deposit WHERE TxnDate = '2026-11-27'",
    )
    .await;
    assert_eq!(found.status, 200, "{}", found.text);
    let rows = found.body["QueryResponse"]["Deposit"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["Id"], deposit_id.as_str());
    let found = query(
        &fake,
        &token,
        &format!("SELECT * FROM Deposit WHERE DepositToAccountRef = '{bank}' AND TotalAmt > 200"),
    )
    .await;
    assert_eq!(
        found.body["QueryResponse"]["Deposit"][0]["Id"],
        deposit_id.as_str()
    );
    let read = get(&fake, &token, &format!("deposit/{deposit_id}")).await;
    assert_eq!(read.body["Deposit"], *deposit);
}

/// Our client's upload: `file_metadata_NN` (JSON) and `file_content_NN` (the bytes) parts.
fn upload_form(files: &[(Value, &str, &str, Vec<u8>)]) -> reqwest::multipart::Form {
    let mut form = reqwest::multipart::Form::new();
    for (n, (meta, name, content_type, bytes)) in files.iter().enumerate() {
        let meta = reqwest::multipart::Part::text(meta.to_string())
            .mime_str("application/json")
            .unwrap();
        let file = reqwest::multipart::Part::bytes(bytes.clone())
            .file_name(name.to_string())
            .mime_str(content_type)
            .unwrap();
        form = form
            .part(format!("file_metadata_{:02}", n + 1), meta)
            .part(format!("file_content_{:02}", n + 1), file);
    }
    form
}

async fn upload(
    fake: &FakeQbo,
    token: &str,
    form: reqwest::multipart::Form,
    requestid: Option<&str>,
) -> Answer {
    let params: Vec<(&str, &str)> = requestid.map(|r| ("requestid", r)).into_iter().collect();
    let res = client()
        .post(api_url(fake, "upload", &params))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    finish(res).await
}

fn scan_metadata(receipt: &str) -> Value {
    json!({"AttachableRef": [{"EntityRef": {"type": "SalesReceipt", "value": receipt},
                              "IncludeOnSend": false}],
           "FileName": "deposit-p3.jpg", "ContentType": "image/jpeg",
           "Note": "Scan of the check [fom:0b6f1c2e-4d7a-4b8e-9a51-3f2d8c9e1a70]"})
}

/// Binary bytes that look like the framing: CRLFs, dashes, NULs, invalid UTF-8.
fn scan_bytes() -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00];
    bytes.extend_from_slice(b"\r\n--\r\n\r\n--x");
    bytes.extend((0..20_000u32).map(|i| (i * 31 % 256) as u8));
    bytes.extend_from_slice(&[0xFF, 0xD9]);
    bytes
}

#[tokio::test]
async fn upload_attaches_files_to_receipts() {
    let fake = start();
    let token = fake.issue_grant().access_token;
    let customer = fake.add_customer(json!({"DisplayName": "Jane O'Brien"}));
    let first = receipt_of(&fake, &token, &customer, 150.0, None).await;
    let second = receipt_of(&fake, &token, &customer, 75.0, None).await;
    let bytes = scan_bytes();

    let form = upload_form(&[(
        scan_metadata(&first),
        "deposit-p3.jpg",
        "image/jpeg",
        bytes.clone(),
    )]);
    let res = upload(&fake, &token, form, Some("up-1")).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(res.body["time"].is_string());
    let items = res.body["AttachableResponse"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let attachable = &items[0]["Attachable"];
    let id = attachable["Id"].as_str().unwrap().to_string();
    assert_eq!(attachable["FileName"], "deposit-p3.jpg");
    assert_eq!(attachable["ContentType"], "image/jpeg");
    assert_eq!(attachable["Size"], bytes.len());
    assert_eq!(attachable["SyncToken"], "0");
    assert_eq!(
        attachable["Note"],
        "Scan of the check [fom:0b6f1c2e-4d7a-4b8e-9a51-3f2d8c9e1a70]"
    );
    assert_eq!(
        attachable["AttachableRef"],
        json!([{"EntityRef": {"type": "SalesReceipt", "value": first}, "IncludeOnSend": false}])
    );
    assert_eq!(fake.attachables(), vec![attachable.clone()]);
    assert_eq!(fake.attachment_bytes(&id).unwrap(), bytes);
    let uri = attachable["TempDownloadUri"].as_str().unwrap();
    assert!(uri.starts_with(&fake.base_url()), "{uri}");
    let downloaded = client().get(uri).send().await.unwrap();
    assert_eq!(downloaded.headers()["content-type"], "image/jpeg");
    assert_eq!(downloaded.bytes().await.unwrap().to_vec(), bytes);
    let read = get(&fake, &token, &format!("attachable/{id}")).await;
    assert_eq!(read.body["Attachable"], *attachable);

    // The same requestid answers the stored result without a second attachable.
    let form = upload_form(&[(
        scan_metadata(&first),
        "deposit-p3.jpg",
        "image/jpeg",
        bytes.clone(),
    )]);
    let again = upload(&fake, &token, form, Some("up-1")).await;
    assert_eq!(again.text, res.text);
    assert_eq!(fake.attachables().len(), 1);

    // Our client's lookup, the type in any case, and IN.
    for sql in [
        format!(
            "SELECT * FROM Attachable WHERE AttachableRef.EntityRef.Type = 'SalesReceipt' \
             AND AttachableRef.EntityRef.value = '{first}' STARTPOSITION 1 MAXRESULTS 1000"
        ),
        format!(
            "SELECT * FROM Attachable WHERE AttachableRef.EntityRef.Type = 'salesreceipt' \
             AND AttachableRef.EntityRef.Value IN ('{second}', '{first}')"
        ),
    ] {
        let found = query(&fake, &token, &sql).await;
        assert_eq!(found.status, 200, "{}", found.text);
        let rows = found.body["QueryResponse"]["Attachable"]
            .as_array()
            .unwrap();
        assert_eq!(rows.len(), 1, "{sql}");
        assert_eq!(rows[0]["Id"], id.as_str());
    }
    let none = query(
        &fake,
        &token,
        &format!(
            "SELECT * FROM Attachable WHERE AttachableRef.EntityRef.Type = 'SalesReceipt' \
             AND AttachableRef.EntityRef.value = '{second}'"
        ),
    )
    .await;
    assert_eq!(none.body["QueryResponse"], json!({}));

    // Two pairs at once: the file name from the content part; a refused type is a per-file
    // fault beside the stored one. An unknown receipt alone: still 200, one fault.
    let mut nameless = scan_metadata(&second);
    nameless.as_object_mut().unwrap().remove("FileName");
    let mut zipped = scan_metadata(&second);
    zipped["ContentType"] = json!("application/zip");
    let form = upload_form(&[
        (nameless, "scan 2 é.jpg", "image/jpeg", vec![1, 2, 3]),
        (zipped, "scans.zip", "application/zip", vec![4, 5]),
    ]);
    let res = upload(&fake, &token, form, None).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let items = res.body["AttachableResponse"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["Attachable"]["FileName"], "scan 2 é.jpg");
    assert_eq!(items[0]["Attachable"]["Size"], 3);
    assert_eq!(items[1]["Fault"]["type"], "ValidationFault");
    assert_eq!(items[1]["Fault"]["Error"][0]["code"], "6000");
    assert_eq!(items[1]["Fault"]["Error"][0]["element"], "ContentType");
    assert_eq!(fake.attachables().len(), 2);

    let form = upload_form(&[(
        scan_metadata("99999"),
        "deposit-p3.jpg",
        "image/jpeg",
        bytes.clone(),
    )]);
    let res = upload(&fake, &token, form, None).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let items = res.body["AttachableResponse"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let error = &items[0]["Fault"]["Error"][0];
    assert_eq!(error["code"], "2500");
    assert_eq!(
        error["Detail"],
        "Invalid Reference Id : SalesReceipt id 99999 not found"
    );
    assert_eq!(items[0]["Fault"]["type"], "ValidationFault");
    assert!(items[0].get("Attachable").is_none());
    assert_eq!(fake.attachables().len(), 2);

    // Not multipart, or a half pair: a fault for the whole request.
    let res = post(&fake, &token, "upload", &scan_metadata(&first), None).await;
    assert_eq!(res.status, 400);
    assert_eq!(fault_code(&res.body), "2020");
    assert!(
        fault_detail(&res.body).contains("multipart/form-data"),
        "{}",
        res.text
    );
    let meta_only = reqwest::multipart::Form::new().part(
        "file_metadata_01",
        reqwest::multipart::Part::text(scan_metadata(&first).to_string())
            .mime_str("application/json")
            .unwrap(),
    );
    let res = upload(&fake, &token, meta_only, None).await;
    assert_eq!(res.status, 400);
    assert_eq!(fault_code(&res.body), "2020");
    assert_eq!(res.body["Fault"]["Error"][0]["element"], "file_content_01");
    assert_eq!(fake.attachables().len(), 2);

    // A note without a file through the JSON create.
    let note = post(
        &fake,
        &token,
        "attachable",
        &json!({"Note": "Deposit slip to follow",
                "AttachableRef": [{"EntityRef": {"type": "SalesReceipt", "value": second}}]}),
        None,
    )
    .await;
    assert_eq!(note.status, 200, "{}", note.text);
    let note_id = note.body["Attachable"]["Id"].as_str().unwrap();
    assert!(fake.attachment_bytes(note_id).is_none());
    assert_eq!(fake.attachables().len(), 3);
}

#[tokio::test]
async fn upload_server_error_after_write_then_retry_returns_the_write() {
    let fake = start();
    let token = fake.issue_grant().access_token;
    let customer = fake.add_customer(json!({"DisplayName": "Jane O'Brien"}));
    let receipt = receipt_of(&fake, &token, &customer, 150.0, None).await;
    let form = || {
        upload_form(&[(
            scan_metadata(&receipt),
            "deposit-p3.jpg",
            "image/jpeg",
            scan_bytes(),
        )])
    };

    fake.inject(Inject::ServerErrorAfterWrite, 1, Some("/upload"));
    let failed = upload(&fake, &token, form(), Some("up-9")).await;
    assert_eq!(failed.status, 500);
    assert_eq!(fault_code(&failed.body), "10000");
    let stored = fake.attachables();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        fake.attachment_bytes(stored[0]["Id"].as_str().unwrap())
            .unwrap(),
        scan_bytes()
    );

    let retried = upload(&fake, &token, form(), Some("up-9")).await;
    assert_eq!(retried.status, 200);
    assert_eq!(
        retried.body["AttachableResponse"][0]["Attachable"]["Id"],
        stored[0]["Id"]
    );
    assert_eq!(fake.attachables().len(), 1);
}

#[tokio::test]
async fn upload_refuses_a_file_over_100_mb() {
    let fake = start();
    let token = fake.issue_grant().access_token;
    let customer = fake.add_customer(json!({"DisplayName": "Jane O'Brien"}));
    let receipt = receipt_of(&fake, &token, &customer, 150.0, None).await;
    let big = vec![0u8; 100 * 1024 * 1024 + 1];
    let form = upload_form(&[(scan_metadata(&receipt), "huge.pdf", "application/pdf", big)]);
    let res = upload(&fake, &token, form, None).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let error = &res.body["AttachableResponse"][0]["Fault"]["Error"][0];
    assert_eq!(error["code"], "6000");
    assert!(
        error["Detail"].as_str().unwrap().contains("at most 100 MB"),
        "{}",
        res.text
    );
    assert!(fake.attachables().is_empty());
}
