//! Metrics at MIMIC-IV ICD-10 test-split scale: 20,000 documents over 8,000
//! codes, ~15 gold codes per document drawn Zipf-like (a few codes are very
//! common, most are rare), seeded so every run scores the same data.

use std::collections::HashSet;
use std::hint::black_box;
use std::sync::OnceLock;

use criterion::{criterion_group, criterion_main, Criterion};
use icdbench::metrics::{
    macro_auc, micro_auc, precision_at_k, score, score_ranking, tune_threshold, Bootstrap,
    LabelSets, ScoreOptions, ScoredDocs,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const N_DOCS: usize = 20_000;
const N_CODES: usize = 8_000;
/// Scored (dense) benchmarks use a smaller split: every document scores every code.
const SCORED_DOCS: usize = 2_000;
const SCORED_CODES: usize = 1_000;

fn code_name(rank: usize) -> String {
    // ICD-shaped names; rank order differs from string order, as in real data.
    let letter = (b'A' + (rank * 7 % 26) as u8) as char;
    format!("{letter}{:02}.{}", rank / 26 % 100, rank / 2600)
}

/// Cumulative Zipf(s = 1.1) weights over `n` ranks.
fn zipf_cdf(n: usize) -> Vec<f64> {
    let mut acc = 0.0;
    (0..n)
        .map(|r| {
            acc += 1.0 / ((r + 1) as f64).powf(1.1);
            acc
        })
        .collect()
}

fn draw(rng: &mut StdRng, cdf: &[f64]) -> usize {
    let u = rng.random::<f64>() * cdf[cdf.len() - 1];
    cdf.partition_point(|&c| c < u).min(cdf.len() - 1)
}

struct SetData {
    gold: Vec<Vec<String>>,
    pred: Vec<Vec<String>>,
    opts: ScoreOptions,
}

fn set_data() -> &'static SetData {
    static DATA: OnceLock<SetData> = OnceLock::new();
    DATA.get_or_init(|| {
        let names: Vec<String> = (0..N_CODES).map(code_name).collect();
        let cdf = zipf_cdf(N_CODES);
        let mut rng = StdRng::seed_from_u64(20_231);
        let mut gold = Vec::with_capacity(N_DOCS);
        let mut pred = Vec::with_capacity(N_DOCS);
        for _ in 0..N_DOCS {
            let n = rng.random_range(8..=22);
            let g: Vec<String> = (0..n)
                .map(|_| names[draw(&mut rng, &cdf)].clone())
                .collect();
            // Recover ~60% of gold and add a few Zipf-drawn false positives.
            let mut p: Vec<String> = g.iter().filter(|_| rng.random_bool(0.6)).cloned().collect();
            let extra = rng.random_range(0..=6);
            p.extend((0..extra).map(|_| names[draw(&mut rng, &cdf)].clone()));
            gold.push(g);
            pred.push(p);
        }
        // Training saw the 6,000 most frequent codes.
        let seen: HashSet<String> = names[..6_000].iter().cloned().collect();
        let opts = ScoreOptions {
            seen_codes: Some(seen),
            label_space: Some(names),
            bootstrap: None,
        };
        SetData { gold, pred, opts }
    })
}

fn scored_data() -> &'static ScoredDocs {
    static DATA: OnceLock<ScoredDocs> = OnceLock::new();
    DATA.get_or_init(|| {
        let names: Vec<String> = (0..SCORED_CODES).map(code_name).collect();
        let cdf = zipf_cdf(SCORED_CODES);
        let mut rng = StdRng::seed_from_u64(7);
        let mut gold = Vec::with_capacity(SCORED_DOCS);
        let mut scores = Vec::with_capacity(SCORED_DOCS);
        for _ in 0..SCORED_DOCS {
            let ids: Vec<usize> = (0..15).map(|_| draw(&mut rng, &cdf)).collect();
            // Noise everywhere, gold codes lifted: a decent but imperfect model.
            let mut row: Vec<f64> = (0..SCORED_CODES)
                .map(|_| rng.random::<f64>() * 0.6)
                .collect();
            for &i in &ids {
                row[i] = (row[i] + 0.4).min(1.0);
            }
            gold.push(ids.iter().map(|&i| names[i].clone()).collect::<Vec<_>>());
            scores.push(row);
        }
        ScoredDocs::dense(&names, &gold, &scores).expect("synthetic scores are valid")
    })
}

fn bench_sets(c: &mut Criterion) {
    let data = set_data();
    let sets = LabelSets::new(&data.gold, &data.pred).expect("same length");
    let mut g = c.benchmark_group("sets_20k_docs_8k_codes");
    g.sample_size(10);
    g.bench_function("label_sets_new", |b| {
        b.iter(|| LabelSets::new(black_box(&data.gold), black_box(&data.pred)))
    });
    g.bench_function("score_no_bootstrap", |b| {
        b.iter(|| score(black_box(&sets), &data.opts))
    });
    let boot = ScoreOptions {
        bootstrap: Some(Bootstrap::new(100, 1)),
        ..data.opts.clone()
    };
    g.bench_function("score_bootstrap_100", |b| {
        b.iter(|| score(black_box(&sets), &boot))
    });
    g.finish();
}

fn bench_scored(c: &mut Criterion) {
    let docs = scored_data();
    let mut g = c.benchmark_group("scored_2k_docs_1k_codes");
    g.sample_size(10);
    g.bench_function("precision_at_15", |b| {
        b.iter(|| precision_at_k(black_box(docs), 15))
    });
    g.bench_function("micro_auc", |b| b.iter(|| micro_auc(black_box(docs))));
    g.bench_function("macro_auc", |b| b.iter(|| macro_auc(black_box(docs))));
    g.bench_function("score_ranking_8_15", |b| {
        b.iter(|| score_ranking(black_box(docs), &[8, 15]))
    });
    g.bench_function("tune_threshold", |b| {
        b.iter(|| tune_threshold(black_box(docs)))
    });
    g.finish();
}

criterion_group!(benches, bench_sets, bench_scored);
criterion_main!(benches);
