//! Where members go. Every producer of members (file system tree, mysqldump, archive reader,
//! snapshot reader) pushes them, in archive order, into a `MemberSink` (archive writer,
//! snapshot writer, restore target, verifier).

use std::io::{self, Read, Write};
use std::path::Path;

use crate::error::{copy_apart, write_error, CopyError, Error, IoContext, Result};
use crate::member::Member;
use crate::parent::ParentFile;

pub trait MemberSink {
    /// Adds one member. For files `content` yields exactly `member.size` bytes; for other
    /// kinds it is empty. Members arrive in archive order.
    fn add(&mut self, member: &Member, content: &mut dyn Read) -> Result<()>;

    /// Adds a file whose size is known only once its content ends (a database dump), and
    /// returns that size. The default spools the content zstd-compressed to a temporary file to
    /// learn the size, then calls `add`; sinks that do not need the size first override it to
    /// stream directly.
    fn add_unsized(&mut self, member: Member, content: &mut dyn Read) -> Result<u64> {
        spool_then_add(self, member, content, None)
    }

    /// Records a CONTROL/checksums line for a member whose bytes are not in the archive (the
    /// original lists a symlink with the sha1 of its target). Only the checksum writer cares.
    fn note_checksum(&mut self, _path: &str, _sha1_hex: &str) {}

    /// Adds an unchanged file by reference to its copy in the parent snapshot, without
    /// reading it. Returns false when this sink cannot (archives) or the parent's data is
    /// gone; the caller then adds the file normally.
    fn reuse(&mut self, _member: &Member, _parent: &ParentFile) -> Result<bool> {
        Ok(false)
    }

    /// A member a selective replay passes over: its metadata, in its place in archive order,
    /// without its content, which was not read. Only a restore's replay of a snapshot that
    /// needs part of it calls this; a sink that would have read the member must fail.
    fn pass_over(&mut self, _member: &Member) -> Result<()> {
        Ok(())
    }
}

/// A borrowed sink is a sink, so wrappers can own either a sink or a `&mut` to one.
impl<T: MemberSink + ?Sized> MemberSink for &mut T {
    fn add(&mut self, member: &Member, content: &mut dyn Read) -> Result<()> {
        (**self).add(member, content)
    }
    fn add_unsized(&mut self, member: Member, content: &mut dyn Read) -> Result<u64> {
        (**self).add_unsized(member, content)
    }
    fn note_checksum(&mut self, path: &str, sha1_hex: &str) {
        (**self).note_checksum(path, sha1_hex)
    }
    fn reuse(&mut self, member: &Member, parent: &ParentFile) -> Result<bool> {
        (**self).reuse(member, parent)
    }
    fn pass_over(&mut self, member: &Member) -> Result<()> {
        (**self).pass_over(member)
    }
}

/// `add_unsized` for sinks that need the size first: the content is spooled zstd-compressed
/// (a dump shrinks about tenfold) to an unlinked temporary file in `dir` (default: the system's
/// temporary directory), then added from there. Memory stays flat.
pub fn spool_then_add<S: MemberSink + ?Sized>(
    sink: &mut S,
    mut member: Member,
    content: &mut dyn Read,
    dir: Option<&Path>,
) -> Result<u64> {
    let spool = match dir {
        Some(d) => tempfile::tempfile_in(d),
        None => tempfile::tempfile(),
    }
    .ctx("creating spool file")?;
    let mut enc = zstd::Encoder::new(spool, 1).ctx("starting spool compression")?;
    let spool_dir = dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
    let size = match copy_apart(content, &mut enc) {
        Ok(n) => n,
        Err(CopyError::Read(e)) => return Err(Error::io(format!("reading {}", member.path), e)),
        Err(CopyError::Write(e)) => return Err(spool_error(&spool_dir, e)),
    };
    let mut spool = enc.finish().map_err(|e| spool_error(&spool_dir, e))?;
    spool.flush().map_err(|e| spool_error(&spool_dir, e))?;
    io::Seek::rewind(&mut spool).ctx("rewinding spool")?;
    member.size = size;
    let mut dec = zstd::Decoder::new(spool).ctx("reading spool")?;
    sink.add(&member, &mut dec)?;
    Ok(size)
}

fn spool_error(dir: &Path, e: io::Error) -> Error {
    write_error(&dir.join("(spool file)"), e)
}
