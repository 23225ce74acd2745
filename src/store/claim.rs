//! Who runs an executing action: an OS file lock (`flock`) on `<store>.actions/<id>.lock`, taken
//! by the process that moves the action to `executing` before it does so, and held until its end
//! is recorded (or the process stops following it). The kernel releases it when that process
//! ends, however it ends (SIGKILL included), and every process sharing the store's file system
//! sees the same lock — across PID namespaces too — so "its owner is gone" is a fact to test, not
//! a guess from a PID. Reconciliation touches only actions whose claim it can take.
//!
//! A claim's file is removed when the claim ends; a claimer checks that the file it locked is
//! still the one at that path (not one removed meanwhile), so two claims on one action can never
//! both hold. An in-memory store (tests) keeps its claims in the process.

use std::collections::HashSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{Store, StoreError};

/// Held while this process owns an action; dropping it lets another process take it over.
#[derive(Debug)]
pub struct Claim {
    held: Held,
}

#[derive(Debug)]
enum Held {
    File {
        _file: File,
        path: PathBuf,
    },
    Memory {
        set: Arc<Mutex<HashSet<String>>>,
        id: String,
    },
}

impl Drop for Claim {
    fn drop(&mut self) {
        match &self.held {
            // Removed while still locked: whoever opened it meanwhile finds the name gone and
            // starts again on a fresh file. The lock itself goes with the file handle.
            Held::File { path, .. } => {
                let _ = std::fs::remove_file(path);
            }
            Held::Memory { set, id } => {
                set.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(id);
            }
        }
    }
}

/// Where the claims of a store file live.
pub(super) fn dir_for(store: &Path) -> PathBuf {
    let mut name = store.file_name().unwrap_or_default().to_os_string();
    name.push(".actions");
    store.with_file_name(name)
}

/// Action ids are ours (16 hex digits); anything else read from the file is not made a path.
fn file_name(id: &str) -> Result<String, StoreError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(format!("{id}.lock"))
    } else {
        Err(StoreError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "an action id that cannot name a lock file",
        )))
    }
}

fn try_file(dir: &Path, id: &str) -> Result<Option<Claim>, StoreError> {
    let path = dir.join(file_name(id)?);
    // A file removed between our open and our lock is locked by nobody else who can find it:
    // try again on the name's new file (a few times; each round means another claim ended).
    for _ in 0..8 {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => return Err(e.into()),
        }
        let mine = file.metadata()?;
        let same = std::fs::metadata(&path)
            .is_ok_and(|now| now.ino() == mine.ino() && now.dev() == mine.dev());
        if same {
            return Ok(Some(Claim {
                held: Held::File { _file: file, path },
            }));
        }
    }
    Ok(None)
}

impl Store {
    /// Claims action `id` for this process unless someone holds it (None: its owner runs).
    pub fn try_claim(&self, id: &str) -> Result<Option<Claim>, StoreError> {
        match &self.claims {
            Claims::Dir(dir) => try_file(dir, id),
            Claims::Memory(set) => {
                let fresh = set
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(id.to_string());
                Ok(fresh.then(|| Claim {
                    held: Held::Memory {
                        set: set.clone(),
                        id: id.to_string(),
                    },
                }))
            }
        }
    }

    /// [`Store::try_claim`], waiting up to `wait` for a holder to finish (two clicks on one
    /// Confirm: the store decides which one runs once each holds the claim in turn).
    pub async fn claim_within(
        &self,
        id: &str,
        wait: Duration,
    ) -> Result<Option<Claim>, StoreError> {
        let until = Instant::now() + wait;
        loop {
            if let Some(c) = self.try_claim(id)? {
                return Ok(Some(c));
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Where a store keeps its claims.
#[derive(Debug, Clone)]
pub(super) enum Claims {
    Dir(Arc<PathBuf>),
    Memory(Arc<Mutex<HashSet<String>>>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_claim_at_a_time_and_free_once_dropped() {
        let dir = std::env::temp_dir().join(format!("chops-claims-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = try_file(&dir, "0123456789abcdef").unwrap().expect("free");
        // Another open file description is another owner, as another process would be.
        assert!(try_file(&dir, "0123456789abcdef").unwrap().is_none());
        assert!(try_file(&dir, "fedcba9876543210").unwrap().is_some());
        drop(a);
        assert!(!dir.join("0123456789abcdef.lock").exists(), "removed");
        assert!(try_file(&dir, "0123456789abcdef").unwrap().is_some());
        assert!(try_file(&dir, "../etc/passwd").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
