//! The structure of a JSON document, without decoding values: where each value begins and
//! ends, the entries of an object. The whole document is first checked by serde_json (without
//! building it), so the scanner here may assume it is well formed; it still never reads past
//! the end and never recurses.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::opsiconfd::parts::{ArrayParts, Entry, MapParts};

fn damaged(at: usize) -> Error {
    Error::Corrupt(format!(
        "the JSON document is truncated or damaged at byte {at}"
    ))
}

/// Checks that `doc` is one well-formed JSON value (trailing whitespace allowed).
pub(crate) fn validate(doc: &[u8]) -> Result<()> {
    serde_json::from_slice::<serde::de::IgnoredAny>(doc)
        .map(|_| ())
        .map_err(|e| Error::Corrupt(format!("the JSON document is truncated or damaged: {e}")))
}

fn ws(buf: &[u8], mut p: usize) -> usize {
    while p < buf.len() && matches!(buf[p], b' ' | b'\t' | b'\n' | b'\r') {
        p += 1;
    }
    p
}

/// `p` at a `"`: the position after the closing quote.
fn string_end(buf: &[u8], p: usize) -> Result<usize> {
    let mut i = p + 1;
    while i < buf.len() {
        match buf[i] {
            b'\\' => i += 2,
            b'"' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(damaged(p))
}

/// Where the value at `p` ends.
pub(crate) fn skip(buf: &[u8], p: usize) -> Result<usize> {
    let mut depth = 0usize;
    let mut i = p;
    loop {
        let b = *buf.get(i).ok_or_else(|| damaged(i))?;
        match b {
            b'"' => i = string_end(buf, i)?,
            b'{' | b'[' => {
                depth += 1;
                i += 1
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1).ok_or_else(|| damaged(i))?;
                i += 1
            }
            _ if depth == 0 => {
                // A number or literal ends at a delimiter or the end.
                while i < buf.len()
                    && !matches!(buf[i], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                {
                    i += 1;
                }
            }
            _ => i += 1,
        }
        if depth == 0 {
            return Ok(i);
        }
    }
}

/// The entries of the object at `p`, or `None` when the value there is not an object.
/// A key is the raw text between its quotes.
pub(crate) fn map_parts(buf: &[u8], p: usize) -> Result<Option<MapParts>> {
    if buf.get(p) != Some(&b'{') {
        return Ok(None);
    }
    let open = p..p + 1;
    // Where the next entry's prefix starts (after `{`, or at the end of the previous value,
    // so that it holds the separator), and where its key is.
    let mut at = p + 1;
    let mut k = ws(buf, at);
    let mut entries = Vec::new();
    if buf.get(k) == Some(&b'}') {
        return Ok(Some(MapParts {
            open,
            entries,
            close: at..k + 1,
        }));
    }
    loop {
        if buf.get(k) != Some(&b'"') {
            return Err(damaged(k));
        }
        let kend = string_end(buf, k)?;
        let colon = ws(buf, kend);
        if buf.get(colon) != Some(&b':') {
            return Err(damaged(colon));
        }
        let vstart = ws(buf, colon + 1);
        let vend = skip(buf, vstart)?;
        entries.push(Entry {
            key: k + 1..kend - 1,
            prefix: at..vstart,
            value: vstart..vend,
        });
        let next = ws(buf, vend);
        match buf.get(next) {
            Some(b',') => {
                at = vend;
                k = ws(buf, next + 1);
            }
            Some(b'}') => {
                return Ok(Some(MapParts {
                    open,
                    entries,
                    close: vend..next + 1,
                }))
            }
            _ => return Err(damaged(next)),
        }
    }
}

/// The array at `p` when it is compact (`[a,b,c]`: nothing between items but `,`): its `[`,
/// items, the first `,` and `]`; `None` otherwise (then it is not grouped).
pub(crate) fn compact_array_items(buf: &[u8], p: usize) -> Result<Option<ArrayParts>> {
    if buf.get(p) != Some(&b'[') || buf.get(p + 1) == Some(&b']') {
        return Ok(None);
    }
    let mut items = Vec::new();
    let mut at = p + 1;
    loop {
        if matches!(buf.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            return Ok(None);
        }
        let end = skip(buf, at)?;
        items.push(at..end);
        match buf.get(end) {
            Some(b',') => at = end + 1,
            Some(b']') => {
                let sep = (items.len() > 1).then(|| items[0].end..items[0].end + 1);
                return Ok(Some(ArrayParts {
                    open: p..p + 1,
                    items,
                    separator: sep,
                    close: end..end + 1,
                }));
            }
            _ => return Ok(None),
        }
    }
}

/// The items of the array at `p` (any spacing), or `None` when the value there is not one.
pub(crate) fn array_items(buf: &[u8], p: usize) -> Result<Option<Vec<Range<usize>>>> {
    if buf.get(p) != Some(&b'[') {
        return Ok(None);
    }
    let mut items = Vec::new();
    let mut at = ws(buf, p + 1);
    if buf.get(at) == Some(&b']') {
        return Ok(Some(items));
    }
    loop {
        let end = skip(buf, at)?;
        items.push(at..end);
        let next = ws(buf, end);
        match buf.get(next) {
            Some(b',') => at = ws(buf, next + 1),
            Some(b']') => return Ok(Some(items)),
            _ => return Err(damaged(next)),
        }
    }
}

/// The items of an array stored grouped (`split::group`): values joined by `,`.
pub(crate) fn items(buf: &[u8]) -> Result<Vec<Range<usize>>> {
    let mut v = Vec::new();
    let mut p = 0;
    while p < buf.len() {
        let end = skip(buf, p)?;
        v.push(p..end);
        p = end;
        if p < buf.len() {
            if buf[p] != b',' {
                return Err(damaged(p));
            }
            p += 1;
            if p == buf.len() {
                return Err(damaged(p));
            }
        }
    }
    Ok(v)
}

/// As `msgpack::pull_expiries`: the values of `expires` keys inside `value` go apart.
pub(crate) fn pull_expiries(
    buf: &[u8],
    value: Range<usize>,
    mut out: impl FnMut(Range<usize>, bool),
) -> Result<()> {
    let mut in_object: Vec<bool> = Vec::new();
    let mut expect_key = false;
    let mut emitted = value.start;
    let mut p = value.start;
    while p < value.end {
        match buf[p] {
            b'{' => {
                in_object.push(true);
                expect_key = true;
                p += 1
            }
            b'[' => {
                in_object.push(false);
                expect_key = false;
                p += 1
            }
            b'}' | b']' => {
                in_object.pop();
                expect_key = false;
                p += 1
            }
            b',' => {
                expect_key = in_object.last() == Some(&true);
                p += 1
            }
            b'"' => {
                let end = string_end(buf, p)?;
                if expect_key && &buf[p + 1..end - 1] == b"expires" {
                    let colon = ws(buf, end);
                    if buf.get(colon) != Some(&b':') {
                        return Err(damaged(colon));
                    }
                    let vstart = ws(buf, colon + 1);
                    let vend = skip(buf, vstart)?;
                    out(emitted..vstart, false);
                    out(vstart..vend, true);
                    emitted = vend;
                    p = vend;
                } else {
                    p = end;
                }
                expect_key = false;
            }
            _ => p += 1,
        }
    }
    out(emitted..value.end, false);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_expiries() {
        let doc = br#"{ "a" : [1, "x\"}"], "redis": {"dumped_keys": [{"name": "k", "expires": 17}, {"expires":null}]} }"#;
        validate(doc).unwrap();
        let parts = map_parts(doc, 0).unwrap().unwrap();
        assert_eq!(parts.entries.len(), 2);
        assert_eq!(&doc[parts.entries[0].value.clone()], br#"[1, "x\"}"]"#);
        assert_eq!(parts.close.end, doc.len());
        let mut joined = doc[parts.open.clone()].to_vec();
        for e in &parts.entries {
            joined.extend_from_slice(&doc[e.prefix.clone()]);
            joined.extend_from_slice(&doc[e.value.clone()]);
        }
        joined.extend_from_slice(&doc[parts.close.clone()]);
        assert_eq!(joined, doc);
        let mut pulled = Vec::new();
        let mut all = Vec::new();
        pull_expiries(doc, parts.entries[1].value.clone(), |r, p| {
            all.extend_from_slice(&doc[r.clone()]);
            if p {
                pulled.push(String::from_utf8(doc[r].to_vec()).unwrap());
            }
        })
        .unwrap();
        assert_eq!(all, &doc[parts.entries[1].value.clone()]);
        assert_eq!(pulled, ["17", "null"]);
        assert!(validate(&doc[..doc.len() - 2]).is_err());
    }
}
