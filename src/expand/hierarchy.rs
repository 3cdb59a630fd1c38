//! `hierarchy`: the code's place in the code tree, so the model learns its granularity.
//!
//! - parent context: the description with `context = "category: <parent>"`;
//! - contrastive sibling pairs: the code and its most similar siblings (by
//!   shared words), each as its own example whose context names the other, so
//!   near-identical descriptions (I26.09 / I26.99) are told apart. A model
//!   trained on documents alone tends to answer the seen sibling.

use crate::text::rewrite::word_ranges;
use super::{Env, ExpandError, ExpandedSpan, Source, Strategy};
use crate::config::{ExpansionKind, HierarchyParams};
use crate::icd::CodeEntry;
use crate::text::note_form;
use rand::rngs::StdRng;
use std::collections::BTreeSet;

pub struct Hierarchy {
    parent_context: bool,
    siblings: usize,
    outside_coverage: bool,
}

impl Hierarchy {
    pub fn new(spec: &HierarchyParams) -> Hierarchy {
        Hierarchy { parent_context: spec.parent_context, siblings: spec.siblings, outside_coverage: spec.contrast_outside_coverage }
    }
}

fn words(text: &str) -> BTreeSet<String> {
    word_ranges(text).iter().map(|&(a, b)| text[a..b].to_lowercase()).collect()
}

/// Shared words over all words (Jaccard): 1.0 for the same word set.
fn similarity(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    let union = a.union(b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(b).count() as f64 / union as f64
}

fn example(about: &CodeEntry, span: String, context: String, detail: String) -> ExpandedSpan {
    ExpandedSpan {
        span,
        context: Some(context),
        code: about.code.clone(),
        strategy: ExpansionKind::Hierarchy,
        source: Source::Table { code: about.code.clone(), detail },
    }
}

impl Strategy for Hierarchy {
    fn expand_code(&mut self, entry: &CodeEntry, env: &mut Env<'_>, _rng: &mut StdRng) -> Result<Vec<ExpandedSpan>, ExpandError> {
        let span = note_form(&entry.description);
        if span.is_empty() {
            return Ok(Vec::new());
        }
        let parent = env.codes.parent(&entry.code);
        let category = parent.map(|p| format!("category: {}", note_form(&p.description)));
        let mut out = Vec::new();
        if let (true, Some(p), Some(cat)) = (self.parent_context, parent, &category) {
            out.push(example(entry, span.clone(), cat.clone(), format!("description under parent {}", p.code)));
        }
        if self.siblings == 0 {
            return Ok(out);
        }
        let own = words(&span);
        let mut ranked: Vec<(f64, &CodeEntry)> =
            env.codes.siblings(&entry.code).into_iter().map(|s| (similarity(&own, &words(&note_form(&s.description))), s)).collect();
        // Most similar first; ties in code order, so the choice is deterministic.
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.code.cmp(&b.1.code)));
        let with_category = |text: String| match &category {
            Some(cat) => format!("{cat}; {text}"),
            None => text,
        };
        for (_, sibling) in ranked.into_iter().take(self.siblings) {
            let other = note_form(&sibling.description);
            if other.is_empty() || other.eq_ignore_ascii_case(&span) {
                continue;
            }
            let context = with_category(format!("sibling {}: {other}", sibling.code));
            out.push(example(entry, span.clone(), context, format!("contrast with sibling {}", sibling.code)));
            if sibling.billable && (self.outside_coverage || env.covered.contains(&sibling.code)) {
                let context = with_category(format!("sibling {}: {span}", entry.code));
                out.push(example(sibling, other, context, format!("contrast with sibling {}", entry.code)));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similarity_is_jaccard_over_words() {
        let a = words("saddle embolus of pulmonary artery with acute cor pulmonale");
        let b = words("other pulmonary embolism with acute cor pulmonale");
        assert!((similarity(&a, &a) - 1.0).abs() < 1e-12);
        // shared: pulmonary, with, acute, cor, pulmonale = 5; union = 9 + 7 - 5 = 11.
        assert!((similarity(&a, &b) - 5.0 / 11.0).abs() < 1e-12);
    }
}
