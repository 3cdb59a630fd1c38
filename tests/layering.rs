//! The tree's architecture, checked on every test run: no import loops between modules, and
//! no room importing a room above it in the flow (`experiment -> plan -> data -> expand ->
//! mix -> train -> predict -> score -> record -> report`, with the shared rooms below).
//! A room that owns a section of the experiment file (each data source its
//! `[data.source]`, the model its weight formats and precisions) sits below `config`, which
//! assembles the experiment from those sections; the computation never reads the schema's
//! assembly back into them.

use icdbench::code_identity::{ModuleGraph, STAGES};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Floors from the bottom: a room may import rooms on its own floor or below, never above.
/// A new room goes on a floor here (the test names any room it does not place).
const FLOORS: &[&[&str]] = &[
    &["icd", "text", "device", "progress", "code_identity", "schema"],
    &["data", "model", "fingerprint", "store"],
    &["config", "metrics"],
    &["mix", "prompt", "plan", "baselines"],
    &["expand", "predict", "train", "results"],
    &["runner"],
    &["report"],
    &["check"],
    &["cluster"],
    &["cli"],
    &["app"],
    &["lib", "main"],
];

fn graph() -> ModuleGraph {
    ModuleGraph::read(Path::new(env!("CARGO_MANIFEST_DIR")))
}

fn room(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

fn floor(room: &str) -> Option<usize> {
    FLOORS.iter().position(|f| f.contains(&room))
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let g = graph();
    assert!(g.files.len() > 100, "read {} modules", g.files.len());
    assert_eq!(g.cycles(), Vec::<Vec<String>>::new());
}

#[test]
fn no_room_imports_a_room_above_it_and_rooms_form_no_loop() {
    let g = graph();
    let mut upward = Vec::new();
    let mut rooms: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (from, to) in g.edges.iter().flat_map(|(a, bs)| bs.iter().map(move |b| (a.as_str(), b.as_str()))) {
        let (ra, rb) = (room(from), room(to));
        let (Some(fa), Some(fb)) = (floor(ra), floor(rb)) else {
            panic!("{from} -> {to}: put the room `{}` on a floor of FLOORS", if floor(ra).is_none() { ra } else { rb });
        };
        if fb > fa {
            upward.push(format!("{from} -> {to}"));
        }
        if ra != rb {
            rooms.entry(ra).or_default().insert(rb);
        }
    }
    assert_eq!(upward, Vec::<String>::new(), "imports against the flow");
    // Rooms on one floor may use each other one way only.
    for (a, bs) in &rooms {
        for b in bs {
            assert!(!rooms.get(b).is_some_and(|back| back.contains(a)), "rooms {a} and {b} import each other");
        }
    }
}

#[test]
fn every_stage_enters_through_modules_that_exist_and_leaves_the_report_out() {
    let g = graph();
    for (stage, entries) in STAGES {
        for e in *entries {
            assert!(g.files.contains_key(*e), "stage {stage} enters through {e}, which is not a module");
        }
        let reach = g.closure(entries);
        for outside in ["report", "cli", "app", "check", "cluster"] {
            assert!(!reach.iter().any(|m| room(m) == outside), "stage {stage} reaches {outside}: {reach:?}");
        }
    }
    // Training and prediction do not reach the scores (only the span probe's, which the
    // predict stage records beside the predictions).
    for stage in ["data", "train", "predict"] {
        let (_, entries) = STAGES.iter().find(|(s, _)| *s == stage).unwrap();
        let reach = g.closure(entries);
        let scores: Vec<&String> = reach.iter().filter(|m| room(m) == "metrics" && *m != "metrics::probe").collect();
        assert!(scores.is_empty(), "stage {stage} reaches {scores:?}");
        assert!(!reach.contains("runner"), "stage {stage} reaches the runner's sequencing");
    }
}
