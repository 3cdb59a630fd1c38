//! Text generation: batched (left padding, per-row positions and masks),
//! KV-cached, greedy or seeded sampling, stop tokens and strings, and
//! constrained decoding that keeps every ICD-10-CM code the model writes
//! inside the code set.

use super::llama::{CausalLM, KvCache};
use super::tokenizer::TextTokenizer;
use super::ModelError;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::collections::{HashMap, HashSet};
use std::time::Instant;
use tch::{Kind, Tensor};

/// How to decode.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    pub max_new_tokens: usize,
    /// 0 = greedy; otherwise softmax temperature for sampling.
    pub temperature: f64,
    /// Nucleus sampling mass (1.0 = off).
    pub top_p: f64,
    /// Seeds sampling (greedy ignores it).
    pub seed: u64,
    /// Generation stops for a row once its new text contains one of these.
    pub stop_strings: Vec<String>,
    /// Extra stop token ids (the tokenizer's end-of-sequence ids always stop).
    pub stop_tokens: Vec<u32>,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        GenerationConfig { max_new_tokens: 64, temperature: 0.0, top_p: 1.0, seed: 0, stop_strings: Vec::new(), stop_tokens: Vec::new() }
    }
}

/// Tokens and time spent, for tokens-per-second reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Throughput {
    /// Prompt tokens (padding excluded) and the seconds their prefill took.
    pub prefill_tokens: usize,
    pub prefill_seconds: f64,
    /// Generated tokens (all rows) and the seconds decoding took.
    pub decode_tokens: usize,
    pub decode_seconds: f64,
}

impl Throughput {
    pub fn prefill_per_second(&self) -> f64 {
        self.prefill_tokens as f64 / self.prefill_seconds.max(1e-9)
    }
    pub fn decode_per_second(&self) -> f64 {
        self.decode_tokens as f64 / self.decode_seconds.max(1e-9)
    }
    pub fn add(&mut self, other: &Throughput) {
        self.prefill_tokens += other.prefill_tokens;
        self.prefill_seconds += other.prefill_seconds;
        self.decode_tokens += other.decode_tokens;
        self.decode_seconds += other.decode_seconds;
    }
}

/// What generation produced for each prompt.
#[derive(Debug, Clone)]
pub struct Generation {
    /// New token ids per row (stop tokens excluded).
    pub tokens: Vec<Vec<u32>>,
    /// New text per row, cut before a stop string.
    pub texts: Vec<String>,
    /// Rows still writing when `max_new_tokens` ran out: their answers are cut short.
    pub cut: Vec<bool>,
    pub throughput: Throughput,
}

/// Valid codes as a prefix set over their written forms (`E11.9` and `E119`).
pub struct CodeTrie {
    prefixes: HashSet<String>,
    complete: HashSet<String>,
}

impl CodeTrie {
    pub fn new<'a>(codes: impl IntoIterator<Item = &'a str>) -> CodeTrie {
        let mut prefixes = HashSet::new();
        let mut complete = HashSet::new();
        for code in codes {
            for form in [code.to_string(), code.replace('.', "")] {
                for (i, _) in form.char_indices().skip(1) {
                    prefixes.insert(form[..i].to_string());
                }
                prefixes.insert(form.clone());
                complete.insert(form);
            }
        }
        CodeTrie { prefixes, complete }
    }

    pub fn is_prefix(&self, s: &str) -> bool {
        self.prefixes.contains(s)
    }

    pub fn is_code(&self, s: &str) -> bool {
        self.complete.contains(s)
    }
}

/// Characters a written code is made of.
fn code_char(c: char) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit() || c == '.'
}

/// A run of code characters that has begun to look like a code: a letter then a digit.
fn code_like(run: &str) -> bool {
    let mut cs = run.chars();
    matches!((cs.next(), cs.next()), (Some(a), Some(b)) if a.is_ascii_uppercase() && b.is_ascii_digit())
}

/// Where codes are written in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Anywhere in the text.
    Anywhere,
    /// Only in the code part of each line, before the first `|` (the task format
    /// `E11.9 | evidence ; evidence`): evidence quotes such as "T2DM" stay free.
    BeforeBar,
    /// Only after the first `=>` of each line (the task format `evidence ; evidence => E11.9`).
    AfterArrow,
}

impl Scope {
    /// Whether a line starts inside evidence (where codes are not constrained).
    fn line_starts_in_evidence(self) -> bool {
        self == Scope::AfterArrow
    }
}

/// The constraint's state after some text: inside evidence (after `|`, or
/// before `=>`, on this line) or not, and the trailing run of code characters
/// (inside evidence before `=>`: `"="` when the text ends with one).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct RunState {
    pub in_evidence: bool,
    pub run: String,
}

/// Restricts decoding so that any code the model writes exists in the code set.
///
/// The state is the trailing run of code characters (`[A-Z0-9.]`). Once the run
/// looks like a code (letter, digit), each next token must keep it a prefix of a
/// valid code, and may end it (with any other character or end of sequence)
/// only where it is a complete valid code.
pub struct CodeConstraint {
    trie: CodeTrie,
    scope: Scope,
    /// Decoded text of every token id.
    pieces: Vec<String>,
    /// Token ids that end the sequence (allowed only where a code is not left half-written).
    end_ids: HashSet<u32>,
    /// Allowed-token masks by state, computed once per distinct state.
    cache: std::sync::Mutex<HashMap<RunState, Tensor>>,
}

impl CodeConstraint {
    pub fn new(trie: CodeTrie, tokenizer: &TextTokenizer, scope: Scope) -> CodeConstraint {
        let pieces = (0..tokenizer.vocab_size() as u32).map(|id| tokenizer.piece(id)).collect();
        let end_ids = tokenizer.eos_ids().iter().copied().collect();
        CodeConstraint { trie, scope, pieces, end_ids, cache: std::sync::Mutex::new(HashMap::new()) }
    }

    /// The trailing code-character run of `text`.
    pub fn run_of(text: &str) -> String {
        let tail: String = text.chars().rev().take_while(|c| code_char(*c)).collect();
        tail.chars().rev().collect()
    }

    /// The state after `text`.
    pub fn state_of(&self, text: &str) -> RunState {
        let line = text.rsplit('\n').next().unwrap_or("");
        let evidence = |run: &str| RunState { in_evidence: true, run: run.to_string() };
        match self.scope {
            Scope::BeforeBar if line.contains('|') => evidence(""),
            Scope::AfterArrow => match line.find("=>") {
                Some(at) => RunState { in_evidence: false, run: Self::run_of(&line[at + 2..]) },
                None => evidence(if line.ends_with('=') { "=" } else { "" }),
            },
            _ => RunState { in_evidence: false, run: Self::run_of(line) },
        }
    }

    /// Whether appending `piece` in state `state` keeps every code valid.
    pub fn allows(&self, state: &RunState, piece: &str, is_end: bool) -> bool {
        let mut in_evidence = state.in_evidence;
        let mut run = state.run.clone();
        for c in piece.chars() {
            if in_evidence {
                match c {
                    '\n' => {
                        in_evidence = self.scope.line_starts_in_evidence();
                        run.clear();
                    }
                    '>' if self.scope == Scope::AfterArrow && run == "=" => {
                        in_evidence = false;
                        run.clear();
                    }
                    '=' if self.scope == Scope::AfterArrow => run = "=".into(),
                    _ => run.clear(),
                }
                continue;
            }
            if code_char(c) {
                run.push(c);
                if code_like(&run) && !self.trie.is_prefix(&run) {
                    return false;
                }
                continue;
            }
            if code_like(&run) && !self.trie.is_code(&run) {
                return false;
            }
            run.clear();
            if (c == '|' && self.scope == Scope::BeforeBar) || (c == '\n' && self.scope.line_starts_in_evidence()) {
                in_evidence = true;
            }
        }
        !(is_end && code_like(&run) && !self.trie.is_code(&run))
    }

    /// A [vocab] bool mask of allowed next tokens in `state`.
    fn mask(&self, state: &RunState, device: tch::Device) -> Tensor {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = cache.get(state) {
            return m.to_device(device);
        }
        let allowed: Vec<bool> =
            self.pieces.iter().enumerate().map(|(id, p)| self.allows(state, p, self.end_ids.contains(&(id as u32)))).collect();
        let m = Tensor::from_slice(&allowed);
        cache.insert(state.clone(), m.shallow_clone());
        m.to_device(device)
    }
}

/// Generates a continuation for each prompt (token ids), batched with left padding.
pub fn generate(
    model: &CausalLM,
    tokenizer: &TextTokenizer,
    prompts: &[Vec<u32>],
    cfg: &GenerationConfig,
    constraint: Option<&CodeConstraint>,
) -> Result<Generation, ModelError> {
    let _guard = tch::no_grad_guard();
    let device = model.device();
    let b = prompts.len();
    if b == 0 {
        return Ok(Generation { tokens: Vec::new(), texts: Vec::new(), cut: Vec::new(), throughput: Throughput::default() });
    }
    let max_len = prompts.iter().map(Vec::len).max().unwrap_or(0);
    if max_len == 0 {
        return Err(ModelError::Tokenizer { origin: "generate".into(), message: "an empty prompt: give at least one token".into() });
    }
    let pad = tokenizer.pad_id() as i64;
    let mut ids = vec![pad; b * max_len];
    let mut mask = vec![0i64; b * max_len];
    let mut pos = vec![0i64; b * max_len];
    for (r, p) in prompts.iter().enumerate() {
        let off = max_len - p.len();
        for (j, &t) in p.iter().enumerate() {
            ids[r * max_len + off + j] = t as i64;
            mask[r * max_len + off + j] = 1;
            pos[r * max_len + off + j] = j as i64;
        }
    }
    let as_tensor = |v: &[i64], rows: usize, t: usize| Tensor::from_slice(v).reshape([rows as i64, t as i64]).to_device(device);
    // Prompts of one length need no mask: prefill takes the fused causal path, each step attends to everything.
    let mut attention = prompts.iter().any(|p| p.len() != max_len).then(|| as_tensor(&mask, b, max_len));
    let mut cache = KvCache::with_capacity(model.config.num_hidden_layers, max_len + cfg.max_new_tokens);
    let mut next_pos: Vec<i64> = prompts.iter().map(|p| p.len() as i64).collect();

    let mut throughput = Throughput { prefill_tokens: prompts.iter().map(Vec::len).sum(), ..Default::default() };
    let started = Instant::now();
    let mut last = model.forward_last(&as_tensor(&ids, b, max_len), &as_tensor(&pos, b, max_len), attention.as_ref(), Some(&mut cache));
    sync(device);
    throughput.prefill_seconds = started.elapsed().as_secs_f64();

    // A code may begin in the prompt ("... code is E"): constraints continue from the prompt's last line.
    let prompt_tails: Vec<String> = match constraint {
        Some(_) => prompts
            .iter()
            .map(|p| tokenizer.decode(&p[p.len().saturating_sub(8)..], true).map(|t| t.rsplit('\n').next().unwrap_or("").to_string()))
            .collect::<Result<_, _>>()?,
        None => vec![String::new(); b],
    };
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let stop_ids: HashSet<u32> = tokenizer.eos_ids().iter().chain(&cfg.stop_tokens).copied().collect();
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); b];
    let mut texts: Vec<String> = vec![String::new(); b];
    // The rows still generating, in batch order: a finished row leaves the batch (and the cache).
    let mut active: Vec<usize> = (0..b).collect();
    let started = Instant::now();
    for _ in 0..cfg.max_new_tokens {
        if let Some(c) = constraint {
            let masks: Vec<Tensor> = active.iter().map(|&r| c.mask(&c.state_of(&format!("{}{}", prompt_tails[r], texts[r])), device)).collect();
            let allowed = Tensor::stack(&masks, 0);
            last = last.masked_fill(&allowed.logical_not(), f64::NEG_INFINITY);
        }
        let chosen = choose(&last, cfg, &mut rng)?;
        let mut keep = Vec::with_capacity(active.len());
        let mut step = Vec::with_capacity(active.len());
        for (slot, (&r, &t)) in active.iter().zip(&chosen).enumerate() {
            throughput.decode_tokens += 1;
            if stop_ids.contains(&t) {
                continue;
            }
            out[r].push(t);
            texts[r] = tokenizer.decode(&out[r], true)?;
            if let Some(cut) = cfg.stop_strings.iter().filter_map(|s| texts[r].find(s.as_str())).min() {
                texts[r].truncate(cut);
                continue;
            }
            keep.push(slot as i64);
            step.push(t as i64);
        }
        if keep.is_empty() {
            active.clear();
            break;
        }
        if keep.len() < active.len() {
            let rows = Tensor::from_slice(&keep).to_device(device);
            cache.select_rows(&rows);
            attention = attention.map(|a| a.index_select(0, &rows));
            active = keep.iter().map(|&slot| active[slot as usize]).collect();
        }
        let n = active.len();
        attention = attention.map(|a| Tensor::cat(&[a, Tensor::ones([n as i64, 1], (Kind::Int64, device))], 1));
        let positions: Vec<i64> = active.iter().map(|&r| next_pos[r]).collect();
        for &r in &active {
            next_pos[r] += 1;
        }
        last = model.forward_last(&as_tensor(&step, n, 1), &as_tensor(&positions, n, 1), attention.as_ref(), Some(&mut cache));
    }
    sync(device);
    throughput.decode_seconds = started.elapsed().as_secs_f64();
    // Rows that neither stopped nor left the batch ran out of tokens.
    let mut cut = vec![false; b];
    for &r in &active {
        cut[r] = true;
    }
    Ok(Generation { tokens: out, texts, cut, throughput })
}

/// Picks the next token of each row: argmax, or a seeded sample (drawn on the CPU so
/// the same seed gives the same tokens on any device).
fn choose(logits: &Tensor, cfg: &GenerationConfig, rng: &mut StdRng) -> Result<Vec<u32>, ModelError> {
    if cfg.temperature <= 0.0 {
        let ids = logits.argmax(-1, false).to_device(tch::Device::Cpu);
        return Ok(Vec::<i64>::try_from(&ids)?.into_iter().map(|i| i as u32).collect());
    }
    let probs = (logits.to_kind(Kind::Float) / cfg.temperature).softmax(-1, Kind::Float).to_device(tch::Device::Cpu);
    let rows = probs.size()[0];
    let mut chosen = Vec::with_capacity(rows as usize);
    for r in 0..rows {
        let p: Vec<f32> = Vec::<f32>::try_from(&probs.get(r))?;
        let mut order: Vec<usize> = (0..p.len()).filter(|&i| p[i] > 0.0).collect();
        order.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
        let mut kept = Vec::new();
        let mut mass = 0.0f64;
        for i in order {
            kept.push(i);
            mass += p[i] as f64;
            if mass >= cfg.top_p {
                break;
            }
        }
        let mut x = rng.random::<f64>() * mass;
        let mut pick = kept.last().copied().unwrap_or(0);
        for &i in &kept {
            x -= p[i] as f64;
            if x <= 0.0 {
                pick = i;
                break;
            }
        }
        chosen.push(pick as u32);
    }
    Ok(chosen)
}

fn sync(device: tch::Device) {
    if let tch::Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn constraint_trie() -> CodeTrie {
        CodeTrie::new(["E11.9", "E11.65", "I10", "J45.909"])
    }

    #[test]
    fn trie_knows_prefixes_and_codes_with_and_without_dots() {
        let t = constraint_trie();
        assert!(t.is_prefix("E1") && t.is_prefix("E11.") && t.is_prefix("E116"));
        assert!(t.is_code("E11.9") && t.is_code("E119") && t.is_code("I10"));
        assert!(!t.is_code("E11") && !t.is_prefix("E12"));
    }

    #[test]
    fn run_is_the_trailing_code_characters() {
        assert_eq!(CodeConstraint::run_of("codes: E11."), "E11.");
        assert_eq!(CodeConstraint::run_of("codes: E11.9, "), "");
        assert_eq!(CodeConstraint::run_of("I"), "I");
    }

    #[test]
    fn only_existing_codes_can_be_written() {
        let c = constraint(Scope::Anywhere);
        let st = |run: &str| RunState { in_evidence: false, run: run.into() };
        // Prose is free; a capital letter alone is not yet a code.
        assert!(c.allows(&st(""), "The patient", false));
        assert!(c.allows(&st(""), "I", false));
        // Once a letter and a digit are written, the run must stay inside the trie.
        assert!(c.allows(&st("E1"), "1.", false));
        assert!(!c.allows(&st("E1"), "2", false));
        assert!(c.allows(&st("E11."), "65", false));
        // Ending a code requires a complete one: "E11" is a category, not in this set.
        assert!(!c.allows(&st("E11"), ", ", false));
        assert!(c.allows(&st("E11.9"), ", I10", false));
        assert!(!c.allows(&st("E11.9"), ", I1", true));
        assert!(!c.allows(&st(""), "Z99.9", false));
        assert!(c.allows(&st(""), "J45.909\n", false));
        // Anywhere, an abbreviation that looks like a code is held to the trie too.
        assert!(!c.allows(&st(""), "T2DM", false));
    }

    fn constraint(scope: Scope) -> CodeConstraint {
        CodeConstraint { trie: constraint_trie(), scope, pieces: Vec::new(), end_ids: HashSet::new(), cache: Default::default() }
    }

    #[test]
    fn evidence_before_the_arrow_is_free() {
        let c = constraint(Scope::AfterArrow);
        let s = c.state_of("prompt\nT2DM ; HbA1c 9");
        assert_eq!(s, RunState { in_evidence: true, run: String::new() });
        assert!(c.allows(&s, " ; Z99 =", false));
        // After the arrow the code must exist, and be complete where the line ends.
        assert!(!c.allows(&c.state_of("T2DM ="), "> Z99", false));
        assert!(c.allows(&c.state_of("T2DM ="), "> E11.9\nZ99 ; I1", false));
        assert!(!c.allows(&c.state_of("T2DM => E11"), "\n", false));
        assert!(c.allows(&c.state_of("T2DM"), " => E11.", false));
        assert!(!c.allows(&c.state_of("T2DM"), " => E12", false));
        assert_eq!(c.state_of("x => E11.9\nI10 => I1"), RunState { in_evidence: false, run: "I1".into() });
        assert!(c.state_of("x => E11.9\nI1").in_evidence);
    }

    #[test]
    fn evidence_after_the_bar_is_free() {
        let c = constraint(Scope::BeforeBar);
        let s = c.state_of("E11.9 | history of ");
        assert!(s.in_evidence);
        assert!(c.allows(&s, "T2DM ; HbA1c 9", false));
        // A new line is a new code position.
        assert!(!c.allows(&s, "\nZ99", false));
        assert!(c.allows(&s, "\nI10 | HTN", false));
        // Before the bar the code must be complete.
        assert!(!c.allows(&c.state_of("E11"), " | x", false));
        assert_eq!(c.state_of("E11.9 | x\nI1"), RunState { in_evidence: false, run: "I1".into() });
    }
}
