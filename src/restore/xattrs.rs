//! A restored bulk data file's extended attributes and POSIX ACLs, set as the member records
//! them, on the staged file before the swap. An ACL the staged file inherited from a default
//! ACL of its new directory, which the member did not have, is removed: the file comes back as
//! it was, not as its new place would make it.
//!
//! Never fatal: a file system without extended attributes (or a name it refuses) costs the
//! attributes, not the restore. Each such file is named in a warning (the first
//! `NAMED_WARNINGS` of them; the restore counts the rest and says so at its end), since the
//! administrator restoring a depot needs the data back first and can re-apply ACLs later,
//! while an all-or-nothing refusal would leave no way to restore onto such a disk at all.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::logging;
use crate::member::Member;

const ACL_NAMES: [&str; 2] = ["system.posix_acl_access", "system.posix_acl_default"];

/// Files named one by one in a warning; past that they are only counted.
pub(crate) const NAMED_WARNINGS: u64 = 20;

/// Sets `m`'s attributes on `path` (never through a symlink). `failures` counts the files of
/// this restore (on any of its threads) whose attributes could not all be set.
pub(crate) fn apply(path: &Path, m: &Member, is_symlink: bool, failures: &AtomicU64) {
    let mut errors = Vec::new();
    if !is_symlink {
        for name in ACL_NAMES {
            if m.xattrs.iter().any(|x| x.name == name) {
                continue;
            }
            match xattr::remove(path, name) {
                Ok(()) => {}
                Err(e) if absent_or_unsupported(&e) => {}
                Err(e) => errors.push(format!("removing the inherited {name}: {e}")),
            }
        }
    }
    for x in &m.xattrs {
        if let Err(e) = xattr::set(path, &x.name, &x.value) {
            errors.push(format!("{}: {e}", x.name));
        }
    }
    if errors.is_empty() {
        return;
    }
    if failures.fetch_add(1, Ordering::Relaxed) < NAMED_WARNINGS {
        logging::warning(format!(
            "{}: extended attributes not restored ({})",
            m.path,
            errors.join("; ")
        ));
    }
}

fn absent_or_unsupported(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::Unsupported
        || matches!(
            e.raw_os_error(),
            Some(libc::ENOTSUP) | Some(libc::ENOSYS) | Some(libc::ENODATA)
        )
}
