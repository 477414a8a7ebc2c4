//! The structure of a msgpack document, without decoding values: where each value begins and
//! ends, the entries of a map. Loops with counters, no recursion, so hostile nesting costs
//! no stack; a count larger than the bytes left is refused at once.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::opsiconfd::parts::{ArrayParts, Entry, MapParts};

/// What a value's first bytes say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Head {
    Map(u64),
    Array(u64),
    /// A string: the range of its bytes.
    Str(Range<usize>),
    /// Anything else; the head's end is the value's end.
    Scalar,
}

pub(crate) fn damaged(at: usize) -> Error {
    Error::Corrupt(format!(
        "the msgpack document is truncated or damaged at byte {at}"
    ))
}

fn be(buf: &[u8], at: usize, n: usize) -> Result<u64> {
    let b = buf.get(at..at + n).ok_or_else(|| damaged(at))?;
    Ok(b.iter().fold(0u64, |v, &x| (v << 8) | u64::from(x)))
}

/// The head of the value at `pos` and where it ends (for strings and scalars: where the
/// value ends; for maps and arrays: where their first item begins).
pub(crate) fn head(buf: &[u8], pos: usize) -> Result<(Head, usize)> {
    let m = *buf.get(pos).ok_or_else(|| damaged(pos))?;
    let p = pos + 1;
    // (extra head bytes, data length) of sized scalars
    let sized = |len_bytes: usize, extra: usize| -> Result<(Head, usize)> {
        let n = be(buf, p, len_bytes)? as usize;
        let end = (p + len_bytes + extra)
            .checked_add(n)
            .filter(|&e| e <= buf.len())
            .ok_or_else(|| damaged(pos))?;
        Ok((Head::Scalar, end))
    };
    let fixed = |n: usize| -> Result<(Head, usize)> {
        if p + n <= buf.len() {
            Ok((Head::Scalar, p + n))
        } else {
            Err(damaged(pos))
        }
    };
    let string = |len_bytes: usize, inline: Option<usize>| -> Result<(Head, usize)> {
        let n = match inline {
            Some(n) => n,
            None => be(buf, p, len_bytes)? as usize,
        };
        let start = p + len_bytes;
        let end = start
            .checked_add(n)
            .filter(|&e| e <= buf.len())
            .ok_or_else(|| damaged(pos))?;
        Ok((Head::Str(start..end), end))
    };
    match m {
        0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => Ok((Head::Scalar, p)),
        0x80..=0x8f => Ok((Head::Map(u64::from(m & 0x0f)), p)),
        0x90..=0x9f => Ok((Head::Array(u64::from(m & 0x0f)), p)),
        0xa0..=0xbf => string(0, Some(usize::from(m & 0x1f))),
        0xc4 => sized(1, 0),
        0xc5 => sized(2, 0),
        0xc6 => sized(4, 0),
        0xc7 => sized(1, 1),
        0xc8 => sized(2, 1),
        0xc9 => sized(4, 1),
        0xca => fixed(4),
        0xcb => fixed(8),
        0xcc..=0xcf => fixed(1 << (m - 0xcc)),
        0xd0..=0xd3 => fixed(1 << (m - 0xd0)),
        0xd4..=0xd8 => fixed(1 + (1 << (m - 0xd4))),
        0xd9 => string(1, None),
        0xda => string(2, None),
        0xdb => string(4, None),
        0xdc => Ok((Head::Array(be(buf, p, 2)?), p + 2)),
        0xdd => Ok((Head::Array(be(buf, p, 4)?), p + 4)),
        0xde => Ok((Head::Map(be(buf, p, 2)?), p + 2)),
        0xdf => Ok((Head::Map(be(buf, p, 4)?), p + 4)),
        0xc1 => Err(damaged(pos)),
    }
}

/// Items a head opens (a map's keys and values both count).
fn opens(h: &Head) -> u64 {
    match h {
        Head::Map(n) => n.saturating_mul(2),
        Head::Array(n) => *n,
        _ => 0,
    }
}

/// Where the value at `pos` ends.
pub(crate) fn skip(buf: &[u8], pos: usize) -> Result<usize> {
    let mut left: u64 = 1;
    let mut p = pos;
    while left > 0 {
        let (h, end) = head(buf, p)?;
        left = left - 1 + opens(&h);
        // Every item takes at least one byte.
        if left > (buf.len() - end) as u64 {
            return Err(damaged(end));
        }
        p = end;
    }
    Ok(p)
}

/// The entries of the map at `pos`, or `None` when the value there is not a map.
pub(crate) fn map_parts(buf: &[u8], pos: usize) -> Result<Option<MapParts>> {
    let (Head::Map(n), mut p) = head(buf, pos)? else {
        return Ok(None);
    };
    if n > (buf.len() - p) as u64 {
        return Err(damaged(p));
    }
    let open = pos..p;
    let mut entries = Vec::with_capacity(n as usize);
    for _ in 0..n {
        // A key that is not a string is matched by nothing and kept as it is.
        let (key, kend) = match head(buf, p)? {
            (Head::Str(r), end) => (r, end),
            _ => {
                let end = skip(buf, p)?;
                (end..end, end)
            }
        };
        let vend = skip(buf, kend)?;
        entries.push(Entry {
            key,
            prefix: p..kend,
            value: kend..vend,
        });
        p = vend;
    }
    Ok(Some(MapParts {
        open,
        entries,
        close: p..p,
    }))
}

/// The array at `pos`: its head, its items, no separator, an empty closing; `None` when the
/// value there is not an array.
pub(crate) fn array_items(buf: &[u8], pos: usize) -> Result<Option<ArrayParts>> {
    let (Head::Array(n), mut p) = head(buf, pos)? else {
        return Ok(None);
    };
    if n > (buf.len() - p) as u64 {
        return Err(damaged(p));
    }
    let open = pos..p;
    let mut items = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let end = skip(buf, p)?;
        items.push(p..end);
        p = end;
    }
    Ok(Some(ArrayParts {
        open,
        items,
        separator: None,
        close: p..p,
    }))
}

/// The items of an array stored grouped (`split::group`), in stream order.
pub(crate) fn items(buf: &[u8]) -> Result<Vec<Range<usize>>> {
    let mut v = Vec::new();
    let mut p = 0;
    while p < buf.len() {
        let end = skip(buf, p)?;
        v.push(p..end);
        p = end;
    }
    Ok(v)
}

/// Pulls the values of every `expires` key of the maps inside `value` out of its stream
/// (opsiconfd's redis keys carry an absolute expiry time that changes every night):
/// `out(range, pulled)` gets the value's bytes in order, `pulled` for those values.
pub(crate) fn pull_expiries(
    buf: &[u8],
    value: Range<usize>,
    mut out: impl FnMut(Range<usize>, bool),
) -> Result<()> {
    // Per open container: items left, and whether it is a map.
    let mut stack: Vec<(u64, bool)> = Vec::new();
    let mut p = value.start;
    let mut emitted = value.start;
    loop {
        let at_key = matches!(stack.last(), Some(&(left, true)) if left % 2 == 0);
        let (h, end) = head(buf, p)?;
        let mut used = 1;
        if at_key && matches!(&h, Head::Str(r) if &buf[r.clone()] == b"expires") {
            let vend = skip(buf, end)?;
            out(emitted..end, false);
            out(end..vend, true);
            emitted = vend;
            p = vend;
            used = 2;
        } else {
            p = end;
        }
        if let Some(top) = stack.last_mut() {
            top.0 -= used;
        }
        let opened = opens(&h);
        if used == 1 && opened > 0 {
            if opened > (buf.len() - p) as u64 {
                return Err(damaged(p));
            }
            stack.push((opened, matches!(h, Head::Map(_))));
        }
        while matches!(stack.last(), Some(&(0, _))) {
            stack.pop();
        }
        if stack.is_empty() {
            break;
        }
    }
    if p != value.end {
        return Err(damaged(p));
    }
    out(emitted..p, false);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_every_kind_of_value() {
        // {"a": [1, -1, 300, 1.5, nil, true, "xy", bin(2)], "b": {}}
        let doc: &[u8] = &[
            0x82, 0xa1, b'a', 0x98, 0x01, 0xff, 0xcd, 0x01, 0x2c, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0,
            0, 0xc0, 0xc3, 0xa2, b'x', b'y', 0xc4, 2, 9, 9, 0xa1, b'b', 0x80,
        ];
        assert_eq!(skip(doc, 0).unwrap(), doc.len());
        let parts = map_parts(doc, 0).unwrap().unwrap();
        assert_eq!(parts.entries.len(), 2);
        assert_eq!(&doc[parts.entries[1].key.clone()], b"b");
        for cut in 1..doc.len() {
            assert!(skip(&doc[..cut], 0).is_err(), "cut at {cut}");
        }
        // A huge count in a few bytes is refused without allocating.
        assert!(skip(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0x01], 0).is_err());
    }

    #[test]
    fn expiries_are_pulled_out() {
        // [{"name": "k", "expires": 1234}, {"expires": nil}]
        let doc: &[u8] = &[
            0x92, 0x82, 0xa4, b'n', b'a', b'm', b'e', 0xa1, b'k', 0xa7, b'e', b'x', b'p', b'i',
            b'r', b'e', b's', 0xcd, 0x04, 0xd2, 0x81, 0xa7, b'e', b'x', b'p', b'i', b'r', b'e',
            b's', 0xc0,
        ];
        let mut pulled = Vec::new();
        let mut all = Vec::new();
        pull_expiries(doc, 0..doc.len(), |r, p| {
            all.extend_from_slice(&doc[r.clone()]);
            if p {
                pulled.push(doc[r].to_vec());
            }
        })
        .unwrap();
        assert_eq!(all, doc);
        assert_eq!(pulled, vec![vec![0xcd, 0x04, 0xd2], vec![0xc0]]);
    }
}
