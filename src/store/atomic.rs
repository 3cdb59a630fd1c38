//! Files written whole or not at all, under names no other process uses.

use super::{io_err, StoreError};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// `dir/.name.<pid>.<n>.tmp`: unique per process and call, so two writers never share one.
fn temp_name(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// Writes through a uniquely named temporary file, syncs it and renames it into place.
pub fn write_atomic(path: &Path, fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>) -> Result<(), StoreError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let tmp = temp_name(path);
    let result = (|| {
        let file = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        let mut w = std::io::BufWriter::new(file);
        fill(&mut w).map_err(io_err(&tmp))?;
        let file = w.into_inner().map_err(|e| StoreError::Io { path: tmp.clone(), source: e.into_error() })?;
        file.sync_all().map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io_err(path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), StoreError> {
    write_atomic(path, |w| {
        serde_json::to_writer_pretty(&mut *w, value)?;
        w.write_all(b"\n")
    })
}

/// Puts `from` at `to` as a hard link (one copy on disk for every run that shares a cached
/// stage), or as a copy where the filesystem has no hard links.
pub fn link_or_copy(from: &Path, to: &Path) -> Result<(), StoreError> {
    let tmp = temp_name(to);
    if std::fs::hard_link(from, &tmp).is_err() {
        std::fs::copy(from, &tmp).map_err(io_err(from))?;
    }
    std::fs::rename(&tmp, to).map_err(io_err(to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_differ_and_a_failed_write_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("a.json");
        assert_ne!(temp_name(&p), temp_name(&p));
        let failed = write_atomic(&p, |_| Err(std::io::Error::other("disk full")));
        assert!(failed.is_err());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
        write_json(&p, &serde_json::json!({"x": 1})).unwrap();
        let q = tmp.path().join("b.json");
        link_or_copy(&p, &q).unwrap();
        assert_eq!(std::fs::read_to_string(&q).unwrap(), std::fs::read_to_string(&p).unwrap());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 2);
    }
}
