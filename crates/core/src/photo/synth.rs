//! Streaming writers for large test photos (fixtures, examples, tests): rows are generated and
//! written one at a time, so making a 40-megapixel PNG or JPEG costs a few rows of memory.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// A check-like page seen upright: white paper with grey ruled lines, a red band along the top
/// and a blue band down the left edge, so a test can tell which way up an image arrived.
pub fn check_pattern(width: u32, height: u32) -> impl Fn(u32, u32) -> [u8; 3] {
    let band_y = (height / 12).max(1);
    let band_x = (width / 12).max(1);
    move |x, y| {
        if y < band_y {
            [200, 30, 30]
        } else if x < band_x {
            [30, 30, 200]
        } else if y % 48 < 3 && x % 400 < 330 {
            [90, 90, 90]
        } else {
            [250, 250, 245]
        }
    }
}

/// The stored pixels of a photo whose EXIF `orientation` (1-8) turns the stored `width` x
/// `height` into `upright` (which takes displayed coordinates; for orientations 5-8 the
/// displayed image is `height` x `width`).
pub fn stored_pixels(
    orientation: u16,
    width: u32,
    height: u32,
    upright: impl Fn(u32, u32) -> [u8; 3],
) -> impl Fn(u32, u32) -> [u8; 3] {
    let (w, h) = (width.saturating_sub(1), height.saturating_sub(1));
    move |x, y| match orientation {
        2 => upright(w - x, y),
        3 => upright(w - x, h - y),
        4 => upright(x, h - y),
        5 => upright(y, x),
        6 => upright(h - y, x),
        7 => upright(h - y, w - x),
        8 => upright(y, w - x),
        _ => upright(x, y),
    }
}

/// Writes an 8-bit RGB PNG of `width` x `height`, asking `pixel(x, y)` for each pixel.
pub fn write_png(
    path: &Path,
    width: u32,
    height: u32,
    pixel: impl Fn(u32, u32) -> [u8; 3],
) -> io::Result<()> {
    let mut encoder = png::Encoder::new(BufWriter::new(File::create(path)?), width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(io::Error::other)?;
    let mut stream = writer.stream_writer().map_err(io::Error::other)?;
    let mut row = Vec::with_capacity(width as usize * 3);
    for y in 0..height {
        row.clear();
        row.extend((0..width).flat_map(|x| pixel(x, y)));
        stream.write_all(&row)?;
    }
    stream.finish().map_err(io::Error::other)?;
    Ok(())
}

/// Writes a baseline RGB JPEG of `width` x `height` (at most 65,535 each), asking `pixel(x, y)`
/// for each stored pixel; `orientation` adds an EXIF orientation tag (1-8).
pub fn write_jpeg(
    path: &Path,
    width: u16,
    height: u16,
    quality: u8,
    orientation: Option<u16>,
    pixel: impl Fn(u32, u32) -> [u8; 3],
) -> io::Result<()> {
    let out = BufWriter::new(File::create(path)?);
    let mut encoder = jpeg_encoder::Encoder::new(out, quality);
    if let Some(o) = orientation {
        encoder
            .add_app_segment(1, exif_orientation(o))
            .map_err(io::Error::other)?;
    }
    encoder
        .encode_image(Rows {
            width,
            height,
            pixel,
        })
        .map_err(io::Error::other)
}

/// An EXIF segment (APP1) holding only the orientation tag.
pub fn exif_orientation(orientation: u16) -> Vec<u8> {
    let mut exif = b"Exif\0\0II*\0".to_vec();
    exif.extend(8u32.to_le_bytes()); // first directory right after the header
    exif.extend(1u16.to_le_bytes()); // one entry
    exif.extend(0x0112u16.to_le_bytes()); // Orientation
    exif.extend(3u16.to_le_bytes()); // SHORT
    exif.extend(1u32.to_le_bytes()); // count
    exif.extend(orientation.to_le_bytes());
    exif.extend(0u16.to_le_bytes());
    exif.extend(0u32.to_le_bytes()); // no next directory
    exif
}

/// Pixels produced on demand, one row per call, for the JPEG encoder.
struct Rows<F> {
    width: u16,
    height: u16,
    pixel: F,
}

impl<F: Fn(u32, u32) -> [u8; 3]> jpeg_encoder::ImageBuffer for Rows<F> {
    fn get_jpeg_color_type(&self) -> jpeg_encoder::JpegColorType {
        jpeg_encoder::JpegColorType::Ycbcr
    }

    fn width(&self) -> u16 {
        self.width
    }

    fn height(&self) -> u16 {
        self.height
    }

    fn fill_buffers(&self, y: u16, buffers: &mut [Vec<u8>; 4]) {
        for x in 0..u32::from(self.width) {
            let [r, g, b] = (self.pixel)(x, u32::from(y));
            let (y, cb, cr) = jpeg_encoder::rgb_to_ycbcr(r, g, b);
            buffers[0].push(y);
            buffers[1].push(cb);
            buffers[2].push(cr);
        }
    }
}
