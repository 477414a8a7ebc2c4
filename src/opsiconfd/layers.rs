//! The layers of an opsiconfd backup file, outermost first: optional encryption (`crypt`),
//! optional compression (an lz4 frame or gzip), then the document (msgpack or JSON). Like
//! opsiconfd, a reader goes by the first bytes of each layer and a writer by the file name's
//! extensions (`x.msgpack.lz4.aes`).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::opsiconfd::crypt::{self, Password};

const LZ4_MAGIC: [u8; 4] = [0x04, 0x22, 0x4d, 0x18];
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The largest decoded document taken in (it is held in memory once): a 4.3 server with
/// thousands of clients writes some hundred MB.
pub const MAX_PLAIN: u64 = 4 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Msgpack,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Lz4,
    Gzip,
}

/// The layers of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layers {
    pub encoding: Encoding,
    pub compression: Compression,
    pub encrypted: bool,
}

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Msgpack => "msgpack",
            Encoding::Json => "json",
        }
    }

    /// The encoding of a document, by its first byte as opsiconfd tells them.
    pub fn of(doc: &[u8]) -> Encoding {
        if doc.first() == Some(&b'{') {
            Encoding::Json
        } else {
            Encoding::Msgpack
        }
    }
}

impl Layers {
    /// The extensions, as opsiconfd writes them (`msgpack.lz4.aes`).
    pub fn describe(&self) -> String {
        let mut s = self.encoding.name().to_string();
        match self.compression {
            Compression::None => {}
            Compression::Lz4 => s.push_str(".lz4"),
            Compression::Gzip => s.push_str(".gz"),
        }
        if self.encrypted {
            s.push_str(".aes");
        }
        s
    }

    /// The layers a file name asks for, read as `opsiconfd backup` reads its target's last
    /// three extensions: `.aes` last if any, then `.lz4` or `.gz` if any, then `.msgpack` or
    /// `.json`, which must be there.
    pub fn from_file_name(path: &Path) -> Result<Layers> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut exts: Vec<&str> = name.split('.').skip(1).collect();
        let start = exts.len().saturating_sub(3);
        exts.drain(..start);
        let encrypted = exts.last() == Some(&"aes");
        if encrypted {
            exts.pop();
        }
        let compression = match exts.last() {
            Some(&"lz4") => Compression::Lz4,
            Some(&"gz") => Compression::Gzip,
            _ => Compression::None,
        };
        if compression != Compression::None {
            exts.pop();
        }
        let encoding = match exts.last() {
            Some(&"msgpack") => Encoding::Msgpack,
            Some(&"json") => Encoding::Json,
            _ => {
                return Err(Error::Invalid(format!(
                    "{}: an opsiconfd backup file is named by its layers, e.g. \
                     x.msgpack.lz4, x.json.gz or x.msgpack.lz4.aes (encoding msgpack or json, \
                     then lz4 or gz, then aes)",
                    path.display()
                )))
            }
        };
        Ok(Layers {
            encoding,
            compression,
            encrypted,
        })
    }
}

/// The first byte of a document opsiconfd writes: a msgpack map or a JSON object.
fn starts_document(b: u8) -> bool {
    matches!(b, 0x80..=0x8f | 0xde | 0xdf | b'{')
}

/// Whether the file at `path` looks like an opsiconfd backup: the encryption marker, or a
/// document that starts like a map, plain or inside an lz4 frame or gzip (a `.tar.gz`
/// opsi-backup archive starts with a member name instead).
pub fn recognise(path: &Path) -> Result<bool> {
    let mut head = Vec::with_capacity(64);
    File::open(path)
        .and_then(|f| f.take(64).read_to_end(&mut head))
        .path_ctx("reading", path)?;
    if crypt::is_encrypted(&head) {
        return Ok(true);
    }
    let file = || File::open(path).path_ctx("reading", path);
    let mut first = [0u8; 1];
    let inner = if head.starts_with(&LZ4_MAGIC) {
        lz4_flex::frame::FrameDecoder::new(file()?).read_exact(&mut first)
    } else if head.starts_with(&GZIP_MAGIC) {
        flate2::read::GzDecoder::new(file()?).read_exact(&mut first)
    } else {
        return Ok(head.first().copied().is_some_and(starts_document));
    };
    Ok(inner.is_ok() && starts_document(first[0]))
}

/// A decoded file: its document and the layers it had.
pub struct Decoded {
    pub doc: Vec<u8>,
    pub layers: Layers,
}

/// Reads the file at `path` and undoes its layers (the password is asked for only when the
/// file is encrypted). The document is held in memory once (up to `MAX_PLAIN` bytes); the
/// compressed file too while it is being decompressed.
pub fn decode(path: &Path, password: impl FnOnce() -> Result<Password>) -> Result<Decoded> {
    let name = path.display().to_string();
    let mut data = std::fs::read(path).path_ctx("reading", path)?;
    let encrypted = crypt::is_encrypted(&data);
    if encrypted {
        crypt::decrypt(&mut data, &password()?, &name)?;
    }
    let (compression, doc) = if data.starts_with(&LZ4_MAGIC) {
        let d = lz4_flex::frame::FrameDecoder::new(&data[..]);
        (Compression::Lz4, inflate(d, &name, "lz4 frame")?)
    } else if data.starts_with(&GZIP_MAGIC) {
        let d = flate2::read::MultiGzDecoder::new(&data[..]);
        (Compression::Gzip, inflate(d, &name, "gzip stream")?)
    } else {
        (Compression::None, data)
    };
    let layers = Layers {
        encoding: Encoding::of(&doc),
        compression,
        encrypted,
    };
    Ok(Decoded { doc, layers })
}

fn inflate(d: impl Read, name: &str, what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    d.take(MAX_PLAIN + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::Corrupt(format!("{name}: the {what} is truncated or damaged: {e}")))?;
    if out.len() as u64 > MAX_PLAIN {
        return Err(Error::Invalid(format!(
            "{name}: the backup decompresses to more than {MAX_PLAIN} bytes; refused"
        )));
    }
    Ok(out)
}

/// Writes a document through the compression layer `layers` asks for; `finish` returns
/// the writer below. The lz4 frame is written as opsiconfd's: linked 64 KiB blocks, the
/// content size in the header (`size`), no checksums.
pub enum Encoder<W: Write> {
    Plain(W),
    Lz4(lz4_flex::frame::FrameEncoder<W>),
    Gzip(flate2::write::GzEncoder<W>),
}

impl<W: Write> Encoder<W> {
    pub fn new(compression: Compression, size: u64, out: W) -> Encoder<W> {
        match compression {
            Compression::None => Encoder::Plain(out),
            Compression::Lz4 => {
                let info = lz4_flex::frame::FrameInfo::new()
                    .block_size(lz4_flex::frame::BlockSize::Max64KB)
                    .block_mode(lz4_flex::frame::BlockMode::Linked)
                    .content_size(Some(size));
                Encoder::Lz4(lz4_flex::frame::FrameEncoder::with_frame_info(info, out))
            }
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::default(),
            )),
        }
    }

    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Plain(w) => Ok(w),
            Encoder::Lz4(e) => e.finish().map_err(io::Error::other),
            Encoder::Gzip(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Lz4(e) => e.write(buf),
            Encoder::Gzip(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Lz4(e) => e.flush(),
            Encoder::Gzip(e) => e.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_from_names_as_opsiconfd() {
        let l = |n: &str| Layers::from_file_name(Path::new(n)).map(|l| l.describe());
        assert_eq!(l("/x/b.msgpack.lz4").unwrap(), "msgpack.lz4");
        assert_eq!(l("b-2024.json.gz.aes").unwrap(), "json.gz.aes");
        assert_eq!(l("b.msgpack").unwrap(), "msgpack");
        assert_eq!(l("b.json.aes").unwrap(), "json.aes");
        assert!(l("b.tar.gz").is_err());
        assert!(l("b.lz4").is_err());
    }
}
