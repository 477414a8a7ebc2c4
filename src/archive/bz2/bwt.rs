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

/// Sorting buffers, kept between blocks.
#[derive(Default)]
pub struct Scratch {
    rotated: Vec<u8>,
    sa: Vec<i32>,
}

/// Writes the transform of `block` to `last` and returns the original row, or `None` when
/// the block repeats a shorter string (equal rotations; no Lyndon rotation exists).
pub fn transform(block: &[u8], scratch: &mut Scratch, last: &mut Vec<u8>) -> Option<u32> {
    let n = block.len();
    let start = least_rotation(block)?;
    let rotated = &mut scratch.rotated;
    rotated.clear();
    rotated.extend_from_slice(&block[start..]);
    rotated.extend_from_slice(&block[..start]);
    if scratch.sa.len() < n {
        scratch.sa.resize(n, 0);
    }
    SuffixArrayConstruction::for_text(&rotated[..])
        .in_borrowed_buffer(&mut scratch.sa[..n])
        .single_threaded()
        .run()
        .ok()?;
    // The rotation of `block` at 0 is the rotation of `rotated` at n - start.
    let origin = (n - start) % n;
    let mut orig_row = None;
    last.clear();
    last.reserve(n);
    for (row, &s) in scratch.sa[..n].iter().enumerate() {
        let s = s as usize;
        if s == origin {
            orig_row = Some(row as u32);
        }
        last.push(rotated[if s == 0 { n - 1 } else { s - 1 }]);
    }
    orig_row
}

/// Where the least rotation of `s` starts, or `None` if two rotations are equal. Two
/// candidates race; a mismatch after `k` equal bytes rules out the larger candidate and the
/// `k` positions after it, each larger than its counterpart. Linear time.
fn least_rotation(s: &[u8]) -> Option<usize> {
    let n = s.len();
    let at = |x: usize| s[if x >= n { x - n } else { x }];
    let (mut i, mut j, mut k) = (0, 1, 0);
    while i < n && j < n && k < n {
        let (a, b) = (at(i + k), at(j + k));
        if a == b {
            k += 1;
            continue;
        }
        if a > b {
            i += k + 1;
        } else {
            j += k + 1;
        }
        if i == j {
            j += 1;
        }
        k = 0;
    }
    if n > 1 && k >= n {
        return None;
    }
    Some(i.min(j).min(n - 1))
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
            match transform(&block, &mut scratch, &mut last) {
                Some(orig) => {
                    assert_eq!((last.clone(), orig), naive(&block), "{:?}", block);
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
        assert_eq!(transform(b"a", &mut scratch, &mut last), Some(0));
        assert_eq!(transform(b"aba", &mut scratch, &mut last), Some(1));
    }
}
