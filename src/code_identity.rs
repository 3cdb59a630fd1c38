//! The code identity: a sha256 over the content of every source that can
//! change a result (`src/`, `build.rs`, `Cargo.lock`) and nothing else
//! (README, tests, experiments and docs are left out). `build.rs` includes
//! this file to bake the identity of the tree being built into the binary;
//! the library exposes the same function so a test can check what it covers.

use sha2::{Digest, Sha256};
use std::path::Path;

/// Relative paths (with `/`) of the files that make up the identity of the tree at `root`, sorted.
pub fn identity_files(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/"));
            }
        }
    }
    let mut files = Vec::new();
    walk(&root.join("src"), root, &mut files);
    for f in ["build.rs", "Cargo.lock"] {
        if root.join(f).is_file() {
            files.push(f.to_string());
        }
    }
    files.sort();
    files
}

/// Hex sha256 over each file's relative path, length and content, in path order.
pub fn code_identity_of(root: &Path) -> String {
    let mut hasher = Sha256::new();
    for rel in identity_files(root) {
        let bytes = std::fs::read(root.join(&rel)).unwrap_or_default();
        hasher.update(rel.as_bytes());
        hasher.update([0]);
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    hex::encode(hasher.finalize())
}
