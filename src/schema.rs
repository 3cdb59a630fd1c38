//! Problems in an experiment file, located by line and column: the checker that every
//! section's validation (the experiment's own, each data source's) writes to, so that one
//! run of the checks reports every problem at once, in file order.

use std::path::Path;

/// One thing wrong with an experiment file, located where possible.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Dotted key the problem is about (`train.lr`), when known.
    pub key: Option<String>,
    pub message: String,
}


/// The 1-based line and column (in characters) of a byte offset into `text`: where a
/// TOML error or a located key points, for `file:line:col` messages.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    // A span may end inside a multi-byte character; count up to the character's start.
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}


/// Finds the line and column of a key path such as `["baselines", "0", "min_words"]`:
/// the deepest part of the path that exists in the file.
pub fn locate(text: &str, path: &[&str]) -> (Option<usize>, Option<usize>) {
    locate_in(text, path).0
}

/// Whether the file sets the whole dotted key (rather than leaving it to its default).
pub fn is_set(text: &str, key: &str) -> bool {
    locate_in(text, &key.split('.').collect::<Vec<_>>()).1
}

/// [`locate`], and whether every part of the path was found.
fn locate_in(text: &str, path: &[&str]) -> ((Option<usize>, Option<usize>), bool) {
    let Ok(doc) = toml_edit::Document::parse(text) else { return ((None, None), false) };
    let mut item: &toml_edit::Item = doc.as_item();
    let mut span = None;
    let mut found = 0;
    for part in path {
        let next = match part.parse::<usize>() {
            Ok(i) => item.get(i),
            Err(_) => item.get(*part),
        };
        let Some(next) = next else { break };
        span = next.span().or(span);
        item = next;
        found += 1;
    }
    let at = match span {
        Some(s) => {
            let (l, c) = line_col(text, s.start);
            (Some(l), Some(c))
        }
        None => (None, None),
    };
    (at, found == path.len())
}


pub struct Checker<'a> {
    pub text: &'a str,
    pub problems: Vec<Problem>,
    /// Whether data files must exist (false when planning without the data).
    pub check_inputs: bool,
}

impl Checker<'_> {
    pub fn fail(&mut self, key: &str, message: impl Into<String>) {
        self.fail_at(key, key, message);
    }

    /// A problem about `key`, located at `at` (where the file says what causes it).
    pub fn fail_at(&mut self, key: &str, at: &str, message: impl Into<String>) {
        let parts: Vec<&str> = at.split('.').collect();
        let (line, column) = locate(self.text, &parts);
        self.problems.push(Problem { line, column, key: Some(key.to_string()), message: message.into() });
    }

    /// A problem about `key`, located at the first of `candidates` the file sets (else at `key`):
    /// a limit broken by several settings points at one the user wrote.
    pub fn fail_at_set(&mut self, key: &str, candidates: &[&str], message: impl Into<String>) {
        let at = candidates.iter().copied().find(|k| is_set(self.text, k)).unwrap_or(key);
        self.fail_at(key, at, message);
    }

    pub fn non_negative(&mut self, key: &str, v: f64) {
        if !(v.is_finite() && v >= 0.0) {
            self.fail(key, format!("must be a finite number >= 0, got {v}"));
        }
    }

    pub fn range_f(&mut self, key: &str, v: f64, lo: f64, hi: f64) {
        if !(v.is_finite() && v >= lo && v <= hi) {
            self.fail(key, format!("must be between {lo} and {hi}, got {v}"));
        }
    }

    pub fn positive(&mut self, key: &str, v: usize) {
        if v == 0 {
            self.fail(key, "must be at least 1");
        }
    }

    pub fn existing_file(&mut self, key: &str, base: &Path, file: &Path) {
        let full = base.join(file);
        if self.check_inputs && !full.is_file() {
            self.fail(key, format!("file {} not found", full.display()));
        }
    }

    pub fn range_pair(&mut self, key: &str, r: [usize; 2]) {
        if r[0] > r[1] {
            self.fail(key, format!("is a [min, max] range but min {} > max {}", r[0], r[1]));
        }
    }
}
