//! `verify`: reads chunks back from their packs, decompresses and re-hashes them, and names
//! for every problem the pack, the chunk and every snapshot member that needs it. Spec:
//! `store-format/README.md`, section "Reading and verification".

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde::Serialize;

use crate::error::Result;
use crate::store::chunker::ChunkId;
use crate::store::config::Config;
use crate::store::index::{self, ChunkAt, GroupRows, RowsToRead};
use crate::store::keys;
use crate::store::pack::{self, FLAG_DELTA, FLAG_ZSTD};
use crate::store::pack_verified;
use crate::store::reader::{for_each_member, read_snapshot_file, ChunkFetcher};
use crate::store::rebuild::{list_packs, list_snapshots};
use crate::store::seal::{ChunkIds, Crypt};
use crate::store::snapshot::read_snapshot_head;
use crate::store::storage::{pack_key, Object, Storage};
pub use crate::store::verify_subset::DataSubset;

/// The `member` of a `NeededBy` for a chunk of a snapshot's metadata stream.
pub const META_USER: &str = "(snapshot metadata)";
/// The member name given when a damaged snapshot metadata stream hides which member it was.
pub const UNNAMED_USER: &str = "(a member: the snapshot metadata naming it is damaged)";
/// The `member` of a `NeededBy` for a snapshot's own file.
pub const SNAPSHOT_FILE_USER: &str = "(snapshot file)";
/// The `member` of a `NeededBy` for `config.json`, which every snapshot needs.
pub const CONFIG_USER: &str = "(repository config.json)";

/// How much pack data a verify of the whole repository reads back (a snapshot's verify reads
/// all of its own). Metadata is always checked in full.
#[derive(Clone, Default)]
pub struct VerifyOptions {
    pub subset: DataSubset,
    /// Start no pack once this much time has passed; the rest wait for the next verify.
    pub max_duration: Option<Duration>,
    /// Told the stored bytes of pack data to read back, then each pack's as it is done (from
    /// several threads): a progress bar's total and steps.
    pub progress: Option<Arc<dyn Fn(Progress) + Send + Sync>>,
}

/// A step of `VerifyOptions::progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The stored bytes of all packs to read back, once, before the first.
    Total(u64),
    /// A pack of this many stored bytes was read back.
    Done(u64),
}

impl VerifyOptions {
    /// Whether every pack is to be read back.
    pub fn reads_everything(&self) -> bool {
        self.subset == DataSubset::All && self.max_duration.is_none()
    }
}

/// The outcome of `Repository::verify`. Problems do not stop the check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub snapshots: u64,
    pub packs: u64,
    pub chunks: u64,
    /// Plain bytes of the chunks checked.
    pub bytes: u64,
    pub problems: Vec<Problem>,
    /// Packs whose data was not read back this time (a rolling verify: `VerifyOptions`).
    pub packs_skipped: u64,
    /// Things worth saying that are not damage (e.g. a config.json without checksum).
    pub notes: Vec<String>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One thing that is wrong, with everything that depends on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The pack file name (hex), when the problem is in a pack.
    pub pack: Option<String>,
    /// The chunk id (hex), when one chunk is concerned.
    pub chunk: Option<String>,
    pub what: String,
    /// Every snapshot member that needs the damaged data.
    pub needed_by: Vec<NeededBy>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct NeededBy {
    pub snapshot: String,
    pub member: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.pack {
            write!(f, "pack {p}: ")?;
        }
        if let Some(c) = &self.chunk {
            write!(f, "chunk {c}: ")?;
        }
        write!(f, "{}", self.what)?;
        for n in &self.needed_by {
            write!(
                f,
                "\n  needed by snapshot {} member {}",
                n.snapshot, n.member
            )?;
        }
        Ok(())
    }
}

/// A problem before its users are known: the chunk rows it concerns.
#[derive(Default)]
struct Found {
    pack: Option<String>,
    chunk: Option<ChunkId>,
    what: String,
    rows: Vec<i64>,
    /// Users known without looking at chunk rows (a snapshot file's own snapshot).
    users: Vec<NeededBy>,
    /// Every snapshot needs it (config.json).
    everyone: bool,
}

impl Found {
    /// Chunk `c` of pack `pack` is damaged or cannot be read.
    fn chunk(pack: &str, c: &ChunkAt, what: String) -> Found {
        Found {
            pack: Some(pack.to_string()),
            chunk: Some(c.hash),
            what,
            rows: vec![c.row],
            ..Found::default()
        }
    }
}

/// Verifies snapshot `only` (its file and its chunks) or, with `None`, every snapshot file and
/// every indexed chunk.
pub(crate) fn verify(
    conn: &Connection,
    storage: &dyn Storage,
    index_path: &Path,
    only: Option<&str>,
    opts: &VerifyOptions,
) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let mut found = Vec::new();
    let names: Vec<String> = match only {
        Some(id) => vec![id.to_string()],
        None => index::snapshots(conn)?.into_iter().map(|s| s.id).collect(),
    };
    check_config(storage, &mut report, &mut found);
    let reading = Reading {
        storage,
        index_path,
    };
    if only.is_some() {
        // The snapshot's chunk rows are what the read-back reads: they come first.
        let rows = check_snapshot_files(conn, storage, &names, true, &mut report, &mut found)?;
        check_wanted_indexed(conn, &mut found)?;
        let packs = index::pack_sizes(conn, rows)?.into_iter().collect();
        read_back(conn, &reading, &packs, rows, opts, &mut report, &mut found)?;
    } else {
        // Reading the snapshot files and their metadata streams (one thread, its own
        // connection) goes beside the read-back of the packs, which every chunk the former
        // reads is part of: on two cores it took a tenth of the time before the read-back.
        let (snapshots, packs) = std::thread::scope(|s| {
            let files = s.spawn(|| {
                let mut report = VerifyReport::default();
                let mut found = Vec::new();
                index::connect(index_path)
                    .and_then(|c| {
                        check_snapshot_files(&c, storage, &names, false, &mut report, &mut found)
                    })
                    .map(|_| (report.snapshots, found))
            });
            let packs = read_all_packs(conn, &reading, opts, &mut report);
            let snapshots = files
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            (snapshots, packs)
        });
        let (count, files_found) = snapshots?;
        report.snapshots = count;
        found.extend(files_found);
        found.extend(packs?);
    }
    report.problems = attach_users(conn, storage, found)?;
    Ok(report)
}

/// The read-back of every pack, the index's and those it lacks; returns the problems found.
fn read_all_packs(
    conn: &Connection,
    reading: &Reading<'_>,
    opts: &VerifyOptions,
    report: &mut VerifyReport,
) -> Result<Vec<Found>> {
    let mut found = Vec::new();
    // Per pack only its name and stored bytes to read (~15,000 packs at 500 GB): its groups
    // and chunks are read from the index when its turn comes (`check_packs`).
    let mut packs: BTreeMap<String, u64> = index::pack_sizes(conn, RowsToRead::All)?
        .into_iter()
        .collect();
    check_unindexed_files(conn, reading.storage, &mut packs, report, &mut found)?;
    read_back(
        conn,
        reading,
        &packs,
        RowsToRead::All,
        opts,
        report,
        &mut found,
    )?;
    Ok(found)
}

/// What the pack read-back works on: the data files and the index (each pack with delta
/// groups opens its own connection, from a worker thread).
struct Reading<'a> {
    storage: &'a dyn Storage,
    index_path: &'a Path,
}

/// What `check_pack` found: chunks and bytes checked, problems.
type PackChecked = (u64, u64, Vec<Found>);

/// Reads back the packs (name: stored bytes to read) the options choose, in their order;
/// for a verify of the whole repository, records which packs were read back intact
/// (`state/pack-verified.json`).
fn read_back(
    conn: &Connection,
    reading: &Reading<'_>,
    packs: &BTreeMap<String, u64>,
    rows: RowsToRead,
    opts: &VerifyOptions,
    report: &mut VerifyReport,
    found: &mut Vec<Found>,
) -> Result<()> {
    let storage = reading.storage;
    let whole = rows == RowsToRead::All;
    let started = Instant::now();
    let known = if whole {
        pack_verified::load(storage)
    } else {
        HashMap::new()
    };
    let sizes: Vec<(String, u64)> = packs.iter().map(|(n, b)| (n.clone(), *b)).collect();
    let subset = if whole { opts.subset } else { DataSubset::All };
    let order = subset.choose(&sizes, &known);
    drop(sizes);
    if let Some(p) = &opts.progress {
        p(Progress::Total(order.iter().map(|n| packs[n]).sum()));
    }
    let checked = check_packs(conn, reading, &order, packs, rows, opts, started)?;
    let mut intact = Vec::new();
    report.packs = checked.len() as u64;
    report.packs_skipped = (packs.len() - checked.len()) as u64;
    for (place, (chunks, bytes, f)) in checked {
        report.chunks += chunks;
        report.bytes += bytes;
        if f.is_empty() {
            intact.push(order[place].clone());
        }
        found.extend(f);
    }
    if whole {
        // A damaged pack stays "never verified": it is read first again next time.
        let present: Vec<String> = packs.keys().cloned().collect();
        let now = chrono::Utc::now().timestamp();
        pack_verified::record(storage, known, &intact, &present, now);
    }
    Ok(())
}

/// Checks the packs of `order` on a thread per core while this thread reads their groups and
/// chunk rows from the index, a pack per thread ahead: memory holds a few packs' rows, not
/// the repository's. With a time limit, no pack starts after it (those still queued are
/// dropped). Returns what each checked pack found, by its place in `order`, in that order.
fn check_packs(
    conn: &Connection,
    reading: &Reading<'_>,
    order: &[String],
    packs: &BTreeMap<String, u64>,
    rows: RowsToRead,
    opts: &VerifyOptions,
    started: Instant,
) -> Result<Vec<(usize, PackChecked)>> {
    let out_of_time = || opts.max_duration.is_some_and(|d| started.elapsed() >= d);
    if order.is_empty() || out_of_time() {
        return Ok(Vec::new());
    }
    let workers = rayon::current_num_threads().max(1);
    let (queue, queued) = mpsc::sync_channel::<(usize, Vec<GroupRows>)>(workers);
    // Each worker holds the receiving end: should every worker die, sending fails instead of
    // waiting for ever.
    let queued = Arc::new(Mutex::new(queued));
    let done = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            let queued = Arc::clone(&queued);
            let (done, out_of_time) = (&done, &out_of_time);
            let mut scratch = Scratch::default();
            s.spawn(move || loop {
                let next = queued.lock().unwrap_or_else(PoisonError::into_inner).recv();
                let Ok((place, groups)) = next else { break };
                if out_of_time() {
                    continue;
                }
                let name = &order[place];
                let checked = check_pack(reading, name, &groups, &mut scratch);
                drop(groups);
                if let Some(p) = &opts.progress {
                    p(Progress::Done(packs[name]));
                }
                let mut done = done.lock().unwrap_or_else(PoisonError::into_inner);
                done.push((place, checked));
            });
        }
        drop(queued);
        let handed = index::for_each_pack_to_read(conn, order, rows, |place, groups| {
            Ok(!out_of_time() && queue.send((place, groups)).is_ok())
        });
        drop(queue);
        handed
    })?;
    let mut done = done.into_inner().unwrap_or_else(PoisonError::into_inner);
    done.sort_unstable_by_key(|(place, _)| *place);
    Ok(done)
}

/// How many wanted chunk rows are collected before they go into the index's temporary table.
const WANTED_BATCH: usize = 1 << 16;

/// Reads the snapshot files `names` and their metadata streams. With `only_these`, puts the
/// chunk rows they use (the only ones to read back) into the index's table of wanted rows
/// (a temporary table: memory stays at a batch of rows, whatever the snapshot's size) and
/// returns `Wanted`; else `All`.
fn check_snapshot_files(
    conn: &Connection,
    storage: &dyn Storage,
    names: &[String],
    only_these: bool,
    report: &mut VerifyReport,
    found: &mut Vec<Found>,
) -> Result<RowsToRead> {
    if only_these {
        index::clear_wanted(conn)?;
    }
    let mut wanted = Vec::new();
    for name in names {
        report.snapshots += 1;
        if let Err(e) =
            read_snapshot_file(conn, storage, name, |_: crate::member::Member, _| Ok(()))
        {
            found.push(Found {
                what: format!("snapshot {name}: {e}"),
                users: vec![NeededBy {
                    snapshot: name.clone(),
                    member: SNAPSHOT_FILE_USER.into(),
                }],
                ..Found::default()
            });
        }
        if only_these {
            let row = index::snapshot_row(conn, name)?;
            index::for_each_chunk_list(conn, row, |ids| {
                wanted.extend(ids);
                if wanted.len() >= WANTED_BATCH {
                    index::add_wanted(conn, &mut wanted)?;
                }
                Ok(())
            })?;
            wanted.extend(index::meta_chunk_rows(conn, row)?);
            index::add_wanted(conn, &mut wanted)?;
        }
    }
    Ok(if only_these {
        RowsToRead::Wanted
    } else {
        RowsToRead::All
    })
}

/// A wanted chunk row the index does not hold (in no indexed group of an indexed pack) is a
/// problem.
fn check_wanted_indexed(conn: &Connection, found: &mut Vec<Found>) -> Result<()> {
    for row in index::wanted_not_indexed(conn)? {
        found.push(Found {
            what: format!("chunk #{row} is missing from the index"),
            rows: vec![row],
            ..Found::default()
        });
    }
    Ok(())
}

/// The pack and snapshot files the index does not know. Recovery indexes every readable pack
/// and snapshot file, but only when it gets the exclusive lock, and a writer renames its
/// files before it indexes them: an intact file the index does not know is a note, a damaged
/// one a problem. Indexed packs no chunk row points into join `packs` (with no bytes of
/// groups to read): every byte is checked.
fn check_unindexed_files(
    conn: &Connection,
    storage: &dyn Storage,
    packs: &mut BTreeMap<String, u64>,
    report: &mut VerifyReport,
    found: &mut Vec<Found>,
) -> Result<()> {
    for name in list_packs(storage)? {
        if index::pack_known(conn, &name)? {
            packs.entry(name).or_default();
            continue;
        }
        match intact_pack(storage, &name) {
            Ok(()) => report.notes.push(format!(
                "pack {name} is intact but not in the index yet (a writer is committing \
                 it, or recovery has not run since a crash)"
            )),
            Err(why) => found.push(Found {
                pack: Some(name),
                what: format!(
                    "pack file is not in the index and is damaged ({why}); rebuild-index tells more"
                ),
                ..Found::default()
            }),
        }
    }
    for id in list_snapshots(storage)? {
        if index::snapshot_known(conn, &id)? {
            continue;
        }
        match read_snapshot_head(storage, &id) {
            Ok(_) => report.notes.push(format!(
                "snapshot {id} is intact but not in the index yet (a writer is committing \
                 it, or recovery has not run since a crash)"
            )),
            Err(e) => found.push(Found {
                what: format!("snapshot file {id} is not in the index: {e}"),
                users: vec![NeededBy {
                    snapshot: id,
                    member: SNAPSHOT_FILE_USER.into(),
                }],
                ..Found::default()
            }),
        }
    }
    Ok(())
}

fn check_config(storage: &dyn Storage, report: &mut VerifyReport, found: &mut Vec<Found>) {
    match Config::load(storage) {
        Ok(c) if c.checksum.is_none() => report.notes.push(
            "config.json has no checksum (written by an older opsi-backup): only its syntax and \
             values could be checked"
                .into(),
        ),
        Ok(c) if storage.crypt().is_encrypted() => {
            if let Err(e) = c.check_mac(storage.crypt(), "the repository") {
                found.push(Found {
                    what: e.to_string(),
                    everyone: true,
                    ..Found::default()
                });
            }
        }
        Ok(_) => {}
        Err(e) => found.push(Found {
            what: e.to_string(),
            everyone: true,
            ..Found::default()
        }),
    }
    check_key_files(storage, found);
}

/// A damaged key file loses the password it holds (the others still open the repository).
fn check_key_files(storage: &dyn Storage, found: &mut Vec<Found>) {
    match keys::list(storage, None) {
        Ok(all) => {
            for k in all {
                if let Some(why) = k.damaged {
                    found.push(Found {
                        what: format!("key file {} is {why}", storage.show(&keys::key_of(&k.id))),
                        ..Found::default()
                    });
                }
            }
        }
        Err(e) => found.push(Found {
            what: format!("the key files cannot be listed: {e}"),
            ..Found::default()
        }),
    }
}

/// Whether a pack file matches its name and its trailer checks out; the reason otherwise.
fn intact_pack(storage: &dyn Storage, name: &str) -> std::result::Result<(), String> {
    let hash = PackScan::open(storage, name)
        .and_then(PackScan::finish)
        .map_err(|e| e.to_string())?;
    if hash.to_hex().as_str() != name {
        return Err("its BLAKE3 does not match its name".into());
    }
    pack::read_trailer(storage, name).map_err(|e| e.to_string())?;
    Ok(())
}

/// Reads a pack file front to back once: the stored bytes of the groups asked for, in offset
/// order, and everything between and after them, all of it into a BLAKE3 hasher, so that the
/// whole file is compared with its name. Memory: one group and a 64 KiB buffer.
struct PackScan {
    file: Box<dyn Object>,
    size: u64,
    pos: u64,
    hasher: blake3::Hasher,
    /// A read failed part way: the hash is taken again from the start.
    broken: bool,
}

impl PackScan {
    fn open(storage: &dyn Storage, name: &str) -> io::Result<PackScan> {
        let file = storage.open(&pack_key(name))?;
        let size = file.size();
        Ok(PackScan {
            file,
            size,
            pos: 0,
            hasher: blake3::Hasher::new(),
            broken: false,
        })
    }

    /// Hashes the bytes up to `to` (at most the end of the file).
    fn skip_to(&mut self, to: u64) -> io::Result<()> {
        let mut buf = vec![0u8; 64 << 10];
        while self.pos < to.min(self.size) {
            let want = (to.min(self.size) - self.pos).min(buf.len() as u64) as usize;
            let n = self.file.read_at(&mut buf[..want], self.pos)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.hasher.update(&buf[..n]);
            self.pos += n as u64;
        }
        Ok(())
    }

    /// The stored bytes of the group at `offset`. Groups are asked for in offset order; the
    /// length is checked against the file size before anything is allocated.
    fn stored(&mut self, offset: u64, len: u32) -> io::Result<Vec<u8>> {
        let mut stored = Vec::new();
        self.stored_into(offset, len, &mut stored)?;
        Ok(stored)
    }

    /// `stored` into `out`, whose allocation is reused.
    fn stored_into(&mut self, offset: u64, len: u32, out: &mut Vec<u8>) -> io::Result<()> {
        if offset < self.pos || self.broken {
            // Out of order (or after a failed read): read it apart, the hash is redone.
            self.broken = true;
            *out = pack::read_raw(&*self.file, offset, len)?;
            return Ok(());
        }
        if offset.saturating_add(u64::from(len)) > self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "group of {len} bytes at offset {offset} lies beyond the end of the {}-byte pack file",
                    self.size
                ),
            ));
        }
        let read = self.skip_to(offset).and_then(|()| {
            // Only what the last group did not cover is zeroed.
            out.resize(len as usize, 0);
            self.file.read_exact_at(out, offset)
        });
        match read {
            Ok(()) => {
                self.hasher.update(out);
                self.pos += u64::from(len);
                Ok(())
            }
            Err(e) => {
                self.broken = true;
                Err(e)
            }
        }
    }

    /// The BLAKE3 of the whole file.
    fn finish(mut self) -> io::Result<blake3::Hash> {
        if self.broken {
            self.hasher = blake3::Hasher::new();
            self.pos = 0;
        }
        self.skip_to(u64::MAX)?;
        Ok(self.hasher.finalize())
    }
}

/// Reads the groups `groups` of one pack, re-hashes their chunks and hashes the whole file
/// against its name. Returns chunks and bytes checked.
fn check_pack(
    reading: &Reading<'_>,
    name: &str,
    groups: &[GroupRows],
    scratch: &mut Scratch,
) -> PackChecked {
    let storage = reading.storage;
    let all_rows = || -> Vec<i64> {
        groups
            .iter()
            .flat_map(|g| g.chunks.iter().map(|c| c.row))
            .collect()
    };
    let mut file = match PackScan::open(storage, name) {
        Ok(f) => f,
        Err(e) => {
            let what = format!("pack file cannot be opened: {e}");
            return (
                0,
                0,
                vec![Found {
                    pack: Some(name.to_string()),
                    what,
                    rows: all_rows(),
                    ..Found::default()
                }],
            );
        }
    };
    let (mut chunks, mut bytes, mut found) = (0, 0, Vec::new());
    // The index, for the references of delta groups: opened only for a pack that has some,
    // and read through one fetcher, so that a group holding the references of several delta
    // groups is decompressed once.
    let index = groups
        .iter()
        .any(|g| g.flags & FLAG_DELTA != 0)
        .then(|| index::connect(reading.index_path).map_err(|e| e.to_string()));
    let mut refs = match &index {
        Some(Ok(conn)) => Ok(ChunkFetcher::new(conn, storage)),
        Some(Err(e)) => Err(e.clone()),
        None => Err(String::new()),
    };
    for g in groups {
        match read_group(&mut refs, &mut file, storage.crypt(), g, scratch) {
            Ok(()) => {
                let plain = &scratch.plain;
                let (n, b) = check_chunks(storage.crypt().ids(), name, g, plain, &mut found);
                chunks += n;
                bytes += b;
            }
            Err(e) => {
                for c in &g.chunks {
                    let what = format!("group at offset {} cannot be read: {e}", g.offset);
                    found.push(Found::chunk(name, c, what));
                }
            }
        }
    }
    if let Some(why) = check_whole(file, name) {
        // The trailer's own checks say where the damage lies when it is there.
        let trailer = match pack::read_trailer(storage, name) {
            Ok(_) => String::new(),
            Err(e) => format!("; {e}"),
        };
        found.push(Found {
            pack: Some(name.to_string()),
            what: format!(
                "pack file {} is damaged: {why}{trailer}",
                storage.show(&pack_key(name))
            ),
            rows: all_rows(),
            ..Found::default()
        });
    }
    (chunks, bytes, found)
}

/// A pack-checking thread's buffers and zstd context, reused from group to group: a fresh
/// 4 MiB buffer per group cost page faults and zeroing, a tenth of verify's CPU.
#[derive(Default)]
struct Scratch {
    dctx: Option<zstd::bulk::Decompressor<'static>>,
    /// The stored bytes of the last group read.
    stored: Vec<u8>,
    /// The plain bytes of the last group read.
    plain: Vec<u8>,
}

/// Reads the plain bytes of group `g` from `file` into `scratch.plain` (a delta group's
/// references through `refs`).
fn read_group(
    refs: &mut std::result::Result<ChunkFetcher<'_>, String>,
    file: &mut PackScan,
    crypt: &Crypt,
    g: &GroupRows,
    scratch: &mut Scratch,
) -> std::result::Result<(), String> {
    if g.flags & FLAG_DELTA != 0 {
        scratch.plain = read_delta(refs, file, crypt, g)?;
        return Ok(());
    }
    let e = |e: io::Error| e.to_string();
    file.stored_into(g.offset, g.stored_len, &mut scratch.stored)
        .map_err(e)?;
    // Opening a sealed group gives new bytes; a plain one comes back as it went in.
    let stored = pack::open_group(crypt, std::mem::take(&mut scratch.stored)).map_err(e)?;
    if g.flags & FLAG_ZSTD == 0 {
        // The plain buffer of the last group becomes the next one's stored buffer.
        scratch.stored = std::mem::replace(&mut scratch.plain, stored);
        return Ok(());
    }
    let dctx = match &mut scratch.dctx {
        Some(d) => d,
        None => scratch
            .dctx
            .insert(zstd::bulk::Decompressor::new().map_err(e)?),
    };
    let done = pack::decompress_group_into(dctx, &stored, g.plain_len as usize, &mut scratch.plain);
    scratch.stored = stored;
    done.map_err(e)
}

/// Re-hashes the chunks of group `g` in its `plain` bytes; returns how many chunks and bytes
/// were checked.
fn check_chunks(
    ids: &ChunkIds,
    name: &str,
    g: &GroupRows,
    plain: &[u8],
    found: &mut Vec<Found>,
) -> (u64, u64) {
    let (mut chunks, mut bytes) = (0, 0);
    for c in &g.chunks {
        chunks += 1;
        bytes += u64::from(c.len);
        let data = plain.get(c.offset as usize..(c.offset + u64::from(c.len)) as usize);
        if data.map(|d| ids.id(d)) != Some(c.hash) {
            let what = format!(
                "damaged (BLAKE3 mismatch) in the group at offset {}",
                g.offset
            );
            found.push(Found::chunk(name, c, what));
        }
    }
    (chunks, bytes)
}

/// What is wrong with the pack file as a whole, once every byte was read: its BLAKE3 must
/// be its name.
fn check_whole(file: PackScan, name: &str) -> Option<String> {
    match file.finish() {
        Ok(h) if h.to_hex().as_str() == name => None,
        Ok(_) => Some("its BLAKE3 does not match its name".to_string()),
        Err(e) => Some(format!("it cannot be read in full: {e}")),
    }
}

/// The plain bytes of a delta group, its reference chunks read and checked through `refs`
/// (or the reason the index could not be opened).
fn read_delta(
    refs: &mut std::result::Result<ChunkFetcher<'_>, String>,
    file: &mut PackScan,
    crypt: &Crypt,
    g: &GroupRows,
) -> std::result::Result<Vec<u8>, String> {
    // Read first: the file is read front to back for its hash, whatever the references do.
    let stored = file
        .stored(g.offset, g.stored_len)
        .and_then(|raw| pack::open_group(crypt, raw))
        .map_err(|e| e.to_string())?;
    let prefix = refs
        .as_mut()
        .map_err(|e| e.clone())?
        .group_prefix(g.id, "a delta group")
        .map_err(|e| e.to_string())?;
    pack::decompress_delta(&stored, g.plain_len as usize, &prefix).map_err(|e| e.to_string())
}

/// Scans every snapshot's members once and attaches the users of each problem's chunks.
fn attach_users(
    conn: &Connection,
    storage: &dyn Storage,
    found: Vec<Found>,
) -> Result<Vec<Problem>> {
    let mut users: HashMap<i64, Vec<NeededBy>> = found
        .iter()
        .flat_map(|f| f.rows.iter().map(|r| (*r, Vec::new())))
        .collect();
    let everyone: Vec<NeededBy> = if found.iter().any(|f| f.everyone) {
        index::snapshots(conn)?
            .into_iter()
            .map(|s| NeededBy {
                snapshot: s.id,
                member: CONFIG_USER.into(),
            })
            .collect()
    } else {
        Vec::new()
    };
    if !users.is_empty() {
        for s in index::snapshots(conn)? {
            add_users(conn, storage, &s.id, &mut users)?;
        }
    }
    Ok(found
        .into_iter()
        .map(|f| {
            let mut needed_by: Vec<NeededBy> = f
                .rows
                .iter()
                .flat_map(|r| users[r].iter().cloned())
                .chain(f.users)
                .collect();
            if f.everyone {
                needed_by.extend(everyone.iter().cloned());
            }
            needed_by.sort();
            needed_by.dedup();
            Problem {
                pack: f.pack,
                chunk: f.chunk.map(hex::encode),
                what: f.what,
                needed_by,
            }
        })
        .collect())
}

/// Adds snapshot `id` to the users of the chunk rows in `users` that it needs, naming the
/// member (or its metadata stream).
fn add_users(
    conn: &Connection,
    storage: &dyn Storage,
    id: &str,
    users: &mut HashMap<i64, Vec<NeededBy>>,
) -> Result<()> {
    let row = index::snapshot_row(conn, id)?;
    for r in index::meta_chunk_rows(conn, row)? {
        if let Some(u) = users.get_mut(&r) {
            u.push(NeededBy {
                snapshot: id.to_string(),
                member: META_USER.into(),
            });
        }
    }
    // Member names come from the snapshot's metadata stream; when the damage makes
    // it unreadable, the chunk lists in the index still name the snapshot.
    let mut hits: Vec<(i64, String)> = Vec::new();
    let named = for_each_member(conn, storage, row, |m, ids| {
        hits.extend(
            ids.into_iter()
                .filter(|id| users.contains_key(id))
                .map(|id| (id, m.path.clone())),
        );
        Ok(())
    });
    if named.is_err() {
        hits.clear();
        index::for_each_chunk_list(conn, row, |ids| {
            hits.extend(
                ids.into_iter()
                    .filter(|id| users.contains_key(id))
                    .map(|id| (id, UNNAMED_USER.to_string())),
            );
            Ok(())
        })?;
    }
    for (r, member) in hits {
        let u = users.get_mut(&r).expect("filtered on users");
        let n = NeededBy {
            snapshot: id.to_string(),
            member,
        };
        if u.last() != Some(&n) {
            u.push(n);
        }
    }
    Ok(())
}
