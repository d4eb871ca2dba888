//! Rules of the name-list entities: Item, Account and PaymentMethod, each with a required
//! Name that has no colon and is unique within its kind.

use serde_json::{json, Map, Value};

use super::company::Company;
use super::entity::{ref_value, str_of, trim_field, usd, Kind};
use super::fault::Fault;

impl Company {
    /// Name required, trimmed, no colon, unique within `kind`.
    fn check_name(
        &self,
        kind: Kind,
        obj: &mut Map<String, Value>,
        self_id: Option<&str>,
        strict: bool,
        duplicate_detail: &str,
    ) -> Result<String, Fault> {
        trim_field(obj, "Name");
        let name = str_of(obj, "Name").unwrap_or("").to_string();
        if strict {
            if name.is_empty() {
                return Err(Fault::required("Name"));
            }
            if name.contains(':') {
                return Err(Fault::business("Name cannot contain a colon (:)").element("Name"));
            }
            if self.name_taken(kind, "Name", &name, self_id) {
                return Err(Fault::duplicate(duplicate_detail));
            }
        }
        Ok(name)
    }

    pub(super) fn prepare_item(
        &mut self,
        obj: &mut Map<String, Value>,
        self_id: Option<&str>,
        strict: bool,
    ) -> Result<(), Fault> {
        let name = self.check_name(
            Kind::Item,
            obj,
            self_id,
            strict,
            "The name supplied already exists. : Another product or service is already \
             using this name. Please use a different name.",
        )?;
        let item_type = str_of(obj, "Type").unwrap_or("Service").to_string();
        if !["Service", "NonInventory", "Inventory", "Category", "Group"]
            .contains(&item_type.as_str())
        {
            return Err(
                Fault::business(format!("Unsupported item Type {item_type}")).element("Type"),
            );
        }
        obj.insert("Type".into(), json!(item_type));
        for key in ["IncomeAccountRef", "ExpenseAccountRef", "AssetAccountRef"] {
            if let Some(id) = ref_value(obj, key) {
                let account = self.ref_name(Kind::Account, &id, "Name").ok_or_else(|| {
                    Fault::invalid_ref(
                        key,
                        format!("Invalid Reference Id : Accounts element id {id} not found"),
                    )
                })?;
                obj.insert(key.into(), json!({"value": id, "name": account}));
            }
        }
        obj.insert("FullyQualifiedName".into(), json!(name));
        obj.entry("Active").or_insert(json!(true));
        obj.entry("Taxable").or_insert(json!(false));
        obj.entry("UnitPrice").or_insert(json!(0));
        Ok(())
    }

    pub(super) fn prepare_account(
        &mut self,
        obj: &mut Map<String, Value>,
        self_id: Option<&str>,
        strict: bool,
    ) -> Result<(), Fault> {
        let name = self.check_name(
            Kind::Account,
            obj,
            self_id,
            strict,
            "The name supplied already exists. : Another account is already using this \
             name. Please use a different name.",
        )?;
        let account_type = str_of(obj, "AccountType").map(String::from);
        let Some(account_type) = account_type else {
            return Err(Fault::required("AccountType"));
        };
        let classification = match account_type.as_str() {
            "Bank"
            | "Other Current Asset"
            | "Fixed Asset"
            | "Other Asset"
            | "Accounts Receivable" => "Asset",
            "Income" | "Other Income" => "Revenue",
            "Expense" | "Other Expense" | "Cost of Goods Sold" => "Expense",
            "Equity" => "Equity",
            _ => "Liability",
        };
        obj.entry("Classification").or_insert(json!(classification));
        obj.insert("FullyQualifiedName".into(), json!(name));
        obj.entry("Active").or_insert(json!(true));
        obj.entry("SubAccount").or_insert(json!(false));
        obj.entry("CurrentBalance").or_insert(json!(0));
        obj.entry("CurrentBalanceWithSubAccounts")
            .or_insert(json!(0));
        obj.entry("CurrencyRef").or_insert_with(usd);
        Ok(())
    }

    pub(super) fn prepare_payment_method(
        &mut self,
        obj: &mut Map<String, Value>,
        self_id: Option<&str>,
        strict: bool,
    ) -> Result<(), Fault> {
        self.check_name(
            Kind::PaymentMethod,
            obj,
            self_id,
            strict,
            "The name supplied already exists. : Another payment method is already using \
             this name. Please use a different name.",
        )?;
        let method_type = str_of(obj, "Type").unwrap_or("NON_CREDIT_CARD").to_string();
        if method_type != "CREDIT_CARD" && method_type != "NON_CREDIT_CARD" {
            return Err(Fault::business(format!(
                "PaymentMethod Type must be CREDIT_CARD or NON_CREDIT_CARD, not {method_type}"
            ))
            .element("Type"));
        }
        obj.insert("Type".into(), json!(method_type));
        obj.entry("Active").or_insert(json!(true));
        Ok(())
    }
}
