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

/// A text PDF (like `write_text_pdf`) whose page `bomb_page` (1-based) is a content bomb: a
/// Flate stream that inflates about 1,000:1 into `inflated_mb` MB of path operators, so a small
/// file asks a reader for far more memory than it may use. Compressed as it is written.
pub fn write_content_bomb_pdf(
    path: &Path,
    pages: &[Vec<String>],
    bomb_page: usize,
    inflated_mb: usize,
) -> io::Result<()> {
    use flate2::write::ZlibEncoder;
    fom_core::pdf::synth::write_text_pdf_with(path, pages, |i| {
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
