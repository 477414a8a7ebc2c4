//! Members from a directory tree, the way the original adds a path: the directory itself,
//! then its entries in the file system's own order (unsorted), recursively. Symlinks inside
//! the tree are kept as links and never followed (the original recursed into linked
//! directories, which can loop or duplicate data); the starting path itself is followed, so a
//! base directory that is a symlink is backed up as the directory it points to.
//!
//! Bulk data (`DATA/`) is taken as it is on disk: its extended attributes and ACLs go into the
//! member (`xattrs.rs`), and a file seen again under another path (same device and inode) in
//! the same product directory (`layout::data_unit`) becomes a hard link to the first path,
//! not read twice. Links across products are stored as separate files (their chunks are shared
//! anyway), so that `restore --product` never needs a file of another product. Archive
//! content keeps the original's members: no attributes, no hard links.

use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use sha1::{Digest, Sha1};

use crate::error::{Error, IoContext, Result};
use crate::layout;
use crate::logging;
use crate::member::{FileStamp, Member, MemberKind, Mtime};
use crate::owners::Owners;
use crate::parent::Parent;
use crate::sink::MemberSink;
use crate::source::exclude::Exclude;
use crate::source::xattrs;

/// Adds `path` (file or directory tree) under the archive path `arc`. A missing path is
/// skipped with a note, as the original does.
pub(crate) fn add_path(
    path: &Path,
    arc: &str,
    owners: &mut Owners,
    parent: Option<&Parent>,
    sink: &mut dyn MemberSink,
) -> Result<()> {
    add_path_excluding(path, arc, &Exclude::default(), owners, parent, sink)
}

/// `add_path`, leaving out what `exclude` matches (paths relative to `arc`).
pub(crate) fn add_path_excluding(
    path: &Path,
    arc: &str,
    exclude: &Exclude,
    owners: &mut Owners,
    parent: Option<&Parent>,
    sink: &mut dyn MemberSink,
) -> Result<()> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            logging::info(format!("'{}' does not exist. Skipping.", path.display()));
            return Ok(());
        }
        Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
    };
    let mut walk = Walk {
        top: arc,
        exclude,
        owners,
        parent,
        sink,
        links: HashMap::new(),
        depth: 0,
    };
    walk.node(path, arc, &meta)
}

type LinkKey = (layout::DataPart, Option<String>, u64, u64);

/// What a walk of one tree shares.
struct Walk<'a> {
    top: &'a str,
    exclude: &'a Exclude,
    owners: &'a mut Owners,
    parent: Option<&'a Parent>,
    sink: &'a mut dyn MemberSink,
    /// The first path of each bulk data file with more than one link, by product (or part),
    /// device and inode.
    links: HashMap<LinkKey, String>,
    /// How many directories deep the walk is below its top.
    depth: usize,
}

/// How many levels of a walk keep their directory open (`add_dir`): a few more than opsi's
/// trees have, far below the usual limit of 1024 open files.
const HANDLE_LEVELS: usize = 16;

impl Walk<'_> {
    /// A directory with everything below it, or a single entry.
    fn node(&mut self, path: &Path, arc: &str, meta: &Metadata) -> Result<()> {
        if meta.is_dir() {
            add_dir(path, arc, meta, self)
        } else {
            add_entry(path, arc, meta, self)
        }
    }

    /// The earlier path of the same file in the same product, when `arc` is another link to
    /// it; otherwise `arc` is remembered as the first path of a file with several links.
    fn earlier_link(&mut self, arc: &str, meta: &Metadata) -> Option<String> {
        if meta.nlink() < 2 {
            return None;
        }
        let (part, unit) = layout::data_unit(arc)?;
        let key = (part, unit.map(str::to_string), meta.dev(), meta.ino());
        match self.links.entry(key) {
            std::collections::hash_map::Entry::Occupied(first) => Some(first.get().clone()),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(arc.to_string());
                None
            }
        }
    }

    fn excluded(&self, arc: &str) -> bool {
        !self.exclude.is_empty()
            && arc
                .strip_prefix(self.top)
                .and_then(|r| r.strip_prefix('/'))
                .is_some_and(|rel| self.exclude.excludes(rel))
    }
}

fn add_dir(path: &Path, arc: &str, meta: &Metadata, walk: &mut Walk<'_>) -> Result<()> {
    let (owners, sink) = (&mut *walk.owners, &mut *walk.sink);
    sink.add(
        &member(path, arc, MemberKind::Dir, meta, 0, owners),
        &mut std::io::empty(),
    )?;
    // An entry is lstat'ed through its directory's open handle (fstatat: the kernel does not
    // look the whole path up again), which keeps one descriptor open per level of the walk;
    // deeper than `HANDLE_LEVELS` levels, by its path, so that no tree runs the process out
    // of descriptors.
    let by_handle = walk.depth < HANDLE_LEVELS;
    let mut entries = Vec::new();
    for entry in fs::read_dir(path).path_ctx("cannot list", path)? {
        let entry = entry.path_ctx("cannot list", path)?;
        match entry.file_name().into_string() {
            Ok(name) => entries.push((name, by_handle.then_some(entry))),
            Err(_) => logging::warning(format!(
                "skipping {:?}: its name is not valid UTF-8",
                entry.path()
            )),
        }
    }
    // Bulk data is walked sorted, the order in which the parent's files are read back
    // (`parent::walk_order`); archive content keeps the directory's order, as the original's
    // os.listdir.
    if layout::is_data(arc) {
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    }
    for (name, entry) in entries {
        let child = path.join(&name);
        let child_arc = format!("{arc}/{name}");
        if walk.excluded(&child_arc) {
            logging::log(7, &format!("excluded: {}", child.display()));
            continue;
        }
        let meta = match entry {
            Some(entry) => entry.metadata(),
            None => fs::symlink_metadata(&child),
        }
        .path_ctx("cannot read", &child)?;
        walk.depth += 1;
        let done = walk.node(&child, &child_arc, &meta);
        walk.depth -= 1;
        done?;
    }
    Ok(())
}

fn add_entry(path: &Path, arc: &str, meta: &Metadata, walk: &mut Walk<'_>) -> Result<()> {
    let ft = meta.file_type();
    if ft.is_file() {
        if let Some(first) = walk.earlier_link(arc, meta) {
            let m = Member {
                size: 0,
                stamp: None,
                xattrs: Vec::new(), // the first path's: it is the same inode
                ..member(path, arc, MemberKind::Hardlink(first), meta, 0, walk.owners)
            };
            return walk.sink.add(&m, &mut std::io::empty());
        }
    }
    let (owners, parent, sink) = (&mut *walk.owners, walk.parent, &mut *walk.sink);
    if ft.is_symlink() {
        let target = fs::read_link(path).path_ctx("cannot read link", path)?;
        let target = target.to_string_lossy().into_owned();
        // The original lists a link to a file in CONTROL/checksums with its target's sha1
        // (only archive content has lines there: the bulk data's links are not read).
        if let Some(mut f) = layout::is_content(arc)
            .then(|| File::open(path).ok())
            .flatten()
        {
            if f.metadata().map(|m| m.is_file()).unwrap_or(false) {
                let mut h = Sha1::new();
                if std::io::copy(&mut f, &mut h).is_ok() {
                    sink.note_checksum(arc, &hex::encode(h.finalize()));
                }
            }
        }
        return sink.add(
            &member(path, arc, MemberKind::Symlink(target), meta, 0, owners),
            &mut std::io::empty(),
        );
    }
    if ft.is_fifo() || ft.is_socket() || ft.is_block_device() || ft.is_char_device() {
        logging::warning(format!(
            "skipping {}: not a regular file, directory or symlink",
            path.display()
        ));
        return Ok(());
    }
    // Unchanged since the parent snapshot: refer to its data without reading the file.
    if let Some(old) = parent.and_then(|p| p.get(arc)) {
        let m = member(path, arc, MemberKind::File, meta, meta.len(), owners);
        if old.unchanged(&m) && sink.reuse(&m, &old)? {
            return Ok(());
        }
    }
    let mut file = File::open(path).path_ctx("cannot open", path)?;
    let meta = file.metadata().path_ctx("cannot read", path)?;
    let size = meta.len();
    let m = member(path, arc, MemberKind::File, &meta, size, owners);
    sink.add(
        &m,
        &mut ExactReader {
            inner: &mut file,
            left: size,
            path,
        },
    )
}

/// Yields exactly `left` bytes: a file that shrank while being read is an error, one that grew
/// is cut at the size recorded in its header.
struct ExactReader<'a> {
    inner: &'a mut File,
    left: u64,
    path: &'a Path,
}

impl Read for ExactReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "{} shrank while it was being backed up",
                    self.path.display()
                ),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn member(
    path: &Path,
    arc: &str,
    kind: MemberKind,
    meta: &Metadata,
    size: u64,
    owners: &mut Owners,
) -> Member {
    Member {
        path: arc.to_string(),
        kind,
        mode: meta.mode() & 0o7777,
        uid: u64::from(meta.uid()),
        gid: u64::from(meta.gid()),
        uname: owners.user(meta.uid()),
        gname: owners.group(meta.gid()),
        mtime: Mtime::from_unix(meta.mtime(), meta.mtime_nsec() as u32),
        size,
        raw_header: None,
        stamp: Some(FileStamp {
            ino: meta.ino(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        }),
        xattrs: if layout::is_data(arc) {
            xattrs::read(path)
        } else {
            Vec::new()
        },
    }
}
