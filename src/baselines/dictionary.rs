//! Dictionary matching: finds code descriptions and inclusion terms in the text
//! (normalised words, longest match first), skips mentions under a negation,
//! family-history, ruled-out or resolved cue, and emits codes with evidence
//! offsets. An honest floor: it knows the code table, nothing else.

use crate::config::DictionaryParams;
use crate::data::jsonl::Prediction;
use crate::data::{slice_chars, Document, EvidenceSpan};
use crate::icd::{Code, CodeEntry, CodeSet};
use crate::text::{note_form, sentence_bounds, tokenize, Token};
use std::collections::{BTreeSet, HashMap};

/// Cues before a mention (same sentence) that mean the patient does not have it now.
const PRE_CUES: &[&str] = &[
    "no", "not", "denies", "denied", "negative for", "no evidence of", "without evidence of", "free of",
    "family history of", "family history", "father", "mother", "sister", "brother", "ruled out",
    "rule out", "r/o",
];
/// Cues after a mention (same sentence).
const POST_CUES: &[&str] = &["ruled out", "was negative", "resolved", "in the mother", "in the father", "unlikely"];

#[derive(Default)]
struct Node {
    next: HashMap<u32, u32>,
    code: Option<u32>,
}

/// A token trie over every term of the codes in scope.
pub struct DictionaryCoder {
    vocab: HashMap<String, u32>,
    nodes: Vec<Node>,
    codes: Vec<Code>,
    pre_cues: Vec<Vec<u32>>,
    post_cues: Vec<Vec<u32>>,
    params: DictionaryParams,
    /// Terms shared by two codes; the first code (tabular order) keeps them.
    pub ambiguous_terms: usize,
    pub terms: usize,
}

impl DictionaryCoder {
    /// Builds the matcher over `scope` (billable codes of the whole set when `None`).
    pub fn build(codes: &CodeSet, scope: Option<&[Code]>, params: &DictionaryParams) -> DictionaryCoder {
        let entries: Vec<&CodeEntry> = match scope {
            Some(s) => s.iter().filter_map(|c| codes.get(c)).collect(),
            None => codes.billable().collect(),
        };
        let mut coder = DictionaryCoder {
            vocab: HashMap::new(),
            nodes: vec![Node::default()],
            codes: Vec::new(),
            pre_cues: Vec::new(),
            post_cues: Vec::new(),
            params: params.clone(),
            ambiguous_terms: 0,
            terms: 0,
        };
        for entry in entries {
            let id = coder.codes.len() as u32;
            coder.codes.push(entry.code.clone());
            let mut forms: BTreeSet<String> = BTreeSet::new();
            forms.insert(note_form(&entry.description));
            forms.insert(entry.description.clone());
            if params.inclusion_terms {
                for t in &entry.inclusion_terms {
                    forms.insert(note_form(t));
                    forms.insert(t.clone());
                }
            }
            for form in forms {
                let words: Vec<String> = tokenize(&form).into_iter().map(|t| t.word).collect();
                if words.len() >= params.min_words {
                    coder.insert(&words, id);
                }
            }
        }
        coder.pre_cues = PRE_CUES.iter().map(|c| coder.cue_ids(c)).collect();
        coder.post_cues = POST_CUES.iter().map(|c| coder.cue_ids(c)).collect();
        coder
    }

    fn intern(&mut self, word: &str) -> u32 {
        let n = self.vocab.len() as u32;
        *self.vocab.entry(word.to_string()).or_insert(n)
    }

    fn cue_ids(&mut self, cue: &str) -> Vec<u32> {
        cue.split_whitespace().map(|w| self.intern(w)).collect()
    }

    fn insert(&mut self, words: &[String], code: u32) {
        let mut node = 0usize;
        for w in words {
            let id = self.intern(w);
            let len = self.nodes.len() as u32;
            let next = *self.nodes[node].next.entry(id).or_insert(len);
            if next == len {
                self.nodes.push(Node::default());
            }
            node = next as usize;
        }
        match self.nodes[node].code {
            None => {
                self.nodes[node].code = Some(code);
                self.terms += 1;
            }
            Some(c) if c != code => self.ambiguous_terms += 1,
            Some(_) => {}
        }
    }

    /// Codes and their evidence found in one document.
    pub fn predict(&self, doc: &Document) -> Prediction {
        let tokens = tokenize(&doc.text);
        let ids: Vec<Option<u32>> = tokens.iter().map(|t| self.vocab.get(&t.word).copied()).collect();
        let bounds = sentence_bounds(&doc.text);
        let mut codes = BTreeSet::new();
        let mut evidence = Vec::new();
        let mut i = 0;
        while i < tokens.len() {
            let Some((code, last)) = self.longest_match(&ids, i) else {
                i += 1;
                continue;
            };
            let (start, end) = (tokens[i].start, tokens[last].end);
            if !(self.params.negation && self.negated(&tokens, &ids, i, last, &bounds)) {
                let code = self.codes[code as usize].clone();
                let text = slice_chars(&doc.text, start, end).unwrap_or_default().to_string();
                evidence.push(EvidenceSpan::new(code.clone(), start, end, text));
                codes.insert(code);
            }
            i = last + 1;
        }
        Prediction { id: doc.id.clone(), codes: codes.into_iter().collect(), invalid: Vec::new(), evidence, scores: Default::default(), raw: None }
    }

    fn longest_match(&self, ids: &[Option<u32>], from: usize) -> Option<(u32, usize)> {
        let mut node = 0usize;
        let mut best = None;
        for (k, id) in ids[from..].iter().enumerate() {
            let Some(next) = id.and_then(|id| self.nodes[node].next.get(&id)) else { break };
            node = *next as usize;
            if let Some(code) = self.nodes[node].code {
                best = Some((code, from + k));
            }
        }
        best
    }

    /// Whether a cue sits in the same sentence before (or after) the mention.
    fn negated(&self, tokens: &[Token], ids: &[Option<u32>], first: usize, last: usize, bounds: &[usize]) -> bool {
        let start = tokens[first].start;
        let sentence_end = bounds[bounds.partition_point(|&b| b < tokens[last].end)];
        let sentence_start = match bounds.partition_point(|&b| b < start) {
            0 => 0,
            k => bounds[k - 1] + 1,
        };
        let before: Vec<Option<u32>> = (0..first).rev().take_while(|&k| tokens[k].start >= sentence_start).map(|k| ids[k]).collect::<Vec<_>>().into_iter().rev().collect();
        let after: Vec<Option<u32>> = ((last + 1)..tokens.len()).take_while(|&k| tokens[k].end <= sentence_end).map(|k| ids[k]).collect();
        contains_any(&before, &self.pre_cues) || contains_any(&after, &self.post_cues)
    }
}

fn contains_any(window: &[Option<u32>], cues: &[Vec<u32>]) -> bool {
    cues.iter().any(|cue| window.windows(cue.len()).any(|w| w.iter().zip(cue).all(|(a, b)| *a == Some(*b))))
}
