//! `inclusion_terms`: the synonyms the tabular list gives under the code.

use super::description::forms;
use super::{table_example, Env, ExpandError, ExpandedSpan, Strategy};
use crate::config::{ExpansionKind, InclusionTermsParams};
use crate::icd::CodeEntry;
use rand::rngs::StdRng;

pub struct InclusionTerms {
    keep_raw: bool,
}

impl InclusionTerms {
    pub fn new(spec: &InclusionTermsParams) -> InclusionTerms {
        InclusionTerms { keep_raw: spec.keep_raw }
    }
}

impl Strategy for InclusionTerms {
    fn expand_code(&mut self, entry: &CodeEntry, _env: &mut Env<'_>, _rng: &mut StdRng) -> Result<Vec<ExpandedSpan>, ExpandError> {
        let mut out = Vec::new();
        for (i, term) in entry.inclusion_terms.iter().enumerate() {
            for (span, detail) in forms(term, self.keep_raw) {
                out.push(table_example(entry, span, None, ExpansionKind::InclusionTerms, format!("inclusion term {}{detail}", i + 1)));
            }
        }
        Ok(out)
    }
}
