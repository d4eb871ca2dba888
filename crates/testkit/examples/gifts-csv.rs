//! Writes an online-gift CSV export for memory measurements (docs/PERFORMANCE.md):
//! `cargo run -p fom-testkit --example gifts-csv -- OUT.csv ROWS`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out, rows] = args.as_slice() else {
        eprintln!("usage: gifts-csv OUT.csv ROWS");
        return ExitCode::from(2);
    };
    let Ok(rows) = rows.parse::<usize>() else {
        eprintln!("ROWS is a whole number");
        return ExitCode::from(2);
    };
    match fom_testkit::fixtures::write_gifts_csv(out.as_ref(), rows) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gifts-csv: {e}");
            ExitCode::FAILURE
        }
    }
}
