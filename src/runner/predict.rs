//! The predict stage of a model run: every evaluated split through the trained model,
//! and the span probe beside each.

use super::train::Trained;
use super::stage::{RunError, RunLog, RunOptions};
use crate::config::{Eval, ReadNotes, SpanFormat, TrainMode, DOCUMENT_PROMPT_TOKENS, PROMPT_OVERHEAD_TOKENS};
use crate::data::jsonl::Prediction;
use crate::data::{Dataset, Document, Split};
use crate::icd::{Code, CodeSet};
use crate::metrics::probe::{score_probe, ProbeReport};
use crate::model::llama::CausalLM;
use crate::model::tokenizer::TextTokenizer;
use crate::plan::{ModelSpec, PlannedRun};
use crate::predict::{self, PredictConfig, ProbeFormat};
use crate::prompt::{DocExample, Formatter};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// What one split's prediction stage records beside the predictions.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct PredictRecord {
    #[serde(default)]
    pub inference: crate::model::generate::Throughput,
    #[serde(default)]
    pub stats: crate::predict::PredictStats,
    /// The span probe on this split (model runs with `eval.probe_spans` > 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeReport>,
    /// Where test windows and training windows differ in length, how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_mismatch: Option<String>,
    /// The answer budget of each window (`eval.max_new_tokens`, or derived), and where it
    /// came from when derived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_new_tokens: Option<AnswerBudget>,
}

/// The tokens a window's answer may take, and how that number was found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct AnswerBudget {
    pub tokens: usize,
    /// `eval.max_new_tokens`, or how it was derived.
    pub from: String,
}

/// `eval.max_new_tokens`, or, unset, the longest answer of the training documents as the
/// model is taught to write it, plus a quarter and 16 tokens, at most what the context
/// leaves beside a window of `chunk_tokens`.
fn answer_budget(eval: &Eval, dataset: &Dataset, formatter: &Formatter, tok: &TextTokenizer, context: usize, chunk_tokens: usize) -> Result<AnswerBudget, RunError> {
    if let Some(tokens) = eval.max_new_tokens {
        return Ok(AnswerBudget { tokens, from: "eval.max_new_tokens".into() });
    }
    let mut longest = 0usize;
    let mut answers = 0usize;
    for d in dataset.split(Split::Train) {
        let target = formatter.doc_pair(&DocExample::from_document(d), Some(tok)).target;
        longest = longest.max(tok.encode(&target, false).map_err(|e| RunError::Model(e.to_string()))?.len());
        answers += 1;
    }
    let wanted = longest + longest / 4 + 16;
    let room = context.saturating_sub(chunk_tokens + PROMPT_OVERHEAD_TOKENS).max(1);
    let tokens = wanted.min(room);
    let capped = if tokens < wanted { format!(", capped at {room} by the {context}-token context beside a {chunk_tokens}-token window") } else { String::new() };
    Ok(AnswerBudget { tokens, from: format!("the longest of {answers} training answers, {longest} tokens, + 25% + 16{capped}") })
}

/// A fine-tuned model read with windows of another length than it trained on: said in words.
fn window_mismatch(spec: &ModelSpec, chunk_tokens: usize) -> Option<String> {
    let trained = spec.train.document_window();
    (spec.train.mode == TrainMode::Finetune && chunk_tokens != trained).then(|| {
        format!("eval.chunk_tokens = {chunk_tokens}, but training windows held {trained} tokens of note text (train.max_length {} less {DOCUMENT_PROMPT_TOKENS}): test notes are read in windows of another length than training taught", spec.train.max_length)
    })
}

/// Training read long notes by their beginning while test notes are read whole, or the
/// other way round: said in words.
fn read_mismatch(eval: &Eval, trained: &super::train::ModelRecord) -> Option<String> {
    match (eval.read, trained.truncated_documents) {
        (ReadNotes::Windows, n) if n > 0 => Some(format!(
            "training read {n} long notes by their first window, test notes are read whole in windows (eval.read = \"windows\"): set eval.read = \"first_window\" for one view of a note"
        )),
        (ReadNotes::FirstWindow, 0) if trained.document_examples > 0 && trained.windowed_documents > 0 => Some(format!(
            "training read {} long notes whole in windows, test notes by their first window (eval.read = \"first_window\")",
            trained.windowed_documents
        )),
        _ => None,
    }
}

/// Predicts the splits in `todo` with the trained model.
#[allow(clippy::too_many_arguments)]
pub(super) fn predict(
    run: &PlannedRun,
    spec: &ModelSpec,
    trained: &Trained,
    codes: &CodeSet,
    dataset: &Dataset,
    todo: &[Split],
    opts: &RunOptions,
    log: &mut RunLog,
) -> Result<Vec<(Split, Vec<Prediction>, PredictRecord)>, RunError> {
    let Trained { model, tok, formatter, trained_spans, .. } = trained;
    let seed = run.spec.seed;
    let pcfg = PredictConfig {
        chunk_tokens: run.spec.eval.chunk_tokens(),
        chunk_overlap: run.spec.eval.chunk_overlap(),
        max_new_tokens: 0,
        batch_size: run.spec.eval.batch_size,
        constrained: run.spec.eval.constrained,
        temperature: 0.0,
        seed,
        first_window_only: run.spec.eval.read == ReadNotes::FirstWindow,
    };
    let budget = answer_budget(&run.spec.eval, dataset, formatter, tok, model.config.max_position_embeddings, pcfg.chunk_tokens)?;
    let pcfg = PredictConfig { max_new_tokens: budget.tokens, ..pcfg };
    if run.spec.eval.max_new_tokens.is_none() {
        log.line(format!("answers: at most {} tokens a window ({})", budget.tokens, budget.from));
    }
    let mismatch = [window_mismatch(spec, pcfg.chunk_tokens), read_mismatch(&run.spec.eval, &trained.record)].into_iter().flatten().collect::<Vec<_>>();
    let mismatch = (!mismatch.is_empty()).then(|| mismatch.join("; "));
    if let Some(m) = &mismatch {
        log.line(format!("windows: {m}"));
    }
    let mut predictions = Vec::new();
    for &split in todo {
        let docs: Vec<&Document> = dataset.split(split).collect();
        let out = predict::predict_documents(model, tok, formatter, codes, &docs, &pcfg, opts.progress).map_err(|e| RunError::Model(e.to_string()))?;
        log.line(format!(
            "{split}: predicted {} documents in {} windows, decode {:.0} tok/s, {} invalid codes (scored as false positives), {} answers cut by the {}-token limit",
            docs.len(),
            out.stats.windows,
            out.throughput.decode_per_second(),
            out.stats.rejected_codes,
            out.stats.cut_by_limit,
            pcfg.max_new_tokens
        ));
        let st = &out.stats;
        log.line(format!(
            "{split}: notes read {}: {} of {} note tokens not read ({:.1}%), {} notes cut",
            if pcfg.first_window_only { "by their first window" } else { "whole, in windows" },
            st.unread_tokens,
            st.note_tokens,
            100.0 * st.unread_tokens as f64 / st.note_tokens.max(1) as f64,
            st.notes_cut
        ));
        let probe = probe(model, tok, formatter, codes, dataset, &docs, spec, &pcfg, &run.spec.eval, trained_spans, log)?;
        predictions.push((split, out.predictions, PredictRecord { inference: out.throughput, stats: out.stats, probe, window_mismatch: mismatch.clone(), max_new_tokens: Some(budget.clone()) }));
    }
    Ok(predictions)
}


/// The span probe on one split: its gold mentions coded one at a time, in the format the run
/// trained spans in (a run without span training, or with `span_format = "note"`, answers
/// one-sentence notes through the document task). `None` when off or the split has no evidence.
#[allow(clippy::too_many_arguments)]
fn probe(
    model: &CausalLM,
    tok: &TextTokenizer,
    formatter: &Formatter,
    codes: &CodeSet,
    dataset: &Dataset,
    docs: &[&Document],
    spec: &ModelSpec,
    pcfg: &PredictConfig,
    eval: &Eval,
    trained_spans: &HashSet<(String, Code)>,
    log: &mut RunLog,
) -> Result<Option<ProbeReport>, RunError> {
    if eval.probe_spans == 0 {
        return Ok(None);
    }
    let seen: std::collections::HashSet<String> = dataset.seen_codes().iter().map(|c| c.to_string()).collect();
    let (items, available) = predict::probe_items(docs, &seen, eval.probe_spans, pcfg.seed);
    if items.is_empty() {
        return Ok(None);
    }
    let trains_span_task = spec.train.mode == TrainMode::Finetune && spec.mix.uses_spans() && spec.mix.span_format == SpanFormat::Span;
    let format = if trains_span_task { ProbeFormat::Span } else { ProbeFormat::Note };
    let (written, _) = predict::probe_mentions(model, tok, formatter, codes, &items, format, pcfg).map_err(|e| RunError::Model(e.to_string()))?;
    let report = score_probe(format.as_str(), available, &items, &written, trained_spans);
    log.line(format!(
        "span probe ({}): {} of {} gold mentions; seen {}/{} ({:.1}%), unseen {}/{} ({:.1}%), {} unseen misses wrote a sibling; {} seen and {} unseen mentions are trained span texts of their code",
        report.format,
        report.probed,
        report.available,
        report.seen.correct,
        report.seen.n,
        100.0 * report.seen.accuracy,
        report.unseen.correct,
        report.unseen.n,
        100.0 * report.unseen.accuracy,
        report.unseen_sibling,
        report.seen_in_training_spans,
        report.unseen_in_training_spans
    ));
    Ok(Some(report))
}
