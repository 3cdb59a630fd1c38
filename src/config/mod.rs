//! The experiment schema: what a user writes in `experiments/*.toml`.
//!
//! Every struct denies unknown keys, so a typo is an error, not a silently
//! ignored setting. Defaults live here, beside the field they fill, and the
//! resolved form (defaults filled) is what gets fingerprinted.

mod load;
mod sweep;

pub use load::{load_experiment, parse_experiment, ConfigError, Problem};
pub use sweep::{expand_sweep, SweepPoint};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

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
}

fn default_device() -> String {
    "auto".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightFormat {
    #[default]
    Auto,
    Safetensors,
    Gguf,
    /// A randomly initialised config-only model (tests, quick CPU runs).
    Tiny,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DType {
    /// f32 on CPU, bf16 on CUDA.
    #[default]
    Auto,
    F32,
    F16,
    Bf16,
}

/// Where documents come from and which code set they are coded in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Data {
    #[serde(default)]
    pub source: DataSource,
    /// `builtin` (the committed ICD-10-CM FY2026 table) or a path to a table built by `icdbench data build-codes`.
    #[serde(default = "default_code_table")]
    pub code_table: String,
}

fn default_code_table() -> String {
    "builtin".into()
}

impl Default for Data {
    fn default() -> Self {
        Data { source: DataSource::default(), code_table: default_code_table() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataSource {
    /// The seeded synthetic benchmark generated from the code set.
    Synthetic(SyntheticParams),
    /// Documents in icdbench's JSONL format (see README), one file per split.
    Jsonl { train: PathBuf, val: Option<PathBuf>, test: PathBuf },
}

impl Default for DataSource {
    fn default() -> Self {
        DataSource::Synthetic(SyntheticParams::default())
    }
}

/// Parameters of the synthetic benchmark; the same values give byte-identical data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyntheticParams {
    /// Seed of the generator (independent of the experiment seed, so sweeping
    /// training seeds keeps the data fixed).
    pub seed: u64,
    pub train_docs: usize,
    pub val_docs: usize,
    pub test_docs: usize,
    /// Chapters (1–22) whose billable codes form the pool; empty = use `prefixes`.
    pub chapters: Vec<u8>,
    /// Code prefixes (`E11`, `I`) whose billable codes form the pool.
    pub prefixes: Vec<String>,
    /// How many billable codes to draw from the pool.
    pub pool_size: usize,
    /// How many of those occur only in test documents (the unseen codes).
    pub unseen_codes: usize,
    /// Inclusive range of gold codes per document.
    pub codes_per_doc: [usize; 2],
    /// Inclusive range of distractor mentions (negated, family history, ruled out, resolved).
    pub distractors_per_doc: [usize; 2],
    /// Inclusive range of filler sentences per section (document length).
    pub filler_sentences: [usize; 2],
    /// Exponent of the Zipf-like long tail of code frequencies.
    pub zipf_exponent: f64,
    /// Fraction of test mentions phrased in ways no code-table entry contains
    /// (reworded, abbreviated), so string matching cannot solve the test split.
    pub reworded_fraction: f64,
}

impl Default for SyntheticParams {
    fn default() -> Self {
        SyntheticParams {
            seed: 2026,
            train_docs: 800,
            val_docs: 100,
            test_docs: 300,
            chapters: vec![4, 9, 10, 11],
            prefixes: Vec::new(),
            pool_size: 200,
            unseen_codes: 40,
            codes_per_doc: [1, 4],
            distractors_per_doc: [0, 2],
            filler_sentences: [1, 3],
            zipf_exponent: 1.0,
            reworded_fraction: 0.5,
        }
    }
}

/// One code-centric expansion strategy; its parameters are free-form until the
/// expansion stage defines them, but the kind must be known.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expansion {
    pub kind: ExpansionKind,
    /// Which codes to expand.
    #[serde(default)]
    pub coverage: Coverage,
    /// At most this many examples per code from this strategy.
    #[serde(default = "default_per_code_cap")]
    pub per_code_cap: usize,
}

fn default_per_code_cap() -> usize {
    8
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpansionKind {
    Description,
    InclusionTerms,
    Hierarchy,
    Abbreviation,
    Perturb,
    Silver,
    GoldEvidence,
    Synthesize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Coverage {
    /// Codes carried by training documents.
    #[default]
    TrainingCodes,
    /// Every code of the data's code pool (seen and unseen).
    Pool,
    /// The whole billable code set.
    All,
    /// Codes of the given chapters.
    Chapters(Vec<u8>),
    /// An explicit list of codes.
    Codes(Vec<String>),
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
}

fn default_span_ratio() -> f64 {
    0.5
}

impl Default for Mix {
    fn default() -> Self {
        Mix { strategy: MixStrategy::default(), span_ratio: default_span_ratio(), phases: Vec::new() }
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
    /// Optimizer steps; 0 = derive from `epochs`.
    pub steps: usize,
    pub epochs: f64,
    pub batch_size: usize,
    pub grad_accum: usize,
    pub max_grad_norm: f64,
    pub weight_decay: f64,
    /// Longest training example in tokens.
    pub max_length: usize,
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
    /// Window length in tokens for documents longer than the context.
    pub chunk_tokens: usize,
    pub chunk_overlap: usize,
    pub max_new_tokens: usize,
    /// Restrict generated codes to the code set with a trie.
    pub constrained: bool,
    pub batch_size: usize,
}

impl Default for Eval {
    fn default() -> Self {
        Eval {
            splits: vec!["test".into()],
            bootstrap_samples: 1000,
            chunk_tokens: 1024,
            chunk_overlap: 128,
            max_new_tokens: 256,
            constrained: true,
            batch_size: 8,
        }
    }
}

/// A baseline system run beside the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Baseline {
    /// Finds code descriptions and inclusion terms in the text.
    Dictionary(DictionaryParams),
}

impl Baseline {
    /// The label tables show: the user's `name`, or the kind.
    pub fn name(&self) -> String {
        match self {
            Baseline::Dictionary(p) => p.name.clone().unwrap_or_else(|| "dictionary".into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DictionaryParams {
    /// A label for tables, e.g. "dictionary-no-negation" (default: the kind).
    pub name: Option<String>,
    /// Skip mentions preceded by a negation / family-history / ruled-out cue.
    pub negation: bool,
    /// Match inclusion terms as well as descriptions.
    pub inclusion_terms: bool,
    /// Only match codes of the data's code pool (when the data has one), not the whole code set.
    pub restrict_to_pool: bool,
    /// Shortest term (in words) the matcher uses; short terms are ambiguous.
    pub min_words: usize,
}

impl Default for DictionaryParams {
    fn default() -> Self {
        DictionaryParams { name: None, negation: true, inclusion_terms: true, restrict_to_pool: true, min_words: 1 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn quickstart_round_trips_through_toml() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/quickstart.toml"));
        let exp = load_experiment(path).unwrap();
        let text = toml::to_string(&exp).unwrap();
        let again = parse_experiment(&text, path).unwrap();
        assert_eq!(exp, again);
        assert_eq!(exp.baselines.len(), 2);
        assert_eq!(exp.baselines[1].name(), "dictionary-no-negation");
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
