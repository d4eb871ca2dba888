//! Running a parsed query over the company's store: filtering, ordering and the page of
//! the answer (`{}` when nothing matches, `totalCount` for `COUNT(*)`).

use std::cmp::Ordering;

use chrono::DateTime;
use serde_json::{json, Value};

use super::company::Company;
use super::entity::number;
use super::fault::Fault;
use super::query::{parse_query, Cond, CondOp, Lit};

impl Company {
    /// Runs `sql`: the `QueryResponse` member of the answer.
    pub(super) fn query(&self, sql: &str) -> Result<Value, Fault> {
        let q = parse_query(sql)?;
        let mut rows: Vec<&Value> = self
            .table(q.kind)
            .values()
            .filter(|row| q.conds.iter().all(|c| c.matches(row)))
            .collect();
        if q.count {
            return Ok(json!({"totalCount": rows.len()}));
        }
        if let Some((prop, desc)) = &q.order {
            let numeric = numeric_prop(prop);
            rows.sort_by(|a, b| {
                let o = cmp_fields(
                    resolve(a, prop).as_ref(),
                    resolve(b, prop).as_ref(),
                    numeric,
                );
                if *desc {
                    o.reverse()
                } else {
                    o
                }
            });
        }
        let page: Vec<Value> = rows
            .into_iter()
            .skip(q.start.saturating_sub(1) as usize)
            .take(q.max as usize)
            .cloned()
            .collect();
        if page.is_empty() {
            return Ok(json!({}));
        }
        let n = page.len();
        Ok(json!({ q.kind.name(): page, "startPosition": q.start, "maxResults": n }))
    }
}

/// Ids and `Ref`s compare numerically when both sides are numbers.
fn numeric_prop(prop: &str) -> bool {
    prop == "Id" || prop == "SyncToken" || prop.ends_with("Ref") || prop.ends_with("Ref.value")
}

/// The first value a property path names (what ORDERBY sorts on).
fn resolve(row: &Value, prop: &str) -> Option<Value> {
    resolve_all(row, prop).into_iter().next()
}

/// Every value a property path names: one for a path through objects, one per element for
/// a path through an array (`AttachableRef.EntityRef.value`). A `Ref` gives its `value`, an
/// email its `Address`.
fn resolve_all(row: &Value, prop: &str) -> Vec<Value> {
    let parts: Vec<&str> = prop.split('.').collect();
    let mut found = Vec::new();
    walk(row, &parts, &mut found);
    found
}

fn walk(cur: &Value, parts: &[&str], found: &mut Vec<Value>) {
    match (cur, parts.split_first()) {
        (Value::Array(items), _) => {
            for item in items {
                walk(item, parts, found);
            }
        }
        (Value::Object(obj), Some((part, rest))) => {
            let next = obj.get(*part).or_else(|| {
                obj.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(part))
                    .map(|(_, v)| v)
            });
            if let Some(next) = next {
                walk(next, rest, found);
            }
        }
        (_, Some(_)) | (Value::Null, None) => {}
        (Value::Object(m), None) => {
            if let Some(v) = m.get("value").or_else(|| m.get("Address")) {
                found.push(v.clone());
            }
        }
        (v, None) => found.push(v.clone()),
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Orders two property values: numbers numerically, times as instants, text
/// ASCII-case-insensitively; a missing value sorts first.
fn cmp_fields(a: Option<&Value>, b: Option<&Value>, numeric: bool) -> Ordering {
    let (a, b) = match (a, b) {
        (None, None) => return Ordering::Equal,
        (None, Some(_)) => return Ordering::Less,
        (Some(_), None) => return Ordering::Greater,
        (Some(a), Some(b)) => (a, b),
    };
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(_), _) | (_, Value::Number(_)) => match (number(a), number(b)) {
            (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
            _ => cmp_text(&text_of(a), &text_of(b), numeric),
        },
        _ => cmp_text(&text_of(a), &text_of(b), numeric),
    }
}

fn cmp_text(a: &str, b: &str, numeric: bool) -> Ordering {
    if numeric {
        if let (Ok(x), Ok(y)) = (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
            return x.partial_cmp(&y).unwrap_or(Ordering::Equal);
        }
    }
    if let (Ok(x), Ok(y)) = (
        DateTime::parse_from_rfc3339(a),
        DateTime::parse_from_rfc3339(b),
    ) {
        return x.cmp(&y);
    }
    a.to_ascii_lowercase().cmp(&b.to_ascii_lowercase())
}

fn like(text: &str, pattern: &[Option<char>]) -> bool {
    let text: Vec<char> = text.chars().map(|c| c.to_ascii_lowercase()).collect();
    let pat: Vec<Option<char>> = pattern
        .iter()
        .map(|p| p.map(|c| c.to_ascii_lowercase()))
        .collect();
    // Greedy matching with backtracking to the last `%`.
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pat.get(p) {
            Some(Some(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            Some(None) => {
                star = Some((p, t));
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pat[p..].iter().all(Option::is_none)
}

impl Cond {
    /// Whether the row has a value for the property that satisfies the condition (any one
    /// of them when the path goes through an array).
    fn matches(&self, row: &Value) -> bool {
        resolve_all(row, &self.prop)
            .iter()
            .any(|field| self.holds(field))
    }

    fn holds(&self, field: &Value) -> bool {
        let numeric = numeric_prop(&self.prop);
        let ord = |lit: &Lit| -> Option<Ordering> {
            match (lit, field) {
                (Lit::Bool(b), Value::Bool(f)) => Some(f.cmp(b)),
                (Lit::Bool(b), Value::String(s)) => Some(s.as_str().cmp(&b.to_string()[..])),
                (Lit::Bool(_), _) => None,
                (Lit::Num(n), f) => number(f).and_then(|x| x.partial_cmp(n)),
                (Lit::Str(s, _), Value::Bool(f)) => Some(f.to_string()[..].cmp(s.as_str())),
                (Lit::Str(s, _), f) => Some(cmp_fields(
                    Some(f),
                    Some(&Value::String(s.clone())),
                    numeric,
                )),
            }
        };
        match self.op {
            CondOp::Like => match self.values.first() {
                Some(Lit::Str(_, pattern)) => like(&text_of(field), pattern),
                _ => false,
            },
            CondOp::Eq | CondOp::In => self.values.iter().any(|v| ord(v) == Some(Ordering::Equal)),
            CondOp::Lt => self.values.iter().any(|v| ord(v) == Some(Ordering::Less)),
            CondOp::Gt => self
                .values
                .iter()
                .any(|v| ord(v) == Some(Ordering::Greater)),
            CondOp::Le => self
                .values
                .iter()
                .any(|v| matches!(ord(v), Some(Ordering::Less | Ordering::Equal))),
            CondOp::Ge => self
                .values
                .iter()
                .any(|v| matches!(ord(v), Some(Ordering::Greater | Ordering::Equal))),
        }
    }
}
