//! Maps quoted evidence back to character offsets in the note.
//!
//! Three passes, strictest first: the exact text, then ignoring case, then a
//! normalised form (lower case, punctuation and whitespace runs as one space,
//! apostrophes dropped). Each pass searches a folded copy of the note that
//! remembers, for every folded character, the original character it came
//! from, so offsets always point into the original text.

use crate::icd::Code;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// How a quote was found in the note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    Exact,
    CaseInsensitive,
    /// Matched after folding case, punctuation and whitespace; the offsets
    /// cover the original text from the first to the last matched character.
    Normalised,
    /// Not in the note (or no note was given).
    NotFound,
}

/// One quote the model gave for one code, with where it is in the note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocatedEvidence {
    pub code: Code,
    /// The quote as the model wrote it.
    pub text: String,
    /// Character offset of the first character in the note.
    pub start: Option<usize>,
    /// Character offset one past the last character.
    pub end: Option<usize>,
    pub how: MatchKind,
}

#[derive(Clone, Copy)]
enum Fold {
    Exact,
    Lower,
    Normalised,
}

/// Text folded character by character; `origin[i]` is the original character index of `chars[i]`.
struct Folded {
    chars: Vec<char>,
    origin: Vec<usize>,
}

fn fold(text: &str, how: Fold) -> Folded {
    let mut f = Folded { chars: Vec::with_capacity(text.len()), origin: Vec::with_capacity(text.len()) };
    for (i, c) in text.chars().enumerate() {
        match how {
            Fold::Exact => {
                f.chars.push(c);
                f.origin.push(i);
            }
            Fold::Lower => {
                for l in c.to_lowercase() {
                    f.chars.push(l);
                    f.origin.push(i);
                }
            }
            Fold::Normalised => {
                if matches!(c, '\'' | '\u{2019}' | '\u{2018}') {
                    continue; // "Crohn's" and "Crohns" read the same
                }
                if c.is_alphanumeric() {
                    for l in c.to_lowercase() {
                        f.chars.push(l);
                        f.origin.push(i);
                    }
                } else if f.chars.last().is_some_and(|&p| p != ' ') {
                    f.chars.push(' ');
                    f.origin.push(i);
                }
            }
        }
    }
    if matches!(how, Fold::Normalised) && f.chars.last() == Some(&' ') {
        f.chars.pop();
        f.origin.pop();
    }
    f
}

/// Finds quotes in one note, remembering which occurrences each code already used.
pub(crate) struct Locator {
    passes: Vec<(MatchKind, Fold, Folded)>,
    used: BTreeMap<Code, BTreeSet<(usize, usize)>>,
}

impl Locator {
    pub(crate) fn new(note: &str) -> Locator {
        let passes = [(MatchKind::Exact, Fold::Exact), (MatchKind::CaseInsensitive, Fold::Lower), (MatchKind::Normalised, Fold::Normalised)]
            .into_iter()
            .map(|(kind, how)| (kind, how, fold(note, how)))
            .collect();
        Locator { passes, used: BTreeMap::new() }
    }

    /// Locates `quote` for `code`: the strictest pass that finds it, and within
    /// it the first occurrence this code has not used yet (else the first), so a
    /// quote repeated for one code maps to successive mentions.
    pub(crate) fn locate(&mut self, code: &Code, quote: &str) -> LocatedEvidence {
        let not_found = LocatedEvidence { code: code.clone(), text: quote.to_string(), start: None, end: None, how: MatchKind::NotFound };
        let used = self.used.entry(code.clone()).or_default();
        for (kind, how, hay) in &self.passes {
            let needle = fold(quote, *how).chars;
            if needle.is_empty() || needle.iter().all(|c| c.is_whitespace()) {
                return not_found;
            }
            let spans: Vec<(usize, usize)> = occurrences(&hay.chars, &needle)
                .map(|p| (hay.origin[p], hay.origin[p + needle.len() - 1] + 1))
                .collect();
            let Some(&first) = spans.first() else { continue };
            let pick = spans.iter().copied().find(|s| !used.contains(s)).unwrap_or(first);
            used.insert(pick);
            return LocatedEvidence { start: Some(pick.0), end: Some(pick.1), how: *kind, ..not_found };
        }
        not_found
    }
}

/// Start positions of `needle` in `hay` (non-empty needle), left to right.
fn occurrences<'a>(hay: &'a [char], needle: &'a [char]) -> impl Iterator<Item = usize> + 'a {
    hay.windows(needle.len()).enumerate().filter(move |(_, w)| *w == needle).map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::slice_chars;

    fn code() -> Code {
        Code::parse("I10").expect("test code")
    }

    #[test]
    fn passes_go_from_exact_to_normalised() {
        let note = "Dx: Essential  HTN, (primary) hypertension.";
        let mut l = Locator::new(note);
        let e = l.locate(&code(), "primary) hypertension");
        assert_eq!((e.start, e.end, e.how), (Some(21), Some(42), MatchKind::Exact));
        let e = l.locate(&code(), "essential  htn");
        assert_eq!((e.start, e.end, e.how), (Some(4), Some(18), MatchKind::CaseInsensitive));
        let e = l.locate(&code(), "essential htn primary hypertension");
        assert_eq!(e.how, MatchKind::Normalised);
        assert_eq!(slice_chars(note, e.start.unwrap_or(0), e.end.unwrap_or(0)), Some("Essential  HTN, (primary) hypertension"));
        assert_eq!(l.locate(&code(), "gout").how, MatchKind::NotFound);
        assert_eq!(l.locate(&code(), " ... ").how, MatchKind::NotFound);
    }

    #[test]
    fn repeated_quotes_take_successive_occurrences_per_code() {
        let note = "gout. gout again.";
        let mut l = Locator::new(note);
        assert_eq!(l.locate(&code(), "gout").start, Some(0));
        assert_eq!(l.locate(&code(), "gout").start, Some(6));
        assert_eq!(l.locate(&code(), "gout").start, Some(0));
        let other = Code::parse("M10.9").expect("test code");
        assert_eq!(l.locate(&other, "gout").start, Some(0));
    }

    #[test]
    fn lowercase_that_changes_length_keeps_offsets_in_characters() {
        // 'İ' lowercases to two characters; offsets must still count original characters.
        let note = "İİ Crohn’s disease";
        let mut l = Locator::new(note);
        let e = l.locate(&code(), "CROHN’S");
        assert_eq!((e.start, e.end, e.how), (Some(3), Some(10), MatchKind::CaseInsensitive));
        let e = l.locate(&code(), "crohns disease");
        assert_eq!((e.start, e.end, e.how), (Some(3), Some(18), MatchKind::Normalised));
    }
}
