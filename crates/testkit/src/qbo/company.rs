//! The company's store: one table per entity kind, lookups, and the operations a request
//! dispatches to: read, create, full or sparse update (with the SyncToken check), delete and
//! void. Each kind's own rules are in `customer`, `receipt`, `lists`, `deposit` and
//! `attachable` (which also answers the multipart upload).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::entity::{id_of, str_of, Kind, SYSTEM_KEYS};
use super::fault::Fault;
use super::http::param;
use super::state::{api_time, meta_time};

/// The fake's only company (realm).
pub(super) struct Company {
    next_id: u64,
    /// The next `BillAddr`/`ShipAddr` Id.
    pub(super) next_addr: u64,
    /// The next automatic SalesReceipt DocNumber.
    pub(super) next_doc: u64,
    tables: HashMap<Kind, BTreeMap<u64, Value>>,
    /// Vendor and Employee display names.
    pub(super) other_names: Vec<String>,
    /// The uploaded files by Attachable Id: bytes stay out of the JSON the API answers with.
    pub(super) attachment_bytes: HashMap<String, Vec<u8>>,
    /// The fake's base URL, for the `TempDownloadUri` of uploaded files.
    pub(super) base: String,
}

impl Company {
    /// No entities yet.
    pub(super) fn empty() -> Company {
        Company {
            next_id: 1,
            next_addr: 1,
            next_doc: 1001,
            tables: Kind::ALL
                .into_iter()
                .map(|k| (k, BTreeMap::new()))
                .collect(),
            other_names: Vec::new(),
            attachment_bytes: HashMap::new(),
            base: String::new(),
        }
    }

    pub(super) fn table(&self, kind: Kind) -> &BTreeMap<u64, Value> {
        static EMPTY: BTreeMap<u64, Value> = BTreeMap::new();
        self.tables.get(&kind).unwrap_or(&EMPTY)
    }

    pub(super) fn table_mut(&mut self, kind: Kind) -> &mut BTreeMap<u64, Value> {
        self.tables.entry(kind).or_default()
    }

    pub(super) fn get(&self, kind: Kind, id: &str) -> Option<&Value> {
        let id: u64 = id.trim().parse().ok()?;
        self.table(kind).get(&id)
    }

    /// Marks an entity inactive, as a person does in QuickBooks ("Make inactive"); false when
    /// there is no such entity.
    pub(super) fn deactivate(&mut self, kind: Kind, id: &str) -> bool {
        let Ok(key) = id.parse::<u64>() else {
            return false;
        };
        match self.table_mut(kind).get_mut(&key) {
            Some(Value::Object(m)) => {
                m.insert("Active".into(), Value::Bool(false));
                true
            }
            _ => false,
        }
    }

    pub(super) fn find_by_name(&self, kind: Kind, name: &str) -> Option<String> {
        self.table(kind).values().find_map(|v| {
            let n = v.get("Name").and_then(Value::as_str)?;
            n.eq_ignore_ascii_case(name)
                .then(|| v.get("Id").and_then(Value::as_str).map(String::from))
                .flatten()
        })
    }

    /// Whether `name` is taken by another entity of `kind` (field `field`), ASCII-case-insensitive.
    pub(super) fn name_taken(
        &self,
        kind: Kind,
        field: &str,
        name: &str,
        except: Option<&str>,
    ) -> bool {
        self.table(kind).values().any(|v| {
            v.get("Id").and_then(Value::as_str) != except
                && v.get(field)
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.trim().eq_ignore_ascii_case(name))
        })
    }

    pub(super) fn ref_name(&self, kind: Kind, id: &str, field: &str) -> Option<String> {
        self.get(kind, id).map(|v| {
            v.get(field)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        })
    }

    pub(super) fn undeposited_funds(&self) -> Option<(String, String)> {
        self.table(Kind::Account).values().find_map(|v| {
            (v.get("AccountSubType").and_then(Value::as_str) == Some("UndepositedFunds")).then(
                || {
                    (
                        v.get("Id")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        v.get("Name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                    )
                },
            )
        })
    }

    pub(super) fn dispatch(
        &mut self,
        method: &str,
        tail: &str,
        params: &[(String, String)],
        body: &[u8],
        content_type: &str,
        now: DateTime<Utc>,
    ) -> Result<Value, Fault> {
        let segs: Vec<&str> = tail.trim_end_matches('/').split('/').collect();
        match (method, segs.as_slice()) {
            ("POST", ["upload"]) => self.upload(body, content_type, now),
            ("GET", ["query"]) | ("POST", ["query"]) => {
                let sql = match param(params, "query") {
                    Some(q) => q.to_string(),
                    None if method == "POST" => String::from_utf8_lossy(body).into_owned(),
                    None => return Err(Fault::parser("the query parameter is missing")),
                };
                let answer = self.query(&sql)?;
                Ok(json!({"QueryResponse": answer, "time": api_time(now)}))
            }
            ("GET", [entity, id]) => {
                let kind = Kind::from_path(entity)
                    .ok_or_else(|| Fault::unsupported(format!("Unsupported entity {entity}")))?;
                let found = self
                    .get(kind, id)
                    .cloned()
                    .ok_or_else(|| Fault::not_found(kind, id))?;
                Ok(json!({ kind.name(): found, "time": api_time(now) }))
            }
            ("POST", [entity]) => {
                let kind = Kind::from_path(entity)
                    .ok_or_else(|| Fault::unsupported(format!("Unsupported entity {entity}")))?;
                let parsed: Value = serde_json::from_slice(body).map_err(|e| {
                    Fault::invalid_property(format!("Unable to parse the request body: {e}"))
                })?;
                let Value::Object(obj) = parsed else {
                    return Err(Fault::invalid_property(
                        "The request body must be a JSON object",
                    ));
                };
                let entity = match param(params, "operation") {
                    None | Some("create") | Some("update") => {
                        if param(params, "include") == Some("void") {
                            self.void(kind, obj, now)?
                        } else if obj.contains_key("Id") {
                            self.update(kind, obj, now)?
                        } else {
                            self.create(kind, obj, now, true)?
                        }
                    }
                    Some("delete") => self.delete(kind, obj)?,
                    Some(other) => {
                        return Err(Fault::unsupported(format!(
                            "Operation {other} is not supported"
                        )))
                    }
                };
                Ok(json!({ kind.name(): entity, "time": api_time(now) }))
            }
            _ => Err(Fault::unsupported(format!(
                "Operation {method} {tail} is not supported"
            ))),
        }
    }

    pub(super) fn create(
        &mut self,
        kind: Kind,
        mut obj: Map<String, Value>,
        now: DateTime<Utc>,
        strict: bool,
    ) -> Result<Value, Fault> {
        for key in SYSTEM_KEYS {
            obj.remove(key);
        }
        self.prepare(kind, &mut obj, None, now, strict)?;
        let id = self.next_id;
        self.next_id += 1;
        let ts = meta_time(now);
        obj.insert("Id".into(), json!(id.to_string()));
        obj.insert("SyncToken".into(), json!("0"));
        obj.insert(
            "MetaData".into(),
            json!({"CreateTime": ts, "LastUpdatedTime": ts}),
        );
        obj.insert("domain".into(), json!("QBO"));
        obj.insert("sparse".into(), json!(false));
        let value = Value::Object(obj);
        self.table_mut(kind).insert(id, value.clone());
        Ok(value)
    }

    /// The stored entity an update, delete or void names, after the SyncToken check and,
    /// for a sales receipt, the check that no deposit holds it.
    fn target(&self, kind: Kind, obj: &Map<String, Value>) -> Result<(u64, Value), Fault> {
        let id = obj.get("Id").and_then(id_of).unwrap_or_default();
        let old = self
            .get(kind, &id)
            .cloned()
            .ok_or_else(|| Fault::not_found(kind, &id))?;
        let sent = obj
            .get("SyncToken")
            .and_then(id_of)
            .ok_or_else(|| Fault::required("SyncToken"))?;
        let current = old.get("SyncToken").and_then(Value::as_str).unwrap_or("0");
        if sent != current {
            return Err(Fault::validation(
                "5010",
                "Stale Object Error",
                format!(
                    "Stale Object Error : You and another user were working on the same \
                     {} at the same time. (SyncToken {sent} sent, {current} current)",
                    kind.name()
                ),
            ));
        }
        let numeric: u64 = id.parse().unwrap_or_default();
        if kind == Kind::SalesReceipt && self.deposit_of(&numeric.to_string()).is_some() {
            return Err(Fault::deposited());
        }
        Ok((numeric, old))
    }

    fn store_revision(
        &mut self,
        kind: Kind,
        id: u64,
        old: &Value,
        mut new: Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Value {
        let sync: u64 = old
            .get("SyncToken")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let created = old
            .pointer("/MetaData/CreateTime")
            .cloned()
            .unwrap_or_else(|| json!(meta_time(now)));
        new.insert("Id".into(), json!(id.to_string()));
        new.insert("SyncToken".into(), json!((sync + 1).to_string()));
        new.insert(
            "MetaData".into(),
            json!({"CreateTime": created, "LastUpdatedTime": meta_time(now)}),
        );
        new.insert("domain".into(), json!("QBO"));
        new.insert("sparse".into(), json!(false));
        let value = Value::Object(new);
        self.table_mut(kind).insert(id, value.clone());
        value
    }

    fn update(
        &mut self,
        kind: Kind,
        obj: Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<Value, Fault> {
        let (id, old) = self.target(kind, &obj)?;
        let sparse = obj.get("sparse").and_then(Value::as_bool).unwrap_or(false);
        let mut new = if sparse {
            match &old {
                Value::Object(m) => m.clone(),
                _ => Map::new(),
            }
        } else {
            Map::new()
        };
        for (k, v) in obj {
            if !SYSTEM_KEYS.contains(&k.as_str()) {
                new.insert(k, v);
            }
        }
        // Read-only figures survive a full update.
        for key in [
            "Balance",
            "BalanceWithJobs",
            "CurrentBalance",
            "CurrentBalanceWithSubAccounts",
            "Size",
            "TempDownloadUri",
        ] {
            if let Some(v) = old.get(key) {
                new.insert(key.to_string(), v.clone());
            }
        }
        let old_id = id.to_string();
        if kind == Kind::SalesReceipt {
            // An update keeps the number unless it sends a new one.
            let keep = matches!(str_of(&new, "DocNumber"), None | Some("AUTO_GENERATE"));
            if let (true, Some(doc)) = (keep, old.get("DocNumber")) {
                new.insert("DocNumber".into(), doc.clone());
            }
        }
        self.prepare(kind, &mut new, Some(&old_id), now, true)?;
        Ok(self.store_revision(kind, id, &old, new, now))
    }

    /// Transactions and attachments can be deleted; name-list entities only made inactive.
    /// Deleting a deposit frees its receipts.
    fn delete(&mut self, kind: Kind, obj: Map<String, Value>) -> Result<Value, Fault> {
        if !matches!(kind, Kind::SalesReceipt | Kind::Deposit | Kind::Attachable) {
            return Err(Fault::unsupported(format!(
                "Operation delete is not supported for {}; set Active to false",
                kind.name()
            )));
        }
        let (id, _) = self.target(kind, &obj)?;
        self.table_mut(kind).remove(&id);
        if kind == Kind::Attachable {
            self.attachment_bytes.remove(&id.to_string());
        }
        Ok(json!({"Id": id.to_string(), "status": "Deleted", "domain": "QBO"}))
    }

    fn void(
        &mut self,
        kind: Kind,
        obj: Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<Value, Fault> {
        if kind != Kind::SalesReceipt {
            return Err(Fault::unsupported(format!(
                "Operation void is not supported for {}",
                kind.name()
            )));
        }
        let (id, old) = self.target(kind, &obj)?;
        let mut new = match &old {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        if let Some(Value::Array(lines)) = new.get_mut("Line") {
            for line in lines.iter_mut() {
                line["Amount"] = json!(0);
                if let Some(detail) = line.get_mut("SalesItemLineDetail") {
                    if detail.get("Qty").is_some() {
                        detail["Qty"] = json!(0);
                    }
                }
            }
        }
        new.insert("TotalAmt".into(), json!(0));
        new.insert("PrivateNote".into(), json!("Voided"));
        Ok(self.store_revision(kind, id, &old, new, now))
    }

    fn prepare(
        &mut self,
        kind: Kind,
        obj: &mut Map<String, Value>,
        self_id: Option<&str>,
        now: DateTime<Utc>,
        strict: bool,
    ) -> Result<(), Fault> {
        match kind {
            Kind::Customer => self.prepare_customer(obj, self_id, strict),
            Kind::SalesReceipt => self.prepare_receipt(obj, now),
            Kind::Item => self.prepare_item(obj, self_id, strict),
            Kind::Account => self.prepare_account(obj, self_id, strict),
            Kind::PaymentMethod => self.prepare_payment_method(obj, self_id, strict),
            Kind::Deposit => self.prepare_deposit(obj, self_id, now),
            Kind::Attachable => self.prepare_attachable(obj, self_id),
        }
    }
}
