//! `[[baselines]]`: the systems run beside the model, one struct of parameters per kind.

use serde::{Deserialize, Serialize};

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
