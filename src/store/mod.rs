//! The results store: where runs and the stages they are assembled from live
//! on disk, and the protocol that keeps them intact when processes are killed
//! or run side by side.
//!
//! ```text
//! results/
//!   <experiment>/<fingerprint prefix>/   a finished run: spec.json, manifest.json,
//!                                        predictions-<split>.jsonl, metrics.json,
//!                                        training.json, run.log, DONE (written last)
//!   <experiment>/.<prefix>.partial/      a run being written (renamed into place when complete)
//!   <experiment>/.<prefix>.lock          held while a process computes the run
//!   .cache/data/<key>/                   the documents of every split and what loading left out
//!   .cache/train/<key>/                  trained weights (the final training checkpoint) and their record
//!   .cache/predict/<key>/                one split's predictions and decoding statistics
//!   .cache/backbones/, .cache/expansion/ reading-pretrained tiny weights, LLM-written spans
//! ```
//!
//! Every file is written under a unique temporary name and renamed into place;
//! every folder that several processes may compute is guarded by an advisory
//! lock (`flock`), which the kernel releases when its holder dies, so a killed
//! run is taken over by the next process and resumes from its checkpoint.

mod atomic;
mod lock;
pub mod record;

pub use atomic::{link_or_copy, write_atomic, write_json};
pub use lock::{unix_now, utc, Holder, Lock, TryLock};
pub use record::{read_json, stage_dir, RunPaths, Stage};

use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// The file written last into a finished run's folder; it holds the fingerprint.
pub const DONE_MARKER: &str = "DONE";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: results folder is corrupt ({reason}); rerun with --force to recompute it")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: cached file is unreadable ({reason}); delete it and run again to recompute it")]
    CorruptCache { path: PathBuf, reason: String },
}

impl StoreError {
    /// Whether the fix is the user's (a corrupt folder or cache entry to remove), not a failed write.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, StoreError::Corrupt { .. } | StoreError::CorruptCache { .. })
    }
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// `results/.cache` for a run folder `results/<experiment>/<prefix>/`.
pub fn cache_root(run_dir: &Path) -> PathBuf {
    run_dir.parent().and_then(Path::parent).map(|root| root.join(".cache")).unwrap_or_else(|| PathBuf::from(".cache"))
}

/// `x/abc` -> `x/.abc.<suffix>`: hidden siblings (partial folders, lock files).
pub fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    dir.with_file_name(format!(".{name}.{suffix}"))
}

/// The lock file that guards `dir` (a run folder or a stage entry).
pub fn lock_path(dir: &Path) -> PathBuf {
    sibling(dir, "lock")
}

/// The metrics of a finished run folder, after checking its integrity: `DONE` names
/// `fingerprint` and `metrics.json` parses. None when the folder holds no finished run;
/// an error naming the fix when it claims to be finished but is not intact.
pub fn read_finished<T: DeserializeOwned>(dir: &Path, fingerprint: &str) -> Result<Option<T>, StoreError> {
    let marker = dir.join(DONE_MARKER);
    let done = match std::fs::read_to_string(&marker) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StoreError::Io { path: marker, source }),
    };
    let corrupt = |reason: String| StoreError::Corrupt { path: dir.to_path_buf(), reason };
    if done.trim() != fingerprint {
        return Err(corrupt(format!("its DONE marker names {:?}, not this run's fingerprint", done.trim())));
    }
    let path = dir.join(record::METRICS);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(corrupt("DONE is there but metrics.json is missing".into())),
        Err(source) => return Err(StoreError::Io { path, source }),
    };
    let metrics = serde_json::from_str(&text).map_err(|e| corrupt(format!("metrics.json does not parse: {e}")))?;
    for f in [record::MANIFEST, record::SPEC] {
        if !dir.join(f).is_file() {
            return Err(corrupt(format!("{f} is missing")));
        }
    }
    Ok(Some(metrics))
}

/// Removes a file or folder if it is there.
pub fn remove_any(path: &Path) -> Result<(), StoreError> {
    let removed = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
    };
    removed.map_err(io_err(path))
}

/// Moves a completed folder into place, replacing what was there (a corrupt or forced run).
pub fn publish(partial: &Path, dir: &Path) -> Result<(), StoreError> {
    if dir.exists() {
        // Out of the way first, so `dir` is never a half-deleted folder.
        let old = sibling(dir, &format!("old-{}", std::process::id()));
        std::fs::rename(dir, &old).map_err(io_err(dir))?;
        remove_any(&old)?;
    }
    std::fs::rename(partial, dir).map_err(io_err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrity_check_names_each_fault() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("exp").join("abc");
        std::fs::create_dir_all(&dir).unwrap();
        assert!(read_finished::<serde_json::Value>(&dir, "abc").unwrap().is_none());
        std::fs::write(dir.join(DONE_MARKER), "abc\n").unwrap();
        let e = read_finished::<serde_json::Value>(&dir, "abc").unwrap_err().to_string();
        assert!(e.contains("metrics.json is missing") && e.contains("--force"), "{e}");
        std::fs::write(dir.join("metrics.json"), "{\"a\": 1").unwrap();
        let e = read_finished::<serde_json::Value>(&dir, "abc").unwrap_err().to_string();
        assert!(e.contains("does not parse"), "{e}");
        std::fs::write(dir.join("metrics.json"), "{\"a\": 1}").unwrap();
        std::fs::write(dir.join("manifest.json"), "{}").unwrap();
        std::fs::write(dir.join("spec.json"), "{}").unwrap();
        assert_eq!(read_finished::<serde_json::Value>(&dir, "abc").unwrap().unwrap()["a"], 1);
        let e = read_finished::<serde_json::Value>(&dir, "abd").unwrap_err().to_string();
        assert!(e.contains("not this run's fingerprint"), "{e}");
    }

    #[test]
    fn publish_replaces_an_old_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        let partial = sibling(&dir, "partial");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("old.txt"), "old").unwrap();
        std::fs::create_dir_all(&partial).unwrap();
        std::fs::write(partial.join("new.txt"), "new").unwrap();
        publish(&partial, &dir).unwrap();
        assert!(dir.join("new.txt").is_file() && !dir.join("old.txt").exists() && !partial.exists());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }
}
