//! Reading snapshots back: members in order, file contents chunk by chunk, every chunk's
//! BLAKE3 checked as it is read. Memory: a few decompressed groups (at most 32 MiB) and one
//! chunk. Chunks are found through the index; a snapshot file's metadata stream is read here
//! too (`read_snapshot_file`), as the snapshot format (`snapshot.rs`) knows no index.
//! Spec: `store-format/README.md`, section "Reading and verification".

use std::collections::HashMap;
use std::io::{self, Read};

use rusqlite::Connection;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::member::Member;
use crate::sink::MemberSink;
use crate::store::chunker::ChunkId;
use crate::store::index;
use crate::store::pack;
use crate::store::snapshot::{read_snapshot, SnapshotFile};
use crate::store::storage::{pack_key, Object, Storage};

/// Decompressed groups kept by a reader. A member of a later night alternates between the
/// first night's groups and the small groups of each night's changes; keeping a few avoids
/// decompressing a (4 MiB) group again for every change. Bounded: at most this many bytes.
const GROUP_CACHE_BYTES: usize = 32 << 20;

/// Group buffers kept for reuse beyond the cache: one for the stored bytes being read and one
/// for the plain bytes being decompressed suffice.
const SPARE_BUFFERS: usize = 2;

/// Fetches chunks by index row id, caching the last opened pack and the recently used
/// decompressed groups.
pub(crate) struct ChunkFetcher<'c> {
    conn: &'c Connection,
    storage: &'c dyn Storage,
    file: Option<(String, Box<dyn Object>)>,
    /// Most recently used last.
    groups: Vec<((String, u64), Vec<u8>)>,
    /// Buffers of groups dropped from the cache and the stored bytes of the last group read,
    /// reused: a fresh 4 MiB buffer per group costs more in page faults than its copy.
    spare: Vec<Vec<u8>>,
    /// The zstd context, reused from group to group.
    dctx: Option<zstd::bulk::Decompressor<'static>>,
}

impl<'c> ChunkFetcher<'c> {
    pub(crate) fn new(conn: &'c Connection, storage: &'c dyn Storage) -> ChunkFetcher<'c> {
        ChunkFetcher {
            conn,
            storage,
            file: None,
            groups: Vec::new(),
            spare: Vec::new(),
            dctx: None,
        }
    }

    /// The plain bytes of the chunk with id `id`, looked up in the index and checked.
    pub(crate) fn fetch_hash(&mut self, id: &ChunkId, user: &str) -> Result<Vec<u8>> {
        let row = index::chunk_row(self.conn, id)?.ok_or_else(|| {
            Error::Corrupt(format!("chunk {} of {user} is in no pack", hex::encode(id)))
        })?;
        self.fetch(row, user)
    }

    /// The plain bytes of `refs` concatenated, each checked: the zstd prefix of a delta
    /// group. A damaged or missing reference is an error naming it.
    pub(crate) fn prefix(&mut self, refs: &[ChunkId], user: &str) -> Result<Vec<u8>> {
        self.prefix_at(refs, user, 1)
    }

    /// The zstd prefix of delta group `grp`: its reference chunks, as listed in the index.
    pub(crate) fn group_prefix(&mut self, grp: i64, user: &str) -> Result<Vec<u8>> {
        self.group_prefix_at(grp, user, 1)
    }

    fn group_prefix_at(&mut self, grp: i64, user: &str, depth: u32) -> Result<Vec<u8>> {
        let refs = index::group_refs(self.conn, grp)?;
        self.prefix_at(&refs, user, depth)
    }

    /// `prefix` for a delta group read `depth - 1` delta groups deep.
    fn prefix_at(&mut self, refs: &[ChunkId], user: &str, depth: u32) -> Result<Vec<u8>> {
        let mut prefix = Vec::new();
        for r in refs {
            let chunk = index::chunk_row(self.conn, r)?
                .ok_or_else(|| Error::Corrupt("it is in no pack".into()))
                .and_then(|row| self.fetch_at(row, user, depth))
                .map_err(|e| match e {
                    Error::Corrupt(why) => Error::Corrupt(format!(
                        "its reference chunk {} cannot be read: {why}",
                        hex::encode(r)
                    )),
                    e => e,
                })?;
            prefix.extend_from_slice(&chunk);
        }
        Ok(prefix)
    }

    /// The plain bytes of chunk `row`, checked against its id. Errors name the pack, the
    /// chunk and `user` (`member <path>` or `the metadata of snapshot <id>`).
    pub(crate) fn fetch(&mut self, row: i64, user: &str) -> Result<Vec<u8>> {
        self.fetch_at(row, user, 0)
    }

    /// `fetch` for a chunk read `depth` delta groups deep.
    fn fetch_at(&mut self, row: i64, user: &str, depth: u32) -> Result<Vec<u8>> {
        let (start, end) = self.locate_at(row, user, depth)?;
        Ok(self.last_group()[start..end].to_vec())
    }

    /// Finds chunk `row`, checks it and makes its group the most recently used: the chunk is
    /// `last_group()[start..end]` until the next call. A reader of a member's content copies
    /// it from there, instead of from a copy of each chunk of its own.
    pub(crate) fn locate(&mut self, row: i64, user: &str) -> Result<(usize, usize)> {
        self.locate_at(row, user, 0)
    }

    /// The plain bytes of the group the last `locate` found its chunk in.
    pub(crate) fn last_group(&self) -> &[u8] {
        self.groups.last().map_or(&[][..], |g| &g.1[..])
    }

    fn locate_at(&mut self, row: i64, user: &str, depth: u32) -> Result<(usize, usize)> {
        let member = user;
        let loc = index::location(self.conn, row)?
            .ok_or_else(|| Error::Corrupt(format!("{member}: chunk #{row} is not in the index")))?;
        let chunk = hex::encode(loc.hash);
        let key = (loc.pack.clone(), loc.group_offset);
        if let Some(i) = self.groups.iter().position(|g| g.0 == key) {
            let hit = self.groups.remove(i);
            self.groups.push(hit);
        } else {
            let mut held: usize = self.groups.iter().map(|g| g.1.len()).sum();
            let incoming = loc.plain_len as usize;
            while !self.groups.is_empty() && held + incoming > GROUP_CACHE_BYTES {
                let (_, old) = self.groups.remove(0);
                held -= old.len();
                if self.spare.len() < SPARE_BUFFERS {
                    self.spare.push(old);
                }
            }
            let plain = self.load_group(&loc, member, depth)?;
            self.groups.push((key, plain));
        }
        let plain = &self.groups.last().expect("loaded above").1;
        let (start, end) = (
            loc.offset as usize,
            (loc.offset + u64::from(loc.len)) as usize,
        );
        let data = plain.get(start..end).ok_or_else(|| {
            Error::Corrupt(format!(
                "pack {}: chunk {chunk} of {member} lies outside its group",
                loc.pack
            ))
        })?;
        if self.storage.crypt().ids().id(data) != loc.hash {
            return Err(Error::Corrupt(format!(
                "pack {}: chunk {chunk} of {member} is damaged (BLAKE3 mismatch)",
                loc.pack
            )));
        }
        Ok((start, end))
    }

    /// The plain bytes of the group holding `loc`; a delta group's reference chunks are
    /// read (and checked) first.
    fn load_group(&mut self, loc: &index::Location, member: &str, depth: u32) -> Result<Vec<u8>> {
        let chunk = hex::encode(loc.hash);
        let unreadable = |e: &dyn std::fmt::Display| {
            Error::Corrupt(format!(
                "pack {}: group at offset {} holding chunk {chunk} of {member} cannot be read: {e}",
                loc.pack, loc.group_offset
            ))
        };
        let prefix = if loc.delta {
            if depth >= MAX_DELTA_DEPTH {
                return Err(unreadable(&"its reference chunks form a chain too deep"));
            }
            // The references lie in a few groups (the writer cuts a delta group before it
            // would need more), mostly those holding the unchanged neighbours that a reader
            // of the snapshot reads next: through this cache, they are decompressed once.
            Some(self.group_prefix_at(loc.group, member, depth + 1)?)
        } else {
            None
        };
        if self.file.as_ref().map(|f| &f.0) != Some(&loc.pack) {
            let f = self.storage.open(&pack_key(&loc.pack)).map_err(|e| {
                Error::Corrupt(format!(
                    "pack {} holding chunk {chunk} of {member} cannot be opened: {e}",
                    loc.pack
                ))
            })?;
            self.file = Some((loc.pack.clone(), f));
        }
        let f = &*self.file.as_ref().expect("opened above").1;
        let plain_len = loc.plain_len as usize;
        let crypt = self.storage.crypt();
        let mut raw = self.spare.pop().unwrap_or_default();
        let stored = pack::read_raw_into(f, loc.group_offset, loc.stored_len, &mut raw)
            .and_then(|()| pack::open_group(crypt, raw));
        let plain = match (prefix, stored) {
            (_, Err(e)) => Err(e),
            (None, Ok(stored)) if !loc.compressed => Ok(stored),
            (None, Ok(stored)) => {
                let dctx = match &mut self.dctx {
                    Some(d) => d,
                    None => self
                        .dctx
                        .insert(zstd::bulk::Decompressor::new().map_err(|e| unreadable(&e))?),
                };
                let mut plain = self.spare.pop().unwrap_or_default();
                let r = pack::decompress_group_into(dctx, &stored, plain_len, &mut plain);
                if self.spare.len() < SPARE_BUFFERS {
                    self.spare.push(stored);
                }
                r.map(|()| plain)
            }
            (Some(prefix), Ok(stored)) => pack::decompress_delta(&stored, plain_len, &prefix),
        };
        plain.map_err(|e| unreadable(&e))
    }
}

/// How many delta groups deep a read may go. Writers reference chunks of plain groups only
/// (depth 1); a copy of such a chunk in a delta group, left by concurrent writers, may be
/// the one the index points to.
const MAX_DELTA_DEPTH: u32 = 4;

/// Feeds every member of snapshot `row` into `sink`, in order: those `want` accepts with
/// their checked content, the others by `MemberSink::pass_over`, their chunks left unread.
pub(crate) fn replay(
    conn: &Connection,
    storage: &dyn Storage,
    row: i64,
    want: &dyn Fn(&Member) -> bool,
    sink: &mut dyn MemberSink,
) -> Result<()> {
    let mut fetcher = ChunkFetcher::new(conn, storage);
    for_each_member(conn, storage, row, |m: Member, ids| {
        if !want(&m) {
            return sink.pass_over(&m);
        }
        if !m.is_file() {
            return sink.add(&m, &mut io::empty());
        }
        let user = format!("member {}", m.path);
        let mut content = MemberContent {
            fetcher: &mut fetcher,
            rows: ids.into_iter(),
            user: &user,
            at: 0,
            end: 0,
            produced: 0,
            error: None,
        };
        let res = sink.add(&m, &mut content);
        if let Some(e) = content.error.take() {
            return Err(e);
        }
        res?;
        if content.produced == 0 && m.size > 0 {
            // The sink left the member unread (a restore's pass over a backend it does not
            // restore, after the first pass read and checked it all): nothing to check.
            return Ok(());
        }
        // The sink reads exactly `size` bytes; the chunks must hold no more than that.
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
}

/// A member's content as one stream, each chunk checked as it is reached and read from its
/// group in the fetcher's cache (`ChunkFetcher::locate`), not copied out first. A fetch error
/// is parked in `error`, as in `ChunkStream`, for the caller to return intact.
struct MemberContent<'a, 'c> {
    fetcher: &'a mut ChunkFetcher<'c>,
    rows: std::vec::IntoIter<i64>,
    user: &'a str,
    /// The unread rest of the current chunk: `last_group()[at..end]`.
    at: usize,
    end: usize,
    produced: u64,
    error: Option<Error>,
}

impl Read for MemberContent<'_, '_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.end {
            let Some(row) = self.rows.next() else {
                return Ok(0);
            };
            match self.fetcher.locate(row, self.user) {
                Ok((at, end)) => (self.at, self.end) = (at, end),
                Err(e) => {
                    let msg = e.to_string();
                    self.error = Some(e);
                    return Err(io::Error::other(msg));
                }
            }
        }
        let n = out.len().min(self.end - self.at);
        out[..n].copy_from_slice(&self.fetcher.last_group()[self.at..self.at + n]);
        self.at += n;
        self.produced += n as u64;
        Ok(n)
    }
}

/// Reads a snapshot through the index: its metadata chunks are fetched from their packs
/// (looked up in `conn`) and checked. Errors about a metadata chunk name the snapshot.
pub(crate) fn read_snapshot_file<M: DeserializeOwned>(
    conn: &Connection,
    storage: &dyn Storage,
    id: &str,
    member: impl FnMut(M, Vec<ChunkId>) -> Result<()>,
) -> Result<SnapshotFile> {
    read_snapshot_file_with(conn, storage, id, &HashMap::new(), member)
}

/// `read_snapshot_file`, taking the metadata chunks that `fresh` holds from there: a writer's
/// own, whose ids it computed from these very bytes.
pub(crate) fn read_snapshot_file_with<M: DeserializeOwned>(
    conn: &Connection,
    storage: &dyn Storage,
    id: &str,
    fresh: &HashMap<ChunkId, Vec<u8>>,
    member: impl FnMut(M, Vec<ChunkId>) -> Result<()>,
) -> Result<SnapshotFile> {
    let _tx = index::read_tx(conn)?;
    let mut fetcher = ChunkFetcher::new(conn, storage);
    let user = format!("the metadata of snapshot {id}");
    let mut chunk = |c: &ChunkId| match fresh.get(c) {
        Some(data) => Ok(data.clone()),
        None => fetcher.fetch_hash(c, &user),
    };
    read_snapshot(storage, id, &mut chunk, member)
}

/// Calls `f` with every member of a snapshot, in order, and its chunk row ids: the members
/// come from the snapshot's metadata stream (read from the packs, checked), the row ids from
/// the index, and both must agree member by member.
pub(crate) fn for_each_member(
    conn: &Connection,
    storage: &dyn Storage,
    snapshot_row: i64,
    mut f: impl FnMut(Member, Vec<i64>) -> Result<()>,
) -> Result<()> {
    let name = index::snapshot_name(conn, snapshot_row)?;
    let mut lists = index::ChunkLists::of(conn, snapshot_row)?;
    read_snapshot_file(conn, storage, &name, |m: Member, hashes| {
        let ids = lists
            .next_member()?
            .ok_or_else(|| index::damaged("fewer chunk lists than members"))?;
        if ids.len() != hashes.len() {
            return Err(index::damaged(&format!("chunk list of {}", m.path)));
        }
        f(m, ids)
    })?;
    lists.finish()
}
