//! The parent snapshot of a backup: the newest snapshot of the same host. An unchanged file
//! (same size, mtime, inode and ctime as there) is stored again by reference to the parent's
//! chunks, without reading it, as restic does; its CONTROL/checksums line is taken from the
//! parent too. Spec: `store-format/README.md`, section "Parent snapshots".

use std::collections::HashMap;

use crate::archive::control::{Checksums, CHECKSUMS};
use crate::error::Result;
use crate::member::Member;
use crate::store::chunker::ChunkId;
use crate::store::reader::read_snapshot_file;
use crate::store::reader::ChunkFetcher;
use crate::store::{index, Repository};

/// What a file looked like in the parent snapshot.
#[derive(Debug, Clone)]
pub struct PreviousFile {
    pub member: Member,
    pub(crate) chunks: Vec<ChunkId>,
    /// The chunks' index rows, as the parent's member list in the index gives them (empty
    /// when that list could not be read: the writer then looks the chunks up). They hold
    /// while the repository stays locked for a writer (prune and rebuild-index change rows):
    /// a writer takes its parent after it has begun.
    pub(crate) rows: Vec<i64>,
    /// Its line in the parent's CONTROL/checksums.
    pub sha1: Option<String>,
}

impl PreviousFile {
    /// Whether `now` (just read from the file system) shows the same file, unchanged.
    pub fn unchanged(&self, now: &Member) -> bool {
        let p = &self.member;
        now.stamp.is_some()
            && p.stamp == now.stamp
            && p.size == now.size
            && p.mtime == now.mtime
            && p.kind == now.kind
            && self.sha1.is_some()
    }
}

/// The parent snapshot's files, by archive path.
#[derive(Debug, Default)]
pub struct Previous {
    pub snapshot: String,
    files: HashMap<String, PreviousFile>,
    /// The chunks of its other file members (streamed ones, such as a MySQL dump).
    streams: HashMap<String, Vec<ChunkId>>,
}

impl Previous {
    pub fn get(&self, path: &str) -> Option<&PreviousFile> {
        self.files.get(path)
    }

    /// The chunks member `path` had in the parent: the older version a writer compresses
    /// its changed chunks against (spec: "Delta groups").
    pub(crate) fn chunks(&self, path: &str) -> Option<&[ChunkId]> {
        match self.files.get(path) {
            Some(f) => Some(&f.chunks),
            None => self.streams.get(path).map(Vec::as_slice),
        }
    }
    pub fn len(&self) -> usize {
        self.files.len()
    }
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

impl Repository {
    /// The newest snapshot of `host` as a parent, or `None` when there is none. Only members
    /// that came from a file system (with a stamp) are kept.
    pub fn previous(&self, host: &str) -> Result<Option<Previous>> {
        let Some(info) = self.snapshots()?.into_iter().rfind(|s| s.host == host) else {
            return Ok(None);
        };
        let mut files = HashMap::new();
        let mut streams = HashMap::new();
        let mut checksum_chunks = Vec::new();
        let conn = self.conn();
        // The index's chunk lists of the parent: a damaged one only costs lookups.
        let mut lists = index::snapshot_row(&conn, &info.id)
            .and_then(|row| index::ChunkLists::of(&conn, row))
            .ok();
        read_snapshot_file(&conn, self.root(), &info.id, |m, chunks| {
            let rows = match lists.as_mut().map(|l| l.next_member()) {
                Some(Ok(Some(rows))) if rows.len() == chunks.len() => rows,
                _ => {
                    lists = None;
                    Vec::new()
                }
            };
            if m.path == CHECKSUMS {
                checksum_chunks = chunks.clone();
                streams.insert(m.path, chunks);
            } else if m.is_file() && m.stamp.is_some() {
                files.insert(
                    m.path.clone(),
                    PreviousFile {
                        member: m,
                        chunks,
                        rows,
                        sha1: None,
                    },
                );
            } else if m.is_file() && !chunks.is_empty() {
                streams.insert(m.path, chunks);
            }
            Ok(())
        })?;
        drop(conn);
        let sums = Checksums::parse(&self.read_chunks(&checksum_chunks, CHECKSUMS)?);
        for (path, f) in files.iter_mut() {
            f.sha1 = sums.get(path).map(str::to_string);
        }
        Ok(Some(Previous {
            snapshot: info.id,
            files,
            streams,
        }))
    }

    /// The bytes of a short member, chunk by chunk, each checked.
    fn read_chunks(&self, chunks: &[ChunkId], member: &str) -> Result<Vec<u8>> {
        let conn = self.conn();
        let mut fetcher = ChunkFetcher::new(&conn, self.root());
        let mut out = Vec::new();
        for id in chunks {
            out.extend_from_slice(&fetcher.fetch_hash(id, &format!("member {member}"))?);
        }
        Ok(out)
    }
}
