//! Problems with an input, collected before anything is touched.

use std::fmt;

use serde::Serialize;

/// What kind of problem a [`Problem`] is, for callers that act on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ProblemKind {
    /// A required value is absent.
    Missing,
    /// A value is present but not acceptable (syntax, range, rule).
    Invalid,
    /// Two values contradict each other, or one is given twice.
    Conflict,
    /// A file or secret it names cannot be read.
    Unreadable,
    /// A host it names cannot be resolved or reached.
    Unreachable,
}

/// One problem with an input: where it is, what kind, and what is wrong.
///
/// `key` names the place in the caller's terms: `members[2].priority` from
/// a concern crate, `[mongo].members[2].priority` once `ha-config` has
/// prefixed it with its section, `--member` for a flag. The message never
/// quotes a secret's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Where: a key path, a flag or a file; may be empty.
    pub key: String,
    /// What kind of problem.
    pub kind: ProblemKind,
    /// What is wrong and, where it helps, what to do.
    pub message: String,
}

impl Problem {
    /// A problem at `key`.
    pub fn new(key: impl Into<String>, kind: ProblemKind, message: impl Into<String>) -> Problem {
        Problem {
            key: key.into(),
            kind,
            message: message.into(),
        }
    }

    /// `key` is required and absent.
    pub fn missing(key: impl Into<String>) -> Problem {
        Problem::new(key, ProblemKind::Missing, "is missing")
    }

    /// `key` holds an unacceptable value.
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem::new(key, ProblemKind::Invalid, message)
    }

    /// The same problem, its key placed under `prefix`: a concern crate's
    /// `members[2].priority` becomes `[mongo].members[2].priority`.
    pub fn under(mut self, prefix: &str) -> Problem {
        self.key = match (prefix.is_empty(), self.key.is_empty()) {
            (true, _) => self.key,
            (false, true) => prefix.to_owned(),
            (false, false) if self.key.starts_with('[') => format!("{prefix}{}", self.key),
            (false, false) => format!("{prefix}.{}", self.key),
        };
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.key.is_empty(), self.message.starts_with(':')) {
            (true, _) => f.write_str(self.message.trim_start_matches(": ")),
            (false, true) => write!(f, "{}{}", self.key, self.message),
            (false, false) => write!(f, "{} {}", self.key, self.message),
        }
    }
}

/// Every problem found in an input. An error type of its own: a command
/// that returns it has touched nothing (exit 2 in the binaries).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// No problems yet.
    pub fn new() -> Problems {
        Problems(Vec::new())
    }

    /// One problem.
    pub fn one(problem: Problem) -> Problems {
        Problems(vec![problem])
    }

    /// Records a problem.
    pub fn push(&mut self, problem: Problem) {
        self.0.push(problem);
    }

    /// Records several problems.
    pub fn extend(&mut self, problems: impl IntoIterator<Item = Problem>) {
        self.0.extend(problems);
    }

    /// Whether none was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many were recorded.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The problems, in the order found.
    pub fn iter(&self) -> std::slice::Iter<'_, Problem> {
        self.0.iter()
    }

    /// `Ok(value)` if no problem was recorded, else every problem.
    pub fn finish<T>(self, value: T) -> Result<T, Problems> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl From<Problem> for Problems {
    fn from(problem: Problem) -> Problems {
        Problems::one(problem)
    }
}

impl IntoIterator for Problems {
    type Item = Problem;
    type IntoIter = std::vec::IntoIter<Problem>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Problems {
    type Item = &'a Problem;
    type IntoIter = std::slice::Iter<'a, Problem>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl FromIterator<Problem> for Problems {
    fn from_iter<I: IntoIterator<Item = Problem>>(iter: I) -> Problems {
        Problems(iter.into_iter().collect())
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [] => f.write_str("no problems"),
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} problems in the configuration:", many.len())?;
                for problem in many {
                    write!(f, "\n  - {problem}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Problems {}
