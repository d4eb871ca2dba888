//! The PDF pre-flight on generated files: classic tables and compact files (object streams,
//! predicted cross-reference streams), good files never refused, bombs refused before pdfium
//! loads the page.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use fom_core::pdf::precheck::{preflight, Preflight};
use fom_core::pdf::{PageWatch, PdfConfig, PdfError, PdfPages};
use fom_testkit::fixtures::{self, ImageBomb, ScanOptions};

fn text_pages(n: usize) -> Vec<Vec<String>> {
    fixtures::one_check_per_page(n)
}

fn verdicts(path: &Path, cfg: &PdfConfig) -> Vec<Option<String>> {
    match preflight(path, cfg).unwrap() {
        Preflight::Pages(v) => v,
        Preflight::Unchecked(why) => panic!("not understood: {why}"),
    }
}

fn refused(v: &[Option<String>]) -> Vec<(usize, &str)> {
    v.iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_deref().map(|r| (i + 1, r)))
        .collect()
}

fn image_bomb(dir: &Path, in_form: bool, compact: bool) -> PathBuf {
    let path = dir.join(format!("image-bomb-{in_form}-{compact}.pdf"));
    fixtures::write_image_bomb_pdf(
        &path,
        &text_pages(6),
        &ImageBomb {
            page: 3,
            width: 40_000,
            height: 40_000,
            inflated_mb: 8,
            in_form,
            compact,
        },
    )
    .unwrap();
    path
}

#[test]
fn good_files_are_not_refused_in_either_form() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = PdfConfig::default();
    for compact in [false, true] {
        let text = dir.path().join(format!("text-{compact}.pdf"));
        fom_core::pdf::synth::write_text_pdf_as(&text, &text_pages(12), compact, |_| Ok(None))
            .unwrap();
        let v = verdicts(&text, &cfg);
        assert_eq!(v.len(), 12);
        assert!(refused(&v).is_empty(), "{v:?}");

        let scan = dir.path().join(format!("scan-{compact}.pdf"));
        fixtures::write_scan_pdf(
            &scan,
            &ScanOptions {
                pages: 5,
                dpi: 100,
                distinct: 2,
                compact,
                ..Default::default()
            },
        )
        .unwrap();
        let v = verdicts(&scan, &cfg);
        assert_eq!(v.len(), 5);
        assert!(refused(&v).is_empty(), "{v:?}");
        // pdfium reads the compact form too: every page comes out.
        let pages: Vec<_> = PdfPages::open(&scan, &cfg).unwrap().collect();
        assert!(pages.iter().all(Result::is_ok), "{pages:?}");
    }
    let example = fom_testkit::repo_root().join("examples/deposit.pdf");
    let v = verdicts(&example, &cfg);
    assert!(!v.is_empty() && refused(&v).is_empty(), "{v:?}");
}

#[test]
fn a_content_bomb_page_is_refused_in_either_form() {
    let dir = tempfile::tempdir().unwrap();
    for compact in [false, true] {
        let path = dir.path().join(format!("bomb-{compact}.pdf"));
        fixtures::write_content_bomb_pdf_as(&path, &text_pages(10), 7, 64, compact).unwrap();
        let v = verdicts(&path, &PdfConfig::default());
        let r = refused(&v);
        assert_eq!(r.len(), 1, "{v:?}");
        assert_eq!(r[0].0, 7);
        assert!(
            r[0].1.contains("more than 1000000 drawing operators"),
            "{}",
            r[0].1
        );
        // The same stream under a byte limit it exceeds: refused for its size instead.
        let small = PdfConfig {
            max_stream_bytes: 16 << 20,
            max_page_operators: 1_000_000_000,
            ..PdfConfig::default()
        };
        let r = verdicts(&path, &small);
        assert!(
            refused(&r)[0].1.contains("expands to more than 16 MB"),
            "{r:?}"
        );
        // And with both limits above it, nothing is refused: the limits decide, not the shape.
        let lax = PdfConfig {
            max_page_operators: 1_000_000_000,
            ..PdfConfig::default()
        };
        assert!(refused(&verdicts(&path, &lax)).is_empty());
    }
}

#[test]
fn an_image_bomb_is_refused_on_its_declared_size_directly_or_inside_a_form() {
    let dir = tempfile::tempdir().unwrap();
    for in_form in [false, true] {
        for compact in [false, true] {
            let path = image_bomb(dir.path(), in_form, compact);
            assert!(std::fs::metadata(&path).unwrap().len() < 1024 * 1024);
            let v = verdicts(&path, &PdfConfig::default());
            let r = refused(&v);
            assert_eq!(r.len(), 1, "{in_form} {compact}: {v:?}");
            assert_eq!(r[0].0, 3);
            assert!(
                r[0].1.contains("declares an image of 40000 x 40000 pixels"),
                "{}",
                r[0].1
            );
        }
    }
}

#[test]
fn an_image_that_inflates_past_the_stream_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep.pdf");
    // 6,000 x 6,000 is under the pixel limit; the stream holds 200 MB.
    fixtures::write_image_bomb_pdf(
        &path,
        &text_pages(3),
        &ImageBomb {
            page: 2,
            width: 6_000,
            height: 6_000,
            inflated_mb: 200,
            in_form: false,
            compact: false,
        },
    )
    .unwrap();
    let v = verdicts(&path, &PdfConfig::default());
    let r = refused(&v);
    assert_eq!(r.len(), 1, "{v:?}");
    assert_eq!(r[0].0, 2);
    assert!(r[0].1.contains("expands to more than 128 MB"), "{}", r[0].1);
}

#[test]
fn refused_pages_are_never_loaded_and_the_others_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = image_bomb(dir.path(), true, true);
    let loaded = Arc::new(Mutex::new(Vec::new()));
    let seen = loaded.clone();
    let cfg = PdfConfig {
        watch: PageWatch::new(move |p| {
            if let Some(p) = p {
                seen.lock().unwrap().push(p);
            }
        }),
        ..PdfConfig::default()
    };
    let pages: Vec<_> = PdfPages::open(&path, &cfg).unwrap().collect();
    assert_eq!(pages.len(), 6);
    for (i, p) in pages.iter().enumerate() {
        if i == 2 {
            let e = p.as_ref().unwrap_err();
            assert_eq!((e.first_page, e.last_page), (3, 3));
            assert!(e.reason.contains("40000 x 40000"), "{e}");
        } else {
            assert!(p.as_ref().unwrap().text.contains("Donor Number"), "{p:?}");
        }
    }
    assert_eq!(*loaded.lock().unwrap(), vec![1, 2, 4, 5, 6]);
}

#[test]
fn a_document_declaring_too_many_objects_is_refused_before_pdfium() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.pdf");
    // 600 pages: 1,203 objects.
    fom_core::pdf::synth::write_text_pdf(&path, &text_pages(600)).unwrap();
    let cfg = PdfConfig {
        max_objects: 1_000,
        max_pages: 1_000,
        ..PdfConfig::default()
    };
    let err = PdfPages::open(&path, &cfg).err().unwrap();
    assert!(
        matches!(
            err,
            PdfError::TooManyObjects {
                objects: 1204,
                limit: 1000
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("split it into smaller files"),
        "{err}"
    );
    let ok = PdfConfig {
        max_pages: 1_000,
        ..PdfConfig::default()
    };
    assert_eq!(verdicts(&path, &ok).len(), 600);
}

#[test]
fn a_structure_it_does_not_understand_is_left_unchecked_not_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.pdf");
    fom_core::pdf::synth::write_text_pdf(&good, &text_pages(3)).unwrap();
    // The startxref offset points into the header: pdfium rebuilds the cross-reference.
    let mut bytes = std::fs::read(&good).unwrap();
    let at = bytes.windows(9).rposition(|w| w == b"startxref").unwrap() + 10;
    let end = bytes[at..].iter().position(|&b| b == b'\n').unwrap() + at;
    bytes.splice(at..end, *b"5");
    let broken = dir.path().join("broken.pdf");
    std::fs::write(&broken, &bytes).unwrap();
    assert!(matches!(
        preflight(&broken, &PdfConfig::default()).unwrap(),
        Preflight::Unchecked(_)
    ));
    let pages: Vec<_> = PdfPages::open(&broken, &PdfConfig::default())
        .unwrap()
        .collect();
    assert_eq!(pages.len(), 3);
    assert!(pages.iter().all(Result::is_ok));
}

#[test]
fn an_incremental_update_is_followed_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("updated.pdf");
    fom_core::pdf::synth::write_text_pdf(&path, &text_pages(3)).unwrap();
    // Append an update that replaces page 2's content (object 7) with a bomb.
    let mut bytes = std::fs::read(&path).unwrap();
    let prev = {
        let at = bytes.windows(9).rposition(|w| w == b"startxref").unwrap() + 10;
        let end = bytes[at..].iter().position(|&b| b == b'\n').unwrap() + at;
        String::from_utf8(bytes[at..end].to_vec()).unwrap()
    };
    let bomb = {
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        for _ in 0..400 {
            z.write_all(&b"0 0 m 1 1 l S\n".repeat(1000)).unwrap();
        }
        z.finish().unwrap()
    };
    let obj_at = bytes.len();
    bytes.extend_from_slice(
        format!(
            "7 0 obj\n<< /Length {} /Filter /FlateDecode >>\nstream\n",
            bomb.len()
        )
        .as_bytes(),
    );
    bytes.extend_from_slice(&bomb);
    bytes.extend_from_slice(b"\nendstream\nendobj\n");
    let xref_at = bytes.len();
    bytes.extend_from_slice(
        format!(
            "xref\n7 1\n{obj_at:010} 00000 n \ntrailer\n<< /Size 10 /Root 1 0 R /Prev {prev} >>\nstartxref\n{xref_at}\n%%EOF\n"
        )
        .as_bytes(),
    );
    std::fs::write(&path, &bytes).unwrap();
    let cfg = PdfConfig {
        max_page_operators: 100_000,
        ..PdfConfig::default()
    };
    let v = verdicts(&path, &cfg);
    assert_eq!(
        refused(&v).iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![2],
        "{v:?}"
    );
}

#[test]
fn the_limits_are_settings_with_bounds() {
    use fom_core::config::EnvReader;
    let mut env = EnvReader::from_pairs([
        ("PDF_MAX_STREAM_MB", "32"),
        ("PDF_MAX_PAGE_OPERATORS", "50000"),
        ("PDF_MAX_OBJECTS", "5000"),
    ]);
    let cfg = PdfConfig::from_env(&mut env);
    assert!(env.finish().is_ok());
    assert_eq!(cfg.max_stream_bytes, 32 << 20);
    assert_eq!(cfg.max_page_operators, 50_000);
    assert_eq!(cfg.max_objects, 5_000);
    let mut env = EnvReader::from_pairs([
        ("PDF_MAX_STREAM_MB", "0"),
        ("PDF_MAX_PAGE_OPERATORS", "10"),
        ("PDF_MAX_OBJECTS", "many"),
    ]);
    let cfg = PdfConfig::from_env(&mut env);
    let problems = env.finish().err().unwrap().problems;
    let vars: Vec<_> = problems.iter().map(|p| p.var.as_str()).collect();
    assert_eq!(
        vars,
        [
            "PDF_MAX_STREAM_MB",
            "PDF_MAX_PAGE_OPERATORS",
            "PDF_MAX_OBJECTS"
        ]
    );
    assert_eq!(cfg.max_stream_bytes, PdfConfig::default().max_stream_bytes);
}
