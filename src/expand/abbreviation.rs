//! `abbreviation`: the code's table forms written with clinical abbreviations.
//!
//! The rule table is this strategy's own. It leaves alone every word the
//! synthetic generator's held-out test rewordings touch (with/without,
//! left/right, disease, syndrome, history, ...), so training never sees a
//! test phrasing; `tests/expand.rs` checks that on generated data.

use crate::text::rewrite::replace_phrase;
use super::{known_forms, table_example, table_forms, Env, ExpandError, ExpandedSpan, Strategy};
use crate::config::{AbbreviationParams, ExpansionKind};
use crate::icd::CodeEntry;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// (phrase, abbreviation); longer phrases are tried first.
pub const ABBREVIATIONS: &[(&str, &str)] = &[
    ("non st elevation myocardial infarction", "NSTEMI"),
    ("st elevation myocardial infarction", "STEMI"),
    ("end stage renal disease", "ESRD"),
    ("acute respiratory distress syndrome", "ARDS"),
    ("benign prostatic hyperplasia", "BPH"),
    ("obstructive sleep apnea", "OSA"),
    ("peripheral vascular disease", "PVD"),
    ("atherosclerotic heart disease", "ASHD"),
    ("irritable bowel syndrome", "IBS"),
    ("nonalcoholic steatohepatitis", "NASH"),
    ("nonalcoholic fatty liver disease", "NAFLD"),
    ("iron deficiency anemia", "IDA"),
    ("diabetic ketoacidosis", "DKA"),
    ("supraventricular tachycardia", "SVT"),
    ("ventricular tachycardia", "VT"),
    ("ventricular fibrillation", "VF"),
    ("atrial flutter", "AFL"),
    ("systolic heart failure", "HFrEF"),
    ("diastolic heart failure", "HFpEF"),
    ("hypertrophic cardiomyopathy", "HCM"),
    ("dilated cardiomyopathy", "DCM"),
    ("ulcerative colitis", "UC"),
    ("nausea and vomiting", "N/V"),
    ("acute on chronic", "AoC"),
    ("gastrointestinal", "GI"),
    ("cardiomyopathy", "CMP"),
    ("pneumothorax", "PTX"),
    ("atrioventricular", "AV"),
    ("hypothyroidism", "hypothyroid"),
    ("hyperthyroidism", "hyperthyroid"),
    ("hyperparathyroidism", "HPT"),
    ("hypokalemia", "hypoK"),
    ("hyperkalemia", "hyperK"),
    ("hyponatremia", "hypoNa"),
    ("hypernatremia", "hyperNa"),
    ("hypomagnesemia", "hypoMg"),
    ("tachycardia", "tachy"),
    ("bradycardia", "brady"),
    ("exacerbation", "exac"),
    ("paroxysmal", "parox"),
    ("alcoholic", "EtOH"),
    ("abdominal", "abd"),
    ("pulmonary", "pulm"),
    ("respiratory", "resp"),
    ("insufficiency", "insuff"),
    ("deficiency", "def"),
    ("cholesterol", "chol"),
    ("esophageal", "esoph"),
    ("hepatitis", "hep"),
    ("infarction", "infarct"),
    ("vitamin", "vit"),
    ("type 2", "type II"),
    ("type 1", "type I"),
    ("and", "&"),
];

pub struct Abbreviation {
    from_inclusion_terms: bool,
    partial: bool,
    /// Rules, longest phrase first.
    rules: Vec<(&'static str, &'static str)>,
}

impl Abbreviation {
    pub fn new(spec: &AbbreviationParams) -> Abbreviation {
        let mut rules = ABBREVIATIONS.to_vec();
        rules.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
        Abbreviation { from_inclusion_terms: spec.from_inclusion_terms, partial: spec.partial, rules }
    }

    /// Every rule that applies, in turn; the rewritten form and the abbreviations used.
    pub fn full(&self, form: &str) -> Option<(String, Vec<&'static str>)> {
        let mut out = form.to_string();
        let mut used = Vec::new();
        for (from, to) in &self.rules {
            if let Some(next) = replace_phrase(&out, from, to) {
                out = next;
                used.push(*to);
            }
        }
        (!used.is_empty()).then_some((out, used))
    }

    /// One form per applicable rule, that rule alone applied.
    pub fn singles(&self, form: &str) -> Vec<(String, &'static str)> {
        self.rules.iter().filter_map(|(from, to)| replace_phrase(form, from, to).map(|s| (s, *to))).collect()
    }
}

impl Strategy for Abbreviation {
    fn expand_code(&mut self, entry: &CodeEntry, _env: &mut Env<'_>, rng: &mut StdRng) -> Result<Vec<ExpandedSpan>, ExpandError> {
        let known = known_forms(entry);
        let mut full = Vec::new();
        let mut partial = Vec::new();
        for (form, what) in table_forms(entry, self.from_inclusion_terms) {
            if let Some((text, used)) = self.full(&form) {
                full.push((text, format!("abbreviated {what}: {}", used.join(", "))));
            }
            if self.partial {
                for (text, used) in self.singles(&form) {
                    partial.push((text, format!("abbreviated {what}: {used}")));
                }
            }
        }
        // Fully abbreviated forms first; single-rule ones in a seeded order so the cap samples them.
        // Where one rule applies, its single form is the full form: keep it once.
        partial.retain(|(text, _)| !full.iter().any(|(f, _)| f == text));
        partial.shuffle(rng);
        Ok(full
            .into_iter()
            .chain(partial)
            .filter(|(text, _)| !known.contains(&text.to_lowercase()))
            .map(|(text, detail)| table_example(entry, text, None, ExpansionKind::Abbreviation, detail))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strategy() -> Abbreviation {
        Abbreviation::new(&AbbreviationParams::default())
    }

    #[test]
    fn abbreviates_longest_phrases_first() {
        let a = strategy();
        let (text, used) = a.full("non-ST elevation myocardial infarction of anterior wall").unwrap();
        assert_eq!(text, "NSTEMI of anterior wall");
        assert_eq!(used, ["NSTEMI"]);
        let (text, _) = a.full("acute on chronic systolic heart failure").unwrap();
        assert_eq!(text, "AoC HFrEF");
        assert!(a.full("essential hypertension").is_none());
    }

    #[test]
    fn singles_apply_one_rule_each() {
        let a = strategy();
        let mut singles: Vec<String> = a.singles("alcoholic hepatitis with ascites").into_iter().map(|(s, _)| s).collect();
        singles.sort();
        assert_eq!(singles, ["EtOH hepatitis with ascites", "alcoholic hep with ascites"]);
    }

    #[test]
    fn no_rule_touches_the_held_out_words() {
        // The synthetic generator rewrites these words in test notes; this table must not.
        for word in ["with", "without", "left", "right", "bilateral", "history", "fracture", "infection", "disease", "syndrome", "secondary", "pneumonia", "hemorrhage", "unspecified", "hypertension", "failure", "neoplasm", "chronic", "acute"] {
            for (from, _) in ABBREVIATIONS {
                let words: Vec<&str> = from.split_whitespace().collect();
                assert!(words.len() > 1 || words[0] != word, "rule {from:?} rewrites {word:?} alone");
            }
        }
    }
}
