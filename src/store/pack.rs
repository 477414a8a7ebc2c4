//! The pack file format: groups of chunks followed by a trailer that lists them, so a pack
//! describes itself. Spec: `store-format/README.md`, section "Pack files".

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::store::chunker::ChunkId;

pub(crate) const PACK_MAGIC: &[u8; 8] = b"OBKPACK\x01";
pub(crate) const TRAILER_MAGIC: &[u8; 8] = b"OBKPEND\x01";
/// Bytes after the trailer body: BLAKE3 (32) + body length (4) + magic (8).
pub(crate) const TRAILER_TAIL: usize = 44;
/// Group flag bit: the stored bytes are one zstd frame (otherwise they are the plain bytes).
pub(crate) const FLAG_ZSTD: u8 = 1;
/// Group flag bit (with `FLAG_ZSTD`): the frame was compressed with the plain bytes of the
/// group's reference chunks, concatenated in order, as zstd prefix (format version 3).
pub(crate) const FLAG_DELTA: u8 = 2;
/// zstd window of delta groups: the prefix and the group's plain bytes must fit in it.
pub(crate) const DELTA_WINDOW_LOG: u32 = 24;

/// One group as listed in a pack trailer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupEntry {
    /// Offset of the stored bytes from the start of the pack file.
    pub offset: u64,
    pub stored_len: u32,
    pub flags: u8,
    /// The group's chunks in order: id and plain length. Their plain bytes, concatenated,
    /// are the group's plain content.
    pub chunks: Vec<(ChunkId, u32)>,
    /// With `FLAG_DELTA`: the reference chunks whose plain bytes form the zstd prefix.
    pub refs: Vec<ChunkId>,
}

impl GroupEntry {
    pub(crate) fn plain_len(&self) -> u64 {
        self.chunks.iter().map(|c| u64::from(c.1)).sum()
    }
}

/// Encodes a trailer body plus its tail (checksum, length, magic).
pub(crate) fn encode_trailer(groups: &[GroupEntry]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(groups.len() as u32).to_le_bytes());
    for g in groups {
        b.extend_from_slice(&g.offset.to_le_bytes());
        b.extend_from_slice(&g.stored_len.to_le_bytes());
        b.push(g.flags);
        b.extend_from_slice(&(g.chunks.len() as u32).to_le_bytes());
        for (id, len) in &g.chunks {
            b.extend_from_slice(id);
            b.extend_from_slice(&len.to_le_bytes());
        }
        if g.flags & FLAG_DELTA != 0 {
            b.extend_from_slice(&(g.refs.len() as u32).to_le_bytes());
            for id in &g.refs {
                b.extend_from_slice(id);
            }
        }
    }
    let sum = blake3::hash(&b);
    let body_len = b.len() as u32;
    b.extend_from_slice(sum.as_bytes());
    b.extend_from_slice(&body_len.to_le_bytes());
    b.extend_from_slice(TRAILER_MAGIC);
    b
}

/// Decodes a trailer body (without its tail). `data_end` is where the body starts: every
/// group must lie between the pack header and it.
pub(crate) fn decode_trailer(
    body: &[u8],
    data_end: u64,
) -> std::result::Result<Vec<GroupEntry>, String> {
    let mut r = Cursor { b: body, at: 0 };
    let n = r.u32()?;
    // Capacities from on-disk counts are bounded by what the body can hold (a group entry
    // takes at least 17 bytes, a chunk 36).
    let mut groups = Vec::with_capacity((n as usize).min(body.len() / 17));
    let mut expected_offset = PACK_MAGIC.len() as u64;
    for _ in 0..n {
        let offset = r.u64()?;
        let stored_len = r.u32()?;
        let flags = r.u8()?;
        let count = r.u32()?;
        if offset != expected_offset || offset + u64::from(stored_len) > data_end {
            return Err(format!("group at offset {offset} does not fit the pack"));
        }
        expected_offset = offset + u64::from(stored_len);
        let mut chunks = Vec::with_capacity((count as usize).min(body.len() / 36));
        for _ in 0..count {
            let id: ChunkId = r.take(32)?.try_into().expect("32 bytes");
            chunks.push((id, r.u32()?));
        }
        if flags & !(FLAG_ZSTD | FLAG_DELTA) != 0 {
            return Err(format!(
                "group at offset {offset}: unknown flags {flags:#x}"
            ));
        }
        let mut refs = Vec::new();
        if flags & FLAG_DELTA != 0 {
            if flags & FLAG_ZSTD == 0 {
                return Err(format!(
                    "group at offset {offset}: a delta group must be zstd"
                ));
            }
            for _ in 0..r.u32()? {
                refs.push(r.take(32)?.try_into().expect("32 bytes"));
            }
        }
        groups.push(GroupEntry {
            offset,
            stored_len,
            flags,
            chunks,
            refs,
        });
    }
    if r.at != body.len() || expected_offset != data_end {
        return Err("trailer length does not match its groups".into());
    }
    Ok(groups)
}

/// Reads and checks the trailer of the pack at `path`. Returns the file size and the groups.
pub(crate) fn read_trailer(path: &Path) -> Result<(u64, Vec<GroupEntry>)> {
    let bad = |why: &str| Error::Corrupt(format!("pack {}: {why}", path.display()));
    let mut f = File::open(path).path_ctx("opening pack", path)?;
    let size = f.metadata().path_ctx("reading", path)?.len();
    if size < (PACK_MAGIC.len() + 4 + TRAILER_TAIL) as u64 {
        return Err(bad("too short to be a pack"));
    }
    let mut magic = [0u8; 8];
    f.read_exact(&mut magic).path_ctx("reading", path)?;
    if &magic != PACK_MAGIC {
        return Err(bad("no pack header"));
    }
    let mut tail = [0u8; TRAILER_TAIL];
    f.seek(SeekFrom::Start(size - TRAILER_TAIL as u64))
        .path_ctx("reading", path)?;
    f.read_exact(&mut tail).path_ctx("reading", path)?;
    if &tail[36..] != TRAILER_MAGIC {
        return Err(bad("no trailer (the pack was not finished)"));
    }
    let body_len = u64::from(u32::from_le_bytes(
        tail[32..36].try_into().expect("4 bytes"),
    ));
    let body_start = size
        .checked_sub(TRAILER_TAIL as u64 + body_len)
        .filter(|s| *s >= PACK_MAGIC.len() as u64)
        .ok_or_else(|| bad("trailer length out of range"))?;
    let mut body = vec![0u8; body_len as usize];
    f.seek(SeekFrom::Start(body_start))
        .path_ctx("reading", path)?;
    f.read_exact(&mut body).path_ctx("reading", path)?;
    if blake3::hash(&body).as_bytes() != &tail[..32] {
        return Err(bad("trailer checksum mismatch"));
    }
    let groups = decode_trailer(&body, body_start).map_err(|e| bad(&e))?;
    Ok((size, groups))
}

/// Reads the stored bytes of one group and returns its plain content.
pub(crate) fn read_group(
    f: &mut File,
    offset: u64,
    stored_len: u32,
    compressed: bool,
    plain_len: usize,
) -> std::io::Result<Vec<u8>> {
    let stored = read_stored(f, offset, stored_len)?;
    if !compressed {
        return Ok(stored);
    }
    decompress_group(&stored, plain_len)
}

/// The stored bytes of one group, as they are in the pack. A group reaching past the end of
/// the file is refused before anything is allocated for it.
pub(crate) fn read_stored(f: &mut File, offset: u64, stored_len: u32) -> std::io::Result<Vec<u8>> {
    let size = f.metadata()?.len();
    if offset.saturating_add(u64::from(stored_len)) > size {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("group of {stored_len} bytes at offset {offset} lies beyond the end of the {size}-byte pack file"),
        ));
    }
    let mut stored = vec![0u8; stored_len as usize];
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(&mut stored)?;
    Ok(stored)
}

/// The plain content of a zstd group, which MUST be `plain_len` bytes.
pub(crate) fn decompress_group(stored: &[u8], plain_len: usize) -> std::io::Result<Vec<u8>> {
    let dec = zstd::stream::read::Decoder::with_buffer(stored)?.single_frame();
    read_plain(dec, stored.len(), plain_len)
}

/// The plain content of a delta group: `prefix` is its reference chunks' plain bytes.
pub(crate) fn decompress_delta(
    stored: &[u8],
    plain_len: usize,
    prefix: &[u8],
) -> std::io::Result<Vec<u8>> {
    let mut dec = zstd::stream::read::Decoder::with_ref_prefix(stored, prefix)?.single_frame();
    dec.window_log_max(DELTA_WINDOW_LOG)?;
    read_plain(dec, stored.len(), plain_len)
}

/// Reads a decompressing reader to its end, expecting `plain_len` bytes. `plain_len` comes from
/// disk: the buffer starts at what the stored bytes plausibly yield and grows with what the
/// frame really yields, it is not allocated from the length up front. Reads ask for all the
/// room left, so that zstd decompresses a frame declaring its size in a single pass.
fn read_plain(mut dec: impl Read, stored_len: usize, plain_len: usize) -> std::io::Result<Vec<u8>> {
    let mut plain = vec![0u8; plain_len.min(stored_len.saturating_mul(16))];
    let mut filled = 0;
    while filled < plain_len {
        if filled == plain.len() {
            let grow = plain.len().max(1 << 16).min(plain_len - filled);
            plain.resize(filled + grow, 0);
        }
        match read_some(&mut dec, &mut plain[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    plain.truncate(filled);
    if filled == plain_len && read_some(&mut dec, &mut [0u8; 1])? != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "group has the wrong plain length",
        ));
    }
    check_len(plain, plain_len)
}

fn read_some(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            res => return res,
        }
    }
}

fn check_len(plain: Vec<u8>, plain_len: usize) -> std::io::Result<Vec<u8>> {
    if plain.len() != plain_len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "group has the wrong plain length",
        ));
    }
    Ok(plain)
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let s = self
            .b
            .get(self.at..self.at + n)
            .ok_or("trailer ends early")?;
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_round_trip_and_damage() {
        let groups = vec![
            GroupEntry {
                offset: 8,
                stored_len: 10,
                flags: FLAG_ZSTD | FLAG_DELTA,
                chunks: vec![([1; 32], 7), ([2; 32], 9)],
                refs: vec![[4; 32]],
            },
            GroupEntry {
                offset: 18,
                stored_len: 5,
                flags: 0,
                chunks: vec![([3; 32], 5)],
                refs: Vec::new(),
            },
        ];
        let t = encode_trailer(&groups);
        let body = &t[..t.len() - TRAILER_TAIL];
        assert_eq!(decode_trailer(body, 23).unwrap(), groups);
        assert!(decode_trailer(body, 24).is_err());
        assert!(decode_trailer(&body[..body.len() - 1], 23).is_err());
    }
}
