//! The statements' letters read back by real pdfium: a donor's own PDF and the print file of
//! every letter extract back to the names, gifts and totals written, long lists continue on
//! further pages, and the first letter is rendered to a PNG to look at
//! (`target/test-output/statements/letter.png`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::BufWriter;
use std::path::Path;

use chrono::NaiveDate;
use fom_core::pdf::{Page, PdfConfig, PdfPages};
use fom_core::statements::letter::{dollars, layout, Donor, Gift, Words};
use fom_core::statements::pdf::{letter_pdf, Fonts, StreamingPdf};
use rust_decimal::Decimal;

fn words() -> Words {
    Words {
        organization: "Friends of Music".into(),
        address_lines: vec!["1200 Oak Avenue".into(), "Philadelphia, PA 19103".into()],
        ein: "12-3456789".into(),
        date_line: "January 15, 2027".into(),
        opening: "Thank you for your generous support of Friends of Music. This letter lists \
                  the gifts we received from you between January 1, 2026 and December 31, 2026."
            .into(),
        acknowledgement: "Friends of Music is a tax-exempt organization under section 501(c)(3) \
                          of the Internal Revenue Code (EIN 12-3456789). No goods or services \
                          were provided in exchange for these contributions."
            .into(),
        closing: "We are grateful for your support.".into(),
        sign_off: "With gratitude,".into(),
        signer_name: "Ruth Alvarez".into(),
        signer_title: "Treasurer".into(),
    }
}

fn gifts(n: usize) -> Vec<Gift> {
    (0..n)
        .map(|i| Gift {
            date: NaiveDate::from_ymd_opt(2026, 1 + (i % 12) as u32, 1 + (i % 28) as u32).unwrap(),
            amount: Decimal::new(2_500 + i as i64 * 137, 2),
            reference: format!("{}", 1000 + i),
            method: "Check".into(),
        })
        .collect()
}

fn read(path: &Path, images: bool) -> Vec<Page> {
    PdfPages::open(
        path,
        &PdfConfig {
            images,
            ..PdfConfig::default()
        },
    )
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[test]
fn a_letter_extracts_back_to_its_donor_gifts_and_total() {
    let fonts = Fonts::load().unwrap();
    let gifts = gifts(3);
    let total: Decimal = gifts.iter().map(|g| g.amount).sum();
    let address = vec!["12 Elm St".to_string(), "Boston, MA  02108".to_string()];
    let pages = layout(
        &fonts,
        &words(),
        &Donor {
            name: "Margaret O'Brien",
            greeting_name: "Margaret O'Brien",
            address_lines: &address,
            gifts: &gifts,
            total,
        },
    );
    assert_eq!(pages.len(), 1);
    let bytes = letter_pdf(&fonts, &pages, "Statement").unwrap();
    // Subset fonts: a letter is tens of KB, not the fonts' 700 KB.
    assert!(bytes.len() < 60_000, "{} bytes", bytes.len());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("letter.pdf");
    std::fs::write(&path, &bytes).unwrap();

    let read = read(&path, true);
    assert_eq!(read.len(), 1);
    let text = &read[0].text;
    for expected in [
        "Friends of Music",
        "EIN 12-3456789",
        "Margaret O'Brien",
        "12 Elm St",
        "Dear Margaret O'Brien,",
        "01/01/2026",
        "1001",
        "$26.37",
        "Total of 3 gifts",
        &dollars(total),
        "No goods or services",
        "Ruth Alvarez",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    assert_eq!(dollars(total), "$79.11");

    // The letter as a picture, for people to look at.
    let out = fom_testkit::repo_root().join("target/test-output/statements");
    std::fs::create_dir_all(&out).unwrap();
    let img = image::load_from_memory(&read[0].jpeg).unwrap();
    img.save(out.join("letter.png")).unwrap();
}

#[test]
fn the_print_file_holds_every_letter_and_long_lists_continue() {
    let fonts = Fonts::load().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all.pdf");
    let mut pdf = StreamingPdf::new(BufWriter::new(std::fs::File::create(&path).unwrap())).unwrap();
    let names = ["Ana Peña", "Daniel Okafor", "Grace Kim"];
    let counts = [2, 60, 1];
    for (name, n) in names.iter().zip(counts) {
        let g = gifts(n);
        let total: Decimal = g.iter().map(|g| g.amount).sum();
        for page in layout(
            &fonts,
            &words(),
            &Donor {
                name,
                greeting_name: name,
                address_lines: &[],
                gifts: &g,
                total,
            },
        ) {
            pdf.page(&fonts, &page).unwrap();
        }
    }
    let pages_written = pdf.pages();
    pdf.finish(&fonts, "All").unwrap();

    let read = read(&path, false);
    assert_eq!(read.len(), pages_written);
    // 60 gifts do not fit one page: the letter continues, saying whose it is.
    assert!(read.len() >= 4, "{} pages", read.len());
    let all: String = read
        .iter()
        .map(|p| p.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    for name in names {
        assert!(all.contains(&format!("Dear {name},")), "{name}");
    }
    assert!(all.contains("statement for Daniel Okafor, continued (page 2)"));
    let sixty: Decimal = gifts(60).iter().map(|g| g.amount).sum();
    assert!(all.contains("Total of 60 gifts"), "{all}");
    assert!(all.contains(&dollars(sixty)), "{all}");
    assert!(all.contains("1059"), "the last gift is listed");
}

#[test]
fn amounts_read_as_dollars() {
    assert_eq!(dollars(Decimal::new(123_450, 2)), "$1,234.50");
    assert_eq!(dollars(Decimal::new(5, 0)), "$5.00");
    assert_eq!(dollars(Decimal::new(100_000_000, 2)), "$1,000,000.00");
}
