//! Counting a content stream's operators as it streams past, and the XObjects it draws.

use super::parse::{is_delim, is_white};

/// Distinct XObject names remembered per stream; past this, further `Do`s still count as
/// operators but are not looked at.
const MAX_DRAWN: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Space,
    /// Inside a number, keyword or name; `name` when it started with `/`.
    Word {
        name: bool,
    },
    Str {
        depth: u32,
        escape: bool,
    },
    Hex,
    Comment,
    /// Binary data of an inline image (after `ID`): `matched` bytes of " EI" seen.
    Inline {
        matched: u8,
    },
}

/// A streaming operator counter: feed it the decoded bytes in chunks of any size.
#[derive(Debug)]
pub(super) struct OpCounter {
    state: State,
    word: Vec<u8>,
    last_name: Vec<u8>,
    pub(super) operators: u64,
    /// Names drawn with `Do`.
    pub(super) drawn: Vec<Vec<u8>>,
}

impl OpCounter {
    pub(super) fn new() -> Self {
        Self {
            state: State::Space,
            word: Vec::new(),
            last_name: Vec::new(),
            operators: 0,
            drawn: Vec::new(),
        }
    }

    pub(super) fn feed(&mut self, data: &[u8]) {
        for &b in data {
            self.byte(b);
        }
    }

    pub(super) fn finish(&mut self) {
        self.byte(b' ');
    }

    fn byte(&mut self, b: u8) {
        match self.state {
            State::Space => self.start(b),
            State::Word { name } => {
                if is_white(b) || is_delim(b) {
                    self.end_word(name);
                    if self.state == State::Space {
                        self.start(b);
                    }
                } else if self.word.len() < 64 {
                    self.word.push(b);
                }
            }
            State::Str { depth, escape } => {
                self.state = match (escape, b) {
                    (true, _) => State::Str {
                        depth,
                        escape: false,
                    },
                    (false, b'\\') => State::Str {
                        depth,
                        escape: true,
                    },
                    (false, b'(') => State::Str {
                        depth: depth + 1,
                        escape: false,
                    },
                    (false, b')') if depth <= 1 => State::Space,
                    (false, b')') => State::Str {
                        depth: depth - 1,
                        escape: false,
                    },
                    _ => State::Str { depth, escape },
                }
            }
            State::Hex => {
                if b == b'>' {
                    self.state = State::Space;
                }
            }
            State::Comment => {
                if b == b'\n' || b == b'\r' {
                    self.state = State::Space;
                }
            }
            State::Inline { matched } => {
                self.state = match (matched, b) {
                    (0, b) if is_white(b) => State::Inline { matched: 1 },
                    (1, b'E') => State::Inline { matched: 2 },
                    (2, b'I') => State::Inline { matched: 3 },
                    (3, b) if is_white(b) => {
                        self.operators += 1;
                        State::Space
                    }
                    (_, b) if is_white(b) => State::Inline { matched: 1 },
                    _ => State::Inline { matched: 0 },
                }
            }
        }
    }

    fn start(&mut self, b: u8) {
        self.state = match b {
            b'(' => State::Str {
                depth: 1,
                escape: false,
            },
            b'%' => State::Comment,
            // Dictionaries (`<<...>>`) hold no operators: read like hex strings, they end at
            // the first `>`, and the rest is skipped as delimiters.
            b'<' => State::Hex,
            b'>' | b'[' | b']' | b'{' | b'}' | b')' => State::Space,
            b'/' => {
                self.word.clear();
                State::Word { name: true }
            }
            b if is_white(b) => State::Space,
            b => {
                self.word.clear();
                self.word.push(b);
                State::Word { name: false }
            }
        };
    }

    fn end_word(&mut self, name: bool) {
        self.state = State::Space;
        if name {
            self.last_name.clone_from(&self.word);
            return;
        }
        let Some(&first) = self.word.first() else {
            return;
        };
        let number = first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'.');
        if number || matches!(self.word.as_slice(), b"true" | b"false" | b"null") {
            return;
        }
        self.operators += 1;
        match self.word.as_slice() {
            b"Do" if self.drawn.len() < MAX_DRAWN && !self.drawn.contains(&self.last_name) => {
                self.drawn.push(self.last_name.clone());
            }
            b"ID" => {
                // The inline image's data follows after one white-space byte.
                self.state = State::Inline { matched: 0 };
                self.word.clear();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(s: &[u8]) -> OpCounter {
        let mut c = OpCounter::new();
        // Byte by byte: state must survive any chunk boundary.
        for b in s {
            c.feed(std::slice::from_ref(b));
        }
        c.finish();
        c
    }

    #[test]
    fn operators_are_counted_and_operands_are_not() {
        assert_eq!(count(b"0 0 m 100 100 l S\n").operators, 3);
        assert_eq!(
            count(b"BT /F1 11 Tf (a\\) Tj) Tj [(x) -5 (y)] TJ <414243> Tj ET").operators,
            6
        );
        assert_eq!(
            count(b"<< /MCID 0 >> BDC true false null EMC % c m l\n").operators,
            2
        );
    }

    #[test]
    fn drawn_xobjects_and_inline_images() {
        let c = count(b"q 612 0 0 792 0 0 cm /Im0 Do Q /Fm1 Do /Im0 Do");
        assert_eq!(c.drawn, vec![b"Im0".to_vec(), b"Fm1".to_vec()]);
        assert_eq!(c.operators, 6);
        let c = count(b"BI /W 2 /H 1 /BPC 8 /CS /G ID \x00m l S EIx EI Q");
        assert_eq!(c.operators, 4, "BI, ID, EI, Q");
    }
}
