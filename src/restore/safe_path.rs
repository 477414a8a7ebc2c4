//! Path checks for restore: a member may only ever write inside its target. Every member path
//! below its prefix must be relative, without `..`, and symlink targets must stay inside the
//! restored tree; writing through a symlinked parent is refused where the files are created
//! (see `staging.rs`).

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// The part of `member` below `prefix` (e.g. `CONTENT/CONF`) as a checked relative path;
/// `Ok(None)` when the member is not below the prefix, `Ok(Some(""))` for the prefix itself.
pub(crate) fn below(member: &str, prefix: &str) -> Result<Option<PathBuf>> {
    let rest = if member == prefix {
        ""
    } else if let Some(r) = member
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('/'))
    {
        r
    } else {
        return Ok(None);
    };
    relative(member, rest).map(Some)
}

/// Checks `rest` as a relative path inside the target; `member` names the offender.
pub(crate) fn relative(member: &str, rest: &str) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    if rest.starts_with('/') {
        return Err(Error::UnsafePath(format!("{member}: absolute path")));
    }
    for part in rest.split('/') {
        match part {
            "" | "." => continue,
            ".." => return Err(Error::UnsafePath(format!("{member}: path contains '..'"))),
            p if p.contains('\0') => {
                return Err(Error::UnsafePath(format!("{member}: NUL in path")))
            }
            p => out.push(p),
        }
    }
    Ok(out)
}

/// A symlink at `rel` (relative to the tree root) pointing to `target` must resolve inside the
/// tree, lexically: absolute targets and targets climbing above the root are refused.
pub(crate) fn check_symlink(member: &str, rel: &Path, target: &str) -> Result<()> {
    if target.is_empty() {
        return Err(Error::UnsafePath(format!(
            "{member}: symlink with an empty target"
        )));
    }
    if target.starts_with('/') {
        return Err(Error::UnsafePath(format!(
            "{member}: symlink to absolute path {target} points outside the restored tree"
        )));
    }
    let mut depth: Vec<Component<'_>> = rel
        .parent()
        .map(|p| p.components().collect())
        .unwrap_or_default();
    for part in Path::new(target).components() {
        match part {
            Component::ParentDir if depth.pop().is_none() => {
                return Err(Error::UnsafePath(format!(
                    "{member}: symlink to {target} points outside the restored tree"
                )));
            }
            Component::ParentDir => {}
            Component::Normal(_) => depth.push(part),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_is_refused() {
        assert!(below("CONTENT/CONF/../../etc/passwd", "CONTENT/CONF").is_err());
        assert!(below("CONTENT/CONF//etc/x", "CONTENT/CONF").is_err());
        assert_eq!(below("CONTENT/CONFX/a", "CONTENT/CONF").unwrap(), None);
        assert_eq!(
            below("CONTENT/CONF", "CONTENT/CONF").unwrap(),
            Some(PathBuf::new())
        );
        assert_eq!(
            below("CONTENT/CONF/a/b", "CONTENT/CONF").unwrap(),
            Some(PathBuf::from("a/b"))
        );
        assert!(relative("m", "/etc/passwd").is_err());
    }

    #[test]
    fn symlinks_must_stay_inside() {
        assert!(check_symlink("m", Path::new("opsiconfd.pem"), "ssl/opsiconfd.pem").is_ok());
        assert!(check_symlink("m", Path::new("a/b/link"), "../c").is_ok());
        assert!(check_symlink("m", Path::new("a/link"), "../../x").is_err());
        assert!(check_symlink("m", Path::new("link"), "/etc/shadow").is_err());
        assert!(check_symlink("m", Path::new("link"), "..").is_err());
    }
}
