//! Members of snapshots with their chunk lists, their bytes left unread: what `diff` needs to
//! compare two snapshots of a depot without reading every byte of both. Equal chunk lists are
//! equal bytes; other lists may still hold the same bytes (cut with other chunk sizes by
//! another build), which `same_bytes` settles by reading just those two.
//! Spec: `store-format/README.md`, section "Reading and verification".

use std::cell::RefCell;
use std::io::{self, Read};

use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::member::Member;
use crate::parent::ChunkHash;
use crate::store::chunk_stream::ChunkStream;
use crate::store::index;
use crate::store::lock::{LockKind, RepoLock};
use crate::store::reader::{read_snapshot_file, ChunkFetcher};
use crate::store::Repository;

/// What `MemberChunks::members` calls with each member: its chunks, and its bytes if asked.
pub type MemberVisit<'a> =
    dyn FnMut(&Member, &[ChunkHash], Option<&mut dyn Read>) -> Result<()> + 'a;

/// Reads snapshots of one repository under its shared lock, through a connection of its own.
pub struct MemberChunks<'r> {
    repo: &'r Repository,
    conn: Connection,
    _lock: RepoLock,
}

impl Repository {
    /// A reader of snapshots' members with their chunk lists (`MemberChunks`).
    pub fn member_chunks(&self) -> Result<MemberChunks<'_>> {
        let lock = self.lock(LockKind::Shared, "read snapshots")?;
        Ok(MemberChunks {
            repo: self,
            conn: index::connect(&self.index_path())?,
            _lock: lock,
        })
    }
}

impl MemberChunks<'_> {
    /// Calls `f` with every member of snapshot `id` (anything `resolve` accepts), in order,
    /// and its chunks; a file `content_of` accepts comes with its bytes (read and checked),
    /// every other member without. Memory: the reader's caches, never the member list.
    pub fn members(
        &self,
        id: &str,
        content_of: &dyn Fn(&Member) -> bool,
        f: &mut MemberVisit<'_>,
    ) -> Result<()> {
        let info = self.repo.resolve(id)?;
        let storage = self.repo.storage();
        // One fetcher for the whole snapshot: its cache of decompressed groups serves the
        // next member, whose chunks mostly lie in the same (4 MiB) group.
        let mut fetcher = ChunkFetcher::new(&self.conn, storage);
        read_snapshot_file(&self.conn, storage, &info.id, |m, chunks| {
            if !content_of(&m) {
                return f(&m, &chunks, None);
            }
            if !m.is_file() {
                return f(&m, &chunks, Some(&mut io::empty()));
            }
            let user = format!("member {}", m.path);
            let mut content =
                ChunkStream::new(chunks.iter(), |c: &ChunkHash| fetcher.fetch_hash(c, &user));
            let res = f(&m, &chunks, Some(&mut content));
            if let Some(e) = content.error.take() {
                return Err(e);
            }
            res?;
            let rest = io::copy(&mut content, &mut io::sink());
            if let Some(e) = content.error.take() {
                return Err(e);
            }
            rest.map_err(|e| Error::io(format!("reading member {}", m.path), e))?;
            if content.produced != m.size {
                return Err(Error::Corrupt(format!(
                    "member {}: its chunks hold {} bytes, its metadata says {}",
                    m.path, content.produced, m.size
                )));
            }
            Ok(())
        })
        .map(|_| ())
    }

    /// A comparer of contents by their chunks, keeping the groups it decompressed for the
    /// next comparison.
    pub fn bytes(&self) -> SameBytes<'_> {
        SameBytes {
            fetcher: RefCell::new(ChunkFetcher::new(&self.conn, self.repo.storage())),
        }
    }
}

/// Compares the bytes behind two chunk lists (`MemberChunks::bytes`).
pub struct SameBytes<'c> {
    fetcher: RefCell<ChunkFetcher<'c>>,
}

impl SameBytes<'_> {
    /// Whether chunk lists `a` and `b` hold the same bytes: equal lists do without a read;
    /// other lists are read side by side (each chunk checked) up to their first difference.
    /// `what` names the member in errors.
    pub fn same(&self, a: &[ChunkHash], b: &[ChunkHash], what: &str) -> Result<bool> {
        if a == b {
            return Ok(true);
        }
        let user = format!("member {what}");
        let fetch = |c: &ChunkHash| self.fetcher.borrow_mut().fetch_hash(c, &user);
        let mut x = ChunkStream::new(a.iter(), fetch);
        let mut y = ChunkStream::new(b.iter(), fetch);
        let (mut bx, mut by) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
        loop {
            let nx = fill(&mut x, &mut bx);
            if let Some(e) = x.error.take() {
                return Err(e);
            }
            let ny = fill(&mut y, &mut by);
            if let Some(e) = y.error.take() {
                return Err(e);
            }
            let reading = |e| Error::io(format!("reading member {what}"), e);
            let (nx, ny) = (nx.map_err(reading)?, ny.map_err(reading)?);
            if nx != ny || bx[..nx] != by[..ny] {
                return Ok(false);
            }
            if nx == 0 {
                return Ok(true);
            }
        }
    }
}

/// Reads `buf` full, or up to the end of `r`.
fn fill(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::MemberSink;
    use crate::store::tests::{meta, noise};

    /// The same bytes as archive content (cut at the repository's sizes) and as bulk data
    /// (cut at 512 KiB): other chunk lists, the same bytes; members come with their chunks,
    /// and with their bytes only where asked.
    #[test]
    fn other_chunk_lists_of_the_same_bytes_are_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(&dir.path().join("repo")).unwrap();
        let bytes = noise(300_000, 5);
        let mut other = bytes.clone();
        other[299_000] ^= 1;
        let mut w = repo.begin_snapshot(meta("s")).unwrap();
        for (path, b) in [
            ("CONTENT/x", &bytes),
            ("DATA/DEPOT/p/x", &bytes),
            ("DATA/DEPOT/p/y", &other),
        ] {
            w.add(&Member::control(path, b.len() as u64), &mut &b[..])
                .unwrap();
        }
        let info = w.commit().unwrap();
        let reader = repo.member_chunks().unwrap();
        let mut got = Vec::new();
        reader
            .members(
                &info.id,
                &|m| m.path.starts_with("CONTENT/"),
                &mut |m, chunks, content| {
                    let mut read = Vec::new();
                    if let Some(c) = content {
                        c.read_to_end(&mut read).unwrap();
                    }
                    got.push((m.path.clone(), chunks.to_vec(), read));
                    Ok(())
                },
            )
            .unwrap();
        let paths: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
        assert_eq!(paths, ["CONTENT/x", "DATA/DEPOT/p/x", "DATA/DEPOT/p/y"]);
        assert_eq!(got[0].2, bytes, "archive content with its bytes");
        assert!(
            got[1].2.is_empty() && got[2].2.is_empty(),
            "bulk data unread"
        );
        let (fine, bulk, changed) = (&got[0].1, &got[1].1, &got[2].1);
        assert!(fine.len() > bulk.len(), "{} {}", fine.len(), bulk.len());
        let same = reader.bytes();
        assert!(same.same(fine, bulk, "x").unwrap());
        assert!(same.same(bulk, fine, "x").unwrap());
        assert!(!same.same(fine, changed, "y").unwrap());
        assert!(!same.same(bulk, &changed[..changed.len() - 1], "y").unwrap());
        assert!(same.same(&[], &[], "empty").unwrap());
    }
}
