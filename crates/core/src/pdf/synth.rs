//! Small, dependency-free PDF writers for fixtures, examples and `memtest`.
//!
//! Pages are written one at a time straight to the output, so generating a 1,000-page file holds
//! one page image in memory, not the document.

use std::io::{self, BufWriter, Seek, Write};
use std::path::Path;

/// US letter in points.
pub const LETTER: (f32, f32) = (612.0, 792.0);

/// Writes numbered objects and the cross-reference table.
pub struct PdfWriter<W: Write + Seek> {
    out: W,
    offsets: Vec<u64>,
    /// Compact mode (PDF 1.5): objects without a stream, held for one object stream.
    packed: Option<Vec<(usize, String)>>,
}

impl<W: Write + Seek> PdfWriter<W> {
    /// Starts a PDF with `object_count` objects (numbered 1..=object_count).
    pub fn new(mut out: W, object_count: usize) -> io::Result<Self> {
        out.write_all(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n")?;
        Ok(Self {
            out,
            offsets: vec![0; object_count + 1],
            packed: None,
        })
    }

    /// Compact mode, as PDF 1.5 writers save: objects without a stream go into one Flate
    /// object stream and the cross-reference is a stream (PNG-predicted), not a table.
    pub fn compact(mut self) -> Self {
        self.packed = Some(Vec::new());
        self
    }

    /// Writes object `n` whose body is `dict` (and a stream when `stream` is given).
    pub fn object(&mut self, n: usize, dict: &str, stream: Option<&[u8]>) -> io::Result<()> {
        if let (Some(packed), None) = (self.packed.as_mut(), stream) {
            if n == 0 || n >= self.offsets.len() {
                return Err(io::Error::other(format!("object {n} out of range")));
            }
            packed.push((n, dict.to_string()));
            return Ok(());
        }
        let pos = self.out.stream_position()?;
        let slot = self
            .offsets
            .get_mut(n)
            .ok_or_else(|| io::Error::other(format!("object {n} out of range")))?;
        *slot = pos;
        write!(self.out, "{n} 0 obj\n{dict}")?;
        if let Some(data) = stream {
            self.out.write_all(b"\nstream\n")?;
            self.out.write_all(data)?;
            self.out.write_all(b"\nendstream")?;
        }
        self.out.write_all(b"\nendobj\n")
    }

    /// Writes the xref table and trailer; `extra_trailer` is added to the trailer dictionary.
    pub fn finish(mut self, root: usize, extra_trailer: &str) -> io::Result<W> {
        if let Some(packed) = self.packed.take() {
            return self.finish_compact(packed, root, extra_trailer);
        }
        let xref = self.out.stream_position()?;
        write!(
            self.out,
            "xref\n0 {}\n0000000000 65535 f \n",
            self.offsets.len()
        )?;
        for off in &self.offsets[1..] {
            writeln!(self.out, "{off:010} 00000 n ")?;
        }
        write!(
            self.out,
            "trailer\n<< /Size {} /Root {root} 0 R {extra_trailer}>>\nstartxref\n{xref}\n%%EOF\n",
            self.offsets.len()
        )?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn finish_compact(
        mut self,
        packed: Vec<(usize, String)>,
        root: usize,
        extra_trailer: &str,
    ) -> io::Result<W> {
        use flate2::write::ZlibEncoder;
        let objstm = self.offsets.len();
        let (mut header, mut body) = (String::new(), Vec::new());
        for (n, dict) in &packed {
            header.push_str(&format!("{n} {} ", body.len()));
            body.extend_from_slice(dict.as_bytes());
            body.push(b'\n');
        }
        let mut z = ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(header.as_bytes())?;
        z.write_all(&body)?;
        let data = z.finish()?;
        self.offsets.push(0);
        self.packed = None;
        self.object(
            objstm,
            &format!(
                "<< /Type /ObjStm /N {} /First {} /Filter /FlateDecode /Length {} >>",
                packed.len(),
                header.len(),
                data.len()
            ),
            Some(&data),
        )?;
        let xref = objstm + 1;
        let xref_at = self.out.stream_position()?;
        // Rows of type (1 byte), offset or object stream (4), generation or index (2), each
        // PNG "Up"-predicted against the row above.
        let mut rows = Vec::new();
        let mut prev = [0u8; 7];
        for n in 0..=xref {
            let (kind, a, b): (u8, u32, u16) = if n == 0 {
                (0, 0, 65535)
            } else if n == xref {
                (1, u32::try_from(xref_at).map_err(io::Error::other)?, 0)
            } else if let Some(i) = packed.iter().position(|(m, _)| *m == n) {
                (2, objstm as u32, i as u16)
            } else {
                let off = self.offsets.get(n).copied().unwrap_or(0);
                (1, u32::try_from(off).map_err(io::Error::other)?, 0)
            };
            let mut row = [kind, 0, 0, 0, 0, 0, 0];
            row[1..5].copy_from_slice(&a.to_be_bytes());
            row[5..7].copy_from_slice(&b.to_be_bytes());
            rows.push(2);
            rows.extend(row.iter().zip(prev).map(|(x, p)| x.wrapping_sub(p)));
            prev = row;
        }
        let mut z = ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&rows)?;
        let data = z.finish()?;
        write!(
            self.out,
            "{xref} 0 obj\n<< /Type /XRef /Size {} /W [1 4 2] /Root {root} 0 R {extra_trailer}\
             /Filter /FlateDecode /DecodeParms << /Predictor 12 /Columns 7 >> /Length {} >>\n\
             stream\n",
            xref + 1,
            data.len()
        )?;
        self.out.write_all(&data)?;
        write!(
            self.out,
            "\nendstream\nendobj\nstartxref\n{xref_at}\n%%EOF\n"
        )?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Escapes text for a PDF literal string in WinAnsi (Latin-1 range; other characters become '?').
pub fn pdf_string(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 2);
    out.push(b'(');
    for c in text.chars() {
        match c {
            '(' | ')' | '\\' => {
                out.push(b'\\');
                out.push(c as u8);
            }
            c if (c as u32) < 0x20 => out.push(b' '),
            c if (c as u32) <= 0xFF => out.push(c as u32 as u8),
            _ => out.push(b'?'),
        }
    }
    out.push(b')');
    out
}

/// A text PDF: each page is a list of lines in 11 pt Helvetica, top to bottom.
pub fn write_text_pdf(path: &Path, pages: &[Vec<String>]) -> io::Result<()> {
    write_text_pdf_with(path, pages, |_| Ok(None))
}

/// [`write_text_pdf`], where `content(i)` may replace page `i`'s (0-based) content stream with
/// its own: the extra stream dictionary entries (e.g. `/Filter /FlateDecode`) and the bytes.
pub fn write_text_pdf_with(
    path: &Path,
    pages: &[Vec<String>],
    content: impl FnMut(usize) -> io::Result<Option<(String, Vec<u8>)>>,
) -> io::Result<()> {
    write_text_pdf_as(path, pages, false, content)
}

/// [`write_text_pdf_with`], in compact form when `compact` (object stream and cross-reference
/// stream, [`PdfWriter::compact`]).
pub fn write_text_pdf_as(
    path: &Path,
    pages: &[Vec<String>],
    compact: bool,
    mut content: impl FnMut(usize) -> io::Result<Option<(String, Vec<u8>)>>,
) -> io::Result<()> {
    let file = BufWriter::new(std::fs::File::create(path)?);
    let mut w = PdfWriter::new(file, 3 + pages.len() * 2)?;
    if compact {
        w = w.compact();
    }
    let kids: Vec<String> = (0..pages.len())
        .map(|i| format!("{} 0 R", 4 + i * 2))
        .collect();
    write_text_head(&mut w, &kids)?;
    for (i, lines) in pages.iter().enumerate() {
        let (extra, content) = match content(i)? {
            Some(own) => own,
            None => (String::new(), text_content(lines)),
        };
        let page_obj = 4 + i * 2;
        w.object(
            page_obj,
            &format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {} {}] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
                LETTER.0,
                LETTER.1,
                page_obj + 1
            ),
            None,
        )?;
        w.object(
            page_obj + 1,
            &format!("<< /Length {}{extra} >>", content.len()),
            Some(&content),
        )?;
    }
    w.finish(1, "")?;
    Ok(())
}

/// Objects 1-3 of a text PDF: the catalog, the page tree over `kids` ("N 0 R" each) and the
/// Helvetica font its pages call /F1.
pub fn write_text_head<W: Write + Seek>(w: &mut PdfWriter<W>, kids: &[String]) -> io::Result<()> {
    w.object(1, "<< /Type /Catalog /Pages 2 0 R >>", None)?;
    w.object(
        2,
        &format!(
            "<< /Type /Pages /Kids [{}] /Count {} >>",
            kids.join(" "),
            kids.len()
        ),
        None,
    )?;
    w.object(
        3,
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        None,
    )
}

/// A content stream showing `lines` in 11 pt /F1, top to bottom.
pub fn text_content(lines: &[String]) -> Vec<u8> {
    let mut text = b"BT /F1 11 Tf 14 TL 54 738 Td\n".to_vec();
    for line in lines {
        text.extend(pdf_string(line));
        text.extend_from_slice(b" Tj T*\n");
    }
    text.extend_from_slice(b"ET");
    text
}

/// Options for [`write_scan_pdf`].
#[derive(Debug, Clone, Copy)]
pub struct ScanOptions {
    pub pages: u32,
    pub dpi: u32,
    /// Distinct page images; pages reuse them round-robin, each page embedding its own copy.
    pub distinct: u32,
    pub seed: u64,
    pub quality: u8,
    /// Written in compact form ([`PdfWriter::compact`]).
    pub compact: bool,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            pages: 200,
            dpi: 300,
            distinct: 4,
            seed: 1,
            quality: 80,
            compact: false,
        }
    }
}

/// A scanned-deposit PDF like the side-by-side bench's scan generator makes
/// (docs/PERFORMANCE.md): every page one full-page
/// noisy JPEG (paper grain compresses badly, as real scans do) with three check outlines, each
/// page its own image object. Returns the file size in bytes.
pub fn write_scan_pdf(path: &Path, opts: &ScanOptions) -> io::Result<u64> {
    let (w_px, h_px) = (
        (8.5 * opts.dpi as f32) as u16,
        (11.0 * opts.dpi as f32) as u16,
    );
    let distinct = opts.distinct.clamp(1, opts.pages.max(1));
    let mut images = Vec::with_capacity(distinct as usize);
    let mut rng = fastrand::Rng::with_seed(opts.seed);
    for _ in 0..distinct {
        images.push(scan_page_jpeg(&mut rng, w_px, h_px, opts.quality)?);
    }
    let file = BufWriter::new(std::fs::File::create(path)?);
    let n = opts.pages as usize;
    let mut w = PdfWriter::new(file, 2 + n * 3)?;
    if opts.compact {
        w = w.compact();
    }
    w.object(1, "<< /Type /Catalog /Pages 2 0 R >>", None)?;
    let kids: Vec<String> = (0..n).map(|i| format!("{} 0 R", 3 + i * 3)).collect();
    w.object(
        2,
        &format!("<< /Type /Pages /Kids [{}] /Count {n} >>", kids.join(" ")),
        None,
    )?;
    let content = format!("q {} 0 0 {} 0 0 cm /Im0 Do Q", LETTER.0, LETTER.1);
    for i in 0..n {
        let (page, contents, image) = (3 + i * 3, 4 + i * 3, 5 + i * 3);
        w.object(
            page,
            &format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {} {}] /Resources << /XObject << /Im0 {image} 0 R >> >> /Contents {contents} 0 R >>",
                LETTER.0, LETTER.1
            ),
            None,
        )?;
        w.object(
            contents,
            &format!("<< /Length {} >>", content.len()),
            Some(content.as_bytes()),
        )?;
        let jpeg = &images[i % images.len()];
        w.object(
            image,
            &format!(
                "<< /Type /XObject /Subtype /Image /Width {w_px} /Height {h_px} /ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /DCTDecode /Length {} >>",
                jpeg.len()
            ),
            Some(jpeg),
        )?;
    }
    let mut out = w.finish(1, "")?;
    out.stream_position()
}

fn scan_page_jpeg(rng: &mut fastrand::Rng, w: u16, h: u16, quality: u8) -> io::Result<Vec<u8>> {
    let (wu, hu) = (usize::from(w), usize::from(h));
    let mut px = vec![0u8; wu * hu * 3];
    for p in px.chunks_exact_mut(3) {
        // Triangular noise around 235 (sd about 6.5): paper grain.
        let g = 235 + (i32::from(rng.u8(..)) + i32::from(rng.u8(..)) - 255) / 16;
        let g = g.clamp(0, 255) as u8;
        p[0] = g;
        p[1] = g;
        p[2] = g.saturating_sub(4);
    }
    let stroke = (usize::from(w) / 400).max(2);
    let step = hu / 3;
    for k in 0..3 {
        let top = hu * 6 / 100 + k * step;
        let bottom = (top + step * 85 / 100).min(hu - 1);
        let (left, right) = (wu * 6 / 100, wu * 94 / 100);
        let mut dark = |x: usize, y: usize| {
            let i = (y * wu + x) * 3;
            px[i..i + 3].copy_from_slice(&[30, 30, 30]);
        };
        for t in 0..stroke {
            for x in left..right {
                dark(x, top + t);
                dark(x, bottom - t);
            }
            for y in top..bottom {
                dark(left + t, y);
                dark(right - t, y);
            }
        }
        // A "handwritten" line of ink: random dark dashes.
        let baseline = top + step / 3;
        let mut x = left + wu / 20;
        while x < right - wu / 10 {
            let len = rng.usize(4..40);
            for dx in 0..len.min(right - x) {
                for t in 0..stroke {
                    dark(x + dx, baseline + t + rng.usize(0..3));
                }
            }
            x += len + rng.usize(2..20);
        }
    }
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, quality)
        .encode(&px, w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| io::Error::other(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_escaping() {
        assert_eq!(pdf_string("a(b)\\c"), b"(a\\(b\\)\\\\c)".to_vec());
        assert_eq!(pdf_string("Jos\u{e9} \u{2603}"), b"(Jos\xE9 ?)".to_vec());
    }

    #[test]
    fn text_pdf_has_valid_xref_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.pdf");
        write_text_pdf(&path, &[vec!["Hello".into()], vec!["World".into()]]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let find = |needle: &[u8]| bytes.windows(needle.len()).rposition(|w| w == needle);
        let tail = &bytes[find(b"startxref\n").unwrap() + 10..];
        let xref_at: usize = std::str::from_utf8(tail)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(bytes[xref_at..].starts_with(b"xref"));
        let table = std::str::from_utf8(&bytes[xref_at..]).unwrap();
        for (i, line) in table.lines().skip(3).take(7).enumerate() {
            let off: usize = line[..10].parse().unwrap();
            assert!(
                bytes[off..].starts_with(format!("{} 0 obj", i + 1).as_bytes()),
                "object {}",
                i + 1
            );
        }
    }
}
