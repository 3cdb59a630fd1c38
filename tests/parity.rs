//! Parity with Hugging Face transformers: for tiny random checkpoints of each model
//! family, the Rust model must reproduce the logits transformers computed (CPU, f32)
//! for a full forward, a prefill plus three cached decoding steps, and a left-padded
//! batch. The fixtures are written by scripts/parity/make_fixtures.py; MANIFEST.json
//! pins them to that script, so a changed script or a hand-edited fixture fails CI.

use icdbench::model::llama::{CausalLM, KvCache};
use icdbench::model::weights::{load_safetensors, read_config};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Largest absolute logit difference accepted (logits are O(1); f32 noise is ~1e-6).
const TOLERANCE: f64 = 1e-4;
/// Tokens in the prefill before decoding one token at a time (as in make_fixtures.py).
const PREFILL: i64 = 4;
/// The fixture folders, one per model family variant the parity tests cover.
const FIXTURES: [&str; 5] = ["llama", "llama31", "qwen2", "qwen3", "gemma3"];
const REGENERATE: &str =
    "regenerate them with `make parity-fixtures` (runs bash scripts/parity/regenerate.sh) and commit tests/fixtures/parity";

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity")
}

/// The reference tensors of one fixture, by name.
struct Expected {
    dir: PathBuf,
    tensors: BTreeMap<String, Tensor>,
}

impl Expected {
    fn load(dir: &Path) -> Expected {
        let path = dir.join("expected.safetensors");
        let tensors = Tensor::read_safetensors(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; {REGENERATE}", path.display()))
            .into_iter()
            .collect();
        Expected { dir: dir.to_path_buf(), tensors }
    }

    fn get(&self, name: &str) -> &Tensor {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("{}/expected.safetensors has no `{name}`; {REGENERATE}", self.dir.display()))
    }
}

/// Max |a - b|; NaN when either side has one, which then fails `<= TOLERANCE`.
fn max_abs_diff(what: &str, got: &Tensor, want: &Tensor) -> f64 {
    assert_eq!(got.size(), want.size(), "{what}: shape");
    assert_eq!(got.kind(), Kind::Float, "{what}: logits must be f32");
    (got - want).abs().max().double_value(&[])
}

/// Loads one fixture's checkpoint through the public API and compares every case.
fn check(name: &str) {
    let _no_grad = tch::no_grad_guard();
    let dir = fixtures_dir().join(name);
    let want = Expected::load(&dir);

    let config = read_config(&dir).unwrap_or_else(|e| panic!("{name}: read_config: {e}"));
    let mut weights = load_safetensors(&dir.join("model.safetensors"), Kind::Float, Device::Cpu)
        .unwrap_or_else(|e| panic!("{name}: load_safetensors: {e}"));
    let mut vs = tch::nn::VarStore::new(Device::Cpu);
    let model = CausalLM::load(&mut vs, &config, &mut weights).unwrap_or_else(|e| panic!("{name}: CausalLM::load: {e}"));
    assert!(weights.remaining().is_empty(), "{name}: weights left unused by the model: {:?}", weights.remaining());

    let ids = want.get("input_ids");
    let (batch, seq) = (ids.size()[0], ids.size()[1]);
    let positions = Tensor::arange(seq, (Kind::Int64, Device::Cpu)).unsqueeze(0).repeat([batch, 1]);
    let mut diffs = Vec::new();

    let full = model.forward(ids, &positions, None, None, false);
    diffs.push(("full", max_abs_diff("full", &full, want.get("full_logits"))));

    let mut cache = KvCache::new(config.num_hidden_layers);
    let prefill = model.forward(&ids.narrow(1, 0, PREFILL), &positions.narrow(1, 0, PREFILL), None, Some(&mut cache), false);
    diffs.push(("prefill", max_abs_diff("prefill", &prefill, want.get("prefill_logits"))));
    let mut steps: f64 = 0.0;
    for (i, t) in (PREFILL..seq).enumerate() {
        let step = model.forward(&ids.narrow(1, t, 1), &positions.narrow(1, t, 1), None, Some(&mut cache), false);
        let what = format!("step_logits_{i}");
        let d = max_abs_diff(&what, &step, want.get(&what));
        steps = if d.is_nan() { d } else { steps.max(d) };
    }
    diffs.push(("cached steps", steps));

    // Padding rows' logits are meaningless (they attend to nothing real): compare tokens only.
    let mask = want.get("padded_attention_mask");
    let padded = model.forward(
        want.get("padded_input_ids"),
        want.get("padded_position_ids"),
        Some(mask),
        None,
        false,
    );
    let keep = mask.to_kind(Kind::Bool).unsqueeze(-1).expand_as(&padded);
    let d = max_abs_diff("padded", &padded.masked_select(&keep), &want.get("padded_logits").masked_select(&keep));
    diffs.push(("left-padded", d));

    let report: Vec<String> = diffs.iter().map(|(case, d)| format!("{case} {d:.2e}")).collect();
    println!("parity {name}: max |logit diff| {}", report.join(", "));
    for (case, d) in &diffs {
        assert!(*d <= TOLERANCE, "{name}: {case} logits differ from transformers by {d:e} (> {TOLERANCE:e})");
    }
}

#[test]
fn llama_matches_transformers() {
    check("llama");
}

/// Llama 3.1 rope scaling (all three frequency bands) and tied embeddings.
#[test]
fn llama31_matches_transformers() {
    check("llama31");
}

/// q/k/v biases.
#[test]
fn qwen2_matches_transformers() {
    check("qwen2");
}

/// head_dim != hidden / heads, and RMSNorm on each head's queries and keys.
#[test]
fn qwen3_matches_transformers() {
    check("qwen3");
}

/// Gemma 3: sliding-window and global layers with their own RoPE, four norms with (1 + w),
/// q/k norms, GeGLU, the √hidden embedding factor and query_pre_attn_scalar, all crossed by
/// the window in the full forward, the cached steps and the padded batch.
#[test]
fn gemma3_matches_transformers() {
    check("gemma3");
}

fn sha256_file(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    hex::encode(Sha256::digest(&bytes))
}

/// Every file under `dir`, by path relative to `root` with `/` separators.
fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if path.is_dir() {
            walk(root, &path, out);
        } else if file_name != "MANIFEST.json" && !file_name.starts_with('.') {
            let rel: Vec<String> =
                path.strip_prefix(root).unwrap().components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            out.insert(rel.join("/"), sha256_file(&path));
        }
    }
}

#[test]
fn fixtures_are_current() {
    let root = fixtures_dir();
    let manifest_path = root.join("MANIFEST.json");
    let text = std::fs::read_to_string(&manifest_path)
        .unwrap_or_else(|e| panic!("{}: {e}; {REGENERATE}", manifest_path.display()));
    let manifest: serde_json::Value = serde_json::from_str(&text).expect("MANIFEST.json is JSON");

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/parity/make_fixtures.py");
    assert_eq!(
        manifest["generator_sha256"].as_str(),
        Some(sha256_file(&script).as_str()),
        "scripts/parity/make_fixtures.py changed since the parity fixtures were generated; {REGENERATE}"
    );

    let recorded: BTreeMap<String, String> = manifest["files"]
        .as_object()
        .expect("MANIFEST.json has a `files` object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    let mut found = BTreeMap::new();
    walk(&root, &root, &mut found);

    let mut problems = Vec::new();
    for (file, sha) in &recorded {
        match found.get(file) {
            None => problems.push(format!("{file}: missing")),
            Some(s) if s != sha => problems.push(format!("{file}: sha256 {s}, MANIFEST.json says {sha}")),
            Some(_) => {}
        }
    }
    problems.extend(found.keys().filter(|f| !recorded.contains_key(*f)).map(|f| format!("{f}: not in MANIFEST.json")));
    assert!(
        problems.is_empty(),
        "tests/fixtures/parity does not match MANIFEST.json (edited by hand?):\n  {}\n{REGENERATE}",
        problems.join("\n  ")
    );
    for name in FIXTURES {
        for file in ["config.json", "model.safetensors", "expected.safetensors"] {
            assert!(recorded.contains_key(&format!("{name}/{file}")), "MANIFEST.json lacks {name}/{file}; {REGENERATE}");
        }
    }
}
