//! The QBO query language subset we use: one entity, `AND`-joined
//! conditions, `=`/`LIKE`/`IN`, `ORDERBY`, 1-based `STARTPOSITION`, `MAXRESULTS` up to 1000.
//!
//! String literals are single-quoted with `\'` for an apostrophe and `\\` for a backslash
//! (Intuit's "escape character" rule, as python-quickbooks does). `%` is LIKE's only wildcard and
//! has no escape, so a search text containing `%` is refused for LIKE (use `=`).

use std::fmt::Write;

/// QBO's largest page.
pub const MAX_PAGE: u32 = 1000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("{0:?} is not a property name QuickBooks accepts")]
    BadProperty(String),
    #[error("a search for {0:?} cannot use LIKE: QuickBooks has no way to escape %")]
    PercentInLike(String),
    #[error("IN needs at least one value")]
    EmptyIn,
}

/// A string literal, quoted and escaped.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            // Control characters cannot be part of a name; drop rather than send them.
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn check_property(p: &str) -> Result<(), QueryError> {
    let ok = !p.is_empty()
        && p.split('.')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(QueryError::BadProperty(p.to_string()))
    }
}

/// `SELECT * FROM Entity WHERE ...`, built safely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    entity: &'static str,
    conditions: Vec<String>,
    order_by: Option<String>,
}

impl Query {
    pub fn select(entity: &'static str) -> Self {
        Self {
            entity,
            conditions: Vec::new(),
            order_by: None,
        }
    }

    pub fn eq(mut self, property: &str, value: &str) -> Result<Self, QueryError> {
        check_property(property)?;
        self.conditions
            .push(format!("{property} = {}", quote(value)));
        Ok(self)
    }

    /// `LIKE '%text%'`-style search; `pattern` is the text with `%` added by the caller's
    /// `prefix`/`suffix` choice.
    pub fn like(
        mut self,
        property: &str,
        text: &str,
        prefix: bool,
        suffix: bool,
    ) -> Result<Self, QueryError> {
        check_property(property)?;
        if text.contains('%') {
            return Err(QueryError::PercentInLike(text.to_string()));
        }
        let pattern = format!(
            "{}{text}{}",
            if prefix { "%" } else { "" },
            if suffix { "%" } else { "" }
        );
        self.conditions
            .push(format!("{property} LIKE {}", quote(&pattern)));
        Ok(self)
    }

    /// `property >= 'from' AND property <= 'to'` (dates as `YYYY-MM-DD`).
    pub fn between(mut self, property: &str, from: &str, to: &str) -> Result<Self, QueryError> {
        check_property(property)?;
        self.conditions
            .push(format!("{property} >= {}", quote(from)));
        self.conditions.push(format!("{property} <= {}", quote(to)));
        Ok(self)
    }

    pub fn is_in(mut self, property: &str, values: &[&str]) -> Result<Self, QueryError> {
        check_property(property)?;
        if values.is_empty() {
            return Err(QueryError::EmptyIn);
        }
        let list: Vec<String> = values.iter().map(|v| quote(v)).collect();
        self.conditions
            .push(format!("{property} IN ({})", list.join(", ")));
        Ok(self)
    }

    pub fn order_by(mut self, property: &str, descending: bool) -> Result<Self, QueryError> {
        check_property(property)?;
        self.order_by = Some(format!(
            "{property} {}",
            if descending { "DESC" } else { "ASC" }
        ));
        Ok(self)
    }

    /// The statement for one page: `start` is 1-based, `size` is clamped to 1..=1000.
    pub fn page(&self, start: u32, size: u32) -> String {
        let mut q = format!("SELECT * FROM {}", self.entity);
        if !self.conditions.is_empty() {
            let _ = write!(q, " WHERE {}", self.conditions.join(" AND "));
        }
        if let Some(o) = &self.order_by {
            let _ = write!(q, " ORDERBY {o}");
        }
        let _ = write!(
            q,
            " STARTPOSITION {} MAXRESULTS {}",
            start.max(1),
            size.clamp(1, MAX_PAGE)
        );
        q
    }
}

/// Paging over a query: the next start position, or `None` when the page that came back was
/// short (or missing its entity key, which QBO does for an empty result).
pub fn next_start(start: u32, size: u32, rows_returned: usize) -> Option<u32> {
    let size = size.clamp(1, MAX_PAGE);
    (rows_returned >= size as usize).then(|| start.max(1) + size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apostrophes_and_backslashes_are_escaped() {
        assert_eq!(quote("O'Brien"), r"'O\'Brien'");
        assert_eq!(quote(r"Smith\Jones"), r"'Smith\\Jones'");
        assert_eq!(quote("a\u{0}b\n"), "'ab'");
        let q = Query::select("Customer")
            .eq("DisplayName", "Jane O'Brien")
            .unwrap()
            .page(1, 1000);
        assert_eq!(
            q,
            r"SELECT * FROM Customer WHERE DisplayName = 'Jane O\'Brien' STARTPOSITION 1 MAXRESULTS 1000"
        );
    }

    #[test]
    fn conditions_join_with_and_and_pages_are_clamped() {
        let q = Query::select("SalesReceipt")
            .eq("DocNumber", "1187")
            .unwrap()
            .is_in("CustomerRef", &["58", "61"])
            .unwrap()
            .like("PrivateNote", "fom:abc", true, true)
            .unwrap()
            .order_by("TxnDate", true)
            .unwrap();
        assert_eq!(
            q.page(0, 5000),
            "SELECT * FROM SalesReceipt WHERE DocNumber = '1187' AND CustomerRef IN ('58', '61') \
             AND PrivateNote LIKE '%fom:abc%' ORDERBY TxnDate DESC STARTPOSITION 1 MAXRESULTS 1000"
        );
    }

    #[test]
    fn unsafe_input_is_refused() {
        assert!(Query::select("Customer")
            .eq("Name = 'x' OR 1", "y")
            .is_err());
        assert_eq!(
            Query::select("Customer").like("DisplayName", "100%", true, true),
            Err(QueryError::PercentInLike("100%".into()))
        );
        assert_eq!(
            Query::select("Item").is_in("Id", &[]),
            Err(QueryError::EmptyIn)
        );
        assert!(Query::select("Customer")
            .eq("MetaData.LastUpdatedTime", "x")
            .is_ok());
    }

    #[test]
    fn paging_stops_on_a_short_page() {
        assert_eq!(next_start(1, 1000, 1000), Some(1001));
        assert_eq!(next_start(1001, 1000, 999), None);
        assert_eq!(next_start(1, 1000, 0), None);
    }
}
