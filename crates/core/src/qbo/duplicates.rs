//! The duplicate guard: before a deposit's rows are sent, each unsent row is compared with the
//! sales receipts QuickBooks already has for its customer (the same check number, or the same
//! amount within `DUPLICATE_WINDOW_DAYS` of its date: a gift entered by hand, or sent from an
//! earlier deposit) and with the rows of every other deposit here (the same check number and
//! amount: a photo this week, the deposit list next week). A possible duplicate is shown on
//! the row, and send-all skips it until the treasurer decides.

use std::collections::HashMap;

use chrono::{Days, NaiveDate};
use rust_decimal::Decimal;

use crate::deposits::Deposit;
use crate::donation::{Donation, Duplicate};
use crate::normalize::payment_ref_key;
use crate::qbo::entities::SalesReceipt;
use crate::qbo::query::Query;
use crate::qbo::receipts::marker;
use crate::qbo::sync::Qbo;
use crate::qbo::QboError;

/// Other deposits looked at, newest first (deposits expire; this bounds a very long list).
const OTHER_DEPOSITS: usize = 200;
/// Customers named in one receipts query (`CustomerRef IN (...)`).
const CUSTOMERS_PER_QUERY: usize = 100;

impl Qbo {
    /// Flags (or clears) the possible duplicates of a deposit's unsent rows; returns how many
    /// rows are flagged.
    pub async fn check_duplicates(&self, deposit_id: &str) -> Result<usize, QboError> {
        let d = self.deposit(deposit_id).await?;
        let window = u64::from(self.client.connection().settings().duplicate_window_days);
        let mut found: HashMap<uuid::Uuid, Option<Duplicate>> = HashMap::new();
        // The rows' customers, a chunk at a time, one query each (paged) over the window
        // around the chunk's dates: a 300-row deposit costs a few queries, not 300.
        let mut by_customer: HashMap<&str, Vec<&Donation>> = HashMap::new();
        for r in d.records.iter().filter(|r| unsent(r)) {
            if let (Some(c), Some(_)) = (r.qbo.customer_id.as_deref(), r.payment_date) {
                by_customer.entry(c).or_default().push(r);
            }
        }
        let mut customers: Vec<&str> = by_customer.keys().copied().collect();
        customers.sort_unstable();
        for chunk in customers.chunks(CUSTOMERS_PER_QUERY) {
            let dates = chunk
                .iter()
                .flat_map(|c| by_customer[c].iter())
                .filter_map(|r| r.payment_date);
            let (Some(first), Some(last)) = (dates.clone().min(), dates.max()) else {
                continue;
            };
            let from = first.checked_sub_days(Days::new(window)).unwrap_or(first);
            let to = last.checked_add_days(Days::new(window)).unwrap_or(last);
            let q = Query::select("SalesReceipt")
                .is_in("CustomerRef", chunk)?
                .between("TxnDate", &ymd(from), &ymd(to))?;
            let receipts: Vec<SalesReceipt> = self.client.query_all(&q).await?;
            for c in chunk {
                let theirs: Vec<SalesReceipt> = receipts
                    .iter()
                    .filter(|x| x.customer_ref.as_ref().is_some_and(|r| r.value == *c))
                    .cloned()
                    .collect();
                for r in &by_customer[c] {
                    found.insert(r.id, receipt_duplicate(r, &theirs, window));
                }
            }
        }
        let others: Vec<Deposit> = self
            .deposits
            .list(OTHER_DEPOSITS)
            .await?
            .into_iter()
            .filter(|o| o.id != d.id && o.created_at < d.created_at)
            .collect();
        for r in d.records.iter().filter(|r| unsent(r)) {
            if found.get(&r.id).is_some_and(Option::is_some) {
                continue;
            }
            found.insert(r.id, deposit_duplicate(r, &others));
        }
        let flagged = found.values().filter(|f| f.is_some()).count();
        self.deposits
            .update(deposit_id, |dep| {
                for r in dep.records.iter_mut().filter(|r| unsent(r)) {
                    if let Some(f) = found.get(&r.id) {
                        if r.qbo.duplicate != *f {
                            // A new finding asks the treasurer again.
                            if f.is_some() {
                                r.qbo.duplicate_ok = false;
                            }
                            r.qbo.duplicate.clone_from(f);
                        }
                    }
                }
                std::ops::ControlFlow::Continue(())
            })
            .await?;
        if flagged > 0 {
            tracing::info!(deposit_id, flagged, "qbo: possible duplicates flagged");
        }
        Ok(flagged)
    }
}

fn unsent(r: &Donation) -> bool {
    r.qbo.sales_receipt_id.is_none()
}

fn ymd(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn us(d: NaiveDate) -> String {
    d.format("%m/%d/%Y").to_string()
}

/// A receipt of the row's customer with its check number, else with its amount within the
/// window of its date (unless both carry references, which differ); never one carrying this
/// row's own marker (its own earlier send).
fn receipt_duplicate(r: &Donation, receipts: &[SalesReceipt], window: u64) -> Option<Duplicate> {
    let mine = marker(&r.id);
    let date = r.payment_date?;
    let others: Vec<&SalesReceipt> = receipts
        .iter()
        .filter(|x| !x.private_note.as_deref().is_some_and(|n| n.contains(&mine)))
        .collect();
    let key = r
        .payment_ref
        .as_deref()
        .map(payment_ref_key)
        .filter(|k| !k.is_empty());
    let by_ref = key.as_ref().and_then(|k| {
        others.iter().find(|x| {
            x.payment_ref_num
                .as_deref()
                .is_some_and(|n| payment_ref_key(n) == *k)
        })
    });
    let near = |x: &&&SalesReceipt| {
        x.txn_date
            .as_deref()
            .and_then(|t| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok())
            .is_some_and(|t| (t - date).num_days().unsigned_abs() <= window)
    };
    // Two references that differ are two gifts, whatever their amounts (two monthly gifts of
    // $25 on one day); a receipt entered by hand often has none.
    let refs_differ = |x: &&&SalesReceipt| {
        key.is_some()
            && x.payment_ref_num
                .as_deref()
                .map(payment_ref_key)
                .is_some_and(|n| !n.is_empty())
    };
    let by_amount = || {
        others.iter().filter(near).find(|x| {
            !refs_differ(x)
                && x.total_amt.is_some()
                && x.total_amt == r.amount.map(|a| a.round_dp(2))
        })
    };
    let hit = by_ref.or_else(by_amount)?;
    let id = hit.id.clone().unwrap_or_default();
    let on = hit
        .txn_date
        .as_deref()
        .and_then(|t| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok())
        .map(|t| format!(" of {}", us(t)))
        .unwrap_or_default();
    let number = hit.doc_number.clone().unwrap_or_else(|| id.clone());
    let why = if by_ref.is_some() {
        "the same check number"
    } else {
        "the same amount"
    };
    Some(Duplicate {
        kind: "receipt".into(),
        receipt_id: Some(id),
        deposit_id: None,
        row: None,
        message: format!(
            "possible duplicate of receipt #{number}{on} in QuickBooks ({why}, same donor)"
        ),
    })
}

/// A row of an earlier deposit with the same check number (or online reference) and amount.
fn deposit_duplicate(r: &Donation, others: &[Deposit]) -> Option<Duplicate> {
    let key = r
        .payment_ref
        .as_deref()
        .map(payment_ref_key)
        .filter(|k| !k.is_empty())?;
    let amount: Decimal = r.amount?;
    for o in others {
        let hit = o.records.iter().position(|x| {
            x.amount == Some(amount)
                && x.payment_ref.as_deref().map(payment_ref_key).as_deref() == Some(key.as_str())
        });
        if let Some(i) = hit {
            let when = o
                .records
                .get(i)
                .and_then(|x| x.deposit_date)
                .map(us)
                .unwrap_or_else(|| o.name.clone());
            return Some(Duplicate {
                kind: "deposit".into(),
                receipt_id: None,
                deposit_id: Some(o.id.clone()),
                row: Some(i + 1),
                message: format!(
                    "also in the deposit of {when} (\"{}\"), row {}: the same check number and amount",
                    o.name,
                    i + 1
                ),
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn row(no: &str, amount: &str, day: u32) -> Donation {
        let mut d = Donation::new("scan.pdf");
        d.payment_ref = Some(no.into());
        d.amount = Some(amount.parse().unwrap());
        d.payment_date = NaiveDate::from_ymd_opt(2026, 3, day);
        d
    }

    fn receipt(id: &str, no: Option<&str>, amount: &str, date: &str) -> SalesReceipt {
        SalesReceipt {
            id: Some(id.into()),
            payment_ref_num: no.map(str::to_string),
            total_amt: Some(amount.parse().unwrap()),
            txn_date: Some(date.into()),
            ..SalesReceipt::default()
        }
    }

    #[test]
    fn a_receipt_with_the_check_number_or_the_amount_nearby_is_a_possible_duplicate() {
        let r = row("0315", "40.00", 10);
        // The same check number, leading zeros aside.
        let d = receipt_duplicate(&r, &[receipt("77", Some("315"), "45.00", "2026-01-02")], 60)
            .unwrap();
        assert_eq!(d.receipt_id.as_deref(), Some("77"));
        assert!(d.message.contains("#77 of 01/02/2026"), "{}", d.message);
        assert!(d.message.contains("check number"));
        // The same amount within the window, not outside it.
        let near = receipt("78", None, "40.00", "2026-02-01");
        assert!(receipt_duplicate(&r, std::slice::from_ref(&near), 60).is_some());
        assert!(receipt_duplicate(&r, &[near], 20).is_none());
        // Another gift of the same amount with its own reference is not one either.
        let other_gift = receipt("80", Some("316"), "40.00", "2026-03-10");
        assert!(receipt_duplicate(&r, &[other_gift], 60).is_none());
        // Its own earlier send is not a duplicate.
        let mut own = receipt("79", Some("315"), "40.00", "2026-03-10");
        own.private_note = Some(marker(&r.id));
        assert!(receipt_duplicate(&r, &[own], 60).is_none());
    }

    #[test]
    fn the_same_check_in_an_earlier_deposit_is_named_with_its_row() {
        let mut earlier: Deposit = serde_json::from_value(serde_json::json!({
            "id": "d1", "name": "Week 10", "created_at": 0, "updated_at": 0,
            "files": [], "records": [], "errors": []
        }))
        .unwrap();
        earlier.records = vec![row("1001", "25.00", 2), row("0315", "40.00", 3)];
        let d = deposit_duplicate(&row("315", "40.00", 10), &[earlier.clone()]).unwrap();
        assert_eq!(d.row, Some(2));
        assert!(d.message.contains("row 2"), "{}", d.message);
        // Another amount: not the same check.
        assert!(deposit_duplicate(&row("315", "41.00", 10), &[earlier]).is_none());
    }
}
