//! Donation CSV exports (PayPal, Stripe, Square, Venmo, donation platforms, sheets typed by
//! hand), read deterministically: no model is involved, so the same file always gives the same
//! records.
//!
//! The header row is looked for in the first lines (some reports open with a preamble) and
//! matched against the export profiles (`profiles.toml`, docs/IMPORTS.md); a file no profile
//! knows is read by column names, or by the columns the treasurer chose for its header. Only
//! received gifts become records: failed, refunded, pending lines, withdrawals, transfers, fees,
//! conversions, totals and summaries are skipped, counted by reason and listed.
//!
//! Rows are streamed from the file, one row in memory at a time: first counted (a file over
//! `MAX_RECORDS_PER_FILE` is refused before any record exists), then read. Each field is
//! decoded on its own: UTF-8 (a leading BOM is skipped), else Windows-1252, because
//! hand-edited exports mix the two. Values are read as written; `normalize` cleans them
//! afterwards. A gift with a bad value still becomes a record carrying the problem as an issue.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::profiles::{self, Profile, Role, SkipReason};
use super::Outcome;
use crate::donation::{
    group_thousands, parse_amount, parse_date, Donation, IssueLevel, PaymentMethod, SourceKind,
    ValueError,
};

#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("cannot read the CSV file: {0}")]
    Io(#[from] std::io::Error),
    #[error("the CSV file has no header row")]
    NoHeader,
    /// No header row names an amount: the treasurer chooses the columns in the page.
    #[error("no amount column found; the columns are: {}", .0.columns.join(", "))]
    NoAmountColumn(Box<Layout>),
    /// An amount, but nothing that tells one gift from another (no name, no reference).
    #[error(
        "no donor name or reference column found; the columns are: {}",
        .0.columns.join(", ")
    )]
    NoNameColumn(Box<Layout>),
    #[error("the CSV file is malformed at line {line}: {reason}")]
    Malformed { line: u64, reason: String },
    #[error("the CSV file is UTF-16 text; save it as \"CSV UTF-8\" and upload it again")]
    Utf16,
    #[error(
        "{file} has {} rows; at most {} can be read from one file. Split the file or export a \
         shorter date range.",
        group_thousands(&.rows.to_string()),
        group_thousands(&.limit.to_string())
    )]
    TooManyRows { file: String, rows: u64, limit: u64 },
}

/// How much of the file the delimiter is guessed from.
const SNIFF_BYTES: u64 = 4096;
/// How many lines of that sample are compared.
const SNIFF_LINES: usize = 10;
/// Candidate delimiters; on a tie the earlier one wins, so comma is the default.
const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
/// Rows looked at for the header (Benevity's report has eleven lines before it).
const HEADER_SCAN_ROWS: usize = 40;
/// Skipped lines listed on the file (all are counted).
const MAX_LISTED_SKIPS: usize = 200;
/// Rows shown in the column-mapping step, and the characters shown of each cell.
const PREVIEW_ROWS: usize = 5;
const PREVIEW_CHARS: usize = 40;
/// Columns a mapping may name (a wider file keeps the rest unmapped).
const MAX_MAPPED_COLUMNS: usize = 200;

/// Columns the treasurer chose for a header: per column, its role or none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    pub roles: Vec<Option<Role>>,
}

/// How a file is to be read besides its bytes.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// More data rows than this: the file is refused before any record is built.
    pub max_rows: u64,
    /// Pending payments become gifts with a warning instead of skipped lines.
    pub keep_pending: bool,
    /// Saved column choices by header signature ([`Layout::signature`]).
    pub mappings: BTreeMap<String, Mapping>,
}

impl ReadOptions {
    pub fn new(max_rows: u64) -> Self {
        Self {
            max_rows,
            ..Self::default()
        }
    }
}

/// The header a file was read by: what the page shows on the file's row, and what the
/// column-mapping step needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// A profile's id, "mapping" (the treasurer's columns) or "columns" (names alone).
    pub read_by: String,
    /// "Stripe payments export", "your column choices", "column names".
    pub label: String,
    /// Digest of the normalised header row: the key saved column choices are kept under.
    pub signature: String,
    pub header_line: u64,
    /// The header row as written.
    pub columns: Vec<String>,
    /// Per column, the role it was read as.
    pub roles: Vec<Option<Role>>,
    /// The first rows after the header, cut short, for the mapping step (aliases and
    /// mappings only: a profiled file needs none).
    pub preview: Vec<Vec<String>>,
}

/// One line (or a quoted record spanning several) that did not become a gift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedLine {
    pub line: u64,
    pub last_line: u64,
    pub reason: SkipReason,
    /// A few words of what the line was ("Payment Refund, -40.00, 03/06/2026").
    pub what: String,
}

/// What reading a file did besides its gifts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadSummary {
    pub layout: Option<Layout>,
    pub gifts: u64,
    pub skipped: BTreeMap<SkipReason, u64>,
    /// The first [`MAX_LISTED_SKIPS`] skipped lines.
    pub skipped_lines: Vec<SkippedLine>,
}

impl ReadSummary {
    fn skip(&mut self, line: u64, last_line: u64, reason: SkipReason, what: String) {
        *self.skipped.entry(reason).or_default() += 1;
        if self.skipped_lines.len() < MAX_LISTED_SKIPS {
            self.skipped_lines.push(SkippedLine {
                line,
                last_line: last_line.max(line),
                reason,
                what,
            });
        }
    }

    /// "12 gifts read; skipped: 1 refund, 1 failed payment, 1 totals line".
    pub fn sentence(&self) -> String {
        let gifts = match self.gifts {
            1 => "1 gift read".to_string(),
            n => format!("{n} gifts read"),
        };
        let skipped: Vec<String> = self
            .skipped
            .iter()
            .filter(|(r, _)| !matches!(r, SkipReason::Blank))
            .map(|(r, n)| r.counted(*n))
            .collect();
        if skipped.is_empty() {
            gifts
        } else {
            format!("{gifts}; skipped: {}", skipped.join(", "))
        }
    }
}

/// The gifts of a file and how it was read.
#[derive(Debug)]
pub struct CsvRead {
    pub outcomes: Vec<Outcome>,
    pub summary: ReadSummary,
}

/// "Created (UTC)" -> "created_utc", "Town/City" -> "town_city": lowercase, each run of other
/// characters becomes one `_`, none at either end.
pub fn normalize_header(header: &str) -> String {
    let mut out = String::with_capacity(header.len());
    let mut gap = false;
    for c in header.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            if gap && !out.is_empty() {
                out.push('_');
            }
            gap = false;
            out.push(c);
        } else {
            gap = true;
        }
    }
    out
}

/// The key saved column choices are kept under: a digest of the normalised header row.
pub fn header_signature(headers: &[String]) -> String {
    let mut h = Sha256::new();
    for (i, name) in headers.iter().enumerate() {
        if i > 0 {
            h.update(b"\x1f");
        }
        h.update(normalize_header(name).as_bytes());
    }
    h.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Roles whose value has no field of its own on the record: kept in `extra` as written.
fn kept_in_extra(role: Option<Role>) -> bool {
    matches!(
        role,
        None | Some(
            Role::Currency
                | Role::Status
                | Role::Type
                | Role::Method
                | Role::RefundedAmount
                | Role::Refunded
                | Role::Anonymous
                | Role::Captured
                | Role::MatchAmount
                | Role::Employer
        )
    )
}

/// What the header row says about every column.
struct Columns {
    /// Per role, its columns, best first.
    by_role: BTreeMap<Role, Vec<usize>>,
    /// Per column, its role.
    roles: Vec<Option<Role>>,
    /// Per column: the `extra` key (the header as written; "column N" or "Header (column N)"
    /// when it is empty or already used).
    keys: Vec<String>,
    profile: Option<&'static Profile>,
    deposit_method: String,
}

impl Columns {
    fn new(
        headers: &[String],
        roles: Vec<Option<Role>>,
        profile: Option<&'static Profile>,
    ) -> Self {
        let mut by_role: BTreeMap<Role, Vec<usize>> = BTreeMap::new();
        match profile {
            // A profile names its columns in order of preference.
            Some(p) => {
                let norms: Vec<String> = headers.iter().map(|h| normalize_header(h)).collect();
                for (role, names) in &p.columns {
                    let cols: Vec<usize> = names
                        .iter()
                        .filter_map(|n| norms.iter().position(|h| h == n))
                        .collect();
                    if !cols.is_empty() {
                        by_role.insert(*role, cols);
                    }
                }
            }
            None => {
                for (i, role) in roles.iter().enumerate() {
                    if let Some(r) = role {
                        by_role.entry(*r).or_default().push(i);
                    }
                }
            }
        }
        let mut col_roles = vec![None; headers.len()];
        for (role, cols) in &by_role {
            for &c in cols {
                if col_roles[c].is_none() {
                    col_roles[c] = Some(*role);
                }
            }
        }
        let mut keys: Vec<String> = Vec::with_capacity(headers.len());
        for (i, header) in headers.iter().enumerate() {
            let in_extra = kept_in_extra(col_roles[i]);
            let taken = headers[..i]
                .iter()
                .zip(&col_roles)
                .any(|(h, r)| h == header && kept_in_extra(*r));
            keys.push(if in_extra && (header.is_empty() || taken) {
                column_key(i, header)
            } else {
                header.clone()
            });
        }
        let deposit_method =
            profile.map_or_else(|| "Online".to_string(), |p| p.deposit_method.clone());
        Self {
            by_role,
            roles: col_roles,
            keys,
            profile,
            deposit_method,
        }
    }

    /// The first non-empty cell of `role` in `cells`.
    fn get<'c>(&self, role: Role, cells: &'c [String]) -> Option<&'c str> {
        self.by_role.get(&role)?.iter().find_map(|&i| {
            cells
                .get(i)
                .map(String::as_str)
                .filter(|c| !c.trim().is_empty())
        })
    }

    fn has(&self, role: Role) -> bool {
        self.by_role.contains_key(&role)
    }
}

/// An `extra` key for a column without a usable header of its own.
fn column_key(index: usize, header: &str) -> String {
    if header.is_empty() {
        format!("column {}", index + 1)
    } else {
        format!("{header} (column {})", index + 1)
    }
}

/// Reads every gift of `path` (see [`read_export`]) with no saved column choices.
pub fn read_csv(path: &Path, file_name: &str, max_rows: u64) -> Result<Vec<Outcome>, CsvError> {
    read_export(path, file_name, &ReadOptions::new(max_rows)).map(|r| r.outcomes)
}

/// Reads every gift of `path`, refusing a file of more than `opts.max_rows` data rows before
/// any record is built (a deposit must fit its Redis budget: docs/MEMORY.md, "CSV files and
/// the Redis budget").
pub fn read_export(path: &Path, file_name: &str, opts: &ReadOptions) -> Result<CsvRead, CsvError> {
    // Where the header is and what it says: the first rows only.
    let (layout, columns, before) = find_header(path, opts)?;
    // A counting pass: one row in memory, no records, so a huge export costs a read.
    let mut rows = Rows::open(path, layout.header_line)?;
    let count = rows.count_rest()?;
    if count > opts.max_rows {
        return Err(CsvError::TooManyRows {
            file: file_name.to_string(),
            rows: count,
            limit: opts.max_rows,
        });
    }

    let mut summary = ReadSummary::default();
    for (line, last, reason) in before {
        summary.skip(line, last, reason, String::new());
    }
    let mut rows = Rows::open(path, layout.header_line)?;
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut cells: Vec<String> = Vec::new();
    let mut gifts = Vec::with_capacity(2);
    while let Some(span) = rows.next_row(&mut cells)? {
        for blank in span.blank_before() {
            summary.skip(blank, blank, SkipReason::Blank, String::new());
        }
        gifts.clear();
        match classify(&columns, &cells, opts) {
            Verdict::Skip(reason) => {
                summary.skip(
                    span.line,
                    span.last_line,
                    reason,
                    describe(&columns, &cells),
                );
            }
            Verdict::Gift(g) => {
                build_gifts(file_name, span.line, &columns, &cells, &g, &mut gifts);
                summary.gifts += gifts.len() as u64;
                out.extend(gifts.drain(..).map(|r| Outcome::Record(Box::new(r))));
            }
        }
    }
    summary.layout = Some(layout);
    Ok(CsvRead {
        outcomes: out,
        summary,
    })
}

/// Lines before the header: (line, last line, preamble or blank).
type Before = Vec<(u64, u64, SkipReason)>;

/// Finds the header row in the first [`HEADER_SCAN_ROWS`] rows: the first a profile fits, else
/// the first whose signature has saved column choices, else the first naming an amount column.
fn find_header(path: &Path, opts: &ReadOptions) -> Result<(Layout, Columns, Before), CsvError> {
    let table = profiles::table();
    let mut rows = Rows::open(path, 0)?;
    let mut cells = Vec::new();
    let mut seen: Vec<(Span, Vec<String>)> = Vec::new();
    let mut chosen: Option<(usize, Columns, String, String)> = None;
    let mut by_alias: Option<usize> = None;
    while seen.len() < HEADER_SCAN_ROWS {
        let Some(span) = rows.next_row(&mut cells)? else {
            break;
        };
        let norms: Vec<String> = cells.iter().map(|c| normalize_header(c)).collect();
        let at = seen.len();
        seen.push((span, cells.clone()));
        if let Some(p) = table.profiles.iter().find(|p| p.fits(&norms)) {
            let cols = Columns::new(&cells, Vec::new(), Some(p));
            chosen = Some((at, cols, p.id.clone(), p.label.clone()));
            break;
        }
        if let Some(m) = opts.mappings.get(&header_signature(&cells)) {
            let mut roles = m.roles.clone();
            roles.resize(cells.len(), None);
            let cols = Columns::new(&cells, roles, None);
            chosen = Some((at, cols, "mapping".into(), "your column choices".into()));
            break;
        }
        if by_alias.is_none()
            && looks_like_header(&cells)
            && norms.iter().any(|n| table.alias(n) == Some(Role::Amount))
        {
            by_alias = Some(at);
        }
    }
    let (at, columns, read_by, label) = match (chosen, by_alias) {
        (Some(c), _) => c,
        (None, Some(at)) => {
            let roles = alias_roles(&seen[at].1);
            let cols = Columns::new(&seen[at].1, roles, None);
            (at, cols, "columns".into(), "column names".into())
        }
        (None, None) => {
            // The first row that looks like a header is the best guess of one.
            let Some(at) = seen
                .iter()
                .position(|(_, c)| looks_like_header(c))
                .or(if seen.is_empty() { None } else { Some(0) })
            else {
                return Err(CsvError::NoHeader);
            };
            let headers = &seen[at].1;
            if headers.iter().all(String::is_empty) {
                return Err(CsvError::NoHeader);
            }
            let layout = layout_of(
                &seen[at],
                "none".into(),
                "no amount column".into(),
                alias_roles(headers),
                preview(&seen[at + 1..]),
            );
            return Err(CsvError::NoAmountColumn(Box::new(layout)));
        }
    };
    if columns.profile.is_none() && !profiles::WHO_ROLES.into_iter().any(|r| columns.has(r)) {
        let layout = layout_of(
            &seen[at],
            read_by,
            label,
            columns.roles.clone(),
            preview(&seen[at + 1..]),
        );
        return Err(CsvError::NoNameColumn(Box::new(layout)));
    }
    let preview_rows = if columns.profile.is_some() {
        Vec::new()
    } else {
        preview(&seen[at + 1..])
    };
    let layout = layout_of(
        &seen[at],
        read_by,
        label,
        columns.roles.clone(),
        preview_rows,
    );
    let mut before = Vec::new();
    for (span, cells) in &seen[..at] {
        for b in span.blank_before() {
            before.push((b, b, SkipReason::Blank));
        }
        let reason = if cells.iter().all(String::is_empty) {
            SkipReason::Blank
        } else {
            SkipReason::Preamble
        };
        for line in span.line..=span.last_line {
            before.push((line, line, reason));
        }
    }
    for b in seen[at].0.blank_before() {
        before.push((b, b, SkipReason::Blank));
    }
    Ok((layout, columns, before))
}

fn layout_of(
    header: &(Span, Vec<String>),
    read_by: String,
    label: String,
    roles: Vec<Option<Role>>,
    preview: Vec<Vec<String>>,
) -> Layout {
    let (span, cells) = header;
    Layout {
        read_by,
        label,
        signature: header_signature(cells),
        header_line: span.line,
        columns: cells.clone(),
        roles,
        preview,
    }
}

/// A header names columns: two names or more, none of them an amount or a date (a totals
/// line such as ",Sum,$1,240.00" is not one).
fn looks_like_header(cells: &[String]) -> bool {
    let named: Vec<&String> = cells.iter().filter(|c| !c.trim().is_empty()).collect();
    named.len() >= 2
        && named
            .iter()
            .all(|c| parse_money(c).is_err() && parse_row_date(c).is_none())
}

/// Per column, its role by name alone (the first column of a role wins).
fn alias_roles(headers: &[String]) -> Vec<Option<Role>> {
    let table = profiles::table();
    let mut roles: Vec<Option<Role>> = Vec::with_capacity(headers.len());
    for h in headers.iter().take(MAX_MAPPED_COLUMNS) {
        let role = table
            .alias(&normalize_header(h))
            .filter(|r| !roles.contains(&Some(*r)));
        roles.push(role);
    }
    roles.resize(headers.len(), None);
    roles
}

/// The first rows after the header, cells cut to a few words.
fn preview(rows: &[(Span, Vec<String>)]) -> Vec<Vec<String>> {
    rows.iter()
        .filter(|(_, c)| c.iter().any(|x| !x.is_empty()))
        .take(PREVIEW_ROWS)
        .map(|(_, cells)| {
            cells
                .iter()
                .take(MAX_MAPPED_COLUMNS)
                .map(|c| c.chars().take(PREVIEW_CHARS).collect())
                .collect()
        })
        .collect()
}

/// Where a row sits in the file.
#[derive(Debug, Clone, Copy)]
struct Span {
    /// The line after the previous row's last.
    after: u64,
    line: u64,
    last_line: u64,
}

impl Span {
    /// The empty lines the csv reader passed over before this row.
    fn blank_before(&self) -> std::ops::Range<u64> {
        self.after..self.line
    }
}

/// The data rows of a CSV file, read one at a time after its header.
struct Rows {
    reader: csv::Reader<File>,
    lines: LineCursor<File>,
    row: csv::ByteRecord,
    /// Where the last row read sits.
    span: Span,
    /// The line after the last row read.
    next_line: u64,
}

impl Rows {
    /// Opens `path` (a BOM skipped, the delimiter sniffed) and passes the rows up to and
    /// including line `header_line` (0: none).
    fn open(path: &Path, header_line: u64) -> Result<Self, CsvError> {
        let mut file = File::open(path)?;
        let mut head = Vec::with_capacity(SNIFF_BYTES as usize);
        (&mut file).take(SNIFF_BYTES).read_to_end(&mut head)?;
        if head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF") {
            return Err(CsvError::Utf16);
        }
        let start = if head.starts_with(UTF8_BOM) {
            UTF8_BOM.len() as u64
        } else {
            0
        };
        let complete = (head.len() as u64) < SNIFF_BYTES;
        let delimiter = sniff_delimiter(&head[start as usize..], complete);

        file.seek(SeekFrom::Start(start))?;
        let reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .has_headers(false)
            .from_reader(file);
        let lines = {
            let mut f = File::open(path)?;
            f.seek(SeekFrom::Start(start))?;
            LineCursor::new(f)
        };
        let mut rows = Self {
            reader,
            lines,
            row: csv::ByteRecord::new(),
            span: Span {
                after: 1,
                line: 1,
                last_line: 1,
            },
            next_line: 1,
        };
        while rows.next_line <= header_line {
            if !rows.advance()? {
                break;
            }
        }
        Ok(rows)
    }

    /// Reads the next record, blank or not; false at the end.
    fn advance(&mut self) -> Result<bool, CsvError> {
        let from = self.reader.position().byte();
        if !read_row(&mut self.reader, &mut self.row, self.next_line)? {
            return Ok(false);
        }
        let to = self.reader.position().byte();
        let line = self.lines.record_line(from, to)?;
        let last = self.lines.last_line(to)?.max(line);
        self.span = Span {
            after: self.next_line,
            line,
            last_line: last,
        };
        self.next_line = last + 1;
        Ok(true)
    }

    /// The next row, decoded into `cells` (a row of only delimiters included: it is a blank
    /// line to count), with where it sits.
    fn next_row(&mut self, cells: &mut Vec<String>) -> Result<Option<Span>, CsvError> {
        if !self.advance()? {
            return Ok(None);
        }
        decode_row(&self.row, cells);
        Ok(Some(self.span))
    }

    /// How many rows that are not blank are left, without decoding them.
    fn count_rest(&mut self) -> Result<u64, CsvError> {
        let mut count = 0;
        while read_row(&mut self.reader, &mut self.row, self.next_line)? {
            if !self.row.iter().all(|cell| decoded(cell).trim().is_empty()) {
                count += 1;
            }
        }
        Ok(count)
    }
}
/// Reads the next row; `line` is a best guess for the error message (the csv crate's own line
/// count is only approximate).
fn read_row(
    reader: &mut csv::Reader<File>,
    row: &mut csv::ByteRecord,
    line: u64,
) -> Result<bool, CsvError> {
    reader
        .read_byte_record(row)
        .map_err(|e| CsvError::Malformed {
            line: e.position().map_or(line, csv::Position::line),
            reason: e.to_string(),
        })
}

fn decode_row(row: &csv::ByteRecord, cells: &mut Vec<String>) {
    cells.clear();
    cells.extend(row.iter().map(|cell| decoded(cell).trim().to_string()));
}

/// One field: UTF-8 when it is valid UTF-8, else Windows-1252 (a superset of Latin-1's
/// printable range). Borrowed unless it had to be converted.
fn decoded(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => {
            encoding_rs::WINDOWS_1252
                .decode_without_bom_handling(bytes)
                .0
        }
    }
}

/// Picks the delimiter from the first lines of the file: the candidate that appears in the
/// header and splits the most lines into the header's column count (then the one giving more
/// columns); comma when none appears. Delimiters inside double quotes do not count.
fn sniff_delimiter(head: &[u8], complete: bool) -> u8 {
    let lines = delimiter_counts(head, complete);
    let Some(header) = lines.first() else {
        return b',';
    };
    let mut best: Option<((usize, usize), u8)> = None;
    for (i, &d) in DELIMITERS.iter().enumerate() {
        if header[i] == 0 {
            continue;
        }
        let agree = lines.iter().filter(|l| l[i] == header[i]).count();
        let score = (agree, header[i]);
        if best.is_none_or(|(b, _)| score > b) {
            best = Some((score, d));
        }
    }
    best.map_or(b',', |(_, d)| d)
}

/// Per non-blank line of the sample, how often each candidate delimiter occurs outside quotes.
/// A line cut off by the end of the sample is left out, unless it is the only one.
fn delimiter_counts(head: &[u8], complete: bool) -> Vec<[usize; 4]> {
    let mut lines = Vec::new();
    let mut counts = [0usize; 4];
    let mut in_quotes = false;
    let mut blank = true;
    for &b in head {
        if b == b'"' {
            in_quotes = !in_quotes;
        } else if !in_quotes && (b == b'\n' || b == b'\r') {
            if !blank {
                lines.push(counts);
                if lines.len() == SNIFF_LINES {
                    return lines;
                }
            }
            counts = [0; 4];
            blank = true;
            continue;
        } else if !in_quotes {
            if let Some(i) = DELIMITERS.iter().position(|&d| d == b) {
                counts[i] += 1;
            }
        }
        if !b.is_ascii_whitespace() {
            blank = false;
        }
    }
    if !blank && (complete || lines.is_empty()) {
        lines.push(counts);
    }
    lines
}

/// Physical line numbers of rows. The csv crate counts only `\n`, and reports a row's position
/// before the blank lines it skips, so its numbers drift; this second cursor over the same bytes
/// counts `\n`, `\r\n` and lone `\r` as one line break each, in constant memory.
struct LineCursor<R> {
    inner: BufReader<R>,
    offset: u64,
    breaks: u64,
    after_cr: bool,
    /// The last byte passed was a line break.
    after_break: bool,
}

impl<R: Read> LineCursor<R> {
    fn new(inner: R) -> Self {
        Self {
            inner: BufReader::new(inner),
            offset: 0,
            breaks: 0,
            after_cr: false,
            after_break: true,
        }
    }

    /// The 1-based line of the row the csv reader read from byte `from` to byte `to`: the first
    /// byte there that is not a line break (the reader skips empty lines before a row).
    fn record_line(&mut self, from: u64, to: u64) -> std::io::Result<u64> {
        self.advance(from, false)?;
        self.advance(to, true)?;
        Ok(self.breaks + 1)
    }

    /// The 1-based line of the last byte before `to` (the end of a record, after its line
    /// break when it has one).
    fn last_line(&mut self, to: u64) -> std::io::Result<u64> {
        self.advance(to, false)?;
        Ok(if self.after_break {
            self.breaks
        } else {
            self.breaks + 1
        })
    }

    /// Moves to `target`, counting line breaks; with `breaks_only`, stops early at the first
    /// byte that is not a line break.
    fn advance(&mut self, target: u64, breaks_only: bool) -> std::io::Result<()> {
        while self.offset < target {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                return Ok(());
            }
            let room = usize::try_from(target - self.offset)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let mut used = 0;
            let mut at_content = false;
            for &b in &buf[..room] {
                let is_break = b == b'\n' || b == b'\r';
                if breaks_only && !is_break {
                    at_content = true;
                    break;
                }
                if b == b'\r' || (b == b'\n' && !self.after_cr) {
                    self.breaks += 1;
                }
                self.after_cr = b == b'\r';
                self.after_break = is_break;
                used += 1;
            }
            self.inner.consume(used);
            self.offset += used as u64;
            if at_content {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// What a data row is.
enum Verdict {
    Skip(SkipReason),
    Gift(GiftParts),
}

/// What classifying a gift row already worked out.
struct GiftParts {
    /// The donor's own gift: its amount (none when the cell is empty or unreadable: the
    /// record carries the problem), or absent when the row is only an employer's match.
    amount: Option<Result<Decimal, String>>,
    /// An employer's match beside it (Benevity).
    matched: Option<Decimal>,
    partial_refund: Option<Decimal>,
    pending: bool,
}

/// Words that mark a totals line when the row names no gift (no reference, no date).
const TOTALS_WORDS: &[&str] = &[
    "total",
    "totals",
    "grand total",
    "subtotal",
    "sub total",
    "sub-total",
    "sum",
    "total donations",
    "total donations (gross)",
    "net total payment",
    "total gifts",
    "deposit total",
];

/// Names that name nobody.
const ANONYMOUS_NAMES: &[&str] = &[
    "anonymous",
    "anonymous donor",
    "anon",
    "anonymous gift",
    "not shared by donor",
    "not shared",
];

fn is_yes(cell: &str) -> bool {
    matches!(
        cell.trim().to_ascii_lowercase().as_str(),
        "yes" | "y" | "true" | "1" | "x"
    )
}

fn is_totals_word(cell: &str) -> bool {
    let c = cell.trim().trim_end_matches(':').to_lowercase();
    TOTALS_WORDS.contains(&c.as_str()) || c.starts_with("total ") || c.starts_with("totals ")
}

fn looks_like_totals(cells: &[String]) -> bool {
    cells.iter().any(|c| is_totals_word(c))
}

/// Sorts a data row: a gift, or a line skipped for a reason.
fn classify(columns: &Columns, cells: &[String], opts: &ReadOptions) -> Verdict {
    if cells.iter().all(|c| c.trim().is_empty()) {
        return Verdict::Skip(SkipReason::Blank);
    }
    let get = |role| columns.get(role, cells);
    // "Total" in the reference or check-number column names no gift either.
    let names_a_gift = [Role::Reference, Role::CheckNumber]
        .into_iter()
        .any(|r| get(r).is_some_and(|c| !is_totals_word(c)));
    let dated = get(Role::Date).and_then(parse_row_date).is_some();
    if !names_a_gift && !dated && looks_like_totals(cells) {
        return Verdict::Skip(SkipReason::Totals);
    }
    let profile = columns.profile;
    if profile.is_some_and(|p| p.require_reference) && !names_a_gift {
        return Verdict::Skip(SkipReason::Summary);
    }
    let mut pending = false;
    let rules = profile
        .map(|p| p.skip.as_slice())
        .unwrap_or_default()
        .iter()
        .chain(&profiles::table().skip);
    for rule in rules {
        if get(rule.role).is_some_and(|c| rule.matches(c)) {
            if rule.reason == SkipReason::Pending && opts.keep_pending {
                pending = true;
                continue;
            }
            return Verdict::Skip(rule.reason);
        }
    }
    if get(Role::Captured).is_some_and(|c| c.trim().eq_ignore_ascii_case("false")) {
        return Verdict::Skip(SkipReason::Failed);
    }
    if get(Role::Refunded).is_some_and(is_yes) {
        return Verdict::Skip(SkipReason::Refunded);
    }
    let amount = get(Role::Amount).map(|c| parse_money(c).map_err(|_| c.to_string()));
    let matched = get(Role::MatchAmount)
        .and_then(|c| parse_money(c).ok())
        .filter(|m| *m > Decimal::ZERO);
    let own = match amount {
        Some(Ok(a)) if a > Decimal::ZERO => Some(Ok(a)),
        // Zero or less: money out, or a row only an employer's match fills.
        Some(Ok(_)) if matched.is_some() => None,
        Some(Ok(_)) => return Verdict::Skip(SkipReason::NotPositive),
        None if matched.is_some() => None,
        // A platform's export always has an amount: a line without one is not a gift. A sheet
        // typed by hand keeps the row, so the treasurer sees what is missing.
        None | Some(Err(_)) if profile.is_some() => return Verdict::Skip(SkipReason::NoAmount),
        None => Some(Err(String::new())),
        Some(Err(c)) => Some(Err(c)),
    };
    let refunded = get(Role::RefundedAmount)
        .and_then(|c| parse_money(c).ok())
        .map(|r| r.abs())
        .filter(|r| *r > Decimal::ZERO);
    let mut partial_refund = None;
    if let (Some(r), Some(Ok(a))) = (refunded, &own) {
        if r >= *a {
            return Verdict::Skip(SkipReason::Refunded);
        }
        partial_refund = Some(r);
    }
    Verdict::Gift(GiftParts {
        amount: own,
        matched,
        partial_refund,
        pending,
    })
}

/// A few words of a skipped row for its listing: its type or status, amount and date.
fn describe(columns: &Columns, cells: &[String]) -> String {
    let parts: Vec<&str> = [Role::Type, Role::Status, Role::Amount, Role::Date]
        .into_iter()
        .filter_map(|r| columns.get(r, cells))
        .collect();
    let text = if parts.is_empty() {
        cells
            .iter()
            .filter(|c| !c.is_empty())
            .take(3)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        parts.join(", ")
    };
    text.chars().take(80).collect()
}

/// A money cell as exports write it: "1,000.00", "$25.00", "-$10.00", "- $10.00",
/// "+ $25.00", "($10.00)", "25.00 USD". Signed: the caller decides what a negative means.
pub fn parse_money(cell: &str) -> Result<Decimal, ValueError> {
    let bad = || ValueError::Amount(cell.to_string());
    let mut s = cell.trim();
    let mut negative = false;
    if let Some(inner) = s.strip_prefix('(').and_then(|x| x.strip_suffix(')')) {
        negative = true;
        s = inner.trim();
    }
    loop {
        let before = s;
        for prefix in ["+", "$", "USD", "US$"] {
            s = s.strip_prefix(prefix).unwrap_or(s).trim_start();
        }
        if let Some(rest) = s.strip_prefix('-') {
            negative = !negative;
            s = rest.trim_start();
        }
        if s == before {
            break;
        }
    }
    // A currency code after the number ("25.00 USD"); the currency column says which.
    if let Some((num, code)) = s.rsplit_once(' ') {
        if code.len() == 3 && code.chars().all(|c| c.is_ascii_uppercase()) {
            s = num.trim_end();
        }
    }
    if let Some(rest) = s.strip_suffix('-') {
        negative = !negative;
        s = rest;
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut value = parse_amount(s).map_err(|_| bad())?;
    // Cents, as the books write them: "25" is 25.00.
    value.rescale(2);
    Ok(if negative { -value } else { value })
}

/// The record(s) of a gift row: the donor's gift, and an employer's match as its own gift.
fn build_gifts(
    file: &str,
    line: u64,
    columns: &Columns,
    cells: &[String],
    parts: &GiftParts,
    out: &mut Vec<Donation>,
) {
    let donor = build_record(file, line, columns, cells, parts);
    if let Some(m) = parts.matched {
        let mut r = Donation::new(file);
        r.provenance.line = Some(line);
        r.provenance.kind = SourceKind::Csv;
        r.payment_method = Some(PaymentMethod::Online);
        r.deposit_method = Some(columns.deposit_method.clone());
        r.amount = Some(m);
        r.payment_date = donor.payment_date;
        r.payment_ref = donor.payment_ref.as_ref().map(|p| format!("{p}-match"));
        let who = donor.payer.aliases.first().cloned();
        r.payer.organization_name = columns.get(Role::Employer, cells).map(str::to_string);
        r.memo = Some(match &who {
            Some(name) => format!("Employer match of {name}'s gift"),
            None => "Employer match".to_string(),
        });
        r.issue(
            IssueLevel::Warning,
            "employer_match",
            "payer",
            format!(
                "line {line}: an employer's match of a gift; the giver is the company, not the \
                 employee"
            ),
        );
        if parts.amount.is_some() {
            out.push(donor);
        }
        out.push(r);
    } else {
        out.push(donor);
    }
}

/// One gift row as a record. `line` is the row's line in the file.
fn build_record(
    file: &str,
    line: u64,
    columns: &Columns,
    cells: &[String],
    parts: &GiftParts,
) -> Donation {
    let mut r = Donation::new(file);
    r.provenance.line = Some(line);
    r.provenance.kind = SourceKind::Csv;
    r.payment_method = Some(PaymentMethod::Online);
    r.deposit_method = Some(columns.deposit_method.clone());
    let placeholders = columns
        .profile
        .map(|p| p.anonymous_values.as_slice())
        .unwrap_or_default();
    let withheld = |c: &str| {
        let c = c.trim();
        placeholders.iter().any(|p| p.eq_ignore_ascii_case(c))
    };
    let mut anonymous = false;

    let (mut name, mut first, mut last) = (None, None, None);
    for (i, cell) in cells.iter().enumerate() {
        let Some(role) = columns.roles.get(i).copied() else {
            // More cells than headers: often an unquoted comma, which shifts the columns.
            if !cell.is_empty() {
                r.extra.insert(column_key(i, ""), cell.clone());
                r.issue(
                    IssueLevel::Warning,
                    "row_too_long",
                    "row",
                    format!(
                        "line {line}: the row has more cells than the header has columns; \
                         check that its values sit under the right headers"
                    ),
                );
            }
            continue;
        };
        if cell.is_empty() {
            continue;
        }
        if kept_in_extra(role) {
            r.extra.insert(columns.keys[i].clone(), cell.clone());
        }
        if withheld(cell) {
            if matches!(role, Some(Role::Name | Role::FirstName | Role::LastName)) {
                anonymous = true;
            }
            continue;
        }
        // Only the best column of a role is read (the others are kept above when unknown).
        let Some(role) = role else { continue };
        if columns.by_role.get(&role).and_then(|c| {
            c.iter()
                .copied()
                .find(|&j| cells.get(j).is_some_and(|x| !x.is_empty() && !withheld(x)))
        }) != Some(i)
        {
            continue;
        }
        let value = Some(cell.clone());
        match role {
            Role::Name => name = value,
            Role::FirstName => first = value,
            Role::LastName => last = value,
            Role::Date => match parse_row_date(cell) {
                Some(d) => r.payment_date = Some(d),
                None => r.issue(
                    IssueLevel::Warning,
                    "date_unreadable",
                    "payment_date",
                    format!("line {line}: {}", ValueError::Date(cell.clone())),
                ),
            },
            Role::Address => r.contact.address_line_1 = value,
            Role::City => r.contact.city = value,
            Role::State => r.contact.state = value,
            Role::Zip => r.contact.zip = value,
            Role::Email => r.contact.email = value,
            Role::Phone => r.contact.phone = value,
            Role::Memo => r.memo = value,
            Role::Organization => r.payer.organization_name = value,
            Role::Reference => r.payment_ref = value,
            Role::CheckNumber => {
                r.payment_method = Some(PaymentMethod::Check);
                r.payment_ref = value;
            }
            Role::Method => {
                if matches!(
                    cell.trim().to_ascii_lowercase().as_str(),
                    "check" | "cheque" | "chk" | "ck"
                ) {
                    r.payment_method = Some(PaymentMethod::Check);
                }
            }
            Role::Anonymous => anonymous |= is_yes(cell),
            Role::Currency => {
                if !cell.eq_ignore_ascii_case("usd") {
                    r.issue(
                        IssueLevel::Warning,
                        "currency_not_usd",
                        "amount",
                        format!(
                            "line {line}: the gift is in {cell}, not US dollars; check the \
                             amount before sending"
                        ),
                    );
                }
            }
            Role::Amount
            | Role::MatchAmount
            | Role::Employer
            | Role::Status
            | Role::Type
            | Role::RefundedAmount
            | Role::Refunded
            | Role::Captured => {}
        }
    }
    // A check number wins over a platform's reference only when it is the row's own.
    if r.payment_method == Some(PaymentMethod::Check) && r.payment_ref.is_none() {
        r.payment_ref = columns.get(Role::Reference, cells).map(str::to_string);
    }
    if columns.profile.is_none() && r.payment_method == Some(PaymentMethod::Check) {
        r.deposit_method = Some("Check".into());
    }

    match &parts.amount {
        Some(Ok(a)) => r.amount = Some(*a),
        Some(Err(cell)) if cell.is_empty() => r.issue(
            IssueLevel::Error,
            "amount_missing",
            "amount",
            format!("line {line}: the amount cell is empty"),
        ),
        Some(Err(cell)) => r.issue(
            IssueLevel::Error,
            "amount_unreadable",
            "amount",
            format!("line {line}: {}", ValueError::Amount(cell.clone())),
        ),
        None => {}
    }
    if let Some(refund) = parts.partial_refund {
        r.issue(
            IssueLevel::Warning,
            "partial_refund",
            "amount",
            format!(
                "line {line}: ${refund} of this gift was refunded; the receipt is for the whole \
                 gift, so record the refund in QuickBooks too"
            ),
        );
    }
    if parts.pending {
        r.issue(
            IssueLevel::Warning,
            "pending",
            "amount",
            format!("line {line}: the payment was still pending when the file was exported"),
        );
    }

    let names_nobody = |n: &Option<String>| {
        n.as_deref()
            .is_some_and(|n| ANONYMOUS_NAMES.contains(&n.trim().to_lowercase().as_str()))
    };
    if names_nobody(&name) {
        anonymous = true;
        name = None;
    }
    if let Some(name) = name {
        r.payer.aliases.push(name);
    }
    let joined = [first, last]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    if !joined.is_empty() && !r.payer.aliases.iter().any(|a| same_name(a, &joined)) {
        r.payer.aliases.push(joined);
    }
    let nameless = r.payer.aliases.is_empty() && r.payer.organization_name.is_none();
    if nameless && columns.profile.is_some_and(|p| p.blank_name_anonymous) {
        anonymous = true;
    }
    r.payer.anonymous = anonymous;
    r
}

/// Equal ignoring case and spacing ("ANN  LEE" is "Ann Lee").
fn same_name(a: &str, b: &str) -> bool {
    let words = |s: &str| {
        s.split_whitespace()
            .map(str::to_lowercase)
            .collect::<Vec<_>>()
    };
    words(a) == words(b)
}

/// A date cell, which exports often follow with a time: "2026-03-03 09:14:00",
/// "2026-03-03T09:14:00Z", "03/03/2026 9:14 AM PST".
fn parse_row_date(cell: &str) -> Option<NaiveDate> {
    if let Ok(d) = parse_date(cell) {
        return Some(d);
    }
    // ISO 8601: the date ends at a `T` between digits.
    let bytes = cell.as_bytes();
    let iso_t = (1..bytes.len().saturating_sub(1)).find(|&i| {
        bytes[i] == b'T' && bytes[i - 1].is_ascii_digit() && bytes[i + 1].is_ascii_digit()
    });
    if let Some(i) = iso_t {
        if let Ok(d) = parse_date(&cell[..i]) {
            return Some(d);
        }
    }
    // Otherwise the time starts at the first word holding a colon.
    let mut date_words = Vec::new();
    for word in cell.split_whitespace() {
        if word.contains(':') {
            break;
        }
        date_words.push(word);
    }
    let date = date_words.join(" ");
    parse_date(date.trim_end_matches(',')).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;
    use std::io::Write;

    fn write(content: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content).unwrap();
        f
    }

    fn read(content: &[u8]) -> Vec<Donation> {
        let f = write(content);
        read_csv(f.path(), "gifts.csv", 1_000)
            .unwrap()
            .into_iter()
            .map(|o| match o {
                Outcome::Record(r) => *r,
                other => panic!("unexpected outcome: {other:?}"),
            })
            .collect()
    }

    fn read_err(content: &[u8]) -> CsvError {
        let f = write(content);
        match read_csv(f.path(), "gifts.csv", 1_000) {
            Ok(out) => panic!("expected an error, got {} outcomes", out.len()),
            Err(e) => e,
        }
    }

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn codes(r: &Donation) -> Vec<&str> {
        r.issues.iter().map(|i| i.code.as_str()).collect()
    }

    #[test]
    fn headers_map_to_roles_by_name() {
        use Role::*;
        let cases: &[(&str, Option<Role>)] = &[
            // Stripe payments export.
            ("id", Some(Reference)),
            ("Created (UTC)", Some(Date)),
            ("Amount", Some(Amount)),
            ("Currency", Some(Currency)),
            ("Description", Some(Memo)),
            ("Customer Email", Some(Email)),
            ("Card Name", Some(Name)),
            ("Card Address Line1", Some(Address)),
            ("Card Address City", Some(City)),
            ("Card Address State", Some(State)),
            ("Card Address Zip", Some(Zip)),
            ("Customer ID", None),
            ("Amount Refunded", Some(RefundedAmount)),
            ("Card Address Country", None),
            // PayPal activity export.
            ("Date", Some(Date)),
            ("Time", None),
            ("Name", Some(Name)),
            ("Type", Some(Type)),
            ("Status", Some(Status)),
            ("Gross", Some(Amount)),
            ("Fee", None),
            ("Net", None),
            ("From Email Address", Some(Email)),
            ("To Email Address", None),
            ("Transaction ID", Some(Reference)),
            ("Reference Txn ID", None),
            ("Address Line 1", Some(Address)),
            ("Address Line 2/District/Neighborhood", None),
            ("Town/City", Some(City)),
            (
                "State/Province/Region/County/Territory/Prefecture/Republic",
                Some(State),
            ),
            ("Zip/Postal Code", Some(Zip)),
            ("Contact Phone Number", Some(Phone)),
            ("Note", Some(Memo)),
            // Hand-made sheets: any case, any punctuation.
            ("  FIRST NAME ", Some(FirstName)),
            ("last-name", Some(LastName)),
            ("Surname", Some(LastName)),
            ("Donor_Name", Some(Name)),
            ("Gift Amount ($)", Some(Amount)),
            ("Amount (USD)", Some(Amount)),
            ("Check #", Some(CheckNumber)),
            ("Check No.", Some(CheckNumber)),
            ("Chk", Some(CheckNumber)),
            ("Donated Amount", Some(Amount)),
            ("Organisation", Some(Organization)),
            ("Company Name", Some(Organization)),
            ("E-mail", Some(Email)),
            ("Email Address", Some(Email)),
            ("Zip Code", Some(Zip)),
            ("Province", Some(State)),
            ("Comments", Some(Memo)),
            ("Payment Date", Some(Date)),
            ("", None),
        ];
        for &(header, want) in cases {
            assert_eq!(
                profiles::table().alias(&normalize_header(header)),
                want,
                "{header:?}"
            );
        }
    }

    #[test]
    fn normalises_headers() {
        for (raw, want) in [
            ("Created (UTC)", "created_utc"),
            ("  Town/City  ", "town_city"),
            ("__Zip//Postal  Code__", "zip_postal_code"),
            ("Prénom", "prénom"),
            ("(!)", ""),
        ] {
            assert_eq!(normalize_header(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn stripe_export() {
        let rs = read(
            b"id,Created (UTC),Amount,Amount Refunded,Currency,Description,Customer Email,\
Card Name,Card Address Line1,Card Address City,Card Address State,Card Address Zip,Status\n\
ch_3Ab,2026-03-03 09:14:00,25.00,0.00,usd,Monthly gift,ann@example.org,ANN LEE,\
12 Elm St,Boston,MA,2134,Paid\n",
        );
        assert_eq!(rs.len(), 1);
        let r = &rs[0];
        assert_eq!(r.payment_ref.as_deref(), Some("ch_3Ab"));
        assert_eq!(r.payment_date, Some(day(2026, 3, 3)));
        assert_eq!(r.amount, Some(dec("25.00")));
        assert_eq!(r.memo.as_deref(), Some("Monthly gift"));
        assert_eq!(r.contact.email.as_deref(), Some("ann@example.org"));
        // Not normalised here: no proper-casing, no ZIP padding.
        assert_eq!(r.payer.aliases, ["ANN LEE"]);
        assert_eq!(r.contact.address_line_1.as_deref(), Some("12 Elm St"));
        assert_eq!(r.contact.city.as_deref(), Some("Boston"));
        assert_eq!(r.contact.state.as_deref(), Some("MA"));
        assert_eq!(r.contact.zip.as_deref(), Some("2134"));
        assert_eq!(r.deposit_method.as_deref(), Some("Stripe"));
        assert_eq!(r.payment_method, Some(PaymentMethod::Online));
        assert_eq!(r.provenance.kind, SourceKind::Csv);
        assert_eq!(r.provenance.file, "gifts.csv");
        assert_eq!(r.provenance.line, Some(2));
        assert_eq!(r.extra.get("Status").map(String::as_str), Some("Paid"));
        assert_eq!(
            r.extra.get("Amount Refunded").map(String::as_str),
            Some("0.00")
        );
        assert_eq!(r.extra.get("Currency").map(String::as_str), Some("usd"));
        assert!(r.issues.is_empty(), "{:?}", r.issues);
    }

    #[test]
    fn paypal_export() {
        let rs = read(
            b"\"Date\",\"Time\",\"TimeZone\",\"Name\",\"Type\",\"Status\",\"Currency\",\"Gross\",\
\"Fee\",\"Net\",\"From Email Address\",\"Transaction ID\",\"Address Line 1\",\"Town/City\",\
\"State/Province/Region/County/Territory/Prefecture/Republic\",\"Zip/Postal Code\",\
\"Contact Phone Number\",\"Note\",\"Receipt ID\"\r\n\
\"03/02/2026\",\"10:01:22\",\"PST\",\"Bob Ray\",\"Donation Payment\",\"Completed\",\"USD\",\
\"1,000.00\",\"-30.30\",\"969.70\",\"bob@example.org\",\"8AB12345CD6789012\",\"1 Main St\",\
\"Erie\",\"PA\",\"16501\",\"814-555-0100\",\"For the school\",\"\"\r\n",
        );
        assert_eq!(rs.len(), 1);
        let r = &rs[0];
        assert_eq!(r.deposit_method.as_deref(), Some("PayPal"));
        assert_eq!(r.payment_date, Some(day(2026, 3, 2)));
        assert_eq!(r.amount, Some(dec("1000.00")));
        assert_eq!(r.payment_ref.as_deref(), Some("8AB12345CD6789012"));
        assert_eq!(r.payer.aliases, ["Bob Ray"]);
        assert_eq!(r.contact.email.as_deref(), Some("bob@example.org"));
        assert_eq!(r.contact.address_line_1.as_deref(), Some("1 Main St"));
        assert_eq!(r.contact.city.as_deref(), Some("Erie"));
        assert_eq!(r.contact.state.as_deref(), Some("PA"));
        assert_eq!(r.contact.zip.as_deref(), Some("16501"));
        assert_eq!(r.contact.phone.as_deref(), Some("814-555-0100"));
        assert_eq!(r.memo.as_deref(), Some("For the school"));
        assert_eq!(r.extra.get("Fee").map(String::as_str), Some("-30.30"));
        assert_eq!(
            r.extra.get("Type").map(String::as_str),
            Some("Donation Payment")
        );
        assert!(
            !r.extra.contains_key("Receipt ID"),
            "empty cells are skipped"
        );
        assert!(r.issues.is_empty(), "{:?}", r.issues);
    }

    #[test]
    fn deposit_method_follows_the_export() {
        for (header, want) in [
            ("id,Created (UTC),Amount,Status,Card Name", "Stripe"),
            (
                "id,Created date (UTC),Amount,Status,Amount Refunded",
                "Stripe",
            ),
            ("id,Amount,Card Name", "Online"),
            ("id,Amount", "Online"),
            ("Gross,Transaction ID,Type,Status", "PayPal"),
            ("Gross,Transaction ID", "Online"),
            ("Name,Amount,Date", "Online"),
        ] {
            let rs = read(format!("{header}\n7,8,9,Paid,5\n").as_bytes());
            assert_eq!(rs[0].deposit_method.as_deref(), Some(want), "{header}");
        }
    }

    #[test]
    fn same_amount_gifts_stay_separate() {
        let rs = read(
            b"Transaction ID,Name,Amount,Date\n\
              ch_1,Ann Lee,$25.00,2026-03-01\n\
              ch_2,Ann Lee,$25.00,2026-04-01\n",
        );
        assert_eq!(rs.len(), 2);
        assert_eq!(rs[0].amount, Some(dec("25.00")));
        assert_eq!(rs[1].amount, Some(dec("25.00")));
        assert_eq!(rs[0].payment_ref.as_deref(), Some("ch_1"));
        assert_eq!(rs[1].payment_ref.as_deref(), Some("ch_2"));
        assert_ne!(rs[0].id, rs[1].id);
        assert_eq!(
            rs.iter().map(|r| r.provenance.line).collect::<Vec<_>>(),
            [Some(2), Some(3)]
        );
    }

    #[test]
    fn payment_ref_is_kept_as_written() {
        let rs = read(b"Check No,Amount\n0042,10\n  007 ,10\n");
        assert_eq!(rs[0].payment_ref.as_deref(), Some("0042"));
        assert_eq!(rs[1].payment_ref.as_deref(), Some("007"));
    }

    #[test]
    fn aliases_from_name_and_parts() {
        let cases: &[(&[u8], &[&str])] = &[
            (
                b"Name,First Name,Last Name,Amount\nAnn Lee,Ann,Lee,5\n",
                &["Ann Lee"],
            ),
            (
                b"Name,First Name,Last Name,Amount\nANN  LEE,Ann,Lee,5\n",
                &["ANN  LEE"],
            ),
            (
                b"Name,First Name,Last Name,Amount\nAnnie Lee,Ann,Lee,5\n",
                &["Annie Lee", "Ann Lee"],
            ),
            (b"First Name,Last Name,Amount\nAnn,Lee,5\n", &["Ann Lee"]),
            (b"First Name,Last Name,Amount\n,Lee,5\n", &["Lee"]),
            (b"Name,Amount\n,5\n", &[]),
        ];
        for &(csv, want) in cases {
            let rs = read(csv);
            assert_eq!(
                rs[0].payer.aliases,
                want,
                "{}",
                String::from_utf8_lossy(csv)
            );
        }
    }

    #[test]
    fn organisation_column() {
        let rs = read(b"Organization,Name,Amount\nSt. John Lutheran Church,,100\n");
        assert_eq!(
            rs[0].payer.organization_name.as_deref(),
            Some("St. John Lutheran Church")
        );
        assert!(rs[0].payer.aliases.is_empty());
    }

    #[test]
    fn delimiters_are_sniffed() {
        let cases: &[(&str, &[u8])] = &[
            (
                "comma",
                b"Name,Amount,Memo\n\"Lee, Ann\",25.00,\"a, b, c\"\n",
            ),
            (
                "semicolon",
                b"Name;Amount;Memo\n\"Lee, Ann\";25.00;\"a, b, c\"\n\"Ray, Bob\";5;x\n",
            ),
            ("tab", b"Name\tAmount\tMemo\n\"Lee, Ann\"\t25.00\ta, b, c\n"),
            ("pipe", b"Name|Amount|Memo\nLee, Ann|25.00|\"a, b, c\"\n"),
            (
                "pipe with crlf",
                b"Name|Amount|Memo\r\nLee, Ann|25.00|\"a, b, c\"\r\n",
            ),
        ];
        for &(label, csv) in cases {
            let rs = read(csv);
            assert_eq!(rs[0].payer.aliases, ["Lee, Ann"], "{label}");
            assert_eq!(rs[0].amount, Some(dec("25.00")), "{label}");
            assert_eq!(rs[0].memo.as_deref(), Some("a, b, c"), "{label}");
        }
    }

    #[test]
    fn sniffing_rules() {
        let cases: &[(&str, &[u8], bool, u8)] = &[
            ("empty", b"", true, b','),
            ("one column", b"Amount\n5\n", true, b','),
            ("comma", b"a,b,c\n1,2,3\n", true, b','),
            // More commas than semicolons, but only inside quotes.
            (
                "quoted commas",
                b"a;b\n\"x, y, z\";\"1,000.00\"\n\"p, q\";2\n",
                true,
                b';',
            ),
            // A stray semicolon in a comma file does not win: the header has none.
            ("stray", b"a,b\nx;y,1\n", true, b','),
            // The header alone decides when the columns disagree everywhere.
            ("more columns", b"a;b;c|d\n", true, b';'),
            // Consistency beats frequency: commas vary from line to line here.
            (
                "consistent",
                b"a,b;c\nx;1,2,3\ny;4,5,6,7\nz;8\n",
                true,
                b';',
            ),
            // A line cut by the end of the sample is ignored.
            ("truncated", b"a\tb\nx\t1\ny,z,w", false, b'\t'),
            (
                "quoted newline",
                b"a|b\n\"line one\nline, two, three\"|1\n",
                true,
                b'|',
            ),
        ];
        for &(label, head, complete, want) in cases {
            assert_eq!(
                sniff_delimiter(head, complete) as char,
                want as char,
                "{label}"
            );
        }
    }

    #[test]
    fn encodings() {
        let cases: &[(&str, &[u8], &str)] = &[
            (
                "utf-8",
                "Name,Amount\nJosé Peña,10\n".as_bytes(),
                "José Peña",
            ),
            (
                "utf-8 with BOM",
                b"\xEF\xBB\xBFName,Amount\nAnn Lee,10\n",
                "Ann Lee",
            ),
            (
                "utf-8 with BOM and quoted header",
                b"\xEF\xBB\xBF\"Name\",\"Amount\"\n\"Ann Lee\",\"10\"\n",
                "Ann Lee",
            ),
            ("cp1252", b"Name,Amount\nJos\xE9 Pe\xF1a,10\n", "José Peña"),
            (
                "cp1252 quotes",
                b"Name,Amount\n\x93Bud\x94 O\x92Neil,10\n",
                "\u{201c}Bud\u{201d} O\u{2019}Neil",
            ),
        ];
        for &(label, csv, want) in cases {
            let rs = read(csv);
            assert_eq!(rs.len(), 1, "{label}");
            assert_eq!(rs[0].payer.aliases, [want], "{label}");
            assert_eq!(rs[0].amount, Some(dec("10")), "{label}");
            assert!(rs[0].extra.is_empty(), "{label}: {:?}", rs[0].extra);
        }
        // Per field: a cp1252 cell does not spoil its UTF-8 neighbour.
        let rs = read(b"Name,Memo,Amount\nRen\xC3\xA9e,caf\xE9,10\n");
        assert_eq!(rs[0].payer.aliases, ["Renée"]);
        assert_eq!(rs[0].memo.as_deref(), Some("café"));
    }

    #[test]
    fn utf16_is_refused_plainly() {
        for csv in [&b"\xFF\xFEN\0a\0"[..], b"\xFE\xFF\0N\0a"] {
            assert!(matches!(read_err(csv), CsvError::Utf16));
        }
    }

    #[test]
    fn unknown_columns_are_kept() {
        let rs = read(
            b"Name,Amount,Campaign,,Amount,Campaign\n\
              Ann,10,Spring,x,99,Fall\n\
              Bob,5,,,,\n",
        );
        let extra: Vec<(&str, &str)> = rs[0]
            .extra
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            extra,
            [
                // The second "Amount" is unknown: the first column naming a field wins.
                ("Amount", "99"),
                ("Campaign", "Spring"),
                ("Campaign (column 6)", "Fall"),
                ("column 4", "x"),
            ]
        );
        assert_eq!(rs[0].amount, Some(dec("10")));
        assert!(rs[1].extra.is_empty(), "empty cells are skipped");
    }

    #[test]
    fn cells_beyond_the_header_are_kept_and_flagged() {
        let rs = read(b"Name,Amount\nLee, Ann,25\nBob,5,\n");
        assert_eq!(rs[0].extra.get("column 3").map(String::as_str), Some("25"));
        assert!(codes(&rs[0]).contains(&"row_too_long"));
        // "Ann" is not an amount: the shifted row is visible, not silently wrong.
        assert!(codes(&rs[0]).contains(&"amount_unreadable"));
        // An empty trailing cell is harmless.
        assert!(rs[1].issues.is_empty(), "{:?}", rs[1].issues);
    }

    #[test]
    fn file_level_errors() {
        let cases: &[(&str, &[u8], &str)] = &[
            ("empty", b"", "the CSV file has no header row"),
            (
                "only blank lines",
                b"\n\r\n\n",
                "the CSV file has no header row",
            ),
            (
                "only a BOM",
                b"\xEF\xBB\xBF",
                "the CSV file has no header row",
            ),
            (
                "empty header cells",
                b" , ,\n , ,\n",
                "the CSV file has no header row",
            ),
            (
                "no row looks like a header",
                b" , ,\n1,2,3\n",
                "the CSV file has no header row",
            ),
            (
                "no amount column",
                b"Name,Color\nA,blue\n",
                "no amount column found; the columns are: Name, Color",
            ),
            (
                "no amount column, semicolons",
                b"Donor;Gift Date;Notes\nA;1/2/2026;x\n",
                "no amount column found; the columns are: Donor, Gift Date, Notes",
            ),
        ];
        for &(label, csv, want) in cases {
            assert_eq!(read_err(csv).to_string(), want, "{label}");
        }
        assert!(matches!(
            read_err(b"Name,Color\n"),
            CsvError::NoAmountColumn(layout) if layout.columns == ["Name", "Color"]
        ));
    }

    #[test]
    fn a_file_over_the_row_limit_is_refused_and_blank_lines_do_not_count() {
        let csv = b"Name,Amount\nA,1\n\n,\nB,2\nC,3\n\r\n";
        let f = write(csv);
        let rows = |limit| read_csv(f.path(), "online-gifts.csv", limit);
        assert_eq!(rows(3).unwrap().len(), 3, "at the limit");
        match rows(2) {
            Err(e @ CsvError::TooManyRows { .. }) => assert_eq!(
                e.to_string(),
                "online-gifts.csv has 3 rows; at most 2 can be read from one file. Split the \
                 file or export a shorter date range."
            ),
            other => panic!("expected TooManyRows, got {other:?}"),
        }
        let big = CsvError::TooManyRows {
            file: "online-gifts.csv".into(),
            rows: 100_000,
            limit: 4_000,
        };
        assert!(
            big.to_string()
                .starts_with("online-gifts.csv has 100,000 rows; at most 4,000 can be read"),
            "{big}"
        );
    }

    #[test]
    fn a_bad_header_is_reported_before_the_row_count() {
        let mut csv = String::from("Name,Color\n");
        for i in 0..50 {
            csv.push_str(&format!("Donor {i},blue\n"));
        }
        let f = write(csv.as_bytes());
        assert!(matches!(
            read_csv(f.path(), "gifts.csv", 10),
            Err(CsvError::NoAmountColumn { .. })
        ));
    }

    #[test]
    fn money_cells_as_exports_write_them() {
        for (cell, want) in [
            ("1,000.00", "1000.00"),
            ("$25.00", "25.00"),
            ("-$10.00", "-10.00"),
            ("- $10.00", "-10.00"),
            ("+ $25.00", "25.00"),
            ("\"+ $1,000.00\"", ""),
            ("($10.00)", "-10.00"),
            ("25.00 USD", "25.00"),
            ("$-10.00", "-10.00"),
            ("-1,500.00", "-1500.00"),
        ] {
            match parse_money(cell) {
                Ok(v) => assert_eq!(v, dec(want), "{cell}"),
                Err(_) => assert!(want.is_empty(), "{cell}"),
            }
        }
        assert!(parse_money("twenty").is_err());
        assert!(parse_money("--").is_err());
    }

    #[test]
    fn money_out_and_totals_are_skipped_and_counted() {
        let f = write(
            b"Date,Name,Check #,Amount\n3/1/2026,Ann Lee,101,$25.00\n3/1/2026,Refund,,-$5.00\n\
              ,,,\n,Total,,$20.00\n",
        );
        let read = read_export(f.path(), "sheet.csv", &ReadOptions::new(100)).unwrap();
        assert_eq!(read.outcomes.len(), 1);
        let Outcome::Record(r) = &read.outcomes[0] else {
            panic!("a record")
        };
        assert_eq!(r.payment_method, Some(PaymentMethod::Check));
        assert_eq!(r.payment_ref.as_deref(), Some("101"));
        let reasons: Vec<(u64, SkipReason)> = read
            .summary
            .skipped_lines
            .iter()
            .map(|s| (s.line, s.reason))
            .collect();
        assert_eq!(
            reasons,
            [
                (3, SkipReason::NotPositive),
                (4, SkipReason::Blank),
                (5, SkipReason::Totals)
            ]
        );
        assert_eq!(
            read.summary.sentence(),
            "1 gift read; skipped: 1 zero or negative amount, 1 totals line"
        );
        let layout = read.summary.layout.unwrap();
        assert_eq!(layout.read_by, "columns");
        assert_eq!(layout.preview.len(), 3);
    }

    #[test]
    fn a_preamble_before_the_header_is_passed_over() {
        let f = write(
            b"Giving report\nPeriod,March 2026\n\nDate,Donor,Gift Amount\n3/2/2026,Ann Lee,40\n",
        );
        let read = read_export(f.path(), "r.csv", &ReadOptions::new(100)).unwrap();
        assert_eq!(read.outcomes.len(), 1);
        assert_eq!(read.summary.layout.as_ref().unwrap().header_line, 4);
        assert_eq!(read.summary.skipped.get(&SkipReason::Preamble), Some(&2));
        assert_eq!(read.summary.skipped.get(&SkipReason::Blank), Some(&1));
    }

    #[test]
    fn saved_column_choices_read_a_header_no_name_tells() {
        let csv = b"When,Who,How much,Ref\n3/2/2026,Ann Lee,40,77\n,Sum,$40.00,\n";
        let f = write(csv);
        let err = read_export(f.path(), "r.csv", &ReadOptions::new(100)).unwrap_err();
        let CsvError::NoAmountColumn(layout) = err else {
            panic!("needs columns")
        };
        assert_eq!(layout.header_line, 1);
        assert_eq!(layout.preview[0], ["3/2/2026", "Ann Lee", "40", "77"]);
        let mut opts = ReadOptions::new(100);
        opts.mappings.insert(
            layout.signature.clone(),
            Mapping {
                roles: vec![
                    Some(Role::Date),
                    Some(Role::Name),
                    Some(Role::Amount),
                    Some(Role::CheckNumber),
                ],
            },
        );
        let read = read_export(f.path(), "r.csv", &opts).unwrap();
        assert_eq!(read.summary.layout.as_ref().unwrap().read_by, "mapping");
        let Outcome::Record(r) = &read.outcomes[0] else {
            panic!("a record")
        };
        assert_eq!(r.amount, Some(dec("40")));
        assert_eq!(r.payer.aliases, ["Ann Lee"]);
        assert_eq!(r.payment_ref.as_deref(), Some("77"));
        assert!(r.payment_method.is_some_and(|m| m.is_check()));
        assert_eq!(read.outcomes.len(), 1);
        assert_eq!(read.summary.skipped.get(&SkipReason::Totals), Some(&1));
    }

    #[test]
    fn header_only_gives_no_records() {
        assert!(read(b"Name,Amount\n").is_empty());
    }

    #[test]
    fn bad_amounts_keep_the_row() {
        // (amount cell, expected amount, expected issue code)
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            ("25.00", Some("25.00"), None),
            ("$1,234.50", Some("1234.50"), None),
            ("twenty", None, Some("amount_unreadable")),
            ("25,00", None, Some("amount_unreadable")),
            ("", None, Some("amount_missing")),
            ("   ", None, Some("amount_missing")),
        ];
        for &(cell, amount, code) in cases {
            let rs = read(format!("Name,Amount\nAnn,5\n\nBob,\"{cell}\"\n").as_bytes());
            assert_eq!(rs.len(), 2, "{cell:?}");
            let r = &rs[1];
            assert_eq!(r.provenance.line, Some(4), "{cell:?}");
            assert_eq!(r.amount, amount.map(dec), "{cell:?}");
            assert_eq!(r.payer.aliases, ["Bob"], "{cell:?}");
            match code {
                None => assert!(r.issues.is_empty(), "{cell:?}: {:?}", r.issues),
                Some(code) => {
                    let issue = &r.issues[0];
                    assert_eq!(issue.code, code, "{cell:?}");
                    assert_eq!(issue.level, IssueLevel::Error, "{cell:?}");
                    assert_eq!(issue.field.as_deref(), Some("amount"), "{cell:?}");
                    assert!(issue.message.contains("line 4"), "{}", issue.message);
                    assert!(issue.message.contains(cell.trim()), "{}", issue.message);
                }
            }
        }
    }

    #[test]
    fn missing_amount_cell_in_a_short_row() {
        let rs = read(b"Name,Date,Amount\nAnn,2026-03-01\n");
        assert_eq!(codes(&rs[0]), ["amount_missing"]);
    }

    #[test]
    fn dates_with_times() {
        let d = Some(day(2026, 3, 3));
        let cases: &[(&str, Option<NaiveDate>)] = &[
            ("2026-03-03", d),
            ("2026-03-03 09:14:00", d),
            ("2026-03-03 09:14", d),
            ("2026-03-03T09:14:00Z", d),
            ("2026-03-03T09:14:00.000+00:00", d),
            ("03/03/2026", d),
            ("3/3/2026 9:14 AM", d),
            ("03/03/2026 09:14:00 PST", d),
            ("March 3, 2026", d),
            ("Mar 3, 2026, 9:14 AM", d),
            ("Tuesday", None),
            ("2026-02-30 10:00", None),
            ("10:00", None),
        ];
        for &(cell, want) in cases {
            assert_eq!(parse_row_date(cell), want, "{cell:?}");
        }
    }

    #[test]
    fn unreadable_date_is_a_warning() {
        let rs = read(b"Name,Amount,Date\nAnn,5,soon\n");
        let issue = &rs[0].issues[0];
        assert_eq!(issue.code, "date_unreadable");
        assert_eq!(issue.level, IssueLevel::Warning);
        assert_eq!(issue.field.as_deref(), Some("payment_date"));
        assert!(issue.message.contains("line 2") && issue.message.contains("soon"));
        assert_eq!(rs[0].amount, Some(dec("5")));
        assert_eq!(rs[0].payment_date, None);
    }

    #[test]
    fn blank_lines_are_skipped_and_lines_counted() {
        // (file, expected lines of the records)
        let cases: &[(&str, &[u8], &[u64])] = &[
            ("lf", b"Name,Amount\nA,1\n\nB,2\n\n\nC,3\n", &[2, 4, 7]),
            (
                "crlf",
                b"Name,Amount\r\nA,1\r\n\r\nB,2\r\n\r\n\r\nC,3\r\n",
                &[2, 4, 7],
            ),
            ("cr", b"Name,Amount\rA,1\r\rB,2\r\r\rC,3", &[2, 4, 7]),
            (
                "delimiters only",
                b"Name,Amount\nA,1\n,\n  ,  \nB,2\n",
                &[2, 5],
            ),
            ("blank first", b"\n\nName,Amount\nA,1\n", &[4]),
            (
                "quoted newlines",
                b"Name,Amount,Memo\nA,1,\"two\nlines\"\r\nB,2,\"x\r\ny\r\nz\"\nC,3,\n",
                &[2, 4, 7],
            ),
            ("no final newline", b"Name,Amount\nA,1\nB,2", &[2, 3]),
        ];
        for &(label, csv, want) in cases {
            let rs = read(csv);
            let lines: Vec<u64> = rs.iter().filter_map(|r| r.provenance.line).collect();
            assert_eq!(lines, want, "{label}");
        }
    }

    #[test]
    fn foreign_currency_warns() {
        let cases: &[(&str, bool)] = &[
            ("USD", false),
            ("usd", false),
            ("", false),
            ("EUR", true),
            ("cad", true),
        ];
        for &(currency, warns) in cases {
            let rs = read(format!("Name,Amount,Currency\nAnn,10,{currency}\n").as_bytes());
            let issue = rs[0].issues.iter().find(|i| i.code == "currency_not_usd");
            assert_eq!(issue.is_some(), warns, "{currency:?}");
            if let Some(i) = issue {
                assert_eq!(i.level, IssueLevel::Warning);
                assert!(i.message.contains(currency), "{}", i.message);
            }
            assert_eq!(rs[0].amount, Some(dec("10")), "{currency:?}");
        }
    }

    #[test]
    fn long_files_stream_and_keep_every_row() {
        // Longer than the 4 KB sniffing sample, with a quoted semicolon-free comma memo.
        let mut csv = String::from("Transaction ID;Name;Amount;Memo\n");
        for i in 0..500 {
            csv.push_str(&format!("t{i};Donor {i};{}.00;\"a, b\"\n", i % 7 + 1));
        }
        let rs = read(csv.as_bytes());
        assert_eq!(rs.len(), 500);
        assert_eq!(rs[499].payment_ref.as_deref(), Some("t499"));
        assert_eq!(rs[499].provenance.line, Some(501));
        assert_eq!(rs[499].memo.as_deref(), Some("a, b"));
    }
}
