//! A restored path's metadata: owner (by name), mode, extended attributes and mtime, set on
//! the staged path by the replaying thread and the writer threads (`writers.rs`) alike.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};
use crate::layout;
use crate::logging;
use crate::member::Member;
use crate::owners::Owners;
use crate::restore::xattrs;

/// Applies a member's mode, owner (by name), extended attributes and mtime to a restored path.
pub(crate) struct MetaApplier {
    owners: Owners,
    warned: std::collections::HashSet<String>,
    /// Files whose extended attributes could not all be restored (`xattrs.rs`), counted by
    /// this thread and the writer threads (`writers.rs`) alike.
    pub(crate) xattr_failures: Arc<AtomicU64>,
}

/// A member's owner as ids of this system (`MetaApplier::owner`).
#[derive(Clone, Copy)]
pub(crate) struct Owner {
    uid: Option<u32>,
    gid: Option<u32>,
}

impl MetaApplier {
    pub(crate) fn new() -> MetaApplier {
        MetaApplier {
            owners: Owners::default(),
            warned: Default::default(),
            xattr_failures: Arc::default(),
        }
    }

    /// Owner by name; an empty name means the numeric id; an unknown name keeps the restoring
    /// user as owner and warns once (a numeric fallback could hand secrets to a stranger).
    pub(crate) fn owner(&mut self, m: &Member) -> Owner {
        Owner {
            uid: self.id(&m.uname, m.uid, true),
            gid: self.id(&m.gname, m.gid, false),
        }
    }

    pub(crate) fn apply(&mut self, path: &Path, m: &Member, is_symlink: bool) -> Result<()> {
        let owner = self.owner(m);
        apply_meta(path, m, is_symlink, owner, &self.xattr_failures)
    }

    fn id(&mut self, name: &str, numeric: u64, user: bool) -> Option<u32> {
        if name.is_empty() {
            return u32::try_from(numeric).ok();
        }
        let found = if user {
            self.owners.uid_of(name)
        } else {
            self.owners.gid_of(name)
        };
        if found.is_none() {
            let what = if user { "user" } else { "group" };
            self.warn_once(
                format!("{what} {name}"),
                format!(
                    "{what} '{name}' does not exist here: files keep the restoring user's {what}"
                ),
            );
        }
        found
    }

    fn warn_once(&mut self, key: String, msg: String) {
        if self.warned.insert(key) {
            logging::warning(msg);
        }
    }
}

/// Sets owner, mode, extended attributes and mtime of a restored path, in that order: after
/// chown (which drops security.capability) and chmod (which would rewrite an ACL's mask) come
/// the attributes, which move the ctime only, so the mtime comes last still. A refused chown
/// is a warning (a restore as another user), as are refused attributes (`xattrs.rs`).
pub(crate) fn apply_meta(
    path: &Path,
    m: &Member,
    is_symlink: bool,
    owner: Owner,
    xattr_failures: &AtomicU64,
) -> Result<()> {
    if let Err(e) = nix::unistd::fchownat(
        None,
        path,
        owner.uid.map(nix::unistd::Uid::from_raw),
        owner.gid.map(nix::unistd::Gid::from_raw),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        logging::warning(format!("cannot set owner of {}: {e}", path.display()));
    }
    if !is_symlink {
        fs::set_permissions(path, fs::Permissions::from_mode(m.mode & 0o7777))
            .path_ctx("cannot set mode of", path)?;
    }
    if layout::is_data(&m.path) {
        xattrs::apply(path, m, is_symlink, xattr_failures);
    }
    let (secs, nanos) = m.mtime.precise();
    let t = nix::sys::time::TimeSpec::new(secs, i64::from(nanos));
    nix::sys::stat::utimensat(
        None,
        path,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| Error::io(format!("cannot set mtime of {}", path.display()), e.into()))?;
    Ok(())
}

impl Default for MetaApplier {
    fn default() -> Self {
        Self::new()
    }
}
