//! Writes pack files: groups are appended to a temporary file under `tmp/`, and `finish`
//! adds the trailer, fsyncs, renames the pack into `packs/` and fsyncs that directory.
//! Format: `pack.rs`; commit order: `store-format/README.md`, section "Commit protocol".

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{IoContext, Result};
use crate::store::chunker::ChunkId;
use crate::store::pack::{self, GroupEntry, FLAG_ZSTD, PACK_MAGIC};
use crate::store::{crash_point, durable};

/// A group of consecutive new chunks, before compression.
#[derive(Default)]
pub(crate) struct PlainGroup {
    pub data: Vec<u8>,
    pub chunks: Vec<(ChunkId, u32)>,
}

/// A group ready to be appended: its stored bytes and flags.
pub(crate) struct SealedGroup {
    pub stored: Vec<u8>,
    pub flags: u8,
    pub chunks: Vec<(ChunkId, u32)>,
}

impl PlainGroup {
    pub(crate) fn push(&mut self, id: ChunkId, data: &[u8]) {
        self.chunks.push((id, data.len() as u32));
        self.data.extend_from_slice(data);
    }

    /// Compresses the group into one zstd frame, or keeps it plain when zstd does not shrink
    /// it. Leaves the group empty; a compressed group keeps its buffer for the next one (a
    /// fresh 4 MiB buffer costs ~1,000 page faults). Runs on rayon workers.
    pub(crate) fn seal(&mut self, level: i32, zstd: &Compressors) -> SealedGroup {
        let chunks = std::mem::take(&mut self.chunks);
        match zstd.compress(&self.data, level) {
            Ok(z) if z.len() < self.data.len() => {
                self.data.clear();
                SealedGroup {
                    stored: z,
                    flags: FLAG_ZSTD,
                    chunks,
                }
            }
            _ => SealedGroup {
                stored: std::mem::take(&mut self.data),
                flags: 0,
                chunks,
            },
        }
    }
}

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
        free.retain(|(l, _)| *l == level);
        free.push((level, c));
        z
    }
}

/// A pack being written. Owns its temporary file; dropping it without `finish` leaves the
/// temporary file for the next exclusive open to delete.
pub(crate) struct Packer {
    tmp: PathBuf,
    out: BufWriter<File>,
    hasher: blake3::Hasher,
    len: u64,
    groups: Vec<GroupEntry>,
}

/// A finished pack, durable under `packs/` but not yet in the index.
#[derive(Debug, Clone)]
pub(crate) struct PackDone {
    pub name: String,
    pub size: u64,
}

impl Packer {
    pub(crate) fn create(root: &Path) -> Result<Packer> {
        let tmp = root.join("tmp").join(durable::temp_name("pack")?);
        let file = durable::create_new(&tmp)?;
        let mut p = Packer {
            tmp,
            out: BufWriter::with_capacity(1 << 20, file),
            hasher: blake3::Hasher::new(),
            len: 0,
            groups: Vec::new(),
        };
        p.write(PACK_MAGIC)?;
        Ok(p)
    }

    fn write(&mut self, b: &[u8]) -> Result<()> {
        self.out.write_all(b).path_ctx("writing", &self.tmp)?;
        self.hasher.update(b);
        self.len += b.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn append(&mut self, g: SealedGroup) -> Result<()> {
        let offset = self.len;
        self.write(&g.stored)?;
        self.groups.push(GroupEntry {
            offset,
            stored_len: g.stored.len() as u32,
            flags: g.flags,
            chunks: g.chunks,
        });
        Ok(())
    }

    /// Writes the trailer, fsyncs, and renames the pack to `packs/<name[..2]>/<name>.pack`
    /// (name = BLAKE3 of the whole file), then fsyncs that directory. Durable on return.
    pub(crate) fn finish(mut self, root: &Path) -> Result<PackDone> {
        let trailer = pack::encode_trailer(&self.groups);
        self.write(&trailer)?;
        let file = self
            .out
            .into_inner()
            .map_err(|e| e.into_error())
            .path_ctx("writing", &self.tmp)?;
        crash_point("pack-written");
        file.sync_all().path_ctx("syncing", &self.tmp)?;
        crash_point("pack-synced");
        let name = self.hasher.finalize().to_hex().to_string();
        let path = pack_path(root, &name);
        durable::rename_durable(&self.tmp, &path)?;
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

/// A series of packs written one after the other: groups are appended to the current pack,
/// which is started when needed and finished once it reaches `pack_size`. Dropping the series
/// abandons the unfinished pack; finished ones stay durable under `packs/`.
pub(crate) struct PackSeries {
    root: PathBuf,
    pack_size: u64,
    current: Option<Packer>,
    done: Vec<PackDone>,
}

impl PackSeries {
    pub(crate) fn new(root: &Path, pack_size: u64) -> PackSeries {
        PackSeries {
            root: root.to_path_buf(),
            pack_size,
            current: None,
            done: Vec::new(),
        }
    }

    pub(crate) fn append(&mut self, g: SealedGroup) -> Result<()> {
        let p = match &mut self.current {
            Some(p) => p,
            None => self.current.insert(Packer::create(&self.root)?),
        };
        p.append(g)?;
        if p.len() >= self.pack_size {
            self.finish()?;
        }
        Ok(())
    }

    /// Finishes the current pack, if any: every pack of the series is durable on return.
    pub(crate) fn finish(&mut self) -> Result<()> {
        if let Some(p) = self.current.take() {
            self.done.push(p.finish(&self.root)?);
        }
        Ok(())
    }

    /// The finished packs, in order.
    pub(crate) fn done(&self) -> &[PackDone] {
        &self.done
    }
}

impl Drop for PackSeries {
    fn drop(&mut self) {
        if let Some(p) = self.current.take() {
            p.abandon();
        }
    }
}

pub(crate) fn pack_path(root: &Path, name: &str) -> PathBuf {
    root.join("packs")
        .join(&name[..2])
        .join(format!("{name}.pack"))
}
