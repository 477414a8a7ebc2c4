//! The store's side of a parent snapshot (`crate::parent`): building a `Parent` from the
//! newest snapshot of a host, and reading a member of it back (the command line reads its
//! CONTROL/checksums there). Spec: `store-format/README.md`, section "Parent snapshots".

use crate::error::{IoContext, Result};
use crate::member::Member;
use crate::parent::{ContentRef, Parent, ParentFile};
use crate::store::reader::read_snapshot_file;
use crate::store::reader::ChunkFetcher;
use crate::store::{index, Repository, Series};

impl Repository {
    /// The newest opsi-backup snapshot of `host` as a parent, or `None` when there is none.
    /// Files that came from a file system (with a stamp) are kept as candidates for reuse,
    /// without checksums; of the other file members, the chunks.
    pub fn parent(&self, host: &str) -> Result<Option<Parent>> {
        self.parent_in_series(host, &Series::of(&[]))
    }

    /// The newest snapshot of `host` in `series`, else the newest of its kind (a first
    /// snapshot of a new series still finds older versions of its streams there). An
    /// opsiconfd backup's streams are the older versions of the next one's, never of an
    /// opsi-backup archive's members.
    pub fn parent_in_series(&self, host: &str, series: &Series) -> Result<Option<Parent>> {
        let snapshots = self.snapshots()?;
        let found = snapshots
            .iter()
            .rfind(|s| s.host == host && s.series() == *series)
            .or_else(|| {
                snapshots
                    .iter()
                    .rfind(|s| s.host == host && s.kind() == series.kind())
            });
        match found {
            Some(info) => self.parent_from(&info.id).map(Some),
            None => Ok(None),
        }
    }

    /// Snapshot `id` as a parent.
    fn parent_from(&self, id: &str) -> Result<Parent> {
        let mut parent = Parent::new(id.to_string()).spill_in(self.root());
        let conn = self.conn();
        // The index's chunk lists of the parent: a damaged one only costs lookups.
        let mut lists = index::snapshot_row(&conn, id)
            .and_then(|row| index::ChunkLists::of(&conn, row))
            .ok();
        read_snapshot_file(&conn, self.storage(), id, |m: Member, chunks| {
            let rows = match lists.as_mut().map(|l| l.next_member()) {
                Some(Ok(Some(rows))) if rows.len() == chunks.len() => rows,
                _ => {
                    lists = None;
                    Vec::new()
                }
            };
            if m.is_file() && m.stamp.is_some() {
                // A reused file's record takes its attributes from the file system, never from
                // the parent: not kept, so a depot with an ACL on every file costs no memory.
                let m = Member {
                    xattrs: Vec::new(),
                    ..m
                };
                parent
                    .add_file(ParentFile {
                        member: m,
                        sha1: None,
                        content: ContentRef { chunks, rows },
                    })
                    .ctx("cannot write the parent snapshot's file list")?;
            } else if m.is_file() && !chunks.is_empty() {
                parent.add_stream(m.path, chunks, m.size);
            }
            Ok(())
        })?;
        Ok(parent)
    }

    /// The bytes of `parent`'s member `path` (a short one: they are held in memory), each chunk
    /// checked; `None` when the parent has no such member with content.
    pub fn parent_member(&self, parent: &Parent, path: &str) -> Result<Option<Vec<u8>>> {
        let Some(chunks) = parent.chunks(path) else {
            return Ok(None);
        };
        let conn = self.conn();
        let mut fetcher = ChunkFetcher::new(&conn, self.storage());
        let mut out = Vec::new();
        for id in &chunks {
            out.extend_from_slice(&fetcher.fetch_hash(id, &format!("member {path}"))?);
        }
        Ok(Some(out))
    }
}
