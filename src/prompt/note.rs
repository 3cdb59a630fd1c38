//! Span examples rendered through the document task: each span becomes a short
//! note (a section heading and one or two sentences) answered in the document
//! format, so what the model learns from spans is the very step the document
//! task asks for — find the mention in a note, quote it, code it.
//!
//! A share of notes (`negated`) adds a second sentence that mentions another
//! span's wording under a negation or family-history cue; that mention is not
//! answered, so span training also teaches what not to code. Every choice
//! draws from one generator seeded by the caller, in example order.

use super::{DocExample, SpanExample};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};

/// Section headings a short note opens with.
const HEADINGS: &[&str] = &["HISTORY OF PRESENT ILLNESS", "HOSPITAL COURSE", "ASSESSMENT", "PAST MEDICAL HISTORY", "PROBLEM LIST"];

/// Sentences asserting a condition; `{}` is the span.
const ASSERTED: &[&str] = &[
    "Admitted with {}.",
    "History notable for {}.",
    "{} was addressed during this stay.",
    "Assessment: {}.",
    "The patient has {}.",
    "Problem: {}.",
    "Treated for {}.",
    "{}, stable at discharge.",
];

/// Sentences mentioning a condition the patient does not have now.
const NOT_ASSERTED: &[&str] = &["No evidence of {}.", "Denies {}.", "Family history of {}.", "{} was ruled out.", "Negative for {}."];

/// Seed of the note renderer, apart from the other streams drawn from the experiment seed.
const NOTE_SEED: u64 = 0x6e6f_7465_5f73_6565;

/// Each span example as a short note answered with its code(s), quoting the span as the
/// note writes it. `negated` is the share of notes that add a negated mention of another
/// example's span (one with other codes), left unanswered.
pub fn span_notes(spans: &[SpanExample], negated: f64, seed: u64) -> Vec<DocExample> {
    let mut rng = StdRng::seed_from_u64(seed ^ NOTE_SEED);
    let negated = negated.clamp(0.0, 1.0);
    spans
        .iter()
        .enumerate()
        .map(|(i, ex)| {
            let heading = *HEADINGS.choose(&mut rng).unwrap_or(&HEADINGS[0]);
            let template = *ASSERTED.choose(&mut rng).unwrap_or(&ASSERTED[0]);
            let (sentence, quote) = fill(template, &ex.span);
            let mut sentences = vec![sentence];
            if negated > 0.0 && rng.random_bool(negated) {
                // Another example with none of this one's codes: a few tries, then none.
                let other = (0..8).map(|_| &spans[rng.random_range(0..spans.len())]).find(|o| o.codes.iter().all(|c| !ex.codes.contains(c)));
                if let Some(other) = other {
                    let template = *NOT_ASSERTED.choose(&mut rng).unwrap_or(&NOT_ASSERTED[0]);
                    let at = rng.random_range(0..=1);
                    sentences.insert(at, fill(template, &other.span).0);
                }
            }
            DocExample {
                doc_id: format!("span-{i}"),
                text: format!("{heading}:\n{}", sentences.join(" ")),
                targets: ex.codes.iter().map(|c| (c.clone(), vec![quote.clone()])).collect(),
            }
        })
        .collect()
}

/// The sentence with the span on one line, and the span as it stands there (capitalised
/// when the sentence starts with it).
fn fill(template: &str, span: &str) -> (String, String) {
    let span = super::one_line(span);
    let shown = if template.starts_with("{}") {
        let mut cs = span.chars();
        cs.next().map(|c| c.to_uppercase().chain(cs).collect()).unwrap_or_default()
    } else {
        span
    };
    (template.replacen("{}", &shown, 1), shown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::icd::Code;
    use crate::prompt::{AnswerOrder, Formatter, PromptStyle};

    fn span(text: &str, code: &str) -> SpanExample {
        SpanExample { span: text.into(), context: None, codes: vec![Code::parse(code).expect("test code")], source: "test".into() }
    }

    #[test]
    fn every_span_becomes_a_note_that_quotes_it_and_answers_its_code() {
        let spans = vec![span("high blood\npressure", "I10"), span("sugar diabetes", "E11.9"), span("reflux", "K21.9")];
        let notes = span_notes(&spans, 1.0, 7);
        assert_eq!(notes.len(), 3);
        for (note, ex) in notes.iter().zip(&spans) {
            assert_eq!(note.targets.len(), 1);
            let (code, quotes) = &note.targets[0];
            assert_eq!(code, &ex.codes[0]);
            // The quote stands in the note as written (case aside), on one line.
            assert!(note.text.contains(quotes[0].as_str()), "{:?} in {:?}", quotes[0], note.text);
            assert_eq!(quotes[0].to_lowercase(), crate::prompt::one_line(&ex.span));
            // A heading line, then the sentences.
            let (heading, body) = note.text.split_once(":\n").expect("heading");
            assert!(HEADINGS.contains(&heading));
            // negated = 1: a second sentence mentions another span under a cue, unanswered.
            let others: Vec<&SpanExample> = spans.iter().filter(|o| o.codes != ex.codes).collect();
            assert!(others.iter().any(|o| body.to_lowercase().contains(&crate::prompt::one_line(&o.span))), "{body}");
        }
        // The document task's answer, evidence first: the quote, then the code.
        let f = Formatter::new(PromptStyle::Plain).with_order(AnswerOrder::EvidenceFirst);
        let target = f.doc_target(&notes[1].targets);
        assert!(target.ends_with(" => E11.9\n") && target.to_lowercase().starts_with("sugar diabetes"), "{target}");
    }

    #[test]
    fn seeded_and_without_negation_one_sentence() {
        let spans: Vec<SpanExample> = (0..20).map(|i| span(&format!("finding {i}"), if i % 2 == 0 { "I10" } else { "E11.9" })).collect();
        assert_eq!(span_notes(&spans, 0.3, 1), span_notes(&spans, 0.3, 1));
        assert_ne!(span_notes(&spans, 0.3, 1), span_notes(&spans, 0.3, 2));
        for note in span_notes(&spans, 0.0, 1) {
            let body = note.text.split_once(":\n").expect("heading").1;
            assert_eq!(body.matches('.').count(), 1, "{body}");
        }
        // About `negated` of the notes carry a second sentence.
        let two = span_notes(&spans, 0.5, 3).iter().filter(|n| n.text.split_once(":\n").map_or(0, |(_, b)| b.matches('.').count()) == 2).count();
        assert!((4..=16).contains(&two), "{two}");
    }
}
