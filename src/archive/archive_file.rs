//! Archive files on disk. Writing goes to a 0600 temporary file beside the destination, which
//! is verified and only then renamed into place; on any failure the temporary file is removed
//! and an existing destination is left as it was. Its name carries the writing process
//! (`leftovers.rs`): the next create or export in the directory removes it after a kill.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::archive::compression::{open_tar_stream, Compression, Encoder};
use crate::archive::scan::{Checked, Scan};
use crate::archive::segment_cache::SegmentCache;
use crate::archive::tar_reader::{TarEnd, TarReader};
use crate::archive::tar_writer::TarWriter;
use crate::error::{is_disk_full, write_error, Error, IoContext, Result};
use crate::member::Member;
use crate::sink::{spool_then_add, MemberSink};

/// Pushes every member of the archive at `path` into `sink`.
pub(crate) fn replay(path: &Path, sink: &mut dyn MemberSink) -> Result<(TarEnd, Compression)> {
    let (stream, compression) = open_tar_stream(path)?;
    let end = TarReader::new(stream)
        .replay(sink)
        .map_err(|e| in_archive(path, e))?;
    Ok((end, compression))
}

fn in_archive(path: &Path, e: Error) -> Error {
    match e {
        Error::Corrupt(m) => Error::Corrupt(format!("{}: {m}", path.display())),
        Error::Io { context, cause } => {
            Error::Corrupt(format!("{}: {context}: {cause}", path.display()))
        }
        other => other,
    }
}

/// Reads the whole archive once: integrity and contents (see `Scan`).
pub(crate) fn scan(path: &Path) -> Result<Scan> {
    let mut s = Scan::default();
    replay(path, &mut s)?;
    Ok(s)
}

/// A new archive being written; see the module comment for the durability contract.
///
/// It is verified while it is written rather than by reading it back through a single-threaded
/// decompressor: every CONTENT file's sha1 is computed from the very bytes written into the tar
/// and checked against the CONTROL/checksums that follows (what `verify` checks); every
/// compressed segment is decompressed and compared by the compression worker that made it
/// (`parallel.rs`); and the file is read back after fsync and must hash (BLAKE3) to exactly
/// the bytes that were written.
pub(crate) struct ArchiveFileWriter {
    tar: Checked<TarWriter<Encoder<BufWriter<HashingFile>>>>,
    tmp_path: tempfile::TempPath,
    dest: PathBuf,
    /// The destination's directory, where a dump of unknown size is spooled.
    dir: PathBuf,
}

/// The archive file, hashing every byte written to it.
struct HashingFile {
    file: File,
    hash: blake3::Hasher,
}

impl std::io::Write for HashingFile {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(b)?;
        self.hash.update(&b[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl ArchiveFileWriter {
    pub(crate) fn create(dest: &Path, compression: Compression) -> Result<ArchiveFileWriter> {
        Self::create_with_cache(dest, compression, None)
    }

    /// Like `create`, splicing compressed segments from `cache` where the stream is unchanged.
    pub(crate) fn create_with_cache(
        dest: &Path,
        compression: Compression,
        cache: Option<Arc<SegmentCache>>,
    ) -> Result<ArchiveFileWriter> {
        // "dir/" names a directory: refuse before the backup runs, not when it is moved there.
        if dest.as_os_str().as_encoded_bytes().ends_with(b"/") && !dest.is_dir() {
            return Err(Error::Invalid(format!(
                "{} is not an existing directory",
                dest.display()
            )));
        }
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // Partial files of runs killed before they finished would pile up otherwise; the owner
        // in the name keeps a running create's file safe.
        crate::leftovers::clean(&dir);
        let tmp = tempfile::Builder::new()
            .prefix(&crate::leftovers::partial_prefix())
            .suffix(".partial")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .tempfile_in(&dir)
            .map_err(|e| Error::io(format!("cannot create the archive in {}", dir.display()), e))?;
        let (file, tmp_path) = tmp.into_parts();
        let file = HashingFile {
            file,
            hash: blake3::Hasher::new(),
        };
        let out = Encoder::new(BufWriter::with_capacity(1 << 20, file), compression, cache);
        Ok(ArchiveFileWriter {
            tar: Checked::new(TarWriter::new(out)),
            tmp_path,
            dest: dest.to_path_buf(),
            dir,
        })
    }

    /// The destination's directory: where spools belong (never a RAM-backed /tmp).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Ends the tar stream, makes it durable, checks it and renames it to its destination.
    pub(crate) fn finish(self, trailer_len: Option<u64>) -> Result<PathBuf> {
        let dest = self.dest.clone();
        self.finish_inner(trailer_len)
            .map_err(|e| disk_full(&dest, e))
    }

    fn finish_inner(self, trailer_len: Option<u64>) -> Result<PathBuf> {
        self.tar.scan.ensure_intact("the archive being written")?;
        let enc = match trailer_len {
            Some(t) => self.tar.inner.finish_with_trailer(t)?,
            None => self.tar.inner.finish()?,
        };
        let buf = enc.finish().ctx("writing archive")?;
        let written = buf
            .into_inner()
            .map_err(|e| Error::io("writing archive", e.into_error()))?;
        written.file.sync_all().ctx("flushing archive to disk")?;
        crate::fail_points::crash_point("archive-synced");
        drop(written.file);
        let mut on_disk = blake3::Hasher::new();
        let mut f = File::open(&self.tmp_path).ctx("reading back the archive")?;
        std::io::copy(&mut f, &mut on_disk).ctx("reading back the archive")?;
        if on_disk.finalize() != written.hash.finalize() {
            return Err(Error::Corrupt(format!(
                "the archive read back from {} differs from what was written (disk or file system error)",
                self.tmp_path.display()
            )));
        }
        self.tmp_path.persist(&self.dest).map_err(|e| {
            Error::io(
                format!("cannot move the archive to {}", self.dest.display()),
                e.error,
            )
        })?;
        crate::durable::sync_parent(&self.dest)?;
        Ok(self.dest)
    }
}

impl MemberSink for ArchiveFileWriter {
    fn add(&mut self, member: &Member, content: &mut dyn std::io::Read) -> Result<()> {
        let res = self.tar.add(member, content);
        res.map_err(|e| disk_full(&self.dest, e))
    }

    /// The tar header needs the size first: spool beside the archive, not in a RAM-backed /tmp.
    fn add_unsized(&mut self, member: Member, content: &mut dyn std::io::Read) -> Result<u64> {
        let dir = self.dir.clone();
        spool_then_add(self, member, content, Some(&dir))
    }
}

/// A full disk while the archive is written is said as such, naming the archive.
fn disk_full(dest: &Path, e: Error) -> Error {
    match e {
        Error::Io { cause, .. } if is_disk_full(&cause) => write_error(dest, cause),
        other => other,
    }
}
