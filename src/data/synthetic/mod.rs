//! The synthetic benchmark: seeded discharge-summary-like documents built from
//! the ICD-10-CM code set, with gold codes, exact evidence offsets, distractors
//! a coder must not code, a long tail of code frequencies, and codes that occur
//! only in test documents (the unseen codes).
//!
//! Version 2 (the default) words mentions with the paraphrase grammar of
//! [`super::paraphrase`]: training notes use code-table wording for a share of
//! mentions (`train_verbatim_fraction`) and shared-lexicon paraphrases for the
//! rest; test notes use code-table wording only at `test_verbatim_fraction`
//! (default 0), held-out paraphrases for `held_out_fraction` of the others and
//! shared paraphrases (two or three families combined) for the rest; validation
//! notes are worded like test notes without the held-out lexicon. Every paraphrase is checked to contain no
//! table form of its code, so a dictionary of the code table cannot find it.
//! Each gold evidence span records its mention kind.
//!
//! Version 1 stays reproducible by its version: table wording everywhere except
//! `reworded_fraction` of test mentions, rewritten by the `HELD_OUT_*` tables.
//! Expansion strategies must not use those tables.


mod generate;

pub use generate::{generate, SyntheticError};

use super::jsonl::LoadReport;
use super::source::{Input, Source};
use super::{DataError, Dataset, Split};
use crate::icd::CodeSet;
use crate::schema::Checker;
use serde::{Deserialize, Serialize};
use std::path::Path;

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


impl Source for SyntheticParams {
    fn check(&self, c: &mut Checker, key: &str, _base: &Path) {
        let key = |k: &str| format!("{key}.{k}");
        for (k, v) in [("train_docs", self.train_docs), ("test_docs", self.test_docs), ("pool_size", self.pool_size)] {
            c.positive(&key(k), v);
        }
        if self.unseen_codes >= self.pool_size {
            c.fail(&key("unseen_codes"), format!("must be smaller than pool_size ({})", self.pool_size));
        }
        if self.chapters.is_empty() && self.prefixes.is_empty() {
            c.fail(&key("chapters"), "give chapters (1-22) or prefixes to draw codes from");
        }
        for &ch in &self.chapters {
            if !(1..=22).contains(&ch) {
                c.fail(&key("chapters"), format!("chapter {ch} does not exist: ICD-10-CM has chapters 1-22"));
            }
        }
        c.range_pair(&key("codes_per_doc"), self.codes_per_doc);
        if self.codes_per_doc[0] == 0 {
            c.fail(&key("codes_per_doc"), "every document needs at least 1 code");
        }
        c.range_pair(&key("distractors_per_doc"), self.distractors_per_doc);
        c.range_pair(&key("filler_sentences"), self.filler_sentences);
        c.range_f(&key("zipf_exponent"), self.zipf_exponent, 0.0, 5.0);
        if !(1..=GENERATOR_VERSION).contains(&self.version) {
            c.fail(&key("version"), format!("the synthetic generator has versions 1 to {GENERATOR_VERSION}"));
        }
        match self.reworded_fraction {
            Some(_) if self.version >= 2 => c.fail(
                &key("reworded_fraction"),
                "is a version 1 parameter: version 2 words test mentions by test_verbatim_fraction and held_out_fraction (or set version = 1)",
            ),
            Some(f) => c.range_f(&key("reworded_fraction"), f, 0.0, 1.0),
            None => {}
        }
        for (k, v) in [
            ("train_verbatim_fraction", self.train_verbatim_fraction),
            ("test_verbatim_fraction", self.test_verbatim_fraction),
            ("held_out_fraction", self.held_out_fraction),
            ("list_fraction", self.list_fraction),
        ] {
            c.range_f(&key(k), v, 0.0, 1.0);
        }
    }

    fn inputs(&self) -> Vec<Input> {
        Vec::new()
    }

    fn load(&self, _base_dir: &Path, codes: &CodeSet) -> Result<(Dataset, LoadReport), DataError> {
        Ok((generate(self, codes)?, LoadReport::default()))
    }

    fn origin_of(&self, split: Split) -> String {
        let key = match split {
            Split::Train => "train_docs",
            Split::Val => "val_docs",
            Split::Test | Split::Evidence => "test_docs",
        };
        format!("data.source.{key} = {}", match split {
            Split::Train => self.train_docs,
            Split::Val => self.val_docs,
            Split::Test => self.test_docs,
            Split::Evidence => 0,
        })
    }

    fn generator_version(&self) -> Option<u32> {
        Some(self.version)
    }

    fn pool_has_test_labels(&self) -> bool {
        true
    }
}
