//! Atomic file output: data is written to a temporary file in the target's directory and renamed
//! onto the target only on success. Dropping an uncommitted [`TempTarget`] removes the temporary
//! file, so an error, a cancellation or a panic never leaves a truncated file under the target name.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use osiris_engine::driver::DriverError;

/// Marker that every temporary file name contains (`.<name>.osiris-tmp-<pid>-<n>`).
pub const TEMP_MARKER: &str = ".osiris-tmp-";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary file that becomes `target` on [`TempTarget::commit`].
#[derive(Debug)]
pub struct TempTarget {
    target: PathBuf,
    temp: PathBuf,
    committed: bool,
}

/// `write.io_error` naming `path`, with a hint.
pub fn io_error(path: &Path, what: &str, err: &std::io::Error) -> DriverError {
    DriverError::new("write.io_error", format!("cannot {what} '{}': {err}", path.display())).with_hint(
        "check that the directory exists (or set `create_dirs: true`) and is writable, or choose another `path`",
    )
}

impl TempTarget {
    /// Creates the temporary file for `target` (and the target's directory when `create_dirs`).
    pub fn create(target: &Path, create_dirs: bool) -> Result<(TempTarget, File), DriverError> {
        let Some(name) = target.file_name() else {
            return Err(DriverError::new(
                "config.invalid",
                format!("output path '{}' has no file name", target.display()),
            )
            .with_hint("set `path` to a file, e.g. output/result.csv"));
        };
        if target.is_dir() {
            return Err(DriverError::new(
                "write.io_error",
                format!("output path '{}' is a directory", target.display()),
            )
            .with_hint("set `path` to a file inside that directory"));
        }
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if create_dirs {
            std::fs::create_dir_all(&dir).map_err(|e| {
                DriverError::new(
                    "write.io_error",
                    format!("cannot write '{}': cannot create its directory '{}': {e}", target.display(), dir.display()),
                )
                .with_hint("choose a `path` whose parent can be a directory (a file of that name may be in the way) and that is writable")
            })?;
        }
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let temp = dir.join(format!(".{}{TEMP_MARKER}{}-{n}-{nanos:08x}", name.to_string_lossy(), std::process::id()));
        let file =
            OpenOptions::new().write(true).create_new(true).open(&temp).map_err(|e| io_error(target, "write", &e))?;
        Ok((TempTarget { target: target.to_path_buf(), temp, committed: false }, file))
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The temporary path.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Renames the temporary file onto the target (the file must be closed/flushed by the caller).
    pub fn commit(mut self) -> Result<(), DriverError> {
        std::fs::rename(&self.temp, &self.target)
            .map_err(|e| io_error(&self.target, "rename temporary file onto", &e))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for TempTarget {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}
