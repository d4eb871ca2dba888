//! The page walk: a pdfium thread, an encoder thread and the consumer, joined by rendezvous
//! channels (see the module docs of `pdf`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

use pdfium_render::prelude::*;

use super::{
    inspect, jpeg, library, open_document, ImageSource, Page, PageError, PdfConfig, PdfError,
};
use crate::memory;

/// Pixels are BGRx: pdfium's native layout, 4 bytes per pixel so rows need no padding.
const BYTES_PER_PIXEL: u64 = 4;

/// An iterator over the pages of one PDF, one page at a time, in order.
///
/// Dropping it early stops the background threads after the page they are working on.
pub struct PdfPages {
    page_count: u32,
    rx: Option<Receiver<Result<Page, PageError>>>,
    threads: Vec<JoinHandle<()>>,
}

enum Stage {
    /// Rendered pixels waiting for the encoder.
    Raw {
        number: u32,
        pixels: Vec<u8>,
        width: u32,
        height: u32,
        text: String,
    },
    /// A page that is one full-page JPEG: decoded at a reduced scale and encoded by the
    /// encoder thread, so the render thread goes on to the next page.
    Jpeg {
        number: u32,
        data: Vec<u8>,
        width: u32,
        height: u32,
        text: String,
    },
    /// Nothing left to do for this page.
    Done(Result<Page, PageError>),
}

impl PdfPages {
    /// Validates the document (typed [`PdfError`]s) and starts walking it.
    pub fn open(path: &Path, cfg: &PdfConfig) -> Result<Self, PdfError> {
        let info = inspect(path, cfg)?;
        let page_count = info.pages;
        let refused = info.refused;
        let (stage_tx, stage_rx) = mpsc::sync_channel::<Stage>(0);
        let (page_tx, page_rx) = mpsc::sync_channel::<Result<Page, PageError>>(0);
        let (pool_tx, pool_rx) = mpsc::channel::<Vec<u8>>();

        let render = {
            let path = path.to_path_buf();
            let cfg = cfg.clone();
            std::thread::Builder::new()
                .name("pdf-render".into())
                .spawn(move || render_loop(&path, &cfg, page_count, &refused, &stage_tx, &pool_rx))
                .map_err(|e| PdfError::Io(format!("cannot start the render thread: {e}")))?
        };
        let encode = {
            let (quality, max_image_pixels) = (cfg.jpeg_quality, cfg.max_image_pixels);
            std::thread::Builder::new()
                .name("jpeg-encode".into())
                .spawn(move || {
                    encode_loop(
                        page_count,
                        quality,
                        max_image_pixels,
                        &stage_rx,
                        &page_tx,
                        &pool_tx,
                    )
                })
                .map_err(|e| PdfError::Io(format!("cannot start the encoder thread: {e}")))?
        };
        Ok(Self {
            page_count,
            rx: Some(page_rx),
            threads: vec![render, encode],
        })
    }

    pub fn page_count(&self) -> u32 {
        self.page_count
    }
}

impl Iterator for PdfPages {
    type Item = Result<Page, PageError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.rx.as_ref()?.recv().ok()
    }
}

impl Drop for PdfPages {
    fn drop(&mut self) {
        // Closing our end makes the encoder's next send fail, which closes the render
        // thread's channel in turn; then both can be joined.
        self.rx.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        memory::release_free_memory();
    }
}

fn render_loop(
    path: &Path,
    cfg: &PdfConfig,
    page_count: u32,
    refused: &[(u32, String)],
    tx: &SyncSender<Stage>,
    pool: &Receiver<Vec<u8>>,
) {
    let pdfium = match library::pdfium() {
        Ok(p) => p,
        Err(e) => {
            let _ = tx.send(Stage::Done(Err(PageError {
                first_page: 1,
                last_page: page_count,
                reason: e.to_string(),
            })));
            return;
        }
    };
    let mut doc: Option<PdfDocument<'static>> = None;
    let mut opened_at = 0u32;
    for index in 0..page_count {
        let number = index + 1;
        if doc.is_none() || index - opened_at >= cfg.reopen_every {
            // Dropping the document frees pdfium's per-document caches.
            drop(doc.take());
            memory::release_free_memory();
            match open_document(pdfium, path) {
                Ok(d) => {
                    doc = Some(d);
                    opened_at = index;
                }
                Err(e) => {
                    let _ = tx.send(Stage::Done(Err(PageError {
                        first_page: number,
                        last_page: page_count,
                        reason: format!("the document could no longer be opened: {e}"),
                    })));
                    return;
                }
            }
        }
        // Pages the pre-flight refused, and pages that ended an earlier attempt, are never
        // handed to pdfium.
        let left_out = refused
            .iter()
            .find(|(n, _)| *n == number)
            .map(|(_, why)| why.clone())
            .or_else(|| {
                cfg.skip
                    .pages
                    .contains(&number)
                    .then(|| cfg.skip.reason.clone())
            });
        if let Some(reason) = left_out {
            let skipped = Stage::Done(Err(PageError {
                first_page: number,
                last_page: number,
                reason,
            }));
            if tx.send(skipped).is_err() {
                return;
            }
            continue;
        }
        let Some(d) = doc.as_ref() else { return };
        // Said before pdfium touches the page: if it takes the process down, the next attempt
        // knows which page did.
        cfg.watch.tell(Some(number));
        let read = catch_unwind(AssertUnwindSafe(|| {
            read_page(d, index, page_count, cfg, pool)
        }));
        cfg.watch.tell(None);
        let stage = match read {
            Ok(Ok(stage)) => stage,
            Ok(Err(reason)) => Stage::Done(Err(PageError {
                first_page: number,
                last_page: number,
                reason,
            })),
            Err(_) => {
                // pdfium's state for this document is suspect after a panic in the binding.
                doc = None;
                tracing::error!(page = number, "panic while reading a PDF page");
                Stage::Done(Err(PageError {
                    first_page: number,
                    last_page: number,
                    reason: "internal error while reading this page".into(),
                }))
            }
        };
        if tx.send(stage).is_err() {
            return; // the consumer stopped
        }
    }
}

fn read_page(
    doc: &PdfDocument<'static>,
    index: u32,
    page_count: u32,
    cfg: &PdfConfig,
    pool: &Receiver<Vec<u8>>,
) -> Result<Stage, String> {
    let number = index + 1;
    let page_index = PdfPageIndex::try_from(index).map_err(|_| "page index out of range")?;
    let page = doc
        .pages()
        .get(page_index)
        .map_err(|e| format!("cannot load the page ({e:?})"))?;
    let text = match page.text() {
        Ok(t) => normalize_text(&t.all()),
        Err(e) => {
            tracing::warn!(page = number, error = ?e, "page text layer unreadable");
            String::new()
        }
    };
    if !cfg.images {
        return Ok(Stage::Done(Ok(Page {
            number,
            page_count,
            jpeg: Vec::new(),
            width: 0,
            height: 0,
            source: ImageSource::None,
            text,
        })));
    }
    check_image_sizes(&page, cfg)?;
    let (width, height) = render_size(page.width().value, page.height().value, cfg)?;
    if let Some(full) = full_page_jpeg(&page) {
        if cfg.passthrough && passes_through(&full, page.width().value, cfg) {
            return Ok(Stage::Done(Ok(Page {
                number,
                page_count,
                jpeg: full.data,
                width: full.width,
                height: full.height,
                source: ImageSource::PassThrough,
                text,
            })));
        }
        // Decoded at a reduced scale when it covers the render size (2% slack); a smaller
        // image is left to pdfium, which scales it up as a render would.
        if cfg.scaled_decode && f64::from(full.width) >= f64::from(width) * 0.98 {
            return Ok(Stage::Jpeg {
                number,
                data: full.data,
                width,
                height,
                text,
            });
        }
    }
    let need = usize::try_from(u64::from(width) * u64::from(height) * BYTES_PER_PIXEL)
        .map_err(|_| "page too large")?;
    let mut pixels = take_buffer(pool, need);
    {
        let w = Pixels::try_from(width).map_err(|_| "page too wide")?;
        let h = Pixels::try_from(height).map_err(|_| "page too tall")?;
        let mut bitmap = PdfBitmap::from_bytes(w, h, PdfBitmapFormat::BGRx, &mut pixels)
            .map_err(|e| format!("cannot create a page bitmap ({e:?})"))?;
        let config = PdfRenderConfig::new()
            .set_target_size(w, h)
            .render_form_data(true)
            .render_annotations(true)
            .clear_before_rendering(true);
        page.render_into_bitmap_with_config(&mut bitmap, &config)
            .map_err(|e| format!("cannot render the page ({e:?})"))?;
    }
    Ok(Stage::Raw {
        number,
        pixels,
        width,
        height,
        text,
    })
}

/// A recycled buffer of at least `need` bytes, or a fresh one. The pool is drained every
/// page and only one buffer kept, so it never holds more than the pages in flight.
fn take_buffer(pool: &Receiver<Vec<u8>>, need: usize) -> Vec<u8> {
    let mut recycled = None;
    while let Ok(b) = pool.try_recv() {
        if recycled.is_none() && b.capacity() >= need {
            recycled = Some(b);
        }
    }
    let mut buf = recycled.unwrap_or_default();
    buf.clear();
    buf.resize(need, 0xFF);
    buf
}

/// Pixel size of a page rendered at `cfg.dpi`, scaled down to stay under `cfg.max_pixels`.
pub(crate) fn render_size(
    width_pt: f32,
    height_pt: f32,
    cfg: &PdfConfig,
) -> Result<(u32, u32), String> {
    if !(width_pt.is_finite() && height_pt.is_finite()) || width_pt < 1.0 || height_pt < 1.0 {
        return Err(format!(
            "the page has an unusable size ({width_pt} x {height_pt} points)"
        ));
    }
    let mut scale = f64::from(cfg.dpi) / 72.0;
    let (w, h) = (f64::from(width_pt), f64::from(height_pt));
    let pixels = w * scale * h * scale;
    if pixels > cfg.max_pixels as f64 {
        scale *= (cfg.max_pixels as f64 / pixels).sqrt();
    }
    // Floor keeps the product under the cap; jpeg-encoder takes at most 65535 per side.
    let side = |v: f64| ((v * scale).floor() as u32).clamp(1, 65_535);
    Ok((side(w), side(h)))
}

/// Refuses pages whose embedded images would need more memory to decode than the budget.
fn check_image_sizes(page: &PdfPage, cfg: &PdfConfig) -> Result<(), String> {
    for object in page.objects().iter() {
        if let Some(image) = object.as_image_object() {
            let (w, h) = (image.width().unwrap_or(0), image.height().unwrap_or(0));
            let pixels = u64::try_from(w).unwrap_or(0) * u64::try_from(h).unwrap_or(0);
            if pixels > cfg.max_image_pixels {
                return Err(format!(
                    "the page holds an image of {w} x {h} pixels, more than the limit of {} \
                     pixels; scan at 300 DPI or less",
                    cfg.max_image_pixels
                ));
            }
        }
    }
    Ok(())
}

/// A page's one image when it is a full-page JPEG drawn upright over the whole page, with no
/// transparency, in a colour space whose JPEG decodes to what a render shows.
struct FullPageJpeg {
    data: Vec<u8>,
    width: u32,
    height: u32,
}

fn full_page_jpeg(page: &PdfPage) -> Option<FullPageJpeg> {
    if !matches!(page.rotation(), Ok(PdfPageRenderRotation::None)) {
        return None;
    }
    let objects = page.objects();
    if objects.len() != 1 {
        return None;
    }
    let object = objects.get(0).ok()?;
    if object.has_transparency() {
        return None;
    }
    let image = object.as_image_object()?;
    let filters = image.filters();
    if filters.len() != 1 || filters.get(0).ok()?.name() != "DCTDecode" {
        return None;
    }
    // Device and calibrated RGB/gray, and ICC-based ones (scanners tag sRGB or gray
    // profiles): the JPEG's own component count decides which, and must agree below.
    let expect_components = match image.color_space().ok()? {
        PdfColorSpace::DeviceRGB | PdfColorSpace::CalibratedCIERGB => Some(3),
        PdfColorSpace::DeviceGray | PdfColorSpace::CalibratedCIEGray => Some(1),
        PdfColorSpace::CalibratedICCProfile => None,
        _ => return None,
    };
    // Upright, unflipped, and covering the page box (within 1%).
    let m = object.matrix().ok()?;
    if m.b() != 0.0 || m.c() != 0.0 || m.a() <= 0.0 || m.d() <= 0.0 {
        return None;
    }
    let (pw, ph) = (page.width().value, page.height().value);
    let bounds = object.bounds().ok()?;
    let near = |a: f32, b: f32, span: f32| (a - b).abs() <= span * 0.01 + 0.5;
    if !(near(bounds.left().value, 0.0, pw)
        && near(bounds.bottom().value, 0.0, ph)
        && near(bounds.right().value, pw, pw)
        && near(bounds.top().value, ph, ph))
    {
        return None;
    }
    let (w, h) = (
        u32::try_from(image.width().ok()?).ok()?,
        u32::try_from(image.height().ok()?).ok()?,
    );
    let data = image.get_raw_image_data().ok()?;
    let info = jpeg::parse_header(&data)?;
    let components_ok = match expect_components {
        Some(n) => info.components == n,
        None => matches!(info.components, 1 | 3),
    };
    if !info.common_coding
        || info.precision != 8
        || !components_ok
        || (info.width, info.height) != (w, h)
    {
        return None;
    }
    Some(FullPageJpeg {
        data,
        width: w,
        height: h,
    })
}

/// Whether handing the page's JPEG over as it is gives the picture a render would: at least the
/// configured resolution (2% slack for rounding in the scanner's page size), within the pixel
/// and size caps.
fn passes_through(full: &FullPageJpeg, page_width_pt: f32, cfg: &PdfConfig) -> bool {
    let dpi = f64::from(full.width) / (f64::from(page_width_pt) / 72.0);
    dpi >= f64::from(cfg.dpi) * 0.98
        && u64::from(full.width) * u64::from(full.height) <= cfg.max_image_pixels
        && full.data.len() <= cfg.passthrough_max_bytes
}

fn encode_loop(
    page_count: u32,
    quality: u8,
    max_image_pixels: u64,
    rx: &Receiver<Stage>,
    tx: &SyncSender<Result<Page, PageError>>,
    pool: &Sender<Vec<u8>>,
) {
    for stage in rx {
        let out = match stage {
            Stage::Done(result) => result,
            Stage::Jpeg {
                number,
                data,
                width,
                height,
                text,
            } => catch_unwind(AssertUnwindSafe(|| {
                decode_and_encode(&data, (width, height), quality, max_image_pixels)
            }))
            .unwrap_or_else(|_| Err("internal error while decoding this page".into()))
            .map(|(jpeg, width, height)| Page {
                number,
                page_count,
                jpeg,
                width,
                height,
                source: ImageSource::Decoded,
                text,
            })
            .map_err(|reason| PageError {
                first_page: number,
                last_page: number,
                reason,
            }),
            Stage::Raw {
                number,
                pixels,
                width,
                height,
                text,
            } => {
                let encoded = catch_unwind(AssertUnwindSafe(|| {
                    encode_bgrx(&pixels, width, height, quality)
                }))
                .unwrap_or_else(|_| Err("internal error while encoding this page".into()));
                if pool.send(pixels).is_err() {
                    tracing::debug!("render thread gone; dropping page buffer");
                }
                encoded
                    .map(|jpeg| Page {
                        number,
                        page_count,
                        jpeg,
                        width,
                        height,
                        source: ImageSource::Rendered,
                        text,
                    })
                    .map_err(|reason| PageError {
                        first_page: number,
                        last_page: number,
                        reason,
                    })
            }
        };
        if tx.send(out).is_err() {
            return;
        }
    }
}

/// A full-page JPEG decoded at the smallest DCT scale covering `target`, shrunk to it and
/// encoded.
fn decode_and_encode(
    data: &[u8],
    target: (u32, u32),
    quality: u8,
    max_image_pixels: u64,
) -> Result<(Vec<u8>, u32, u32), String> {
    let cfg = PdfConfig {
        max_image_pixels,
        ..PdfConfig::default()
    };
    let (rgb, width, height) = crate::photo::page_from_jpeg(data, target, &cfg)
        .map_err(|e| format!("cannot decode the page's image ({e})"))?;
    let w = u16::try_from(width).map_err(|_| "page too wide to encode")?;
    let h = u16::try_from(height).map_err(|_| "page too tall to encode")?;
    let mut out = Vec::with_capacity(rgb.len() / 10);
    jpeg_encoder::Encoder::new(&mut out, quality)
        .encode(&rgb, w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| format!("cannot encode the page image ({e})"))?;
    Ok((out, width, height))
}

fn encode_bgrx(pixels: &[u8], width: u32, height: u32, quality: u8) -> Result<Vec<u8>, String> {
    let w = u16::try_from(width).map_err(|_| "page too wide to encode")?;
    let h = u16::try_from(height).map_err(|_| "page too tall to encode")?;
    // Scanned pages compress to roughly a tenth of their BGRx size; start near that.
    let mut out = Vec::with_capacity(pixels.len() / 10);
    jpeg_encoder::Encoder::new(&mut out, quality)
        .encode(pixels, w, h, jpeg_encoder::ColorType::Bgra)
        .map_err(|e| format!("cannot encode the page image ({e})"))?;
    Ok(out)
}

/// pdfium separates lines with `\r\n` and marks soft hyphens and line-end hyphens with
/// control characters; callers want plain `\n`-separated text.
fn normalize_text(raw: &str) -> String {
    raw.replace("\r\n", "\n")
        .chars()
        .map(|c| if c == '\r' { '\n' } else { c })
        .filter(|&c| c == '\n' || c == '\t' || !c.is_control())
        .filter(|&c| c != '\u{FFFE}')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_size_follows_dpi_and_caps_pixels() {
        let cfg = PdfConfig::default();
        assert_eq!(render_size(612.0, 792.0, &cfg).unwrap(), (1275, 1650));
        let huge = render_size(14_400.0, 14_400.0, &cfg).unwrap();
        assert!(u64::from(huge.0) * u64::from(huge.1) <= cfg.max_pixels);
        assert!(huge.0 >= 2400, "{huge:?}");
        assert!(render_size(0.0, 792.0, &cfg).is_err());
        assert!(render_size(f32::NAN, 792.0, &cfg).is_err());
        // A 200-inch strip: capped, and no side is ever zero.
        let strip = render_size(14_400.0, 3.0, &cfg).unwrap();
        assert!(strip.1 >= 1);
    }

    #[test]
    fn text_is_normalised() {
        assert_eq!(normalize_text("a\r\nb\rc\u{2}d"), "a\nb\ncd");
    }
}
