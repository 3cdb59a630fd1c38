//! Code-centric expansion on the quickstart-sized synthetic benchmark
//! (`SyntheticParams::default()`: 200 pool codes, 40 of them unseen).

use icdbench::config::{parse_experiment, ConfigError, Coverage, Expansion, ExpansionKind, GoldEvidenceParams, HierarchyParams, PerturbOp, PerturbParams, SilverParams, SynthesizeParams};
use icdbench::data::synthetic::SyntheticParams;
use icdbench::data::synthetic::generate;
use icdbench::data::paraphrase::{held_out_markers, shared_markers};
use icdbench::data::{Dataset, Split, Wording};
use icdbench::text::rewrite::find_phrase;
use icdbench::expand::{dedup_key, expand, ExpandContext, ExpandError, ExpandedSpan, ExpansionOutput, Source, SpanWriter, StrategyReport};
use icdbench::icd::{Code, CodeEntry, CodeSet};
use icdbench::text::note_form;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::OnceLock;

fn codes() -> &'static CodeSet {
    CodeSet::builtin().unwrap()
}

fn data() -> &'static Dataset {
    static DATA: OnceLock<Dataset> = OnceLock::new();
    DATA.get_or_init(|| generate(&SyntheticParams::default(), codes()).unwrap())
}

fn spec(kind: ExpansionKind, coverage: Coverage) -> Expansion {
    Expansion::new(kind).with_coverage(coverage)
}

fn run_with(specs: &[Expansion], seed: u64, dataset: &Dataset) -> Result<ExpansionOutput, ExpandError> {
    let mut ctx = ExpandContext { codes: codes(), dataset, seed, cache_dir: None, writer: None };
    expand(specs, &mut ctx)
}

fn run(specs: &[Expansion], seed: u64) -> ExpansionOutput {
    run_with(specs, seed, data()).unwrap()
}

fn per_code(examples: &[ExpandedSpan]) -> BTreeMap<&Code, usize> {
    let mut m = BTreeMap::new();
    for e in examples {
        *m.entry(&e.code).or_default() += 1;
    }
    m
}

/// Lower-cased note forms of a code's description and inclusion terms.
fn table_forms(entry: &CodeEntry) -> BTreeSet<String> {
    std::iter::once(&entry.description).chain(&entry.inclusion_terms).map(|t| note_form(t).to_lowercase()).filter(|f| !f.is_empty()).collect()
}

fn entry(code: &Code) -> &'static CodeEntry {
    codes().get(code).unwrap()
}

#[test]
fn description_covers_unseen_codes_with_pool_coverage_and_none_with_training_codes() {
    let d = data();
    let seen = d.seen_codes();
    let pool = run(&[spec(ExpansionKind::Description, Coverage::Pool)], 17);
    let s = &pool.report.strategies[0];
    assert_eq!(s.codes_targeted, 200);
    assert_eq!(s.codes_targeted_unseen, 200 - seen.len());
    assert!(s.codes_targeted_unseen >= 40, "the 40 test-only codes are unseen");
    // One description per code: the generator keeps surface forms unique within the pool.
    assert_eq!((s.counts.examples, s.counts.codes, s.counts.codes_unseen), (200, 200, 200 - seen.len()));
    assert_eq!(pool.report.total, s.counts);

    let train = run(&[spec(ExpansionKind::Description, Coverage::TrainingCodes)], 17);
    let t = &train.report.strategies[0];
    assert_eq!((t.counts.codes, t.counts.codes_seen, t.counts.codes_unseen, t.counts.examples_unseen), (seen.len(), seen.len(), 0, 0));
    for e in &pool.examples {
        assert_eq!(e.span, note_form(&entry(&e.code).description));
        assert_eq!(e.source, Source::Table { code: e.code.clone(), detail: "description".into() });
    }
}

#[test]
fn chapter_and_code_coverage_and_their_errors() {
    let one = run(&[spec(ExpansionKind::Description, Coverage::Codes(vec!["i2609".into(), "E11.9".into()]))], 1);
    let got: Vec<&str> = one.examples.iter().map(|e| e.code.as_str()).collect();
    assert_eq!(got, ["E11.9", "I26.09"], "normalised and in code order");

    let chapter = run(&[spec(ExpansionKind::Description, Coverage::Chapters(vec![4]))], 1);
    let billable_e = codes().billable_in_chapters(&[4]).len();
    assert_eq!(chapter.report.strategies[0].codes_targeted, billable_e);
    assert!(chapter.report.strategies[0].counts.codes_unseen > 500, "most of chapter 4 is unseen");

    let unknown = run_with(&[spec(ExpansionKind::Description, Coverage::Codes(vec!["E11.99".into()]))], 1, data());
    assert!(matches!(unknown, Err(ExpandError::UnknownCode { ref code, .. }) if code == "E11.99"), "{:?}", unknown.err());

    let no_pool = Dataset { pool: Vec::new(), ..data().clone() };
    let err = run_with(&[spec(ExpansionKind::Description, Coverage::Pool)], 1, &no_pool).err().unwrap();
    assert!(matches!(err, ExpandError::NoPool { index: 0, .. }));
    assert!(err.to_string().contains("training_codes"), "{err}");
}

#[test]
fn inclusion_terms_give_each_distinct_term_once() {
    let out = run(&[spec(ExpansionKind::InclusionTerms, Coverage::Pool)], 17);
    let pool: Vec<&CodeEntry> = data().pool.iter().map(entry).collect();
    let expected: usize = pool
        .iter()
        .map(|e| e.inclusion_terms.iter().map(|t| dedup_key(&note_form(t))).filter(|t| !t.is_empty()).collect::<BTreeSet<_>>().len().min(8))
        .sum();
    assert_eq!(out.examples.len(), expected);
    assert!(expected > 0);
    for e in &out.examples {
        let terms: Vec<String> = entry(&e.code).inclusion_terms.iter().map(|t| note_form(t)).collect();
        assert!(terms.contains(&e.span), "{} is not an inclusion term of {}", e.span, e.code);
    }
}

#[test]
fn per_code_cap_is_respected_by_every_strategy() {
    for kind in ExpansionKind::ALL {
        if kind == ExpansionKind::Synthesize {
            continue;
        }
        let s = match spec(kind, Coverage::Pool).with_per_code_cap(2) {
            Expansion::Perturb(p) => Expansion::Perturb(PerturbParams { variants: 6, ..p }),
            s => s,
        };
        let out = run(&[s], 17);
        let counts = per_code(&out.examples);
        assert!(counts.values().all(|&n| n <= 2), "{kind}: {counts:?}");
        let r = &out.report.strategies[0];
        if matches!(kind, ExpansionKind::GoldEvidence | ExpansionKind::Perturb | ExpansionKind::Hierarchy) {
            assert!(r.capped > 0, "{kind}: the cap of 2 should bind somewhere");
            assert!(counts.values().any(|&n| n == 2), "{kind}");
        }
    }
}

/// Every strategy that needs no LLM.
fn every_rule_strategy(coverage: Coverage) -> Vec<Expansion> {
    ExpansionKind::ALL.into_iter().filter(|k| *k != ExpansionKind::Synthesize).map(|k| spec(k, coverage.clone())).collect()
}

#[test]
fn same_inputs_give_identical_output_and_duplicates_are_kept_once() {
    let specs = every_rule_strategy(Coverage::Pool);
    let a = run(&specs, 17);
    let b = run(&specs, 17);
    assert_eq!(a.examples, b.examples);
    assert_eq!(serde_json::to_string(&a.report).unwrap(), serde_json::to_string(&b.report).unwrap());
    let keys: HashSet<(String, Option<String>, &Code)> = a.examples.iter().map(|e| (dedup_key(&e.span), e.context.clone(), &e.code)).collect();
    assert_eq!(keys.len(), a.examples.len(), "an example appears twice");
    // Silver and gold evidence find the table forms the description strategy already wrote.
    let dup: usize = a.report.strategies.iter().map(|s| s.duplicates).sum();
    assert!(dup > 0);
    assert_eq!(a.report.total.examples, a.report.strategies.iter().map(|s| s.counts.examples).sum::<usize>());
    // Another seed changes the seeded strategies only.
    let c = run(&specs, 18);
    let of = |o: &ExpansionOutput, k: ExpansionKind| o.examples.iter().filter(|e| e.strategy == k).cloned().collect::<Vec<_>>();
    assert_eq!(of(&a, ExpansionKind::Description), of(&c, ExpansionKind::Description));
    assert_ne!(of(&a, ExpansionKind::Perturb), of(&c, ExpansionKind::Perturb));
}

#[test]
fn a_codes_examples_do_not_depend_on_the_rest_of_the_coverage() {
    let pool = run(&[spec(ExpansionKind::Perturb, Coverage::Pool)], 5);
    let code = data().pool[7].clone();
    let alone = run(&[spec(ExpansionKind::Perturb, Coverage::Codes(vec![code.to_string()]))], 5);
    let from_pool: Vec<&ExpandedSpan> = pool.examples.iter().filter(|e| e.code == code).collect();
    assert_eq!(from_pool, alone.examples.iter().collect::<Vec<_>>());
}

#[test]
fn perturb_rewrites_differ_from_every_table_form_and_are_seeded() {
    let s = PerturbParams { variants: 6, per_code_cap: 6, coverage: Coverage::Pool, ..PerturbParams::default() };
    let out = run(&[Expansion::Perturb(s.clone())], 17);
    assert!(out.examples.len() > 200 * 4, "{} variants for 200 codes", out.examples.len());
    let mut ops_seen = BTreeSet::new();
    for e in &out.examples {
        assert!(!table_forms(entry(&e.code)).contains(&e.span.to_lowercase()), "{} unchanged", e.span);
        let Source::Table { detail, .. } = &e.source else { panic!("{:?}", e.source) };
        let ops = detail.split(": ").nth(1).unwrap();
        ops_seen.extend(ops.split(", ").map(String::from));
    }
    assert_eq!(ops_seen, ["case", "drop", "invert", "shorthand", "typo"].map(String::from).into_iter().collect());
    // Restricting the ops restricts the rewrites.
    let typos = run(&[Expansion::Perturb(PerturbParams { ops: vec![PerturbOp::Typo], ..s })], 17);
    for e in &typos.examples {
        let desc_words = table_forms(entry(&e.code)).iter().map(|f| f.split_whitespace().count()).collect::<Vec<_>>();
        assert!(desc_words.contains(&e.span.split_whitespace().count()), "a typo keeps the word count: {}", e.span);
    }
}

#[test]
fn abbreviation_only_writes_changed_forms() {
    let out = run(&[spec(ExpansionKind::Abbreviation, Coverage::Chapters(vec![4, 9, 10, 11]))], 17);
    let r = &out.report.strategies[0];
    assert!(r.counts.codes > 500, "{} codes have an abbreviable form", r.counts.codes);
    for e in &out.examples {
        assert!(!table_forms(entry(&e.code)).contains(&e.span.to_lowercase()));
    }
    let nstemi = out.examples.iter().find(|e| e.span.starts_with("NSTEMI")).expect("an NSTEMI form");
    assert!(entry(&nstemi.code).description.contains("Non-ST elevation"), "{}", nstemi.code);
}

#[test]
fn hierarchy_gives_parent_context_and_contrastive_sibling_pairs() {
    let out = run(&[spec(ExpansionKind::Hierarchy, Coverage::Pool)], 17);
    let pool: BTreeSet<&Code> = data().pool.iter().collect();
    let (mut parents, mut contrasts) = (0, 0);
    for e in &out.examples {
        let ctx = e.context.as_deref().unwrap();
        assert_eq!(e.span, note_form(&entry(&e.code).description));
        assert!(pool.contains(&e.code), "siblings outside the coverage get no examples by default");
        if let Some(parent) = codes().parent(&e.code) {
            assert!(ctx.starts_with(&format!("category: {}", note_form(&parent.description))), "{ctx}");
        }
        match ctx.split_once("sibling ") {
            Some((_, rest)) => {
                contrasts += 1;
                let other = Code::parse(rest.split(':').next().unwrap()).unwrap();
                assert!(codes().siblings(&e.code).iter().any(|s| s.code == other), "{other} is not a sibling of {}", e.code);
            }
            None => parents += 1,
        }
    }
    assert!(parents >= 190, "{parents}");
    assert!(contrasts >= 200, "{contrasts}");
    let wide = run(&[Expansion::Hierarchy(HierarchyParams { contrast_outside_coverage: true, coverage: Coverage::Pool, ..HierarchyParams::default() })], 17);
    assert!(wide.examples.iter().any(|e| !pool.contains(&e.code)));
}

#[test]
fn silver_spans_sit_at_their_offsets_and_only_for_gold_codes() {
    let docs: HashMap<&str, _> = data().documents.iter().map(|d| (d.id.as_str(), d)).collect();
    for negation in [true, false] {
        let s = Expansion::Silver(SilverParams { negation, per_code_cap: 1000, coverage: Coverage::Pool, ..SilverParams::default() });
        let out = run(&[s], 17);
        assert!(out.examples.len() > 150, "{}", out.examples.len());
        for e in &out.examples {
            let Source::Document { id, start, end } = &e.source else { panic!("{:?}", e.source) };
            let doc = docs[id.as_str()];
            assert_eq!(doc.split, Split::Train);
            assert_eq!(doc.slice_chars(*start, *end), Some(e.span.as_str()));
            assert!(doc.codes.contains(&e.code), "{} is not gold in {id}", e.code);
        }
        let r = &out.report.strategies[0];
        assert_eq!(r.counts.codes_unseen, 0, "unseen codes are in no training document");
        if negation {
            // Mining finds every training mention in table wording (paraphrases hide their code's table forms).
            let annotations: usize = data()
                .split(Split::Train)
                .flat_map(|d| &d.evidence)
                .filter(|e| e.kind.as_ref().is_some_and(|k| k.wording == Wording::Verbatim))
                .count();
            assert_eq!(r.details["matches_on_gold_codes"], annotations);
            // Distractors under cues no matcher lists ("Screening for X was unremarkable.") are matched, then dropped.
            assert!(r.details["matches_not_gold_dropped"] < annotations / 10, "{:?}", r.details);
        } else {
            assert!(r.details["matches_not_gold_dropped"] > 0, "distractor mentions are matched, then dropped");
        }
    }
}

#[test]
fn gold_evidence_equals_the_annotations() {
    let s = Expansion::GoldEvidence(GoldEvidenceParams { per_code_cap: 100_000, sentence_context: true, coverage: Coverage::TrainingCodes });
    let out = run(&[s], 17);
    let docs: HashMap<&str, _> = data().documents.iter().map(|d| (d.id.as_str(), d)).collect();
    for e in &out.examples {
        let Source::Document { id, start, end } = &e.source else { panic!() };
        let doc = docs[id.as_str()];
        assert!(doc.evidence.iter().any(|ev| ev.start == *start && ev.end == *end && ev.text == e.span && ev.code == e.code));
        assert!(e.context.as_deref().unwrap().contains(&e.span));
    }
    let annotated: BTreeSet<(String, &Code)> =
        data().split(Split::Train).flat_map(|d| d.evidence.iter()).map(|ev| (dedup_key(&ev.text), &ev.code)).collect();
    let expanded: BTreeSet<(String, &Code)> = out.examples.iter().map(|e| (dedup_key(&e.span), &e.code)).collect();
    assert_eq!(expanded, annotated);
}

/// Held-out paraphrases of the test notes (the generator's held-out lexicon) must
/// never be written by an expansion: neither a whole test phrasing nor any
/// held-out rewrite inside a span, for every strategy, over the whole code space.
#[test]
fn held_out_test_phrasings_do_not_leak_into_expansion() {
    let held_out: HashSet<String> = data()
        .split(Split::Test)
        .flat_map(|d| d.evidence.iter())
        .filter(|ev| ev.kind.as_ref().is_some_and(|k| k.wording == Wording::HeldOut))
        .map(|ev| ev.text.to_lowercase())
        .collect();
    assert!(held_out.len() > 50, "only {} held-out test phrasings", held_out.len());
    let specs: Vec<Expansion> = every_rule_strategy(Coverage::Auto)
        .into_iter()
        .map(|s| match s.with_per_code_cap(16) {
            Expansion::Perturb(p) => Expansion::Perturb(PerturbParams { variants: 8, ..p }),
            Expansion::Paraphrase(p) => Expansion::Paraphrase(icdbench::config::ParaphraseParams { variants: 8, ..p }),
            s => s,
        })
        .collect();
    let out = run(&specs, 17);
    assert_no_held_out(&out.examples, &held_out);
    assert!(out.examples.len() > 10_000, "{}", out.examples.len());
    // The paraphrase strategy does write the shared lexicon's rewrites.
    let shared = shared_markers();
    let paraphrased: Vec<&ExpandedSpan> = out.examples.iter().filter(|e| e.strategy == ExpansionKind::Paraphrase).collect();
    let used = shared.iter().filter(|m| paraphrased.iter().any(|e| !find_phrase(&e.span.to_lowercase(), m).is_empty())).count();
    assert!(used > 20, "paraphrase used {used} shared rewrites");
}

fn assert_no_held_out(examples: &[ExpandedSpan], held_out_phrasings: &HashSet<String>) {
    let markers = held_out_markers();
    for e in examples {
        let span = e.span.to_lowercase();
        assert!(!held_out_phrasings.contains(&span), "{} wrote the test phrasing {span:?}", e.strategy);
        // "(severe)" is table wording in a raw description; the held-out move only makes it in notes, which use note forms.
        for m in markers.iter().filter(|m| !m.starts_with('(')) {
            assert!(find_phrase(&span, m).is_empty(), "{} wrote the held-out rewrite {m:?} in {span:?}", e.strategy);
        }
    }
}

/// Which codes receive span examples must not depend on which codes the benchmark
/// drew or held out: two benchmarks of other seeds (other pools, other unseen codes)
/// get the same covered codes by default.
#[test]
fn default_coverage_is_independent_of_the_held_out_codes() {
    let other = generate(&SyntheticParams { seed: 99, ..SyntheticParams::default() }, codes()).unwrap();
    assert_ne!(other.unseen_codes(Split::Test), data().unseen_codes(Split::Test));
    let covered = |d: &Dataset| -> BTreeSet<Code> {
        let out = run_with(&[spec(ExpansionKind::Description, Coverage::default())], 17, d).unwrap();
        out.examples.iter().map(|e| e.code.clone()).collect()
    };
    let a = covered(data());
    assert_eq!(a, covered(&other));
    assert_eq!(a.len(), codes().billable_in_chapters(&[4, 9, 10, 11]).len());
    assert!(data().unseen_codes(Split::Test).iter().all(|c| a.contains(c)));
    // Real data has no code space: "benchmark" is an error there, the default falls back to training codes.
    let real = Dataset { code_space: Vec::new(), ..data().clone() };
    assert!(matches!(run_with(&[spec(ExpansionKind::Description, Coverage::Benchmark)], 17, &real), Err(ExpandError::NoCodeSpace { .. })));
    let fallback = run_with(&[spec(ExpansionKind::Description, Coverage::default())], 17, &real).unwrap();
    assert_eq!(fallback.report.total.codes_unseen, 0);
}

/// A span writer that answers with the lines of its own prompt: whatever the prompt
/// carries comes back as spans, so a prompt built from test notes would leak.
struct EchoWriter;

impl SpanWriter for EchoWriter {
    fn identity(&self) -> String {
        "echo".into()
    }

    fn write(&mut self, _code: &CodeEntry, prompt: &str, _n: usize, _seed: u64) -> Result<Vec<String>, ExpandError> {
        Ok(prompt.lines().flat_map(|l| l.split([',', '.', ':'])).map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
    }
}

#[test]
fn synthesize_prompts_carry_no_held_out_wording() {
    let tmp = tempfile::tempdir().unwrap();
    let mut writer = EchoWriter;
    let s = Expansion::Synthesize(SynthesizeParams { n: 5, ..SynthesizeParams::default() });
    let mut ctx = ExpandContext { codes: codes(), dataset: data(), seed: 17, cache_dir: Some(tmp.path().to_path_buf()), writer: Some(&mut writer) };
    let out = expand(&[s], &mut ctx).unwrap();
    assert!(out.examples.len() > 1000, "{}", out.examples.len());
    assert_no_held_out(&out.examples, &HashSet::new());
}

/// A stand-in LLM: a fixed, seeded answer that exercises every filter.
struct FakeWriter {
    name: &'static str,
    calls: usize,
}

impl SpanWriter for FakeWriter {
    fn identity(&self) -> String {
        format!("fake-{}", self.name)
    }

    fn write(&mut self, code: &CodeEntry, prompt: &str, n: usize, seed: u64) -> Result<Vec<String>, ExpandError> {
        assert!(prompt.contains(&code.description) && prompt.contains(&n.to_string()));
        self.calls += 1;
        let short = note_form(&code.description);
        Ok(vec![
            format!("1. {short} (v{})", seed % 7),
            format!("2. \"{short} on imaging\""),
            format!("- {short} on imaging."),
            String::new(),
            code.description.clone(),
            format!("assigned {}", code.code),
            "one two three four five six seven eight nine ten eleven twelve thirteen".into(),
        ])
    }
}

fn synthesize(dir: &Path, writer: &mut FakeWriter) -> Result<ExpansionOutput, ExpandError> {
    let s = Expansion::Synthesize(SynthesizeParams { n: 5, coverage: Coverage::Pool, ..SynthesizeParams::default() });
    let mut ctx = ExpandContext { codes: codes(), dataset: data(), seed: 17, cache_dir: Some(dir.to_path_buf()), writer: Some(writer) };
    expand(&[s], &mut ctx)
}

#[test]
fn synthesize_prompts_per_code_filters_outputs_and_caches_them() {
    let tmp = tempfile::tempdir().unwrap();
    let mut first = FakeWriter { name: "a", calls: 0 };
    let a = synthesize(tmp.path(), &mut first).unwrap();
    assert_eq!(first.calls, 200, "one prompt per pool code");
    let r: &StrategyReport = &a.report.strategies[0];
    let d = &r.details;
    assert_eq!((d["codes"], d["generated"], d["cache_hits"], d["outputs"]), (200, 200, 0, 1400));
    assert_eq!((d["kept"], d["dropped_duplicate"], d["dropped_empty"]), (400, 200, 200));
    assert_eq!((d["dropped_table_form"], d["dropped_names_code"], d["dropped_too_long"]), (200, 200, 200));
    assert_eq!((r.counts.examples, r.counts.codes, r.counts.codes_unseen), (400, 200, r.codes_targeted_unseen));
    assert!(a.examples.iter().all(|e| matches!(&e.source, Source::Generated { generator, key } if generator == "fake-a" && key.len() == 64)));
    assert!(a.examples.iter().any(|e| e.span.ends_with("on imaging") && !e.span.contains('"')));
    assert!(tmp.path().join(icdbench::expand::CACHE_FILE).is_file());

    // A rerun reads the cache: no generation, the same examples.
    let mut again = FakeWriter { name: "a", calls: 0 };
    let b = synthesize(tmp.path(), &mut again).unwrap();
    assert_eq!(again.calls, 0);
    assert_eq!(b.report.strategies[0].details["cache_hits"], 200);
    assert_eq!(a.examples, b.examples);

    // Another generator does not reuse the first one's phrasings.
    let mut other = FakeWriter { name: "b", calls: 0 };
    synthesize(tmp.path(), &mut other).unwrap();
    assert_eq!(other.calls, 200);

    // Without a writer there is nothing to prompt.
    let mut ctx = ExpandContext { codes: codes(), dataset: data(), seed: 17, cache_dir: None, writer: None };
    let err = expand(&[spec(ExpansionKind::Synthesize, Coverage::Pool)], &mut ctx).err().unwrap();
    assert!(matches!(err, ExpandError::NoWriter { index: 0 }), "{err}");

    // A corrupt cache is reported, not ignored.
    std::fs::write(tmp.path().join(icdbench::expand::CACHE_FILE), "{not json").unwrap();
    let err = synthesize(tmp.path(), &mut FakeWriter { name: "a", calls: 0 }).err().unwrap();
    assert!(matches!(err, ExpandError::CacheCorrupt { .. }), "{err}");
}

const EXPANSION_TOML: &str = r#"
[experiment]
name = "spans"

[[baselines]]
kind = "dictionary"

[[expansion]]
kind = "description"

[[expansion]]
kind = "perturb"
coverage = "pool"
per_code_cap = 6
variants = 6
ops = ["typo", "drop"]

[[expansion]]
kind = "hierarchy"
coverage = { chapters = [9] }
siblings = 3

[[expansion]]
kind = "synthesize"
coverage = { codes = ["I26.09", "e119"] }
n = 10
prompt = "Write {n} ways to say {description}."
"#;

fn parse(text: &str) -> Result<icdbench::config::Experiment, ConfigError> {
    parse_experiment(text, Path::new("x.toml"))
}

#[test]
fn expansion_parameters_parse_round_trip_and_default() {
    let exp = parse(EXPANSION_TOML).unwrap();
    let e = &exp.expansion;
    assert_eq!(e.len(), 4);
    assert_eq!((e[0].kind(), e[0].coverage(), e[0].per_code_cap()), (ExpansionKind::Description, &Coverage::Auto, 8));
    assert!(matches!(&e[0], Expansion::Description(p) if !p.keep_raw));
    let Expansion::Perturb(p) = &e[1] else { panic!("{:?}", e[1]) };
    assert_eq!((p.variants, &p.ops, p.max_ops), (6, &vec![PerturbOp::Typo, PerturbOp::Drop], 2));
    let Expansion::Hierarchy(h) = &e[2] else { panic!("{:?}", e[2]) };
    assert_eq!((h.siblings, h.parent_context, &h.coverage), (3, true, &Coverage::Chapters(vec![9])));
    let Expansion::Synthesize(y) = &e[3] else { panic!("{:?}", e[3]) };
    assert_eq!((y.n, y.max_words, y.prompt.as_str()), (10, 12, "Write {n} ways to say {description}."));
    let again = parse(&toml::to_string(&exp).unwrap()).unwrap();
    assert_eq!(exp, again);
}

fn problems(text: &str) -> Vec<(Option<String>, Option<usize>, String)> {
    match parse(text) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid { problems, .. }) => problems.into_iter().map(|p| (p.key, p.line, p.message)).collect(),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn unknown_or_misplaced_parameters_are_errors() {
    let base = "[experiment]\nname = \"x\"\n[[baselines]]\nkind = \"dictionary\"\n";
    // Unknown everywhere: the schema rejects it.
    let p = problems(&format!("{base}[[expansion]]\nkind = \"perturb\"\ntypo_rate = 0.1\n"));
    assert_eq!(p.len(), 1);
    assert_eq!((p[0].0.as_deref(), p[0].1), (Some("expansion.0.typo_rate"), Some(7)));
    // Known, but not for this kind: the schema names the key, the line and who takes it.
    let p = problems(&format!("{base}[[expansion]]\nkind = \"description\"\n[[expansion]]\nkind = \"silver\"\nvariants = 3\nnegation = false\n"));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!((p[0].0.as_deref(), p[0].1), (Some("expansion.1.variants"), Some(9)));
    assert!(p[0].2.contains("perturb") && p[0].2.contains("negation"), "{}", p[0].2);
    // Bad values, all reported at once.
    let p = problems(&format!(
        "{base}[[expansion]]\nkind = \"perturb\"\nops = []\nvariants = 0\n[[expansion]]\nkind = \"synthesize\"\nprompt = \"say something\"\ncoverage = {{ codes = [\"E11.9\", \"11.9\"] }}\n[[expansion]]\nkind = \"hierarchy\"\ncoverage = {{ chapters = [23] }}\nper_code_cap = 0\n"
    ));
    let keys: Vec<&str> = p.iter().filter_map(|p| p.0.as_deref()).collect();
    assert_eq!(keys, ["expansion.0.ops", "expansion.0.variants", "expansion.1.prompt", "expansion.1.coverage", "expansion.2.coverage", "expansion.2.per_code_cap"], "{p:?}");
    // An unknown kind or op is a schema error.
    assert!(!problems(&format!("{base}[[expansion]]\nkind = \"rephrase\"\n")).is_empty());
    assert!(!problems(&format!("{base}[[expansion]]\nkind = \"perturb\"\nops = [\"swap\"]\n")).is_empty());
}

/// The numbers for the report: every rule-based strategy over the pool on the quickstart data.
#[test]
fn quickstart_expansion_report() {
    let specs = every_rule_strategy(Coverage::Pool);
    let out = run(&specs, 17);
    println!("{}", out.report.table());
    let train_only = run(&every_rule_strategy(Coverage::TrainingCodes), 17);
    println!("{}", train_only.report.table());
    assert_eq!(train_only.report.total.codes_unseen, 0);
    let unseen = 200 - data().seen_codes().len();
    assert_eq!(out.report.total.codes_unseen, unseen, "every unseen pool code gets examples");
    assert_eq!(out.report.total.codes, 200);
    // Document-derived strategies cannot reach unseen codes; table-derived ones do.
    for s in &out.report.strategies {
        let from_documents = matches!(s.kind, ExpansionKind::Silver | ExpansionKind::GoldEvidence);
        assert_eq!(s.counts.codes_unseen == 0, from_documents, "{:?}", s.kind);
    }
}
