//! Online-gift CSV exports (Stripe, PayPal, donation platforms, hand-made sheets), parsed
//! deterministically: no model is involved, so the same file always gives the same records.
//!
//! Rows are streamed from the file, one row in memory at a time: first counted (a file over
//! `MAX_RECORDS_PER_FILE` is refused before any record exists), then read. Each field is
//! decoded on its own: UTF-8 (a leading BOM is skipped), else Windows-1252, because
//! hand-edited exports mix the two. Values are read as written; `normalize` cleans them afterwards. Only the amount and
//! the date are parsed here, into typed fields. A row with a bad value still becomes a record
//! carrying the problem as an issue: nothing is dropped.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use chrono::NaiveDate;

use super::Outcome;
use crate::donation::{
    group_thousands, parse_amount, parse_date, Donation, IssueLevel, PaymentMethod, SourceKind,
    ValueError,
};

#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("cannot read the CSV file: {0}")]
    Io(#[from] std::io::Error),
    #[error("the CSV file has no header row")]
    NoHeader,
    #[error("no amount column found; the columns are: {}", .columns.join(", "))]
    NoAmountColumn { columns: Vec<String> },
    #[error("the CSV file is malformed at line {line}: {reason}")]
    Malformed { line: u64, reason: String },
    #[error("the CSV file is UTF-16 text; save it as \"CSV UTF-8\" and upload it again")]
    Utf16,
    #[error(
        "{file} has {} rows; at most {} can be read from one file. Split the file or export a \
         shorter date range.",
        group_thousands(&.rows.to_string()),
        group_thousands(&.limit.to_string())
    )]
    TooManyRows { file: String, rows: u64, limit: u64 },
}

/// How much of the file the delimiter is guessed from.
const SNIFF_BYTES: u64 = 4096;
/// How many lines of that sample are compared.
const SNIFF_LINES: usize = 10;
/// Candidate delimiters; on a tie the earlier one wins, so comma is the default.
const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

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
    Currency,
}

/// "Created (UTC)" -> "created_utc", "Town/City" -> "town_city": lowercase, each run of other
/// characters becomes one `_`, none at either end.
fn normalize_header(header: &str) -> String {
    let mut out = String::with_capacity(header.len());
    let mut gap = false;
    for c in header.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            if gap && !out.is_empty() {
                out.push('_');
            }
            gap = false;
            out.push(c);
        } else {
            gap = true;
        }
    }
    out
}

/// The field a normalised header names, if any.
fn field_for(norm: &str) -> Option<Field> {
    Some(match norm {
        "name" | "donor" | "donor_name" | "full_name" | "donor_full_name" | "customer_name"
        | "card_name" | "billing_name" => Field::Name,
        "first_name" | "fname" | "first" => Field::First,
        "last_name" | "lname" | "last" | "surname" => Field::Last,
        "amount" | "gross" | "donation_amount" | "gift_amount" | "donation" | "total"
        | "amount_usd" => Field::Amount,
        "date" | "donation_date" | "gift_date" | "transaction_date" | "payment_date"
        | "created" | "created_utc" | "created_date" => Field::Date,
        "address"
        | "address1"
        | "address_1"
        | "address_line_1"
        | "address_line1"
        | "street"
        | "card_address_line1"
        | "billing_address_line1" => Field::Address,
        "city" | "town_city" | "card_address_city" => Field::City,
        "state" | "province" | "card_address_state" => Field::State,
        // PayPal: "State/Province/Region/County/Territory/Prefecture/Republic".
        s if s.starts_with("state_") => Field::State,
        "zip" | "zipcode" | "zip_code" | "postal_code" | "zip_postal_code" | "card_address_zip" => {
            Field::Zip
        }
        "email" | "email_address" | "customer_email" | "from_email_address" | "donor_email" => {
            Field::Email
        }
        "phone" | "phone_number" | "contact_phone_number" => Field::Phone,
        "memo" | "notes" | "note" | "comment" | "comments" | "description" | "message" => {
            Field::Memo
        }
        "organization" | "organisation" | "org_name" | "organization_name" | "company"
        | "company_name" => Field::Organization,
        "id" | "transaction_id" | "payment_id" | "payment_ref" | "charge_id" | "reference"
        | "receipt_id" | "check_number" | "check_no" | "check_num" => Field::PaymentRef,
        "currency" => Field::Currency,
        _ => return None,
    })
}

/// What the header row says about every column.
struct Columns {
    /// Per column: its field, or `None` when it is kept in `extra` (currency is kept there
    /// too, since the record has no field for it).
    fields: Vec<Option<Field>>,
    /// Per column: the `extra` key (the header as written; "column N" or "Header (column N)"
    /// when it is empty or already used).
    keys: Vec<String>,
    deposit_method: &'static str,
}

impl Columns {
    fn from_headers(headers: &[String]) -> Result<Self, CsvError> {
        if headers.iter().all(String::is_empty) {
            return Err(CsvError::NoHeader);
        }
        let norms: Vec<String> = headers.iter().map(|h| normalize_header(h)).collect();
        let mut fields: Vec<Option<Field>> = Vec::with_capacity(headers.len());
        for norm in &norms {
            // The first column naming a field wins; a later one is kept as an unknown column.
            let field = field_for(norm).filter(|f| !fields.contains(&Some(*f)));
            fields.push(field);
        }
        if !fields.contains(&Some(Field::Amount)) {
            return Err(CsvError::NoAmountColumn {
                columns: headers.iter().filter(|h| !h.is_empty()).cloned().collect(),
            });
        }
        // Only columns kept in `extra` need keys, and those must not overwrite each other.
        let mut keys: Vec<String> = Vec::with_capacity(headers.len());
        for (i, (header, field)) in headers.iter().zip(&fields).enumerate() {
            let in_extra = matches!(field, None | Some(Field::Currency));
            let taken = headers[..i]
                .iter()
                .zip(&fields)
                .any(|(h, f)| h == header && matches!(f, None | Some(Field::Currency)));
            let key = if in_extra && (header.is_empty() || taken) {
                column_key(i, header)
            } else {
                header.clone()
            };
            keys.push(key);
        }
        let has = |n: &str| norms.iter().any(|h| h == n);
        let stripe =
            has("id") && (has("created_utc") || norms.iter().any(|h| h.starts_with("card_")));
        let paypal = has("gross") && has("transaction_id");
        let deposit_method = match (stripe, paypal) {
            (true, false) => "Stripe",
            (false, true) => "PayPal",
            _ => "Online",
        };
        Ok(Self {
            fields,
            keys,
            deposit_method,
        })
    }
}

/// An `extra` key for a column without a usable header of its own.
fn column_key(index: usize, header: &str) -> String {
    if header.is_empty() {
        format!("column {}", index + 1)
    } else {
        format!("{header} (column {})", index + 1)
    }
}

/// Reads every row of `path` into records, refusing a file of more than `max_rows` data rows
/// before any record is built (a deposit must fit its Redis budget: docs/MEMORY.md, "CSV
/// files and the Redis budget").
pub fn read_csv(path: &Path, file_name: &str, max_rows: u64) -> Result<Vec<Outcome>, CsvError> {
    // A counting pass first: one row in memory, no records, so a huge export costs a read.
    let mut rows = Rows::open(path)?;
    let count = rows.count_rest()?;
    if count > max_rows {
        return Err(CsvError::TooManyRows {
            file: file_name.to_string(),
            rows: count,
            limit: max_rows,
        });
    }

    let mut rows = Rows::open(path)?;
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut cells: Vec<String> = Vec::new();
    while let Some(line) = rows.next_row(&mut cells)? {
        let record = build_record(file_name, line, &rows.columns, &cells);
        out.push(Outcome::Record(Box::new(record)));
    }
    Ok(out)
}

/// The data rows of a CSV file, read one at a time after its header.
struct Rows {
    reader: csv::Reader<File>,
    lines: LineCursor<File>,
    row: csv::ByteRecord,
    columns: Columns,
    last_line: u64,
}

impl Rows {
    /// Opens `path` (a BOM skipped, the delimiter sniffed) and reads its header.
    fn open(path: &Path) -> Result<Self, CsvError> {
        let mut file = File::open(path)?;
        let mut head = Vec::with_capacity(SNIFF_BYTES as usize);
        (&mut file).take(SNIFF_BYTES).read_to_end(&mut head)?;
        if head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF") {
            return Err(CsvError::Utf16);
        }
        let start = if head.starts_with(UTF8_BOM) {
            UTF8_BOM.len() as u64
        } else {
            0
        };
        let complete = (head.len() as u64) < SNIFF_BYTES;
        let delimiter = sniff_delimiter(&head[start as usize..], complete);

        file.seek(SeekFrom::Start(start))?;
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .has_headers(false)
            .from_reader(file);
        let lines = {
            let mut f = File::open(path)?;
            f.seek(SeekFrom::Start(start))?;
            LineCursor::new(f)
        };

        let mut row = csv::ByteRecord::new();
        if !read_row(&mut reader, &mut row, 1)? {
            return Err(CsvError::NoHeader);
        }
        let mut cells = Vec::new();
        decode_row(&row, &mut cells);
        let columns = Columns::from_headers(&cells)?;
        Ok(Self {
            reader,
            lines,
            row,
            columns,
            last_line: 1,
        })
    }

    /// The next row that is not blank, decoded into `cells`, with its line in the file.
    fn next_row(&mut self, cells: &mut Vec<String>) -> Result<Option<u64>, CsvError> {
        loop {
            let from = self.reader.position().byte();
            if !read_row(&mut self.reader, &mut self.row, self.last_line + 1)? {
                return Ok(None);
            }
            self.last_line = self
                .lines
                .record_line(from, self.reader.position().byte())?;
            decode_row(&self.row, cells);
            // A blank line (or only delimiters) is not a gift.
            if !cells.iter().all(String::is_empty) {
                return Ok(Some(self.last_line));
            }
        }
    }

    /// How many rows that are not blank are left, without decoding them.
    fn count_rest(&mut self) -> Result<u64, CsvError> {
        let mut count = 0;
        while read_row(&mut self.reader, &mut self.row, self.last_line + 1)? {
            if !self.row.iter().all(|cell| decoded(cell).trim().is_empty()) {
                count += 1;
            }
        }
        Ok(count)
    }
}

/// Reads the next row; `line` is a best guess for the error message (the csv crate's own line
/// count is only approximate).
fn read_row(
    reader: &mut csv::Reader<File>,
    row: &mut csv::ByteRecord,
    line: u64,
) -> Result<bool, CsvError> {
    reader
        .read_byte_record(row)
        .map_err(|e| CsvError::Malformed {
            line: e.position().map_or(line, csv::Position::line),
            reason: e.to_string(),
        })
}

fn decode_row(row: &csv::ByteRecord, cells: &mut Vec<String>) {
    cells.clear();
    cells.extend(row.iter().map(|cell| decoded(cell).trim().to_string()));
}

/// One field: UTF-8 when it is valid UTF-8, else Windows-1252 (a superset of Latin-1's
/// printable range). Borrowed unless it had to be converted.
fn decoded(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => {
            encoding_rs::WINDOWS_1252
                .decode_without_bom_handling(bytes)
                .0
        }
    }
}

/// Picks the delimiter from the first lines of the file: the candidate that appears in the
/// header and splits the most lines into the header's column count (then the one giving more
/// columns); comma when none appears. Delimiters inside double quotes do not count.
fn sniff_delimiter(head: &[u8], complete: bool) -> u8 {
    let lines = delimiter_counts(head, complete);
    let Some(header) = lines.first() else {
        return b',';
    };
    let mut best: Option<((usize, usize), u8)> = None;
    for (i, &d) in DELIMITERS.iter().enumerate() {
        if header[i] == 0 {
            continue;
        }
        let agree = lines.iter().filter(|l| l[i] == header[i]).count();
        let score = (agree, header[i]);
        if best.is_none_or(|(b, _)| score > b) {
            best = Some((score, d));
        }
    }
    best.map_or(b',', |(_, d)| d)
}

/// Per non-blank line of the sample, how often each candidate delimiter occurs outside quotes.
/// A line cut off by the end of the sample is left out, unless it is the only one.
fn delimiter_counts(head: &[u8], complete: bool) -> Vec<[usize; 4]> {
    let mut lines = Vec::new();
    let mut counts = [0usize; 4];
    let mut in_quotes = false;
    let mut blank = true;
    for &b in head {
        if b == b'"' {
            in_quotes = !in_quotes;
        } else if !in_quotes && (b == b'\n' || b == b'\r') {
            if !blank {
                lines.push(counts);
                if lines.len() == SNIFF_LINES {
                    return lines;
                }
            }
            counts = [0; 4];
            blank = true;
            continue;
        } else if !in_quotes {
            if let Some(i) = DELIMITERS.iter().position(|&d| d == b) {
                counts[i] += 1;
            }
        }
        if !b.is_ascii_whitespace() {
            blank = false;
        }
    }
    if !blank && (complete || lines.is_empty()) {
        lines.push(counts);
    }
    lines
}

/// Physical line numbers of rows. The csv crate counts only `\n`, and reports a row's position
/// before the blank lines it skips, so its numbers drift; this second cursor over the same bytes
/// counts `\n`, `\r\n` and lone `\r` as one line break each, in constant memory.
struct LineCursor<R> {
    inner: BufReader<R>,
    offset: u64,
    breaks: u64,
    after_cr: bool,
}

impl<R: Read> LineCursor<R> {
    fn new(inner: R) -> Self {
        Self {
            inner: BufReader::new(inner),
            offset: 0,
            breaks: 0,
            after_cr: false,
        }
    }

    /// The 1-based line of the row the csv reader read from byte `from` to byte `to`: the first
    /// byte there that is not a line break (the reader skips empty lines before a row).
    fn record_line(&mut self, from: u64, to: u64) -> std::io::Result<u64> {
        self.advance(from, false)?;
        self.advance(to, true)?;
        Ok(self.breaks + 1)
    }

    /// Moves to `target`, counting line breaks; with `breaks_only`, stops early at the first
    /// byte that is not a line break.
    fn advance(&mut self, target: u64, breaks_only: bool) -> std::io::Result<()> {
        while self.offset < target {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                return Ok(());
            }
            let room = usize::try_from(target - self.offset)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let mut used = 0;
            let mut at_content = false;
            for &b in &buf[..room] {
                let is_break = b == b'\n' || b == b'\r';
                if breaks_only && !is_break {
                    at_content = true;
                    break;
                }
                if b == b'\r' || (b == b'\n' && !self.after_cr) {
                    self.breaks += 1;
                }
                self.after_cr = b == b'\r';
                used += 1;
            }
            self.inner.consume(used);
            self.offset += used as u64;
            if at_content {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// One data row as a record. `line` is the row's line in the file (the header is line 1).
fn build_record(file: &str, line: u64, columns: &Columns, cells: &[String]) -> Donation {
    let mut r = Donation::new(file);
    r.provenance.line = Some(line);
    r.provenance.kind = SourceKind::Csv;
    r.payment_method = Some(PaymentMethod::Online);
    r.deposit_method = Some(columns.deposit_method.to_string());

    let (mut name, mut first, mut last) = (None, None, None);
    let mut amount_cell = None;
    for (i, cell) in cells.iter().enumerate() {
        let Some(field) = columns.fields.get(i).copied() else {
            // More cells than headers: often an unquoted comma, which shifts the columns.
            if !cell.is_empty() {
                r.extra.insert(column_key(i, ""), cell.clone());
                r.issue(
                    IssueLevel::Warning,
                    "row_too_long",
                    "row",
                    format!(
                        "line {line}: the row has more cells than the header has columns; \
                         check that its values sit under the right headers"
                    ),
                );
            }
            continue;
        };
        let Some(field) = field else {
            if !cell.is_empty() {
                r.extra.insert(columns.keys[i].clone(), cell.clone());
            }
            continue;
        };
        if field == Field::Amount {
            amount_cell = Some(cell.as_str());
        }
        if cell.is_empty() {
            continue;
        }
        let value = Some(cell.clone());
        match field {
            Field::Name => name = value,
            Field::First => first = value,
            Field::Last => last = value,
            Field::Amount => {}
            Field::Date => match parse_row_date(cell) {
                Some(d) => r.payment_date = Some(d),
                None => r.issue(
                    IssueLevel::Warning,
                    "date_unreadable",
                    "payment_date",
                    format!("line {line}: {}", ValueError::Date(cell.clone())),
                ),
            },
            Field::Address => r.contact.address_line_1 = value,
            Field::City => r.contact.city = value,
            Field::State => r.contact.state = value,
            Field::Zip => r.contact.zip = value,
            Field::Email => r.contact.email = value,
            Field::Phone => r.contact.phone = value,
            Field::Memo => r.memo = value,
            Field::Organization => r.payer.organization_name = value,
            Field::PaymentRef => r.payment_ref = value,
            Field::Currency => {
                // The record has no currency field: keep the column, and flag foreign money.
                r.extra.insert(columns.keys[i].clone(), cell.clone());
                if !cell.eq_ignore_ascii_case("usd") {
                    r.issue(
                        IssueLevel::Warning,
                        "currency_not_usd",
                        "amount",
                        format!(
                            "line {line}: the gift is in {cell}, not US dollars; check the \
                             amount before sending"
                        ),
                    );
                }
            }
        }
    }

    match amount_cell.filter(|c| !c.is_empty()) {
        None => r.issue(
            IssueLevel::Error,
            "amount_missing",
            "amount",
            format!("line {line}: the amount cell is empty"),
        ),
        Some(cell) => match parse_amount(cell) {
            Ok(a) => r.amount = Some(a),
            Err(e) => r.issue(
                IssueLevel::Error,
                "amount_unreadable",
                "amount",
                format!("line {line}: {e}"),
            ),
        },
    }

    if let Some(name) = name {
        r.payer.aliases.push(name);
    }
    let joined = [first, last]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    if !joined.is_empty() && !r.payer.aliases.iter().any(|a| same_name(a, &joined)) {
        r.payer.aliases.push(joined);
    }
    r
}

/// Equal ignoring case and spacing ("ANN  LEE" is "Ann Lee").
fn same_name(a: &str, b: &str) -> bool {
    let words = |s: &str| {
        s.split_whitespace()
            .map(str::to_lowercase)
            .collect::<Vec<_>>()
    };
    words(a) == words(b)
}

/// A date cell, which exports often follow with a time: "2026-03-03 09:14:00",
/// "2026-03-03T09:14:00Z", "03/03/2026 9:14 AM PST".
fn parse_row_date(cell: &str) -> Option<NaiveDate> {
    if let Ok(d) = parse_date(cell) {
        return Some(d);
    }
    // ISO 8601: the date ends at a `T` between digits.
    let bytes = cell.as_bytes();
    let iso_t = (1..bytes.len().saturating_sub(1)).find(|&i| {
        bytes[i] == b'T' && bytes[i - 1].is_ascii_digit() && bytes[i + 1].is_ascii_digit()
    });
    if let Some(i) = iso_t {
        if let Ok(d) = parse_date(&cell[..i]) {
            return Some(d);
        }
    }
    // Otherwise the time starts at the first word holding a colon.
    let mut date_words = Vec::new();
    for word in cell.split_whitespace() {
        if word.contains(':') {
            break;
        }
        date_words.push(word);
    }
    let date = date_words.join(" ");
    parse_date(date.trim_end_matches(',')).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;
    use std::io::Write;

    fn write(content: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content).unwrap();
        f
    }

    fn read(content: &[u8]) -> Vec<Donation> {
        let f = write(content);
        read_csv(f.path(), "gifts.csv", 1_000)
            .unwrap()
            .into_iter()
            .map(|o| match o {
                Outcome::Record(r) => *r,
                Outcome::Error(e) => panic!("unexpected error outcome: {e:?}"),
            })
            .collect()
    }

    fn read_err(content: &[u8]) -> CsvError {
        let f = write(content);
        match read_csv(f.path(), "gifts.csv", 1_000) {
            Ok(out) => panic!("expected an error, got {} outcomes", out.len()),
            Err(e) => e,
        }
    }

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn codes(r: &Donation) -> Vec<&str> {
        r.issues.iter().map(|i| i.code.as_str()).collect()
    }

    #[test]
    fn headers_map_to_fields() {
        use Field::*;
        let cases: &[(&str, Option<Field>)] = &[
            // Stripe payments export.
            ("id", Some(PaymentRef)),
            ("Created (UTC)", Some(Date)),
            ("Amount", Some(Amount)),
            ("Currency", Some(Currency)),
            ("Description", Some(Memo)),
            ("Customer Email", Some(Email)),
            ("Card Name", Some(Name)),
            ("Card Address Line1", Some(Address)),
            ("Card Address City", Some(City)),
            ("Card Address State", Some(State)),
            ("Card Address Zip", Some(Zip)),
            ("Customer ID", None),
            ("Amount Refunded", None),
            ("Card Address Country", None),
            // PayPal activity export.
            ("Date", Some(Date)),
            ("Time", None),
            ("Name", Some(Name)),
            ("Type", None),
            ("Status", None),
            ("Gross", Some(Amount)),
            ("Fee", None),
            ("Net", None),
            ("From Email Address", Some(Email)),
            ("To Email Address", None),
            ("Transaction ID", Some(PaymentRef)),
            ("Reference Txn ID", None),
            ("Address Line 1", Some(Address)),
            ("Address Line 2/District/Neighborhood", None),
            ("Town/City", Some(City)),
            (
                "State/Province/Region/County/Territory/Prefecture/Republic",
                Some(State),
            ),
            ("Zip/Postal Code", Some(Zip)),
            ("Contact Phone Number", Some(Phone)),
            ("Note", Some(Memo)),
            // Hand-made sheets: any case, any punctuation.
            ("  FIRST NAME ", Some(First)),
            ("last-name", Some(Last)),
            ("Surname", Some(Last)),
            ("Donor_Name", Some(Name)),
            ("Gift Amount ($)", Some(Amount)),
            ("Amount (USD)", Some(Amount)),
            ("Check #", None),
            ("Check No.", Some(PaymentRef)),
            ("Organisation", Some(Organization)),
            ("Company Name", Some(Organization)),
            ("E-mail", None),
            ("Email Address", Some(Email)),
            ("Zip Code", Some(Zip)),
            ("Province", Some(State)),
            ("Comments", Some(Memo)),
            ("Payment Date", Some(Date)),
            ("", None),
        ];
        for &(header, want) in cases {
            assert_eq!(field_for(&normalize_header(header)), want, "{header:?}");
        }
    }

    #[test]
    fn normalises_headers() {
        for (raw, want) in [
            ("Created (UTC)", "created_utc"),
            ("  Town/City  ", "town_city"),
            ("__Zip//Postal  Code__", "zip_postal_code"),
            ("Prénom", "prénom"),
            ("(!)", ""),
        ] {
            assert_eq!(normalize_header(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn stripe_export() {
        let rs = read(
            b"id,Created (UTC),Amount,Amount Refunded,Currency,Description,Customer Email,\
Card Name,Card Address Line1,Card Address City,Card Address State,Card Address Zip,Status\n\
ch_3Ab,2026-03-03 09:14:00,25.00,0.00,usd,Monthly gift,ann@example.org,ANN LEE,\
12 Elm St,Boston,MA,2134,Paid\n",
        );
        assert_eq!(rs.len(), 1);
        let r = &rs[0];
        assert_eq!(r.payment_ref.as_deref(), Some("ch_3Ab"));
        assert_eq!(r.payment_date, Some(day(2026, 3, 3)));
        assert_eq!(r.amount, Some(dec("25.00")));
        assert_eq!(r.memo.as_deref(), Some("Monthly gift"));
        assert_eq!(r.contact.email.as_deref(), Some("ann@example.org"));
        // Not normalised here: no proper-casing, no ZIP padding.
        assert_eq!(r.payer.aliases, ["ANN LEE"]);
        assert_eq!(r.contact.address_line_1.as_deref(), Some("12 Elm St"));
        assert_eq!(r.contact.city.as_deref(), Some("Boston"));
        assert_eq!(r.contact.state.as_deref(), Some("MA"));
        assert_eq!(r.contact.zip.as_deref(), Some("2134"));
        assert_eq!(r.deposit_method.as_deref(), Some("Stripe"));
        assert_eq!(r.payment_method, Some(PaymentMethod::Online));
        assert_eq!(r.provenance.kind, SourceKind::Csv);
        assert_eq!(r.provenance.file, "gifts.csv");
        assert_eq!(r.provenance.line, Some(2));
        assert_eq!(r.extra.get("Status").map(String::as_str), Some("Paid"));
        assert_eq!(
            r.extra.get("Amount Refunded").map(String::as_str),
            Some("0.00")
        );
        assert_eq!(r.extra.get("Currency").map(String::as_str), Some("usd"));
        assert!(r.issues.is_empty(), "{:?}", r.issues);
    }

    #[test]
    fn paypal_export() {
        let rs = read(
            b"\"Date\",\"Time\",\"TimeZone\",\"Name\",\"Type\",\"Status\",\"Currency\",\"Gross\",\
\"Fee\",\"Net\",\"From Email Address\",\"Transaction ID\",\"Address Line 1\",\"Town/City\",\
\"State/Province/Region/County/Territory/Prefecture/Republic\",\"Zip/Postal Code\",\
\"Contact Phone Number\",\"Note\",\"Receipt ID\"\r\n\
\"03/02/2026\",\"10:01:22\",\"PST\",\"Bob Ray\",\"Donation Payment\",\"Completed\",\"USD\",\
\"1,000.00\",\"-30.30\",\"969.70\",\"bob@example.org\",\"8AB12345CD6789012\",\"1 Main St\",\
\"Erie\",\"PA\",\"16501\",\"814-555-0100\",\"For the school\",\"\"\r\n",
        );
        assert_eq!(rs.len(), 1);
        let r = &rs[0];
        assert_eq!(r.deposit_method.as_deref(), Some("PayPal"));
        assert_eq!(r.payment_date, Some(day(2026, 3, 2)));
        assert_eq!(r.amount, Some(dec("1000.00")));
        assert_eq!(r.payment_ref.as_deref(), Some("8AB12345CD6789012"));
        assert_eq!(r.payer.aliases, ["Bob Ray"]);
        assert_eq!(r.contact.email.as_deref(), Some("bob@example.org"));
        assert_eq!(r.contact.address_line_1.as_deref(), Some("1 Main St"));
        assert_eq!(r.contact.city.as_deref(), Some("Erie"));
        assert_eq!(r.contact.state.as_deref(), Some("PA"));
        assert_eq!(r.contact.zip.as_deref(), Some("16501"));
        assert_eq!(r.contact.phone.as_deref(), Some("814-555-0100"));
        assert_eq!(r.memo.as_deref(), Some("For the school"));
        assert_eq!(r.extra.get("Fee").map(String::as_str), Some("-30.30"));
        assert_eq!(
            r.extra.get("Type").map(String::as_str),
            Some("Donation Payment")
        );
        assert!(
            !r.extra.contains_key("Receipt ID"),
            "empty cells are skipped"
        );
        assert!(r.issues.is_empty(), "{:?}", r.issues);
    }

    #[test]
    fn deposit_method_follows_the_export() {
        for (header, want) in [
            ("id,Created (UTC),Amount", "Stripe"),
            ("id,Amount,Card Name", "Stripe"),
            ("id,Amount", "Online"),
            ("Gross,Transaction ID", "PayPal"),
            ("Gross,Name", "Online"),
            ("Name,Amount,Date", "Online"),
        ] {
            let rs = read(format!("{header}\n1,2,3\n").as_bytes());
            assert_eq!(rs[0].deposit_method.as_deref(), Some(want), "{header}");
        }
    }

    #[test]
    fn same_amount_gifts_stay_separate() {
        let rs = read(
            b"Transaction ID,Name,Amount,Date\n\
              ch_1,Ann Lee,$25.00,2026-03-01\n\
              ch_2,Ann Lee,$25.00,2026-04-01\n",
        );
        assert_eq!(rs.len(), 2);
        assert_eq!(rs[0].amount, Some(dec("25.00")));
        assert_eq!(rs[1].amount, Some(dec("25.00")));
        assert_eq!(rs[0].payment_ref.as_deref(), Some("ch_1"));
        assert_eq!(rs[1].payment_ref.as_deref(), Some("ch_2"));
        assert_ne!(rs[0].id, rs[1].id);
        assert_eq!(
            rs.iter().map(|r| r.provenance.line).collect::<Vec<_>>(),
            [Some(2), Some(3)]
        );
    }

    #[test]
    fn payment_ref_is_kept_as_written() {
        let rs = read(b"Check No,Amount\n0042,10\n  007 ,10\n");
        assert_eq!(rs[0].payment_ref.as_deref(), Some("0042"));
        assert_eq!(rs[1].payment_ref.as_deref(), Some("007"));
    }

    #[test]
    fn aliases_from_name_and_parts() {
        let cases: &[(&[u8], &[&str])] = &[
            (
                b"Name,First Name,Last Name,Amount\nAnn Lee,Ann,Lee,5\n",
                &["Ann Lee"],
            ),
            (
                b"Name,First Name,Last Name,Amount\nANN  LEE,Ann,Lee,5\n",
                &["ANN  LEE"],
            ),
            (
                b"Name,First Name,Last Name,Amount\nAnnie Lee,Ann,Lee,5\n",
                &["Annie Lee", "Ann Lee"],
            ),
            (b"First Name,Last Name,Amount\nAnn,Lee,5\n", &["Ann Lee"]),
            (b"First Name,Last Name,Amount\n,Lee,5\n", &["Lee"]),
            (b"Name,Amount\n,5\n", &[]),
        ];
        for &(csv, want) in cases {
            let rs = read(csv);
            assert_eq!(
                rs[0].payer.aliases,
                want,
                "{}",
                String::from_utf8_lossy(csv)
            );
        }
    }

    #[test]
    fn organisation_column() {
        let rs = read(b"Organization,Name,Amount\nSt. John Lutheran Church,,100\n");
        assert_eq!(
            rs[0].payer.organization_name.as_deref(),
            Some("St. John Lutheran Church")
        );
        assert!(rs[0].payer.aliases.is_empty());
    }

    #[test]
    fn delimiters_are_sniffed() {
        let cases: &[(&str, &[u8])] = &[
            (
                "comma",
                b"Name,Amount,Memo\n\"Lee, Ann\",25.00,\"a, b, c\"\n",
            ),
            (
                "semicolon",
                b"Name;Amount;Memo\n\"Lee, Ann\";25.00;\"a, b, c\"\n\"Ray, Bob\";5;x\n",
            ),
            ("tab", b"Name\tAmount\tMemo\n\"Lee, Ann\"\t25.00\ta, b, c\n"),
            ("pipe", b"Name|Amount|Memo\nLee, Ann|25.00|\"a, b, c\"\n"),
            (
                "pipe with crlf",
                b"Name|Amount|Memo\r\nLee, Ann|25.00|\"a, b, c\"\r\n",
            ),
        ];
        for &(label, csv) in cases {
            let rs = read(csv);
            assert_eq!(rs[0].payer.aliases, ["Lee, Ann"], "{label}");
            assert_eq!(rs[0].amount, Some(dec("25.00")), "{label}");
            assert_eq!(rs[0].memo.as_deref(), Some("a, b, c"), "{label}");
        }
    }

    #[test]
    fn sniffing_rules() {
        let cases: &[(&str, &[u8], bool, u8)] = &[
            ("empty", b"", true, b','),
            ("one column", b"Amount\n5\n", true, b','),
            ("comma", b"a,b,c\n1,2,3\n", true, b','),
            // More commas than semicolons, but only inside quotes.
            (
                "quoted commas",
                b"a;b\n\"x, y, z\";\"1,000.00\"\n\"p, q\";2\n",
                true,
                b';',
            ),
            // A stray semicolon in a comma file does not win: the header has none.
            ("stray", b"a,b\nx;y,1\n", true, b','),
            // The header alone decides when the columns disagree everywhere.
            ("more columns", b"a;b;c|d\n", true, b';'),
            // Consistency beats frequency: commas vary from line to line here.
            (
                "consistent",
                b"a,b;c\nx;1,2,3\ny;4,5,6,7\nz;8\n",
                true,
                b';',
            ),
            // A line cut by the end of the sample is ignored.
            ("truncated", b"a\tb\nx\t1\ny,z,w", false, b'\t'),
            (
                "quoted newline",
                b"a|b\n\"line one\nline, two, three\"|1\n",
                true,
                b'|',
            ),
        ];
        for &(label, head, complete, want) in cases {
            assert_eq!(
                sniff_delimiter(head, complete) as char,
                want as char,
                "{label}"
            );
        }
    }

    #[test]
    fn encodings() {
        let cases: &[(&str, &[u8], &str)] = &[
            (
                "utf-8",
                "Name,Amount\nJosé Peña,10\n".as_bytes(),
                "José Peña",
            ),
            (
                "utf-8 with BOM",
                b"\xEF\xBB\xBFName,Amount\nAnn Lee,10\n",
                "Ann Lee",
            ),
            (
                "utf-8 with BOM and quoted header",
                b"\xEF\xBB\xBF\"Name\",\"Amount\"\n\"Ann Lee\",\"10\"\n",
                "Ann Lee",
            ),
            ("cp1252", b"Name,Amount\nJos\xE9 Pe\xF1a,10\n", "José Peña"),
            (
                "cp1252 quotes",
                b"Name,Amount\n\x93Bud\x94 O\x92Neil,10\n",
                "\u{201c}Bud\u{201d} O\u{2019}Neil",
            ),
        ];
        for &(label, csv, want) in cases {
            let rs = read(csv);
            assert_eq!(rs.len(), 1, "{label}");
            assert_eq!(rs[0].payer.aliases, [want], "{label}");
            assert_eq!(rs[0].amount, Some(dec("10")), "{label}");
            assert!(rs[0].extra.is_empty(), "{label}: {:?}", rs[0].extra);
        }
        // Per field: a cp1252 cell does not spoil its UTF-8 neighbour.
        let rs = read(b"Name,Memo,Amount\nRen\xC3\xA9e,caf\xE9,10\n");
        assert_eq!(rs[0].payer.aliases, ["Renée"]);
        assert_eq!(rs[0].memo.as_deref(), Some("café"));
    }

    #[test]
    fn utf16_is_refused_plainly() {
        for csv in [&b"\xFF\xFEN\0a\0"[..], b"\xFE\xFF\0N\0a"] {
            assert!(matches!(read_err(csv), CsvError::Utf16));
        }
    }

    #[test]
    fn unknown_columns_are_kept() {
        let rs = read(
            b"Name,Amount,Campaign,,Amount,Campaign\n\
              Ann,10,Spring,x,99,Fall\n\
              Bob,5,,,,\n",
        );
        let extra: Vec<(&str, &str)> = rs[0]
            .extra
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            extra,
            [
                // The second "Amount" is unknown: the first column naming a field wins.
                ("Amount", "99"),
                ("Campaign", "Spring"),
                ("Campaign (column 6)", "Fall"),
                ("column 4", "x"),
            ]
        );
        assert_eq!(rs[0].amount, Some(dec("10")));
        assert!(rs[1].extra.is_empty(), "empty cells are skipped");
    }

    #[test]
    fn cells_beyond_the_header_are_kept_and_flagged() {
        let rs = read(b"Name,Amount\nLee, Ann,25\nBob,5,\n");
        assert_eq!(rs[0].extra.get("column 3").map(String::as_str), Some("25"));
        assert!(codes(&rs[0]).contains(&"row_too_long"));
        // "Ann" is not an amount: the shifted row is visible, not silently wrong.
        assert!(codes(&rs[0]).contains(&"amount_unreadable"));
        // An empty trailing cell is harmless.
        assert!(rs[1].issues.is_empty(), "{:?}", rs[1].issues);
    }

    #[test]
    fn file_level_errors() {
        let cases: &[(&str, &[u8], &str)] = &[
            ("empty", b"", "the CSV file has no header row"),
            (
                "only blank lines",
                b"\n\r\n\n",
                "the CSV file has no header row",
            ),
            (
                "only a BOM",
                b"\xEF\xBB\xBF",
                "the CSV file has no header row",
            ),
            (
                "empty header cells",
                b" , ,\n1,2,3\n",
                "the CSV file has no header row",
            ),
            (
                "no amount column",
                b"Name,Color\nA,blue\n",
                "no amount column found; the columns are: Name, Color",
            ),
            (
                "no amount column, semicolons",
                b"Donor;Gift Date;Notes\nA;1/2/2026;x\n",
                "no amount column found; the columns are: Donor, Gift Date, Notes",
            ),
        ];
        for &(label, csv, want) in cases {
            assert_eq!(read_err(csv).to_string(), want, "{label}");
        }
        assert!(matches!(
            read_err(b"Name,Color\n"),
            CsvError::NoAmountColumn { columns } if columns == ["Name", "Color"]
        ));
    }

    #[test]
    fn a_file_over_the_row_limit_is_refused_and_blank_lines_do_not_count() {
        let csv = b"Name,Amount\nA,1\n\n,\nB,2\nC,3\n\r\n";
        let f = write(csv);
        let rows = |limit| read_csv(f.path(), "online-gifts.csv", limit);
        assert_eq!(rows(3).unwrap().len(), 3, "at the limit");
        match rows(2) {
            Err(e @ CsvError::TooManyRows { .. }) => assert_eq!(
                e.to_string(),
                "online-gifts.csv has 3 rows; at most 2 can be read from one file. Split the \
                 file or export a shorter date range."
            ),
            other => panic!("expected TooManyRows, got {other:?}"),
        }
        let big = CsvError::TooManyRows {
            file: "online-gifts.csv".into(),
            rows: 100_000,
            limit: 4_000,
        };
        assert!(
            big.to_string()
                .starts_with("online-gifts.csv has 100,000 rows; at most 4,000 can be read"),
            "{big}"
        );
    }

    #[test]
    fn a_bad_header_is_reported_before_the_row_count() {
        let mut csv = String::from("Name,Color\n");
        for i in 0..50 {
            csv.push_str(&format!("Donor {i},blue\n"));
        }
        let f = write(csv.as_bytes());
        assert!(matches!(
            read_csv(f.path(), "gifts.csv", 10),
            Err(CsvError::NoAmountColumn { .. })
        ));
    }

    #[test]
    fn header_only_gives_no_records() {
        assert!(read(b"Name,Amount\n").is_empty());
    }

    #[test]
    fn bad_amounts_keep_the_row() {
        // (amount cell, expected amount, expected issue code)
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            ("25.00", Some("25.00"), None),
            ("$1,234.50", Some("1234.50"), None),
            ("twenty", None, Some("amount_unreadable")),
            ("-25.00", None, Some("amount_unreadable")),
            ("25,00", None, Some("amount_unreadable")),
            ("", None, Some("amount_missing")),
            ("   ", None, Some("amount_missing")),
        ];
        for &(cell, amount, code) in cases {
            let rs = read(format!("Name,Amount\nAnn,5\n\nBob,\"{cell}\"\n").as_bytes());
            assert_eq!(rs.len(), 2, "{cell:?}");
            let r = &rs[1];
            assert_eq!(r.provenance.line, Some(4), "{cell:?}");
            assert_eq!(r.amount, amount.map(dec), "{cell:?}");
            assert_eq!(r.payer.aliases, ["Bob"], "{cell:?}");
            match code {
                None => assert!(r.issues.is_empty(), "{cell:?}: {:?}", r.issues),
                Some(code) => {
                    let issue = &r.issues[0];
                    assert_eq!(issue.code, code, "{cell:?}");
                    assert_eq!(issue.level, IssueLevel::Error, "{cell:?}");
                    assert_eq!(issue.field.as_deref(), Some("amount"), "{cell:?}");
                    assert!(issue.message.contains("line 4"), "{}", issue.message);
                    assert!(issue.message.contains(cell.trim()), "{}", issue.message);
                }
            }
        }
    }

    #[test]
    fn missing_amount_cell_in_a_short_row() {
        let rs = read(b"Name,Date,Amount\nAnn,2026-03-01\n");
        assert_eq!(codes(&rs[0]), ["amount_missing"]);
    }

    #[test]
    fn dates_with_times() {
        let d = Some(day(2026, 3, 3));
        let cases: &[(&str, Option<NaiveDate>)] = &[
            ("2026-03-03", d),
            ("2026-03-03 09:14:00", d),
            ("2026-03-03 09:14", d),
            ("2026-03-03T09:14:00Z", d),
            ("2026-03-03T09:14:00.000+00:00", d),
            ("03/03/2026", d),
            ("3/3/2026 9:14 AM", d),
            ("03/03/2026 09:14:00 PST", d),
            ("March 3, 2026", d),
            ("Mar 3, 2026, 9:14 AM", d),
            ("Tuesday", None),
            ("2026-02-30 10:00", None),
            ("10:00", None),
        ];
        for &(cell, want) in cases {
            assert_eq!(parse_row_date(cell), want, "{cell:?}");
        }
    }

    #[test]
    fn unreadable_date_is_a_warning() {
        let rs = read(b"Amount,Date\n5,soon\n");
        let issue = &rs[0].issues[0];
        assert_eq!(issue.code, "date_unreadable");
        assert_eq!(issue.level, IssueLevel::Warning);
        assert_eq!(issue.field.as_deref(), Some("payment_date"));
        assert!(issue.message.contains("line 2") && issue.message.contains("soon"));
        assert_eq!(rs[0].amount, Some(dec("5")));
        assert_eq!(rs[0].payment_date, None);
    }

    #[test]
    fn blank_lines_are_skipped_and_lines_counted() {
        // (file, expected lines of the records)
        let cases: &[(&str, &[u8], &[u64])] = &[
            ("lf", b"Name,Amount\nA,1\n\nB,2\n\n\nC,3\n", &[2, 4, 7]),
            (
                "crlf",
                b"Name,Amount\r\nA,1\r\n\r\nB,2\r\n\r\n\r\nC,3\r\n",
                &[2, 4, 7],
            ),
            ("cr", b"Name,Amount\rA,1\r\rB,2\r\r\rC,3", &[2, 4, 7]),
            (
                "delimiters only",
                b"Name,Amount\nA,1\n,\n  ,  \nB,2\n",
                &[2, 5],
            ),
            ("blank first", b"\n\nName,Amount\nA,1\n", &[4]),
            (
                "quoted newlines",
                b"Name,Amount,Memo\nA,1,\"two\nlines\"\r\nB,2,\"x\r\ny\r\nz\"\nC,3,\n",
                &[2, 4, 7],
            ),
            ("no final newline", b"Name,Amount\nA,1\nB,2", &[2, 3]),
        ];
        for &(label, csv, want) in cases {
            let rs = read(csv);
            let lines: Vec<u64> = rs.iter().filter_map(|r| r.provenance.line).collect();
            assert_eq!(lines, want, "{label}");
        }
    }

    #[test]
    fn foreign_currency_warns() {
        let cases: &[(&str, bool)] = &[
            ("USD", false),
            ("usd", false),
            ("", false),
            ("EUR", true),
            ("cad", true),
        ];
        for &(currency, warns) in cases {
            let rs = read(format!("Amount,Currency\n10,{currency}\n").as_bytes());
            let issue = rs[0].issues.iter().find(|i| i.code == "currency_not_usd");
            assert_eq!(issue.is_some(), warns, "{currency:?}");
            if let Some(i) = issue {
                assert_eq!(i.level, IssueLevel::Warning);
                assert!(i.message.contains(currency), "{}", i.message);
            }
            assert_eq!(rs[0].amount, Some(dec("10")), "{currency:?}");
        }
    }

    #[test]
    fn long_files_stream_and_keep_every_row() {
        // Longer than the 4 KB sniffing sample, with a quoted semicolon-free comma memo.
        let mut csv = String::from("Transaction ID;Name;Amount;Memo\n");
        for i in 0..500 {
            csv.push_str(&format!("t{i};Donor {i};{}.00;\"a, b\"\n", i % 7 + 1));
        }
        let rs = read(csv.as_bytes());
        assert_eq!(rs.len(), 500);
        assert_eq!(rs[499].payment_ref.as_deref(), Some("t499"));
        assert_eq!(rs[499].provenance.line, Some(501));
        assert_eq!(rs[499].memo.as_deref(), Some("a, b"));
    }
}
