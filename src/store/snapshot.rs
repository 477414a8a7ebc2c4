//! The snapshot file format: a header, the ids of the metadata chunks and an end record. The
//! metadata stream (every member of one backup, in order, with its chunk ids) is cut into
//! chunks stored in packs like file content, so that unchanged metadata deduplicates against
//! earlier snapshots. A snapshot is re-indexed from its file and the packs. Reading takes the
//! metadata chunks from a caller's `fetch` (`reader::read_snapshot_file` fetches them through
//! the index), so this module imports neither the index nor the reader. Spec:
//! `store-format/README.md`, section "Snapshot files".

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::member::Member;
use crate::store::chunk_stream::ChunkStream;
use crate::store::chunker::{self, ChunkId};
use crate::store::config::{ChunkerParams, BULK_PREFIX};
use crate::store::crash_point;
use crate::store::seal::{ChunkIds, SegmentSealer};
use crate::store::storage::{snapshot_key, ObjectReader, Storage, TempFile};

pub(crate) const SNAPSHOT_MAGIC: &[u8; 8] = b"OBKSNAP\x02";
/// The magic of an encrypted repository's snapshot files: the zstd frame follows sealed in
/// segments (`seal::SegmentSealer`, spec "Encryption").
pub(crate) const SNAPSHOT_MAGIC_SEALED: &[u8; 8] = b"OBKSNAP\x03";
/// The magic of format version 1 snapshot files (member records in the file itself).
const SNAPSHOT_MAGIC_V1: &[u8; 8] = b"OBKSNAP\x01";
/// Records of the snapshot file.
const REC_HEADER: u8 = 1;
const REC_END: u8 = 3;
const REC_META: u8 = 4;
/// The only record of the metadata stream.
const REC_MEMBER: u8 = 2;

/// What the caller says about a snapshot it begins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Unix seconds, UTC.
    pub time: i64,
    pub host: String,
    pub backends: Vec<String>,
    /// The CONTROL/sysinfo pairs, in order.
    pub sysinfo: Vec<(String, String)>,
    /// `create` or `import <file name>`.
    pub source: String,
}

/// The first record of a snapshot file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Header {
    pub repository: String,
    #[serde(flatten)]
    pub meta: SnapshotMeta,
    /// For a snapshot made by `copy`: the id of the snapshot it copies, in the repository
    /// where that one was made (a copy of a copy names the first). Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_of: Option<String>,
}

/// The last record: its presence proves the file is complete.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct End {
    pub members: u64,
    pub size: u64,
    /// Length of the metadata stream in bytes.
    pub meta_len: u64,
    /// Bytes of the packs this snapshot wrote (the snapshot file itself is not included).
    pub packs_added: u64,
    /// When the file was finished, Unix nanoseconds: orders snapshots of the same `time`.
    pub written: i64,
}

struct HashWriter<W: Write> {
    inner: W,
    hasher: blake3::Hasher,
    len: u64,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(b)?;
        self.hasher.update(&b[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Streams a snapshot file into `tmp/`. Member records go to the metadata stream, which is
/// cut into chunks (`take_meta_chunks`) as it grows; the file itself receives the ids of those
/// chunks. Memory: the uncut tail of the metadata stream (under `4 × max_size` plus one member
/// record).
pub(crate) struct SnapshotFileWriter {
    tmp: PathBuf,
    enc: zstd::Encoder<'static, SegmentSealer<HashWriter<BufWriter<File>>>>,
    /// The metadata stream's chunking: `small` for members outside `BULK_PREFIX`, `bulk`
    /// below it (`ChunkerParams::for_metadata`, `for_bulk_metadata`); `in_bulk` says which
    /// part the stream is in.
    small: ChunkerParams,
    bulk: ChunkerParams,
    in_bulk: bool,
    ids: ChunkIds,
    /// Metadata stream bytes not yet cut into chunks.
    meta: Vec<u8>,
    /// Chunks cut where the stream passed between bulk data and other members, not yet
    /// taken.
    cut: Vec<(ChunkId, Vec<u8>)>,
    meta_len: u64,
    members: u64,
    size: u64,
}

impl SnapshotFileWriter {
    pub(crate) fn create(
        storage: &dyn Storage,
        header: &Header,
        params: &ChunkerParams,
    ) -> Result<SnapshotFileWriter> {
        let TempFile { path: tmp, file } = storage.create_temp("snapshot")?;
        let mut hw = HashWriter {
            inner: BufWriter::new(file),
            hasher: blake3::Hasher::new(),
            len: 0,
        };
        let crypt = storage.crypt();
        let magic = if crypt.is_encrypted() {
            SNAPSHOT_MAGIC_SEALED
        } else {
            SNAPSHOT_MAGIC
        };
        hw.write_all(magic).path_ctx("writing", &tmp)?;
        let enc = zstd::Encoder::new(crypt.segment_sealer(hw), params.zstd_level)
            .path_ctx("writing", &tmp)?;
        let mut w = SnapshotFileWriter {
            tmp,
            enc,
            small: params.for_metadata(),
            bulk: params.for_bulk_metadata(),
            in_bulk: false,
            ids: crypt.ids().clone(),
            meta: Vec::new(),
            cut: Vec::new(),
            meta_len: 0,
            members: 0,
            size: 0,
        };
        w.record(
            REC_HEADER,
            &[&serde_json::to_vec(header).expect("header serialises")],
        )?;
        Ok(w)
    }

    fn record(&mut self, kind: u8, parts: &[&[u8]]) -> Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let len = u32::try_from(len)
            .map_err(|_| Error::Invalid("snapshot record larger than 4 GiB".into()))?;
        self.enc.write_all(&[kind]).path_ctx("writing", &self.tmp)?;
        self.enc
            .write_all(&len.to_le_bytes())
            .path_ctx("writing", &self.tmp)?;
        for p in parts {
            self.enc.write_all(p).path_ctx("writing", &self.tmp)?;
        }
        Ok(())
    }

    /// Appends a member record to the metadata stream.
    pub(crate) fn member(&mut self, m: &Member, chunks: &[ChunkId]) -> Result<()> {
        let bulk = m.path.starts_with(BULK_PREFIX);
        if bulk != self.in_bulk {
            // Cut the stream here, so that each part is cut by its own content only.
            let done = self.cut_meta(true)?;
            self.cut.extend(done);
            self.in_bulk = bulk;
        }
        let json = serde_json::to_vec(m).expect("member serialises");
        let ids: &[u8] = chunks.as_flattened();
        let len = u32::try_from(4 + json.len() + ids.len())
            .map_err(|_| Error::Invalid("snapshot record larger than 4 GiB".into()))?;
        self.meta.push(REC_MEMBER);
        self.meta.extend_from_slice(&len.to_le_bytes());
        self.meta
            .extend_from_slice(&(json.len() as u32).to_le_bytes());
        self.meta.extend_from_slice(&json);
        self.meta.extend_from_slice(ids);
        self.members += 1;
        if m.is_file() {
            self.size += m.size;
        }
        Ok(())
    }

    /// Cuts the metadata stream's chunks that no later byte can change (all of them when
    /// `last`), writes their ids to the file and returns them with their bytes, in order, for
    /// the caller to store, after those cut where the stream passed between bulk data and
    /// other members. Cuts nothing new while less than `4 × max_size` bytes wait (unless
    /// `last`).
    pub(crate) fn take_meta_chunks(&mut self, last: bool) -> Result<Vec<(ChunkId, Vec<u8>)>> {
        let mut chunks = std::mem::take(&mut self.cut);
        chunks.extend(self.cut_meta(last)?);
        Ok(chunks)
    }

    /// `take_meta_chunks` of the bytes in `meta`, with the current part's sizes.
    fn cut_meta(&mut self, last: bool) -> Result<Vec<(ChunkId, Vec<u8>)>> {
        let params = if self.in_bulk {
            &self.bulk
        } else {
            &self.small
        };
        if self.meta.is_empty() || (!last && self.meta.len() < 4 * params.max_size as usize) {
            return Ok(Vec::new());
        }
        let cuts = chunker::cut_buffer(&self.meta, params, &self.ids, last);
        let consumed = cuts.last().map_or(0, |c| c.1.end);
        let ids: Vec<ChunkId> = cuts.iter().map(|c| c.0).collect();
        if !ids.is_empty() {
            self.record(REC_META, &[ids.as_flattened()])?;
        }
        let chunks = cuts
            .into_iter()
            .map(|(id, r)| (id, self.meta[r].to_vec()))
            .collect();
        self.meta.drain(..consumed);
        self.meta_len += consumed as u64;
        Ok(chunks)
    }

    /// Writes the end record and publishes the file as `snapshots/<id>.snap` (durable on
    /// return). Returns the id, the file size and the end record. The metadata stream
    /// MUST have been taken completely (`take_meta_chunks(true)`) and its chunks be durable.
    pub(crate) fn finish(
        mut self,
        storage: &dyn Storage,
        packs_added: u64,
    ) -> Result<(String, u64, End)> {
        debug_assert!(
            self.meta.is_empty() && self.cut.is_empty(),
            "metadata stream not taken"
        );
        let written = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        let end = End {
            members: self.members,
            size: self.size,
            meta_len: self.meta_len,
            packs_added,
            written,
        };
        self.record(
            REC_END,
            &[&serde_json::to_vec(&end).expect("end serialises")],
        )?;
        let hw = self
            .enc
            .finish()
            .and_then(SegmentSealer::finish)
            .path_ctx("writing", &self.tmp)?;
        let id = hw.hasher.finalize().to_hex().to_string();
        let len = hw.len;
        let file = hw
            .inner
            .into_inner()
            .map_err(|e| e.into_error())
            .path_ctx("writing", &self.tmp)?;
        crash_point("snapshot-written");
        let tmp = TempFile {
            path: self.tmp,
            file,
        };
        storage.put_new(&snapshot_key(&id), tmp, "snapshot")?;
        crash_point("snapshot-renamed");
        Ok((id, len, end))
    }
}

impl SnapshotFileWriter {
    /// Gives up the snapshot: deletes its temporary file (best effort).
    pub(crate) fn abandon(self) {
        drop(self.enc);
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// What the snapshot file itself holds (without the metadata stream).
pub(crate) struct SnapshotFile {
    pub header: Header,
    pub end: End,
    /// Size of the snapshot file.
    pub len: u64,
    /// The metadata chunks, in stream order.
    pub meta_chunks: Vec<ChunkId>,
}

/// Reads a snapshot file, checking that its BLAKE3 equals its name and that it is complete;
/// then its metadata stream, chunk by chunk through `fetch` (which checks each chunk's id),
/// calling `member` for every member in order.
pub(crate) fn read_snapshot<M: DeserializeOwned>(
    storage: &dyn Storage,
    id: &str,
    fetch: &mut dyn FnMut(&ChunkId) -> Result<Vec<u8>>,
    mut member: impl FnMut(M, Vec<ChunkId>) -> Result<()>,
) -> Result<SnapshotFile> {
    let shown = storage.show(&snapshot_key(id));
    let bad = |why: String| Error::Corrupt(format!("snapshot file {shown}: {why}"));
    let file = read_snapshot_head(storage, id)?;
    let mut stream = ChunkStream::new(file.meta_chunks.iter(), |id: &ChunkId| fetch(id));
    let mut members = 0u64;
    loop {
        let mut kl = [0u8; 5];
        let first = read_full(&mut stream, &mut kl);
        if let Some(e) = stream.error.take() {
            return Err(e);
        }
        match first.map_err(|e| bad(format!("metadata stream: {e}")))? {
            0 => break,
            5 => {}
            _ => return Err(bad("metadata stream ends inside a record".into())),
        }
        let rlen = u32::from_le_bytes(kl[1..].try_into().expect("4 bytes")) as usize;
        if kl[0] != REC_MEMBER {
            return Err(bad(format!("unexpected metadata record type {}", kl[0])));
        }
        // The length is read off disk: it must fit in what the end record says is left.
        if rlen as u64 > file.end.meta_len.saturating_sub(stream.produced) {
            return Err(bad(format!(
                "member record of {rlen} bytes is longer than the rest of the metadata stream"
            )));
        }
        let got = read_record(&mut stream, rlen);
        if let Some(e) = stream.error.take() {
            return Err(e);
        }
        let payload = got.map_err(|e| bad(format!("metadata stream: {e}")))?;
        if payload.len() != rlen {
            return Err(bad("metadata stream ends inside a record".into()));
        }
        let jl = payload
            .get(..4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize);
        let jl = jl
            .filter(|jl| 4 + jl <= rlen && (rlen - 4 - jl) % 32 == 0)
            .ok_or_else(|| bad("bad member record".into()))?;
        let m: M =
            serde_json::from_slice(&payload[4..4 + jl]).map_err(|e| bad(format!("member: {e}")))?;
        let ids = payload[4 + jl..]
            .chunks_exact(32)
            .map(|c| c.try_into().expect("32 bytes"))
            .collect();
        members += 1;
        member(m, ids)?;
    }
    if members != file.end.members || stream.produced != file.end.meta_len {
        return Err(bad(format!(
            "metadata stream holds {members} members in {} bytes, the end record says {} in {}",
            stream.produced, file.end.members, file.end.meta_len
        )));
    }
    Ok(file)
}

/// Reads a record payload of `len` bytes (read off disk) or less when the stream ends first.
/// The buffer grows with the bytes actually read, so a damaged length allocates no more
/// than the stream holds.
fn read_record(r: &mut impl Read, len: usize) -> io::Result<Vec<u8>> {
    let mut payload = Vec::with_capacity(len.min(1 << 16));
    r.take(len as u64).read_to_end(&mut payload)?;
    Ok(payload)
}

/// Reads into `buf` until it is full or the stream ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Reads the snapshot file alone: checks its BLAKE3 against `id`, its magic and records.
pub(crate) fn read_snapshot_head(storage: &dyn Storage, id: &str) -> Result<SnapshotFile> {
    let key = snapshot_key(id);
    let shown = storage.show(&key);
    let bad = |why: String| Error::Corrupt(format!("snapshot file {shown}: {why}"));
    let reading = |e| Error::io(format!("reading {shown}"), e);
    let obj = storage
        .open(&key)
        .map_err(|e| Error::io(format!("opening snapshot {shown}"), e))?;
    let mut hasher = blake3::Hasher::new();
    let len =
        io::copy(&mut BufReader::new(ObjectReader::new(&*obj)), &mut hasher).map_err(reading)?;
    if hasher.finalize().to_hex().as_str() != id {
        return Err(bad("its content does not match its name (damaged)".into()));
    }
    let mut f = BufReader::new(ObjectReader::new(&*obj));
    let mut magic = [0u8; 8];
    f.read_exact(&mut magic).map_err(reading)?;
    if &magic == SNAPSHOT_MAGIC_V1 {
        return Err(bad(
            "snapshot file format 1 (repository format version 1) is not supported".into(),
        ));
    }
    let crypt = storage.crypt();
    let want = if crypt.is_encrypted() {
        SNAPSHOT_MAGIC_SEALED
    } else {
        SNAPSHOT_MAGIC
    };
    if &magic != want {
        return Err(bad(
            if &magic == SNAPSHOT_MAGIC || &magic == SNAPSHOT_MAGIC_SEALED {
                "a plain snapshot file in an encrypted repository, or a sealed one in a plain \
             repository"
                    .into()
            } else {
                "no snapshot header".into()
            },
        ));
    }
    let mut dec: Box<dyn Read + '_> = if crypt.is_encrypted() {
        let opened = crypt
            .segment_opener(f)
            .expect("an encrypted repository's opener");
        Box::new(zstd::Decoder::new(opened).map_err(reading)?)
    } else {
        Box::new(zstd::Decoder::with_buffer(f).map_err(reading)?)
    };
    let mut header: Option<Header> = None;
    let mut meta_chunks = Vec::new();
    loop {
        let mut kl = [0u8; 5];
        dec.read_exact(&mut kl)
            .map_err(|e| bad(format!("ends without an end record ({e})")))?;
        let rlen = u32::from_le_bytes(kl[1..].try_into().expect("4 bytes")) as usize;
        let payload =
            read_record(&mut dec, rlen).map_err(|e| bad(format!("record cut short ({e})")))?;
        if payload.len() != rlen {
            return Err(bad(format!(
                "record cut short ({} of {rlen} bytes)",
                payload.len()
            )));
        }
        match (kl[0], &header) {
            (REC_HEADER, None) => {
                header = Some(
                    serde_json::from_slice(&payload).map_err(|e| bad(format!("header: {e}")))?,
                );
            }
            (REC_META, Some(_)) if rlen % 32 == 0 => {
                meta_chunks.extend(
                    payload
                        .chunks_exact(32)
                        .map(|c| -> ChunkId { c.try_into().expect("32 bytes") }),
                );
            }
            (REC_END, Some(_)) => {
                let end: End = serde_json::from_slice(&payload)
                    .map_err(|e| bad(format!("end record: {e}")))?;
                return Ok(SnapshotFile {
                    header: header.expect("checked"),
                    end,
                    len,
                    meta_chunks,
                });
            }
            (k, _) => return Err(bad(format!("unexpected record type {k}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::storage::LocalDir;

    /// A snapshot file with one member, and its id.
    fn one_member(root: &LocalDir) -> String {
        let header = Header {
            repository: "00".repeat(16),
            copy_of: None,
            meta: SnapshotMeta {
                time: 1,
                host: "h".into(),
                backends: vec![],
                sysinfo: vec![],
                source: "create".into(),
            },
        };
        let mut w = SnapshotFileWriter::create(root, &header, &ChunkerParams::default()).unwrap();
        w.member(&Member::control("CONTROL/checksums", 3), &[[7; 32]])
            .unwrap();
        assert_eq!(w.take_meta_chunks(true).unwrap().len(), 1);
        w.finish(root, 0).unwrap().0
    }

    /// A member record whose (damaged) length is beyond what the end record says the
    /// metadata stream holds is refused before its payload is read or allocated.
    #[test]
    fn a_member_record_length_is_bounded_by_the_stream() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalDir::new(dir.path());
        let id = one_member(&storage);
        let mut stream = vec![REC_MEMBER, 0xf0, 0xff, 0xff, 0xff];
        stream.extend_from_slice(&[0; 64]);
        let e = read_snapshot(
            &storage,
            &id,
            &mut |_| Ok(stream.clone()),
            |_: Member, _| Ok(()),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("longer than the rest of the metadata stream"),
            "{e}"
        );
    }

    /// A snapshot file record cut short (its length says more than the file holds) is
    /// refused as such.
    #[test]
    fn a_file_record_longer_than_the_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut body = Vec::new();
        let mut enc = zstd::Encoder::new(&mut body, 3).unwrap();
        enc.write_all(&[REC_HEADER, 0xf0, 0xff, 0xff, 0xff, b'{'])
            .unwrap();
        enc.finish().unwrap();
        let mut file = SNAPSHOT_MAGIC.to_vec();
        file.extend_from_slice(&body);
        let id = blake3::hash(&file).to_hex().to_string();
        std::fs::create_dir(dir.path().join("snapshots")).unwrap();
        std::fs::write(dir.path().join(snapshot_key(&id)), &file).unwrap();
        let e = read_snapshot_head(&LocalDir::new(dir.path()), &id)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("record cut short (1 of 4294967280 bytes)"),
            "{e}"
        );
    }
}
