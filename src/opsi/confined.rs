//! Where a path taken from configuration really lies: resolved under the root as the kernel
//! will follow it (`..` and symlinks), and checked to stay strictly inside the root and off
//! the system directories. One rule for every place that writes or reads a configured
//! directory: restore's targets (`restore/confine.rs`) and the data directories that create
//! backs up (`data_dirs.rs`). Values from configuration files are untrusted input.

use std::fs;
use std::path::{Component, Path, PathBuf};

/// Server directories never taken as a whole (`lib*` is matched separately): a restore would
/// wipe everything else in them, a backup would take the whole system.
const SYSTEM_DIRS: &[&str] = &[
    "etc", "usr", "var", "var/lib", "root", "home", "boot", "bin", "sbin", "proc", "sys", "dev",
    "run", "tmp",
];

/// Why a path was refused; the caller names the setting it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A dangling or looping symlink, or `..` below a missing directory.
    Unresolvable,
    Outside(PathBuf),
    Root(PathBuf),
    System(PathBuf),
}

impl Refusal {
    /// The path as resolved (when it could be) and why it is refused, for messages.
    pub(crate) fn describe(&self, raw: &Path) -> (PathBuf, &'static str) {
        match self {
            Refusal::Unresolvable => (
                raw.to_path_buf(),
                "cannot be resolved (a dangling or looping symlink, or '..' below a missing \
                 directory)",
            ),
            Refusal::Outside(p) => (p.clone(), "lies outside the root"),
            Refusal::Root(p) => (p.clone(), "is the root itself"),
            Refusal::System(p) => (
                p.clone(),
                "is a system directory, which is never taken as a whole",
            ),
        }
    }
}

/// `raw` (a path under the root, possibly with `..`) resolved as the kernel would follow it,
/// checked to lie strictly inside `root_real` (the canonical root) and not on a system
/// directory.
pub(crate) fn confined(root_real: &Path, raw: &Path) -> Result<PathBuf, Refusal> {
    let real = resolve(raw).ok_or(Refusal::Unresolvable)?;
    let Ok(rel) = real.strip_prefix(root_real) else {
        return Err(Refusal::Outside(real));
    };
    if rel.as_os_str().is_empty() {
        return Err(Refusal::Root(real));
    }
    if is_system_dir(rel) {
        return Err(Refusal::System(real));
    }
    Ok(real)
}

/// The deepest existing ancestor of `raw` canonicalized, with the missing rest appended;
/// `None` when an existing part cannot be resolved or the missing rest climbs with `..`.
fn resolve(raw: &Path) -> Option<PathBuf> {
    for base in raw.ancestors() {
        if fs::symlink_metadata(base).is_err() {
            continue;
        }
        // A part that exists but does not resolve (dangling or looping symlink) would be
        // followed by whatever creates the rest: refuse.
        let mut real = fs::canonicalize(base).ok()?;
        let rest = raw.strip_prefix(base).ok()?;
        for c in rest.components() {
            match c {
                Component::Normal(n) => real.push(n),
                Component::CurDir => {}
                _ => return None,
            }
        }
        return Some(real);
    }
    None
}

fn is_system_dir(rel: &Path) -> bool {
    let parts: Vec<_> = rel.components().collect();
    let text = rel.to_string_lossy();
    SYSTEM_DIRS.contains(&text.as_ref()) || (parts.len() == 1 && text.starts_with("lib"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_outside_root_and_system() {
        let d = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(d.path()).unwrap();
        fs::create_dir_all(root.join("var/lib/opsi")).unwrap();
        assert_eq!(
            confined(&root, &root.join("var/lib/opsi/depot")),
            Ok(root.join("var/lib/opsi/depot"))
        );
        assert!(matches!(
            confined(&root, &root.join("var/lib/opsi/../../..")),
            Err(Refusal::Root(_))
        ));
        assert!(matches!(
            confined(&root, &root.join("var/lib")),
            Err(Refusal::System(_))
        ));
        assert!(matches!(
            confined(&root, &root.join("../../x")),
            Err(Refusal::Outside(_)) | Err(Refusal::Unresolvable)
        ));
    }
}
