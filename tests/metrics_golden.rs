//! A worked example small enough to check by hand: every number asserted here
//! is derived in the comments beside it.

use std::collections::HashSet;

use icdbench::metrics::{
    apply_threshold, evidence_scores, macro_auc, mean_average_precision, micro_auc, per_code,
    precision_at_k, r_precision, recall_at_k, score, score_ranking, tune_threshold,
    tune_threshold_on, Bootstrap, LabelSets, MacroMetrics, MetricsError, ScoreOptions, ScoredDocs,
    SetMetrics, ThresholdGrid,
};

const EPS: f64 = 1e-9;

fn close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() < EPS,
        "{what}: got {actual}, expected {expected}"
    );
}

fn lists(x: &[&[&str]]) -> Vec<Vec<String>> {
    x.iter()
        .map(|d| d.iter().map(|c| c.to_string()).collect())
        .collect()
}

fn macro_is(
    m: &MacroMetrics,
    n_codes: usize,
    left_out: usize,
    p: f64,
    r: f64,
    f1: f64,
    what: &str,
) {
    assert_eq!(
        (m.n_codes, m.n_codes_left_out),
        (n_codes, left_out),
        "{what}: code counts"
    );
    close(m.precision, p, &format!("{what} precision"));
    close(m.recall, r, &format!("{what} recall"));
    close(m.f1, f1, &format!("{what} f1"));
}

// Four documents over codes A..E.
//
//        gold     predicted   TP    FP     FN
//   d0   {A,B}    {A,B}       A,B   -      -
//   d1   {A,C}    {A,E}       A     E      C
//   d2   {B}      {B,C,E}     B     C,E    -
//   d3   {A,D}    {D}         D     -      A
//
// Per code (tp, fp, fn) -> precision, recall, F1 = 2tp/(2tp+fp+fn):
//   A (2,0,1) -> 1,   2/3, 4/5
//   B (2,0,0) -> 1,   1,   1
//   C (0,1,1) -> 0,   0,   0
//   D (1,0,0) -> 1,   1,   1
//   E (0,2,0) -> 0,   0,   0      (no gold: recall defined as 0)
// Totals: TP 5, FP 3, FN 2.
fn example() -> LabelSets {
    let gold = lists(&[&["A", "B"], &["A", "C"], &["B"], &["A", "D"]]);
    let pred = lists(&[&["A", "B"], &["A", "E"], &["B", "C", "E"], &["D"]]);
    LabelSets::new(&gold, &pred).unwrap()
}

fn options() -> ScoreOptions {
    ScoreOptions {
        // X was seen in training but does not occur here.
        seen_codes: Some(
            ["A", "B", "X"]
                .iter()
                .map(|c| c.to_string())
                .collect::<HashSet<_>>(),
        ),
        // 8 distinct codes (A listed twice); E is predicted but outside the label space.
        label_space: Some(
            ["A", "B", "C", "D", "F", "G", "H", "I", "A"]
                .iter()
                .map(|c| c.to_string())
                .collect(),
        ),
        bootstrap: None,
    }
}

#[test]
fn overall_set_metrics() {
    let r = score(&example(), &options());
    let o = &r.overall;
    assert_eq!((o.tp, o.fp, o.fn_), (5, 3, 2));
    assert_eq!((o.n_docs, o.n_docs_with_labels), (4, 4));
    // Gold codes A,B,C,D; predicted codes A,B,C,D,E; 7 gold and 8 predicted labels.
    assert_eq!(
        (
            o.n_gold_codes,
            o.n_pred_codes,
            o.n_gold_labels,
            o.n_pred_labels
        ),
        (4, 5, 7, 8)
    );

    // Micro: P = 5/8, R = 5/7, F1 = 5 / (5 + (3+2)/2) = 2/3.
    close(o.micro.precision, 5.0 / 8.0, "micro P");
    close(o.micro.recall, 5.0 / 7.0, "micro R");
    close(o.micro.f1, 2.0 / 3.0, "micro F1");

    // Gold convention: A,B,C,D (E has no gold and is left out).
    //   P = (1+1+0+1)/4 = 3/4, R = (2/3+1+0+1)/4 = 2/3, F1 = (4/5+1+0+1)/4 = 0.7.
    macro_is(&o.macro_gold, 4, 1, 0.75, 2.0 / 3.0, 0.7, "macro gold");
    // Nonzero convention: A..E. P = 3/5, R = (8/3)/5 = 8/15, F1 = 2.8/5 = 0.56.
    macro_is(
        &o.macro_nonzero,
        5,
        0,
        0.6,
        8.0 / 15.0,
        0.56,
        "macro nonzero",
    );
    // Label space: 8 codes; F,G,H,I score 0; E is outside it.
    //   P = 3/8, R = (8/3)/8 = 1/3, F1 = 2.8/8 = 0.35.
    let ls = o.macro_label_space.as_ref().unwrap();
    macro_is(ls, 8, 1, 0.375, 1.0 / 3.0, 0.35, "macro label space");

    // Only d0 is an exact match.
    assert_eq!(o.exact_match.n_exact, 1);
    close(o.exact_match.ratio, 0.25, "exact match");
    assert!(o.macro_gold.convention.contains("Edin"));
    assert!(o.macro_nonzero.convention.contains("Code Like Humans"));
    assert!(ls.convention.contains("LLM4ICD"));
    assert!(r.unseen_definition.is_some());
    assert!(r.notes.is_empty());
}

#[test]
fn seen_and_unseen_partitions() {
    let r = score(&example(), &options());

    // Seen = {A, B}: A (2,0,1), B (2,0,0) -> TP 4, FP 0, FN 1.
    let s: &SetMetrics = r.seen.as_ref().unwrap();
    assert_eq!((s.tp, s.fp, s.fn_), (4, 0, 1));
    close(s.micro.precision, 1.0, "seen micro P");
    close(s.micro.recall, 0.8, "seen micro R");
    close(s.micro.f1, 8.0 / 9.0, "seen micro F1"); // 4 / (4 + 1/2)
                                                   // Macro over A, B: P 1, R (2/3+1)/2 = 5/6, F1 (4/5+1)/2 = 0.9 — all three conventions
                                                   // (label space ∩ seen = {A, B}).
    macro_is(&s.macro_gold, 2, 0, 1.0, 5.0 / 6.0, 0.9, "seen gold");
    macro_is(&s.macro_nonzero, 2, 0, 1.0, 5.0 / 6.0, 0.9, "seen nonzero");
    macro_is(
        s.macro_label_space.as_ref().unwrap(),
        2,
        0,
        1.0,
        5.0 / 6.0,
        0.9,
        "seen label space",
    );
    // Filtered to {A,B}: d0 {A,B}={A,B}, d1 {A}={A}, d2 {B}={B}, d3 {A}≠{} -> 3/4.
    close(s.exact_match.ratio, 0.75, "seen exact match");
    assert_eq!(
        (
            s.n_docs,
            s.n_docs_with_labels,
            s.n_gold_codes,
            s.n_pred_codes
        ),
        (4, 4, 2, 2)
    );

    // Unseen = {C, D, E}: C (0,1,1), D (1,0,0), E (0,2,0) -> TP 1, FP 3, FN 1.
    let u = r.unseen.as_ref().unwrap();
    assert_eq!((u.tp, u.fp, u.fn_), (1, 3, 1));
    close(u.micro.precision, 0.25, "unseen micro P");
    close(u.micro.recall, 0.5, "unseen micro R");
    close(u.micro.f1, 1.0 / 3.0, "unseen micro F1"); // 1 / (1 + 4/2)
                                                     // Gold: C, D -> (0+1)/2 for P, R and F1; E left out.
    macro_is(&u.macro_gold, 2, 1, 0.5, 0.5, 0.5, "unseen gold");
    // Nonzero: C, D, E -> 1/3 each.
    macro_is(
        &u.macro_nonzero,
        3,
        0,
        1.0 / 3.0,
        1.0 / 3.0,
        1.0 / 3.0,
        "unseen nonzero",
    );
    // Label space minus seen = {C,D,F,G,H,I}: only D scores 1 -> 1/6; E is outside.
    let uls = u.macro_label_space.as_ref().unwrap();
    macro_is(
        uls,
        6,
        1,
        1.0 / 6.0,
        1.0 / 6.0,
        1.0 / 6.0,
        "unseen label space",
    );
    // Filtered: d0 {}={}, d1 {C}≠{E}, d2 {}≠{C,E}, d3 {D}={D} -> 2/4; d0 has no unseen label.
    close(u.exact_match.ratio, 0.5, "unseen exact match");
    assert_eq!(
        (u.n_docs_with_labels, u.n_gold_codes, u.n_pred_codes),
        (3, 2, 3)
    );
}

#[test]
fn per_code_rows_are_sorted_and_hand_checked() {
    let rows = per_code(&example());
    let codes: Vec<&str> = rows.iter().map(|r| r.code.as_str()).collect();
    assert_eq!(codes, ["A", "B", "C", "D", "E"]);
    let a = &rows[0];
    assert_eq!((a.tp, a.fp, a.fn_, a.support), (2, 0, 1, 3));
    close(a.precision, 1.0, "A precision");
    close(a.recall, 2.0 / 3.0, "A recall");
    close(a.f1, 0.8, "A f1");
    // E: predicted twice, never gold.
    let e = &rows[4];
    assert_eq!((e.tp, e.fp, e.fn_, e.support), (0, 2, 0, 0));
    assert_eq!((e.precision, e.recall, e.f1), (0.0, 0.0, 0.0));
    let json = serde_json::to_string(&rows).unwrap();
    assert!(json.contains("\"fn\":1"));
}

#[test]
fn empty_predictions_and_empty_gold_never_give_nan() {
    // Nothing predicted at all: every precision is defined as 0.
    let gold = lists(&[&["A", "B"], &["C"], &[]]);
    let pred = lists(&[&[], &[], &[]]);
    let sets = LabelSets::new(&gold, &pred).unwrap();
    let mut opts = options();
    opts.bootstrap = Some(Bootstrap::new(50, 3));
    let r = score(&sets, &opts);
    let o = &r.overall;
    assert_eq!(
        (o.micro.precision, o.micro.recall, o.micro.f1),
        (0.0, 0.0, 0.0)
    );
    assert_eq!((o.macro_gold.precision, o.macro_gold.f1), (0.0, 0.0));
    // d2 has empty gold and empty prediction: it matches.
    close(
        o.exact_match.ratio,
        1.0 / 3.0,
        "exact match with an empty document",
    );
    let json = serde_json::to_string(&r).unwrap();
    assert!(!json.contains("NaN") && !json.contains("null"), "{json}");
    let back: icdbench::metrics::Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back.overall.tp, r.overall.tp);
    assert!(back.seen.unwrap().ci.is_some());

    // No gold, no predictions, no documents: still numbers, all 0.
    let empty: Vec<Vec<String>> = Vec::new();
    let r = score(&LabelSets::new(&empty, &empty).unwrap(), &opts);
    assert_eq!(r.overall.micro.f1, 0.0);
    assert_eq!(r.overall.exact_match.ratio, 0.0);
    let json = serde_json::to_string(&r).unwrap();
    assert!(!json.contains("null"), "{json}");

    // An empty gold document with predictions: all false positives.
    let sets = LabelSets::new(&lists(&[&[]]), &lists(&[&["A"]])).unwrap();
    let o = score(&sets, &ScoreOptions::default()).overall;
    assert_eq!((o.tp, o.fp, o.fn_), (0, 1, 0));
    assert_eq!((o.macro_gold.n_codes, o.macro_gold.f1), (0, 0.0));
    assert_eq!(o.exact_match.n_exact, 0);
}

#[test]
fn mismatched_lengths_are_errors() {
    let e = LabelSets::new(&lists(&[&["A"], &["B"]]), &lists(&[&["A"]])).unwrap_err();
    assert_eq!(
        e,
        MetricsError::LengthMismatch {
            what: "label sets",
            gold: 2,
            pred: 1
        }
    );
    assert!(e.to_string().contains("2 documents"));
    let e = ScoredDocs::dense(&["A"], &lists(&[&["A"]]), &[]).unwrap_err();
    assert!(matches!(
        e,
        MetricsError::LengthMismatch {
            gold: 1,
            pred: 0,
            ..
        }
    ));
    let e = ScoredDocs::dense(&["A", "B"], &lists(&[&["A"]]), &[vec![0.5]]).unwrap_err();
    assert_eq!(
        e,
        MetricsError::ScoreRowLength {
            doc: 0,
            expected: 2,
            found: 1
        }
    );
}

/// 300 documents over 40 codes with roughly 70% of gold codes recovered.
fn larger_example() -> LabelSets {
    let mut gold = Vec::new();
    let mut pred = Vec::new();
    for d in 0..300u64 {
        let g: Vec<String> = (0..4)
            .map(|j| format!("C{}", (d * 7 + j * j * 3 + d / 5) % 40))
            .collect();
        let mut p: Vec<String> = g
            .iter()
            .enumerate()
            .filter(|(j, _)| (d + *j as u64) % 3 != 0)
            .map(|(_, c)| c.clone())
            .collect();
        p.push(format!("C{}", (d * 13) % 40));
        gold.push(g);
        pred.push(p);
    }
    LabelSets::new(&gold, &pred).unwrap()
}

#[test]
fn bootstrap_is_deterministic_and_brackets_the_estimate() {
    let sets = larger_example();
    let seen: HashSet<String> = (0..25).map(|i| format!("C{i}")).collect();
    let with = |seed| ScoreOptions {
        seen_codes: Some(seen.clone()),
        label_space: None,
        bootstrap: Some(Bootstrap {
            samples: 400,
            seed,
            confidence: 0.95,
        }),
    };
    let a = score(&sets, &with(7));
    let b = score(&sets, &with(7));
    let c = score(&sets, &with(8));
    assert_eq!(a, b, "same seed, same intervals");
    let (ca, cc) = (
        a.overall.ci.as_ref().unwrap(),
        c.overall.ci.as_ref().unwrap(),
    );
    assert_ne!(ca.micro_f1, cc.micro_f1, "another seed, other intervals");
    assert_eq!((ca.samples, ca.seed, ca.confidence), (400, 7, 0.95));

    for m in [Some(&a.overall), a.seen.as_ref(), a.unseen.as_ref()] {
        let m = m.unwrap();
        let ci = m.ci.as_ref().unwrap();
        assert!(
            ci.micro_f1.lower <= m.micro.f1 && m.micro.f1 <= ci.micro_f1.upper,
            "{ci:?} vs {}",
            m.micro.f1
        );
        assert!(ci.micro_f1.lower < ci.micro_f1.upper);
        let f = m.macro_gold.f1;
        assert!(
            ci.macro_f1_gold.lower <= f && f <= ci.macro_f1_gold.upper,
            "{ci:?} vs {f}"
        );
    }
}

// Scored example: code list A..E, three documents.
//
//          A     B     C     D     E     gold
//   d0    0.9   0.4   0.4   0.1   0.0    {A, B}
//   d1    0.3   0.5   0.6   0.3   0.0    {C}
//   d2    0.5   0.5   0.05  0.7   0.0    {B, D}
//
// Rankings (equal scores in code order), * = gold:
//   d0: A* B* C  D  E
//   d1: C* B  A  D  E
//   d2: D* A  B* C  E
fn scored_codes() -> Vec<&'static str> {
    vec!["A", "B", "C", "D", "E"]
}

fn scored_gold() -> Vec<Vec<String>> {
    lists(&[&["A", "B"], &["C"], &["B", "D"]])
}

fn scored() -> ScoredDocs {
    let scores = vec![
        vec![0.9, 0.4, 0.4, 0.1, 0.0],
        vec![0.3, 0.5, 0.6, 0.3, 0.0],
        vec![0.5, 0.5, 0.05, 0.7, -0.0],
    ];
    ScoredDocs::dense(&scored_codes(), &scored_gold(), &scores).unwrap()
}

#[test]
fn ranking_metrics() {
    let docs = scored();
    // P@1: 1, 1, 1.  P@2: 2/2, 1/2, 1/2 -> 2/3.  P@3: 2/3, 1/3, 2/3 -> 5/9.
    close(precision_at_k(&docs, 1).unwrap(), 1.0, "P@1");
    close(precision_at_k(&docs, 2).unwrap(), 2.0 / 3.0, "P@2");
    close(precision_at_k(&docs, 3).unwrap(), 5.0 / 9.0, "P@3");
    // P@8 with 5 codes: 2/8, 1/8, 2/8 -> 5/24 (still divides by k).
    close(precision_at_k(&docs, 8).unwrap(), 5.0 / 24.0, "P@8");
    // R@1: 1/2, 1/1, 1/2 -> 2/3.  R@2: 1, 1, 1/2 -> 5/6.
    close(recall_at_k(&docs, 1).unwrap(), 2.0 / 3.0, "R@1");
    close(recall_at_k(&docs, 2).unwrap(), 5.0 / 6.0, "R@2");
    // R-precision: d0 P@2 = 1, d1 P@1 = 1, d2 P@2 = 1/2 -> 5/6.
    close(r_precision(&docs), 5.0 / 6.0, "R-precision");
    // AP: d0 (1/1 + 2/2)/2 = 1; d1 1/1 = 1; d2 (1/1 + 2/3)/2 = 5/6 -> mAP 17/18.
    close(mean_average_precision(&docs), 17.0 / 18.0, "mAP");

    // Micro AUC over 15 pairs: 5 positives (.9 .4 .6 .5 .7), 10 negatives
    // (.4 .1 .3 .5 .3 .5 .05 and three 0.0).
    //   .9, .7, .6 beat all 10                         -> 30
    //   .5 (d2 B) beats 8, ties two .5 (d1 B, d2 A)    -> 8 + 1 = 9
    //   .4 (d0 B) beats 7, ties one .4 (d0 C)          -> 7 + 0.5 = 7.5
    //   U = 46.5 of 5 * 10 = 50 -> 0.93.
    close(micro_auc(&docs).unwrap(), 0.93, "micro AUC");
    // Macro AUC over codes with positives and negatives (E has no positive):
    //   A: .9 vs {.3, .5} -> 1.  B: {.4, .5} vs {.5} -> (0 + 0.5)/2 = 0.25.
    //   C: .6 vs {.4, .05} -> 1.  D: .7 vs {.1, .3} -> 1.  Mean = 3.25/4 = 0.8125.
    close(macro_auc(&docs).unwrap(), 0.8125, "macro AUC");

    let report = score_ranking(&docs, &[1, 2]).unwrap();
    assert_eq!(
        report
            .precision_at_k
            .iter()
            .map(|a| a.k)
            .collect::<Vec<_>>(),
        [1, 2]
    );
    close(report.precision_at_k[1].value, 2.0 / 3.0, "report P@2");
    close(report.recall_at_k[1].value, 5.0 / 6.0, "report R@2");
    assert_eq!(report.auc_macro.n, 4);
    assert_eq!(report.auc_micro.n, 15);
    close(
        report.mean_average_precision.value,
        17.0 / 18.0,
        "report mAP",
    );
    assert!(score_ranking(&docs, &[8, 0]).is_err());
}

#[test]
fn sparse_scores_tie_unscored_codes_at_the_bottom() {
    // Same as the dense example but E is never scored: absent pairs tie below
    // every score, exactly as the three 0.0 scores did, so every figure agrees.
    let sparse: Vec<Vec<(&str, f64)>> = vec![
        vec![("A", 0.9), ("B", 0.4), ("C", 0.4), ("D", 0.1)],
        vec![("C", 0.6), ("A", 0.3), ("B", 0.5), ("D", 0.3)],
        vec![("A", 0.5), ("B", 0.5), ("C", 0.05), ("D", 0.7)],
    ];
    let docs = ScoredDocs::sparse(&scored_codes(), &scored_gold(), &sparse).unwrap();
    let dense = scored();
    close(micro_auc(&docs).unwrap(), 0.93, "sparse micro AUC");
    close(macro_auc(&docs).unwrap(), 0.8125, "sparse macro AUC");
    assert_eq!(
        score_ranking(&docs, &[1, 2, 3]).unwrap(),
        score_ranking(&dense, &[1, 2, 3]).unwrap()
    );
}

#[test]
fn threshold_tuning_picks_the_lowest_best_value() {
    let docs = scored();
    // Predict when score > t. Gold labels G = 5.
    //   t in [0.00, 0.05): 12 predicted, TP 5 -> F1 = 10/17
    //   t in [0.05, 0.10): 11 -> 10/16
    //   t in [0.10, 0.30): 10 -> 10/15
    //   t in [0.30, 0.40):  8 -> 10/13   <- best; 0.30 is the lowest such grid value
    //   t in [0.40, 0.50):  6, TP 4 -> 8/11
    //   t in [0.50, 0.60):  3, TP 3 -> 6/8
    let c = tune_threshold(&docs);
    close(c.threshold, 0.30, "tuned threshold");
    close(c.micro_f1, 10.0 / 13.0, "tuned micro F1");
    close(c.micro_precision, 5.0 / 8.0, "tuned micro P");
    close(c.micro_recall, 1.0, "tuned micro R");
    assert_eq!(c.curve.len(), 100);
    close(c.curve[0].micro_f1, 10.0 / 17.0, "F1 at 0.00");
    close(c.curve[45].micro_f1, 8.0 / 11.0, "F1 at 0.45");
    // Edin's grid i/99: 30/99 is the lowest grid value in (0.3, 0.4].
    let e = tune_threshold_on(&docs, ThresholdGrid::Linspace100);
    close(e.threshold, 30.0 / 99.0, "linspace threshold");

    let predicted = apply_threshold(&docs, c.threshold);
    assert_eq!(
        predicted,
        lists(&[&["A", "B", "C"], &["B", "C"], &["A", "B", "D"]])
    );
    // And back through the set metrics: TP 5, FP 3, FN 0 -> micro F1 10/13 as tuned.
    let sets = LabelSets::new(&docs.gold_sets(), &predicted).unwrap();
    close(
        score(&sets, &ScoreOptions::default()).overall.micro.f1,
        10.0 / 13.0,
        "applied micro F1",
    );
}

#[test]
fn evidence_exact_and_overlap() {
    // d0 gold: (A,0,10) (A,5,15) (B,20,30);  pred: (A,0,10) (B,25,35) (C,0,10)
    // d1 gold: (C,0,4);                      pred: (C,0,4) twice, (C,10,12)
    let gold = vec![
        vec![("A", 0, 10), ("A", 5, 15), ("B", 20, 30)],
        vec![("C", 0, 4)],
    ];
    let pred = vec![
        vec![("A", 0, 10), ("B", 25, 35), ("C", 0, 10)],
        vec![("C", 0, 4), ("C", 0, 4), ("C", 10, 12)],
    ];
    let r = evidence_scores(&gold, &pred).unwrap();
    // Exact: 4 gold, 5 distinct predicted, 2 equal ((A,0,10), (C,0,4)).
    //   P = 2/5, R = 2/4, F1 = 2*2/(5+4) = 4/9.
    assert_eq!(
        (
            r.exact.n_gold_spans,
            r.exact.n_pred_spans,
            r.exact.n_matched
        ),
        (4, 5, 2)
    );
    close(r.exact.precision, 0.4, "exact P");
    close(r.exact.recall, 0.5, "exact R");
    close(r.exact.f1, 4.0 / 9.0, "exact F1");
    // Overlap, per document and code after merging:
    //   d0 A: gold [0,15) 15, pred [0,10) 10, overlap 10
    //   d0 B: gold [20,30) 10, pred [25,35) 10, overlap 5
    //   d0 C: gold 0, pred [0,10) 10, overlap 0
    //   d1 C: gold [0,4) 4, pred [0,4)+[10,12) 6, overlap 4
    //   gold 29, pred 36, overlap 19 -> P 19/36, R 19/29, F1 38/65.
    assert_eq!(
        (
            r.overlap.gold_chars,
            r.overlap.pred_chars,
            r.overlap.overlap_chars
        ),
        (29, 36, 19)
    );
    close(r.overlap.precision, 19.0 / 36.0, "overlap P");
    close(r.overlap.recall, 19.0 / 29.0, "overlap R");
    close(r.overlap.f1, 38.0 / 65.0, "overlap F1");
}
