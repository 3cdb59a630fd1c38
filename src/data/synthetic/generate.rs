//! The generator: codes drawn from the pool, documents written from their mentions.

use super::{SyntheticParams, GENERATOR_VERSION};
use crate::data::paraphrase::{self, MentionKind, Part};
use crate::data::{Dataset, Document, EvidenceSpan, Split};
use crate::icd::{Code, CodeEntry, CodeSet};
use crate::text::{note_form, tokenize};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{RngExt, SeedableRng};
use std::collections::{BTreeSet, HashMap};

/// Tries at a paraphrase that hides every table form of its code.
const PARAPHRASE_ATTEMPTS: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum SyntheticError {
    #[error("the code pool has only {available} usable billable codes in the chosen chapters/prefixes, but pool_size is {wanted}: lower data.source.pool_size or widen the pool")]
    PoolTooSmall { available: usize, wanted: usize },
    #[error("data.source.version = {0}: the synthetic generator has versions 1 and 2")]
    Version(u32),
}

/// Abbreviations a clinician writes; applied word-boundary-wise, longest first.
const HELD_OUT_ABBREVIATIONS: &[(&str, &str)] = &[
    ("type 2 diabetes mellitus", "T2DM"),
    ("type 1 diabetes mellitus", "T1DM"),
    ("diabetes mellitus", "DM"),
    ("chronic obstructive pulmonary disease", "COPD"),
    ("congestive heart failure", "CHF"),
    ("heart failure", "HF"),
    ("atrial fibrillation", "AFib"),
    ("myocardial infarction", "MI"),
    ("hypertension", "HTN"),
    ("hyperlipidemia", "HLD"),
    ("gastroesophageal reflux disease", "GERD"),
    ("urinary tract infection", "UTI"),
    ("chronic kidney disease", "CKD"),
    ("coronary artery disease", "CAD"),
    ("deep vein thrombosis", "DVT"),
    ("pulmonary embolism", "PE"),
    ("cerebrovascular accident", "CVA"),
    ("transient ischemic attack", "TIA"),
    ("acute kidney injury", "AKI"),
    ("upper respiratory infection", "URI"),
    ("shortness of breath", "SOB"),
    ("without", "w/o"),
    ("with", "w/"),
    ("left", "L"),
    ("right", "R"),
    ("bilateral", "bilat"),
    ("history", "hx"),
    ("fracture", "fx"),
    ("infection", "infxn"),
    ("disease", "dz"),
    ("syndrome", "synd."),
    ("secondary", "2/2"),
    ("pneumonia", "PNA"),
    ("hemorrhage", "bleed"),
    ("unspecified", "NOS"),
];

/// Word-level rewordings: lay or alternative clinical terms.
const HELD_OUT_SYNONYMS: &[(&str, &str)] = &[
    ("malignant neoplasm", "cancer"),
    ("benign neoplasm", "benign tumor"),
    ("neoplasm", "tumor"),
    ("hemorrhage", "bleeding"),
    ("calculus", "stone"),
    ("disorder", "condition"),
    ("disease", "illness"),
    ("acute", "sudden-onset"),
    ("chronic", "long-standing"),
    ("unspecified", "not further specified"),
    ("due to", "caused by"),
    ("with", "complicated by"),
    ("without", "and no"),
    ("elevated", "raised"),
    ("deficiency", "insufficiency"),
    ("obstruction", "blockage"),
    ("inflammation", "swelling"),
    ("abnormal", "irregular"),
    ("hypertensive", "high blood pressure"),
    ("pain", "discomfort"),
    ("infection", "infectious process"),
    ("stenosis", "narrowing"),
    ("failure", "insufficiency"),
];

const FILLER: &[&str] = &[
    "Vital signs were stable throughout the stay.",
    "Labs were reviewed with the patient.",
    "The patient tolerated a regular diet.",
    "Physical therapy evaluated the patient and recommended home exercises.",
    "The patient ambulated independently on the ward.",
    "Nursing notes were reviewed.",
    "The patient was seen by the attending physician daily.",
    "Pain was controlled with oral medication.",
    "The family was updated at the bedside.",
    "No acute events overnight.",
    "Intake and output were monitored.",
    "The patient remained afebrile.",
    "Discharge planning was discussed with case management.",
    "Telemetry showed sinus rhythm.",
];

const MEDICATIONS: &[&str] = &[
    "metformin 500 mg twice daily",
    "lisinopril 10 mg daily",
    "atorvastatin 40 mg nightly",
    "aspirin 81 mg daily",
    "metoprolol succinate 25 mg daily",
    "omeprazole 20 mg daily",
    "furosemide 20 mg daily",
    "acetaminophen 650 mg every 6 hours as needed",
    "insulin glargine 12 units at bedtime",
    "amlodipine 5 mg daily",
    "albuterol inhaler as needed",
    "levothyroxine 50 mcg daily",
    "sertraline 50 mg daily",
    "apixaban 5 mg twice daily",
];

/// Sentences that assert a condition; `{}` is where the mention goes.
const HPI_GOLD: &[&str] = &[
    "The patient presented with {}.",
    "{} was noted on admission.",
    "The patient is known to have {}.",
    "Admitted for evaluation of {}.",
];
const COURSE_GOLD: &[&str] = &[
    "During the admission {} was treated and improved.",
    "{} was managed medically.",
    "The team addressed {} with the consulting service.",
    "Workup confirmed {}.",
];
const ASSESSMENT_GOLD: &[&str] = &["# {}.", "Diagnosis: {}.", "{}, active.", "Assessment is consistent with {}."];

/// Sentences that mention a condition the patient does not have now.
const DISTRACTORS: &[(&str, &str)] = &[
    ("negated", "No evidence of {}."),
    ("negated", "The patient denies {}."),
    ("negated", "Negative for {}."),
    ("family_history", "Family history of {} in the mother."),
    ("family_history", "Father had {}."),
    ("ruled_out", "{} was ruled out."),
    ("ruled_out", "Workup for {} was negative."),
    ("resolved", "{} resolved years ago and has not recurred."),
];

/// More ways of not having a condition (version 2), some with cues no matcher list holds.
const DISTRACTORS_V2: &[(&str, &str)] = &[
    ("negated", "No evidence of {}."),
    ("negated", "The patient denies {}."),
    ("negated", "Negative for {}."),
    ("negated", "There are no signs of {}."),
    ("screening", "Screening for {} was unremarkable."),
    ("family_history", "Family history of {} in the mother."),
    ("family_history", "Father had {}."),
    ("family_history", "Mother with {}."),
    ("ruled_out", "{} was ruled out."),
    ("ruled_out", "Workup for {} was negative."),
    ("ruled_out", "{} is not supported by the workup."),
    ("resolved", "{} resolved years ago and has not recurred."),
    ("resolved", "Prior {}, now resolved."),
];

/// A pool code with the surface forms the generator may use for it.
struct PoolCode<'a> {
    entry: &'a CodeEntry,
    /// Description and inclusion terms as a coder writes them in a note.
    table_forms: Vec<String>,
    /// Rewrites that no code-table entry contains (may be empty; version 1).
    held_out_forms: Vec<String>,
    /// Every table form as the words a dictionary matches (descriptions raw and in note form).
    table_words: Vec<Vec<String>>,
}

impl PoolCode<'_> {
    /// Whether `text` contains none of this code's table forms as a run of words.
    fn hides_table_forms(&self, text: &str) -> bool {
        let words: Vec<String> = tokenize(text).into_iter().map(|t| t.word).collect();
        !self.table_words.iter().any(|form| !form.is_empty() && words.windows(form.len()).any(|w| w == form.as_slice()))
    }
}

/// Generates the benchmark. The same parameters and code set give the same documents, byte for byte.
pub fn generate(params: &SyntheticParams, codes: &CodeSet) -> Result<Dataset, SyntheticError> {
    if !(1..=GENERATOR_VERSION).contains(&params.version) {
        return Err(SyntheticError::Version(params.version));
    }
    let mut rng = StdRng::seed_from_u64(params.seed);
    let space = code_space(params, codes);
    let pool = draw_pool(params, &space, &mut rng)?;
    let n_unseen = params.unseen_codes.min(pool.len());
    // Frequencies: a Zipf-like long tail over a random ranking of the pool.
    let mut ranks: Vec<usize> = (0..pool.len()).collect();
    ranks.shuffle(&mut rng);
    let weights: Vec<f64> = ranks.iter().map(|r| 1.0 / ((r + 1) as f64).powf(params.zipf_exponent)).collect();
    // Unseen codes: a random subset spread over head and tail.
    let mut order: Vec<usize> = (0..pool.len()).collect();
    order.shuffle(&mut rng);
    let unseen: BTreeSet<usize> = order[..n_unseen].iter().copied().collect();
    let seen_idx: Vec<usize> = (0..pool.len()).filter(|i| !unseen.contains(i)).collect();
    let all_idx: Vec<usize> = (0..pool.len()).collect();
    let unseen_idx: Vec<usize> = unseen.iter().copied().collect();

    let mut documents = Vec::new();
    let plan = [(Split::Train, params.train_docs), (Split::Val, params.val_docs), (Split::Test, params.test_docs)];
    for (split, n) in plan {
        let candidates = if split == Split::Test { &all_idx } else { &seen_idx };
        for i in 0..n {
            // Every unseen code appears in at least one test document.
            let forced = (split == Split::Test).then(|| unseen_idx.get(i).copied()).flatten();
            let doc = document(format!("{}-{:05}", split, i), split, params, &pool, candidates, &weights, forced, &mut rng);
            documents.push(doc);
        }
    }
    Ok(Dataset {
        name: format!("synthetic-v{}", params.version),
        documents,
        pool: pool.iter().map(|p| p.entry.code.clone()).collect(),
        code_space: space.iter().map(|e| e.code.clone()).collect(),
    })
}

/// Every billable code of the benchmark's chapters and prefixes, sorted: what the pool is drawn from.
fn code_space<'a>(params: &SyntheticParams, codes: &'a CodeSet) -> Vec<&'a CodeEntry> {
    let mut candidates: Vec<&CodeEntry> = if params.chapters.is_empty() {
        codes.billable_with_prefixes(&params.prefixes)
    } else {
        let mut c = codes.billable_in_chapters(&params.chapters);
        if !params.prefixes.is_empty() {
            c.extend(codes.billable_with_prefixes(&params.prefixes));
        }
        c
    };
    candidates.sort_by(|a, b| a.code.cmp(&b.code));
    candidates.dedup_by(|a, b| a.code == b.code);
    candidates
}

fn draw_pool<'a>(params: &SyntheticParams, space: &[&'a CodeEntry], rng: &mut StdRng) -> Result<Vec<PoolCode<'a>>, SyntheticError> {
    let mut candidates = space.to_vec();
    // Long, heavily qualified descriptions make unnatural notes; keep mentionable codes.
    candidates.retain(|e| {
        let words = e.description.split_whitespace().count();
        (1..=10).contains(&words) && !e.description.contains(" NEC") && !e.description.starts_with("Other ")
    });
    if candidates.len() < params.pool_size {
        return Err(SyntheticError::PoolTooSmall { available: candidates.len(), wanted: params.pool_size });
    }
    candidates.shuffle(rng);
    let mut pool: Vec<PoolCode> = Vec::new();
    let mut used_forms = BTreeSet::new();
    for entry in candidates {
        if pool.len() == params.pool_size {
            break;
        }
        let mut table_forms: Vec<String> = std::iter::once(entry.description.as_str())
            .chain(entry.inclusion_terms.iter().map(String::as_str))
            .map(note_form)
            .filter(|f| !f.is_empty())
            .collect();
        table_forms.dedup();
        // Two codes with the same surface form would make gold labels ambiguous.
        if table_forms.iter().any(|f| used_forms.contains(&f.to_lowercase())) {
            continue;
        }
        let table_lower: BTreeSet<String> = table_forms.iter().map(|f| f.to_lowercase()).collect();
        let mut held_out_forms: Vec<String> = table_forms
            .iter()
            .flat_map(|f| [rewrite(f, HELD_OUT_ABBREVIATIONS), rewrite(f, HELD_OUT_SYNONYMS), reorder_of(f)])
            .flatten()
            .filter(|f| !table_lower.contains(&f.to_lowercase()))
            .collect();
        held_out_forms.sort();
        held_out_forms.dedup();
        // Version 2 words every test mention with the grammar: the code needs rewrites from both lexicon parts.
        // Test mentions combine two or more rewording families, so a code needs two shared ones.
        let rewordings = |part| table_forms.iter().map(|f| paraphrase::rewordings(f, part)).max().unwrap_or(0);
        if params.version >= 2 && (rewordings(Part::Shared) < 2 || rewordings(Part::HeldOut) == 0) {
            continue;
        }
        let table_words = std::iter::once(&entry.description)
            .chain(&entry.inclusion_terms)
            .flat_map(|t| [t.clone(), note_form(t)])
            .map(|t| tokenize(&t).into_iter().map(|t| t.word).collect())
            .collect();
        used_forms.extend(table_lower);
        pool.push(PoolCode { entry, table_forms, held_out_forms, table_words });
    }
    pool.sort_by(|a, b| a.entry.code.cmp(&b.entry.code));
    Ok(pool)
}

/// Applies whole-word replacements (case-insensitive, longest first); `None` when nothing matched.
fn rewrite(form: &str, table: &[(&str, &str)]) -> Option<String> {
    let mut out = form.to_string();
    let mut changed = false;
    let mut rules: Vec<&(&str, &str)> = table.iter().collect();
    rules.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
    for (from, to) in rules {
        if let Some(next) = replace_word(&out, from, to) {
            out = next;
            changed = true;
        }
    }
    changed.then_some(out)
}

fn replace_word(text: &str, from: &str, to: &str) -> Option<String> {
    let lower = text.to_lowercase();
    if lower.len() != text.len() {
        return None; // non-ASCII case folding changed lengths; leave such text alone
    }
    let mut out = String::new();
    let mut last = 0;
    let mut found = false;
    let bytes = lower.as_bytes();
    let mut i = 0;
    while let Some(pos) = lower[i..].find(from) {
        let at = i + pos;
        let end = at + from.len();
        let left_ok = at == 0 || !bytes[at - 1].is_ascii_alphanumeric();
        let right_ok = end == bytes.len() || !bytes[end].is_ascii_alphanumeric();
        if left_ok && right_ok {
            out.push_str(&text[last..at]);
            out.push_str(to);
            last = end;
            found = true;
        }
        i = end;
    }
    out.push_str(&text[last..]);
    found.then_some(out)
}

/// "fracture of shaft of femur" -> "femur shaft fracture"-style reordering of `X of Y`.
fn reorder_of(form: &str) -> Option<String> {
    let (head, tail) = form.split_once(" of ")?;
    if head.contains(',') || tail.contains(',') || tail.split_whitespace().count() > 4 {
        return None;
    }
    Some(format!("{} {}", tail.replace(" of ", " "), head))
}

#[allow(clippy::too_many_arguments)]
fn document(
    id: String,
    split: Split,
    params: &SyntheticParams,
    pool: &[PoolCode],
    candidates: &[usize],
    weights: &[f64],
    forced: Option<usize>,
    rng: &mut StdRng,
) -> Document {
    let n_codes = rng.random_range(params.codes_per_doc[0]..=params.codes_per_doc[1]).min(candidates.len());
    let mut chosen: Vec<usize> = forced.into_iter().collect();
    while chosen.len() < n_codes {
        let pick = weighted(candidates, weights, rng);
        if !chosen.contains(&pick) {
            chosen.push(pick);
        }
    }
    let n_distractors = rng.random_range(params.distractors_per_doc[0]..=params.distractors_per_doc[1]);
    let mut distractors: Vec<usize> = Vec::new();
    for _ in 0..n_distractors * 4 {
        if distractors.len() == n_distractors {
            break;
        }
        let pick = weighted(candidates, weights, rng);
        if !chosen.contains(&pick) && !distractors.contains(&pick) {
            distractors.push(pick);
        }
    }

    let mut w = Writer::default();
    let mut deck: Vec<&str> = FILLER.to_vec();
    deck.shuffle(rng);
    let age = rng.random_range(24..=91);
    let sex = *["male", "female"].choose(rng).unwrap_or(&"female");
    w.heading("HISTORY OF PRESENT ILLNESS");
    w.plain(&format!("The patient is a {age}-year-old {sex}."));
    // Mention each gold code once in the history or course, and again in the assessment half the time.
    let mut in_hpi = Vec::new();
    let mut in_course = Vec::new();
    for &c in &chosen {
        if rng.random_bool(0.5) { in_hpi.push(c) } else { in_course.push(c) }
    }
    let mut words = Wordings { split, params, pool, gold: HashMap::new() };
    // Version 2 writes the history of some notes as a problem list ("PMH: HTN, HLD, DM2.").
    if params.version >= 2 && in_hpi.len() >= 2 && rng.random_bool(params.list_fraction) {
        let items: Vec<(String, Code, Option<MentionKind>)> = in_hpi
            .iter()
            .map(|&c| {
                let (form, kind) = words.gold(c, rng);
                (form, pool[c].entry.code.clone(), kind)
            })
            .collect();
        w.gold_list("PMH: ", &items);
    } else {
        for &c in &in_hpi {
            let template = *HPI_GOLD.choose(rng).unwrap_or(&HPI_GOLD[0]);
            let (form, kind) = words.gold(c, rng);
            w.gold(template, &form, &pool[c].entry.code, kind);
        }
    }
    fillers(&mut w, params, rng, &mut deck);
    for (k, &d) in distractors.iter().enumerate() {
        if k % 2 == 0 {
            let sentence = words.distractor(d, rng);
            w.plain(&sentence);
        }
    }
    w.heading("HOSPITAL COURSE");
    for &c in &in_course {
        let template = *COURSE_GOLD.choose(rng).unwrap_or(&COURSE_GOLD[0]);
        let (form, kind) = words.gold(c, rng);
        w.gold(template, &form, &pool[c].entry.code, kind);
    }
    fillers(&mut w, params, rng, &mut deck);
    for (k, &d) in distractors.iter().enumerate() {
        if k % 2 == 1 {
            let sentence = words.distractor(d, rng);
            w.plain(&sentence);
        }
    }
    w.heading("ASSESSMENT");
    for &c in &chosen {
        if rng.random_bool(0.5) {
            let template = *ASSESSMENT_GOLD.choose(rng).unwrap_or(&ASSESSMENT_GOLD[0]);
            let (form, kind) = words.gold(c, rng);
            w.gold(template, &form, &pool[c].entry.code, kind);
        }
    }
    w.plain("Overall condition is stable.");
    w.heading("PLAN");
    w.plain(*["Follow up with the primary care physician in one week.", "Return precautions were reviewed.", "Outpatient follow-up was arranged."].choose(rng).unwrap_or(&""));
    fillers(&mut w, params, rng, &mut deck);
    w.heading("DISCHARGE MEDICATIONS");
    let mut meds: Vec<&str> = MEDICATIONS.to_vec();
    meds.shuffle(rng);
    let n_meds = rng.random_range(2..=5);
    for (i, m) in meds.iter().take(n_meds).enumerate() {
        w.line(&format!("{}. {m}", i + 1));
    }

    let mut codes: Vec<Code> = chosen.iter().map(|&c| pool[c].entry.code.clone()).collect();
    codes.sort();
    let mut evidence = w.evidence;
    evidence.sort();
    Document { id, split, text: w.text, codes, evidence }
}

fn weighted(candidates: &[usize], weights: &[f64], rng: &mut StdRng) -> usize {
    let total: f64 = candidates.iter().map(|&i| weights[i]).sum();
    let mut x = rng.random::<f64>() * total;
    for &i in candidates {
        x -= weights[i];
        if x <= 0.0 {
            return i;
        }
    }
    candidates[candidates.len() - 1]
}

/// Version 1: test documents use held-out rewrites for a share of mentions, table wording otherwise.
fn mention_v1(split: Split, params: &SyntheticParams, code: &PoolCode, rng: &mut StdRng) -> String {
    if split == Split::Test && !code.held_out_forms.is_empty() && rng.random_bool(params.reworded_fraction()) {
        return code.held_out_forms.choose(rng).cloned().unwrap_or_default();
    }
    code.table_forms.choose(rng).cloned().unwrap_or_default()
}

/// Version 2: a wording decided once per (document, code), so every mention of a
/// code in one note reads alike and has one kind. Validation notes are worded like
/// test notes, without the held-out lexicon, so what is tuned on them (thresholds,
/// early stopping) sees the wording it will meet.
fn mention_v2(split: Split, params: &SyntheticParams, code: &PoolCode, rng: &mut StdRng) -> (String, MentionKind) {
    let test = split == Split::Test;
    let test_like = split != Split::Train;
    let verbatim_share = if test_like { params.test_verbatim_fraction } else { params.train_verbatim_fraction };
    if !rng.random_bool(verbatim_share) {
        let mut parts = Vec::new();
        if test && rng.random_bool(params.held_out_fraction) {
            parts.push(Part::HeldOut);
        }
        parts.push(Part::Shared);
        for part in parts {
            for attempt in 0..PARAPHRASE_ATTEMPTS {
                let Some(form) = code.table_forms.choose(rng) else { break };
                let (n, hedge) = paraphrase::shape_for(test_like, rng);
                // Test (and validation) mentions combine two or more rewordings; settle for one only late.
                let enough = |p: &paraphrase::Paraphrase| !test_like || attempt >= PARAPHRASE_ATTEMPTS / 2 || paraphrase::rewording_count(&p.kind) >= 2;
                if let Some(p) = paraphrase::paraphrase(form, part, n, hedge, rng).filter(|p| enough(p) && code.hides_table_forms(&p.text)) {
                    return (p.text, p.kind);
                }
            }
        }
    }
    // Verbatim by choice, or because no paraphrase hid the table wording (recorded as verbatim).
    (code.table_forms.choose(rng).cloned().unwrap_or_default(), MentionKind::verbatim())
}

/// The wordings of one document's mentions.
struct Wordings<'a, 'p> {
    split: Split,
    params: &'a SyntheticParams,
    pool: &'a [PoolCode<'p>],
    /// Version 2: each gold code's wording in this document.
    gold: HashMap<usize, (String, MentionKind)>,
}

impl Wordings<'_, '_> {
    /// The surface form of a gold mention of pool code `c`, and its kind (version 2 records it).
    fn gold(&mut self, c: usize, rng: &mut StdRng) -> (String, Option<MentionKind>) {
        if self.params.version == 1 {
            return (mention_v1(self.split, self.params, &self.pool[c], rng), None);
        }
        let (split, params, code) = (self.split, self.params, &self.pool[c]);
        let (form, kind) = self.gold.entry(c).or_insert_with(|| mention_v2(split, params, code, rng));
        (form.clone(), Some(kind.clone()))
    }

    /// A sentence saying the patient does not have pool code `c` now.
    fn distractor(&mut self, c: usize, rng: &mut StdRng) -> String {
        let templates = if self.params.version == 1 { DISTRACTORS } else { DISTRACTORS_V2 };
        let (_, template) = *templates.choose(rng).unwrap_or(&templates[0]);
        let form = if self.params.version == 1 {
            mention_v1(self.split, self.params, &self.pool[c], rng)
        } else {
            mention_v2(self.split, self.params, &self.pool[c], rng).0
        };
        fill(template, &form)
    }
}

/// Writes a few filler sentences, drawn from the document's own shuffled deck so none repeats.
fn fillers(w: &mut Writer, params: &SyntheticParams, rng: &mut StdRng, deck: &mut Vec<&str>) {
    let n = rng.random_range(params.filler_sentences[0]..=params.filler_sentences[1]);
    for _ in 0..n {
        let Some(s) = deck.pop() else { return };
        w.plain(s);
    }
}

/// Puts the mention into a template, capitalising it when the sentence starts with it.
fn fill(template: &str, form: &str) -> String {
    if template.starts_with("{}") {
        template.replacen("{}", &capitalise(form), 1)
    } else {
        template.replacen("{}", form, 1)
    }
}

fn capitalise(s: &str) -> String {
    let mut cs = s.chars();
    match cs.next() {
        Some(c) => c.to_uppercase().chain(cs).collect(),
        None => String::new(),
    }
}

/// Builds the text and tracks evidence offsets in characters as it goes.
#[derive(Default)]
struct Writer {
    text: String,
    chars: usize,
    evidence: Vec<EvidenceSpan>,
    line_open: bool,
}

impl Writer {
    fn push(&mut self, s: &str) {
        self.text.push_str(s);
        self.chars += s.chars().count();
    }

    fn heading(&mut self, h: &str) {
        if !self.text.is_empty() {
            self.push("\n\n");
        }
        self.push(h);
        self.push(":\n");
        self.line_open = false;
    }

    fn sentence_gap(&mut self) {
        if self.line_open {
            self.push(" ");
        }
        self.line_open = true;
    }

    fn plain(&mut self, s: &str) {
        self.sentence_gap();
        self.push(s);
    }

    fn line(&mut self, s: &str) {
        if self.line_open {
            self.push("\n");
        }
        self.push(s);
        self.line_open = true;
    }

    fn gold(&mut self, template: &str, form: &str, code: &Code, kind: Option<MentionKind>) {
        self.sentence_gap();
        let sentence = fill(template, form);
        let at = template.find("{}").unwrap_or(0);
        let start = self.chars + template[..at].chars().count();
        let shown: String = sentence.chars().skip(start - self.chars).take(form.chars().count()).collect();
        let end = start + shown.chars().count();
        self.push(&sentence);
        self.evidence.push(EvidenceSpan { code: code.clone(), start, end, text: shown, kind });
    }

    /// One sentence listing several gold mentions after `prefix`, comma-separated.
    fn gold_list(&mut self, prefix: &str, items: &[(String, Code, Option<MentionKind>)]) {
        self.sentence_gap();
        self.push(prefix);
        for (i, (form, code, kind)) in items.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            let start = self.chars;
            self.push(form);
            self.evidence.push(EvidenceSpan { code: code.clone(), start, end: self.chars, text: form.clone(), kind: kind.clone() });
        }
        self.push(".");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_whole_words_only() {
        assert_eq!(rewrite("hypertension with heart failure", HELD_OUT_ABBREVIATIONS).as_deref(), Some("HTN w/ HF"));
        assert_eq!(replace_word("without withdrawal", "with", "w/"), None);
        assert_eq!(reorder_of("fracture of shaft of femur").as_deref(), Some("shaft femur fracture"));
    }

    #[test]
    fn writer_offsets_point_at_the_mention() {
        let mut w = Writer::default();
        w.heading("ASSESSMENT");
        w.plain("Stable.");
        let code = Code::parse("E11.9").unwrap();
        w.gold("{} was managed medically.", "type 2 diabetes", &code, None);
        w.gold("Diagnosis: {}.", "héart failure", &code, None);
        w.gold_list("PMH: ", &[("HTN".into(), code.clone(), None), ("DM2".into(), code.clone(), Some(MentionKind::verbatim()))]);
        for ev in &w.evidence {
            assert_eq!(crate::data::slice_chars(&w.text, ev.start, ev.end), Some(ev.text.as_str()));
        }
        assert_eq!(w.evidence[0].text, "Type 2 diabetes");
        assert_eq!(w.evidence[1].text, "héart failure");
        assert_eq!((w.evidence[2].text.as_str(), w.evidence[3].text.as_str()), ("HTN", "DM2"));
        assert!(w.text.ends_with("PMH: HTN, DM2."));
    }
}
