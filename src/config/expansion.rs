//! `[[expansion]]`: the code-centric expansion strategies, one struct per kind with exactly
//! its parameters (an unknown or another kind's key is an error at its line), each with the
//! codes it covers and its per-code cap.

use serde::{Deserialize, Serialize};

/// The default synthesize prompt (see [`SynthesizeParams::prompt`]).
pub const DEFAULT_SYNTHESIZE_PROMPT: &str = "Write {n} different short phrases (2 to 12 words) that a clinician could write in a discharge summary to document this diagnosis: {description} (ICD-10-CM {code}; category: {parent}). Vary the wording, word order and abbreviations; do not write the code. One phrase per line.";

/// Defines each strategy's parameter struct (with `coverage` and `per_code_cap` first) and the
/// [`Expansion`] enum over them, tagged by `kind`.
macro_rules! strategies {
    ($(
        $(#[$doc:meta])*
        $variant:ident($params:ident) {
            $( $(#[$fdoc:meta])* $field:ident: $ty:ty = $default:expr, )*
        }
    )*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
            #[serde(deny_unknown_fields, default)]
            pub struct $params {
                /// Which codes to expand.
                pub coverage: Coverage,
                /// At most this many (distinct) examples per code from this strategy.
                pub per_code_cap: usize,
                $( $(#[$fdoc])* pub $field: $ty, )*
            }

            impl Default for $params {
                fn default() -> Self {
                    $params { coverage: Coverage::default(), per_code_cap: DEFAULT_PER_CODE_CAP, $( $field: $default, )* }
                }
            }
        )*

        /// One code-centric expansion strategy (`[[expansion]] kind = "..."`) with its parameters.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        pub enum Expansion {
            $( $(#[$doc])* $variant($params), )*
        }

        impl Expansion {
            /// A spec of `kind` with default coverage, cap and parameters.
            pub fn new(kind: ExpansionKind) -> Expansion {
                match kind {
                    $( ExpansionKind::$variant => Expansion::$variant($params::default()), )*
                }
            }

            /// The keys a kind takes besides `coverage` and `per_code_cap`.
            pub fn parameters(kind: ExpansionKind) -> &'static [&'static str] {
                match kind {
                    $( ExpansionKind::$variant => &[$( stringify!($field) ),*], )*
                }
            }

            pub fn kind(&self) -> ExpansionKind {
                match self {
                    $( Expansion::$variant(_) => ExpansionKind::$variant, )*
                }
            }

            /// Which codes it expands.
            pub fn coverage(&self) -> &Coverage {
                match self {
                    $( Expansion::$variant(p) => &p.coverage, )*
                }
            }

            /// At most this many examples per code.
            pub fn per_code_cap(&self) -> usize {
                match self {
                    $( Expansion::$variant(p) => p.per_code_cap, )*
                }
            }

            /// The same strategy with other codes covered.
            pub fn with_coverage(mut self, coverage: Coverage) -> Expansion {
                match &mut self {
                    $( Expansion::$variant(p) => p.coverage = coverage, )*
                }
                self
            }

            /// The same strategy with another cap.
            pub fn with_per_code_cap(mut self, cap: usize) -> Expansion {
                match &mut self {
                    $( Expansion::$variant(p) => p.per_code_cap = cap, )*
                }
                self
            }
        }
    };
}

/// Examples per code a strategy makes at most, unless `per_code_cap` says otherwise.
pub const DEFAULT_PER_CODE_CAP: usize = 8;

strategies! {
    /// `description`: the code's table description, in note form.
    Description(DescriptionParams) {
        /// Also emit the table text verbatim when its note form differs.
        keep_raw: bool = false,
    }
    /// `inclusion_terms`: the code's inclusion terms, in note form.
    InclusionTerms(InclusionTermsParams) {
        /// Also emit the table text verbatim when its note form differs.
        keep_raw: bool = false,
    }
    /// `hierarchy`: the description with its parent category, and contrastive siblings.
    Hierarchy(HierarchyParams) {
        /// Emit the code's description with its parent category as context.
        parent_context: bool = true,
        /// Contrastive examples against this many most similar siblings (0 = none).
        siblings: usize = 2,
        /// Emit the sibling's half of a contrastive pair even when the sibling is outside the coverage.
        contrast_outside_coverage: bool = false,
    }
    /// `abbreviation`: clinical abbreviations of the table text.
    Abbreviation(AbbreviationParams) {
        /// Rewrite inclusion terms as well as the description.
        from_inclusion_terms: bool = true,
        /// Besides the fully abbreviated form, forms with one rule applied.
        partial: bool = true,
    }
    /// `perturb`: seeded rewrites of the table text (see [`PerturbOp`]).
    Perturb(PerturbParams) {
        /// Rewrite inclusion terms as well as the description.
        from_inclusion_terms: bool = true,
        /// Rewrites attempted per code.
        variants: usize = 4,
        /// Which rewrites may be applied.
        ops: Vec<PerturbOp> = PerturbOp::ALL.to_vec(),
        /// At most this many rewrites combined in one variant.
        max_ops: usize = 2,
    }
    /// `paraphrase`: the shared-lexicon paraphrase grammar applied to the table text.
    Paraphrase(ParaphraseParams) {
        /// Paraphrase inclusion terms as well as the description.
        from_inclusion_terms: bool = true,
        /// Paraphrases attempted per code.
        variants: usize = 4,
    }
    /// `silver`: mentions a dictionary matcher finds in training notes, kept for gold codes.
    Silver(SilverParams) {
        /// Skip mentions under a negation / family-history / ruled-out cue.
        negation: bool = true,
        /// Match inclusion terms as well as descriptions.
        inclusion_terms: bool = true,
        /// Shortest term in words the matcher uses (only gold codes are kept, so short terms do little harm).
        min_words: usize = 1,
        /// Give the sentence around the span as its context.
        sentence_context: bool = false,
    }
    /// `gold_evidence`: the annotated evidence spans of training documents.
    GoldEvidence(GoldEvidenceParams) {
        /// Give the sentence around the span as its context.
        sentence_context: bool = false,
    }
    /// `synthesize`: phrasings an LLM writes for each code.
    Synthesize(SynthesizeParams) {
        /// Phrasings requested from the generator per code.
        n: usize = 8,
        /// Prompt template; `{code}`, `{description}`, `{inclusion_terms}`, `{parent}` and `{n}` are filled in.
        prompt: String = DEFAULT_SYNTHESIZE_PROMPT.to_string(),
        /// The LLM that writes phrasings — a backbone name or path (unset: the experiment's backbone).
        generator: Option<String> = None,
        /// Drop generated phrasings longer than this many words.
        max_words: usize = 12,
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

