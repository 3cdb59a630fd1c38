//! The train stage of a model run: backbone -> expansion -> mix -> train. Prediction is
//! [`super::predict`]'s; scoring and recording are the runner's, as for every system.

use super::pretrain::{self, PretrainRecord};
use super::stage::{RunError, RunLog, RunOptions};
use crate::config::{Backbone, DocumentSampling, Expansion, LongDocuments, MixStrategy, PromptChoice, SpanFormat, TrainMode};
use crate::data::preprocess;
use crate::data::registry::Preprocess;
use crate::data::{Dataset, Split};
use crate::expand::llm::LlmWriter;
use crate::expand::{expand, ExpandContext, ExpansionReport};
use crate::icd::{Code, CodeSet};
use crate::mix::{self, MixReport};
use crate::model::backbone;
use crate::model::config::ModelConfig;
use crate::model::generate::Throughput;
use crate::model::llama::{tiny_config, CausalLM};
use crate::model::lora::LoraConfig;
use crate::model::tokenizer::TextTokenizer;
use crate::plan::{ModelSpec, PlannedRun};
use crate::predict::{self, PredictStats};
use crate::prompt::{span_notes, DocExample, Formatter, PromptStyle, SpanExample, TrainingPair};
use crate::train::{self, encode_pairs, ExampleKind, TrainOptions, TrainReport, Trainable};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;

/// What a model run records beside its scores: the cost of training and what it was fed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    pub device: String,
    pub backbone: String,
    pub parameters: u64,
    /// The tiny backbone's reading pretraining, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pretraining: Option<PretrainRecord>,
    pub training: Option<TrainReport>,
    pub mix: Option<MixReport>,
    pub expansion: Option<ExpansionReport>,
    pub inference: Throughput,
    pub predict_stats: PredictStats,
    pub span_examples: usize,
    pub document_examples: usize,
    /// Training documents longer than the training length that were truncated (`train.long_documents`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub truncated_documents: usize,
    /// Tokens of those documents past the cut: never read in training.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub truncated_tokens: usize,
    /// Training documents longer than the training length read whole in windows.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub windowed_documents: usize,
    /// Tokens of the training documents' text, read or not.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub document_tokens_total: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// What the mix feeds, for the run's log: examples and tokens of each kind, and for a
/// token-matched run the schedule whose tokens it matches.
fn mix_line(r: &MixReport) -> String {
    let mut line = format!(
        "mix: {} span + {} document examples ({:.2} document passes), {} + {} = {} tokens",
        r.spans_fed,
        r.documents_fed,
        r.document_epochs,
        r.span_tokens,
        r.document_tokens,
        r.tokens()
    );
    if r.document_sampling == DocumentSampling::CodeBalanced {
        line.push_str(&format!("; documents drawn towards rare codes, {} distinct", r.distinct_documents));
    }
    if r.spans_fed > 0 && !r.span_sources.is_empty() {
        let shares: Vec<String> = r
            .span_sources
            .iter()
            .map(|(name, s)| {
                let weight = if s.weight == 1.0 { String::new() } else { format!(", weight {}", s.weight) };
                format!("{name} {:.1}% ({} of {} examples{weight})", 100.0 * s.share, s.fed, s.examples)
            })
            .collect();
        line.push_str(&format!("; spans fed by source: {}", shares.join(", ")));
    }
    if let Some(m) = &r.matched_to {
        let name = serde_json::to_value(m.strategy).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        line.push_str(&format!(
            "; token-matched to {}{name}{}, whose schedule feeds {} span + {} document examples, a budget of {} tokens ({:+} here)",
            if m.fraction == 1.0 { String::new() } else { format!("{}% of ", (m.fraction * 10_000.0).round() / 100.0) },
            if m.strategy == MixStrategy::Mixed { format!(" {:.2}", m.span_ratio) } else { String::new() },
            m.spans_fed,
            m.documents_fed,
            m.tokens,
            r.tokens() as i64 - m.tokens as i64
        ));
    }
    line
}

/// A trained model, ready to predict, and what its training recorded.
pub(super) struct Trained {
    pub model: CausalLM,
    pub tok: TextTokenizer,
    pub formatter: Formatter,
    /// Span texts the run trained on, by code: the probe tells recall of a trained string from generalisation.
    pub trained_spans: HashSet<(String, Code)>,
    pub record: ModelRecord,
}

fn model_err(e: impl std::fmt::Display) -> RunError {
    RunError::Model(e.to_string())
}

/// Text the tiny tokenizer is trained on, shaped like what the model reads:
/// every training document in its prompt, and the span instruction with each
/// description of the code space (of the training codes when the data has
/// none) — never of the pool, which holds the test-only codes.
fn tokenizer_corpus(dataset: &Dataset, codes: &CodeSet, formatter: &Formatter) -> Vec<String> {
    let mut corpus: Vec<String> = dataset.split(Split::Train).map(|d| formatter.doc_prompt(&d.text, None)).collect();
    let described: Vec<Code> = if dataset.code_space.is_empty() {
        dataset.seen_codes().into_iter().collect()
    } else {
        dataset.code_space.clone()
    };
    let span_instruction = &formatter.instructions().span;
    for code in &described {
        if let Some(e) = codes.get(code) {
            corpus.push(format!("{span_instruction}\n{} | {}", e.code, e.description));
        }
    }
    corpus
}

fn tiny_model_config(spec: &Backbone, vocab: usize) -> ModelConfig {
    let mut c = tiny_config(vocab);
    c.num_hidden_layers = spec.tiny.layers;
    c.hidden_size = spec.tiny.hidden;
    c.num_attention_heads = spec.tiny.heads;
    c.num_key_value_heads = Some(spec.tiny.kv_heads);
    c.intermediate_size = spec.tiny.intermediate;
    c.max_position_embeddings = crate::config::TinyModel::CONTEXT;
    c
}

/// The LLM behind `synthesize` (its `generator`, or the backbone), with an identity naming its weights.
fn load_generator(spec: &ModelSpec, base_dir: &Path, device: tch::Device) -> Result<Option<(backbone::Loaded, String)>, RunError> {
    let Some(entry) = spec.expansion.iter().find_map(|e| if let Expansion::Synthesize(p) = e { Some(p) } else { None }) else { return Ok(None) };
    let name = entry.generator.clone().unwrap_or_else(|| spec.backbone.name.clone());
    if name == "tiny" {
        return Err(RunError::Model("synthesize needs a pretrained generator: set generator = \"smollm2-135m\" (or a checkpoint path) on the synthesize entry".into()));
    }
    let source = backbone::resolve(&name, crate::config::WeightFormat::Auto, base_dir).map_err(model_err)?;
    let mut identity = name.clone();
    for f in source.files() {
        let h = crate::fingerprint::hash_file("generator", &f).map_err(|e| RunError::Io { path: f.clone(), source: e })?;
        identity.push_str(&format!(" {}", &h.sha256[..16]));
    }
    let loaded = backbone::load_source(source, device, backbone::kind_for(crate::config::DType::Auto, device)).map_err(model_err)?;
    Ok(Some((loaded, identity)))
}

/// Trains (or, with the train stage's final checkpoint in `train_dir`, reloads the trained
/// weights at no cost).
pub(super) fn train(
    run: &PlannedRun,
    spec: &ModelSpec,
    codes: &CodeSet,
    dataset: &Dataset,
    train_dir: &Path,
    opts: &RunOptions,
    log: &mut RunLog,
) -> Result<Trained, RunError> {
    let work_dir = train_dir;
    let seed = run.spec.seed;
    let base_dir = run.spec.data.base_dir.clone();
    let device = crate::device::resolve(&spec.backbone.device).map_err(model_err)?;
    tch::manual_seed(seed as i64);

    // What later runs reuse (pretrained tiny weights, LLM-written spans): results/.cache.
    let cache_root = run.dir.parent().and_then(Path::parent).map(|root| root.join(".cache"));

    // Backbone and tokenizer.
    let mut pretrained = None;
    let (model_holder, tok, mut base_vs, style) = if spec.backbone.is_tiny() {
        let corpus = tokenizer_corpus(dataset, codes, &Formatter::new(PromptStyle::Plain).with_order(spec.backbone.answer));
        let refs: Vec<&str> = corpus.iter().map(String::as_str).collect();
        let tok = TextTokenizer::tiny(&refs, spec.backbone.tiny.vocab).map_err(model_err)?;
        let config = tiny_model_config(&spec.backbone, tok.vocab_size());
        let mut vs = tch::nn::VarStore::new(device);
        let pretrain = spec.backbone.tiny.pretrain_steps > 0;
        if pretrain {
            // A fixed backbone: its own seed, not the experiment's.
            tch::manual_seed(spec.backbone.tiny.seed as i64);
        }
        let model = CausalLM::new(&vs.root(), &config).map_err(model_err)?;
        if pretrain {
            let notes: Vec<&str> = dataset.split(Split::Train).map(|d| d.text.as_str()).collect();
            let val_notes: Vec<&str> = dataset.split(Split::Val).map(|d| d.text.as_str()).collect();
            pretrained = Some(pretrain::pretrain_reading(
                &model,
                &mut vs,
                &tok,
                &notes,
                &val_notes,
                &corpus,
                &spec.backbone,
                spec.train.max_length,
                &cache_root.clone().unwrap_or_else(|| work_dir.join(".cache")),
                opts,
                log,
            )?);
            tch::manual_seed(seed as i64);
        }
        let style = if spec.backbone.prompt == PromptChoice::Chat { PromptStyle::Chat } else { PromptStyle::Plain };
        (model, tok, vs, style)
    } else {
        let loaded = backbone::load(&spec.backbone.name, spec.backbone.format, spec.backbone.dtype, &base_dir, device).map_err(model_err)?;
        let style = if spec.backbone.prompt == PromptChoice::Plain { PromptStyle::Plain } else { PromptStyle::Chat };
        (loaded.model, loaded.tokenizer, loaded.vs, style)
    };
    let mut model = model_holder;
    let parameters: u64 = base_vs.variables().values().map(|t| t.numel() as u64).sum();
    log.line(format!("backbone {} on {}: {parameters} parameters, vocabulary {}", spec.backbone.name, crate::device::name(device), tok.vocab_size()));
    let formatter = Formatter::new(style).with_order(spec.backbone.answer);

    // Span texts the run trains on, by code: the probe tells recall of a trained string from generalisation.
    let mut trained_spans: HashSet<(String, Code)> = HashSet::new();
    let mut record = ModelRecord {
        device: crate::device::name(device),
        backbone: spec.backbone.name.clone(),
        parameters,
        pretraining: pretrained,
        training: None,
        mix: None,
        expansion: None,
        inference: Throughput::default(),
        predict_stats: PredictStats::default(),
        span_examples: 0,
        document_examples: 0,
        truncated_documents: 0,
        truncated_tokens: 0,
        windowed_documents: 0,
        document_tokens_total: 0,
    };

    if spec.train.mode == TrainMode::Finetune {
        // Spans from the expansion strategies; `synthesize` asks an LLM, cached across runs.
        let generator = load_generator(spec, &base_dir, device)?;
        let mut writer = generator.as_ref().map(|(g, identity)| LlmWriter {
            model: &g.model,
            tokenizer: &g.tokenizer,
            identity: identity.clone(),
            temperature: 0.8,
            max_new_tokens: 160,
        });
        let cache_dir = cache_root.as_ref().map(|root| root.join("expansion"));
        let mut ctx = ExpandContext {
            codes,
            dataset,
            seed,
            cache_dir,
            writer: writer.as_mut().map(|w| w as &mut dyn crate::expand::SpanWriter),
        };
        let expanded = expand(&spec.expansion, &mut ctx).map_err(model_err)?;
        log.line(format!("expansion: {} span examples", expanded.examples.len()));
        let spans: Vec<SpanExample> = expanded
            .examples
            .iter()
            .map(|e| SpanExample { span: e.span.clone(), context: e.context.clone(), codes: vec![e.code.clone()], source: format!("{:?}", e.strategy) })
            .collect();
        // One text style per run: spans written as the notes are (a span that preparation
        // would empty, all digits, stays as written and is counted).
        let mut spans = spans;
        if run.spec.data.config.preprocess == Preprocess::Edin {
            let mut kept_raw = 0usize;
            for s in &mut spans {
                let prepared = preprocess::edin(&s.span).0;
                if prepared.is_empty() {
                    kept_raw += 1;
                } else {
                    s.span = prepared;
                }
                s.context = s.context.as_deref().map(|c| preprocess::edin(c).0);
            }
            log.line(format!("spans written as data.preprocess = \"edin\" writes notes ({kept_raw} left as written: nothing would remain)"));
        }
        if spec.mix.uses_spans() {
            trained_spans.extend(spans.iter().flat_map(|s| s.codes.iter().map(move |c| (one_line_lower(&s.span), c.clone()))));
        }
        // Documents that fit the training length whole, or in windows, or truncated.
        let budget = spec.train.document_window();
        let mut docs: Vec<DocExample> = Vec::new();
        let (mut truncated_docs, mut truncated_tokens, mut windowed_docs, mut total_tokens) = (0usize, 0usize, 0usize, 0usize);
        for d in dataset.split(Split::Train) {
            let (windows, note_tokens) = predict::windows_counted(&d.text, &tok, budget, budget / 8);
            total_tokens += note_tokens;
            let truncate = match spec.train.long_documents {
                LongDocuments::Auto => d.evidence.is_empty(),
                LongDocuments::Truncate => true,
                LongDocuments::Windows => false,
            };
            if windows.len() <= 1 {
                docs.push(DocExample::from_document(d));
            } else if truncate {
                let end = windows[0].end_char;
                truncated_docs += 1;
                truncated_tokens += d.slice_chars(end, d.text.chars().count()).map_or(0, |rest| predict::count_tokens(&tok, rest));
                docs.extend(DocExample::truncated(d, end));
            } else {
                windowed_docs += 1;
                docs.extend(windows.iter().filter_map(|w| DocExample::from_window(d, w.start_char, w.end_char)));
            }
        }
        if truncated_docs > 0 {
            log.line(format!(
                "long documents: {truncated_docs} truncated to their first {budget} tokens ({truncated_tokens} tokens not read, {:.1}% of the training notes' {total_tokens})",
                100.0 * truncated_tokens as f64 / total_tokens.max(1) as f64
            ));
        }
        record.truncated_documents = truncated_docs;
        record.truncated_tokens = truncated_tokens;
        record.windowed_documents = windowed_docs;
        record.document_tokens_total = total_tokens;
        // Span examples through the span task, or as short notes through the document task, as
        // this run's mix says (a token-matched run's: the mix whose tokens it matches).
        let span_mix = if spec.mix.uses_spans() { &spec.mix } else { spec.train.match_tokens_of.as_ref().unwrap_or(&spec.mix) };
        let mut pairs: Vec<(TrainingPair, ExampleKind)> = match span_mix.span_format {
            SpanFormat::Span => spans.iter().map(|s| (formatter.span_pair(s, Some(&tok)), ExampleKind::Span)).collect(),
            SpanFormat::Note => span_notes(&spans, span_mix.note_negated, seed).iter().map(|n| (formatter.doc_pair(n, Some(&tok)), ExampleKind::Span)).collect(),
        };
        pairs.extend(docs.iter().map(|d| (formatter.doc_pair(d, Some(&tok)), ExampleKind::Document)));
        let (examples, enc) = encode_pairs(&pairs, &tok, spec.train.max_length).map_err(model_err)?;
        let n_spans = examples.iter().filter(|e| e.kind == ExampleKind::Span).count();
        let n_docs = examples.len() - n_spans;
        log.line(format!("examples: {n_spans} spans, {n_docs} document windows ({} truncated, {} dropped)", enc.truncated, enc.dropped));
        let val_docs: Vec<TrainingPair> = dataset.split(Split::Val).take(32).map(|d| formatter.doc_pair(&DocExample::from_document(d), Some(&tok))).collect();
        let val_pairs: Vec<(TrainingPair, ExampleKind)> = val_docs.into_iter().map(|p| (p, ExampleKind::Document)).collect();
        let (val, _) = encode_pairs(&val_pairs, &tok, spec.train.max_length).map_err(model_err)?;

        // The mix decides the order and the length; the trainer then makes exactly one pass over it.
        let lengths: Vec<usize> = examples.iter().map(|e| e.len()).collect();
        // Each document window's codes, for sampling that weighs them.
        let first_doc_pair = pairs.len() - docs.len();
        let doc_codes: Vec<Vec<String>> = examples
            .iter()
            .filter(|e| e.kind == ExampleKind::Document)
            .map(|e| docs[e.pair - first_doc_pair].targets.iter().map(|(c, _)| c.to_string()).collect())
            .collect();
        // Each span example's source (its expansion kind), which `[mix.sources]` weighs.
        let span_sources: Vec<String> = examples.iter().filter(|e| e.kind == ExampleKind::Span).map(|e| expanded.examples[e.pair].strategy.as_str().to_string()).collect();
        let labels = mix::ExampleLabels { doc_codes: &doc_codes, span_sources: &span_sources };
        let plan = mix::schedule(&spec.mix, &spec.train, &lengths, n_spans, labels, seed).map_err(model_err)?;
        log.line(mix_line(&plan.report));
        let per_step = spec.train.batch_size.max(1) * spec.train.grad_accum.max(1);
        let steps = plan.schedule.len().div_ceil(per_step);
        let mut train_cfg = spec.train.clone();
        // One pass over the schedule: the last step is short when it does not fill one.
        train_cfg.steps = 0;
        train_cfg.epochs = 1.0;

        // Adapter tensors are shared with the model and the trainer, so their store may go out of scope.
        let trainable = if spec.backbone.is_tiny() {
            Trainable::full(&base_vs)
        } else {
            let lora_vs = tch::nn::VarStore::new(device);
            let lora = LoraConfig {
                rank: spec.train.lora_rank,
                alpha: spec.train.lora_alpha,
                dropout: spec.train.lora_dropout,
                targets: spec.train.lora_targets.clone(),
            };
            model.attach_lora(&lora_vs.root(), &lora).map_err(model_err)?;
            Trainable::lora(&lora_vs, &mut base_vs)
        };
        let topts = TrainOptions {
            seed,
            checkpoint_dir: Some(work_dir.join("checkpoint")),
            checkpoint_every: spec.train.checkpoint_every.max(1),
            // 0 in the experiment means: validate once, at the end.
            validate_every: if spec.train.validate_every == 0 { steps } else { spec.train.validate_every },
            stop_after: opts.stop_after_steps,
            progress: opts.progress,
            pad_id: tok.pad_id(),
            ..TrainOptions::default()
        };
        let report = train::train(&model, &trainable, &examples, &plan.schedule, &val, &train_cfg, &topts).map_err(model_err)?;
        if !report.finished {
            return Err(RunError::Interrupted { path: work_dir.to_path_buf(), step: report.optimizer_steps });
        }
        if report.resumed_from_step == Some(report.total_steps) {
            log.line(format!("trained weights reloaded from the train stage's final checkpoint (step {}); no step computed", report.total_steps));
        } else if let Some(step) = report.resumed_from_step {
            log.line(format!("training resumed from the checkpoint at step {step}"));
        }
        log.line(format!(
            "trained {} steps: {} span / {} document examples, {} input tokens, {:.1} s, {:.3e} FLOPs",
            report.optimizer_steps,
            report.examples_seen.span,
            report.examples_seen.document,
            report.input_tokens.total(),
            report.wall_seconds,
            report.estimated_flops
        ));
        if model.lora_config().is_some() {
            // The adapters in PEFT's format (loadable by transformers + PEFT, servable), then
            // folded into the base weights: decoding runs the plain model, no adapter products.
            let adapter_dir = work_dir.join("adapter");
            model.save_adapters(&adapter_dir).map_err(model_err)?;
            model.merge_lora().map_err(model_err)?;
            log.line(format!("adapters (PEFT format) in {}; merged into the base weights for prediction", adapter_dir.display()));
        }
        record.span_examples = n_spans;
        record.document_examples = n_docs;
        record.training = Some(report);
        record.mix = Some(plan.report);
        record.expansion = Some(expanded.report);
    }
    Ok(Trained { model, tok, formatter, trained_spans, record })
}

/// A span's text as the probe compares it: whitespace runs folded, lower case.
fn one_line_lower(s: &str) -> String {
    crate::prompt::one_line(s).to_lowercase()
}
