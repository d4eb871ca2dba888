//! Name variants for donor matching: QuickBooks customers are listed as "Last, First",
//! "First Last", with or without middle initials, couples as "John & Jane Smith".

/// Suffixes kept with the surname but not treated as a name part.
const SUFFIXES: &[&str] = &["jr", "jr.", "sr", "sr.", "ii", "iii", "iv"];

/// All variants of a person's name, the name as written first, without duplicates.
///
/// "Jonelle R. Collins" gives "Jonelle R. Collins", "Jonelle Collins", "Collins, Jonelle",
/// "Collins, Jonelle R.", "J. Collins", "Collins, J.", "J. R. Collins", "Collins, J. R.".
/// "Smith, John" is read as John Smith. "John & Jane Smith" also gives "Smith, John & Jane" and
/// each person's variants.
pub fn name_variants(name: &str) -> Vec<String> {
    let written = collapse(name);
    if written.is_empty() {
        return Vec::new();
    }
    let mut out = vec![written.clone()];
    if let Some((a, b)) = split_couple(&written) {
        let b_person = Person::parse(b);
        // "John & Jane Smith": the first name alone shares the second person's surname.
        let a_person = match Person::parse(a) {
            Some(p) if p.last.is_empty() => b_person.as_ref().map(|bp| Person {
                last: bp.last.clone(),
                suffix: None,
                ..p
            }),
            other => other,
        };
        if let (Some(pa), Some(pb)) = (&a_person, &b_person) {
            if pa.last == pb.last && !pa.last.is_empty() {
                out.push(format!("{} & {} {}", pa.first, pb.first, pb.last));
                out.push(format!("{}, {} & {}", pb.last, pa.first, pb.first));
            } else {
                out.push(format!("{} & {}", pa.full(), pb.full()));
            }
        }
        for p in [a_person, b_person].into_iter().flatten() {
            out.extend(p.variants());
        }
    } else if let Some(p) = Person::parse(&written) {
        out.extend(p.variants());
    }
    dedup_case_insensitive(out)
}

/// Keeps the first of any names equal ignoring case and spacing.
pub fn dedup_case_insensitive(names: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    names
        .into_iter()
        .filter(|n| !n.trim().is_empty() && seen.insert(collapse(n).to_lowercase()))
        .collect()
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn split_couple(name: &str) -> Option<(&str, &str)> {
    if name.contains(',') {
        return None; // "Smith, John & Jane" is already a listing form
    }
    for sep in [" & ", " and ", " AND ", " And "] {
        if let Some((a, b)) = name.split_once(sep) {
            if !a.trim().is_empty() && !b.trim().is_empty() {
                return Some((a.trim(), b.trim()));
            }
        }
    }
    None
}

#[derive(Debug, Clone)]
struct Person {
    first: String,
    middles: Vec<String>,
    last: String,
    suffix: Option<String>,
}

impl Person {
    fn parse(name: &str) -> Option<Self> {
        let name = collapse(name);
        // "Last, First M." listing form.
        let ordered = match name.split_once(',') {
            Some((last, rest)) if !rest.trim().is_empty() => {
                format!("{} {}", rest.trim(), last.trim())
            }
            _ => name,
        };
        let mut tokens: Vec<String> = ordered.split(' ').map(str::to_string).collect();
        let suffix = match tokens.last() {
            Some(t) if tokens.len() > 2 && SUFFIXES.contains(&t.to_lowercase().as_str()) => {
                tokens.pop()
            }
            _ => None,
        };
        let first = tokens.first()?.clone();
        if tokens.len() == 1 {
            return Some(Self {
                first,
                middles: Vec::new(),
                last: String::new(),
                suffix,
            });
        }
        let last = tokens.pop()?;
        Some(Self {
            first,
            middles: tokens[1..].to_vec(),
            last,
            suffix,
        })
    }

    fn last_with_suffix(&self) -> String {
        match &self.suffix {
            Some(s) => format!("{} {s}", self.last),
            None => self.last.clone(),
        }
    }

    fn full(&self) -> String {
        let mut parts = vec![self.first.clone()];
        parts.extend(self.middles.iter().cloned());
        parts.push(self.last_with_suffix());
        // A one-word name has no surname: no trailing space ("Jane & A", not "Jane  & A ").
        parts.retain(|p| !p.is_empty());
        parts.join(" ")
    }

    fn variants(&self) -> Vec<String> {
        if self.last.is_empty() {
            return vec![self.first.clone()];
        }
        let last = self.last_with_suffix();
        let initial = |s: &str| {
            s.chars()
                .next()
                .map(|c| format!("{}.", c.to_uppercase()))
                .unwrap_or_default()
        };
        let fi = initial(&self.first);
        let mut v = vec![
            self.full(),
            format!("{} {last}", self.first),
            format!("{last}, {}", self.first),
        ];
        if !self.middles.is_empty() {
            let mids = self.middles.join(" ");
            let mis: Vec<String> = self.middles.iter().map(|m| initial(m)).collect();
            v.push(format!("{last}, {} {mids}", self.first));
            v.push(format!("{fi} {last}"));
            v.push(format!("{last}, {fi}"));
            v.push(format!("{fi} {} {last}", mis.join(" ")));
            v.push(format!("{last}, {fi} {}", mis.join(" ")));
        } else {
            v.push(format!("{fi} {last}"));
            v.push(format!("{last}, {fi}"));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_table() {
        let cases: &[(&str, &[&str])] = &[
            (
                "Jonelle R. Collins",
                &[
                    "Jonelle R. Collins",
                    "Jonelle Collins",
                    "Collins, Jonelle",
                    "Collins, Jonelle R.",
                    "J. Collins",
                    "Collins, J.",
                    "J. R. Collins",
                    "Collins, J. R.",
                ],
            ),
            (
                "Smith, John",
                &["Smith, John", "John Smith", "J. Smith", "Collins"],
            ),
            (
                "John & Jane Smith",
                &[
                    "John & Jane Smith",
                    "Smith, John & Jane",
                    "John Smith",
                    "Jane Smith",
                    "Smith, Jane",
                ],
            ),
            (
                "Robert Smith Jr.",
                &["Robert Smith Jr.", "Smith Jr., Robert", "R. Smith Jr."],
            ),
            ("Cher", &["Cher"]),
        ];
        for (name, expected) in cases {
            let v = name_variants(name);
            for e in *expected {
                if *e == "Collins" {
                    assert!(!v.iter().any(|x| x == e), "{name}: {v:?}");
                } else {
                    assert!(v.iter().any(|x| x == e), "{name}: missing {e:?} in {v:?}");
                }
            }
            assert_eq!(v[0], *name);
            assert_eq!(v, dedup_case_insensitive(v.clone()), "{name}: duplicates");
        }
        assert!(name_variants("  ").is_empty());
        let two = name_variants("John Smith & Mary Jones");
        for e in [
            "John Smith & Mary Jones",
            "Smith, John",
            "Jones, Mary",
            "M. Jones",
        ] {
            assert!(two.iter().any(|x| x == e), "missing {e:?} in {two:?}");
        }
    }
}
