//! The non-model pipeline at its real sizes: loading the whole ICD-10-CM code
//! set, generating the quickstart benchmark, dictionary coding its test split
//! (pool-restricted versus whole-code-set trie), and fuzzy scoring it (pool).

use criterion::{criterion_group, criterion_main, Criterion};
use icdbench::baselines::{CodeScorer, DictionaryCoder, FuzzyCoder};
use icdbench::config::{DictionaryParams, FuzzyParams};
use icdbench::data::synthetic::SyntheticParams;
use icdbench::data::synthetic::generate;
use icdbench::data::Split;
use icdbench::icd::CodeSet;
use std::hint::black_box;

fn codeset(c: &mut Criterion) {
    let bytes = CodeSet::builtin_bytes();
    c.bench_function("codeset/load_builtin_98k_entries", |b| b.iter(|| CodeSet::from_bytes(black_box(bytes), "bench").unwrap().len()));
}

fn synthetic(c: &mut Criterion) {
    let codes = CodeSet::builtin().unwrap();
    let params = SyntheticParams::default();
    let mut g = c.benchmark_group("synthetic");
    g.sample_size(10);
    g.bench_function("generate_quickstart_1200_docs", |b| b.iter(|| generate(black_box(&params), codes).unwrap().documents.len()));
    g.finish();
}

fn dictionary(c: &mut Criterion) {
    let codes = CodeSet::builtin().unwrap();
    let data = generate(&SyntheticParams::default(), codes).unwrap();
    let test: Vec<_> = data.split(Split::Test).collect();
    let params = DictionaryParams::default();
    let pool = DictionaryCoder::build(codes, Some(&data.pool), &params);
    let whole = DictionaryCoder::build(codes, None, &params);
    let mut g = c.benchmark_group("dictionary");
    g.sample_size(10);
    g.bench_function("build_trie_whole_code_set", |b| b.iter(|| DictionaryCoder::build(codes, None, black_box(&params)).terms));
    g.bench_function("predict_300_docs_pool_trie", |b| b.iter(|| test.iter().map(|d| pool.predict(d).codes.len()).sum::<usize>()));
    g.bench_function("predict_300_docs_whole_code_set_trie", |b| b.iter(|| test.iter().map(|d| whole.predict(d).codes.len()).sum::<usize>()));
    g.finish();
}

/// Pool-restricted only: the whole code set's index takes half a minute to build in the debug
/// build `cargo test --benches` uses (`icdbench run` with `restrict_to_pool = false` times it).
fn fuzzy(c: &mut Criterion) {
    let codes = CodeSet::builtin().unwrap();
    let data = generate(&SyntheticParams::default(), codes).unwrap();
    let test: Vec<_> = data.split(Split::Test).take(100).collect();
    let params = FuzzyParams::default();
    let pool = FuzzyCoder::build(codes, Some(&data.pool), &params);
    let mut g = c.benchmark_group("fuzzy");
    g.sample_size(10);
    g.bench_function("build_index_pool", |b| b.iter(|| FuzzyCoder::build(codes, Some(&data.pool), black_box(&params)).report.postings));
    g.bench_function("score_100_docs_pool", |b| b.iter(|| pool.score(black_box(&test)).is_ok()));
    g.finish();
}

criterion_group!(benches, codeset, synthetic, dictionary, fuzzy);
criterion_main!(benches);
