//! One donor's statement laid out as pages: the letterhead, the date, the donor's name and
//! address, the greeting and opening, a table of the gifts with their total, the
//! acknowledgement IRS Publication 1771 asks for, the closing and the signature. A long list
//! of gifts continues on further pages, each saying whose letter it continues.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::pdf::{Fonts, Page, Run, Weight, PAGE_HEIGHT, PAGE_WIDTH};

const MARGIN: f32 = 72.0;
const TOP: f32 = PAGE_HEIGHT - 60.0;
const BOTTOM: f32 = 64.0;
const BODY: f32 = 11.0;
const LEADING: f32 = 15.0;
const TABLE: f32 = 10.0;
const ROW: f32 = 14.0;

/// One gift as the letter lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gift {
    pub date: NaiveDate,
    pub amount: Decimal,
    /// The check number or the online payment's reference, when QuickBooks has one.
    pub reference: String,
    /// How it was paid (QuickBooks' payment method), when known.
    pub method: String,
}

/// The organisation's words, from the statements settings, with the placeholders filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Words {
    pub organization: String,
    pub address_lines: Vec<String>,
    pub ein: String,
    pub date_line: String,
    pub opening: String,
    pub acknowledgement: String,
    pub closing: String,
    pub sign_off: String,
    pub signer_name: String,
    pub signer_title: String,
}

/// Whom the letter is to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Donor<'a> {
    pub name: &'a str,
    pub greeting_name: &'a str,
    pub address_lines: &'a [String],
    pub gifts: &'a [Gift],
    pub total: Decimal,
}

/// `1234.5` as `$1,234.50`.
pub fn dollars(amount: Decimal) -> String {
    let text = crate::donation::format_amount(amount);
    match text.strip_prefix('-') {
        Some(positive) => format!("-${positive}"),
        None => format!("${text}"),
    }
}

/// Lines of at most `width` points: words kept whole (a word longer than the line is cut).
pub fn wrap(fonts: &Fonts, weight: Weight, size: f32, text: &str, width: f32) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph_line in text.lines() {
        let mut line = String::new();
        for word in paragraph_line.split_whitespace() {
            let candidate = if line.is_empty() {
                word.to_string()
            } else {
                format!("{line} {word}")
            };
            if fonts.width(weight, &candidate, size) <= width || line.is_empty() {
                line = candidate;
            } else {
                lines.push(std::mem::take(&mut line));
                line = word.to_string();
            }
        }
        lines.push(line);
    }
    lines
}

/// Places runs top to bottom, starting a new page (with a line saying whose letter it
/// continues) when the next block would pass the bottom margin.
struct Writer<'f> {
    fonts: &'f Fonts,
    pages: Vec<Page>,
    page: Page,
    y: f32,
    continued: String,
}

impl Writer<'_> {
    fn text(&mut self, x: f32, size: f32, weight: Weight, text: &str) {
        self.page.runs.push(Run {
            x,
            y: self.y,
            size,
            weight,
            text: text.to_string(),
        });
    }

    fn right(&mut self, right_edge: f32, size: f32, weight: Weight, text: &str) {
        let w = self.fonts.width(weight, text, size);
        self.text(right_edge - w, size, weight, text);
    }

    /// Room for `height` more points, else a new page.
    fn need(&mut self, height: f32) {
        if self.y - height >= BOTTOM {
            return;
        }
        self.pages.push(std::mem::take(&mut self.page));
        self.y = TOP;
        let line = format!("{} (page {})", self.continued, self.pages.len() + 1);
        self.text(MARGIN, 9.0, Weight::Regular, &line);
        self.y -= LEADING * 2.0;
    }

    fn paragraph(&mut self, text: &str) {
        let lines = wrap(
            self.fonts,
            Weight::Regular,
            BODY,
            text,
            PAGE_WIDTH - 2.0 * MARGIN,
        );
        for line in lines {
            self.need(LEADING);
            self.text(MARGIN, BODY, Weight::Regular, &line);
            self.y -= LEADING;
        }
        self.y -= LEADING * 0.5;
    }
}

/// The pages of one donor's letter.
pub fn layout(fonts: &Fonts, words: &Words, donor: &Donor<'_>) -> Vec<Page> {
    let mut w = Writer {
        fonts,
        pages: Vec::new(),
        page: Page::default(),
        y: TOP,
        continued: format!(
            "{}: statement for {}, continued",
            words.organization, donor.name
        ),
    };
    let right = PAGE_WIDTH - MARGIN;

    // Letterhead.
    w.text(MARGIN, 16.0, Weight::Bold, &words.organization);
    w.y -= 16.0;
    for line in &words.address_lines {
        w.text(MARGIN, 9.5, Weight::Regular, line);
        w.y -= 12.0;
    }
    if !words.ein.is_empty() {
        w.text(MARGIN, 9.5, Weight::Regular, &format!("EIN {}", words.ein));
        w.y -= 12.0;
    }
    w.page.rules.push((MARGIN, right, w.y + 4.0));
    w.y -= 24.0;

    w.right(right, BODY, Weight::Regular, &words.date_line);
    w.y -= LEADING * 2.0;

    // The donor's name and address, where a window envelope shows them.
    w.text(MARGIN, BODY, Weight::Regular, donor.name);
    w.y -= LEADING;
    for line in donor.address_lines {
        w.text(MARGIN, BODY, Weight::Regular, line);
        w.y -= LEADING;
    }
    w.y -= LEADING * 1.5;

    w.text(
        MARGIN,
        BODY,
        Weight::Regular,
        &format!("Dear {},", donor.greeting_name),
    );
    w.y -= LEADING * 1.5;
    w.paragraph(&words.opening);

    // The gifts.
    let cols = [MARGIN, MARGIN + 95.0, MARGIN + 215.0];
    let header = |w: &mut Writer<'_>| {
        w.need(ROW * 3.0);
        w.text(cols[0], TABLE, Weight::Bold, "Date");
        w.text(cols[1], TABLE, Weight::Bold, "Paid by");
        w.text(cols[2], TABLE, Weight::Bold, "Reference");
        w.right(right, TABLE, Weight::Bold, "Amount");
        w.page.rules.push((MARGIN, right, w.y - 4.0));
        w.y -= ROW + 2.0;
    };
    header(&mut w);
    for gift in donor.gifts {
        let before = w.pages.len();
        w.need(ROW);
        if w.pages.len() != before {
            header(&mut w);
        }
        w.text(
            cols[0],
            TABLE,
            Weight::Regular,
            &gift.date.format("%m/%d/%Y").to_string(),
        );
        w.text(cols[1], TABLE, Weight::Regular, &gift.method);
        w.text(cols[2], TABLE, Weight::Regular, &gift.reference);
        w.right(right, TABLE, Weight::Regular, &dollars(gift.amount));
        w.y -= ROW;
    }
    w.need(ROW * 2.0);
    w.page.rules.push((MARGIN, right, w.y + ROW - 4.0));
    let count = donor.gifts.len();
    let label = format!("Total of {count} gift{}", if count == 1 { "" } else { "s" });
    w.text(cols[0], TABLE, Weight::Bold, &label);
    w.right(right, TABLE, Weight::Bold, &dollars(donor.total));
    w.y -= ROW * 2.0;

    w.paragraph(&words.acknowledgement);
    w.paragraph(&words.closing);

    w.need(LEADING * 5.0);
    w.y -= LEADING * 0.5;
    w.text(MARGIN, BODY, Weight::Regular, &words.sign_off);
    w.y -= LEADING * 3.0;
    w.text(MARGIN, BODY, Weight::Regular, &words.signer_name);
    w.y -= LEADING;
    if !words.signer_title.is_empty() {
        w.text(MARGIN, BODY, Weight::Regular, &words.signer_title);
        w.y -= LEADING;
    }
    w.text(MARGIN, BODY, Weight::Regular, &words.organization);
    w.pages.push(w.page);
    w.pages
}
