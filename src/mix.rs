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
//! `match_tokens_of` feeds this run's mix until it has read as many tokens as
//! another mix's schedule (same data, seed and length) would, or the share of
//! them `token_fraction` sets: a budget in tokens.
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
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MixError {
    #[error("mix.strategy {strategy} needs {what} examples, but there are none: {hint}")]
    Empty { strategy: String, what: &'static str, hint: &'static str },
    #[error("mix.phases: unknown phase {0:?}: use \"spans\", \"documents\" or \"mixed\"")]
    Phase(String),
    #[error("train.match_tokens_of: a {0} run's phases have no end a token budget can set: use mix.strategy = \"document_only\", \"span_only\" or \"mixed\"")]
    TokenMatch(String),
    #[error("mix.document_sampling = \"code_balanced\" weighs {docs} document examples by their codes, but codes came for {codes}")]
    Codes { docs: usize, codes: usize },
    #[error("mix.sources weighs {spans} span examples by their source, but sources came for {sources}")]
    Sources { spans: usize, sources: usize },
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
    /// Each span source (expansion kind): its examples, how many were fed, its weight in
    /// `[mix.sources]` and its share of the spans fed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub span_sources: BTreeMap<String, SourceShare>,
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

/// One span source in a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceShare {
    /// Its span examples.
    pub examples: usize,
    /// Its span examples fed (repeats counted).
    pub fed: usize,
    /// Its weight per example (`[mix.sources]`; 1 when unnamed there).
    pub weight: f64,
    /// `fed` over every span fed.
    pub share: f64,
}

/// The reference schedule of a token-matched run, as this run computed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenMatch {
    pub strategy: MixStrategy,
    pub span_ratio: f64,
    pub spans_fed: usize,
    pub documents_fed: usize,
    /// The token budget: `fraction` of what the reference schedule feeds.
    pub tokens: u64,
    /// The share of the reference schedule's tokens this run reads (`train.token_fraction`).
    #[serde(default = "one", skip_serializing_if = "crate::config::is_one")]
    pub fraction: f64,
}

fn one() -> f64 {
    1.0
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

/// Draw weights of the span examples under `[mix.sources]` (`sources[i]`: span example
/// `i`'s expansion kind; an unnamed kind weighs 1), or `None` when it names none.
pub fn span_weights<S: AsRef<str>>(mix: &Mix, sources: &[S]) -> Option<Vec<f64>> {
    if mix.sources.is_empty() {
        return None;
    }
    Some(sources.iter().map(|s| mix.sources.get(s.as_ref()).copied().unwrap_or(1.0)).collect())
}

/// Each source's examples, what was fed of it and its share of the spans fed.
fn source_shares<S: AsRef<str>>(mix: &Mix, schedule: &[usize], sources: &[S]) -> BTreeMap<String, SourceShare> {
    let mut out: BTreeMap<String, SourceShare> = BTreeMap::new();
    for s in sources {
        let s = s.as_ref();
        let weight = mix.sources.get(s).copied().unwrap_or(1.0);
        out.entry(s.to_string()).or_insert(SourceShare { examples: 0, fed: 0, weight, share: 0.0 }).examples += 1;
    }
    let mut total = 0usize;
    for &i in schedule {
        if let Some(s) = sources.get(i) {
            if let Some(share) = out.get_mut(s.as_ref()) {
                share.fed += 1;
                total += 1;
            }
        }
    }
    for share in out.values_mut() {
        share.share = if total == 0 { 0.0 } else { share.fed as f64 / total as f64 };
    }
    out
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
    plan_weighted(mix, n_spans, n_docs, length, seed, Weights::default())
}

/// The document stream of a schedule: shuffled passes, or draws by `weights` (one per
/// document example) where given.
fn document_stream(offset: usize, n_docs: usize, seed: u64, weights: Option<&[f64]>) -> Stream {
    match weights {
        Some(w) => Stream::weighted(offset, w, seed),
        None => Stream::new(offset, n_docs, seed),
    }
}

/// Draw weights of a schedule's examples, where they are not drawn in shuffled passes.
#[derive(Clone, Copy, Default)]
struct Weights<'a> {
    /// One per document example (`mix.document_sampling = "code_balanced"`).
    docs: Option<&'a [f64]>,
    /// One per span example (`[mix.sources]`).
    spans: Option<&'a [f64]>,
}

/// The span stream of a schedule: shuffled passes, or draws by `weights` where given.
fn span_stream(n_spans: usize, seed: u64, weights: Option<&[f64]>) -> Stream {
    match weights {
        Some(w) => Stream::weighted(0, w, seed),
        None => Stream::new(0, n_spans, seed),
    }
}

/// [`plan`], with each kind drawn by its weights where given.
fn plan_weighted(mix: &Mix, n_spans: usize, n_docs: usize, length: Length, seed: u64, weights: Weights) -> Result<MixPlan, MixError> {
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
    let mut docs = document_stream(n_spans, n_docs, doc_seed, weights.docs);
    let mut spans = span_stream(n_spans, span_seed, weights.spans);
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
        document_sampling: if weights.docs.is_some() { DocumentSampling::CodeBalanced } else { DocumentSampling::Shuffled },
        total: schedule.len(),
        spans_fed,
        documents_fed,
        distinct_spans: spans.distinct(),
        distinct_documents: docs.distinct(),
        span_epochs: if n_spans == 0 { 0.0 } else { spans_fed as f64 / n_spans as f64 },
        document_epochs: if n_docs == 0 { 0.0 } else { documents_fed as f64 / n_docs as f64 },
        span_tokens: 0,
        document_tokens: 0,
        span_sources: BTreeMap::new(),
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
/// examples, seed and `steps`/`epochs`); its tokens times `train.token_fraction` are this
/// run's budget, and this run — `document_only`, `span_only` or `mixed` — feeds its
/// examples, by counts, until it has read at least the budget ([`counts_for_budget`]).
///
/// `doc_codes[i]` are document example `i`'s codes, which `code_balanced` sampling
/// weighs (each mix by its own `document_sampling`).
pub fn schedule(mix: &Mix, train: &Train, tokens: &[usize], n_spans: usize, examples: ExampleLabels, seed: u64) -> Result<MixPlan, MixError> {
    let n_spans = n_spans.min(tokens.len());
    let n_docs = tokens.len() - n_spans;
    let mixes = [Some(mix), train.match_tokens_of.as_ref()];
    let needs_codes = mixes.into_iter().flatten().any(|m| m.document_sampling == DocumentSampling::CodeBalanced);
    if needs_codes && examples.doc_codes.len() != n_docs {
        return Err(MixError::Codes { docs: n_docs, codes: examples.doc_codes.len() });
    }
    let needs_sources = mixes.into_iter().flatten().any(|m| !m.sources.is_empty());
    if needs_sources && examples.span_sources.len() != n_spans {
        return Err(MixError::Sources { spans: n_spans, sources: examples.span_sources.len() });
    }
    let (by_codes, by_source) = (document_weights(mix, examples.doc_codes), span_weights(mix, examples.span_sources));
    let weights = Weights { docs: by_codes.as_deref(), spans: by_source.as_deref() };
    let mut p = match &train.match_tokens_of {
        None => plan_weighted(mix, n_spans, n_docs, length(mix, train, n_spans, n_docs), seed, weights)?,
        Some(reference) => {
            let (ref_docs, ref_spans) = (document_weights(reference, examples.doc_codes), span_weights(reference, examples.span_sources));
            let ref_weights = Weights { docs: ref_docs.as_deref(), spans: ref_spans.as_deref() };
            let mut target = plan_weighted(reference, n_spans, n_docs, length(reference, train, n_spans, n_docs), seed, ref_weights)?;
            count_tokens(&mut target, tokens, n_spans);
            let fraction = train.token_fraction;
            let budget = (target.report.tokens() as f64 * fraction).ceil() as u64;
            let ratio = match mix.strategy {
                MixStrategy::DocumentOnly => 0.0,
                MixStrategy::SpanOnly => 1.0,
                MixStrategy::Mixed => mix.span_ratio,
                other => return Err(MixError::TokenMatch(strategy_name(other))),
            };
            let counts = counts_for_budget(ratio, tokens, n_spans, budget, seed, weights).ok_or_else(|| {
                let (what, hint) = if ratio > 0.0 { ("span", "add [[expansion]] entries (e.g. kind = \"description\")") } else { ("document", "the data has no training documents") };
                MixError::Empty { strategy: strategy_name(mix.strategy), what, hint }
            })?;
            let mut p = plan_weighted(mix, n_spans, n_docs, counts, seed, weights)?;
            let r = &target.report;
            p.report.matched_to = Some(TokenMatch { strategy: r.strategy, span_ratio: r.span_ratio, spans_fed: r.spans_fed, documents_fed: r.documents_fed, tokens: budget, fraction });
            p
        }
    };
    count_tokens(&mut p, tokens, n_spans);
    if examples.span_sources.len() == n_spans {
        p.report.span_sources = source_shares(mix, &p.schedule, examples.span_sources);
    }
    Ok(p)
}

/// What the mix may weigh examples by: each document example's codes
/// (`document_sampling = "code_balanced"`) and each span example's source (`[mix.sources]`,
/// and the shares the report gives). Either may be empty where nothing weighs it.
#[derive(Clone, Copy, Default)]
pub struct ExampleLabels<'a> {
    pub doc_codes: &'a [Vec<String>],
    pub span_sources: &'a [String],
}

/// How many spans and documents a schedule with `ratio` spans per example needs to read
/// `budget` tokens, drawing each kind from the stream [`plan`] draws it from (so the
/// counts' schedule reads exactly the prefixes summed here): documents (or spans, at ratio
/// 1) one at a time, each with its `ratio / (1 − ratio)` share of spans, until the budget is
/// read. It ends within one document and its spans of the budget. `None` when a kind the
/// ratio needs has no example or no token.
fn counts_for_budget(ratio: f64, tokens: &[usize], n_spans: usize, budget: u64, seed: u64, weights: Weights) -> Option<Length> {
    let n_docs = tokens.len() - n_spans;
    let usable = |range: std::ops::Range<usize>| !range.is_empty() && range.into_iter().any(|i| tokens[i] > 0);
    let (doc_seed, span_seed, _) = stream_seeds(seed);
    let mut spans = span_stream(n_spans, span_seed, weights.spans);
    let (mut n_span, mut read) = (0usize, 0u64);
    if ratio >= 1.0 {
        if !usable(0..n_spans) {
            return None;
        }
        while read < budget {
            read += tokens[spans.next()] as u64;
            n_span += 1;
        }
        return Some(Length::Counts { spans: n_span, documents: 0 });
    }
    if !usable(n_spans..tokens.len()) || (ratio > 0.0 && !usable(0..n_spans)) {
        return None;
    }
    let mut docs = document_stream(n_spans, n_docs, doc_seed, weights.docs);
    let mut n_doc = 0usize;
    while read < budget {
        read += tokens[docs.next()] as u64;
        n_doc += 1;
        // The spans a mixed schedule by counts places beside this many documents.
        let due = (n_doc as f64 * ratio / (1.0 - ratio)).round() as usize;
        while n_span < due {
            read += tokens[spans.next()] as u64;
            n_span += 1;
        }
    }
    Some(Length::Counts { spans: n_span, documents: n_doc })
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
                let only = schedule(&mix(MixStrategy::DocumentOnly, 0.0, &[]), &train, &tokens, n_spans, ExampleLabels::default(), seed).unwrap();
                let mixed = schedule(&mix(MixStrategy::Mixed, ratio, &[]), &train, &tokens, n_spans, ExampleLabels::default(), seed).unwrap();
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
            let mixed = schedule(&mixed_mix, &train, &tokens, n_spans, ExampleLabels::default(), seed).unwrap();
            let by_epochs_only = schedule(&doc_only, &train, &tokens, n_spans, ExampleLabels::default(), seed).unwrap();
            let matched = schedule(&doc_only, &Train { match_tokens_of: Some(mixed_mix.clone()), ..train }, &tokens, n_spans, ExampleLabels::default(), seed).unwrap();

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
        let curriculum = mix(MixStrategy::Curriculum, 0.5, &["spans", "documents"]);
        let err = schedule(&curriculum, &Train { match_tokens_of: Some(doc_only), ..by_epochs(1.0) }, &tokens, n_spans, ExampleLabels::default(), 1).unwrap_err();
        assert!(matches!(err, MixError::TokenMatch(ref s) if s == "curriculum"), "{err}");
    }

    #[test]
    fn a_mixed_run_on_a_fifth_of_the_document_runs_tokens() {
        let (n_spans, n_docs) = (300, 50);
        let tokens: Vec<usize> = (0..n_spans).map(|i| 6 + (i * 7) % 10).chain((0..n_docs).map(|i| 80 + (i * 37) % 300)).collect();
        let doc_only = mix(MixStrategy::DocumentOnly, 0.0, &[]);
        let mixed = mix(MixStrategy::Mixed, 0.75, &[]);
        for seed in [5, 6] {
            let train = by_epochs(2.0);
            let reference = schedule(&doc_only, &train, &tokens, n_spans, ExampleLabels::default(), seed).unwrap();
            let equal = schedule(&mixed, &Train { match_tokens_of: Some(doc_only.clone()), ..train.clone() }, &tokens, n_spans, ExampleLabels::default(), seed).unwrap();
            let fifth = schedule(&mixed, &Train { match_tokens_of: Some(doc_only.clone()), token_fraction: 0.2, ..train }, &tokens, n_spans, ExampleLabels::default(), seed).unwrap();
            let full = reference.report.tokens();
            for (p, budget) in [(&equal, full), (&fifth, (full as f64 * 0.2).ceil() as u64)] {
                let r = &p.report;
                assert_eq!(r.matched_to.as_ref().map(|m| m.tokens), Some(budget));
                // At the budget, within one document and the spans placed beside it.
                let most_a_step_reads = 379 + 3 * 15;
                assert!(r.tokens() >= budget && r.tokens() < budget + most_a_step_reads, "{} tokens against {budget}", r.tokens());
                // Three spans per document, as the ratio says.
                assert_eq!(r.spans_fed, (r.documents_fed as f64 * 3.0).round() as usize);
                // The documents are the document run's, in its order: a prefix of its stream.
                let docs: Vec<usize> = p.schedule.iter().copied().filter(|&i| i >= n_spans).collect();
                assert_eq!(docs[..], reference.schedule[..docs.len()]);
            }
            assert_eq!(fifth.report.matched_to.as_ref().unwrap().fraction, 0.2);
            assert!(fifth.report.documents_fed * 4 < equal.report.documents_fed);
        }
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
        let shuffled = schedule(&mix(MixStrategy::DocumentOnly, 0.0, &[]), &train, &tokens, 0, ExampleLabels { doc_codes: &c, ..Default::default() }, 9).unwrap();
        let b = schedule(&balanced(1.0), &train, &tokens, 0, ExampleLabels { doc_codes: &c, ..Default::default() }, 9).unwrap();
        assert_eq!(shuffled.report.documents_fed, 500);
        assert_eq!(b.report.documents_fed, 500, "the same document exposure");
        assert_eq!(rare(&shuffled), 50);
        // Power 1: each rare example weighs 100 against 100/90 for a frequent one, so the
        // ten rare ones take 1000 / (1000 + 100) of the draws: about 455 of 500.
        assert!((420..=490).contains(&rare(&b)), "{} rare draws", rare(&b));
        assert_eq!(b, schedule(&balanced(1.0), &train, &tokens, 0, ExampleLabels { doc_codes: &c, ..Default::default() }, 9).unwrap(), "seeded");
        let err = schedule(&balanced(1.0), &train, &tokens, 0, ExampleLabels { doc_codes: &c[..99], ..Default::default() }, 9).unwrap_err();
        assert_eq!(err, MixError::Codes { docs: 100, codes: 99 });
        // The codes do not touch a shuffled schedule.
        assert_eq!(shuffled, schedule(&mix(MixStrategy::DocumentOnly, 0.0, &[]), &train, &tokens, 0, ExampleLabels::default(), 9).unwrap());
    }

    #[test]
    fn source_weights_lift_a_small_source_and_the_record_gives_its_share() {
        // 20 gold spans among 980 table spans: 2% of the spans.
        let sources: Vec<String> = (0..1000).map(|i| if i < 20 { "gold_evidence" } else { "description" }.to_string()).collect();
        let (n_spans, tokens) = (1000, vec![10; 1100]);
        let plain = mix(MixStrategy::Mixed, 0.5, &[]);
        let weighted = Mix { sources: [("gold_evidence".to_string(), 49.0)].into_iter().collect(), ..plain.clone() };
        let labels = ExampleLabels { span_sources: &sources, ..Default::default() };
        let train = by_epochs(4.0);
        let a = schedule(&plain, &train, &tokens, n_spans, labels, 3).unwrap();
        let b = schedule(&weighted, &train, &tokens, n_spans, labels, 3).unwrap();
        // The same counts (400 documents, 400 spans) and the same documents in the same order.
        assert_eq!((a.report.spans_fed, a.report.documents_fed), (b.report.spans_fed, b.report.documents_fed));
        let docs = |p: &MixPlan| p.schedule.iter().copied().filter(|&i| i >= n_spans).collect::<Vec<_>>();
        assert_eq!(docs(&a), docs(&b));
        let gold = |p: &MixPlan| p.report.span_sources["gold_evidence"].clone();
        assert_eq!((gold(&a).examples, gold(&a).weight, a.report.span_sources["description"].examples), (20, 1.0, 980));
        // Unweighted: about 2% gold. Weight 49: 20·49 / (20·49 + 980) = half of the draws.
        assert!(gold(&a).share < 0.05, "{}", gold(&a).share);
        assert!((0.42..=0.58).contains(&gold(&b).share), "{}", gold(&b).share);
        assert_eq!(gold(&b).fed + b.report.span_sources["description"].fed, b.report.spans_fed);
        assert_eq!(b, schedule(&weighted, &train, &tokens, n_spans, labels, 3).unwrap(), "seeded");
        let err = schedule(&weighted, &train, &tokens, n_spans, ExampleLabels { span_sources: &sources[..10], ..Default::default() }, 3).unwrap_err();
        assert_eq!(err, MixError::Sources { spans: 1000, sources: 10 });
    }
}
