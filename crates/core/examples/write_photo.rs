//! Writes a large check-like test photo row by row (`fom_core::photo::synth`), for measuring
//! the photo path (docs/PERFORMANCE.md, "Photos"):
//!
//! ```sh
//! cargo run --release -p fom-core --example write_photo -- /tmp/big.png 6000 6600
//! cargo run --release -p fom-core --example write_photo -- /tmp/big.jpg 6000 6600 6
//! ```
//!
//! A `.png` path writes a PNG, anything else a baseline JPEG (quality 85); the optional last
//! argument is an EXIF orientation (1-8) for the JPEG, whose stored pixels are then turned so
//! that the photo shows upright once the orientation is applied.

use std::path::PathBuf;

use fom_core::photo::synth::{check_pattern, stored_pixels, write_jpeg, write_png};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, w, h, rest @ ..] = args.as_slice() else {
        return Err("usage: write_photo OUT.png|OUT.jpg WIDTH HEIGHT [EXIF_ORIENTATION]".into());
    };
    let path = PathBuf::from(path);
    let (w, h): (u32, u32) = (w.parse()?, h.parse()?);
    let orientation: Option<u16> = rest.first().map(|o| o.parse()).transpose()?;
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"))
    {
        write_png(&path, w, h, check_pattern(w, h))?;
    } else {
        let o = orientation.unwrap_or(1);
        let (dw, dh) = if o >= 5 { (h, w) } else { (w, h) };
        let pixel = stored_pixels(o, w, h, check_pattern(dw, dh));
        write_jpeg(
            &path,
            u16::try_from(w)?,
            u16::try_from(h)?,
            85,
            orientation,
            pixel,
        )?;
    }
    println!(
        "{}: {} bytes",
        path.display(),
        std::fs::metadata(&path)?.len()
    );
    Ok(())
}
