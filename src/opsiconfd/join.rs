//! Puts an opsiconfd document back together from a snapshot's members, as they are replayed:
//! the frame stream first (held in memory; it is small), then each stream, copied straight
//! through where the frame says. A class stored grouped by host is read whole and put back
//! in its order (memory: the largest such class). The result is checked against the length
//! and BLAKE3 the frame recorded at import.

use std::io::{self, Read, Write};

use crate::error::{Error, Result};
use crate::member::Member;
use crate::opsiconfd::layers::Encoding;
use crate::opsiconfd::split::{FRAME_MAGIC, OP_END, OP_GROUPED, OP_LITERAL, OP_TAKE};
use crate::opsiconfd::{json, msgpack, varint, FRAME_PATH};
use crate::sink::MemberSink;

/// The largest frame stream read into memory.
const MAX_FRAME: u64 = 256 << 20;

fn bad(why: impl std::fmt::Display) -> Error {
    Error::Corrupt(format!(
        "the opsiconfd snapshot does not fit together: {why}"
    ))
}

struct Frame {
    bytes: Vec<u8>,
    encoding: Encoding,
    doc_len: u64,
    hash: [u8; 32],
    streams: Vec<(String, u64)>,
    /// Where the next instruction starts.
    at: usize,
}

impl Frame {
    fn parse(bytes: Vec<u8>) -> Result<Frame> {
        if !bytes.starts_with(FRAME_MAGIC) {
            return Err(bad("the frame stream has no frame magic"));
        }
        let mut p = FRAME_MAGIC.len();
        let encoding = match bytes.get(p) {
            Some(0) => Encoding::Msgpack,
            Some(1) => Encoding::Json,
            _ => return Err(bad("unknown encoding in the frame")),
        };
        p += 1;
        let doc_len = varint::get(&bytes, &mut p)?;
        let hash: [u8; 32] = bytes
            .get(p..p + 32)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| bad("the frame ends early"))?;
        p += 32;
        let count = varint::get(&bytes, &mut p)?;
        let mut streams = Vec::new();
        for _ in 0..count {
            let n = varint::get(&bytes, &mut p)? as usize;
            let path = bytes
                .get(p..p.saturating_add(n))
                .ok_or_else(|| bad("the frame ends early"))?;
            p += n;
            let path = String::from_utf8_lossy(path).into_owned();
            streams.push((path, varint::get(&bytes, &mut p)?));
        }
        Ok(Frame {
            bytes,
            encoding,
            doc_len,
            hash,
            streams,
            at: p,
        })
    }
}

/// A sink that writes the document of an opsiconfd snapshot to `out`.
pub struct Joiner<W: Write> {
    out: W,
    frame: Option<Frame>,
    /// The index of the stream the next member must be.
    next: usize,
    hasher: blake3::Hasher,
    written: u64,
    /// The order stream of the grouped class that comes next.
    order: Option<Vec<u8>>,
}

impl<W: Write> Joiner<W> {
    pub fn new(out: W) -> Joiner<W> {
        Joiner {
            out,
            frame: None,
            next: 0,
            hasher: blake3::Hasher::new(),
            written: 0,
            order: None,
        }
    }

    fn emit(&mut self, bytes: &[u8]) -> Result<()> {
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        self.out
            .write_all(bytes)
            .map_err(|e| Error::io("writing the opsiconfd backup", e))
    }

    /// Runs instructions until one takes from another stream than `current` (or the end).
    /// Returns the bytes taken from `content`.
    fn run(&mut self, current: Option<usize>, content: &mut dyn Read) -> Result<u64> {
        let mut taken = 0u64;
        loop {
            let f = self.frame.as_mut().expect("frame read first");
            let mut p = f.at;
            let op = *f.bytes.get(p).ok_or_else(|| bad("the frame ends early"))?;
            p += 1;
            match op {
                OP_END => return Ok(taken),
                OP_LITERAL => {
                    let n = varint::get(&f.bytes, &mut p)? as usize;
                    let end = p.checked_add(n).filter(|&e| e <= f.bytes.len());
                    let end = end.ok_or_else(|| bad("the frame ends early"))?;
                    f.at = end;
                    let lit = std::mem::take(&mut f.bytes);
                    let r = self.emit(&lit[p..end]);
                    self.frame.as_mut().expect("frame").bytes = lit;
                    r?;
                }
                OP_TAKE => {
                    let i = varint::get(&f.bytes, &mut p)? as usize;
                    let n = varint::get(&f.bytes, &mut p)?;
                    if Some(i) != current {
                        return Ok(taken);
                    }
                    f.at = p;
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut left = n;
                    while left > 0 {
                        let want = buf.len().min(left as usize);
                        content.read_exact(&mut buf[..want]).map_err(|e| {
                            bad(format!("a stream is shorter than its frame says: {e}"))
                        })?;
                        self.emit(&buf[..want])?;
                        left -= want as u64;
                    }
                    taken += n;
                }
                OP_GROUPED => {
                    let i = varint::get(&f.bytes, &mut p)? as usize;
                    let n = varint::get(&f.bytes, &mut p)?;
                    match current {
                        // The member before a grouped class is its order.
                        Some(c) if c + 1 == i && self.order.is_none() => {
                            let mut order = Vec::new();
                            content
                                .read_to_end(&mut order)
                                .map_err(|e| Error::io("reading an order stream", e))?;
                            taken += order.len() as u64;
                            self.order = Some(order);
                            return Ok(taken);
                        }
                        Some(c) if c == i => {}
                        _ => return Ok(taken),
                    }
                    f.at = p;
                    let encoding = f.encoding;
                    let mut objects = Vec::new();
                    content
                        .take(n)
                        .read_to_end(&mut objects)
                        .map_err(|e| Error::io("reading a grouped class", e))?;
                    if objects.len() as u64 != n {
                        return Err(bad("a grouped class is shorter than its frame says"));
                    }
                    let order = self
                        .order
                        .take()
                        .ok_or_else(|| bad("a grouped class has no order"))?;
                    self.ungroup(encoding, &objects, &order)?;
                    taken += n;
                }
                _ => return Err(bad(format!("unknown instruction {op}"))),
            }
        }
    }

    /// Writes the objects of a grouped class in the order `order` gives (`split::group`).
    fn ungroup(&mut self, encoding: Encoding, objects: &[u8], order: &[u8]) -> Result<()> {
        let items = match encoding {
            Encoding::Msgpack => msgpack::items(objects)?,
            Encoding::Json => json::items(objects)?,
        };
        let mut p = 0;
        let count = varint::get(order, &mut p)?;
        let groups = varint::get(order, &mut p)?;
        if count != items.len() as u64 || groups > count {
            return Err(bad("a grouped class does not match its order"));
        }
        let mut of = Vec::with_capacity(items.len());
        let mut sizes = vec![0usize; groups as usize];
        for _ in 0..count {
            let g = varint::get(order, &mut p)?;
            let size = sizes
                .get_mut(g as usize)
                .ok_or_else(|| bad("an order names a group that does not exist"))?;
            *size += 1;
            of.push(g as usize);
        }
        if p != order.len() {
            return Err(bad("an order stream is longer than its count"));
        }
        // Where each group's next object is in the stream.
        let mut next = Vec::with_capacity(sizes.len());
        let mut at = 0;
        for s in &sizes {
            next.push(at);
            at += s;
        }
        for (n, g) in of.into_iter().enumerate() {
            if n > 0 && encoding == Encoding::Json {
                self.emit(b",")?;
            }
            let r = items[next[g]].clone();
            next[g] += 1;
            self.emit(&objects[r])?;
        }
        Ok(())
    }

    /// Checks that every stream came and the document is the one imported; returns the
    /// writer and the document's encoding.
    pub fn finish(mut self) -> Result<(W, Encoding)> {
        if self.frame.is_none() {
            return Err(bad("the snapshot has no frame stream"));
        }
        self.run(None, &mut io::empty())?;
        let f = self.frame.as_ref().expect("frame");
        let op = f.bytes.get(f.at).copied();
        if op != Some(OP_END) || self.next != f.streams.len() {
            return Err(bad("streams are missing"));
        }
        if self.written != f.doc_len || *self.hasher.finalize().as_bytes() != f.hash {
            return Err(bad("the document put together is not the one imported"));
        }
        let enc = f.encoding;
        Ok((self.out, enc))
    }
}

impl<W: Write> MemberSink for Joiner<W> {
    fn add(&mut self, member: &Member, content: &mut dyn Read) -> Result<()> {
        if self.frame.is_none() {
            if member.path != FRAME_PATH || member.size > MAX_FRAME {
                return Err(bad(format!(
                    "it begins with {} instead of the frame",
                    member.path
                )));
            }
            let mut bytes = Vec::with_capacity(member.size as usize);
            content
                .read_to_end(&mut bytes)
                .map_err(|e| Error::io("reading the frame stream", e))?;
            self.frame = Some(Frame::parse(bytes)?);
            self.run(None, &mut io::empty())?;
            return Ok(());
        }
        let f = self.frame.as_ref().expect("frame");
        let k = self.next;
        match f.streams.get(k) {
            Some((path, len)) if *path == member.path && *len == member.size => {}
            _ => return Err(bad(format!("unexpected member {}", member.path))),
        }
        let taken = self.run(Some(k), content)?;
        if taken != member.size {
            return Err(bad(format!("{} is not used whole", member.path)));
        }
        self.next += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opsiconfd::split::split;

    /// A msgpack backup with a class spread by host (grouped) and redis expiries.
    fn doc() -> Vec<u8> {
        fn s(out: &mut Vec<u8>, t: &str) {
            out.push(0xd9);
            out.push(t.len() as u8);
            out.extend_from_slice(t.as_bytes());
        }
        let mut d = vec![0x83];
        s(&mut d, "meta");
        d.push(0x84);
        for (k, v) in [
            ("type", "opsiconfd_backup"),
            ("version", "1"),
            ("host_id", "h"),
        ] {
            s(&mut d, k);
            s(&mut d, v);
        }
        s(&mut d, "timestamp");
        d.push(0xcb);
        d.extend_from_slice(&1.5e9f64.to_be_bytes());
        s(&mut d, "objects");
        d.push(0x81);
        s(&mut d, "ProductOnClient");
        d.extend_from_slice(&[0xdc, 0, 100]);
        for i in 0..100 {
            d.push(0x82);
            s(&mut d, "productId");
            s(&mut d, &format!("p{}", i / 10));
            s(&mut d, "clientId");
            s(&mut d, &format!("c{}", i % 10));
        }
        s(&mut d, "redis");
        d.push(0x81);
        s(&mut d, "dumped_keys");
        d.push(0x91);
        d.push(0x82);
        s(&mut d, "name");
        s(&mut d, "k");
        s(&mut d, "expires");
        d.push(0xcf);
        d.extend_from_slice(&1_700_000_000_000u64.to_be_bytes());
        d
    }

    fn join(frame: &[u8], streams: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
        let mut j = Joiner::new(Vec::new());
        j.add(
            &Member::control(FRAME_PATH, frame.len() as u64),
            &mut &frame[..],
        )?;
        for (path, bytes) in streams {
            j.add(&Member::control(path, bytes.len() as u64), &mut &bytes[..])?;
        }
        Ok(j.finish()?.0)
    }

    #[test]
    fn split_then_join_gives_the_document_and_damage_an_error() {
        let d = doc();
        let parts = split(&d).unwrap();
        let streams: Vec<(String, Vec<u8>)> = parts
            .streams
            .iter()
            .map(|s| {
                let mut b = Vec::new();
                s.reader(&d).read_to_end(&mut b).unwrap();
                (s.path.clone(), b)
            })
            .collect();
        let paths: Vec<&str> = streams.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(
            paths,
            [
                "opsiconfd/objects/00-ProductOnClient.order",
                "opsiconfd/objects/00-ProductOnClient",
                "opsiconfd/redis"
            ]
        );
        // Grouped by host: c0's ten objects (30 bytes each) first.
        assert_eq!(
            streams[1].1.windows(2).position(|w| w == b"c1"),
            Some(10 * 30 + 28)
        );
        // Neither the timestamp nor the expiry is in a stream.
        assert!(!streams[2].1.windows(3).any(|w| w == [0x00, 0x00, 0x01]));
        assert!(join(&parts.frame, &streams).unwrap() == d);
        // Every changed byte of the frame or of a stream is an error (or, where it only
        // changes a literal's bytes, a document whose BLAKE3 does not match), never a panic.
        for i in 0..parts.frame.len() {
            let mut f = parts.frame.clone();
            f[i] ^= 0x5a;
            assert!(join(&f, &streams).is_err(), "frame byte {i}");
        }
        for s in 0..streams.len() {
            for i in (0..streams[s].1.len()).step_by(7) {
                let mut st = streams.clone();
                st[s].1[i] ^= 0x5a;
                assert!(join(&parts.frame, &st).is_err(), "stream {s} byte {i}");
            }
        }
        let mut st = streams.clone();
        st.swap(0, 1);
        assert!(join(&parts.frame, &st).is_err());
        assert!(join(&parts.frame, &streams[..2]).is_err());
    }

    #[test]
    fn repeated_keys_get_unique_paths_and_join_back() {
        let d = br#"{"meta":{"type":"opsiconfd_backup","version":"1","host_id":"h","timestamp":1},"redis":[1],"objects":{"A":[1],"A":[2]},"redis":{"expires":2}, "x":3,"x":4}"#;
        let parts = split(d).unwrap();
        let mut paths: Vec<&str> = parts.streams.iter().map(|s| s.path.as_str()).collect();
        let n = paths.len();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), n, "{paths:?}");
        let streams: Vec<(String, Vec<u8>)> = parts
            .streams
            .iter()
            .map(|s| {
                let mut b = Vec::new();
                s.reader(d).read_to_end(&mut b).unwrap();
                (s.path.clone(), b)
            })
            .collect();
        assert_eq!(join(&parts.frame, &streams).unwrap(), d);
    }
}
