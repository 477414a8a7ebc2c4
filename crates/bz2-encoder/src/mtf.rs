//! Move-to-front over the bytes a block uses, with runs of zeros written in bijective base 2
//! (RUNA = digit 1, RUNB = digit 2), ending with the end-of-block symbol.

pub(crate) const RUNA: u16 = 0;
pub(crate) const RUNB: u16 = 1;

/// The symbols of one block and how often each occurs.
pub(crate) struct Symbols {
    pub syms: Vec<u16>,
    /// Number of symbols in the alphabet: the used bytes, RUNA/RUNB's extra one, end of block.
    pub alpha: usize,
    pub freq: [u32; 258],
}

/// `used` lists which byte values occur in `last`.
pub(crate) fn encode(last: &[u8], used: &[bool; 256], syms: Vec<u16>) -> Symbols {
    let mut seq = [0u8; 256];
    let mut in_use = 0usize;
    for b in 0..256 {
        if used[b] {
            seq[b] = in_use as u8;
            in_use += 1;
        }
    }
    let mut out = Symbols {
        syms,
        alpha: in_use + 2,
        freq: [0; 258],
    };
    out.syms.clear();
    out.syms.reserve(last.len() + 1);
    let mut order: [u8; 256] = std::array::from_fn(|i| i as u8);
    let mut zeros = 0u32;
    for &byte in last {
        let v = seq[byte as usize];
        if order[0] == v {
            zeros += 1;
            continue;
        }
        out.push_zeros(&mut zeros);
        let mut prev = order[0];
        order[0] = v;
        let mut pos = 1;
        while order[pos] != v {
            std::mem::swap(&mut order[pos], &mut prev);
            pos += 1;
        }
        order[pos] = prev;
        out.push(pos as u16 + 1);
    }
    out.push_zeros(&mut zeros);
    out.push(in_use as u16 + 1);
    out
}

impl Symbols {
    #[inline]
    fn push(&mut self, s: u16) {
        self.syms.push(s);
        self.freq[s as usize] += 1;
    }

    fn push_zeros(&mut self, zeros: &mut u32) {
        let mut z = *zeros;
        while z > 0 {
            if z & 1 == 1 {
                self.push(RUNA);
                z = (z - 1) / 2;
            } else {
                self.push(RUNB);
                z = (z - 2) / 2;
            }
        }
        *zeros = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_zeros_use_bijective_base_two() {
        let mut used = [false; 256];
        used[b'a' as usize] = true;
        used[b'b' as usize] = true;
        // 'a' is at the front: one zero; then b (index 1 -> symbol 2), then 6 zeros
        // (6 = 2 + 2*2: RUNB RUNB), then a (1 -> 2), end of block (2 + 1 = 3).
        let s = encode(b"abbbbbbba", &used, Vec::new());
        assert_eq!(s.syms, [RUNA, 2, RUNB, RUNB, 2, 3]);
        assert_eq!(s.alpha, 4);
        assert_eq!(&s.freq[..4], &[1, 2, 2, 1]);
    }
}
