//! Bulk data prints of one part of a snapshot (`DATA/DEPOT`, ...) on a temporary file without
//! a name, in walk order: written once, then read by a forward cursor, and from the top again
//! when asked. A depot of millions of files costs disk here, not memory.

use std::cmp::Ordering;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::parent::{walk_order, ChunkHash};

/// A bulk data member's print, as a repository snapshot gives it without reading its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DataPrint {
    pub path: String,
    pub meta: String,
    pub dir: bool,
    pub size: u64,
    pub chunks: Vec<ChunkHash>,
}

pub(super) struct PrintSpill {
    writer: Option<BufWriter<File>>,
    reader: Option<BufReader<File>>,
    /// The path appended last.
    last: Option<String>,
    /// The record read and not yet taken.
    ahead: Option<DataPrint>,
}

fn spill_err(e: io::Error) -> Error {
    Error::io("the temporary file of a diff's bulk data", e)
}

impl PrintSpill {
    pub(super) fn create(dir: Option<&Path>) -> Result<PrintSpill> {
        let file = match dir {
            Some(d) => tempfile::tempfile_in(d),
            None => tempfile::tempfile(),
        }
        .map_err(spill_err)?;
        Ok(PrintSpill {
            writer: Some(BufWriter::with_capacity(1 << 16, file)),
            reader: None,
            last: None,
            ahead: None,
        })
    }

    /// Appends `p` when it comes after the last print appended in walk order; false when it
    /// does not (a snapshot of an older build), and nothing is written.
    pub(super) fn append(&mut self, p: &DataPrint) -> Result<bool> {
        let Some(out) = self.writer.as_mut() else {
            return Ok(false);
        };
        if self
            .last
            .as_deref()
            .is_some_and(|l| walk_order(l, &p.path) != Ordering::Less)
        {
            return Ok(false);
        }
        write_print(out, p).map_err(spill_err)?;
        self.last = Some(p.path.clone());
        Ok(true)
    }

    /// Ends writing (the first time) and puts the cursor at the first print.
    pub(super) fn rewind(&mut self) -> Result<()> {
        let mut file = match (self.writer.take(), self.reader.take()) {
            (Some(w), _) => w.into_inner().map_err(|e| spill_err(e.into_error()))?,
            (None, Some(r)) => r.into_inner(),
            (None, None) => unreachable!("a spill has a writer or a reader"),
        };
        file.rewind().map_err(spill_err)?;
        self.reader = Some(BufReader::with_capacity(1 << 16, file));
        self.ahead = None;
        Ok(())
    }

    /// The print under the cursor, without taking it.
    pub(super) fn peek(&mut self) -> Result<Option<&DataPrint>> {
        if self.ahead.is_none() {
            let r = self.reader.as_mut().expect("rewound before reading");
            self.ahead = read_print(r).map_err(spill_err)?;
        }
        Ok(self.ahead.as_ref())
    }

    /// Takes the print under the cursor.
    pub(super) fn next(&mut self) -> Result<Option<DataPrint>> {
        self.peek()?;
        Ok(self.ahead.take())
    }
}

fn write_print(out: &mut impl Write, p: &DataPrint) -> io::Result<()> {
    for s in [&p.path, &p.meta] {
        out.write_all(&(s.len() as u32).to_le_bytes())?;
        out.write_all(s.as_bytes())?;
    }
    out.write_all(&[u8::from(p.dir)])?;
    out.write_all(&p.size.to_le_bytes())?;
    out.write_all(&(p.chunks.len() as u32).to_le_bytes())?;
    for c in &p.chunks {
        out.write_all(c)?;
    }
    Ok(())
}

fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_string(r: &mut impl Read) -> io::Result<String> {
    let mut b = vec![0u8; read_u32(r)? as usize];
    r.read_exact(&mut b)?;
    String::from_utf8(b).map_err(io::Error::other)
}

fn read_print(r: &mut impl Read) -> io::Result<Option<DataPrint>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        res => res?,
    }
    let mut path = vec![0u8; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut path)?;
    let path = String::from_utf8(path).map_err(io::Error::other)?;
    let meta = read_string(r)?;
    let mut head = [0u8; 9];
    r.read_exact(&mut head)?;
    let size = u64::from_le_bytes(head[1..].try_into().expect("8 bytes"));
    let mut chunks = vec![[0u8; 32]; read_u32(r)? as usize];
    for c in &mut chunks {
        r.read_exact(c)?;
    }
    Ok(Some(DataPrint {
        path,
        meta,
        dir: head[0] == 1,
        size,
        chunks,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn print(path: &str, n: u8) -> DataPrint {
        DataPrint {
            path: path.into(),
            meta: format!("meta {n}"),
            dir: n % 2 == 0,
            size: u64::from(n) << 40,
            chunks: vec![[n; 32]; usize::from(n)],
        }
    }

    /// Prints come back as written, in walk order; one out of order is refused; the cursor
    /// starts again from the top.
    #[test]
    fn prints_come_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = PrintSpill::create(Some(dir.path())).unwrap();
        let written = [print("a/x", 0), print("a/y/z", 3), print("a.b", 2)];
        for p in &written {
            assert!(s.append(p).unwrap());
        }
        assert!(!s.append(&print("a/y", 1)).unwrap(), "out of order");
        assert!(!s.append(&print("a.b", 1)).unwrap(), "repeated");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no name");
        for _ in 0..2 {
            s.rewind().unwrap();
            assert_eq!(s.peek().unwrap(), Some(&written[0]));
            let mut got = Vec::new();
            while let Some(p) = s.next().unwrap() {
                got.push(p);
            }
            assert_eq!(got, written);
        }
    }
}
