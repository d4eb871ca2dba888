//! Writes an image-bomb PDF for memory measurements (docs/PERFORMANCE.md):
//! `cargo run -p fom-testkit --example image-bomb -- OUT.pdf PAGES BOMB_PAGE WIDTH HEIGHT
//! INFLATED_MB [form]`. Every page holds one check line; BOMB_PAGE also draws a Flate gray
//! image declaring WIDTH x HEIGHT pixels, of which INFLATED_MB MB are stored (through a form
//! XObject with `form`).

use std::process::ExitCode;

use fom_testkit::fixtures::{one_check_per_page, write_image_bomb_pdf, ImageBomb};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (out, numbers, in_form) = match args.as_slice() {
        [out, rest @ ..] if rest.len() == 5 => (out, rest, false),
        [out, rest @ .., flag] if rest.len() == 5 && flag == "form" => (out, rest, true),
        _ => {
            eprintln!("usage: image-bomb OUT.pdf PAGES BOMB_PAGE WIDTH HEIGHT INFLATED_MB [form]");
            return ExitCode::from(2);
        }
    };
    let Ok(n) = numbers
        .iter()
        .map(|v| v.parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
    else {
        eprintln!("PAGES, BOMB_PAGE, WIDTH, HEIGHT and INFLATED_MB are whole numbers");
        return ExitCode::from(2);
    };
    let (Ok(width), Ok(height)) = (u32::try_from(n[2]), u32::try_from(n[3])) else {
        eprintln!("WIDTH and HEIGHT are at most 4294967295");
        return ExitCode::from(2);
    };
    let bomb = ImageBomb {
        page: n[1],
        width,
        height,
        inflated_mb: n[4],
        in_form,
        compact: false,
    };
    match write_image_bomb_pdf(out.as_ref(), &one_check_per_page(n[0]), &bomb) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("image-bomb: {e}");
            ExitCode::FAILURE
        }
    }
}
