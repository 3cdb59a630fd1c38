//! Dictionary matching: finds code descriptions and inclusion terms in the text
//! (normalised words, longest match first), skips mentions under a negation,
//! family-history, ruled-out or resolved cue, and emits codes with evidence
//! offsets. An honest floor: it knows the code table, nothing else. The cues and
//! their scope live in [`super::negation`], shared with the fuzzy matcher.

use super::negation;
use super::kind::{matching_scope, BaselineError, BaselineKind, DocumentCoder, Fit, FitData, Fitted};
use crate::config::DictionaryParams;
use crate::data::jsonl::Prediction;
use crate::data::{slice_chars, Document, EvidenceSpan};
use crate::icd::{Code, CodeEntry, CodeSet};
use crate::text::{note_form, tokenize};
use std::collections::{BTreeSet, HashMap};

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
        coder
    }

    fn intern(&mut self, word: &str) -> u32 {
        let n = self.vocab.len() as u32;
        *self.vocab.entry(word.to_string()).or_insert(n)
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
        let bounds = negation::Scopes::new(&doc.text, &tokens);
        let mut codes = BTreeSet::new();
        let mut evidence = Vec::new();
        let mut i = 0;
        while i < tokens.len() {
            let Some((code, last)) = self.longest_match(&ids, i) else {
                i += 1;
                continue;
            };
            let (start, end) = (tokens[i].start, tokens[last].end);
            if !(self.params.negation && negation::negated(&tokens, i, last, &bounds)) {
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
}

impl BaselineKind for DictionaryParams {
    fn fit(&self, data: &FitData<'_>) -> Result<Fit, BaselineError> {
        let coder = DictionaryCoder::build(data.codes, matching_scope(self.restrict_to_pool, data.dataset), self);
        let summary = format!("dictionary: {} terms, {} shared by several codes (first code kept)", coder.terms, coder.ambiguous_terms);
        Ok(Fit { fitted: Fitted::Coder(Box::new(coder)), summary, record: None, training: None })
    }
}

impl DocumentCoder for DictionaryCoder {
    fn predict(&self, doc: &Document) -> Prediction {
        DictionaryCoder::predict(self, doc)
    }
}
