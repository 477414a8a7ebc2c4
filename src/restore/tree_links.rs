//! The symlinks of a staged tree, checked against the finished tree before it is swapped in.
//! Each is resolved through the tree's own symlinks, as the kernel will once the tree is live;
//! `..` above the tree's root or an absolute target is outside. A lexical check per member is
//! not enough: `a/b -> ..` followed by `esc -> a/b/a/b/a/b/../../../x` climbs out through
//! another link, and the link it goes through may come later in the archive.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// The kernel's own limit on symlinks followed in one lookup.
const MAX_FOLLOWED: usize = 40;

/// Checks every symlink in `links` (path relative to `tree`, member that made it).
pub(crate) fn check(tree: &Path, links: &[(PathBuf, String)]) -> Result<()> {
    for (rel, member) in links {
        let Ok(target) = fs::read_link(tree.join(rel)) else {
            continue; // replaced by a later member
        };
        match resolve(tree, rel) {
            Ok(true) => {}
            Ok(false) => {
                return Err(Error::UnsafePath(format!(
                    "{member}: symlink to {} resolves outside the restored tree",
                    target.display()
                )))
            }
            Err(why) => {
                return Err(Error::UnsafePath(format!(
                    "{member}: symlink to {}: {why}",
                    target.display()
                )))
            }
        }
    }
    Ok(())
}

/// Follows the symlink at `link` inside `tree`: `Ok(true)` when it ends inside the tree.
fn resolve(tree: &Path, link: &Path) -> std::result::Result<bool, &'static str> {
    let mut cur: Vec<OsString> = link
        .parent()
        .map(|p| p.iter().map(OsString::from).collect())
        .unwrap_or_default();
    let mut todo = VecDeque::new();
    let mut followed = 0;
    let mut next_link = Some(tree.join(link));
    loop {
        if let Some(l) = next_link.take() {
            followed += 1;
            if followed > MAX_FOLLOWED {
                return Err("too many levels of symlinks");
            }
            let target = fs::read_link(&l).map_err(|_| "cannot read the symlink")?;
            if target.has_root() {
                return Ok(false);
            }
            for c in target.components().rev() {
                todo.push_front(c.as_os_str().to_os_string());
            }
        }
        let Some(part) = todo.pop_front() else {
            return Ok(true);
        };
        match Path::new(&part).components().next() {
            Some(Component::ParentDir) => {
                let left = cur.pop();
                if left.is_none() {
                    return Ok(false); // above the tree's root
                }
            }
            Some(Component::Normal(_)) => {
                cur.push(part);
                let here: PathBuf = tree.join(cur.iter().collect::<PathBuf>());
                if fs::symlink_metadata(&here).is_ok_and(|m| m.file_type().is_symlink()) {
                    cur.pop();
                    next_link = Some(here);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree(links: &[(&str, &str)]) -> (tempfile::TempDir, Vec<(PathBuf, String)>) {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("ssl")).unwrap();
        fs::create_dir_all(d.path().join("a")).unwrap();
        let mut out = Vec::new();
        for (at, to) in links {
            symlink(to, d.path().join(at)).unwrap();
            out.push((PathBuf::from(at), format!("CONTENT/CONF/{at}")));
        }
        (d, out)
    }

    #[test]
    fn links_inside_pass() {
        let (d, l) = tree(&[
            ("pem", "ssl/x.pem"),
            ("ssl/up", "../pem"),
            ("dangling", "nope"),
        ]);
        check(d.path(), &l).unwrap();
    }

    #[test]
    fn a_link_climbing_through_another_link_is_refused_in_either_order() {
        for order in [
            [("a/b", ".."), ("esc", "a/b/a/b/a/b/../../../outside_file")],
            [("esc", "a/b/a/b/a/b/../../../outside_file"), ("a/b", "..")],
        ] {
            let (d, l) = tree(&order);
            let err = check(d.path(), &l).unwrap_err().to_string();
            assert!(err.contains("CONTENT/CONF/esc"), "{err}");
            assert!(err.contains("outside the restored tree"), "{err}");
        }
        // Each of them passes the lexical check of its own member.
        for (at, to) in [("a/b", ".."), ("esc", "a/b/a/b/a/b/../../../outside_file")] {
            crate::restore::safe_path::check_symlink("m", Path::new(at), to).unwrap();
        }
    }

    #[test]
    fn absolute_and_looping_links_are_refused() {
        let (d, l) = tree(&[("abs", "/etc/shadow")]);
        assert!(check(d.path(), &l).is_err());
        let (d, l) = tree(&[("x", "y"), ("y", "x")]);
        let err = check(d.path(), &l).unwrap_err().to_string();
        assert!(err.contains("too many levels"), "{err}");
    }
}
