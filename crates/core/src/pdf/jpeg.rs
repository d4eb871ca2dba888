//! Just enough JPEG header parsing to decide whether an embedded stream can be handed to the
//! extractor as it is (see `pdf::passthrough`).

/// What the frame header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegInfo {
    pub width: u32,
    pub height: u32,
    pub components: u8,
    pub precision: u8,
    /// Baseline (SOF0), extended (SOF1) or progressive (SOF2) Huffman: what every decoder reads.
    pub common_coding: bool,
    /// Adobe APP14 colour transform flag, when present.
    pub adobe_transform: Option<u8>,
}

/// Parses markers from SOI up to the first frame header. `None` when the bytes are not a
/// well-formed JPEG header.
pub fn parse_header(data: &[u8]) -> Option<JpegInfo> {
    if data.len() < 4 || data[0] != 0xFF || data[1] != 0xD8 {
        return None;
    }
    let mut pos = 2;
    let mut adobe_transform = None;
    while pos + 4 <= data.len() {
        if data[pos] != 0xFF {
            return None;
        }
        let marker = data[pos + 1];
        if marker == 0xFF {
            pos += 1; // fill byte
            continue;
        }
        if marker == 0x01 || (0xD0..=0xD7).contains(&marker) {
            pos += 2; // standalone marker
            continue;
        }
        let len = usize::from(u16::from_be_bytes([data[pos + 2], data[pos + 3]]));
        if len < 2 || pos + 2 + len > data.len() {
            return None;
        }
        let body = &data[pos + 4..pos + 2 + len];
        match marker {
            0xEE if body.len() >= 12 && body.starts_with(b"Adobe") => {
                adobe_transform = Some(body[11]);
            }
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                if body.len() < 6 {
                    return None;
                }
                return Some(JpegInfo {
                    precision: body[0],
                    height: u32::from(u16::from_be_bytes([body[1], body[2]])),
                    width: u32::from(u16::from_be_bytes([body[3], body[4]])),
                    components: body[5],
                    common_coding: matches!(marker, 0xC0..=0xC2),
                    adobe_transform,
                });
            }
            0xDA | 0xD9 => return None, // scan or end before any frame header
            _ => {}
        }
        pos += 2 + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(w: u16, h: u16, color: jpeg_encoder::ColorType, bpp: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let px = vec![128u8; usize::from(w) * usize::from(h) * bpp];
        jpeg_encoder::Encoder::new(&mut out, 80)
            .encode(&px, w, h, color)
            .unwrap();
        out
    }

    #[test]
    fn reads_frame_header_of_rgb_and_gray() {
        let info = parse_header(&encode(33, 17, jpeg_encoder::ColorType::Rgb, 3)).unwrap();
        assert_eq!((info.width, info.height, info.components), (33, 17, 3));
        assert_eq!(info.precision, 8);
        assert!(info.common_coding);
        let info = parse_header(&encode(8, 9, jpeg_encoder::ColorType::Luma, 1)).unwrap();
        assert_eq!((info.width, info.height, info.components), (8, 9, 1));
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        assert_eq!(parse_header(b""), None);
        assert_eq!(parse_header(b"\xFF\xD8"), None);
        assert_eq!(parse_header(b"\xFF\xD8\xFF\xE0\x00\x10JFIF"), None);
        let good = encode(10, 10, jpeg_encoder::ColorType::Rgb, 3);
        let sof = good.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        assert_eq!(parse_header(&good[..sof + 5]), None);
        assert_eq!(parse_header(b"\x89PNG\r\n"), None);
    }
}
