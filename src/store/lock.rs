//! Advisory locks on run folders and cache entries (`flock` through std's
//! `File::try_lock`): the kernel drops a lock when its process dies, so a
//! lock is never stale; the file also names its holder for the message a
//! second process prints.

use super::{io_err, StoreError};
use serde::{Deserialize, Serialize};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

/// Who holds a lock, as written into the lock file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    /// Seconds since the Unix epoch.
    pub since: u64,
}

impl Holder {
    fn me() -> Holder {
        let since = unix_now();
        Holder { pid: std::process::id(), host: crate::fingerprint::host_name(), since }
    }

    /// "pid 1234 on host h since 2026-11-28 10:04:12 UTC (3 min ago)"
    pub fn describe(&self) -> String {
        let now = Holder::me().since;
        let ago = now.saturating_sub(self.since);
        format!("pid {} on host {} since {} ({} ago)", self.pid, self.host, utc(self.since), human(ago))
    }
}

fn human(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{:.1} h", s as f64 / 3600.0),
    }
}

/// Seconds since the Unix epoch now (0 on a clock set before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `YYYY-MM-DD HH:MM:SS UTC` from Unix seconds (civil-from-days, proleptic Gregorian).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Lock {
    file: std::fs::File,
    path: PathBuf,
}

/// The outcome of [`Lock::try_acquire`].
#[derive(Debug)]
pub enum TryLock {
    Acquired(Lock),
    /// Another process holds it (its holder, when the lock file names one).
    Busy(Option<Holder>),
}

impl Lock {
    fn open(path: &Path) -> Result<std::fs::File, StoreError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io_err(path))
    }

    /// Takes the lock at `path` if no other process holds it.
    pub fn try_acquire(path: &Path) -> Result<TryLock, StoreError> {
        let file = Lock::open(path)?;
        match file.try_lock() {
            Ok(()) => Lock::claimed(file, path).map(TryLock::Acquired),
            Err(std::fs::TryLockError::WouldBlock) => Ok(TryLock::Busy(Lock::holder(path))),
            Err(std::fs::TryLockError::Error(source)) => Err(StoreError::Io { path: path.to_path_buf(), source }),
        }
    }

    /// Waits for the lock at `path`; `waiting` hears about the holder once if it has to wait.
    pub fn acquire(path: &Path, waiting: impl FnOnce(Option<Holder>)) -> Result<Lock, StoreError> {
        match Lock::try_acquire(path)? {
            TryLock::Acquired(lock) => Ok(lock),
            TryLock::Busy(holder) => {
                waiting(holder);
                let file = Lock::open(path)?;
                file.lock().map_err(io_err(path))?;
                Lock::claimed(file, path)
            }
        }
    }

    /// Writes this process in as the holder.
    fn claimed(mut file: std::fs::File, path: &Path) -> Result<Lock, StoreError> {
        let text = serde_json::to_string(&Holder::me()).unwrap_or_default();
        file.set_len(0).and_then(|_| file.rewind()).and_then(|_| file.write_all(text.as_bytes())).and_then(|_| file.flush()).map_err(io_err(path))?;
        Ok(Lock { file, path: path.to_path_buf() })
    }

    /// Who holds the lock at `path` now: None when nobody does (a holder that died
    /// released it, whatever its file still says).
    pub fn held_by(path: &Path) -> Result<Option<Holder>, StoreError> {
        if !path.exists() {
            return Ok(None);
        }
        Ok(match Lock::try_acquire(path)? {
            TryLock::Acquired(_) => None,
            TryLock::Busy(holder) => Some(holder.unwrap_or(Holder { pid: 0, host: "unknown".into(), since: 0 })),
        })
    }

    /// The holder a lock file names (None when it is empty or unreadable).
    fn holder(path: &Path) -> Option<Holder> {
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // The lock file stays: removing it would let two processes lock two different files of one name.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(".run.lock");
        let TryLock::Acquired(first) = Lock::try_acquire(&path).unwrap() else { panic!("free lock refused") };
        // flock locks belong to open file descriptions: a second open in this process is refused too.
        match Lock::try_acquire(&path).unwrap() {
            TryLock::Busy(Some(h)) => {
                assert_eq!(h.pid, std::process::id());
                assert!(h.describe().contains(&format!("pid {}", std::process::id())));
            }
            other => panic!("expected busy, got {other:?}"),
        }
        assert_eq!(Lock::held_by(&path).unwrap().map(|h| h.pid), Some(std::process::id()));
        drop(first);
        assert!(Lock::held_by(&path).unwrap().is_none());
        assert!(matches!(Lock::try_acquire(&path).unwrap(), TryLock::Acquired(_)));
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_795_852_800), "2026-11-28 08:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }
}
