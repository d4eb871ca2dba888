//! De-duplication and merge: the same check often appears on the check scan, the envelope page
//! and the deposit list. Records with the same key merge into one; everything else stays.
//!
//! Key = (payment reference compared without leading zeros, amount). Online gifts carry their
//! processor's id, so two $25 gifts stay two records. A record without a reference or amount
//! has no key and is never merged (nor dropped). Merging a later upload into an existing deposit
//! uses [`merge_into`] too: existing records keep their ids.

use std::collections::HashMap;

use chrono::Utc;
use rust_decimal::Decimal;

use crate::donation::{Contact, Donation, MergeEntry, QboState, SourceKind, SyncStatus};
use crate::normalize::payment_ref_key;

/// The duplicate key of a record, when it has one.
pub fn dedup_key(d: &Donation) -> Option<(String, Decimal)> {
    let r = d.payment_ref.as_deref()?.trim();
    if r.is_empty() {
        return None;
    }
    Some((payment_ref_key(r), d.amount?.normalize()))
}

/// What a merge did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeSummary {
    pub added: usize,
    pub merged: usize,
}

/// De-duplicates one batch of records.
pub fn dedup(records: Vec<Donation>) -> Vec<Donation> {
    let mut out = Vec::with_capacity(records.len());
    merge_into(&mut out, records);
    out
}

/// Merges `incoming` into `existing` (a deposit's records): duplicates fold into the existing
/// record, new ones are appended in order.
pub fn merge_into(existing: &mut Vec<Donation>, incoming: Vec<Donation>) -> MergeSummary {
    let mut index: HashMap<(String, Decimal), usize> = HashMap::new();
    let mut summary = MergeSummary::default();
    // Existing records are indexed first; duplicates among them (should not happen) merge too.
    let mut kept: Vec<Donation> = Vec::with_capacity(existing.len() + incoming.len());
    for d in std::mem::take(existing) {
        place(&mut kept, &mut index, d);
    }
    for d in incoming {
        if place(&mut kept, &mut index, d) {
            summary.merged += 1;
        } else {
            summary.added += 1;
        }
    }
    *existing = kept;
    summary
}

/// Adds `d` to `records` or merges it into its duplicate; true when merged.
fn place(
    records: &mut Vec<Donation>,
    index: &mut HashMap<(String, Decimal), usize>,
    d: Donation,
) -> bool {
    match dedup_key(&d) {
        Some(key) => match index.get(&key) {
            Some(&i) => {
                merge(&mut records[i], d);
                true
            }
            None => {
                index.insert(key, records.len());
                records.push(d);
                false
            }
        },
        None => {
            records.push(d);
            false
        }
    }
}

/// Folds `other` into `base`: the most complete value per field, aliases unioned, distinct
/// memos joined, the deposit list's check number and the envelope's address preferred, the
/// better QuickBooks state kept (never downgraded), and a history entry appended.
pub fn merge(base: &mut Donation, other: Donation) {
    let mut taken: Vec<String> = Vec::new();
    let mut take = |field: &str| taken.push(field.to_string());

    // Check number: the deposit list is authoritative.
    let base_from_list = base.sources().any(|s| s.kind == SourceKind::DepositList);
    if other.provenance.kind == SourceKind::DepositList
        && !base_from_list
        && other.payment_ref.is_some()
    {
        if base.payment_ref != other.payment_ref {
            base.payment_ref.clone_from(&other.payment_ref);
            take("payment_ref");
        }
    } else if fuller(&mut base.payment_ref, &other.payment_ref) {
        take("payment_ref");
    }
    macro_rules! fill {
        ($($field:ident).+) => {
            if base.$($field).+.is_none() && other.$($field).+.is_some() {
                base.$($field).+ = other.$($field).+.clone();
                take(stringify!($($field).+));
            }
        };
    }
    fill!(payment_method);
    fill!(amount);
    fill!(payment_date);
    fill!(check_date);
    fill!(postmark_date);
    fill!(deposit_date);
    for (field, b, o) in [
        (
            "deposit_method",
            &mut base.deposit_method,
            &other.deposit_method,
        ),
        (
            "salutation",
            &mut base.payer.salutation,
            &other.payer.salutation,
        ),
        (
            "organization_name",
            &mut base.payer.organization_name,
            &other.payer.organization_name,
        ),
        ("email", &mut base.contact.email, &other.contact.email),
        ("phone", &mut base.contact.phone, &other.contact.phone),
    ] {
        if fuller(b, o) {
            take(field);
        }
    }
    merge_address(
        &mut base.contact,
        &other.contact,
        other.provenance.kind,
        &mut take,
    );

    let before = base.payer.aliases.len();
    let mut names = std::mem::take(&mut base.payer.aliases);
    names.extend(other.payer.aliases.iter().cloned());
    base.payer.aliases = crate::aliases::dedup_case_insensitive(names);
    if base.payer.aliases.len() > before {
        take("aliases");
    }
    if let Some(memo) = join_memos(base.memo.as_deref(), other.memo.as_deref()) {
        if base.memo.as_deref() != Some(memo.as_str()) {
            base.memo = Some(memo);
            take("memo");
        }
    }
    if merge_qbo(&mut base.qbo, &other.qbo) {
        take("qbo");
    }
    for (k, v) in &other.extra {
        base.extra.entry(k.clone()).or_insert_with(|| v.clone());
    }
    // The duplicate's reading problems carry over; its validation issues described the
    // duplicate, not the merged record.
    for issue in &other.issues {
        if !crate::normalize::is_validation_code(&issue.code) && !base.issues.contains(issue) {
            base.issues.push(issue.clone());
        }
    }
    crate::normalize::drop_resolved(base);
    base.merge_history
        .extend(other.merge_history.iter().cloned());
    base.merge_history.push(MergeEntry {
        merged_at: Utc::now(),
        merged_id: other.id,
        source: other.provenance.clone(),
        fields: taken,
        payment_ref: other.payment_ref.clone(),
        amount: other.amount,
    });
}

/// Takes `other` when `base` is empty, or when `other` says more (is longer) and is not just
/// the same text in another case. True when `base` changed.
fn fuller(base: &mut Option<String>, other: &Option<String>) -> bool {
    let Some(o) = other.as_deref().map(str::trim).filter(|o| !o.is_empty()) else {
        return false;
    };
    match base.as_deref().map(str::trim) {
        Some(b)
            if !b.is_empty()
                && (o.chars().count() <= b.chars().count() || b.eq_ignore_ascii_case(o)) =>
        {
            false
        }
        _ => {
            *base = Some(o.to_string());
            true
        }
    }
}

/// The envelope's return address beats any other address as a whole block; otherwise each
/// part is filled from the more complete side.
fn merge_address(
    base: &mut Contact,
    other: &Contact,
    other_kind: SourceKind,
    take: &mut impl FnMut(&str),
) {
    if other_kind == SourceKind::Envelope && other.address_line_1.is_some() {
        let block = |c: &Contact| {
            (
                c.address_line_1.clone(),
                c.city.clone(),
                c.state.clone(),
                c.zip.clone(),
            )
        };
        if block(base) != block(other) {
            base.address_line_1.clone_from(&other.address_line_1);
            base.city.clone_from(&other.city);
            base.state.clone_from(&other.state);
            base.zip.clone_from(&other.zip);
            take("address");
        }
        return;
    }
    for (field, b, o) in [
        (
            "address_line_1",
            &mut base.address_line_1,
            &other.address_line_1,
        ),
        ("city", &mut base.city, &other.city),
        ("state", &mut base.state, &other.state),
        ("zip", &mut base.zip, &other.zip),
    ] {
        if fuller(b, o) {
            take(field);
        }
    }
}

/// Distinct memos joined with "; " (compared ignoring case and spacing).
pub fn join_memos(a: Option<&str>, b: Option<&str>) -> Option<String> {
    let key = |m: &str| {
        m.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    let mut seen = std::collections::HashSet::new();
    let parts: Vec<&str> = [a, b]
        .into_iter()
        .flatten()
        .flat_map(|m| m.split("; "))
        .map(str::trim)
        .filter(|m| !m.is_empty() && seen.insert(key(m)))
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Keeps the better QuickBooks state: a sent receipt is never forgotten (it would be sent
/// twice), and a match is never downgraded (Matched > Address changed > Needs review > New >
/// unmatched, then the higher score). True when `base` changed.
fn merge_qbo(base: &mut QboState, other: &QboState) -> bool {
    let mut changed = false;
    let rank = |q: &QboState| (q.match_status, q.match_score.unwrap_or(0));
    if rank(other) > rank(base) {
        let receipt = base.sales_receipt_id.take();
        let (sync, error) = (base.sync_status, base.last_error.take());
        *base = other.clone();
        if receipt.is_some() {
            base.sales_receipt_id = receipt;
            base.sync_status = sync;
            base.last_error = error;
        }
        changed = true;
    }
    if base.sales_receipt_id.is_none() && other.sales_receipt_id.is_some() {
        base.sales_receipt_id.clone_from(&other.sales_receipt_id);
        base.sync_status = SyncStatus::Sent;
        base.last_error = None;
        changed = true;
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::donation::{MatchStatus, PaymentMethod};
    use proptest::prelude::*;

    fn gift(reference: &str, amount: &str) -> Donation {
        let mut d = Donation::new("scan.pdf");
        d.payment_ref = (!reference.is_empty()).then(|| reference.to_string());
        d.amount = amount.parse().ok();
        d.payment_method = Some(PaymentMethod::HandwrittenCheck);
        d
    }

    fn total(records: &[Donation]) -> Decimal {
        records.iter().filter_map(|d| d.amount).sum()
    }

    #[test]
    fn keys_table() {
        // (ref a, amount a, ref b, amount b, merges?)
        let cases = [
            ("0079", "100.00", "79", "100", true),
            ("1001", "25.00", "1001", "25.01", false),
            ("ch_1", "25.00", "ch_2", "25.00", false),
            ("ch_1", "25.00", "ch_1", "25.00", true),
            ("", "25.00", "", "25.00", false),
            ("1001", "", "1001", "", false),
        ];
        for (ra, aa, rb, ab, merges) in cases {
            let out = dedup(vec![gift(ra, aa), gift(rb, ab)]);
            assert_eq!(
                out.len(),
                if merges { 1 } else { 2 },
                "{ra}/{aa} vs {rb}/{ab}"
            );
        }
    }

    #[test]
    fn a_merge_does_not_keep_issues_the_merged_record_no_longer_has() {
        let rules =
            crate::normalize::Rules::new(chrono::NaiveDate::from_ymd_opt(2026, 3, 20).unwrap());
        // The deposit list has the check without a date; the check scan has the date.
        let mut listed = gift("1187", "250.00");
        crate::normalize::normalize(&mut listed, &rules);
        let mut scanned = gift("1187", "250.00");
        scanned.payment_date = chrono::NaiveDate::from_ymd_opt(2026, 3, 5);
        scanned.check_date = scanned.payment_date;
        crate::normalize::normalize(&mut scanned, &rules);
        assert!(listed.has_issue("date_missing"));
        let out = dedup(vec![listed.clone(), scanned.clone()]);
        assert_eq!(out.len(), 1);
        assert!(out[0].payment_date.is_some());
        assert!(!out[0].has_issue("date_missing"), "{:?}", out[0].issues);
        // And the other way round: the dated record absorbs the undated one.
        let out = dedup(vec![scanned, listed]);
        assert!(!out[0].has_issue("date_missing"), "{:?}", out[0].issues);
    }

    #[test]
    fn two_online_gifts_of_25_stay_two() {
        let mut a = gift("ch_3QxA1", "25.00");
        let mut b = gift("ch_3QxB7", "25.00");
        a.payment_method = Some(PaymentMethod::Online);
        b.payment_method = Some(PaymentMethod::Online);
        let out = dedup(vec![a, b]);
        assert_eq!(out.len(), 2);
        assert_eq!(total(&out), "50.00".parse().unwrap());
    }

    #[test]
    fn merge_keeps_the_most_complete_values_and_history() {
        let mut check = gift("0079", "100.00");
        check.provenance.kind = SourceKind::Check;
        check.provenance.pages = vec![1];
        check.payer.aliases = vec!["John Smith".into()];
        check.contact.address_line_1 = Some("12 Elm".into());
        check.memo = Some("Building fund".into());
        let mut list = gift("79", "100");
        list.provenance.kind = SourceKind::DepositList;
        list.provenance.pages = vec![3];
        list.payer.aliases = vec!["Smith, John".into(), "JOHN SMITH".into()];
        list.contact.address_line_1 = Some("12 Elm Street".into());
        list.contact.city = Some("Troy".into());
        list.memo = Some("building  fund".into());
        let list_id = list.id;
        let mut envelope = gift("79", "100.00");
        envelope.provenance.kind = SourceKind::Envelope;
        envelope.contact.address_line_1 = Some("9 Oak Rd".into());
        envelope.contact.city = Some("Albany".into());
        envelope.postmark_date = chrono::NaiveDate::from_ymd_opt(2026, 3, 2);
        envelope.memo = Some("In memory of Ruth".into());

        let out = dedup(vec![check.clone(), list, envelope]);
        assert_eq!(out.len(), 1);
        let m = &out[0];
        assert_eq!(m.id, check.id, "the first record keeps its id");
        assert_eq!(
            m.payment_ref.as_deref(),
            Some("79"),
            "deposit list's number wins"
        );
        assert_eq!(m.payer.aliases, ["John Smith", "Smith, John"]);
        assert_eq!(m.memo.as_deref(), Some("Building fund; In memory of Ruth"));
        // The envelope's return address replaces the whole block.
        assert_eq!(m.contact.address_line_1.as_deref(), Some("9 Oak Rd"));
        assert_eq!(m.contact.city.as_deref(), Some("Albany"));
        assert_eq!(m.postmark_date, chrono::NaiveDate::from_ymd_opt(2026, 3, 2));
        assert_eq!(m.merge_history.len(), 2);
        assert_eq!(m.merge_history[0].merged_id, list_id);
        assert_eq!(m.merge_history[0].source.pages, [3]);
        assert!(m.merge_history[0]
            .fields
            .contains(&"payment_ref".to_string()));
        assert_eq!(m.sources().count(), 3);
    }

    #[test]
    fn a_matched_donor_is_never_downgraded_and_a_receipt_never_lost() {
        let mut matched = gift("1001", "50");
        matched.qbo.match_status = MatchStatus::Matched;
        matched.qbo.customer_id = Some("58".into());
        matched.qbo.match_score = Some(95);
        let mut fresh = gift("1001", "50");
        fresh.qbo.match_status = MatchStatus::NewDonor;
        for order in [
            vec![matched.clone(), fresh.clone()],
            vec![fresh.clone(), matched.clone()],
        ] {
            let out = dedup(order);
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].qbo.match_status, MatchStatus::Matched);
            assert_eq!(out[0].qbo.customer_id.as_deref(), Some("58"));
        }
        let mut sent = gift("1001", "50");
        sent.qbo.sales_receipt_id = Some("1234".into());
        sent.qbo.sync_status = SyncStatus::Sent;
        let out = dedup(vec![sent, matched]);
        assert_eq!(out[0].qbo.sales_receipt_id.as_deref(), Some("1234"));
        assert_eq!(out[0].qbo.sync_status, SyncStatus::Sent);
        assert_eq!(out[0].qbo.customer_id.as_deref(), Some("58"));
    }

    #[test]
    fn memos_join_distinct() {
        assert_eq!(
            join_memos(Some("Building fund"), Some("building fund")).as_deref(),
            Some("Building fund")
        );
        assert_eq!(
            join_memos(Some("A; B"), Some("b; C")).as_deref(),
            Some("A; B; C")
        );
        assert_eq!(join_memos(None, Some(" ")), None);
    }

    #[test]
    fn a_second_upload_merges_into_the_deposit() {
        let mut deposit = dedup(vec![gift("1001", "50"), gift("ch_1", "25")]);
        let ids: Vec<_> = deposit.iter().map(|d| d.id).collect();
        let summary = merge_into(
            &mut deposit,
            vec![gift("01001", "50.00"), gift("2002", "10")],
        );
        assert_eq!(
            summary,
            MergeSummary {
                added: 1,
                merged: 1
            }
        );
        assert_eq!(deposit.len(), 3);
        assert_eq!(deposit[0].id, ids[0]);
        assert_eq!(deposit[1].id, ids[1]);
    }

    fn arb_gift() -> impl Strategy<Value = Donation> {
        (
            prop_oneof![Just(String::new()), "0{0,2}[1-4]", "ch_[a-c]"],
            prop_oneof![Just(None), (1i64..4).prop_map(Some)],
            proptest::option::of("[A-Za-z]{1,6}"),
        )
            .prop_map(|(r, amount, memo)| {
                let mut d = gift(&r, "");
                d.amount = amount.map(|a| Decimal::new(a * 2500, 2));
                d.memo = memo;
                d
            })
    }

    proptest! {
        #[test]
        fn merge_order_does_not_change_the_records_or_the_total(
            gifts in proptest::collection::vec(arb_gift(), 0..12),
            seed in any::<u64>(),
        ) {
            let mut shuffled = gifts.clone();
            fastrand::Rng::with_seed(seed).shuffle(&mut shuffled);
            let a = dedup(gifts.clone());
            let b = dedup(shuffled);
            let keys = |v: &[Donation]| {
                let mut k: Vec<_> = v.iter().map(|d| (dedup_key(d), d.payment_ref.is_none() || d.amount.is_none())).collect();
                k.sort();
                k
            };
            prop_assert_eq!(keys(&a), keys(&b));
            prop_assert_eq!(total(&a), total(&b));
            prop_assert_eq!(a.len(), b.len());
            // Nothing is lost: every input is either a record or in a record's history.
            let accounted: usize = a.iter().map(|d| 1 + d.merge_history.len()).sum();
            prop_assert_eq!(accounted, gifts.len());
        }
    }
}
