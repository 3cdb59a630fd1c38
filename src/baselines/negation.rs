//! Cues that say the patient does not have a mentioned condition now (negated,
//! family history, ruled out, resolved), and their scope: the sentence of the
//! mention. Shared by the matching baselines, so they skip the same mentions.

use crate::text::Token;
use std::ops::Range;

/// Cues before a mention (same sentence) that mean the patient does not have it now.
pub const PRE_CUES: &[&str] = &[
    "no", "not", "denies", "denied", "negative for", "no evidence of", "without evidence of", "free of",
    "family history of", "family history", "father", "mother", "sister", "brother", "ruled out",
    "rule out", "r/o",
];
/// Cues after a mention (same sentence).
pub const POST_CUES: &[&str] = &["ruled out", "was negative", "resolved", "in the mother", "in the father", "unlikely"];

/// Whether a cue sits in the sentence of tokens `first..=last`: a pre-cue before `first` or a
/// post-cue after `last`. A cue is its words in a row; they are split on whitespace only, so
/// "r/o" (one word) never matches the tokens of "R/O", which `tokenize` splits at the slash.
pub fn negated(tokens: &[Token], first: usize, last: usize, bounds: &[usize]) -> bool {
    let s = sentence(tokens, first, last, bounds);
    has_cue(&tokens[s.start..first], PRE_CUES) || has_cue(&tokens[last + 1..s.end], POST_CUES)
}

/// As [`negated`], and a cue inside `first..=last` counts too: a pre-cue ending before `last`
/// or a post-cue starting after `first`. For matchers whose span is not an exact term, so it
/// can take in the cue that scopes it ("No evidence of pneumonia" as one fuzzy span).
pub fn negated_within(tokens: &[Token], first: usize, last: usize, bounds: &[usize]) -> bool {
    let s = sentence(tokens, first, last, bounds);
    has_cue(&tokens[s.start..last], PRE_CUES) || has_cue(&tokens[first + 1..s.end], POST_CUES)
}

/// Whether the words hold a cue of either list ("Tuberculosis ..., not elsewhere classified").
pub fn contains_cue(words: &[&str]) -> bool {
    [PRE_CUES, POST_CUES].iter().any(|cues| cues.iter().any(|cue| {
        let cue: Vec<&str> = cue.split_whitespace().collect();
        words.windows(cue.len()).any(|w| w == cue.as_slice())
    }))
}

/// The tokens of the sentence(s) holding tokens `first..=last`, as an index range.
fn sentence(tokens: &[Token], first: usize, last: usize, bounds: &[usize]) -> Range<usize> {
    let start = match bounds.partition_point(|&b| b < tokens[first].start) {
        0 => 0,
        k => bounds[k - 1] + 1,
    };
    let end = bounds[bounds.partition_point(|&b| b < tokens[last].end)];
    let lo = first - tokens[..first].iter().rev().take_while(|t| t.start >= start).count();
    let hi = last + 1 + tokens[last + 1..].iter().take_while(|t| t.end <= end).count();
    lo..hi
}

fn has_cue(window: &[Token], cues: &[&str]) -> bool {
    cues.iter().any(|cue| {
        let cue: Vec<&str> = cue.split_whitespace().collect();
        window.windows(cue.len()).any(|w| w.iter().zip(&cue).all(|(t, c)| t.word == *c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::{sentence_bounds, tokenize};

    /// Tokens, bounds, and the index of the first token spelled `word`.
    fn at(text: &str, word: &str) -> (Vec<Token>, Vec<usize>, usize) {
        let tokens = tokenize(text);
        let i = tokens.iter().position(|t| t.word == word).unwrap();
        (tokens, sentence_bounds(text), i)
    }

    #[test]
    fn cues_scope_their_sentence_only() {
        let (t, b, i) = at("No chest pain. Pneumonia on the left.", "pneumonia");
        assert!(!negated(&t, i, i, &b));
        let (t, b, i) = at("Chest pain; family history of pneumonia.", "pneumonia");
        assert!(negated(&t, i, i, &b));
        let (t, b, i) = at("Pneumonia was ruled out. Stable.", "pneumonia");
        assert!(negated(&t, i, i, &b));
        // A cue after the mention is not a pre-cue.
        let (t, b, i) = at("Pneumonia, no fever.", "pneumonia");
        assert!(!negated(&t, i, i, &b));
    }

    #[test]
    fn within_also_sees_cues_inside_the_span() {
        let (t, b, _) = at("No evidence of pneumonia.", "no");
        let last = t.len() - 1;
        assert!(!negated(&t, 0, last, &b), "nothing outside the whole sentence");
        assert!(negated_within(&t, 0, last, &b));
        // A cue word as the span's last word scopes nothing after it.
        let (t, b, i) = at("Pneumonia, no fever.", "no");
        assert!(!negated_within(&t, 0, i, &b));
    }

    #[test]
    fn cue_words_are_found_in_terms() {
        assert!(contains_cue(&["retrovirus", "infections", "not", "elsewhere", "classified"]));
        assert!(contains_cue(&["family", "history", "of", "diabetes"]));
        assert!(!contains_cue(&["nodular", "goiter"]));
    }
}
