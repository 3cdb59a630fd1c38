//! Fingerprints: sha256 over what a run's numbers depend on, and nothing else.
//!
//! The key covers the canonical resolved spec, every input by role, sha256 and
//! size (never its path), the code identity (a hash of the sources that can
//! change a result, computed at build time), the libtorch this process loaded
//! and the device the run computes on (for CPU: kernel ISA and thread count).
//! The git revision, input paths and the machine are provenance: written to
//! the manifest, never hashed. Same fingerprint → same numbers (on CPU).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::Read;
use std::path::Path;

/// Hex sha256 of a run's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex digits: names the results folder.
    pub fn short(&self) -> &str {
        &self.0[..12.min(self.0.len())]
    }

    /// A fingerprint as recorded in a file (not checked: a key that names nothing finds nothing).
    pub fn from_hex(hex: &str) -> Fingerprint {
        Fingerprint(hex.to_string())
    }

    /// The fingerprint of any serialisable key: sha256 of its canonical JSON. A key that
    /// does not serialise is an error, never hashed as something else.
    pub fn of(key: &impl Serialize) -> Result<Fingerprint, serde_json::Error> {
        Ok(Fingerprint::of_value(&serde_json::to_value(key)?))
    }

    /// The fingerprint of a JSON value: sha256 of its canonical form.
    pub fn of_value(value: &serde_json::Value) -> Fingerprint {
        Fingerprint(sha256_hex(canonical_json(value).as_bytes()))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One input a run reads, by content; `origin` (where it was read from) is provenance only.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InputHash {
    /// What the input is for (`code_table`, `data.train`, ...).
    pub role: String,
    pub sha256: String,
    pub bytes: u64,
    /// A path, or `builtin:...`.
    #[serde(skip)]
    pub origin: String,
}

/// Where each input came from, for the manifest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InputOrigin {
    pub role: String,
    pub origin: String,
}

/// The versions of everything that computes a result (all part of the key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions {
    pub icdbench: String,
    /// The code a run's record depends on: the `run` stage's identity (every source the
    /// runner reaches, with `build.rs` and `Cargo.lock`; not the report, the CLI or the gate).
    pub code: String,
    /// The libtorch loaded at run time.
    pub libtorch: String,
    /// The device as [`crate::device::fingerprint_name`] names it.
    pub device: String,
}

impl Versions {
    /// The versions of this process computing on `device`.
    pub fn current(device: tch::Device) -> Versions {
        Versions::with_device(crate::device::fingerprint_name(device))
    }

    pub fn with_device(device: String) -> Versions {
        Versions { icdbench: env!("CARGO_PKG_VERSION").to_string(), code: stage_identity(Stage::Run).to_string(), libtorch: crate::device::libtorch_version(), device }
    }
}

/// The identity of the whole source tree this binary was built with (`icdbench info`).
pub fn code_identity() -> &'static str {
    env!("ICDBENCH_CODE_IDENTITY")
}

/// The cached stages whose keys cover their own code (see [`crate::code_identity::STAGES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Data,
    Train,
    Fit,
    Predict,
    Run,
}

impl Stage {
    pub const ALL: [Stage; 5] = [Stage::Data, Stage::Train, Stage::Fit, Stage::Predict, Stage::Run];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Data => "data",
            Stage::Train => "train",
            Stage::Fit => "fit",
            Stage::Predict => "predict",
            Stage::Run => "run",
        }
    }
}

/// The identity of the code `stage` runs, as this binary was built
/// (empty if the build recorded none, which a test rules out).
pub fn stage_identity(stage: Stage) -> &'static str {
    env!("ICDBENCH_STAGE_IDENTITIES")
        .split(',')
        .find_map(|pair| pair.strip_prefix(stage.name()).and_then(|rest| rest.strip_prefix('=')))
        .unwrap_or("")
}

/// What a fingerprint hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Key {
    pub spec: serde_json::Value,
    pub inputs: Vec<InputHash>,
    pub versions: Versions,
}

/// Recorded beside the key, never hashed: where things came from and on what machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub git_revision: String,
    /// Uncommitted changes to tracked files when the binary was built.
    pub git_dirty: bool,
    pub inputs: Vec<InputOrigin>,
    pub host: String,
    pub numerics: crate::device::Numerics,
}

impl Provenance {
    pub fn current(inputs: &[InputHash]) -> Provenance {
        let mut origins: Vec<InputOrigin> = inputs.iter().map(|i| InputOrigin { role: i.role.clone(), origin: i.origin.clone() }).collect();
        origins.sort();
        Provenance {
            git_revision: env!("ICDBENCH_GIT_REVISION").to_string(),
            git_dirty: env!("ICDBENCH_GIT_DIRTY") == "true",
            inputs: origins,
            host: host_name(),
            numerics: crate::device::numerics(),
        }
    }
}

/// This machine's host name (empty when it cannot be read).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").or_else(|_| std::fs::read_to_string("/etc/hostname")).map(|s| s.trim().to_string()).unwrap_or_default()
}

/// The code identity of runs recorded before manifests carried one.
pub const LEGACY_CODE: &str = "legacy";

/// The manifest format written by this version.
pub const MANIFEST_FORMAT: u32 = 2;

/// Everything a fingerprint covers, plus provenance; written beside the results as `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub key: Key,
    /// The keys of the cached stages the run is assembled from.
    #[serde(default)]
    pub stages: std::collections::BTreeMap<String, String>,
    pub provenance: Provenance,
}

impl Manifest {
    pub fn new(spec: &impl Serialize, mut inputs: Vec<InputHash>, versions: Versions) -> Result<Manifest, serde_json::Error> {
        inputs.sort();
        let provenance = Provenance::current(&inputs);
        Ok(Manifest { format: MANIFEST_FORMAT, key: Key { spec: serde_json::to_value(spec)?, inputs, versions }, stages: Default::default(), provenance })
    }

    pub fn fingerprint(&self) -> Fingerprint {
        let k = &self.key;
        // The same object `Key` serialises to, built from parts that cannot fail to serialise.
        let inputs: Vec<serde_json::Value> = k.inputs.iter().map(|i| serde_json::json!({"role": i.role, "sha256": i.sha256, "bytes": i.bytes})).collect();
        let v = &k.versions;
        let versions = serde_json::json!({"icdbench": v.icdbench, "code": v.code, "libtorch": v.libtorch, "device": v.device});
        Fingerprint::of_value(&serde_json::json!({"spec": k.spec, "inputs": inputs, "versions": versions}))
    }

    /// Reads a manifest of this or an older format. An older one (spec, inputs and versions
    /// at the top, the git revision as its only code identity) gets the code identity
    /// `legacy`, so reports can tell its runs from this code's.
    pub fn from_value(value: serde_json::Value) -> Result<Manifest, serde_json::Error> {
        if value.get("format").and_then(|f| f.as_u64()).is_some() {
            return serde_json::from_value(value);
        }
        #[derive(Deserialize)]
        struct Old {
            spec: serde_json::Value,
            inputs: Vec<InputHash>,
            versions: OldVersions,
        }
        #[derive(Deserialize)]
        struct OldVersions {
            icdbench: String,
            git_revision: String,
            libtorch: String,
            device: String,
        }
        let old: Old = serde_json::from_value(value)?;
        let v = old.versions;
        Ok(Manifest {
            format: 1,
            key: Key { spec: old.spec, inputs: old.inputs, versions: Versions { icdbench: v.icdbench, code: LEGACY_CODE.into(), libtorch: v.libtorch, device: v.device } },
            stages: Default::default(),
            provenance: Provenance {
                git_revision: v.git_revision.trim_end_matches("-dirty").to_string(),
                git_dirty: v.git_revision.ends_with("-dirty"),
                inputs: Vec::new(),
                host: String::new(),
                numerics: crate::device::Numerics::unknown(),
            },
        })
    }

    /// Which parts of the key differ between two manifests, one line each (empty when they are the same run).
    pub fn explain(&self, other: &Manifest) -> Vec<String> {
        let mut out = Vec::new();
        let (a, b) = (&self.key.versions, &other.key.versions);
        for (name, x, y) in [("icdbench version", &a.icdbench, &b.icdbench), ("code identity", &a.code, &b.code), ("libtorch", &a.libtorch, &b.libtorch), ("device", &a.device, &b.device)] {
            if x != y {
                out.push(format!("{name}: {x} -> {y}"));
            }
        }
        let roles: std::collections::BTreeSet<&str> = self.key.inputs.iter().chain(&other.key.inputs).map(|i| i.role.as_str()).collect();
        for role in roles {
            let pick = |m: &Manifest| m.key.inputs.iter().filter(|i| i.role == role).map(|i| format!("{} ({} bytes)", &i.sha256[..12.min(i.sha256.len())], i.bytes)).collect::<Vec<_>>().join(", ");
            let (x, y) = (pick(self), pick(other));
            if x != y {
                let show = |s: String| if s.is_empty() { "absent".to_string() } else { s };
                out.push(format!("input {role}: {} -> {}", show(x), show(y)));
            }
        }
        diff_json("spec", &self.key.spec, &other.key.spec, &mut out);
        out
    }
}

/// Lines `path: a -> b` for every leaf where two JSON values differ.
fn diff_json(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let (va, vb) = (x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null));
                diff_json(&format!("{path}.{k}"), va, vb, out);
            }
        }
        _ if a != b => out.push(format!("{path}: {} -> {}", canonical_json(a), canonical_json(b))),
        _ => {}
    }
}

/// JSON with object keys sorted at every level and no whitespace; floats in
/// serde_json's shortest round-trip form. Independent of map insertion order.
pub fn canonical_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Streams a file through sha256.
pub fn hash_file(role: &str, path: &Path) -> std::io::Result<InputHash> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok(InputHash { role: role.into(), sha256: hex::encode(hasher.finalize()), bytes, origin: path.display().to_string() })
}

pub fn hash_bytes(role: &str, origin: &str, data: &[u8]) -> InputHash {
    InputHash { role: role.into(), sha256: sha256_hex(data), bytes: data.len() as u64, origin: origin.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a: serde_json::Value = serde_json::from_str(r#"{"b":1,"a":{"y":[1.5,2],"x":null}}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"a":{"x":null,"y":[1.5,2]},"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a), r#"{"a":{"x":null,"y":[1.5,2]},"b":1}"#);
        assert_eq!(canonical_json(&a), canonical_json(&b));
    }

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn any_changed_input_changes_the_fingerprint() {
        let v = Versions::with_device("cpu avx2 2 threads".into());
        let a = Manifest::new(&serde_json::json!({"lr": 0.001}), vec![hash_bytes("data", "x", b"one")], v.clone()).unwrap();
        let b = Manifest::new(&serde_json::json!({"lr": 0.001}), vec![hash_bytes("data", "x", b"onE")], v.clone()).unwrap();
        let c = Manifest::new(&serde_json::json!({"lr": 0.0011}), vec![hash_bytes("data", "x", b"one")], v.clone()).unwrap();
        let mut w = v.clone();
        w.device = "cpu avx2 1 threads".into();
        let d = Manifest::new(&serde_json::json!({"lr": 0.001}), vec![hash_bytes("data", "x", b"one")], w).unwrap();
        let mut code = v.clone();
        code.code = "0".repeat(64);
        let e = Manifest::new(&serde_json::json!({"lr": 0.001}), vec![hash_bytes("data", "x", b"one")], code).unwrap();
        let fa = a.fingerprint();
        assert_eq!(fa, a.clone().fingerprint());
        for other in [&b, &c, &d, &e] {
            assert_ne!(fa, other.fingerprint());
        }
        assert_eq!(fa.as_str().len(), 64);
        assert_eq!(a.explain(&d), vec!["device: cpu avx2 2 threads -> cpu avx2 1 threads".to_string()]);
        assert_eq!(a.explain(&c), vec!["spec.lr: 0.001 -> 0.0011".to_string()]);
        assert_eq!(a.explain(&b).len(), 1);
        assert!(a.explain(&b)[0].starts_with("input data: "), "{:?}", a.explain(&b));
        assert!(a.explain(&a).is_empty());
    }

    #[test]
    fn where_an_input_was_read_from_is_not_hashed() {
        let v = Versions::with_device("cpu".into());
        let a = Manifest::new(&serde_json::json!({}), vec![hash_bytes("data", "/home/a/x.jsonl", b"one")], v.clone()).unwrap();
        let b = Manifest::new(&serde_json::json!({}), vec![hash_bytes("data", "../x.jsonl", b"one")], v).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.provenance.inputs, b.provenance.inputs);
    }

    #[test]
    fn the_code_identity_and_every_stage_identity_are_sha256s() {
        let hex = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
        assert!(hex(code_identity()));
        for stage in Stage::ALL {
            assert!(hex(stage_identity(stage)), "{}: {:?}", stage.name(), stage_identity(stage));
        }
        // The stage list the build read is this one.
        let built: Vec<&str> = crate::code_identity::STAGES.iter().map(|(s, _)| *s).collect();
        assert_eq!(built, Stage::ALL.map(Stage::name));
        assert_eq!(Versions::with_device("cpu".into()).code, stage_identity(Stage::Run));
    }

    #[test]
    fn the_fingerprint_is_the_sha256_of_the_serialised_key() {
        let m = Manifest::new(&serde_json::json!({"lr": 0.001, "b": [1, 2]}), vec![hash_bytes("data", "x", b"one")], Versions::with_device("cpu".into())).unwrap();
        assert_eq!(m.fingerprint(), Fingerprint::of(&m.key).unwrap());
    }
}
