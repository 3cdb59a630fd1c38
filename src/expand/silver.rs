//! `silver`: spans mined from training documents by matching code
//! descriptions and inclusion terms (the dictionary coder, negation-aware),
//! kept only where the matched code is one of the document's gold codes.
//! For data without evidence annotations this is the evidence there is.

use super::{sentence_around, Env, ExpandError, ExpandedSpan, Source, Strategy};
use crate::baselines::dictionary::DictionaryCoder;
use crate::config::{DictionaryParams, ExpansionKind, SilverParams};
use crate::data::{Dataset, Split};
use crate::icd::{Code, CodeEntry, CodeSet};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use std::collections::{BTreeMap, HashMap};

pub struct Silver {
    /// Mined examples per code, in document order.
    mined: HashMap<Code, Vec<ExpandedSpan>>,
    details: BTreeMap<String, usize>,
}

impl Silver {
    /// Mines every training document once; the matcher knows the data's pool when it has one.
    pub fn new(spec: &SilverParams, codes: &CodeSet, dataset: &Dataset) -> Silver {
        let params = DictionaryParams {
            name: None,
            negation: spec.negation,
            inclusion_terms: spec.inclusion_terms,
            restrict_to_pool: true,
            min_words: spec.min_words,
        };
        let scope = (!dataset.pool.is_empty()).then_some(dataset.pool.as_slice());
        let coder = DictionaryCoder::build(codes, scope, &params);
        let mut mined: HashMap<Code, Vec<ExpandedSpan>> = HashMap::new();
        let (mut docs, mut kept, mut not_gold) = (0, 0, 0);
        for doc in dataset.split(Split::Train) {
            docs += 1;
            for ev in coder.predict(doc).evidence {
                if !doc.codes.contains(&ev.code) {
                    not_gold += 1;
                    continue;
                }
                kept += 1;
                let context = spec.sentence_context.then(|| sentence_around(&doc.text, ev.start, ev.end));
                mined.entry(ev.code.clone()).or_default().push(ExpandedSpan {
                    span: ev.text,
                    context,
                    code: ev.code,
                    strategy: ExpansionKind::Silver,
                    source: Source::Document { id: doc.id.clone(), start: ev.start, end: ev.end },
                });
            }
        }
        let details = BTreeMap::from([
            ("documents_mined".to_string(), docs),
            ("matches_on_gold_codes".to_string(), kept),
            ("matches_not_gold_dropped".to_string(), not_gold),
        ]);
        Silver { mined, details }
    }
}

impl Strategy for Silver {
    fn expand_code(&mut self, entry: &CodeEntry, _env: &mut Env<'_>, rng: &mut StdRng) -> Result<Vec<ExpandedSpan>, ExpandError> {
        let mut found = self.mined.remove(&entry.code).unwrap_or_default();
        // A seeded order, so the cap samples documents rather than taking the first ones.
        found.shuffle(rng);
        Ok(found)
    }

    fn details(&self) -> BTreeMap<String, usize> {
        self.details.clone()
    }
}
