//! Restored data is first built beside its destination and only then swapped in, so a restore
//! that fails half-way leaves the old data in place.
//!
//! A `StagedTree` is a fresh directory next to the destination (same file system, so the
//! swap is a rename, see `swap.rs`). Files are created with `O_EXCL | O_NOFOLLOW` below
//! directories this restore made itself, never through a symlink. A single file (dhcpd.conf,
//! pckeys) is written to a staging name in the destination's directory at commit time.
//! Staging names carry their owner (`leftovers.rs`), so a later run can clean up after a kill.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{copy_apart, CopyError, Error, IoContext, Result};
use crate::leftovers;
use crate::member::Member;
use crate::restore::meta::MetaApplier;
use crate::restore::swap::Pending;
use crate::restore::tree_links;
use crate::restore::writers::Writers;

/// A directory tree being rebuilt next to `dest`.
pub(crate) struct StagedTree {
    pub dest: PathBuf,
    pub staging: PathBuf,
    /// Directories whose metadata is applied last (creating children changes their mtime).
    dirs: Vec<(PathBuf, Member)>,
    /// Every symlink made (relative path, member), checked against the finished tree in `seal`.
    links: Vec<(PathBuf, String)>,
    /// The directory whose ancestors `place` checked last.
    checked: Option<PathBuf>,
    /// True once `into_pending` passed the staging directory on to the swap.
    handed_over: bool,
    /// The parent directory's times before the staging directory was made in it, put back
    /// when the staging directory goes without a swap: a restore that failed (a damaged chunk
    /// of bulk data is found while staging) leaves the live tree as it was, down to its mtime.
    parent_times: Option<(PathBuf, fs::Metadata)>,
}

impl StagedTree {
    /// `dest` is resolved already (`confine.rs`): a base directory that is a symlink to another
    /// disk is restored where the link points, and the link is kept.
    pub(crate) fn new(dest: &Path) -> Result<StagedTree> {
        let parent = dest
            .parent()
            .ok_or_else(|| Error::Invalid(format!("cannot restore to {}", dest.display())))?;
        fs::create_dir_all(parent).path_ctx("cannot create", parent)?;
        let parent_times = fs::metadata(parent).ok().map(|m| (parent.to_path_buf(), m));
        let staging = tempfile::Builder::new()
            .prefix(&leftovers::staged_prefix(dest))
            .tempdir_in(parent)
            .path_ctx("cannot create a staging directory in", parent)?
            .keep();
        Ok(StagedTree {
            dest: dest.to_path_buf(),
            staging,
            dirs: Vec::new(),
            links: Vec::new(),
            checked: None,
            handed_over: false,
            parent_times,
        })
    }

    /// The staged path for a checked relative path; every existing ancestor must be a real
    /// directory (not a symlink a previous member created).
    pub(crate) fn place(&mut self, member: &str, rel: &Path) -> Result<PathBuf> {
        // The files of a directory come one after another: its ancestors are checked once.
        // A directory found real stays so, as nothing staged is removed but files
        // (`replace_file`) and nothing is made where something is already.
        let whole = self.staging.join(rel);
        if whole
            .parent()
            .is_some_and(|p| self.checked.as_deref() == Some(p))
        {
            return Ok(whole);
        }
        let mut cur = self.staging.clone();
        let parts: Vec<_> = rel.components().collect();
        for (i, part) in parts.iter().enumerate() {
            cur.push(part);
            if i + 1 == parts.len() {
                break;
            }
            match fs::symlink_metadata(&cur) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(Error::UnsafePath(format!(
                        "{member}: its parent directory is a symlink"
                    )));
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(Error::Invalid(format!(
                        "{member}: a parent path is not a directory"
                    )))
                }
                Err(_) => {
                    fs::create_dir(&cur).path_ctx("cannot create", &cur)?;
                    fs::set_permissions(&cur, fs::Permissions::from_mode(0o700))
                        .path_ctx("cannot chmod", &cur)?;
                }
            }
        }
        self.checked = cur.parent().map(Path::to_path_buf);
        Ok(cur)
    }

    pub(crate) fn dir(&mut self, m: &Member, rel: &Path) -> Result<()> {
        let p = if rel.as_os_str().is_empty() {
            self.staging.clone()
        } else {
            self.place(&m.path, rel)?
        };
        match fs::symlink_metadata(&p) {
            Ok(md) if md.is_dir() => {}
            Ok(_) => {
                return Err(Error::Invalid(format!(
                    "{}: appears twice in the archive",
                    m.path
                )))
            }
            Err(_) => fs::create_dir(&p).path_ctx("cannot create", &p)?,
        }
        self.dirs.push((p, m.clone()));
        Ok(())
    }

    /// Creates the file and returns it for writing; metadata is applied by `finish_file`.
    pub(crate) fn file(&mut self, m: &Member, rel: &Path) -> Result<(PathBuf, File)> {
        let p = self.place(&m.path, rel)?;
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&p)
            .map_err(|e| {
                Error::io(
                    format!("cannot create {} for member {}", p.display(), m.path),
                    e,
                )
            })?;
        Ok((p, f))
    }

    /// Puts `content` at `rel` in the staged tree, replacing what a member put there.
    pub(crate) fn replace_file(
        &mut self,
        m: &Member,
        rel: &Path,
        content: &mut dyn Read,
        meta: &mut MetaApplier,
    ) -> Result<()> {
        let p = self.place(&m.path, rel)?;
        if let Ok(md) = fs::symlink_metadata(&p) {
            if md.is_dir() {
                return Err(Error::Invalid(format!(
                    "{}: a directory is in the way of {}",
                    m.path,
                    p.display()
                )));
            }
            fs::remove_file(&p).path_ctx("cannot replace", &p)?;
        }
        let (p, mut f) = self.file(m, rel)?;
        write_content(content, &mut f, m, &p)?;
        meta.apply(&p, m, false)
    }

    pub(crate) fn symlink(&mut self, m: &Member, rel: &Path, target: &str) -> Result<PathBuf> {
        let p = self.place(&m.path, rel)?;
        std::os::unix::fs::symlink(target, &p).path_ctx("cannot create symlink", &p)?;
        self.links.push((rel.to_path_buf(), m.path.clone()));
        Ok(p)
    }

    /// A hard link to a file restored before it; `writers` has created that file once its
    /// `wait_for` returns.
    pub(crate) fn hardlink(
        &mut self,
        m: &Member,
        rel: &Path,
        to_rel: &Path,
        writers: Option<&Writers>,
    ) -> Result<()> {
        let p = self.place(&m.path, rel)?;
        let src = self.place(&m.path, to_rel)?;
        if let Some(w) = writers {
            w.wait_for(&src)?;
        }
        if !fs::symlink_metadata(&src)
            .map(|md| md.is_file())
            .unwrap_or(false)
        {
            return Err(Error::Invalid(format!(
                "{}: hard link to a file that was not restored",
                m.path
            )));
        }
        fs::hard_link(&src, &p).path_ctx("cannot create hard link", &p)
    }

    /// Checks the finished tree's symlinks, applies the directories' metadata, deepest first,
    /// and syncs the tree.
    pub(crate) fn seal(&mut self, meta: &mut MetaApplier) -> Result<()> {
        tree_links::check(&self.staging, &self.links)?;
        self.dirs
            .sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
        for (p, m) in &self.dirs {
            meta.apply(p, m, false)?;
        }
        if !self.dirs.iter().any(|(p, _)| p == &self.staging) {
            fs::set_permissions(&self.staging, fs::Permissions::from_mode(0o755))
                .path_ctx("cannot chmod", &self.staging)?;
        }
        // One syncfs for the whole tree instead of an fsync per file: thousands of small
        // files would otherwise wait for the disk one by one.
        let dir = File::open(&self.staging).path_ctx("cannot open", &self.staging)?;
        // SAFETY: syncfs only reads the descriptor, which `dir` keeps open for the call.
        if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir)) } != 0 {
            return Err(Error::io(
                format!("cannot flush {} to disk", self.staging.display()),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// The sealed tree, ready to be swapped in; from now on the swap removes it.
    pub(crate) fn into_pending(mut self) -> Pending {
        self.handed_over = true;
        Pending {
            staged: self.staging.clone(),
            dest: self.dest.clone(),
        }
    }
}

impl Drop for StagedTree {
    fn drop(&mut self) {
        if !self.handed_over {
            let _ = fs::remove_dir_all(&self.staging);
            if let Some((parent, m)) = &self.parent_times {
                use std::os::unix::fs::MetadataExt;
                let t = |s: i64, ns: i64| nix::sys::time::TimeSpec::new(s, ns);
                // Best effort: the staging directory is gone either way.
                let _ = nix::sys::stat::utimensat(
                    None,
                    parent,
                    &t(m.atime(), m.atime_nsec()),
                    &t(m.mtime(), m.mtime_nsec()),
                    nix::sys::stat::UtimensatFlags::FollowSymlink,
                );
            }
        }
    }
}

/// Copies member `m`'s content into `out` (the file at `path`) through `copy_apart`'s 64 KiB
/// buffer (`io::copy` moves 8 KiB per call). A failed read is damage of the backup (every
/// chunk is checked as it is read), a failed write the target's (a full disk).
pub(crate) fn write_content(
    content: &mut dyn Read,
    out: &mut File,
    m: &Member,
    path: &Path,
) -> Result<()> {
    match copy_apart(content, out) {
        Ok(_) => Ok(()),
        Err(CopyError::Read(e)) => Err(Error::Corrupt(format!("{}: {e}", m.path))),
        Err(CopyError::Write(e)) => Err(e).path_ctx("cannot write", path),
    }
}

/// Writes `content` with `m`'s metadata to a staging file beside `dest`, made durable, for
/// the swap to put in place.
pub(crate) fn stage_file(
    dest: &Path,
    content: &mut dyn Read,
    m: &Member,
    meta: &mut MetaApplier,
) -> Result<Pending> {
    let parent = dest
        .parent()
        .ok_or_else(|| Error::Invalid(format!("cannot restore to {}", dest.display())))?;
    fs::create_dir_all(parent).path_ctx("cannot create", parent)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&leftovers::staged_prefix(dest))
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(parent)
        .path_ctx("cannot create a file in", parent)?;
    write_content(content, tmp.as_file_mut(), m, dest)?;
    tmp.flush().path_ctx("cannot write", dest)?;
    tmp.as_file().sync_all().path_ctx("cannot write", dest)?;
    meta.apply(tmp.path(), m, false)?;
    let staged = tmp
        .into_temp_path()
        .keep()
        .map_err(|e| Error::io(format!("cannot stage {}", dest.display()), e.error))?;
    Ok(Pending {
        staged,
        dest: dest.to_path_buf(),
    })
}
