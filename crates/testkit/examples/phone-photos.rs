//! Writes `N` generated 12-megapixel phone photos of checks (4000 x 3000 JPEG, about 3 MB each,
//! every third one stored sideways with EXIF orientation 6; five distinct, the rest copies)
//! into `DIR`, for measuring uploads
//! (docs/PERFORMANCE.md, "Photos on a 25 MB Redis"):
//!
//! ```sh
//! cargo run --release -p fom-testkit --example phone-photos -- /tmp/photos 20
//! ```

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, n] = args.as_slice() else {
        return Err("usage: phone-photos DIR N".into());
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    for path in fom_testkit::fixtures::write_phone_photos(&dir, n.parse()?)? {
        println!("{}\t{}", path.display(), std::fs::metadata(&path)?.len());
    }
    Ok(())
}
