//! Where file writers put their bytes: atomically into a regular file, or straight through into
//! anything else.
//!
//! - A regular file (or a path that does not exist yet) is written to a temporary file in the
//!   target's directory and renamed onto the target only on success. Dropping an uncommitted
//!   [`OutputTarget`] removes the temporary file, so an error, a cancellation or a panic never
//!   leaves a truncated file under the target name.
//! - A symlink is followed: the file it points to is replaced atomically, and the link stays a
//!   link.
//! - A FIFO, a character device (`/dev/null`, a terminal) or the process's own stdout/stderr
//!   (`/dev/stdout`, `/dev/fd/1`, `/proc/self/fd/1`) is written through: such a file is never
//!   replaced, and there is no atomicity (a reader of a FIFO sees the rows as they come, and a
//!   failed run leaves what it wrote).
//!
//! Temporary files are [scratch files](osiris_engine::scratch), locked while their run lives: a
//! run that crashed (SIGKILL, power loss) leaves one behind, and the next run writing the same
//! target removes it; a concurrently running run's temporary file is never touched.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use osiris_engine::driver::DriverError;
use osiris_engine::scratch;
use tokio_util::sync::CancellationToken;

/// Marker that every temporary file name contains (`.<name>.osiris-tmp-<pid>-<n>-<nanos>`).
pub const TEMP_MARKER: &str = ".osiris-tmp-";

/// Symlinks followed before giving up (as the kernel's `MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// An output being written; [`OutputTarget::commit`] makes it final.
#[derive(Debug)]
pub struct OutputTarget {
    target: PathBuf,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// A temporary file renamed onto `target` on commit; `_lock` (a clone of the writer's
    /// handle) keeps it ours until this value goes away, even after the writer closed its handle.
    Atomic { temp: PathBuf, _lock: File, committed: bool },
    /// Written in place (FIFO, device, standard stream).
    Through,
}

/// `write.io_error` naming `path`, with a hint.
pub fn io_error(path: &Path, what: &str, err: &std::io::Error) -> DriverError {
    DriverError::new("write.io_error", format!("cannot {what} '{}': {err}", path.display())).with_hint(
        "check that the directory exists (or set `create_dirs: true`) and is writable, or choose another `path`",
    )
}

impl OutputTarget {
    /// Opens the output for `target`: a temporary file beside the (link-resolved) target, or the
    /// target itself when it is not a regular file. `create_dirs` creates the target's directory.
    pub fn create(target: &Path, create_dirs: bool) -> Result<(OutputTarget, File), DriverError> {
        if let Some(file) = standard_stream(target).map_err(|e| io_error(target, "write", &e))? {
            return Ok((OutputTarget { target: target.to_path_buf(), kind: Kind::Through }, file));
        }
        if target.is_dir() {
            return Err(DriverError::new(
                "write.io_error",
                format!("output path '{}' is a directory", target.display()),
            )
            .with_hint("set `path` to a file inside that directory"));
        }
        if let Ok(meta) = std::fs::metadata(target)
            && !meta.is_file()
        {
            let file = open_through(target, &meta.file_type())?;
            return Ok((OutputTarget { target: target.to_path_buf(), kind: Kind::Through }, file));
        }
        let real = resolve_links(target)?;
        let (temp, lock, file) = create_temp(&real, target, create_dirs)?;
        Ok((OutputTarget { target: real, kind: Kind::Atomic { temp, _lock: lock, committed: false } }, file))
    }

    /// The path that receives the data (a symlink's final target).
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Whether the output is written in place (no temporary file, no atomicity).
    pub fn is_write_through(&self) -> bool {
        matches!(self.kind, Kind::Through)
    }

    /// A writer's [`OutputTarget::commit`]: a run cancelled by now (a signal, a lost host) gets no
    /// output. The check sits right before the rename because finishing a file (a Parquet footer,
    /// a large flush) can take long after the last batch was checked.
    pub fn commit_unless_cancelled(self, cancel: &CancellationToken) -> Result<(), DriverError> {
        if cancel.is_cancelled() {
            return Err(DriverError::cancelled());
        }
        self.commit()
    }

    /// Makes the output final: renames the temporary file onto the target (the caller must have
    /// flushed it). Nothing to do for a write-through output.
    pub fn commit(mut self) -> Result<(), DriverError> {
        if let Kind::Atomic { temp, committed, .. } = &mut self.kind {
            std::fs::rename(&*temp, &self.target)
                .map_err(|e| io_error(&self.target, "rename temporary file onto", &e))?;
            *committed = true;
        }
        Ok(())
    }
}

impl Drop for OutputTarget {
    fn drop(&mut self) {
        if let Kind::Atomic { temp, committed: false, .. } = &self.kind {
            let _ = std::fs::remove_file(temp);
        }
    }
}

/// `/dev/stdout` and its aliases are this process's own standard stream: a duplicate of the
/// descriptor, so that the bytes go wherever the stream goes (terminal, pipe, `> file`, `>> file`)
/// and nothing is replaced or reopened.
fn standard_stream(path: &Path) -> io::Result<Option<File>> {
    let fd = match path.to_str() {
        Some("/dev/stdout" | "/dev/fd/1" | "/proc/self/fd/1") => std::io::stdout().as_fd().try_clone_to_owned()?,
        Some("/dev/stderr" | "/dev/fd/2" | "/proc/self/fd/2") => std::io::stderr().as_fd().try_clone_to_owned()?,
        _ => return Ok(None),
    };
    Ok(Some(File::from(fd)))
}

/// Opens an existing non-regular file for writing, in place. A FIFO blocks here until a reader
/// opens it, as any writer of a FIFO does.
fn open_through(target: &Path, kind: &std::fs::FileType) -> Result<File, DriverError> {
    if kind.is_socket() {
        return Err(DriverError::new(
            "write.io_error",
            format!("output path '{}' is a socket, which cannot be opened as a file", target.display()),
        )
        .with_hint("write to a regular file, a FIFO (mkfifo) or a device instead"));
    }
    OpenOptions::new().write(true).open(target).map_err(|e| io_error(target, "write", &e))
}

/// Follows `path` while it is a symlink (relative links resolve against the link's directory);
/// the result may not exist yet (a dangling link names the file to create).
fn resolve_links(path: &Path) -> Result<PathBuf, DriverError> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let next = std::fs::read_link(&current).map_err(|e| io_error(path, "read the symlink", &e))?;
                current = match current.parent() {
                    Some(dir) if next.is_relative() => dir.join(next),
                    _ => next,
                };
            }
            _ => return Ok(current),
        }
    }
    Err(DriverError::new("write.io_error", format!("output path '{}': too many levels of symlinks", path.display()))
        .with_hint("fix the symlink loop, or set `path` to a regular file"))
}

/// Creates the locked temporary file for `real` (after removing abandoned ones of earlier runs).
/// `asked` is the path as configured, for messages.
fn create_temp(real: &Path, asked: &Path, create_dirs: bool) -> Result<(PathBuf, File, File), DriverError> {
    let Some(name) = real.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Err(DriverError::new("config.invalid", format!("output path '{}' has no file name", asked.display()))
            .with_hint("set `path` to a file, e.g. output/result.csv"));
    };
    let dir = match real.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if create_dirs {
        std::fs::create_dir_all(&dir).map_err(|e| {
            DriverError::new(
                "write.io_error",
                format!("cannot write '{}': cannot create its directory '{}': {e}", asked.display(), dir.display()),
            )
            .with_hint("choose a `path` whose parent can be a directory (a file of that name may be in the way) and that is writable")
        })?;
    }
    let prefix = format!(".{name}{TEMP_MARKER}");
    // Left by an earlier run that died before it could clean up.
    scratch::remove_abandoned(&dir, |candidate| candidate.starts_with(&prefix));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let temp = dir.join(format!("{prefix}{}-{n}-{nanos:08x}", std::process::id()));
    let file = scratch::create_locked(&temp).map_err(|e| io_error(asked, "write", &e))?;
    let lock = file.try_clone().map_err(|e| io_error(asked, "write", &e))?;
    Ok((temp, lock, file))
}
