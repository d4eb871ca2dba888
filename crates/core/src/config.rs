//! Configuration from environment variables only (12-factor).
//!
//! Every variable is read through [`EnvReader`], which collects *all* problems so start-up can
//! print one clear line per missing or malformed variable instead of failing on the first.
//! Every variable read anywhere is listed in `.env.example` at the repository root.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// One problem with one variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarProblem {
    pub var: String,
    pub problem: String,
}

/// All problems found while reading the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<VarProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problem(s)):",
            self.problems.len()
        )?;
        for p in &self.problems {
            writeln!(f, "  {}: {}", p.var, p.problem)?;
        }
        Ok(())
    }
}

/// Reads variables from the process environment or, in tests, from a map.
pub struct EnvReader {
    source: Option<HashMap<String, String>>,
    problems: Vec<VarProblem>,
}

impl EnvReader {
    /// Reads the real process environment.
    pub fn from_process() -> Self {
        Self {
            source: None,
            problems: Vec::new(),
        }
    }

    /// Reads only the given pairs (tests; never touches the process environment).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            source: Some(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            problems: Vec::new(),
        }
    }

    /// The raw value, with surrounding whitespace removed; empty counts as unset.
    pub fn raw(&self, var: &str) -> Option<String> {
        let v = match &self.source {
            Some(map) => map.get(var).cloned(),
            None => std::env::var(var).ok(),
        }?;
        let v = v.trim().to_string();
        (!v.is_empty()).then_some(v)
    }

    /// Records a problem found by the caller's own validation.
    pub fn problem(&mut self, var: &str, problem: impl Into<String>) {
        self.problems.push(VarProblem {
            var: var.to_string(),
            problem: problem.into(),
        });
    }

    /// A number in `min..=max`, or `default` when unset.
    pub fn number<T>(&mut self, var: &str, default: T, min: T, max: T) -> T
    where
        T: FromStr + PartialOrd + Copy + fmt::Display,
    {
        let Some(raw) = self.raw(var) else {
            return default;
        };
        match raw.parse::<T>() {
            Ok(v) if v >= min && v <= max => v,
            Ok(_) => {
                self.problem(var, format!("{raw:?} is out of range {min}..={max}"));
                default
            }
            Err(_) => {
                self.problem(var, format!("{raw:?} is not a number"));
                default
            }
        }
    }

    /// A text value, or `default` when unset.
    pub fn text(&self, var: &str, default: &str) -> String {
        self.raw(var).unwrap_or_else(|| default.to_string())
    }

    /// A boolean: 1/0, true/false, yes/no, on/off (any case).
    pub fn flag(&mut self, var: &str, default: bool) -> bool {
        let Some(raw) = self.raw(var) else {
            return default;
        };
        match raw.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => {
                self.problem(var, format!("{raw:?} is not a boolean (use 1 or 0)"));
                default
            }
        }
    }

    /// Ends reading: `Ok` when no variable had a problem.
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                problems: self.problems,
            })
        }
    }
}

/// The bytes of a string of hex digits (an even number of them), or `None`.
pub fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_every_problem_with_its_variable() {
        let mut env = EnvReader::from_pairs([("A", "x"), ("B", "900"), ("C", "maybe")]);
        assert_eq!(env.number::<u32>("A", 1, 0, 10), 1);
        assert_eq!(env.number::<u32>("B", 2, 0, 10), 2);
        assert!(env.flag("C", true));
        assert_eq!(env.number::<u32>("UNSET", 7, 0, 10), 7);
        let err = env.finish().err().map(|e| e.problems).unwrap_or_default();
        let vars: Vec<_> = err.iter().map(|p| p.var.as_str()).collect();
        assert_eq!(vars, ["A", "B", "C"]);
        assert!(err[1].problem.contains("out of range"));
    }

    #[test]
    fn empty_value_counts_as_unset() {
        let mut env = EnvReader::from_pairs([("A", "  ")]);
        assert_eq!(env.number::<u32>("A", 5, 0, 10), 5);
        assert!(env.finish().is_ok());
    }

    #[test]
    fn hex_digits_become_bytes() {
        assert_eq!(hex_bytes("00ff7A"), Some(vec![0, 255, 0x7a]));
        assert_eq!(hex_bytes("abc"), None);
        assert_eq!(hex_bytes("zz"), None);
        assert_eq!(hex_bytes(""), None);
    }
}
