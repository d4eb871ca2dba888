//! Writes a content-bomb PDF for memory measurements (docs/PERFORMANCE.md):
//! `cargo run -p fom-testkit --example content-bomb -- OUT.pdf PAGES BOMB_PAGE INFLATED_MB`.
//! Every page but BOMB_PAGE holds one check line; BOMB_PAGE inflates into INFLATED_MB MB of
//! drawing operators.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out, pages, bomb, mb] = args.as_slice() else {
        eprintln!("usage: content-bomb OUT.pdf PAGES BOMB_PAGE INFLATED_MB");
        return ExitCode::from(2);
    };
    let (Ok(pages), Ok(bomb), Ok(mb)) = (pages.parse::<usize>(), bomb.parse(), mb.parse()) else {
        eprintln!("PAGES, BOMB_PAGE and INFLATED_MB are whole numbers");
        return ExitCode::from(2);
    };
    let lines = fom_testkit::fixtures::one_check_per_page(pages);
    match fom_testkit::fixtures::write_content_bomb_pdf(out.as_ref(), &lines, bomb, mb) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("content-bomb: {e}");
            ExitCode::FAILURE
        }
    }
}
