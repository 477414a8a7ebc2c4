//! Splits a decoded opsiconfd document into streams that deduplicate from night to night,
//! without re-encoding anything: the objects of each class, the config files, the redis
//! keys and any other top-level value each become a stream of the document's own bytes, cut
//! where their value begins and ends. What is left (map heads, keys, punctuation, `meta` with
//! its timestamp, and the redis keys' `expires` values, which change every night) goes into
//! the small frame stream, with the instructions that put the document back together
//! (`join`). Concatenating, as the frame says, gives the document byte for byte.
//!
//! The frame stream (store-format/README.md, "Snapshot kinds"):
//! `OBKOCF\x01\n`, the encoding (0 msgpack, 1 JSON), the document's length (LEB128), its
//! BLAKE3 (32 bytes), the stream count, per stream its path's length, path and length, then
//! instructions until a 0 byte: 1 = literal (length, bytes), 2 = take (stream index, length)
//! from that stream, where the previous take from it stopped; 3 = grouped (stream index,
//! length): the whole stream is a class grouped by host (`group`), the stream before it its
//! order.

use std::io::Read;
use std::ops::Range;

use crate::error::{Error, Result};
use crate::opsiconfd::layers::Encoding;
use crate::opsiconfd::parts::{ArrayParts, MapParts};
use crate::opsiconfd::{json, msgpack, varint, FRAME_PATH};

pub(crate) const FRAME_MAGIC: &[u8; 8] = b"OBKOCF\x01\n";
pub(crate) const OP_END: u8 = 0;
pub(crate) const OP_LITERAL: u8 = 1;
pub(crate) const OP_TAKE: u8 = 2;
pub(crate) const OP_GROUPED: u8 = 3;

/// One stream: its member path and the document's byte ranges it is made of.
#[derive(Debug, Clone)]
pub struct Stream {
    pub path: String,
    pub ranges: Vec<Range<usize>>,
    /// Bytes of its own instead of ranges (an order stream, see `group`).
    pub owned: Vec<u8>,
    owned_range: Range<usize>,
    pub len: u64,
}

impl Stream {
    /// Its bytes, read out of the document.
    pub fn reader<'a>(&'a self, doc: &'a [u8]) -> RangesReader<'a> {
        if self.ranges.is_empty() {
            return RangesReader {
                doc: &self.owned,
                ranges: std::slice::from_ref(&self.owned_range),
                at: 0,
            };
        }
        RangesReader {
            doc,
            ranges: &self.ranges,
            at: 0,
        }
    }
}

/// Reads a stream's ranges of the document one after the other.
pub struct RangesReader<'a> {
    doc: &'a [u8],
    ranges: &'a [Range<usize>],
    /// Bytes of `ranges[0]` already read.
    at: usize,
}

impl Read for RangesReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while let Some(r) = self.ranges.first() {
            let left = &self.doc[r.start + self.at..r.end];
            if left.is_empty() {
                self.ranges = &self.ranges[1..];
                self.at = 0;
                continue;
            }
            let n = buf.len().min(left.len());
            buf[..n].copy_from_slice(&left[..n]);
            self.at += n;
            return Ok(n);
        }
        Ok(0)
    }
}

/// A document split: the frame stream's bytes, the other streams, and where `meta` is.
pub struct Split {
    pub encoding: Encoding,
    pub frame: Vec<u8>,
    pub streams: Vec<Stream>,
    pub meta: Range<usize>,
}

enum Op {
    Literal(Range<usize>),
    Take(usize, u64),
    /// A class stored grouped by host: (its stream, bytes); the stream before is its order.
    Grouped(usize, u64),
}

#[derive(Default)]
struct Builder {
    ops: Vec<Op>,
    streams: Vec<Stream>,
}

impl Builder {
    fn literal(&mut self, r: Range<usize>) {
        if r.is_empty() {
            return;
        }
        if let Some(Op::Literal(last)) = self.ops.last_mut() {
            if last.end == r.start {
                last.end = r.end;
                return;
            }
        }
        self.ops.push(Op::Literal(r));
    }

    /// A new stream; a path already taken (a key the document repeats) gets a `~N` suffix, so
    /// that member paths stay unique.
    fn open(&mut self, mut path: String) -> usize {
        if self.streams.iter().any(|s| s.path == path) {
            path = format!("{path}~{}", self.streams.len());
        }
        self.streams.push(Stream {
            path,
            ranges: Vec::new(),
            owned: Vec::new(),
            owned_range: 0..0,
            len: 0,
        });
        self.streams.len() - 1
    }

    fn take(&mut self, stream: usize, r: Range<usize>) {
        if r.is_empty() {
            return;
        }
        let len = r.len() as u64;
        let s = &mut self.streams[stream];
        s.len += len;
        match s.ranges.last_mut() {
            Some(last) if last.end == r.start => last.end = r.end,
            _ => s.ranges.push(r),
        }
        if let Some(Op::Take(i, n)) = self.ops.last_mut() {
            if *i == stream {
                *n += len;
                return;
            }
        }
        self.ops.push(Op::Take(stream, len));
    }
}

impl Builder {
    /// A class stored grouped: its order stream, then its objects, in the order `g` sorted.
    fn grouped(&mut self, path: String, g: Grouped) {
        let o = self.open(format!("{path}.order"));
        let s = &mut self.streams[o];
        s.len = g.order.len() as u64;
        s.owned_range = 0..g.order.len();
        s.owned = g.order;
        self.literal(g.open);
        let s = self.open(path);
        let mut len = 0;
        for r in g.sorted {
            len += r.len() as u64;
            self.streams[s].ranges.push(r);
        }
        self.streams[s].len = len;
        self.ops.push(Op::Grouped(s, len));
        self.literal(g.close);
    }
}

/// A class's objects grouped by the host they belong to, for a class whose objects of one
/// host lie spread over it (opsiconfd lists product and config states by product or config,
/// then host: a night in which a few hosts changed would touch every chunk of the class).
/// Grouped, a changed host costs about its own objects. `order` tells where each object was:
/// its count, the number of groups, then for each object in the document's order its group
/// (LEB128); within a group, objects keep their order. It changes only when hosts come or
/// go. JSON objects are grouped only in compact arrays (`,` between objects, no spaces), and
/// joined by `,` in the stream.
struct Grouped {
    open: Range<usize>,
    close: Range<usize>,
    sorted: Vec<Range<usize>>,
    order: Vec<u8>,
}

/// The fields that name the host an object belongs to.
const OWNER_KEYS: [&[u8]; 3] = [b"clientId", b"objectId", b"hostId"];
/// Classes smaller than this stay as they are.
const MIN_GROUPED: usize = 64;

fn group(enc: Encoding, doc: &[u8], value: Range<usize>) -> Result<Option<Grouped>> {
    let items = match enc {
        Encoding::Msgpack => msgpack::array_items(doc, value.start)?,
        Encoding::Json => json::compact_array_items(doc, value.start)?,
    };
    let Some(ArrayParts {
        open,
        items,
        separator: sep,
        close,
    }) = items
    else {
        return Ok(None);
    };
    if items.len() < MIN_GROUPED {
        return Ok(None);
    }
    let mut owners: Vec<&[u8]> = Vec::with_capacity(items.len());
    for it in &items {
        let parts = map_parts(enc, doc, it.start)?;
        let owner = parts
            .and_then(|p| {
                p.entries
                    .into_iter()
                    .find(|e| OWNER_KEYS.contains(&&doc[e.key.clone()]))
            })
            .map_or(&[][..], |e| &doc[e.value]);
        owners.push(owner);
    }
    let runs = owners.windows(2).filter(|w| w[0] != w[1]).count() + 1;
    let mut distinct = owners.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if runs <= 2 * distinct.len() {
        return Ok(None);
    }
    let groups: Vec<usize> = owners
        .iter()
        .map(|o| distinct.binary_search(o).expect("an owner of the list"))
        .collect();
    let mut by_group: Vec<usize> = (0..items.len()).collect();
    by_group.sort_by_key(|&i| groups[i]);
    let mut sorted = Vec::with_capacity(items.len() * 2);
    for (n, &i) in by_group.iter().enumerate() {
        if n > 0 {
            if let Some(sep) = &sep {
                sorted.push(sep.clone());
            }
        }
        sorted.push(items[i].clone());
    }
    let mut order = Vec::with_capacity(items.len() * 2);
    varint::put(&mut order, items.len() as u64);
    varint::put(&mut order, distinct.len() as u64);
    for g in groups {
        varint::put(&mut order, g as u64);
    }
    Ok(Some(Grouped {
        open,
        close,
        sorted,
        order,
    }))
}

/// A class or key name as a safe member path part: letters, digits, `_` and `-` kept, at
/// most 48 of them; the index in front keeps names unique.
fn path_part(index: usize, raw: &[u8]) -> String {
    let name: String = String::from_utf8_lossy(raw)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(48)
        .collect();
    format!("{index:02}-{name}")
}

fn map_parts(enc: Encoding, doc: &[u8], at: usize) -> Result<Option<MapParts>> {
    match enc {
        Encoding::Msgpack => msgpack::map_parts(doc, at),
        Encoding::Json => json::map_parts(doc, at),
    }
}

fn not_a_backup(why: &str) -> Error {
    Error::Invalid(format!("not an opsiconfd backup: {why}"))
}

/// Splits `doc`. Refuses a document that is not a map with a `meta` map, or that has bytes
/// after its end (JSON: other than whitespace).
pub fn split(doc: &[u8]) -> Result<Split> {
    let enc = Encoding::of(doc);
    if enc == Encoding::Json {
        json::validate(doc)?;
    }
    let top = map_parts(enc, doc, 0)?.ok_or_else(|| not_a_backup("the document is not a map"))?;
    let end = top.close.end;
    let rest = &doc[end..];
    let trailing_ok = match enc {
        Encoding::Msgpack => rest.is_empty(),
        Encoding::Json => rest.iter().all(|b| b" \t\r\n".contains(b)),
    };
    if !trailing_ok {
        return Err(Error::Corrupt(format!(
            "the backup document has {} bytes after its end",
            rest.len()
        )));
    }
    let mut b = Builder::default();
    let mut meta = None;
    b.literal(top.open.clone());
    for (i, e) in top.entries.iter().enumerate() {
        b.literal(e.prefix.clone());
        match &doc[e.key.clone()] {
            b"meta" => {
                b.literal(e.value.clone());
                meta = Some(e.value.clone());
            }
            b"objects" => match map_parts(enc, doc, e.value.start)? {
                Some(classes) => {
                    b.literal(classes.open.clone());
                    for (n, c) in classes.entries.iter().enumerate() {
                        b.literal(c.prefix.clone());
                        let path =
                            format!("opsiconfd/objects/{}", path_part(n, &doc[c.key.clone()]));
                        match group(enc, doc, c.value.clone())? {
                            Some(g) => b.grouped(path, g),
                            None => {
                                let s = b.open(path);
                                b.take(s, c.value.clone());
                            }
                        }
                    }
                    b.literal(classes.close.clone());
                }
                None => {
                    let s = b.open("opsiconfd/objects".into());
                    b.take(s, e.value.clone());
                }
            },
            b"redis" => {
                let s = b.open("opsiconfd/redis".into());
                let mut parts = Vec::new();
                let pulled = |r: Range<usize>, apart: bool| parts.push((r, apart));
                match enc {
                    Encoding::Msgpack => msgpack::pull_expiries(doc, e.value.clone(), pulled)?,
                    Encoding::Json => json::pull_expiries(doc, e.value.clone(), pulled)?,
                }
                for (r, apart) in parts {
                    if apart {
                        b.literal(r);
                    } else {
                        b.take(s, r);
                    }
                }
            }
            b"config_files" => {
                let s = b.open("opsiconfd/config_files".into());
                b.take(s, e.value.clone());
            }
            key => {
                let s = b.open(format!("opsiconfd/other/{}", path_part(i, key)));
                b.take(s, e.value.clone());
            }
        }
    }
    b.literal(top.close.clone());
    b.literal(end..doc.len());
    let meta = meta.ok_or_else(|| not_a_backup("it has no `meta`"))?;
    let frame = frame_bytes(enc, doc, &b);
    Ok(Split {
        encoding: enc,
        frame,
        streams: b.streams,
        meta,
    })
}

fn frame_bytes(enc: Encoding, doc: &[u8], b: &Builder) -> Vec<u8> {
    let mut f = Vec::with_capacity(4096);
    f.extend_from_slice(FRAME_MAGIC);
    f.push(match enc {
        Encoding::Msgpack => 0,
        Encoding::Json => 1,
    });
    varint::put(&mut f, doc.len() as u64);
    f.extend_from_slice(blake3::hash(doc).as_bytes());
    varint::put(&mut f, b.streams.len() as u64);
    for s in &b.streams {
        varint::put(&mut f, s.path.len() as u64);
        f.extend_from_slice(s.path.as_bytes());
        varint::put(&mut f, s.len);
    }
    for op in &b.ops {
        match op {
            Op::Literal(r) => {
                f.push(OP_LITERAL);
                varint::put(&mut f, r.len() as u64);
                f.extend_from_slice(&doc[r.clone()]);
            }
            Op::Take(i, n) => {
                f.push(OP_TAKE);
                varint::put(&mut f, *i as u64);
                varint::put(&mut f, *n);
            }
            Op::Grouped(i, n) => {
                f.push(OP_GROUPED);
                varint::put(&mut f, *i as u64);
                varint::put(&mut f, *n);
            }
        }
    }
    f.push(OP_END);
    f
}

/// The member paths of a split, frame first, in the order they are stored.
pub fn paths(s: &Split) -> impl Iterator<Item = &str> {
    std::iter::once(FRAME_PATH).chain(s.streams.iter().map(|s| s.path.as_str()))
}
