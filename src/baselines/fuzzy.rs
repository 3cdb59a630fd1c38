//! Fuzzy matching: character n-gram TF-IDF cosine similarity between stretches of
//! the note and the code terms (descriptions and inclusion terms). The honest
//! non-learned rival of the dictionary on reworded mentions: "diabetis mellitus
//! type 2" still shares most of its n-grams with "Type 2 diabetes mellitus".
//!
//! - Features follow scikit-learn's `TfidfVectorizer(analyzer="char_wb")`: the words
//!   of [`tokenize`] (lower-cased; punctuation never makes an n-gram), each padded
//!   with a space on both sides, cut into n-grams of every length in `ngram_range`.
//!   The idf is fitted on the code side, one "document" per distinct term of a code
//!   in scope: `idf(g) = ln((1 + n) / (1 + df(g))) + 1`; a vector's weight of `g` is
//!   `tf · idf(g)` (`tf` = `1 + ln(count)` when sublinear), scaled to unit L2 norm.
//!   N-grams no term has are dropped from note vectors, as `transform` drops them.
//! - Units: with `unit = "window"`, every run of 1 to `window_words` words inside
//!   one sentence ([`crate::text::sentence_bounds`]; an unpunctuated sentence is read in
//!   overlapping stretches of 40 words), so a mention in a sentence full of template
//!   words still matches closely; with `unit = "sentence"`, whole sentences.
//! - A code's score in a document is the highest cosine between one of its terms and
//!   a unit not under a negation, family-history, ruled-out or resolved cue: the
//!   dictionary's cues and sentence scope ([`negation`]). A window can take in the
//!   cue that scopes it ("No evidence of pneumonia"), so a cue inside it counts too
//!   ([`negation::negated_within`]), except for terms that hold a cue word themselves
//!   ("Urinary tract infection, site not specified"), checked as the dictionary
//!   checks a mention. For a whole sentence the check covers the words from the
//!   first to the last that share an n-gram with the term.
//! - Only codes scoring at least `min_similarity` are kept, and of those the `top_k`
//!   best per document: a code outside them is unscored (never predicted, ranked
//!   below every scored code), which keeps predictions small when the scope is the
//!   whole code set. Each kept code carries its best unit's character offsets,
//!   written as evidence when it is predicted.
//!
//! Scoring is exact but never compares every unit with every term. An inverted index
//! (n-gram -> terms and weights) gives, for each sentence, every term sharing an
//! n-gram with it and `sqrt(Σ w_t(g)²)` over the shared n-grams, which bounds the
//! cosine of the term with any unit of the sentence (Cauchy-Schwarz). Terms are
//! scored unit by unit, best bound first, only while the bound reaches the floor,
//! the document's k-th best code so far (a code below it stays out of the kept
//! `top_k`) and their own code's best. Among windows only those starting and ending
//! on a word that shares an n-gram with the term are scored: trimming a word that
//! shares none keeps the dot product and shrinks the norm, so the best window is
//! one of them.

use super::negation;

/// Words two stretches of an unpunctuated sentence share, so a mention across the cut is read whole.
const STRETCH_OVERLAP: usize = 12;
use super::kind::{matching_scope, record_of, BaselineError, BaselineKind, CodeScore, CodeScorer, Fit, FitData, Fitted, Scores};
use crate::config::{FuzzyParams, FuzzyUnit};
use crate::data::Document;
use crate::icd::{Code, CodeEntry, CodeSet};
use crate::text::{note_form, tokenize, Token};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

/// Calls `f` with each `char_wb` n-gram of `word`, lengths `lo..=hi` in order: the word padded
/// with a space on each side, every n-gram of each length; a padded word no longer than n is
/// one n-gram (itself) and longer lengths add nothing, as scikit-learn counts a short word once.
pub fn for_each_ngram(word: &str, [lo, hi]: [usize; 2], mut f: impl FnMut(&str)) {
    let padded = format!(" {word} ");
    let at: Vec<usize> = padded.char_indices().map(|(i, _)| i).chain(std::iter::once(padded.len())).collect();
    let len = at.len() - 1;
    for n in lo..=hi {
        if n >= len {
            f(&padded);
            break;
        }
        for i in 0..=len - n {
            f(&padded[at[i]..at[i + n]]);
        }
    }
}

/// What was built, for `baseline.json` and the run log.
#[derive(Debug, Clone, Serialize)]
pub struct FuzzyReport {
    /// Codes in scope.
    pub codes: usize,
    /// Distinct terms (word sequences) over those codes: the idf's documents.
    pub terms: usize,
    /// Distinct n-grams of the terms: the feature space.
    pub ngrams: usize,
    /// Entries of the inverted index (non-zero term weights).
    pub postings: usize,
    pub build_seconds: f64,
}

/// The inverted index over the terms of the codes in scope.
pub struct FuzzyCoder {
    codes: Vec<Code>,
    grams: HashMap<String, u32>,
    idf: Vec<f64>,
    /// The code (index into `codes`) of each term.
    term_code: Vec<u32>,
    /// Terms holding a cue word themselves ("..., not elsewhere classified"): for them a cue
    /// inside a unit does not count, only one outside it, as in the dictionary.
    term_has_cue: Vec<bool>,
    /// N-gram `g`'s postings are `postings[offsets[g]..offsets[g + 1]]`: (term, weight), by term.
    offsets: Vec<usize>,
    postings: Vec<(u32, f32)>,
    /// The same weights by term: term `t`'s vector is `vectors[vector_offsets[t]..vector_offsets[t + 1]]`,
    /// (n-gram, weight) by n-gram.
    vector_offsets: Vec<usize>,
    vectors: Vec<(u32, f32)>,
    params: FuzzyParams,
    pub report: FuzzyReport,
}

impl FuzzyCoder {
    /// Indexes the descriptions (and inclusion terms) of `scope` (billable codes of the whole set when `None`).
    pub fn build(codes: &CodeSet, scope: Option<&[Code]>, params: &FuzzyParams) -> FuzzyCoder {
        let entries: Vec<&CodeEntry> = match scope {
            Some(s) => s.iter().filter_map(|c| codes.get(c)).collect(),
            None => codes.billable().collect(),
        };
        let mut terms = Vec::new();
        for (id, entry) in entries.iter().enumerate() {
            let mut forms = vec![entry.description.as_str()];
            if params.inclusion_terms {
                forms.extend(entry.inclusion_terms.iter().map(String::as_str));
            }
            // The table's wording and the note form (parentheticals dropped) may differ in words.
            let words: BTreeSet<Vec<String>> = forms
                .into_iter()
                .flat_map(|f| [f.to_string(), note_form(f)])
                .map(|f| tokenize(&f).into_iter().map(|t| t.word).collect::<Vec<_>>())
                .filter(|w| !w.is_empty())
                .collect();
            terms.extend(words.into_iter().map(|w| (id as u32, w)));
        }
        FuzzyCoder::from_terms(entries.iter().map(|e| e.code.clone()).collect(), &terms, params)
    }

    /// Fits the idf on `terms` (code index, words) and builds the inverted index.
    pub fn from_terms(codes: Vec<Code>, terms: &[(u32, Vec<String>)], params: &FuzzyParams) -> FuzzyCoder {
        let started = Instant::now();
        let mut grams: HashMap<String, u32> = HashMap::new();
        // Each term's n-gram counts, sorted by n-gram id.
        let counts: Vec<Vec<(u32, u32)>> = terms
            .iter()
            .map(|(_, words)| {
                let mut ids = Vec::new();
                for w in words {
                    for_each_ngram(w, params.ngram_range, |g| {
                        let id = match grams.get(g) {
                            Some(&id) => id,
                            None => {
                                let id = grams.len() as u32;
                                grams.insert(g.to_string(), id);
                                id
                            }
                        };
                        ids.push(id);
                    });
                }
                tally(ids)
            })
            .collect();
        let mut df = vec![0usize; grams.len()];
        for row in &counts {
            for &(g, _) in row {
                df[g as usize] += 1;
            }
        }
        let n = terms.len() as f64;
        let idf: Vec<f64> = df.iter().map(|&d| ((1.0 + n) / (1.0 + d as f64)).ln() + 1.0).collect();
        let mut offsets = vec![0usize; grams.len() + 1];
        for (g, &d) in df.iter().enumerate() {
            offsets[g + 1] = offsets[g] + d;
        }
        // Filled in term order, so each n-gram's postings are sorted by term.
        let mut postings = vec![(0u32, 0f32); offsets[grams.len()]];
        let mut fill = offsets.clone();
        let mut vector_offsets = vec![0usize];
        let mut vectors = Vec::with_capacity(postings.len());
        for (t, row) in counts.iter().enumerate() {
            let weights: Vec<f64> = row.iter().map(|&(g, c)| tf(c, params.sublinear_tf) * idf[g as usize]).collect();
            let norm = weights.iter().map(|w| w * w).sum::<f64>().sqrt();
            for (&(g, _), w) in row.iter().zip(weights) {
                let w = (w / norm) as f32;
                postings[fill[g as usize]] = (t as u32, w);
                fill[g as usize] += 1;
                vectors.push((g, w));
            }
            vector_offsets.push(vectors.len());
        }
        let report = FuzzyReport {
            codes: codes.len(),
            terms: terms.len(),
            ngrams: grams.len(),
            postings: postings.len(),
            build_seconds: started.elapsed().as_secs_f64(),
        };
        FuzzyCoder {
            codes,
            grams,
            idf,
            term_code: terms.iter().map(|(c, _)| *c).collect(),
            term_has_cue: terms.iter().map(|(_, w)| negation::contains_cue(&w.iter().map(String::as_str).collect::<Vec<_>>())).collect(),
            offsets,
            postings,
            vector_offsets,
            vectors,
            params: params.clone(),
            report,
        }
    }

    fn postings(&self, g: u32) -> &[(u32, f32)] {
        &self.postings[self.offsets[g as usize]..self.offsets[g as usize + 1]]
    }

    /// Term `t`'s unit-norm vector, (n-gram, weight) by n-gram.
    fn vector(&self, t: u32) -> &[(u32, f32)] {
        &self.vectors[self.vector_offsets[t as usize]..self.vector_offsets[t as usize + 1]]
    }

    /// Term `t`'s weight of n-gram `g`, if it has `g`.
    #[cfg(test)]
    fn weight(&self, g: u32, t: u32) -> Option<f64> {
        let v = self.vector(t);
        v.binary_search_by_key(&g, |e| e.0).ok().map(|i| f64::from(v[i].1))
    }

    /// The n-grams of a note word that some term has, with their counts, sorted by id.
    fn word_grams(&self, word: &str) -> Vec<(u32, u32)> {
        let mut ids = Vec::new();
        for_each_ngram(word, self.params.ngram_range, |g| ids.extend(self.grams.get(g)));
        tally(ids)
    }

    /// The kept codes of one text, best first (equal scores in code order).
    fn score_text(&self, text: &str, scratch: &mut Scratch) -> Vec<CodeScore> {
        let tokens = tokenize(text);
        let scopes = negation::Scopes::new(text, &tokens);
        let bounds = scopes.bounds();
        let mut cache: HashMap<&str, Vec<(u32, u32)>> = HashMap::new();
        for t in &tokens {
            if !cache.contains_key(t.word.as_str()) {
                cache.insert(t.word.as_str(), self.word_grams(&t.word));
            }
        }
        let words: Vec<&[(u32, u32)]> = tokens.iter().map(|t| cache[t.word.as_str()].as_slice()).collect();
        let mut best = Best::default();
        let mut start = 0;
        while start < tokens.len() {
            // Tokens never hold a sentence-ending character, so each lies in one sentence.
            let sentence = bounds.partition_point(|&b| b < tokens[start].start);
            let sentence_end = start + tokens[start..].iter().take_while(|t| bounds.partition_point(|&b| b < t.start) == sentence).count();
            // Unpunctuated text (a pre-processed MIMIC note is one "sentence") is read in
            // overlapping stretches of LONG_SENTENCE words, so a unit stays sentence-sized.
            let end = sentence_end.min(start + negation::LONG_SENTENCE);
            let s = Sentence { tokens: &tokens, scopes: &scopes, words: &words[start..end], start };
            self.score_sentence(&s, scratch, &mut best);
            start = if end == sentence_end { end } else { end - STRETCH_OVERLAP };
        }
        let mut kept: Vec<CodeScore> = best.by_code.into_iter().map(|(code, (score, from, to))| CodeScore { code, score, span: Some((from, to)) }).collect();
        kept.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.code.cmp(&b.code)));
        kept.truncate(self.params.top_k);
        kept
    }

    /// Raises the codes' best scores with the sentence's units.
    fn score_sentence(&self, s: &Sentence, scratch: &mut Scratch, best: &mut Best) {
        let Scratch { cover, touched, distinct, candidates, unit } = scratch;
        distinct.clear();
        distinct.extend(s.words.iter().flat_map(|w| w.iter().map(|&(g, _)| g)));
        distinct.sort_unstable();
        distinct.dedup();
        for &g in distinct.iter() {
            for &(t, w) in self.postings(g) {
                let slot = &mut cover[t as usize];
                if *slot == 0.0 {
                    touched.push(t);
                }
                *slot += f64::from(w) * f64::from(w);
            }
        }
        let (k, floor) = (self.params.top_k, self.params.min_similarity);
        let mut bar = best.bar(k, floor);
        candidates.clear();
        for &t in touched.iter() {
            // The rounding margin keeps the bound an upper bound.
            let bound = cover[t as usize].sqrt() + 1e-9;
            cover[t as usize] = 0.0;
            if bound >= bar {
                candidates.push((bound, t));
            }
        }
        touched.clear();
        // Highest bound first: good scores come early and raise the bar for the rest.
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut norms: Option<Vec<Vec<f64>>> = None;
        for (i, &(bound, t)) in candidates.iter().enumerate() {
            if i % 256 == 255 {
                bar = best.bar(k, floor);
            }
            if bound < bar {
                break;
            }
            let code = self.term_code[t as usize];
            let so_far = best.score(code);
            if bound <= so_far {
                continue;
            }
            let norms = norms.get_or_insert_with(|| self.unit_norms(s));
            if let Some((score, first, last)) = self.best_unit(s, t, norms, so_far, distinct, unit) {
                best.by_code.insert(code, (score, s.tokens[first].start, s.tokens[last].end));
            }
        }
    }

    /// Squared norms of the sentence's units: `norms[a][k]` for the words `a..=a + k` (windows),
    /// or `norms[0][0]` for the whole sentence.
    fn unit_norms(&self, s: &Sentence) -> Vec<Vec<f64>> {
        let len = s.words.len();
        let (starts, longest) = match self.params.unit {
            FuzzyUnit::Window => (len, self.params.window_words),
            FuzzyUnit::Sentence => (1, len),
        };
        let sublinear = self.params.sublinear_tf;
        let mut counts: HashMap<u32, u32> = HashMap::new();
        (0..starts)
            .map(|a| {
                counts.clear();
                let mut sum = 0.0;
                (a..len.min(a + longest))
                    .map(|b| {
                        for &(g, c) in s.words[b] {
                            let old = counts.entry(g).or_insert(0);
                            let idf = self.idf[g as usize];
                            sum += (tf(*old + c, sublinear).powi(2) - tf(*old, sublinear).powi(2)) * idf * idf;
                            *old += c;
                        }
                        sum
                    })
                    .collect()
            })
            .collect()
    }

    /// The best unit of the sentence for term `t` scoring above `so_far` and not under a cue:
    /// (cosine, first token, last token) of its evidence. `distinct`: the sentence's n-grams, sorted.
    fn best_unit(&self, s: &Sentence, t: u32, norms: &[Vec<f64>], so_far: f64, distinct: &[u32], buf: &mut UnitBuffers) -> Option<(f64, usize, usize)> {
        let sublinear = self.params.sublinear_tf;
        let UnitBuffers { shared, hits, hit_offsets, tf_of, units } = buf;
        // The n-grams the term shares with the sentence, as (n-gram, idf · term weight).
        shared.clear();
        let (v, mut j) = (self.vector(t), 0);
        for &(g, w) in v {
            while j < distinct.len() && distinct[j] < g {
                j += 1;
            }
            if distinct.get(j) == Some(&g) {
                shared.push((g, self.idf[g as usize] * f64::from(w)));
            }
        }
        // Per word: its shared n-grams as (n-gram, count, idf · term weight), in `hits[hit_offsets[i]..hit_offsets[i + 1]]`.
        hits.clear();
        hit_offsets.clear();
        hit_offsets.push(0);
        for w in s.words {
            for &(g, c) in w.iter() {
                if let Ok(i) = shared.binary_search_by_key(&g, |e| e.0) {
                    hits.push((g, c, shared[i].1));
                }
            }
            hit_offsets.push(hits.len());
        }
        let len = s.words.len();
        let is_hit = |i: usize| hit_offsets[i + 1] > hit_offsets[i];
        let first_hit = (0..len).find(|&i| is_hit(i))?;
        let last_hit = (0..len).rev().find(|&i| is_hit(i))?;
        // The dot product of the words `from..=to` with the term, reported after each word.
        let mut dot = |from: usize, to: usize, each: &mut dyn FnMut(usize, f64)| {
            tf_of.clear();
            let mut sum = 0.0;
            for b in from..=to {
                for &(g, c, coef) in &hits[hit_offsets[b]..hit_offsets[b + 1]] {
                    let k = match tf_of.iter().position(|e| e.0 == g) {
                        Some(k) => k,
                        None => {
                            tf_of.push((g, 0));
                            tf_of.len() - 1
                        }
                    };
                    let old = tf_of[k].1;
                    sum += (tf(old + c, sublinear) - tf(old, sublinear)) * coef;
                    tf_of[k].1 = old + c;
                }
                each(b, sum);
            }
        };
        // (cosine, first word, last word of the unit, first and last word the cue check covers)
        units.clear();
        match self.params.unit {
            FuzzyUnit::Window => {
                let longest = self.params.window_words;
                for a in (first_hit..=last_hit).filter(|&a| is_hit(a)) {
                    let to = (a + longest).min(len) - 1;
                    dot(a, to, &mut |b, sum| {
                        if is_hit(b) && norms[a][b - a] > 0.0 {
                            units.push(((sum / norms[a][b - a].sqrt()).min(1.0), a, b, a, b));
                        }
                    });
                }
            }
            FuzzyUnit::Sentence => {
                let mut total = 0.0;
                dot(0, len - 1, &mut |_, sum| total = sum);
                if norms[0][len - 1] > 0.0 {
                    // The cue check covers the words the term matches; the evidence is the sentence.
                    units.push(((total / norms[0][len - 1].sqrt()).min(1.0), 0, len - 1, first_hit, last_hit));
                }
            }
        }
        units.sort_by(|x, y| y.0.total_cmp(&x.0).then((x.1, x.2).cmp(&(y.1, y.2))));
        units
            .iter()
            .take_while(|u| u.0 > so_far && u.0 >= self.params.min_similarity)
            .find(|&&(_, _, _, c0, c1)| !(self.params.negation && self.under_cue(s, t, s.start + c0, s.start + c1)))
            .map(|&(score, a, b, _, _)| (score, s.start + a, s.start + b))
    }

    fn under_cue(&self, s: &Sentence, t: u32, first: usize, last: usize) -> bool {
        if self.term_has_cue[t as usize] {
            negation::negated(s.tokens, first, last, s.scopes)
        } else {
            negation::negated_within(s.tokens, first, last, s.scopes)
        }
    }
}

impl CodeScorer for FuzzyCoder {
    fn codes(&self) -> &[Code] {
        &self.codes
    }

    fn score(&self, docs: &[&Document]) -> Result<Scores, BaselineError> {
        let terms = self.term_code.len();
        Ok(Scores::Sparse(docs.par_iter().map_init(|| Scratch::new(terms), |scratch, d| self.score_text(&d.text, scratch)).collect()))
    }
}

/// One sentence of a tokenized text: `tokens[start..]`, as many as it has words.
struct Sentence<'a> {
    /// Every token of the text, and the text's sentence bounds (for the cue check).
    tokens: &'a [Token],
    scopes: &'a negation::Scopes,
    /// The n-grams (id, count) of each word of the sentence.
    words: &'a [&'a [(u32, u32)]],
    start: usize,
}

/// Each scored code's best (score, evidence start, end) in the document so far.
#[derive(Default)]
struct Best {
    by_code: HashMap<u32, (f64, usize, usize)>,
}

impl Best {
    fn score(&self, code: u32) -> f64 {
        self.by_code.get(&code).map_or(0.0, |b| b.0)
    }

    /// What a term must reach to matter: the floor, and once `k` codes are scored, the k-th
    /// best score (a code below it now stays out of the document's kept `k`).
    fn bar(&self, k: usize, floor: f64) -> f64 {
        if self.by_code.len() < k {
            return floor;
        }
        let mut scores: Vec<f64> = self.by_code.values().map(|b| b.0).collect();
        let (_, kth, _) = scores.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        floor.max(*kth)
    }
}

/// Per-thread buffers, reused from sentence to sentence.
struct Scratch {
    /// Each term's sum of squared weights of the n-grams it shares with the sentence.
    cover: Vec<f64>,
    touched: Vec<u32>,
    distinct: Vec<u32>,
    candidates: Vec<(f64, u32)>,
    unit: UnitBuffers,
}

impl Scratch {
    fn new(terms: usize) -> Scratch {
        Scratch { cover: vec![0.0; terms], touched: Vec::new(), distinct: Vec::new(), candidates: Vec::new(), unit: UnitBuffers::default() }
    }
}

#[derive(Default)]
struct UnitBuffers {
    shared: Vec<(u32, f64)>,
    hits: Vec<(u32, u32, f64)>,
    hit_offsets: Vec<usize>,
    tf_of: Vec<(u32, u32)>,
    units: Vec<(f64, usize, usize, usize, usize)>,
}

fn tf(count: u32, sublinear: bool) -> f64 {
    match count {
        0 => 0.0,
        c if sublinear => 1.0 + f64::from(c).ln(),
        c => f64::from(c),
    }
}

/// Sorted (id, count) pairs of a list of ids.
fn tally(mut ids: Vec<u32>) -> Vec<(u32, u32)> {
    ids.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for id in ids {
        match out.last_mut() {
            Some(last) if last.0 == id => last.1 += 1,
            _ => out.push((id, 1)),
        }
    }
    out
}

impl BaselineKind for FuzzyParams {
    fn fit(&self, data: &FitData<'_>) -> Result<Fit, BaselineError> {
        let coder = FuzzyCoder::build(data.codes, matching_scope(self.restrict_to_pool, data.dataset), self);
        let r = &coder.report;
        let summary = format!("fuzzy: {} codes, {} terms, {} character n-grams, {} postings; indexed in {:.2} s", r.codes, r.terms, r.ngrams, r.postings, r.build_seconds);
        let record = record_of("training", r)?;
        Ok(Fit { fitted: Fitted::Scorer(Box::new(coder)), summary, record, training: None })
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Split;

    fn ngrams(word: &str, range: [usize; 2]) -> Vec<String> {
        let mut out = Vec::new();
        for_each_ngram(word, range, |g| out.push(g.to_string()));
        out
    }

    fn doc(text: &str) -> Document {
        Document { id: "d".into(), split: Split::Test, text: text.into(), codes: Vec::new(), evidence: Vec::new() }
    }

    /// The kept scores of one text, by code.
    fn scores(coder: &FuzzyCoder, text: &str) -> HashMap<String, CodeScore> {
        let Scores::Sparse(rows) = coder.score(&[&doc(text)]).unwrap() else { panic!("fuzzy scores are sparse") };
        rows[0].iter().map(|s| (coder.codes()[s.code as usize].to_string(), *s)).collect()
    }

    fn real(codes: &[&str], params: &FuzzyParams) -> FuzzyCoder {
        let scope: Vec<Code> = codes.iter().map(|c| Code::parse(c).unwrap()).collect();
        FuzzyCoder::build(CodeSet::builtin().unwrap(), Some(&scope), params)
    }

    const SCOPE: &[&str] = &["E11.9", "E10.9", "I10", "J44.9", "E78.5", "J18.9", "K21.9", "N39.0"];

    #[test]
    fn char_wb_ngrams_pad_words_and_count_short_words_once() {
        assert_eq!(ngrams("type", [3, 5]), [" ty", "typ", "ype", "pe ", " typ", "type", "ype ", " type", "type "]);
        // " dm " is 4 characters: two 3-grams, itself as the 4-gram, then nothing longer.
        assert_eq!(ngrams("dm", [3, 5]), [" dm", "dm ", " dm "]);
        assert_eq!(ngrams("a", [3, 5]), [" a "]);
        assert_eq!(ngrams("é1", [3, 3]), [" é1", "é1 "]);
    }

    #[test]
    fn idf_and_unit_norm_weights_match_a_hand_computed_toy() {
        let codes: Vec<Code> = ["A00.0", "A00.1", "B00.0"].iter().map(|c| Code::parse(c).unwrap()).collect();
        let terms: Vec<(u32, Vec<String>)> = [(0, "ab"), (1, "abc"), (2, "b")].iter().map(|&(c, w)| (c, vec![w.to_string()])).collect();
        let p = FuzzyParams { ngram_range: [3, 3], ..FuzzyParams::default() };
        let coder = FuzzyCoder::from_terms(codes, &terms, &p);
        // 3-grams: " ab", "ab " | " ab", "abc", "bc " | " b ". n = 3 terms; " ab" is in 2 of them.
        assert_eq!((coder.report.terms, coder.report.ngrams, coder.report.postings), (3, 5, 6));
        let (common, rare) = ((4.0f64 / 3.0).ln() + 1.0, 2.0f64.ln() + 1.0);
        let g = |s: &str| coder.grams[s];
        assert!((coder.idf[g(" ab") as usize] - common).abs() < 1e-12);
        assert!((coder.idf[g("bc ") as usize] - rare).abs() < 1e-12);
        // "ab" = (common, rare) / sqrt(common² + rare²); "abc" = (common, rare, rare) / sqrt(common² + 2 rare²).
        let (n_ab, n_abc) = ((common * common + rare * rare).sqrt(), (common * common + 2.0 * rare * rare).sqrt());
        assert!((coder.weight(g(" ab"), 0).unwrap() - common / n_ab).abs() < 1e-6);
        assert!((coder.weight(g("ab "), 0).unwrap() - rare / n_ab).abs() < 1e-6);
        assert!((coder.weight(g("abc"), 1).unwrap() - rare / n_abc).abs() < 1e-6);
        assert_eq!(coder.weight(g(" b "), 2), Some(1.0));
        assert_eq!(coder.weight(g("abc"), 0), None);
        // The note "ab" is term 0 exactly, shares only " ab" with term 1, nothing with term 2.
        let s = scores(&coder, "ab");
        assert!((s["A00.0"].score - 1.0).abs() < 1e-6);
        let cos = common * common / (n_ab * n_abc);
        assert!((cos - 0.286710).abs() < 1e-6, "{cos}");
        assert!((s["A00.1"].score - cos).abs() < 1e-6, "{}", s["A00.1"].score);
        assert!(!s.contains_key("B00.0"));
    }

    #[test]
    fn misspelled_and_reordered_mentions_score_their_code_first() {
        let coder = real(SCOPE, &FuzzyParams::default());
        let text = "HPI:\nThe patient is known to have diabetis mellitus type 2. Hyperlipidaemia, on a statin.";
        let s = scores(&coder, text);
        let rank = |code: &str| s.get(code).map_or(0.0, |s| s.score);
        eprintln!("{:?}", SCOPE.iter().map(|c| (c, rank(c))).collect::<Vec<_>>());
        assert!(rank("E11.9") > 0.6, "{}", rank("E11.9"));
        // "type 2" and "type 1" differ in one n-gram (" 2 " against " 1 "): ahead, not far ahead.
        assert!(rank("E11.9") > rank("E10.9"), "type 2 beats type 1");
        assert!(rank("E78.5") > 0.5, "{}", rank("E78.5"));
        for other in ["I10", "J44.9", "J18.9", "K21.9", "N39.0"] {
            assert!(rank(other) < 0.3, "{other}: {}", rank(other));
        }
        // The evidence is the best window: the mention, not its template words.
        let (start, end) = s["E11.9"].span.unwrap();
        assert_eq!(crate::data::slice_chars(text, start, end), Some("diabetis mellitus type 2"));
    }

    #[test]
    fn windows_beat_whole_sentences_full_of_template_words() {
        // A scope whose terms have n-grams of the template words ("with", "and", "admission"...).
        let set = CodeSet::builtin().unwrap();
        let scope: Vec<Code> = set.billable_with_prefixes(&["E11".to_string(), "I1".to_string()]).into_iter().map(|e| e.code.clone()).collect();
        let text = "During the admission diabetis mellitus type 2 was treated and improved with diet.";
        let top = |unit| {
            let coder = FuzzyCoder::build(set, Some(&scope), &FuzzyParams { unit, ..FuzzyParams::default() });
            let Scores::Sparse(rows) = coder.score(&[&doc(text)]).unwrap() else { panic!() };
            (coder.codes()[rows[0][0].code as usize].to_string(), rows[0][0])
        };
        let ((code, window), (_, sentence)) = (top(FuzzyUnit::Window), top(FuzzyUnit::Sentence));
        assert_eq!(code, "E11.A");
        assert!(window.score > sentence.score + 0.1, "window {}, sentence {}", window.score, sentence.score);
        // E11.A, "Type 2 diabetes mellitus without complications in remission": "admission" shares
        // "ission" with "remission", so the best window takes it in, and no template word more.
        let (start, end) = window.span.unwrap();
        assert_eq!(crate::data::slice_chars(text, start, end), Some("admission diabetis mellitus type 2"));
        assert_eq!(sentence.span.map(|(s, e)| e - s), Some(text.chars().count() - 1), "the sentence, up to its full stop");
    }

    #[test]
    fn mentions_under_a_cue_are_not_scored() {
        let coder = real(SCOPE, &FuzzyParams::default());
        for text in [
            "No evidence of diabetis mellitus type 2.",
            "Family history of diabetes mellitus type 2 in the mother.",
            "Diabetes mellitus type 2 was ruled out.",
        ] {
            let s = scores(&coder, text);
            assert!(s.get("E11.9").is_none_or(|s| s.score < 0.3), "{text}: {:?}", s.get("E11.9"));
        }
        // A cue in another sentence, or after the mention, scopes nothing here.
        assert!(scores(&coder, "No fever. Diabetes mellitus type 2.")["E11.9"].score > 0.6);
        assert!(scores(&coder, "Diabetes mellitus type 2, no hypoglycemia.")["E11.9"].score > 0.6);
        // A term's own cue word ("site not specified") does not negate its mention.
        assert!(scores(&coder, "Urinary tract infection, site not specified.")["N39.0"].score > 0.99);
        let plain = real(SCOPE, &FuzzyParams { negation: false, ..FuzzyParams::default() });
        assert!(scores(&plain, "No evidence of diabetis mellitus type 2.")["E11.9"].score > 0.6);
    }

    #[test]
    fn floor_and_top_k_bound_what_is_kept() {
        let text = "Type 2 diabetes mellitus without complications and essential hypertension.";
        let all = scores(&real(SCOPE, &FuzzyParams { min_similarity: 0.0, ..FuzzyParams::default() }), text);
        let floored = scores(&real(SCOPE, &FuzzyParams::default()), text);
        assert!(all.len() > floored.len() && floored.values().all(|s| s.score >= 0.2));
        let top = scores(&real(SCOPE, &FuzzyParams { top_k: 1, ..FuzzyParams::default() }), text);
        assert_eq!(top.keys().collect::<Vec<_>>(), ["E11.9"]);
    }

    /// Every window of every sentence against every term, vectors built in full.
    fn brute_force(coder: &FuzzyCoder, text: &str) -> HashMap<u32, f64> {
        let tokens = tokenize(text);
        let bounds = crate::text::sentence_bounds(text);
        let sentence_of = |t: &Token| bounds.partition_point(|&b| b < t.start);
        let mut best: HashMap<u32, f64> = HashMap::new();
        for a in 0..tokens.len() {
            for b in a..tokens.len().min(a + coder.params.window_words) {
                if sentence_of(&tokens[b]) != sentence_of(&tokens[a]) {
                    break;
                }
                let ids: Vec<u32> = tokens[a..=b].iter().flat_map(|t| coder.word_grams(&t.word).into_iter().flat_map(|(g, c)| std::iter::repeat_n(g, c as usize))).collect();
                let v: Vec<(u32, f64)> = tally(ids).into_iter().map(|(g, c)| (g, tf(c, true) * coder.idf[g as usize])).collect();
                let norm = v.iter().map(|(_, w)| w * w).sum::<f64>().sqrt();
                for t in 0..coder.term_code.len() as u32 {
                    let cos = v.iter().filter_map(|&(g, w)| Some(w * coder.weight(g, t)?)).sum::<f64>() / norm;
                    let e = best.entry(coder.term_code[t as usize]).or_insert(0.0);
                    *e = e.max(cos);
                }
            }
        }
        best
    }

    #[test]
    fn pruned_scoring_equals_brute_force_over_every_window() {
        let p = FuzzyParams { negation: false, min_similarity: 0.0, top_k: 1000, window_words: 5, ..FuzzyParams::default() };
        let coder = real(SCOPE, &p);
        let text = "Pt w/ diabetis mellitus type 2 and essential hypertension; chronic obstructive lung dz.\nReflux of the esophagus, urinary infection. Pneumonia pneumonia organism unspecified.";
        let expected = brute_force(&coder, text);
        let got = scores(&coder, text);
        for (code, want) in expected.iter().filter(|(_, &w)| w > 0.0) {
            let name = coder.codes()[*code as usize].to_string();
            let have = got.get(&name).map_or(0.0, |s| s.score);
            assert!((have - want.min(1.0)).abs() < 1e-9, "{name}: pruned {have}, brute force {want}");
        }
        assert_eq!(got.len(), expected.values().filter(|&&w| w > 0.0).count());
        // With top_k = 3 the k-th best prunes terms, and the kept three are still the exact best three.
        let coder = real(SCOPE, &FuzzyParams { top_k: 3, ..p });
        let mut ranked: Vec<(f64, u32)> = expected.iter().map(|(&c, &w)| (w.min(1.0), c)).collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let Scores::Sparse(rows) = coder.score(&[&doc(text)]).unwrap() else { panic!() };
        assert_eq!(rows[0].len(), 3);
        for (kept, (want, code)) in rows[0].iter().zip(&ranked) {
            assert_eq!(kept.code, *code);
            assert!((kept.score - want).abs() < 1e-9);
        }
    }
}
