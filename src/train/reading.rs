//! A generic reading task for backbones trained from scratch.
//!
//! Pretrained LLMs arrive able to find a passage in their context and copy it;
//! the method relies on that (evidence is quoted from the note, and the span
//! task's text-to-code skill applies to whatever was quoted). A tiny model
//! initialised at random has no such skill, and with a few thousand steps of
//! coding it learns to write memorised phrasings of training codes instead of
//! reading the note. This task teaches reading alone: given a note and the
//! first words of one of its sentences, repeat that sentence. It involves no
//! code and no label, so it gives neither training arm an advantage; both
//! fine-tune the same pretrained weights.

use crate::prompt::{TrainingPair, PLAIN_ANSWER_CLOSE, PLAIN_ANSWER_OPEN};
use crate::text::sentence_bounds;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::SeedableRng;

/// Bumped whenever the pairs made for the same notes and seed change.
pub const READING_VERSION: u32 = 1;

/// Words of the cue that opens the sentence to repeat.
const CUE_WORDS: usize = 3;

/// Sentences shorter than this (in words) are not asked for: nothing to copy beyond the cue.
const MIN_WORDS: usize = CUE_WORDS + 1;

/// The instruction of the reading task.
pub const READING_INSTRUCTION: &str = "Repeat the sentence of the note that begins with the given words.";

/// The sentences of `note` that can be asked for: long enough, and with an
/// opening no other place of the note shares (so the answer is unique).
pub fn askable_sentences(note: &str) -> Vec<String> {
    let chars: Vec<char> = note.chars().collect();
    let mut out = Vec::new();
    let mut start = 0;
    for end in sentence_bounds(note) {
        let end = (end + 1).min(chars.len());
        let sentence: String = chars[start.min(end)..end].iter().collect::<String>().split_whitespace().collect::<Vec<_>>().join(" ");
        start = end;
        let words: Vec<&str> = sentence.split(' ').collect();
        if words.len() < MIN_WORDS || sentence.ends_with(':') {
            continue;
        }
        let cue = words[..CUE_WORDS].join(" ");
        if note.matches(cue.as_str()).count() == 1 {
            out.push(sentence);
        }
    }
    out
}

/// `n` reading examples over `notes`, each a random askable sentence of a
/// random note, in the plain template. Seeded: the same notes, `n` and seed
/// give the same pairs.
pub fn reading_pairs(notes: &[&str], n: usize, seed: u64) -> Vec<TrainingPair> {
    let per_note: Vec<(&str, Vec<String>)> =
        notes.iter().map(|note| (*note, askable_sentences(note))).filter(|(_, s)| !s.is_empty()).collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut pairs = Vec::with_capacity(n);
    while pairs.len() < n {
        let Some((note, sentences)) = per_note.choose(&mut rng) else { break };
        let Some(sentence) = sentences.choose(&mut rng) else { break };
        let cue = sentence.split(' ').take(CUE_WORDS).collect::<Vec<_>>().join(" ");
        pairs.push(TrainingPair {
            prompt: format!("{READING_INSTRUCTION}\n\nWords: {cue}\n\nNote:\n{}\n\n{PLAIN_ANSWER_OPEN}", note.trim_end()),
            target: format!("{sentence}\n{PLAIN_ANSWER_CLOSE}"),
        });
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTE: &str = "HPI:\nThe patient has gout. The patient has essential hypertension, stable.\nPlan: follow up in one week; recheck blood pressure soon.";

    #[test]
    fn only_sentences_with_a_unique_opening_are_asked_for() {
        // "The patient has" opens two sentences; "HPI:" is a header; "Plan: follow up in one week" is askable.
        assert_eq!(askable_sentences(NOTE), ["Plan: follow up in one week;", "recheck blood pressure soon."]);
    }

    #[test]
    fn pairs_are_seeded_and_quote_the_note() {
        let notes = [NOTE, "Assessment: type 2 diabetes mellitus without complications. Seen daily by the team."];
        let a = reading_pairs(&notes, 20, 7);
        assert_eq!(a.len(), 20);
        assert_eq!(a, reading_pairs(&notes, 20, 7));
        assert_ne!(a, reading_pairs(&notes, 20, 8));
        for p in &a {
            let sentence = p.target.strip_suffix("\n</answer>").expect("closed target");
            assert!(notes.iter().any(|n| n.split_whitespace().collect::<Vec<_>>().join(" ").contains(sentence)), "{sentence}");
            let cue = p.prompt.split("Words: ").nth(1).and_then(|r| r.split('\n').next()).expect("cue line");
            assert!(sentence.starts_with(cue));
        }
        assert!(reading_pairs(&["too short."], 5, 1).is_empty());
    }
}
