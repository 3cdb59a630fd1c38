//! The paper's arms end to end with the tiny model: a mixed arm on a fifth of the document
//! arm's training tokens, span sources weighed in the mix with their shares recorded, the
//! answer budget derived from the training answers, answers cut by a short limit counted,
//! and the gold labels behind the unseen columns stated beside the scores.

mod common;

use common::icdbench;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

#[test]
fn a_fifth_of_the_document_budget_weighed_sources_and_counted_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = common::tiny_model_experiment(tmp.path(), "budgets", "");
    let text = std::fs::read_to_string(&exp)
        .unwrap()
        .replace("[mix]\n", "[[expansion]]\nkind = \"gold_evidence\"\n\n[mix]\n")
        .replace("span_ratio = 0.5\n", "span_ratio = 0.5\n\n[mix.sources]\ngold_evidence = 5.0\n")
        .replace("max_new_tokens = 16\n", "")
        + "\n[arms.doc]\n\"mix.strategy\" = \"document_only\"\n\n[arms.fifth]\n\"train.match_tokens_of\" = { strategy = \"document_only\" }\n\"train.token_fraction\" = 0.2\n\n[arms.doc_short]\n\"mix.strategy\" = \"document_only\"\n\"eval.max_new_tokens\" = 1\n";
    std::fs::write(&exp, text).unwrap();

    let plan = icdbench().arg("plan").arg(&exp).arg("--results").arg(tmp.path().join("results")).output().unwrap();
    let plan_out = String::from_utf8_lossy(&plan.stdout);
    assert!(plan.status.success(), "{plan_out}{}", String::from_utf8_lossy(&plan.stderr));
    let fifth_row = plan_out.lines().find(|l| l.contains("[arm=fifth]")).unwrap_or_else(|| panic!("{plan_out}"));
    assert!(fifth_row.contains("tiny mixed 0.50 (20% of the tokens of document_only)"), "{plan_out}");

    let results = tmp.path().join("results");
    let run = icdbench().arg("run").arg(&exp).arg("--results").arg(&results).arg("--quiet").output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let mut runs: BTreeMap<String, (Value, Value, String)> = BTreeMap::new();
    for entry in std::fs::read_dir(results.join("budgets")).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("metrics.json").is_file() {
            continue;
        }
        let log = std::fs::read_to_string(dir.join("run.log")).unwrap();
        let arm = ["doc_short", "doc", "fifth"].into_iter().find(|a| log.contains(&format!("arm={a}"))).unwrap_or_else(|| panic!("{log}")).to_string();
        runs.insert(arm, (read(&dir.join("metrics.json")), read(&dir.join("training.json")), log));
    }
    assert_eq!(runs.len(), 3, "{:?}", runs.keys());

    // The fifth reads ceil(0.2 × the document arm's tokens), within one document and its spans.
    let (doc, fifth) = (&runs["doc"], &runs["fifth"]);
    let doc_tokens = doc.1["mix"]["span_tokens"].as_u64().unwrap() + doc.1["mix"]["document_tokens"].as_u64().unwrap();
    let matched = &fifth.1["mix"]["matched_to"];
    assert_eq!(matched["tokens"].as_u64().unwrap(), (doc_tokens as f64 * 0.2).ceil() as u64, "{matched}");
    assert_eq!(matched["fraction"].as_f64(), Some(0.2));
    let read_tokens = fifth.0["cost"]["input_tokens"].as_u64().unwrap();
    assert!(read_tokens >= matched["tokens"].as_u64().unwrap() && read_tokens < doc_tokens / 2, "{read_tokens} of {doc_tokens}");
    assert!(fifth.2.contains("token-matched to 20% of document_only"), "{}", fifth.2);

    // Its spans by source, each gold span weighing five table spans; the document arm has none.
    let sources = &fifth.1["mix"]["span_sources"];
    assert_eq!(sources["gold_evidence"]["weight"].as_f64(), Some(5.0), "{sources}");
    assert_eq!(sources["description"]["weight"].as_f64(), Some(1.0), "{sources}");
    let fed: u64 = ["gold_evidence", "description"].iter().map(|s| sources[s]["fed"].as_u64().unwrap()).sum();
    assert_eq!(fed, fifth.1["mix"]["spans_fed"].as_u64().unwrap());
    assert!(fifth.2.contains("spans fed by source: description "), "{}", fifth.2);
    assert!(doc.1["mix"].get("span_sources").is_none());

    // The answer budget: derived from the 40 training answers, unless set; short answers are counted.
    assert!(doc.2.contains("answers: at most ") && doc.2.contains("(the longest of 40 training answers, "), "{}", doc.2);
    let cut = |r: &(Value, Value, String)| r.0["splits"]["test"]["answers_cut"].clone();
    let derived = cut(doc)["max_new_tokens"].as_u64().unwrap();
    assert!(derived > 16, "codes and quotes take more than 16 tokens: {derived}");
    let short = cut(&runs["doc_short"]);
    assert_eq!(short["max_new_tokens"].as_u64(), Some(1));
    assert!(short["cut"].as_u64().unwrap() > 0 && short["cut"].as_u64() <= short["windows"].as_u64(), "{short}");

    // What the unseen columns rest on, in metrics.json and under the table.
    let unseen = &doc.0["splits"]["test"]["unseen_gold"];
    assert!(unseen["codes"].as_u64().unwrap() > 0 && unseen["notes"].as_u64().unwrap() >= 1, "{unseen}");
    assert!(unseen["labels"].as_u64().unwrap() >= unseen["notes"].as_u64().unwrap());
    let summary = std::fs::read_to_string(results.join("budgets/summary.md")).unwrap();
    assert!(summary.contains("| answers cut |") && summary.contains("**Unseen columns on fewer than 30 codes**"), "{summary}");
}
