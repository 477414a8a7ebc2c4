//! Writes members as a tar stream in the original's format (see `tar_header`), streaming each
//! member's content straight through.

use std::io::{self, Read, Write};

use crate::archive::tar_header::{self, BLOCK, RECORD};
use crate::error::{copy_apart, CopyError, Error, IoContext, Result};
use crate::member::{Member, MemberKind};
use crate::sink::MemberSink;

pub(crate) struct TarWriter<W: Write> {
    out: W,
    offset: u64,
}

impl<W: Write> TarWriter<W> {
    pub(crate) fn new(out: W) -> TarWriter<W> {
        TarWriter { out, offset: 0 }
    }

    /// Writes the end-of-archive blocks and pads to a whole record, as Python does.
    pub(crate) fn finish(self) -> Result<W> {
        let end = self.offset + 2 * BLOCK as u64;
        let trailer = 2 * BLOCK as u64 + (RECORD as u64 - end % RECORD as u64) % RECORD as u64;
        self.finish_with_trailer(trailer)
    }

    /// Ends the stream with exactly `trailer_len` zero bytes (an imported archive's own).
    pub(crate) fn finish_with_trailer(mut self, trailer_len: u64) -> Result<W> {
        io::copy(&mut io::repeat(0).take(trailer_len), &mut self.out).ctx("writing archive")?;
        self.out.flush().ctx("writing archive")?;
        Ok(self.out)
    }

    fn write(&mut self, b: &[u8]) -> Result<()> {
        self.out.write_all(b).ctx("writing archive")?;
        self.offset += b.len() as u64;
        Ok(())
    }
}

impl<W: Write> MemberSink for TarWriter<W> {
    fn add(&mut self, member: &Member, content: &mut dyn Read) -> Result<()> {
        self.write(&tar_header::encode(member))?;
        let data_len = match member.kind {
            MemberKind::File | MemberKind::Other(_) => member.size,
            _ => 0,
        };
        if data_len == 0 {
            return Ok(());
        }
        let copied = match copy_apart(&mut content.take(data_len), &mut self.out) {
            Ok(n) => n,
            Err(CopyError::Read(e)) => {
                return Err(Error::io(format!("reading {}", member.path), e))
            }
            Err(CopyError::Write(e)) => return Err(Error::io("writing archive", e)),
        };
        self.offset += copied;
        if copied != data_len {
            return Err(Error::Invalid(format!(
                "{} changed while it was being read: {} bytes expected, {copied} read",
                member.path, data_len
            )));
        }
        let pad = (BLOCK as u64 - data_len % BLOCK as u64) % BLOCK as u64;
        self.write(&vec![0u8; pad as usize])
    }
}
