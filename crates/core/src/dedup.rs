//! De-duplication and merge: the same check often appears on the check scan, the envelope page
//! and the deposit list. Records with the same key merge into one; everything else stays.
//!
//! Key = (payment reference compared without leading zeros, amount). Online gifts carry their
//! processor's id, so two $25 gifts stay two records. A record without a reference or amount
//! has no key and is never merged (nor dropped). Merging a later upload into an existing deposit
//! uses [`merge_into`] too: existing records keep their ids. After each merge, envelopes read
//! without their checks are joined to the check their payer fits ([`link_envelopes`]).

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
    link_envelopes(&mut kept);
    fill_deposit_date(&mut kept);
    *existing = kept;
    summary
}

/// A name's words, lower case, without punctuation: "O'Brien, J." -> ["obrien", "j"].
fn words(name: &str) -> Vec<String> {
    name.split(|c: char| c.is_whitespace() || c == ',')
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// How well an envelope's payer fits a check's: 100 the same name, 80 the same surname and
/// first initial, 50 the same surname; an organisation's name counts as a name. Plus 20 when
/// the ZIP codes agree.
fn envelope_fit(envelope: &Donation, check: &Donation) -> u32 {
    let names = |d: &Donation| -> Vec<Vec<String>> {
        d.payer
            .aliases
            .iter()
            .chain(d.payer.organization_name.iter())
            .map(|n| words(n))
            .filter(|w| !w.is_empty())
            .collect()
    };
    let (e, c) = (names(envelope), names(check));
    let mut best = 0;
    for a in &e {
        for b in &c {
            let score = if a == b {
                100
            } else {
                // "Smith, John" is John Smith: compare as sets of words, then by surname.
                let (mut sa, mut sb) = (a.clone(), b.clone());
                sa.sort();
                sb.sort();
                if sa == sb {
                    100
                } else {
                    let surname = |w: &Vec<String>| w.iter().max_by_key(|x| x.len()).cloned();
                    let first = |w: &Vec<String>| w.first().and_then(|x| x.chars().next());
                    match (surname(a), surname(b)) {
                        (Some(x), Some(y)) if x == y && x.len() > 1 => {
                            if first(a) == first(b) {
                                80
                            } else {
                                50
                            }
                        }
                        _ => 0,
                    }
                }
            };
            best = best.max(score);
        }
    }
    let zip = |d: &Donation| {
        d.contact
            .zip
            .as_deref()
            .map(|z| z.chars().take(5).collect::<String>())
    };
    if best > 0 && zip(envelope).is_some() && zip(envelope) == zip(check) {
        best += 20;
    }
    best
}

/// An envelope read without its check (they were in different requests: each photo is its
/// own file) has no amount and no check number, so no duplicate key. It is folded into the
/// check whose payer fits it best, bringing its postmark, return address and contact details;
/// the handwritten check's gift date then follows the postmark. An envelope no check fits
/// (or two fit equally) stays a row, with a warning saying so.
pub fn link_envelopes(records: &mut Vec<Donation>) {
    let is_loose_envelope = |d: &Donation| {
        d.provenance.kind == SourceKind::Envelope
            && d.amount.is_none()
            && d.payment_ref.is_none()
            && d.qbo.sales_receipt_id.is_none()
    };
    let has_envelope = |d: &Donation| d.sources().any(|s| s.kind == SourceKind::Envelope);
    let mut i = 0;
    while i < records.len() {
        if !is_loose_envelope(&records[i]) {
            i += 1;
            continue;
        }
        let envelope = &records[i];
        let mut scored: Vec<(u32, usize)> = records
            .iter()
            .enumerate()
            .filter(|(j, c)| {
                *j != i
                    && (c.amount.is_some() || c.payment_ref.is_some())
                    && !has_envelope(c)
                    && c.qbo.sales_receipt_id.is_none()
            })
            .map(|(j, c)| (envelope_fit(envelope, c), j))
            .filter(|(score, _)| *score >= 70)
            .collect();
        scored.sort_by_key(|s| std::cmp::Reverse(s.0));
        let unique = match scored.as_slice() {
            [] => None,
            [(_, j)] => Some(*j),
            [(a, j), (b, _), ..] if a > b => Some(*j),
            _ => None,
        };
        match unique {
            Some(j) => {
                let mut envelope = records.remove(i);
                envelope.issues.retain(|x| x.code != "envelope_unlinked");
                let j = if j > i { j - 1 } else { j };
                let check = &mut records[j];
                merge(check, envelope);
                crate::normalize::apply_payment_date_rule(check);
                // Start again: the list changed under the index.
                i = 0;
            }
            None => {
                let d = &mut records[i];
                if !d.has_issue("envelope_unlinked") {
                    let why = if scored.is_empty() {
                        "no check in this deposit fits this envelope's name"
                    } else {
                        "more than one check fits this envelope's name"
                    };
                    d.issue(
                        crate::donation::IssueLevel::Warning,
                        "envelope_unlinked",
                        "payer",
                        format!(
                            "an envelope on its own: {why}; if its check is here, copy the \
                             postmark and address to it and delete this row"
                        ),
                    );
                }
                i += 1;
            }
        }
    }
}

/// The deposit list's (or slip's) date is the deposit's: records that lack a deposit date
/// take the one most of the deposit's lists carry.
pub fn fill_deposit_date(records: &mut [Donation]) {
    let mut counts: HashMap<chrono::NaiveDate, usize> = HashMap::new();
    for d in records.iter() {
        if let Some(date) = d.deposit_date {
            if d.sources().any(|s| s.kind == SourceKind::DepositList) {
                *counts.entry(date).or_default() += 1;
            }
        }
    }
    let Some((&date, _)) = counts.iter().max_by_key(|(d, n)| (**n, **d)) else {
        return;
    };
    for d in records.iter_mut() {
        if d.deposit_date.is_none() {
            d.deposit_date = Some(date);
        }
    }
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
    } else if (!base_from_list || base.payment_ref.is_none())
        && fuller(&mut base.payment_ref, &other.payment_ref)
    {
        // (A check number from the list stays, even when a photo writes it longer: "0315".)
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

    fn day(m: u32, d: u32) -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(2026, m, d).unwrap()
    }

    /// A check photo: number, amount, name, the check's date.
    fn check(file: &str, no: &str, amount: &str, name: &str, date: u32) -> Donation {
        let mut d = gift(no, amount);
        d.provenance.file = file.into();
        d.provenance.kind = SourceKind::Check;
        d.payer.aliases = vec![name.into()];
        d.check_date = Some(day(3, date));
        d.payment_date = d.check_date;
        d.contact.address_line_1 = Some("1 Old Rd".into());
        d
    }

    /// An envelope photo: a name as written on the return address, a postmark, an address.
    fn envelope(file: &str, name: &str, postmark: u32, street: &str, zip: &str) -> Donation {
        let mut d = Donation::new(file);
        d.provenance.kind = SourceKind::Envelope;
        d.payer.aliases = vec![name.into()];
        d.postmark_date = Some(day(2, postmark));
        d.contact.address_line_1 = Some(street.into());
        d.contact.zip = Some(zip.into());
        d
    }

    /// A line of the handwritten deposit list: the check number and amount, the deposit date.
    fn list_line(no: &str, amount: &str, name: &str) -> Donation {
        let mut d = gift(no, amount);
        d.provenance.file = "list.jpg".into();
        d.provenance.kind = SourceKind::DepositList;
        d.payer.aliases = vec![name.into()];
        d.deposit_date = Some(day(3, 10));
        d
    }

    #[test]
    fn checks_envelopes_and_the_list_make_one_row_per_check_in_any_order() {
        let checks = [
            check("c1.jpg", "1041", "40.00", "Hannah Brooks", 2),
            check("c2.jpg", "0315", "1200.00", "Luis Ortega", 3),
            check("c3.jpg", "5120", "25.00", "Mary O'Brien", 4),
        ];
        let envelopes = [
            envelope("e1.jpg", "Hannah Brooks", 27, "18 Birch Lane", "53703"),
            envelope("e2.jpg", "Ortega, Luis", 26, "400 Harbor Blvd", "04101"),
            envelope("e3.jpg", "M. O'Brien", 25, "12 Elm St", "02108"),
        ];
        let list = [
            list_line("1041", "40.00", "Brooks"),
            list_line("315", "1200.00", "Ortega"),
            list_line("5120", "25.00", "O'Brien"),
        ];
        // Each photo is its own job: every order of arrival gives the same three rows.
        let batches: Vec<Vec<Donation>> = checks
            .iter()
            .chain(&envelopes)
            .chain(&list)
            .map(|d| vec![d.clone()])
            .collect();
        for order in [
            (0..batches.len()).collect::<Vec<_>>(),
            (0..batches.len()).rev().collect(),
            vec![3, 6, 0, 4, 7, 1, 5, 8, 2],
        ] {
            let mut deposit = Vec::new();
            for &b in &order {
                merge_into(&mut deposit, batches[b].clone());
            }
            assert_eq!(deposit.len(), 3, "{order:?}: {deposit:#?}");
            for (no, postmark, street) in [
                ("1041", 27, "18 Birch Lane"),
                ("0315", 26, "400 Harbor Blvd"),
                ("5120", 25, "12 Elm St"),
            ] {
                let d = deposit
                    .iter()
                    .find(|d| {
                        d.payment_ref
                            .as_deref()
                            .map(crate::normalize::payment_ref_key)
                            == Some(crate::normalize::payment_ref_key(no))
                    })
                    .unwrap_or_else(|| panic!("{no} in {order:?}"));
                assert!(d.amount.is_some(), "{no}: no missing-amount row");
                assert_eq!(d.postmark_date, Some(day(2, postmark)), "{no} {order:?}");
                // A handwritten check's gift date is the postmark.
                assert_eq!(d.payment_date, Some(day(2, postmark)), "{no} {order:?}");
                assert_eq!(d.contact.address_line_1.as_deref(), Some(street), "{no}");
                assert_eq!(d.deposit_date, Some(day(3, 10)), "{no}");
                assert!(!d.has_issue("envelope_unlinked"), "{no}: {:?}", d.issues);
            }
            // The list's check number is authoritative ("315", not the photo's "0315").
            assert!(deposit
                .iter()
                .any(|d| d.payment_ref.as_deref() == Some("315")));
        }
    }

    #[test]
    fn an_envelope_no_check_fits_stays_with_a_warning() {
        let mut deposit = vec![check("c1.jpg", "1041", "40.00", "Hannah Brooks", 2)];
        merge_into(
            &mut deposit,
            vec![envelope("e9.jpg", "Peter Quill", 20, "1 Star Rd", "10001")],
        );
        assert_eq!(deposit.len(), 2);
        assert!(deposit[1].has_issue("envelope_unlinked"));
        // Two checks of the same family, an envelope with the surname only: no guess.
        let mut deposit = vec![
            check("c1.jpg", "1", "10.00", "Ann Lee", 2),
            check("c2.jpg", "2", "20.00", "Bob Lee", 2),
        ];
        merge_into(
            &mut deposit,
            vec![envelope("e.jpg", "Lee", 20, "1 Rd", "1")],
        );
        assert_eq!(deposit.len(), 3);
        // Its check arriving later takes it in.
        let mut deposit = vec![envelope(
            "e1.jpg",
            "Hannah Brooks",
            27,
            "18 Birch Lane",
            "53703",
        )];
        merge_into(&mut deposit, Vec::new());
        assert!(deposit[0].has_issue("envelope_unlinked"));
        merge_into(
            &mut deposit,
            vec![check("c1.jpg", "1041", "40.00", "Hannah Brooks", 2)],
        );
        assert_eq!(deposit.len(), 1);
        assert!(
            !deposit[0].has_issue("envelope_unlinked"),
            "{:?}",
            deposit[0].issues
        );
        assert_eq!(deposit[0].postmark_date, Some(day(2, 27)));
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
