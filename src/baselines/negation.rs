//! Cues that say the patient does not have a mentioned condition now (negated,
//! family history, ruled out, resolved), and their scope: the sentence of the
//! mention, never past a section header. Shared by the matching baselines, so they
//! skip the same mentions.
//!
//! Text pre-processed the way Edin et al. prepare MIMIC-IV (lower-cased, punctuation
//! and newlines removed) is one "sentence" per note. There a cue scopes only the
//! [`SCOPE_WORDS`] words next to it (NegEx's window), cut at section headers
//! ("history of present illness", "family history", "discharge diagnosis", ...), and a
//! mention in the family-history section is not the patient's.

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

/// Section headers of discharge summaries, as words: they end a cue's scope. With or without
/// their colon, so they are found in pre-processed text too.
pub const SECTION_HEADERS: &[&str] = &[
    "chief complaint", "major surgical or invasive procedure", "history of present illness", "past medical history",
    "past surgical history", "social history", "family history", "review of systems", "physical exam", "pertinent results",
    "brief hospital course", "hospital course", "medications on admission", "discharge medications", "discharge disposition",
    "discharge diagnosis", "discharge diagnoses", "discharge condition", "discharge instructions", "followup instructions",
    "assessment and plan",
];
/// The header whose section holds mentions that are not the patient's.
const FAMILY_HISTORY: &str = "family history";
/// A sentence longer than this many words is taken for unpunctuated text.
pub const LONG_SENTENCE: usize = 40;
/// How many words next to a cue it scopes in unpunctuated text.
pub const SCOPE_WORDS: usize = 6;

/// Whether a cue sits in the sentence of tokens `first..=last`: a pre-cue before `first` or a
/// post-cue after `last`; or the mention lies in the family-history section. A cue is its words in a row; they are split on whitespace only, so
/// "r/o" (one word) never matches the tokens of "R/O", which `tokenize` splits at the slash.
pub fn negated(tokens: &[Token], first: usize, last: usize, scopes: &Scopes) -> bool {
    let s = sentence(tokens, first, last, scopes);
    scopes.family[first] || has_cue(&tokens[s.start..first], PRE_CUES) || has_cue(&tokens[last + 1..s.end], POST_CUES)
}

/// What bounds a cue's scope in one text, computed once: sentence ends (character offsets)
/// and, per token, the length of a section header starting there and whether the token
/// lies in the family-history section.
#[derive(Debug, Clone)]
pub struct Scopes {
    bounds: Vec<usize>,
    header_len: Vec<usize>,
    family: Vec<bool>,
}

impl Scopes {
    pub fn new(text: &str, tokens: &[Token]) -> Scopes {
        let header_len: Vec<usize> = (0..tokens.len()).map(|i| header_at(tokens, i).map_or(0, |h| h.split_whitespace().count())).collect();
        // The family-history section runs to the next header, or LONG_SENTENCE words at most
        // (a header this list lacks may end it first).
        let mut family = vec![false; tokens.len()];
        let (mut in_family, mut header_end) = (false, 0);
        for i in 0..tokens.len() {
            if header_len[i] > 0 {
                in_family = header_at(tokens, i) == Some(FAMILY_HISTORY);
                header_end = i + header_len[i];
            }
            family[i] = in_family && i >= header_end && i < header_end + LONG_SENTENCE;
        }
        Scopes { bounds: crate::text::sentence_bounds(text), header_len, family }
    }

    /// Character offsets where sentences end (see [`crate::text::sentence_bounds`]).
    pub fn bounds(&self) -> &[usize] {
        &self.bounds
    }
}

/// As [`negated`], and a cue inside `first..=last` counts too: a pre-cue ending before `last`
/// or a post-cue starting after `first`. For matchers whose span is not an exact term, so it
/// can take in the cue that scopes it ("No evidence of pneumonia" as one fuzzy span).
pub fn negated_within(tokens: &[Token], first: usize, last: usize, scopes: &Scopes) -> bool {
    let s = sentence(tokens, first, last, scopes);
    scopes.family[first] || has_cue(&tokens[s.start..last], PRE_CUES) || has_cue(&tokens[first + 1..s.end], POST_CUES)
}

/// The words of the section header starting at token `i`, if one does. A header phrase
/// followed by "of" is running text ("family history of diabetes"), not a header.
fn header_at(tokens: &[Token], i: usize) -> Option<&'static str> {
    SECTION_HEADERS.iter().copied().find(|h| {
        let words: Vec<&str> = h.split_whitespace().collect();
        tokens.get(i..i + words.len()).is_some_and(|w| w.iter().zip(&words).all(|(t, h)| t.word == *h))
            && tokens.get(i + words.len()).is_none_or(|next| next.word != "of")
    })
}


/// Whether the words hold a cue of either list ("Tuberculosis ..., not elsewhere classified").
pub fn contains_cue(words: &[&str]) -> bool {
    [PRE_CUES, POST_CUES].iter().any(|cues| cues.iter().any(|cue| {
        let cue: Vec<&str> = cue.split_whitespace().collect();
        words.windows(cue.len()).any(|w| w == cue.as_slice())
    }))
}

/// The tokens of the sentence(s) holding tokens `first..=last`, as an index range.
fn sentence(tokens: &[Token], first: usize, last: usize, scopes: &Scopes) -> Range<usize> {
    let bounds = &scopes.bounds;
    let start = match bounds.partition_point(|&b| b < tokens[first].start) {
        0 => 0,
        k => bounds[k - 1] + 1,
    };
    let end = bounds[bounds.partition_point(|&b| b < tokens[last].end)];
    let mut lo = first - tokens[..first].iter().rev().take_while(|t| t.start >= start).count();
    let mut hi = last + 1 + tokens[last + 1..].iter().take_while(|t| t.end <= end).count();
    if hi - lo > LONG_SENTENCE {
        lo = lo.max(first.saturating_sub(SCOPE_WORDS));
        hi = hi.min(last + 1 + SCOPE_WORDS);
    }
    // A header between the cue and the mention ends the scope.
    if let Some(h) = (lo..first).rev().find(|&i| scopes.header_len[i] > 0) {
        lo = (h + scopes.header_len[h]).min(first);
    }
    if let Some(h) = (last + 1..hi).find(|&i| scopes.header_len[i] > 0) {
        hi = h;
    }
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
    use crate::text::tokenize;

    /// Tokens, bounds, and the index of the first token spelled `word`.
    fn at(text: &str, word: &str) -> (Vec<Token>, Scopes, usize) {
        let tokens = tokenize(text);
        let i = tokens.iter().position(|t| t.word == word).unwrap();
        let scopes = Scopes::new(text, &tokens);
        (tokens, scopes, i)
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
    fn unpunctuated_text_scopes_a_few_words_and_stops_at_section_headers() {
        // Edin et al.'s pre-processing: one lower-case "sentence" per note.
        let filler = "the patient was seen and examined today and remained stable overall with good appetite and sleep ".repeat(3);
        let text = format!("chief complaint shortness of breath history of present illness denies chest pain {filler} now with pneumonia on imaging past medical history hypertension no diabetes family history mother with breast cancer discharge diagnosis pneumonia");
        let tokens = tokenize(&text);
        let bounds = Scopes::new(&text, &tokens);
        assert_eq!(bounds.bounds().len(), 1, "one sentence");
        let at = |w: &str, nth: usize| tokens.iter().enumerate().filter(|(_, t)| t.word == w).nth(nth).map(|(i, _)| i).unwrap();
        // "denies" scopes "chest pain" but not the pneumonia 50 words later.
        assert!(negated(&tokens, at("chest", 0), at("pain", 0), &bounds));
        assert!(!negated(&tokens, at("pneumonia", 0), at("pneumonia", 0), &bounds));
        // "no diabetes" is negated; "hypertension" right after the header is not.
        assert!(negated(&tokens, at("diabetes", 0), at("diabetes", 0), &bounds));
        assert!(!negated(&tokens, at("hypertension", 0), at("hypertension", 0), &bounds));
        // "family history of" is a cue in running text, not a section.
        let t = tokenize("Family history of diabetes in the mother. Hypertension.");
        let sc = Scopes::new("Family history of diabetes in the mother. Hypertension.", &t);
        let h = t.iter().position(|x| x.word == "hypertension").unwrap();
        assert!(!negated(&t, h, h, &sc));
        // The family-history section is not the patient's; the next header ends it.
        assert!(negated(&tokens, at("breast", 0), at("cancer", 0), &bounds));
        assert!(!negated(&tokens, at("pneumonia", 1), at("pneumonia", 1), &bounds));
        // The same note with its punctuation and newlines (raw MIMIC-IV-Note text).
        let raw = "Chief Complaint:\nShortness of breath\nFamily History:\nMother with breast cancer.\nDischarge Diagnosis:\nPneumonia";
        let t = tokenize(raw);
        let b = Scopes::new(raw, &t);
        let i = t.iter().position(|x| x.word == "breast").unwrap();
        assert!(negated(&t, i, i + 1, &b));
        let p = t.iter().position(|x| x.word == "pneumonia").unwrap();
        assert!(!negated(&t, p, p, &b));
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
