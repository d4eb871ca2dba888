//! Pre-flight: what a PDF declares, read before pdfium parses anything, in bounded memory.
//!
//! pdfium spends memory in calls that cannot be interrupted (loading a page parses its whole
//! content stream; drawing an image decodes it whole), so a small file can ask for gigabytes.
//! This pass reads the file's own structure through a 16 KB buffer, one object at a time,
//! and refuses what would cost too much:
//! - the document, when its cross-reference declares more than `PDF_MAX_OBJECTS` objects;
//! - a page, when one of its content streams or the XObjects it draws inflates past
//!   `PDF_MAX_STREAM_MB` (inflated into a counter, never into memory), when its drawing
//!   operators (counted as they stream past) exceed `PDF_MAX_PAGE_OPERATORS`, or when it draws
//!   an image declaring more than `PDF_MAX_IMAGE_PIXELS` pixels.
//!
//! Anything it does not understand (a damaged cross-reference that pdfium would rebuild,
//! encryption, unusual filters) means "not checked", never a refusal: pdfium then reads the
//! file as before, under the memory ceiling (`crate::ceiling`). Why our own scanner and not a
//! PDF crate: docs/MEMORY.md, "Pre-flight".

mod content;
mod parse;
mod xref;

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use flate2::read::ZlibDecoder;

use super::{PdfConfig, PdfError};
use content::OpCounter;
use parse::{Dict, Obj};
use xref::{filters, is_flate, Doc, TooManyObjects};

/// Page-tree depth and form-nesting depth followed.
const MAX_TREE_DEPTH: usize = 64;
const MAX_FORM_DEPTH: usize = 8;
const INFLATE_BUF: usize = 64 * 1024;

/// Something in the file the pre-flight does not understand: the file goes unchecked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unknown(String);

impl Unknown {
    fn new(why: impl Into<String>) -> Self {
        Self(why.into())
    }
}

impl From<std::io::Error> for Unknown {
    fn from(e: std::io::Error) -> Self {
        Self(format!("read error: {e}"))
    }
}

/// The verdict on a document that may be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preflight {
    /// One entry per page, in order: why that page must not be loaded, if so.
    Pages(Vec<Option<String>>),
    /// The structure was not understood (the reason, for logs); pdfium reads it unchecked.
    Unchecked(String),
}

/// Reads what `path` declares and judges it against `cfg`. Errors are document refusals.
pub fn preflight(path: &Path, cfg: &PdfConfig) -> Result<Preflight, PdfError> {
    let doc = match Doc::open(path, cfg.max_objects) {
        Ok(Ok(doc)) => doc,
        Ok(Err(TooManyObjects(objects))) => {
            return Err(PdfError::TooManyObjects {
                objects,
                limit: cfg.max_objects,
            })
        }
        Err(Unknown(why)) => return Ok(Preflight::Unchecked(why)),
    };
    if doc.encrypted {
        return Ok(Preflight::Unchecked("encrypted".into()));
    }
    let mut checker = Checker {
        doc,
        cfg,
        streams: HashMap::new(),
        images: HashMap::new(),
    };
    Ok(match checker.pages() {
        Ok(pages) => Preflight::Pages(pages),
        Err(Unknown(why)) => Preflight::Unchecked(why),
    })
}

/// What one stream holds once decoded.
#[derive(Debug, Clone, Default)]
struct Measured {
    /// Decoded bytes, counted up to just past the limit.
    bytes: u64,
    /// Operators, counted up to just past the limit (content streams only).
    operators: u64,
    /// XObject names drawn with `Do`.
    drawn: Vec<Vec<u8>>,
}

struct Checker<'a> {
    doc: Doc,
    cfg: &'a PdfConfig,
    /// Per stream object, so resources shared by many pages are read once.
    streams: HashMap<u32, Measured>,
    images: HashMap<u32, Option<String>>,
}

impl Checker<'_> {
    /// Walks the page tree in order; each leaf is judged on its own.
    fn pages(&mut self) -> Result<Vec<Option<String>>, Unknown> {
        let root = self.doc.root.ok_or_else(|| Unknown::new("no /Root"))?;
        let Obj::Dict(catalog) = self.doc.load(root)?.obj else {
            return Err(Unknown::new("the catalog is not a dictionary"));
        };
        let top = catalog
            .get(b"Pages")
            .cloned()
            .ok_or_else(|| Unknown::new("no /Pages"))?;
        let mut out = Vec::new();
        let mut seen = Vec::new();
        // (node, inherited resources, depth), popped in page order.
        let mut stack = vec![(top, None::<Obj>, 0usize)];
        while let Some((node, inherited, depth)) = stack.pop() {
            if let Obj::Ref(r) = node {
                if seen.contains(&r) {
                    return Err(Unknown::new("the page tree loops"));
                }
                seen.push(r);
            }
            if depth > MAX_TREE_DEPTH || out.len() > self.cfg.max_pages as usize {
                // pdfium refuses such documents itself.
                return Err(Unknown::new("page tree too deep or too large"));
            }
            let Obj::Dict(dict) = self.doc.resolve(&node)?.obj else {
                return Err(Unknown::new("a page-tree node is not a dictionary"));
            };
            let resources = dict.get(b"Resources").cloned().or(inherited);
            match dict.get(b"Kids") {
                Some(kids) => {
                    let Obj::Array(kids) = self.doc.resolve(kids)?.obj else {
                        return Err(Unknown::new("/Kids is not an array"));
                    };
                    for kid in kids.into_iter().rev() {
                        stack.push((kid, resources.clone(), depth + 1));
                    }
                }
                None => {
                    let page = out.len() + 1;
                    // A page we cannot follow is left to pdfium; the others are still judged.
                    let verdict = self.page(&dict, resources.as_ref()).unwrap_or_else(|u| {
                        tracing::debug!(page, why = %u.0, "page not pre-checked");
                        None
                    });
                    out.push(verdict);
                }
            }
        }
        Ok(out)
    }

    fn page(&mut self, page: &Dict, resources: Option<&Obj>) -> Result<Option<String>, Unknown> {
        let contents = match page.get(b"Contents") {
            None => Vec::new(),
            Some(Obj::Ref(r)) => match self.doc.load(*r)? {
                // An indirect array of streams.
                xref::Loaded {
                    obj: Obj::Array(a),
                    stream: None,
                } => a,
                _ => vec![Obj::Ref(*r)],
            },
            Some(Obj::Array(a)) => a.clone(),
            Some(_) => return Err(Unknown::new("bad /Contents")),
        };
        let mut operators = 0u64;
        let mut drawn = Vec::new();
        for c in contents {
            let Obj::Ref(r) = c else { continue };
            let m = self.measure(r, true)?;
            if let Some(why) = self.too_big(&m) {
                return Ok(Some(why));
            }
            operators += m.operators;
            drawn.extend(m.drawn);
        }
        let mut forms = Vec::new();
        if let Some(why) = self.xobjects(resources, &drawn, &mut operators, 0, &mut forms)? {
            return Ok(Some(why));
        }
        Ok(self.too_many_operators(operators))
    }

    /// Judges the XObjects named in `drawn`, found in `resources`; forms add their operators
    /// and are followed into what they draw. Each form is counted once per page.
    fn xobjects(
        &mut self,
        resources: Option<&Obj>,
        drawn: &[Vec<u8>],
        operators: &mut u64,
        depth: usize,
        forms: &mut Vec<u32>,
    ) -> Result<Option<String>, Unknown> {
        if drawn.is_empty() || depth > MAX_FORM_DEPTH {
            return Ok(None);
        }
        let Some(resources) = resources else {
            return Ok(None);
        };
        let Obj::Dict(res) = self.doc.resolve(resources)?.obj else {
            return Ok(None);
        };
        let Some(xobjects) = res.get(b"XObject") else {
            return Ok(None);
        };
        let Obj::Dict(xobjects) = self.doc.resolve(xobjects)?.obj else {
            return Ok(None);
        };
        for name in drawn {
            let Some(Obj::Ref(r)) = xobjects.get(name) else {
                continue;
            };
            let r = *r;
            if forms.contains(&r) {
                continue;
            }
            if let Some(cached) = self.images.get(&r) {
                if cached.is_some() {
                    return Ok(cached.clone());
                }
                continue;
            }
            let Obj::Dict(dict) = self.doc.load(r)?.obj else {
                continue;
            };
            match dict.name(b"Subtype") {
                Some(b"Image") => {
                    if let Some(why) = self.image(r, &dict, 0)? {
                        return Ok(Some(why));
                    }
                }
                Some(b"Form") => {
                    forms.push(r);
                    let m = self.measure(r, true)?;
                    if let Some(why) = self.too_big(&m) {
                        return Ok(Some(why));
                    }
                    *operators += m.operators;
                    let own = dict.get(b"Resources").cloned();
                    let inner = own.as_ref().or(Some(resources));
                    if let Some(why) =
                        self.xobjects(inner, &m.drawn, operators, depth + 1, forms)?
                    {
                        return Ok(Some(why));
                    }
                }
                _ => {}
            }
        }
        Ok(None)
    }

    /// An image XObject (and its masks): declared size, then decoded size.
    fn image(&mut self, num: u32, dict: &Dict, depth: usize) -> Result<Option<String>, Unknown> {
        if let Some(cached) = self.images.get(&num) {
            return Ok(cached.clone());
        }
        let width = self.int(dict.get(b"Width"))?;
        let height = self.int(dict.get(b"Height"))?;
        let mut verdict = None;
        if let (Some(w), Some(h)) = (width, height) {
            if w.saturating_mul(h) > self.cfg.max_image_pixels {
                verdict = Some(format!(
                    "this page declares an image of {w} x {h} pixels, more than the limit of \
                     {} pixels, and was left out unread; rescan it at 300 DPI or less, or \
                     split it into a separate file",
                    self.cfg.max_image_pixels
                ));
            }
        }
        if verdict.is_none() {
            let m = self.measure(num, false)?;
            verdict = self.too_big(&m);
        }
        if verdict.is_none() && depth == 0 {
            for key in [&b"SMask"[..], b"Mask"] {
                if let Some(Obj::Ref(r)) = dict.get(key) {
                    if let Obj::Dict(mask) = self.doc.load(*r)?.obj {
                        verdict = self.image(*r, &mask, depth + 1)?;
                        if verdict.is_some() {
                            break;
                        }
                    }
                }
            }
        }
        self.images.insert(num, verdict.clone());
        Ok(verdict)
    }

    fn int(&mut self, obj: Option<&Obj>) -> Result<Option<u64>, Unknown> {
        let Some(obj) = obj else { return Ok(None) };
        Ok(match self.doc.resolve(obj)?.obj {
            Obj::Int(n) => u64::try_from(n).ok(),
            _ => None,
        })
    }

    /// Stream `num` decoded into counters (cached per object).
    fn measure(&mut self, num: u32, content: bool) -> Result<Measured, Unknown> {
        if let Some(m) = self.streams.get(&num) {
            return Ok(m.clone());
        }
        let loaded = self.doc.load(num)?;
        let (Obj::Dict(dict), Some(data)) = (loaded.obj, loaded.stream) else {
            return Err(Unknown::new("a content stream is not a stream"));
        };
        let m = self.measure_stream(&dict, data, content)?;
        self.streams.insert(num, m.clone());
        Ok(m)
    }

    fn measure_stream(
        &mut self,
        dict: &Dict,
        data: u64,
        content: bool,
    ) -> Result<Measured, Unknown> {
        let raw = self.doc.stream_length(dict, data)?;
        let names = filters(dict);
        let (byte_cap, op_cap) = (self.cfg.max_stream_bytes, self.cfg.max_page_operators);
        let segment = self.doc.segment(data, raw)?;
        let mut reader: Box<dyn Read + '_> = match names.first() {
            None => Box::new(segment),
            Some(f) if is_flate(f) => Box::new(ZlibDecoder::new(segment)),
            // DCT, JPX, CCITT, JBIG2, LZW, ASCII filters: their cost is judged by the image's
            // declared size (or not at all).
            Some(_) => return Ok(Measured::default()),
        };
        // Operators are only meaningful when inflating gave the content itself.
        let mut counter = (content && names.len() <= 1).then(OpCounter::new);
        let mut buf = vec![0u8; INFLATE_BUF];
        let mut bytes = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                // Damaged data: pdfium stops decoding there too.
                Err(_) => break,
            };
            bytes += n as u64;
            if let Some(c) = counter.as_mut() {
                c.feed(&buf[..n]);
                if c.operators > op_cap {
                    break;
                }
            }
            if bytes > byte_cap {
                break;
            }
        }
        let (operators, drawn) = match counter {
            Some(mut c) => {
                c.finish();
                (c.operators, c.drawn)
            }
            None => (0, Vec::new()),
        };
        Ok(Measured {
            bytes,
            operators,
            drawn,
        })
    }

    fn too_big(&self, m: &Measured) -> Option<String> {
        (m.bytes > self.cfg.max_stream_bytes).then(|| {
            format!(
                "this page holds a compressed stream that expands to more than {} MB, more \
                 memory than a worker may use, and was left out unread; rescan it or send it \
                 as a separate file",
                self.cfg.max_stream_bytes / (1024 * 1024)
            )
        })
    }

    fn too_many_operators(&self, operators: u64) -> Option<String> {
        (operators > self.cfg.max_page_operators).then(|| {
            format!(
                "this page has more than {} drawing operators, more than a worker has memory \
                 for, and was left out unread; rescan it or send it as a separate file",
                self.cfg.max_page_operators
            )
        })
    }
}
