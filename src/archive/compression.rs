//! The archive's outer compression: bzip2 (the original's default), gzip or none. Readers
//! detect it from the content, never from the file name, and accept concatenated streams
//! (what parallel compressors such as lbzip2/pigz, and our own export, write).

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;
use std::sync::Arc;

use crate::archive::codec::Codec;
use crate::archive::parallel::ParallelEncoder;
use crate::archive::segment_cache::SegmentCache;
use crate::error::{Error, IoContext, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Compression {
    Bz2,
    Gz,
    None,
}

impl Compression {
    pub(crate) fn parse(s: &str) -> Result<Compression> {
        match s {
            "bz2" => Ok(Compression::Bz2),
            "gz" => Ok(Compression::Gz),
            "none" => Ok(Compression::None),
            other => Err(Error::Invalid(format!(
                "unknown compression '{other}' (use gz, bz2 or none)"
            ))),
        }
    }

    /// The file name suffix the original appends after `.tar`.
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Compression::Bz2 => ".bz2",
            Compression::Gz => ".gz",
            Compression::None => "",
        }
    }

    /// The name people know it by (`bzip2`, `gzip`, `no compression`).
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Compression::Bz2 => "bzip2",
            Compression::Gz => "gzip",
            Compression::None => "no compression",
        }
    }

    /// The parallel codec, or `None` for an uncompressed tar.
    pub(crate) fn codec(self) -> Option<Codec> {
        match self {
            Compression::Bz2 => Some(Codec::Bz2),
            Compression::Gz => Some(Codec::Gz),
            Compression::None => None,
        }
    }

    /// Detects the compression from the first bytes of `head`.
    pub(crate) fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gz
        } else if head.starts_with(b"BZh") {
            Compression::Bz2
        } else {
            Compression::None
        }
    }
}

/// Opens an archive file for reading its tar stream, whatever its compression.
pub(crate) fn open_tar_stream(path: &Path) -> Result<(Box<dyn Read + Send>, Compression)> {
    let file = File::open(path).path_ctx("cannot open archive", path)?;
    open_tar_reader(file).path_ctx("cannot read archive", path)
}

/// The tar stream of an archive read from `input`, decompressed as its first bytes say.
pub(crate) fn open_tar_reader(
    mut input: impl Read + Send + 'static,
) -> io::Result<(Box<dyn Read + Send>, Compression)> {
    let mut head = [0u8; 4];
    let n = read_up_to(&mut input, &mut head)?;
    let compression = Compression::detect(&head[..n]);
    let file = BufReader::with_capacity(1 << 20, io::Cursor::new(head[..n].to_vec()).chain(input));
    let reader: Box<dyn Read + Send> = match compression {
        Compression::Bz2 => Box::new(BufReader::with_capacity(
            1 << 20,
            bzip2::read::MultiBzDecoder::new(file),
        )),
        Compression::Gz => Box::new(BufReader::with_capacity(
            1 << 20,
            flate2::read::MultiGzDecoder::new(file),
        )),
        Compression::None => Box::new(file),
    };
    Ok((reader, compression))
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// A compressing writer that must be finished to write its end-of-stream. bzip2 and gzip use
/// every core (see `parallel.rs`), at level 9 as Python's `BZ2File` and `GzipFile` default to.
pub(crate) enum Encoder<W: Write> {
    Parallel(ParallelEncoder<W>),
    None(W),
}

impl<W: Write> Encoder<W> {
    /// `cache` (for this compression's codec) supplies segments compressed by earlier runs.
    pub(crate) fn new(
        out: W,
        compression: Compression,
        cache: Option<Arc<SegmentCache>>,
    ) -> Encoder<W> {
        match compression.codec() {
            Some(codec) => Encoder::Parallel(ParallelEncoder::new(out, codec, cache)),
            None => Encoder::None(out),
        }
    }

    pub(crate) fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Parallel(e) => e.finish(),
            Encoder::None(mut w) => {
                w.flush()?;
                Ok(w)
            }
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Parallel(e) => e.write(buf),
            Encoder::None(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Parallel(e) => e.flush(),
            Encoder::None(w) => w.flush(),
        }
    }
}
