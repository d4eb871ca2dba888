//! Parsing the QuickBooks query subset:
//! `SELECT * | COUNT(*) FROM <Entity> [WHERE <prop> <op> <value> [AND ...]] [ORDERBY <prop>
//! [ASC|DESC]] [STARTPOSITION n] [MAXRESULTS n]`, with the operators `= < > <= >= IN LIKE`,
//! single-quoted strings escaped with a backslash, no OR and no JOIN. The entity name is
//! case-sensitive; STARTPOSITION is 1-based; MAXRESULTS defaults to 100 and is clamped to 1000.

use super::entity::Kind;
use super::fault::Fault;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    /// A string literal: its value and its LIKE pattern (`None` = an unescaped `%`).
    Str(String, Vec<Option<char>>),
    Num(String),
    Star,
    LParen,
    RParen,
    Comma,
    Op(&'static str),
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("\"{w}\""),
            Tok::Str(s, _) => format!("string '{s}'"),
            Tok::Num(n) => format!("number {n}"),
            Tok::Star => "\"*\"".into(),
            Tok::LParen => "\"(\"".into(),
            Tok::RParen => "\")\"".into(),
            Tok::Comma => "\",\"".into(),
            Tok::Op(o) => format!("\"{o}\""),
        }
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }
}

fn tokenize(sql: &str) -> Result<Vec<Tok>, Fault> {
    let chars: Vec<char> = sql.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            '\'' => {
                i += 1;
                let mut value = String::new();
                let mut pattern = Vec::new();
                let mut closed = false;
                while i < chars.len() {
                    match chars[i] {
                        '\\' => {
                            let Some(&next) = chars.get(i + 1) else {
                                return Err(Fault::parser("a backslash ends the query"));
                            };
                            value.push(next);
                            pattern.push(Some(next));
                            i += 2;
                        }
                        '\'' => {
                            closed = true;
                            i += 1;
                            break;
                        }
                        ch => {
                            value.push(ch);
                            pattern.push((ch != '%').then_some(ch));
                            i += 1;
                        }
                    }
                }
                if !closed {
                    return Err(Fault::parser("unterminated string literal"));
                }
                toks.push(Tok::Str(value, pattern));
            }
            '*' => {
                toks.push(Tok::Star);
                i += 1;
            }
            '(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                toks.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            '=' => {
                toks.push(Tok::Op("="));
                i += 1;
            }
            '<' | '>' => {
                let next = chars.get(i + 1).copied();
                let op = match (c, next) {
                    ('<', Some('=')) => "<=",
                    ('>', Some('=')) => ">=",
                    ('<', Some('>')) => {
                        return Err(Fault::parser("operator <> is not supported"));
                    }
                    ('<', _) => "<",
                    _ => ">",
                };
                i += op.len();
                toks.push(Tok::Op(op));
            }
            '!' => return Err(Fault::parser("operator != is not supported")),
            '"' => {
                return Err(Fault::parser(
                    "double quotes are not allowed; quote strings with single quotes",
                ))
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                toks.push(Tok::Num(chars[start..i].iter().collect()));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.')
                {
                    i += 1;
                }
                toks.push(Tok::Word(chars[start..i].iter().collect()));
            }
            other => {
                return Err(Fault::parser(format!(
                    "unexpected character '{other}' at column {}",
                    i + 1
                )))
            }
        }
    }
    Ok(toks)
}

#[derive(Debug, Clone)]
pub(super) enum Lit {
    Str(String, Vec<Option<char>>),
    Num(f64),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum CondOp {
    Eq,
    Lt,
    Gt,
    Le,
    Ge,
    In,
    Like,
}

/// One WHERE condition: a property, an operator and its values (several for IN).
#[derive(Debug, Clone)]
pub(super) struct Cond {
    pub(super) prop: String,
    pub(super) op: CondOp,
    pub(super) values: Vec<Lit>,
}

/// A parsed `SELECT`.
#[derive(Debug)]
pub(super) struct Query {
    pub(super) count: bool,
    pub(super) kind: Kind,
    pub(super) conds: Vec<Cond>,
    pub(super) order: Option<(String, bool)>,
    pub(super) start: u64,
    pub(super) max: u64,
}

const RESERVED: [&str; 14] = [
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "ORDERBY",
    "ORDER",
    "ASC",
    "DESC",
    "STARTPOSITION",
    "MAXRESULTS",
    "IN",
    "LIKE",
    "JOIN",
];

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.peek().is_some_and(|t| t.is_kw(kw)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), Fault> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("expected {kw}")))
        }
    }

    fn expect(&mut self, tok: Tok) -> Result<(), Fault> {
        if self.peek() == Some(&tok) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(&format!("expected {}", tok.describe())))
        }
    }

    fn unexpected(&self, wanted: &str) -> Fault {
        match self.peek() {
            Some(t) => Fault::parser(format!("Encountered {} ({wanted})", t.describe())),
            None => Fault::parser(format!("Encountered the end of the query ({wanted})")),
        }
    }

    fn integer(&mut self, clause: &str) -> Result<u64, Fault> {
        match self.next() {
            Some(Tok::Num(n)) => n
                .parse::<u64>()
                .map_err(|_| Fault::parser(format!("{clause} needs a whole number, not {n}"))),
            _ => {
                self.pos -= 1;
                Err(self.unexpected(&format!("{clause} needs a number")))
            }
        }
    }

    fn property(&mut self, kind: Kind) -> Result<String, Fault> {
        match self.next() {
            Some(Tok::Word(w)) if !RESERVED.iter().any(|r| w.eq_ignore_ascii_case(r)) => kind
                .queryable()
                .iter()
                .find(|p| p.eq_ignore_ascii_case(&w))
                .map(|p| p.to_string())
                .ok_or_else(|| {
                    Fault::invalid_query(format!(
                        "property {w} is not queryable for entity {}",
                        kind.name()
                    ))
                }),
            _ => {
                self.pos -= 1;
                Err(self.unexpected("expected a property name"))
            }
        }
    }

    fn literal(&mut self) -> Result<Lit, Fault> {
        match self.next() {
            Some(Tok::Str(s, p)) => Ok(Lit::Str(s, p)),
            Some(Tok::Num(n)) => n
                .parse()
                .map(Lit::Num)
                .map_err(|_| Fault::parser(format!("bad number {n}"))),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Ok(Lit::Bool(true)),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Ok(Lit::Bool(false)),
            _ => {
                self.pos -= 1;
                Err(self.unexpected("expected a value: 'string', number, true or false"))
            }
        }
    }

    fn condition(&mut self, kind: Kind) -> Result<Cond, Fault> {
        let prop = self.property(kind)?;
        let op = match self.next() {
            Some(Tok::Op("=")) => CondOp::Eq,
            Some(Tok::Op("<")) => CondOp::Lt,
            Some(Tok::Op(">")) => CondOp::Gt,
            Some(Tok::Op("<=")) => CondOp::Le,
            Some(Tok::Op(">=")) => CondOp::Ge,
            Some(t) if t.is_kw("IN") => CondOp::In,
            Some(t) if t.is_kw("LIKE") => CondOp::Like,
            _ => {
                self.pos -= 1;
                return Err(self.unexpected("expected an operator: = < > <= >= IN LIKE"));
            }
        };
        let mut values = Vec::new();
        if op == CondOp::In {
            self.expect(Tok::LParen)?;
            loop {
                values.push(self.literal()?);
                if self.peek() == Some(&Tok::Comma) {
                    self.pos += 1;
                    continue;
                }
                self.expect(Tok::RParen)?;
                break;
            }
        } else {
            let value = self.literal()?;
            if op == CondOp::Like && !matches!(value, Lit::Str(..)) {
                return Err(Fault::parser("LIKE needs a quoted string"));
            }
            values.push(value);
        }
        Ok(Cond { prop, op, values })
    }
}

pub(super) fn parse_query(sql: &str) -> Result<Query, Fault> {
    let mut p = Parser {
        toks: tokenize(sql)?,
        pos: 0,
    };
    if let Some(t) = p.toks.iter().find(|t| t.is_kw("JOIN")) {
        return Err(Fault::parser(format!("{} is not supported", t.describe())));
    }
    if let Some(t) = p.toks.iter().find(|t| t.is_kw("OR")) {
        return Err(Fault::parser(format!(
            "{} is not supported; conditions combine with AND only",
            t.describe()
        )));
    }
    p.expect_kw("SELECT")?;
    let count = if p.eat_kw("COUNT") {
        p.expect(Tok::LParen)?;
        p.expect(Tok::Star)?;
        p.expect(Tok::RParen)?;
        true
    } else if p.peek() == Some(&Tok::Star) {
        p.pos += 1;
        false
    } else {
        return Err(p.unexpected("only SELECT * and SELECT COUNT(*) are supported"));
    };
    p.expect_kw("FROM")?;
    let kind = match p.next() {
        Some(Tok::Word(w)) => {
            Kind::from_name(&w).ok_or_else(|| Fault::parser(format!("unknown entity \"{w}\"")))?
        }
        _ => {
            p.pos -= 1;
            return Err(p.unexpected("expected an entity name"));
        }
    };
    let mut conds = Vec::new();
    if p.eat_kw("WHERE") {
        conds.push(p.condition(kind)?);
        while p.eat_kw("AND") {
            conds.push(p.condition(kind)?);
        }
    }
    let mut order = None;
    let ordered = if p.eat_kw("ORDERBY") {
        true
    } else if p.eat_kw("ORDER") {
        p.expect_kw("BY")?;
        true
    } else {
        false
    };
    if ordered {
        let prop = p.property(kind)?;
        let desc = if p.eat_kw("DESC") {
            true
        } else {
            p.eat_kw("ASC");
            false
        };
        order = Some((prop, desc));
    }
    let mut start = None;
    let mut max = None;
    loop {
        if start.is_none() && p.eat_kw("STARTPOSITION") {
            start = Some(p.integer("STARTPOSITION")?);
        } else if max.is_none() && p.eat_kw("MAXRESULTS") {
            max = Some(p.integer("MAXRESULTS")?);
        } else {
            break;
        }
    }
    if p.peek().is_some() {
        return Err(p.unexpected("expected the end of the query"));
    }
    let start = start.unwrap_or(1);
    if start == 0 {
        return Err(Fault::invalid_query("STARTPOSITION starts at 1"));
    }
    let max = max.unwrap_or(100);
    if max == 0 {
        return Err(Fault::invalid_query("MAXRESULTS must be at least 1"));
    }
    Ok(Query {
        count,
        kind,
        conds,
        order,
        start,
        max: max.min(1000),
    })
}
