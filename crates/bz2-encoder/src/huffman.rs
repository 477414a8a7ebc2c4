//! bzip2's entropy stage: the block's symbols are coded in groups of 50, each group with the
//! cheapest of 2-6 Huffman tables. The tables start from a split of the alphabet by
//! frequency and are refined by reassigning groups and rebuilding the tables a few times.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

pub(crate) const GROUP: usize = 50;
/// Longest code written (the format allows 20; shorter codes keep tables cheap to decode).
const MAX_LEN: u8 = 17;
const ROUNDS: usize = 4;

pub(crate) struct Tables {
    /// Code length of every symbol, per table.
    pub lens: Vec<[u8; 258]>,
    pub codes: Vec<[u32; 258]>,
    /// The table of every group of 50 symbols.
    pub selectors: Vec<u8>,
}

/// Chooses tables and selectors for `syms` over an alphabet of `alpha` symbols.
pub(crate) fn build(syms: &[u16], alpha: usize, freq: &[u32; 258]) -> Tables {
    let n_tables = match syms.len() {
        0..200 => 2,
        200..600 => 3,
        600..1200 => 4,
        1200..2400 => 5,
        _ => 6,
    };
    let mut lens = initial_tables(n_tables, alpha, freq, syms.len());
    let mut selectors = vec![0u8; syms.len().div_ceil(GROUP)];
    for _ in 0..ROUNDS {
        // Each symbol's lengths in all tables, packed in 10-bit lanes: a group's 50 sums
        // add up lane by lane without carrying (50 x 17 < 1024).
        let mut packed = [0u64; 258];
        for (t, l) in lens.iter().enumerate() {
            for s in 0..alpha {
                packed[s] |= u64::from(l[s]) << (10 * t);
            }
        }
        let mut table_freq = vec![[0u32; 258]; n_tables];
        for (g, group) in syms.chunks(GROUP).enumerate() {
            let cost: u64 = group.iter().map(|&s| packed[s as usize]).sum();
            let best = (0..n_tables)
                .min_by_key(|&t| (cost >> (10 * t)) & 0x3ff)
                .unwrap_or(0);
            selectors[g] = best as u8;
            for &s in group {
                table_freq[best][s as usize] += 1;
            }
        }
        for (t, f) in table_freq.iter().enumerate() {
            code_lengths(&f[..alpha], &mut lens[t][..alpha]);
        }
    }
    let codes = lens.iter().map(|l| canonical_codes(&l[..alpha])).collect();
    Tables {
        lens,
        codes,
        selectors,
    }
}

/// Table t starts cheap (length 0) on its own slice of the alphabet, which holds about
/// 1/n of the symbols, and dear (15) elsewhere, so the first round sorts groups by kind.
fn initial_tables(n: usize, alpha: usize, freq: &[u32; 258], total: usize) -> Vec<[u8; 258]> {
    let mut lens = vec![[15u8; 258]; n];
    let mut remaining = total as u64;
    let mut lo = 0;
    for (t, table) in lens.iter_mut().enumerate() {
        let parts_left = (n - t) as u64;
        let target = remaining / parts_left;
        let mut hi = lo;
        let mut got = 0u64;
        while hi < alpha && (got < target || hi == lo) && (alpha - hi) > n - t - 1 {
            got += u64::from(freq[hi]);
            hi += 1;
        }
        if t == n - 1 {
            hi = alpha;
        }
        for l in &mut table[lo..hi] {
            *l = 0;
        }
        remaining = remaining.saturating_sub(got);
        lo = hi;
    }
    lens
}

/// Huffman code lengths of at most `MAX_LEN` bits; every symbol gets a code, since the
/// format stores a length for each. Too deep a tree is rebuilt from flattened weights.
pub(crate) fn code_lengths(freq: &[u32], lens: &mut [u8]) {
    let mut weights: Vec<u64> = freq.iter().map(|&f| u64::from(f.max(1))).collect();
    loop {
        let depths = tree_depths(&weights);
        if depths.iter().all(|&d| d <= MAX_LEN) {
            lens.copy_from_slice(&depths);
            return;
        }
        for w in &mut weights {
            *w = *w / 2 + 1;
        }
    }
}

/// The depth of every leaf of a Huffman tree over `weights` (at least two of them).
fn tree_depths(weights: &[u64]) -> Vec<u8> {
    let n = weights.len();
    let mut parent = vec![0usize; 2 * n - 1];
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| Reverse((w, i)))
        .collect();
    let mut next = n;
    while let (Some(Reverse((wa, a))), Some(Reverse((wb, b)))) = (heap.pop(), heap.pop()) {
        parent[a] = next;
        parent[b] = next;
        heap.push(Reverse((wa + wb, next)));
        next += 1;
    }
    // Parents are made after their children, so one pass from the root down suffices.
    let mut depth = vec![0u8; 2 * n - 1];
    for node in (0..2 * n - 2).rev() {
        depth[node] = depth[parent[node]].saturating_add(1);
    }
    depth.truncate(n);
    depth
}

/// Canonical codes, as the decoder rebuilds them: by length, then by symbol.
fn canonical_codes(lens: &[u8]) -> [u32; 258] {
    let mut codes = [0u32; 258];
    let mut next = 0u32;
    for len in 1..=MAX_LEN {
        for (s, &l) in lens.iter().enumerate() {
            if l == len {
                codes[s] = next;
                next += 1;
            }
        }
        next <<= 1;
    }
    codes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_form_a_complete_prefix_code_within_the_limit() {
        // Fibonacci weights make the deepest possible tree, far over 17 levels.
        let mut freq = vec![1u32, 1];
        while freq.len() < 40 {
            let k = freq.len();
            freq.push(freq[k - 1] + freq[k - 2]);
        }
        freq.push(0);
        let mut lens = vec![0u8; freq.len()];
        code_lengths(&freq, &mut lens);
        assert!(lens.iter().all(|&l| (1..=MAX_LEN).contains(&l)));
        let kraft: f64 = lens.iter().map(|&l| 0.5f64.powi(l as i32)).sum();
        assert!((kraft - 1.0).abs() < 1e-9, "{kraft}");
        // A frequent symbol never gets a longer code than a rarer one.
        assert!(lens[39] <= lens[5]);
    }

    #[test]
    fn codes_are_canonical() {
        let codes = canonical_codes(&[2, 1, 3, 3]);
        assert_eq!(&codes[..4], &[0b10, 0b0, 0b110, 0b111]);
    }
}
