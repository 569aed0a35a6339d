//! Sandbox paths: what a client names (`x.txt`, `~/x.txt`, `/home/user/x.txt`) and where it is on
//! this machine (`<root>/<sandbox id>/x.txt`). Nothing outside the sandbox home is reachable.

use std::path::{Component, Path, PathBuf};

use crate::e2b::protocol::SANDBOX_HOME;

/// A path inside a sandbox home.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxPath {
    /// Where it is on this machine.
    pub host: PathBuf,
    /// How the sandbox names it (`/home/user/…`), as E2B would report it.
    pub sandbox: String,
}

/// Resolves `input` like envd does (`~` and relative paths against the home), mapped into
/// `home`. Absolute paths outside `/home/user` and `..` escaping the home are refused with a
/// message fit for a 400 answer.
pub fn resolve(home: &Path, input: &str) -> Result<SandboxPath, String> {
    let relative = relative_part(input).ok_or_else(|| {
        format!(
            "path '{input}' is outside the sandbox home {SANDBOX_HOME}: this local sandbox server only gives access to each sandbox's home directory"
        )
    })?;
    let mut parts: Vec<&str> = Vec::new();
    for component in Path::new(relative).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str().unwrap_or_default()),
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(format!("path '{input}' leaves the sandbox home {SANDBOX_HOME} through '..'"));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("path '{input}' is not a valid sandbox path"));
            }
        }
    }
    let mut host = home.to_path_buf();
    host.extend(&parts);
    let sandbox =
        if parts.is_empty() { SANDBOX_HOME.to_string() } else { format!("{SANDBOX_HOME}/{}", parts.join("/")) };
    Ok(SandboxPath { host, sandbox })
}

/// The part of `input` below the home, or `None` for absolute paths elsewhere.
fn relative_part(input: &str) -> Option<&str> {
    if input == "~" {
        return Some("");
    }
    if let Some(rest) = input.strip_prefix("~/") {
        return Some(rest);
    }
    if !input.starts_with('/') {
        return Some(input);
    }
    if input.trim_end_matches('/') == SANDBOX_HOME {
        return Some("");
    }
    input.strip_prefix(SANDBOX_HOME).and_then(|rest| rest.strip_prefix('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> (String, String) {
        let p = resolve(Path::new("/srv/sb/i1"), input).unwrap();
        (p.host.to_string_lossy().into_owned(), p.sandbox)
    }

    #[test]
    fn home_relative_and_absolute_forms_agree() {
        let want = ("/srv/sb/i1/data/x.csv".to_string(), "/home/user/data/x.csv".to_string());
        for input in ["data/x.csv", "./data/x.csv", "~/data/x.csv", "/home/user/data/x.csv", "data/../data/x.csv"] {
            assert_eq!(ok(input), want, "{input}");
        }
        assert_eq!(ok("~"), ("/srv/sb/i1".to_string(), "/home/user".to_string()));
        assert_eq!(ok("/home/user/"), ("/srv/sb/i1".to_string(), "/home/user".to_string()));
        assert_eq!(ok(""), ("/srv/sb/i1".to_string(), "/home/user".to_string()));
    }

    #[test]
    fn escapes_are_refused() {
        for input in ["/etc/passwd", "/home/username/x", "../x", "a/../../x", "/home/user/../root", "/"] {
            let err = resolve(Path::new("/srv/sb/i1"), input).unwrap_err();
            assert!(err.contains(input), "{input}: {err}");
        }
    }
}
