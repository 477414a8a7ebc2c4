//! Making staged data live, all targets or none.
//!
//! Each target is swapped with `renameat2(RENAME_EXCHANGE)`: the destination is never missing,
//! and the old data ends up under the staging name, where it stays until every target is in.
//! When the file system cannot exchange (EINVAL, ENOSYS) the old data is renamed aside
//! (`.<name>.opsi-backup-old-<owner>…`) and the staged data renamed into place; a run killed
//! between those two renames leaves the destination missing, and the next run puts the old
//! data back (`leftovers.rs`). If a later target fails, every swapped one is swapped back.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::durable::sync_parent;
use crate::error::{Error, IoContext, Result};
use crate::fail_points::fail_point;
use crate::leftovers;
use crate::logging;

/// Staged data waiting to replace `dest`.
pub(crate) struct Pending {
    pub staged: PathBuf,
    pub dest: PathBuf,
}

/// A target that was swapped in; `old` holds what it replaced, if anything.
struct Swapped {
    staged: PathBuf,
    dest: PathBuf,
    old: Option<PathBuf>,
    exchanged: bool,
}

fn c_path(p: &Path) -> std::io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))
}

/// Atomically exchanges two paths; `Ok(false)` when the file system cannot.
fn exchange(a: &Path, b: &Path) -> std::io::Result<bool> {
    let (ca, cb) = (c_path(a)?, c_path(b)?);
    // SAFETY: both strings are NUL-terminated and live across the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) => Ok(false),
        _ => Err(e),
    }
}

fn swap_in(p: &Pending) -> Result<Swapped> {
    let ctx = |e| {
        Error::io(
            format!("cannot swap in the restored {}", p.dest.display()),
            e,
        )
    };
    let mut s = Swapped {
        staged: p.staged.clone(),
        dest: p.dest.clone(),
        old: None,
        exchanged: false,
    };
    if std::fs::symlink_metadata(&p.dest).is_err() {
        std::fs::rename(&p.staged, &p.dest).map_err(ctx)?;
    } else if exchange(&p.staged, &p.dest).map_err(ctx)? {
        s.old = Some(p.staged.clone());
        s.exchanged = true;
    } else {
        let parent = p.dest.parent().expect("a checked target has a parent");
        let aside = tempfile::Builder::new()
            .prefix(&leftovers::aside_prefix(&p.dest))
            .tempdir_in(parent)
            .path_ctx("cannot prepare the swap in", parent)?
            .keep();
        std::fs::remove_dir(&aside).path_ctx("cannot prepare the swap in", parent)?;
        std::fs::rename(&p.dest, &aside).map_err(ctx)?;
        if let Err(e) = std::fs::rename(&p.staged, &p.dest) {
            let _ = std::fs::rename(&aside, &p.dest);
            return Err(ctx(e));
        }
        s.old = Some(aside);
    }
    Ok(s)
}

impl Swapped {
    /// Puts the old data back; the restored data ends up at the staging name.
    fn undo(&self) -> std::io::Result<()> {
        match &self.old {
            Some(_) if self.exchanged => exchange(&self.staged, &self.dest).map(|_| ()),
            Some(old) => {
                std::fs::rename(&self.dest, &self.staged)?;
                std::fs::rename(old, &self.dest)
            }
            None => std::fs::rename(&self.dest, &self.staged),
        }
    }
}

/// Swaps every pending target in, in order. On failure the swapped ones are swapped back (in
/// reverse), all staged data is removed, and the error says whether the rollback worked. On
/// success the replaced data is removed. `done` is called with each target once it is live.
pub(crate) fn swap_all(pending: Vec<Pending>, mut done: impl FnMut(&Path)) -> Result<()> {
    let mut swapped: Vec<Swapped> = Vec::new();
    let mut failure = None;
    for (i, p) in pending.iter().enumerate() {
        match fail_point(&format!("restore-swap-{}", i + 1)).and_then(|_| swap_in(p)) {
            Ok(s) => {
                // Not durable is not done: a failed fsync of the directory fails the restore,
                // and this target is rolled back with the others.
                let synced = sync_parent(&s.dest);
                swapped.push(s);
                if let Err(e) = synced {
                    failure = Some(e);
                    break;
                }
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    if let Some(e) = failure {
        let mut not_back = Vec::new();
        for (i, s) in swapped.iter().enumerate().rev() {
            match s.undo() {
                Ok(()) => {
                    if let Err(e) = sync_parent(&s.dest) {
                        logging::warning(format!("{} was put back, but {e}", s.dest.display()));
                    }
                }
                Err(u) => not_back.push((i, s, u)),
            }
        }
        // Staged data is removed, except where an undo failed: there it may be the old data.
        for (i, p) in pending.iter().enumerate() {
            if !not_back.iter().any(|(j, _, _)| *j == i) {
                let _ = leftovers::remove_any(&p.staged);
            }
        }
        if !not_back.is_empty() {
            let list: Vec<String> = not_back
                .iter()
                .map(|(_, s, u)| {
                    let old = s.old.as_deref().unwrap_or(&s.staged);
                    format!(
                        "{} (its old data is at {}): {u}",
                        s.dest.display(),
                        old.display()
                    )
                })
                .collect();
            return Err(Error::Invalid(format!(
                "{e}; the targets already restored could not all be put back: {}",
                list.join("; ")
            )));
        }
        return Err(Error::Invalid(format!(
            "{e}; every target restored before it was put back as it was"
        )));
    }
    for s in &swapped {
        done(&s.dest);
        if let Some(old) = &s.old {
            if let Err(e) = leftovers::remove_any(old) {
                logging::warning(format!(
                    "restored, but could not remove the old data at {}: {e}",
                    old.display()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn pending(dir: &Path, name: &str, new: &str) -> Pending {
        let staged = dir.join(format!(".{name}.staged"));
        fs::create_dir(&staged).unwrap();
        fs::write(staged.join("v"), new).unwrap();
        Pending {
            staged,
            dest: dir.join(name),
        }
    }

    #[test]
    fn all_targets_swap_in_and_old_data_is_removed() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("a")).unwrap();
        fs::write(d.path().join("a/v"), "old").unwrap();
        let list = vec![
            pending(d.path(), "a", "new a"),
            pending(d.path(), "b", "new b"),
        ];
        let mut live = Vec::new();
        swap_all(list, |p| live.push(p.to_path_buf())).unwrap();
        assert_eq!(fs::read_to_string(d.path().join("a/v")).unwrap(), "new a");
        assert_eq!(fs::read_to_string(d.path().join("b/v")).unwrap(), "new b");
        assert_eq!(live.len(), 2);
        assert_eq!(
            fs::read_dir(d.path()).unwrap().count(),
            2,
            "nothing left beside"
        );
    }

    #[test]
    fn a_failing_target_puts_the_swapped_ones_back() {
        let d = tempfile::tempdir().unwrap();
        for n in ["a", "c"] {
            fs::create_dir(d.path().join(n)).unwrap();
            fs::write(d.path().join(n).join("v"), "old").unwrap();
        }
        let mut list = vec![
            pending(d.path(), "a", "new a"),
            pending(d.path(), "b", "new b"),
        ];
        // The third cannot be swapped in: its staged data is missing.
        list.push(Pending {
            staged: d.path().join(".c.missing"),
            dest: d.path().join("c"),
        });
        let err = swap_all(list, |_| {}).unwrap_err().to_string();
        assert!(err.contains("put back as it was"), "{err}");
        assert_eq!(fs::read_to_string(d.path().join("a/v")).unwrap(), "old");
        assert_eq!(fs::read_to_string(d.path().join("c/v")).unwrap(), "old");
        assert!(!d.path().join("b").exists(), "a new target is gone again");
        assert_eq!(
            fs::read_dir(d.path()).unwrap().count(),
            2,
            "no staging left"
        );
    }
}
