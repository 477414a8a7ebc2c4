//! bzip2's Burrows-Wheeler transform: the last column of the block's rotations in sorted
//! order, and the row of the rotation that starts at the block's first byte.
//!
//! libbz2 sorts the rotations with comparison sorts that slow down on long repeats, which a
//! SQL dump is full of. Here a suffix array (libsais, linear time) does the sorting. Suffix
//! order and rotation order differ only where one suffix is a prefix of another; they agree
//! for a Lyndon word (a string strictly smaller than all its rotations): if suffix i is a
//! prefix of suffix j, rotation i continues with the whole word and rotation j with one of
//! its proper suffixes, which is larger. So the block is first rotated to start at its least
//! rotation, which makes it a Lyndon word whenever its rotations are all distinct.

use libsais::SuffixArrayConstruction;

use super::verify::HINT_STEP;

/// Sorting buffers, kept between blocks.
#[derive(Default)]
pub(crate) struct Scratch {
    rotated: Vec<u8>,
    sa: Vec<i32>,
}

/// Writes the transform of `block` to `last` and returns the rows of the rotations at
/// positions 0 (the original row), HINT_STEP, 2 x HINT_STEP... (where `verify.rs` starts its
/// walks), or `None` when the block repeats a shorter string (equal rotations; no Lyndon
/// rotation exists).
pub(crate) fn transform(
    block: &[u8],
    scratch: &mut Scratch,
    last: &mut Vec<u8>,
) -> Option<Vec<u32>> {
    let n = block.len();
    let twice = &mut scratch.rotated;
    twice.clear();
    twice.extend_from_slice(block);
    twice.extend_from_slice(block);
    let start = least_rotation(twice)?;
    // The rotated block, preceded by its last byte: the byte before suffix s is `ext[s]`.
    let from = if start == 0 { n - 1 } else { start - 1 };
    let ext = &twice[from..from + n + 1];
    if scratch.sa.len() < n {
        scratch.sa.resize(n, 0);
    }
    let sa = &mut scratch.sa[..n];
    SuffixArrayConstruction::for_text(&ext[1..])
        .in_borrowed_buffer(&mut sa[..])
        .single_threaded()
        .run()
        .ok()?;
    last.clear();
    let mut rows = vec![u32::MAX; n.div_ceil(HINT_STEP)];
    for (row, &suffix) in sa.iter().enumerate() {
        last.push(ext[suffix as usize]);
        let mut p = suffix as usize + start;
        if p >= n {
            p -= n;
        }
        if p % HINT_STEP == 0 {
            rows[p / HINT_STEP] = row as u32;
        }
    }
    Some(rows)
}

/// Where the least rotation of the block in `twice` (the block written twice) starts, or
/// `None` if two rotations are equal.
fn least_rotation(twice: &[u8]) -> Option<usize> {
    let n = twice.len() / 2;
    // It starts with the block's smallest byte, which in tar and text data is rare (tar's
    // NUL padding): compare just those rotations, within a budget of bytes compared.
    let least = *twice[..n].iter().min()?;
    let mut budget = 4 * n;
    let mut best = None;
    for (p, _) in twice[..n].iter().enumerate().filter(|(_, &b)| b == least) {
        let Some(b) = best else {
            best = Some(p);
            continue;
        };
        let k = common_prefix(&twice[b..b + n], &twice[p..p + n]);
        if k == n {
            return None;
        }
        if twice[p + k] < twice[b + k] {
            best = Some(p);
        }
        if k + 1 >= budget {
            return least_rotation_linear(twice);
        }
        budget -= k + 1;
    }
    best
}

/// The same in linear time for any block. Two candidates race; a mismatch after `k` equal
/// bytes rules out the larger candidate and the `k` positions after it, each larger than its
/// counterpart.
fn least_rotation_linear(twice: &[u8]) -> Option<usize> {
    let n = twice.len() / 2;
    let (mut i, mut j) = (0, 1);
    while i < n && j < n {
        let k = common_prefix(&twice[i..i + n], &twice[j..j + n]);
        if k == n {
            return None;
        }
        if twice[i + k] > twice[j + k] {
            i += k + 1;
        } else {
            j += k + 1;
        }
        if i == j {
            j += 1;
        }
    }
    Some(i.min(j))
}

/// How many leading bytes `a` and `b` (of equal length) share, eight at a time: SQL dumps
/// repeat long stretches.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let mut k = 0;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let diff = u64::from_le_bytes(x.try_into().unwrap_or_default())
            ^ u64::from_le_bytes(y.try_into().unwrap_or_default());
        if diff != 0 {
            return k + diff.trailing_zeros() as usize / 8;
        }
        k += 8;
    }
    k + a[k..]
        .iter()
        .zip(&b[k..])
        .take_while(|(x, y)| x == y)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The transform by sorting every rotation, as the format defines it.
    fn naive(block: &[u8]) -> (Vec<u8>, u32) {
        let n = block.len();
        let mut rows: Vec<usize> = (0..n).collect();
        let rot = |i: usize| {
            block[i..]
                .iter()
                .chain(&block[..i])
                .copied()
                .collect::<Vec<_>>()
        };
        rows.sort_by_key(|&i| rot(i));
        let last = rows.iter().map(|&i| block[(i + n - 1) % n]).collect();
        let orig = rows.iter().position(|&i| i == 0).unwrap() as u32;
        (last, orig)
    }

    #[test]
    fn matches_sorting_every_rotation() {
        let mut x: u32 = 7;
        let mut scratch = Scratch::default();
        let mut last = Vec::new();
        let mut checked = 0;
        for round in 0..3000 {
            let len = 1 + round % 40;
            let alphabet = 1 + (round / 40) % 4;
            let block: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    b'a' + ((x >> 16) % alphabet as u32) as u8
                })
                .collect();
            let twice = [&block[..], &block[..]].concat();
            assert_eq!(least_rotation(&twice), least_rotation_linear(&twice));
            match transform(&block, &mut scratch, &mut last) {
                Some(rows) => {
                    assert_eq!((last.clone(), rows[0]), naive(&block), "{:?}", block);
                    checked += 1;
                }
                None => {
                    // Refused only for a repetition of a shorter string.
                    assert!((1..len).any(|p| len % p == 0 && block[p..] == block[..len - p]));
                }
            }
        }
        assert!(checked > 2000);
    }

    #[test]
    fn repetitions_are_refused() {
        let mut last = Vec::new();
        let mut scratch = Scratch::default();
        assert_eq!(transform(b"abab", &mut scratch, &mut last), None);
        assert_eq!(transform(b"aaa", &mut scratch, &mut last), None);
        assert_eq!(transform(b"a", &mut scratch, &mut last), Some(vec![0]));
        assert_eq!(transform(b"aba", &mut scratch, &mut last), Some(vec![1]));
    }
}
