//! A bzip2 compressor whose output every bzip2 reader accepts: the format of bzip2 1.0 at
//! block size 9, the same transform as `bzip2 -9` (so about the same size), but sorted with
//! a linear-time suffix array instead of libbz2's comparison sorts (see `bwt.rs`). On SQL
//! dumps and opsi's text files that makes it several times faster than libbz2.
//!
//! Stream: "BZh9", blocks, end marker with the combined CRC. Block: marker, CRC of its
//! input, origin row, used bytes, Huffman tables and selectors, then the coded symbols.
//!
//! A crate of its own because it needs nothing of opsi-backup: it turns bytes into one
//! bzip2 stream. opsi-backup compresses an archive's segments with it on several threads
//! (`src/archive/parallel.rs`) and leaves to libbz2 what it refuses ([`Refused`]).
//! Modules: `bits` (the bit writer), `bwt` (the sort), `mtf` (move-to-front and zero-run
//! coding), `huffman` (tables), `verify` (the decoder that checks every stream).

mod bits;
mod bwt;
mod huffman;
mod mtf;
mod verify;

use bits::BitWriter;

/// What one level-9 block holds after the first run-length stage (libbz2's limit).
const BLOCK_CAPACITY: usize = 900_000 - 19;
pub(crate) const BLOCK_MAGIC: u64 = 0x3141_5926_5359;
pub(crate) const END_MAGIC: u64 = 0x1772_4538_5090;

pub(crate) const CRC: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_BZIP2);

/// Why `compress` left a segment to libbz2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A block repeats a shorter string end to end: libbz2 sorts such blocks itself.
    Periodic,
    /// The stream did not decode to the input (a bug, or memory that flipped a bit).
    Unverified,
}

/// Compresses `data` into one complete bzip2 stream, checked by decoding it (`verify.rs`).
pub fn compress(data: &[u8]) -> Result<Vec<u8>, Refused> {
    SCRATCH.with_borrow_mut(|scratch| compress_with(data, scratch))
}

thread_local! {
    /// ~14 MB of buffers per compressing thread (encoder and check), kept between segments:
    /// allocated afresh, each segment paid ~3,500 page faults for them.
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

fn compress_with(data: &[u8], scratch: &mut Scratch) -> Result<Vec<u8>, Refused> {
    let (z, hints) = encode(data, scratch).ok_or(Refused::Periodic)?;
    if !verify::check(&z, data, &hints, &mut scratch.verify) {
        return Err(Refused::Unverified);
    }
    Ok(z)
}

/// The stream, and per block the rows where `verify.rs` starts its walks.
/// For opsi-backup's fuzz targets (its `fuzz` module): a stream and its decoder hints, as
/// `compress` makes them before checking. Not part of the supported API.
#[doc(hidden)]
pub fn encode_for_fuzzing(data: &[u8]) -> Result<(Vec<u8>, Vec<Vec<u32>>), Refused> {
    encode(data, &mut Scratch::default()).ok_or(Refused::Periodic)
}

/// For the fuzz targets: the decoder's verdict on `z` as the stream of `plain`.
#[doc(hidden)]
pub fn check_for_fuzzing(z: &[u8], plain: &[u8], hints: &[Vec<u32>]) -> bool {
    verify::check(z, plain, hints, &mut verify::Scratch::default())
}

fn encode(data: &[u8], scratch: &mut Scratch) -> Option<(Vec<u8>, Vec<Vec<u32>>)> {
    let mut w = BitWriter::new(Vec::with_capacity(data.len() / 6 + 64));
    for &b in b"BZh9" {
        w.put(8, u32::from(b));
    }
    let mut combined = 0u32;
    let mut rest = data;
    let mut hints = Vec::new();
    while !rest.is_empty() {
        let used = run_length(rest, &mut scratch.block);
        let crc = CRC.checksum(&rest[..used]);
        combined = combined.rotate_left(1) ^ crc;
        hints.push(write_block(&mut w, crc, scratch)?);
        rest = &rest[used..];
    }
    put48(&mut w, END_MAGIC);
    w.put(32, combined);
    Some((w.finish(), hints))
}

#[derive(Default)]
struct Scratch {
    block: Vec<u8>,
    sort: bwt::Scratch,
    last: Vec<u8>,
    syms: Vec<u16>,
    verify: verify::Scratch,
}

/// The first stage: runs of 4 to 255 equal bytes become 4 bytes and a count. Fills `block`
/// with as much of `data` as fits and returns how many input bytes it took.
fn run_length(data: &[u8], block: &mut Vec<u8>) -> usize {
    block.clear();
    let mut i = 0;
    while i < data.len() {
        // Bytes before the next run of four are copied as they are.
        let run_at = next_run_of_four(data, i);
        let take = (run_at - i).min(BLOCK_CAPACITY - block.len());
        block.extend_from_slice(&data[i..i + take]);
        i += take;
        if i < run_at || i == data.len() || block.len() + 5 > BLOCK_CAPACITY {
            break;
        }
        let b = data[i];
        let run = data[i..data.len().min(i + 255)]
            .iter()
            .take_while(|&&x| x == b)
            .count();
        block.extend_from_slice(&[b, b, b, b, (run - 4) as u8]);
        i += run;
    }
    i
}

/// Where the first run of four equal bytes at or after `from` starts (`data.len()` if none).
fn next_run_of_four(data: &[u8], from: usize) -> usize {
    data[from..]
        .windows(4)
        .position(|w| w[0] == w[1] && w[1] == w[2] && w[2] == w[3])
        .map_or(data.len(), |p| from + p)
}

/// Writes one block; returns the rows `verify.rs` starts its walks from.
fn write_block(w: &mut BitWriter, crc: u32, s: &mut Scratch) -> Option<Vec<u32>> {
    let rows = bwt::transform(&s.block, &mut s.sort, &mut s.last)?;
    let mut used = [false; 256];
    for &b in &s.block {
        used[b as usize] = true;
    }
    let symbols = mtf::encode(&s.last, &used, std::mem::take(&mut s.syms));
    let tables = huffman::build(&symbols.syms, symbols.alpha, &symbols.freq);

    put48(w, BLOCK_MAGIC);
    w.put(32, crc);
    w.put(1, 0); // not randomised
    w.put(24, rows[0]);

    // Used bytes: a 16-bit map of the 16-byte ranges in use, then one map per used range.
    let range_used = |r: usize| used[r * 16..r * 16 + 16].iter().any(|&u| u);
    let ranges = (0..16).fold(0u32, |m, r| m | (u32::from(range_used(r)) << (15 - r)));
    w.put(16, ranges);
    for r in (0..16).filter(|&r| range_used(r)) {
        let map = (0..16).fold(0u32, |m, j| m | (u32::from(used[r * 16 + j]) << (15 - j)));
        w.put(16, map);
    }

    // Tables and selectors; the selectors are move-to-front coded, in unary.
    w.put(3, tables.lens.len() as u32);
    w.put(15, tables.selectors.len() as u32);
    let mut order: Vec<u8> = (0..tables.lens.len() as u8).collect();
    for &sel in &tables.selectors {
        let pos = order.iter().position(|&t| t == sel).unwrap_or(0);
        order[..=pos].rotate_right(1);
        for _ in 0..pos {
            w.put(1, 1);
        }
        w.put(1, 0);
    }
    // Code lengths: a 5-bit start, then per symbol "10" (+1) / "11" (-1) steps and a 0.
    for lens in &tables.lens {
        let mut cur = u32::from(lens[0]);
        w.put(5, cur);
        for &l in &lens[..symbols.alpha] {
            let l = u32::from(l);
            while cur < l {
                w.put(2, 0b10);
                cur += 1;
            }
            while cur > l {
                w.put(2, 0b11);
                cur -= 1;
            }
            w.put(1, 0);
        }
    }

    for (group, &sel) in symbols.syms.chunks(huffman::GROUP).zip(&tables.selectors) {
        let (lens, codes) = (&tables.lens[sel as usize], &tables.codes[sel as usize]);
        for &sym in group {
            w.put(u32::from(lens[sym as usize]), codes[sym as usize]);
        }
    }
    s.syms = symbols.syms;
    Some(rows)
}

fn put48(w: &mut BitWriter, v: u64) {
    w.put(24, (v >> 24) as u32);
    w.put(24, (v & 0xff_ffff) as u32);
}

#[cfg(test)]
mod tests;
