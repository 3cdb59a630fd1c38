//! The experiment schema: what a user writes in `experiments/*.toml`.
//!
//! Every struct denies unknown keys, so a typo is an error, not a silently
//! ignored setting. Defaults live here, beside the field they fill, and the
//! resolved form (defaults filled) is what gets fingerprinted.

mod load;
mod sweep;

pub use load::{line_col, load_experiment, parse_experiment, parse_experiment_with, ConfigError, Problem};
pub use sweep::{expand_sweep, expand_sweep_with, SweepPoint, ARM_KEY};

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
    /// Named arms, `[arms.<name>]`: each sets several keys over the rest of the file
    /// (`"mix.strategy" = "mixed"`), and is one more axis of the sweep.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub arms: BTreeMap<String, toml::Table>,
    /// Paired comparisons `run` prints after its tables, `[[compare]]`: runs on side `a`
    /// against runs on side `b` that share every other sweep setting (a seed with its seed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compare: Vec<ComparePair>,
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
    /// `builtin`: the committed ICD-10-CM FY2026 table, with the committed ICD-10-PCS table
    /// when the source carries procedure codes (see [`Data::uses_procedures`]);
    /// `builtin+pcs`: both tables whatever the source; or a path to a table built by
    /// `icdbench data build-codes`.
    #[serde(default = "default_code_table")]
    pub code_table: String,
    /// `"edin"`: pass every text through Edin et al.'s MIMIC pre-processing (lower case,
    /// no punctuation, no standalone numbers) after loading, evidence moved with it — to
    /// read any benchmark the way their MIMIC-IV table reads. Default `"none"`.
    #[serde(default, skip_serializing_if = "Preprocess::is_none")]
    pub preprocess: Preprocess,
}

/// Text pre-processing applied after loading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preprocess {
    #[default]
    None,
    Edin,
}

impl Preprocess {
    pub fn is_none(&self) -> bool {
        *self == Preprocess::None
    }
}

impl Data {
    /// Whether the builtin tables include ICD-10-PCS: for `builtin+pcs`, and for `builtin`
    /// when the source's gold codes include procedures (MIMIC and CodiEsp with `codes` other
    /// than `diagnosis`, MDACE always).
    pub fn uses_procedures(&self) -> bool {
        match self.code_table.as_str() {
            "builtin+pcs" => true,
            "builtin" => match &self.source {
                DataSource::Mimic(m) => m.codes != CodeSystem::Diagnosis,
                DataSource::Codiesp(c) => c.codes != CodeSystem::Diagnosis,
                DataSource::Mdace(_) => true,
                DataSource::Synthetic(_) | DataSource::Jsonl { .. } => false,
            },
            _ => false,
        }
    }

    /// Whether the code table is one of the committed ones.
    pub fn builtin_table(&self) -> bool {
        matches!(self.code_table.as_str(), "builtin" | "builtin+pcs")
    }
}

fn default_code_table() -> String {
    "builtin".into()
}

impl Default for Data {
    fn default() -> Self {
        Data { source: DataSource::default(), code_table: default_code_table(), preprocess: Preprocess::None }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataSource {
    /// The seeded synthetic benchmark generated from the code set.
    Synthetic(SyntheticParams),
    /// Documents in icdbench's JSONL format (see README), one file per split.
    Jsonl { train: PathBuf, val: Option<PathBuf>, test: PathBuf },
    /// MIMIC-III / MIMIC-IV as prepared by Edin et al. 2023: a feather or parquet table and its split file.
    Mimic(MimicParams),
    /// MDACE evidence annotations (one JSON per chart) joined to MIMIC-III NOTEEVENTS text.
    Mdace(MdaceParams),
    /// CodiEsp / CodiEsp-X as distributed: train/dev/test folders of text files and annotation TSVs.
    Codiesp(CodiespParams),
}

/// Which codes of a source are gold: diagnoses, procedures or both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeSystem {
    /// Diagnosis codes only (ICD-10-CM).
    #[default]
    Diagnosis,
    /// Procedure codes only (ICD-10-PCS).
    Procedure,
    /// Diagnoses and procedures, as Edin et al.'s `target` column.
    Both,
}

/// A table prepared by the scripts of Edin et al. 2023 (`mimiciv_icd10.feather`,
/// `mimiciv_icd10_split.feather`); column names default to theirs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MimicParams {
    /// The prepared table: `.feather` / `.arrow` (Arrow IPC), `.parquet` or `.csv`.
    pub table: PathBuf,
    /// The split table: id -> `train` / `val` / `test` (feather, parquet or CSV).
    pub splits: PathBuf,
    /// Document id column, in both tables.
    #[serde(default = "default_mimic_id_column")]
    pub id_column: String,
    #[serde(default = "default_mimic_text_column")]
    pub text_column: String,
    /// Diagnoses + procedures (a list of codes), used when `codes = "both"`.
    #[serde(default = "default_mimic_target_column")]
    pub target_column: String,
    /// Diagnosis code list column; default: the one column whose name ends in `_diag` (`icd10_diag`, `icd9_diag`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnosis_column: Option<String>,
    /// Procedure code list column; default: the one column whose name ends in `_proc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub procedure_column: Option<String>,
    /// Split column of the split table.
    #[serde(default = "default_mimic_split_column")]
    pub split_column: String,
    /// Which codes are gold; default `both`, Edin et al.'s `target` (diagnoses + procedures),
    /// which the published MIMIC-IV figures use.
    #[serde(default = "default_mimic_codes")]
    pub codes: CodeSystem,
    /// Drop codes carried by fewer documents than this, counted over all splits as Edin et al. do (0 = keep all).
    #[serde(default)]
    pub min_code_frequency: usize,
    /// Keep only the first this many whitespace words of each document (0 = whole text).
    #[serde(default)]
    pub max_words: usize,
    /// Keep at most this many documents per split, drawn with `seed`, stratified by the rarest code's frequency (0 = all).
    #[serde(default)]
    pub sample: usize,
    #[serde(default = "default_source_seed")]
    pub seed: u64,
    /// MDACE evidence to train beside the table: its training-split notes (with their spans,
    /// for `gold_evidence`) join the training documents; its val/test notes are left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mdace: Option<MdaceParams>,
    /// MIMIC-IV-Note `discharge.csv.gz` (or .csv / .parquet): when set, each document's text is
    /// the original note joined by `note_id`, instead of the table's pre-processed text
    /// (lower-cased, no punctuation, no digits). The default keeps the pre-processed text,
    /// which published figures use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<PathBuf>,
    /// The note id column, in the table and in `notes`.
    #[serde(default = "default_note_id_column")]
    pub note_id_column: String,
}

fn default_note_id_column() -> String {
    "note_id".into()
}

fn default_mimic_codes() -> CodeSystem {
    CodeSystem::Both
}
fn default_mimic_id_column() -> String {
    "_id".into()
}
fn default_mimic_text_column() -> String {
    "text".into()
}
fn default_mimic_target_column() -> String {
    "target".into()
}
fn default_mimic_split_column() -> String {
    "split".into()
}
fn default_source_seed() -> u64 {
    2026
}

/// MDACE (Cheng et al. 2023) as distributed: one JSON per chart, note text from MIMIC-III.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MdaceParams {
    /// Folder of chart JSON files, searched recursively (e.g. `MDACE/data/Inpatient/ICD-10/1.0`).
    pub annotations: PathBuf,
    /// MIMIC-III NOTEEVENTS (`.csv`, `.csv.gz` or `.parquet`; ROW_ID is the note id, TEXT the text).
    /// May be left out when the JSON files carry note text (the output of MDACE's `inject-note-text.py`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<PathBuf>,
    /// Admission ids (hadm_id), one per line, of each split (MDACE's `splits/Inpatient/MDace-ev-*.csv`).
    pub train_ids: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_ids: Option<PathBuf>,
    pub test_ids: PathBuf,
    /// Note categories to keep, compared without case (empty = every annotated note).
    #[serde(default = "default_mdace_categories")]
    pub categories: Vec<String>,
}

fn default_mdace_categories() -> Vec<String> {
    vec!["Discharge summary".into()]
}

/// CodiEsp / CodiEsp-X (CLEF eHealth 2020) as distributed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodiespParams {
    /// The folder that holds `train/`, `dev/` and `test/` (`final_dataset_v4_to_publish`).
    pub root: PathBuf,
    /// `es` (the original, `text_files/`) or `en` (the machine translation, `text_files_en/`).
    #[serde(default = "default_codiesp_language")]
    pub language: String,
    /// Diagnosis codes (`*D.tsv`), procedure codes (`*P.tsv`) or both.
    #[serde(default)]
    pub codes: CodeSystem,
    /// Read CodiEsp-X evidence (`*X.tsv`); its positions index the Spanish text, so `language = "en"` reads none.
    #[serde(default = "default_true")]
    pub evidence: bool,
}

fn default_codiesp_language() -> String {
    "es".into()
}
fn default_true() -> bool {
    true
}

impl Default for DataSource {
    fn default() -> Self {
        DataSource::Synthetic(SyntheticParams::default())
    }
}

/// Bumped whenever the synthetic generator's output for the same parameters changes.
/// Versions before it stay reproducible through `data.source.version`.
pub const GENERATOR_VERSION: u32 = 2;

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
    /// The generator version ([`GENERATOR_VERSION`] is the newest);
    /// an older version reproduces its documents byte for byte.
    pub version: u32,
    /// Version 1 only: fraction of test mentions rewritten by its held-out tables
    /// (unset = 0.5; version 2 words mentions with the paraphrase grammar instead).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reworded_fraction: Option<f64>,
    /// Version 2: share of training mentions in code-table wording (the rest are
    /// shared-lexicon paraphrases).
    pub train_verbatim_fraction: f64,
    /// Version 2: share of test and validation mentions in code-table wording (default 0: none).
    /// Validation is worded like test, without the held-out lexicon.
    pub test_verbatim_fraction: f64,
    /// Version 2: share of the other test mentions that use the held-out lexicon
    /// (what only a pretrained model can know); the rest combine shared paraphrases.
    pub held_out_fraction: f64,
    /// Version 2: share of notes whose history lists its conditions ("PMH: HTN, HLD, DM2.").
    pub list_fraction: f64,
}

impl SyntheticParams {
    /// Version 1's share of reworded test mentions.
    pub fn reworded_fraction(&self) -> f64 {
        self.reworded_fraction.unwrap_or(0.5)
    }
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
            version: GENERATOR_VERSION,
            reworded_fraction: None,
            train_verbatim_fraction: 0.5,
            test_verbatim_fraction: 0.0,
            held_out_fraction: 0.3,
            list_fraction: 0.3,
        }
    }
}

/// One code-centric expansion strategy: which codes it expands, how many
/// examples per code, and its own parameters.
///
/// Strategy parameters are optional and flat (`[[expansion]] kind = "perturb"
/// variants = 6`); a parameter given to a kind that does not use it is a
/// validation error, and an unset one takes the default its accessor names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expansion {
    pub kind: ExpansionKind,
    /// Which codes to expand.
    #[serde(default)]
    pub coverage: Coverage,
    /// At most this many (distinct) examples per code from this strategy.
    #[serde(default = "default_per_code_cap")]
    pub per_code_cap: usize,
    /// description, inclusion_terms: also emit the table text verbatim when its note form differs (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_raw: Option<bool>,
    /// hierarchy: emit the code's description with its parent category as context (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_context: Option<bool>,
    /// hierarchy: contrastive examples against this many most similar siblings (default 2; 0 = none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub siblings: Option<usize>,
    /// hierarchy: emit the sibling's half of a contrastive pair even when the sibling is outside the coverage (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contrast_outside_coverage: Option<bool>,
    /// abbreviation, perturb: rewrite inclusion terms as well as the description (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_inclusion_terms: Option<bool>,
    /// abbreviation: besides the fully abbreviated form, forms with one rule applied (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<bool>,
    /// perturb: rewrites attempted per code (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variants: Option<usize>,
    /// perturb: which rewrites may be applied (default all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops: Option<Vec<PerturbOp>>,
    /// perturb: at most this many rewrites combined in one variant (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ops: Option<usize>,
    /// silver: skip mentions under a negation / family-history / ruled-out cue (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negation: Option<bool>,
    /// silver: match inclusion terms as well as descriptions (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inclusion_terms: Option<bool>,
    /// silver: shortest term in words the matcher uses (default 1; only gold codes are kept, so short terms do little harm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_words: Option<usize>,
    /// silver, gold_evidence: give the sentence around the span as its context (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentence_context: Option<bool>,
    /// synthesize: phrasings requested from the generator per code (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<usize>,
    /// synthesize: prompt template; `{code}`, `{description}`, `{inclusion_terms}`, `{parent}` and `{n}` are filled in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// synthesize: the LLM that writes phrasings — a backbone name or path (default: the experiment's backbone).
    #[serde(default)]
    pub generator: Option<String>,
    /// synthesize: drop generated phrasings longer than this many words (default 12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_words: Option<usize>,
}

fn default_per_code_cap() -> usize {
    8
}

/// The default synthesize prompt (see [`Expansion::prompt`]).
pub const DEFAULT_SYNTHESIZE_PROMPT: &str = "Write {n} different short phrases (2 to 12 words) that a clinician could write in a discharge summary to document this diagnosis: {description} (ICD-10-CM {code}; category: {parent}). Vary the wording, word order and abbreviations; do not write the code. One phrase per line.";

impl Expansion {
    /// A spec of `kind` with default coverage, cap and parameters.
    pub fn new(kind: ExpansionKind) -> Expansion {
        Expansion {
            kind,
            coverage: Coverage::default(),
            per_code_cap: default_per_code_cap(),
            keep_raw: None,
            parent_context: None,
            siblings: None,
            contrast_outside_coverage: None,
            from_inclusion_terms: None,
            partial: None,
            variants: None,
            ops: None,
            max_ops: None,
            negation: None,
            inclusion_terms: None,
            min_words: None,
            sentence_context: None,
            n: None,
            prompt: None,
            max_words: None,
            generator: None,
        }
    }

    pub fn keep_raw(&self) -> bool {
        self.keep_raw.unwrap_or(false)
    }
    pub fn parent_context(&self) -> bool {
        self.parent_context.unwrap_or(true)
    }
    pub fn siblings(&self) -> usize {
        self.siblings.unwrap_or(2)
    }
    pub fn contrast_outside_coverage(&self) -> bool {
        self.contrast_outside_coverage.unwrap_or(false)
    }
    pub fn from_inclusion_terms(&self) -> bool {
        self.from_inclusion_terms.unwrap_or(true)
    }
    pub fn partial(&self) -> bool {
        self.partial.unwrap_or(true)
    }
    pub fn variants(&self) -> usize {
        self.variants.unwrap_or(4)
    }
    pub fn ops(&self) -> Vec<PerturbOp> {
        self.ops.clone().unwrap_or_else(|| PerturbOp::ALL.to_vec())
    }
    pub fn max_ops(&self) -> usize {
        self.max_ops.unwrap_or(2)
    }
    pub fn negation(&self) -> bool {
        self.negation.unwrap_or(true)
    }
    pub fn inclusion_terms(&self) -> bool {
        self.inclusion_terms.unwrap_or(true)
    }
    pub fn min_words(&self) -> usize {
        self.min_words.unwrap_or(1)
    }
    pub fn sentence_context(&self) -> bool {
        self.sentence_context.unwrap_or(false)
    }
    pub fn n(&self) -> usize {
        self.n.unwrap_or(8)
    }
    pub fn prompt(&self) -> &str {
        self.prompt.as_deref().unwrap_or(DEFAULT_SYNTHESIZE_PROMPT)
    }
    pub fn max_words(&self) -> usize {
        self.max_words.unwrap_or(12)
    }

    /// Names of the strategy parameters this spec sets, in declaration order.
    pub fn set_parameters(&self) -> Vec<&'static str> {
        let set = [
            ("keep_raw", self.keep_raw.is_some()),
            ("parent_context", self.parent_context.is_some()),
            ("siblings", self.siblings.is_some()),
            ("contrast_outside_coverage", self.contrast_outside_coverage.is_some()),
            ("from_inclusion_terms", self.from_inclusion_terms.is_some()),
            ("partial", self.partial.is_some()),
            ("variants", self.variants.is_some()),
            ("ops", self.ops.is_some()),
            ("max_ops", self.max_ops.is_some()),
            ("negation", self.negation.is_some()),
            ("inclusion_terms", self.inclusion_terms.is_some()),
            ("min_words", self.min_words.is_some()),
            ("sentence_context", self.sentence_context.is_some()),
            ("n", self.n.is_some()),
            ("prompt", self.prompt.is_some()),
            ("max_words", self.max_words.is_some()),
            ("generator", self.generator.is_some()),
        ];
        set.iter().filter(|(_, s)| *s).map(|(k, _)| *k).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpansionKind {
    Description,
    InclusionTerms,
    Hierarchy,
    Abbreviation,
    Perturb,
    Paraphrase,
    Silver,
    GoldEvidence,
    Synthesize,
}

impl ExpansionKind {
    pub const ALL: [ExpansionKind; 9] = [
        ExpansionKind::Description,
        ExpansionKind::InclusionTerms,
        ExpansionKind::Hierarchy,
        ExpansionKind::Abbreviation,
        ExpansionKind::Perturb,
        ExpansionKind::Paraphrase,
        ExpansionKind::Silver,
        ExpansionKind::GoldEvidence,
        ExpansionKind::Synthesize,
    ];

    /// The name the TOML uses, e.g. `gold_evidence`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExpansionKind::Description => "description",
            ExpansionKind::InclusionTerms => "inclusion_terms",
            ExpansionKind::Hierarchy => "hierarchy",
            ExpansionKind::Abbreviation => "abbreviation",
            ExpansionKind::Perturb => "perturb",
            ExpansionKind::Paraphrase => "paraphrase",
            ExpansionKind::Silver => "silver",
            ExpansionKind::GoldEvidence => "gold_evidence",
            ExpansionKind::Synthesize => "synthesize",
        }
    }

    /// The strategy parameters (beyond `coverage` and `per_code_cap`) this kind reads.
    pub fn parameters(self) -> &'static [&'static str] {
        match self {
            ExpansionKind::Description | ExpansionKind::InclusionTerms => &["keep_raw"],
            ExpansionKind::Hierarchy => &["parent_context", "siblings", "contrast_outside_coverage"],
            ExpansionKind::Abbreviation => &["from_inclusion_terms", "partial"],
            ExpansionKind::Perturb => &["from_inclusion_terms", "variants", "ops", "max_ops"],
            ExpansionKind::Paraphrase => &["from_inclusion_terms", "variants"],
            ExpansionKind::Silver => &["negation", "inclusion_terms", "min_words", "sentence_context"],
            ExpansionKind::GoldEvidence => &["sentence_context"],
            ExpansionKind::Synthesize => &["n", "prompt", "max_words", "generator"],
        }
    }
}

impl std::fmt::Display for ExpansionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A seeded rewrite the `perturb` strategy may apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PerturbOp {
    /// Drop a word or clause that carries no coding information ("mellitus", ", unspecified").
    Drop,
    /// Move a trailing clause to the front, or a leading modifier behind a comma.
    Invert,
    /// One character-level slip (swapped, missing or doubled letter) in a long word.
    Typo,
    /// A problem-list marker around the mention ("dx:", "known ...", "..., stable").
    Shorthand,
    /// Upper case or title case, as headings and problem lists write it.
    Case,
}

impl PerturbOp {
    pub const ALL: [PerturbOp; 5] = [PerturbOp::Drop, PerturbOp::Invert, PerturbOp::Typo, PerturbOp::Shorthand, PerturbOp::Case];

    pub fn as_str(self) -> &'static str {
        match self {
            PerturbOp::Drop => "drop",
            PerturbOp::Invert => "invert",
            PerturbOp::Typo => "typo",
            PerturbOp::Shorthand => "shorthand",
            PerturbOp::Case => "case",
        }
    }
}

/// Which codes an expansion strategy covers.
/// TOML: `coverage = "pool"`, `coverage = { chapters = [9, 10] }`, `coverage = { codes = ["I26.09"] }`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Coverage {
    /// The data's code space where it has one (synthetic data: every billable code of
    /// the benchmark's chapters and prefixes), otherwise the training codes.
    #[default]
    Auto,
    /// Every billable code of the data's code space, independent of which codes the
    /// data drew or held out (synthetic data only).
    Benchmark,
    /// Codes carried by training documents.
    TrainingCodes,
    /// Every code of the data's code pool (seen and unseen). On data with unseen codes
    /// this reveals the test label set to training: reports mark it as a leak.
    Pool,
    /// The whole billable code set.
    All,
    /// Billable codes of the given chapters.
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
    /// Token-matched training: feed this run's kind of example (`document_only` or
    /// `span_only`) until it has read as many tokens as this mix's schedule would, with the
    /// same data, seed and `steps`/`epochs`, e.g. `{ strategy = "mixed", span_ratio = 0.5 }`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub match_tokens_of: Option<Mix>,
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
    /// Window length in tokens for documents longer than the context.
    pub chunk_tokens: usize,
    pub chunk_overlap: usize,
    pub max_new_tokens: usize,
    /// Restrict generated codes to the code set with a trie.
    pub constrained: bool,
    pub batch_size: usize,
    /// Model runs: gold mentions of each evaluated split coded one at a time, outside their
    /// note (the span probe); at most this many distinct (mention, code) pairs; 0 = off.
    pub probe_spans: usize,
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
            probe_spans: 200,
        }
    }
}

/// A baseline system run beside the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Baseline {
    /// Finds code descriptions and inclusion terms in the text.
    Dictionary(DictionaryParams),
    /// Character n-gram TF-IDF similarity between stretches of the text and code terms.
    Fuzzy(FuzzyParams),
    /// TF-IDF over word uni/bi-grams and one logistic regression per code seen in training.
    Tfidf(TfidfParams),
    /// Label-wise attention over a text encoder (LAAT, Vu et al. 2020), trained with tch.
    Laat(LaatParams),
    /// The frequency prior: the k most frequent training codes for every note, k tuned on validation.
    Prior(PriorParams),
}

impl Baseline {
    /// The label tables show: the user's `name`, or the kind.
    pub fn name(&self) -> String {
        match self {
            Baseline::Dictionary(p) => p.name.clone().unwrap_or_else(|| "dictionary".into()),
            Baseline::Fuzzy(p) => p.name.clone().unwrap_or_else(|| "fuzzy".into()),
            Baseline::Tfidf(p) => p.name.clone().unwrap_or_else(|| "tfidf".into()),
            Baseline::Laat(p) => p.name.clone().unwrap_or_else(|| "laat".into()),
            Baseline::Prior(p) => p.name.clone().unwrap_or_else(|| "prior".into()),
        }
    }

    /// Whether the baseline's label space is the data's code pool (test labels included).
    pub fn uses_pool(&self) -> bool {
        match self {
            Baseline::Dictionary(p) => p.restrict_to_pool,
            Baseline::Fuzzy(p) => p.restrict_to_pool,
            _ => false,
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
    /// Only match codes of the data's code pool (when the data has one). The pool holds
    /// the test labels, so reports mark this as a leak. Off (the default), the matcher
    /// uses the data's code space (synthetic data) or the whole billable code set.
    pub restrict_to_pool: bool,
    /// Shortest term (in words) the matcher uses; short terms are ambiguous.
    pub min_words: usize,
}

impl Default for DictionaryParams {
    fn default() -> Self {
        DictionaryParams { name: None, negation: true, inclusion_terms: true, restrict_to_pool: false, min_words: 1 }
    }
}

/// Which stretches of a note the fuzzy baseline compares with code terms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FuzzyUnit {
    /// Every run of 1 to `window_words` consecutive words inside one sentence.
    #[default]
    Window,
    /// Whole sentences.
    Sentence,
}

/// The frequency prior: what a system scores by writing the most frequent training codes
/// for every note without reading it. A trained system below it has not learned the task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PriorParams {
    /// A label for tables (default: the kind).
    pub name: Option<String>,
    /// Largest k tried on validation.
    pub max_k: usize,
}

impl Default for PriorParams {
    fn default() -> Self {
        PriorParams { name: None, max_k: 20 }
    }
}

/// Character n-gram TF-IDF (scikit-learn's `char_wb` analyzer, smooth idf fitted on the
/// code terms in scope, sublinear tf, unit L2 rows) and cosine similarity between units of
/// the note and code terms; one global threshold on the score, tuned on validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FuzzyParams {
    /// A label for tables (default: the kind).
    pub name: Option<String>,
    /// Skip units under a negation / family-history / ruled-out cue (the dictionary's cues).
    pub negation: bool,
    /// Compare with inclusion terms as well as descriptions.
    pub inclusion_terms: bool,
    /// Only score codes of the data's code pool (when the data has one; it holds the test
    /// labels, so reports mark this as a leak). Off (the default): the data's code space
    /// (synthetic data) or every billable code.
    pub restrict_to_pool: bool,
    /// Shortest and longest character n-gram, inclusive.
    pub ngram_range: [usize; 2],
    /// Term frequency 1 + ln(count) instead of the raw count.
    pub sublinear_tf: bool,
    pub unit: FuzzyUnit,
    /// Longest window in words (`unit = "window"` only).
    pub window_words: usize,
    /// Scores below this are dropped: the code is unscored in that document.
    pub min_similarity: f64,
    /// Scores kept per document, best first; codes beyond are unscored (never predicted).
    pub top_k: usize,
}

impl Default for FuzzyParams {
    fn default() -> Self {
        FuzzyParams {
            name: None,
            negation: true,
            inclusion_terms: true,
            restrict_to_pool: false,
            ngram_range: [3, 5],
            sublinear_tf: true,
            unit: FuzzyUnit::Window,
            window_words: 12,
            min_similarity: 0.2,
            top_k: 50,
        }
    }
}

/// TF-IDF features (scikit-learn's smooth idf, fitted on the training split) and a
/// one-vs-rest L2-regularised logistic regression per code seen in training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TfidfParams {
    /// A label for tables (default: the kind).
    pub name: Option<String>,
    /// Longest word n-gram: 1 = unigrams, 2 = uni- and bigrams.
    pub max_ngram: usize,
    /// Drop n-grams found in fewer training documents than this.
    pub min_df: usize,
    /// Keep the most frequent n-grams (by count over the training split); 0 = all.
    pub max_features: usize,
    /// Term frequency 1 + ln(tf) instead of the raw count.
    pub sublinear_tf: bool,
    /// L2 penalty on the weights (not the bias), added to the mean log-loss.
    pub l2: f64,
    /// Full-batch accelerated gradient iterations per code.
    pub iterations: usize,
}

impl Default for TfidfParams {
    fn default() -> Self {
        TfidfParams { name: None, max_ngram: 2, min_df: 2, max_features: 20_000, sublinear_tf: true, l2: 1e-4, iterations: 300 }
    }
}

/// How the LAAT baseline splits text into tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LaatTokens {
    /// Lower-cased words of the training split (rarer than `min_count` become unknown).
    #[default]
    Words,
    /// A small byte-level BPE trained on the training split.
    Bpe,
}

/// Which encoder reads the tokens before the label-wise attention.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LaatEncoder {
    /// A bidirectional LSTM, as LAAT.
    #[default]
    Bilstm,
    /// One 1-D convolution with tanh (faster on CPU).
    Cnn,
}

/// Label-wise attention: `Z = tanh(W H)`, `A = softmax(U Z)` over tokens per label,
/// `V = A H`, logit of label l = `V_l · beta_l + b_l`; binary cross-entropy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LaatParams {
    /// A label for tables (default: the kind).
    pub name: Option<String>,
    pub tokens: LaatTokens,
    /// Vocabulary size: the most frequent words (`tokens = "words"`) or the BPE's size (`tokens = "bpe"`).
    pub vocab_size: usize,
    /// Words seen fewer times in training become unknown (`tokens = "words"`).
    pub min_count: usize,
    pub encoder: LaatEncoder,
    pub embedding_dim: usize,
    /// Encoder width per direction (the BiLSTM's H is twice this); the CNN's channels.
    pub hidden: usize,
    /// Size of the attention projection (`d_a`).
    pub attention_dim: usize,
    /// Convolution width (`encoder = "cnn"`).
    pub kernel: usize,
    pub dropout: f64,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    /// Documents are cut after this many tokens.
    pub max_tokens: usize,
    /// `cpu` (default), `auto`, `cuda` or `cuda:N`.
    pub device: String,
}

impl Default for LaatParams {
    fn default() -> Self {
        LaatParams {
            name: None,
            tokens: LaatTokens::Words,
            vocab_size: 5000,
            min_count: 1,
            encoder: LaatEncoder::Bilstm,
            embedding_dim: 64,
            hidden: 64,
            attention_dim: 64,
            kernel: 5,
            dropout: 0.2,
            epochs: 10,
            batch_size: 16,
            lr: 2e-3,
            weight_decay: 0.0,
            max_tokens: 512,
            device: "cpu".into(),
        }
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
