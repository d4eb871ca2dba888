//! Letters as PDF with `pdf-writer` (a step-by-step writer: each object is written as it is
//! made, nothing of a document is kept but the object offsets), DejaVu Serif embedded as
//! subset CID fonts (`subsetter`) with a ToUnicode map, so the text is selectable, searchable
//! and extracts back exactly.
//!
//! Two writers share one page encoder: [`LetterPdf`] makes one small document in memory (a
//! donor's own file), and [`StreamingPdf`] appends pages to a file as they come (the print
//! file of every letter), writing the fonts, the page tree and the cross-reference table at
//! the end. Its memory is one page plus the glyphs used so far and eight bytes per object.

use std::collections::BTreeMap;
use std::io::Write;

use pdf_writer::types::{CidFontType, FontFlags, SystemInfo};
use pdf_writer::writers::Resources;
use pdf_writer::{Chunk, Content, Filter, Name, Pdf, Rect, Ref, Str};
use subsetter::GlyphRemapper;

/// US Letter, in points.
pub const PAGE_WIDTH: f32 = 612.0;
pub const PAGE_HEIGHT: f32 = 792.0;

#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error("the letter font could not be read: {0}")]
    Font(String),
    #[error("the letter font could not be subset: {0}")]
    Subset(String),
    #[error("writing the letters failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Regular or bold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weight {
    Regular,
    Bold,
}

/// One line of text placed on a page (points, from the bottom left).
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub x: f32,
    pub y: f32,
    pub size: f32,
    pub weight: Weight,
    pub text: String,
}

/// What a page holds: text and thin horizontal rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    pub runs: Vec<Run>,
    /// `(x1, x2, y)`.
    pub rules: Vec<(f32, f32, f32)>,
}

/// One face, parsed once.
struct Face {
    data: &'static [u8],
    face: ttf_parser::Face<'static>,
    /// PostScript name, for the font's `BaseFont`.
    name: &'static str,
}

impl Face {
    fn load(data: &'static [u8], name: &'static str) -> Result<Self, PdfError> {
        let face = ttf_parser::Face::parse(data, 0).map_err(|e| PdfError::Font(e.to_string()))?;
        Ok(Self { data, face, name })
    }

    fn scale(&self) -> f32 {
        1000.0 / f32::from(self.face.units_per_em())
    }

    /// The glyph for `c`, or `?` for a character the font lacks (never the empty box).
    fn glyph(&self, c: char) -> u16 {
        self.face
            .glyph_index(c)
            .or_else(|| self.face.glyph_index('?'))
            .map_or(0, |g| g.0)
    }

    /// Advance of a glyph in thousandths of the font size.
    fn advance(&self, gid: u16) -> f32 {
        f32::from(
            self.face
                .glyph_hor_advance(ttf_parser::GlyphId(gid))
                .unwrap_or(0),
        ) * self.scale()
    }
}

/// The letter fonts: DejaVu Serif and DejaVu Serif Bold (Bitstream Vera licence, free to
/// embed), compiled into the binary.
pub struct Fonts {
    regular: Face,
    bold: Face,
}

impl Fonts {
    pub fn load() -> Result<Self, PdfError> {
        Ok(Self {
            regular: Face::load(dejavu::serif::regular(), "DejaVuSerif")?,
            bold: Face::load(dejavu::serif::bold(), "DejaVuSerif-Bold")?,
        })
    }

    fn face(&self, weight: Weight) -> &Face {
        match weight {
            Weight::Regular => &self.regular,
            Weight::Bold => &self.bold,
        }
    }

    /// Width of `text` at `size` points (no kerning: plain Latin text in a letter).
    pub fn width(&self, weight: Weight, text: &str, size: f32) -> f32 {
        let face = self.face(weight);
        text.chars()
            .map(|c| face.advance(face.glyph(c)))
            .sum::<f32>()
            * size
            / 1000.0
    }
}

/// The glyphs one document uses of one face: their new ids (consecutive, for the subset),
/// the text each stands for and its width.
struct FaceUse {
    remapper: GlyphRemapper,
    unicode: BTreeMap<u16, char>,
}

impl FaceUse {
    fn new() -> Self {
        Self {
            remapper: GlyphRemapper::new(),
            unicode: BTreeMap::new(),
        }
    }

    /// The bytes `show` takes for `text` (two per glyph, Identity-H), noting the glyphs.
    fn encode(&mut self, face: &Face, text: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len() * 2);
        for c in text.chars() {
            let new = self.remapper.remap(face.glyph(c));
            self.unicode.entry(new).or_insert(c);
            out.extend_from_slice(&new.to_be_bytes());
        }
        out
    }
}

/// Both faces' use in one document, and the font objects' ids.
struct DocFonts {
    uses: [FaceUse; 2],
    /// The Type0 font dictionaries pages refer to, regular then bold.
    refs: [Ref; 2],
}

const FONT_NAMES: [Name<'static>; 2] = [Name(b"F1"), Name(b"F2")];

impl DocFonts {
    fn new(refs: [Ref; 2]) -> Self {
        Self {
            uses: [FaceUse::new(), FaceUse::new()],
            refs,
        }
    }

    /// A page's content stream, compressed.
    fn content(&mut self, fonts: &Fonts, page: &Page) -> Vec<u8> {
        let mut c = Content::new();
        if !page.rules.is_empty() {
            c.set_line_width(0.6);
            c.set_stroke_gray(0.55);
            for (x1, x2, y) in &page.rules {
                c.move_to(*x1, *y);
                c.line_to(*x2, *y);
            }
            c.stroke();
        }
        for run in &page.runs {
            let i = usize::from(run.weight == Weight::Bold);
            let bytes = self.uses[i].encode(fonts.face(run.weight), &run.text);
            c.begin_text();
            c.set_font(FONT_NAMES[i], run.size);
            c.set_text_matrix([1.0, 0.0, 0.0, 1.0, run.x, run.y]);
            c.show(Str(&bytes));
            c.end_text();
        }
        deflate(&c.finish())
    }

    fn resources(&self, mut resources: Resources<'_>) {
        let mut dict = resources.fonts();
        for (name, r) in FONT_NAMES.iter().zip(self.refs) {
            dict.pair(*name, r);
        }
    }

    /// The font objects, written into chunks handed to `emit` one object each. `next` gives
    /// fresh object ids.
    fn write(
        &self,
        fonts: &Fonts,
        next: &mut impl FnMut() -> Ref,
        emit: &mut impl FnMut(Chunk) -> Result<(), PdfError>,
    ) -> Result<(), PdfError> {
        for (i, weight) in [Weight::Regular, Weight::Bold].into_iter().enumerate() {
            let face = fonts.face(weight);
            let used = &self.uses[i];
            let cid_ref = next();
            let descriptor_ref = next();
            let file_ref = next();
            let cmap_ref = next();
            // A subset's name carries a tag of six capitals, different per subset.
            let tag = subset_tag(&used.unicode);
            let base = format!("{tag}+{}", face.name);

            let mut chunk = Chunk::new();
            chunk
                .type0_font(self.refs[i])
                .base_font(Name(base.as_bytes()))
                .encoding_predefined(Name(b"Identity-H"))
                .descendant_font(cid_ref)
                .to_unicode(cmap_ref);
            emit(chunk)?;

            let info = SystemInfo {
                registry: Str(b"Adobe"),
                ordering: Str(b"Identity"),
                supplement: 0,
            };
            let mut chunk = Chunk::new();
            {
                let mut cid = chunk.cid_font(cid_ref);
                cid.subtype(CidFontType::Type2)
                    .base_font(Name(base.as_bytes()))
                    .system_info(info)
                    .font_descriptor(descriptor_ref)
                    .default_width(0.0)
                    .cid_to_gid_map_predefined(Name(b"Identity"));
                let widths: Vec<f32> = used
                    .remapper
                    .remapped_gids()
                    .map(|old| face.advance(old))
                    .collect();
                cid.widths().consecutive(0, widths);
            }
            emit(chunk)?;

            let f = &face.face;
            let scale = face.scale();
            let bbox = f.global_bounding_box();
            let mut chunk = Chunk::new();
            chunk
                .font_descriptor(descriptor_ref)
                .name(Name(base.as_bytes()))
                .flags(FontFlags::SERIF | FontFlags::NON_SYMBOLIC)
                .bbox(Rect::new(
                    f32::from(bbox.x_min) * scale,
                    f32::from(bbox.y_min) * scale,
                    f32::from(bbox.x_max) * scale,
                    f32::from(bbox.y_max) * scale,
                ))
                .italic_angle(0.0)
                .ascent(f32::from(f.ascender()) * scale)
                .descent(f32::from(f.descender()) * scale)
                .cap_height(f32::from(f.capital_height().unwrap_or(f.ascender())) * scale)
                .stem_v(if weight == Weight::Bold { 140.0 } else { 80.0 })
                .font_file2(file_ref);
            emit(chunk)?;

            let subset = subsetter::subset(face.data, 0, &used.remapper)
                .map_err(|e| PdfError::Subset(e.to_string()))?;
            let mut chunk = Chunk::new();
            chunk
                .stream(file_ref, &deflate(&subset))
                .filter(Filter::FlateDecode);
            emit(chunk)?;

            let mut cmap = pdf_writer::types::UnicodeCmap::new(Name(b"Custom"), info);
            for (gid, c) in &used.unicode {
                cmap.pair(*gid, *c);
            }
            let mut chunk = Chunk::new();
            chunk.cmap(cmap_ref, &cmap.finish());
            emit(chunk)?;
        }
        Ok(())
    }
}

/// Zlib-compressed (FlateDecode): text and fonts shrink to a third or less.
fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(data.len() / 2),
        flate2::Compression::default(),
    );
    // Writing into a Vec cannot fail.
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

/// Six capitals from the glyphs a subset holds, as PDF asks of subset font names.
fn subset_tag(used: &BTreeMap<u16, char>) -> String {
    let mut h: u32 = 2_166_136_261;
    for (g, c) in used {
        for b in g.to_le_bytes().into_iter().chain((*c as u32).to_le_bytes()) {
            h = (h ^ u32::from(b)).wrapping_mul(16_777_619);
        }
    }
    (0..6)
        .map(|i| char::from(b'A' + ((h >> (i * 5)) % 26) as u8))
        .collect()
}

/// One small document in memory: a donor's own letter.
pub fn letter_pdf(fonts: &Fonts, pages: &[Page], title: &str) -> Result<Vec<u8>, PdfError> {
    let mut pdf = Pdf::new();
    let mut next_id = 1;
    let mut next = || {
        let r = Ref::new(next_id);
        next_id += 1;
        r
    };
    let catalog = next();
    let tree = next();
    let info = next();
    let mut doc = DocFonts::new([next(), next()]);
    let mut kids = Vec::with_capacity(pages.len());
    for page in pages {
        let page_ref = next();
        let content_ref = next();
        kids.push(page_ref);
        let content = doc.content(fonts, page);
        pdf.stream(content_ref, &content)
            .filter(Filter::FlateDecode);
        let mut p = pdf.page(page_ref);
        p.parent(tree)
            .media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT))
            .contents(content_ref);
        doc.resources(p.resources());
    }
    let mut chunks = Vec::new();
    doc.write(fonts, &mut next, &mut |c| {
        chunks.push(c);
        Ok(())
    })?;
    for c in &chunks {
        pdf.extend(c);
    }
    pdf.pages(tree)
        .kids(kids.iter().copied())
        .count(kids.len() as i32);
    pdf.catalog(catalog).pages(tree);
    pdf.document_info(info)
        .title(pdf_writer::TextStr(title))
        .producer(pdf_writer::TextStr("fom-qbo"));
    Ok(pdf.finish())
}

/// A document written to `out` page by page (the print file): only the offsets of its
/// objects are kept, eight bytes each; fonts, page tree and cross-reference table come last.
pub struct StreamingPdf<W: Write> {
    out: W,
    written: u64,
    /// Offset of each object, by id (index 0 unused).
    offsets: Vec<u64>,
    kids: Vec<Ref>,
    catalog: Ref,
    tree: Ref,
    info: Ref,
    doc: DocFonts,
}

impl<W: Write> StreamingPdf<W> {
    pub fn new(mut out: W) -> Result<Self, PdfError> {
        // The header, and four bytes over 127 that say the file is binary.
        let header = b"%PDF-1.7\n%\x80\x80\x80\x80\n";
        out.write_all(header)?;
        let mut s = Self {
            out,
            written: header.len() as u64,
            offsets: vec![0],
            kids: Vec::new(),
            catalog: Ref::new(1),
            tree: Ref::new(2),
            info: Ref::new(3),
            doc: DocFonts::new([Ref::new(4), Ref::new(5)]),
        };
        s.offsets.resize(6, 0);
        Ok(s)
    }

    fn next(&mut self) -> Ref {
        self.offsets.push(0);
        Ref::new((self.offsets.len() - 1) as i32)
    }

    /// Writes a chunk holding exactly one object, noting where it starts.
    fn emit(&mut self, chunk: Chunk) -> Result<(), PdfError> {
        if let Some(r) = chunk.refs().next() {
            if let Some(slot) = usize::try_from(r.get())
                .ok()
                .and_then(|i| self.offsets.get_mut(i))
            {
                *slot = self.written;
            }
        }
        self.out.write_all(chunk.as_bytes())?;
        self.written += chunk.len() as u64;
        Ok(())
    }

    /// Appends one page.
    pub fn page(&mut self, fonts: &Fonts, page: &Page) -> Result<(), PdfError> {
        let page_ref = self.next();
        let content_ref = self.next();
        let content = self.doc.content(fonts, page);
        let mut chunk = Chunk::new();
        chunk
            .stream(content_ref, &content)
            .filter(Filter::FlateDecode);
        self.emit(chunk)?;
        let mut chunk = Chunk::new();
        {
            let mut p = chunk.page(page_ref);
            p.parent(self.tree)
                .media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT))
                .contents(content_ref);
            self.doc.resources(p.resources());
        }
        self.emit(chunk)?;
        self.kids.push(page_ref);
        Ok(())
    }

    pub fn pages(&self) -> usize {
        self.kids.len()
    }

    /// Writes the fonts, the page tree, the catalog and the cross-reference table; returns the
    /// writer.
    pub fn finish(mut self, fonts: &Fonts, title: &str) -> Result<W, PdfError> {
        let mut chunks = Vec::new();
        {
            let offsets = &mut self.offsets;
            let mut next = || {
                offsets.push(0);
                Ref::new((offsets.len() - 1) as i32)
            };
            self.doc.write(fonts, &mut next, &mut |c| {
                chunks.push(c);
                Ok(())
            })?;
        }
        for c in chunks {
            self.emit(c)?;
        }
        let mut chunk = Chunk::new();
        chunk
            .pages(self.tree)
            .kids(self.kids.iter().copied())
            .count(self.kids.len() as i32);
        self.emit(chunk)?;
        // The catalog and the document information, as `Pdf` writes them (its own writers
        // for these exist only on the in-memory document).
        let mut chunk = Chunk::new();
        chunk
            .indirect(self.catalog)
            .dict()
            .pair(Name(b"Type"), Name(b"Catalog"))
            .pair(Name(b"Pages"), self.tree);
        self.emit(chunk)?;
        let mut chunk = Chunk::new();
        chunk
            .indirect(self.info)
            .dict()
            .pair(Name(b"Title"), pdf_writer::TextStr(title))
            .pair(Name(b"Producer"), pdf_writer::TextStr("fom-qbo"));
        self.emit(chunk)?;

        // The cross-reference table: 20 bytes per object.
        let xref_at = self.written;
        write!(
            self.out,
            "xref\n0 {}\n0000000000 65535 f\r\n",
            self.offsets.len()
        )?;
        for off in &self.offsets[1..] {
            write!(self.out, "{off:010} 00000 n\r\n")?;
        }
        write!(
            self.out,
            "trailer\n<< /Size {} /Root {} 0 R /Info {} 0 R >>\nstartxref\n{xref_at}\n%%EOF\n",
            self.offsets.len(),
            self.catalog.get(),
            self.info.get()
        )?;
        self.out.flush()?;
        Ok(self.out)
    }
}
