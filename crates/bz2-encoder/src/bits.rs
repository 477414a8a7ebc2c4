//! A most-significant-bit-first bit writer, the bit order of a bzip2 stream.

pub(crate) struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    pending: u32,
}

impl BitWriter {
    pub(crate) fn new(out: Vec<u8>) -> BitWriter {
        BitWriter {
            out,
            acc: 0,
            pending: 0,
        }
    }

    /// Appends the low `bits` bits of `value` (at most 32), highest first.
    #[inline]
    pub(crate) fn put(&mut self, bits: u32, value: u32) {
        debug_assert!(bits <= 32 && (bits == 32 || value >> bits == 0));
        // At most 7 bits wait in `acc`, so 39 fit; bits above them are never read.
        self.acc = (self.acc << bits) | u64::from(value);
        self.pending += bits;
        while self.pending >= 8 {
            self.pending -= 8;
            self.out.push((self.acc >> self.pending) as u8);
        }
    }

    /// Pads the last byte with zero bits and returns the bytes.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        if self.pending > 0 {
            self.out.push((self.acc << (8 - self.pending)) as u8);
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_packed_highest_first() {
        let mut w = BitWriter::new(Vec::new());
        w.put(1, 1);
        w.put(3, 0b010);
        w.put(12, 0xabc);
        w.put(32, 0xdead_beef);
        w.put(2, 0b11);
        assert_eq!(
            w.finish(),
            [0xa0 | 0x0a, 0xbc, 0xde, 0xad, 0xbe, 0xef, 0xc0]
        );
    }
}
