//! PDF objects read from any buffered reader, one token at a time: the reader's buffer is all
//! that is held besides the object itself, whose size is capped.

use std::io::BufRead;

use super::Unknown;

/// Longest name, number or keyword we accept (the standard's own limit is 127 bytes).
const MAX_WORD: usize = 4096;
/// Nesting and element caps for one object: a real page dictionary has tens of entries.
const MAX_DEPTH: usize = 32;
const MAX_ELEMENTS: usize = 100_000;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Obj {
    Null,
    Bool(bool),
    Int(i64),
    Real(f64),
    Name(Vec<u8>),
    /// Strings are skipped: nothing we check needs their contents.
    Str,
    Array(Vec<Obj>),
    Dict(Dict),
    Ref(u32),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Dict(Vec<(Vec<u8>, Obj)>);

impl Dict {
    pub(super) fn get(&self, key: &[u8]) -> Option<&Obj> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub(super) fn int(&self, key: &[u8]) -> Option<i64> {
        match self.get(key) {
            Some(Obj::Int(n)) => Some(*n),
            _ => None,
        }
    }

    pub(super) fn name(&self, key: &[u8]) -> Option<&[u8]> {
        match self.get(key) {
            Some(Obj::Name(n)) => Some(n),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Int(i64),
    Real(f64),
    Name(Vec<u8>),
    Str,
    ArrOpen,
    ArrClose,
    DictOpen,
    DictClose,
    Word(Vec<u8>),
}

pub(super) fn is_white(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t' | b'\x0C' | b'\0')
}

pub(super) fn is_delim(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

/// Tokens and objects from `r`; `pos` is the file offset of the next byte.
pub(super) struct Lexer<R> {
    r: R,
    pub(super) pos: u64,
    back: Vec<Tok>,
    elements: usize,
}

impl<R: BufRead> Lexer<R> {
    pub(super) fn new(r: R, pos: u64) -> Self {
        Self {
            r,
            pos,
            back: Vec::new(),
            elements: 0,
        }
    }

    fn peek(&mut self) -> Result<Option<u8>, Unknown> {
        Ok(self.r.fill_buf()?.first().copied())
    }

    fn bump(&mut self) {
        self.r.consume(1);
        self.pos += 1;
    }

    fn skip_space(&mut self) -> Result<(), Unknown> {
        while let Some(b) = self.peek()? {
            if is_white(b) {
                self.bump();
            } else if b == b'%' {
                while let Some(c) = self.peek()? {
                    if c == b'\n' || c == b'\r' {
                        break;
                    }
                    self.bump();
                }
            } else {
                break;
            }
        }
        Ok(())
    }

    fn word(&mut self) -> Result<Vec<u8>, Unknown> {
        let mut w = Vec::new();
        while let Some(b) = self.peek()? {
            if is_white(b) || is_delim(b) {
                break;
            }
            if w.len() >= MAX_WORD {
                return Err(Unknown::new("a token is too long"));
            }
            w.push(b);
            self.bump();
        }
        Ok(w)
    }

    fn token(&mut self) -> Result<Option<Tok>, Unknown> {
        if let Some(t) = self.back.pop() {
            return Ok(Some(t));
        }
        self.skip_space()?;
        let Some(b) = self.peek()? else {
            return Ok(None);
        };
        let tok = match b {
            b'[' => {
                self.bump();
                Tok::ArrOpen
            }
            b']' => {
                self.bump();
                Tok::ArrClose
            }
            b'<' => {
                self.bump();
                if self.peek()? == Some(b'<') {
                    self.bump();
                    Tok::DictOpen
                } else {
                    while let Some(c) = self.peek()? {
                        self.bump();
                        if c == b'>' {
                            break;
                        }
                    }
                    Tok::Str
                }
            }
            b'>' => {
                self.bump();
                if self.peek()? == Some(b'>') {
                    self.bump();
                }
                Tok::DictClose
            }
            b'(' => {
                self.bump();
                let mut depth = 1u32;
                while depth > 0 {
                    let Some(c) = self.peek()? else { break };
                    self.bump();
                    match c {
                        // The escaped byte (even a parenthesis) is skipped.
                        b'\\' if self.peek()?.is_some() => self.bump(),
                        b'(' => depth += 1,
                        b')' => depth -= 1,
                        _ => {}
                    }
                }
                Tok::Str
            }
            b'/' => {
                self.bump();
                Tok::Name(decode_name(&self.word()?))
            }
            b')' | b'{' | b'}' => {
                self.bump();
                Tok::Word(vec![b])
            }
            _ => {
                let w = self.word()?;
                number(&w).unwrap_or(Tok::Word(w))
            }
        };
        Ok(Some(tok))
    }

    /// The next keyword, or an error naming what was expected.
    pub(super) fn keyword(&mut self, want: &[u8]) -> Result<(), Unknown> {
        match self.token()? {
            Some(Tok::Word(w)) if w == want => Ok(()),
            _ => Err(Unknown::new(format!(
                "expected `{}`",
                String::from_utf8_lossy(want)
            ))),
        }
    }

    /// The next token if it is a keyword (`xref`, `trailer`, `n`, ...).
    pub(super) fn next_word(&mut self) -> Result<Option<Vec<u8>>, Unknown> {
        match self.token()? {
            Some(Tok::Word(w)) => Ok(Some(w)),
            Some(other) => {
                self.back.push(other);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// The next token if it is an integer.
    pub(super) fn next_int(&mut self) -> Result<Option<i64>, Unknown> {
        match self.token()? {
            Some(Tok::Int(n)) => Ok(Some(n)),
            Some(other) => {
                self.back.push(other);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    pub(super) fn object(&mut self) -> Result<Obj, Unknown> {
        self.elements = 0;
        self.object_at(0)
    }

    fn object_at(&mut self, depth: usize) -> Result<Obj, Unknown> {
        self.elements += 1;
        if depth > MAX_DEPTH || self.elements > MAX_ELEMENTS {
            return Err(Unknown::new("an object is too large or too deeply nested"));
        }
        let tok = self
            .token()?
            .ok_or_else(|| Unknown::new("unexpected end of file"))?;
        Ok(match tok {
            Tok::Int(n) => {
                // `n g R` is a reference.
                match self.token()? {
                    Some(Tok::Int(g)) => match self.token()? {
                        Some(Tok::Word(w)) if w == b"R" => {
                            let _ = g;
                            Obj::Ref(u32::try_from(n).map_err(|_| Unknown::new("bad ref"))?)
                        }
                        third => {
                            if let Some(t) = third {
                                self.back.push(t);
                            }
                            self.back.push(Tok::Int(g));
                            Obj::Int(n)
                        }
                    },
                    second => {
                        if let Some(t) = second {
                            self.back.push(t);
                        }
                        Obj::Int(n)
                    }
                }
            }
            Tok::Real(r) => Obj::Real(r),
            Tok::Name(n) => Obj::Name(n),
            Tok::Str => Obj::Str,
            Tok::ArrOpen => {
                let mut items = Vec::new();
                loop {
                    match self.token()? {
                        Some(Tok::ArrClose) => break,
                        Some(t) => {
                            self.back.push(t);
                            items.push(self.object_at(depth + 1)?);
                        }
                        None => return Err(Unknown::new("unterminated array")),
                    }
                }
                Obj::Array(items)
            }
            Tok::DictOpen => {
                let mut entries = Vec::new();
                loop {
                    match self.token()? {
                        Some(Tok::DictClose) => break,
                        Some(Tok::Name(k)) => {
                            let v = self.object_at(depth + 1)?;
                            entries.push((k, v));
                        }
                        _ => return Err(Unknown::new("malformed dictionary")),
                    }
                }
                Obj::Dict(Dict(entries))
            }
            Tok::Word(w) => match w.as_slice() {
                b"true" => Obj::Bool(true),
                b"false" => Obj::Bool(false),
                b"null" => Obj::Null,
                _ => return Err(Unknown::new("unexpected keyword in an object")),
            },
            Tok::ArrClose | Tok::DictClose => {
                return Err(Unknown::new("unexpected closing bracket"))
            }
        })
    }

    /// Reads `num gen obj <object>` and, when a stream follows, the offset of its first byte.
    pub(super) fn indirect(&mut self, num: Option<u32>) -> Result<(Obj, Option<u64>), Unknown> {
        let n = self.next_int()?;
        let g = self.next_int()?;
        match (n, g, num) {
            (Some(n), Some(_), Some(want)) if u32::try_from(n).ok() == Some(want) => {}
            (Some(_), Some(_), None) => {}
            _ => {
                return Err(Unknown::new(
                    "the cross-reference points at the wrong object",
                ))
            }
        }
        self.keyword(b"obj")?;
        let obj = self.object()?;
        if !matches!(obj, Obj::Dict(_)) {
            return Ok((obj, None));
        }
        match self.next_word()? {
            Some(w) if w == b"stream" => {
                // The keyword is followed by CRLF or LF (a lone CR is tolerated).
                if self.peek()? == Some(b'\r') {
                    self.bump();
                }
                if self.peek()? == Some(b'\n') {
                    self.bump();
                }
                Ok((obj, Some(self.pos)))
            }
            _ => Ok((obj, None)),
        }
    }
}

fn number(w: &[u8]) -> Option<Tok> {
    let first = *w.first()?;
    if !(first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'.')) {
        return None;
    }
    let s = std::str::from_utf8(w).ok()?;
    if let Ok(n) = s.parse::<i64>() {
        return Some(Tok::Int(n));
    }
    s.parse::<f64>().ok().map(Tok::Real)
}

fn decode_name(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'#' && i + 2 < raw.len() {
            if let Ok(v) = u8::from_str_radix(&String::from_utf8_lossy(&raw[i + 1..i + 3]), 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(s: &str) -> Obj {
        Lexer::new(s.as_bytes(), 0).object().unwrap()
    }

    #[test]
    fn objects_refs_and_strings() {
        let o = parse("<< /Type /Page /Kids [3 0 R 4 0 R] /N 5 /S (a (b) \\) c) /H <41> /F 1.5 >>");
        let Obj::Dict(d) = o else { panic!() };
        assert_eq!(d.name(b"Type"), Some(&b"Page"[..]));
        assert_eq!(
            d.get(b"Kids"),
            Some(&Obj::Array(vec![Obj::Ref(3), Obj::Ref(4)]))
        );
        assert_eq!(d.int(b"N"), Some(5));
        assert_eq!(d.get(b"S"), Some(&Obj::Str));
        assert_eq!(d.get(b"F"), Some(&Obj::Real(1.5)));
        assert_eq!(parse("[1 2]"), Obj::Array(vec![Obj::Int(1), Obj::Int(2)]));
        assert_eq!(parse("/A#20B"), Obj::Name(b"A B".to_vec()));
    }

    #[test]
    fn stream_offset_follows_the_keyword() {
        let src = b"7 0 obj\n<< /Length 3 >>\nstream\r\nabc\nendstream\nendobj";
        let (o, at) = Lexer::new(&src[..], 100).indirect(Some(7)).unwrap();
        assert!(matches!(o, Obj::Dict(_)));
        let at = at.unwrap() as usize - 100;
        assert_eq!(&src[at..at + 3], b"abc");
        assert!(Lexer::new(&src[..], 0).indirect(Some(8)).is_err());
    }
}
