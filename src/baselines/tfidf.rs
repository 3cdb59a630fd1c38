//! TF-IDF + one-vs-rest logistic regression: the classic fast baseline, strong on
//! frequent codes and blind to codes no training document carries.
//!
//! Features follow scikit-learn's `TfidfVectorizer` with `smooth_idf`: over the
//! training split, `idf(t) = ln((1 + n) / (1 + df(t))) + 1`; a document's weight of
//! `t` is `tf · idf(t)` (`tf` = count, or `1 + ln(count)` when sublinear), and each
//! row is scaled to unit L2 norm. Each code seen in training gets a logistic
//! regression minimising `mean log-loss + l2/2 · |w|²` (bias unpenalised) by
//! full-batch Nesterov gradient descent with step `1/L`; codes never seen in
//! training get no classifier and score 0.

use super::kind::{load_json, record_of, save_json, sigmoid, training_data, BaselineError, BaselineKind, CodeScorer, Fit, FitData, Fitted, Scores, TrainingCost};
use crate::config::TfidfParams;
use crate::data::Document;
use crate::icd::Code;
use crate::text::tokenize;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Word n-grams of `text` (lower-cased words, n = 1..=max_ngram, joined by one space).
pub fn ngrams(text: &str, max_ngram: usize) -> Vec<String> {
    let words: Vec<String> = tokenize(text).into_iter().map(|t| t.word).collect();
    let mut out = Vec::new();
    for n in 1..=max_ngram.max(1) {
        out.extend(words.windows(n).map(|w| w.join(" ")));
    }
    out
}

/// A sparse row: feature ids ascending, with their weights.
pub type SparseRow = Vec<(u32, f64)>;

/// The TF-IDF vocabulary and idf weights fitted on the training split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Vectorizer {
    vocab: HashMap<String, u32>,
    idf: Vec<f64>,
    max_ngram: usize,
    sublinear_tf: bool,
}

impl Vectorizer {
    pub fn fit(texts: &[&str], params: &TfidfParams) -> Vectorizer {
        let mut df: HashMap<String, usize> = HashMap::new();
        let mut total: HashMap<String, usize> = HashMap::new();
        for text in texts {
            let grams = ngrams(text, params.max_ngram);
            let mut in_doc = HashSet::new();
            for g in grams {
                *total.entry(g.clone()).or_default() += 1;
                if in_doc.insert(g.clone()) {
                    *df.entry(g).or_default() += 1;
                }
            }
        }
        let mut kept: Vec<(String, usize)> = df.into_iter().filter(|(_, d)| *d >= params.min_df).collect();
        if params.max_features > 0 && kept.len() > params.max_features {
            // Most frequent over the corpus first, ties by term, so the cut is deterministic.
            kept.sort_by(|a, b| total[&b.0].cmp(&total[&a.0]).then_with(|| a.0.cmp(&b.0)));
            kept.truncate(params.max_features);
        }
        // Feature ids in term order, as scikit-learn's vocabulary_.
        kept.sort_by(|a, b| a.0.cmp(&b.0));
        let n = texts.len() as f64;
        let idf = kept.iter().map(|(_, d)| ((1.0 + n) / (1.0 + *d as f64)).ln() + 1.0).collect();
        let vocab = kept.into_iter().enumerate().map(|(i, (t, _))| (t, i as u32)).collect();
        Vectorizer { vocab, idf, max_ngram: params.max_ngram, sublinear_tf: params.sublinear_tf }
    }

    pub fn n_features(&self) -> usize {
        self.idf.len()
    }

    /// The feature id of an n-gram (words joined by one space), if it is in the vocabulary.
    pub fn feature(&self, term: &str) -> Option<u32> {
        self.vocab.get(term).copied()
    }

    pub fn idf(&self, feature: u32) -> f64 {
        self.idf[feature as usize]
    }

    /// The unit-norm TF-IDF row of `text`; n-grams outside the vocabulary are dropped.
    pub fn transform(&self, text: &str) -> SparseRow {
        let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
        for g in ngrams(text, self.max_ngram) {
            if let Some(&id) = self.vocab.get(&g) {
                *counts.entry(id).or_default() += 1;
            }
        }
        let mut row: SparseRow = counts
            .into_iter()
            .map(|(id, c)| {
                let tf = if self.sublinear_tf { 1.0 + (c as f64).ln() } else { c as f64 };
                (id, tf * self.idf[id as usize])
            })
            .collect();
        let norm = row.iter().map(|(_, v)| v * v).sum::<f64>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|(_, v)| *v /= norm);
        }
        row
    }
}

/// A binary logistic regression over sparse features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logistic {
    pub weights: Vec<f64>,
    pub bias: f64,
}

impl Logistic {
    pub fn margin(&self, x: &[(u32, f64)]) -> f64 {
        self.bias + x.iter().map(|&(j, v)| self.weights[j as usize] * v).sum::<f64>()
    }

    pub fn probability(&self, x: &[(u32, f64)]) -> f64 {
        sigmoid(self.margin(x))
    }
}

/// Fits one logistic regression per label column of `y` (`y[c][i]`: document `i` carries label `c`),
/// each minimising `mean_i log(1 + exp(-s_i (w·x_i + b))) + l2/2 · |w|²`, by Nesterov's
/// accelerated gradient for strongly convex functions: step `1/L` with
/// `L = max_i (|x_i|² + 1) / 4 + l2` (a bound on the Hessian), momentum
/// `(√κ - 1) / (√κ + 1)` with `κ = L / l2`. Starts from zero; no randomness.
/// All labels step together as sparse-dense products in libtorch (f64).
pub fn fit_logistic(x: &[SparseRow], y: &[Vec<bool>], n_features: usize, l2: f64, iterations: usize) -> Result<Vec<Logistic>, BaselineError> {
    let (n, c, f) = (x.len() as i64, y.len() as i64, n_features as i64);
    let lipschitz = x.iter().map(|r| r.iter().map(|(_, v)| v * v).sum::<f64>() + 1.0).fold(1.0, f64::max) / 4.0 + l2;
    let step = 1.0 / lipschitz;
    let root_kappa = (lipschitz / l2.max(1e-12)).sqrt();
    let momentum = (root_kappa - 1.0) / (root_kappa + 1.0);
    let (mut rows, mut cols, mut vals) = (Vec::new(), Vec::new(), Vec::new());
    for (i, row) in x.iter().enumerate() {
        for &(j, v) in row {
            rows.push(i as i64);
            cols.push(i64::from(j));
            vals.push(v);
        }
    }
    let nnz = vals.len() as i64;
    let opts = (Kind::Double, Device::Cpu);
    let values = Tensor::from_slice(&vals);
    let by_doc = Tensor::from_slice(&[rows.clone(), cols.clone()].concat()).view([2, nnz]);
    let by_feature = Tensor::from_slice(&[cols, rows].concat()).view([2, nnz]);
    let xm = Tensor::f_sparse_coo_tensor_indices_size(&by_doc, &values, [n, f], opts, false)?.f_coalesce()?;
    let xt = Tensor::f_sparse_coo_tensor_indices_size(&by_feature, &values, [f, n], opts, false)?.f_coalesce()?;
    let targets: Vec<f64> = (0..x.len()).flat_map(|i| y.iter().map(move |col| if col[i] { 1.0 } else { 0.0 })).collect();
    let targets = Tensor::from_slice(&targets).view([n, c]);
    let (w, b) = tch::no_grad(|| -> Result<(Tensor, Tensor), BaselineError> {
        let (mut w, mut b) = (Tensor::zeros([f, c], opts), Tensor::zeros([c], opts));
        let (mut w_prev, mut b_prev) = (w.copy(), b.copy());
        for _ in 0..iterations {
            let look = &w + (&w - &w_prev) * momentum;
            let look_b = &b + (&b - &b_prev) * momentum;
            let z = xm.f_mm(&look)? + &look_b;
            let r = (z.sigmoid() - &targets) / n.max(1) as f64;
            let grad = xt.f_mm(&r)? + &look * l2;
            let grad_b = r.sum_dim_intlist(0, false, Kind::Double);
            w_prev = w;
            b_prev = b;
            w = look - grad * step;
            b = look_b - grad_b * step;
        }
        Ok((w, b))
    })?;
    // Column-major copies: one contiguous weight vector per label.
    let w = Vec::<f64>::try_from(w.tr().contiguous().flatten(0, -1))?;
    let b = Vec::<f64>::try_from(b)?;
    Ok(w.chunks(n_features.max(1)).zip(b).take(y.len()).map(|(w, bias)| Logistic { weights: w.to_vec(), bias }).collect())
}

/// What training the TF-IDF baseline took, written beside its predictions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TfidfReport {
    pub train_docs: usize,
    pub features: usize,
    /// Non-zero entries of the training matrix.
    pub nonzeros: usize,
    /// Words of the training documents.
    pub tokens: u64,
    pub label_space: usize,
    /// Codes with a classifier (seen in training); the rest score 0.
    pub classifiers: usize,
    pub iterations: usize,
    pub parameters: usize,
    /// Multiply-adds of the two sparse products per iteration, times two: `4 · non-zeros · iterations · classifiers`.
    pub estimated_flops: f64,
    pub train_seconds: f64,
}

/// The trained baseline.
#[derive(Serialize, Deserialize)]
pub struct TfidfCoder {
    vectorizer: Vectorizer,
    codes: Vec<Code>,
    models: Vec<Option<Logistic>>,
    pub report: TfidfReport,
}

impl TfidfCoder {
    /// Fits the vectorizer on `train` and one classifier per code of `label_space` that `train` carries.
    pub fn train(train: &[&Document], label_space: &[Code], params: &TfidfParams) -> Result<TfidfCoder, BaselineError> {
        let started = Instant::now();
        if !train.iter().any(|d| !d.codes.is_empty()) {
            return Err(BaselineError::NoTrainingData);
        }
        let texts: Vec<&str> = train.iter().map(|d| d.text.as_str()).collect();
        let vectorizer = Vectorizer::fit(&texts, params);
        let x: Vec<SparseRow> = texts.par_iter().map(|t| vectorizer.transform(t)).collect();
        let nf = vectorizer.n_features();
        let labels: Vec<Vec<bool>> = label_space.iter().map(|code| train.iter().map(|d| d.codes.contains(code)).collect()).collect();
        let seen: Vec<usize> = (0..labels.len()).filter(|&c| labels[c].iter().any(|&p| p)).collect();
        let y: Vec<Vec<bool>> = seen.iter().map(|&c| labels[c].clone()).collect();
        let mut fitted = fit_logistic(&x, &y, nf, params.l2, params.iterations)?.into_iter();
        let models: Vec<Option<Logistic>> = (0..labels.len()).map(|c| if seen.binary_search(&c).is_ok() { fitted.next() } else { None }).collect();
        let classifiers = models.iter().flatten().count();
        let nonzeros: usize = x.iter().map(Vec::len).sum();
        let report = TfidfReport {
            train_docs: train.len(),
            features: nf,
            nonzeros,
            tokens: texts.iter().map(|t| tokenize(t).len() as u64).sum(),
            label_space: label_space.len(),
            classifiers,
            iterations: params.iterations,
            parameters: classifiers * (nf + 1),
            estimated_flops: 4.0 * nonzeros as f64 * params.iterations as f64 * classifiers as f64,
            train_seconds: started.elapsed().as_secs_f64(),
        };
        Ok(TfidfCoder { vectorizer, codes: label_space.to_vec(), models, report })
    }
}

/// The fitted vectorizer and classifiers, in the baseline's train stage.
const TFIDF_STATE: &str = "tfidf.json";

impl CodeScorer for TfidfCoder {
    fn codes(&self) -> &[Code] {
        &self.codes
    }

    fn score(&self, docs: &[&Document]) -> Result<Scores, BaselineError> {
        Ok(Scores::Dense(
            docs.par_iter()
                .map(|d| {
                    let x = self.vectorizer.transform(&d.text);
                    self.models.iter().map(|m| m.as_ref().map_or(0.0, |m| m.probability(&x))).collect()
                })
                .collect(),
        ))
    }

    fn save(&self, dir: &Path) -> Result<bool, BaselineError> {
        save_json(&dir.join(TFIDF_STATE), self)?;
        Ok(true)
    }
}

impl BaselineKind for TfidfParams {
    fn load(&self, dir: &Path) -> Result<Option<Box<dyn CodeScorer>>, BaselineError> {
        let coder: TfidfCoder = load_json(&dir.join(TFIDF_STATE))?;
        Ok(Some(Box::new(coder)))
    }

    fn fit(&self, data: &FitData<'_>) -> Result<Fit, BaselineError> {
        let (train, space) = training_data(data.dataset);
        let coder = TfidfCoder::train(&train, &space, self)?;
        let r = &coder.report;
        let summary = format!(
            "tfidf: {} features, {} non-zeros over {} training documents; {} of {} codes have a classifier ({} parameters); trained in {:.2} s",
            r.features, r.nonzeros, r.train_docs, r.classifiers, r.label_space, r.parameters, r.train_seconds
        );
        let training = TrainingCost { optimizer_steps: self.iterations, examples: r.train_docs as u64, tokens: r.tokens, padded_tokens: 0, estimated_flops: r.estimated_flops, seconds: r.train_seconds };
        let record = record_of("training", r)?;
        Ok(Fit { fitted: Fitted::Scorer(Box::new(coder)), summary, record, training: Some(training) })
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    fn params(max_ngram: usize, min_df: usize, sublinear_tf: bool) -> TfidfParams {
        TfidfParams { max_ngram, min_df, sublinear_tf, max_features: 0, ..TfidfParams::default() }
    }

    #[test]
    fn weights_match_hand_computed_tfidf() {
        let docs = ["the cat sat", "the dog sat sat", "a bird"];
        let v = Vectorizer::fit(&docs, &params(1, 1, false));
        assert_eq!(v.n_features(), 6);
        // n = 3: idf(the) = idf(sat) = ln(4/3) + 1, idf(cat) = ln(4/2) + 1.
        let common = (4.0f64 / 3.0).ln() + 1.0;
        let rare = 2.0f64.ln() + 1.0;
        assert!((v.idf(v.feature("the").unwrap()) - common).abs() < 1e-12);
        assert!((v.idf(v.feature("cat").unwrap()) - rare).abs() < 1e-12);
        // Document 2 raw: the = 1·common, dog = 1·rare, sat = 2·common, then unit norm.
        let norm = (common * common + rare * rare + 4.0 * common * common).sqrt();
        let row: HashMap<u32, f64> = v.transform(docs[1]).into_iter().collect();
        assert_eq!(row.len(), 3);
        assert!((row[&v.feature("the").unwrap()] - common / norm).abs() < 1e-12);
        assert!((row[&v.feature("dog").unwrap()] - rare / norm).abs() < 1e-12);
        assert!((row[&v.feature("sat").unwrap()] - 2.0 * common / norm).abs() < 1e-12);
        // Sublinear tf: sat counts 1 + ln 2.
        let v = Vectorizer::fit(&docs, &params(1, 1, true));
        let sat = (1.0 + 2.0f64.ln()) * common;
        let norm = (common * common + rare * rare + sat * sat).sqrt();
        let row: HashMap<u32, f64> = v.transform(docs[1]).into_iter().collect();
        assert!((row[&v.feature("sat").unwrap()] - sat / norm).abs() < 1e-12);
    }

    #[test]
    fn bigrams_min_df_and_max_features_shape_the_vocabulary() {
        let docs = ["the cat sat", "the cat ran", "a bird"];
        let v = Vectorizer::fit(&docs, &params(2, 2, true));
        // Only n-grams in two documents survive min_df = 2.
        let mut kept: Vec<&String> = v.vocab.keys().collect();
        kept.sort();
        assert_eq!(kept, ["cat", "the", "the cat"]);
        let p = TfidfParams { max_features: 2, ..params(2, 1, true) };
        let v = Vectorizer::fit(&docs, &p);
        // The two most frequent n-grams (ties by term): "cat" and "the" (2 each) beat "the cat" alphabetically.
        assert_eq!(v.n_features(), 2);
        assert!(v.feature("the").is_some() && v.feature("cat").is_some());
        assert!(v.transform("zebra").is_empty());
    }

    #[test]
    fn logistic_regression_separates_a_separable_problem() {
        // Feature 0 marks positives, feature 1 negatives; feature 2 is noise on both.
        let x: Vec<SparseRow> = (0..40).map(|i| if i % 2 == 0 { vec![(0, 0.8), (2, 0.6)] } else { vec![(1, 0.8), (2, 0.6)] }).collect();
        let y: Vec<bool> = (0..40).map(|i| i % 2 == 0).collect();
        let m = fit_logistic(&x, &[y.clone()], 3, 1e-3, 300).unwrap().remove(0);
        for (row, &yi) in x.iter().zip(&y) {
            let p = m.probability(row);
            assert!(if yi { p > 0.9 } else { p < 0.1 }, "p = {p} for a {} example", if yi { "positive" } else { "negative" });
        }
        assert!(m.weights[0] > 0.0 && m.weights[1] < 0.0);
        // The L2 optimum is reached: the gradient of the objective vanishes.
        let n = x.len() as f64;
        let mut grad = m.weights.iter().map(|w| 1e-3 * w).collect::<Vec<_>>();
        for (row, &yi) in x.iter().zip(&y) {
            let r = (m.probability(row) - f64::from(u8::from(yi))) / n;
            for &(j, v) in row {
                grad[j as usize] += r * v;
            }
        }
        assert!(grad.iter().all(|g| g.abs() < 1e-4), "gradient {grad:?}");
    }

    #[test]
    fn unseen_codes_score_zero_and_seen_codes_are_ranked() {
        use crate::baselines::kind::fixtures::{doc, three_notes};
        let (train, space) = three_notes();
        let refs: Vec<&Document> = train.iter().collect();
        let coder = TfidfCoder::train(&refs, &space, &TfidfParams { min_df: 1, ..TfidfParams::default() }).unwrap();
        assert_eq!(coder.report.classifiers, 2);
        let test = doc("4", "diabetes mellitus", &[]);
        let Scores::Dense(scores) = coder.score(&[&test]).unwrap() else { panic!("TF-IDF scores every code") };
        assert_eq!(scores[0][2], 0.0);
        assert!(scores[0][0] > scores[0][1], "{:?}", scores[0]);

        // What it learned is saved and read back to the same scores, bit for bit.
        let dir = tempfile::tempdir().unwrap();
        assert!(coder.save(dir.path()).unwrap());
        let again = TfidfParams::default().load(dir.path()).unwrap().expect("TF-IDF keeps its state");
        assert_eq!(again.score(&[&test]).unwrap(), Scores::Dense(scores));
        std::fs::write(dir.path().join(TFIDF_STATE), "{").unwrap();
        assert!(matches!(TfidfParams::default().load(dir.path()), Err(BaselineError::State { .. })));
    }
}
