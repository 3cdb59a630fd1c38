//! Cutting a note into windows a prompt can hold: on section, sentence and word boundaries,
//! overlapping, covering every character.

use crate::data::slice_chars;
use crate::model::tokenizer::TextTokenizer;
use crate::text::sentence_bounds;
use serde::{Deserialize, Serialize};

/// A stretch of a document, in character offsets `[start_char, end_char)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Window {
    pub start_char: usize,
    pub end_char: usize,
}

impl Window {
    /// The window's text in `doc_text` (`None` when out of range).
    pub fn text<'a>(&self, doc_text: &'a str) -> Option<&'a str> {
        slice_chars(doc_text, self.start_char, self.end_char)
    }
}

/// Splits `text` into windows of at most `chunk_tokens` tokens (as `tok`
/// encodes the window text, without BOS) that cover it, each next window
/// starting at most `overlap_tokens` tokens before the previous one ended.
///
/// A window ends, in order of preference: at a blank-line section break (if
/// that keeps the window at least half full), at the farthest sentence end
/// (`.`, `!`, `?`, `;` or a line break, then whitespace), at the farthest word
/// boundary (a sentence too long for one window). Only a single word longer
/// than the budget is cut inside. The overlap starts at a sentence start where
/// one lies in it, else at a word. Windows start at a non-space character (the
/// first may start on space) and carry their trailing whitespace, so together
/// they cover every character. `overlap_tokens` is capped at half the budget
/// so every window advances. Empty or short text gives one window.
pub fn windows(text: &str, tok: &TextTokenizer, chunk_tokens: usize, overlap_tokens: usize) -> Vec<Window> {
    windows_counted(text, tok, chunk_tokens, overlap_tokens).0
}

/// [`windows`], with the token count of the whole text, which splitting measures first.
pub fn windows_counted(text: &str, tok: &TextTokenizer, chunk_tokens: usize, overlap_tokens: usize) -> (Vec<Window>, usize) {
    let budget = chunk_tokens.max(1);
    let overlap = overlap_tokens.min(budget / 2);
    let byte_at: Vec<usize> = text.char_indices().map(|(i, _)| i).chain(std::iter::once(text.len())).collect();
    let n = byte_at.len() - 1;
    let tokens = |s: usize, e: usize| count_tokens(tok, text.get(byte_at[s]..byte_at[e]).unwrap_or(""));
    let total = tokens(0, n);
    if total <= budget {
        return (vec![Window { start_char: 0, end_char: n }], total);
    }
    let breaks = breaks(text);
    let mut out = Vec::new();
    let mut start = 0;
    let mut prev_end = 0;
    loop {
        // Without room past the previous end (a huge word after the overlap), drop the overlap.
        let end = match choose_end(&breaks, start, prev_end, budget, &tokens) {
            Some(e) => e,
            None => {
                start = prev_end;
                choose_end(&breaks, start, start, budget, &tokens).unwrap_or_else(|| cut_word(start, n, budget, &tokens))
            }
        };
        out.push(Window { start_char: start, end_char: end });
        if end >= n {
            return (out, total);
        }
        start = choose_start(&breaks, start, end, overlap, &tokens);
        prev_end = end;
    }
}

/// Token count of `text`; where the tokenizer fails, its byte length (an upper bound for byte-level vocabularies).
pub fn count_tokens(tok: &TextTokenizer, text: &str) -> usize {
    tok.encode(text, false).map(|ids| ids.len()).unwrap_or(text.len())
}

/// How strongly a position separates text: where a window may end (and the next begin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Break {
    Word,
    Sentence,
    Section,
}

/// Every position where a non-space character follows whitespace, with its
/// strength, plus the end of the text (the strongest break), ascending.
fn breaks(text: &str) -> Vec<(usize, Break)> {
    let chars: Vec<char> = text.chars().collect();
    let mut ends = vec![false; chars.len() + 1];
    for b in sentence_bounds(text) {
        if let Some(e) = ends.get_mut(b) {
            *e = true;
        }
    }
    let mut out = Vec::new();
    for i in 1..chars.len() {
        if chars[i].is_whitespace() || !chars[i - 1].is_whitespace() {
            continue;
        }
        let mut run = i;
        while run > 0 && chars[run - 1].is_whitespace() {
            run -= 1;
        }
        let newlines = chars[run..i].iter().filter(|c| **c == '\n').count();
        // The character before the space, looking through closing quotes and brackets (`done.)`).
        let mut before = run;
        while before > 0 && matches!(chars[before - 1], '"' | '\'' | ')' | ']' | '”' | '’') {
            before -= 1;
        }
        let sentence = newlines > 0 || (before > 0 && ends[before - 1]);
        let strength = if newlines >= 2 {
            Break::Section
        } else if sentence {
            Break::Sentence
        } else {
            Break::Word
        };
        out.push((i, strength));
    }
    out.push((chars.len(), Break::Section));
    out
}

/// The smallest index in `lo..hi` where `pred` turns true (`pred` false then true); `hi` when never.
fn first_true(mut lo: usize, mut hi: usize, pred: impl Fn(usize) -> bool) -> usize {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// [`first_true`] probing `lo`, `lo+1`, `lo+3`, `lo+7`, ... first, so the cost
/// follows the distance to the answer rather than the length of the range
/// (a window's end in a long note: each probe encodes the text up to it).
fn first_true_near(lo: usize, hi: usize, pred: impl Fn(usize) -> bool) -> usize {
    let mut from = lo;
    let mut step = 1usize;
    while from < hi {
        let probe = from.saturating_add(step - 1).min(hi - 1);
        if pred(probe) {
            return first_true(from, probe, &pred);
        }
        from = probe + 1;
        step = step.saturating_mul(2);
    }
    hi
}

/// Where the window from `start` ends: a break past `after` within budget, by
/// the preference [`windows`] documents; `None` when no break past `after` fits.
fn choose_end(breaks: &[(usize, Break)], start: usize, after: usize, budget: usize, tokens: &impl Fn(usize, usize) -> usize) -> Option<usize> {
    let lo = breaks.partition_point(|(at, _)| *at <= after.max(start));
    let fits_end = first_true_near(lo, breaks.len(), |k| tokens(start, breaks[k].0) > budget);
    let last = fits_end.checked_sub(1).filter(|k| *k >= lo)?;
    let half = first_true(lo, last, |k| tokens(start, breaks[k].0) * 2 >= budget);
    let farthest = |from: usize, strength: Break| (from..=last).rev().find(|k| breaks[*k].1 >= strength);
    let k = farthest(half, Break::Section).or_else(|| farthest(lo, Break::Sentence)).unwrap_or(last);
    Some(breaks[k].0)
}

/// The end of a window holding one word longer than the budget: as many characters as fit (at least one).
fn cut_word(start: usize, n: usize, budget: usize, tokens: &impl Fn(usize, usize) -> usize) -> usize {
    let over = first_true_near(start + 1, n + 1, |e| tokens(start, e) > budget);
    (over - 1).max(start + 1).min(n)
}

/// Where the window after `[start, end)` begins: the earliest break in
/// `(start, end]` whose text up to `end` fits in `overlap` tokens, preferring a
/// sentence start; `end` itself when nothing fits.
fn choose_start(breaks: &[(usize, Break)], start: usize, end: usize, overlap: usize, tokens: &impl Fn(usize, usize) -> usize) -> usize {
    if overlap == 0 {
        return end;
    }
    let lo = breaks.partition_point(|(at, _)| *at <= start);
    let hi = breaks.partition_point(|(at, _)| *at < end);
    let first = first_true(lo, hi, |k| tokens(breaks[k].0, end) <= overlap);
    (first..hi).find(|k| breaks[*k].1 >= Break::Sentence).or((first < hi).then_some(first)).map_or(end, |k| breaks[k].0)
}
