//! Donor matching: which names to search QuickBooks for, how
//! well a customer's names agree with the payer's (0-100), what a score means, and whether the
//! address read from the paper is materially different from the one QuickBooks holds.
//!
//! Pure: no I/O, no clock. The faults of the system this replaces that this module is written
//! against: a lone shared first name ("John") no longer matches the first John in the
//! file; addresses are compared with a real edit distance after USPS-style normalisation rather
//! than character by character at the same position; phones are compared by their digits.
//!
//! Person scores, the best over the payer's aliases:
//!
//! | score | rule |
//! |------:|------|
//! | 100 | the normalised names are equal |
//! | 95  | the same person written the other way round ("Smith, John" / "John Smith"), or the customer's GivenName + FamilyName fields |
//! | 90  | couples whose words are the same set ("John & Jane Smith" / "Smith, John & Jane"); a middle name on one side only |
//! | 80  | an initial agreeing with the first name ("J. Smith" / "Smith, John"); Jr./Sr. on one side only; one person of a couple |
//! | 60  | the family name only |
//! | <=40 | a name contained in the other as whole words (40), one shared word (30), nothing (0) |
//!
//! Organisation scores: 100 equal after normalisation (case, punctuation, a leading "The", legal
//! suffixes such as Inc/LLC/Corp), 85 one contained in the other as whole words, 70 two or more
//! significant words in common, 30 one, 0 none. Inactive customers score 0.

use std::cmp::Ordering;
use std::collections::HashSet;

use crate::aliases::dedup_case_insensitive;
use crate::donation::{Address, Contact, MatchStatus, Payer};

/// The parts of a QBO customer that matching looks at (borrowed from the caller's parsed Customer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub id: &'a str,
    pub display_name: &'a str,
    pub given_name: Option<&'a str>,
    pub family_name: Option<&'a str>,
    pub company_name: Option<&'a str>,
    pub active: bool,
}

/// Score boundaries: at or above `auto` a match is accepted without review; from `review` up to
/// `auto` the treasurer confirms it; below `review` the payer is treated as a new donor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub auto: u8,
    pub review: u8,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            auto: 90,
            review: 60,
        }
    }
}

const EXACT: u8 = 100;
const SAME_PERSON: u8 = 95;
const COUPLE: u8 = 90;
const MIDDLE_ONE_SIDE: u8 = 90;
const INITIAL: u8 = 80;
const PART_OF_COUPLE: u8 = 80;
const SUFFIX_ONE_SIDE: u8 = 80;
const FAMILY_ONLY: u8 = 60;
const CONTAINED: u8 = 40;
const SHARED_WORD: u8 = 30;

const ORG_CONTAINED: u8 = 85;
const ORG_TWO_WORDS: u8 = 70;
const ORG_ONE_WORD: u8 = 30;

/// At most this many search terms per payer: each is one QBO query.
const MAX_TERMS: usize = 8;
/// A family name searched alone must be at least this long ("Li" would match half the file).
const MIN_FAMILY_TERM: usize = 3;

const TITLES: &[&str] = &["mr", "mrs", "ms", "miss", "mx", "dr", "rev", "fr", "prof"];
const SUFFIXES: &[&str] = &["jr", "sr", "ii", "iii", "iv"];
/// Legal-form words dropped from the end of an organisation's name. "Foundation", "Church" and
/// the like are kept: they tell organisations apart.
const LEGAL_SUFFIXES: &[&str] = &[
    "inc",
    "incorporated",
    "llc",
    "llp",
    "lp",
    "ltd",
    "limited",
    "corp",
    "corporation",
    "co",
    "company",
    "pc",
    "pllc",
    "plc",
];
const ORG_STOP_WORDS: &[&str] = &["the", "and", "for", "of"];

// ---------------------------------------------------------------------------------------------
// Search terms
// ---------------------------------------------------------------------------------------------

/// What to search QBO for, best first, de-duplicated case-insensitively, at most 8.
///
/// An organisation searches its name only. A person searches each alias followed by its
/// reversal ("John Smith" → "Smith, John", "Smith, John" → "John Smith", "John & Jane Smith" →
/// "Smith, John & Jane"), then each family name of at least 3 letters alone, last. Room for up
/// to two family names is kept when the aliases alone would fill the list.
pub fn search_terms(payer: &Payer) -> Vec<String> {
    if let Some(org) = org_name(payer) {
        return vec![collapse(org)];
    }
    let mut primary = Vec::new();
    let mut families = Vec::new();
    for alias in &payer.aliases {
        let alias = collapse(alias);
        if name_tokens(&alias).is_empty() {
            continue;
        }
        let listing = split_listing(&alias);
        primary.push(alias);
        if let Some(l) = listing {
            primary.push(l.reversed);
            if l.family.chars().count() >= MIN_FAMILY_TERM {
                families.push(l.family);
            }
        }
    }
    let mut primary = dedup_case_insensitive(primary);
    let seen: HashSet<String> = primary.iter().map(|t| t.to_lowercase()).collect();
    let families: Vec<String> = dedup_case_insensitive(families)
        .into_iter()
        .filter(|f| !seen.contains(&f.to_lowercase()))
        .collect();
    primary.truncate(MAX_TERMS - families.len().min(2));
    primary.extend(families);
    primary.truncate(MAX_TERMS);
    primary
}

/// A person's name split for searching: the other listing form and the bare family name.
struct Listing {
    reversed: String,
    family: String,
}

/// Splits an alias as written into its listing forms; `None` for a single word.
fn split_listing(alias: &str) -> Option<Listing> {
    if let Some((family, given)) = alias.split_once(',') {
        let (family, given) = (family.trim(), given.trim());
        let given_tokens = name_tokens(given);
        let suffix_only = !given_tokens.is_empty() && given_tokens.iter().all(|t| is_suffix(t));
        if suffix_only {
            // "John Smith, Jr.": a natural-order name with a suffix after a comma.
            return split_natural(family, Some(given));
        }
        if family.is_empty() || given_tokens.is_empty() {
            return None;
        }
        return Some(Listing {
            reversed: format!("{given} {family}"),
            family: family_term(family),
        });
    }
    split_natural(alias, None)
}

fn split_natural(name: &str, suffix: Option<&str>) -> Option<Listing> {
    let mut words: Vec<&str> = name.split_whitespace().collect();
    while words.len() > 1 && is_title(&word_key(words[0])) {
        words.remove(0);
    }
    let mut suffix = suffix.map(str::to_string);
    if suffix.is_none() && words.len() >= 3 {
        if let Some(last) = words.last() {
            if is_suffix(&word_key(last)) {
                suffix = Some((*last).to_string());
                words.pop();
            }
        }
    }
    if words.len() < 2 {
        return None;
    }
    let family = words[words.len() - 1];
    let given = words[..words.len() - 1].join(" ");
    let family_with_suffix = match &suffix {
        Some(s) => format!("{family} {s}"),
        None => family.to_string(),
    };
    Some(Listing {
        reversed: format!("{family_with_suffix}, {given}"),
        family: family_term(family),
    })
}

/// The family name as a search term: no suffix, no punctuation at its ends.
fn family_term(family: &str) -> String {
    let mut words: Vec<&str> = family.split_whitespace().collect();
    while words.len() > 1 && words.last().is_some_and(|w| is_suffix(&word_key(w))) {
        words.pop();
    }
    words
        .join(" ")
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_string()
}

/// A raw word compared against the title and suffix lists.
fn word_key(word: &str) -> String {
    word.trim_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase()
}

// ---------------------------------------------------------------------------------------------
// Scoring
// ---------------------------------------------------------------------------------------------

/// How well the customer's names agree with the payer's, 0..=100 (rules in the module doc).
///
/// A payer with an organisation name is scored as that organisation against the customer's
/// DisplayName and CompanyName; otherwise the best over the payer's aliases, each scored as a
/// person against the DisplayName, the CompanyName (a person listed as a company still scores as
/// a person) and the GivenName + FamilyName fields. Inactive customers score 0.
pub fn score(payer: &Payer, cand: &Candidate) -> u8 {
    if !cand.active {
        return 0;
    }
    let names = candidate_names(cand);
    if let Some(org) = org_name(payer) {
        return names.iter().map(|n| org_score(org, n)).max().unwrap_or(0);
    }
    let fields = field_person(cand);
    payer
        .aliases
        .iter()
        .filter(|a| !a.trim().is_empty())
        .map(|alias| {
            let by_name = names
                .iter()
                .map(|n| person_score(alias, n))
                .max()
                .unwrap_or(0);
            let by_fields = fields.as_ref().map(|f| field_score(alias, f)).unwrap_or(0);
            by_name.max(by_fields)
        })
        .max()
        .unwrap_or(0)
}

/// The best candidate: highest score; among equal scores a DisplayName equal to one of the
/// payer's names as written (ignoring case and spacing), then the lower numeric Id. `None` only
/// when there are no candidates.
pub fn best<'a>(payer: &Payer, cands: &'a [Candidate<'a>]) -> Option<(&'a Candidate<'a>, u8)> {
    let written: HashSet<String> = payer
        .organization_name
        .iter()
        .chain(payer.aliases.iter())
        .map(|n| collapse(n).to_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    let exact = |c: &Candidate| written.contains(&collapse(c.display_name).to_lowercase());
    cands
        .iter()
        .map(|c| (c, score(payer, c), exact(c)))
        .max_by(|(a, sa, ea), (b, sb, eb)| {
            sa.cmp(sb)
                .then(ea.cmp(eb))
                // Lower id is better, so it must compare greater.
                .then_with(|| id_order(b.id, a.id))
        })
        .map(|(c, s, _)| (c, s))
}

/// Matched (score >= auto), NeedsReview (review <= score < auto), NewDonor (< review).
pub fn decide(score: u8, t: Thresholds) -> MatchStatus {
    if score >= t.auto {
        MatchStatus::Matched
    } else if score >= t.review {
        MatchStatus::NeedsReview
    } else {
        MatchStatus::NewDonor
    }
}

/// Ids in ascending order: numeric ids by value ("3" before "12"), then anything else as text.
fn id_order(a: &str, b: &str) -> Ordering {
    match (a.trim().parse::<u64>(), b.trim().parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

fn org_name(payer: &Payer) -> Option<&str> {
    payer
        .organization_name
        .as_deref()
        .filter(|o| !name_tokens(o).is_empty())
}

fn candidate_names<'a>(cand: &Candidate<'a>) -> Vec<&'a str> {
    let mut names = vec![cand.display_name];
    if let Some(c) = cand.company_name {
        if !c.trim().is_empty() && c != cand.display_name {
            names.push(c);
        }
    }
    names
}

// --- names --------------------------------------------------------------------------------

/// Normalised name words: lowercase; '&' becomes the word "and"; hyphens and apostrophes stay
/// inside words (O'Brien is one word, "o'brien"); periods and every other punctuation mark
/// separate words (so "J." is "j").
fn name_tokens(s: &str) -> Vec<String> {
    let mut cleaned = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\u{2018}' | '\u{2019}' | '`' => cleaned.push('\''),
            '-' | '\'' => cleaned.push(c),
            '&' => cleaned.push_str(" and "),
            c if c.is_alphanumeric() => cleaned.extend(c.to_lowercase()),
            _ => cleaned.push(' '),
        }
    }
    cleaned
        .split_whitespace()
        .map(|t| t.trim_matches(|c| c == '-' || c == '\''))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

fn is_title(t: &str) -> bool {
    TITLES.contains(&t)
}

fn is_suffix(t: &str) -> bool {
    SUFFIXES.contains(&t)
}

fn is_couple(tokens: &[String]) -> bool {
    tokens.iter().any(|t| t == "and")
}

/// One person's name, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Person {
    /// Empty when only a family name is known ("Smith," or a FamilyName field alone).
    first: String,
    middles: Vec<String>,
    /// Empty for a single word, which could be either name.
    last: String,
    suffix: Option<String>,
}

/// Reads "First [Middle...] Last [Jr.]" or "Last [Jr.], First [Middle...]", ignoring leading
/// titles. `None` when there are no words.
fn parse_person(raw: &str) -> Option<Person> {
    let mut suffix = None;
    let mut segments: Vec<Vec<String>> = raw
        .split(',')
        .map(name_tokens)
        .filter(|t| !t.is_empty())
        .collect();
    // "John Smith, Jr.": a segment that is only a suffix is not a listing form.
    segments.retain(|seg| {
        if seg.len() == 1 && is_suffix(&seg[0]) {
            suffix = Some(seg[0].clone());
            false
        } else {
            true
        }
    });
    if segments.len() == 2 {
        let mut it = segments.into_iter();
        let mut family = it.next()?;
        let mut given = it.next()?;
        strip_titles(&mut given, 0);
        strip_suffix(&mut family, 2, &mut suffix);
        strip_suffix(&mut given, 2, &mut suffix);
        let first = if given.is_empty() {
            String::new()
        } else {
            given.remove(0)
        };
        return Some(Person {
            first,
            middles: given,
            last: family.join(" "),
            suffix,
        });
    }
    let mut tokens: Vec<String> = segments.concat();
    strip_titles(&mut tokens, 1);
    strip_suffix(&mut tokens, 3, &mut suffix);
    let last = match tokens.len() {
        0 => return None,
        1 => String::new(),
        _ => tokens.pop()?,
    };
    let first = tokens.remove(0);
    Some(Person {
        first,
        middles: tokens,
        last,
        suffix,
    })
}

/// Drops leading titles while more than `keep` words remain.
fn strip_titles(tokens: &mut Vec<String>, keep: usize) {
    while tokens.len() > keep && tokens.first().is_some_and(|t| is_title(t)) {
        tokens.remove(0);
    }
}

/// Moves a trailing suffix into `suffix` when the name has at least `min_len` words.
fn strip_suffix(tokens: &mut Vec<String>, min_len: usize, suffix: &mut Option<String>) {
    if tokens.len() >= min_len && tokens.last().is_some_and(|t| is_suffix(t)) {
        let s = tokens.pop();
        if suffix.is_none() {
            *suffix = s;
        }
    }
}

/// The customer's GivenName + FamilyName fields as a person; `None` without a family name.
fn field_person(cand: &Candidate) -> Option<Person> {
    let family = name_tokens(cand.family_name?);
    if family.is_empty() {
        return None;
    }
    let mut given = cand.given_name.map(name_tokens).unwrap_or_default();
    strip_titles(&mut given, 0);
    let first = if given.is_empty() {
        String::new()
    } else {
        given.remove(0)
    };
    Some(Person {
        first,
        middles: given,
        last: family.join(" "),
        suffix: None,
    })
}

/// One alias against one name of the customer, both scored as people.
fn person_score(alias: &str, cand_name: &str) -> u8 {
    let a = name_tokens(alias);
    let b = name_tokens(cand_name);
    if a.is_empty() || b.is_empty() {
        return 0;
    }
    if a == b {
        return EXACT;
    }
    let weak = weak_score(&a, &b);
    if is_couple(&a) || is_couple(&b) {
        return weak.max(couple_score(alias, &a, cand_name, &b));
    }
    match (parse_person(alias), parse_person(cand_name)) {
        (Some(pa), Some(pb)) => weak.max(compare_persons(&pa, &pb)),
        _ => weak,
    }
}

/// One alias against the customer's GivenName + FamilyName fields: at most 95, equal fields
/// being the "same person written differently" case.
fn field_score(alias: &str, fields: &Person) -> u8 {
    let a = name_tokens(alias);
    if a.is_empty() {
        return 0;
    }
    let joined = format!(
        "{} {} {}",
        fields.first,
        fields.middles.join(" "),
        fields.last
    );
    let s = if is_couple(&a) {
        couple_score(alias, &a, &joined, &name_tokens(&joined))
    } else {
        parse_person(alias)
            .map(|p| compare_persons(&p, fields))
            .unwrap_or(0)
    };
    s.min(SAME_PERSON)
}

/// Names that are not equal, nor the same person in another order: the alias contained in the
/// other name as whole words (or the reverse) scores 40, one shared word 30, else 0.
fn weak_score(a: &[String], b: &[String]) -> u8 {
    let significant = |t: &&String| t.len() >= 2 && !is_title(t) && t.as_str() != "and";
    if contains_words(a, b) || contains_words(b, a) {
        return CONTAINED;
    }
    let bs: HashSet<&String> = b.iter().filter(significant).collect();
    if a.iter().filter(significant).any(|t| bs.contains(t)) {
        SHARED_WORD
    } else {
        0
    }
}

/// Whether `needle` appears in `hay` as a run of whole words.
fn contains_words(hay: &[String], needle: &[String]) -> bool {
    !needle.is_empty()
        && needle.len() <= hay.len()
        && hay.windows(needle.len()).any(|w| w == needle)
}

/// Couples: the same set of words (titles and "and" left out) is 90; one side's words all found
/// in the other's (one person of the couple) 80; the same family name 60.
fn couple_score(a_raw: &str, a: &[String], b_raw: &str, b: &[String]) -> u8 {
    let set = |tokens: &[String]| -> HashSet<String> {
        tokens
            .iter()
            .filter(|t| !is_title(t) && t.as_str() != "and")
            .cloned()
            .collect()
    };
    let (sa, sb) = (set(a), set(b));
    if sa.is_empty() || sb.is_empty() {
        return 0;
    }
    if sa == sb {
        return COUPLE;
    }
    let (small, large) = if sa.len() <= sb.len() {
        (&sa, &sb)
    } else {
        (&sb, &sa)
    };
    if small.len() >= 2 && small.is_subset(large) {
        return PART_OF_COUPLE;
    }
    match (family_of(a_raw), family_of(b_raw)) {
        (Some(fa), Some(fb)) if fa == fb => FAMILY_ONLY,
        _ => 0,
    }
}

/// The family name of a person or couple as written: before the comma of a listing form, else
/// the last word (a single word counts as a family name).
fn family_of(raw: &str) -> Option<String> {
    let mut tokens = match raw.split_once(',') {
        Some((family, rest)) if !name_tokens(rest).is_empty() => name_tokens(family),
        _ => name_tokens(raw),
    };
    let mut ignored = None;
    strip_suffix(&mut tokens, 2, &mut ignored);
    if raw.contains(',') {
        Some(tokens.join(" ")).filter(|f| !f.is_empty())
    } else {
        tokens.pop()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Agreement {
    Same,
    /// An initial on one side agreeing with the first letter of the other.
    Initial,
    Different,
}

fn name_agreement(a: &str, b: &str) -> Agreement {
    if a.is_empty() || b.is_empty() {
        return Agreement::Different;
    }
    if a == b {
        return Agreement::Same;
    }
    let initial_of = |short: &str, long: &str| {
        short.chars().count() == 1 && long.chars().next() == short.chars().next()
    };
    if initial_of(a, b) || initial_of(b, a) {
        Agreement::Initial
    } else {
        Agreement::Different
    }
}

/// Two people, both parsed: 95 the same, 90 a middle name on one side only (or initials of
/// the same middle names), 80 an initial for the first name or a suffix on one side only, 60 the
/// family name only (including conflicting middle names or suffixes), 0 different family names.
fn compare_persons(a: &Person, b: &Person) -> u8 {
    let (a, b) = align_family(a, b);
    if a.last.is_empty() || b.last.is_empty() {
        // A single word can only be compared as a family name.
        let (single, other) = if a.last.is_empty() {
            (&a, &b)
        } else {
            (&b, &a)
        };
        return if !other.last.is_empty() && single.first == other.last {
            FAMILY_ONLY
        } else {
            0
        };
    }
    if a.last != b.last {
        return 0;
    }
    let mut s = match name_agreement(&a.first, &b.first) {
        Agreement::Same => SAME_PERSON,
        Agreement::Initial => INITIAL,
        Agreement::Different => return FAMILY_ONLY,
    };
    if a.middles != b.middles {
        let compatible = a.middles.is_empty()
            || b.middles.is_empty()
            || (a.middles.len() == b.middles.len()
                && a.middles
                    .iter()
                    .zip(&b.middles)
                    .all(|(x, y)| name_agreement(x, y) != Agreement::Different));
        if !compatible {
            return FAMILY_ONLY;
        }
        s = s.min(MIDDLE_ONE_SIDE);
    }
    match (&a.suffix, &b.suffix) {
        (Some(x), Some(y)) if x != y => return FAMILY_ONLY,
        (Some(_), None) | (None, Some(_)) => s = s.min(SUFFIX_ONE_SIDE),
        _ => {}
    }
    s
}

/// A family name of several words read from a listing form ("Van Buren, Martin") against the
/// natural form ("Martin Van Buren", read as middle "van" + last "buren"): move the words.
fn align_family(a: &Person, b: &Person) -> (Person, Person) {
    fn fold(multi: &Person, other: &Person) -> Option<Person> {
        let words: Vec<&str> = multi.last.split(' ').collect();
        if words.len() < 2 || other.last.contains(' ') {
            return None;
        }
        let mut all: Vec<&str> = other.middles.iter().map(String::as_str).collect();
        all.push(other.last.as_str());
        let n = words.len();
        if all.len() < n || all[all.len() - n..] != words[..] {
            return None;
        }
        Some(Person {
            middles: other.middles[..all.len() - n].to_vec(),
            last: multi.last.clone(),
            ..other.clone()
        })
    }
    if let Some(b2) = fold(a, b) {
        return (a.clone(), b2);
    }
    if let Some(a2) = fold(b, a) {
        return (a2, b.clone());
    }
    (a.clone(), b.clone())
}

// --- organisations ------------------------------------------------------------------------

/// Normalised organisation words: lowercase, periods and apostrophes removed ("St." → "st",
/// "Mary's" → "marys"), '&' read as "and", other punctuation separating words, a leading "The"
/// and trailing legal suffixes (Inc, LLC, Corp, Co, ...) dropped.
fn org_tokens(s: &str) -> Vec<String> {
    let mut cleaned = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '.' | '\'' | '\u{2019}' | '\u{2018}' | '`' => {}
            '&' => cleaned.push_str(" and "),
            c if c.is_alphanumeric() => cleaned.extend(c.to_lowercase()),
            _ => cleaned.push(' '),
        }
    }
    let mut tokens: Vec<String> = cleaned.split_whitespace().map(str::to_string).collect();
    if tokens.len() > 1 && tokens[0] == "the" {
        tokens.remove(0);
    }
    while tokens.len() > 1
        && tokens
            .last()
            .is_some_and(|t| LEGAL_SUFFIXES.contains(&t.as_str()) || t == "and")
    {
        tokens.pop();
    }
    tokens
}

fn org_score(a_raw: &str, b_raw: &str) -> u8 {
    let (a, b) = (org_tokens(a_raw), org_tokens(b_raw));
    if a.is_empty() || b.is_empty() {
        return 0;
    }
    if a == b {
        return EXACT;
    }
    if contains_words(&a, &b) || contains_words(&b, &a) {
        return ORG_CONTAINED;
    }
    let significant = |t: &&String| t.chars().count() > 2 && !ORG_STOP_WORDS.contains(&t.as_str());
    let sa: HashSet<&String> = a.iter().filter(significant).collect();
    let common = b
        .iter()
        .filter(significant)
        .collect::<HashSet<_>>()
        .intersection(&sa)
        .count();
    match common {
        0 => 0,
        1 => ORG_ONE_WORD,
        _ => ORG_TWO_WORDS,
    }
}

// ---------------------------------------------------------------------------------------------
// Addresses and contact values
// ---------------------------------------------------------------------------------------------

const LINE1_WEIGHT: f64 = 0.7;
const ZIP_WEIGHT: f64 = 0.2;
const CITY_WEIGHT: f64 = 0.1;
/// Below this similarity two addresses are materially different.
const SAME_ADDRESS: f64 = 0.85;

/// 0.0..=1.0 similarity of two addresses after normalisation (case, punctuation, spacing,
/// USPS abbreviations such as Street/St, North/N, Apartment/Apt/#, "P.O. Box"/"PO Box").
///
/// A weighted mean of: line 1 by normalised Levenshtein (weight 0.7), the 5-digit ZIP equal or
/// not (0.2) and the city by normalised Levenshtein (0.1). A part missing on both sides, or a
/// ZIP or city missing on either side, is left out of the mean; a line 1 present on only one
/// side counts as 0. Two empty addresses are 1.0. An edit distance keeps "123 Main St" against
/// "1234 Main St" high (0.92 on line 1) where a position-by-position comparison collapses; use
/// [`address_changed`] to decide whether the difference matters.
pub fn address_similarity(a: &Address, b: &Address) -> f64 {
    let mut total = 0.0;
    let mut weight = 0.0;
    let mut any = false;
    let (la, lb) = (line_key(a.line1.as_deref()), line_key(b.line1.as_deref()));
    if !la.is_empty() || !lb.is_empty() {
        any = true;
        weight += LINE1_WEIGHT;
        if !la.is_empty() && !lb.is_empty() {
            total += LINE1_WEIGHT * strsim::normalized_levenshtein(&la, &lb);
        }
    }
    if let (Some(za), Some(zb)) = (zip5(a.zip.as_deref()), zip5(b.zip.as_deref())) {
        any = true;
        weight += ZIP_WEIGHT;
        if za == zb {
            total += ZIP_WEIGHT;
        }
    }
    let (ca, cb) = (line_key(a.city.as_deref()), line_key(b.city.as_deref()));
    if !ca.is_empty() && !cb.is_empty() {
        any = true;
        weight += CITY_WEIGHT;
        total += CITY_WEIGHT * strsim::normalized_levenshtein(&ca, &cb);
    }
    if !any {
        return 1.0;
    }
    (total / weight).clamp(0.0, 1.0)
}

/// Whether the extracted address should be offered to the treasurer as a change to QBO's.
///
/// The rule, in order:
/// 1. The extracted address has no line 1: false (keep QuickBooks' address; a city or ZIP alone
///    is not an address to mail to).
/// 2. QuickBooks has no line 1: true (the envelope supplies one).
/// 3. Otherwise true when the addresses are materially different: a different house number
///    (or PO Box number, or a number on one side only), a different apartment/suite number when
///    both have one, a different 5-digit ZIP when both have one, or [`address_similarity`] below
///    0.85. Spelling and abbreviation differences ("Main Street" / "Main St", "Maine" / "Main")
///    are not a change; "123 Main" / "1234 Main" is.
pub fn address_changed(extracted: &Address, qbo: &Address) -> bool {
    let ext = addr_tokens(extracted.line1.as_deref().unwrap_or(""));
    if ext.is_empty() {
        return false;
    }
    let old = addr_tokens(qbo.line1.as_deref().unwrap_or(""));
    if old.is_empty() {
        return true;
    }
    if house_number(&ext) != house_number(&old) {
        return true;
    }
    if let (Some(x), Some(y)) = (unit_number(&ext), unit_number(&old)) {
        if x != y {
            return true;
        }
    }
    if let (Some(x), Some(y)) = (zip5(extracted.zip.as_deref()), zip5(qbo.zip.as_deref())) {
        if x != y {
            return true;
        }
    }
    address_similarity(extracted, qbo) < SAME_ADDRESS
}

/// Emails compared trimmed and ignoring case; an empty value matches nothing.
pub fn same_email(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim(), b.trim());
    !a.is_empty() && a.to_lowercase() == b.to_lowercase()
}

/// Phones compared by their last 10 digits, so "(555) 123-4567", "555.123.4567" and
/// "+1 555 123 4567" agree. An extension ("x12", "ext. 12") is ignored; fewer than 7 digits
/// match nothing.
pub fn same_phone(a: &str, b: &str) -> bool {
    match (phone_key(a), phone_key(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// The record's contact as an Address (line1/city/state/zip), trimmed, blanks as `None`.
pub fn address_of(contact: &Contact) -> Address {
    let clean = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    Address {
        line1: clean(&contact.address_line_1),
        city: clean(&contact.city),
        state: clean(&contact.state),
        zip: clean(&contact.zip),
    }
}

/// A phone's last 10 digits (none under 7 digits), as [`same_phone`] compares them.
pub fn phone_key(s: &str) -> Option<String> {
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else if c.is_alphabetic() && !digits.is_empty() {
            break; // an extension marker
        }
    }
    if digits.len() < 7 {
        return None;
    }
    Some(digits[digits.len().saturating_sub(10)..].to_string())
}

/// The first five digits of a ZIP; 3-4 digits are read as a ZIP that lost its leading zeros.
fn zip5(zip: Option<&str>) -> Option<String> {
    let digits: String = zip?.chars().filter(char::is_ascii_digit).collect();
    match digits.len() {
        0..=2 => None,
        3 | 4 => Some(format!("{digits:0>5}")),
        _ => Some(digits[..5].to_string()),
    }
}

fn line_key(s: Option<&str>) -> String {
    addr_tokens(s.unwrap_or("")).join(" ")
}

/// Normalised address words: lowercase, periods and apostrophes removed, other punctuation
/// separating words ('#' becoming "apt"), USPS abbreviations, PO Box forms as "po box".
fn addr_tokens(s: &str) -> Vec<String> {
    let mut cleaned = String::with_capacity(s.len());
    for c in s.chars().flat_map(char::to_lowercase) {
        match c {
            '.' | '\'' | '\u{2019}' => {}
            '#' => cleaned.push_str(" # "),
            c if c.is_alphanumeric() || c == '-' => cleaned.push(c),
            _ => cleaned.push(' '),
        }
    }
    let raw: Vec<&str> = cleaned
        .split_whitespace()
        .map(|t| t.trim_matches('-'))
        .filter(|t| !t.is_empty())
        .collect();
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let rest = &raw[i..];
        if rest.starts_with(&["p", "o", "box"]) || rest.starts_with(&["post", "office", "box"]) {
            out.extend(["po".to_string(), "box".to_string()]);
            i += 3;
            continue;
        }
        if rest[0] == "pob" {
            out.extend(["po".to_string(), "box".to_string()]);
            i += 1;
            continue;
        }
        let word = usps(rest[0]);
        // "Apt #4" is one designator.
        if !(word == "apt" && out.last().is_some_and(|w| w == "apt")) {
            out.push(word.to_string());
        }
        i += 1;
    }
    out
}

fn usps(word: &str) -> &str {
    match word {
        "street" | "str" => "st",
        "avenue" | "av" | "avn" => "ave",
        "road" => "rd",
        "drive" | "drv" => "dr",
        "lane" => "ln",
        "boulevard" => "blvd",
        "court" => "ct",
        "place" => "pl",
        "circle" => "cir",
        "parkway" => "pkwy",
        "highway" => "hwy",
        "terrace" => "ter",
        "trail" => "trl",
        "square" => "sq",
        "north" => "n",
        "south" => "s",
        "east" => "e",
        "west" => "w",
        "northeast" => "ne",
        "northwest" => "nw",
        "southeast" => "se",
        "southwest" => "sw",
        "apartment" | "unit" | "#" => "apt",
        "suite" => "ste",
        "floor" => "fl",
        "building" => "bldg",
        "saint" => "st",
        "mount" => "mt",
        "fort" => "ft",
        other => other,
    }
}

/// The house number: the first word starting with a digit that is not a unit or floor number;
/// for a PO Box, "box <n>".
fn house_number(tokens: &[String]) -> Option<String> {
    for (i, t) in tokens.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| tokens[j].as_str());
        if prev == Some("box") {
            return Some(format!("box {t}"));
        }
        if matches!(prev, Some("apt" | "ste" | "fl" | "rm" | "bldg")) {
            continue;
        }
        if t.starts_with(|c: char| c.is_ascii_digit()) {
            return Some(t.clone());
        }
    }
    None
}

/// The apartment or suite number, when written.
fn unit_number(tokens: &[String]) -> Option<&str> {
    tokens
        .windows(2)
        .find(|w| w[0] == "apt" || w[0] == "ste")
        .map(|w| w[1].as_str())
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn person(aliases: &[&str]) -> Payer {
        Payer {
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            salutation: None,
            organization_name: None,
            anonymous: false,
        }
    }

    fn org(name: &str) -> Payer {
        Payer {
            aliases: Vec::new(),
            salutation: None,
            organization_name: Some(name.to_string()),
            anonymous: false,
        }
    }

    fn cand<'a>(id: &'a str, display: &'a str) -> Candidate<'a> {
        Candidate {
            id,
            display_name: display,
            given_name: None,
            family_name: None,
            company_name: None,
            active: true,
        }
    }

    fn s(alias: &str, display: &str) -> u8 {
        score(&person(&[alias]), &cand("1", display))
    }

    fn addr(line1: Option<&str>, city: Option<&str>, zip: Option<&str>) -> Address {
        Address {
            line1: line1.map(str::to_string),
            city: city.map(str::to_string),
            state: Some("IL".to_string()),
            zip: zip.map(str::to_string),
        }
    }

    fn line(l: &str) -> Address {
        addr(Some(l), Some("Springfield"), Some("62701"))
    }

    #[test]
    fn normalisation_keeps_apostrophes_and_hyphens_inside_words() {
        assert_eq!(name_tokens("Mary O'Brien"), ["mary", "o'brien"]);
        assert_eq!(name_tokens("Mary O\u{2019}Brien"), ["mary", "o'brien"]);
        assert_eq!(name_tokens("Ann Smith-Jones"), ["ann", "smith-jones"]);
        assert_eq!(name_tokens("Smith\\Jones, J."), ["smith", "jones", "j"]);
        assert_eq!(name_tokens("John & Jane"), ["john", "and", "jane"]);
    }

    #[test]
    fn names_score_100_against_themselves() {
        for n in [
            "O'Brien",
            "Mary O'Brien",
            "O'Brien, Mary",
            "Smith\\Jones",
            "Jane Smith\\Jones",
            "Ann Smith-Jones",
            "J. Smith",
            "John & Jane Smith",
        ] {
            assert_eq!(s(n, n), 100, "{n}");
        }
        assert_eq!(s("Mary O'Brien", "mary  o'brien"), 100);
        assert_eq!(s("Mary O'Brien", "Mary O\u{2019}Brien"), 100);
        // The apostrophe is kept: "O Brien" is not the same word.
        assert!(s("Mary O'Brien", "Mary O Brien") < 90);
    }

    #[test]
    fn reversed_listing_form_is_95() {
        assert_eq!(s("John Smith", "Smith, John"), 95);
        assert_eq!(s("Smith, John", "John Smith"), 95);
        assert_eq!(s("Mary O'Brien", "O'Brien, Mary"), 95);
        assert_eq!(s("Dr. John Smith", "Smith, John"), 95);
        assert_eq!(s("Martin Van Buren", "Van Buren, Martin"), 95);
        assert_eq!(s("Robert Smith Jr.", "Smith Jr., Robert"), 95);
        assert_eq!(s("Robert Smith, Jr.", "Smith, Robert Jr."), 95);
        assert_eq!(
            decide(s("John Smith", "Smith, John"), Thresholds::default()),
            MatchStatus::Matched
        );
    }

    #[test]
    fn middle_names_and_suffixes() {
        assert_eq!(s("John R. Smith", "Smith, John"), 90);
        assert_eq!(s("John R. Smith", "John Robert Smith"), 90);
        assert_eq!(s("John R. Smith", "John T. Smith"), 60);
        assert_eq!(s("Robert Smith Jr.", "Robert Smith"), 80);
        assert_eq!(s("Robert Smith Jr.", "Robert Smith Sr."), 60);
    }

    #[test]
    fn initials_are_80_and_need_review() {
        assert_eq!(s("J. Smith", "Smith, John"), 80);
        assert_eq!(s("J Smith", "John Smith"), 80);
        assert_eq!(s("Smith, J.", "John Smith"), 80);
        assert_eq!(s("John Smith", "Smith, J."), 80);
        assert_eq!(
            decide(s("J. Smith", "Smith, John"), Thresholds::default()),
            MatchStatus::NeedsReview
        );
        // An initial that disagrees is only the family name.
        assert_eq!(s("K. Smith", "Smith, John"), 60);
    }

    #[test]
    fn a_shared_first_name_is_not_a_match() {
        // The predecessor's step 4 matched "John" to the first John in the file.
        let sc = s("John Smith", "John Doe");
        assert!(sc <= 40, "{sc}");
        assert_eq!(decide(sc, Thresholds::default()), MatchStatus::NewDonor);
        assert!(s("John", "John Doe") <= 40);
        let cands = [cand("1", "John Doe"), cand("2", "John Smith")];
        let (c, sc) = best(&person(&["John Smith"]), &cands).unwrap();
        assert_eq!((c.id, sc), ("2", 100));
    }

    #[test]
    fn family_name_alone_is_never_matched() {
        let t = Thresholds::default();
        for (alias, display) in [
            ("Smith", "John Smith"),
            ("Smith", "Smith, Jane"),
            ("John Smith", "Mary Smith"),
            ("John Smith", "Smith, Mary"),
            ("Smith", "John & Jane Smith"),
        ] {
            let sc = s(alias, display);
            assert_eq!(sc, 60, "{alias} / {display}");
            assert_eq!(decide(sc, t), MatchStatus::NeedsReview);
        }
        let mut c = cand("1", "Smith Household");
        c.family_name = Some("Smith");
        let sc = score(&person(&["Smith"]), &c);
        assert!(sc <= 60 && decide(sc, t) != MatchStatus::Matched, "{sc}");
        c.given_name = Some("Mary");
        assert_eq!(score(&person(&["John Smith"]), &c), 60);
    }

    #[test]
    fn couples_compare_as_sets_of_words() {
        assert_eq!(s("John & Jane Smith", "Smith, John & Jane"), 90);
        // "&" and "and" are the same word.
        assert_eq!(s("Smith, John and Jane", "Smith, John & Jane"), 100);
        assert_eq!(s("Smith, John and Jane", "John & Jane Smith"), 90);
        assert_eq!(s("Jane & John Smith", "John and Jane Smith"), 90);
        assert_eq!(s("Mr. & Mrs. John Smith", "John Smith"), 90);
        assert_eq!(s("John & Jane Smith", "Jane Smith"), 80);
        assert_eq!(s("John & Jane Smith", "Smith, Mary"), 60);
        assert_eq!(s("John & Jane Smith", "Jane Doe"), 30);
        assert_eq!(
            decide(
                s("John & Jane Smith", "Smith, John & Jane"),
                Thresholds::default()
            ),
            MatchStatus::Matched
        );
    }

    #[test]
    fn given_and_family_fields() {
        let mut c = cand("1", "The Smith Household");
        c.given_name = Some("John");
        c.family_name = Some("Smith");
        assert_eq!(score(&person(&["John Smith"]), &c), 95);
        assert_eq!(score(&person(&["Smith, John"]), &c), 95);
        assert_eq!(score(&person(&["J. Smith"]), &c), 80);
        assert_eq!(score(&person(&["John & Jane Smith"]), &c), 80);
    }

    #[test]
    fn a_person_listed_as_a_company_still_scores_as_a_person() {
        let mut c = cand("1", "Smith Consulting");
        c.company_name = Some("John Smith");
        assert_eq!(score(&person(&["John Smith"]), &c), 100);
        assert_eq!(score(&person(&["Smith, John"]), &c), 95);
        assert_eq!(score(&person(&["J. Smith"]), &c), 80);
    }

    #[test]
    fn best_over_aliases() {
        let p = person(&["Jonelle R. Collins", "Collins, Jonelle"]);
        assert_eq!(score(&p, &cand("1", "Collins, Jonelle")), 100);
        assert_eq!(score(&person(&["", "  "]), &cand("1", "John Smith")), 0);
    }

    #[test]
    fn organisations() {
        let o = |a: &str, b: &str| score(&org(a), &cand("1", b));
        assert_eq!(
            o("St. John Lutheran Church", "St John Lutheran Church"),
            100
        );
        assert_eq!(o("Acme Corp", "ACME Corporation, Inc."), 100);
        assert_eq!(o("Acme, LLC", "Acme"), 100);
        assert_eq!(o("The Acme Foundation", "Acme Foundation"), 100);
        assert_eq!(o("Smith & Sons Co.", "Smith and Sons"), 100);
        assert_eq!(o("St. Mary's Parish", "St Marys Parish"), 100);
        // "Foundation" is not a legal suffix.
        assert_eq!(o("Acme Foundation", "Acme"), 85);
        assert_eq!(
            o(
                "First Baptist Church",
                "First Baptist Church of Springfield"
            ),
            85
        );
        assert_eq!(o("Grace Lutheran Church", "St John Lutheran Church"), 70);
        assert_eq!(o("St John Lutheran Church", "St Paul Methodist Church"), 30);
        assert_eq!(o("Acme Corp", "Zenith Holdings"), 0);
        // The organisation is scored against the CompanyName too.
        let mut c = cand("1", "Acme (main office)");
        c.company_name = Some("Acme Inc.");
        assert_eq!(score(&org("ACME, Inc"), &c), 100);
        assert_eq!(
            decide(o("Acme Foundation", "Acme"), Thresholds::default()),
            MatchStatus::NeedsReview
        );
    }

    #[test]
    fn inactive_customers_score_zero() {
        let mut c = cand("1", "John Smith");
        assert_eq!(score(&person(&["John Smith"]), &c), 100);
        c.active = false;
        assert_eq!(score(&person(&["John Smith"]), &c), 0);
        let mut o = cand("2", "Acme");
        o.active = false;
        assert_eq!(score(&org("Acme"), &o), 0);
    }

    #[test]
    fn best_breaks_ties_by_exact_display_name_then_lower_id() {
        let p = person(&["John Smith"]);
        assert!(best(&p, &[]).is_none());
        // Both normalise to "john smith" (100); only id 9 is written the same way.
        let cands = [cand("3", "John Smith."), cand("9", "john smith")];
        let (c, sc) = best(&p, &cands).unwrap();
        assert_eq!((c.id, sc), ("9", 100));
        // Equal scores, no exact display name: lower numeric id, "3" before "12".
        let cands = [cand("12", "Smith, John"), cand("3", "Smith,  John ")];
        let (c, sc) = best(&p, &cands).unwrap();
        assert_eq!((c.id, sc), ("3", 95));
        // A higher score beats both.
        let cands = [
            cand("1", "Smith, John"),
            cand("40", "John Smith"),
            cand("2", "J. Smith"),
        ];
        assert_eq!(best(&p, &cands).unwrap().0.id, "40");
        // An inactive exact name loses to an active reversed one.
        let mut gone = cand("1", "John Smith");
        gone.active = false;
        let cands = [gone, cand("5", "Smith, John")];
        assert_eq!(best(&p, &cands).unwrap().0.id, "5");
        // With only weak candidates the best is still returned, with its low score.
        let cands = [cand("1", "Mary Jones")];
        assert_eq!(best(&p, &cands).unwrap().1, 0);
    }

    #[test]
    fn decide_uses_the_thresholds() {
        let t = Thresholds::default();
        assert_eq!(
            t,
            Thresholds {
                auto: 90,
                review: 60
            }
        );
        assert_eq!(decide(100, t), MatchStatus::Matched);
        assert_eq!(decide(90, t), MatchStatus::Matched);
        assert_eq!(decide(89, t), MatchStatus::NeedsReview);
        assert_eq!(decide(60, t), MatchStatus::NeedsReview);
        assert_eq!(decide(59, t), MatchStatus::NewDonor);
        assert_eq!(decide(0, t), MatchStatus::NewDonor);
        let strict = Thresholds {
            auto: 96,
            review: 81,
        };
        assert_eq!(decide(95, strict), MatchStatus::NeedsReview);
        assert_eq!(decide(80, strict), MatchStatus::NewDonor);
    }

    #[test]
    fn search_terms_for_people() {
        assert_eq!(
            search_terms(&person(&["John Smith"])),
            ["John Smith", "Smith, John", "Smith"]
        );
        assert_eq!(
            search_terms(&person(&["Smith, John", "John Smith", "JOHN SMITH"])),
            ["Smith, John", "John Smith", "Smith"]
        );
        assert_eq!(
            search_terms(&person(&["John & Jane Smith"])),
            ["John & Jane Smith", "Smith, John & Jane", "Smith"]
        );
        assert_eq!(
            search_terms(&person(&["Robert Smith Jr."])),
            ["Robert Smith Jr.", "Smith Jr., Robert", "Smith"]
        );
        assert_eq!(
            search_terms(&person(&["Dr. Mary  O'Brien"])),
            ["Dr. Mary O'Brien", "O'Brien, Mary", "O'Brien"]
        );
        // Short family names are not searched alone; empty aliases are skipped.
        assert_eq!(
            search_terms(&person(&["", "  ", "Amy Li"])),
            ["Amy Li", "Li, Amy"]
        );
        assert_eq!(search_terms(&person(&["Cher"])), ["Cher"]);
        assert!(search_terms(&person(&[])).is_empty());
    }

    #[test]
    fn search_terms_are_capped_with_the_family_name_last() {
        let p = person(&[
            "Jonelle R. Collins",
            "Jonelle Collins",
            "J. Collins",
            "J. R. Collins",
            "Jonelle Robin Collins",
        ]);
        let terms = search_terms(&p);
        assert_eq!(terms.len(), 8, "{terms:?}");
        assert_eq!(terms[0], "Jonelle R. Collins");
        assert_eq!(terms[1], "Collins, Jonelle R.");
        assert_eq!(terms.last().unwrap(), "Collins");
        let lower: HashSet<String> = terms.iter().map(|t| t.to_lowercase()).collect();
        assert_eq!(lower.len(), terms.len());
    }

    #[test]
    fn search_terms_for_an_organisation() {
        let mut p = org("  St. John   Lutheran Church ");
        p.aliases = vec!["Pastor Bob".to_string()];
        assert_eq!(search_terms(&p), ["St. John Lutheran Church"]);
        // A blank organisation name is a person.
        let mut p = person(&["John Smith"]);
        p.organization_name = Some(" ".to_string());
        assert_eq!(search_terms(&p)[0], "John Smith");
        assert_eq!(score(&p, &cand("1", "Smith, John")), 95);
    }

    #[test]
    fn street_and_st_are_the_same_address() {
        let a = line("123 Main St");
        let b = addr(
            Some("123 Main Street"),
            Some("springfield"),
            Some("62701-1234"),
        );
        assert!((address_similarity(&a, &b) - 1.0).abs() < 1e-9);
        assert!(!address_changed(&b, &a));
        for (x, y) in [
            ("P.O. Box 12", "PO Box 12"),
            ("P. O. Box 12", "Post Office Box 12"),
            ("45 North Elm Avenue, Apt. 3", "45 N. Elm Ave #3"),
            ("9 W. Oak Blvd., Suite 200", "9 West Oak Boulevard Ste 200"),
            ("7 Apple Court Apartment 2", "7 apple ct unit 2"),
        ] {
            let sim = address_similarity(&line(x), &line(y));
            assert!((sim - 1.0).abs() < 1e-9, "{x} / {y}: {sim}");
            assert!(!address_changed(&line(x), &line(y)), "{x} / {y}");
        }
    }

    #[test]
    fn one_inserted_digit_is_a_change_but_still_similar() {
        let a = addr(Some("123 Main"), None, None);
        let b = addr(Some("1234 Main"), None, None);
        let sim = address_similarity(&a, &b);
        assert!(sim > 0.7, "{sim}");
        assert!(address_changed(&a, &b));
        let sim = address_similarity(&line("123 Main St"), &line("1234 Main St"));
        assert!(sim > 0.85, "{sim}");
        assert!(address_changed(&line("123 Main St"), &line("1234 Main St")));
        assert!(address_changed(&line("PO Box 12"), &line("PO Box 21")));
        assert!(address_changed(&line("Main St"), &line("123 Main St")));
    }

    #[test]
    fn small_misspellings_are_not_a_change() {
        assert!(!address_changed(
            &line("123 Maine St"),
            &line("123 Main St")
        ));
        assert!(!address_changed(
            &addr(Some("123 Main St"), Some("Springfeld"), Some("62701")),
            &line("123 Main St"),
        ));
        // A missing city or ZIP on one side is no information, not a difference.
        assert!(!address_changed(
            &addr(Some("123 Main St"), None, None),
            &line("123 Main St")
        ));
    }

    #[test]
    fn different_street_unit_or_zip_is_a_change() {
        assert!(address_changed(&line("123 Main St"), &line("123 Oak Ave")));
        assert!(address_changed(
            &line("123 Main St Apt 4"),
            &line("123 Main St Apt 5")
        ));
        assert!(address_changed(
            &line("123 Main St"),
            &line("123 Main St Apt 5")
        ));
        let moved = addr(Some("123 Main St"), Some("Springfield"), Some("62704"));
        assert!(address_changed(&moved, &line("123 Main St")));
        let sim = address_similarity(&moved, &line("123 Main St"));
        assert!(sim < 0.85 && sim > 0.7, "{sim}");
        // A ZIP that lost its leading zero in a spreadsheet is the same ZIP.
        let a = addr(Some("1 Elm St"), Some("Boston"), Some("2134"));
        let b = addr(Some("1 Elm St"), Some("Boston"), Some("02134"));
        assert!(!address_changed(&a, &b));
    }

    #[test]
    fn missing_lines() {
        let none = addr(None, Some("Springfield"), Some("62704"));
        let blank = addr(Some("  ,  "), None, None);
        assert!(!address_changed(&none, &line("123 Main St")));
        assert!(!address_changed(&blank, &line("123 Main St")));
        assert!(address_changed(&line("123 Main St"), &none));
        assert!(address_changed(&line("123 Main St"), &Address::default()));
        assert!(!address_changed(&Address::default(), &Address::default()));
        assert!((address_similarity(&Address::default(), &Address::default()) - 1.0).abs() < 1e-9);
        assert!(address_similarity(&line("123 Main St"), &none) < 0.5);
    }

    #[test]
    fn phones_by_last_ten_digits() {
        assert!(same_phone("(555) 123-4567", "5551234567"));
        assert!(same_phone("+1 555 123 4567", "5551234567"));
        assert!(same_phone("+1 (555) 123-4567", "555.123.4567"));
        assert!(same_phone("555-123-4567 ext. 12", "5551234567"));
        assert!(!same_phone("(555) 123-4567", "(555) 123-4568"));
        assert!(!same_phone("(555) 123-4567", "(556) 123-4567"));
        assert!(!same_phone("", ""));
        assert!(!same_phone("123", "123"));
    }

    #[test]
    fn emails_trimmed_and_case_insensitive() {
        assert!(same_email(
            " John.Smith@Example.COM ",
            "john.smith@example.com"
        ));
        assert!(!same_email(
            "john.smith@example.com",
            "john.smyth@example.com"
        ));
        assert!(!same_email("", ""));
        assert!(!same_email("  ", "  "));
    }

    #[test]
    fn address_of_contact() {
        let c = Contact {
            address_line_1: Some(" 123 Main St ".to_string()),
            city: Some("Springfield".to_string()),
            state: Some("IL".to_string()),
            zip: Some("   ".to_string()),
            email: Some("a@b.c".to_string()),
            phone: None,
        };
        assert_eq!(
            address_of(&c),
            Address {
                line1: Some("123 Main St".to_string()),
                city: Some("Springfield".to_string()),
                state: Some("IL".to_string()),
                zip: None,
            }
        );
        assert_eq!(address_of(&Contact::default()), Address::default());
    }
}
