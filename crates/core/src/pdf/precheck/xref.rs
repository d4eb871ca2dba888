//! The cross-reference (tables, streams, hybrids, incremental updates) and object lookup
//! through a small buffer over the file.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use flate2::read::ZlibDecoder;

use super::parse::{Dict, Lexer, Obj};
use super::Unknown;

/// Incremental updates followed; real files have a handful.
const MAX_SECTIONS: usize = 64;
/// The largest object stream decoded (it is held while its objects are read); real ones hold
/// a few hundred small objects, tens of KB.
const MAX_OBJSTM_BYTES: u64 = 4 * 1024 * 1024;
/// Indirection hops followed when resolving one reference.
const MAX_HOPS: usize = 16;
const BUF: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Unset,
    Free,
    At(u64),
    InStream { stream: u32, index: u32 },
}

/// What the file declares that is too much before any object is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TooManyObjects(pub u64);

/// One object as read: the object, and where its stream's data starts when it has one.
#[derive(Debug, Clone)]
pub(super) struct Loaded {
    pub(super) obj: Obj,
    pub(super) stream: Option<u64>,
}

pub(super) struct Doc {
    r: BufReader<File>,
    len: u64,
    entries: Vec<Entry>,
    pub(super) root: Option<u32>,
    pub(super) encrypted: bool,
    objstm: Option<ObjStm>,
}

/// The last object stream decoded: its number, bytes, and (object, offset) pairs.
struct ObjStm {
    num: u32,
    bytes: Vec<u8>,
    offsets: Vec<(u32, u64)>,
}

impl Doc {
    /// Reads every cross-reference section. `Ok(Err(_))` when the file declares more objects
    /// than `max_objects`.
    pub(super) fn open(
        path: &Path,
        max_objects: u64,
    ) -> Result<Result<Self, TooManyObjects>, Unknown> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        let mut doc = Doc {
            r: BufReader::with_capacity(BUF, file),
            len,
            entries: Vec::new(),
            root: None,
            encrypted: false,
            objstm: None,
        };
        let mut next = Some(doc.startxref()?);
        let mut seen = Vec::new();
        while let Some(at) = next.take() {
            if seen.contains(&at) || seen.len() >= MAX_SECTIONS {
                return Err(Unknown::new("cross-reference chain loops"));
            }
            seen.push(at);
            let trailer = match doc.section(at, max_objects)? {
                Ok(t) => t,
                Err(too_many) => return Ok(Err(too_many)),
            };
            if doc.root.is_none() {
                if let Some(Obj::Ref(r)) = trailer.get(b"Root") {
                    doc.root = Some(*r);
                }
            }
            doc.encrypted |= trailer.get(b"Encrypt").is_some();
            // A hybrid file's stream section fills the gaps of its table (same precedence).
            if let Some(stm) = trailer.int(b"XRefStm").and_then(|v| u64::try_from(v).ok()) {
                if !seen.contains(&stm) {
                    seen.push(stm);
                    if let Err(too_many) = doc.section(stm, max_objects)? {
                        return Ok(Err(too_many));
                    }
                }
            }
            next = trailer.int(b"Prev").and_then(|v| u64::try_from(v).ok());
        }
        Ok(Ok(doc))
    }

    fn startxref(&mut self) -> Result<u64, Unknown> {
        let tail = self.len.min(2048);
        self.r.seek(SeekFrom::Start(self.len - tail))?;
        let mut buf = Vec::with_capacity(2048);
        (&mut self.r).take(tail).read_to_end(&mut buf)?;
        let key = b"startxref";
        let at = buf
            .windows(key.len())
            .rposition(|w| w == key)
            .ok_or_else(|| Unknown::new("no startxref"))?;
        let mut lex = Lexer::new(&buf[at + key.len()..], 0);
        lex.next_int()?
            .and_then(|v| u64::try_from(v).ok())
            .filter(|&v| v < self.len)
            .ok_or_else(|| Unknown::new("bad startxref"))
    }

    fn lexer_at(&mut self, at: u64) -> Result<Lexer<&mut BufReader<File>>, Unknown> {
        self.r.seek(SeekFrom::Start(at))?;
        Ok(Lexer::new(&mut self.r, at))
    }

    fn set(&mut self, num: u64, entry: Entry, max_objects: u64) {
        // Numbers beyond the declared limit are ignored: a lookup of one will fail.
        if num >= max_objects {
            return;
        }
        let i = num as usize;
        if self.entries.len() <= i {
            self.entries.resize(i + 1, Entry::Unset);
        }
        // Newer sections are read first and win.
        if self.entries[i] == Entry::Unset {
            self.entries[i] = entry;
        }
    }

    /// One section (table and trailer, or stream); returns its trailer dictionary.
    fn section(
        &mut self,
        at: u64,
        max_objects: u64,
    ) -> Result<Result<Dict, TooManyObjects>, Unknown> {
        let mut lex = self.lexer_at(at)?;
        if lex.next_word()?.as_deref() == Some(b"xref") {
            let mut rows = Vec::new();
            loop {
                if let Some(w) = lex.next_word()? {
                    if w == b"trailer" {
                        break;
                    }
                    return Err(Unknown::new("malformed cross-reference table"));
                }
                let (Some(start), Some(count)) = (lex.next_int()?, lex.next_int()?) else {
                    return Err(Unknown::new("malformed cross-reference subsection"));
                };
                let (start, count) = (nonneg(start)?, nonneg(count)?);
                if start.saturating_add(count) > max_objects {
                    return Ok(Err(TooManyObjects(start.saturating_add(count))));
                }
                for i in 0..count {
                    let (Some(off), Some(_gen), Some(kind)) =
                        (lex.next_int()?, lex.next_int()?, lex.next_word()?)
                    else {
                        return Err(Unknown::new("malformed cross-reference entry"));
                    };
                    let entry = match kind.as_slice() {
                        b"n" => Entry::At(nonneg(off)?),
                        b"f" => Entry::Free,
                        _ => return Err(Unknown::new("malformed cross-reference entry")),
                    };
                    rows.push((start + i, entry));
                }
            }
            let Obj::Dict(trailer) = lex.object()? else {
                return Err(Unknown::new("the trailer is not a dictionary"));
            };
            if let Some(size) = trailer.int(b"Size") {
                if nonneg(size)? > max_objects {
                    return Ok(Err(TooManyObjects(nonneg(size)?)));
                }
            }
            for (num, entry) in rows {
                self.set(num, entry, max_objects);
            }
            return Ok(Ok(trailer));
        }
        let (obj, data) = lex.indirect(None)?;
        let (Obj::Dict(dict), Some(data)) = (obj, data) else {
            return Err(Unknown::new(
                "the cross-reference is neither a table nor a stream",
            ));
        };
        if dict.name(b"Type") != Some(b"XRef") {
            return Err(Unknown::new(
                "the cross-reference stream is not /Type /XRef",
            ));
        }
        let size = nonneg(dict.int(b"Size").unwrap_or(0))?;
        if size > max_objects {
            return Ok(Err(TooManyObjects(size)));
        }
        self.xref_stream(&dict, data, size, max_objects)?;
        Ok(Ok(dict))
    }

    fn xref_stream(
        &mut self,
        dict: &Dict,
        data: u64,
        size: u64,
        max_objects: u64,
    ) -> Result<(), Unknown> {
        let widths: Vec<usize> = match dict.get(b"W") {
            Some(Obj::Array(a)) if a.len() == 3 => a
                .iter()
                .map(|o| match o {
                    Obj::Int(n) if (0..=8).contains(n) => Ok(*n as usize),
                    _ => Err(Unknown::new("bad /W")),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(Unknown::new("bad /W")),
        };
        let ranges: Vec<(u64, u64)> = match dict.get(b"Index") {
            None => vec![(0, size)],
            Some(Obj::Array(a)) => a
                .chunks(2)
                .map(|c| match c {
                    [Obj::Int(s), Obj::Int(n)] => Ok((nonneg(*s)?, nonneg(*n)?)),
                    _ => Err(Unknown::new("bad /Index")),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(Unknown::new("bad /Index")),
        };
        for (s, n) in &ranges {
            if s.saturating_add(*n) > max_objects {
                return Err(Unknown::new("/Index beyond /Size"));
            }
        }
        let columns: usize = widths.iter().sum();
        let predictor = predictor(dict, columns)?;
        let raw = self.stream_length(dict, data)?;
        let flate = match filters(dict).as_slice() {
            [] => false,
            [f] if is_flate(f) => true,
            _ => return Err(Unknown::new("cross-reference stream filter not supported")),
        };
        self.r.seek(SeekFrom::Start(data))?;
        let segment = (&mut self.r).take(raw);
        let mut rows = RowReader::new(
            if flate {
                Box::new(ZlibDecoder::new(segment)) as Box<dyn Read + '_>
            } else {
                Box::new(segment)
            },
            columns,
            predictor,
        );
        let mut decoded = Vec::new();
        for (start, count) in ranges {
            for num in start..start + count {
                let Some(row) = rows.next_row()? else {
                    return Err(Unknown::new("cross-reference stream too short"));
                };
                let mut fields = [0u64; 3];
                let mut at = 0;
                for (i, w) in widths.iter().enumerate() {
                    fields[i] = row[at..at + w]
                        .iter()
                        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
                    at += w;
                }
                let kind = if widths[0] == 0 { 1 } else { fields[0] };
                let entry = match kind {
                    0 => Entry::Free,
                    1 => Entry::At(fields[1]),
                    2 => Entry::InStream {
                        stream: u32::try_from(fields[1]).map_err(|_| Unknown::new("bad entry"))?,
                        index: u32::try_from(fields[2]).map_err(|_| Unknown::new("bad entry"))?,
                    },
                    // Unknown types are to be read as null objects.
                    _ => Entry::Free,
                };
                decoded.push((num, entry));
            }
        }
        drop(rows);
        for (num, entry) in decoded {
            self.set(num, entry, max_objects);
        }
        Ok(())
    }

    /// The raw length of a stream: its `/Length` when `endstream` is where it says, otherwise
    /// found by looking for `endstream` (as pdfium does).
    pub(super) fn stream_length(&mut self, dict: &Dict, data: u64) -> Result<u64, Unknown> {
        let declared = match dict.get(b"Length") {
            Some(Obj::Int(n)) => u64::try_from(*n).ok(),
            Some(Obj::Ref(r)) => match self.load(*r).ok().map(|l| l.obj) {
                Some(Obj::Int(n)) => u64::try_from(n).ok(),
                _ => None,
            },
            _ => None,
        };
        if let Some(len) = declared.filter(|l| data.saturating_add(*l) <= self.len) {
            let mut lex = self.lexer_at(data + len)?;
            if lex.next_word()?.as_deref() == Some(b"endstream") {
                return Ok(len);
            }
        }
        self.find_endstream(data)
    }

    fn find_endstream(&mut self, data: u64) -> Result<u64, Unknown> {
        let key = b"endstream";
        self.r.seek(SeekFrom::Start(data))?;
        let mut at = data;
        let mut carry: Vec<u8> = Vec::new();
        loop {
            let chunk = self.r.fill_buf()?;
            if chunk.is_empty() {
                return Err(Unknown::new("a stream has no endstream"));
            }
            let n = chunk.len();
            let mut window = std::mem::take(&mut carry);
            let window_start = at - window.len() as u64;
            window.extend_from_slice(chunk);
            self.r.consume(n);
            at += n as u64;
            if let Some(i) = window.windows(key.len()).position(|w| w == key) {
                let mut end = window_start + i as u64;
                // The end-of-line before the keyword is not data.
                let before = &window[..i];
                if before.ends_with(b"\r\n") {
                    end -= 2;
                } else if before.ends_with(b"\n") || before.ends_with(b"\r") {
                    end -= 1;
                }
                return Ok(end.max(data) - data);
            }
            carry = window[window.len().saturating_sub(key.len() - 1)..].to_vec();
        }
    }

    /// Reads object `num` wherever the cross-reference puts it.
    pub(super) fn load(&mut self, num: u32) -> Result<Loaded, Unknown> {
        match self
            .entries
            .get(num as usize)
            .copied()
            .unwrap_or(Entry::Unset)
        {
            Entry::At(at) => {
                let mut lex = self.lexer_at(at)?;
                let (obj, stream) = lex.indirect(Some(num))?;
                Ok(Loaded { obj, stream })
            }
            Entry::InStream { stream, index } => {
                self.load_objstm(stream)?;
                let Some(ObjStm { bytes, offsets, .. }) = &self.objstm else {
                    return Err(Unknown::new("object stream not loaded"));
                };
                let off = offsets
                    .get(index as usize)
                    .filter(|(n, _)| *n == num)
                    .or_else(|| offsets.iter().find(|(n, _)| *n == num))
                    .map(|(_, off)| *off)
                    .ok_or_else(|| Unknown::new("object not in its object stream"))?;
                let start = usize::try_from(off)
                    .ok()
                    .filter(|&s| s <= bytes.len())
                    .ok_or_else(|| Unknown::new("bad object stream offset"))?;
                let obj = Lexer::new(&bytes[start..], 0).object()?;
                Ok(Loaded { obj, stream: None })
            }
            Entry::Free => Ok(Loaded {
                obj: Obj::Null,
                stream: None,
            }),
            Entry::Unset => Err(Unknown::new(
                "an object is missing from the cross-reference",
            )),
        }
    }

    fn load_objstm(&mut self, num: u32) -> Result<(), Unknown> {
        if self.objstm.as_ref().is_some_and(|o| o.num == num) {
            return Ok(());
        }
        self.objstm = None;
        let Entry::At(_) = self
            .entries
            .get(num as usize)
            .copied()
            .unwrap_or(Entry::Unset)
        else {
            return Err(Unknown::new("an object stream is not at a file offset"));
        };
        let Loaded {
            obj: Obj::Dict(dict),
            stream: Some(data),
        } = self.load(num)?
        else {
            return Err(Unknown::new("an object stream is not a stream"));
        };
        let count = dict.int(b"N").and_then(|v| usize::try_from(v).ok());
        let first = dict.int(b"First").and_then(|v| usize::try_from(v).ok());
        let (Some(count), Some(first)) = (count, first) else {
            return Err(Unknown::new("an object stream lacks /N or /First"));
        };
        let raw = self.stream_length(&dict, data)?;
        let flate = match filters(&dict).as_slice() {
            [] => false,
            [f] if is_flate(f) => true,
            _ => return Err(Unknown::new("object stream filter not supported")),
        };
        self.r.seek(SeekFrom::Start(data))?;
        let segment = (&mut self.r).take(raw);
        let mut bytes = Vec::new();
        let read = if flate {
            ZlibDecoder::new(segment)
                .take(MAX_OBJSTM_BYTES + 1)
                .read_to_end(&mut bytes)
        } else {
            segment.take(MAX_OBJSTM_BYTES + 1).read_to_end(&mut bytes)
        };
        read?;
        if bytes.len() as u64 > MAX_OBJSTM_BYTES || first > bytes.len() {
            return Err(Unknown::new("object stream too large"));
        }
        let mut lex = Lexer::new(&bytes[..first], 0);
        let mut offsets = Vec::with_capacity(count.min(10_000));
        for _ in 0..count {
            let (Some(n), Some(off)) = (lex.next_int()?, lex.next_int()?) else {
                break;
            };
            offsets.push((
                u32::try_from(n).map_err(|_| Unknown::new("bad object number"))?,
                u64::try_from(off).map_err(|_| Unknown::new("bad offset"))? + first as u64,
            ));
        }
        self.objstm = Some(ObjStm {
            num,
            bytes,
            offsets,
        });
        Ok(())
    }

    /// `obj` itself, or what it refers to (following chains of references).
    pub(super) fn resolve(&mut self, obj: &Obj) -> Result<Loaded, Unknown> {
        let mut cur = Loaded {
            obj: obj.clone(),
            stream: None,
        };
        for _ in 0..MAX_HOPS {
            match cur.obj {
                Obj::Ref(r) => cur = self.load(r)?,
                _ => return Ok(cur),
            }
        }
        Err(Unknown::new("a reference chain is too long"))
    }

    /// A segment of the file, for reading a stream's raw bytes.
    pub(super) fn segment(&mut self, at: u64, len: u64) -> Result<impl Read + '_, Unknown> {
        self.r.seek(SeekFrom::Start(at))?;
        Ok((&mut self.r).take(len))
    }
}

fn nonneg(v: i64) -> Result<u64, Unknown> {
    u64::try_from(v).map_err(|_| Unknown::new("a negative number where a count belongs"))
}

/// A stream's filter names, in order.
pub(super) fn filters(dict: &Dict) -> Vec<Vec<u8>> {
    match dict.get(b"Filter") {
        Some(Obj::Name(n)) => vec![n.clone()],
        Some(Obj::Array(a)) => a
            .iter()
            .map(|o| match o {
                Obj::Name(n) => n.clone(),
                _ => Vec::new(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

pub(super) fn is_flate(name: &[u8]) -> bool {
    name == b"FlateDecode" || name == b"Fl"
}

/// PNG predictor row width (`Some(columns)`) from `/DecodeParms`, `None` for no predictor.
fn predictor(dict: &Dict, columns: usize) -> Result<Option<usize>, Unknown> {
    let parms = match dict.get(b"DecodeParms") {
        Some(Obj::Dict(d)) => d,
        Some(Obj::Array(a)) => match a.first() {
            Some(Obj::Dict(d)) => d,
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    match parms.int(b"Predictor").unwrap_or(1) {
        1 => Ok(None),
        10..=15 => {
            let cols = parms.int(b"Columns").unwrap_or(1);
            if usize::try_from(cols).ok() != Some(columns) {
                return Err(Unknown::new("predictor columns differ from /W"));
            }
            Ok(Some(columns))
        }
        _ => Err(Unknown::new("predictor not supported")),
    }
}

/// Rows of a cross-reference stream, undoing PNG prediction one row at a time.
struct RowReader<R> {
    r: R,
    columns: usize,
    png: bool,
    prev: Vec<u8>,
    row: Vec<u8>,
}

impl<R: Read> RowReader<R> {
    fn new(r: R, columns: usize, predictor: Option<usize>) -> Self {
        Self {
            r,
            columns,
            png: predictor.is_some(),
            prev: vec![0; columns],
            row: vec![0; columns + 1],
        }
    }

    fn next_row(&mut self) -> Result<Option<&[u8]>, Unknown> {
        let width = self.columns + usize::from(self.png);
        let buf = &mut self.row[..width];
        let mut got = 0;
        while got < width {
            let n = self.r.read(&mut buf[got..])?;
            if n == 0 {
                return Ok(None);
            }
            got += n;
        }
        if !self.png {
            return Ok(Some(&self.row[..width]));
        }
        let kind = self.row[0];
        // One byte per pixel (cross-reference streams have Colors 1, 8 bits).
        let (mut left, mut up_left) = (0u8, 0u8);
        for i in 0..self.columns {
            let (x, up) = (self.row[i + 1], self.prev[i]);
            let v = match kind {
                0 => x,
                1 => x.wrapping_add(left),
                2 => x.wrapping_add(up),
                3 => x.wrapping_add(((u16::from(left) + u16::from(up)) / 2) as u8),
                4 => x.wrapping_add(paeth(left, up, up_left)),
                _ => return Err(Unknown::new("bad PNG row filter")),
            };
            self.prev[i] = v;
            (left, up_left) = (v, up);
        }
        Ok(Some(&self.prev))
    }
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = i16::from(a) + i16::from(b) - i16::from(c);
    let (pa, pb, pc) = (
        (p - i16::from(a)).abs(),
        (p - i16::from(b)).abs(),
        (p - i16::from(c)).abs(),
    );
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}
