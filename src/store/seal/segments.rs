//! A snapshot file's stream sealed in segments of `SEGMENT` plain bytes, each with its own
//! nonce and tag, streaming in bounded memory. The associated data of a segment carries its
//! number and whether it is the last one: segments moved, dropped or cut away, or a file cut
//! at a segment border, fail to open. Every segment but the last holds exactly `SEGMENT`
//! plain bytes; the last holds fewer (possibly none). Spec: "Encryption", "Snapshot files".

use std::io::{self, Read, Write};

use chacha20poly1305::XChaCha20Poly1305;

use super::{open_with, seal_with, OVERHEAD};

/// Plain bytes per segment.
pub(crate) const SEGMENT: usize = 64 * 1024;

fn aad(number: u64, last: bool) -> [u8; 40] {
    let mut a = [0u8; 40];
    a[..31].copy_from_slice(b"opsi-backup v6 snapshot segment");
    a[31..39].copy_from_slice(&number.to_le_bytes());
    a[39] = u8::from(last);
    a
}

/// Seals what is written into segments on `out`; without a cipher, passes it through.
pub(crate) struct SegmentSealer<W: Write> {
    cipher: Option<XChaCha20Poly1305>,
    out: W,
    buf: Vec<u8>,
    number: u64,
}

impl<W: Write> SegmentSealer<W> {
    pub(super) fn new(cipher: Option<XChaCha20Poly1305>, out: W) -> SegmentSealer<W> {
        SegmentSealer {
            cipher,
            out,
            buf: Vec::new(),
            number: 0,
        }
    }

    fn seal_segment(&mut self, last: bool) -> io::Result<()> {
        let cipher = self.cipher.as_ref().expect("only sealing sealers buffer");
        let sealed = seal_with(cipher, &aad(self.number, last), &self.buf);
        self.out.write_all(&sealed)?;
        self.buf.clear();
        self.number += 1;
        Ok(())
    }

    /// Seals the last segment and returns the writer underneath.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        if self.cipher.is_some() {
            self.seal_segment(true)?;
        }
        Ok(self.out)
    }
}

impl<W: Write> Write for SegmentSealer<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.cipher.is_none() {
            return self.out.write(b);
        }
        let n = b.len().min(SEGMENT - self.buf.len());
        self.buf.extend_from_slice(&b[..n]);
        if self.buf.len() == SEGMENT {
            self.seal_segment(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Reads the plain stream of segments `SegmentSealer` wrote.
pub(crate) struct SegmentOpener<R: Read> {
    cipher: XChaCha20Poly1305,
    source: R,
    plain: Vec<u8>,
    at: usize,
    number: u64,
    done: bool,
}

impl<R: Read> SegmentOpener<R> {
    pub(super) fn new(cipher: XChaCha20Poly1305, source: R) -> SegmentOpener<R> {
        SegmentOpener {
            cipher,
            source,
            plain: Vec::new(),
            at: 0,
            number: 0,
            done: false,
        }
    }

    fn next_segment(&mut self) -> io::Result<()> {
        let mut sealed = vec![0u8; SEGMENT + OVERHEAD];
        let mut n = 0;
        while n < sealed.len() {
            match self.source.read(&mut sealed[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let bad = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
        if n == 0 {
            return Err(bad(format!(
                "the sealed stream ends before its last segment (segment {} missing)",
                self.number
            )));
        }
        // A full segment is never the last one: the writer seals a shorter one after it.
        let last = n < sealed.len();
        self.plain =
            open_with(&self.cipher, &aad(self.number, last), &sealed[..n]).map_err(|e| {
                bad(format!(
                    "sealed segment {}{}: {e}",
                    self.number,
                    if last { " (the last)" } else { "" }
                ))
            })?;
        self.at = 0;
        self.number += 1;
        self.done = last;
        Ok(())
    }
}

impl<R: Read> Read for SegmentOpener<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.plain.len() {
            if self.done {
                return Ok(0);
            }
            self.next_segment()?;
        }
        let n = buf.len().min(self.plain.len() - self.at);
        buf[..n].copy_from_slice(&self.plain[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Crypt, MasterKey};
    use super::*;

    fn sealed(c: &Crypt, plain: &[u8]) -> Vec<u8> {
        let mut s = c.segment_sealer(Vec::new());
        // Odd write sizes: segments are cut by count, not by write.
        for piece in plain.chunks(7_777) {
            s.write_all(piece).unwrap();
        }
        s.finish().unwrap()
    }

    fn opened(c: &Crypt, sealed: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        c.segment_opener(sealed).unwrap().read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn segments_round_trip_and_refuse_reordering_and_truncation() {
        let c = Crypt::unlocked(&MasterKey::generate().unwrap());
        for len in [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let s = sealed(&c, &plain);
            assert_eq!(opened(&c, &s).unwrap(), plain, "{len}");
            // Cut at every segment border and in the middle of the last segment.
            let full = SEGMENT + OVERHEAD;
            let mut cuts: Vec<usize> = (1..=len / SEGMENT).map(|k| k * full).collect();
            cuts.push(s.len() - 1);
            for cut in cuts.into_iter().filter(|c| *c < s.len()) {
                assert!(opened(&c, &s[..cut]).is_err(), "{len} cut at {cut}");
            }
        }
        let plain = vec![5u8; 3 * SEGMENT];
        let s = sealed(&c, &plain);
        let full = SEGMENT + OVERHEAD;
        let mut swapped = s.clone();
        swapped[..full].copy_from_slice(&s[full..2 * full]);
        swapped[full..2 * full].copy_from_slice(&s[..full]);
        assert!(opened(&c, &swapped).is_err());
        let mut flipped = s.clone();
        flipped[full + 100] ^= 1;
        assert!(opened(&c, &flipped).is_err());
    }
}
