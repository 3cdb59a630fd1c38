//! Fingerprints: sha256 over the canonical resolved run spec, the sha256 of
//! every input it reads, and the versions that can change its numbers.
//! Same fingerprint → same numbers (on CPU); any changed byte → a new one.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::Read;
use std::path::Path;

/// Hex sha256 of a run's manifest.
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
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One input a run reads, by content.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InputHash {
    /// What the input is for (`code_table`, `data.train`, ...).
    pub role: String,
    /// Where it came from (a path, or `builtin:...`).
    pub origin: String,
    pub sha256: String,
    pub bytes: u64,
}

/// The versions of everything that computes a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions {
    pub icdbench: String,
    pub git_revision: String,
    pub libtorch: String,
    /// Where the run computes: `cpu`, `cuda:0`, ...
    pub device: String,
}

impl Versions {
    pub fn current(device: &str) -> Versions {
        Versions {
            icdbench: env!("CARGO_PKG_VERSION").to_string(),
            git_revision: env!("ICDBENCH_GIT_REVISION").to_string(),
            libtorch: env!("ICDBENCH_LIBTORCH_VERSION").to_string(),
            device: device.to_string(),
        }
    }
}

/// Everything a fingerprint covers; written beside the results as `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub spec: serde_json::Value,
    pub inputs: Vec<InputHash>,
    pub versions: Versions,
}

impl Manifest {
    pub fn new(spec: &impl Serialize, mut inputs: Vec<InputHash>, versions: Versions) -> Result<Manifest, serde_json::Error> {
        inputs.sort();
        Ok(Manifest { spec: serde_json::to_value(spec)?, inputs, versions })
    }

    pub fn fingerprint(&self) -> Fingerprint {
        let value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        Fingerprint(sha256_hex(canonical_json(&value).as_bytes()))
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
    Ok(InputHash { role: role.into(), origin: path.display().to_string(), sha256: hex::encode(hasher.finalize()), bytes })
}

pub fn hash_bytes(role: &str, origin: &str, data: &[u8]) -> InputHash {
    InputHash { role: role.into(), origin: origin.into(), sha256: sha256_hex(data), bytes: data.len() as u64 }
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
        let v = Versions::current("cpu");
        let a = Manifest::new(&serde_json::json!({"lr": 0.001}), vec![hash_bytes("data", "x", b"one")], v.clone()).unwrap();
        let b = Manifest::new(&serde_json::json!({"lr": 0.001}), vec![hash_bytes("data", "x", b"onE")], v.clone()).unwrap();
        let c = Manifest::new(&serde_json::json!({"lr": 0.0011}), vec![hash_bytes("data", "x", b"one")], v.clone()).unwrap();
        let mut w = v.clone();
        w.device = "cuda:0".into();
        let d = Manifest::new(&serde_json::json!({"lr": 0.001}), vec![hash_bytes("data", "x", b"one")], w).unwrap();
        let fa = a.fingerprint();
        assert_eq!(fa, a.clone().fingerprint());
        assert_ne!(fa, b.fingerprint());
        assert_ne!(fa, c.fingerprint());
        assert_ne!(fa, d.fingerprint());
        assert_eq!(fa.as_str().len(), 64);
    }
}
