//! Scratch files a run owns (a writer's temporary output, a step cache spill file), made so that
//! a later run can tell a crashed run's leftovers from a live run's.
//!
//! A scratch file is held under an exclusive advisory lock (`flock`) for as long as its owner
//! keeps it: the operating system drops the lock when the owner closes the file or dies, SIGKILL
//! included. A file of a recognised name whose lock can be taken is therefore abandoned, and
//! [`remove_abandoned`] deletes it; a file still locked belongs to a running run (of this process
//! or another) and is left alone. No pid is trusted: pids are reused and differ between
//! containers sharing a volume, locks do not.
//!
//! The lock is taken before the file appears under its name: [`create_locked`] creates and locks
//! it under a private name first and renames it into place, so no other run can ever see the name
//! unlocked while its owner lives. A private name left by a crash between creation and rename is
//! removed like any abandoned file; a creator whose private name a clean-up took in the instant
//! before its lock simply tries a new one.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The private-name prefix of a scratch file being created (`.osiris-locking-<pid>-<n>-<name>`).
const LOCKING_PREFIX: &str = ".osiris-locking-";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Creates `path` (which must not exist) for reading and writing, locked exclusively. The lock
/// lives as long as the returned file and its [`File::try_clone`]s.
pub fn create_locked(path: &Path) -> io::Result<File> {
    let name = path.file_name().ok_or_else(|| io::Error::other(format!("{} has no file name", path.display())))?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let private =
            path.with_file_name(format!("{LOCKING_PREFIX}{}-{n}-{}", std::process::id(), name.to_string_lossy()));
        match place_locked(&private, path) {
            Ok(file) => return Ok(file),
            // Another run's clean-up took the private name for a crash's leftover in the instant
            // between its creation and its lock: try a new one.
            Err(e) if e.kind() == io::ErrorKind::Interrupted && attempt < CREATE_ATTEMPTS => {}
            Err(e) => return Err(e),
        }
    }
}

/// How often [`create_locked`] tries a new private name.
const CREATE_ATTEMPTS: u32 = 3;

/// Creates `private`, locks it and renames it onto `path`; `Interrupted` when a clean-up removed
/// or held the private name meanwhile.
fn place_locked(private: &Path, path: &Path) -> io::Result<File> {
    let file = OpenOptions::new().read(true).write(true).create_new(true).open(private)?;
    let placed = lock(&file).and_then(|()| {
        if path.exists() {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} exists", path.display())));
        }
        std::fs::rename(private, path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => io::Error::new(io::ErrorKind::Interrupted, "the private name was removed"),
            _ => e,
        })
    });
    if let Err(e) = placed {
        let _ = std::fs::remove_file(private);
        return Err(e);
    }
    Ok(file)
}

fn lock(file: &File) -> io::Result<()> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => {
            Err(io::Error::new(io::ErrorKind::Interrupted, "a clean-up holds the fresh scratch file"))
        }
        // A file system without locks (some network or FUSE mounts): the file works all the
        // same; it is just never taken for abandoned, since no lock can be taken on it either.
        Err(TryLockError::Error(_)) => Ok(()),
    }
}

/// Whether the scratch file at `path` has no live owner (its lock can be taken). A file that
/// cannot be opened is not judged abandoned.
pub fn is_abandoned(path: &Path) -> bool {
    let Ok(file) = File::open(path) else { return false };
    // The probe's own lock goes away with `file` at the end of this function.
    file.try_lock().is_ok()
}

/// Removes the abandoned scratch files in `dir` whose names satisfy `recognised` (and private
/// names of creations that crashed, once old); returns what it removed. Files it cannot inspect
/// are left alone: cleaning up after others must never fail a run.
pub fn remove_abandoned(dir: &Path, recognised: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let regular = entry.file_type().is_ok_and(|t| t.is_file());
        let stale = if let Some(rest) = name.strip_prefix(LOCKING_PREFIX) {
            recognised(private_target_name(rest)) && is_abandoned(&path)
        } else {
            recognised(&name) && is_abandoned(&path)
        };
        if regular && stale && std::fs::remove_file(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

/// `<pid>-<n>-<name>` → `<name>`.
fn private_target_name(rest: &str) -> &str {
    rest.splitn(3, '-').nth(2).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_file_is_kept_and_a_released_one_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let held_path = dir.path().join("held.tmp");
        let gone_path = dir.path().join("gone.tmp");
        let held = create_locked(&held_path).unwrap();
        drop(create_locked(&gone_path).unwrap());
        std::fs::write(dir.path().join("other.txt"), "not scratch").unwrap();
        assert!(!is_abandoned(&held_path));
        assert!(is_abandoned(&gone_path));
        let removed = remove_abandoned(dir.path(), |name| name.ends_with(".tmp"));
        assert_eq!(removed, vec![gone_path.clone()]);
        assert!(held_path.exists() && !gone_path.exists() && dir.path().join("other.txt").exists());
        // No private name is left behind.
        let names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        assert!(names.iter().all(|n| !n.starts_with(LOCKING_PREFIX)), "{names:?}");
        drop(held);
        assert!(is_abandoned(&held_path));
    }

    #[test]
    fn a_private_name_left_by_a_crash_is_removed_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let leftover = dir.path().join(format!("{LOCKING_PREFIX}4242-0-x.tmp"));
        std::fs::write(&leftover, "killed between create and rename").unwrap();
        assert_eq!(remove_abandoned(dir.path(), |name| name.ends_with(".tmp")), vec![leftover.clone()]);
        assert!(!leftover.exists());
    }

    #[test]
    fn a_clone_keeps_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.tmp");
        let file = create_locked(&path).unwrap();
        let clone = file.try_clone().unwrap();
        drop(file);
        assert!(!is_abandoned(&path));
        drop(clone);
        assert!(is_abandoned(&path));
    }

    #[test]
    fn an_existing_name_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.tmp");
        std::fs::write(&path, "mine").unwrap();
        assert_eq!(create_locked(&path).unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "mine");
    }
}
