//! Where a restore may write. Its targets come from backend configuration, which is the
//! archive's own when `--configuration` restores it: hostile input like any member. Before
//! anything is touched every target is resolved on the live system under the root (`..` and
//! symlinks, as the kernel will follow them) and must
//! - stay under the root,
//! - not be the root itself or a system directory (`/etc`, `/var/lib`, ...), whose replacement
//!   would wipe everything else in it,
//! - not contain or lie inside another target; the one exception is a single file inside a
//!   tree (the file backend's `hostKeyFile` `/etc/opsi/pckeys`), which is placed into the
//!   staged tree.
//!
//! The targets then carry the resolved paths, so what is written is what was checked.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::opsi::confined::{confined, Refusal};
use crate::opsi::root::OpsiRoot;
use crate::restore::plan::{Plan, Renamable};
use crate::restore::restorer::Dest;

/// Resolves every target of `plan` (and the paths `--new-server-id` rewrites) and checks them;
/// see the module comment.
pub(crate) fn confine(root: &OpsiRoot, plan: &mut Plan) -> Result<()> {
    let root_real = fs::canonicalize(root.path()).map_err(|e| {
        Error::Config(format!(
            "cannot resolve the root {}: {e}",
            root.path().display()
        ))
    })?;
    let mut placed: Vec<(PathBuf, bool, String)> = Vec::new();
    for t in &mut plan.targets {
        let (path, is_tree) = match &mut t.dest {
            Dest::Tree(p) => (p, true),
            Dest::File(p) => (p, false),
            Dest::Stream(_) => continue,
        };
        let real = inside(&root_real, path, &t.what)?;
        if !is_tree && real.is_dir() {
            return Err(refused(&t.what, &real, "is a directory, not a file"));
        }
        for (other, other_tree, other_what) in &placed {
            overlap(&real, is_tree, &t.what, other, *other_tree, other_what)?;
        }
        *path = real.clone();
        placed.push((real, is_tree, t.what.clone()));
    }
    for r in &mut plan.renamable {
        if let Renamable::FileBackend {
            base_dir,
            host_key_file,
            base_dir_setting,
            host_key_file_setting,
        } = r
        {
            *base_dir = inside(&root_real, base_dir, base_dir_setting)?;
            *host_key_file = inside(&root_real, host_key_file, host_key_file_setting)?;
        }
    }
    Ok(())
}

fn refused(what: &str, real: &Path, why: &str) -> Error {
    Error::Config(format!(
        "restore refused before anything was changed: {what} ({}) {why}",
        real.display()
    ))
}

/// `raw` resolved and checked by the one rule of `opsi::confined`, refused naming `what`.
fn inside(root_real: &Path, raw: &Path, what: &str) -> Result<PathBuf> {
    confined(root_real, raw).map_err(|r| {
        let (real, why) = r.describe(raw);
        let why = match r {
            Refusal::System(_) => "is a system directory, which a restore never replaces",
            _ => why,
        };
        refused(what, &real, why)
    })
}

/// True for a single file (`inner`) inside a tree (`outer`): placed into the staged tree.
fn file_in_tree(inner_tree: bool, outer_tree: bool) -> bool {
    outer_tree && !inner_tree
}

/// Two targets must not overlap, except a single file inside a tree.
fn overlap(
    a: &Path,
    a_tree: bool,
    a_what: &str,
    b: &Path,
    b_tree: bool,
    b_what: &str,
) -> Result<()> {
    let clash = if a == b {
        Some("is the same path as")
    } else if a.starts_with(b) && !file_in_tree(a_tree, b_tree) {
        Some("lies inside")
    } else if b.starts_with(a) && !file_in_tree(b_tree, a_tree) {
        Some("contains")
    } else {
        None
    };
    match clash {
        Some(how) => Err(refused(
            a_what,
            a,
            &format!("{how} the target of {b_what} ({})", b.display()),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::restorer::Target;

    fn plan(targets: Vec<(&str, bool, &str)>) -> Plan {
        Plan {
            targets: targets
                .into_iter()
                .map(|(p, tree, what)| Target {
                    prefix: String::new(),
                    what: what.to_string(),
                    dest: if tree {
                        Dest::Tree(p.into())
                    } else {
                        Dest::File(p.into())
                    },
                })
                .collect(),
            renamable: Vec::new(),
        }
    }

    fn check(root: &OpsiRoot, targets: &[(&str, bool)]) -> Result<Vec<PathBuf>> {
        let list = targets
            .iter()
            .map(|(p, t)| (root.resolve(p), *t))
            .collect::<Vec<_>>();
        let mut p = plan(
            list.iter()
                .map(|(p, t)| (p.to_str().unwrap(), *t, "`baseDir` of backend x"))
                .collect(),
        );
        confine(root, &mut p)?;
        Ok(p.targets
            .iter()
            .map(|t| match &t.dest {
                Dest::Tree(p) | Dest::File(p) => p.clone(),
                Dest::Stream(_) => unreachable!(),
            })
            .collect())
    }

    fn server() -> (tempfile::TempDir, OpsiRoot) {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("etc/opsi")).unwrap();
        fs::create_dir_all(d.path().join("var/lib/opsi")).unwrap();
        let root = OpsiRoot::new(fs::canonicalize(d.path()).unwrap());
        (d, root)
    }

    #[test]
    fn the_usual_targets_pass_and_pckeys_may_lie_in_etc_opsi() {
        let (_d, root) = server();
        let got = check(
            &root,
            &[
                ("/etc/opsi", true),
                ("/var/lib/opsi/config", true),
                ("/etc/opsi/pckeys", false),
                ("/etc/dhcp/dhcpd.conf", false),
            ],
        )
        .unwrap();
        assert_eq!(got[1], root.path().join("var/lib/opsi/config"));
    }

    #[test]
    fn escapes_system_dirs_and_the_root_are_refused() {
        let (_d, root) = server();
        for bad in [
            "/../../../../tmp/outside_dir",
            "/",
            "/.",
            "/etc",
            "/var/lib/",
            "/var/lib/opsi/../..",
            "/lib64",
            "/tmp",
            "/missing/../../x",
        ] {
            let err = check(&root, &[(bad, true)]).unwrap_err().to_string();
            assert!(err.contains("`baseDir` of backend x"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_symlinked_component_leading_out_is_outside() {
        let (d, root) = server();
        let out = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(out.path(), d.path().join("var/lib/opsi/config")).unwrap();
        let err = check(&root, &[("/var/lib/opsi/config/sub", true)]).unwrap_err();
        assert!(err.to_string().contains("outside the root"), "{err}");
        // A symlink inside the root is followed: the target is where it points.
        std::os::unix::fs::symlink("opsi", d.path().join("var/lib/inside")).unwrap();
        let got = check(&root, &[("/var/lib/inside/depot", true)]).unwrap();
        assert_eq!(got[0], root.path().join("var/lib/opsi/depot"));
        std::os::unix::fs::symlink("/nowhere/at/all", d.path().join("var/lib/dangling")).unwrap();
        assert!(check(&root, &[("/var/lib/dangling/x", true)]).is_err());
    }

    #[test]
    fn overlapping_targets_are_refused() {
        let (_d, root) = server();
        for pair in [
            [("/etc/opsi", true), ("/etc/opsi/file", true)],
            [
                ("/var/lib/opsi/config", true),
                ("/var/lib/opsi/config", true),
            ],
            [("/var/lib/opsi/config/x", true), ("/var/lib/opsi", true)],
            [("/etc/opsi/pckeys", false), ("/etc/opsi/pckeys", false)],
            [("/etc/opsi/pckeys", false), ("/etc/opsi/pckeys", true)],
            [("/etc/opsi/dir", false), ("/etc/opsi/dir/x", true)],
        ] {
            assert!(check(&root, &pair).is_err(), "{pair:?}");
        }
        assert!(
            check(&root, &[("/etc/opsi", false)]).is_err(),
            "a dir as file"
        );
    }
}
