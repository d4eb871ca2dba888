//! JPEG and PNG uploads (phone photos of checks, scanner output) as one page for a vision
//! extractor: decoded with a memory limit, turned upright by their EXIF orientation, scaled down
//! to the render pixel cap, and encoded as a JPEG like a rendered PDF page.

use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

use crate::pdf::{ImageSource, Page, PdfConfig};

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
    let mut reader = ImageReader::open(path)
        .map_err(|e| unreadable(&e))?
        .with_guessed_format()
        .map_err(|e| unreadable(&e))?;
    // The same ceiling as an embedded PDF image: RGBA at PDF_MAX_IMAGE_PIXELS.
    let mut limits = Limits::default();
    limits.max_alloc = Some(cfg.max_image_pixels.saturating_mul(4));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| classify(&e))?;
    // Decoders treat the allocation limit as a hint; the pixel count decides before decoding.
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > cfg.max_image_pixels {
        return Err(PhotoError::TooLarge(format!(
            "{w} x {h} pixels, the limit is {} million",
            cfg.max_image_pixels / 1_000_000
        )));
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| classify(&e))?;
    img.apply_orientation(orientation);
    let pixels = u64::from(img.width()) * u64::from(img.height());
    if pixels > cfg.max_pixels {
        let scale = (cfg.max_pixels as f64 / pixels as f64).sqrt();
        let w = ((f64::from(img.width()) * scale).floor() as u32).max(1);
        let h = ((f64::from(img.height()) * scale).floor() as u32).max(1);
        img = img.resize_exact(w, h, image::imageops::FilterType::Triangle);
    }
    let rgb = img.to_rgb8();
    drop(img);
    let (width, height) = rgb.dimensions();
    let w = u16::try_from(width).map_err(|_| PhotoError::TooLarge(format!("{width} px wide")))?;
    let h = u16::try_from(height).map_err(|_| PhotoError::TooLarge(format!("{height} px tall")))?;
    let mut jpeg = Vec::with_capacity(rgb.len() / 10);
    jpeg_encoder::Encoder::new(&mut jpeg, cfg.jpeg_quality)
        .encode(rgb.as_raw(), w, h, jpeg_encoder::ColorType::Rgb)
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

fn classify(e: &image::ImageError) -> PhotoError {
    match e {
        image::ImageError::Limits(l) => PhotoError::TooLarge(l.to_string()),
        other => PhotoError::Unreadable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(path: &Path, w: u32, h: u32) {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 255) as u8, (y % 255) as u8, 90])
        });
        img.save(path).unwrap();
    }

    #[test]
    fn a_large_photo_is_scaled_to_the_pixel_cap() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("check.png");
        write_png(&p, 3000, 2000);
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
        let mut exif = b"Exif\0\0II*\0".to_vec();
        exif.extend(8u32.to_le_bytes());
        exif.extend(1u16.to_le_bytes());
        exif.extend(0x0112u16.to_le_bytes());
        exif.extend(3u16.to_le_bytes());
        exif.extend(1u32.to_le_bytes());
        exif.extend(6u16.to_le_bytes());
        exif.extend(0u16.to_le_bytes());
        exif.extend(0u32.to_le_bytes());
        let pixels = vec![128u8; 40 * 20 * 3];
        let mut jpeg = Vec::new();
        let mut enc = jpeg_encoder::Encoder::new(&mut jpeg, 90);
        enc.add_app_segment(1, exif).unwrap();
        enc.encode(&pixels, 40, 20, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sideways.jpg");
        std::fs::write(&p, &jpeg).unwrap();
        let page = load_page(&p, &PdfConfig::default()).unwrap();
        assert_eq!((page.width, page.height), (20, 40));
    }

    #[test]
    fn garbage_and_oversized_images_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.png");
        std::fs::write(&p, b"\x89PNG\r\n\x1a\nnot really").unwrap();
        assert!(matches!(
            load_page(&p, &PdfConfig::default()),
            Err(PhotoError::Unreadable(_))
        ));
        let big = dir.path().join("big.png");
        write_png(&big, 2000, 2000);
        let cfg = PdfConfig {
            max_image_pixels: 1_000_000,
            ..PdfConfig::default()
        };
        assert!(load_page(&big, &cfg).is_err());
    }
}
