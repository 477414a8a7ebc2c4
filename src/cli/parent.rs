//! Completing the parent snapshot of a new snapshot: its files get their lines of the parent's
//! CONTROL/checksums, which the store keeps as an opaque member. The one place that knows both
//! the store and the archive's CONTROL format; create and import pass it to
//! `SnapshotWriter::take_parent`.

use crate::archive::control::{Checksums, CHECKSUMS};
use crate::error::Result;
use crate::parent::Parent;
use crate::store::Repository;

/// Reads `parent`'s CONTROL/checksums from `repo` and attaches each file's line.
pub(super) fn attach_checksums(repo: &Repository, parent: &mut Parent) -> Result<()> {
    let bytes = repo.parent_member(parent, CHECKSUMS)?.unwrap_or_default();
    let sums = Checksums::parse(&bytes);
    parent.attach_checksums(|path| sums.get(path).map(str::to_string));
    Ok(())
}
