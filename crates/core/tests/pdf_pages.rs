//! The page walk against real pdfium on generated PDFs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::BufWriter;
use std::path::Path;

use fom_core::pdf::synth::{write_scan_pdf, write_text_pdf, PdfWriter, ScanOptions};
use fom_core::pdf::{ImageSource, Page, PdfConfig, PdfError, PdfPages};

fn pages(path: &Path, cfg: &PdfConfig) -> Vec<Result<Page, fom_core::pdf::PageError>> {
    PdfPages::open(path, cfg).unwrap().collect()
}

fn decode(jpeg: &[u8]) -> (usize, usize, Vec<u8>) {
    let mut d = zune_jpeg::JpegDecoder::new(jpeg);
    let px = d.decode().unwrap();
    let (w, h) = d.dimensions().unwrap();
    (w, h, px)
}

fn scan(dir: &Path, pages: u32, dpi: u32) -> std::path::PathBuf {
    let path = dir.join(format!("scan-{pages}-{dpi}.pdf"));
    write_scan_pdf(
        &path,
        &ScanOptions {
            pages,
            dpi,
            distinct: 2,
            ..Default::default()
        },
    )
    .unwrap();
    path
}

#[test]
fn text_layer_is_read_and_pages_render_to_real_jpegs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.pdf");
    write_text_pdf(
        &path,
        &[
            vec![
                "Deposit Report: 03/14/2026".into(),
                "1. Ana Pe\u{f1}a".into(),
            ],
            vec!["Total".into()],
        ],
    )
    .unwrap();

    let text_only = pages(
        &path,
        &PdfConfig {
            images: false,
            ..PdfConfig::default()
        },
    );
    let p1 = text_only[0].as_ref().unwrap();
    assert_eq!(p1.source, ImageSource::None);
    assert!(p1.jpeg.is_empty());
    assert_eq!(
        p1.text.lines().collect::<Vec<_>>(),
        ["Deposit Report: 03/14/2026", "1. Ana Pe\u{f1}a"]
    );
    assert_eq!((p1.number, p1.page_count), (1, 2));

    let rendered = pages(&path, &PdfConfig::default());
    let p1 = rendered[0].as_ref().unwrap();
    assert_eq!(p1.source, ImageSource::Rendered);
    assert_eq!((p1.width, p1.height), (1275, 1650));
    let (w, h, px) = decode(&p1.jpeg);
    assert_eq!((w, h), (1275, 1650));
    // White paper with some black text on it.
    let dark = px.chunks(3).filter(|p| p[0] < 80).count();
    let white = px.chunks(3).filter(|p| p[0] > 240).count();
    assert!(dark > 500, "no text drawn ({dark} dark pixels)");
    assert!(white > w * h * 9 / 10);
    assert_eq!(rendered[1].as_ref().unwrap().number, 2);
}

#[test]
fn full_page_jpegs_pass_through_only_when_safe_and_sharp_enough() {
    let dir = tempfile::tempdir().unwrap();
    let path = scan(dir.path(), 3, 200);

    let passed = pages(&path, &PdfConfig::default());
    for p in &passed {
        let p = p.as_ref().unwrap();
        assert_eq!(p.source, ImageSource::PassThrough);
        assert_eq!((p.width, p.height), (1700, 2200));
        assert_eq!(decode(&p.jpeg).0, 1700);
    }

    // 200 DPI scans are not good enough for a 300 DPI configuration: pdfium renders them
    // (scaled up), as neither passing through nor decoding covers the size asked for.
    let sharper = pages(
        &path,
        &PdfConfig {
            dpi: 300,
            max_pixels: 9_000_000,
            ..PdfConfig::default()
        },
    );
    let p = sharper[0].as_ref().unwrap();
    assert_eq!(p.source, ImageSource::Rendered);
    assert_eq!((p.width, p.height), (2550, 3300));
    // Under the default pixel cap the same page is scaled down, keeping its shape.
    let capped = pages(
        &path,
        &PdfConfig {
            dpi: 300,
            ..PdfConfig::default()
        },
    );
    let p = capped[0].as_ref().unwrap();
    assert!(u64::from(p.width) * u64::from(p.height) <= PdfConfig::default().max_pixels);
    assert_eq!(p.width * 3300 / 2550, p.height);

    let forced = pages(
        &path,
        &PdfConfig {
            passthrough: false,
            ..PdfConfig::default()
        },
    );
    let p = forced[0].as_ref().unwrap();
    // Not passed through: the page's JPEG decoded at a reduced scale to the render size...
    assert_eq!(p.source, ImageSource::Decoded);
    assert_eq!((p.width, p.height), (1275, 1650));
    let (w, h, decoded) = decode(&p.jpeg);
    assert_eq!((w, h), (1275, 1650));
    // ...which is the picture pdfium renders, up to JPEG and resampling noise.
    let by_pdfium = pages(
        &path,
        &PdfConfig {
            passthrough: false,
            scaled_decode: false,
            ..PdfConfig::default()
        },
    );
    let r = by_pdfium[0].as_ref().unwrap();
    assert_eq!(r.source, ImageSource::Rendered);
    let (_, _, rendered) = decode(&r.jpeg);
    assert_eq!(rendered.len(), decoded.len());
    let diff: u64 = rendered
        .iter()
        .zip(&decoded)
        .map(|(a, b)| u64::from(a.abs_diff(*b)))
        .sum();
    let mean = diff as f64 / decoded.len() as f64;
    assert!(mean < 8.0, "mean difference {mean:.2} per channel");

    // Over the size cap: decoded, not passed through.
    let capped = pages(
        &path,
        &PdfConfig {
            passthrough_max_bytes: 1024,
            ..PdfConfig::default()
        },
    );
    assert_eq!(capped[0].as_ref().unwrap().source, ImageSource::Decoded);
}

/// A PDF whose pages are given as (page dictionary extras, content, image dictionary, image
/// data) tuples, for shapes the generators do not make.
fn custom_pdf(path: &Path, pages: &[(&str, &str, &str, &[u8])]) {
    let file = BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = PdfWriter::new(file, 2 + pages.len() * 3).unwrap();
    w.object(1, "<< /Type /Catalog /Pages 2 0 R >>", None)
        .unwrap();
    let kids: Vec<String> = (0..pages.len())
        .map(|i| format!("{} 0 R", 3 + i * 3))
        .collect();
    w.object(
        2,
        &format!(
            "<< /Type /Pages /Kids [{}] /Count {} >>",
            kids.join(" "),
            pages.len()
        ),
        None,
    )
    .unwrap();
    for (i, (extra, content, image_dict, image)) in pages.iter().enumerate() {
        let (p, c, im) = (3 + i * 3, 4 + i * 3, 5 + i * 3);
        w.object(
            p,
            &format!("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] {extra} /Resources << /XObject << /Im0 {im} 0 R >> >> /Contents {c} 0 R >>"),
            None,
        )
        .unwrap();
        w.object(
            c,
            &format!("<< /Length {} >>", content.len()),
            Some(content.as_bytes()),
        )
        .unwrap();
        w.object(
            im,
            &format!("{image_dict} /Length {} >>", image.len()),
            Some(image),
        )
        .unwrap();
    }
    w.finish(1, "").unwrap();
}

fn small_jpeg(w: u16, h: u16) -> Vec<u8> {
    let mut out = Vec::new();
    let px = vec![200u8; usize::from(w) * usize::from(h) * 3];
    jpeg_encoder::Encoder::new(&mut out, 80)
        .encode(&px, w, h, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    out
}

#[test]
fn a_bad_page_is_reported_and_the_walk_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.pdf");
    let ok = small_jpeg(1275, 1650);
    let rgb = "<< /Type /XObject /Subtype /Image /Width 1275 /Height 1650 /ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /DCTDecode";
    let draw = "q 612 0 0 792 0 0 cm /Im0 Do Q";
    custom_pdf(
        &path,
        &[
            ("", draw, rgb, &ok),
            // Claims 30000 x 30000 pixels: decoding it would need gigabytes.
            ("", draw, "<< /Type /XObject /Subtype /Image /Width 30000 /Height 30000 /ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /DCTDecode", &ok),
            // Rotated: never passed through; rendered in its displayed orientation.
            ("/Rotate 90", draw, rgb, &ok),
            // Image drawn on half the page: rendered, not passed through.
            ("", "q 306 0 0 396 0 0 cm /Im0 Do Q", rgb, &ok),
        ],
    );
    let out = pages(&path, &PdfConfig::default());
    assert_eq!(out.len(), 4);
    assert_eq!(out[0].as_ref().unwrap().source, ImageSource::PassThrough);
    let err = out[1].as_ref().unwrap_err();
    assert_eq!((err.first_page, err.last_page), (2, 2));
    assert!(err.reason.contains("30000 x 30000"), "{}", err.reason);
    let rotated = out[2].as_ref().unwrap();
    assert_eq!(rotated.source, ImageSource::Rendered);
    assert!(
        rotated.width > rotated.height,
        "{}x{}",
        rotated.width,
        rotated.height
    );
    assert_eq!(out[3].as_ref().unwrap().source, ImageSource::Rendered);
}

#[test]
fn document_level_errors_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let path = scan(dir.path(), 4, 72);
    let err = PdfPages::open(
        &path,
        &PdfConfig {
            max_pages: 3,
            ..PdfConfig::default()
        },
    )
    .err()
    .unwrap();
    assert!(
        matches!(err, PdfError::TooManyPages { pages: 4, limit: 3 }),
        "{err:?}"
    );
    assert!(err.to_string().contains("split it"));

    let csv = dir.path().join("x.pdf");
    std::fs::write(&csv, "a,b\n1,2\n").unwrap();
    assert!(matches!(
        PdfPages::open(&csv, &PdfConfig::default()),
        Err(PdfError::NotPdf(_))
    ));
}

#[test]
fn stopping_early_ends_the_threads() {
    let dir = tempfile::tempdir().unwrap();
    let path = scan(dir.path(), 30, 72);
    let mut walk = PdfPages::open(
        &path,
        &PdfConfig {
            passthrough: false,
            ..PdfConfig::default()
        },
    )
    .unwrap();
    assert!(walk.next().unwrap().is_ok());
    assert!(walk.next().unwrap().is_ok());
    drop(walk); // must return (joins both threads) rather than hang
}
