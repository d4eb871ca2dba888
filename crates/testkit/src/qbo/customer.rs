//! Customer rules: a DisplayName (given, or built from the name parts) that is trimmed, at
//! most 500 characters, without a colon and unique among customers, vendors and employees;
//! given, middle and family names of at most 100 characters; QuickBooks's defaults.

use serde_json::{json, Map, Value};

use super::company::Company;
use super::entity::{str_of, trim_field, usd, Kind};
use super::fault::Fault;

const DUPLICATE_DETAIL: &str = "The name supplied already exists. : Another customer is already \
                                using this name. Please use a different name.";

impl Company {
    pub(super) fn prepare_customer(
        &mut self,
        obj: &mut Map<String, Value>,
        self_id: Option<&str>,
        strict: bool,
    ) -> Result<(), Fault> {
        let name_parts = ["Title", "GivenName", "MiddleName", "FamilyName", "Suffix"];
        for key in name_parts
            .iter()
            .chain(&["DisplayName", "CompanyName", "PrintOnCheckName"])
        {
            if obj
                .get(*key)
                .is_some_and(|v| !v.is_string() && !v.is_null())
            {
                return Err(Fault::invalid_property(format!("{key} must be a string")));
            }
            trim_field(obj, key);
        }
        if str_of(obj, "DisplayName").is_none() {
            let parts: Vec<&str> = name_parts.iter().filter_map(|k| str_of(obj, k)).collect();
            if parts.is_empty() {
                if strict {
                    return Err(Fault::required("DisplayName"));
                }
            } else {
                let built = parts.join(" ");
                obj.insert("DisplayName".into(), json!(built));
            }
        }
        let display = str_of(obj, "DisplayName").unwrap_or("").to_string();
        if strict {
            for key in ["GivenName", "MiddleName", "FamilyName"] {
                if str_of(obj, key).is_some_and(|s| s.chars().count() > 100) {
                    return Err(Fault::business(format!(
                        "String length exceeds max: {key} may have at most 100 characters"
                    ))
                    .element(key));
                }
            }
            if display.chars().count() > 500 {
                return Err(Fault::business(
                    "String length exceeds max: DisplayName may have at most 500 characters",
                )
                .element("DisplayName"));
            }
            if display.contains(':') {
                return Err(Fault::business(
                    "DisplayName cannot contain a colon (:); QuickBooks uses it to separate \
                     parent and sub-customer names",
                )
                .element("DisplayName"));
            }
            let taken = self.name_taken(Kind::Customer, "DisplayName", &display, self_id)
                || self
                    .other_names
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(&display));
            if taken {
                return Err(Fault::duplicate(DUPLICATE_DETAIL));
            }
        }
        obj.insert("FullyQualifiedName".into(), json!(display));
        if str_of(obj, "PrintOnCheckName").is_none() {
            obj.insert("PrintOnCheckName".into(), json!(display));
        }
        obj.entry("Active").or_insert(json!(true));
        obj.entry("Job").or_insert(json!(false));
        obj.entry("Level").or_insert(json!(0));
        obj.entry("Balance").or_insert(json!(0));
        obj.entry("BalanceWithJobs").or_insert(json!(0));
        obj.entry("Taxable").or_insert(json!(true));
        obj.entry("CurrencyRef").or_insert_with(usd);
        for addr in ["BillAddr", "ShipAddr"] {
            if let Some(Value::Object(a)) = obj.get_mut(addr) {
                if !a.contains_key("Id") {
                    a.insert("Id".into(), json!(self.next_addr.to_string()));
                    self.next_addr += 1;
                }
            }
        }
        Ok(())
    }
}
