//! Writes pack files: groups are appended to a local temporary file (`Storage::create_temp`),
//! and `finish` adds the trailer and publishes the pack as `packs/<xx>/<name>.pack`
//! (`Storage::put_new`: durable on return).
//! Format: `pack.rs`; commit order: `store-format/README.md`, section "Commit protocol".

use std::path::PathBuf;
use std::sync::Mutex;

use crate::error::Result;
use crate::store::chunker::ChunkId;
use crate::store::crash_point;
use crate::store::pack::{
    self, GroupEntry, TrailerLayout, DELTA_WINDOW_LOG, FLAG_DELTA, FLAG_ZSTD, PACK_MAGIC,
};
use crate::store::pack_file::PackFile;
use crate::store::seal::{Crypt, Purpose};
use crate::store::storage::{pack_key, Storage, TempFile};

/// A group of consecutive new chunks, before compression.
#[derive(Default)]
pub(crate) struct PlainGroup {
    pub data: Vec<u8>,
    pub chunks: Vec<(ChunkId, u32)>,
    /// Reference chunks (older versions of this group's chunks) and their plain length in
    /// all; `prefix` holds their bytes once the writer has read them.
    pub refs: Vec<ChunkId>,
    pub refs_len: usize,
    /// The index groups the references lie in.
    pub ref_groups: Vec<i64>,
    pub prefix: Vec<u8>,
}

/// A group ready to be appended: its stored bytes and flags.
pub(crate) struct SealedGroup {
    pub stored: Vec<u8>,
    pub flags: u8,
    pub chunks: Vec<(ChunkId, u32)>,
    pub refs: Vec<ChunkId>,
}

impl PlainGroup {
    pub(crate) fn push(&mut self, id: ChunkId, data: &[u8]) {
        self.chunks.push((id, data.len() as u32));
        self.data.extend_from_slice(data);
    }

    /// Compresses the group into one zstd frame (against its reference chunks when it has
    /// their bytes), or keeps it plain when zstd does not shrink it. Leaves the group empty;
    /// a compressed group keeps its buffer for the next one (a fresh 4 MiB buffer costs
    /// ~1,000 page faults). Runs on rayon workers.
    pub(crate) fn seal(&mut self, level: i32, zstd: &Compressors) -> SealedGroup {
        let chunks = std::mem::take(&mut self.chunks);
        let prefix = std::mem::take(&mut self.prefix);
        let refs = std::mem::take(&mut self.refs);
        self.refs_len = 0;
        self.ref_groups.clear();
        let mut plain = None;
        if !prefix.is_empty() {
            if let Ok(z) = compress_delta(&self.data, &prefix, level) {
                // References keep older data from being pruned: worth it only when they halve
                // the group. 20:1 is beyond what zstd alone reaches on opsi data (~8:1), so
                // it needs no comparison.
                let wins = z.len() * DELTA_CLEAR_WIN <= self.data.len() || {
                    let p = zstd.compress(&self.data, level);
                    let win = p.as_ref().map_or(true, |p| z.len() * 2 <= p.len());
                    plain = Some(p);
                    win
                };
                if wins {
                    self.data.clear();
                    return SealedGroup {
                        stored: z,
                        flags: FLAG_ZSTD | FLAG_DELTA,
                        chunks,
                        refs,
                    };
                }
            }
        }
        let z = plain.unwrap_or_else(|| zstd.compress(&self.data, level));
        self.seal_plain(z, chunks)
    }

    /// Compresses a group without references at `fast` and at `level` and keeps the former
    /// unless the latter is smaller by at least 1/`gain`. Returns the group and the level kept.
    pub(crate) fn seal_probe(
        &mut self,
        fast: i32,
        level: i32,
        gain: usize,
        zstd: &Compressors,
    ) -> (SealedGroup, i32) {
        debug_assert!(self.prefix.is_empty());
        let f = zstd.compress(&self.data, fast);
        let l = zstd.compress(&self.data, level);
        let (z, kept) = match (f, l) {
            (Ok(f), Ok(l)) if l.len() * gain > f.len() * (gain - 1) => (Ok(f), fast),
            (_, l) => (l, level),
        };
        let chunks = std::mem::take(&mut self.chunks);
        (self.seal_plain(z, chunks), kept)
    }

    /// The group as one zstd frame `z`, or plain when `z` failed or does not shrink it.
    fn seal_plain(
        &mut self,
        z: std::io::Result<Vec<u8>>,
        chunks: Vec<(ChunkId, u32)>,
    ) -> SealedGroup {
        self.refs.clear();
        self.refs_len = 0;
        self.ref_groups.clear();
        self.prefix.clear();
        match z {
            Ok(z) if z.len() < self.data.len() => {
                self.data.clear();
                SealedGroup {
                    stored: z,
                    flags: FLAG_ZSTD,
                    chunks,
                    refs: Vec::new(),
                }
            }
            _ => SealedGroup {
                stored: std::mem::take(&mut self.data),
                flags: 0,
                chunks,
                refs: Vec::new(),
            },
        }
    }
}

/// One zstd frame of `data` with `prefix` as single-use dictionary: what `data` shares with
/// the older versions in `prefix` costs a few bytes per match. A fresh context each time:
/// delta groups are a night's few.
fn compress_delta(data: &[u8], prefix: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    use zstd::zstd_safe::{CCtx, CParameter};
    let fail = |code| std::io::Error::other(zstd::zstd_safe::get_error_name(code));
    let mut c = CCtx::create();
    c.set_parameter(CParameter::CompressionLevel(level))
        .map_err(fail)?;
    c.set_parameter(CParameter::WindowLog(DELTA_WINDOW_LOG))
        .map_err(fail)?;
    c.set_parameter(CParameter::HashLog(DELTA_HASH_LOG))
        .map_err(fail)?;
    c.set_parameter(CParameter::ChainLog(DELTA_HASH_LOG))
        .map_err(fail)?;
    c.ref_prefix(prefix).map_err(fail)?;
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(data.len()));
    c.compress2(&mut out, data).map_err(fail)?;
    Ok(out)
}

/// A delta group at least this many times smaller than its plain bytes is kept without
/// comparing it with the group compressed on its own.
const DELTA_CLEAR_WIN: usize = 20;

/// zstd's hash and chain tables for delta groups (2^21 entries, ~16 MB): prefix and group
/// are up to 3 times a plain group.
const DELTA_HASH_LOG: u32 = 21;

/// zstd compressors (their tables: 1-13 MB each) kept for the next groups by whoever writes
/// groups; freed with it.
#[derive(Default)]
pub(crate) struct Compressors(Mutex<Vec<(i32, zstd::bulk::Compressor<'static>)>>);

impl Compressors {
    /// One zstd frame of `data`. From level 10 on zstd's match-finder tables would grow to
    /// 2^22 entries each (~45 MB per group being compressed, two at a time); 2^20 (~13 MB)
    /// find nearly all of what a 4 MiB group holds: on a night's new groups 2.598 MB instead
    /// of 2.591 MB, and faster. Lower levels use smaller tables already.
    fn compress(&self, data: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
        use zstd::zstd_safe::CParameter;
        let kept = {
            let mut free = self.0.lock().unwrap_or_else(|e| e.into_inner());
            let at = free.iter().position(|(l, _)| *l == level);
            at.map(|i| free.swap_remove(i).1)
        };
        let mut c = match kept {
            Some(c) => c,
            None => {
                let mut c = zstd::bulk::Compressor::new(level)?;
                if level >= 10 {
                    c.set_parameter(CParameter::HashLog(20))?;
                    c.set_parameter(CParameter::ChainLog(20))?;
                }
                c
            }
        };
        let z = c.compress(data);
        let mut free = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // A level's compressors stay while it is in use; the large tables of the high
        // levels (~13 MB each) go as soon as another level is used, the small ones of the
        // fast levels stay for a stream that switches between them.
        free.retain(|(l, _)| *l == level || (*l < 10 && level < 10));
        free.push((level, c));
        z
    }
}

/// A pack being written. Owns its temporary file; dropping it without `finish` leaves the
/// temporary file for the next exclusive open to delete.
pub(crate) struct Packer {
    tmp: PathBuf,
    out: PackFile,
    len: u64,
    groups: Vec<GroupEntry>,
    chunks: usize,
    layout: TrailerLayout,
}

/// A finished pack, durable under `packs/` but not yet in the index.
#[derive(Debug, Clone)]
pub(crate) struct PackDone {
    pub name: String,
    pub size: u64,
}

impl Packer {
    pub(crate) fn create(storage: &dyn Storage, layout: TrailerLayout) -> Result<Packer> {
        let TempFile { path: tmp, file } = storage.create_temp("pack")?;
        let mut p = Packer {
            out: PackFile::start(tmp.clone(), file),
            tmp,
            len: 0,
            groups: Vec::new(),
            chunks: 0,
            layout,
        };
        p.write(PACK_MAGIC.to_vec())?;
        Ok(p)
    }

    fn write(&mut self, b: Vec<u8>) -> Result<()> {
        self.len += b.len() as u64;
        self.out.write(b)
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Appends a group; in an encrypted repository (`crypt`) its stored bytes are sealed.
    pub(crate) fn append(&mut self, g: SealedGroup, crypt: &Crypt) -> Result<()> {
        let offset = self.len;
        let stored = crypt.seal(Purpose::Group, g.stored);
        let stored_len = stored.len() as u32;
        self.write(stored)?;
        self.chunks += g.chunks.len();
        self.groups.push(GroupEntry {
            offset,
            stored_len,
            flags: g.flags,
            chunks: g.chunks,
            refs: g.refs,
        });
        Ok(())
    }

    /// Writes the trailer (twice in a format version 4 repository) and publishes the pack as
    /// `packs/<name[..2]>/<name>.pack` (name = BLAKE3 of the whole file). Durable on return.
    pub(crate) fn finish(mut self, storage: &dyn Storage) -> Result<PackDone> {
        let trailer = pack::encode_trailer(&self.groups, self.layout, storage.crypt());
        self.write(trailer)?;
        let (file, hash) = self.out.finish()?;
        crash_point("pack-written");
        let name = hash.to_hex().to_string();
        let tmp = TempFile {
            path: self.tmp,
            file,
        };
        storage.put_new(&pack_key(&name), tmp, "pack")?;
        crash_point("pack-renamed");
        Ok(PackDone {
            name,
            size: self.len,
        })
    }
}

impl Packer {
    /// Gives up the pack: deletes its temporary file (best effort; recovery deletes what stays).
    pub(crate) fn abandon(self) {
        drop(self.out);
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// A pack is also finished once it holds this many chunks (~64 MiB of plain data at the
/// default 8 KiB average), whatever its size: a writer indexes each finished pack during the
/// backup, and the commit the last one, so this bounds the index work left to the commit.
/// 32 MiB of a well-compressed dump held ~26,000 chunks, whose indexing took ~0.3 s after
/// the dump had ended.
pub(crate) const PACK_CHUNKS: usize = 8192;

/// A series of packs written one after the other: groups are appended to the current pack,
/// which is started when needed and finished once it reaches `pack_size` or holds
/// `PACK_CHUNKS` chunks. Dropping the series abandons the unfinished pack; finished ones stay
/// durable under `packs/`.
pub(crate) struct PackSeries<'s> {
    storage: &'s dyn Storage,
    pack_size: u64,
    layout: TrailerLayout,
    current: Option<Packer>,
    done: Vec<PackDone>,
}

impl<'s> PackSeries<'s> {
    pub(crate) fn new(
        storage: &'s dyn Storage,
        pack_size: u64,
        layout: TrailerLayout,
    ) -> PackSeries<'s> {
        PackSeries {
            storage,
            pack_size,
            layout,
            current: None,
            done: Vec::new(),
        }
    }

    pub(crate) fn append(&mut self, g: SealedGroup) -> Result<()> {
        let p = match &mut self.current {
            Some(p) => p,
            None => self
                .current
                .insert(Packer::create(self.storage, self.layout)?),
        };
        p.append(g, self.storage.crypt())?;
        if p.len() >= self.pack_size || p.chunks >= PACK_CHUNKS {
            self.finish()?;
        }
        Ok(())
    }

    /// Finishes the current pack, if any: every pack of the series is durable on return.
    pub(crate) fn finish(&mut self) -> Result<()> {
        if let Some(p) = self.current.take() {
            self.done.push(p.finish(self.storage)?);
        }
        Ok(())
    }

    /// The finished packs, in order.
    pub(crate) fn done(&self) -> &[PackDone] {
        &self.done
    }
}

impl Drop for PackSeries<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.current.take() {
            p.abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text in the file backend's shape: short `key = value` lines from a small vocabulary,
    /// where level 3's longer match search pays.
    fn ini_like(len: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let keys = [
            "productVersion",
            "packageVersion",
            "installationStatus",
            "actionRequest",
        ];
        let vals = [
            "installed",
            "not_installed",
            "none",
            "setup",
            "uninstall",
            "4.2.0.1",
        ];
        let mut out = Vec::new();
        while out.len() < len {
            let line = match next(4) {
                0 => format!("[{}-{}.domain.local]\n", "client", next(5000)),
                _ => format!(
                    "{}{} = {}{}\n",
                    keys[next(4) as usize],
                    next(90),
                    vals[next(6) as usize],
                    next(1000)
                ),
            };
            out.extend_from_slice(line.as_bytes());
        }
        out.truncate(len);
        out
    }

    fn probe(data: &[u8]) -> (SealedGroup, i32) {
        let mut g = PlainGroup::default();
        g.push(crate::store::seal::ChunkIds::Plain.id(data), data);
        g.seal_probe(1, 3, 50, &Compressors::default())
    }

    #[test]
    fn probe_keeps_the_fast_level_unless_the_normal_one_pays() {
        let text = ini_like(1 << 20);
        let (sealed, level) = probe(&text);
        assert_eq!(level, 3, "level 3 pays on short-match text");
        assert_eq!(sealed.flags, FLAG_ZSTD);
        let fast = zstd::bulk::compress(&text, 1).unwrap();
        assert!(sealed.stored.len() * 50 <= fast.len() * 49);
        assert_eq!(
            zstd::bulk::decompress(&sealed.stored, text.len()).unwrap(),
            text
        );

        // Incompressible data: stored plain, at the fast level for the rest of the stream.
        let mut noise = vec![0u8; 1 << 20];
        blake3::Hasher::new().finalize_xof().fill(&mut noise);
        let (sealed, level) = probe(&noise);
        assert_eq!((sealed.flags, level), (0, 1));
        assert_eq!(sealed.stored, noise);
    }
}

#[cfg(test)]
mod series_tests {
    use super::*;

    /// A group of `n` chunks of 16 bytes each.
    fn group(n: usize, seed: usize) -> SealedGroup {
        let chunks = (0..n)
            .map(|i| {
                let data = format!("{seed:08}{i:08}");
                (crate::store::seal::ChunkIds::Plain.id(data.as_bytes()), 16)
            })
            .collect::<Vec<_>>();
        SealedGroup {
            stored: vec![0u8; n * 16],
            flags: 0,
            chunks,
            refs: Vec::new(),
        }
    }

    /// Far below `pack_size`, a pack is still finished once it holds `PACK_CHUNKS` chunks, so
    /// the commit never indexes more than that many chunks of its last pack.
    #[test]
    fn a_pack_is_finished_at_pack_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let storage = crate::store::storage::LocalDir::new(dir.path());
        let mut series = PackSeries::new(&storage, 1 << 30, TrailerLayout::Double);
        let per_group = 1000;
        let groups = PACK_CHUNKS / per_group + 2;
        for g in 0..groups {
            series.append(group(per_group, g)).unwrap();
        }
        // The group that reached PACK_CHUNKS finished the first pack; the rest wait.
        assert_eq!(series.done().len(), 1);
        series.finish().unwrap();
        let packs = series.done();
        assert_eq!(packs.len(), 2);
        let (_, first) = pack::read_trailer(&storage, &packs[0].name).unwrap();
        let chunks: usize = first.iter().map(|g| g.chunks.len()).sum();
        assert_eq!(chunks, PACK_CHUNKS.div_ceil(per_group) * per_group);
    }
}
