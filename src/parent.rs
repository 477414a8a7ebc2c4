//! The parent snapshot of a backup: the newest snapshot of the same host, as restic's archiver
//! keeps it. An unchanged file (same size, mtime, inode and ctime as there) is stored again by
//! reference to the parent's data, without reading it; its CONTROL/checksums line is taken from
//! the parent too. Spec: `store-format/README.md`, section "Parent snapshots".
//!
//! This is knowledge between a source and the repository, so it lies beside both: the store
//! builds a `Parent` from a snapshot, the command line attaches the parent's checksums, sources
//! ask it whether a file is unchanged, sinks reuse its files. Imports only `member` and
//! `layout`.

use std::collections::HashMap;

use crate::layout;
use crate::member::Member;

/// A chunk's hash as the repository names it (BLAKE3 of its plain bytes).
pub type ChunkHash = [u8; 32];

/// Where a file's bytes lie in the repository: the repository's own references, which only the
/// repository reads. Plain data, so that sources and sinks need not know the store.
#[derive(Debug, Clone, Default)]
pub struct ContentRef {
    /// The file's chunks, in order.
    pub chunks: Vec<ChunkHash>,
    /// The chunks' index rows, as the parent's member list in the index gives them (empty
    /// when that list could not be read: the writer then looks the chunks up). They hold
    /// while the repository stays locked for a writer (prune and rebuild-index change rows):
    /// a writer takes its parent after it has begun.
    pub rows: Vec<i64>,
}

/// What a file looked like in the parent snapshot.
#[derive(Debug, Clone)]
pub struct ParentFile {
    pub member: Member,
    /// Its line in the parent's CONTROL/checksums (see `Parent::attach_checksums`).
    pub sha1: Option<String>,
    pub content: ContentRef,
}

impl ParentFile {
    /// Whether `now` (just read from the file system) shows the same file, unchanged. Archive
    /// content also needs its CONTROL/checksums line; bulk data (`DATA/`) has none.
    pub fn unchanged(&self, now: &Member) -> bool {
        let p = &self.member;
        now.stamp.is_some()
            && p.stamp == now.stamp
            && p.size == now.size
            && p.mtime == now.mtime
            && p.kind == now.kind
            && (self.sha1.is_some() || !layout::is_content(&now.path))
    }
}

/// The parent snapshot's files, by archive path.
#[derive(Debug, Default)]
pub struct Parent {
    pub snapshot: String,
    files: HashMap<String, ParentFile>,
    /// The chunks of its other file members (streamed ones, such as a MySQL dump, and the
    /// CONTROL members), with their sizes.
    streams: HashMap<String, (Vec<ChunkHash>, u64)>,
}

impl Parent {
    /// An empty parent for snapshot `snapshot`, filled by `add_file` and `add_stream`.
    pub fn new(snapshot: String) -> Parent {
        Parent {
            snapshot,
            ..Parent::default()
        }
    }

    /// A file that came from a file system (one with a stamp): a candidate for reuse.
    pub fn add_file(&mut self, file: ParentFile) {
        self.files.insert(file.member.path.clone(), file);
    }

    /// Any other file member: only its chunks and size are kept.
    pub fn add_stream(&mut self, path: String, chunks: Vec<ChunkHash>, size: u64) {
        self.streams.insert(path, (chunks, size));
    }

    /// Gives every file its line of the parent's CONTROL/checksums: `sha1_of` answers for an
    /// archive path. A file without one is never reused.
    pub fn attach_checksums(&mut self, sha1_of: impl Fn(&str) -> Option<String>) {
        for (path, f) in self.files.iter_mut() {
            f.sha1 = sha1_of(path);
        }
    }

    pub fn get(&self, path: &str) -> Option<&ParentFile> {
        self.files.get(path)
    }

    /// The chunks member `path` had in the parent: the older version a writer compresses
    /// its changed chunks against (spec: "Delta groups"), or the bytes of a CONTROL member.
    pub fn chunks(&self, path: &str) -> Option<&[ChunkHash]> {
        match self.files.get(path) {
            Some(f) => Some(&f.content.chunks),
            None => self.streams.get(path).map(|(chunks, _)| chunks.as_slice()),
        }
    }

    /// The size member `path` had in the parent: what a progress bar expects of it again.
    pub fn size(&self, path: &str) -> Option<u64> {
        match self.files.get(path) {
            Some(f) => Some(f.member.size),
            None => self.streams.get(path).map(|(_, size)| *size),
        }
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> ParentFile {
        let mut member = Member::control(path, 3);
        member.stamp = Some(crate::member::FileStamp {
            ino: 1,
            ctime_ns: 2,
        });
        ParentFile {
            member,
            sha1: None,
            content: ContentRef {
                chunks: vec![[1; 32]],
                rows: vec![7],
            },
        }
    }

    /// A file is only unchanged once its checksum line is attached.
    #[test]
    fn checksums_make_files_reusable() {
        let mut p = Parent::new("s".into());
        p.add_file(file("CONTENT/a"));
        p.add_file(file("CONTENT/b"));
        p.add_stream("CONTENT/dump".into(), vec![[2; 32]], 900);
        let now = file("CONTENT/a").member;
        assert!(!p.get("CONTENT/a").unwrap().unchanged(&now));
        p.attach_checksums(|path| (path == "CONTENT/a").then(|| "ab".to_string()));
        assert!(p.get("CONTENT/a").unwrap().unchanged(&now));
        assert_eq!(p.get("CONTENT/b").unwrap().sha1, None);
        assert_eq!(p.chunks("CONTENT/dump"), Some(&[[2u8; 32]][..]));
        assert_eq!(p.chunks("CONTENT/a"), Some(&[[1u8; 32]][..]));
        assert_eq!(p.size("CONTENT/dump"), Some(900));
        assert_eq!(p.size("CONTENT/c"), None);
        assert_eq!(p.len(), 2);
    }

    /// Bulk data has no checksum line: its stamp alone says it is unchanged.
    #[test]
    fn data_files_need_no_checksum() {
        let mut p = Parent::new("s".into());
        p.add_file(file("DATA/DEPOT/a"));
        let now = file("DATA/DEPOT/a").member;
        assert!(p.get("DATA/DEPOT/a").unwrap().unchanged(&now));
        let mut touched = now.clone();
        touched.stamp = Some(crate::member::FileStamp {
            ino: 1,
            ctime_ns: 3,
        });
        assert!(!p.get("DATA/DEPOT/a").unwrap().unchanged(&touched), "ctime");
        touched.stamp = Some(crate::member::FileStamp {
            ino: 9,
            ctime_ns: 2,
        });
        assert!(!p.get("DATA/DEPOT/a").unwrap().unchanged(&touched), "inode");
    }
}
