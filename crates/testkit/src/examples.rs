//! The committed `examples/` files: a small deposit (FoM report layout with a text layer) and an
//! online-gifts CSV export. `make examples` rewrites them from here; a test checks they match.

use std::io;
use std::path::Path;

pub const DEPOSIT_PDF: &str = "deposit.pdf";
pub const GIFTS_CSV: &str = "online-gifts.csv";

/// The deposit's pages, as lines of text: a two-page report (entry 4 runs over the page
/// break) and a deposit slip.
pub fn deposit_pages() -> Vec<Vec<String>> {
    let page1 = [
        "Deposit Report: 03/14/2026",
        "Below is a list of deposits totaling $2,810.00:",
        "",
        "1. St. John Lutheran Church",
        "   1200 Oak Avenue",
        "   Philadelphia, PA 19103",
        "   $2,000.00 on 03/02/2026",
        "   Check No. 004512",
        "   Memo: Clean water project",
        "",
        "2. Margaret O'Brien",
        "   45 Harbor View Rd",
        "   Boston, MA 02134",
        "   $250.00 on 03/05/2026",
        "   Check No. 1187",
        "",
        "3. John & Jane Smith",
        "   PO Box 77",
        "   Troy, NY 12180-0077",
        "   $500.00 on 03/06/2026",
        "   Check No. 3021",
        "   Memo: In memory of Ruth Smith",
        "",
        "4. Robert McDonald",
        "   Acme Widgets LLC",
    ];
    let page2 = [
        "   9 Elm Street",
        "   Hartford, CT 06103",
        "   $35.00 on 03/09/2026",
        "   Check No. 0456",
        "",
        "5. Ana Pe\u{f1}a",
        "   310 W 5th St",
        "   Austin, TX 78701",
        "   $25.00 on 03/10/2026",
        "   Online Donation",
        "",
        "Total Deposits: $2,810.00",
    ];
    // The bank deposit slip, typed in capitals: two checks repeat report entries (they merge),
    // one is new.
    let page3 = [
        "DEPOSIT SLIP - CHECKS",
        "004512  ST. JOHN LUTHERAN CHURCH  $2,000.00  03/02/2026",
        "1187  MARGARET O'BRIEN  $250.00",
        "2210  THOMAS MCDONALD  $40.00  03/12/2026",
    ];
    [&page1[..], &page2[..], &page3[..]]
        .iter()
        .map(|p| p.iter().map(|s| s.to_string()).collect())
        .collect()
}

/// An online-gifts export: two same-amount gifts from one donor keep their own ids.
pub fn gifts_csv() -> &'static str {
    "Transaction ID,Date,First Name,Last Name,Email,Amount,Address,City,State,Zip,Memo\n\
     ch_3QxA1,2026-03-03 09:14:00,Grace,Kim,grace.kim@example.org,$25.00,18 Birch Lane,Madison,WI,53703,Monthly gift\n\
     ch_3QxB7,2026-03-03 11:02:00,Grace,Kim,grace.kim@example.org,$25.00,18 Birch Lane,Madison,WI,53703,Monthly gift\n\
     ch_3QxC2,2026-03-07 18:40:00,Daniel,Okafor,dokafor@example.org,\"$1,000.00\",77 Lake Shore Dr,Chicago,IL,60611,School fees\n\
     ch_3QxD9,2026-03-11 07:55:00,Emily,Chen,,$100.00,5 Main St,Portland,ME,04101,\n"
}

/// Writes both example files into `dir`.
pub fn write_examples(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    fom_core::pdf::synth::write_text_pdf(&dir.join(DEPOSIT_PDF), &deposit_pages())?;
    std::fs::write(dir.join(GIFTS_CSV), gifts_csv())
}
