//! File type by content (magic bytes), never by the name a user gave the file.

use std::io::Read;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    Pdf,
    Jpeg,
    Png,
    Csv,
}

impl FileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Pdf => "pdf",
            FileKind::Jpeg => "jpeg",
            FileKind::Png => "png",
            FileKind::Csv => "csv",
        }
    }
}

/// How many leading bytes are inspected. PDF allows its header anywhere in the first 1024.
pub const SNIFF_LEN: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum SniffError {
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("the file is empty")]
    Empty,
    #[error("unsupported file type ({0}); upload a PDF, JPEG, PNG or CSV file")]
    Unsupported(&'static str),
}

/// Reads at most [`SNIFF_LEN`] bytes of `path` and classifies them.
pub fn sniff_path(path: &Path) -> Result<FileKind, SniffError> {
    let mut head = Vec::with_capacity(SNIFF_LEN);
    std::fs::File::open(path)?
        .take(SNIFF_LEN as u64)
        .read_to_end(&mut head)?;
    sniff(&head)
}

/// Classifies the first bytes of a file.
pub fn sniff(head: &[u8]) -> Result<FileKind, SniffError> {
    if head.is_empty() {
        return Err(SniffError::Empty);
    }
    let first_kb = &head[..head.len().min(1024)];
    if find(first_kb, b"%PDF-").is_some() {
        return Ok(FileKind::Pdf);
    }
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(FileKind::Jpeg);
    }
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Ok(FileKind::Png);
    }
    // UTF-16 text (a spreadsheet's "Unicode text" export): the CSV reader explains the fix.
    if head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]) {
        return Ok(FileKind::Csv);
    }
    if let Some(name) = known_binary(head) {
        return Err(SniffError::Unsupported(name));
    }
    match text_shape(head) {
        TextShape::Table => Ok(FileKind::Csv),
        TextShape::Prose => Err(SniffError::Unsupported(
            "plain text without columns; a CSV needs a header row such as Name,Amount",
        )),
        TextShape::Binary => Err(SniffError::Unsupported("unrecognised binary data")),
    }
}

fn known_binary(head: &[u8]) -> Option<&'static str> {
    const SIGS: &[(&[u8], &str)] = &[
        (b"PK\x03\x04", "a ZIP archive or Office document"),
        (b"GIF8", "a GIF image"),
        (b"II*\x00", "a TIFF image"),
        (b"MM\x00*", "a TIFF image"),
        (b"\xD0\xCF\x11\xE0", "a legacy Office document"),
        (b"RIFF", "a RIFF media file"),
        (b"\x1F\x8B", "a gzip archive"),
    ];
    SIGS.iter()
        .find(|(sig, _)| head.starts_with(sig))
        .map(|(_, name)| *name)
        .or_else(|| (head.len() > 12 && &head[4..8] == b"ftyp").then_some("a HEIC/MP4 file"))
}

enum TextShape {
    Table,
    Prose,
    Binary,
}

/// Text (UTF-8, or a single-byte encoding) with no NULs or control bytes is a table when it
/// has a delimiter somewhere: what a spreadsheet's CSV export looks like.
fn text_shape(head: &[u8]) -> TextShape {
    let binary = head
        .iter()
        .any(|&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t'));
    if binary {
        TextShape::Binary
    } else if head.iter().any(|b| matches!(b, b',' | b';' | b'\t' | b'|')) {
        TextShape::Table
    } else {
        TextShape::Prose
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_content() {
        assert_eq!(sniff(b"%PDF-1.7\n...").ok(), Some(FileKind::Pdf));
        assert_eq!(sniff(b"junk\n%PDF-1.4\n").ok(), Some(FileKind::Pdf));
        assert_eq!(
            sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0]).ok(),
            Some(FileKind::Jpeg)
        );
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n....").ok(), Some(FileKind::Png));
        assert_eq!(
            sniff("Name,Amount\nJos\u{e9},25.00\n".as_bytes()).ok(),
            Some(FileKind::Csv)
        );
        assert_eq!(sniff(b"\xFF\xFEN\0a\0").ok(), Some(FileKind::Csv));
        assert!(matches!(sniff(b""), Err(SniffError::Empty)));
        assert!(matches!(
            sniff(b"PK\x03\x04rest"),
            Err(SniffError::Unsupported(s)) if s.contains("ZIP")
        ));
        assert!(matches!(
            sniff(b"hello world"),
            Err(SniffError::Unsupported(_))
        ));
        assert!(matches!(
            sniff(&[1, 2, 3, 0, 5]),
            Err(SniffError::Unsupported(_))
        ));
    }
}
