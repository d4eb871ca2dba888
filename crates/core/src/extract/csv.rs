//! Online-gift CSV exports, parsed deterministically (no model involved).
//!
//! Basic column map for now; the domain issue deepens it. Rows are streamed from the file: one
//! row in memory at a time. Encoding per field: UTF-8 (BOM stripped), else Windows-1252.
//! A row with a bad value still becomes a record, carrying the problem as an issue.

use std::io::{BufReader, Read};
use std::path::Path;

use super::Outcome;
use crate::donation::{parse_amount, parse_date, Donation, IssueLevel, PaymentMethod};

#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("cannot read the CSV file: {0}")]
    Io(#[from] std::io::Error),
    #[error("the CSV file has no header row")]
    NoHeader,
    #[error("the CSV file has no amount column (expected a header such as \"Amount\")")]
    NoAmountColumn,
    #[error("the CSV file is malformed at line {line}: {reason}")]
    Malformed { line: u64, reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    First,
    Last,
    Amount,
    Date,
    Address,
    City,
    State,
    Zip,
    Email,
    Phone,
    Memo,
    Organization,
    PaymentRef,
}

fn field_for(header: &str) -> Option<Field> {
    let h: String = header
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let h = h.trim_matches('_');
    Some(match h {
        "name" | "donor" | "donor_name" | "full_name" | "donor_full_name" => Field::Name,
        "first_name" | "fname" | "first" => Field::First,
        "last_name" | "lname" | "last" => Field::Last,
        "amount" | "donation_amount" | "gift_amount" | "donation" | "gross" | "total" => {
            Field::Amount
        }
        "date" | "donation_date" | "gift_date" | "transaction_date" | "created" => Field::Date,
        "address" | "address1" | "address_1" | "street" | "address_line_1" => Field::Address,
        "city" => Field::City,
        "state" => Field::State,
        "zip" | "zipcode" | "zip_code" | "postal_code" => Field::Zip,
        "email" | "email_address" => Field::Email,
        "phone" | "phone_number" => Field::Phone,
        "memo" | "notes" | "note" | "comment" => Field::Memo,
        "organization" | "organisation" | "org_name" | "organization_name" | "company" => {
            Field::Organization
        }
        "payment_id" | "transaction_id" | "payment_ref" | "id" | "check_number" | "check_no" => {
            Field::PaymentRef
        }
        _ => return None,
    })
}

/// The most frequent of `, ; \t |` in the first 4 KB, comma when none.
fn sniff_delimiter(head: &[u8]) -> u8 {
    [b',', b';', b'\t', b'|']
        .into_iter()
        .map(|d| (head.iter().filter(|&&b| b == d).count(), d))
        .max_by_key(|&(n, d)| (n, d == b','))
        .filter(|&(n, _)| n > 0)
        .map_or(b',', |(_, d)| d)
}

fn decode(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.trim_start_matches('\u{feff}').trim().to_string(),
        Err(_) => encoding_rs::WINDOWS_1252.decode(bytes).0.trim().to_string(),
    }
}

/// Reads every row of `path` into records (or row-level errors).
pub fn read_csv(path: &Path, file_name: &str) -> Result<Vec<Outcome>, CsvError> {
    let mut head = Vec::with_capacity(4096);
    std::fs::File::open(path)?
        .take(4096)
        .read_to_end(&mut head)?;
    let delimiter = sniff_delimiter(&head);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .has_headers(true)
        .from_reader(BufReader::new(std::fs::File::open(path)?));
    let headers = reader.byte_headers().map_err(|e| CsvError::Malformed {
        line: 1,
        reason: e.to_string(),
    })?;
    if headers.is_empty() || headers.iter().all(|h| h.is_empty()) {
        return Err(CsvError::NoHeader);
    }
    let map: Vec<Option<Field>> = headers.iter().map(|h| field_for(&decode(h))).collect();
    if !map.contains(&Some(Field::Amount)) {
        return Err(CsvError::NoAmountColumn);
    }
    let mut out = Vec::new();
    let mut row = csv::ByteRecord::new();
    let mut n = 0u32;
    loop {
        match reader.read_byte_record(&mut row) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                return Err(CsvError::Malformed {
                    line,
                    reason: e.to_string(),
                });
            }
        }
        n += 1;
        if row.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue; // blank line, not a gift
        }
        out.push(Outcome::Record(Box::new(row_record(
            file_name, n, &map, &row,
        ))));
    }
    Ok(out)
}

fn row_record(file: &str, n: u32, map: &[Option<Field>], row: &csv::ByteRecord) -> Donation {
    let mut r = Donation::new(file);
    r.provenance.line = Some(u64::from(n) + 1);
    r.provenance.kind = crate::donation::SourceKind::Csv;
    r.payment_method = Some(PaymentMethod::Online);
    r.deposit_method = Some("Online".into());
    let (mut first, mut last, mut name) = (None, None, None);
    for (field, raw) in map.iter().zip(row.iter()) {
        let Some(field) = field else { continue };
        let v = decode(raw);
        if v.is_empty() {
            continue;
        }
        match field {
            Field::Name => name = Some(v),
            Field::First => first = Some(v),
            Field::Last => last = Some(v),
            Field::Amount => match parse_amount(&v) {
                Ok(a) => r.amount = Some(a),
                Err(e) => r.issue(
                    IssueLevel::Error,
                    "amount_unreadable",
                    "amount",
                    e.to_string(),
                ),
            },
            Field::Date => {
                // Exports often carry a time after the date.
                let day = v.split([' ', 'T']).next().unwrap_or(&v);
                match parse_date(day) {
                    Ok(d) => r.payment_date = Some(d),
                    Err(e) => r.issue(
                        IssueLevel::Warning,
                        "date_unreadable",
                        "payment_date",
                        e.to_string(),
                    ),
                }
            }
            Field::Address => r.contact.address_line_1 = Some(v),
            Field::City => r.contact.city = Some(v),
            Field::State => r.contact.state = Some(v),
            Field::Zip => r.contact.zip = Some(v),
            Field::Email => r.contact.email = Some(v),
            Field::Phone => r.contact.phone = Some(v),
            Field::Memo => r.memo = Some(v),
            Field::Organization => r.payer.organization_name = Some(v),
            Field::PaymentRef => r.payment_ref = Some(v),
        }
    }
    if let Some(name) = name {
        r.payer.aliases.push(name);
    }
    match (first, last) {
        (Some(f), Some(l)) => {
            let full = format!("{f} {l}");
            if !r.payer.aliases.contains(&full) {
                r.payer.aliases.push(full);
            }
            r.payer.aliases.push(format!("{l}, {f}"));
        }
        (Some(one), None) | (None, Some(one)) if r.payer.aliases.is_empty() => {
            r.payer.aliases.push(one);
        }
        _ => {}
    }
    if r.amount.is_none()
        && !r
            .issues
            .iter()
            .any(|i| i.field.as_deref() == Some("amount"))
    {
        r.issue(
            IssueLevel::Error,
            "amount_missing",
            "amount",
            "the amount cell is empty",
        );
    }
    if r.payment_ref.is_none() {
        r.issue(
            IssueLevel::Warning,
            "payment_ref_missing",
            "payment_ref",
            "no payment id column; same-amount gifts cannot be told apart",
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recs(out: Vec<Outcome>) -> Vec<Donation> {
        out.into_iter()
            .filter_map(|o| match o {
                Outcome::Record(r) => Some(*r),
                Outcome::Error(_) => None,
            })
            .collect()
    }

    fn write(content: &[u8]) -> tempfile::NamedTempFile {
        use std::io::Write;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content).unwrap();
        f
    }

    #[test]
    fn maps_headers_keeps_same_amount_gifts_and_bad_rows() {
        let f = write(
            b"\xEF\xBB\xBFTransaction ID,First Name,Last Name,Amount,Date,Email,Zip,Extra\n\
              ch_1,Ann,Lee,$25.00,2026-03-01 10:00,ann@example.org,02134,x\n\
              ch_2,Ann,Lee,25.00,03/02/2026,,02134,y\n\
              ch_3,Bob,Ray,twenty,03/02/2026,,,\n\n",
        );
        let rs = recs(read_csv(f.path(), "gifts.csv").unwrap());
        assert_eq!(rs.len(), 3);
        assert_eq!(rs[0].payment_ref.as_deref(), Some("ch_1"));
        assert_eq!(rs[0].payer.aliases, ["Ann Lee", "Lee, Ann"]);
        assert_eq!(rs[0].amount, rs[1].amount);
        assert_ne!(rs[0].payment_ref, rs[1].payment_ref);
        assert_eq!(rs[0].contact.zip.as_deref(), Some("02134"));
        assert_eq!(rs[0].provenance.line, Some(2));
        assert!(rs[2].amount.is_none());
        assert!(rs[2].issues.iter().any(|i| i.level == IssueLevel::Error));
    }

    #[test]
    fn semicolons_and_cp1252() {
        let f = write(b"Name;Amount\nJos\xE9 Pe\xF1a;10.00\n");
        let rs = recs(read_csv(f.path(), "g.csv").unwrap());
        assert_eq!(rs[0].payer.aliases, ["Jos\u{e9} Pe\u{f1}a"]);
    }

    #[test]
    fn refuses_files_without_amount_column() {
        let f = write(b"Name,Color\nA,blue\n");
        assert!(matches!(
            read_csv(f.path(), "g.csv"),
            Err(CsvError::NoAmountColumn)
        ));
    }
}
