//! From an experiment file to the runs it asks for, each with its resolved
//! spec (defaults filled), the hashes of every input it reads, and the
//! fingerprint that names its results folder. Nothing is computed here.

use crate::config::{self, Backbone, Baseline, Eval, Expansion, Experiment, Mix, Train, TrainMode};
use crate::data::Data;
use crate::fingerprint::{hash_bytes, hash_file, stage_identity, Fingerprint, InputHash, Manifest, Stage, Versions};
use std::collections::BTreeMap;
use crate::icd::CodeSet;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("{path}: cannot hash input file: {source}")]
    Input { path: PathBuf, source: std::io::Error },
    #[error("{path}: cannot serialise a run's key ({source}); report this as a bug")]
    Key { path: PathBuf, source: serde_json::Error },
    #[error("{path}: [backbone] {message}")]
    Backbone { path: PathBuf, message: String },
}

/// What one run computes: everything that can change its numbers, resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub experiment: String,
    /// The sweep settings this run came from (empty without a sweep).
    pub sweep: Vec<(String, String)>,
    pub seed: u64,
    pub system: SystemSpec,
    pub data: DataSpec,
    pub eval: Eval,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// Tagged `system`, not `kind`: a baseline's own `kind` sits in the same object.
#[serde(tag = "system", rename_all = "snake_case")]
pub enum SystemSpec {
    Baseline(Baseline),
    /// An LLM backbone, fine-tuned on the mix (or prompted zero-shot).
    Model(ModelSpec),
}

/// Everything a model run depends on besides data and evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub backbone: Backbone,
    pub expansion: Vec<Expansion>,
    pub mix: Mix,
    pub train: Train,
}

impl ModelSpec {
    /// Settings a strategy does not use are reset, so runs that differ only there are one run
    /// (and share one fingerprint).
    pub fn canonical(mut self) -> ModelSpec {
        self.mix = self.mix.canonical();
        self.train.match_tokens_of = self.train.match_tokens_of.take().map(Mix::canonical);
        // A token-matched run plans its reference's schedule, spans included, to know its budget.
        let reads_spans = self.mix.uses_spans() || self.train.match_tokens_of.as_ref().is_some_and(Mix::uses_spans);
        if !reads_spans && self.mix.strategy == config::MixStrategy::DocumentOnly {
            self.expansion.clear();
        }
        if self.train.mode == TrainMode::ZeroShot {
            self.expansion.clear();
            self.mix = Mix::default();
            self.train.match_tokens_of = None;
        }
        self
    }
}

impl RunSpec {
    /// The system's name, marked where it draws on a code pool that holds test labels
    /// (the synthetic benchmark's pool; a real data set's pool never does).
    pub fn system_name(&self) -> String {
        let pool_has_test_labels = self.data.config.source.source().pool_has_test_labels();
        self.system.name_marking_pool(pool_has_test_labels)
    }
}

impl SystemSpec {
    fn name_marking_pool(&self, pool_has_test_labels: bool) -> String {
        match self {
            SystemSpec::Baseline(b) if b.uses_pool() && pool_has_test_labels => format!("{}{POOL_LEAK}", b.name()),
            SystemSpec::Baseline(b) => b.name(),
            SystemSpec::Model(m) if m.train.mode == TrainMode::ZeroShot => format!("{} zero-shot", m.backbone.name),
            SystemSpec::Model(m) => {
                let mix = mix_name(&m.mix);
                let leak = pool_has_test_labels && m.mix.strategy != config::MixStrategy::DocumentOnly && m.expansion.iter().any(|e| *e.coverage() == config::Coverage::Pool);
                let leak = if leak { POOL_LEAK } else { "" };
                match &m.train.match_tokens_of {
                    Some(reference) if m.train.token_fraction != 1.0 => {
                        let percent = (m.train.token_fraction * 10_000.0).round() / 100.0;
                        format!("{} {mix} ({percent}% of the tokens of {}){leak}", m.backbone.name, mix_name(reference))
                    }
                    Some(reference) => format!("{} {mix} (tokens of {}){leak}", m.backbone.name, mix_name(reference)),
                    None => format!("{} {mix}{leak}", m.backbone.name),
                }
            }
        }
    }
}

/// Appended to the name of a system that draws on the synthetic benchmark's code pool, which holds the test labels.
pub const POOL_LEAK: &str = " [pool: test labels leak]";

/// `document_only`, `mixed 0.50`, `curriculum spans>documents`.
fn mix_name(mix: &Mix) -> String {
    match mix.strategy {
        config::MixStrategy::DocumentOnly => "document_only".to_string(),
        config::MixStrategy::SpanOnly => "span_only".to_string(),
        config::MixStrategy::Mixed => format!("mixed {:.2}", mix.span_ratio),
        config::MixStrategy::Curriculum => format!("curriculum {}", mix.phases.join(">")),
    }
}

/// The data part of a spec: the config plus the generator version for synthetic data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSpec {
    #[serde(flatten)]
    pub config: Data,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generator_version: Option<u32>,
    /// Folder that relative data paths are resolved against (not fingerprinted: contents are).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// One run, ready to execute or to be found in the cache.
#[derive(Debug, Clone)]
pub struct PlannedRun {
    pub spec: RunSpec,
    pub manifest: Manifest,
    pub fingerprint: Fingerprint,
    /// The keys of the cached stages this run is assembled from.
    pub stages: StageKeys,
    /// `results/<experiment>/<fingerprint prefix>/`
    pub dir: PathBuf,
}

/// Keys of the stages a run reuses from `results/.cache/`, each covering only what that stage
/// depends on: the trained weights do not depend on evaluation settings, a split's predictions
/// do not depend on bootstrap samples, neither depends on the experiment's name, and each
/// covers only the code of its stage ([`crate::code_identity::STAGES`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StageKeys {
    /// The documents: data config, data inputs, code identity.
    pub data: Fingerprint,
    /// A model's trained weights, or a baseline's fitted state.
    pub train: Fingerprint,
    /// Predictions of each evaluated split.
    pub predict: BTreeMap<String, Fingerprint>,
}

impl StageKeys {
    fn derive(spec: &RunSpec, key: &crate::fingerprint::Key, data_inputs: &[InputHash]) -> StageKeys {
        let v = &key.versions;
        // Each stage's key covers the code that stage runs, not the whole tree's.
        let data = Fingerprint::of_value(&serde_json::json!({
            "stage": "data", "code": stage_identity(Stage::Data), "data": key.spec["data"], "inputs": data_inputs,
        }));
        let fitting = match spec.system {
            SystemSpec::Model(_) => Stage::Train,
            SystemSpec::Baseline(_) => Stage::Fit,
        };
        let train = Fingerprint::of_value(&serde_json::json!({
            "stage": "train", "code": stage_identity(fitting), "libtorch": v.libtorch, "device": v.device,
            "data": data, "system": key.spec["system"], "seed": spec.seed, "inputs": key.inputs,
        }));
        let e = &spec.eval;
        // Baselines have no decoding settings; a model's split predictions depend on all of these.
        let decoding = match spec.system {
            SystemSpec::Model(_) => {
                let mut d = serde_json::json!({
                    "chunk_tokens": e.chunk_tokens(), "chunk_overlap": e.chunk_overlap(), "max_new_tokens": e.max_new_tokens,
                    "constrained": e.constrained, "batch_size": e.batch_size, "probe_spans": e.probe_spans,
                });
                // Keyed only when set, so keys of runs that read whole notes stay as they were.
                if !e.read.is_windows() {
                    d["read"] = serde_json::json!(e.read);
                }
                d
            }
            SystemSpec::Baseline(_) => serde_json::Value::Null,
        };
        let predict = e
            .splits
            .iter()
            .map(|split| (split.clone(), Fingerprint::of_value(&serde_json::json!({"stage": "predict", "code": stage_identity(Stage::Predict), "train": train, "decoding": decoding, "split": split}))))
            .collect();
        StageKeys { data, train, predict }
    }

    /// The stage keys a manifest records (empty for manifests written before stages existed).
    pub fn recorded(manifest: &Manifest) -> StageKeys {
        let get = |k: &str| Fingerprint::from_hex(manifest.stages.get(k).map(String::as_str).unwrap_or(""));
        let predict = manifest.stages.iter().filter_map(|(k, v)| k.strip_prefix("predict.").map(|split| (split.to_string(), Fingerprint::from_hex(v)))).collect();
        StageKeys { data: get("data"), train: get("train"), predict }
    }

    /// `train` → key, `predict.test` → key, ... as the manifest records them.
    pub fn as_map(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::from([("data".to_string(), self.data.to_string()), ("train".to_string(), self.train.to_string())]);
        for (split, k) in &self.predict {
            m.insert(format!("predict.{split}"), k.to_string());
        }
        m
    }
}

impl PlannedRun {
    /// Where the run and each of its stages live in the store.
    pub fn paths(&self) -> crate::store::RunPaths {
        let predict = self.stages.predict.iter().map(|(split, key)| (split.clone(), key.as_str().to_string()));
        crate::store::RunPaths::new(&self.dir, self.stages.data.as_str(), self.stages.train.as_str(), predict)
    }

    /// `dictionary` or `dictionary [mix.span_ratio=0.5]`.
    pub fn label(&self) -> String {
        let system = self.spec.system_name();
        if self.spec.sweep.is_empty() {
            system
        } else {
            let s: Vec<String> = self.spec.sweep.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{system} [{}]", s.join(","))
        }
    }
}

/// Plans every run of an experiment file; identical runs (same fingerprint) appear once.
pub fn plan_file(path: &Path, results_root: &Path) -> Result<Vec<PlannedRun>, PlanError> {
    plan_file_with(path, results_root, None)
}

/// Plans like [`plan_file`] when inputs (data files, backbone checkpoints) are not there yet:
/// instead of failing, it returns each missing input as `key: what`. Runs planned without an
/// input are fingerprinted without it, so their fingerprints change once it exists.
pub fn plan_file_without_inputs(path: &Path, results_root: &Path) -> Result<(Vec<PlannedRun>, Vec<String>), PlanError> {
    let mut missing = Vec::new();
    let runs = plan_file_with(path, results_root, Some(&mut missing))?;
    // Every sweep point and system lists the same inputs; name each once.
    let mut named = std::collections::HashSet::new();
    missing.retain(|m| named.insert(m.clone()));
    Ok((runs, missing))
}

fn plan_file_with(path: &Path, results_root: &Path, mut missing: Option<&mut Vec<String>>) -> Result<Vec<PlannedRun>, PlanError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| config::ConfigError::Read { path: path.to_path_buf(), source })?;
    let points = config::expand_sweep_with(&text, path, missing.is_none())?;
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut runs: Vec<PlannedRun> = Vec::new();
    for point in points {
        let exp = &point.experiment;
        let inputs = input_hashes(exp, &base_dir, missing.as_deref_mut())?;
        let data = DataSpec {
            config: exp.data.clone(),
            generator_version: exp.data.source.source().generator_version(),
            base_dir: base_dir.clone(),
        };
        if let Some(backbone) = &exp.backbone {
            let device = crate::device::resolve(&backbone.device)
                .map_err(|e| PlanError::Backbone { path: path.to_path_buf(), message: e.to_string() })?;
            // One key for one computation: `auto` is planned as the device it resolves to.
            let mut backbone = backbone.clone();
            backbone.device = crate::device::name(device);
            let backbone = &backbone;
            let mut model_inputs = inputs.clone();
            if !backbone.is_tiny() {
                match crate::model::backbone::resolve(&backbone.name, backbone.format, &base_dir) {
                    Ok(source) => {
                        for f in source.files() {
                            model_inputs.push(hash_file("backbone", &f).map_err(|source| PlanError::Input { path: f.clone(), source })?);
                        }
                    }
                    Err(e) => match missing.as_deref_mut() {
                        Some(m) => m.push(format!("backbone.name: {e}")),
                        None => return Err(PlanError::Backbone { path: path.to_path_buf(), message: e.to_string() }),
                    },
                }
            }
            // The LLM that writes `synthesize` spans is an input too.
            for e in exp.expansion.iter().filter_map(|e| if let config::Expansion::Synthesize(p) = e { Some(p) } else { None }) {
                let name = e.generator.clone().unwrap_or_else(|| backbone.name.clone());
                if name != "tiny" && name != backbone.name {
                    let source = crate::model::backbone::resolve(&name, config::WeightFormat::Auto, &base_dir)
                        .map_err(|err| PlanError::Backbone { path: path.to_path_buf(), message: err.to_string() })?;
                    for f in source.files() {
                        model_inputs.push(hash_file("generator", &f).map_err(|source| PlanError::Input { path: f.clone(), source })?);
                    }
                }
            }
            let spec = RunSpec {
                experiment: exp.experiment.name.clone(),
                sweep: point.settings.clone(),
                seed: exp.experiment.seed,
                system: SystemSpec::Model(
                    ModelSpec { backbone: backbone.clone(), expansion: exp.expansion.clone(), mix: exp.mix.clone(), train: exp.train.clone() }
                        .canonical(),
                ),
                data: data.clone(),
                eval: exp.eval.clone(),
            };
            push_run(&mut runs, spec, model_inputs, &inputs, device, results_root, path)?;
        }
        for baseline in &exp.baselines {
            let spec = RunSpec {
                experiment: exp.experiment.name.clone(),
                // A baseline's label names only the settings it can depend on (an arm: when it sets one).
                sweep: point
                    .settings
                    .iter()
                    .filter(|(k, _)| if k == config::ARM_KEY { !point.arm_keys.iter().all(|a| model_only(a)) } else { !model_only(k) })
                    .cloned()
                    .collect(),
                seed: exp.experiment.seed,
                system: SystemSpec::Baseline(baseline.clone()),
                data: data.clone(),
                eval: exp.eval.clone(),
            };
            // Baselines compute on CPU.
            push_run(&mut runs, spec, inputs.clone(), &inputs, tch::Device::Cpu, results_root, path)?;
        }
    }
    Ok(runs)
}

/// Sweep keys that configure the model and nothing else.
const MODEL_ONLY_KEYS: &[&str] = &["backbone", "expansion", "mix", "train"];

fn model_only(key: &str) -> bool {
    MODEL_ONLY_KEYS.iter().any(|m| key.starts_with(m))
}

/// Fingerprints a run and adds it unless an identical one is planned already.
/// The sweep label is not fingerprinted: two points that resolve alike are one run.
fn push_run(
    runs: &mut Vec<PlannedRun>,
    spec: RunSpec,
    inputs: Vec<InputHash>,
    data_inputs: &[InputHash],
    device: tch::Device,
    results_root: &Path,
    path: &Path,
) -> Result<(), PlanError> {
    let mut keyed = spec.clone();
    keyed.sweep.clear();
    let key_error = |source| PlanError::Key { path: path.to_path_buf(), source };
    let mut manifest = Manifest::new(&keyed_spec(&keyed).map_err(key_error)?, inputs, Versions::current(device)).map_err(key_error)?;
    let fingerprint = manifest.fingerprint();
    if runs.iter().any(|r| r.fingerprint == fingerprint) {
        return Ok(());
    }
    let stages = StageKeys::derive(&spec, &manifest.key, data_inputs);
    manifest.stages = stages.as_map();
    let dir = results_root.join(&spec.experiment).join(fingerprint.short());
    runs.push(PlannedRun { spec, manifest, fingerprint, stages, dir });
    Ok(())
}

/// Fields of `data.source` that name files or folders: their contents are inputs, their paths are not hashed.
const PATH_FIELDS: &[&str] = &["train", "val", "test", "table", "splits", "annotations", "notes", "train_ids", "val_ids", "test_ids", "root"];

/// The spec as the fingerprint sees it: every path whose content is hashed as an input is
/// replaced by `<input>`, so the same files reached by another path are the same run.
fn keyed_spec(spec: &RunSpec) -> Result<serde_json::Value, serde_json::Error> {
    use serde_json::Value;
    let mut v = serde_json::to_value(spec)?;
    fn blank(obj: &mut Value) {
        if let Value::Object(map) = obj {
            for (k, val) in map.iter_mut() {
                if k == "mdace" {
                    blank(val);
                } else if PATH_FIELDS.contains(&k.as_str()) && val.is_string() {
                    *val = Value::String("<input>".into());
                }
            }
        }
    }
    if let Some(source) = v.pointer_mut("/data/source") {
        blank(source);
    }
    if let Some(table) = v.pointer_mut("/data/code_table") {
        if !matches!(table.as_str(), Some("builtin" | "builtin+pcs")) {
            *table = Value::String("<input>".into());
        }
    }
    // Activation checkpointing recomputes exactly what it drops: the same run, the same numbers.
    if let Some(Value::Object(train)) = v.pointer_mut("/system/train") {
        train.remove("checkpointing");
    }
    // A checkpoint given by path is hashed as the `backbone` input.
    let packaged = |name: &str| name == "tiny" || crate::model::backbone::PACKAGED.iter().any(|(n, _, _)| *n == name);
    if let Some(name) = v.pointer_mut("/system/backbone/name") {
        if name.as_str().is_some_and(|n| !packaged(n)) {
            *name = Value::String("<input>".into());
        }
    }
    if let Some(Value::Array(entries)) = v.pointer_mut("/system/expansion") {
        for e in entries {
            if let Some(g) = e.get_mut("generator") {
                if g.as_str().is_some_and(|n| !packaged(n)) {
                    *g = Value::String("<input>".into());
                }
            }
        }
    }
    Ok(v)
}

/// The sha256 of every file the runs of `exp` read. With `missing`, an input that is not there
/// is listed in it (as `key: path`) instead of failing.
fn input_hashes(exp: &Experiment, base: &Path, mut missing: Option<&mut Vec<String>>) -> Result<Vec<InputHash>, PlanError> {
    let mut inputs = Vec::new();
    if exp.data.builtin_table() {
        inputs.push(hash_bytes("code_table", "builtin:icd10cm-2026", CodeSet::builtin_bytes()));
        if exp.data.uses_procedures() {
            inputs.push(hash_bytes("code_table_pcs", "builtin:icd10pcs-2024", CodeSet::builtin_pcs_bytes()));
        }
    }
    for input in exp.data.inputs() {
        let (role, full, folder) = (input.role, base.join(&input.path), input.folder);
        let present = if folder { full.is_dir() } else { full.is_file() };
        if let (false, Some(m)) = (present, missing.as_deref_mut()) {
            m.push(format!("{}: {} {} not found", input.key, if folder { "folder" } else { "file" }, full.display()));
            continue;
        }
        let hash = if folder { hash_folder(role, &full) } else { hash_file(role, &full) };
        inputs.push(hash.map_err(|source| PlanError::Input { path: full, source })?);
    }
    Ok(inputs)
}

/// One hash over every file under `dir` (relative path, sha256 and size of each, in path order).
fn hash_folder(role: &str, dir: &Path) -> std::io::Result<InputHash> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(&path, out)?;
            } else {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    files.sort();
    let mut listing = String::new();
    let mut total = 0;
    for f in files {
        let h = hash_file(role, &f)?;
        total += h.bytes;
        let rel = f.strip_prefix(dir).unwrap_or(&f);
        listing.push_str(&format!("{} {} {}\n", rel.display(), h.sha256, h.bytes));
    }
    let mut hash = hash_bytes(role, &dir.display().to_string(), listing.as_bytes());
    hash.bytes = total;
    Ok(hash)
}
