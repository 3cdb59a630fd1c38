//! How span and document examples are interleaved during training: the
//! sequence of example indices the trainer consumes, seeded from the experiment.
//!
//! Examples are numbered spans first (`0..n_spans`), then documents
//! (`n_spans..n_spans + n_docs`). Each kind is drawn from its own stream, which
//! is a fresh seeded shuffle of that kind each time it runs out (epochs).

use crate::config::{Mix, MixStrategy};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MixError {
    #[error("mix.strategy {strategy} needs {what} examples, but there are none: {hint}")]
    Empty { strategy: String, what: &'static str, hint: &'static str },
    #[error("mix.phases: unknown phase {0:?}: use \"spans\", \"documents\" or \"mixed\"")]
    Phase(String),
}

/// What the mix will feed the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MixReport {
    pub strategy: MixStrategy,
    pub span_ratio: f64,
    pub total: usize,
    pub spans_fed: usize,
    pub documents_fed: usize,
    /// Distinct examples of each kind that were fed at least once.
    pub distinct_spans: usize,
    pub distinct_documents: usize,
    /// Passes over each kind (fed / available).
    pub span_epochs: f64,
    pub document_epochs: f64,
}

/// A seeded training schedule and what it contains.
#[derive(Debug, Clone, PartialEq)]
pub struct MixPlan {
    pub schedule: Vec<usize>,
    pub report: MixReport,
}

/// How many examples a run feeds when `train.steps` is 0: `epochs` passes over the
/// documents the strategy uses (spans fill the rest of a `mixed` run in proportion),
/// over the spans for `span_only`, over both for a curriculum.
pub fn examples_for_epochs(mix: &Mix, n_spans: usize, n_docs: usize, epochs: f64) -> usize {
    let e = epochs.max(0.0);
    let n = match mix.strategy {
        MixStrategy::DocumentOnly => e * n_docs as f64,
        MixStrategy::SpanOnly => e * n_spans as f64,
        MixStrategy::Mixed if mix.span_ratio >= 1.0 => e * n_spans as f64,
        MixStrategy::Mixed => e * n_docs as f64 / (1.0 - mix.span_ratio),
        MixStrategy::Curriculum => e * (n_spans + n_docs) as f64,
    };
    n.ceil() as usize
}

/// One kind's stream: reshuffled each time it is used up.
struct Stream {
    offset: usize,
    items: Vec<usize>,
    at: usize,
    fed: Vec<bool>,
}

impl Stream {
    fn new(offset: usize, n: usize) -> Stream {
        Stream { offset, items: (0..n).collect(), at: n, fed: vec![false; n] }
    }

    fn next(&mut self, rng: &mut StdRng) -> usize {
        if self.at == self.items.len() {
            self.items.shuffle(rng);
            self.at = 0;
        }
        let i = self.items[self.at];
        self.at += 1;
        self.fed[i] = true;
        self.offset + i
    }

    fn distinct(&self) -> usize {
        self.fed.iter().filter(|f| **f).count()
    }
}

#[derive(Clone, Copy)]
enum Phase {
    Spans,
    Documents,
    Mixed,
}

/// Builds the schedule of `total` example indices.
pub fn plan(mix: &Mix, n_spans: usize, n_docs: usize, total: usize, seed: u64) -> Result<MixPlan, MixError> {
    let phases: Vec<Phase> = match mix.strategy {
        MixStrategy::DocumentOnly => vec![Phase::Documents],
        MixStrategy::SpanOnly => vec![Phase::Spans],
        MixStrategy::Mixed => vec![Phase::Mixed],
        MixStrategy::Curriculum => mix
            .phases
            .iter()
            .map(|p| match p.as_str() {
                "spans" => Ok(Phase::Spans),
                "documents" => Ok(Phase::Documents),
                "mixed" => Ok(Phase::Mixed),
                other => Err(MixError::Phase(other.to_string())),
            })
            .collect::<Result<_, _>>()?,
    };
    let strategy = format!("{:?}", mix.strategy).to_lowercase();
    let needs_spans = phases.iter().any(|p| matches!(p, Phase::Spans) || (matches!(p, Phase::Mixed) && mix.span_ratio > 0.0));
    let needs_docs = phases.iter().any(|p| matches!(p, Phase::Documents) || (matches!(p, Phase::Mixed) && mix.span_ratio < 1.0));
    if needs_spans && n_spans == 0 {
        return Err(MixError::Empty { strategy, what: "span", hint: "add [[expansion]] entries (e.g. kind = \"description\")" });
    }
    if needs_docs && n_docs == 0 {
        return Err(MixError::Empty { strategy, what: "document", hint: "the data has no training documents" });
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6d69_785f_7365_6564);
    let mut spans = Stream::new(0, n_spans);
    let mut docs = Stream::new(n_spans, n_docs);
    let mut schedule = Vec::with_capacity(total);
    let per_phase = total.div_ceil(phases.len().max(1));
    for phase in &phases {
        let len = per_phase.min(total - schedule.len());
        match phase {
            Phase::Spans => (0..len).for_each(|_| schedule.push(spans.next(&mut rng))),
            Phase::Documents => (0..len).for_each(|_| schedule.push(docs.next(&mut rng))),
            Phase::Mixed => {
                // Exactly round(len * ratio) spans, at seeded positions.
                let n_span_slots = ((len as f64) * mix.span_ratio).round() as usize;
                let mut kinds: Vec<bool> = (0..len).map(|i| i < n_span_slots).collect();
                kinds.shuffle(&mut rng);
                for is_span in kinds {
                    schedule.push(if is_span { spans.next(&mut rng) } else { docs.next(&mut rng) });
                }
            }
        }
    }
    let spans_fed = schedule.iter().filter(|&&i| i < n_spans).count();
    let documents_fed = schedule.len() - spans_fed;
    let report = MixReport {
        strategy: mix.strategy,
        span_ratio: mix.span_ratio,
        total: schedule.len(),
        spans_fed,
        documents_fed,
        distinct_spans: spans.distinct(),
        distinct_documents: docs.distinct(),
        span_epochs: if n_spans == 0 { 0.0 } else { spans_fed as f64 / n_spans as f64 },
        document_epochs: if n_docs == 0 { 0.0 } else { documents_fed as f64 / n_docs as f64 },
    };
    Ok(MixPlan { schedule, report })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(strategy: MixStrategy, ratio: f64, phases: &[&str]) -> Mix {
        Mix { strategy, span_ratio: ratio, phases: phases.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn document_only_feeds_documents_in_shuffled_epochs() {
        let p = plan(&mix(MixStrategy::DocumentOnly, 0.5, &[]), 10, 4, 12, 1).unwrap();
        assert!(p.schedule.iter().all(|&i| (10..14).contains(&i)));
        // Each epoch is a permutation of all four documents.
        for epoch in p.schedule.chunks(4) {
            let mut e = epoch.to_vec();
            e.sort();
            assert_eq!(e, vec![10, 11, 12, 13]);
        }
        assert_eq!((p.report.documents_fed, p.report.spans_fed, p.report.document_epochs), (12, 0, 3.0));
    }

    #[test]
    fn mixed_has_the_exact_ratio_and_is_seeded() {
        let m = mix(MixStrategy::Mixed, 0.25, &[]);
        let a = plan(&m, 100, 50, 400, 7).unwrap();
        assert_eq!(a.report.spans_fed, 100);
        assert_eq!(a.report.documents_fed, 300);
        assert_eq!(a, plan(&m, 100, 50, 400, 7).unwrap());
        assert_ne!(a.schedule, plan(&m, 100, 50, 400, 8).unwrap().schedule);
        // Spans are spread through the run, not bunched at one end.
        let first_half_spans = a.schedule[..200].iter().filter(|&&i| i < 100).count();
        assert!((30..70).contains(&first_half_spans), "{first_half_spans}");
    }

    #[test]
    fn curriculum_runs_phases_in_order() {
        let p = plan(&mix(MixStrategy::Curriculum, 0.5, &["spans", "documents"]), 6, 3, 10, 3).unwrap();
        assert!(p.schedule[..5].iter().all(|&i| i < 6));
        assert!(p.schedule[5..].iter().all(|&i| i >= 6));
        assert_eq!(p.schedule.len(), 10);
    }

    #[test]
    fn missing_examples_are_explained() {
        let err = plan(&mix(MixStrategy::Mixed, 0.5, &[]), 0, 5, 10, 1).unwrap_err();
        assert!(err.to_string().contains("[[expansion]]"), "{err}");
        assert!(plan(&mix(MixStrategy::DocumentOnly, 0.5, &[]), 0, 5, 10, 1).is_ok());
    }

    #[test]
    fn epochs_translate_to_example_counts() {
        assert_eq!(examples_for_epochs(&mix(MixStrategy::DocumentOnly, 0.5, &[]), 1000, 200, 2.0), 400);
        // Half spans: 2 passes over 200 documents plus as many spans.
        assert_eq!(examples_for_epochs(&mix(MixStrategy::Mixed, 0.5, &[]), 1000, 200, 2.0), 800);
        assert_eq!(examples_for_epochs(&mix(MixStrategy::SpanOnly, 0.5, &[]), 1000, 200, 1.0), 1000);
    }
}
