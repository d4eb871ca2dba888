//! Fixture files for tests: each function writes one file and returns nothing but errors.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use fom_core::pdf::synth::{PdfWriter, LETTER};
use md5::{Digest, Md5};
use rc4::consts::U5;
use rc4::{KeyInit, Rc4, StreamCipher};

pub use fom_core::pdf::synth::{write_scan_pdf, write_text_pdf, ScanOptions};

/// The padding string of the PDF standard security handler (ISO 32000-1, 7.6.3.3).
const PAD: [u8; 32] = [
    0x28, 0xBF, 0x4E, 0x5E, 0x4E, 0x75, 0x8A, 0x41, 0x64, 0x00, 0x4E, 0x56, 0xFF, 0xFA, 0x01, 0x08,
    0x2E, 0x2E, 0x00, 0xB6, 0xD0, 0x68, 0x3E, 0x80, 0x2F, 0x0C, 0xA9, 0xFE, 0x64, 0x53, 0x69, 0x7A,
];

fn padded(password: &[u8]) -> [u8; 32] {
    let mut out = PAD;
    let n = password.len().min(32);
    out[..n].copy_from_slice(&password[..n]);
    out[n..].copy_from_slice(&PAD[..32 - n]);
    out
}

fn rc4(key: &[u8; 5], data: &mut [u8]) {
    let mut cipher = Rc4::<U5>::new(key.into());
    cipher.apply_keystream(data);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// A one-page PDF protected by a user password (40-bit RC4, revision 2): it cannot be opened
/// without the password.
pub fn write_encrypted_pdf(path: &Path, user_password: &str) -> io::Result<()> {
    let owner = format!("{user_password}-owner");
    let id = [0x5Au8; 16];
    let permissions: i32 = -44;
    let owner_key: [u8; 5] = first5(&Md5::digest(padded(owner.as_bytes())));
    let mut o = padded(user_password.as_bytes());
    rc4(&owner_key, &mut o);
    let mut h = Md5::new();
    h.update(padded(user_password.as_bytes()));
    h.update(o);
    h.update(permissions.to_le_bytes());
    h.update(id);
    let key = first5(&h.finalize());
    let mut u = PAD;
    rc4(&key, &mut u);

    let mut w = PdfWriter::new(BufWriter::new(File::create(path)?), 5)?;
    w.object(1, "<< /Type /Catalog /Pages 2 0 R >>", None)?;
    w.object(2, "<< /Type /Pages /Kids [3 0 R] /Count 1 >>", None)?;
    w.object(
        3,
        &format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {} {}] /Contents 4 0 R >>",
            LETTER.0, LETTER.1
        ),
        None,
    )?;
    w.object(4, "<< /Length 0 >>", Some(b""))?;
    w.object(
        5,
        &format!(
            "<< /Filter /Standard /V 1 /R 2 /O <{}> /U <{}> /P {permissions} >>",
            hex(&o),
            hex(&u)
        ),
        None,
    )?;
    w.finish(1, &format!("/Encrypt 5 0 R /ID [<{0}> <{0}>] ", hex(&id)))?;
    Ok(())
}

fn first5(digest: &[u8]) -> [u8; 5] {
    let mut k = [0u8; 5];
    k.copy_from_slice(&digest[..5]);
    k
}

/// A PDF with a catalog and an empty page tree.
pub fn write_zero_page_pdf(path: &Path) -> io::Result<()> {
    let mut w = PdfWriter::new(BufWriter::new(File::create(path)?), 2)?;
    w.object(1, "<< /Type /Catalog /Pages 2 0 R >>", None)?;
    w.object(2, "<< /Type /Pages /Kids [] /Count 0 >>", None)?;
    w.finish(1, "")?;
    Ok(())
}

/// A file that starts like a PDF and then is garbage (a broken download).
pub fn write_corrupt_pdf(path: &Path) -> io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(b"%PDF-1.7\n")?;
    let mut rng = fastrand::Rng::with_seed(7);
    let junk: Vec<u8> = (0..4096).map(|_| rng.u8(..)).collect();
    f.write_all(&junk)
}

/// A truncated copy of `src` (the first `keep` bytes).
pub fn write_truncated(src: &Path, dst: &Path, keep: usize) -> io::Result<()> {
    let data = std::fs::read(src)?;
    std::fs::write(dst, &data[..keep.min(data.len())])
}

/// `n` pages of one check line each ("1001  Donor Number1  $100.00  01/05/2026", ...), the
/// ordinary pages around a bomb.
pub fn one_check_per_page(n: usize) -> Vec<Vec<String>> {
    (1..=n)
        .map(|i| {
            vec![format!(
                "{}  Donor Number{i}  $100.00  01/05/2026",
                1000 + i
            )]
        })
        .collect()
}

/// A text PDF (like `write_text_pdf`) whose page `bomb_page` (1-based) is a content bomb: a
/// Flate stream that inflates about 1,000:1 into `inflated_mb` MB of path operators, so a small
/// file asks a reader for far more memory than it may use. Compressed as it is written.
pub fn write_content_bomb_pdf(
    path: &Path,
    pages: &[Vec<String>],
    bomb_page: usize,
    inflated_mb: usize,
) -> io::Result<()> {
    write_content_bomb_pdf_as(path, pages, bomb_page, inflated_mb, false)
}

/// [`write_content_bomb_pdf`], in compact form when `compact` ([`PdfWriter::compact`]).
pub fn write_content_bomb_pdf_as(
    path: &Path,
    pages: &[Vec<String>],
    bomb_page: usize,
    inflated_mb: usize,
    compact: bool,
) -> io::Result<()> {
    use flate2::write::ZlibEncoder;
    fom_core::pdf::synth::write_text_pdf_as(path, pages, compact, |i| {
        if i + 1 != bomb_page {
            return Ok(None);
        }
        let mut z = ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        let unit = b"0 0 m 100 100 l S\n".repeat(1000);
        for _ in 0..(inflated_mb * 1024 * 1024 / unit.len()) {
            z.write_all(&unit)?;
        }
        Ok(Some((" /Filter /FlateDecode".into(), z.finish()?)))
    })
}

/// An online-gift export of `rows` gifts (the example CSV's Stripe columns: reference, date,
/// donor name, email, amount, address, memo), written row by row. Rows differ in donor, amount
/// and day; every 10th has a memo of about 60 characters, every 25th an amount that cannot be
/// read (an error issue on the record).
pub fn write_gifts_csv(path: &Path, rows: usize) -> io::Result<()> {
    const FIRST: [&str; 8] = [
        "Grace", "Daniel", "Emily", "Robert", "Maria", "James", "Aisha", "Thomas",
    ];
    const LAST: [&str; 8] = [
        "Kim", "Okafor", "Chen", "McDonald", "Garcia", "O'Neil", "Rahman", "Lutz",
    ];
    let mut w = BufWriter::new(File::create(path)?);
    writeln!(
        w,
        "Transaction ID,Date,First Name,Last Name,Email,Amount,Address,City,State,Zip,Memo"
    )?;
    for i in 0..rows {
        let (first, last) = (FIRST[i % 8], LAST[(i / 8) % 8]);
        let amount = if i % 25 == 24 {
            "twenty".to_string()
        } else {
            format!("${}.{:02}", 10 + i % 490, i % 100)
        };
        let memo = if i % 10 == 0 {
            "\"In memory of a dear friend, for the school fund and the choir\""
        } else {
            "Monthly gift"
        };
        writeln!(
            w,
            "ch_3Q{i:08},2026-{:02}-{:02} 09:14:00,{first},{last},{}.{}{i}@example.org,{amount},\
             {} Birch Lane Apt {},Madison,WI,{:05},{memo}",
            i % 12 + 1,
            i % 28 + 1,
            first.to_lowercase(),
            last.to_lowercase().replace('\'', ""),
            i % 9000 + 1,
            i % 40 + 1,
            53703 + i % 90,
        )?;
    }
    w.flush()
}

/// The image of [`write_image_bomb_pdf`].
#[derive(Debug, Clone, Copy)]
pub struct ImageBomb {
    /// 1-based page drawing it.
    pub page: usize,
    /// Declared size in pixels (8-bit gray).
    pub width: u32,
    pub height: u32,
    /// MB of zero bytes actually stored (Flate, about 1,000:1).
    pub inflated_mb: usize,
    /// Drawn through a form XObject, where a check of the page's own objects does not look.
    pub in_form: bool,
    /// Object stream and cross-reference stream ([`PdfWriter::compact`]).
    pub compact: bool,
}

/// A text PDF (one page per entry of `pages`, like `write_text_pdf`) whose page `bomb.page`
/// also draws a Flate-compressed gray image declaring `width` x `height` pixels: a small file
/// that asks a reader to decode far more than it may hold. Compressed as it is written.
pub fn write_image_bomb_pdf(
    path: &Path,
    pages: &[Vec<String>],
    bomb: &ImageBomb,
) -> io::Result<()> {
    use flate2::write::ZlibEncoder;
    use fom_core::pdf::synth::{text_content, write_text_head};
    let n = pages.len();
    let (image, form) = (4 + n * 2, 5 + n * 2);
    let mut w = PdfWriter::new(BufWriter::new(File::create(path)?), form)?;
    if bomb.compact {
        w = w.compact();
    }
    let kids: Vec<String> = (0..n).map(|i| format!("{} 0 R", 4 + i * 2)).collect();
    write_text_head(&mut w, &kids)?;
    for (i, lines) in pages.iter().enumerate() {
        let mut content = text_content(lines);
        content.push(b'\n');
        let mut xobjects = String::new();
        if i + 1 == bomb.page {
            let (name, target) = if bomb.in_form {
                ("Fm0", form)
            } else {
                ("Im0", image)
            };
            content.extend_from_slice(format!("q 300 0 0 300 150 100 cm /{name} Do Q").as_bytes());
            xobjects = format!(" /XObject << /{name} {target} 0 R >>");
        }
        let page = 4 + i * 2;
        w.object(
            page,
            &format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {} {}] /Resources << /Font << /F1 3 0 R >>{xobjects} >> /Contents {} 0 R >>",
                LETTER.0,
                LETTER.1,
                page + 1
            ),
            None,
        )?;
        w.object(
            page + 1,
            &format!("<< /Length {} >>", content.len()),
            Some(&content),
        )?;
    }
    let mut z = ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let zeros = vec![0u8; 1024 * 1024];
    for _ in 0..bomb.inflated_mb {
        z.write_all(&zeros)?;
    }
    let data = z.finish()?;
    w.object(
        image,
        &format!(
            "<< /Type /XObject /Subtype /Image /Width {} /Height {} /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /FlateDecode /Length {} >>",
            bomb.width,
            bomb.height,
            data.len()
        ),
        Some(&data),
    )?;
    let draw = b"q 1 0 0 1 0 0 cm /Im0 Do Q";
    w.object(
        form,
        &format!(
            "<< /Type /XObject /Subtype /Form /BBox [0 0 1 1] /Resources << /XObject << /Im0 {image} 0 R >> >> /Length {} >>",
            draw.len()
        ),
        Some(draw),
    )?;
    w.finish(1, "")?;
    Ok(())
}

/// A phone photo of a check: `width` x `height` (12 Mpx as 4000 x 3000), a check-like drawing
/// under paper grain and sensor noise (so it compresses as a real photo does, about 3 MB at
/// quality 85), deterministic by `seed`; stored turned for EXIF `orientation` (1-8) so it shows
/// upright once the orientation is applied.
pub fn write_phone_photo(
    path: &Path,
    width: u16,
    height: u16,
    seed: u64,
    orientation: u16,
) -> io::Result<()> {
    use fom_core::photo::synth::{check_pattern, stored_pixels, write_jpeg};
    let (w, h) = (u32::from(width), u32::from(height));
    let (dw, dh) = if orientation >= 5 { (h, w) } else { (w, h) };
    let paper = check_pattern(dw, dh);
    let noisy = move |x: u32, y: u32| {
        let base = paper(x, y);
        // A cheap per-pixel hash: grain that differs from pixel to pixel and photo to photo.
        let mut z = seed ^ (u64::from(x) << 32 | u64::from(y));
        z = z.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z ^= z >> 29;
        z = z.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z ^= z >> 32;
        let grain = (z & 0x1f) as i16 - 16;
        base.map(|c| (i16::from(c) + grain).clamp(0, 255) as u8)
    };
    write_jpeg(
        path,
        width,
        height,
        85,
        (orientation != 1).then_some(orientation),
        stored_pixels(orientation, w, h, noisy),
    )
}

/// `n` phone photos `check-01.jpg`... in `dir` (every third stored sideways with EXIF
/// orientation 6), made from five distinct ones: making a 12 Mpx photo takes seconds in a debug
/// build, and what the tests look at (size, pixels, names) does not need twenty different ones.
pub fn write_phone_photos(dir: &Path, n: usize) -> io::Result<Vec<std::path::PathBuf>> {
    const DISTINCT: usize = 5;
    let mut paths = Vec::with_capacity(n);
    for i in 0..n {
        let path = dir.join(format!("check-{:02}.jpg", i + 1));
        if i < DISTINCT {
            let (w, h, o) = if i % 3 == 2 {
                (3000, 4000, 6)
            } else {
                (4000, 3000, 1)
            };
            write_phone_photo(&path, w, h, i as u64 + 1, o)?;
        } else {
            std::fs::copy(&paths[i % DISTINCT], &path)?;
        }
        paths.push(path);
    }
    Ok(paths)
}
