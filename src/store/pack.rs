//! The pack file format: groups of chunks followed by a trailer that lists them, so a pack
//! describes itself. Spec: `store-format/README.md`, section "Pack files".

use std::io::Read;
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::store::chunker::ChunkId;
use crate::store::seal::{Crypt, Purpose, PLAIN};
use crate::store::storage::{pack_key, LocalObject, Object, Storage};

pub(crate) const PACK_MAGIC: &[u8; 8] = b"OBKPACK\x01";
/// End magic of the single trailer of a format version 2/3 pack.
pub(crate) const TRAILER_MAGIC: &[u8; 8] = b"OBKPEND\x01";
/// End magic of the final trailer of a format version 4 pack (which carries it twice).
pub(crate) const TRAILER_MAGIC_V4: &[u8; 8] = b"OBKPEND\x02";
/// End magic of the first trailer copy of a format version 4 pack, right before the final one.
pub(crate) const TRAILER_COPY_MAGIC: &[u8; 8] = b"OBKPCPY\x02";
/// Bytes after the trailer body: BLAKE3 (32) + body length (4) + magic (8).
pub(crate) const TRAILER_TAIL: usize = 44;
/// How far back the search for an intact trailer copy reads at a time.
const SCAN_WINDOW: u64 = 1 << 20;
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

/// How many copies of its trailer a pack carries: one up to format version 3, two from
/// version 4 on (spec: "Pack files", "Trailer copies").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TrailerLayout {
    Single,
    Double,
}

impl TrailerLayout {
    /// The layout a writer uses in a repository of format `version`: older programs read
    /// version 2/3 repositories, so their packs keep the single trailer.
    pub(crate) fn for_version(version: u32) -> TrailerLayout {
        if version >= 4 {
            TrailerLayout::Double
        } else {
            TrailerLayout::Single
        }
    }
}

/// Encodes the trailer(s) of a pack whose groups are `groups`: body plus tail (checksum,
/// length, magic), once or, with `TrailerLayout::Double`, as a copy followed by the final one.
/// In an encrypted repository the body is sealed (both copies are the same sealed bytes) and
/// the BLAKE3 in the tail is that of the sealed body, so the pack keeps its structure.
pub(crate) fn encode_trailer(
    groups: &[GroupEntry],
    layout: TrailerLayout,
    crypt: &Crypt,
) -> Vec<u8> {
    let body = crypt.seal(Purpose::Trailer, encode_body(groups));
    let mut b = Vec::with_capacity(2 * (body.len() + TRAILER_TAIL));
    match layout {
        TrailerLayout::Single => push_trailer(&mut b, &body, TRAILER_MAGIC),
        TrailerLayout::Double => {
            push_trailer(&mut b, &body, TRAILER_COPY_MAGIC);
            push_trailer(&mut b, &body, TRAILER_MAGIC_V4);
        }
    }
    b
}

fn push_trailer(out: &mut Vec<u8>, body: &[u8], magic: &[u8; 8]) {
    out.extend_from_slice(body);
    out.extend_from_slice(blake3::hash(body).as_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(magic);
}

fn encode_body(groups: &[GroupEntry]) -> Vec<u8> {
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

/// A pack's table of groups, as read from its trailer.
#[derive(Debug)]
pub(crate) struct PackTable {
    /// Size of the pack file.
    pub size: u64,
    pub groups: Vec<GroupEntry>,
    /// Why the final trailer could not be used, when the table was read from the first copy
    /// (format version 4): the pack is damaged there, its data is whole.
    pub final_damaged: Option<String>,
}

/// Reads and checks the trailer of pack `name` in `storage`. Returns the file size and the
/// groups.
pub(crate) fn read_trailer(storage: &dyn Storage, name: &str) -> Result<(u64, Vec<GroupEntry>)> {
    let t = read_table(storage, name)?;
    Ok((t.size, t.groups))
}

/// `read_table` of pack `name` in `storage`.
pub(crate) fn read_table(storage: &dyn Storage, name: &str) -> Result<PackTable> {
    let key = pack_key(name);
    let shown = storage.show(&key);
    let f = storage
        .open(&key)
        .map_err(|e| Error::io(format!("opening pack {shown}"), e))?;
    read_table_of(&*f, storage.crypt(), &shown)
}

/// `read_trailer` of a pack file outside a repository (fuzzing, tests).
pub(crate) fn read_trailer_file(path: &Path) -> Result<(u64, Vec<GroupEntry>)> {
    let f = LocalObject::open(path).path_ctx("opening pack", path)?;
    let t = read_table_of(&f, &PLAIN, &path.display().to_string())?;
    Ok((t.size, t.groups))
}

/// Reads the pack's table: from its final trailer, as its end magic says (version 2/3:
/// single, version 4: final of two), or, when that one does not check out, from the first
/// intact version 4 trailer copy found scanning back from the end. `shown` names the pack in
/// messages.
/// `crypt` opens a sealed trailer body: one that does not open counts as a damaged copy.
pub(crate) fn read_table_of(f: &dyn Object, crypt: &Crypt, shown: &str) -> Result<PackTable> {
    let bad = |why: &str| Error::Corrupt(format!("pack {shown}: {why}"));
    let reading = |e| Error::io(format!("reading {shown}"), e);
    let size = f.size();
    if size < (PACK_MAGIC.len() + 4 + TRAILER_TAIL) as u64 {
        return Err(bad("too short to be a pack"));
    }
    let mut magic = [0u8; 8];
    f.read_exact_at(&mut magic, 0).map_err(reading)?;
    if &magic != PACK_MAGIC {
        return Err(bad("no pack header"));
    }
    let last = match read_final(f, size, crypt).map_err(reading)? {
        Ok(groups) => {
            return Ok(PackTable {
                size,
                groups,
                final_damaged: None,
            })
        }
        Err(why) => why,
    };
    match scan_for_copy(f, size, crypt).map_err(reading)? {
        Some(groups) => Ok(PackTable {
            size,
            groups,
            final_damaged: Some(last),
        }),
        None => Err(bad(&last)),
    }
}

/// The groups from the trailer at the very end of the file, or why it cannot be used.
fn read_final(
    f: &dyn Object,
    size: u64,
    crypt: &Crypt,
) -> std::io::Result<std::result::Result<Vec<GroupEntry>, String>> {
    let tail_at = size - TRAILER_TAIL as u64;
    let mut tail = [0u8; TRAILER_TAIL];
    f.read_exact_at(&mut tail, tail_at)?;
    let copies = match &tail[36..] {
        m if m == TRAILER_MAGIC => 1,
        m if m == TRAILER_MAGIC_V4 => 2,
        _ => return Ok(Err("no trailer (the pack was not finished)".into())),
    };
    let Some((body_start, body)) = checked_body(f, tail_at, &tail)? else {
        return Ok(Err(
            "trailer checksum mismatch or length out of range".into()
        ));
    };
    // Version 4: the first copy (body and tail, as long as the final ones) lies before.
    let data_end = match copies {
        1 => Some(body_start),
        _ => body_start.checked_sub(body.len() as u64 + TRAILER_TAIL as u64),
    };
    let Some(data_end) = data_end.filter(|e| *e >= PACK_MAGIC.len() as u64) else {
        return Ok(Err("trailer length out of range".into()));
    };
    Ok(open_body(crypt, body).and_then(|b| decode_trailer(&b, data_end)))
}

/// The plain trailer body of a (possibly sealed) stored one.
fn open_body(crypt: &Crypt, body: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
    crypt
        .open(Purpose::Trailer, body)
        .map_err(|e| format!("sealed trailer: {e}"))
}

/// The body before the tail at `tail_at` (start and bytes) when its length is in range and
/// its BLAKE3 is the one in the tail.
fn checked_body(
    f: &dyn Object,
    tail_at: u64,
    tail: &[u8; TRAILER_TAIL],
) -> std::io::Result<Option<(u64, Vec<u8>)>> {
    let body_len = u64::from(u32::from_le_bytes(
        tail[32..36].try_into().expect("4 bytes"),
    ));
    let Some(body_start) = tail_at
        .checked_sub(body_len)
        .filter(|s| *s >= PACK_MAGIC.len() as u64)
    else {
        return Ok(None);
    };
    let mut body = vec![0u8; body_len as usize];
    f.read_exact_at(&mut body, body_start)?;
    Ok((blake3::hash(&body).as_bytes() == &tail[..32]).then_some((body_start, body)))
}

/// Searches the file from its end backwards for a version 4 trailer copy whose checksum and
/// groups check out (the groups end where the copy's body starts). Reads the whole file in
/// the worst case: only a damaged pack gets here.
fn scan_for_copy(
    f: &dyn Object,
    size: u64,
    crypt: &Crypt,
) -> std::io::Result<Option<Vec<GroupEntry>>> {
    let overlap = TRAILER_COPY_MAGIC.len() as u64 - 1;
    let mut end = size;
    let mut window = Vec::new();
    while end > PACK_MAGIC.len() as u64 {
        let start = end.saturating_sub(SCAN_WINDOW).max(PACK_MAGIC.len() as u64);
        window.resize((end - start) as usize, 0);
        f.read_exact_at(&mut window, start)?;
        let hits: Vec<u64> = window
            .windows(TRAILER_COPY_MAGIC.len())
            .enumerate()
            .filter(|(_, w)| w == TRAILER_COPY_MAGIC)
            .map(|(i, _)| start + i as u64)
            .collect();
        for magic_at in hits.into_iter().rev() {
            let Some(tail_at) = (magic_at + 8).checked_sub(TRAILER_TAIL as u64) else {
                continue;
            };
            let mut tail = [0u8; TRAILER_TAIL];
            f.read_exact_at(&mut tail, tail_at)?;
            if let Some((body_start, body)) = checked_body(f, tail_at, &tail)? {
                if let Ok(groups) =
                    open_body(crypt, body).and_then(|b| decode_trailer(&b, body_start))
                {
                    return Ok(Some(groups));
                }
            }
        }
        if start == PACK_MAGIC.len() as u64 {
            break;
        }
        // The next window overlaps this one so that a magic across the border is found.
        end = start + overlap;
    }
    Ok(None)
}

/// The stored bytes of one group, opened when sealed: its zstd frame or plain bytes.
pub(crate) fn read_stored(
    f: &dyn Object,
    crypt: &Crypt,
    offset: u64,
    stored_len: u32,
) -> std::io::Result<Vec<u8>> {
    open_group(crypt, read_raw(f, offset, stored_len)?)
}

/// The compressed (or plain) bytes of a group as stored (`read_raw`), opened when sealed.
pub(crate) fn open_group(crypt: &Crypt, raw: Vec<u8>) -> std::io::Result<Vec<u8>> {
    crypt.open(Purpose::Group, raw).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("sealed group: {e}"),
        )
    })
}

/// The bytes of one group exactly as they are in the pack. A group reaching past the end of
/// the file is refused before anything is allocated for it.
pub(crate) fn read_raw(f: &dyn Object, offset: u64, stored_len: u32) -> std::io::Result<Vec<u8>> {
    let size = f.size();
    if offset.saturating_add(u64::from(stored_len)) > size {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("group of {stored_len} bytes at offset {offset} lies beyond the end of the {size}-byte pack file"),
        ));
    }
    let mut stored = vec![0u8; stored_len as usize];
    f.read_exact_at(&mut stored, offset)?;
    Ok(stored)
}

/// `read_raw` into `buf`, whose allocation is reused: a restore reads thousands of 4 MiB
/// groups, and a fresh buffer for each costs a page fault per 4 KiB (more than the copy).
pub(crate) fn read_raw_into(
    f: &dyn Object,
    offset: u64,
    stored_len: u32,
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    let size = f.size();
    if offset.saturating_add(u64::from(stored_len)) > size {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("group of {stored_len} bytes at offset {offset} lies beyond the end of the {size}-byte pack file"),
        ));
    }
    resize_for_overwrite(buf, stored_len as usize);
    f.read_exact_at(buf, offset)
}

/// Sets `buf`'s length to `len` for bytes about to be overwritten whole: only the part beyond
/// its current length is zeroed, so a reused buffer is not cleared again.
fn resize_for_overwrite(buf: &mut Vec<u8>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0);
    } else {
        buf.truncate(len);
    }
}

/// Plain groups larger than this are decompressed by `decompress_group` (whose buffer grows
/// with what the frame yields) rather than into a buffer sized from `plain_len` up front:
/// `plain_len` comes from disk, and a damaged one must not allocate gigabytes. Writers make
/// groups of `group_size` (4 MiB) plus a chunk.
const DIRECT_PLAIN_MAX: usize = 32 << 20;

/// `decompress_group` into `out` (its allocation reused) with a reused zstd context: one
/// pass straight into the buffer, no window buffer of its own per group.
pub(crate) fn decompress_group_into(
    dctx: &mut zstd::bulk::Decompressor<'static>,
    stored: &[u8],
    plain_len: usize,
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    if plain_len > DIRECT_PLAIN_MAX {
        *out = decompress_group(stored, plain_len)?;
        return Ok(());
    }
    out.clear();
    out.reserve(plain_len);
    let n = dctx.decompress_to_buffer(stored, out)?;
    if n != plain_len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "group has the wrong plain length",
        ));
    }
    Ok(())
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
        let t = encode_trailer(&groups, TrailerLayout::Single, &PLAIN);
        let body = &t[..t.len() - TRAILER_TAIL];
        assert_eq!(decode_trailer(body, 23).unwrap(), groups);
        assert!(decode_trailer(body, 24).is_err());
        assert!(decode_trailer(&body[..body.len() - 1], 23).is_err());
    }

    fn sample_groups() -> Vec<GroupEntry> {
        vec![
            GroupEntry {
                offset: 8,
                stored_len: 40,
                flags: FLAG_ZSTD,
                chunks: vec![([1; 32], 70), ([2; 32], 90)],
                refs: Vec::new(),
            },
            GroupEntry {
                offset: 48,
                stored_len: 30,
                flags: 0,
                chunks: vec![([3; 32], 30)],
                refs: Vec::new(),
            },
        ]
    }

    /// A pack file: header, 70 bytes of group data that contain the copy magic (it must not
    /// fool the scan), and the trailer(s).
    fn sample_pack(layout: TrailerLayout) -> Vec<u8> {
        sample_pack_with(layout, &PLAIN)
    }

    fn sample_pack_with(layout: TrailerLayout, crypt: &Crypt) -> Vec<u8> {
        let mut b = PACK_MAGIC.to_vec();
        let mut data = vec![0x5a; 70];
        data[10..18].copy_from_slice(TRAILER_COPY_MAGIC);
        b.extend_from_slice(&data);
        b.extend_from_slice(&encode_trailer(&sample_groups(), layout, crypt));
        b
    }

    fn table_of(dir: &Path, bytes: &[u8]) -> Result<PackTable> {
        table_with(dir, bytes, &PLAIN)
    }

    fn table_with(dir: &Path, bytes: &[u8], crypt: &Crypt) -> Result<PackTable> {
        let path = dir.join("p.pack");
        std::fs::write(&path, bytes).unwrap();
        read_table_of(&LocalObject::open(&path).unwrap(), crypt, "p.pack")
    }

    /// A sealed trailer: read with its key, refused with another or none, and any damaged
    /// byte of it is survived through the copy, as for a plain one.
    #[test]
    fn a_sealed_trailer_opens_with_its_key_only_and_keeps_its_copy() {
        use crate::store::seal::MasterKey;
        let dir = tempfile::tempdir().unwrap();
        let key = Crypt::unlocked(&MasterKey::generate().unwrap());
        let other = Crypt::unlocked(&MasterKey::generate().unwrap());
        let good = sample_pack_with(TrailerLayout::Double, &key);
        assert!(
            !contains(&good, &[1; 32]),
            "chunk ids lie in the sealed trailer only"
        );
        assert_eq!(
            table_with(dir.path(), &good, &key).unwrap().groups,
            sample_groups()
        );
        assert!(table_with(dir.path(), &good, &other).is_err());
        assert!(table_with(dir.path(), &good, &PLAIN).is_err());
        for at in (8 + 70..good.len()).step_by(7) {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            let t = table_with(dir.path(), &bad, &key).unwrap_or_else(|e| panic!("{at}: {e}"));
            assert_eq!(t.groups, sample_groups(), "byte {at}");
        }
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    /// Every single damaged byte after the group data, and every truncation of the final
    /// trailer, leaves a version 4 pack's table readable; a version 3 pack loses it.
    #[test]
    fn a_double_trailer_survives_any_damaged_byte_or_a_cut_final_trailer() {
        let dir = tempfile::tempdir().unwrap();
        let good = sample_pack(TrailerLayout::Double);
        let t = table_of(dir.path(), &good).unwrap();
        assert_eq!((t.groups, t.final_damaged), (sample_groups(), None));
        let trailer_at = 8 + 70;
        for at in trailer_at..good.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[at] ^= flip;
                let t = table_of(dir.path(), &bad).unwrap_or_else(|e| panic!("byte {at}: {e}"));
                assert_eq!(t.groups, sample_groups(), "byte {at}");
            }
        }
        let one = (good.len() - trailer_at) / 2;
        for cut in 1..=one {
            let t = table_of(dir.path(), &good[..good.len() - cut]).unwrap();
            assert_eq!(t.groups, sample_groups(), "cut {cut}");
            assert!(t.final_damaged.is_some());
        }
        // Both copies damaged: unreadable, and said so.
        let mut bad = good.clone();
        bad[trailer_at + 3] ^= 1;
        bad[good.len() - 50] ^= 1;
        assert!(table_of(dir.path(), &bad).is_err());

        let single = sample_pack(TrailerLayout::Single);
        assert_eq!(
            table_of(dir.path(), &single).unwrap().groups,
            sample_groups()
        );
        let mut bad = single.clone();
        bad[single.len() - 20] ^= 1;
        assert!(table_of(dir.path(), &bad).is_err());
        assert!(table_of(dir.path(), &single[..single.len() - 10]).is_err());
    }
}
