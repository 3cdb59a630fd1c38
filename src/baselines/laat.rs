//! LAAT (Vu et al. 2020), the label-wise attention head of the PLM-ICD family,
//! over a small encoder trained from scratch: tokens -> embeddings -> BiLSTM (or
//! a convolution) -> for every label `l`, attention over tokens
//! `a_l = softmax(U_l · tanh(W H))`, label vector `v_l = a_l H`, logit
//! `v_l · beta_l + b_l` -> sigmoid, binary cross-entropy over the labels.
//!
//! The labels are the codes of the label space that training documents carry;
//! the other codes cannot be learnt and score 0. Documents are batched by length
//! (little padding; padded tokens are masked out of the attention) and the batch
//! order is shuffled per epoch from the experiment's seed.

use super::kind::{load_json, record_of, save_json, training_data, BaselineError, BaselineKind, CodeScorer, Fit, FitData, Fitted, Scores, TrainingCost};
use crate::config::{LaatEncoder, LaatParams, LaatTokens};
use crate::data::Document;
use crate::icd::Code;
use crate::model::tokenizer::TextTokenizer;
use crate::text::tokenize;
use indicatif::ProgressBar;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;
use tch::nn::{self, Module, OptimizerConfig, RNN};
use tch::{Device, Kind, Reduction, Tensor};

/// Text to token ids in `0..size`; id `size` pads.
enum Vocab {
    /// Unknown words are id 0.
    Words(HashMap<String, i64>),
    Bpe(TextTokenizer),
}

impl Vocab {
    fn build(texts: &[&str], params: &LaatParams) -> Result<Vocab, BaselineError> {
        match params.tokens {
            LaatTokens::Words => {
                let mut counts: HashMap<String, usize> = HashMap::new();
                for t in texts {
                    for tok in tokenize(t) {
                        *counts.entry(tok.word).or_default() += 1;
                    }
                }
                let mut words: Vec<(String, usize)> = counts.into_iter().filter(|(_, c)| *c >= params.min_count).collect();
                words.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                words.truncate(params.vocab_size.saturating_sub(1));
                Ok(Vocab::Words(words.into_iter().enumerate().map(|(i, (w, _))| (w, i as i64 + 1)).collect()))
            }
            LaatTokens::Bpe => TextTokenizer::tiny(texts, params.vocab_size).map(Vocab::Bpe).map_err(|e| BaselineError::Tokenizer(e.to_string())),
        }
    }

    fn size(&self) -> i64 {
        match self {
            Vocab::Words(w) => w.len() as i64 + 1,
            Vocab::Bpe(t) => t.vocab_size() as i64,
        }
    }

    /// At least one token (unknown for an empty text), at most `max`.
    fn encode(&self, text: &str, max: usize) -> Result<Vec<i64>, BaselineError> {
        let mut ids: Vec<i64> = match self {
            Vocab::Words(w) => tokenize(text).iter().take(max).map(|t| w.get(&t.word).copied().unwrap_or(0)).collect(),
            Vocab::Bpe(t) => t.encode(text, false).map_err(|e| BaselineError::Tokenizer(e.to_string()))?.into_iter().take(max).map(i64::from).collect(),
        };
        if ids.is_empty() {
            ids.push(0);
        }
        Ok(ids)
    }
}

enum Encoder {
    Lstm(nn::LSTM),
    Cnn(nn::Conv1D),
}

/// The network; variable names mirror the paper's symbols.
struct Net {
    embed: nn::Embedding,
    encoder: Encoder,
    /// `W`: H -> d_a, no bias.
    w: nn::Linear,
    /// `U`: one attention query per label, [L, d_a].
    u: Tensor,
    /// `beta`: one output vector per label, [L, H].
    beta: Tensor,
    bias: Tensor,
    dropout: f64,
}

impl Net {
    fn new(p: &nn::Path, vocab: i64, labels: i64, params: &LaatParams) -> Net {
        let (e, h, da) = (params.embedding_dim as i64, params.hidden as i64, params.attention_dim as i64);
        let embed = nn::embedding(p / "embed", vocab + 1, e, Default::default());
        let (encoder, width) = match params.encoder {
            LaatEncoder::Bilstm => {
                let cfg = nn::RNNConfig { bidirectional: true, batch_first: true, ..Default::default() };
                (Encoder::Lstm(nn::lstm(p / "lstm", e, h, cfg)), 2 * h)
            }
            LaatEncoder::Cnn => {
                let k = params.kernel as i64;
                let cfg = nn::ConvConfig { padding: k / 2, ..Default::default() };
                (Encoder::Cnn(nn::conv1d(p / "conv", e, h, k, cfg)), h)
            }
        };
        let w = nn::linear(p / "w", width, da, nn::LinearConfig { bias: false, ..Default::default() });
        let bound = |fan_in: i64| nn::Init::Uniform { lo: -1.0 / (fan_in as f64).sqrt(), up: 1.0 / (fan_in as f64).sqrt() };
        let u = p.var("u", &[labels, da], bound(da));
        let beta = p.var("beta", &[labels, width], bound(width));
        let bias = p.var("bias", &[labels], nn::Init::Const(0.0));
        Net { embed, encoder, w, u, beta, bias, dropout: params.dropout }
    }

    /// Logits [B, L] of token ids [B, T] whose padding is `pad`.
    fn forward(&self, ids: &Tensor, pad: i64, train: bool) -> Tensor {
        let x = self.embed.forward(ids).dropout(self.dropout, train);
        let h = match &self.encoder {
            Encoder::Lstm(l) => l.seq(&x).0,
            Encoder::Cnn(c) => c.forward(&x.transpose(1, 2)).tanh().transpose(1, 2),
        };
        let h = h.dropout(self.dropout, train);
        let z = self.w.forward(&h).tanh();
        let scores = z.matmul(&self.u.tr()).masked_fill(&ids.eq(pad).unsqueeze(-1), f64::NEG_INFINITY);
        let a = scores.softmax(1, Kind::Float);
        let v = a.transpose(1, 2).matmul(&h);
        (v * &self.beta).sum_dim_intlist(-1, false, Kind::Float) + &self.bias
    }
}

/// What training LAAT took, written beside its predictions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaatReport {
    pub train_docs: usize,
    pub vocab_size: i64,
    pub labels: usize,
    pub label_space: usize,
    pub parameters: i64,
    pub epochs: usize,
    pub optimizer_steps: usize,
    /// Non-padding tokens read in training, all epochs.
    pub tokens: u64,
    /// Padded batch positions computed in training, all epochs.
    pub padded_tokens: u64,
    /// Rough training compute: `6 · (parameters other than embeddings + labels · H) · padded tokens`.
    pub estimated_flops: f64,
    /// Mean training loss of each epoch.
    pub epoch_loss: Vec<f64>,
    pub train_seconds: f64,
    pub device: String,
}

/// The trained baseline.
pub struct LaatCoder {
    vocab: Vocab,
    net: Net,
    _vs: nn::VarStore,
    device: Device,
    codes: Vec<Code>,
    /// For each code of the label space, its label row (codes seen in training).
    rows: Vec<Option<usize>>,
    params: LaatParams,
    pub report: LaatReport,
}

/// Documents grouped into batches of similar length (stable, so ties keep their order).
fn length_batches(lengths: &[usize], batch: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| lengths[i]);
    order.chunks(batch.max(1)).map(<[usize]>::to_vec).collect()
}

/// Token ids of a batch, padded to its longest document: [B, T].
fn pad_batch(encoded: &[Vec<i64>], batch: &[usize], pad: i64, device: Device) -> Tensor {
    let t = batch.iter().map(|&i| encoded[i].len()).max().unwrap_or(1);
    let mut flat = Vec::with_capacity(batch.len() * t);
    for &i in batch {
        flat.extend_from_slice(&encoded[i]);
        flat.extend(std::iter::repeat_n(pad, t - encoded[i].len()));
    }
    Tensor::from_slice(&flat).view([batch.len() as i64, t as i64]).to_device(device)
}

impl LaatCoder {
    /// Trains on `train`; `seed` seeds the initial weights, dropout and the batch order.
    pub fn train(train: &[&Document], label_space: &[Code], params: &LaatParams, seed: u64, bar: &ProgressBar) -> Result<LaatCoder, BaselineError> {
        let started = Instant::now();
        let device = crate::device::resolve(&params.device)?;
        let labels: Vec<Code> = label_space.iter().filter(|c| train.iter().any(|d| d.codes.contains(c))).cloned().collect();
        if labels.is_empty() {
            return Err(BaselineError::NoTrainingData);
        }
        let row_of: HashMap<&Code, usize> = labels.iter().enumerate().map(|(i, c)| (c, i)).collect();
        let rows: Vec<Option<usize>> = label_space.iter().map(|c| row_of.get(c).copied()).collect();
        let texts: Vec<&str> = train.iter().map(|d| d.text.as_str()).collect();
        let vocab = Vocab::build(&texts, params)?;
        let pad = vocab.size();
        let encoded = texts.iter().map(|t| vocab.encode(t, params.max_tokens)).collect::<Result<Vec<_>, _>>()?;
        let n_labels = labels.len() as i64;
        let mut targets = vec![0f32; train.len() * labels.len()];
        for (i, d) in train.iter().enumerate() {
            for c in &d.codes {
                if let Some(&r) = row_of.get(c) {
                    targets[i * labels.len() + r] = 1.0;
                }
            }
        }
        let targets = Tensor::from_slice(&targets).view([train.len() as i64, n_labels]);

        tch::manual_seed(seed as i64);
        let vs = nn::VarStore::new(device);
        let net = Net::new(&vs.root(), vocab.size(), n_labels, params);
        // Each label starts at its training prior, so early steps learn evidence, not base rates.
        tch::no_grad(|| {
            let n = train.len() as f64;
            let prior = (targets.sum_dim_intlist(0, false, Kind::Double) + 0.5) / (n + 1.0);
            let _ = net.bias.shallow_clone().copy_(&prior.logit(None::<f64>).to_kind(Kind::Float).to_device(device));
        });
        let width = match params.encoder {
            LaatEncoder::Bilstm => 2 * params.hidden,
            LaatEncoder::Cnn => params.hidden,
        };
        let parameters: i64 = vs.trainable_variables().iter().map(Tensor::numel).map(|n| n as i64).sum();
        let mut opt = nn::AdamW { wd: params.weight_decay, ..Default::default() }.build(&vs, params.lr)?;

        let lengths: Vec<usize> = encoded.iter().map(Vec::len).collect();
        let mut batches = length_batches(&lengths, params.batch_size);
        let mut rng = StdRng::seed_from_u64(seed);
        bar.set_length((params.epochs * batches.len()) as u64);
        let (mut steps, mut tokens, mut padded) = (0usize, 0u64, 0u64);
        let mut epoch_loss = Vec::with_capacity(params.epochs);
        for _ in 0..params.epochs {
            batches.shuffle(&mut rng);
            let mut sum = 0.0;
            for batch in &batches {
                let ids = pad_batch(&encoded, batch, pad, device);
                let index = Tensor::from_slice(&batch.iter().map(|&i| i as i64).collect::<Vec<_>>());
                let y = targets.index_select(0, &index).to_device(device);
                let logits = net.forward(&ids, pad, true);
                let loss = logits.binary_cross_entropy_with_logits::<Tensor>(&y, None, None, Reduction::Mean);
                opt.backward_step_clip_norm(&loss, 5.0);
                sum += loss.double_value(&[]);
                steps += 1;
                tokens += batch.iter().map(|&i| lengths[i] as u64).sum::<u64>();
                padded += ids.numel() as u64;
                bar.inc(1);
            }
            epoch_loss.push(sum / batches.len().max(1) as f64);
        }
        let report = LaatReport {
            train_docs: train.len(),
            vocab_size: vocab.size(),
            labels: labels.len(),
            label_space: label_space.len(),
            parameters,
            epochs: params.epochs,
            optimizer_steps: steps,
            tokens,
            padded_tokens: padded,
            estimated_flops: 6.0 * ((parameters - (vocab.size() + 1) * params.embedding_dim as i64) as f64 + (labels.len() * width) as f64) * padded as f64,
            epoch_loss,
            train_seconds: started.elapsed().as_secs_f64(),
            device: format!("{device:?}"),
        };
        Ok(LaatCoder { vocab, net, _vs: vs, device, codes: label_space.to_vec(), rows, params: params.clone(), report })
    }
}

/// LAAT's fitted state besides its weights (`laat.ot`), in the baseline's train stage.
#[derive(Serialize, Deserialize)]
struct LaatState {
    /// The word vocabulary; `None` with BPE tokens (the tokenizer is `laat-tokenizer.json`).
    words: Option<HashMap<String, i64>>,
    codes: Vec<Code>,
    rows: Vec<Option<usize>>,
    report: LaatReport,
}

const LAAT_STATE: &str = "laat.json";
const LAAT_WEIGHTS: &str = "laat.ot";
const LAAT_TOKENIZER: &str = "laat-tokenizer.json";

impl LaatCoder {
    /// Reads back what [`CodeScorer::save`] wrote for `params`.
    fn load(dir: &Path, params: &LaatParams) -> Result<LaatCoder, BaselineError> {
        let state: LaatState = load_json(&dir.join(LAAT_STATE))?;
        let failed = |path: &Path, e: String| BaselineError::State { path: path.to_path_buf(), message: e };
        let vocab = match state.words {
            Some(words) => Vocab::Words(words),
            None => {
                let path = dir.join(LAAT_TOKENIZER);
                Vocab::Bpe(TextTokenizer::from_file(&path).map_err(|e| failed(&path, e.to_string()))?)
            }
        };
        let device = crate::device::resolve(&params.device)?;
        let mut vs = nn::VarStore::new(device);
        let n_labels = state.rows.iter().flatten().count() as i64;
        let net = Net::new(&vs.root(), vocab.size(), n_labels, params);
        let weights = dir.join(LAAT_WEIGHTS);
        vs.load(&weights).map_err(|e| failed(&weights, e.to_string()))?;
        Ok(LaatCoder { vocab, net, _vs: vs, device, codes: state.codes, rows: state.rows, params: params.clone(), report: state.report })
    }
}

impl CodeScorer for LaatCoder {
    fn codes(&self) -> &[Code] {
        &self.codes
    }

    fn score(&self, docs: &[&Document]) -> Result<Scores, BaselineError> {
        let encoded = docs.iter().map(|d| self.vocab.encode(&d.text, self.params.max_tokens)).collect::<Result<Vec<_>, _>>()?;
        let lengths: Vec<usize> = encoded.iter().map(Vec::len).collect();
        let pad = self.vocab.size();
        let mut out = vec![Vec::new(); docs.len()];
        for batch in length_batches(&lengths, self.params.batch_size) {
            let ids = pad_batch(&encoded, &batch, pad, self.device);
            let probs = tch::no_grad(|| self.net.forward(&ids, pad, false).sigmoid()).to_kind(Kind::Double).to_device(Device::Cpu);
            let n_labels = probs.size()[1] as usize;
            let flat = Vec::<f64>::try_from(probs.flatten(0, -1))?;
            for (k, &d) in batch.iter().enumerate() {
                let row = &flat[k * n_labels..(k + 1) * n_labels];
                out[d] = self.rows.iter().map(|r| r.map_or(0.0, |r| row[r])).collect();
            }
        }
        Ok(Scores::Dense(out))
    }

    fn save(&self, dir: &Path) -> Result<bool, BaselineError> {
        let failed = |path: &Path, e: String| BaselineError::State { path: path.to_path_buf(), message: e };
        let weights = dir.join(LAAT_WEIGHTS);
        self._vs.save(&weights).map_err(|e| failed(&weights, e.to_string()))?;
        let words = match &self.vocab {
            Vocab::Words(w) => Some(w.clone()),
            Vocab::Bpe(t) => {
                let path = dir.join(LAAT_TOKENIZER);
                t.save(&path).map_err(|e| failed(&path, e.to_string()))?;
                None
            }
        };
        let state = LaatState { words, codes: self.codes.clone(), rows: self.rows.clone(), report: self.report.clone() };
        save_json(&dir.join(LAAT_STATE), &state)?;
        Ok(true)
    }
}

impl BaselineKind for LaatParams {
    fn load(&self, dir: &Path) -> Result<Option<Box<dyn CodeScorer>>, BaselineError> {
        Ok(Some(Box::new(LaatCoder::load(dir, self)?)))
    }

    fn fit(&self, data: &FitData<'_>) -> Result<Fit, BaselineError> {
        let (train, space) = training_data(data.dataset);
        let bar = crate::progress::bar(data.progress, 0, "steps", &format!("{} · train", data.label));
        let coder = LaatCoder::train(&train, &space, self, data.seed, &bar)?;
        bar.finish_and_clear();
        let r = &coder.report;
        let losses: Vec<String> = r.epoch_loss.iter().map(|l| format!("{l:.4}")).collect();
        let summary = format!(
            "laat: {} parameters, {} labels of {} codes, vocabulary {}, {} epochs / {} steps on {}; loss per epoch {}; trained in {:.2} s",
            r.parameters, r.labels, r.label_space, r.vocab_size, r.epochs, r.optimizer_steps, r.device, losses.join(" "), r.train_seconds
        );
        let training = TrainingCost {
            optimizer_steps: r.optimizer_steps,
            examples: (r.epochs * r.train_docs) as u64,
            tokens: r.tokens,
            padded_tokens: r.padded_tokens,
            estimated_flops: r.estimated_flops,
            seconds: r.train_seconds,
        };
        let record = record_of("training", r)?;
        Ok(Fit { fitted: Fitted::Scorer(Box::new(coder)), summary, record, training: Some(training) })
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_group_similar_lengths_and_keep_every_document() {
        let batches = length_batches(&[5, 1, 9, 2, 7], 2);
        assert_eq!(batches, vec![vec![1, 3], vec![0, 4], vec![2]]);
    }

    #[test]
    fn padded_positions_are_masked_out_of_the_attention() {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        // Kernel 1: the encoder is per token, so padding can reach a document only through the attention.
        let params = LaatParams { encoder: LaatEncoder::Cnn, kernel: 1, embedding_dim: 8, hidden: 6, attention_dim: 4, dropout: 0.0, ..LaatParams::default() };
        let net = Net::new(&vs.root(), 10, 3, &params);
        let pad = 10;
        let alone = net.forward(&Tensor::from_slice(&[3i64, 4, 5]).view([1, 3]), pad, false);
        let batch = net.forward(&Tensor::from_slice(&[3i64, 4, 5, pad, pad, 1, 2, 3, 4, 5]).view([2, 5]), pad, false);
        assert_eq!(batch.size(), [2, 3]);
        let diff = (alone - batch.get(0).unsqueeze(0)).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "padding moved the logits by {diff}");
    }

    #[test]
    fn a_trained_model_is_saved_and_read_back_to_the_same_scores() {
        use crate::baselines::kind::fixtures::{doc, three_notes};
        let (train, space) = three_notes();
        let refs: Vec<&Document> = train.iter().collect();
        let test = doc("4", "diabetes mellitus and hypertension", &[]);
        for tokens in [LaatTokens::Words, LaatTokens::Bpe] {
            let params = LaatParams { tokens, vocab_size: 300, embedding_dim: 8, hidden: 6, attention_dim: 4, epochs: 2, ..LaatParams::default() };
            let coder = LaatCoder::train(&refs, &space, &params, 3, &ProgressBar::hidden()).unwrap();
            let dir = tempfile::tempdir().unwrap();
            assert!(coder.save(dir.path()).unwrap());
            let again = params.load(dir.path()).unwrap().expect("LAAT keeps its state");
            assert_eq!(again.score(&[&test]).unwrap(), coder.score(&[&test]).unwrap(), "{tokens:?}");
        }
    }
}
