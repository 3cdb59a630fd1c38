//! The experiment schema: what a user writes in `experiments/*.toml`.
//!
//! Every struct denies unknown keys, so a typo is an error, not a silently
//! ignored setting. Defaults live here, beside the field they fill, and the
//! resolved form (defaults filled) is what gets fingerprinted.

mod baselines;
mod expansion;
mod load;
mod sweep;
mod validate;

pub use crate::model::backbone::{DType, WeightFormat};
pub use baselines::{Baseline, DictionaryParams, FuzzyParams, FuzzyUnit, LaatEncoder, LaatParams, LaatTokens, PriorParams, TfidfParams};
pub use expansion::{
    AbbreviationParams, Coverage, DescriptionParams, Expansion, ExpansionKind, GoldEvidenceParams, HierarchyParams, InclusionTermsParams, ParaphraseParams, PerturbOp, PerturbParams, SilverParams,
    SynthesizeParams, DEFAULT_PER_CODE_CAP, DEFAULT_SYNTHESIZE_PROMPT,
};
pub use load::{line_col, load_experiment, parse_experiment, parse_experiment_with, ConfigError, Problem};
pub use sweep::{expand_sweep, expand_sweep_with, SweepPoint, ARM_KEY};

use crate::data::Data;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A whole experiment file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    pub experiment: Meta,
    /// The LLM to fine-tune or prompt; absent for baseline-only experiments.
    #[serde(default)]
    pub backbone: Option<Backbone>,
    #[serde(default)]
    pub data: Data,
    /// Code-centric expansion strategies, applied in order.
    #[serde(default)]
    pub expansion: Vec<Expansion>,
    #[serde(default)]
    pub mix: Mix,
    #[serde(default)]
    pub train: Train,
    #[serde(default)]
    pub eval: Eval,
    /// Baseline systems scored beside the model on the same data.
    #[serde(default)]
    pub baselines: Vec<Baseline>,
    /// Axes such as `"mix.span_ratio" = [0.0, 0.5, 1.0]`; the cartesian product becomes runs.
    #[serde(default)]
    pub sweep: BTreeMap<String, Vec<toml::Value>>,
    /// Named arms, `[arms.<name>]`: each sets several keys over the rest of the file
    /// (`"mix.strategy" = "mixed"`), and is one more axis of the sweep.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub arms: BTreeMap<String, toml::Table>,
    /// Paired comparisons `run` prints after its tables, `[[compare]]`: runs on side `a`
    /// against runs on side `b` that share every other sweep setting (a seed with its seed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compare: Vec<ComparePair>,
}

impl Experiment {
    /// Fills the defaults that depend on other settings: `eval.chunk_tokens` from the
    /// training window of a fine-tuned backbone, `eval.chunk_overlap` from the window.
    pub fn resolve_defaults(&mut self) {
        if self.eval.chunk_tokens.is_none() {
            let trains = self.backbone.is_some() && self.train.mode == TrainMode::Finetune;
            self.eval.chunk_tokens = Some(if trains { self.train.document_window() } else { DEFAULT_CHUNK_TOKENS });
        }
        self.eval.chunk_overlap = Some(self.eval.chunk_overlap());
    }
}

/// One `[[compare]]`: two sides, each a sweep setting written as run labels show it
/// (`arm=document_only`, `mix.strategy=mixed`; quotes around strings optional), or a
/// baseline of the experiment by name (`baseline=prior`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComparePair {
    /// The reference side: differences are reported as B − A.
    pub a: String,
    pub b: String,
}

/// The compare side's key that names a baseline (`baseline=prior`).
pub const BASELINE_KEY: &str = "baseline";

impl ComparePair {
    /// The `(key, value)` a side names, quotes stripped; `None` without an `=`.
    pub fn setting(side: &str) -> Option<(&str, &str)> {
        let (k, v) = side.split_once('=')?;
        Some((k.trim(), v.trim().trim_matches('"')))
    }

    /// The baseline a side names (`baseline=prior`), if it names one.
    pub fn baseline(side: &str) -> Option<&str> {
        Self::setting(side).filter(|(k, _)| *k == BASELINE_KEY).map(|(_, v)| v)
    }

    /// Whether a run with these sweep settings is on `side`.
    pub fn selects(side: &str, settings: &[(String, String)]) -> bool {
        let Some((key, value)) = Self::setting(side) else { return false };
        settings.iter().any(|(k, v)| k == key && v.trim_matches('"') == value)
    }

    /// The settings of a run other than the keys the two sides name: what must agree
    /// between the two runs of a pair.
    pub fn rest(&self, settings: &[(String, String)]) -> Vec<(String, String)> {
        let keys: Vec<&str> = [&self.a, &self.b].iter().filter_map(|s| Self::setting(s)).map(|(k, _)| k).collect();
        settings.iter().filter(|(k, _)| !keys.contains(&k.as_str())).cloned().collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// Names the results folder: letters, digits, `-` and `_`.
    pub name: String,
    /// Seeds every random choice of the experiment.
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default)]
    pub description: String,
}

fn default_seed() -> u64 {
    17
}

/// The order of an answer line (see [`crate::prompt`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerOrder {
    /// `quote ; quote => CODE`; span answers `span => CODE`.
    EvidenceFirst,
    /// `CODE | quote ; quote`; span answers `CODE`.
    #[default]
    CodeFirst,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backbone {
    /// A short name (`smollm2-135m`, `tiny`) or a path to a checkpoint folder or GGUF file.
    pub name: String,
    #[serde(default)]
    pub format: WeightFormat,
    #[serde(default)]
    pub dtype: DType,
    /// `auto` (CUDA when present, else CPU), `cpu`, `cuda` or `cuda:N`.
    #[serde(default = "default_device")]
    pub device: String,
    /// How prompts are written: `auto` (the chat format for pretrained backbones, plain for tiny), `chat`, `plain`.
    #[serde(default)]
    pub prompt: PromptChoice,
    /// How answer lines are laid out: `code_first` (`CODE | quote ; quote`, the default) or `evidence_first` (`quote ; quote => CODE`).
    #[serde(default)]
    pub answer: AnswerOrder,
    /// Size of the `tiny` backbone (a random model trained from scratch with its own small tokenizer).
    #[serde(default)]
    pub tiny: TinyModel,
}

fn default_device() -> String {
    "auto".into()
}

impl Backbone {
    /// Whether this is the from-scratch tiny model rather than a pretrained checkpoint.
    pub fn is_tiny(&self) -> bool {
        self.format == WeightFormat::Tiny || self.name == "tiny"
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptChoice {
    #[default]
    Auto,
    Chat,
    Plain,
}

/// The tiny from-scratch model: a Llama-style decoder and a byte-level BPE tokenizer
/// trained on the experiment's training text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TinyModel {
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub intermediate: usize,
    pub vocab: usize,
    /// Steps of the generic reading task (repeat the sentence that begins with
    /// given words) before fine-tuning: the in-context copying every pretrained
    /// LLM has. 0 = fine-tune straight from random weights.
    pub pretrain_steps: usize,
    pub pretrain_lr: f64,
    /// Seed of the initial weights and of the reading task when `pretrain_steps`
    /// > 0: a fixed backbone, as a pretrained checkpoint is, fine-tuned with each
    /// experiment seed. (Without pretraining the experiment seed initialises the model.)
    pub seed: u64,
}

impl TinyModel {
    /// The positions the tiny model is built with (its `max_position_embeddings`): the longest
    /// prompt plus answer it can read.
    pub const CONTEXT: usize = 4096;
}

/// Context windows (tokens) of the packaged backbones, known without loading them.
pub const PACKAGED_CONTEXT: &[(&str, usize)] = &[("smollm2-135m", 8192), ("gemma3-270m", 32768)];

/// Tokens a document prompt adds around its window of note text: the instruction and the chat
/// or plain wrapping, under 256 bytes together, so under 256 tokens even for a byte-level
/// tokenizer. An upper bound on purpose: a budget that passes here fits at predict time.
pub const PROMPT_OVERHEAD_TOKENS: usize = 256;

impl Default for TinyModel {
    fn default() -> Self {
        TinyModel { layers: 4, hidden: 128, heads: 4, kv_heads: 2, intermediate: 256, vocab: 2000, pretrain_steps: 0, pretrain_lr: 2e-3, seed: 1 }
    }
}

/// How span and document examples are interleaved during training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    #[serde(default)]
    pub strategy: MixStrategy,
    /// Fraction of training examples that are spans, for `mixed` (0.0–1.0).
    #[serde(default = "default_span_ratio")]
    pub span_ratio: f64,
    /// Ordered phases for `curriculum`, e.g. `["spans", "documents"]`.
    #[serde(default)]
    pub phases: Vec<String>,
    /// How a span example is shown to the model: through the span task's own prompt
    /// (`span`), or as a short note through the document task (`note`).
    #[serde(default)]
    pub span_format: SpanFormat,
    /// `span_format = "note"`: the share of span notes that add a negated mention of
    /// another code's span, left unanswered (0.0–1.0).
    #[serde(default = "default_note_negated")]
    pub note_negated: f64,
    /// How document examples are drawn: passes in a fresh shuffled order (`shuffled`), or
    /// with weights that favour rare codes (`code_balanced`), against the label skew of
    /// clinical data (one code on half the notes).
    #[serde(default)]
    pub document_sampling: DocumentSampling,
    /// `document_sampling = "code_balanced"`: a document example's weight is
    /// `(N / n_c) ^ sampling_power` for its rarest code `c` (`n_c` of the `N` training
    /// document examples carry it; examples without a code count as one class). 0 draws
    /// uniformly; 0.5 (the default) is the square-root rule of repeat-factor sampling;
    /// 1 gives every code about the same weight.
    #[serde(default = "default_sampling_power")]
    pub sampling_power: f64,
    /// `[mix.sources]`: a weight per span source, named by its expansion kind
    /// (`gold_evidence = 20.0`, `description = 1.0`): each span example of a source is drawn
    /// that many times as often as one of weight 1 (unnamed sources weigh 1), so a few
    /// thousand gold spans are not lost among a hundred thousand table spans. Empty (the
    /// default): spans in shuffled passes, each source in proportion to its size. The
    /// share of each source in what was fed is in the run's mix record either way.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<String, f64>,
}

fn default_sampling_power() -> f64 {
    0.5
}

/// How a run draws its document examples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentSampling {
    /// Every document once per pass, each pass in a fresh seeded order.
    #[default]
    Shuffled,
    /// Drawn with replacement, weighted towards examples that carry rare codes.
    CodeBalanced,
}

fn default_span_ratio() -> f64 {
    0.5
}

fn default_note_negated() -> f64 {
    0.25
}

/// How span examples are rendered for training.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanFormat {
    /// The span task: `Span: …` under the span instruction, answered with the code.
    #[default]
    Span,
    /// The document task: the span in a one- or two-sentence note under the document
    /// instruction, answered in the document format (`prompt::span_notes`).
    Note,
}

impl Mix {
    /// Whether a schedule of this mix feeds span examples.
    pub fn uses_spans(&self) -> bool {
        match self.strategy {
            MixStrategy::DocumentOnly => false,
            MixStrategy::SpanOnly => true,
            MixStrategy::Mixed => self.span_ratio > 0.0,
            MixStrategy::Curriculum => self.phases.iter().any(|p| p != "documents"),
        }
    }

    /// Settings the strategy does not read reset, so mixes that differ only there are equal.
    pub fn canonical(mut self) -> Mix {
        match self.strategy {
            MixStrategy::DocumentOnly => {
                self.span_ratio = 0.0;
                self.phases.clear();
            }
            MixStrategy::SpanOnly => {
                self.span_ratio = 1.0;
                self.phases.clear();
            }
            MixStrategy::Mixed => self.phases.clear(),
            MixStrategy::Curriculum if !self.phases.iter().any(|p| p == "mixed") => self.span_ratio = 0.0,
            MixStrategy::Curriculum => {}
        }
        if !self.uses_spans() {
            self.span_format = SpanFormat::default();
            self.sources.clear();
        }
        if self.span_format != SpanFormat::Note {
            self.note_negated = default_note_negated();
        }
        if self.strategy == MixStrategy::SpanOnly {
            self.document_sampling = DocumentSampling::default();
        }
        if self.document_sampling != DocumentSampling::CodeBalanced {
            self.sampling_power = default_sampling_power();
        }
        self
    }
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            strategy: MixStrategy::default(),
            span_ratio: default_span_ratio(),
            phases: Vec::new(),
            span_format: SpanFormat::default(),
            note_negated: default_note_negated(),
            document_sampling: DocumentSampling::default(),
            sampling_power: default_sampling_power(),
            sources: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MixStrategy {
    #[default]
    DocumentOnly,
    SpanOnly,
    Mixed,
    Curriculum,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Train {
    pub lora_rank: usize,
    pub lora_alpha: f64,
    pub lora_dropout: f64,
    /// Projections that get adapters: any of q, k, v, o, gate, up, down.
    pub lora_targets: Vec<String>,
    pub lr: f64,
    pub schedule: LrSchedule,
    pub warmup_steps: usize,
    /// Optimizer steps (`steps × batch_size × grad_accum` examples, split by the mix);
    /// 0 = train for `epochs` instead.
    pub steps: usize,
    /// With `steps = 0`: passes over the documents (a `mixed` run's spans come on top), over
    /// the spans for `span_only`, over both for a curriculum; the last step may be short.
    pub epochs: f64,
    pub batch_size: usize,
    pub grad_accum: usize,
    pub max_grad_norm: f64,
    pub weight_decay: f64,
    /// Longest training example in tokens.
    pub max_length: usize,
    /// `finetune`, or `zero_shot` to predict with the backbone as it is (a baseline).
    pub mode: TrainMode,
    /// Save a resumable checkpoint every this many optimizer steps.
    pub checkpoint_every: usize,
    /// Validation loss every this many optimizer steps (0 = only at the end).
    pub validate_every: usize,
    /// Token-matched training: feed this run's mix (`document_only`, `span_only` or
    /// `mixed`) until it has read as many tokens as this mix's schedule would, with the
    /// same data, seed and `steps`/`epochs`, e.g. `{ strategy = "document_only" }`: the
    /// training budget in tokens, so that arms are compared at equal cost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub match_tokens_of: Option<Mix>,
    /// The share of `match_tokens_of`'s tokens this run reads: 0.2 trains on a fifth of
    /// the reference schedule's budget (the paper's "20% of the training cost").
    #[serde(skip_serializing_if = "is_one")]
    pub token_fraction: f64,
    /// How a training document longer than `max_length` is fed (see [`LongDocuments`]).
    #[serde(skip_serializing_if = "LongDocuments::is_auto")]
    pub long_documents: LongDocuments,
    /// Recompute each layer's activations during backward instead of keeping them
    /// (activation checkpointing): less memory, about a third more compute, the same
    /// numbers. Not part of the fingerprint.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub checkpointing: bool,
}

/// How a training document longer than the training length is fed.
/// TOML: `long_documents = "auto" | "truncate" | "windows"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LongDocuments {
    /// Windows for a document with evidence, truncation for one without (MIMIC-IV notes
    /// carry none: windows would teach most of them to answer `none`).
    #[default]
    Auto,
    /// The note's beginning that fits, answered with all its codes (the standard setting).
    Truncate,
    /// Overlapping windows, each answered with the codes whose evidence lies inside it.
    Windows,
}

impl LongDocuments {
    pub fn is_auto(&self) -> bool {
        *self == LongDocuments::Auto
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainMode {
    #[default]
    Finetune,
    ZeroShot,
}

impl Train {
    /// Tokens of note text in one document training example: `max_length` less the prompt
    /// and answer around it, at least 64.
    pub fn document_window(&self) -> usize {
        self.max_length.saturating_sub(DOCUMENT_PROMPT_TOKENS).max(64)
    }
}

/// `skip_serializing_if` for a share whose default is 1.
pub(crate) fn is_one(x: &f64) -> bool {
    *x == 1.0
}

impl Default for Train {
    fn default() -> Self {
        Train {
            lora_rank: 16,
            lora_alpha: 32.0,
            lora_dropout: 0.05,
            lora_targets: ["q", "k", "v", "o", "gate", "up", "down"].map(String::from).to_vec(),
            lr: 2e-4,
            schedule: LrSchedule::Cosine,
            warmup_steps: 20,
            steps: 0,
            epochs: 1.0,
            batch_size: 8,
            grad_accum: 1,
            max_grad_norm: 1.0,
            weight_decay: 0.0,
            max_length: 1024,
            mode: TrainMode::Finetune,
            checkpoint_every: 100,
            validate_every: 0,
            match_tokens_of: None,
            token_fraction: 1.0,
            long_documents: LongDocuments::Auto,
            checkpointing: false,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    #[default]
    Cosine,
    Linear,
    Constant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Eval {
    /// Splits to predict and score.
    pub splits: Vec<String>,
    /// Bootstrap samples for 95% confidence intervals; 0 = none.
    pub bootstrap_samples: usize,
    /// Window length in tokens of note text per prompt. Unset: a fine-tuned model reads test
    /// notes in windows as long as its training windows ([`Train::document_window`]), any
    /// other run in windows of 1024 tokens; resolved when the file is read, so the default
    /// and the same value written out are one computation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunk_tokens: Option<usize>,
    /// Tokens a window repeats from the one before. Unset: 128, or an eighth of the window
    /// where 128 is more than half of it (as training windows overlap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunk_overlap: Option<usize>,
    /// Tokens a window's answer may take. Unset: the longest answer of the training
    /// documents (codes and evidence quotes, as the model is taught to write them) plus a
    /// quarter and 16, at most what the context leaves beside the window; the value and
    /// how it was found are in each split's predict record. Answers cut by the limit are
    /// counted (`cut_by_limit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_new_tokens: Option<usize>,
    /// Restrict generated codes to the code set with a trie.
    pub constrained: bool,
    pub batch_size: usize,
    /// Model runs: gold mentions of each evaluated split coded one at a time, outside their
    /// note (the span probe); at most this many distinct (mention, code) pairs; 0 = off.
    pub probe_spans: usize,
    /// How a note longer than one window is read: `windows` (default) reads all of it in
    /// overlapping windows and joins their answers; `first_window` reads its first window
    /// only, as training reads a long note without evidence (every MIMIC-IV note) — one
    /// view of a note on both sides. Each split's record gives the share of tokens not read.
    #[serde(skip_serializing_if = "ReadNotes::is_windows")]
    pub read: ReadNotes,
}

/// `eval.read`: how test notes longer than one window are read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadNotes {
    #[default]
    Windows,
    FirstWindow,
}

impl ReadNotes {
    pub fn is_windows(&self) -> bool {
        *self == ReadNotes::Windows
    }
}

/// Window length of a run that trains no model, unless `eval.chunk_tokens` says otherwise.
pub const DEFAULT_CHUNK_TOKENS: usize = 1024;

/// Tokens of a document training example that are not note text: the prompt around the
/// window and the answer (what `train.max_length` holds besides the window).
pub const DOCUMENT_PROMPT_TOKENS: usize = 160;

impl Eval {
    /// The window length in tokens (resolved when the experiment is read).
    pub fn chunk_tokens(&self) -> usize {
        self.chunk_tokens.unwrap_or(DEFAULT_CHUNK_TOKENS)
    }

    /// The overlap between windows in tokens (resolved when the experiment is read).
    pub fn chunk_overlap(&self) -> usize {
        self.chunk_overlap.unwrap_or_else(|| default_overlap(self.chunk_tokens()))
    }
}

/// 128 tokens, or an eighth of a window too short for that.
fn default_overlap(chunk_tokens: usize) -> usize {
    if chunk_tokens >= 256 {
        128
    } else {
        chunk_tokens / 8
    }
}

impl Default for Eval {
    fn default() -> Self {
        Eval {
            splits: vec!["test".into()],
            bootstrap_samples: 1000,
            chunk_tokens: None,
            chunk_overlap: None,
            max_new_tokens: None,
            constrained: true,
            batch_size: 8,
            probe_spans: 200,
            read: ReadNotes::Windows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{synthetic::GENERATOR_VERSION, DataSource};
    use std::path::Path;

    #[test]
    fn quickstart_round_trips_through_toml() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/quickstart.toml"));
        let exp = load_experiment(path).unwrap();
        let text = toml::to_string(&exp).unwrap();
        let again = parse_experiment(&text, path).unwrap();
        assert_eq!(exp, again);
        let names: Vec<String> = exp.baselines.iter().map(Baseline::name).collect();
        assert_eq!(names, ["prior", "dictionary", "fuzzy"]);
        assert_eq!((exp.mix.span_format, exp.mix.note_negated), (SpanFormat::Note, 0.25));
        assert!(matches!(&exp.data.source, DataSource::Synthetic(p) if p.version == GENERATOR_VERSION));
    }

    #[test]
    fn defaults_fill_a_minimal_file() {
        let exp = parse_experiment("[experiment]\nname = \"m\"\n[[baselines]]\nkind = \"dictionary\"\n", Path::new("m.toml")).unwrap();
        assert_eq!(exp.experiment.seed, 17);
        assert_eq!(exp.data.code_table, "builtin");
        assert!(matches!(exp.data.source, DataSource::Synthetic(ref p) if p.pool_size == 200 && p.unseen_codes == 40));
        assert_eq!(exp.eval.splits, vec!["test".to_string()]);
        assert_eq!(exp.mix.strategy, MixStrategy::DocumentOnly);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = "[experiment]\nname = \"bad name\"\n\n[train]\nlora_targets = [\"q\", \"qq\"]\nbatch_size = 0\n";
        let err = parse_experiment(text, Path::new("x.toml")).unwrap_err();
        let ConfigError::Invalid { problems, .. } = &err else { panic!("{err}") };
        let keys: Vec<&str> = problems.iter().filter_map(|p| p.key.as_deref()).collect();
        assert_eq!(keys, ["experiment.name", "train.lora_targets", "train.batch_size", "baselines"]);
        assert_eq!(problems[1].line, Some(5));
        assert_eq!(err.to_string().lines().count(), 4);
    }
}
