//! One statements run: the period's sales receipts read from QuickBooks page by page and
//! grouped by customer (a few dozen bytes a gift), then one letter per donor, written one at a
//! time into three files on local disk: the print file (every letter, page after page), a ZIP
//! of one PDF per donor, and a CSV summary. The files then go to the upload store.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::letter::{self, Donor, Gift, Words};
use super::pdf::{letter_pdf, Fonts, PdfError, StreamingPdf};
use super::settings::StatementSettings;
use crate::qbo::client::QboClient;
use crate::qbo::entities::{Customer, PaymentMethod, SalesReceipt};
use crate::qbo::query::{next_start, Query};
use crate::qbo::QboError;

/// A single gift of at least this much needs a written acknowledgement (IRS).
pub const LARGE_GIFT: Decimal = Decimal::from_parts(250, 0, 0, false, 0);

/// Customers read from QuickBooks per query while writing (an `Id IN (…)` list).
pub const CUSTOMERS_PER_QUERY: usize = 100;

/// Receipts per query: a page of QuickBooks' largest (1,000) is about 10 MB as parsed JSON,
/// more than everything else a run holds; 200 keeps it near 2 MB for a request every 200 gifts.
pub const RECEIPTS_PER_PAGE: u32 = 200;

/// What the treasurer asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunParams {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Only donors with at least one single gift of $250 or more.
    #[serde(default)]
    pub only_large: bool,
}

impl RunParams {
    /// Last calendar year, for everyone: what most treasurers send in January.
    pub fn last_year(today: NaiveDate) -> Self {
        let year = today.year() - 1;
        Self {
            from: NaiveDate::from_ymd_opt(year, 1, 1).unwrap_or(today),
            to: NaiveDate::from_ymd_opt(year, 12, 31).unwrap_or(today),
            only_large: false,
        }
    }

    /// `2026`, or `2026-01-01-to-2026-06-30`: the files' names.
    pub fn label(&self) -> String {
        let whole_year = self.from.month() == 1
            && self.from.day() == 1
            && self.to.month() == 12
            && self.to.day() == 31
            && self.from.year() == self.to.year();
        if whole_year {
            self.from.year().to_string()
        } else {
            format!("{}-to-{}", self.from, self.to)
        }
    }
}

/// One donor's gifts in the period.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DonorGifts {
    /// The name the receipts carry (the customer's display name when they were made).
    pub name: String,
    pub gifts: Vec<Gift>,
}

impl DonorGifts {
    pub fn total(&self) -> Decimal {
        self.gifts.iter().map(|g| g.amount).sum()
    }

    pub fn largest(&self) -> Decimal {
        self.gifts
            .iter()
            .map(|g| g.amount)
            .max()
            .unwrap_or_default()
    }
}

/// The period's gifts by customer id.
#[derive(Debug, Default)]
pub struct Gathered {
    pub donors: BTreeMap<String, DonorGifts>,
    pub receipts: usize,
    /// Receipts of customers marked as not donors.
    pub excluded_receipts: usize,
    /// Receipts with no customer or no positive amount (voided ones are zero).
    pub skipped_receipts: usize,
}

/// Reads the period's sales receipts, [`RECEIPTS_PER_PAGE`] at a time, and groups them by
/// customer.
/// `on_page` hears the receipts read so far.
pub async fn gather(
    client: &QboClient,
    params: &RunParams,
    excluded: &BTreeMap<String, String>,
    mut on_page: impl FnMut(usize),
) -> Result<Gathered, QboError> {
    let methods: HashMap<String, String> = client
        .query_all::<PaymentMethod>(&Query::select("PaymentMethod"))
        .await?
        .into_iter()
        .filter_map(|m| Some((m.id?, m.name)))
        .collect();
    let q = Query::select("SalesReceipt")
        .between("TxnDate", &params.from.to_string(), &params.to.to_string())?
        .order_by("TxnDate", false)?;
    let mut out = Gathered::default();
    // A receipt entered while the pages are read can shift one into the next page.
    let mut seen: HashSet<String> = HashSet::new();
    let mut start = 1;
    loop {
        let page: Vec<SalesReceipt> = client.query_page(&q, start, RECEIPTS_PER_PAGE).await?;
        let n = page.len();
        for r in page {
            if let Some(id) = &r.id {
                if !seen.insert(id.clone()) {
                    continue;
                }
            }
            add(&mut out, r, params, excluded, &methods);
        }
        on_page(out.receipts);
        match next_start(start, RECEIPTS_PER_PAGE, n) {
            Some(next) => start = next,
            None => break,
        }
    }
    Ok(out)
}

fn add(
    out: &mut Gathered,
    r: SalesReceipt,
    params: &RunParams,
    excluded: &BTreeMap<String, String>,
    methods: &HashMap<String, String>,
) {
    out.receipts += 1;
    let date = r
        .txn_date
        .as_deref()
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
    let (Some(customer), Some(amount), Some(date)) = (r.customer_ref, r.total_amt, date) else {
        out.skipped_receipts += 1;
        return;
    };
    if amount <= Decimal::ZERO || date < params.from || date > params.to {
        out.skipped_receipts += 1;
        return;
    }
    if excluded.contains_key(&customer.value) {
        out.excluded_receipts += 1;
        return;
    }
    let method = r
        .payment_method_ref
        .and_then(|m| m.name.or_else(|| methods.get(&m.value).cloned()))
        .unwrap_or_default();
    let donor = out.donors.entry(customer.value).or_default();
    if donor.name.is_empty() {
        donor.name = customer.name.unwrap_or_default();
    }
    donor.gifts.push(Gift {
        date,
        amount,
        reference: r.payment_ref_num.unwrap_or_default(),
        method,
    });
}

/// A donor as the summary and the page list them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DonorLine {
    pub customer_id: String,
    pub name: String,
}

/// What a run wrote.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Written {
    pub letters: usize,
    pub pages: usize,
    pub gifts: usize,
    #[serde(with = "rust_decimal::serde::str")]
    pub total: Decimal,
    /// Donors whose QuickBooks customer has no billing address: their letters are written
    /// without one, and they are listed for the treasurer.
    pub no_address: Vec<DonorLine>,
    /// Donors left out because no single gift reached $250 (when only those were asked for).
    pub below_large: usize,
}

/// What every letter of a run shares.
pub struct LetterRun<'a> {
    pub fonts: &'a Fonts,
    pub settings: &'a StatementSettings,
    pub params: &'a RunParams,
    /// The letters' date.
    pub today: NaiveDate,
}

/// The three files being written, on local disk.
pub struct Outputs {
    pdf: StreamingPdf<BufWriter<File>>,
    zip: zip::ZipWriter<BufWriter<File>>,
    csv: csv::Writer<BufWriter<File>>,
    /// File names in the ZIP so far (two donors whose names read the same get `-2`).
    names: HashSet<String>,
    pub written: Written,
}

impl Outputs {
    pub fn create(pdf: &Path, zip: &Path, csv: &Path) -> Result<Self, PdfError> {
        let mut csv = csv::Writer::from_writer(BufWriter::new(File::create(csv)?));
        csv.write_record([
            "Donor",
            "QuickBooks customer id",
            "Gifts",
            "Total",
            "Largest gift",
            "Address",
            "Address missing",
            "Letter file",
        ])
        .map_err(csv_error)?;
        Ok(Self {
            pdf: StreamingPdf::new(BufWriter::new(File::create(pdf)?))?,
            zip: zip::ZipWriter::new(BufWriter::new(File::create(zip)?)),
            csv,
            names: HashSet::new(),
            written: Written::default(),
        })
    }

    /// Writes one donor's letter into all three files.
    pub fn letter(
        &mut self,
        run: &LetterRun<'_>,
        customer_id: &str,
        donor: &DonorGifts,
        customer: Option<&Customer>,
    ) -> Result<(), PdfError> {
        let (fonts, settings) = (run.fonts, run.settings);
        let name = customer
            .and_then(|c| c.display_name.clone())
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| donor.name.clone());
        let greeting = customer.map_or_else(|| name.clone(), |c| greeting_name(c, &name));
        let address = customer.map(address_lines).unwrap_or_default();
        let total = donor.total();
        let words = words(settings, run.params, run.today, &name);
        let pages = letter::layout(
            fonts,
            &words,
            &Donor {
                name: &name,
                greeting_name: &greeting,
                address_lines: &address,
                gifts: &donor.gifts,
                total,
            },
        );
        for page in &pages {
            self.pdf.page(fonts, page)?;
        }
        let title = format!("{}: statement of gifts for {name}", settings.organization);
        let own = letter_pdf(fonts, &pages, &title)?;
        let file_name = self.file_name(&name, customer_id);
        self.zip
            .start_file(
                file_name.as_str(),
                zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Stored),
            )
            .map_err(zip_error)?;
        self.zip.write_all(&own)?;
        let address_text = address.join(", ");
        // Names come from QuickBooks, typed by anyone: no cell may run as a formula.
        self.csv
            .write_record(
                [
                    name.as_str(),
                    customer_id,
                    &donor.gifts.len().to_string(),
                    &total.round_dp(2).to_string(),
                    &donor.largest().round_dp(2).to_string(),
                    &address_text,
                    if address.is_empty() { "yes" } else { "" },
                    &file_name,
                ]
                .map(|c| crate::report::neutralize(c.to_string())),
            )
            .map_err(csv_error)?;
        let w = &mut self.written;
        w.letters += 1;
        w.pages += pages.len();
        w.gifts += donor.gifts.len();
        w.total += total;
        if address.is_empty() {
            w.no_address.push(DonorLine {
                customer_id: customer_id.to_string(),
                name,
            });
        }
        Ok(())
    }

    /// `Margaret O'Brien.pdf`: the donor's name with only characters every file system takes.
    fn file_name(&mut self, name: &str, customer_id: &str) -> String {
        let mut base: String = name
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.' | '\'' | ',' | '&') {
                    c
                } else {
                    '-'
                }
            })
            .collect::<String>()
            .trim_matches(|c: char| c == '.' || c.is_whitespace())
            .chars()
            .take(80)
            .collect();
        if base.is_empty() {
            base = format!("customer-{customer_id}");
        }
        let mut candidate = format!("{base}.pdf");
        let mut n = 2;
        while !self.names.insert(candidate.to_lowercase()) {
            candidate = format!("{base}-{n}.pdf");
            n += 1;
        }
        candidate
    }

    /// Ends the three files.
    pub fn finish(self, fonts: &Fonts, title: &str) -> Result<Written, PdfError> {
        self.pdf.finish(fonts, title)?.flush()?;
        self.zip.finish().map_err(zip_error)?.flush()?;
        self.csv
            .into_inner()
            .map_err(|e| PdfError::Io(std::io::Error::other(e.to_string())))?
            .flush()?;
        Ok(self.written)
    }
}

fn zip_error(e: zip::result::ZipError) -> PdfError {
    PdfError::Io(std::io::Error::other(e.to_string()))
}

fn csv_error(e: csv::Error) -> PdfError {
    PdfError::Io(std::io::Error::other(e.to_string()))
}

/// "Dear Margaret O'Brien": given and family name when QuickBooks has them (a display name
/// may be "O'Brien, Margaret"), else the display name.
fn greeting_name(c: &Customer, display: &str) -> String {
    let given = c.given_name.as_deref().unwrap_or("").trim();
    let family = c.family_name.as_deref().unwrap_or("").trim();
    match (given.is_empty(), family.is_empty()) {
        (false, false) => format!("{given} {family}"),
        _ => display.to_string(),
    }
}

/// The billing address as envelope lines; none without a street line.
fn address_lines(c: &Customer) -> Vec<String> {
    let Some(a) = &c.bill_addr else {
        return Vec::new();
    };
    let clean = |s: &Option<String>| s.as_deref().unwrap_or("").trim().to_string();
    let line1 = clean(&a.line1);
    if line1.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![line1];
    let line2 = clean(&a.line2);
    if !line2.is_empty() {
        lines.push(line2);
    }
    let city = clean(&a.city);
    let state = clean(&a.country_sub_division_code);
    let zip = clean(&a.postal_code);
    let mut last = city;
    if !state.is_empty() {
        if !last.is_empty() {
            last.push_str(", ");
        }
        last.push_str(&state);
    }
    if !zip.is_empty() {
        if !last.is_empty() {
            last.push_str("  ");
        }
        last.push_str(&zip);
    }
    if !last.is_empty() {
        lines.push(last);
    }
    lines
}

/// The settings' words for one donor, placeholders filled.
fn words(s: &StatementSettings, params: &RunParams, today: NaiveDate, donor: &str) -> Words {
    let long = |d: NaiveDate| d.format("%B %-d, %Y").to_string();
    let fill = |t: &str| {
        t.replace("{organization}", s.organization.trim())
            .replace("{ein}", s.ein.trim())
            .replace("{from}", &long(params.from))
            .replace("{to}", &long(params.to))
            .replace("{year}", &params.to.year().to_string())
            .replace("{donor}", donor)
    };
    Words {
        organization: s.organization.trim().to_string(),
        address_lines: s.address_lines(),
        ein: s.ein.trim().to_string(),
        date_line: long(today),
        opening: fill(&s.opening),
        acknowledgement: fill(&s.acknowledgement),
        closing: fill(&s.closing),
        sign_off: "With gratitude,".into(),
        signer_name: s.signer_name.trim().to_string(),
        signer_title: s.signer_title.trim().to_string(),
    }
}

/// Reads the customers of `ids` (at most [`CUSTOMERS_PER_QUERY`]) in one query.
pub async fn customers(
    client: &QboClient,
    ids: &[&str],
) -> Result<HashMap<String, Customer>, QboError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let q = Query::select("Customer").is_in("Id", ids)?;
    Ok(client
        .query_all::<Customer>(&q)
        .await?
        .into_iter()
        .filter_map(|c| Some((c.id.clone()?, c)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_year_is_the_default_period_and_names_the_files() {
        let p = RunParams::last_year(NaiveDate::from_ymd_opt(2027, 1, 10).unwrap_or_default());
        assert_eq!(p.from.to_string(), "2026-01-01");
        assert_eq!(p.to.to_string(), "2026-12-31");
        assert_eq!(p.label(), "2026");
        let half = RunParams {
            to: NaiveDate::from_ymd_opt(2026, 6, 30).unwrap_or_default(),
            ..p
        };
        assert_eq!(half.label(), "2026-01-01-to-2026-06-30");
    }

    #[test]
    fn the_summary_guards_its_cells_and_file_names_stay_distinct() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = |n: &str| dir.path().join(n);
        let mut out = Outputs::create(&p("a.pdf"), &p("a.zip"), &p("a.csv"))
            .unwrap_or_else(|e| panic!("{e}"));
        let fonts = Fonts::load().unwrap_or_else(|e| panic!("{e}"));
        let settings = StatementSettings {
            organization: "Friends of Music".into(),
            ein: "12-3456789".into(),
            signer_name: "Ruth Alvarez".into(),
            ..Default::default()
        };
        let params = RunParams::last_year(NaiveDate::from_ymd_opt(2027, 1, 10).unwrap_or_default());
        let run = LetterRun {
            fonts: &fonts,
            settings: &settings,
            params: &params,
            today: params.to,
        };
        let gift = Gift {
            date: params.from,
            amount: Decimal::new(2500, 2),
            reference: "1001".into(),
            method: String::new(),
        };
        for (id, name) in [("1", "=HYPERLINK(\"x\")"), ("2", "A/B"), ("3", "A-B")] {
            let donor = DonorGifts {
                name: name.into(),
                gifts: vec![gift.clone()],
            };
            out.letter(&run, id, &donor, None)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let written = out.finish(&fonts, "t").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(written.letters, 3);
        assert_eq!(written.no_address.len(), 3);
        let csv = std::fs::read_to_string(p("a.csv")).unwrap_or_default();
        let lines: Vec<&str> = csv.lines().collect();
        assert!(lines[1].starts_with("\"'=HYPERLINK("), "{csv}");
        // "A/B" and "A-B" read the same as file names: the second gets "-2".
        assert!(lines[2].ends_with("A-B.pdf"), "{csv}");
        assert!(lines[3].ends_with("A-B-2.pdf"), "{csv}");
    }

    #[test]
    fn an_address_needs_a_street_line() {
        let mut c = Customer::default();
        assert!(address_lines(&c).is_empty());
        c.bill_addr = Some(crate::qbo::entities::PhysicalAddress {
            line1: Some("12 Elm St".into()),
            city: Some("Boston".into()),
            country_sub_division_code: Some("MA".into()),
            postal_code: Some("02108".into()),
            ..Default::default()
        });
        assert_eq!(address_lines(&c), ["12 Elm St", "Boston, MA  02108"]);
        c.given_name = Some("Margaret".into());
        c.family_name = Some("O'Brien".into());
        assert_eq!(greeting_name(&c, "O'Brien, Margaret"), "Margaret O'Brien");
    }
}
