//! `SnapshotWriter`: the data path of a backup. Member content is chunked (FastCDC), hashed
//! in parallel, deduplicated against the index and this writer's own new chunks; new chunks
//! are collected into groups, compressed in parallel and appended to packs; members go to
//! the snapshot file. `commit` runs the commit protocol of `store-format/README.md`, section
//! "Commit protocol".

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use rusqlite::{Connection, Transaction};

use crate::error::{Error, Result};
use crate::member::Member;
use crate::parent::{Parent, ParentFile};
use crate::sink::MemberSink;
use crate::store::chunker::{ChunkId, Chunker};
use crate::store::config::KINDS_VERSION;
use crate::store::config::{ChunkerParams, BULK_PREFIX, LARGE_FILE};
use crate::store::index::{self, SqlContext};
use crate::store::indexer;
use crate::store::lock::{LockKind, RepoLock};
use crate::store::pack::TrailerLayout;
use crate::store::packer::{Compressors, PackDone, PackSeries, PlainGroup, SealedGroup};
use crate::store::reader::ChunkFetcher;
use crate::store::seal_queue::{self, seal_all, SealQueue};
use crate::store::snapshot::{Header, SnapshotFileWriter, SnapshotMeta};
use crate::store::snapshot_info::{Series, SnapshotInfo, SnapshotKind};
use crate::store::storage::Storage;
use crate::store::{crash_point, Repository};

/// zstd level for the groups of a writer that has found at most 1/`SPARSE_RATIO` of what it
/// read to be new: a night's few changed chunks. They are worth ~25% fewer bytes at several times
/// the CPU of level 3, a cost a full first backup would feel and a night does not.
const SPARSE_LEVEL: i32 = 12;
const SPARSE_RATIO: u64 = 8;
/// zstd level for the rest of a stream larger than a group whose first full group the
/// normal level shrinks by less than 1/`FAST_GAIN` more than this one: a mysqldump's long
/// rows lose 0.7% at a quarter less CPU (measured on 243 MB at 3000 clients), while the
/// file backend's small files, grouped together, would lose 19% and stay at the normal level.
const FAST_LEVEL: i32 = 1;
const FAST_GAIN: usize = 50;
/// Emptied groups kept for reuse: about what one batch fills.
const SPARE_GROUPS: usize = 2;
/// A delta group's reference chunks hold at most this many times `group_size` bytes: with
/// the group, they must fit zstd's window (`pack::DELTA_WINDOW_LOG`).
const REFS_PER_GROUP: usize = 2;
/// A delta group's references lie in at most this many groups: reading it decompresses
/// those, which a reader of the snapshot mostly needs next anyway for the unchanged
/// neighbours of the changed chunks. Beyond, the writer starts a new group.
const REF_GROUPS: usize = 4;

/// How many bytes of its metadata stream a writer keeps for its commit (`FreshMeta`): a
/// 3,000-client server's is ~3 MiB; a larger stream is read back from the packs beyond.
const FRESH_META_BYTES: usize = 16 << 20;

/// Metadata chunks kept for the commit's reading of the snapshot file.
struct FreshMeta {
    chunks: HashMap<ChunkId, Vec<u8>>,
    bytes: usize,
    /// `FRESH_META_BYTES`, smaller in tests.
    limit: usize,
}

impl Default for FreshMeta {
    fn default() -> FreshMeta {
        FreshMeta {
            chunks: HashMap::new(),
            bytes: 0,
            limit: FRESH_META_BYTES,
        }
    }
}

impl FreshMeta {
    fn keep(&mut self, id: ChunkId, data: &[u8]) {
        if self.bytes + data.len() <= self.limit && !self.chunks.contains_key(&id) {
            self.bytes += data.len();
            self.chunks.insert(id, data.to_vec());
        }
    }
}

/// Writes one snapshot. Holds the shared repository lock until it is committed or dropped.
/// Dropping it without `commit` deletes its temporary files and leaves its finished packs under
/// `packs/`, which the next run with the exclusive lock indexes for reuse. A crash leaves the
/// temporary files too; that run deletes them.
pub struct SnapshotWriter<'r> {
    repo: &'r Repository,
    params: ChunkerParams,
    file: Option<SnapshotFileWriter>,
    /// The writer's own connection: its lookups and the indexing of its packs.
    index: WriterIndex,
    /// The groups being filled and the packs they go to.
    packing: Packing<'r>,
    /// The parent snapshot, whose chunks of a member are the older versions its new chunks
    /// are compressed against (delta groups; format version 3 on).
    parent: Option<Arc<Parent>>,
    /// The parent's metadata chunks, the older versions of the metadata stream's.
    meta_base: Option<BaseCursor<Vec<ChunkId>>>,
    /// Its series: the parent is the newest snapshot of the same host and series.
    series: Series,
    volume: Volume,
    /// The metadata chunks this writer cut, by id, up to `FRESH_META_BYTES`: the commit
    /// indexes the snapshot from its file, whose metadata stream it takes from here instead
    /// of reading it back from the packs (delta groups, their references).
    fresh_meta: FreshMeta,
    _lock: RepoLock,
}

/// A writer's index connection and what it knows of its own chunks.
struct WriterIndex {
    conn: Connection,
    /// Chunks this writer stored itself, with their index row once their pack is indexed
    /// (0 before): the commit takes the rows from here instead of looking each up. Indexed
    /// ones are forgotten beyond `SEEN_KEPT`.
    seen: HashMap<ChunkId, i64>,
    /// How many of `Packing::packs.done()` are in the index already.
    indexed: usize,
    /// `SEEN_KEPT`, smaller in tests.
    seen_kept: usize,
}

/// How many of its own chunks a writer remembers once their packs are indexed: beyond that,
/// indexed ones are forgotten and looked up in the index instead, so that a first backup of
/// 500 GB (millions of chunks) does not hold a map entry for each (~50 bytes).
const SEEN_KEPT: usize = 400_000;

impl WriterIndex {
    /// Forgets the indexed chunks when there are more than `SEEN_KEPT`: they are in the index.
    fn forget_indexed(&mut self) {
        if self.seen.len() > self.seen_kept {
            self.seen.retain(|_, row| *row == 0);
        }
    }

    /// Whether chunk `id` is stored already: in the index, or by this writer.
    fn known(&self, id: &ChunkId) -> Result<bool> {
        Ok(self.seen.contains_key(id) || index::chunk_known(&self.conn, id)?)
    }

    /// Ends the writer's read transaction (its lookups) and starts a write transaction that
    /// indexes the finished packs `new`, recording the rows of the writer's own chunks in
    /// `seen`. Returns the transaction and those rows.
    fn begin_indexing(
        &mut self,
        storage: &dyn Storage,
        new: &[PackDone],
    ) -> Result<(Transaction<'_>, &HashMap<ChunkId, i64>)> {
        let WriterIndex { conn, seen, .. } = self;
        index::end_read(conn)?;
        let tx = index::immediate(conn)?;
        let mut row_of = |id: &ChunkId, row| {
            if let Some(r) = seen.get_mut(id) {
                *r = row;
            }
        };
        for p in new {
            indexer::index_pack_file_rows(&tx, storage, &p.name, &mut row_of)?;
        }
        Ok((tx, seen))
    }
}

/// New chunks on their way into packs.
struct Packing<'r> {
    packs: PackSeries<'r>,
    group: PlainGroup,
    /// Metadata chunks are grouped apart from file contents, so that reading a snapshot's
    /// member list (a parent for `create`, `list`, `diff`) decompresses metadata only.
    meta_group: PlainGroup,
    /// Emptied groups whose buffers the next groups reuse.
    spare: Vec<PlainGroup>,
    /// The chunker's read buffer, reused from one stream to the next.
    chunk_buf: Vec<u8>,
    /// Full groups being compressed in the background, and the compressors.
    sealing: SealQueue,
}

/// Plain bytes stored so far (contents, metadata and unchanged files taken from the parent)
/// and how many of them were new: they choose the zstd level (`SnapshotWriter::level`).
#[derive(Default)]
struct Volume {
    read: u64,
    new: u64,
}

impl<'r> SnapshotWriter<'r> {
    pub(crate) fn new(repo: &'r Repository, meta: SnapshotMeta) -> Result<SnapshotWriter<'r>> {
        SnapshotWriter::with_header(repo, meta, None)
    }

    /// A writer of a copy of snapshot `copy_of` (its id where it was made), for `copy`.
    pub(crate) fn new_copy(
        repo: &'r Repository,
        meta: SnapshotMeta,
        copy_of: String,
    ) -> Result<SnapshotWriter<'r>> {
        SnapshotWriter::with_header(repo, meta, Some(copy_of))
    }

    fn with_header(
        repo: &'r Repository,
        meta: SnapshotMeta,
        copy_of: Option<String>,
    ) -> Result<SnapshotWriter<'r>> {
        let lock = repo.lock(LockKind::Shared, "write a snapshot")?;
        let conn = index::connect(&repo.index_path())?;
        // One read transaction for the writer's many chunk lookups: SQLite then locks once,
        // not for every lookup (~20,000 fcntl calls for a 3,000-client file backend). A
        // chunk another writer commits meanwhile is not seen and stored twice; the index
        // keeps one row and prune frees the copy.
        index::begin_read(&conn)?;
        let series = Series::of(&meta.backends);
        if series.kind() == SnapshotKind::Opsiconfd && repo.config().version < KINDS_VERSION {
            return Err(Error::Repository(format!(
                "repository format version {} cannot hold opsiconfd snapshots (older programs \
                 would take them for opsi-backup archives); it must be raised to version \
                 {KINDS_VERSION} first",
                repo.config().version
            )));
        }
        let params = repo.config().chunker.clone();
        let layout = TrailerLayout::for_version(repo.config().version);
        let packs = PackSeries::new(repo.storage(), params.pack_size, layout);
        let header = Header {
            repository: repo.config().id.clone(),
            meta,
            copy_of,
        };
        let file = SnapshotFileWriter::create(repo.storage(), &header, &params)?;
        Ok(SnapshotWriter {
            repo,
            params,
            file: Some(file),
            index: WriterIndex {
                conn,
                seen: HashMap::new(),
                indexed: 0,
                seen_kept: SEEN_KEPT,
            },
            packing: Packing {
                packs,
                group: PlainGroup::default(),
                meta_group: PlainGroup::default(),
                spare: Vec::new(),
                chunk_buf: Vec::new(),
                sealing: SealQueue::default(),
            },
            parent: None,
            meta_base: None,
            series,
            volume: Volume::default(),
            fresh_meta: FreshMeta::default(),
            _lock: lock,
        })
    }

    /// Remembers at most `n` of its own indexed chunks (tests of `SEEN_KEPT`).
    #[cfg(test)]
    pub(crate) fn remember_at_most(&mut self, n: usize) {
        self.index.seen_kept = n;
    }

    /// Keeps at most `n` bytes of its metadata stream for the commit (tests of
    /// `FRESH_META_BYTES`).
    #[cfg(test)]
    pub(crate) fn keep_metadata_at_most(&mut self, n: usize) {
        self.fresh_meta.limit = n;
    }

    /// How many of its own chunks it remembers.
    #[cfg(test)]
    pub(crate) fn remembered(&self) -> usize {
        self.index.seen.len()
    }

    /// Takes the newest snapshot of `host` as parent (`set_parent`) once `complete` has added
    /// what only its caller knows (the command line attaches the parent's CONTROL/checksums),
    /// and returns it. It is read under this writer's lock, so the index rows it lists hold
    /// until the commit (no prune or rebuild-index can run meanwhile): unchanged files reuse them.
    pub fn take_parent(
        &mut self,
        host: &str,
        complete: impl FnOnce(&Repository, &mut Parent) -> Result<()>,
    ) -> Result<Option<Arc<Parent>>> {
        let Some(mut parent) = self.repo.parent_in_series(host, &self.series)? else {
            return Ok(None);
        };
        complete(self.repo, &mut parent)?;
        let parent = Arc::new(parent);
        self.set_parent(Arc::clone(&parent))?;
        Ok(Some(parent))
    }

    /// Compresses the new chunks of each member against that member's chunks in `parent`
    /// (spec: "Delta groups"). Repositories of format version 2 have no delta groups.
    /// `parent` must have been read after this writer began (`take_parent`): its index rows
    /// are taken as they are.
    pub fn set_parent(&mut self, parent: Arc<Parent>) -> Result<()> {
        if self.repo.config().version < 3 {
            return Ok(());
        }
        let row = index::snapshot_row(&self.index.conn, &parent.snapshot)?;
        let mut ids = Vec::new();
        for r in index::meta_chunk_rows(&self.index.conn, row)? {
            if let Some(loc) = index::location(&self.index.conn, r)? {
                ids.push(loc.hash);
            }
        }
        self.meta_base = Some(BaseCursor::new(ids));
        self.parent = Some(parent);
        Ok(())
    }

    /// Stores a stream: returns its chunk ids and its length. Reading, chunking and hashing
    /// of one batch overlap with the compression of the previous batch's full groups.
    /// Memory: the chunker's batch buffer (~8 MiB, reused) and the groups being compressed.
    /// `cut`: how a file of bulk data is cut and compressed.
    fn store_stream(
        &mut self,
        path: &str,
        content: &mut dyn Read,
        cut: Cut,
    ) -> Result<(Vec<ChunkId>, u64)> {
        let parent = self.parent.clone();
        let mut base = parent
            .as_deref()
            .and_then(|p| p.chunks(path))
            .map(BaseCursor::new);
        let params = if cut == Cut::Fine {
            self.params.clone()
        } else {
            self.params.for_large_files()
        };
        let mut chunker = Chunker::new(
            content,
            &params,
            self.repo.storage().crypt().ids().clone(),
            std::mem::take(&mut self.packing.chunk_buf),
        );
        let mut ids = Vec::new();
        let mut size = 0u64;
        let mut full: Vec<PlainGroup> = Vec::new();
        // This stream's own level (FAST_LEVEL or the normal one), once its first full group
        // has shown which pays.
        let mut own_level = None;
        loop {
            let pending = std::mem::take(&mut full);
            if !pending.is_empty() {
                // A large file of bulk data (an installer, an image, an archive) is
                // compressed already: level 1 (and zstd's own check that a frame does not
                // shrink) stores it at a fraction of the CPU a night's level 12 would spend.
                let (level, probe) = if cut == Cut::BulkLarge {
                    (FAST_LEVEL, false)
                } else {
                    self.stream_level(own_level, size, &pending)
                };
                if probe {
                    // The stream's level is chosen on its first full group before the next
                    // ones are compressed.
                    let mut pending = pending;
                    self.drain_sealing()?;
                    let (sealed, kept) =
                        seal_batch(&mut pending, level, probe, self.packing.sealing.zstd());
                    own_level = own_level.or(kept);
                    self.append(sealed)?;
                    self.recycle(pending);
                } else {
                    self.submit(pending, level)?;
                }
            }
            // Chunking stays on this thread (the reader is not Send) while rayon compresses.
            let batch = chunker.next_batch()?;
            if batch.is_empty() {
                break;
            }
            for (id, data) in batch.iter() {
                size += data.len() as u64;
                ids.push(id);
                if !self.claim(id, data.len())? {
                    if let Some(b) = &mut base {
                        b.found(&id);
                    }
                    continue;
                }
                if let Some(r) = base.as_mut().and_then(BaseCursor::next) {
                    if !self.add_ref(r)? {
                        // Its group would need too many groups read: start a new one.
                        full.push(self.cut_group()?);
                        self.add_ref(r)?;
                    }
                }
                self.packing.group.push(id, data);
                if self.packing.group.data.len() >= self.params.group_size as usize {
                    full.push(self.cut_group()?);
                }
            }
        }
        self.packing.chunk_buf = chunker.into_buffer();
        self.collect_sealed()?;
        Ok((ids, size))
    }

    /// Adds member `m` whose content is the chunks `ids` of another repository, in order
    /// (`copy`), which computes chunk ids as this one does: a chunk this repository has is
    /// referenced; one it lacks is taken from `fetch`, checked against its id on arrival and
    /// stored. Returns the chunks and bytes taken. The caller vouches for `m.size` (the
    /// source's metadata, itself checked).
    pub(crate) fn add_chunks(
        &mut self,
        m: &Member,
        ids: &[ChunkId],
        fetch: &mut dyn FnMut(&ChunkId) -> Result<Vec<u8>>,
    ) -> Result<(u64, u64)> {
        let (mut chunks, mut bytes) = (0u64, 0u64);
        let mut full = Vec::new();
        self.volume.read += m.size;
        let own = self.repo.storage().crypt().ids().clone();
        for id in ids {
            if self.index.known(id)? {
                continue;
            }
            let data = fetch(id)?;
            if own.id(&data) != *id {
                return Err(Error::Corrupt(format!(
                    "chunk {} of member {} arrived damaged (its content does not match its id)",
                    hex::encode(id),
                    m.path
                )));
            }
            chunks += 1;
            bytes += data.len() as u64;
            self.store_copied(*id, &data, &mut full)?;
        }
        self.flush_copied(full)?;
        self.member(m, ids)?;
        Ok((chunks, bytes))
    }

    /// `add_chunks` for a source that computes chunk ids otherwise (plain and encrypted, or
    /// two encrypted repositories with different keys): every chunk is read from `fetch`
    /// (which checks it against the source's id), given this repository's id, and stored
    /// when this repository lacks it; the member record lists this repository's ids. Returns
    /// the chunks and bytes stored.
    pub(crate) fn add_translated(
        &mut self,
        m: &Member,
        source_ids: &[ChunkId],
        fetch: &mut dyn FnMut(&ChunkId) -> Result<Vec<u8>>,
    ) -> Result<(u64, u64)> {
        let (mut chunks, mut bytes) = (0u64, 0u64);
        let mut full = Vec::new();
        self.volume.read += m.size;
        let own = self.repo.storage().crypt().ids().clone();
        let mut ids = Vec::with_capacity(source_ids.len());
        for s in source_ids {
            let data = fetch(s)?;
            let id = own.id(&data);
            ids.push(id);
            if self.index.known(&id)? {
                continue;
            }
            chunks += 1;
            bytes += data.len() as u64;
            self.store_copied(id, &data, &mut full)?;
        }
        self.flush_copied(full)?;
        self.member(m, &ids)?;
        Ok((chunks, bytes))
    }

    /// Puts a copied chunk this repository lacks into the current group. Full groups are
    /// compressed and appended two at a time (both cores), not at the member's end: a copied
    /// 243 MB dump held all its groups in memory (336 MiB peak RSS for `copy`).
    fn store_copied(&mut self, id: ChunkId, data: &[u8], full: &mut Vec<PlainGroup>) -> Result<()> {
        self.index.seen.insert(id, 0);
        self.volume.new += data.len() as u64;
        self.packing.group.push(id, data);
        if self.packing.group.data.len() >= self.params.group_size as usize {
            full.push(self.cut_group()?);
            if full.len() >= 2 {
                self.flush_copied(std::mem::take(full))?;
            }
        }
        Ok(())
    }

    /// Compresses and appends the groups copied chunks filled.
    fn flush_copied(&mut self, mut full: Vec<PlainGroup>) -> Result<()> {
        if !full.is_empty() {
            self.drain_sealing()?;
            let sealed = seal_all(&mut full, self.level(), self.packing.sealing.zstd());
            self.append(sealed)?;
            self.recycle(full);
        }
        Ok(())
    }

    /// Ends the current group (its references read, ready to compress) and starts the next
    /// in a spare buffer.
    fn cut_group(&mut self) -> Result<PlainGroup> {
        let next = self.packing.spare.pop().unwrap_or_default();
        let mut g = std::mem::replace(&mut self.packing.group, next);
        self.read_refs(&mut g)?;
        Ok(g)
    }

    /// Adds `r`, the older version of the next new chunk, to the current group's references
    /// when there is room and it is in a plain group of the index. False when the group
    /// holds chunks already and `r` would add one group too many to read (`REF_GROUPS`).
    fn add_ref(&mut self, r: ChunkId) -> Result<bool> {
        add_ref(&self.index.conn, &self.params, &mut self.packing.group, r)
    }

    /// Reads the bytes of a full group's reference chunks into its prefix. A reference that
    /// cannot be read (damaged) only costs the delta: the group is compressed without.
    fn read_refs(&self, g: &mut PlainGroup) -> Result<()> {
        if g.refs.is_empty() {
            return Ok(());
        }
        match ChunkFetcher::new(&self.index.conn, self.repo.storage())
            .prefix(&g.refs, "a new group")
        {
            Ok(prefix) => g.prefix = prefix,
            Err(e) => {
                crate::logging::warning(format!(
                    "compressing without the older version of changed data: {e}"
                ));
                g.refs.clear();
                g.refs_len = 0;
            }
        }
        Ok(())
    }

    /// Whether chunk `id` (of `len` bytes) is new, neither in the index nor stored by this
    /// writer already; a new one is recorded as stored by this writer.
    fn claim(&mut self, id: ChunkId, len: usize) -> Result<bool> {
        self.volume.read += len as u64;
        if self.index.known(&id)? {
            return Ok(false);
        }
        self.index.seen.insert(id, 0);
        self.volume.new += len as u64;
        Ok(true)
    }

    /// The zstd level for a stream's next full groups, and whether the first of them should
    /// probe for the stream's own level: `level()`, or at the normal level the stream's own
    /// once chosen, which a stream of at least a group's size probes for (groups with
    /// references excepted: a night's are at `SPARSE_LEVEL` anyway).
    fn stream_level(&self, own: Option<i32>, size: u64, full: &[PlainGroup]) -> (i32, bool) {
        let normal = self.params.zstd_level;
        let level = self.level();
        if level != normal {
            return (level, false);
        }
        let probe = own.is_none()
            && normal > FAST_LEVEL
            && size >= u64::from(self.params.group_size)
            && full.first().is_some_and(|g| g.prefix.is_empty());
        (own.unwrap_or(normal), probe)
    }

    /// The zstd level for the next groups: `SPARSE_LEVEL` while little of what was read
    /// was new.
    fn level(&self) -> i32 {
        let base = self.params.zstd_level;
        if self.volume.new.saturating_mul(SPARSE_RATIO) <= self.volume.read {
            base.max(SPARSE_LEVEL)
        } else {
            base
        }
    }

    /// Stores the new metadata chunks the snapshot file has cut (all that remain when
    /// `last`) into the metadata group, which is compressed and appended once full.
    fn store_meta(&mut self, last: bool) -> Result<()> {
        for (id, data) in self.file().take_meta_chunks(last)? {
            self.fresh_meta.keep(id, &data);
            if !self.claim(id, data.len())? {
                if let Some(b) = &mut self.meta_base {
                    b.found(&id);
                }
                continue;
            }
            if let Some(r) = self.meta_base.as_mut().and_then(BaseCursor::next) {
                if !add_ref(
                    &self.index.conn,
                    &self.params,
                    &mut self.packing.meta_group,
                    r,
                )? {
                    self.seal_meta()?;
                    add_ref(
                        &self.index.conn,
                        &self.params,
                        &mut self.packing.meta_group,
                        r,
                    )?;
                }
            }
            self.packing.meta_group.push(id, &data);
            if self.packing.meta_group.data.len() >= self.params.group_size as usize {
                self.seal_meta()?;
            }
        }
        Ok(())
    }

    /// Compresses the metadata group and appends it.
    fn seal_meta(&mut self) -> Result<()> {
        let mut g = std::mem::take(&mut self.packing.meta_group);
        self.read_refs(&mut g)?;
        self.drain_sealing()?;
        let sealed = g.seal(self.level(), self.packing.sealing.zstd());
        // Emptied, it keeps its buffer for the next metadata chunks.
        self.packing.meta_group = g;
        self.append(vec![sealed])
    }

    /// Writes a member record into the metadata stream and stores the chunks it completes.
    fn member(&mut self, m: &Member, chunks: &[ChunkId]) -> Result<()> {
        self.file().member(m, chunks)?;
        self.store_meta(false)
    }

    /// Keeps emptied groups that still hold their buffer, for the next groups.
    fn recycle(&mut self, groups: Vec<PlainGroup>) {
        for g in groups {
            if self.packing.spare.len() < SPARE_GROUPS && g.data.capacity() > 0 {
                self.packing.spare.push(g);
            }
        }
    }

    /// Hands full groups to the background compression; beyond `seal_queue::IN_FLIGHT`
    /// batches, waits for the oldest and appends it.
    fn submit(&mut self, groups: Vec<PlainGroup>, level: i32) -> Result<()> {
        self.packing.sealing.submit(groups, level);
        while self.packing.sealing.len() > seal_queue::IN_FLIGHT {
            self.take_sealed(true)?;
        }
        Ok(())
    }

    /// Appends the background batches that are done, oldest first.
    fn collect_sealed(&mut self) -> Result<()> {
        while self.take_sealed(false)? {}
        Ok(())
    }

    /// Waits for every background batch and appends it: groups compressed here must come
    /// after them.
    fn drain_sealing(&mut self) -> Result<()> {
        while self.take_sealed(true)? {}
        Ok(())
    }

    /// Appends the oldest background batch if it is done (or once it is, with `wait`).
    /// False when there was none to append.
    fn take_sealed(&mut self, wait: bool) -> Result<bool> {
        match self.packing.sealing.oldest(wait)? {
            Some(done) => {
                self.append(done.sealed)?;
                self.recycle(done.emptied);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Appends sealed groups, in order, to the current pack; finishes packs that reached
    /// their size.
    fn append(&mut self, sealed: Vec<SealedGroup>) -> Result<()> {
        for g in sealed {
            self.packing.packs.append(g)?;
            crash_point("group-appended");
        }
        if self.packing.packs.done().len() > self.index.indexed {
            self.index_finished_packs()?;
        }
        Ok(())
    }

    /// Indexes the packs finished since the last call in a transaction of their own. A
    /// finished pack is durable, so its chunks may count as committed before the snapshot
    /// does (spec: "Commit protocol", step 3); the commit then indexes only the last pack,
    /// which keeps ~0.1 s per 100 MB of new data out of its serial end.
    fn index_finished_packs(&mut self) -> Result<()> {
        let new = &self.packing.packs.done()[self.index.indexed..];
        let (tx, _) = self.index.begin_indexing(self.repo.storage(), new)?;
        tx.commit().sql()?;
        crash_point("pack-indexed");
        self.index.indexed = self.packing.packs.done().len();
        self.index.forget_indexed();
        // The lookups' read transaction again.
        index::begin_read(&self.index.conn)
    }

    /// Makes the snapshot durable and visible: flushes the last group, finishes the pack,
    /// writes the snapshot file, then indexes the last packs and the snapshot in one SQLite
    /// transaction.
    /// When this returns Ok the snapshot survives a crash.
    pub fn commit(mut self) -> Result<SnapshotInfo> {
        let id = self.write_files()?;
        let storage = self.repo.storage();
        let fresh = std::mem::take(&mut self.fresh_meta.chunks);
        let new = &self.packing.packs.done()[self.index.indexed..];
        let (tx, seen) = self.index.begin_indexing(storage, new)?;
        crash_point("index-packs-inserted");
        if !index::snapshot_known(&tx, &id)? {
            let parent = self.parent.as_deref();
            // Own chunks' rows, else the parent's row of the same chunk at the same place of
            // the same member (every unchanged file's chunks).
            let known = |(path, n): index::ChunkPlace<'_>, c: &ChunkId| {
                let own = seen.get(c).copied().filter(|&row| row > 0);
                own.or_else(|| {
                    let f = parent?.get(path?)?;
                    let f = &f.content;
                    let same = f.rows.len() == f.chunks.len() && f.chunks.get(n) == Some(c);
                    same.then(|| f.rows[n])
                })
            };
            indexer::index_snapshot_file_rows(&tx, storage, &id, &known, &fresh)?;
        }
        crash_point("index-before-commit");
        tx.commit().sql()?;
        crash_point("index-committed");
        index::snapshot(&self.index.conn, &id)?
            .ok_or_else(|| Error::Repository(format!("snapshot {id} vanished from the index")))
    }

    /// Steps 1-2 of the commit protocol: the last metadata chunks, the last group and pack,
    /// then the snapshot file, all durable. Returns the snapshot id.
    fn write_files(&mut self) -> Result<String> {
        crash_point("commit-begin");
        self.store_meta(true)?;
        let last = [
            std::mem::take(&mut self.packing.group),
            std::mem::take(&mut self.packing.meta_group),
        ];
        let mut last: Vec<PlainGroup> = last.into_iter().filter(|g| !g.chunks.is_empty()).collect();
        for g in &mut last {
            self.read_refs(g)?;
        }
        self.drain_sealing()?;
        let sealed = seal_all(&mut last, self.level(), self.packing.sealing.zstd());
        self.append(sealed)?;
        self.packing.packs.finish()?;
        let packs_added = self.packing.packs.done().iter().map(|p| p.size).sum();
        let file = self.file.take().expect("write_files runs once");
        let (id, _, _) = file.finish(self.repo.storage(), packs_added)?;
        Ok(id)
    }

    /// A crash between the snapshot file and the index transaction, for recovery tests.
    #[cfg(test)]
    pub(crate) fn write_files_only(mut self) -> Result<String> {
        self.write_files()
    }

    fn file(&mut self) -> &mut SnapshotFileWriter {
        self.file
            .as_mut()
            .expect("snapshot file is open until commit")
    }
}

/// Adds `r` to `g`'s references when there is room and it is in a plain group of the index.
/// False when `g` holds chunks already and `r` would add one group too many to read
/// (`REF_GROUPS`).
fn add_ref(
    conn: &Connection,
    params: &ChunkerParams,
    g: &mut PlainGroup,
    r: ChunkId,
) -> Result<bool> {
    let room = REFS_PER_GROUP * params.group_size as usize;
    if g.refs_len >= room || g.refs.last() == Some(&r) {
        return Ok(true);
    }
    let Some((len, grp)) = index::reference(conn, &r)? else {
        return Ok(true);
    };
    if g.refs_len + len as usize > room {
        return Ok(true);
    }
    if !g.ref_groups.contains(&grp) {
        if g.ref_groups.len() >= REF_GROUPS {
            return Ok(g.chunks.is_empty());
        }
        g.ref_groups.push(grp);
    }
    g.refs.push(r);
    g.refs_len += len as usize;
    Ok(true)
}

/// Walks a member's chunk list in the parent alongside its new version: a chunk found in
/// both moves the cursor behind it there, and a new chunk is taken to replace the parent's
/// chunk at the cursor (a changed row changes its chunk and, until the cut points agree
/// again, maybe the next).
struct BaseCursor<B> {
    base: B,
    /// Place of each chunk in `base`, by the first 8 bytes of its id (built on first use): a
    /// rare collision only picks a worse reference, which is checked when read like any chunk.
    at: Option<HashMap<u64, u32>>,
    next: usize,
}

impl<B: AsRef<[ChunkId]>> BaseCursor<B> {
    fn new(base: B) -> BaseCursor<B> {
        BaseCursor {
            base,
            at: None,
            next: 0,
        }
    }

    fn key(id: &ChunkId) -> u64 {
        u64::from_le_bytes(id[..8].try_into().expect("8 bytes"))
    }

    fn found(&mut self, id: &ChunkId) {
        let base = self.base.as_ref();
        let at = self.at.get_or_insert_with(|| {
            let mut m = HashMap::with_capacity(base.len());
            for (i, c) in base.iter().enumerate().rev() {
                m.insert(Self::key(c), i as u32);
            }
            m
        });
        if let Some(&i) = at.get(&Self::key(id)) {
            self.next = i as usize + 1;
        }
    }

    fn next(&mut self) -> Option<ChunkId> {
        let r = *self.base.as_ref().get(self.next)?;
        self.next += 1;
        Some(r)
    }
}

/// Compresses full groups at `level` (`seal_all`). With `probe`, the first one is compressed
/// first, at `FAST_LEVEL` and `level` (`PlainGroup::seal_probe`); the others follow its
/// choice, which is returned.
fn seal_batch(
    groups: &mut [PlainGroup],
    level: i32,
    probe: bool,
    zstd: &Compressors,
) -> (Vec<SealedGroup>, Option<i32>) {
    match groups.split_first_mut() {
        Some((first, rest)) if probe => {
            let (s, kept) = first.seal_probe(FAST_LEVEL, level, FAST_GAIN, zstd);
            let mut sealed = vec![s];
            sealed.extend(seal_all(rest, kept, zstd));
            (sealed, Some(kept))
        }
        _ => (seal_all(groups, level, zstd), None),
    }
}

/// How a stream is cut and compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// The repository's sizes (8 KiB): a dump or an .ini file, whose changed row re-stores a
    /// few KiB.
    Fine,
    /// A file of bulk data: `ChunkerParams::for_large_files`. A depot's files below 1 MiB
    /// (drivers, cabinets, DLLs, scripts) change whole or not at all; cut at 8 KiB they were
    /// three quarters of a depot's chunks, each an index row and a trailer entry.
    Bulk,
    /// A file of bulk data of at least `LARGE_FILE` bytes: also compressed at `FAST_LEVEL`.
    BulkLarge,
}

/// How member `m` is cut: a dump is never sized before it is stored, an imported one is.
fn cut_of(m: &Member) -> Cut {
    match (m.path.starts_with(BULK_PREFIX), m.size >= LARGE_FILE) {
        (false, _) => Cut::Fine,
        (true, false) => Cut::Bulk,
        (true, true) => Cut::BulkLarge,
    }
}

impl Drop for SnapshotWriter<'_> {
    fn drop(&mut self) {
        if let Some(f) = self.file.take() {
            f.abandon();
        }
    }
}

impl MemberSink for SnapshotWriter<'_> {
    fn add(&mut self, member: &Member, content: &mut dyn Read) -> Result<()> {
        if !member.is_file() {
            return self.member(member, &[]);
        }
        let (ids, size) = self.store_stream(&member.path, content, cut_of(member))?;
        if size != member.size {
            return Err(Error::Invalid(format!(
                "member {}: content has {size} bytes, its metadata says {}",
                member.path, member.size
            )));
        }
        self.member(member, &ids)
    }

    /// Refers to the parent's chunks when every one of them is still in the repository.
    fn reuse(&mut self, member: &Member, parent: &ParentFile) -> Result<bool> {
        // With the parent's rows its chunks are in the index while it is (prune keeps them),
        // and the commit takes the rows from there; else each is looked up.
        let content = &parent.content;
        if content.rows.len() != content.chunks.len() {
            for id in &content.chunks {
                if !self.index.seen.contains_key(id) && !index::chunk_known(&self.index.conn, id)? {
                    return Ok(false);
                }
            }
        }
        self.volume.read += member.size;
        self.member(member, &content.chunks)?;
        Ok(true)
    }

    /// Streams without spooling: the member record is written after its content, when the
    /// size is known.
    fn add_unsized(&mut self, mut member: Member, content: &mut dyn Read) -> Result<u64> {
        let (ids, size) = self.store_stream(&member.path, content, Cut::Fine)?;
        member.size = size;
        self.member(&member, &ids)?;
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::Member;

    fn file(path: &str, size: usize) -> Member {
        Member::control(path, size as u64)
    }

    /// A writer compresses harder once most of what it reads is already stored.
    #[test]
    fn level_rises_when_little_is_new() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(&dir.path().join("r")).unwrap();
        let mut w = repo
            .begin_snapshot(crate::store::tests::meta("server"))
            .unwrap();
        let data: Vec<u8> = (0..1_000_000u32)
            .flat_map(|i| (i.wrapping_mul(2_654_435_761) >> 7).to_le_bytes())
            .collect();
        w.add(&file("a", data.len()), &mut &data[..]).unwrap();
        assert_eq!(
            (w.volume.read, w.volume.new),
            (data.len() as u64, data.len() as u64)
        );
        assert_eq!(w.level(), 3, "everything read so far was new");
        // The same content under ten more names: only metadata is new (the members' records
        // with their chunk lists), under 1/8 of all bytes read.
        for name in ["b", "c", "d", "e", "f", "g", "h", "i", "j", "k"] {
            w.add(&file(name, data.len()), &mut &data[..]).unwrap();
        }
        assert!(
            w.volume.new < data.len() as u64 + 65_536,
            "{}",
            w.volume.new
        );
        assert_eq!(w.level(), SPARSE_LEVEL);
        w.volume.new = w.volume.read / 4;
        assert_eq!(w.level(), 3);
        w.commit().unwrap();
    }

    /// Bulk data is cut into ~512 KiB chunks, whatever its size; the same bytes as a dump keep
    /// the small chunks. Only bulk data of at least `LARGE_FILE` bytes is compressed fast.
    #[test]
    fn bulk_data_gets_large_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(&dir.path().join("r")).unwrap();
        let mut w = repo
            .begin_snapshot(crate::store::tests::meta("server"))
            .unwrap();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let data: Vec<u8> = (0..LARGE_FILE + (4 << 20))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut chunks = |path: &str, bytes: &[u8]| {
            let m = file(path, bytes.len());
            let (ids, size) = w.store_stream(path, &mut &bytes[..], cut_of(&m)).unwrap();
            assert_eq!(size, bytes.len() as u64);
            ids.len()
        };
        let wim = chunks("DATA/DEPOT/win10/install.wim", &data);
        let dump = chunks("CONTENT/BACKENDS/MYSQL/mysql/database.sql", &data);
        let small_bulk = &data[..(LARGE_FILE - 1) as usize];
        let small = chunks("DATA/DEPOT/win10/setup.exe", small_bulk);
        let small_dump = chunks("CONTENT/BACKENDS/FILE/x.ini", small_bulk);
        // Large: between one chunk per 2 MiB (max) and one per 128 KiB (min); small: about
        // one per 8 KiB, far more than one per 16 KiB.
        let len = data.len();
        assert!(
            (len / (2 << 20)..=len / (128 << 10)).contains(&wim),
            "{wim} chunks of ~512 KiB for {len} bytes"
        );
        assert!(
            dump > len / (16 << 10),
            "{dump} chunks of ~8 KiB for {len} bytes"
        );
        assert!(
            (1..=LARGE_FILE as usize / (128 << 10)).contains(&small),
            "{small} chunks of ~512 KiB for {LARGE_FILE} bytes of bulk data"
        );
        assert!(
            small_dump > LARGE_FILE as usize / (16 << 10),
            "{small_dump} chunks of ~8 KiB for {LARGE_FILE} bytes"
        );
        let m = |path: &str, size: u64| file(path, size as usize);
        assert_eq!(cut_of(&m("DATA/TFTP/x", LARGE_FILE)), Cut::BulkLarge);
        assert_eq!(cut_of(&m("DATA/TFTP/x", LARGE_FILE - 1)), Cut::Bulk);
        assert_eq!(cut_of(&m("CONTENT/x", LARGE_FILE)), Cut::Fine);
    }
}
