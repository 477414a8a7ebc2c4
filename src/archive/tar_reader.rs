//! Reads a tar stream (ustar, PAX and GNU long-name headers) member by member and pushes the
//! members into a sink. Streams: only one member's headers are held in memory.
//!
//! Where our own encoder (`tar_header::encode`) would not reproduce a member's header blocks
//! byte for byte, the original blocks are kept in `Member::raw_header`, so an imported archive
//! can be exported as the identical tar stream.

use std::io::{self, Read};

use crate::archive::tar_header::{self, BLOCK};
use crate::error::{Error, Result};
use crate::member::{Member, MemberKind, Mtime};
use crate::sink::MemberSink;

/// What followed the last member: the end-of-archive blocks and record padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TarEnd {
    /// Bytes from the first zero block to the end of the stream.
    pub trailer_len: u64,
    /// Offset of the first zero block (the length of all members).
    pub members_len: u64,
}

pub(crate) struct TarReader<R: Read> {
    inner: R,
    offset: u64,
}

#[derive(Default)]
struct Extensions {
    pax: Vec<(String, Vec<u8>)>,
    gnu_name: Option<Vec<u8>>,
    gnu_link: Option<Vec<u8>>,
    raw: Vec<u8>,
}

impl Extensions {
    fn pax_str(&self, key: &str) -> Option<String> {
        self.pax
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
    /// A numeric PAX record of member `name`: decimal digits only, as GNU tar demands. A
    /// record that is present but not a number in range is damage, never "no record".
    fn pax_num(&self, key: &str, name: &str) -> Result<Option<u64>> {
        let Some(v) = self.pax_str(key) else {
            return Ok(None);
        };
        let ok = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
        match v.parse::<u64>() {
            Ok(n) if ok => Ok(Some(n)),
            _ => Err(bad_pax(name, key, &v)),
        }
    }

    /// The PAX `mtime` record, checked: `[-]digits[.digits]`.
    fn pax_mtime(&self, name: &str) -> Result<Option<String>> {
        let Some(v) = self.pax_str("mtime") else {
            return Ok(None);
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let unsigned = v.strip_prefix('-').unwrap_or(&v);
        let whole = unsigned.split_once('.').map_or(unsigned, |(w, _)| w);
        let ok = digits(whole)
            && unsigned.split_once('.').is_none_or(|(_, f)| digits(f))
            && whole.parse::<i64>().is_ok();
        if ok {
            Ok(Some(v))
        } else {
            Err(bad_pax(name, "mtime", &v))
        }
    }
}

fn bad_pax(name: &str, key: &str, value: &str) -> Error {
    let shown: String = value.chars().take(40).collect();
    Error::Corrupt(format!(
        "damaged tar header of {name}: PAX record {key}={shown:?} is not a valid number"
    ))
}

impl<R: Read> TarReader<R> {
    pub(crate) fn new(inner: R) -> TarReader<R> {
        TarReader { inner, offset: 0 }
    }

    /// Pushes every member into `sink`, in order, and returns what ended the archive.
    pub(crate) fn replay(mut self, sink: &mut dyn MemberSink) -> Result<TarEnd> {
        let mut ext = Extensions::default();
        loop {
            let start = self.offset;
            let block = match self.read_block()? {
                Some(b) => b,
                None if start == 0 => {
                    return Err(Error::Corrupt("the archive is empty".into()));
                }
                None => {
                    return Err(Error::Corrupt(format!(
                        "the archive ends at byte {start} without an end-of-archive marker: it is truncated"
                    )));
                }
            };
            if block.iter().all(|&b| b == 0) {
                let rest =
                    io::copy(&mut self.inner, &mut io::sink()).map_err(|e| self.damaged(e))?;
                return Ok(TarEnd {
                    trailer_len: BLOCK as u64 + rest,
                    members_len: start,
                });
            }
            check_header(&block, start)?;
            let flag = block[156];
            let size = parse_num(&block[124..136]).ok_or_else(|| {
                Error::Corrupt(format!(
                    "damaged tar header at byte {start}: bad size field"
                ))
            })?;
            match flag {
                b'x' | b'g' | b'L' | b'K' => {
                    ext.raw.extend_from_slice(&block);
                    let data = self.read_padded(size, &mut ext.raw)?;
                    match flag {
                        b'x' => ext.pax.extend(parse_pax(&data, start)?),
                        b'g' => {} // global defaults: none of ours; kept verbatim in raw
                        b'L' => ext.gnu_name = Some(trim_nul(&data).to_vec()),
                        _ => ext.gnu_link = Some(trim_nul(&data).to_vec()),
                    }
                    continue;
                }
                _ => {}
            }
            ext.raw.extend_from_slice(&block);
            let member = build_member(&block, &std::mem::take(&mut ext), size)?;
            let mut content = Content {
                reader: &mut self,
                left: member.size,
                path: &member.path,
            };
            let data_size = if matches!(
                member.kind,
                MemberKind::Dir | MemberKind::Symlink(_) | MemberKind::Hardlink(_)
            ) {
                0
            } else {
                member.size
            };
            if data_size == 0 {
                content.left = 0;
            }
            sink.add(&member, &mut content)?;
            let left = content.left;
            if left > 0 {
                io::copy(
                    &mut Content {
                        reader: &mut self,
                        left,
                        path: &member.path,
                    },
                    &mut io::sink(),
                )
                .map_err(|e| Error::Corrupt(e.to_string()))?;
            }
            let pad = (BLOCK as u64 - data_size % BLOCK as u64) % BLOCK as u64;
            self.skip(pad, &member.path)?;
        }
    }

    fn damaged(&self, e: io::Error) -> Error {
        Error::Corrupt(format!(
            "the archive is damaged near byte {} of the tar stream: {e}",
            self.offset
        ))
    }

    /// One 512-byte block; `None` at a clean end of stream.
    fn read_block(&mut self) -> Result<Option<[u8; BLOCK]>> {
        let mut b = [0u8; BLOCK];
        let mut got = 0;
        while got < BLOCK {
            match self.inner.read(&mut b[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.damaged(e)),
            }
        }
        self.offset += got as u64;
        match got {
            0 => Ok(None),
            BLOCK => Ok(Some(b)),
            _ => Err(Error::Corrupt(format!(
                "the archive is truncated: it ends inside a header at byte {}",
                self.offset
            ))),
        }
    }

    fn read_padded(&mut self, size: u64, raw: &mut Vec<u8>) -> Result<Vec<u8>> {
        if size > 16 << 20 {
            return Err(Error::Corrupt(format!(
                "implausible extended header of {size} bytes"
            )));
        }
        let padded = size.div_ceil(BLOCK as u64) as usize * BLOCK;
        let mut buf = vec![0u8; padded];
        self.inner
            .read_exact(&mut buf)
            .map_err(|e| self.damaged(e))?;
        self.offset += padded as u64;
        raw.extend_from_slice(&buf);
        buf.truncate(size as usize);
        Ok(buf)
    }

    fn skip(&mut self, n: u64, path: &str) -> Result<()> {
        let got = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())
            .map_err(|e| self.damaged(e))?;
        self.offset += got;
        if got < n {
            return Err(Error::Corrupt(format!(
                "the archive is truncated after member {path}"
            )));
        }
        Ok(())
    }
}

/// A member's content: exactly `left` bytes; running short is reported as truncation.
struct Content<'a, R: Read> {
    reader: &'a mut TarReader<R>,
    left: u64,
    path: &'a str,
}

impl<R: Read> Read for Content<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.reader.inner.read(&mut buf[..want]).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("archive damaged in member {}: {e}", self.path),
            )
        })?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the archive is truncated in member {}", self.path),
            ));
        }
        self.left -= n as u64;
        self.reader.offset += n as u64;
        Ok(n)
    }
}

fn check_header(b: &[u8; BLOCK], at: u64) -> Result<()> {
    let stored = parse_num(&b[148..156]);
    let ok = stored.is_some_and(|s| {
        s == u64::from(tar_header::checksum(b)) || s as i64 == tar_header::checksum_signed(b)
    });
    if ok {
        Ok(())
    } else if at == 0 {
        Err(Error::Corrupt(
            "not a tar archive (no valid tar header at the start)".into(),
        ))
    } else {
        Err(Error::Corrupt(format!(
            "damaged tar header at byte {at} (checksum mismatch)"
        )))
    }
}

/// Octal (space/NUL padded) or GNU base-256 numeric field.
fn parse_num(f: &[u8]) -> Option<u64> {
    if f.first().is_some_and(|&c| c & 0x80 != 0) {
        let mut v: u64 = u64::from(f[0] & 0x7f);
        for &c in &f[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(c))?;
        }
        return Some(v);
    }
    let s: Vec<u8> = f.iter().copied().filter(|&c| c != 0 && c != b' ').collect();
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(std::str::from_utf8(&s).ok()?, 8).ok()
}

fn trim_nul(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    &b[..end]
}

fn parse_pax(data: &[u8], at: u64) -> Result<Vec<(String, Vec<u8>)>> {
    let bad = || Error::Corrupt(format!("damaged PAX header at byte {at}"));
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() && rest[0] != 0 {
        let sp = rest.iter().position(|&c| c == b' ').ok_or_else(bad)?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(bad());
        }
        let rec = &rest[sp + 1..len - 1];
        let eq = rec.iter().position(|&c| c == b'=').ok_or_else(bad)?;
        out.push((
            String::from_utf8_lossy(&rec[..eq]).into_owned(),
            rec[eq + 1..].to_vec(),
        ));
        rest = &rest[len..];
    }
    Ok(out)
}

fn field_str(f: &[u8]) -> String {
    String::from_utf8_lossy(trim_nul(f)).into_owned()
}

fn build_member(b: &[u8; BLOCK], ext: &Extensions, ustar_size: u64) -> Result<Member> {
    let ustar = &b[257..263] == b"ustar\0" || &b[257..265] == b"ustar  \0";
    let mut name = if let Some(p) = ext.pax_str("path") {
        p
    } else if let Some(n) = &ext.gnu_name {
        String::from_utf8_lossy(n).into_owned()
    } else {
        let base = field_str(&b[0..100]);
        let prefix = if ustar && &b[257..263] == b"ustar\0" {
            field_str(&b[345..500])
        } else {
            String::new()
        };
        if prefix.is_empty() {
            base
        } else {
            format!("{prefix}/{base}")
        }
    };
    let link = ext
        .pax_str("linkpath")
        .or_else(|| {
            ext.gnu_link
                .as_ref()
                .map(|l| String::from_utf8_lossy(l).into_owned())
        })
        .unwrap_or_else(|| field_str(&b[157..257]));
    let flag = b[156];
    let kind = match flag {
        0 if name.ends_with('/') => MemberKind::Dir,
        b'0' | 0 | b'7' => MemberKind::File,
        b'1' => MemberKind::Hardlink(link),
        b'2' => MemberKind::Symlink(link),
        b'5' => MemberKind::Dir,
        other => MemberKind::Other(other),
    };
    while name.len() > 1 && name.ends_with('/') {
        name.pop();
    }
    let num = |r: std::ops::Range<usize>, what: &str| {
        parse_num(&b[r]).ok_or_else(|| {
            Error::Corrupt(format!("damaged tar header of {name}: bad {what} field"))
        })
    };
    let mut member = Member {
        mode: num(100..108, "mode")? as u32 & 0o7777,
        uid: ext
            .pax_num("uid", &name)?
            .map_or_else(|| num(108..116, "uid"), Ok)?,
        gid: ext
            .pax_num("gid", &name)?
            .map_or_else(|| num(116..124, "gid"), Ok)?,
        uname: ext
            .pax_str("uname")
            .unwrap_or_else(|| field_str(&b[265..297])),
        gname: ext
            .pax_str("gname")
            .unwrap_or_else(|| field_str(&b[297..329])),
        mtime: Mtime {
            secs: num(136..148, "mtime")? as i64,
            pax: ext.pax_mtime(&name)?,
        },
        size: ext.pax_num("size", &name)?.unwrap_or(ustar_size),
        kind,
        path: name,
        raw_header: None,
        stamp: None,
        xattrs: Vec::new(),
    };
    if tar_header::encode(&member) != ext.raw {
        member.raw_header = Some(ext.raw.clone());
    }
    Ok(member)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::tar_writer::TarWriter;

    struct Collect(Vec<(Member, Vec<u8>)>);
    impl MemberSink for Collect {
        fn add(&mut self, m: &Member, c: &mut dyn Read) -> Result<()> {
            let mut v = Vec::new();
            c.read_to_end(&mut v).map_err(|e| Error::io("reading", e))?;
            self.0.push((m.clone(), v));
            Ok(())
        }
    }

    fn file(path: &str, data: &[u8]) -> Member {
        Member {
            path: path.into(),
            kind: MemberKind::File,
            mode: 0o640,
            uid: 0,
            gid: 0,
            uname: "root".into(),
            gname: "root".into(),
            mtime: Mtime::from_unix(1_700_000_000, 250_000_000),
            size: data.len() as u64,
            raw_header: None,
            stamp: None,
            xattrs: Vec::new(),
        }
    }

    #[test]
    fn round_trip_is_byte_identical() {
        let mut w = TarWriter::new(Vec::new());
        let long = format!("CONTENT/CONF/{}/ä.txt", "d".repeat(150));
        for (p, d) in [
            ("CONTENT/CONF/a", &b"hello"[..]),
            (long.as_str(), &b"x"[..]),
            ("CONTENT/CONF/e", b""),
        ] {
            w.add(&file(p, d), &mut &d[..]).unwrap();
        }
        let bytes = w.finish().unwrap();
        let mut c = Collect(Vec::new());
        let end = TarReader::new(&bytes[..]).replay(&mut c).unwrap();
        assert_eq!(c.0.len(), 3);
        assert_eq!(c.0[1].0.path, long);
        assert!(c.0.iter().all(|(m, _)| m.raw_header.is_none()));
        let mut w = TarWriter::new(Vec::new());
        for (m, d) in &c.0 {
            w.add(m, &mut &d[..]).unwrap();
        }
        assert_eq!(w.finish_with_trailer(end.trailer_len).unwrap(), bytes);
    }

    #[test]
    fn truncated_and_garbage_inputs_are_errors() {
        let mut w = TarWriter::new(Vec::new());
        let data = vec![7u8; 5000];
        w.add(&file("CONTENT/x", &data), &mut &data[..]).unwrap();
        let bytes = w.finish().unwrap();
        for cut in [100, 1500, 3000, 6144] {
            let r = TarReader::new(&bytes[..cut]).replay(&mut Collect(Vec::new()));
            assert!(r.is_err(), "cut at {cut}");
        }
        let garbage = vec![0x41u8; 4096];
        let e = TarReader::new(&garbage[..])
            .replay(&mut Collect(Vec::new()))
            .unwrap_err();
        assert!(e.to_string().contains("not a tar archive"), "{e}");
    }
}
