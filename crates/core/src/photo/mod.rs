//! JPEG and PNG uploads (phone photos of checks, scanner output) as one page for a vision
//! extractor: turned upright by their EXIF orientation, scaled down to the render pixel cap, and
//! encoded as a JPEG like a rendered PDF page.
//!
//! A photo costs about what its output image costs, not what its pixels would: a JPEG is decoded
//! at 1/2, 1/4 or 1/8 of its size where that still covers the output (DCT scaling), a PNG row
//! by row straight into the resize. Before decoding, the pixel count is checked against
//! `PDF_MAX_IMAGE_PIXELS` and the decoder's own memory against the same ceiling in bytes
//! (docs/MEMORY.md; figures in docs/PERFORMANCE.md, "Photos").

mod shrink;
pub mod synth;

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use image::metadata::Orientation;

use crate::filetype::FileKind;
use crate::pdf::{ImageSource, Page, PdfConfig};
use shrink::Shrink;

#[derive(Debug, thiserror::Error)]
pub enum PhotoError {
    #[error("cannot read the image: {0}")]
    Unreadable(String),
    #[error("the image is too large to read ({0}); scan or photograph it at a lower resolution")]
    TooLarge(String),
}

/// Decodes `path` into one upright page of at most `cfg.max_pixels` pixels.
pub fn load_page(path: &Path, cfg: &PdfConfig) -> Result<Page, PhotoError> {
    let unreadable = |e: &dyn std::fmt::Display| PhotoError::Unreadable(e.to_string());
    let kind = crate::filetype::sniff_path(path).map_err(|e| unreadable(&e))?;
    let file = File::open(path).map_err(|e| unreadable(&e))?;
    let scaled = match kind {
        FileKind::Jpeg => decode_jpeg(BufReader::new(file), cfg)?,
        FileKind::Png => decode_png(BufReader::new(file), cfg)?,
        other => {
            return Err(PhotoError::Unreadable(format!(
                "a {} file is not a photo",
                other.as_str()
            )))
        }
    };
    tracing::debug!(decoded = ?scaled.decoded, out = ?(scaled.width, scaled.height), "photo");
    let (rgb, width, height) = scaled.upright()?;
    let w = u16::try_from(width).map_err(|_| PhotoError::TooLarge(format!("{width} px wide")))?;
    let h = u16::try_from(height).map_err(|_| PhotoError::TooLarge(format!("{height} px tall")))?;
    let mut jpeg = Vec::with_capacity(rgb.len() / 10);
    jpeg_encoder::Encoder::new(&mut jpeg, cfg.jpeg_quality)
        .encode(&rgb, w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| unreadable(&e))?;
    Ok(Page {
        number: 1,
        page_count: 1,
        jpeg,
        width,
        height,
        source: ImageSource::Rendered,
        text: String::new(),
    })
}

/// A decoded, scaled image before its EXIF orientation is applied.
struct Scaled {
    rgb: Vec<u8>,
    width: u32,
    height: u32,
    orientation: Orientation,
    /// The size the decoder produced (smaller than the file's with DCT scaling).
    decoded: (u32, u32),
}

impl Scaled {
    fn upright(self) -> Result<(Vec<u8>, u32, u32), PhotoError> {
        if self.orientation == Orientation::NoTransforms {
            return Ok((self.rgb, self.width, self.height));
        }
        let img = image::RgbImage::from_raw(self.width, self.height, self.rgb)
            .ok_or_else(|| PhotoError::Unreadable("the decoded image is incomplete".into()))?;
        let mut img = image::DynamicImage::ImageRgb8(img);
        img.apply_orientation(self.orientation);
        let rgb = img.into_rgb8();
        let (w, h) = rgb.dimensions();
        Ok((rgb.into_raw(), w, h))
    }
}

/// What the decoder may allocate: an RGBA image at `PDF_MAX_IMAGE_PIXELS`, as for an image
/// embedded in a PDF.
fn decode_budget(cfg: &PdfConfig) -> u64 {
    cfg.max_image_pixels.saturating_mul(4)
}

fn check_pixels(w: u32, h: u32, cfg: &PdfConfig) -> Result<(), PhotoError> {
    if u64::from(w) * u64::from(h) > cfg.max_image_pixels {
        return Err(PhotoError::TooLarge(format!(
            "{w} x {h} pixels, the limit is {} million",
            cfg.max_image_pixels / 1_000_000
        )));
    }
    Ok(())
}

fn check_budget(what: &str, bytes: u64, cfg: &PdfConfig) -> Result<(), PhotoError> {
    let budget = decode_budget(cfg);
    if bytes > budget {
        return Err(PhotoError::TooLarge(format!(
            "{what} needs {} MB to decode, the limit is {} MB",
            bytes / 1_000_000,
            budget / 1_000_000
        )));
    }
    Ok(())
}

/// The output size: `w` x `h` scaled down to at most `max_pixels`, aspect kept.
fn target_size(w: u32, h: u32, max_pixels: u64) -> (u32, u32) {
    let pixels = u64::from(w) * u64::from(h);
    if pixels <= max_pixels {
        return (w, h);
    }
    let scale = (max_pixels as f64 / pixels as f64).sqrt();
    let w = ((f64::from(w) * scale).floor() as u32).max(1);
    let h = ((f64::from(h) * scale).floor() as u32).max(1);
    (w, h)
}

/// Pixel layouts the decoders hand over, converted to RGB one row at a time.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Layout {
    Gray,
    Gray16,
    GrayAlpha,
    Rgb,
    Rgba,
    Cmyk,
}

impl Layout {
    fn bytes(self) -> usize {
        match self {
            Layout::Gray => 1,
            Layout::Gray16 | Layout::GrayAlpha => 2,
            Layout::Rgb => 3,
            Layout::Rgba | Layout::Cmyk => 4,
        }
    }

    /// `src` as RGB: in place when it already is, otherwise converted into `buf`.
    fn rgb<'a>(self, src: &'a [u8], buf: &'a mut Vec<u8>) -> &'a [u8] {
        // Transparent pixels are laid on white paper, as a viewer shows them.
        fn over_white(v: u8, a: u8) -> u8 {
            ((u16::from(v) * u16::from(a) + 255 * (255 - u16::from(a)) + 127) / 255) as u8
        }
        if self == Layout::Rgb {
            return src;
        }
        buf.clear();
        for p in src.chunks_exact(self.bytes()) {
            let px = match self {
                Layout::Gray => [p[0]; 3],
                Layout::Gray16 => [(u16::from_ne_bytes([p[0], p[1]]) >> 8) as u8; 3],
                Layout::GrayAlpha => [over_white(p[0], p[1]); 3],
                Layout::Rgb => [p[0], p[1], p[2]],
                Layout::Rgba => [
                    over_white(p[0], p[3]),
                    over_white(p[1], p[3]),
                    over_white(p[2], p[3]),
                ],
                // The decoder hands over CMYK as ink amounts (0 = no ink).
                Layout::Cmyk => {
                    let k = 255 - u16::from(p[3]);
                    let ink = |c: u8| ((255 - u16::from(c)) * k / 255) as u8;
                    [ink(p[0]), ink(p[1]), ink(p[2])]
                }
            };
            buf.extend_from_slice(&px);
        }
        buf
    }
}

// ---------------------------------------------------------------------------------------------
// JPEG

fn decode_jpeg(file: BufReader<File>, cfg: &PdfConfig) -> Result<Scaled, PhotoError> {
    decode_jpeg_to(file, None, cfg)
}

/// A PDF page that is one full-page JPEG, made into the page image at `target` pixels by
/// decoding the JPEG at the smallest DCT scale that covers it (a 300 DPI scan read at 150 DPI is
/// decoded at half size: a quarter of the pixels, none of pdfium's full-size decode) and
/// shrinking the rest of the way. RGB8, its width and height. The JPEG's own EXIF orientation is
/// ignored: the page's placement decides that, and the caller checked it is upright.
pub(crate) fn page_from_jpeg(
    data: &[u8],
    target: (u32, u32),
    cfg: &PdfConfig,
) -> Result<(Vec<u8>, u32, u32), PhotoError> {
    let scaled = decode_jpeg_to(std::io::Cursor::new(data), Some(target), cfg)?;
    Ok((scaled.rgb, scaled.width, scaled.height))
}

/// Decodes a JPEG scaled to `target` (none: the render pixel cap).
fn decode_jpeg_to<R: Read + Seek>(
    mut file: R,
    target: Option<(u32, u32)>,
    cfg: &PdfConfig,
) -> Result<Scaled, PhotoError> {
    let frame = read_jpeg_frame(&mut file)?;
    check_pixels(frame.width, frame.height, cfg)?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| PhotoError::Unreadable(e.to_string()))?;
    let (dw, dh) = target.unwrap_or_else(|| target_size(frame.width, frame.height, cfg.max_pixels));
    let mut decoder = jpeg_decoder::Decoder::new(file);
    // Decode at the smallest of 1/8, 1/4, 1/2 and full size that still covers the output.
    let eighths = if frame.lossless {
        8
    } else {
        let (sw, _) = decoder
            .scale(clamp_u16(dw), clamp_u16(dh))
            .map_err(jpeg_error)?;
        [1, 2, 4, 8]
            .into_iter()
            .find(|&s| (frame.width * s).div_ceil(8) == u32::from(sw))
            .unwrap_or(8)
    };
    check_budget("this JPEG", frame.decode_bytes(eighths), cfg)?;
    let data = decoder.decode().map_err(jpeg_error)?;
    let info = decoder
        .info()
        .ok_or_else(|| PhotoError::Unreadable("the JPEG has no frame".into()))?;
    let orientation = decoder
        .exif_data()
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    let layout = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => Layout::Gray,
        jpeg_decoder::PixelFormat::L16 => Layout::Gray16,
        jpeg_decoder::PixelFormat::RGB24 => Layout::Rgb,
        jpeg_decoder::PixelFormat::CMYK32 => Layout::Cmyk,
    };
    let (sw, sh) = (u32::from(info.width), u32::from(info.height));
    let (dw, dh) = (dw.min(sw), dh.min(sh));
    if layout == Layout::Rgb && (sw, sh) == (dw, dh) {
        return Ok(Scaled {
            rgb: data,
            width: sw,
            height: sh,
            orientation,
            decoded: (sw, sh),
        });
    }
    let mut shrink = Shrink::new((sw, sh), (dw, dh), true)?;
    let mut buf = Vec::new();
    for (y, row) in (0..sh).zip(data.chunks_exact(sw as usize * layout.bytes())) {
        shrink.add(y, 0, 1, layout.rgb(row, &mut buf));
    }
    drop(data);
    let (rgb, width, height) = shrink.finish();
    Ok(Scaled {
        rgb,
        width,
        height,
        orientation,
        decoded: (sw, sh),
    })
}

fn clamp_u16(v: u32) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

fn jpeg_error(e: jpeg_decoder::Error) -> PhotoError {
    PhotoError::Unreadable(e.to_string())
}

/// A JPEG's frame header: what decoding it will cost is known from it.
#[derive(Debug)]
struct JpegFrame {
    width: u32,
    height: u32,
    progressive: bool,
    lossless: bool,
    /// Each component's horizontal and vertical sampling factors.
    sampling: Vec<(u32, u32)>,
}

impl JpegFrame {
    /// Bytes the decoder holds at once when it decodes at `eighths`/8 of the size: each
    /// component's samples (and for a progressive JPEG, its coefficients at full size, two
    /// bytes each), then the pixels it returns.
    fn decode_bytes(&self, eighths: u32) -> u64 {
        let (w, h) = (u64::from(self.width), u64::from(self.height));
        let components = self.sampling.len() as u64;
        if self.lossless {
            return components * w * h * 2 * 2;
        }
        let hmax = self.sampling.iter().map(|s| s.0).max().unwrap_or(1).max(1);
        let vmax = self.sampling.iter().map(|s| s.1).max().unwrap_or(1).max(1);
        let mcu_x = w.div_ceil(8 * u64::from(hmax));
        let mcu_y = h.div_ceil(8 * u64::from(vmax));
        let s = u64::from(eighths);
        let mut bytes = w.div_ceil(8) * s * h.div_ceil(8) * s * components.min(4);
        for &(ch, cv) in &self.sampling {
            let blocks = mcu_x * u64::from(ch) * mcu_y * u64::from(cv);
            bytes += blocks * s * s;
            if self.progressive {
                bytes += blocks * 64 * 2;
            }
        }
        bytes
    }
}

/// Reads the markers up to the frame header (SOFn) without decoding anything.
fn read_jpeg_frame(r: &mut impl Read) -> Result<JpegFrame, PhotoError> {
    fn byte(r: &mut impl Read) -> Result<u8, PhotoError> {
        let mut b = [0u8];
        r.read_exact(&mut b).map_err(|_| truncated())?;
        Ok(b[0])
    }
    fn truncated() -> PhotoError {
        PhotoError::Unreadable("the JPEG ends before its image header".into())
    }
    if [byte(r)?, byte(r)?] != [0xFF, 0xD8] {
        return Err(PhotoError::Unreadable("not a JPEG file".into()));
    }
    loop {
        if byte(r)? != 0xFF {
            return Err(PhotoError::Unreadable(
                "the JPEG's markers are damaged".into(),
            ));
        }
        let mut marker = byte(r)?;
        while marker == 0xFF {
            marker = byte(r)?;
        }
        match marker {
            0x01 | 0xD0..=0xD7 => continue,
            0xD9 | 0xDA => return Err(truncated()),
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([byte(r)?, byte(r)?]));
        let body = len.checked_sub(2).ok_or_else(truncated)?;
        let is_frame = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if !is_frame {
            let skipped = std::io::copy(&mut r.take(body as u64), &mut std::io::sink())
                .map_err(|_| truncated())?;
            if skipped != body as u64 {
                return Err(truncated());
            }
            continue;
        }
        let mut seg = vec![0u8; body];
        r.read_exact(&mut seg).map_err(|_| truncated())?;
        let (height, width, count) = match seg.get(..6) {
            Some(h) => (
                u16::from_be_bytes([h[1], h[2]]),
                u16::from_be_bytes([h[3], h[4]]),
                usize::from(h[5]),
            ),
            None => return Err(truncated()),
        };
        let sampling = seg
            .get(6..6 + 3 * count)
            .ok_or_else(truncated)?
            .chunks_exact(3)
            .map(|c| (u32::from(c[1] >> 4), u32::from(c[1] & 0x0F)))
            .collect();
        return Ok(JpegFrame {
            width: u32::from(width),
            height: u32::from(height),
            progressive: matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE),
            lossless: matches!(marker, 0xC3 | 0xC7 | 0xCB | 0xCF),
            sampling,
        });
    }
}

// ---------------------------------------------------------------------------------------------
// PNG

/// Adam7 passes: first column, first row, column step, row step.
const ADAM7: [(u32, u32, u32, u32); 7] = [
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
];

fn decode_png(file: BufReader<File>, cfg: &PdfConfig) -> Result<Scaled, PhotoError> {
    let mut decoder = png::Decoder::new(file);
    // 8-bit gray, gray+alpha, RGB or RGBA rows whatever the file's colour type and depth.
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    // Text and colour-profile chunks are not needed; skipping them bounds what they can cost.
    decoder.set_ignore_text_chunk(true);
    decoder.set_ignore_iccp_chunk(true);
    let (w, h) = {
        let info = decoder.read_header_info().map_err(png_error)?;
        (info.width, info.height)
    };
    check_pixels(w, h, cfg)?;
    let mut reader = decoder.read_info().map_err(png_error)?;
    let interlaced = reader.info().interlaced;
    let orientation = reader
        .info()
        .exif_metadata
        .as_deref()
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    let layout = match reader.output_color_type().0 {
        png::ColorType::Grayscale => Layout::Gray,
        png::ColorType::GrayscaleAlpha => Layout::GrayAlpha,
        png::ColorType::Rgb => Layout::Rgb,
        png::ColorType::Rgba => Layout::Rgba,
        png::ColorType::Indexed => {
            return Err(PhotoError::Unreadable("unexpanded palette".into()));
        }
    };
    let (dw, dh) = target_size(w, h, cfg.max_pixels);
    // Interlaced rows come in seven passes over the whole image, so every output row stays open.
    check_budget(
        "this interlaced PNG",
        Shrink::working_bytes(w, (dw, dh), !interlaced),
        cfg,
    )?;
    let mut shrink = Shrink::new((w, h), (dw, dh), !interlaced)?;
    let mut buf = Vec::new();
    let mut next = (1u8, 0u32);
    while let Some(row) = reader.next_interlaced_row().map_err(png_error)? {
        let (y, x0, dx) = match row.interlace() {
            png::InterlaceInfo::Null(_) => {
                let y = next.1;
                next.1 += 1;
                (y, 0, 1)
            }
            png::InterlaceInfo::Adam7(info) => {
                // The pass and line are not public: find them among the ones that can follow.
                let (pass, line) = (next.0..=7)
                    .map(|p| (p, if p == next.0 { next.1 } else { 0 }))
                    .find(|&(p, l)| *info == png::Adam7Info::new(p, l, w))
                    .ok_or_else(|| PhotoError::Unreadable("interlaced rows out of order".into()))?;
                next = (pass, line + 1);
                let (x0, y0, dx, dy) = ADAM7[usize::from(pass - 1)];
                (y0 + line * dy, x0, dx)
            }
        };
        shrink.add(y, x0, dx, layout.rgb(row.data(), &mut buf));
    }
    let (rgb, width, height) = shrink.finish();
    Ok(Scaled {
        rgb,
        width,
        height,
        orientation,
        decoded: (w, h),
    })
}

fn png_error(e: png::DecodingError) -> PhotoError {
    match e {
        png::DecodingError::LimitsExceeded => {
            PhotoError::TooLarge("over the PNG decoder's memory limit".into())
        }
        other => PhotoError::Unreadable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::synth::{check_pattern, stored_pixels, write_jpeg, write_png};
    use super::*;

    fn write_rgb_png(path: &Path, w: u32, h: u32) {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 255) as u8, (y % 255) as u8, 90])
        });
        img.save(path).unwrap();
    }

    fn decode(page: &Page) -> image::RgbImage {
        image::load_from_memory(&page.jpeg).unwrap().to_rgb8()
    }

    /// The pattern's marks where `check_pattern` put them: red along the top, blue down the
    /// left, paper elsewhere.
    fn assert_upright(img: &image::RgbImage) {
        let (w, h) = img.dimensions();
        let at = |x: u32, y: u32| img.get_pixel(x, y).0;
        let top = at(w / 2, h / 30);
        assert!(top[0] > 150 && top[2] < 90, "top {top:?}");
        let left = at(w / 30, h / 2);
        assert!(left[2] > 150 && left[0] < 90, "left {left:?}");
        let paper = at(w * 3 / 4, h * 3 / 4);
        assert!(paper.iter().all(|&c| c > 120), "paper {paper:?}");
    }

    #[test]
    fn a_large_photo_is_scaled_to_the_pixel_cap() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("check.png");
        write_rgb_png(&p, 3000, 2000);
        let cfg = PdfConfig {
            max_pixels: 1_500_000,
            ..PdfConfig::default()
        };
        let page = load_page(&p, &cfg).unwrap();
        assert!(u64::from(page.width) * u64::from(page.height) <= 1_500_000);
        let ratio = f64::from(page.width) / f64::from(page.height);
        assert!((ratio - 1.5).abs() < 0.01, "{ratio}");
        assert!(page.jpeg.starts_with(&[0xFF, 0xD8, 0xFF]));
    }

    #[test]
    fn exif_orientation_turns_the_photo_upright() {
        // A 40x20 JPEG whose EXIF says "rotate 90 degrees clockwise to view" (orientation 6).
        let pixels = vec![128u8; 40 * 20 * 3];
        let mut jpeg = Vec::new();
        let mut enc = jpeg_encoder::Encoder::new(&mut jpeg, 90);
        enc.add_app_segment(1, synth::exif_orientation(6)).unwrap();
        enc.encode(&pixels, 40, 20, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sideways.jpg");
        std::fs::write(&p, &jpeg).unwrap();
        let page = load_page(&p, &PdfConfig::default()).unwrap();
        assert_eq!((page.width, page.height), (20, 40));
    }

    #[test]
    fn every_exif_orientation_of_a_scaled_jpeg_ends_upright() {
        let dir = tempfile::tempdir().unwrap();
        // 1600 x 800 stored; the cap of 50,000 pixels lets the decoder work at 1/4 size.
        let cfg = PdfConfig {
            max_pixels: 50_000,
            ..PdfConfig::default()
        };
        for o in 1..=8u16 {
            let p = dir.path().join(format!("o{o}.jpg"));
            let (dw, dh) = if o >= 5 { (800, 1600) } else { (1600, 800) };
            let pixel = stored_pixels(o, 1600, 800, check_pattern(dw, dh));
            write_jpeg(&p, 1600, 800, 90, Some(o), pixel).unwrap();
            let scaled = decode_jpeg(BufReader::new(File::open(&p).unwrap()), &cfg).unwrap();
            assert_eq!(scaled.decoded, (400, 200), "orientation {o}");
            let page = load_page(&p, &cfg).unwrap();
            let img = decode(&page);
            assert_eq!(img.dimensions(), (page.width, page.height));
            let expected = if o >= 5 { (158, 316) } else { (316, 158) };
            assert_eq!((page.width, page.height), expected, "orientation {o}");
            assert_upright(&img);
        }
    }

    #[test]
    fn a_png_is_read_row_by_row_into_the_scaled_image() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.png");
        write_png(&p, 1200, 1320, check_pattern(1200, 1320)).unwrap();
        let cfg = PdfConfig {
            max_pixels: 240_000,
            ..PdfConfig::default()
        };
        let page = load_page(&p, &cfg).unwrap();
        assert_eq!((page.width, page.height), (467, 513));
        assert_upright(&decode(&page));
    }

    /// An Adam7-interlaced PNG of `pixel`, written by hand (the encoder writes no interlacing):
    /// each pass's rows, unfiltered, in stored deflate blocks.
    fn interlaced_png(w: u32, h: u32, pixel: impl Fn(u32, u32) -> [u8; 4]) -> Vec<u8> {
        let mut raw = Vec::new();
        for (x0, y0, dx, dy) in ADAM7 {
            if x0 >= w || y0 >= h {
                continue;
            }
            for y in (y0..h).step_by(dy as usize) {
                raw.push(0);
                for x in (x0..w).step_by(dx as usize) {
                    raw.extend(pixel(x, y));
                }
            }
        }
        let mut zlib = vec![0x78, 0x01];
        let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
        for (i, block) in blocks.iter().enumerate() {
            zlib.push(u8::from(i + 1 == blocks.len()));
            let len = block.len() as u16;
            zlib.extend(len.to_le_bytes());
            zlib.extend((!len).to_le_bytes());
            zlib.extend_from_slice(block);
        }
        let (mut a, mut b) = (1u32, 0u32);
        for &byte in &raw {
            a = (a + u32::from(byte)) % 65_521;
            b = (b + a) % 65_521;
        }
        zlib.extend(((b << 16) | a).to_be_bytes());
        let mut out = Vec::new();
        let mut info = png::Info::with_size(w, h);
        info.color_type = png::ColorType::Rgba;
        info.bit_depth = png::BitDepth::Eight;
        info.interlaced = true;
        let mut writer = png::Encoder::with_info(&mut out, info)
            .unwrap()
            .write_header()
            .unwrap();
        writer.write_chunk(png::chunk::IDAT, &zlib).unwrap();
        writer.finish().unwrap();
        out
    }

    #[test]
    fn an_interlaced_png_scales_like_the_same_image_not_interlaced() {
        let (w, h) = (203, 157);
        let pattern = check_pattern(w, h);
        // Half the paper transparent: laid on white.
        let pixel = |x: u32, y: u32| {
            let [r, g, b] = pattern(x, y);
            [r, g, b, if x > w / 2 && y > h / 2 { 0 } else { 255 }]
        };
        let dir = tempfile::tempdir().unwrap();
        let interlaced = dir.path().join("adam7.png");
        std::fs::write(&interlaced, interlaced_png(w, h, pixel)).unwrap();
        let plain = dir.path().join("plain.png");
        image::RgbaImage::from_fn(w, h, |x, y| image::Rgba(pixel(x, y)))
            .save(&plain)
            .unwrap();
        let cfg = PdfConfig {
            max_pixels: 5_000,
            ..PdfConfig::default()
        };
        let a = decode_png(BufReader::new(File::open(&interlaced).unwrap()), &cfg).unwrap();
        let b = decode_png(BufReader::new(File::open(&plain).unwrap()), &cfg).unwrap();
        assert_eq!((a.width, a.height), (b.width, b.height));
        let worst = a.rgb.iter().zip(&b.rgb).map(|(x, y)| x.abs_diff(*y)).max();
        assert!(worst <= Some(1), "{worst:?}");
        // The transparent quarter is white.
        let at = |x: u32, y: u32| &a.rgb[((y * a.width + x) * 3) as usize..][..3];
        assert_eq!(at(a.width - 2, a.height - 2), &[255, 255, 255]);
    }

    #[test]
    fn grey_palette_and_16_bit_pngs_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let cases: Vec<(&str, image::DynamicImage)> = vec![
            (
                "grey",
                image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(
                    30,
                    20,
                    image::Luma([100]),
                )),
            ),
            (
                "grey-alpha",
                image::DynamicImage::ImageLumaA8(image::GrayAlphaImage::from_pixel(
                    30,
                    20,
                    image::LumaA([100, 255]),
                )),
            ),
            (
                "rgb16",
                image::DynamicImage::ImageRgb16(image::ImageBuffer::from_pixel(
                    30,
                    20,
                    image::Rgb([25_700u16; 3]),
                )),
            ),
        ];
        for (name, img) in cases {
            let p = dir.path().join(format!("{name}.png"));
            img.save(&p).unwrap();
            let s = decode_png(
                BufReader::new(File::open(&p).unwrap()),
                &PdfConfig::default(),
            )
            .unwrap();
            assert_eq!((s.width, s.height), (30, 20), "{name}");
            assert!(s.rgb.iter().all(|&v| v == 100), "{name}: {:?}", &s.rgb[..6]);
        }
    }

    #[test]
    fn a_progressive_jpeg_too_costly_to_decode_is_refused_before_decoding() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("progressive.jpg");
        let pixels = vec![200u8; 1000 * 1000 * 3];
        let mut enc = jpeg_encoder::Encoder::new(std::fs::File::create(&p).unwrap(), 80);
        enc.set_progressive(true);
        enc.encode(&pixels, 1000, 1000, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        // 1 Mpx is allowed, but its coefficients alone (3 MB) and the pixels exceed 4 MB.
        let cfg = PdfConfig {
            max_image_pixels: 1_000_000,
            ..PdfConfig::default()
        };
        let err = load_page(&p, &cfg).unwrap_err();
        assert!(matches!(err, PhotoError::TooLarge(_)), "{err}");
        assert!(err.to_string().contains("needs 7 MB"), "{err}");
        // With room for it, it decodes.
        let page = load_page(&p, &PdfConfig::default()).unwrap();
        assert_eq!((page.width, page.height), (1000, 1000));
    }

    #[test]
    fn garbage_and_oversized_images_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in [
            ("bad.png", b"\x89PNG\r\n\x1a\nnot really".to_vec()),
            ("bad.jpg", b"\xFF\xD8\xFF\xE0\x00\x10JFIF".to_vec()),
            ("empty.jpg", b"\xFF\xD8\xFF\xD9".to_vec()),
        ] {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            assert!(
                matches!(
                    load_page(&p, &PdfConfig::default()),
                    Err(PhotoError::Unreadable(_))
                ),
                "{name}"
            );
        }
        let big = dir.path().join("big.png");
        write_rgb_png(&big, 2000, 2000);
        let cfg = PdfConfig {
            max_image_pixels: 1_000_000,
            ..PdfConfig::default()
        };
        assert!(matches!(
            load_page(&big, &cfg),
            Err(PhotoError::TooLarge(_))
        ));
        // A truncated photo is an error too, not a half image.
        let cut = dir.path().join("cut.png");
        let bytes = std::fs::read(&big).unwrap();
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        assert!(load_page(&cut, &PdfConfig::default()).is_err());
    }
}
