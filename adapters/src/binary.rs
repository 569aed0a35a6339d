//! The binary a remote run ships: this very `osiris`, named by its content hash so that a
//! sandbox that already has it (a template that carries it, an earlier upload) skips the upload.
//!
//! Hashing a 100 MB binary takes a noticeable fraction of a second, so the hash is cached per
//! (path, size, modification time) under the user's cache directory.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where in a sandbox's home shipped binaries live.
pub const REMOTE_BIN_DIR: &str = ".osiris/bin";

/// A local executable and its content hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShippedBinary {
    pub path: PathBuf,
    pub len: u64,
    /// Hex sha256 of the file.
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read the osiris binary {path}: {source}")]
pub struct BinaryError {
    path: PathBuf,
    source: std::io::Error,
}

#[derive(Serialize, Deserialize, PartialEq)]
struct CacheEntry {
    len: u64,
    modified_ns: u128,
    sha256: String,
}

impl ShippedBinary {
    /// The running executable.
    pub fn current() -> Result<Self, BinaryError> {
        let path =
            std::env::current_exe().map_err(|source| BinaryError { path: PathBuf::from("(current exe)"), source })?;
        Self::of(&path)
    }

    /// The file at `path`, hashed (or its cached hash when size and mtime are unchanged).
    pub fn of(path: &Path) -> Result<Self, BinaryError> {
        let err = |source| BinaryError { path: path.to_path_buf(), source };
        let meta = std::fs::metadata(path).map_err(err)?;
        let modified_ns =
            meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
        let key = path.display().to_string();
        let mut cache = read_cache();
        if let Some(entry) = cache.get(&key).filter(|e| e.len == meta.len() && e.modified_ns == modified_ns) {
            return Ok(ShippedBinary { path: path.to_path_buf(), len: entry.len, sha256: entry.sha256.clone() });
        }
        let sha256 = hash_file(path).map_err(err)?;
        cache.insert(key, CacheEntry { len: meta.len(), modified_ns, sha256: sha256.clone() });
        write_cache(&cache);
        Ok(ShippedBinary { path: path.to_path_buf(), len: meta.len(), sha256 })
    }

    /// The binary's path in a sandbox home: `.osiris/bin/osiris-<first 16 hex of sha256>`.
    pub fn remote_path(&self) -> String {
        format!("{REMOTE_BIN_DIR}/osiris-{}", &self.sha256[..16])
    }

    /// Copies the binary into `home` at [`remote_path`](Self::remote_path), executable: what a
    /// sandbox template must contain for the E2B adapter to skip the upload. Returns the path.
    pub fn stage_into(&self, home: &Path) -> Result<PathBuf, BinaryError> {
        use std::os::unix::fs::PermissionsExt;
        let target = home.join(self.remote_path());
        let err = |source| BinaryError { path: target.clone(), source };
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        std::fs::copy(&self.path, &target).map_err(err)?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).map_err(err)?;
        Ok(target)
    }
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn cache_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("osiris").join("binary-hashes.json"))
}

fn read_cache() -> BTreeMap<String, CacheEntry> {
    cache_file()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

/// Best effort: a cache that cannot be written only costs a re-hash next time. Written to a
/// temporary name and renamed, so concurrent runs never read half a file.
fn write_cache(cache: &BTreeMap<String, CacheEntry>) {
    let Some(file) = cache_file() else { return };
    let Some(dir) = file.parent() else { return };
    let Ok(text) = serde_json::to_string(cache) else { return };
    let temp = dir.join(format!(".binary-hashes.{}.tmp", std::process::id()));
    let _ = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&temp, text))
        .and_then(|()| std::fs::rename(&temp, &file));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_names_the_content_and_follows_changes() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("osiris");
        std::fs::write(&exe, b"abc").unwrap();
        let first = ShippedBinary::of(&exe).unwrap();
        // sha256("abc")
        assert_eq!(first.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(first.remote_path(), ".osiris/bin/osiris-ba7816bf8f01cfea");
        assert_eq!(ShippedBinary::of(&exe).unwrap(), first);
        std::fs::write(&exe, b"abcd").unwrap();
        assert_ne!(ShippedBinary::of(&exe).unwrap().sha256, first.sha256, "a rewritten binary is hashed again");
    }
}
