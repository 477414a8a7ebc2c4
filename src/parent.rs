//! The parent snapshot of a backup: the newest snapshot of the same host, as restic's archiver
//! keeps it. An unchanged file (same size, mtime, inode and ctime as there) is stored again by
//! reference to the parent's data, without reading it; its CONTROL/checksums line is taken from
//! the parent too. Spec: `store-format/README.md`, section "Parent snapshots".
//!
//! This is knowledge between a source and the repository, so it lies beside both: the store
//! builds a `Parent` from a snapshot, the command line attaches the parent's checksums, sources
//! ask it whether a file is unchanged, sinks reuse its files. Imports only `member` and
//! `layout`.
//!
//! Memory: archive content (the configuration, the file backend) is held in a map. Bulk data
//! (`DATA/`, a depot of any number of files) is not: its files go to a spill file per part, in
//! the parent's order, and are read back by a cursor that moves forward as the walk does (the
//! walk of bulk data is sorted, `source/tree.rs`), so a night holds one file of it at a time.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::layout::{self, DataPart};
use crate::member::Member;

/// A chunk's hash as the repository names it (BLAKE3 of its plain bytes).
pub type ChunkHash = [u8; 32];

/// Where a file's bytes lie in the repository: the repository's own references, which only the
/// repository reads. Plain data, so that sources and sinks need not know the store.
#[derive(Debug, Clone, Default)]
pub struct ContentRef {
    /// The file's chunks, in order.
    pub chunks: Vec<ChunkHash>,
    /// The chunks' index rows, as the parent's member list in the index gives them (empty
    /// when that list could not be read: the writer then looks the chunks up). They hold
    /// while the repository stays locked for a writer (prune and rebuild-index change rows):
    /// a writer takes its parent after it has begun.
    pub rows: Vec<i64>,
}

/// What a file looked like in the parent snapshot.
#[derive(Debug, Clone)]
pub struct ParentFile {
    pub member: Member,
    /// Its line in the parent's CONTROL/checksums (see `Parent::attach_checksums`).
    pub sha1: Option<String>,
    pub content: ContentRef,
}

impl ParentFile {
    /// Whether `now` (just read from the file system) shows the same file, unchanged. Archive
    /// content also needs its CONTROL/checksums line; bulk data (`DATA/`) has none.
    pub fn unchanged(&self, now: &Member) -> bool {
        let p = &self.member;
        now.stamp.is_some()
            && p.stamp == now.stamp
            && p.size == now.size
            && p.mtime == now.mtime
            && p.kind == now.kind
            && (self.sha1.is_some() || !layout::is_content(&now.path))
    }
}

/// The parent snapshot's files, by archive path.
#[derive(Debug, Default)]
pub struct Parent {
    pub snapshot: String,
    /// Where the spill files of bulk data are made (None: the system's temporary directory).
    spill_dir: Option<PathBuf>,
    files: HashMap<String, Arc<ParentFile>>,
    /// Bulk data files, per part, in walk order.
    spills: Mutex<HashMap<DataPart, Spill>>,
    /// The chunks of its other file members (streamed ones, such as a MySQL dump, and the
    /// CONTROL members), with their sizes.
    streams: HashMap<String, (Vec<ChunkHash>, u64)>,
}

impl Parent {
    /// An empty parent for snapshot `snapshot`, filled by `add_file` and `add_stream`.
    pub fn new(snapshot: String) -> Parent {
        Parent {
            snapshot,
            ..Parent::default()
        }
    }

    /// Bulk data's spill files are made in `dir` (the repository's own directory: the system's
    /// temporary directory may be a RAM disk). They have no name, so a kill leaves nothing.
    pub fn spill_in(mut self, dir: &Path) -> Parent {
        self.spill_dir = Some(dir.to_path_buf());
        self
    }

    /// A file that came from a file system (one with a stamp): a candidate for reuse.
    pub fn add_file(&mut self, file: ParentFile) -> io::Result<()> {
        if let Some(part) = DataPart::of(&file.member.path) {
            let spills = self.spills.get_mut().unwrap_or_else(|p| p.into_inner());
            let spill = match spills.entry(part) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(Spill::create(self.spill_dir.as_deref())?)
                }
            };
            // Out of walk order (a parent written by a build that walked unsorted): kept in
            // the map, so that it is still found.
            if spill.append(&file)? {
                return Ok(());
            }
        }
        self.files.insert(file.member.path.clone(), Arc::new(file));
        Ok(())
    }

    /// Any other file member: only its chunks and size are kept.
    pub fn add_stream(&mut self, path: String, chunks: Vec<ChunkHash>, size: u64) {
        self.streams.insert(path, (chunks, size));
    }

    /// Gives every file of archive content its line of the parent's CONTROL/checksums:
    /// `sha1_of` answers for an archive path. A file without one is never reused (bulk data
    /// has none and needs none).
    pub fn attach_checksums(&mut self, sha1_of: impl Fn(&str) -> Option<String>) {
        for (path, f) in self.files.iter_mut() {
            Arc::make_mut(f).sha1 = sha1_of(path);
        }
    }

    /// The parent's file `path`. Bulk data is found fastest when asked for in walk order
    /// (each part's cursor moves forward); asking for an earlier path starts that part's
    /// cursor again from its beginning.
    pub fn get(&self, path: &str) -> Option<Arc<ParentFile>> {
        if let Some(f) = self.files.get(path) {
            return Some(Arc::clone(f));
        }
        let part = DataPart::of(path)?;
        let mut spills = self.spills.lock().unwrap_or_else(|p| p.into_inner());
        // A spill that cannot be read back (our own temporary file) only means the file is
        // read again.
        spills.get_mut(&part)?.seek(path).ok().flatten()
    }

    /// The chunks member `path` had in the parent: the older version a writer compresses
    /// its changed chunks against (spec: "Delta groups"), or the bytes of a CONTROL member.
    pub fn chunks(&self, path: &str) -> Option<Vec<ChunkHash>> {
        match self.streams.get(path) {
            Some((chunks, _)) => Some(chunks.clone()),
            None => self.get(path).map(|f| f.content.chunks.clone()),
        }
    }

    /// The size member `path` had in the parent: what a progress bar expects of it again.
    pub fn size(&self, path: &str) -> Option<u64> {
        match self.streams.get(path) {
            Some((_, size)) => Some(*size),
            None => self.get(path).map(|f| f.member.size),
        }
    }

    /// The number of files held in memory (bulk data in walk order is not).
    pub fn held_in_memory(&self) -> usize {
        self.files.len()
    }

    /// The number of files, in memory and spilled.
    pub fn len(&self) -> usize {
        let spills = self.spills.lock().unwrap_or_else(|p| p.into_inner());
        self.files.len() + spills.values().map(|s| s.count).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The order of a walk of bulk data: by path component, each compared as bytes (a directory's
/// entries sorted by name, each followed by what lies below it).
pub fn walk_order(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

/// One part's files in a temporary file, written in order, then read by a forward cursor.
#[derive(Debug)]
struct Spill {
    state: SpillState,
    count: usize,
}

#[derive(Debug)]
enum SpillState {
    Writing {
        out: BufWriter<File>,
        last: Option<String>,
    },
    Reading {
        input: BufReader<File>,
        /// The record read last and not yet passed: the answer for its path.
        ahead: Option<Arc<ParentFile>>,
        /// The path of the last record passed over (None at the start).
        passed: Option<String>,
        at_end: bool,
    },
    /// Could not be turned from writing into reading: nothing is found here.
    Broken,
}

impl Spill {
    fn create(dir: Option<&Path>) -> io::Result<Spill> {
        let file = match dir {
            Some(d) => tempfile::tempfile_in(d)?,
            None => tempfile::tempfile()?,
        };
        Ok(Spill {
            state: SpillState::Writing {
                out: BufWriter::with_capacity(1 << 16, file),
                last: None,
            },
            count: 0,
        })
    }

    /// Appends `f` when it comes after the last file appended (false: out of order, or
    /// reading has begun).
    fn append(&mut self, f: &ParentFile) -> io::Result<bool> {
        let SpillState::Writing { out, last } = &mut self.state else {
            return Ok(false);
        };
        let path = &f.member.path;
        if last
            .as_deref()
            .is_some_and(|l| walk_order(l, path) != Ordering::Less)
        {
            return Ok(false);
        }
        write_record(out, f)?;
        *last = Some(path.clone());
        self.count += 1;
        Ok(true)
    }

    /// The record for `path`, moving forward; an earlier path starts again from the top.
    fn seek(&mut self, path: &str) -> io::Result<Option<Arc<ParentFile>>> {
        if let SpillState::Writing { .. } = self.state {
            self.start_reading();
        }
        let SpillState::Reading {
            input,
            ahead,
            passed,
            at_end,
        } = &mut self.state
        else {
            return Ok(None);
        };
        if passed
            .as_deref()
            .is_some_and(|p| walk_order(path, p) != Ordering::Greater)
        {
            input.rewind()?;
            (*ahead, *passed, *at_end) = (None, None, false);
        }
        loop {
            if let Some(a) = ahead {
                match walk_order(&a.member.path, path) {
                    Ordering::Equal => return Ok(Some(Arc::clone(a))),
                    Ordering::Greater => return Ok(None),
                    Ordering::Less => *passed = ahead.take().map(|a| a.member.path.clone()),
                }
            }
            if *at_end {
                return Ok(None);
            }
            match read_record(input)? {
                Some(f) => *ahead = Some(Arc::new(f)),
                None => *at_end = true,
            }
        }
    }

    fn start_reading(&mut self) {
        let state = std::mem::replace(&mut self.state, SpillState::Broken);
        if let SpillState::Writing { out, .. } = state {
            if let Ok(mut file) = out.into_inner() {
                if file.rewind().is_ok() {
                    self.state = SpillState::Reading {
                        input: BufReader::with_capacity(1 << 16, file),
                        ahead: None,
                        passed: None,
                        at_end: false,
                    };
                }
            }
        }
    }
}

/// A record: the member's JSON, then its chunks and (when complete) their index rows.
fn write_record(out: &mut impl Write, f: &ParentFile) -> io::Result<()> {
    let json = serde_json::to_vec(&f.member)?;
    let rows = f.content.rows.len() == f.content.chunks.len();
    out.write_all(&(json.len() as u32).to_le_bytes())?;
    out.write_all(&json)?;
    out.write_all(&(f.content.chunks.len() as u32).to_le_bytes())?;
    out.write_all(&[u8::from(rows)])?;
    for c in &f.content.chunks {
        out.write_all(c)?;
    }
    if rows {
        for r in &f.content.rows {
            out.write_all(&r.to_le_bytes())?;
        }
    }
    Ok(())
}

fn read_record(input: &mut impl Read) -> io::Result<Option<ParentFile>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        r => r?,
    }
    let mut json = vec![0u8; u32::from_le_bytes(len) as usize];
    input.read_exact(&mut json)?;
    let member: Member = serde_json::from_slice(&json)?;
    let mut head = [0u8; 5];
    input.read_exact(&mut head)?;
    let n = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
    let mut chunks = vec![[0u8; 32]; n];
    for c in &mut chunks {
        input.read_exact(c)?;
    }
    let mut rows = Vec::new();
    if head[4] == 1 {
        rows.reserve_exact(n);
        let mut r = [0u8; 8];
        for _ in 0..n {
            input.read_exact(&mut r)?;
            rows.push(i64::from_le_bytes(r));
        }
    }
    Ok(Some(ParentFile {
        member,
        sha1: None,
        content: ContentRef { chunks, rows },
    }))
}
#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> ParentFile {
        let mut member = Member::control(path, 3);
        member.stamp = Some(crate::member::FileStamp {
            ino: 1,
            ctime_ns: 2,
        });
        ParentFile {
            member,
            sha1: None,
            content: ContentRef {
                chunks: vec![[1; 32]],
                rows: vec![7],
            },
        }
    }

    /// A file is only unchanged once its checksum line is attached.
    #[test]
    fn checksums_make_files_reusable() {
        let mut p = Parent::new("s".into());
        p.add_file(file("CONTENT/a")).unwrap();
        p.add_file(file("CONTENT/b")).unwrap();
        p.add_stream("CONTENT/dump".into(), vec![[2; 32]], 900);
        let now = file("CONTENT/a").member;
        assert!(!p.get("CONTENT/a").unwrap().unchanged(&now));
        p.attach_checksums(|path| (path == "CONTENT/a").then(|| "ab".to_string()));
        assert!(p.get("CONTENT/a").unwrap().unchanged(&now));
        assert_eq!(p.get("CONTENT/b").unwrap().sha1, None);
        assert_eq!(p.chunks("CONTENT/dump"), Some(vec![[2u8; 32]]));
        assert_eq!(p.chunks("CONTENT/a"), Some(vec![[1u8; 32]]));
        assert_eq!(p.size("CONTENT/dump"), Some(900));
        assert_eq!(p.size("CONTENT/c"), None);
        assert_eq!(p.len(), 2);
    }

    /// Bulk data has no checksum line: its stamp alone says it is unchanged.
    #[test]
    fn data_files_need_no_checksum() {
        let mut p = Parent::new("s".into());
        p.add_file(file("DATA/DEPOT/a")).unwrap();
        let now = file("DATA/DEPOT/a").member;
        assert!(p.get("DATA/DEPOT/a").unwrap().unchanged(&now));
        let mut touched = now.clone();
        touched.stamp = Some(crate::member::FileStamp {
            ino: 1,
            ctime_ns: 3,
        });
        assert!(!p.get("DATA/DEPOT/a").unwrap().unchanged(&touched), "ctime");
        touched.stamp = Some(crate::member::FileStamp {
            ino: 9,
            ctime_ns: 2,
        });
        assert!(!p.get("DATA/DEPOT/a").unwrap().unchanged(&touched), "inode");
    }

    fn data(path: &str, n: u8) -> ParentFile {
        let mut f = file(path);
        f.member.size = u64::from(n);
        f.content = ContentRef {
            chunks: vec![[n; 32], [n.wrapping_add(1); 32]],
            rows: vec![i64::from(n), -1],
        };
        f
    }

    /// Bulk data in walk order is spilled, not held, and found again with its chunks, rows
    /// and member, however often and in whatever order it is asked for.
    #[test]
    fn bulk_data_in_walk_order_is_spilled_and_found() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Parent::new("s".into()).spill_in(dir.path());
        // Walk order: "a" and what lies below it before "a.b" ('/' sorts after '.').
        let paths = [
            "DATA/DEPOT/a/x",
            "DATA/DEPOT/a/y/z",
            "DATA/DEPOT/a.b",
            "DATA/DEPOT/b",
        ];
        for (n, path) in paths.iter().enumerate() {
            p.add_file(data(path, n as u8 * 2)).unwrap();
        }
        p.add_file(data("DATA/TFTP/boot", 9)).unwrap();
        assert_eq!(p.held_in_memory(), 0, "nothing of the bulk data in memory");
        assert_eq!(p.len(), 5);
        assert_eq!(fs_entries(dir.path()), 0, "spill files have no name");
        let check = |path: &str, n: u8| {
            let f = p.get(path).unwrap_or_else(|| panic!("{path} not found"));
            assert_eq!(f.member.path, path);
            assert_eq!(f.member.size, u64::from(n));
            assert_eq!(f.content.chunks, vec![[n; 32], [n + 1; 32]]);
            assert_eq!(f.content.rows, vec![i64::from(n), -1]);
        };
        // The walk's order, with files the parent does not have in between.
        assert!(p.get("DATA/DEPOT/a/w").is_none());
        check("DATA/DEPOT/a/x", 0);
        check("DATA/DEPOT/a/x", 0);
        assert!(p.get("DATA/DEPOT/a/xx").is_none());
        check("DATA/DEPOT/a/y/z", 2);
        check("DATA/TFTP/boot", 9);
        check("DATA/DEPOT/a.b", 4);
        assert_eq!(p.chunks("DATA/DEPOT/a.b"), Some(vec![[4; 32], [5; 32]]));
        assert_eq!(p.size("DATA/DEPOT/a.b"), Some(4));
        assert!(p.get("DATA/DEPOT/c").is_none(), "past the end");
        // Asked again from the start (the commit's pass over the new snapshot).
        check("DATA/DEPOT/a/x", 0);
        check("DATA/DEPOT/b", 6);
        assert!(p.get("DATA/WORKBENCH/b").is_none(), "no such part");
    }

    /// A parent written by a walk of another order still finds every file: what breaks the
    /// order is held in memory.
    #[test]
    fn bulk_data_out_of_order_is_held() {
        let mut p = Parent::new("s".into());
        for (n, path) in [
            "DATA/DEPOT/b",
            "DATA/DEPOT/a",
            "DATA/DEPOT/c",
            "DATA/DEPOT/a",
        ]
        .iter()
        .enumerate()
        {
            p.add_file(data(path, n as u8 * 2)).unwrap();
        }
        assert_eq!(
            p.held_in_memory(),
            1,
            "only the repeated 'a' is out of order"
        );
        let mut p = Parent::new("s".into());
        for (n, path) in ["DATA/DEPOT/b", "DATA/DEPOT/a", "DATA/DEPOT/c"]
            .iter()
            .enumerate()
        {
            p.add_file(data(path, n as u8 * 2)).unwrap();
        }
        assert_eq!(p.held_in_memory(), 1);
        for (path, n) in [
            ("DATA/DEPOT/a", 2),
            ("DATA/DEPOT/b", 0),
            ("DATA/DEPOT/c", 4),
        ] {
            assert_eq!(p.get(path).unwrap().member.size, n, "{path}");
        }
    }

    #[test]
    fn walk_order_sorts_by_component() {
        let mut v = vec!["a.b", "a/c", "a", "a/b/c", "a-b", "B"];
        v.sort_by(|a, b| walk_order(a, b));
        assert_eq!(v, ["B", "a", "a/b/c", "a/c", "a-b", "a.b"]);
    }

    fn fs_entries(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }
}
