//! The experiment's meaning checked, after its syntax and schema: ranges, settings that only
//! make sense together, and what must fit the backbone's context, every problem at once and
//! located at the key the file writes.

use super::{Backbone, Baseline, ComparePair, Coverage, Expansion, Experiment, FuzzyUnit, Mix, MixStrategy, TinyModel, TrainMode, WeightFormat, PACKAGED_CONTEXT, PROMPT_OVERHEAD_TOKENS};
use crate::icd::Code;
use crate::schema::{is_set, Checker, Problem};
use std::path::Path;

fn check_device(c: &mut Checker, key: &str, d: &str) {
    if !crate::device::is_valid_name(d) {
        c.fail(key, crate::device::invalid_name_message(d));
    }
}



pub(super) fn validate(exp: &Experiment, text: &str, path: &Path, check_inputs: bool) -> Vec<Problem> {
    let mut c = Checker { text, problems: Vec::new(), check_inputs };
    let name = &exp.experiment.name;
    if name.is_empty() || !name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_') {
        c.fail("experiment.name", "use only letters, digits, '-' and '_' (it names the results folder)");
    }
    validate_compare(&mut c, exp);
    let base = path.parent().unwrap_or(Path::new("."));
    exp.data.check(&mut c, base);
    for (i, e) in exp.expansion.iter().enumerate() {
        validate_expansion(&mut c, i, e);
    }
    let finetunes = exp.backbone.is_some() && exp.train.mode == TrainMode::Finetune;
    validate_mix(&mut c, "mix", &exp.mix, finetunes && exp.expansion.is_empty());
    validate_sources(&mut c, "mix", &exp.mix, &exp.expansion);
    if let Some(reference) = &exp.train.match_tokens_of {
        validate_mix(&mut c, "train.match_tokens_of", reference, finetunes && exp.expansion.is_empty());
        if exp.mix.strategy == MixStrategy::Curriculum {
            c.fail_at_set(
                "train.match_tokens_of",
                &["mix.strategy", "train.match_tokens_of"],
                "a token-matched run feeds its mix until it has read the tokens of the `match_tokens_of` schedule; a curriculum's phases have no such end: set mix.strategy = \"document_only\", \"span_only\" or \"mixed\"",
            );
        }
    } else if exp.train.token_fraction != 1.0 {
        c.fail_at_set("train.token_fraction", &["train.token_fraction"], "a share of which budget? set train.match_tokens_of to the schedule whose tokens it is a share of, e.g. { strategy = \"document_only\" }");
    }
    let t = &exp.train;
    c.positive("train.lora_rank", t.lora_rank);
    c.positive("train.batch_size", t.batch_size);
    c.positive("train.grad_accum", t.grad_accum);
    c.positive("train.max_length", t.max_length);
    c.range_f("train.lr", t.lr, 1e-8, 1.0);
    c.range_f("train.lora_dropout", t.lora_dropout, 0.0, 0.9);
    c.range_f("train.epochs", t.epochs, 0.0, 1000.0);
    if !(t.token_fraction > 0.0 && t.token_fraction <= 100.0) {
        c.fail("train.token_fraction", format!("must be above 0 and at most 100, got {}", t.token_fraction));
    }
    if exp.backbone.is_some() && t.mode == TrainMode::Finetune && t.steps == 0 && t.epochs <= 0.0 {
        c.fail_at_set("train.epochs", &["train.epochs", "train.steps"], "train.steps is 0, so the run trains for `epochs`: give epochs > 0 or steps >= 1");
    }
    c.non_negative("train.weight_decay", t.weight_decay);
    c.non_negative("train.max_grad_norm", t.max_grad_norm);
    c.non_negative("train.lora_alpha", t.lora_alpha);
    for target in &t.lora_targets {
        if !["q", "k", "v", "o", "gate", "up", "down"].contains(&target.as_str()) {
            c.fail("train.lora_targets", format!("unknown projection {target:?}: use q, k, v, o, gate, up, down"));
        }
    }
    let e = &exp.eval;
    for s in &e.splits {
        if !crate::data::Split::SCORED.iter().any(|x| x.as_str() == s) {
            c.fail("eval.splits", format!("unknown split {s:?}: use \"train\", \"val\", \"test\" or \"evidence\""));
        }
    }
    if e.splits.is_empty() {
        c.fail("eval.splits", "name at least one split to score, e.g. [\"test\"]");
    }
    for (i, s) in e.splits.iter().enumerate() {
        if e.splits[..i].contains(s) {
            c.fail("eval.splits", format!("{s:?} is named twice: a split is scored once"));
        }
    }
    c.positive("eval.chunk_tokens", e.chunk_tokens());
    c.positive("eval.batch_size", e.batch_size);
    // Each window repeats at most half of the one before, so every window advances (predict::windows).
    if e.chunk_overlap().saturating_mul(2) > e.chunk_tokens() {
        c.fail("eval.chunk_overlap", format!("{} is more than half of chunk_tokens ({}): lower it to at most {} so every window advances", e.chunk_overlap(), e.chunk_tokens(), e.chunk_tokens() / 2));
    }
    for (i, b) in exp.baselines.iter().enumerate() {
        match b {
            Baseline::Dictionary(p) => c.positive(&format!("baselines.{i}.min_words"), p.min_words),
            Baseline::Prior(p) => c.positive(&format!("baselines.{i}.max_k"), p.max_k),
            Baseline::Fuzzy(p) => {
                let key = |k: &str| format!("baselines.{i}.{k}");
                let [lo, hi] = p.ngram_range;
                if !(1 <= lo && lo <= hi && hi <= 8) {
                    c.fail(&key("ngram_range"), format!("must be [shortest, longest] with 1 <= shortest <= longest <= 8, got [{lo}, {hi}]"));
                }
                if !(1..=64).contains(&p.window_words) {
                    c.fail(&key("window_words"), format!("must be between 1 and 64, got {}", p.window_words));
                }
                if p.unit == FuzzyUnit::Sentence && is_set(c.text, &key("window_words")) {
                    c.fail(&key("window_words"), "applies to unit = \"window\" only: remove it, or set unit = \"window\"");
                }
                c.range_f(&key("min_similarity"), p.min_similarity, 0.0, 0.99);
                c.positive(&key("top_k"), p.top_k);
            }
            Baseline::Tfidf(p) => {
                let key = |k: &str| format!("baselines.{i}.{k}");
                if !(1..=3).contains(&p.max_ngram) {
                    c.fail(&key("max_ngram"), format!("must be 1, 2 or 3, got {}", p.max_ngram));
                }
                c.positive(&key("min_df"), p.min_df);
                c.positive(&key("iterations"), p.iterations);
                c.range_f(&key("l2"), p.l2, 1e-8, 10.0);
            }
            Baseline::Laat(p) => {
                let key = |k: &str| format!("baselines.{i}.{k}");
                for (k, v) in [("embedding_dim", p.embedding_dim), ("hidden", p.hidden), ("attention_dim", p.attention_dim), ("kernel", p.kernel), ("epochs", p.epochs), ("batch_size", p.batch_size), ("max_tokens", p.max_tokens), ("min_count", p.min_count)] {
                    c.positive(&key(k), v);
                }
                if p.kernel % 2 == 0 {
                    c.fail(&key("kernel"), format!("must be odd so the convolution keeps the length, got {}", p.kernel));
                }
                c.range_f(&key("lr"), p.lr, 1e-8, 1.0);
                c.range_f(&key("dropout"), p.dropout, 0.0, 0.9);
                c.range_f(&key("weight_decay"), p.weight_decay, 0.0, 1.0);
                check_device(&mut c, &key("device"), &p.device);
            }
        }
    }
    if exp.backbone.is_none() && exp.baselines.is_empty() {
        c.fail("baselines", "nothing to run: add a [backbone] or at least one [[baselines]] entry");
    }
    if let Some(b) = &exp.backbone {
        check_device(&mut c, "backbone.device", &b.device);
        if b.is_tiny() {
            validate_tiny(&mut c, &b.tiny);
        }
        validate_model_budget(&mut c, exp, b, base);
        validate_generator(&mut c, exp, b);
    }
    // In file order, so the messages read top to bottom like the file.
    c.problems.sort_by_key(|p| (p.line.unwrap_or(usize::MAX), p.column.unwrap_or(0)));
    c.problems
}

/// Each `[[compare]]` side names an arm or a value of a sweep axis, and the two sides differ.
fn validate_compare(c: &mut Checker, exp: &Experiment) {
    for (i, pair) in exp.compare.iter().enumerate() {
        for (side, text) in [("a", &pair.a), ("b", &pair.b)] {
            let key = format!("compare.{i}.{side}");
            let Some((k, v)) = ComparePair::setting(text) else {
                c.fail(&key, format!("{text:?}: write a sweep setting as run labels show it, e.g. \"arm=mixed\" or \"mix.strategy=mixed\""));
                continue;
            };
            let known = if k == crate::config::BASELINE_KEY {
                exp.baselines.iter().any(|b| b.name() == v)
            } else if k == crate::config::ARM_KEY {
                exp.arms.contains_key(v)
            } else {
                exp.sweep.get(k).is_some_and(|values| values.iter().any(|x| x.to_string().trim_matches('"') == v))
            };
            if !known {
                let arms: Vec<String> = exp.arms.keys().map(|a| format!("arm={a}")).collect();
                let axes: Vec<String> = exp.sweep.iter().flat_map(|(k, vs)| vs.iter().map(move |x| format!("{k}={}", x.to_string().trim_matches('"')))).collect();
                let baselines: Vec<String> = exp.baselines.iter().map(|b| format!("baseline={}", b.name())).collect();
                let choices = [arms, axes, baselines].concat();
                let hint = if choices.is_empty() { "the experiment has no [sweep] or [arms.<name>] to compare".to_string() } else { format!("use one of {}", choices.join(", ")) };
                c.fail(&key, format!("{text:?} names no arm, sweep value or baseline: {hint}"));
            }
        }
        if ComparePair::setting(&pair.a) == ComparePair::setting(&pair.b) {
            c.fail(&format!("compare.{i}.b"), "the two sides are the same runs; name another arm or sweep value");
        }
    }
}

/// A mix (`[mix]`, or the one `train.match_tokens_of` names) at `key`; `no_spans`: there is
/// no [[expansion]] entry to make span examples in a run that trains.
fn validate_mix(c: &mut Checker, key: &str, m: &Mix, no_spans: bool) {
    c.range_f(&format!("{key}.span_ratio"), m.span_ratio, 0.0, 1.0);
    c.range_f(&format!("{key}.note_negated"), m.note_negated, 0.0, 1.0);
    c.range_f(&format!("{key}.sampling_power"), m.sampling_power, 0.0, 2.0);
    if no_spans && m.uses_spans() {
        c.fail(&format!("{key}.strategy"), "this mix trains on span examples, but there is no [[expansion]] entry to make them (e.g. kind = \"description\")");
    }
    if m.strategy == MixStrategy::Curriculum && m.phases.is_empty() {
        c.fail(&format!("{key}.phases"), "curriculum needs phases, e.g. [\"spans\", \"documents\"]");
    }
    for p in &m.phases {
        if p != "spans" && p != "documents" && p != "mixed" {
            c.fail(&format!("{key}.phases"), format!("unknown phase {p:?}: use \"spans\", \"documents\" or \"mixed\""));
        }
    }
}

/// `[mix.sources]`: each name an expansion kind of the experiment, each weight finite and
/// not negative, one of them positive.
fn validate_sources(c: &mut Checker, key: &str, m: &Mix, expansion: &[Expansion]) {
    if m.sources.is_empty() {
        return;
    }
    let kinds: Vec<&str> = expansion.iter().map(|e| e.kind().as_str()).collect();
    for (name, &w) in &m.sources {
        let at = format!("{key}.sources.{name}");
        if !kinds.contains(&name.as_str()) {
            let known = if kinds.is_empty() { "none".to_string() } else { kinds.join(", ") };
            c.fail(&at, format!("no [[expansion]] entry of kind {name:?} makes spans here; this experiment's span sources: {known}"));
        } else if !(w.is_finite() && w >= 0.0) {
            c.fail(&at, format!("a weight is a number of 0 or more, got {w}"));
        }
    }
    if m.sources.values().all(|&w| w == 0.0) && m.sources.len() >= kinds.len() {
        c.fail(&format!("{key}.sources"), "every span source weighs 0: no span could be drawn");
    }
}

/// The tiny model's shape, as the model code checks it when it builds the model.
fn validate_tiny(c: &mut Checker, t: &TinyModel) {
    for (k, v) in [("layers", t.layers), ("hidden", t.hidden), ("heads", t.heads), ("kv_heads", t.kv_heads), ("intermediate", t.intermediate), ("vocab", t.vocab)] {
        c.positive(&format!("backbone.tiny.{k}"), v);
    }
    if t.heads > 0 && t.kv_heads > 0 && t.heads % t.kv_heads != 0 {
        c.fail("backbone.tiny.kv_heads", format!("heads ({}) must be a multiple of kv_heads ({})", t.heads, t.kv_heads));
    }
    if t.heads > 0 && t.hidden % t.heads != 0 {
        c.fail("backbone.tiny.hidden", format!("{} is not divisible by heads ({})", t.hidden, t.heads));
    } else if t.heads > 0 && (t.hidden / t.heads) % 2 != 0 {
        c.fail("backbone.tiny.hidden", format!("hidden / heads = {} must be even for rotary position embeddings", t.hidden / t.heads));
    }
    if t.pretrain_steps > 0 {
        c.range_f("backbone.tiny.pretrain_lr", t.pretrain_lr, 1e-8, 1.0);
    }
}

/// The backbone's context window in tokens, and what says so, where the experiment alone tells:
/// the tiny model's, a packaged backbone's, or a Hugging Face folder's config.json (a GGUF file
/// is read when the model loads).
fn backbone_context(b: &Backbone, base: &Path, check_inputs: bool) -> Option<(usize, String)> {
    if b.is_tiny() {
        return Some((TinyModel::CONTEXT, "the tiny backbone".into()));
    }
    if let Some((name, n)) = PACKAGED_CONTEXT.iter().find(|(n, _)| *n == b.name) {
        return Some((*n, format!("backbone {name:?}")));
    }
    if !check_inputs || b.format == WeightFormat::Gguf {
        return None;
    }
    let config = base.join(&b.name).join("config.json");
    let value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config).ok()?).ok()?;
    let n = value.get("max_position_embeddings")?.as_u64()?;
    Some((usize::try_from(n).ok()?, config.display().to_string()))
}

/// Prompts and answers must fit the model: a window of note text, the prompt around it and the
/// answer at predict time, and the longest training example. Predict measures the real prompts
/// too, but only after training; this catches what the numbers alone decide, before it.
fn validate_model_budget(c: &mut Checker, exp: &Experiment, b: &Backbone, base: &Path) {
    let Some((context, source)) = backbone_context(b, base, c.check_inputs) else { return };
    let e = &exp.eval;
    let t = &exp.train;
    // Unset, the answer budget is derived from the data at predict time (capped by the
    // context there); here the room of a typical answer is kept free.
    let answer = e.max_new_tokens.unwrap_or(ANSWER_ROOM_TOKENS);
    let needed = e.chunk_tokens().saturating_add(answer).saturating_add(PROMPT_OVERHEAD_TOKENS);
    // A window derived from a training length that is itself too long is reported once, there.
    let derived_from_too_long = !is_set(c.text, "eval.chunk_tokens") && t.mode == TrainMode::Finetune && t.max_length > context;
    if needed > context && !derived_from_too_long {
        let room = context.saturating_sub(PROMPT_OVERHEAD_TOKENS);
        c.fail_at_set(
            "eval.chunk_tokens",
            &["eval.chunk_tokens", "eval.max_new_tokens", "backbone.name"],
            format!(
                "chunk_tokens ({}) + max_new_tokens ({}) + the prompt around a window (up to {PROMPT_OVERHEAD_TOKENS}) = {needed} tokens, more than the {context}-token context of {source}: keep chunk_tokens + max_new_tokens <= {room}",
                e.chunk_tokens(), answer
            ),
        );
    }
    if t.mode == TrainMode::Finetune && t.max_length > context {
        c.fail_at_set("train.max_length", &["train.max_length", "backbone.name"], format!("{} tokens is longer than the {context}-token context of {source}: lower it to at most {context}", t.max_length));
    }
}

/// The answer room the context check keeps beside a window when `eval.max_new_tokens` is
/// unset (its value is derived from the training answers when the run predicts).
pub const ANSWER_ROOM_TOKENS: usize = 256;

/// `synthesize` asks an LLM for phrasings; the tiny backbone has random weights and writes noise.
fn validate_generator(c: &mut Checker, exp: &Experiment, b: &Backbone) {
    for (i, e) in exp.expansion.iter().enumerate() {
        let Expansion::Synthesize(e) = e else { continue };
        let tiny = match &e.generator {
            Some(g) => g == "tiny",
            None => b.is_tiny(),
        };
        if tiny {
            let key = format!("expansion.{i}.generator");
            let kind = format!("expansion.{i}.kind");
            let why = if e.generator.is_some() { "generator \"tiny\" is" } else { "without a generator it uses the backbone, and the tiny backbone is" };
            c.fail_at_set(
                &key,
                &[key.as_str(), kind.as_str()],
                format!("synthesize needs a pretrained LLM to write phrasings, but {why} a random model: set generator = \"smollm2-135m\" (or a checkpoint path) on this entry"),
            );
        }
    }
}

fn validate_expansion(c: &mut Checker, i: usize, e: &Expansion) {
    let key = |k: &str| format!("expansion.{i}.{k}");
    c.positive(&key("per_code_cap"), e.per_code_cap());
    match e.coverage() {
        Coverage::Chapters(chs) if chs.is_empty() || chs.iter().any(|ch| !(1..=22).contains(ch)) => {
            c.fail(&key("coverage"), "give chapters 1-22, e.g. coverage = { chapters = [9, 10] }");
        }
        Coverage::Codes(codes) => {
            if codes.is_empty() {
                c.fail(&key("coverage"), "give at least one code, e.g. coverage = { codes = [\"I26.09\"] }");
            }
            for raw in codes {
                if let Err(err) = Code::parse(raw) {
                    c.fail(&key("coverage"), err.to_string());
                }
            }
        }
        _ => {}
    }
    let counts: &[(&str, usize)] = match e {
        Expansion::Perturb(p) => &[("variants", p.variants), ("max_ops", p.max_ops)],
        Expansion::Paraphrase(p) => &[("variants", p.variants)],
        Expansion::Silver(p) => &[("min_words", p.min_words)],
        Expansion::Synthesize(p) => &[("n", p.n), ("max_words", p.max_words)],
        _ => &[],
    };
    for &(k, v) in counts {
        c.positive(&key(k), v);
    }
    if let Expansion::Perturb(p) = e {
        if p.ops.is_empty() {
            c.fail(&key("ops"), "name at least one rewrite: drop, invert, typo, shorthand, case");
        }
    }
    if let Expansion::Synthesize(p) = e {
        if !p.prompt.contains("{description}") && !p.prompt.contains("{code}") {
            c.fail(&key("prompt"), "the prompt must name the code: include {description} or {code}");
        }
    }
}

