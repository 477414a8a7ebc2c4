//! Decodes a stream the compressor just wrote and checks that it gives back the input: the
//! proof an export relies on instead of reading the archive back. It trusts nothing the
//! encoder computed except where to start decoding: the Huffman layer is parsed from the
//! bytes, and the transform is inverted by the LF mapping (a different algorithm from the
//! suffix sorting that made it), as every bzip2 decoder does.
//!
//! One inversion walk is a chain of dependent loads over a 3.6 MB table: memory latency,
//! not work, sets its speed. The encoder therefore hands over the rows where the walk is at
//! every `HINT_STEP`-th position, and the walks between them run interleaved. Each walk must
//! end exactly on the row the next one started from (the last on the stream's own origin
//! row), so together they are the one walk a decoder makes from the origin, or the check
//! fails.

use super::huffman::GROUP;
use super::CRC;

/// Positions in the block between hinted rows (a power of two).
pub(crate) const HINT_STEP: usize = 1 << 16;
const MAX_BLOCK: usize = 900_000;
/// Code bits resolved by one table lookup; longer codes take the canonical slow path.
const FAST_BITS: u32 = 10;

#[derive(Default)]
pub(crate) struct Scratch {
    last: Vec<u8>,
    next: Vec<u32>,
    block: Vec<u8>,
}

/// Whether `z` is one bzip2 stream of exactly `plain`. `hints[b]` are block `b`'s rows at
/// positions 0, HINT_STEP, 2 x HINT_STEP... of its run-length-coded bytes.
pub(crate) fn check(z: &[u8], plain: &[u8], hints: &[Vec<u32>], s: &mut Scratch) -> bool {
    check_stream(z, plain, hints, s).is_some()
}

fn check_stream(z: &[u8], plain: &[u8], hints: &[Vec<u32>], s: &mut Scratch) -> Option<()> {
    let mut bits = Bits::new(z);
    for &b in b"BZh9" {
        expect(bits.get(8) == u32::from(b))?;
    }
    let mut combined = 0u32;
    let mut done = 0usize;
    let mut blocks = hints.iter();
    loop {
        let magic = (u64::from(bits.get(24)) << 24) | u64::from(bits.get(24));
        if magic == super::END_MAGIC {
            expect(bits.get(32) == combined)?;
            expect(done == plain.len() && blocks.next().is_none())?;
            return bits.at_end().then_some(());
        }
        expect(magic == super::BLOCK_MAGIC)?;
        let crc = bits.get(32);
        expect(bits.get(1) == 0)?;
        let orig = bits.get(24) as usize;
        decode_symbols(&mut bits, s)?;
        let rows = blocks.next()?;
        invert(orig, rows, s)?;
        let begin = done;
        done += undo_runs(&s.block[..s.last.len()], &plain[begin..])?;
        expect(CRC.checksum(&plain[begin..done]) == crc)?;
        combined = combined.rotate_left(1) ^ crc;
        expect(!bits.overrun())?;
    }
}

fn expect(ok: bool) -> Option<()> {
    ok.then_some(())
}

/// Parses one block's tables and selectors and decodes its symbols (Huffman, then
/// RUNA/RUNB runs and move-to-front) into `s.last`, the transformed block.
fn decode_symbols(bits: &mut Bits<'_>, s: &mut Scratch) -> Option<()> {
    let ranges = bits.get(16);
    let mut used = Vec::with_capacity(256);
    for r in 0..16 {
        if ranges & (0x8000 >> r) != 0 {
            let map = bits.get(16);
            used.extend(
                (0..16)
                    .filter(|j| map & (0x8000 >> j) != 0)
                    .map(|j| (r * 16 + j) as u8),
            );
        }
    }
    expect(!used.is_empty())?;
    let alpha = used.len() + 2;
    let n_tables = bits.get(3) as usize;
    expect((2..=6).contains(&n_tables))?;
    let n_selectors = bits.get(15) as usize;
    expect(n_selectors > 0)?;
    let mut order: Vec<u8> = (0..n_tables as u8).collect();
    let mut selectors = Vec::with_capacity(n_selectors);
    for _ in 0..n_selectors {
        let mut j = 0;
        while bits.get(1) == 1 {
            j += 1;
            expect(j < n_tables)?;
        }
        order[..=j].rotate_right(1);
        selectors.push(order[0]);
    }
    let mut tables = Vec::with_capacity(n_tables);
    for _ in 0..n_tables {
        let mut lens = [0u8; 258];
        let mut cur = bits.get(5) as i32;
        for len in &mut lens[..alpha] {
            loop {
                expect((1..=20).contains(&cur))?;
                if bits.get(1) == 0 {
                    break;
                }
                cur += if bits.get(1) == 0 { 1 } else { -1 };
            }
            *len = cur as u8;
        }
        tables.push(Decoder::new(&lens[..alpha])?);
    }

    let eob = alpha as u16 - 1;
    let mut mtf = used;
    let (mut run, mut weight) = (0usize, 1usize);
    s.last.clear();
    let mut left = 0;
    let mut group = 0;
    let mut table = &tables[0];
    loop {
        if left == 0 {
            table = &tables[*selectors.get(group)? as usize];
            group += 1;
            left = GROUP;
        }
        left -= 1;
        let sym = table.decode(bits)?;
        if sym <= 1 {
            expect(weight <= MAX_BLOCK)?;
            run += weight << sym;
            weight <<= 1;
            continue;
        }
        if run > 0 {
            expect(s.last.len() + run <= MAX_BLOCK)?;
            s.last.extend(std::iter::repeat_n(mtf[0], run));
            (run, weight) = (0, 1);
        }
        if sym == eob {
            break;
        }
        let pos = sym as usize - 1;
        expect(pos < mtf.len() && s.last.len() < MAX_BLOCK)?;
        let b = mtf[pos];
        mtf[..=pos].rotate_right(1);
        s.last.push(b);
        expect(!bits.overrun())?;
    }
    expect(!s.last.is_empty())
}

/// Inverts the transform into `s.block` along the hinted walks (see the module comment).
fn invert(orig: usize, rows: &[u32], s: &mut Scratch) -> Option<()> {
    let n = s.last.len();
    expect(orig < n && rows.len() == n.div_ceil(HINT_STEP) && rows[0] as usize == orig)?;
    expect(rows.iter().all(|&r| (r as usize) < n))?;
    // next[j] = (i << 8) | last[i]: from the row of the rotation at p (j) to the row of the
    // rotation at p + 1 (i), whose last byte is the byte at p.
    let mut start = [0u32; 256];
    for &b in &s.last {
        start[b as usize] += 1;
    }
    let mut sum = 0;
    for c in &mut start {
        (*c, sum) = (sum, sum + *c);
    }
    // Every slot of both is written below: grown, never cleared.
    if s.next.len() < n {
        s.next.resize(n, 0);
        s.block.resize(n, 0);
    }
    let (next, block) = (&mut s.next[..n], &mut s.block[..n]);
    for (i, &b) in s.last.iter().enumerate() {
        let j = &mut start[b as usize];
        next[*j as usize] = ((i as u32) << 8) | u32::from(b);
        *j += 1;
    }
    let mut at: Vec<u32> = rows.to_vec();
    for step in 0..HINT_STEP.min(n) {
        for (w, row) in at.iter_mut().enumerate() {
            let p = w * HINT_STEP + step;
            if p < n {
                let e = next[*row as usize];
                *row = e >> 8;
                block[p] = e as u8;
            }
        }
    }
    // Each walk ends where the next began; the last one back at the origin row.
    let walks = rows.len();
    (0..walks)
        .all(|w| at[w] == rows[(w + 1) % walks])
        .then_some(())
}

/// Undoes the first run-length stage of `block` while comparing with `plain`; returns how
/// many bytes of `plain` the block holds. After four equal bytes comes their count.
fn undo_runs(block: &[u8], plain: &[u8]) -> Option<usize> {
    let (mut i, mut out) = (0, 0);
    while i < block.len() {
        let four = block[i..]
            .windows(4)
            .position(|w| w[0] == w[1] && w[1] == w[2] && w[2] == w[3])
            .map_or(block.len(), |p| i + p);
        let literal = &block[i..four];
        expect(plain.get(out..out + literal.len())? == literal)?;
        out += literal.len();
        if four == block.len() {
            break;
        }
        let b = block[four];
        let run = 4 + usize::from(*block.get(four + 4)?);
        expect(plain.get(out..out + run)?.iter().all(|&x| x == b))?;
        out += run;
        i = four + 5;
    }
    Some(out)
}

/// A canonical Huffman decoder: codes of up to `FAST_BITS` bits by one lookup, longer ones
/// length by length.
struct Decoder {
    /// `(len << 9) | sym` by the next FAST_BITS bits; 0 when the code is longer.
    fast: Vec<u16>,
    /// Per length: the first code, the number of codes, and where their symbols start.
    first: [u32; 21],
    count: [u32; 21],
    offset: [u32; 21],
    sorted: Vec<u16>,
    max_len: u32,
}

impl Decoder {
    fn new(lens: &[u8]) -> Option<Decoder> {
        let mut d = Decoder {
            fast: vec![0; 1 << FAST_BITS],
            first: [0; 21],
            count: [0; 21],
            offset: [0; 21],
            sorted: Vec::with_capacity(lens.len()),
            max_len: 0,
        };
        for &l in lens {
            d.count[l as usize] += 1;
            d.max_len = d.max_len.max(u32::from(l));
        }
        let mut code = 0u32;
        for len in 1..=20 {
            d.first[len] = code;
            d.offset[len] = d.sorted.len() as u32;
            for (sym, _) in lens.iter().enumerate().filter(|(_, &l)| l as usize == len) {
                d.sorted.push(sym as u16);
                if len as u32 <= FAST_BITS {
                    let shift = FAST_BITS - len as u32;
                    let base = (code as usize) << shift;
                    let entry = ((len as u16) << 9) | sym as u16;
                    d.fast.get_mut(base..base + (1 << shift))?.fill(entry);
                }
                code += 1;
            }
            // More codes than a length holds is not a prefix code.
            expect(code <= 1 << len)?;
            code <<= 1;
        }
        Some(d)
    }

    #[inline]
    fn decode(&self, bits: &mut Bits<'_>) -> Option<u16> {
        bits.refill();
        let e = self.fast[bits.peek(FAST_BITS) as usize];
        if e != 0 {
            bits.skip(u32::from(e >> 9));
            return Some(e & 0x1ff);
        }
        for len in FAST_BITS + 1..=self.max_len {
            let code = bits.peek(len);
            let k = code.wrapping_sub(self.first[len as usize]);
            if k < self.count[len as usize] {
                bits.skip(len);
                return self
                    .sorted
                    .get((self.offset[len as usize] + k) as usize)
                    .copied();
            }
        }
        None
    }
}

/// Most-significant-bit-first reader; reading past the end yields zeros and is reported by
/// `overrun`.
struct Bits<'a> {
    data: &'a [u8],
    next: usize,
    acc: u64,
    have: u32,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Bits<'a> {
        Bits {
            data,
            next: 0,
            acc: 0,
            have: 0,
        }
    }

    #[inline]
    fn refill(&mut self) {
        while self.have <= 56 {
            let b = self.data.get(self.next).copied().unwrap_or(0);
            self.next += 1;
            self.acc |= u64::from(b) << (56 - self.have);
            self.have += 8;
        }
    }

    /// The next `n` (1..=32) bits, not consumed; call `refill` first.
    #[inline]
    fn peek(&self, n: u32) -> u32 {
        (self.acc >> (64 - n)) as u32
    }

    #[inline]
    fn skip(&mut self, n: u32) {
        self.acc <<= n;
        self.have -= n;
    }

    fn get(&mut self, n: u32) -> u32 {
        self.refill();
        let v = self.peek(n);
        self.skip(n);
        v
    }

    /// Bits consumed beyond the data.
    fn overrun(&self) -> bool {
        self.consumed() > self.data.len() * 8
    }

    fn consumed(&self) -> usize {
        self.next * 8 - self.have as usize
    }

    /// Only the zero padding of the last byte is left.
    fn at_end(&self) -> bool {
        let c = self.consumed();
        let pad = (8 - c % 8) % 8;
        c <= self.data.len() * 8
            && self.data.len() == c.div_ceil(8)
            && (pad == 0 || self.acc >> (64 - pad) == 0)
    }
}
