//! `perturb`: seeded surface rewrites of the code's table forms — dropped
//! uninformative words, inverted word order, typos, problem-list shorthand and
//! letter case — so the model does not depend on the exact table wording.
//!
//! These are this strategy's own rules; they reword nothing the way the
//! synthetic generator's held-out test phrasings do (no abbreviation or
//! synonym tables, no "X of Y" -> "Y X" reordering).

use crate::text::rewrite::{cut, find_phrase, tidy, word_ranges};
use super::{dedup_key, known_forms, table_example, table_forms, Env, ExpandError, ExpandedSpan, Strategy};
use crate::config::{ExpansionKind, PerturbOp, PerturbParams};
use crate::icd::CodeEntry;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::RngExt;
use std::collections::HashSet;

/// Words a coder assigns the same code without: the unspecified code is the default.
const DROPPABLE: &[&str] = &["mellitus", "without complications", "not elsewhere classified"];

/// Leading modifiers that can move behind a comma, as the alphabetic index writes them.
const MODIFIERS: &[&str] = &[
    "acute", "chronic", "recurrent", "persistent", "paroxysmal", "permanent", "intermittent", "mild", "moderate", "severe",
    "primary", "essential", "idiopathic", "congenital", "localized", "generalized", "simple", "complicated", "unstable",
    "nonrheumatic", "rheumatic", "alcoholic", "diabetic", "obstructive", "malignant", "morbid", "viral", "bacterial",
    "allergic", "toxic", "familial", "hereditary", "postprocedural",
];

/// Problem-list markers: (prefix, suffix).
const SHORTHAND: &[(&str, &str)] = &[("dx: ", ""), ("known ", ""), ("problem: ", ""), ("", ", stable"), ("", " - active")];

pub struct Perturb {
    from_inclusion_terms: bool,
    variants: usize,
    ops: Vec<PerturbOp>,
    max_ops: usize,
}

impl Perturb {
    pub fn new(spec: &PerturbParams) -> Perturb {
        let mut ops = spec.ops.clone();
        ops.sort();
        ops.dedup();
        Perturb { from_inclusion_terms: spec.from_inclusion_terms, variants: spec.variants, ops, max_ops: spec.max_ops.max(1) }
    }

    /// One variant of `form`: up to `max_ops` applicable rewrites, applied in a fixed order.
    pub fn variant(&self, form: &str, rng: &mut StdRng) -> Option<(String, Vec<PerturbOp>)> {
        let mut candidates: Vec<PerturbOp> = self.ops.iter().copied().filter(|op| applies(*op, form)).collect();
        if candidates.is_empty() {
            return None;
        }
        candidates.shuffle(rng);
        let k = rng.random_range(1..=self.max_ops.min(candidates.len()));
        let mut chosen: Vec<PerturbOp> = candidates[..k].to_vec();
        chosen.sort();
        let mut text = form.to_string();
        let mut applied = Vec::new();
        for op in chosen {
            if let Some(next) = apply(op, &text, rng) {
                if next != text {
                    text = next;
                    applied.push(op);
                }
            }
        }
        (!applied.is_empty() && !text.trim().is_empty()).then_some((text, applied))
    }
}

impl Strategy for Perturb {
    fn expand_code(&mut self, entry: &CodeEntry, _env: &mut Env<'_>, rng: &mut StdRng) -> Result<Vec<ExpandedSpan>, ExpandError> {
        let forms = table_forms(entry, self.from_inclusion_terms);
        let known = known_forms(entry);
        let mut seen: HashSet<String> = HashSet::new();
        let mut out = Vec::new();
        // A few spare attempts: some rewrites collide with each other or with a table form.
        for _ in 0..self.variants * 3 {
            if out.len() == self.variants {
                break;
            }
            let Some((form, what)) = forms.choose(rng) else { break };
            let Some((text, applied)) = self.variant(form, rng) else { continue };
            if known.contains(&text.to_lowercase()) || !seen.insert(dedup_key(&text)) {
                continue;
            }
            let names: Vec<&str> = applied.iter().map(|op| op.as_str()).collect();
            out.push(table_example(entry, text, None, ExpansionKind::Perturb, format!("perturbed {what}: {}", names.join(", "))));
        }
        Ok(out)
    }
}

fn applies(op: PerturbOp, form: &str) -> bool {
    match op {
        PerturbOp::Drop => !drop_options(form).is_empty(),
        PerturbOp::Invert => invert_trailing(form).is_some() || invert_modifier(form).is_some(),
        PerturbOp::Typo => typo_words(form).next().is_some(),
        PerturbOp::Shorthand | PerturbOp::Case => true,
    }
}

fn apply(op: PerturbOp, text: &str, rng: &mut StdRng) -> Option<String> {
    match op {
        PerturbOp::Drop => drop_options(text).choose(rng).cloned(),
        PerturbOp::Invert => {
            let options: Vec<String> = [invert_trailing(text), invert_modifier(text)].into_iter().flatten().collect();
            options.choose(rng).cloned()
        }
        PerturbOp::Typo => typo(text, rng),
        PerturbOp::Shorthand => {
            let (pre, post) = SHORTHAND.choose(rng)?;
            Some(format!("{pre}{text}{post}"))
        }
        PerturbOp::Case => Some(if rng.random_bool(0.5) { text.to_uppercase() } else { title_case(text) }),
    }
}

/// Every way to drop one uninformative piece: a trailing ", unspecified ..." clause or a droppable word.
fn drop_options(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(at) = text.find(", unspecified") {
        let rest = &text[at + 1..];
        let end = rest.find(',').map(|p| at + 1 + p).unwrap_or(text.len());
        out.push(cut(text, at, end));
    }
    for phrase in DROPPABLE {
        for (a, b) in find_phrase(text, phrase) {
            out.push(cut(text, a, b));
        }
    }
    out.retain(|s| !s.is_empty() && s != text);
    out
}

/// "atrial fibrillation, unspecified" -> "unspecified atrial fibrillation".
fn invert_trailing(text: &str) -> Option<String> {
    let (head, tail) = text.split_once(", ")?;
    let tail_words = tail.split_whitespace().count();
    if tail.contains(',') || head.is_empty() || !(1..=4).contains(&tail_words) {
        return None;
    }
    Some(tidy(&format!("{tail} {head}")))
}

/// "acute kidney failure" -> "kidney failure, acute".
fn invert_modifier(text: &str) -> Option<String> {
    if text.contains(',') {
        return None;
    }
    let (first, rest) = text.split_once(' ')?;
    let words = text.split_whitespace().count();
    if !(3..=6).contains(&words) || !MODIFIERS.contains(&first.to_lowercase().as_str()) {
        return None;
    }
    Some(format!("{rest}, {first}"))
}

/// Words long enough to take a typo: at least five ASCII letters.
fn typo_words(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    word_ranges(text).into_iter().filter(move |&(a, b)| b - a >= 5 && text[a..b].bytes().all(|c| c.is_ascii_alphabetic()))
}

/// One slip inside a long word: two neighbouring letters swapped, one left out, or one doubled.
fn typo(text: &str, rng: &mut StdRng) -> Option<String> {
    let words: Vec<(usize, usize)> = typo_words(text).collect();
    for _ in 0..8 {
        let &(a, b) = words.choose(rng)?;
        let mut w: Vec<u8> = text[a..b].bytes().collect();
        // Interior positions only: first and last letters are rarely mistyped.
        let j = rng.random_range(1..w.len() - 2);
        match rng.random_range(0..3) {
            0 => w.swap(j, j + 1),
            1 => {
                w.remove(j);
            }
            _ => w.insert(j, w[j]),
        }
        let word = String::from_utf8(w).ok()?;
        if word != text[a..b] {
            return Some(format!("{}{word}{}", &text[..a], &text[b..]));
        }
    }
    None
}

fn title_case(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut start = true;
    for ch in text.chars() {
        if start && ch.is_alphabetic() {
            out.extend(ch.to_uppercase());
        } else {
            out.push(ch);
        }
        start = !ch.is_alphanumeric() && ch != '\'';
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn drops_uninformative_pieces_only() {
        let mut d = drop_options("pneumonia, unspecified organism");
        d.sort();
        assert_eq!(d, ["pneumonia"]);
        assert_eq!(drop_options("type 2 diabetes mellitus without complications"), ["type 2 diabetes without complications", "type 2 diabetes mellitus"]);
        assert!(drop_options("essential hypertension").is_empty());
    }

    #[test]
    fn inverts_clauses_and_modifiers() {
        assert_eq!(invert_trailing("atrial fibrillation, unspecified").as_deref(), Some("unspecified atrial fibrillation"));
        assert_eq!(invert_trailing("a, b, c"), None);
        assert_eq!(invert_modifier("acute kidney failure").as_deref(), Some("kidney failure, acute"));
        assert_eq!(invert_modifier("acute gastritis"), None);
        assert_eq!(invert_modifier("gout of the knee"), None);
    }

    #[test]
    fn typos_change_one_interior_letter_of_a_long_word() {
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..50 {
            let t = typo("gout and hypertension", &mut rng).unwrap();
            assert_ne!(t, "gout and hypertension");
            assert!(t.starts_with("gout and h") && t.ends_with('n'), "{t}");
            assert!((t.len() as i64 - 21).abs() <= 1);
        }
        assert_eq!(typo("gout", &mut rng), None);
    }

    #[test]
    fn title_case_keeps_acronyms() {
        assert_eq!(title_case("GI bleed, crohn's disease"), "GI Bleed, Crohn's Disease");
    }

    #[test]
    fn same_seed_same_variant() {
        let p = Perturb::new(&PerturbParams::default());
        let form = "chronic atrial fibrillation, unspecified";
        let a = p.variant(form, &mut StdRng::seed_from_u64(9));
        let b = p.variant(form, &mut StdRng::seed_from_u64(9));
        assert_eq!(a, b);
        assert_ne!(a.map(|v| v.0).as_deref(), Some(form));
    }
}
