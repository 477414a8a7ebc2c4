//! Prune's repacking: copies the used chunks of mostly unused packs into new packs. Spec:
//! `store-format/README.md`, section "Forgetting and pruning", step 3.

use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::store::chunker::ChunkId;
use crate::store::config::ChunkerParams;
use crate::store::index::{self, GroupAt};
use crate::store::pack::{self, TrailerLayout, FLAG_DELTA, FLAG_ZSTD};
use crate::store::packer::{Compressors, PackDone, PackSeries, PlainGroup, SealedGroup};
use crate::store::reader::ChunkFetcher;
use crate::store::storage::{pack_key, Object, Storage};

/// A used chunk of that group: row id, hash, offset in the group's plain bytes, length.
type ChunkRow = (i64, ChunkId, u64, u32);

/// Copies the used chunks of `packs` (row ids) into new packs (durable on return, not
/// indexed). Groups whose chunks are all used are copied as stored (still compressed); the
/// used chunks of the other groups are collected into new groups and compressed again. Every
/// chunk copied is checked against its BLAKE3 id first. The output depends only on the index,
/// so a rerun after a crash writes the same packs.
pub(crate) fn repack(
    conn: &Connection,
    storage: &dyn Storage,
    params: &ChunkerParams,
    layout: TrailerLayout,
    packs: &[i64],
    used: impl Fn(i64) -> bool,
) -> Result<Vec<PackDone>> {
    let mut out = Output::new(conn, storage, params, layout);
    let mut current: Option<GroupAt> = None;
    let mut chunks: Vec<ChunkRow> = Vec::new();
    index::for_each_chunk_of_packs(conn, packs, |g, c| {
        if let Some(cur) = current.as_ref().filter(|&cur| *cur != g) {
            out.group(cur, &chunks)?;
            chunks.clear();
        }
        if used(c.row) {
            chunks.push((c.row, c.hash, c.offset, c.len));
        }
        current = Some(g);
        Ok(())
    })?;
    if let Some(cur) = &current {
        out.group(cur, &chunks)?;
    }
    out.finish()
}

/// The new packs being written, and the pack file being read.
struct Output<'a> {
    conn: &'a Connection,
    /// Reads the reference chunks of delta groups.
    refs: ChunkFetcher<'a>,
    storage: &'a dyn Storage,
    params: &'a ChunkerParams,
    reading: Option<(String, Box<dyn Object>)>,
    packs: PackSeries<'a>,
    plain: PlainGroup,
    zstd: Compressors,
}

impl<'a> Output<'a> {
    fn new(
        conn: &'a Connection,
        storage: &'a dyn Storage,
        params: &'a ChunkerParams,
        layout: TrailerLayout,
    ) -> Output<'a> {
        Output {
            conn,
            refs: ChunkFetcher::new(conn, storage),
            storage,
            params,
            reading: None,
            packs: PackSeries::new(storage, params.pack_size, layout),
            plain: PlainGroup::default(),
            zstd: Compressors::default(),
        }
    }

    /// Copies the used `chunks` of group `g` (ordered by offset).
    fn group(&mut self, g: &GroupAt, chunks: &[ChunkRow]) -> Result<()> {
        if chunks.is_empty() {
            return Ok(());
        }
        if self.reading.as_ref().map(|r| &r.0) != Some(&g.pack) {
            let key = pack_key(&g.pack);
            let file = self
                .storage
                .open(&key)
                .map_err(|e| Error::io(format!("opening pack {}", self.storage.show(&key)), e))?;
            self.reading = Some((g.pack.clone(), file));
        }
        let (_, file) = self.reading.as_ref().expect("opened above");
        let damaged = |why: String| {
            Error::Corrupt(format!(
                "pack {}: group at offset {}: {why}; prune stopped before changing anything (run `verify`)",
                g.pack, g.offset
            ))
        };
        let raw = pack::read_raw(&**file, g.offset, g.stored_len).map_err(|e| {
            Error::io(
                format!("reading {}", self.storage.show(&pack_key(&g.pack))),
                e,
            )
        })?;
        let stored =
            pack::open_group(self.storage.crypt(), raw).map_err(|e| damaged(e.to_string()))?;
        let refs = if g.flags & FLAG_DELTA != 0 {
            index::group_refs(self.conn, g.id)?
        } else {
            Vec::new()
        };
        let data = if g.flags & FLAG_DELTA != 0 {
            let user = format!("delta group at offset {} of pack {}", g.offset, g.pack);
            let prefix = self.refs.prefix(&refs, &user)?;
            pack::decompress_delta(&stored, g.plain_len as usize, &prefix)
                .map_err(|e| damaged(e.to_string()))?
        } else if g.flags & FLAG_ZSTD != 0 {
            pack::decompress_group(&stored, g.plain_len as usize)
                .map_err(|e| damaged(e.to_string()))?
        } else if stored.len() as u64 == g.plain_len {
            stored.clone()
        } else {
            return Err(damaged("wrong plain length".into()));
        };
        let mut whole = true;
        let mut at = 0u64;
        for (_, hash, off, len) in chunks {
            let bytes = data
                .get(*off as usize..(*off + u64::from(*len)) as usize)
                .ok_or_else(|| damaged(format!("chunk {} lies outside", hex::encode(hash))))?;
            if self.storage.crypt().ids().id(bytes) != *hash {
                return Err(damaged(format!(
                    "chunk {} does not match its BLAKE3 id",
                    hex::encode(hash)
                )));
            }
            whole &= *off == at;
            at = off + u64::from(*len);
        }
        whole &= at == g.plain_len;
        if whole {
            return self.packs.append(SealedGroup {
                stored,
                flags: g.flags,
                chunks: chunks.iter().map(|c| (c.1, c.3)).collect(),
                refs,
            });
        }
        for (_, hash, off, len) in chunks {
            self.plain.push(
                *hash,
                &data[*off as usize..(*off + u64::from(*len)) as usize],
            );
            if self.plain.data.len() >= self.params.group_size as usize {
                let g = self.plain.seal(self.params.zstd_level, &self.zstd);
                self.packs.append(g)?;
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<PackDone>> {
        if !self.plain.chunks.is_empty() {
            let g = self.plain.seal(self.params.zstd_level, &self.zstd);
            self.packs.append(g)?;
        }
        self.packs.finish()?;
        Ok(self.packs.done().to_vec())
    }
}
