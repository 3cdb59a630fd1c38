//! Prompt/target text pairs -> token ids that fit the training length.

use super::TrainError;
use crate::model::tokenizer::TextTokenizer;
use crate::prompt::TrainingPair;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Which supervision an example carries; costs are counted per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExampleKind {
    Span,
    Document,
}

/// One tokenised training example: the model reads `prompt_ids ++ target_ids`
/// and is scored on `target_ids` alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainExample {
    pub prompt_ids: Vec<u32>,
    pub target_ids: Vec<u32>,
    pub kind: ExampleKind,
    /// Index of the pair it encodes in `encode_pairs`' input (pairs too long are dropped).
    pub pair: usize,
}

impl TrainExample {
    /// Tokens the model reads.
    pub fn len(&self) -> usize {
        self.prompt_ids.len() + self.target_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What fitting pairs into `max_length` did to them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodeStats {
    pub kept: usize,
    /// Kept with their prompt cut from the left.
    pub truncated: usize,
    /// Prompt tokens removed by truncation, over all examples.
    pub prompt_tokens_cut: usize,
    /// Left out: empty prompt or target, or a target with no room for any prompt.
    pub dropped: usize,
}

/// How one example fits into `max_length` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fit {
    Whole,
    /// Keep the prompt's last tokens, cutting this many from its start.
    CutPrompt(usize),
    Drop,
}

/// The target is never cut (it is what is learnt); the prompt loses its start.
/// A target that leaves no room for one prompt token is dropped: its first
/// token would have nothing to be predicted from.
pub(crate) fn fit(prompt_len: usize, target_len: usize, max_length: usize) -> Fit {
    if prompt_len == 0 || target_len == 0 || target_len >= max_length {
        Fit::Drop
    } else if prompt_len + target_len <= max_length {
        Fit::Whole
    } else {
        Fit::CutPrompt(prompt_len + target_len - max_length)
    }
}

/// Tokenises pairs (prompt with the tokenizer's BOS convention, target without)
/// and fits each into `max_length`, keeping the input order of those kept.
///
/// Prompt and target are encoded separately, so the boundary between them is
/// a token boundary, as at generation time.
pub fn encode_pairs(pairs: &[(TrainingPair, ExampleKind)], tok: &TextTokenizer, max_length: usize) -> Result<(Vec<TrainExample>, EncodeStats), TrainError> {
    let encoded: Vec<(Vec<u32>, Vec<u32>, ExampleKind)> = pairs
        .par_iter()
        .map(|(pair, kind)| Ok((tok.encode(&pair.prompt, tok.add_bos_default())?, tok.encode(&pair.target, false)?, *kind)))
        .collect::<Result<_, TrainError>>()?;
    let mut stats = EncodeStats::default();
    let mut out = Vec::with_capacity(encoded.len());
    for (pair, (mut prompt_ids, target_ids, kind)) in encoded.into_iter().enumerate() {
        match fit(prompt_ids.len(), target_ids.len(), max_length) {
            Fit::Drop => {
                stats.dropped += 1;
                continue;
            }
            Fit::Whole => {}
            Fit::CutPrompt(n) => {
                prompt_ids.drain(..n);
                stats.truncated += 1;
                stats.prompt_tokens_cut += n;
            }
        }
        stats.kept += 1;
        out.push(TrainExample { prompt_ids, target_ids, kind, pair });
    }
    Ok((out, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_cuts_prompt_never_target() {
        assert_eq!(fit(5, 3, 8), Fit::Whole);
        assert_eq!(fit(10, 3, 8), Fit::CutPrompt(5));
        assert_eq!(fit(10, 7, 8), Fit::CutPrompt(9)); // one prompt token left
        assert_eq!(fit(10, 8, 8), Fit::Drop);
        assert_eq!(fit(1, 9, 8), Fit::Drop);
        assert_eq!(fit(0, 3, 8), Fit::Drop);
        assert_eq!(fit(3, 0, 8), Fit::Drop);
    }

    #[test]
    fn encode_pairs_truncates_from_the_left_and_counts() {
        let corpus = ["alpha beta gamma delta", "code A01 code B02"];
        let tok = TextTokenizer::tiny(&corpus, 300).unwrap();
        let pair = |p: &str, t: &str| TrainingPair { prompt: p.into(), target: t.into() };
        let long_prompt = "alpha beta gamma delta alpha beta gamma delta";
        let target = " A01";
        let t_len = tok.encode(target, false).unwrap().len();
        let p_ids = tok.encode(long_prompt, false).unwrap();
        let keep = tok.encode("alpha", false).unwrap().len();
        assert!(p_ids.len() > keep);
        let max = t_len + keep;
        let pairs = vec![
            (pair("alpha", target), ExampleKind::Span),
            (pair(long_prompt, target), ExampleKind::Document),
            (pair("alpha", &" A01".repeat(20)), ExampleKind::Span),
        ];
        let (ex, stats) = encode_pairs(&pairs, &tok, max).unwrap();
        assert_eq!(stats, EncodeStats { kept: 2, truncated: 1, prompt_tokens_cut: p_ids.len() - keep, dropped: 1 });
        assert_eq!(ex.len(), 2);
        assert_eq!(ex[1].kind, ExampleKind::Document);
        assert_eq!(ex[1].prompt_ids, p_ids[p_ids.len() - keep..].to_vec());
        assert_eq!(ex[1].target_ids, tok.encode(target, false).unwrap());
        assert!(ex.iter().all(|e| e.len() <= max));
    }
}
