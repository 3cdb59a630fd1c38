//! `paraphrase`: the code's table forms reworded by the shared lexicon of the
//! synthetic benchmark's paraphrase grammar (`data::paraphrase`): lay synonyms,
//! clinical abbreviations, common misspellings, modifier moves, hedges and
//! anatomical reorderings, one or two rewording families per variant.
//!
//! It draws on the shared part only, the part training notes use; the held-out
//! part never reaches an expansion (`tests/expand.rs` checks it). Span training
//! with it teaches the model a code's vocabulary in the wordings documents use.

use super::{known_forms, table_example, table_forms, Env, ExpandError, ExpandedSpan, Strategy};
use crate::config::{ExpansionKind, ParaphraseParams};
use crate::data::paraphrase::{paraphrase, shape_for, Part};
use crate::icd::CodeEntry;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use std::collections::HashSet;

/// Draws per wanted variant before giving up on a code whose forms few rules touch.
const ATTEMPTS_PER_VARIANT: usize = 4;

pub struct Paraphrase {
    from_inclusion_terms: bool,
    variants: usize,
}

impl Paraphrase {
    pub fn new(spec: &ParaphraseParams) -> Paraphrase {
        Paraphrase { from_inclusion_terms: spec.from_inclusion_terms, variants: spec.variants }
    }
}

impl Strategy for Paraphrase {
    fn expand_code(&mut self, entry: &CodeEntry, _env: &mut Env<'_>, rng: &mut StdRng) -> Result<Vec<ExpandedSpan>, ExpandError> {
        let forms = table_forms(entry, self.from_inclusion_terms);
        let known = known_forms(entry);
        let mut written: HashSet<String> = HashSet::new();
        let mut out = Vec::new();
        for _ in 0..self.variants * ATTEMPTS_PER_VARIANT {
            if out.len() == self.variants {
                break;
            }
            let Some((form, what)) = forms.choose(rng) else { break };
            let (n, hedge) = shape_for(false, rng);
            let Some(p) = paraphrase(form, Part::Shared, n, hedge, rng) else { continue };
            let key = p.text.to_lowercase();
            if known.contains(&key) || !written.insert(key) {
                continue;
            }
            let families: Vec<&str> = p.kind.families.iter().map(|f| f.as_str()).collect();
            out.push(table_example(entry, p.text, None, ExpansionKind::Paraphrase, format!("paraphrased {what}: {}", families.join("+"))));
        }
        Ok(out)
    }
}
