//! Text <-> token ids for a model, with what generation and prompting need
//! beside the vocabulary: BOS / EOS / pad ids, the chat format, and each
//! token's text (for constraining generation to valid ICD codes).
//!
//! Three sources: a Hugging Face `tokenizer.json` (+ `tokenizer_config.json`),
//! the vocabulary inside a GGUF file, and a tiny byte-level BPE trained here for
//! tests and from-scratch toy models.

use super::gguf::container::{GgufFile, MetaValue};
use super::ModelError;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::OnceLock;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::NormalizerWrapper;
use tokenizers::models::bpe::{BpeTrainer, Vocab, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

/// The ChatML special tokens (`<|endoftext|>` first: the tiny tokenizer's EOS and pad).
pub const CHATML_SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// A minimal ChatML Jinja template, written with the tiny tokenizer so Hugging Face tools can use it.
const CHATML_TEMPLATE: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// Llama 3's pre-tokenizer split (from its tokenizer.json): numbers in groups of up to three.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's pre-tokenizer split: as Llama 3's, with single digits.
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How a prompt is wrapped for the model, detected from its chat template and
/// special tokens (no Jinja engine: the three formats icdbench's models use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatFormat {
    /// `<|im_start|>role\n...<|im_end|>\n` (SmolLM2, Qwen2.5). `default_system`
    /// is the system text the template inserts when the caller gives none.
    ChatMl { default_system: Option<String> },
    /// `<|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>` (Llama 3.x).
    Llama3,
    /// `<start_of_turn>user\n...<end_of_turn>\n<start_of_turn>model\n` (Gemma); a system
    /// text opens the first user turn, followed by a blank line.
    Gemma,
    /// Base models without a template: `User: ...\nAssistant:`.
    Plain,
}

/// A tokenizer plus the ids and chat format generation needs.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    origin: String,
    bos: Option<u32>,
    eos: Vec<u32>,
    pad: Option<u32>,
    add_bos_default: bool,
    chat_template: Option<String>,
    chat: ChatFormat,
    /// Ids of added tokens (specials and user-defined), whose text is their content.
    added: HashSet<u32>,
    byte_level: bool,
    /// SentencePiece pieces: `▁` for a space, `<0xXX>` for a byte.
    spm: bool,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("origin", &self.origin)
            .field("vocab_size", &self.vocab_size())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("pad", &self.pad)
            .field("chat", &self.chat)
            .finish()
    }
}

/// The special-token names a `tokenizer_config.json` may set.
#[derive(Default)]
struct SpecialNames {
    bos: Option<String>,
    eos: Option<String>,
    pad: Option<String>,
    add_bos: Option<bool>,
    chat_template: Option<String>,
}

impl TextTokenizer {
    /// A Hugging Face `tokenizer.json`; `tokenizer_config.json`, `chat_template.jinja`
    /// and `generation_config.json` beside it are read when present.
    pub fn from_file(path: &Path) -> Result<TextTokenizer, ModelError> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::file(path, format!("cannot read: {e}")))?;
        let inner = Tokenizer::from_bytes(&bytes).map_err(|e| ModelError::file(path, format!("not a valid tokenizer.json: {e}")))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut names = read_tokenizer_config(&dir.join("tokenizer_config.json"))?;
        let jinja = dir.join("chat_template.jinja");
        if names.chat_template.is_none() && jinja.is_file() {
            names.chat_template = Some(std::fs::read_to_string(&jinja).map_err(|e| ModelError::file(&jinja, format!("cannot read: {e}")))?);
        }
        let origin = path.display().to_string();
        let lookup = |name: &Option<String>, what: &str| -> Result<Option<u32>, ModelError> {
            match name {
                None => Ok(None),
                Some(n) => inner.token_to_id(n).map(Some).ok_or_else(|| ModelError::Tokenizer {
                    origin: origin.clone(),
                    message: format!("tokenizer_config.json names {what} token {n:?}, which is not in the vocabulary"),
                }),
            }
        };
        let bos = match lookup(&names.bos, "bos")? {
            Some(id) => Some(id),
            None if names.bos.is_none() => ["<|begin_of_text|>", "<s>"].iter().find_map(|t| inner.token_to_id(t)),
            None => None,
        };
        let mut eos: Vec<u32> = lookup(&names.eos, "eos")?.into_iter().collect();
        eos.extend(read_generation_eos(&dir.join("generation_config.json"))?);
        if eos.is_empty() {
            eos.extend(["<|endoftext|>", "<|end_of_text|>", "</s>", "<|im_end|>"].iter().find_map(|t| inner.token_to_id(t)));
        }
        let pad = lookup(&names.pad, "pad")?;
        // Without an explicit add_bos_token, ask the post-processor whether it adds one.
        let add_bos_default = names.add_bos.unwrap_or_else(|| match (bos, inner.encode_fast("a", true)) {
            (Some(b), Ok(enc)) => enc.get_ids().first() == Some(&b),
            _ => false,
        });
        Ok(TextTokenizer::assemble(inner, origin, bos, eos, pad, add_bos_default, names.chat_template))
    }

    /// The vocabulary a GGUF file carries: byte-level BPE (`tokenizer.ggml.model = gpt2`:
    /// tokens and merges, the pre-tokenizer following `tokenizer.ggml.pre` as llama.cpp
    /// does) or SentencePiece BPE (`llama`: pieces and scores, byte fallback, `▁` for
    /// spaces; see [`sentencepiece_bpe`]); token types (control tokens become special
    /// added tokens, user-defined ones plain added tokens), BOS / EOS / pad ids and the
    /// chat template.
    pub fn from_gguf(file: &GgufFile) -> Result<TextTokenizer, ModelError> {
        let origin = file.path.display().to_string();
        let err = |message: String| ModelError::Tokenizer { origin: origin.clone(), message };
        let tokens = file.get_array("tokenizer.ggml.tokens", "strings", MetaValue::as_str)?.ok_or_else(|| err("tokenizer.ggml.tokens is missing".into()))?;
        let types = file.get_array("tokenizer.ggml.token_type", "integers", MetaValue::as_i64)?.unwrap_or_default();
        let mut vocab = Vocab::default();
        for (id, t) in tokens.iter().enumerate() {
            // A repeated token string keeps its first id (later copies are unreachable by encoding).
            vocab.entry(t.to_string()).or_insert(id as u32);
        }
        // SentencePiece models prepend BOS unless the file says otherwise; byte-level BPE ones do not.
        let (mut inner, add_bos_unless_said, spm) = match file.get_str("tokenizer.ggml.model")? {
            Some("gpt2") => (byte_level_bpe(file, vocab, &err)?, false, false),
            Some("llama") => {
                let scores = file.get_array("tokenizer.ggml.scores", "floats", MetaValue::as_f64)?.ok_or_else(|| err("tokenizer.ggml.scores is missing (a SentencePiece vocabulary needs its scores)".into()))?;
                if scores.len() != tokens.len() {
                    return Err(err(format!("{} scores for {} tokens", scores.len(), tokens.len())));
                }
                let space_prefix = file.get_bool("tokenizer.ggml.add_space_prefix")?.unwrap_or(true);
                let unk = file.get_u64("tokenizer.ggml.unknown_token_id")?.and_then(|i| tokens.get(i as usize)).map_or("<unk>", |t| *t);
                (sentencepiece_bpe(&tokens, &scores, &types, vocab, space_prefix, unk).map_err(err)?, true, true)
            }
            Some(other) => return Err(err(format!("tokenizer.ggml.model is {other:?}; icdbench reads byte-level BPE (gpt2) and SentencePiece (llama) GGUF tokenizers"))),
            None => return Err(err("the file carries no tokenizer (tokenizer.ggml.model is missing)".into())),
        };
        // Token types (llama.cpp): 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
        let mut specials = Vec::new();
        let mut user = Vec::new();
        for (id, &ty) in types.iter().enumerate() {
            let Some(&content) = tokens.get(id) else { break };
            match ty {
                3 => specials.push(AddedToken::from(content, true).normalized(false)),
                4 => user.push(AddedToken::from(content, false).normalized(false)),
                _ => {}
            }
        }
        inner.add_special_tokens(specials).map_err(|e| err(format!("cannot add the control tokens: {e}")))?;
        inner.add_tokens(user).map_err(|e| err(format!("cannot add the user-defined tokens: {e}")))?;

        let n = tokens.len() as u64;
        let id = |key: &str| -> Result<Option<u32>, ModelError> {
            match file.get_u64(key)? {
                None => Ok(None),
                Some(v) if v < n => Ok(Some(v as u32)),
                Some(v) => Err(err(format!("{key} = {v} is outside the vocabulary of {n} tokens"))),
            }
        };
        let bos = id("tokenizer.ggml.bos_token_id")?;
        let eos: Vec<u32> =
            [id("tokenizer.ggml.eos_token_id")?, id("tokenizer.ggml.eot_token_id")?, id("tokenizer.ggml.eom_token_id")?].into_iter().flatten().collect();
        let pad = id("tokenizer.ggml.padding_token_id")?;
        let add_bos_default = file.get_bool("tokenizer.ggml.add_bos_token")?.unwrap_or(add_bos_unless_said);
        let template = file.get_str("tokenizer.chat_template")?.map(str::to_string);
        let mut t = TextTokenizer::assemble(inner, origin, bos, eos, pad, add_bos_default, template);
        t.spm = spm;
        Ok(t)
    }
}

/// A GGUF's byte-level BPE: its merges and the pre-tokenizer `tokenizer.ggml.pre` names.
fn byte_level_bpe(file: &GgufFile, vocab: Vocab, err: &dyn Fn(String) -> ModelError) -> Result<Tokenizer, ModelError> {
        let merges = file.get_array("tokenizer.ggml.merges", "strings", MetaValue::as_str)?.unwrap_or_default();
        let pre = file.get_str("tokenizer.ggml.pre")?.unwrap_or("default");
        let merges = merges
            .iter()
            .enumerate()
            .map(|(i, m)| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| err(format!("merge #{i} {m:?} is not two tokens separated by a space")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (pre_tokenizer, ignore_merges) = gguf_pre_tokenizer(pre).map_err(err)?;
        let bpe =
            BPE::builder().vocab_and_merges(vocab, merges).ignore_merges(ignore_merges).build().map_err(|e| err(format!("cannot build the BPE model: {e}")))?;
        let mut inner = Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(pre_tokenizer));
        inner.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevel::new(false, true, true))));
        Ok(inner)
}

/// A SentencePiece BPE vocabulary (llama.cpp's `llama` model) as a `tokenizers` BPE, the
/// way transformers' converters build one: spaces become `▁` (after a leading `▁` when
/// `space_prefix`), no pre-tokenizer, byte fallback to `<0xXX>` pieces. SentencePiece merges
/// the adjacent pair whose merged piece scores highest; BPE merges by rank, so each normal
/// piece's splits into two vocabulary pieces become merges ranked by that piece's score
/// (ties: longer left part first, then lower id).
pub fn sentencepiece_bpe(tokens: &[&str], scores: &[f64], types: &[i64], vocab: Vocab, space_prefix: bool, unk: &str) -> Result<Tokenizer, String> {
    let mut ranked: Vec<(f64, usize, u32, String, String)> = Vec::new();
    for (id, piece) in tokens.iter().enumerate() {
        // Only normal pieces are reached by merging (control, byte and user-defined ones are not).
        if types.get(id).is_some_and(|&t| t != 1) || vocab.get(*piece) != Some(&(id as u32)) {
            continue;
        }
        for (cut, _) in piece.char_indices().skip(1) {
            let (l, r) = piece.split_at(cut);
            if vocab.contains_key(l) && vocab.contains_key(r) {
                ranked.push((scores[id], l.len(), id as u32, l.to_string(), r.to_string()));
            }
        }
    }
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    let merges = ranked.into_iter().map(|(_, _, _, l, r)| (l, r)).collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(true)
        .fuse_unk(true)
        .unk_token(unk.to_string())
        .build()
        .map_err(|e| format!("cannot build the SentencePiece BPE model: {e}"))?;
    let mut inner = Tokenizer::new(bpe);
    let replace = Replace::new(" ", "\u{2581}").map_err(|e| e.to_string())?;
    let normalizer: NormalizerWrapper = if space_prefix {
        NormalizerSequence::new(vec![Prepend::new("\u{2581}".to_string()).into(), replace.into()]).into()
    } else {
        replace.into()
    };
    inner.with_normalizer(Some(normalizer)).map_err(|e| format!("cannot set the normalizer: {e}"))?;
    let mut decoders = vec![
        DecoderWrapper::Replace(Replace::new("\u{2581}", " ").map_err(|e| e.to_string())?),
        DecoderWrapper::ByteFallback(ByteFallback::new()),
        DecoderWrapper::Fuse(Fuse::new()),
    ];
    if space_prefix {
        decoders.push(DecoderWrapper::Strip(Strip::new(' ', 1, 0)));
    }
    inner.with_decoder(Some(DecoderWrapper::Sequence(DecoderSequence::new(decoders))));
    Ok(inner)
}

impl TextTokenizer {
    /// A small byte-level BPE trained on `corpus` (deterministic: the same corpus
    /// gives the same vocabulary), with the ChatML specials and single-digit
    /// numbers. Every byte is in the base alphabet, so any text encodes; the
    /// vocabulary is at least 259 (256 bytes + 3 specials) whatever `vocab_size` says.
    pub fn tiny(corpus: &[&str], vocab_size: usize) -> Result<TextTokenizer, ModelError> {
        let origin = "tiny tokenizer".to_string();
        let specials: Vec<AddedToken> = CHATML_SPECIALS.iter().map(|s| AddedToken::from(*s, true).normalized(false)).collect();
        let trainer = BpeTrainer::builder()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .special_tokens(specials)
            .build();
        let mut inner = Tokenizer::new(BPE::default());
        inner.with_pre_tokenizer(Some(digits_then_bytes()));
        inner.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevel::new(false, true, true))));
        inner
            .train(&mut TrainerWrapper::BpeTrainer(trainer), corpus.iter())
            .map_err(|e| ModelError::Tokenizer { origin: origin.clone(), message: format!("training failed: {e}") })?;
        let eos = inner.token_to_id(CHATML_SPECIALS[0]).into_iter().collect();
        Ok(TextTokenizer::assemble(inner, origin, None, eos, None, false, Some(CHATML_TEMPLATE.to_string())))
    }

    fn assemble(
        inner: Tokenizer,
        origin: String,
        bos: Option<u32>,
        mut eos: Vec<u32>,
        pad: Option<u32>,
        add_bos_default: bool,
        chat_template: Option<String>,
    ) -> TextTokenizer {
        let chat = detect_chat_format(chat_template.as_deref(), |t| inner.token_to_id(t).is_some());
        // Generation must also stop at the chat format's end of turn.
        let turn_end = match chat {
            ChatFormat::ChatMl { .. } => inner.token_to_id("<|im_end|>"),
            ChatFormat::Llama3 => inner.token_to_id("<|eot_id|>"),
            ChatFormat::Gemma => inner.token_to_id("<end_of_turn>"),
            ChatFormat::Plain => None,
        };
        eos.extend(turn_end);
        let mut seen = HashSet::new();
        eos.retain(|id| seen.insert(*id));
        let added = inner.get_added_tokens_decoder().keys().copied().collect();
        let byte_level = matches!(inner.get_decoder(), Some(DecoderWrapper::ByteLevel(_)));
        TextTokenizer { inner, origin, bos, eos, pad, add_bos_default, chat_template, chat, added, byte_level, spm: false }
    }

    fn error(&self, message: String) -> ModelError {
        ModelError::Tokenizer { origin: self.origin.clone(), message }
    }

    /// Token ids of `text`; special tokens written in the text (`<|im_start|>`)
    /// become their ids. `add_bos` prepends the BOS id when the tokenizer has one
    /// (see [`add_bos_default`](Self::add_bos_default) for the model's convention).
    pub fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<u32>, ModelError> {
        let enc = self.inner.encode_fast(text, false).map_err(|e| self.error(format!("cannot encode: {e}")))?;
        let mut ids = Vec::with_capacity(enc.get_ids().len() + 1);
        if add_bos {
            ids.extend(self.bos);
        }
        ids.extend_from_slice(enc.get_ids());
        Ok(ids)
    }

    /// Text of `ids`; ids outside the vocabulary are skipped (as Hugging Face does).
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, ModelError> {
        self.inner.decode(ids, skip_special).map_err(|e| self.error(format!("cannot decode: {e}")))
    }

    /// Number of ids, added tokens included (a model's embedding may have more rows).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    /// Ids that end generation: the declared EOS (and EOT) plus the chat format's end-of-turn token.
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos
    }

    /// The padding id: the declared pad, else the first EOS, else 0.
    pub fn pad_id(&self) -> u32 {
        self.pad.or(self.eos.first().copied()).unwrap_or(0)
    }

    /// Whether the model's own tokenizer prepends BOS (pass this to [`encode`](Self::encode)).
    pub fn add_bos_default(&self) -> bool {
        self.add_bos_default && self.bos.is_some()
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The token's vocabulary entry as stored (byte-level form: `Ġthe`).
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The text one token decodes to (`Ġthe` -> `" the"`); a token holding part
    /// of a multi-byte character decodes to U+FFFD here, so a code trie over
    /// pieces should use [`piece_bytes`](Self::piece_bytes) when that matters.
    pub fn piece(&self, id: u32) -> String {
        if self.spm {
            // Not the decoder: with a space prefix it strips a token's leading space.
            return String::from_utf8_lossy(&self.piece_bytes(id)).into_owned();
        }
        self.inner.decode(&[id], false).unwrap_or_default()
    }

    /// The exact bytes one token stands for (byte-level vocabularies map each
    /// character back to its byte); empty for an unknown id.
    pub fn piece_bytes(&self, id: u32) -> Vec<u8> {
        let Some(token) = self.inner.id_to_token(id) else { return Vec::new() };
        if self.spm && !self.added.contains(&id) {
            return match token.strip_prefix("<0x").and_then(|h| h.strip_suffix('>')).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(b) if token.len() == 6 => vec![b],
                _ => token.replace('\u{2581}', " ").into_bytes(),
            };
        }
        if !self.byte_level || self.added.contains(&id) {
            return if self.added.contains(&id) { token.into_bytes() } else { self.piece(id).into_bytes() };
        }
        let mut out = Vec::with_capacity(token.len());
        for c in token.chars() {
            match byte_level_byte(c) {
                Some(b) => out.push(b),
                None => out.extend_from_slice(c.to_string().as_bytes()),
            }
        }
        out
    }

    pub fn chat_format(&self) -> &ChatFormat {
        &self.chat
    }

    /// Uses `format` instead of the detected one (a base model fine-tuned into a chat format).
    pub fn with_chat_format(mut self, format: ChatFormat) -> TextTokenizer {
        self.chat = format;
        self
    }

    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// A one-turn prompt ending where the assistant's answer starts, as the
    /// model's chat template renders it (BOS not included: see `add_bos_default`).
    /// ChatML uses the template's default system text when `system` is None.
    pub fn chat_prompt(&self, system: Option<&str>, user: &str) -> String {
        match &self.chat {
            ChatFormat::ChatMl { default_system } => {
                let mut s = String::new();
                if let Some(sys) = system.or(default_system.as_deref()) {
                    s.push_str(&format!("<|im_start|>system\n{sys}<|im_end|>\n"));
                }
                s.push_str(&format!("<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"));
                s
            }
            ChatFormat::Llama3 => {
                let mut s = String::new();
                if let Some(sys) = system {
                    s.push_str(&format!("<|start_header_id|>system<|end_header_id|>\n\n{sys}<|eot_id|>"));
                }
                s.push_str(&format!("<|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"));
                s
            }
            ChatFormat::Gemma => {
                let sys = system.map(|s| format!("{s}\n\n")).unwrap_or_default();
                format!("<start_of_turn>user\n{sys}{}<end_of_turn>\n<start_of_turn>model\n", user.trim())
            }
            ChatFormat::Plain => match system {
                Some(sys) => format!("{sys}\n\nUser: {user}\nAssistant:"),
                None => format!("User: {user}\nAssistant:"),
            },
        }
    }

    /// The id that closes an assistant turn (append it to training targets):
    /// `<|im_end|>`, `<|eot_id|>`, or the first EOS for plain prompts.
    pub fn turn_end_id(&self) -> u32 {
        let by_format = match self.chat {
            ChatFormat::ChatMl { .. } => self.token_to_id("<|im_end|>"),
            ChatFormat::Llama3 => self.token_to_id("<|eot_id|>"),
            ChatFormat::Gemma => self.token_to_id("<end_of_turn>"),
            ChatFormat::Plain => None,
        };
        by_format.unwrap_or_else(|| self.pad_id_or_eos())
    }

    fn pad_id_or_eos(&self) -> u32 {
        self.eos.first().copied().unwrap_or_else(|| self.pad_id())
    }

    /// Writes `tokenizer.json` at `path` and a `tokenizer_config.json` beside it
    /// (BOS / EOS / pad names, chat template), so [`from_file`](Self::from_file)
    /// and Hugging Face tools read back the same tokenizer.
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        self.inner.save(path, true).map_err(|e| ModelError::file(path, format!("cannot write: {e}")))?;
        let name = |id: Option<u32>| id.and_then(|i| self.inner.id_to_token(i)).map(serde_json::Value::String).unwrap_or(serde_json::Value::Null);
        let mut config = serde_json::Map::new();
        config.insert("tokenizer_class".into(), "PreTrainedTokenizerFast".into());
        config.insert("bos_token".into(), name(self.bos));
        config.insert("eos_token".into(), name(self.eos.first().copied()));
        config.insert("pad_token".into(), name(self.pad));
        config.insert("add_bos_token".into(), self.add_bos_default.into());
        if let Some(t) = &self.chat_template {
            config.insert("chat_template".into(), t.clone().into());
        }
        let cfg_path = path.parent().unwrap_or(Path::new(".")).join("tokenizer_config.json");
        let text = serde_json::to_string_pretty(&serde_json::Value::Object(config)).map_err(|e| ModelError::file(&cfg_path, e.to_string()))?;
        std::fs::write(&cfg_path, text + "\n").map_err(|e| ModelError::file(&cfg_path, format!("cannot write: {e}")))
    }

    /// The wrapped `tokenizers` tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// Where the tokenizer came from (a file, or "tiny tokenizer").
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

/// Digits one by one, then GPT-2's byte-level split (SmolLM, StarCoder, the tiny tokenizer).
fn digits_then_bytes() -> PreTokenizerWrapper {
    Sequence::new(vec![Digits::new(true).into(), ByteLevel::new(false, true, true).into()]).into()
}

/// The pre-tokenizer (and BPE `ignore_merges`) for a GGUF `tokenizer.ggml.pre` name.
fn gguf_pre_tokenizer(pre: &str) -> Result<(PreTokenizerWrapper, bool), String> {
    let split_then_bytes = |regex: &str| -> Result<PreTokenizerWrapper, String> {
        let split =
            Split::new(SplitPattern::Regex(regex.to_string()), SplitDelimiterBehavior::Isolated, false).map_err(|e| format!("bad split pattern: {e}"))?;
        Ok(Sequence::new(vec![split.into(), ByteLevel::new(false, true, false).into()]).into())
    };
    Ok(match pre {
        "default" | "gpt2" | "gpt-2" | "olmo" | "roberta-bpe" | "phi-2" | "jina-es" | "jina-de" | "jina-v1-en" | "jina-v2-es" | "jina-v2-de" | "jina-v2-code" => {
            (ByteLevel::new(false, true, true).into(), false)
        }
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva" => (digits_then_bytes(), false),
        "llama3" | "llama-v3" | "llama-bpe" | "smaug-bpe" | "falcon3" | "dbrx" => (split_then_bytes(LLAMA3_SPLIT)?, true),
        "qwen2" | "deepseek-r1-qwen" => (split_then_bytes(QWEN2_SPLIT)?, false),
        other => {
            return Err(format!(
                "tokenizer.ggml.pre {other:?} is not one icdbench knows how to pre-tokenize (it knows gpt2-style, smollm/starcoder-style, llama3-style and qwen2-style)"
            ))
        }
    })
}

/// Reads the special-token names and chat template from a `tokenizer_config.json` (absent: none).
fn read_tokenizer_config(path: &Path) -> Result<SpecialNames, ModelError> {
    if !path.is_file() {
        return Ok(SpecialNames::default());
    }
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::file(path, format!("cannot read: {e}")))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| ModelError::file(path, format!("not valid JSON: {e}")))?;
    // A token is written as a string or as {"content": "..."}.
    let token = |k: &str| match v.get(k) {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Object(o)) => o.get("content").and_then(|c| c.as_str()).map(str::to_string),
        _ => None,
    };
    // The template is a string, or a list of {name, template} (the "default" one wins).
    let chat_template = match v.get("chat_template") {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Array(items)) => {
            let named = |n: &str| items.iter().find(|i| i.get("name").and_then(|x| x.as_str()) == Some(n));
            named("default").or(items.first()).and_then(|i| i.get("template")).and_then(|t| t.as_str()).map(str::to_string)
        }
        _ => None,
    };
    Ok(SpecialNames {
        bos: token("bos_token"),
        eos: token("eos_token"),
        pad: token("pad_token"),
        add_bos: v.get("add_bos_token").and_then(|b| b.as_bool()),
        chat_template,
    })
}

/// The EOS ids a `generation_config.json` lists (one id or several; absent: none).
fn read_generation_eos(path: &Path) -> Result<Vec<u32>, ModelError> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::file(path, format!("cannot read: {e}")))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| ModelError::file(path, format!("not valid JSON: {e}")))?;
    let id = |x: &serde_json::Value| x.as_u64().and_then(|i| u32::try_from(i).ok());
    Ok(match v.get("eos_token_id") {
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(id).collect(),
        Some(x) => id(x).into_iter().collect(),
        None => Vec::new(),
    })
}

/// The chat format a template (or, without one, the special tokens) implies.
pub fn detect_chat_format(template: Option<&str>, has_token: impl Fn(&str) -> bool) -> ChatFormat {
    match template {
        Some(t) if t.contains("<|start_header_id|>") => ChatFormat::Llama3,
        Some(t) if t.contains("<|im_start|>") => ChatFormat::ChatMl { default_system: chatml_default_system(t) },
        Some(t) if t.contains("<start_of_turn>") => ChatFormat::Gemma,
        Some(_) => ChatFormat::Plain,
        None if has_token("<|im_start|>") && has_token("<|im_end|>") => ChatFormat::ChatMl { default_system: None },
        None if has_token("<|start_header_id|>") && has_token("<|eot_id|>") => ChatFormat::Llama3,
        None if has_token("<start_of_turn>") && has_token("<end_of_turn>") => ChatFormat::Gemma,
        None => ChatFormat::Plain,
    }
}

/// The literal system text a ChatML template inserts when there is no system
/// message (SmolLM2: "You are a helpful AI assistant named SmolLM, ..."), if any.
fn chatml_default_system(template: &str) -> Option<String> {
    const OPEN: &str = "<|im_start|>system";
    let mut rest = template;
    while let Some(i) = rest.find(OPEN) {
        rest = &rest[i + OPEN.len()..];
        let body = rest.strip_prefix('\n').or_else(|| rest.strip_prefix("\\n"));
        if let Some(body) = body {
            if let Some(end) = body.find("<|im_end|>") {
                let text = &body[..end];
                // Only a literal counts: anything with Jinja or string syntax is the caller's message.
                if !text.is_empty() && !text.contains(['\'', '"', '{', '}', '+']) {
                    return Some(text.replace("\\n", "\n"));
                }
            }
        }
    }
    None
}

/// GPT-2's byte-level alphabet read backwards: the byte a vocabulary character stands for.
/// Printable bytes (`!`..=`~`, 0xA1..=0xAC, 0xAE..=0xFF) stand for themselves; the
/// other 68 bytes, in order, are written as U+0100, U+0101, ...
fn byte_level_byte(c: char) -> Option<u8> {
    static TABLE: OnceLock<HashMap<char, u8>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        let mut map = HashMap::with_capacity(256);
        let mut next = 256u32;
        for b in 0..=255u8 {
            let ch = if printable(b) {
                char::from(b)
            } else {
                let ch = char::from_u32(next).unwrap_or(char::REPLACEMENT_CHARACTER);
                next += 1;
                ch
            };
            map.insert(ch, b);
        }
        map
    });
    table.get(&c).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CORPUS: &[&str] = &[
        "Type 2 diabetes mellitus without complications, E11.9.",
        "Essential (primary) hypertension, I10.",
        "The patient has type 2 diabetes and hypertension; no complications were noted.",
        "Chest pain, unspecified (R07.9); diabetes mellitus type 2 (E11.9).",
        "Acute kidney failure, unspecified: N17.9. Hypertension again.",
    ];

    #[test]
    fn byte_level_alphabet_is_a_bijection() {
        let bytes: HashSet<u8> = ByteLevel::alphabet().into_iter().filter_map(byte_level_byte).collect();
        assert_eq!(bytes.len(), 256);
        assert_eq!(byte_level_byte('Ġ'), Some(b' '));
        assert_eq!(byte_level_byte('Ċ'), Some(b'\n'));
        assert_eq!(byte_level_byte('a'), Some(b'a'));
        assert_eq!(byte_level_byte('日'), None);
    }

    #[test]
    fn chat_format_detection() {
        let none = |_: &str| false;
        let smol = "{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}";
        assert_eq!(
            detect_chat_format(Some(smol), none),
            ChatFormat::ChatMl { default_system: Some("You are a helpful AI assistant named SmolLM, trained by Hugging Face".into()) }
        );
        // Qwen2.5 writes the newline as an escape inside the Jinja string.
        let qwen = "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}";
        assert_eq!(
            detect_chat_format(Some(qwen), none),
            ChatFormat::ChatMl { default_system: Some("You are Qwen, created by Alibaba Cloud. You are a helpful assistant.".into()) }
        );
        assert_eq!(detect_chat_format(Some(CHATML_TEMPLATE), none), ChatFormat::ChatMl { default_system: None });
        assert_eq!(detect_chat_format(Some("{{ '<|start_header_id|>' + message['role'] }}"), none), ChatFormat::Llama3);
        assert_eq!(detect_chat_format(Some("{{ messages }}"), |_| true), ChatFormat::Plain);
        assert_eq!(detect_chat_format(None, |t| t == "<|im_start|>" || t == "<|im_end|>"), ChatFormat::ChatMl { default_system: None });
        assert_eq!(detect_chat_format(None, |t| t == "<|start_header_id|>" || t == "<|eot_id|>"), ChatFormat::Llama3);
        assert_eq!(detect_chat_format(None, none), ChatFormat::Plain);
    }

    #[test]
    fn gguf_pre_tokenizers_split_as_hugging_face_does() {
        use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};
        let split = |pre: &str| -> Vec<String> {
            let (p, _) = gguf_pre_tokenizer(pre).unwrap();
            let mut s = PreTokenizedString::from("Hello 12345 world!!\n\n  I'M fine");
            p.pre_tokenize(&mut s).unwrap();
            s.get_splits(OffsetReferential::Original, OffsetType::None).into_iter().map(|(t, _, _)| t.to_string()).collect()
        };
        // Expected splits from the Python `tokenizers` library with the same pre-tokenizers.
        assert_eq!(split("llama-bpe"), ["Hello", "Ġ", "123", "45", "Ġworld", "!!ĊĊ", "Ġ", "ĠI", "'M", "Ġfine"]);
        assert_eq!(split("qwen2"), ["Hello", "Ġ", "1", "2", "3", "4", "5", "Ġworld", "!!ĊĊ", "Ġ", "ĠI", "'M", "Ġfine"]);
        assert_eq!(split("smollm"), ["Hello", "Ġ", "1", "2", "3", "4", "5", "Ġworld", "!!", "ĊĊĠ", "ĠI", "'", "M", "Ġfine"]);
        assert!(gguf_pre_tokenizer("llama3").unwrap().1, "llama 3 vocabularies ignore merges for whole-word tokens");
        assert!(gguf_pre_tokenizer("tekken").unwrap_err().contains("tekken"));
    }

    #[test]
    fn tiny_is_deterministic_and_round_trips() {
        let a = TextTokenizer::tiny(CORPUS, 320).unwrap();
        let b = TextTokenizer::tiny(CORPUS, 320).unwrap();
        assert_eq!(a.inner().to_string(false).unwrap(), b.inner().to_string(false).unwrap());
        assert!(a.vocab_size() > 259 && a.vocab_size() <= 320, "{}", a.vocab_size());
        for text in CORPUS.iter().copied().chain(["unseen words: naïve café ✓ 日本語 🙂 tabs\tand\nnewlines  "]) {
            let ids = a.encode(text, false).unwrap();
            assert_eq!(a.decode(&ids, false).unwrap(), text);
        }
        // Merges were learned: a frequent word is shorter than its bytes.
        assert!(a.encode(" diabetes", false).unwrap().len() < " diabetes".len());
    }

    #[test]
    fn tiny_keeps_specials_whole_and_digits_single() {
        let t = TextTokenizer::tiny(CORPUS, 320).unwrap();
        for s in CHATML_SPECIALS {
            let ids = t.encode(s, false).unwrap();
            assert_eq!(ids.len(), 1, "{s}");
            assert_eq!(t.token_to_id(s), Some(ids[0]));
        }
        // "E11.9" appears twice in the corpus, but digits never merge.
        let ids = t.encode("E11.9", false).unwrap();
        let pieces: Vec<String> = ids.iter().map(|&i| t.piece(i)).collect();
        assert!(pieces.iter().all(|p| !p.chars().any(|c| c.is_ascii_digit()) || p.chars().count() == 1), "{pieces:?}");
        assert_eq!(pieces.concat(), "E11.9");
        assert_eq!(t.chat_format(), &ChatFormat::ChatMl { default_system: None });
        let eot = t.token_to_id("<|im_end|>").unwrap();
        assert_eq!(t.eos_ids(), &[t.token_to_id("<|endoftext|>").unwrap(), eot]);
        assert_eq!(t.pad_id(), t.token_to_id("<|endoftext|>").unwrap());
        assert_eq!(t.turn_end_id(), eot);
        assert_eq!(t.bos_id(), None);
        assert_eq!(t.encode("x", true).unwrap(), t.encode("x", false).unwrap());
        let prompt = t.chat_prompt(Some("Code it."), "Chest pain");
        assert_eq!(prompt, "<|im_start|>system\nCode it.<|im_end|>\n<|im_start|>user\nChest pain<|im_end|>\n<|im_start|>assistant\n");
        let ids = t.encode(&prompt, false).unwrap();
        assert_eq!(ids[0], t.token_to_id("<|im_start|>").unwrap());
        assert_eq!(t.decode(&ids, true).unwrap(), "system\nCode it.\nuser\nChest pain\nassistant\n");
    }

    #[test]
    fn piece_bytes_are_exact_where_piece_is_lossy() {
        let t = TextTokenizer::tiny(&["日本"], 259).unwrap();
        let ids = t.encode("日", false).unwrap();
        assert_eq!(ids.len(), 3); // three UTF-8 bytes, no merges
        let bytes: Vec<u8> = ids.iter().flat_map(|&i| t.piece_bytes(i)).collect();
        assert_eq!(bytes, "日".as_bytes());
        assert_eq!(t.piece(ids[0]), "\u{FFFD}");
        let im = t.token_to_id("<|im_start|>").unwrap();
        assert_eq!(t.piece_bytes(im), b"<|im_start|>");
        assert_eq!(t.piece(im), "<|im_start|>");
        assert!(t.piece_bytes(1_000_000).is_empty());
    }

    #[test]
    fn save_and_from_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let t = TextTokenizer::tiny(CORPUS, 300).unwrap();
        let path = dir.path().join("tokenizer.json");
        t.save(&path).unwrap();
        let back = TextTokenizer::from_file(&path).unwrap();
        assert_eq!(back.vocab_size(), t.vocab_size());
        assert_eq!(back.eos_ids(), t.eos_ids());
        assert_eq!(back.pad_id(), t.pad_id());
        assert_eq!(back.chat_format(), t.chat_format());
        assert_eq!(back.chat_template(), t.chat_template());
        let text = "Hypertension, I10; <|im_end|>";
        assert_eq!(back.encode(text, false).unwrap(), t.encode(text, false).unwrap());
        let err = TextTokenizer::from_file(&dir.path().join("missing.json")).unwrap_err().to_string();
        assert!(err.contains("missing.json") && err.contains("cannot read"), "{err}");
        std::fs::write(dir.path().join("bad.json"), "{").unwrap();
        assert!(TextTokenizer::from_file(&dir.path().join("bad.json")).unwrap_err().to_string().contains("bad.json"));
    }

    /// A SentencePiece vocabulary small enough to merge by hand (scores: higher merges first):
    /// `ab` -1, `bc` -2, `abc` -3, `▁a` -4, `▁ab` -5. SentencePiece on "abc": pairs ab(-1), bc(-2)
    /// → ab; then ab+c = abc(-3). On " ab" (▁ab): ab before ▁a, then ▁+ab. "!" and "\n" have
    /// no piece and fall back to their byte pieces; "é" has none either: unknown.
    fn spm(space_prefix: bool) -> TextTokenizer {
        let tokens = ["<unk>", "<s>", "</s>", "<0x0A>", "<0x21>", "\u{2581}", "a", "b", "c", "ab", "bc", "abc", "\u{2581}a", "\u{2581}ab", "<start_of_turn>", "<end_of_turn>"];
        let scores = [0.0, 0.0, 0.0, 0.0, 0.0, -10.0, -10.0, -10.0, -10.0, -1.0, -2.0, -3.0, -4.0, -5.0, 0.0, 0.0];
        let types = [2, 3, 3, 6, 6, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3];
        let mut vocab = Vocab::default();
        for (i, t) in tokens.iter().enumerate() {
            vocab.insert(t.to_string(), i as u32);
        }
        let mut inner = sentencepiece_bpe(&tokens, &scores, &types, vocab, space_prefix, "<unk>").unwrap();
        inner.add_special_tokens(vec![AddedToken::from("<start_of_turn>", true).normalized(false), AddedToken::from("<end_of_turn>", true).normalized(false)]).unwrap();
        let mut t = TextTokenizer::assemble(inner, "spm".into(), Some(1), vec![2], None, true, None);
        t.spm = true;
        t
    }

    #[test]
    fn sentencepiece_merges_follow_scores_with_byte_fallback() {
        let t = spm(false);
        assert_eq!(t.encode("abc", false).unwrap(), vec![11]);
        assert_eq!(t.encode(" ab", true).unwrap(), vec![1, 13]);
        assert_eq!(t.encode("a!\n", false).unwrap(), vec![6, 4, 3]);
        assert_eq!(t.encode("é", false).unwrap(), vec![0]);
        assert_eq!(t.encode("<start_of_turn>ab", false).unwrap(), vec![14, 9]);
        assert_eq!(t.decode(&[13, 4, 3], false).unwrap(), " ab!\n");
        // Pieces for the code trie: a space for ▁, the byte of a byte piece, an added token's text.
        assert_eq!((t.piece(13), t.piece_bytes(3), t.piece(15)), (" ab".to_string(), vec![b'\n'], "<end_of_turn>".to_string()));
        assert_eq!(*t.chat_format(), ChatFormat::Gemma);
        assert_eq!(t.chat_prompt(Some("Code it."), " chest pain "), "<start_of_turn>user\nCode it.\n\nchest pain<end_of_turn>\n<start_of_turn>model\n");
        assert_eq!(t.turn_end_id(), 15);
        assert!(t.eos_ids().contains(&15) && t.eos_ids().contains(&2));

        // With a space prefix (Llama 2 style) a text starts with ▁, and decoding strips it again,
        // but a piece keeps its space: the trie must see "▁a" as " a", not "a".
        let p = spm(true);
        assert_eq!(p.encode("ab", false).unwrap(), vec![13]);
        assert_eq!(p.decode(&[13], false).unwrap(), "ab");
        assert_eq!(p.piece(12), " a");
    }
}
