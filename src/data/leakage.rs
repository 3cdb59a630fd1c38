//! Near-duplicates between the notes a model trains on and the notes it is scored on.
//!
//! MDACE's charts are MIMIC-III stays, and MIMIC-IV's notes may hold the same stays again:
//! a training note that is a near-copy of a test note makes the test score a memory test.
//! Every training note is compared with every held-out note (validation and test) by the
//! Jaccard similarity of their sets of word shingles, estimated with MinHash and found
//! through locality-sensitive hashing (`gaoya`): 128 hash functions in 16 bands of 8, so a
//! pair at the threshold is a candidate with probability above 0.99. Pairs at or above
//! `threshold` are reported; with `action = "exclude"` (the default) the training notes in
//! them are left out before anything trains on them, their evidence spans with them, and
//! counted in the load report. Deterministic: the hash functions are seeded, the shingles
//! hashed with FNV.

use super::{Dataset, Split};
use gaoya::minhash::{MinHashIndex, MinHasher, MinHasher32};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// `[data.leakage]`: the near-duplicate check between training and held-out notes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Leakage {
    /// `exclude` (default): leave out training notes that near-duplicate a held-out note;
    /// `report`: keep them and report the pairs; `off`: no check.
    pub action: LeakageAction,
    /// Estimated Jaccard similarity of word shingles at which two notes are near-duplicates.
    pub threshold: f64,
    /// Words per shingle.
    pub shingle_words: usize,
}

impl Default for Leakage {
    fn default() -> Self {
        Leakage { action: LeakageAction::Exclude, threshold: 0.8, shingle_words: 5 }
    }
}

impl Leakage {
    pub fn is_default(&self) -> bool {
        *self == Leakage::default()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeakageAction {
    #[default]
    Exclude,
    Report,
    Off,
}

/// What the check found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LeakageReport {
    pub threshold: f64,
    pub shingle_words: usize,
    /// Training notes compared, and held-out notes they were compared with.
    pub training_notes: usize,
    pub held_out_notes: usize,
    /// (training note, held-out note, estimated Jaccard) at or above the threshold, most similar first.
    pub pairs: Vec<(String, String, f64)>,
    /// Training notes left out (`action = "exclude"`).
    pub excluded: Vec<String>,
}

/// The load report's reason for a training note left out by the check.
pub const EXCLUDED: &str = "training note near-duplicating a held-out note (data.leakage)";

impl LeakageReport {
    /// One line: what was compared, what was found and what was done.
    pub fn describe(&self) -> String {
        let mut line = format!(
            "{} training notes against {} held-out notes, word {}-shingles, MinHash Jaccard >= {}: {} near-duplicate pairs",
            self.training_notes,
            self.held_out_notes,
            self.shingle_words,
            self.threshold,
            self.pairs.len()
        );
        if let Some((t, h, sim)) = self.pairs.first() {
            line.push_str(&format!(" (most similar: {t} ~ {h}, {sim:.2})"));
        }
        if !self.pairs.is_empty() {
            line.push_str(&match self.excluded.len() {
                0 => "; kept (data.leakage.action = \"report\")".to_string(),
                n => format!("; {n} training notes left out"),
            });
        }
        line
    }
}

const HASHES: usize = 128;
const BANDS: usize = 16;
const ROWS: usize = HASHES / BANDS;

/// The note's word shingles: lower-cased alphanumeric words without standalone numbers,
/// `size` at a time (the whole note as one shingle when it is shorter). Case, punctuation
/// and numbers are what Edin et al.'s preparation removes, so a raw note and its prepared
/// copy (MDACE's MIMIC-III text and MIMIC-IV's table) shingle alike.
fn shingles(text: &str, size: usize) -> Vec<String> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && !w.chars().all(|c| c.is_ascii_digit()))
        .map(str::to_lowercase)
        .collect();
    if words.len() <= size {
        return vec![words.join(" ")];
    }
    words.windows(size.max(1)).map(|w| w.join(" ")).collect()
}

/// Compares every training note with every held-out note and, for `exclude`, removes the
/// training notes of the pairs found. `None` when the check is off.
pub fn check(dataset: &mut Dataset, cfg: &Leakage) -> Option<LeakageReport> {
    if cfg.action == LeakageAction::Off {
        return None;
    }
    let hasher = MinHasher32::new(HASHES);
    let signature = |text: &str| hasher.create_signature(shingles(text, cfg.shingle_words).iter());
    let held: Vec<usize> = (0..dataset.documents.len()).filter(|&i| dataset.documents[i].split != Split::Train).collect();
    let train: Vec<usize> = (0..dataset.documents.len()).filter(|&i| dataset.documents[i].split == Split::Train).collect();
    let mut index: MinHashIndex<u32, usize> = MinHashIndex::new(BANDS, ROWS, cfg.threshold);
    let held_signatures: Vec<Vec<u32>> = held.par_iter().map(|&i| signature(&dataset.documents[i].text)).collect();
    index.par_bulk_insert(held.clone(), held_signatures);
    let train_signatures: Vec<Vec<u32>> = train.par_iter().map(|&i| signature(&dataset.documents[i].text)).collect();
    let matches = index.par_bulk_query_return_similarity(&train_signatures);
    let mut pairs: Vec<(usize, usize, f64)> = train.iter().zip(matches).flat_map(|(&t, found)| found.into_iter().map(move |(h, sim)| (t, h, sim))).collect();
    let id = |i: usize| dataset.documents[i].id.as_str();
    pairs.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| id(a.0).cmp(id(b.0))).then_with(|| id(a.1).cmp(id(b.1))));
    let mut report = LeakageReport {
        threshold: cfg.threshold,
        shingle_words: cfg.shingle_words,
        training_notes: train.len(),
        held_out_notes: held.len(),
        pairs: pairs.iter().map(|&(t, h, sim)| (id(t).to_string(), id(h).to_string(), sim)).collect(),
        excluded: Vec::new(),
    };
    if cfg.action == LeakageAction::Exclude && !pairs.is_empty() {
        let mut leaving: Vec<usize> = pairs.iter().map(|p| p.0).collect();
        leaving.sort_unstable();
        leaving.dedup();
        report.excluded = leaving.iter().map(|&i| id(i).to_string()).collect();
        let mut keep = vec![true; dataset.documents.len()];
        for i in leaving {
            keep[i] = false;
        }
        let mut at = 0;
        dataset.documents.retain(|_| {
            at += 1;
            keep[at - 1]
        });
    }
    Some(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Document;

    fn doc(id: &str, split: Split, text: &str) -> Document {
        Document { id: id.into(), split, text: text.into(), codes: Vec::new(), evidence: Vec::new() }
    }

    const NOTE: &str = "Admitted with community acquired pneumonia of the right lower lobe, treated with ceftriaxone and azithromycin; \
        course complicated by acute kidney injury which resolved with fluids. History of type 2 diabetes on metformin and essential hypertension. \
        Discharged home in stable condition with follow up in the pulmonary clinic in two weeks.";

    fn data() -> Dataset {
        let near_copy = NOTE.replace("two weeks", "three weeks").to_uppercase();
        let other = "Elective admission for total knee arthroplasty of the left knee under spinal anaesthesia; uneventful recovery, \
            physiotherapy from day one, discharged on day three with enoxaparin for four weeks and a wound check at the surgery.";
        Dataset {
            documents: vec![
                doc("t1", Split::Train, &near_copy),
                doc("t2", Split::Train, other),
                doc("t3", Split::Train, "short note"),
                doc("v1", Split::Val, other.replace("left knee", "right hip").as_str()),
                doc("x1", Split::Test, NOTE),
            ],
            ..Dataset::default()
        }
    }

    #[test]
    fn a_near_copy_of_a_test_note_is_found_and_left_out() {
        let mut d = data();
        let r = check(&mut d, &Leakage::default()).unwrap();
        assert_eq!((r.training_notes, r.held_out_notes), (3, 2));
        assert_eq!(r.pairs.len(), 1, "{:?}", r.pairs);
        assert_eq!((r.pairs[0].0.as_str(), r.pairs[0].1.as_str()), ("t1", "x1"));
        assert!(r.pairs[0].2 >= 0.8 && r.pairs[0].2 < 1.0, "{}", r.pairs[0].2);
        assert_eq!(r.excluded, vec!["t1".to_string()]);
        let ids: Vec<&str> = d.documents.iter().map(|x| x.id.as_str()).collect();
        assert_eq!(ids, ["t2", "t3", "v1", "x1"]);
        // The same input, the same pairs and similarities.
        assert_eq!(check(&mut data(), &Leakage::default()).unwrap(), r);
    }

    #[test]
    fn report_keeps_the_notes_and_off_does_nothing() {
        let mut d = data();
        let r = check(&mut d, &Leakage { action: LeakageAction::Report, ..Leakage::default() }).unwrap();
        assert_eq!((r.pairs.len(), r.excluded.len(), d.documents.len()), (1, 0, 5));
        assert!(check(&mut d, &Leakage { action: LeakageAction::Off, ..Leakage::default() }).is_none());
        // A stricter threshold than the pair's similarity finds nothing.
        let r = check(&mut data(), &Leakage { threshold: 0.99, ..Leakage::default() }).unwrap();
        assert!(r.pairs.is_empty());
    }

    #[test]
    fn shingles_are_lower_case_words_in_runs() {
        assert_eq!(shingles("A b, C d.", 2), ["a b", "b c", "c d"]);
        assert_eq!(shingles("Temp 38.5°C, [**2150-1-1**] stable", 2), shingles("temp c stable", 2));
        assert_eq!(shingles("One two", 5), ["one two"]);
    }
}
