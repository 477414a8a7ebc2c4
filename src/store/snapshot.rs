//! The snapshot file format: every member of one backup, in order, with its chunk ids, so a
//! snapshot can be re-indexed from the file alone. Spec: `store-format/README.md`, section
//! "Snapshot files".

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::member::Member;
use crate::store::chunker::ChunkId;
use crate::store::{crash_point, durable};

pub(crate) const SNAPSHOT_MAGIC: &[u8; 8] = b"OBKSNAP\x01";
const REC_HEADER: u8 = 1;
const REC_MEMBER: u8 = 2;
const REC_END: u8 = 3;

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

/// A committed snapshot as listed by the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// 64 hex digits: BLAKE3 of the snapshot file. Any unique prefix names it.
    pub id: String,
    pub time: i64,
    pub host: String,
    pub backends: Vec<String>,
    /// Logical bytes of file contents.
    pub size: u64,
    /// Bytes this snapshot added to the repository on disk (new packs and its own file).
    pub added: u64,
    pub members: u64,
    pub source: String,
    pub sysinfo: Vec<(String, String)>,
}

/// The first record of a snapshot file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Header {
    pub repository: String,
    #[serde(flatten)]
    pub meta: SnapshotMeta,
}

/// The last record: its presence proves the file is complete.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct End {
    pub members: u64,
    pub size: u64,
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

/// Streams a snapshot file into `tmp/`. Member records are written as members complete, so
/// memory holds at most one member's chunk list.
pub(crate) struct SnapshotFileWriter {
    tmp: PathBuf,
    enc: zstd::Encoder<'static, HashWriter<BufWriter<File>>>,
    members: u64,
    size: u64,
}

impl SnapshotFileWriter {
    pub(crate) fn create(root: &Path, header: &Header, level: i32) -> Result<SnapshotFileWriter> {
        let tmp = root.join("tmp").join(durable::temp_name("snapshot")?);
        let file = durable::create_new(&tmp)?;
        let mut hw = HashWriter {
            inner: BufWriter::new(file),
            hasher: blake3::Hasher::new(),
            len: 0,
        };
        hw.write_all(SNAPSHOT_MAGIC).path_ctx("writing", &tmp)?;
        let enc = zstd::Encoder::new(hw, level).path_ctx("writing", &tmp)?;
        let mut w = SnapshotFileWriter {
            tmp,
            enc,
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

    pub(crate) fn member(&mut self, m: &Member, chunks: &[ChunkId]) -> Result<()> {
        let json = serde_json::to_vec(m).expect("member serialises");
        let ids: &[u8] = chunks.as_flattened();
        self.record(
            REC_MEMBER,
            &[&(json.len() as u32).to_le_bytes(), &json, ids],
        )?;
        self.members += 1;
        if m.is_file() {
            self.size += m.size;
        }
        Ok(())
    }

    /// Writes the end record, fsyncs and renames the file to `snapshots/<id>.snap`; fsyncs
    /// the directory. Returns the id, the file size and the end record.
    pub(crate) fn finish(mut self, root: &Path, packs_added: u64) -> Result<(String, u64, End)> {
        let written = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        let end = End {
            members: self.members,
            size: self.size,
            packs_added,
            written,
        };
        self.record(
            REC_END,
            &[&serde_json::to_vec(&end).expect("end serialises")],
        )?;
        let hw = self.enc.finish().path_ctx("writing", &self.tmp)?;
        let id = hw.hasher.finalize().to_hex().to_string();
        let len = hw.len;
        let file = hw
            .inner
            .into_inner()
            .map_err(|e| e.into_error())
            .path_ctx("writing", &self.tmp)?;
        crash_point("snapshot-written");
        file.sync_all().path_ctx("syncing", &self.tmp)?;
        crash_point("snapshot-synced");
        durable::rename_durable(&self.tmp, &snapshot_path(root, &id))?;
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

pub(crate) fn snapshot_path(root: &Path, id: &str) -> PathBuf {
    root.join("snapshots").join(format!("{id}.snap"))
}

/// Reads a snapshot file, checking that its BLAKE3 equals its name and that it is complete.
/// Calls `member` for every member in order; returns the header, the end record and the
/// file size.
pub(crate) fn read_snapshot_file(
    path: &Path,
    id: &str,
    mut member: impl FnMut(Member, Vec<ChunkId>) -> Result<()>,
) -> Result<(Header, End, u64)> {
    let bad = |why: String| Error::Corrupt(format!("snapshot file {}: {why}", path.display()));
    let mut f = File::open(path).path_ctx("opening snapshot", path)?;
    let mut hasher = blake3::Hasher::new();
    let len = io::copy(&mut f, &mut hasher).path_ctx("reading", path)?;
    if hasher.finalize().to_hex().as_str() != id {
        return Err(bad("its content does not match its name (damaged)".into()));
    }
    let mut f = BufReader::new(File::open(path).path_ctx("opening snapshot", path)?);
    let mut magic = [0u8; 8];
    f.read_exact(&mut magic).path_ctx("reading", path)?;
    if &magic != SNAPSHOT_MAGIC {
        return Err(bad("no snapshot header".into()));
    }
    let mut dec = zstd::Decoder::with_buffer(f).path_ctx("reading", path)?;
    let mut header: Option<Header> = None;
    loop {
        let mut kl = [0u8; 5];
        dec.read_exact(&mut kl)
            .map_err(|e| bad(format!("ends without an end record ({e})")))?;
        let rlen = u32::from_le_bytes(kl[1..].try_into().expect("4 bytes")) as usize;
        let mut payload = vec![0u8; rlen];
        dec.read_exact(&mut payload)
            .map_err(|e| bad(format!("record cut short ({e})")))?;
        match (kl[0], &header) {
            (REC_HEADER, None) => {
                header = Some(
                    serde_json::from_slice(&payload).map_err(|e| bad(format!("header: {e}")))?,
                );
            }
            (REC_MEMBER, Some(_)) => {
                let jl = payload
                    .get(..4)
                    .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize);
                let jl = jl
                    .filter(|jl| 4 + jl <= rlen && (rlen - 4 - jl) % 32 == 0)
                    .ok_or_else(|| bad("bad member record".into()))?;
                let m: Member = serde_json::from_slice(&payload[4..4 + jl])
                    .map_err(|e| bad(format!("member: {e}")))?;
                let ids = payload[4 + jl..]
                    .chunks_exact(32)
                    .map(|c| c.try_into().expect("32 bytes"))
                    .collect();
                member(m, ids)?;
            }
            (REC_END, Some(_)) => {
                let end: End = serde_json::from_slice(&payload)
                    .map_err(|e| bad(format!("end record: {e}")))?;
                return Ok((header.expect("checked"), end, len));
            }
            (k, _) => return Err(bad(format!("unexpected record type {k}"))),
        }
    }
}
