//! The offline extractor: reads the PDF text layer, with no network and no key.
//!
//! It recognises two layouts:
//! - FoM's deposit report (docs/RULES.md#deposit-report): numbered entries with name, street,
//!   "City, ST ZIP", "$amount on date", "Check No. n" or "Online Donation", and an optional
//!   "Memo:" line; the header's total is checked against the entries.
//! - Simple check-list lines: check number, name, amount, optional date.
//!
//! Parsing is a line-by-line state machine, so an entry that runs over a page break is read as
//! one entry and only one page's text is held at a time.

use std::sync::OnceLock;

use regex::Regex;
use rust_decimal::Decimal;

use super::{DocumentExtraction, ExtractError, Extractor, Outcome};
use crate::donation::{parse_amount, parse_date, Donation, IssueLevel, PaymentMethod, SourceKind};
use crate::pdf::Page;

#[derive(Debug, Clone, Copy, Default)]
pub struct TextExtractor;

impl Extractor for TextExtractor {
    fn name(&self) -> &'static str {
        "text"
    }

    fn needs_images(&self) -> bool {
        false
    }

    fn begin(&self, file: &str) -> Box<dyn DocumentExtraction> {
        Box::new(TextDocument::new(file))
    }
}

struct Patterns {
    report_header: Regex,
    report_total: Regex,
    total_line: Regex,
    entry_start: Regex,
    amount_on: Regex,
    check_no: Regex,
    online: Regex,
    memo: Regex,
    city_line: Regex,
    check_list: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let re = |s: &str| Regex::new(s).unwrap_or_else(|e| unreachable!("bad built-in regex {s}: {e}"));
        Patterns {
            report_header: re(r"(?i)^\**\s*deposit report:?\s*(.*?)\s*\**$"),
            report_total: re(r"(?i)totaling\s+\$\s*([\d,]+(?:\.\d{1,2})?)"),
            total_line: re(r"(?i)^total deposits:?\s*\$\s*([\d,]+(?:\.\d{1,2})?)"),
            entry_start: re(r"^(\d{1,3})\.\s+(\S.*)$"),
            amount_on: re(r"(?i)^\$\s*([\d,]+(?:\.\d{1,2})?)(?:\s+on\s+(\S+))?"),
            check_no: re(r"(?i)^check\s*(?:no\.?|number|#)\s*:?\s*(.*)$"),
            online: re(r"(?i)^online\s+donation\b"),
            memo: re(r"(?i)^memo:\s*(.*)$"),
            city_line: re(r"^(.+?),\s*([A-Za-z]{2})\s+(\d{5})(?:-\d{4})?$"),
            check_list: re(
                r"(?i)^(?:check\s*(?:no\.?|#)?\s*)?#?(\d{3,})\s+(.+?)\s+\$\s?([\d,]+\.\d{2})(?:\s+(\d{1,2}/\d{1,2}/\d{2,4}))?$|^(?:check\s*(?:no\.?|#)?\s*)?#?(\d{3,})\s+(.+?)\s+([\d,]+\.\d{2})(?:\s+(\d{1,2}/\d{1,2}/\d{2,4}))?$",
            ),
        }
    })
}

/// An entry being read: its lines are applied as they arrive.
struct Entry {
    record: Donation,
    /// Street and city seen (lines in between belong to the address block).
    saw_city: bool,
}

struct TextDocument {
    file: String,
    current: Option<Entry>,
    deposit_date: Option<chrono::NaiveDate>,
    stated_total: Option<Decimal>,
    sum: Decimal,
    entries: usize,
    pages_without_text: Vec<u32>,
    /// Pages with a text layer: named in the one message when none of them holds an entry.
    pages_with_text: Vec<u32>,
    /// Numbered blocks with neither an amount nor a check number (headings of a document
    /// that is not a deposit report): left out, and named when the file does hold entries.
    left_out: Vec<(u32, String)>,
    left_out_count: usize,
    /// Records given out so far (entries and check-list lines).
    gifts: usize,
}

/// Left-out blocks named one by one; the rest are counted.
const MAX_NAMED_LEFT_OUT: usize = 20;

impl TextDocument {
    fn new(file: &str) -> Self {
        Self {
            file: file.to_string(),
            current: None,
            deposit_date: None,
            stated_total: None,
            sum: Decimal::ZERO,
            entries: 0,
            pages_without_text: Vec::new(),
            pages_with_text: Vec::new(),
            left_out: Vec::new(),
            left_out_count: 0,
            gifts: 0,
        }
    }

    fn close_entry(&mut self, out: &mut Vec<Outcome>) {
        if let Some(entry) = self.current.take() {
            let mut r = entry.record;
            // A numbered line without an amount or a check number is not a gift: a heading
            // ("1. Introduction") of a document that is not a deposit report.
            if r.amount.is_none() && r.payment_ref.is_none() && !r.has_issue("amount_unreadable") {
                self.left_out_count += 1;
                if self.left_out.len() < MAX_NAMED_LEFT_OUT {
                    let page = r.provenance.pages.first().copied().unwrap_or(0);
                    let name: String = r
                        .payer
                        .aliases
                        .first()
                        .map_or("", |a| a)
                        .chars()
                        .take(60)
                        .collect();
                    self.left_out.push((page, name));
                }
                return;
            }
            if r.deposit_date.is_none() {
                r.deposit_date = self.deposit_date;
            }
            if let Some(a) = r.amount {
                self.sum += a;
            }
            self.entries += 1;
            self.gifts += 1;
            out.push(Outcome::Record(Box::new(r)));
        }
    }

    fn line(&mut self, page: u32, line: &str, out: &mut Vec<Outcome>) {
        let p = patterns();
        let line = line.trim();
        if line.is_empty() {
            return;
        }
        if let Some(c) = p.report_header.captures(line) {
            self.close_entry(out);
            self.deposit_date = c.get(1).and_then(|m| parse_date(m.as_str()).ok());
            return;
        }
        if let Some(c) = p.report_total.captures(line) {
            self.stated_total = c.get(1).and_then(|m| parse_amount(m.as_str()).ok());
            return;
        }
        if let Some(c) = p.total_line.captures(line) {
            self.close_entry(out);
            if self.stated_total.is_none() {
                self.stated_total = c.get(1).and_then(|m| parse_amount(m.as_str()).ok());
            }
            return;
        }
        if let Some(c) = p.entry_start.captures(line) {
            self.close_entry(out);
            let mut r = Donation::new(&self.file);
            r.provenance.pages.push(page);
            r.provenance.kind = SourceKind::DepositList;
            let name = c.get(2).map_or("", |m| m.as_str()).trim().to_string();
            r.payer.aliases.push(name);
            self.current = Some(Entry {
                record: r,
                saw_city: false,
            });
            return;
        }
        if let Some(entry) = self.current.as_mut() {
            apply_entry_line(entry, page, line);
            return;
        }
        if let Some(c) = p.check_list.captures(line) {
            let mut r = check_list_record(&self.file, page, &c);
            r.deposit_date = self.deposit_date;
            self.gifts += 1;
            out.push(Outcome::Record(Box::new(r)));
        }
    }
}

fn apply_entry_line(entry: &mut Entry, page: u32, line: &str) {
    let p = patterns();
    let r = &mut entry.record;
    if !r.provenance.pages.contains(&page) {
        r.provenance.pages.push(page);
    }
    if let Some(c) = p.amount_on.captures(line) {
        let raw = c.get(1).map_or("", |m| m.as_str());
        match parse_amount(raw) {
            Ok(a) => r.amount = Some(a),
            Err(e) => r.issue(
                IssueLevel::Error,
                "amount_unreadable",
                "amount",
                e.to_string(),
            ),
        }
        if let Some(d) = c.get(2) {
            match parse_date(d.as_str()) {
                Ok(d) => r.payment_date = Some(d),
                Err(e) => r.issue(
                    IssueLevel::Warning,
                    "date_unreadable",
                    "payment_date",
                    e.to_string(),
                ),
            }
        }
    } else if let Some(c) = p.check_no.captures(line) {
        let value = c.get(1).map_or("", |m| m.as_str()).trim();
        if p.online.is_match(value) {
            r.payment_method = Some(PaymentMethod::Online);
            r.deposit_method = Some("Online".into());
        } else if !value.is_empty() {
            r.payment_ref = Some(value.to_string());
            r.payment_method
                .get_or_insert(PaymentMethod::HandwrittenCheck);
        }
    } else if p.online.is_match(line) {
        r.payment_method = Some(PaymentMethod::Online);
        r.deposit_method = Some("Online".into());
    } else if let Some(c) = p.memo.captures(line) {
        let memo = c.get(1).map_or("", |m| m.as_str()).trim();
        if !memo.is_empty() {
            r.memo = Some(memo.to_string());
        }
    } else if let Some(c) = p.city_line.captures(line).filter(|_| !entry.saw_city) {
        r.contact.city = c.get(1).map(|m| m.as_str().trim().to_string());
        r.contact.state = c.get(2).map(|m| m.as_str().to_ascii_uppercase());
        r.contact.zip = c.get(3).map(|m| m.as_str().to_string());
        entry.saw_city = true;
    } else if !entry.saw_city {
        // Address block: a street starts with a number, a PO box or "c/o"; any other line
        // under the name is the organisation the person gives for.
        let lower = line.to_ascii_lowercase();
        let street_like = line.chars().next().is_some_and(|c| c.is_ascii_digit())
            || lower.starts_with("po box")
            || lower.starts_with("p.o.")
            || lower.starts_with("c/o");
        if street_like && r.contact.address_line_1.is_none() {
            r.contact.address_line_1 = Some(line.to_string());
        } else if r.payer.organization_name.is_none() && r.contact.address_line_1.is_none() {
            r.payer.organization_name = Some(line.to_string());
        } else if r.contact.address_line_1.is_none() {
            r.contact.address_line_1 = Some(line.to_string());
        } else {
            r.issue(
                IssueLevel::Warning,
                "line_unrecognised",
                "address",
                format!("unrecognised address line {line:?}"),
            );
        }
    } else {
        r.issue(
            IssueLevel::Warning,
            "line_unrecognised",
            "text",
            format!("unrecognised line {line:?}"),
        );
    }
}

fn check_list_record(file: &str, page: u32, c: &regex::Captures<'_>) -> Donation {
    // The pattern has two alternatives (with and without "$"); take whichever matched.
    let g = |a: usize, b: usize| c.get(a).or_else(|| c.get(b)).map(|m| m.as_str());
    let mut r = Donation::new(file);
    r.provenance.pages.push(page);
    r.provenance.kind = SourceKind::DepositList;
    r.payment_ref = g(1, 5).map(str::to_string);
    r.payment_method = Some(PaymentMethod::HandwrittenCheck);
    if let Some(name) = g(2, 6) {
        r.payer.aliases.push(name.trim().to_string());
    }
    match g(3, 7).map(parse_amount) {
        Some(Ok(a)) => r.amount = Some(a),
        Some(Err(e)) => r.issue(
            IssueLevel::Error,
            "amount_unreadable",
            "amount",
            e.to_string(),
        ),
        None => {}
    }
    if let Some(d) = g(4, 8) {
        match parse_date(d) {
            Ok(d) => r.check_date = Some(d),
            Err(e) => r.issue(
                IssueLevel::Warning,
                "date_unreadable",
                "check_date",
                e.to_string(),
            ),
        }
        r.payment_date = r.check_date;
    }
    r
}

impl DocumentExtraction for TextDocument {
    fn push(&mut self, page: &Page) -> Vec<Outcome> {
        let mut out = Vec::new();
        if page.text.trim().is_empty() {
            self.pages_without_text.push(page.number);
            return out;
        }
        self.pages_with_text.push(page.number);
        for line in page.text.lines() {
            self.line(page.number, line, &mut out);
        }
        out
    }

    fn finish(mut self: Box<Self>) -> Vec<Outcome> {
        let mut out = Vec::new();
        self.close_entry(&mut out);
        if let Some(total) = self.stated_total {
            if total != self.sum && self.entries > 0 {
                // Attach to every entry of this report: the treasurer must look at all of them.
                for o in &mut out {
                    if let Outcome::Record(r) = o {
                        r.issue(
                            IssueLevel::Warning,
                            "report_total_mismatch",
                            "amount",
                            format!("the report states a total of ${total} but its entries add up to ${}", self.sum),
                        );
                    }
                }
                tracing::warn!(file = %self.file, "deposit report total does not match its entries");
            }
            // Also for the deposit, which compares it with the rows once merged.
            out.push(Outcome::Total(super::StatedTotal {
                file: self.file.clone(),
                pages: Vec::new(),
                kind: "report".into(),
                amount: Some(total),
                count: None,
            }));
        }
        if self.gifts == 0 && !self.pages_with_text.is_empty() {
            // Text, but nothing that reads as a deposit: one message, not a row per heading.
            let pages = std::mem::take(&mut self.pages_with_text);
            let where_ = ExtractError {
                file: self.file.clone(),
                pages: pages.clone(),
                reason: String::new(),
            }
            .pages_label();
            out.push(Outcome::Error(ExtractError {
                file: self.file.clone(),
                pages,
                reason: format!(
                    "no donations found on {where_}: the offline reader reads FoM deposit \
                     reports and check lists; scans and photos need Gemini (GEMINI_API_KEY)"
                ),
            }));
        } else if self.left_out_count > 0 {
            let named: Vec<String> = self
                .left_out
                .iter()
                .map(|(p, n)| format!("page {p}: \"{n}\""))
                .collect();
            let more = self.left_out_count - self.left_out.len();
            let tail = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            let mut pages: Vec<u32> = self.left_out.iter().map(|(p, _)| *p).collect();
            pages.dedup();
            out.push(Outcome::Error(ExtractError {
                file: self.file.clone(),
                pages,
                reason: format!(
                    "numbered lines with neither an amount nor a check number were left out: \
                     {}{tail}; check them against the paper",
                    named.join(", ")
                ),
            }));
        }
        if !self.pages_without_text.is_empty() {
            out.push(Outcome::Error(ExtractError {
                file: self.file.clone(),
                pages: std::mem::take(&mut self.pages_without_text),
                reason: "no text layer (a scan or photo); the offline text extractor cannot read \
                         it. Set GEMINI_API_KEY to read scans."
                    .into(),
            }));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdf::ImageSource;

    fn page(number: u32, text: &str) -> Page {
        Page {
            number,
            page_count: 2,
            jpeg: Vec::new(),
            width: 0,
            height: 0,
            source: ImageSource::None,
            text: text.to_string(),
        }
    }

    fn records(out: Vec<Outcome>) -> Vec<Donation> {
        out.into_iter()
            .filter_map(|o| match o {
                Outcome::Record(r) => Some(*r),
                _ => None,
            })
            .collect()
    }

    const REPORT: &str = "Deposit Report: 03/14/2026\n\
        Below is a list of deposits totaling $2,125.00:\n\
        1. St. John Lutheran Church\n\
        \x20  123 Main St\n\
        \x20  Philadelphia, PA 19103-1234\n\
        \x20  $2,000.00 on 03/01/2026\n\
        \x20  Check No. 004512\n\
        \x20  Memo: Building fund\n\
        2. Jane Doe\n\
        \x20  Acme Widgets\n\
        \x20  PO Box 77\n\
        \x20  Boston, MA 02134\n";

    #[test]
    fn reads_report_entries_across_a_page_break() {
        let mut doc = TextExtractor.begin("report.pdf");
        let mut out = doc.push(&page(1, REPORT));
        out.extend(doc.push(&page(
            2,
            "   $100.00 on 03/05/2026\n   Online Donation\n3. Bob Roe\n   9 Elm Rd\n   Troy, NY 12180\n   $25.00 on 3/6/26\n   Check No. 1001\nTotal Deposits: $2,125.00\n",
        )));
        out.extend(doc.finish());
        let rs = records(out);
        assert_eq!(rs.len(), 3);
        let church = &rs[0];
        assert_eq!(church.payer.aliases, ["St. John Lutheran Church"]);
        assert_eq!(
            church.contact.address_line_1.as_deref(),
            Some("123 Main St")
        );
        assert_eq!(church.contact.zip.as_deref(), Some("19103"));
        assert_eq!(church.payment_ref.as_deref(), Some("004512"));
        assert_eq!(church.amount, Some("2000.00".parse().unwrap()));
        assert_eq!(church.memo.as_deref(), Some("Building fund"));
        assert_eq!(
            church.deposit_date,
            chrono::NaiveDate::from_ymd_opt(2026, 3, 14)
        );
        let jane = &rs[1];
        assert_eq!(
            jane.payer.organization_name.as_deref(),
            Some("Acme Widgets")
        );
        assert_eq!(jane.contact.address_line_1.as_deref(), Some("PO Box 77"));
        assert_eq!(jane.contact.zip.as_deref(), Some("02134"));
        assert_eq!(jane.payment_method, Some(PaymentMethod::Online));
        assert_eq!(jane.provenance.pages, [1, 2]);
        assert_eq!(
            rs[2].payment_date,
            chrono::NaiveDate::from_ymd_opt(2026, 3, 6)
        );
        assert!(rs.iter().all(|r| r.issues.is_empty()), "{:?}", rs[0].issues);
    }

    #[test]
    fn warns_when_the_stated_total_disagrees() {
        let mut doc = TextExtractor.begin("r.pdf");
        let mut out = doc.push(&page(
            1,
            "Deposit Report: 03/14/2026\nBelow is a list of deposits totaling $50.00:\n1. A B\n   $20.00 on 03/01/2026\n   Check No. 1\n",
        ));
        out.extend(doc.finish());
        let rs = records(out);
        assert_eq!(rs.len(), 1);
        assert!(rs[0].issues.iter().any(|i| i.message.contains("$50.00")));
    }

    #[test]
    fn reads_check_list_lines_and_reports_pages_without_text() {
        let mut doc = TextExtractor.begin("list.pdf");
        let mut out = doc.push(&page(
            1,
            "Checks received\n1234  John Smith  $100.00  01/05/2026\n#0567 Mary O'Brien 1,250.00\nnot a check line\n",
        ));
        out.extend(doc.push(&page(2, "  \n")));
        out.extend(doc.finish());
        let errors: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                Outcome::Error(e) => Some(e.clone()),
                _ => None,
            })
            .collect();
        let rs = records(out);
        assert_eq!(rs.len(), 2);
        assert_eq!(rs[0].payment_ref.as_deref(), Some("1234"));
        assert_eq!(rs[0].payer.aliases, ["John Smith"]);
        assert_eq!(
            rs[0].check_date,
            chrono::NaiveDate::from_ymd_opt(2026, 1, 5)
        );
        assert_eq!(rs[1].payment_ref.as_deref(), Some("0567"));
        assert_eq!(rs[1].amount, Some("1250.00".parse().unwrap()));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].pages, [2]);
    }

    #[test]
    fn an_entry_without_amount_is_kept_with_an_error() {
        let mut doc = TextExtractor.begin("r.pdf");
        let mut out = doc.push(&page(1, "1. Nobody\n   1 Road\n   Check No. 9\n"));
        out.extend(doc.finish());
        let rs = records(out);
        assert_eq!(rs.len(), 1);
        assert!(rs[0].amount.is_none());
        assert_eq!(rs[0].payment_ref.as_deref(), Some("9"));
    }
}
