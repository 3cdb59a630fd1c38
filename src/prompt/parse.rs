//! Reads what the model wrote, tolerantly: bullets, lower-case or undotted
//! codes, `|` / `:` / `-` separators, several codes on a line, trailing junk,
//! a `none` line, and a last line cut off by the token limit. Codes outside
//! the code set are listed as invalid (to be scored as false positives), never
//! guessed at.

use super::locate::{LocatedEvidence, Locator, MatchKind};
use super::NONE_LINE;
use crate::icd::{Code, CodeSet};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Texts that end an answer; everything from the first one on is ignored.
pub const TERMINATORS: &[&str] = &["</answer>", "<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>", "</s>"];

/// Skipped when they lead a line before its first code ("Code E11.9", "Dx I10").
const MAX_LEADING_WORDS: usize = 3;

/// What a model's answer amounts to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ParsedOutput {
    /// Accepted codes, sorted and unique.
    pub codes: Vec<Code>,
    /// Every quote, per code, in the order written (empty for the span task).
    pub evidence: Vec<LocatedEvidence>,
    /// Code-like tokens outside the code set (unique, in order): well-formed codes
    /// missing from the table normalised, malformed ones as written.
    pub invalid: Vec<String>,
    /// Quotes that could not be found in the note (all of them when no note was given).
    pub unlocated: usize,
    /// The answer contained a `none` line.
    pub said_none: bool,
    /// The answer ended without a terminator or a final line break: its last line may be cut off.
    pub unterminated: bool,
}

/// Parses a document-task answer; quotes are located in `doc_text` when given.
///
/// A cut-off last line (no terminator, no final `\n`) keeps its quotes (a
/// prefix of a quote still locates), but a code that ends the text there is
/// kept only if it is billable: a billable code is a leaf, so it cannot be the
/// beginning of a longer code, while `E11` may be an unfinished `E11.9`.
pub fn parse_output(raw: &str, doc_text: Option<&str>, codes: &CodeSet) -> ParsedOutput {
    let mut out = ParsedOutput::default();
    let (body, terminated) = cut_at_terminator(raw);
    out.unterminated = !terminated && !body.ends_with('\n');
    let lines: Vec<&str> = body.lines().collect();
    let mut accepted: BTreeSet<Code> = BTreeSet::new();
    let mut invalid: Vec<String> = Vec::new();
    let mut quotes: Vec<(Code, String)> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let open = out.unterminated && i + 1 == lines.len();
        let parsed = parse_line(line);
        out.said_none |= parsed.none;
        let mut line_codes = Vec::new();
        for (k, token) in parsed.codes.iter().enumerate() {
            let maybe_unfinished = open && parsed.ends_with_code && k + 1 == parsed.codes.len();
            match codes.resolve(token).ok().and_then(|c| codes.get(&c)) {
                Some(entry) if !maybe_unfinished || entry.billable => line_codes.push(entry.code.clone()),
                Some(_) => {}
                None if maybe_unfinished => {}
                None => {
                    let form = codes.resolve(token).map_or_else(|_| token.clone(), |c| c.to_string());
                    if !invalid.contains(&form) {
                        invalid.push(form);
                    }
                }
            }
        }
        for code in &line_codes {
            accepted.insert(code.clone());
            quotes.extend(parsed.quotes.iter().map(|q| (code.clone(), q.clone())));
        }
    }
    let mut locator = doc_text.map(Locator::new);
    for (code, quote) in quotes {
        let found = match locator.as_mut() {
            Some(l) => l.locate(&code, &quote),
            None => LocatedEvidence { code, text: quote, start: None, end: None, how: MatchKind::NotFound },
        };
        out.unlocated += usize::from(found.how == MatchKind::NotFound);
        out.evidence.push(found);
    }
    out.codes = accepted.into_iter().collect();
    out.invalid = invalid;
    out
}

/// Parses a span-task answer: the codes only (quotes, if any, are ignored).
pub fn parse_span_output(raw: &str, codes: &CodeSet) -> ParsedOutput {
    let mut out = parse_output(raw, None, codes);
    out.evidence.clear();
    out.unlocated = 0;
    out
}

/// The answer before the first terminator, and whether there was one. A
/// leading `<answer>` (the plain template's opener, echoed) is dropped.
fn cut_at_terminator(raw: &str) -> (&str, bool) {
    let cut = TERMINATORS.iter().filter_map(|t| raw.find(t)).min();
    let body = cut.and_then(|c| raw.get(..c)).unwrap_or(raw);
    let body = body.trim_start().strip_prefix("<answer>").unwrap_or(body);
    (body, cut.is_some())
}

/// One answer line taken apart.
#[derive(Debug, Default, PartialEq)]
struct Line {
    /// Code-like tokens, as written (trimmed of surrounding punctuation).
    codes: Vec<String>,
    quotes: Vec<String>,
    none: bool,
    /// The last code token is the last thing on the line (nothing after it, not even a space).
    ends_with_code: bool,
}

fn parse_line(line: &str) -> Line {
    let mut rest = strip_bullet(line.trim_start());
    if is_none_line(rest) {
        return Line { none: true, ..Line::default() };
    }
    // Evidence first: `quote ; quote => CODE`. The last arrow splits the line,
    // so quotes may hold any separator the code-first layout uses.
    if let Some((at, len)) = last_arrow(rest) {
        let (quotes, code_part) = (&rest[..at], &rest[at + len..]);
        let (codes, code_is_last) = code_tokens(code_part);
        if codes.is_empty() {
            return Line::default();
        }
        let ends_with_code =
            code_is_last && code_part.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '.');
        return Line {
            codes,
            quotes: split_quotes(quotes),
            none: false,
            ends_with_code,
        };
    }
    // A line may lead with a label ("Codes: E11.9, I10"): retry after each separator until codes show up.
    loop {
        let (head, tail) = match earliest_separator(rest) {
            Some((at, len)) => (&rest[..at], Some(&rest[at + len..])),
            None => (rest, None),
        };
        let (codes, code_is_last) = code_tokens(head);
        if codes.is_empty() {
            match tail {
                Some(t) => {
                    rest = t;
                    continue;
                }
                None => return Line::default(),
            }
        }
        let quotes = tail.map(split_quotes).unwrap_or_default();
        let ends_with_code = tail.is_none() && code_is_last && head.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '.');
        return Line { codes, quotes, none: false, ends_with_code };
    }
}

/// Drops a list marker: `-`, `*`, `•`, `+`, `1.`, `1)`, `(1)`.
fn strip_bullet(s: &str) -> &str {
    let s = s.trim_start();
    for marker in ["-", "*", "•", "+", "·", "–"] {
        if let Some(r) = s.strip_prefix(marker) {
            if r.starts_with(char::is_whitespace) {
                return r.trim_start();
            }
        }
    }
    let unparen = s.strip_prefix('(').unwrap_or(s);
    let digits = unparen.len() - unparen.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits > 0 {
        let after = &unparen[digits..];
        if let Some(r) = after.strip_prefix('.').or_else(|| after.strip_prefix(')')) {
            if r.is_empty() || r.starts_with(char::is_whitespace) {
                return r.trim_start();
            }
        }
    }
    s
}

/// `none`, `None.`, `none (nothing codable)`.
fn is_none_line(s: &str) -> bool {
    let first = s.split(|c: char| !c.is_alphanumeric()).find(|w| !w.is_empty()).unwrap_or("");
    first.eq_ignore_ascii_case(NONE_LINE) && s.trim_start().to_ascii_lowercase().starts_with(NONE_LINE)
}

/// Byte position and length of the last `=>` (or `→`) on the line.
fn last_arrow(s: &str) -> Option<(usize, usize)> {
    ["=>", "→"]
        .iter()
        .filter_map(|a| s.rfind(a).map(|at| (at, a.len())))
        .max_by_key(|(at, _)| *at)
}

/// Byte position and length of the first code/evidence separator: `|`, `:`, or a dash.
/// Codes contain none of these, so the first one always ends the code part.
fn earliest_separator(s: &str) -> Option<(usize, usize)> {
    s.char_indices().find(|(_, c)| matches!(c, '|' | ':' | '：' | '-' | '–' | '—')).map(|(i, c)| (i, c.len_utf8()))
}

/// The code-like tokens of a line's code part, and whether the last of them ends it.
/// Up to [`MAX_LEADING_WORDS`] plain words may precede the first code; the
/// first token after a code that is neither a code nor a conjunction ends the list.
fn code_tokens(head: &str) -> (Vec<String>, bool) {
    let mut codes = Vec::new();
    let mut leading = 0;
    let mut last_is_code = false;
    for raw in head.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '/' | '&' | '+')) {
        let token = raw.trim_matches(|c: char| !c.is_alphanumeric());
        if token.is_empty() {
            continue;
        }
        if looks_like_code(token) {
            codes.push(token.to_string());
            last_is_code = true;
            continue;
        }
        last_is_code = false;
        let is_word = token.chars().all(char::is_alphabetic);
        if codes.is_empty() && is_word && leading < MAX_LEADING_WORDS {
            leading += 1;
            continue;
        }
        if !codes.is_empty() && matches!(token.to_ascii_lowercase().as_str(), "and" | "or") {
            continue;
        }
        break;
    }
    (codes, last_is_code)
}

/// A letter, two letters or digits (at least one digit), then letters/digits/dots:
/// "E11.9", "e119", "C7A", "E11.99999" (malformed, so invalid) — not "NOS" or "mg".
fn looks_like_code(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() >= 3
        && b[0].is_ascii_alphabetic()
        && b[1].is_ascii_alphanumeric()
        && b[2].is_ascii_alphanumeric()
        && (b[1].is_ascii_digit() || b[2].is_ascii_digit())
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'.')
}

/// The quotes after the separator: split on `;`, trimmed of spaces and enclosing quote marks.
fn split_quotes(tail: &str) -> Vec<String> {
    tail.split(';')
        .map(|q| {
            let q = q.trim();
            let unquoted = q
                .strip_prefix(['"', '\'', '“', '‘', '`'])
                .and_then(|r| r.strip_suffix(['"', '\'', '”', '’', '`']))
                .unwrap_or(q);
            unquoted.trim().to_string()
        })
        .filter(|q| !q.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bullets_are_stripped_but_codes_are_not() {
        assert_eq!(strip_bullet("- E11.9"), "E11.9");
        assert_eq!(strip_bullet("• E11.9"), "E11.9");
        assert_eq!(strip_bullet("12) E11.9"), "E11.9");
        assert_eq!(strip_bullet("(3) E11.9"), "E11.9");
        assert_eq!(strip_bullet("1. E11.9"), "E11.9");
        assert_eq!(strip_bullet("E11.9"), "E11.9");
        assert_eq!(strip_bullet("-E11.9"), "-E11.9");
    }

    #[test]
    fn labels_before_codes_are_skipped() {
        let l = parse_line("Codes: E11.9, I10");
        assert_eq!(l.codes, ["E11.9", "I10"]);
        let l = parse_line("ICD-10-CM: e119 | t2dm");
        assert_eq!((l.codes, l.quotes), (vec!["e119".to_string()], vec!["t2dm".to_string()]));
        assert_eq!(parse_line("Diagnosis: hypertension"), Line::default());
    }

    #[test]
    fn evidence_first_lines_split_at_the_last_arrow() {
        let l = parse_line("non-ST elevation MI: resolved ; NSTEMI => I21.4");
        assert_eq!(l.codes, ["I21.4"]);
        assert_eq!(l.quotes, ["non-ST elevation MI: resolved", "NSTEMI"]);
        assert!(l.ends_with_code);
        let l = parse_line("\"T2DM\" → e11.9 and I10 (chronic)");
        assert_eq!(
            (l.codes, l.quotes, l.ends_with_code),
            (
                vec!["e11.9".to_string(), "I10".to_string()],
                vec!["T2DM".to_string()],
                false
            )
        );
        assert_eq!(parse_line("=> E11.9").quotes, Vec::<String>::new());
        assert_eq!(parse_line("hypertension =>"), Line::default());
    }

    #[test]
    fn code_shape_guess() {
        for yes in ["E11.9", "e119", "C7A", "M1A.0", "E11.99999", "Z99.999"] {
            assert!(looks_like_code(yes), "{yes}");
        }
        for no in ["NOS", "mg", "type", "2", "11.9", "E.1"] {
            assert!(!looks_like_code(no), "{no}");
        }
    }

    #[test]
    fn none_lines() {
        assert!(is_none_line("none"));
        assert!(is_none_line("None."));
        assert!(is_none_line("none (nothing codable)"));
        assert!(!is_none_line("nonessential"));
        assert!(!is_none_line("E11.9 | none"));
    }
}
