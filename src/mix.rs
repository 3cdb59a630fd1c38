//! How span and document examples are interleaved during training: the
//! sequence of example indices the trainer consumes, seeded from the experiment.
//!
//! Examples are numbered spans first (`0..n_spans`), then documents
//! (`n_spans..n_spans + n_docs`). Each kind is drawn from its own stream, which
//! is a fresh seeded shuffle of that kind each time it runs out (epochs). The
//! streams and the positions of spans in a mixed run each have their own seeded
//! generator, so adding spans to a run leaves the order of its documents alone:
//! a `mixed` run by epochs feeds the very documents, in the very order, of the
//! `document_only` run with the same seed and epochs, with spans between them.
//!
//! How long a schedule is ([`Length`]) follows `[train]`: `steps` fixes the
//! number of examples, and the strategy splits it; `epochs` fixes passes over
//! the documents, and a mixed run's spans come on top of them; and
//! `match_tokens_of` feeds this run's one kind of example until it has read as
//! many tokens as another mix's schedule (same data, seed and length) would.
//!
//! With `document_sampling = "code_balanced"` the document stream draws with
//! replacement, each example weighted by its rarest code ([`document_weights`]),
//! so the codes a skewed corpus rarely shows are read more often; the number of
//! documents fed is the same as a shuffled run's.

use crate::config::{DocumentSampling, Mix, MixStrategy, Train};
use rand::distr::weighted::WeightedIndex;
use rand::distr::Distribution;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MixError {
    #[error("mix.strategy {strategy} needs {what} examples, but there are none: {hint}")]
    Empty { strategy: String, what: &'static str, hint: &'static str },
    #[error("mix.phases: unknown phase {0:?}: use \"spans\", \"documents\" or \"mixed\"")]
    Phase(String),
    #[error("train.match_tokens_of: a {0} run mixes two kinds of example; token matching feeds one kind until the budget is read: use mix.strategy = \"document_only\" or \"span_only\"")]
    TokenMatch(String),
    #[error("mix.document_sampling = \"code_balanced\" weighs {docs} document examples by their codes, but codes came for {codes}")]
    Codes { docs: usize, codes: usize },
}

/// What the mix will feed the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MixReport {
    pub strategy: MixStrategy,
    pub span_ratio: f64,
    /// How the documents were drawn (`mix.document_sampling`).
    #[serde(default)]
    pub document_sampling: DocumentSampling,
    pub total: usize,
    pub spans_fed: usize,
    pub documents_fed: usize,
    /// Distinct examples of each kind that were fed at least once.
    pub distinct_spans: usize,
    pub distinct_documents: usize,
    /// Passes over each kind (fed / available).
    pub span_epochs: f64,
    pub document_epochs: f64,
    /// Tokens (prompt + target) of the span and document examples fed: what the trainer reads.
    #[serde(default)]
    pub span_tokens: u64,
    #[serde(default)]
    pub document_tokens: u64,
    /// For a `train.match_tokens_of` run: the schedule it was matched to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_to: Option<TokenMatch>,
}

impl MixReport {
    /// Tokens of every example fed.
    pub fn tokens(&self) -> u64 {
        self.span_tokens + self.document_tokens
    }
}

/// The reference schedule of a token-matched run, as this run computed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenMatch {
    pub strategy: MixStrategy,
    pub span_ratio: f64,
    pub spans_fed: usize,
    pub documents_fed: usize,
    /// The token budget: what the reference schedule feeds.
    pub tokens: u64,
}

/// A seeded training schedule and what it contains.
#[derive(Debug, Clone, PartialEq)]
pub struct MixPlan {
    pub schedule: Vec<usize>,
    pub report: MixReport,
}

/// How many examples a schedule holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    /// This many examples, split by the strategy: a mixed phase holds
    /// `round(len × span_ratio)` spans (`train.steps`, and a curriculum by epochs).
    Examples(usize),
    /// Exactly this many of each kind, spans at seeded positions among the
    /// documents; phases do not apply (`train.epochs` for the other strategies).
    Counts { spans: usize, documents: usize },
}

impl Length {
    pub fn total(self) -> usize {
        match self {
            Length::Examples(n) => n,
            Length::Counts { spans, documents } => spans + documents,
        }
    }
}

/// `ceil(x)` for a count, where a product within rounding error of a whole number is that
/// number (0.1 × 30 is 3 examples, not 4).
fn count(x: f64) -> usize {
    let x = x.max(0.0);
    let whole = x.round();
    if (x - whole).abs() <= 1e-9 * whole.max(1.0) {
        whole as usize
    } else {
        x.ceil() as usize
    }
}

/// How long a run's schedule is, from `[train]`: `steps × batch_size × grad_accum` examples
/// when `steps` > 0; else `epochs` passes over the documents the strategy uses — for
/// `mixed`, exactly those documents plus `span_ratio / (1 − span_ratio)` spans per document
/// on top (so its documents equal a `document_only` run's); passes over the spans for
/// `span_only` (and `mixed` at ratio 1); over both for a curriculum.
pub fn length(mix: &Mix, train: &Train, n_spans: usize, n_docs: usize) -> Length {
    if train.steps > 0 {
        return Length::Examples(train.steps * train.batch_size.max(1) * train.grad_accum.max(1));
    }
    let e = train.epochs.max(0.0);
    let r = mix.span_ratio;
    match mix.strategy {
        MixStrategy::DocumentOnly => Length::Counts { spans: 0, documents: count(e * n_docs as f64) },
        MixStrategy::SpanOnly => Length::Counts { spans: count(e * n_spans as f64), documents: 0 },
        MixStrategy::Mixed if r >= 1.0 => Length::Counts { spans: count(e * n_spans as f64), documents: 0 },
        MixStrategy::Mixed => {
            let documents = count(e * n_docs as f64);
            Length::Counts { spans: (documents as f64 * r / (1.0 - r)).round() as usize, documents }
        }
        MixStrategy::Curriculum => Length::Examples(count(e * (n_spans + n_docs) as f64)),
    }
}

/// One kind's stream: reshuffled by its own generator each time it is used up, or, with
/// weights, drawn with replacement from them.
struct Stream {
    offset: usize,
    items: Vec<usize>,
    at: usize,
    fed: Vec<bool>,
    rng: StdRng,
    weighted: Option<WeightedIndex<f64>>,
}

impl Stream {
    fn new(offset: usize, n: usize, seed: u64) -> Stream {
        Stream { offset, items: (0..n).collect(), at: n, fed: vec![false; n], rng: StdRng::seed_from_u64(seed), weighted: None }
    }

    /// A stream drawing item `i` with probability `weights[i] / Σ weights` (uniform when
    /// the weights are unusable: empty, all zero or not finite).
    fn weighted(offset: usize, weights: &[f64], seed: u64) -> Stream {
        let mut s = Stream::new(offset, weights.len(), seed);
        s.weighted = WeightedIndex::new(weights.iter().copied()).ok();
        s
    }

    fn next(&mut self) -> usize {
        let i = if let Some(w) = &self.weighted {
            w.sample(&mut self.rng)
        } else {
            if self.at == self.items.len() {
                self.items.shuffle(&mut self.rng);
                self.at = 0;
            }
            self.at += 1;
            self.items[self.at - 1]
        };
        self.fed[i] = true;
        self.offset + i
    }

    fn distinct(&self) -> usize {
        self.fed.iter().filter(|f| **f).count()
    }
}

/// Draw weights of the document examples under `mix.document_sampling`, from each
/// example's codes (`codes[i]`: document example `i`'s), or `None` for shuffled passes.
/// `code_balanced`: `(N / n_c) ^ sampling_power` for the example's rarest code `c`, where
/// `n_c` of the `N` examples carry `c`; examples without a code form one class of their own.
pub fn document_weights<S: AsRef<str>>(mix: &Mix, codes: &[Vec<S>]) -> Option<Vec<f64>> {
    if mix.document_sampling != DocumentSampling::CodeBalanced {
        return None;
    }
    // An example's classes: its codes, or `None` for an example without one.
    fn classes<S: AsRef<str>>(c: &[S]) -> Vec<Option<&str>> {
        if c.is_empty() {
            vec![None]
        } else {
            c.iter().map(|x| Some(x.as_ref())).collect()
        }
    }
    let mut carriers: HashMap<Option<&str>, usize> = HashMap::new();
    for c in codes {
        let mut own = classes(c);
        own.sort_unstable();
        own.dedup();
        for k in own {
            *carriers.entry(k).or_default() += 1;
        }
    }
    let n = codes.len() as f64;
    let weights = codes
        .iter()
        .map(|c| classes(c).iter().map(|k| (n / carriers[k] as f64).powf(mix.sampling_power)).fold(0.0, f64::max))
        .collect();
    Some(weights)
}

/// Seeds of the document stream, the span stream and the span positions. The document
/// stream's is the one every stream shared before they were separated, so document-only
/// schedules are unchanged.
fn stream_seeds(seed: u64) -> (u64, u64, u64) {
    (seed ^ 0x6d69_785f_7365_6564, seed ^ 0x7370_616e_5f73_6565, seed ^ 0x706f_735f_7365_6564)
}

#[derive(Clone, Copy)]
enum Phase {
    Spans,
    Documents,
    Mixed,
}

/// The strategy as the experiment file writes it (`document_only`).
fn strategy_name(strategy: MixStrategy) -> String {
    serde_json::to_value(strategy).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

/// Builds the schedule of `length` example indices, documents in shuffled passes.
pub fn plan(mix: &Mix, n_spans: usize, n_docs: usize, length: Length, seed: u64) -> Result<MixPlan, MixError> {
    plan_weighted(mix, n_spans, n_docs, length, seed, None)
}

/// The document stream of a schedule: shuffled passes, or draws by `weights` (one per
/// document example) where given.
fn document_stream(offset: usize, n_docs: usize, seed: u64, weights: Option<&[f64]>) -> Stream {
    match weights {
        Some(w) => Stream::weighted(offset, w, seed),
        None => Stream::new(offset, n_docs, seed),
    }
}

/// [`plan`], with documents drawn by `doc_weights` where given.
fn plan_weighted(mix: &Mix, n_spans: usize, n_docs: usize, length: Length, seed: u64, doc_weights: Option<&[f64]>) -> Result<MixPlan, MixError> {
    let phases: Vec<Phase> = match (length, mix.strategy) {
        (Length::Counts { .. }, _) => vec![Phase::Mixed],
        (_, MixStrategy::DocumentOnly) => vec![Phase::Documents],
        (_, MixStrategy::SpanOnly) => vec![Phase::Spans],
        (_, MixStrategy::Mixed) => vec![Phase::Mixed],
        (_, MixStrategy::Curriculum) => mix
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
    let strategy = strategy_name(mix.strategy);
    let (needs_spans, needs_docs) = match length {
        Length::Counts { spans, documents } if spans + documents > 0 => (spans > 0, documents > 0),
        // No examples of a kind there is none of: say which kind is missing.
        _ => (
            phases.iter().any(|p| matches!(p, Phase::Spans) || (matches!(p, Phase::Mixed) && mix.span_ratio > 0.0)),
            phases.iter().any(|p| matches!(p, Phase::Documents) || (matches!(p, Phase::Mixed) && mix.span_ratio < 1.0)),
        ),
    };
    if needs_spans && n_spans == 0 {
        return Err(MixError::Empty { strategy, what: "span", hint: "add [[expansion]] entries (e.g. kind = \"description\")" });
    }
    if needs_docs && n_docs == 0 {
        return Err(MixError::Empty { strategy, what: "document", hint: "the data has no training documents" });
    }
    let (doc_seed, span_seed, position_seed) = stream_seeds(seed);
    let mut docs = document_stream(n_spans, n_docs, doc_seed, doc_weights);
    let mut spans = Stream::new(0, n_spans, span_seed);
    let mut positions = StdRng::seed_from_u64(position_seed);
    let total = length.total();
    let mut schedule = Vec::with_capacity(total);
    let per_phase = total.div_ceil(phases.len().max(1));
    for phase in &phases {
        let len = per_phase.min(total - schedule.len());
        match phase {
            Phase::Spans => (0..len).for_each(|_| schedule.push(spans.next())),
            Phase::Documents => (0..len).for_each(|_| schedule.push(docs.next())),
            Phase::Mixed => {
                let n_span_slots = match length {
                    Length::Counts { spans, .. } => spans,
                    // Exactly round(len * ratio) spans.
                    Length::Examples(_) => ((len as f64) * mix.span_ratio).round() as usize,
                };
                // Spans at seeded positions, from a generator of their own: the streams do not see them.
                let mut kinds: Vec<bool> = (0..len).map(|i| i < n_span_slots).collect();
                kinds.shuffle(&mut positions);
                for is_span in kinds {
                    schedule.push(if is_span { spans.next() } else { docs.next() });
                }
            }
        }
    }
    let spans_fed = schedule.iter().filter(|&&i| i < n_spans).count();
    let documents_fed = schedule.len() - spans_fed;
    let report = MixReport {
        strategy: mix.strategy,
        span_ratio: mix.span_ratio,
        document_sampling: if doc_weights.is_some() { DocumentSampling::CodeBalanced } else { DocumentSampling::Shuffled },
        total: schedule.len(),
        spans_fed,
        documents_fed,
        distinct_spans: spans.distinct(),
        distinct_documents: docs.distinct(),
        span_epochs: if n_spans == 0 { 0.0 } else { spans_fed as f64 / n_spans as f64 },
        document_epochs: if n_docs == 0 { 0.0 } else { documents_fed as f64 / n_docs as f64 },
        span_tokens: 0,
        document_tokens: 0,
        matched_to: None,
    };
    Ok(MixPlan { schedule, report })
}

/// Fills the report's token counts from each example's length in tokens.
fn count_tokens(plan: &mut MixPlan, tokens: &[usize], n_spans: usize) {
    let (mut span, mut document) = (0u64, 0u64);
    for &i in &plan.schedule {
        let t = tokens.get(i).copied().unwrap_or(0) as u64;
        if i < n_spans {
            span += t;
        } else {
            document += t;
        }
    }
    plan.report.span_tokens = span;
    plan.report.document_tokens = document;
}

/// A run's schedule, as `[mix]` and `[train]` ask: `tokens[i]` is example `i`'s length
/// in tokens (spans first, then documents, as everywhere here).
///
/// With `train.match_tokens_of`, the referenced mix's schedule is planned first (same
/// examples, seed and `steps`/`epochs`), and this run — `document_only` or `span_only` —
/// then feeds its kind from its own stream until it has read at least as many tokens:
/// it ends within one example of the budget.
///
/// `doc_codes[i]` are document example `i`'s codes, which `code_balanced` sampling
/// weighs (each mix by its own `document_sampling`).
pub fn schedule(mix: &Mix, train: &Train, tokens: &[usize], n_spans: usize, doc_codes: &[Vec<String>], seed: u64) -> Result<MixPlan, MixError> {
    let n_spans = n_spans.min(tokens.len());
    let n_docs = tokens.len() - n_spans;
    let needs_codes = [Some(mix), train.match_tokens_of.as_ref()].into_iter().flatten().any(|m| m.document_sampling == DocumentSampling::CodeBalanced);
    if needs_codes && doc_codes.len() != n_docs {
        return Err(MixError::Codes { docs: n_docs, codes: doc_codes.len() });
    }
    let doc_weights = document_weights(mix, doc_codes);
    let doc_weights = doc_weights.as_deref();
    let Some(reference) = &train.match_tokens_of else {
        let mut p = plan_weighted(mix, n_spans, n_docs, length(mix, train, n_spans, n_docs), seed, doc_weights)?;
        count_tokens(&mut p, tokens, n_spans);
        return Ok(p);
    };
    let reference_weights = document_weights(reference, doc_codes);
    let mut target = plan_weighted(reference, n_spans, n_docs, length(reference, train, n_spans, n_docs), seed, reference_weights.as_deref())?;
    count_tokens(&mut target, tokens, n_spans);
    let budget = target.report.tokens();
    let (spans, range, stream_seed) = match mix.strategy {
        MixStrategy::DocumentOnly => (false, n_spans..tokens.len(), stream_seeds(seed).0),
        MixStrategy::SpanOnly => (true, 0..n_spans, stream_seeds(seed).1),
        other => return Err(MixError::TokenMatch(strategy_name(other))),
    };
    if range.is_empty() || range.clone().all(|i| tokens[i] == 0) {
        let (what, hint) = if spans { ("span", "add [[expansion]] entries (e.g. kind = \"description\")") } else { ("document", "the data has no training documents") };
        return Err(MixError::Empty { strategy: strategy_name(mix.strategy), what, hint });
    }
    // The stream `plan` draws from, drawn until the budget is read.
    let mut stream = if spans { Stream::new(range.start, range.len(), stream_seed) } else { document_stream(range.start, range.len(), stream_seed, doc_weights) };
    let (mut n, mut read) = (0usize, 0u64);
    while read < budget {
        read += tokens[stream.next()] as u64;
        n += 1;
    }
    let counts = if spans { Length::Counts { spans: n, documents: 0 } } else { Length::Counts { spans: 0, documents: n } };
    let mut p = plan_weighted(mix, n_spans, n_docs, counts, seed, doc_weights)?;
    count_tokens(&mut p, tokens, n_spans);
    let r = &target.report;
    p.report.matched_to = Some(TokenMatch { strategy: r.strategy, span_ratio: r.span_ratio, spans_fed: r.spans_fed, documents_fed: r.documents_fed, tokens: budget });
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(strategy: MixStrategy, ratio: f64, phases: &[&str]) -> Mix {
        Mix { strategy, span_ratio: ratio, phases: phases.iter().map(|s| s.to_string()).collect(), ..Mix::default() }
    }

    fn by_epochs(epochs: f64) -> Train {
        Train { steps: 0, epochs, batch_size: 4, grad_accum: 2, ..Train::default() }
    }

    #[test]
    fn document_only_feeds_documents_in_shuffled_epochs() {
        let p = plan(&mix(MixStrategy::DocumentOnly, 0.5, &[]), 10, 4, Length::Examples(12), 1).unwrap();
        assert!(p.schedule.iter().all(|&i| (10..14).contains(&i)));
        // Each epoch is a permutation of all four documents.
        for epoch in p.schedule.chunks(4) {
            let mut e = epoch.to_vec();
            e.sort();
            assert_eq!(e, vec![10, 11, 12, 13]);
        }
        assert_eq!((p.report.documents_fed, p.report.spans_fed, p.report.document_epochs), (12, 0, 3.0));
        // Counting documents or examples is one schedule.
        let counted = plan(&mix(MixStrategy::DocumentOnly, 0.5, &[]), 10, 4, Length::Counts { spans: 0, documents: 12 }, 1).unwrap();
        assert_eq!(counted.schedule, p.schedule);
        // And it is the schedule of the time all streams shared one generator: a shuffle per epoch.
        let mut rng = StdRng::seed_from_u64(1 ^ 0x6d69_785f_7365_6564);
        let (mut docs, mut shared): (Vec<usize>, Vec<usize>) = ((10..14).collect(), Vec::new());
        for _ in 0..3 {
            docs.shuffle(&mut rng);
            shared.extend(&docs);
        }
        assert_eq!(p.schedule, shared);
    }

    #[test]
    fn mixed_has_the_exact_ratio_and_is_seeded() {
        let m = mix(MixStrategy::Mixed, 0.25, &[]);
        let a = plan(&m, 100, 50, Length::Examples(400), 7).unwrap();
        assert_eq!(a.report.spans_fed, 100);
        assert_eq!(a.report.documents_fed, 300);
        assert_eq!(a, plan(&m, 100, 50, Length::Examples(400), 7).unwrap());
        assert_ne!(a.schedule, plan(&m, 100, 50, Length::Examples(400), 8).unwrap().schedule);
        // Spans are spread through the run, not bunched at one end.
        let first_half_spans = a.schedule[..200].iter().filter(|&&i| i < 100).count();
        assert!((30..70).contains(&first_half_spans), "{first_half_spans}");
    }

    #[test]
    fn curriculum_runs_phases_in_order() {
        let p = plan(&mix(MixStrategy::Curriculum, 0.5, &["spans", "documents"]), 6, 3, Length::Examples(10), 3).unwrap();
        assert!(p.schedule[..5].iter().all(|&i| i < 6));
        assert!(p.schedule[5..].iter().all(|&i| i >= 6));
        assert_eq!(p.schedule.len(), 10);
    }

    #[test]
    fn missing_examples_are_explained() {
        let err = plan(&mix(MixStrategy::Mixed, 0.5, &[]), 0, 5, Length::Examples(10), 1).unwrap_err();
        assert!(err.to_string().contains("[[expansion]]"), "{err}");
        // By epochs over no documents: no count to go by, the strategy says what is missing.
        let none = length(&mix(MixStrategy::Mixed, 0.5, &[]), &by_epochs(1.0), 5, 0);
        let err = plan(&mix(MixStrategy::Mixed, 0.5, &[]), 5, 0, none, 1).unwrap_err();
        assert!(err.to_string().contains("no training documents"), "{err}");
        assert!(plan(&mix(MixStrategy::DocumentOnly, 0.5, &[]), 0, 5, Length::Examples(10), 1).is_ok());
    }

    #[test]
    fn epochs_count_documents_and_put_a_mixed_runs_spans_on_top() {
        let (spans, docs) = (1000, 200);
        let len = |m: Mix, e: f64| length(&m, &by_epochs(e), spans, docs);
        assert_eq!(len(mix(MixStrategy::DocumentOnly, 0.5, &[]), 2.0), Length::Counts { spans: 0, documents: 400 });
        // Half spans: 2 passes over 200 documents plus as many spans.
        assert_eq!(len(mix(MixStrategy::Mixed, 0.5, &[]), 2.0), Length::Counts { spans: 400, documents: 400 });
        assert_eq!(len(mix(MixStrategy::Mixed, 0.2, &[]), 2.0), Length::Counts { spans: 100, documents: 400 });
        assert_eq!(len(mix(MixStrategy::SpanOnly, 0.5, &[]), 1.0), Length::Counts { spans: 1000, documents: 0 });
        assert_eq!(len(mix(MixStrategy::Curriculum, 0.5, &["spans", "documents"]), 1.0), Length::Examples(1200));
        // 0.1 × 30 is 3 documents, though the float product is 3.0000000000000004.
        assert_eq!(length(&mix(MixStrategy::DocumentOnly, 0.0, &[]), &by_epochs(0.1), 0, 30), Length::Counts { spans: 0, documents: 3 });
        // Steps fix the number of examples, whatever the strategy: 5 steps of 4 × 2.
        let steps = Train { steps: 5, ..by_epochs(2.0) };
        assert_eq!(length(&mix(MixStrategy::Mixed, 0.5, &[]), &steps, spans, docs), Length::Examples(40));
    }

    #[test]
    fn mixed_by_epochs_feeds_the_documents_of_document_only_in_their_order() {
        let (n_spans, n_docs) = (37, 23);
        for seed in 1..6 {
            for (ratio, spans_on_top) in [(0.5, 58), (0.25, 19)] {
                let train = by_epochs(2.5);
                let tokens = vec![1; n_spans + n_docs];
                let only = schedule(&mix(MixStrategy::DocumentOnly, 0.0, &[]), &train, &tokens, n_spans, &[], seed).unwrap();
                let mixed = schedule(&mix(MixStrategy::Mixed, ratio, &[]), &train, &tokens, n_spans, &[], seed).unwrap();
                // ceil(2.5 × 23) = 58 documents in both; the mixed run's spans come on top.
                assert_eq!((only.report.documents_fed, only.report.spans_fed), (58, 0));
                assert_eq!((mixed.report.documents_fed, mixed.report.spans_fed), (58, spans_on_top));
                let docs_of_mixed: Vec<usize> = mixed.schedule.iter().copied().filter(|&i| i >= n_spans).collect();
                let (mut a, mut b) = (only.schedule.clone(), docs_of_mixed.clone());
                a.sort_unstable();
                b.sort_unstable();
                assert_eq!(a, b, "the same multiset of documents (seed {seed})");
                assert_eq!(docs_of_mixed, only.schedule, "in the same order (seed {seed})");
                assert_eq!(mixed.report.document_tokens, only.report.document_tokens);
            }
        }
    }

    #[test]
    fn a_token_matched_run_reads_the_mixed_runs_tokens_within_one_example() {
        let (n_spans, n_docs) = (120, 40);
        // Spans are short (6-15 tokens), documents long (80-379): a document costs many spans.
        let tokens: Vec<usize> = (0..n_spans).map(|i| 6 + (i * 7) % 10).chain((0..n_docs).map(|i| 80 + (i * 37) % 300)).collect();
        let mixed_mix = mix(MixStrategy::Mixed, 0.5, &[]);
        let doc_only = mix(MixStrategy::DocumentOnly, 0.0, &[]);
        for seed in [3, 4] {
            let train = by_epochs(3.0);
            let mixed = schedule(&mixed_mix, &train, &tokens, n_spans, &[], seed).unwrap();
            let by_epochs_only = schedule(&doc_only, &train, &tokens, n_spans, &[], seed).unwrap();
            let matched = schedule(&doc_only, &Train { match_tokens_of: Some(mixed_mix.clone()), ..train }, &tokens, n_spans, &[], seed).unwrap();

            let budget = mixed.report.tokens();
            let m = matched.report.matched_to.as_ref().expect("the reference is recorded");
            assert_eq!((m.tokens, m.spans_fed, m.documents_fed), (budget, mixed.report.spans_fed, mixed.report.documents_fed));
            assert_eq!(matched.report.spans_fed, 0);
            let read = matched.report.tokens();
            let last = tokens[*matched.schedule.last().unwrap()] as u64;
            assert!(read >= budget && read - last < budget, "{read} tokens against a budget of {budget} (last example {last})");
            // More documents than the epochs arm (the spans' tokens buy documents), drawn from the same stream.
            assert!(matched.report.documents_fed > by_epochs_only.report.documents_fed);
            assert_eq!(matched.schedule[..by_epochs_only.schedule.len()], by_epochs_only.schedule[..]);
        }
        let err = schedule(&mixed_mix, &Train { match_tokens_of: Some(doc_only), ..by_epochs(1.0) }, &tokens, n_spans, &[], 1).unwrap_err();
        assert!(matches!(err, MixError::TokenMatch(ref s) if s == "mixed"), "{err}");
    }

    fn balanced(power: f64) -> Mix {
        Mix { document_sampling: DocumentSampling::CodeBalanced, sampling_power: power, ..mix(MixStrategy::DocumentOnly, 0.0, &[]) }
    }

    fn codes(lists: &[&[&str]]) -> Vec<Vec<String>> {
        lists.iter().map(|l| l.iter().map(|c| c.to_string()).collect()).collect()
    }

    #[test]
    fn code_balanced_weights_follow_the_rarest_code() {
        // A on 3 of 4 examples, B on 1 (with A), none on 1.
        let c = codes(&[&["A"], &["A"], &["A", "B"], &[]]);
        let w = document_weights(&balanced(1.0), &c).unwrap();
        assert_eq!(w, vec![4.0 / 3.0, 4.0 / 3.0, 4.0, 4.0]);
        let w = document_weights(&balanced(0.5), &c).unwrap();
        assert!((w[0] - (4.0f64 / 3.0).sqrt()).abs() < 1e-12 && (w[2] - 2.0).abs() < 1e-12, "{w:?}");
        assert_eq!(document_weights(&balanced(0.0), &c).unwrap(), vec![1.0; 4]);
        assert_eq!(document_weights(&mix(MixStrategy::DocumentOnly, 0.0, &[]), &c), None, "shuffled passes weigh nothing");
    }

    #[test]
    fn code_balanced_sampling_reads_rare_codes_more_often_at_the_same_exposure() {
        // 90 examples of a frequent code, 10 of rare ones; 5 passes.
        let c: Vec<Vec<String>> = (0..100).map(|i| vec![if i < 90 { "K85.00".to_string() } else { format!("R{i}") }]).collect();
        let tokens = vec![10; 100];
        let train = by_epochs(5.0);
        let rare = |p: &MixPlan| p.schedule.iter().filter(|&&i| i >= 90).count();
        let shuffled = schedule(&mix(MixStrategy::DocumentOnly, 0.0, &[]), &train, &tokens, 0, &c, 9).unwrap();
        let b = schedule(&balanced(1.0), &train, &tokens, 0, &c, 9).unwrap();
        assert_eq!(shuffled.report.documents_fed, 500);
        assert_eq!(b.report.documents_fed, 500, "the same document exposure");
        assert_eq!(rare(&shuffled), 50);
        // Power 1: each rare example weighs 100 against 100/90 for a frequent one, so the
        // ten rare ones take 1000 / (1000 + 100) of the draws: about 455 of 500.
        assert!((420..=490).contains(&rare(&b)), "{} rare draws", rare(&b));
        assert_eq!(b, schedule(&balanced(1.0), &train, &tokens, 0, &c, 9).unwrap(), "seeded");
        let err = schedule(&balanced(1.0), &train, &tokens, 0, &c[..99], 9).unwrap_err();
        assert_eq!(err, MixError::Codes { docs: 100, codes: 99 });
        // The codes do not touch a shuffled schedule.
        assert_eq!(shuffled, schedule(&mix(MixStrategy::DocumentOnly, 0.0, &[]), &train, &tokens, 0, &[], 9).unwrap());
    }
}
