//! `gold_evidence`: the evidence spans annotated on training documents, as span -> code examples.

use super::{sentence_around, Env, ExpandError, ExpandedSpan, Source, Strategy};
use crate::config::{ExpansionKind, GoldEvidenceParams};
use crate::data::{Dataset, Split};
use crate::icd::{Code, CodeEntry};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use std::collections::{BTreeMap, HashMap};

pub struct GoldEvidence {
    /// Annotated spans per code, in document order.
    spans: HashMap<Code, Vec<ExpandedSpan>>,
    annotations: usize,
}

impl GoldEvidence {
    pub fn new(spec: &GoldEvidenceParams, dataset: &Dataset) -> GoldEvidence {
        let mut spans: HashMap<Code, Vec<ExpandedSpan>> = HashMap::new();
        let mut annotations = 0;
        for doc in dataset.split(Split::Train) {
            for ev in &doc.evidence {
                if ev.text.trim().is_empty() {
                    continue;
                }
                annotations += 1;
                let context = spec.sentence_context.then(|| sentence_around(&doc.text, ev.start, ev.end));
                spans.entry(ev.code.clone()).or_default().push(ExpandedSpan {
                    span: ev.text.clone(),
                    context,
                    code: ev.code.clone(),
                    strategy: ExpansionKind::GoldEvidence,
                    source: Source::Document { id: doc.id.clone(), start: ev.start, end: ev.end },
                });
            }
        }
        GoldEvidence { spans, annotations }
    }
}

impl Strategy for GoldEvidence {
    fn expand_code(&mut self, entry: &CodeEntry, _env: &mut Env<'_>, rng: &mut StdRng) -> Result<Vec<ExpandedSpan>, ExpandError> {
        let mut found = self.spans.remove(&entry.code).unwrap_or_default();
        // A seeded order, so the cap samples documents rather than taking the first ones.
        found.shuffle(rng);
        Ok(found)
    }

    fn details(&self) -> BTreeMap<String, usize> {
        BTreeMap::from([("annotations".to_string(), self.annotations)])
    }
}
